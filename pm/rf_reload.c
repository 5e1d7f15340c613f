/*
 * rf_reload: the handoff between a master and the one it re-executes into
 * (see rf_reload.h).
 */
#include "rf_reload.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rf_ctl.h"

#define RF_HANDOFF_MAX (64u << 20)

/* ---- fingerprint ---------------------------------------------------------- */

typedef struct rf_fnv {
    uint64_t h;
} rf_fnv_t;

static void rf_fnv_bytes(rf_fnv_t *f, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        f->h ^= b[i];
        f->h *= 1099511628211ull;
    }
}

static void rf_fnv_u64(rf_fnv_t *f, uint64_t v)
{
    rf_fnv_bytes(f, &v, sizeof(v));
}

/* NULL and "" differ; the length keeps "ab","c" from equalling "a","bc". */
static void rf_fnv_str(rf_fnv_t *f, const char *s)
{
    rf_fnv_u64(f, s ? strlen(s) + 1 : 0);
    if (s)
        rf_fnv_bytes(f, s, strlen(s));
}

uint64_t rf_reload_fingerprint(const rf_io_conf_t *io)
{
    rf_fnv_t f = {14695981039346656037ull};
    rf_fnv_u64(&f, (uint64_t)rf_io_thread_count(io));
    rf_fnv_u64(&f, (uint64_t)io->ncpu);
    for (int i = 0; i < io->ncpu && io->cpu_list; i++)
        rf_fnv_u64(&f, (uint64_t)io->cpu_list[i]);
    rf_fnv_u64(&f, (uint64_t)io->backend);
    rf_fnv_u64(&f, io->max_connections);
    rf_fnv_u64(&f, io->idle_timeout_ms);
    rf_fnv_u64(&f, io->ring_entries);
    rf_fnv_u64(&f, io->rbuf_size);
    rf_fnv_u64(&f, io->rbuf_count);
    rf_fnv_u64(&f, (uint64_t)io->npools);
    for (int i = 0; i < io->npools; i++) {
        const rf_io_pool_t *p = &io->pools[i];
        rf_fnv_str(&f, p->name);
        rf_fnv_str(&f, p->listen);
        rf_fnv_u64(&f, (uint64_t)p->backlog);
        rf_fnv_u64(&f, (uint64_t)p->listen_mode);
        rf_fnv_str(&f, p->listen_owner);
        rf_fnv_str(&f, p->listen_group);
        rf_fnv_str(&f, p->allowed_clients);
        rf_fnv_str(&f, p->ping_path);
        rf_fnv_str(&f, p->ping_response);
        rf_fnv_str(&f, p->status_path);
        const rf_proto_limits_t *l = &p->limits;
        uint64_t lim[] = {l->max_params_bytes,   l->max_params,    l->max_multiplex,
                          l->max_per_connection, l->buffer_memory, l->max_body,
                          l->max_conns,          l->max_reqs};
        rf_fnv_bytes(&f, lim, sizeof(lim));
        rf_fnv_u64(&f, p->read_timeout_ms);
        rf_fnv_u64(&f, p->handler == NULL);
        rf_fnv_u64(&f, p->chan_ring_size);
    }
    return f.h;
}

/* ---- writing ---------------------------------------------------------------- */

typedef struct rf_out {
    char *buf;
    size_t len, cap;
    int failed;
} rf_out_t;

__attribute__((format(printf, 2, 3))) static void rf_out(rf_out_t *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = o->failed ? 0 : vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (o->failed || n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = (o->cap + (size_t)n + 1) * 2;
        char *nb = realloc(o->buf, ncap);
        if (nb == NULL) {
            o->failed = 1;
            return;
        }
        o->buf = nb;
        o->cap = ncap;
    }
}

int rf_handoff_write(const rf_handoff_t *h)
{
    rf_out_t o = {NULL, 0, 0, 0};
    o.buf = malloc(1024);
    o.cap = o.buf ? 1024 : 0;
    o.failed = o.buf == NULL;
    rf_out(&o, "ringfpm-handoff 1\n");
    rf_out(&o, "proto %u\nfingerprint %016llx\n", h->proto, (unsigned long long)h->fingerprint);
    rf_out(&o, "responder %d\ngen %u\nnext_id %u\n", h->responder, h->gen, h->next_id);
    rf_out(&o, "board %d", h->board_fd);
    for (int i = 0; i < h->npools; i++)
        rf_out(&o, " %u", h->nslots[i]);
    rf_out(&o, "\nctl");
    for (int i = 0; i < h->nthreads; i++)
        rf_out(&o, " %d", h->ctl[i]);
    rf_out(&o, "\n");
    for (size_t i = 0; i < h->nxs; i++) {
        const rf_handoff_exec_t *x = &h->xs[i];
        rf_out(&o, "x %u %d %d %d %d %u %llu %d %d\n", x->id, x->pid, x->pool, x->thread, x->slot,
               x->gen, (unsigned long long)x->started_ns, x->out_fd, x->err_fd);
    }
    if (o.failed) {
        free(o.buf);
        return -ENOMEM;
    }
    int fd = memfd_create("ringfpm-handoff", 0);
    if (fd < 0) {
        int e = errno;
        free(o.buf);
        return -e;
    }
    size_t off = 0;
    while (off < o.len) {
        ssize_t w = write(fd, o.buf + off, o.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            free(o.buf);
            close(fd);
            return -e;
        }
        off += (size_t)w;
    }
    free(o.buf);
    return fd;
}

/* ---- reading ---------------------------------------------------------------- */

typedef struct rf_in {
    char *p;  /* the rest of the current line */
    int line; /* for messages */
    char *err;
    size_t errlen;
} rf_in_t;

__attribute__((format(printf, 2, 3))) static int rf_in_fail(rf_in_t *in, const char *fmt, ...)
{
    int n = snprintf(in->err, in->errlen, "handoff line %d: ", in->line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < in->errlen)
        vsnprintf(in->err + n, in->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* The next space-separated number of the line, in [lo, hi]. */
static int rf_in_num(rf_in_t *in, long long lo, long long hi, int base, long long *v)
{
    while (*in->p == ' ')
        in->p++;
    if (*in->p == '\0')
        return rf_in_fail(in, "a number is missing");
    char *end;
    errno = 0;
    long long n = strtoll(in->p, &end, base);
    if (errno || end == in->p || (*end != ' ' && *end != '\0') || n < lo || n > hi)
        return rf_in_fail(in, "'%.20s' is not a valid value", in->p);
    in->p = end;
    *v = n;
    return 0;
}

/* Reads fields into the int64 array; "-1" allowed where lo says so. */
static int rf_in_nums(rf_in_t *in, long long *v, const long long (*range)[2], int n)
{
    for (int i = 0; i < n; i++)
        if (rf_in_num(in, range[i][0], range[i][1], 10, &v[i]) < 0)
            return -EINVAL;
    return 0;
}

static int rf_in_end(rf_in_t *in)
{
    while (*in->p == ' ')
        in->p++;
    return *in->p ? rf_in_fail(in, "unexpected '%.20s'", in->p) : 0;
}

static int rf_in_list(rf_in_t *in, int **out, int *n, long long lo, long long hi)
{
    int cap = 0;
    *out = NULL;
    *n = 0;
    for (;;) {
        while (*in->p == ' ')
            in->p++;
        if (*in->p == '\0')
            return 0;
        long long v = 0;
        if (*n >= 4096)
            return rf_in_fail(in, "too many values");
        if (rf_in_num(in, lo, hi, 10, &v) < 0)
            return -EINVAL;
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            int *nv = realloc(*out, (size_t)cap * sizeof(int));
            if (nv == NULL)
                return rf_in_fail(in, "out of memory");
            *out = nv;
        }
        (*out)[(*n)++] = (int)v;
    }
}

/* The lines holding one number. */
typedef struct rf_scalar {
    const char *key;
    long long lo, hi;
    int bit; /* in rf_handoff_parse's `seen` */
    void (*set)(rf_handoff_t *h, long long v);
} rf_scalar_t;

static void rf_set_proto(rf_handoff_t *h, long long v)
{
    h->proto = (uint32_t)v;
}
static void rf_set_responder(rf_handoff_t *h, long long v)
{
    h->responder = (int)v;
}
static void rf_set_gen(rf_handoff_t *h, long long v)
{
    h->gen = (uint32_t)v;
}
static void rf_set_next_id(rf_handoff_t *h, long long v)
{
    h->next_id = (uint32_t)v;
}

static const rf_scalar_t rf_scalars[] = {
    {"proto", 0, UINT32_MAX, 1, rf_set_proto},
    {"responder", 1, INT32_MAX, 4, rf_set_responder},
    {"gen", 1, UINT32_MAX - 1, 8, rf_set_gen},
    {"next_id", 0, UINT32_MAX, 16, rf_set_next_id},
};

static const rf_scalar_t *rf_handoff_scalar(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof(rf_scalars) / sizeof(rf_scalars[0]); i++)
        if (strlen(rf_scalars[i].key) == len && memcmp(rf_scalars[i].key, key, len) == 0)
            return &rf_scalars[i];
    return NULL;
}

static int rf_handoff_parse(char *text, rf_handoff_t *h, rf_in_t *in)
{
    int seen = 0; /* bits: proto, fingerprint, responder, gen, next_id, board, ctl */
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        in->line++;
        char *sp = strchr(line, ' ');
        size_t klen = sp ? (size_t)(sp - line) : strlen(line);
        in->p = line + klen;
        long long v;
        const rf_scalar_t *k;
#define RF_KEY(k) (klen == sizeof(k) - 1 && memcmp(line, k, klen) == 0)
        if (in->line == 1) {
            if (strcmp(line, "ringfpm-handoff 1") != 0)
                return rf_in_fail(in, "not a ringfpm handoff (version 1)");
        } else if ((k = rf_handoff_scalar(line, klen)) != NULL) {
            if (rf_in_num(in, k->lo, k->hi, 10, &v) < 0 || rf_in_end(in) < 0)
                return -EINVAL;
            k->set(h, v);
            seen |= k->bit;
        } else if (RF_KEY("fingerprint")) {
            while (*in->p == ' ')
                in->p++;
            char *end;
            errno = 0;
            unsigned long long f = strtoull(in->p, &end, 16);
            if (errno || end == in->p || *end)
                return rf_in_fail(in, "bad fingerprint");
            h->fingerprint = f;
            seen |= 2;
        } else if (RF_KEY("board")) {
            int *l, n;
            if (rf_in_num(in, 0, INT32_MAX, 10, &v) < 0)
                return -EINVAL;
            h->board_fd = (int)v;
            if (rf_in_list(in, &l, &n, 0, 1 << 20) < 0) {
                free(l);
                return -EINVAL;
            }
            h->nslots = malloc((size_t)(n ? n : 1) * sizeof(*h->nslots));
            for (int i = 0; h->nslots && i < n; i++)
                h->nslots[i] = (uint32_t)l[i]; /* 0..1<<20: rf_in_list checked */
            free(l);
            if (h->nslots == NULL)
                return rf_in_fail(in, "out of memory");
            h->npools = n;
            seen |= 32;
        } else if (RF_KEY("ctl")) {
            if (rf_in_list(in, &h->ctl, &h->nthreads, -1, INT32_MAX) < 0)
                return -EINVAL;
            if (h->nthreads == 0)
                return rf_in_fail(in, "no control sockets");
            seen |= 64;
        } else if (RF_KEY("x")) {
            static const long long r[9][2] = {{1, UINT32_MAX}, {1, INT32_MAX},  {0, 4095},
                                              {0, 4095},       {-1, 1 << 20},   {1, UINT32_MAX},
                                              {0, INT64_MAX},  {-1, INT32_MAX}, {-1, INT32_MAX}};
            long long f[9];
            if (rf_in_nums(in, f, r, 9) < 0 || rf_in_end(in) < 0)
                return -EINVAL;
            if (h->nxs >= (1u << 20))
                return rf_in_fail(in, "too many executors");
            rf_handoff_exec_t *nx = realloc(h->xs, (h->nxs + 1) * sizeof(*nx));
            if (nx == NULL)
                return rf_in_fail(in, "out of memory");
            h->xs = nx;
            rf_handoff_exec_t *x = &h->xs[h->nxs++];
            x->id = (uint32_t)f[0];
            x->pid = (int)f[1];
            x->pool = (int)f[2];
            x->thread = (int)f[3];
            x->slot = (int)f[4];
            x->gen = (uint32_t)f[5];
            x->started_ns = (uint64_t)f[6];
            x->out_fd = (int)f[7];
            x->err_fd = (int)f[8];
        } else {
            return rf_in_fail(in, "unknown key '%.*s'", (int)(klen > 32 ? 32 : klen), line);
        }
#undef RF_KEY
    }
    if (seen != 127)
        return rf_in_fail(in, "incomplete (fields seen: %#x)", (unsigned)seen);
    for (size_t i = 0; i < h->nxs; i++)
        if (h->xs[i].pool >= h->npools || h->xs[i].thread >= h->nthreads)
            return rf_in_fail(in, "executor %u: pool or thread out of range", h->xs[i].id);
    return 0;
}

int rf_handoff_read(int fd, rf_handoff_t *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof(*h));
    h->board_fd = -1;
    rf_in_t in = {NULL, 0, err, errlen};
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        rc = rf_in_fail(&in, "cannot read it: %s", strerror(errno));
        close(fd);
        return rc;
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            if (cap >= RF_HANDOFF_MAX) {
                rc = rf_in_fail(&in, "larger than %u bytes", RF_HANDOFF_MAX);
                break;
            }
            cap = cap ? cap * 2 : 16384;
            char *nt = realloc(text, cap);
            if (nt == NULL) {
                rc = rf_in_fail(&in, "out of memory");
                break;
            }
            text = nt;
        }
        ssize_t r = read(fd, text + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = rf_in_fail(&in, "cannot read it: %s", strerror(errno));
            break;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (rc == 0 && (text == NULL || memchr(text, '\0', len) != NULL))
        rc = rf_in_fail(&in, "empty or binary");
    if (rc == 0) {
        text[len] = '\0';
        rc = rf_handoff_parse(text, h, &in);
    }
    free(text);
    if (rc < 0)
        rf_handoff_free(h);
    return rc;
}

void rf_handoff_free(rf_handoff_t *h)
{
    free(h->nslots);
    free(h->ctl);
    free(h->xs);
    h->nslots = NULL;
    h->ctl = NULL;
    h->xs = NULL;
    h->npools = h->nthreads = 0;
    h->nxs = 0;
}
