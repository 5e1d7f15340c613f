/*
 * rf_exec: the executor loop over an rf_chan channel. See rf_exec.h.
 * Deliberately free of PHP headers: PHP is reached only through rf_php.h.
 */
#include "rf_exec.h"

#include "rf_access.h"
#include "rf_fcgi.h"
#include "rf_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define EXEC_OUT_BUF_DEFAULT    8192u
#define EXEC_MAX_PARAMS_LEN_DEF (1u << 20)
#define EXEC_MAX_PARAMS_DEF     4096u

/* The running request, handed to the rf_php_io_t callbacks. */
typedef struct exec_req {
    rf_chan_t *ch;
    rf_exec_stats_t *st;
    uint32_t slot, gen;
    /* inline body, or a body fd with body_left bytes still to read */
    const uint8_t *body;
    size_t body_len, body_pos;
    int body_fd;
    uint64_t body_left;
    uint64_t body_off;     /* the fd is read with pread from 0: its file offset
                              is shared with the responder's copy */
    size_t ra_pos, ra_len; /* what of exec_body_ra is still to hand out */
    /* stdout buffer */
    char *obuf;
    size_t ocap, olen;
    uint32_t nlogs; /* STDERR messages sent for this request */
    int wrote;      /* any stdout left the buffer or is in it */
    int ended;      /* END already sent (fastcgi_finish_request) */
    int more;       /* that END said the script goes on: DONE when it returns */
    int aborted;    /* the responder sent ABORT for this request */
    int err;        /* channel error (< 0): the loop returns it */
} exec_req_t;

void rf_exec_opts_init(rf_exec_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->body_sock = -1;
    o->slowlog_fd = -1;
    o->board_slot = -1;
    o->access_fd = -1;
}

/* ---- slowlog watcher ------------------------------------------------------
 * A second thread of the executor sleeps until the running request's
 * slowlog deadline; if the same request still runs then, it writes the
 * request's PHP stack (rf_php_trace) to the slowlog. The main thread only
 * publishes (script, start, seq) per request: no syscall on its path. */

typedef struct slow_watch {
    _Atomic uint64_t seq; /* odd while a request runs */
    _Atomic uint64_t start_ns;
    _Atomic int stop;
    char script[1024];
    const rf_exec_opts_t *o;
    rf_exec_stats_t *st;
    pthread_t tid;
    int running;
} slow_watch_t;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void slow_dump(slow_watch_t *w)
{
    static char buf[65536];
    time_t now = time(NULL);
    struct tm tm;
    char date[64];
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "[%d-%b-%Y %H:%M:%S]", &tm);
    int n = snprintf(buf, sizeof(buf), "\n%s  [pool %s] pid %d\nscript_filename = %s\n", date,
                     w->o->pool_name ? w->o->pool_name : "-", (int)getpid(), w->script);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return;
    size_t len = (size_t)n;
    len += rf_php_trace(buf + len, sizeof(buf) - len,
                        w->o->slowlog_depth > 0 ? w->o->slowlog_depth : 20);
    ssize_t wr = write(w->o->slowlog_fd, buf, len);
    (void)wr;
    w->st->slow++;
}

static void *slow_main(void *arg)
{
    slow_watch_t *w = arg;
    uint64_t limit = (uint64_t)w->o->slowlog_ms * 1000000u, logged = 0;
    while (!atomic_load(&w->stop)) {
        uint64_t s = atomic_load_explicit(&w->seq, memory_order_acquire);
        uint64_t wait = limit;
        if ((s & 1) && s != logged) {
            uint64_t deadline = atomic_load(&w->start_ns) + limit, now = mono_ns();
            if (now >= deadline) {
                slow_dump(w);
                logged = s;
            } else {
                wait = deadline - now;
            }
        }
        if (wait > 200000000u)
            wait = 200000000u; /* sees stop within 0.2 s */
        struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static slow_watch_t slow_w;

/* ---- scoreboard ---------------------------------------------------------------
 * This executor's process slot (core/rf_board.h), written the way php-fpm's
 * child writes its own (fpm_request.c): at the start of a request, once PHP
 * resolved it, when the script returned and when it is over. Plain stores
 * under the slot's seqlock; the only syscalls are getrusage() at the start
 * and the end, for the request's cpu time (php-fpm calls times()). */

typedef struct exec_board {
    rf_board_t *b;
    int pool;
    rf_board_proc_t *me;                   /* NULL: no slot, nothing to write */
    int measure;                           /* take the numbers below: a slot or an access log */
    uint64_t t0_us;                        /* the request began, CLOCK_MONOTONIC */
    struct timespec t0_wall;               /* and CLOCK_REALTIME (%t, the queue wait) */
    struct rusage ru0;                     /* this process's cpu time then */
    int measured;                          /* the request's duration, cpu and memory are taken */
    uint64_t dur_us, user_us, sys_us, mem; /* ... these */
} exec_board_t;

static exec_board_t exec_bd;

#define BOARD_SET(field, s) rf_board_strset((field), sizeof(field), (s), (s) ? strlen(s) : 0)

/* ---- access log --------------------------------------------------------------
 * php-fpm's worker formats and writes its access-log line between
 * fpm_request_end and php_request_shutdown; here the line is formatted at
 * the same moment (script_done: the status, headers and params are PHP's
 * as they are then) and written after END. The request's strings are
 * copied at "started" (PHP may free them before script_done) into one
 * buffer kept across requests. */

enum { ACS_METHOD, ACS_URI, ACS_QUERY, ACS_SCRIPT, ACS_USER, ACS_N };

typedef struct exec_acc {
    rf_access_fmt_t *fmt; /* NULL: no access log */
    int fd;
    const char *path; /* reopened when rotated; NULL = never */
    dev_t dev;
    ino_t ino;
    int64_t checked_sec; /* path last compared with fd */
    const rf_exec_opts_t *o;
    rf_exec_stats_t *st;
    uint64_t queued_ns; /* REQUEST arg2: entered the queue, CLOCK_REALTIME */
    rf_access_buf_t strs;
    size_t off[ACS_N];    /* into strs; SIZE_MAX = NULL */
    int info;             /* started was called for this request */
    uint64_t clen;        /* its content length (SG(request_info)) */
    int64_t now_sec;      /* the line's %T */
    long pid, ppid;       /* taken once: no syscall per line */
    rf_access_buf_t line; /* formatted, written after END */
    int pending;
} exec_acc_t;

static exec_acc_t exec_ac = {.fd = -1};

static const char *acc_param(void *ctx, const char *name)
{
    return rf_php_request_param(name);
}

static const char *acc_header(void *ctx, const char *name)
{
    return rf_php_response_header(name);
}

static void acc_started(const rf_php_req_info_t *info)
{
    const char *v[ACS_N] = {info->method, info->uri, info->query, info->script, info->user};
    exec_ac.strs.len = 0;
    exec_ac.info = 1;
    exec_ac.clen = info->content_length > 0 ? (uint64_t)info->content_length : 0;
    for (int i = 0; i < ACS_N; i++) {
        exec_ac.off[i] = SIZE_MAX;
        if (v[i] == NULL)
            continue;
        size_t at = exec_ac.strs.len;
        rf_access_buf_t *b = &exec_ac.strs;
        size_t n = strlen(v[i]) + 1;
        if (b->cap - b->len < n) {
            size_t nc = (b->len + n) * 2;
            char *np = realloc(b->p, nc);
            if (np == NULL)
                continue; /* logged as empty */
            b->p = np;
            b->cap = nc;
        }
        memcpy(b->p + at, v[i], n);
        b->len += n;
        exec_ac.off[i] = at;
    }
}

static const char *acc_str(int i)
{
    return exec_ac.info && exec_ac.off[i] != SIZE_MAX ? exec_ac.strs.p + exec_ac.off[i] : NULL;
}

/* script_done: the line, unless access.suppress_path says no. */
static void acc_format(void)
{
    const rf_exec_opts_t *o = exec_ac.o;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t queue_us = -1;
    uint64_t t0_ns =
        (uint64_t)exec_bd.t0_wall.tv_sec * 1000000000u + (uint64_t)exec_bd.t0_wall.tv_nsec;
    if (exec_ac.queued_ns)
        queue_us = t0_ns > exec_ac.queued_ns ? (int64_t)((t0_ns - exec_ac.queued_ns) / 1000) : 0;
    rf_access_req_t r = {
        .method = acc_str(ACS_METHOD),
        .uri = acc_str(ACS_URI),
        .query = acc_str(ACS_QUERY),
        .script = acc_str(ACS_SCRIPT),
        .user = acc_str(ACS_USER),
        .remote = o->access_remote_param ? rf_php_request_param("REMOTE_ADDR") : NULL,
        .pool = o->pool_name,
        .content_length = exec_ac.clen,
        .status = rf_php_response_status(),
        .duration_us = exec_bd.dur_us,
        .cpu_user_us = exec_bd.user_us,
        .cpu_sys_us = exec_bd.sys_us,
        .memory = exec_bd.mem,
        .start_sec = exec_bd.t0_wall.tv_sec,
        .now_sec = now.tv_sec,
        .queue_us = queue_us,
        .pid = exec_ac.pid,
        .ppid = exec_ac.ppid,
        .param = acc_param,
        .header = acc_header,
    };
    if (rf_access_suppressed(&r, o->access_suppress, o->access_nsuppress)) {
        exec_ac.st->access_suppressed++;
        return;
    }
    exec_ac.line.len = 0;
    exec_ac.pending = rf_access_format(exec_ac.fmt, &r, &exec_ac.line) > 0;
    exec_ac.now_sec = now.tv_sec;
}

/* Reopen the path when it no longer names the open file (rotated): one
 * stat a second at most, on the clock read for the line. */
static void acc_check_rotated(void)
{
    if (exec_ac.path && exec_ac.now_sec != exec_ac.checked_sec) {
        struct stat st;
        exec_ac.checked_sec = exec_ac.now_sec;
        if (stat(exec_ac.path, &st) < 0 || st.st_dev != exec_ac.dev || st.st_ino != exec_ac.ino) {
            int fd = open(exec_ac.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
            if (fd >= 0 && fstat(fd, &st) == 0) {
                /* same fd number: nothing else to update */
                if (dup2(fd, exec_ac.fd) >= 0)
                    fcntl(exec_ac.fd, F_SETFD, FD_CLOEXEC);
                exec_ac.dev = st.st_dev;
                exec_ac.ino = st.st_ino;
            }
            if (fd >= 0)
                close(fd);
        }
    }
}

/* After END: the line, whole, in one write (O_APPEND keeps lines of
 * executors sharing the file apart). */
static void acc_write(void)
{
    if (!exec_ac.pending)
        return;
    exec_ac.pending = 0;
    acc_check_rotated();
    ssize_t w;
    do {
        w = write(exec_ac.fd, exec_ac.line.p, exec_ac.line.len);
    } while (w < 0 && errno == EINTR);
    if (w == (ssize_t)exec_ac.line.len)
        exec_ac.st->access++;
}

static int acc_open(const rf_exec_opts_t *o, rf_exec_stats_t *st)
{
    char err[256];
    if (o->access_fd < 0)
        return 0;
    int rc = rf_access_compile(o->access_format, &exec_ac.fmt, err, sizeof(err));
    if (rc < 0) {
        close(o->access_fd);
        rf_log(RF_LOG_WARNING, "[pool %s] access.format: %s: access log off",
               o->pool_name ? o->pool_name : "-", rc == -EINVAL ? err : strerror(-rc));
        return rc;
    }
    struct stat sb;
    exec_ac.fd = o->access_fd;
    exec_ac.path = o->access_path;
    if (fstat(exec_ac.fd, &sb) == 0) {
        exec_ac.dev = sb.st_dev;
        exec_ac.ino = sb.st_ino;
    }
    exec_ac.checked_sec = (int64_t)time(NULL);
    exec_ac.pid = (long)getpid();
    exec_ac.ppid = (long)getppid();
    exec_ac.o = o;
    exec_ac.st = st;
    return 0;
}

static void acc_close(void)
{
    if (exec_ac.fd >= 0)
        close(exec_ac.fd);
    rf_access_free(exec_ac.fmt);
    free(exec_ac.strs.p);
    free(exec_ac.line.p);
    memset(&exec_ac, 0, sizeof(exec_ac));
    exec_ac.fd = -1;
}

static uint64_t tv_us(const struct timeval *tv)
{
    return (uint64_t)tv->tv_sec * 1000000u + (uint64_t)tv->tv_usec;
}

static uint64_t tv_diff_us(const struct timeval *a, const struct timeval *b)
{
    uint64_t x = tv_us(a), y = tv_us(b);
    return x > y ? x - y : 0;
}

/* php-fpm's "Reading headers": a new request, nothing known about it yet. */
static void board_begin(void)
{
    rf_board_proc_t *p = exec_bd.me;
    exec_bd.measured = 0;
    if (!exec_bd.measure)
        return;
    exec_bd.t0_us = mono_ns() / 1000;
    clock_gettime(CLOCK_REALTIME, &exec_bd.t0_wall);
    getrusage(RUSAGE_SELF, &exec_bd.ru0);
    if (p == NULL)
        return;
    rf_board_seq_write_begin(&p->seq);
    p->state = RF_BOARD_READING;
    p->requests++;
    p->req_start_us = exec_bd.t0_us;
    p->content_length = 0;
    p->method[0] = p->uri[0] = p->query[0] = p->user[0] = p->script[0] = '\0';
    rf_board_seq_write_end(&p->seq);
}

/* rf_php_io_t.started: what the request is, and it runs. */
static void io_started(void *ctx, const rf_php_req_info_t *info)
{
    rf_board_proc_t *p = exec_bd.me;
    if (exec_ac.fmt)
        acc_started(info);
    if (p == NULL)
        return;
    rf_board_seq_write_begin(&p->seq);
    p->state = RF_BOARD_RUNNING;
    BOARD_SET(p->method, info->method);
    BOARD_SET(p->uri, info->uri);
    BOARD_SET(p->query, info->query);
    BOARD_SET(p->user, info->user);
    BOARD_SET(p->script, info->script);
    p->content_length = info->content_length > 0 ? (uint64_t)info->content_length : 0;
    rf_board_seq_write_end(&p->seq);
}

/* Enter `state`; the first call of a request also takes its duration, cpu
 * time and (while PHP still has it: Finishing) peak memory, as php-fpm's
 * fpm_request_end does before request shutdown. */
static void board_set_state(uint32_t state)
{
    rf_board_proc_t *p = exec_bd.me;
    int measure = exec_bd.measure && !exec_bd.measured;
    if (measure) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        uint64_t now = mono_ns() / 1000;
        exec_bd.dur_us = now > exec_bd.t0_us ? now - exec_bd.t0_us : 0;
        exec_bd.user_us = tv_diff_us(&ru.ru_utime, &exec_bd.ru0.ru_utime);
        exec_bd.sys_us = tv_diff_us(&ru.ru_stime, &exec_bd.ru0.ru_stime);
        exec_bd.mem = state == RF_BOARD_FINISHING ? rf_php_memory_peak() : 0;
        exec_bd.measured = 1;
    }
    if (p == NULL)
        return;
    rf_board_seq_write_begin(&p->seq);
    p->state = state;
    if (measure) {
        p->req_duration_us = exec_bd.dur_us;
        p->req_cpu_us = exec_bd.user_us + exec_bd.sys_us;
        p->req_memory = exec_bd.mem;
    }
    rf_board_seq_write_end(&p->seq);
}

/* rf_php_io_t.script_done */
static void io_script_done(void *ctx)
{
    board_set_state(RF_BOARD_FINISHING);
    if (exec_ac.fmt)
        acc_format();
}

/* fpm_get_status(): php-fpm's fpm_status_export_to_zval, keys, order and
 * types, from the scoreboard. */
static int exec_status(void *ctx, rf_php_status_out_t *o)
{
    const exec_board_t *eb = ctx;
    const rf_board_pool_t *pool = rf_board_pool_get(eb->b, eb->pool);
    rf_board_stats_t s;
    if (pool == NULL || rf_board_stats_get(eb->b, eb->pool, &s) < 0)
        return -EBUSY;
    int64_t now = (int64_t)time(NULL);
    uint64_t now_us = mono_ns() / 1000;
    rf_php_status_str(o, "pool", pool->name);
    rf_php_status_str(o, "process-manager", pool->pm);
    rf_php_status_long(o, "start-time", pool->start_time);
    rf_php_status_long(o, "start-since", now - pool->start_time);
    rf_php_status_long(o, "accepted-conn", (long long)s.accepted_conn);
    rf_php_status_long(o, "listen-queue", (long long)s.listen_queue);
    rf_php_status_long(o, "max-listen-queue", (long long)s.max_listen_queue);
    rf_php_status_long(o, "listen-queue-len", (long long)pool->listen_queue_len);
    rf_php_status_long(o, "idle-processes", (long long)s.idle);
    rf_php_status_long(o, "active-processes", (long long)s.active);
    rf_php_status_long(o, "total-processes", (long long)(s.idle + s.active));
    rf_php_status_long(o, "max-active-processes", (long long)s.max_active);
    rf_php_status_long(o, "max-children-reached", (long long)s.max_children_reached);
    rf_php_status_long(o, "slow-requests", (long long)s.slow_requests);
    for (int i = 0; i < rf_board_nslots(eb->b, eb->pool); i++) {
        rf_board_proc_t p;
        rf_board_proc_view_t v;
        if (rf_board_proc_read(eb->b, eb->pool, i, &p) != 1)
            continue; /* free, or busy: php-fpm skips those too */
        rf_board_proc_view(&p, now, now_us, &v);
        rf_php_status_proc(o);
        rf_php_status_long(o, "pid", v.pid);
        rf_php_status_str(o, "state", v.state);
        rf_php_status_long(o, "start-time", v.start_time);
        rf_php_status_long(o, "start-since", v.start_since);
        rf_php_status_long(o, "requests", (long long)v.requests);
        rf_php_status_long(o, "request-duration", (long long)v.request_duration);
        rf_php_status_str(o, "request-method", v.method);
        rf_php_status_str(o, "request-uri", v.uri);
        rf_php_status_str(o, "query-string", v.query);
        rf_php_status_long(o, "request-length", (long long)v.content_length);
        rf_php_status_str(o, "user", v.user);
        rf_php_status_str(o, "script", v.script);
        rf_php_status_double(o, "last-request-cpu", v.last_request_cpu);
        rf_php_status_long(o, "last-request-memory", (long long)v.last_request_memory);
    }
    return 0;
}

static int out_drain(exec_req_t *r)
{
    if (r->olen == 0 || r->err)
        return r->err;
    int rc = rf_chan_exec_write(r->ch, RF_CHAN_STDOUT, r->slot, r->gen, r->obuf, r->olen);
    r->olen = 0;
    if (rc < 0) {
        r->err = rc;
        return rc;
    }
    r->st->out_records++;
    return 0;
}

/* Takes every ABORT at the head of the request ring (never a REQUEST). */
static void check_abort(exec_req_t *r)
{
    rf_chan_msg_t m;

    for (;;) {
        int rc = rf_chan_exec_peek(r->ch, &m);
        if (rc < 0) {
            r->err = rc;
            return;
        }
        if (rc == 0 || m.type != RF_CHAN_ABORT)
            return;
        (void)rf_chan_exec_next(r->ch, &m);
        if (m.slot == r->slot && m.gen == r->gen) {
            if (!r->aborted)
                r->st->aborted++;
            r->aborted = 1;
        } else {
            r->st->stale++;
        }
    }
}

static int io_aborted(void *ctx)
{
    exec_req_t *r = ctx;

    if (r->aborted || r->err)
        return 1;
    if (r->ended)
        return 0;
    check_abort(r);
    return r->aborted || r->err;
}

static ssize_t io_write(void *ctx, const char *p, size_t n)
{
    exec_req_t *r = ctx;

    if (r->ended)
        return (ssize_t)n; /* after fastcgi_finish_request: dropped */
    if (r->aborted || r->err)
        return -1;
    r->wrote = 1;
    if (r->olen + n <= r->ocap) {
        memcpy(r->obuf + r->olen, p, n);
        r->olen += n;
        return (ssize_t)n;
    }
    if (out_drain(r) < 0)
        return -1;
    if (n >= r->ocap) {
        /* large write: straight into the ring, no copy through the buffer */
        int rc = rf_chan_exec_write(r->ch, RF_CHAN_STDOUT, r->slot, r->gen, p, n);
        if (rc < 0) {
            r->err = rc;
            return -1;
        }
        r->st->out_records++;
        return (ssize_t)n;
    }
    memcpy(r->obuf, p, n);
    r->olen = n;
    return (ssize_t)n;
}

static int io_flush(void *ctx)
{
    exec_req_t *r = ctx;

    if (r->ended)
        return 0;
    if (r->aborted || r->err)
        return -1;
    if (out_drain(r) < 0)
        return -1;
    int rc = rf_chan_exec_put(r->ch, RF_CHAN_FLUSH, r->slot, r->gen, 0, 0, NULL, 0, 0);
    if (rc < 0) {
        r->err = rc;
        return -1;
    }
    r->st->out_records++;
    return 0;
}

/* A body fd is read ahead in pieces of this size: PHP asks for 5 KiB at a
 * time (multipart) or 16 KiB (php://input), and a pread per such piece
 * costs more than the copy out of this buffer. One per process, allocated
 * on first use. */
#define EXEC_BODY_RA (256u << 10)
static uint8_t *exec_body_ra;

static ssize_t body_pread(exec_req_t *r, void *buf, size_t n)
{
    if (n > r->body_left)
        n = (size_t)r->body_left;
    ssize_t got;
    do {
        got = pread(r->body_fd, buf, n, (off_t)r->body_off);
    } while (got < 0 && errno == EINTR);
    if (got <= 0)
        return got < 0 ? -1 : 0;
    r->body_left -= (uint64_t)got;
    r->body_off += (uint64_t)got;
    return got;
}

static ssize_t io_read_body(void *ctx, char *buf, size_t n)
{
    exec_req_t *r = ctx;

    if (r->ended || r->err)
        return 0; /* the request record is released: no body any more */
    if (r->body_fd >= 0) {
        if (r->ra_pos == r->ra_len) {
            if (r->body_left == 0)
                return 0;
            if (exec_body_ra == NULL)
                exec_body_ra = malloc(EXEC_BODY_RA);
            if (n >= EXEC_BODY_RA || exec_body_ra == NULL)
                return body_pread(r, buf, n);
            ssize_t got = body_pread(r, exec_body_ra, EXEC_BODY_RA);
            if (got <= 0)
                return got;
            r->ra_pos = 0;
            r->ra_len = (size_t)got;
        }
        if (n > r->ra_len - r->ra_pos)
            n = r->ra_len - r->ra_pos;
        memcpy(buf, exec_body_ra + r->ra_pos, n);
        r->ra_pos += n;
        return (ssize_t)n;
    }
    size_t left = r->body_len - r->body_pos;
    if (n > left)
        n = left;
    memcpy(buf, r->body + r->body_pos, n);
    r->body_pos += n;
    return (ssize_t)n;
}

static void stray_log(const char *msg, size_t n)
{
    struct iovec iov[2] = {{(void *)msg, n}, {(void *)"\n", 1}};
    ssize_t w = writev(STDERR_FILENO, iov, 2);
    (void)w;
}

static void io_log(void *ctx, const char *msg, size_t n)
{
    exec_req_t *r = ctx;

    if (r->ended || r->err) {
        stray_log(msg, n);
        return;
    }
    /* stdout written before the message goes first */
    if (out_drain(r) < 0) {
        stray_log(msg, n);
        return;
    }
    int rc;
    if (r->nlogs && n + 2 <= r->ocap) {
        memcpy(r->obuf, "; ", 2);
        memcpy(r->obuf + 2, msg, n);
        rc = rf_chan_exec_write(r->ch, RF_CHAN_STDERR, r->slot, r->gen, r->obuf, n + 2);
    } else {
        rc = r->nlogs ? rf_chan_exec_write(r->ch, RF_CHAN_STDERR, r->slot, r->gen, "; ", 2) : 0;
        if (rc == 0)
            rc = rf_chan_exec_write(r->ch, RF_CHAN_STDERR, r->slot, r->gen, msg, n);
    }
    if (rc < 0) {
        r->err = rc;
        stray_log(msg, n);
        return;
    }
    r->st->out_records++;
    r->nlogs++;
}

/* Releases the request record (the rule: before END) and sends END; with
 * more, flagged so the responder keeps the executor busy until DONE. */
static int send_end(exec_req_t *r, uint32_t app_status, int more)
{
    int rc = rf_chan_exec_release(r->ch);
    if (rc == 0)
        rc = more ? rf_chan_exec_end_more(r->ch, r->slot, r->gen, app_status)
                  : rf_chan_exec_end(r->ch, r->slot, r->gen, app_status,
                                     0 /* FCGI_REQUEST_COMPLETE */);
    if (rc < 0)
        r->err = rc;
    r->ended = 1;
    r->more = more && rc == 0;
    return rc;
}

static int io_finish(void *ctx)
{
    exec_req_t *r = ctx;

    if (r->ended)
        return 0;
    if (r->err || out_drain(r) < 0)
        return -1;
    /* php-fpm ends the FastCGI request with appStatus 0 here */
    if (send_end(r, 0, 1) < 0)
        return -1;
    r->st->finished++;
    return 0;
}

static int recv_fd(int sock)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    char b;
    struct iovec iov = {&b, 1};
    struct msghdr mh = {0};
    ssize_t n;

    memset(cbuf, 0, sizeof(cbuf));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof(cbuf);
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int fd;
            memcpy(&fd, CMSG_DATA(c), sizeof(fd));
            /* any extra fds in the message are a protocol error; close them */
            size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 1; i < nfd; i++) {
                int x;
                memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(x));
                close(x);
            }
            return fd;
        }
    }
    return -1;
}

/* Growable params array, kept across requests. */
typedef struct {
    rf_php_param_t *v;
    size_t n, cap;
} param_vec_t;

static int decode_params(param_vec_t *pv, const uint8_t *p, uint32_t len, uint32_t max_n)
{
    size_t pos = 0;

    pv->n = 0;
    while (pos < len) {
        rf_fcgi_nv_t nv;
        uint32_t need;
        int rc = rf_fcgi_nv_decode(p + pos, len - pos, len, &nv, &need);
        if (rc <= 0)
            return -EPROTO;
        pos += (size_t)rc;
        if (pv->n == pv->cap) {
            if (pv->cap >= max_n)
                return -EPROTO;
            size_t nc = pv->cap ? pv->cap * 2 : 64;
            if (nc > max_n)
                nc = max_n;
            rf_php_param_t *nvp = realloc(pv->v, nc * sizeof(*nvp));
            if (!nvp)
                return -ENOMEM;
            pv->v = nvp;
            pv->cap = nc;
        }
        pv->v[pv->n++] = (rf_php_param_t){(const char *)nv.name, nv.name_len,
                                          (const char *)nv.value, nv.value_len};
    }
    return 0;
}

static void slow_begin(const param_vec_t *pv)
{
    if (!slow_w.running)
        return;
    slow_w.script[0] = '\0';
    for (size_t i = 0; i < pv->n; i++)
        if (pv->v[i].name_len == 15 && memcmp(pv->v[i].name, "SCRIPT_FILENAME", 15) == 0) {
            size_t k = pv->v[i].value_len < sizeof(slow_w.script) - 1 ? pv->v[i].value_len
                                                                      : sizeof(slow_w.script) - 1;
            memcpy(slow_w.script, pv->v[i].value, k);
            slow_w.script[k] = '\0';
        }
    atomic_store(&slow_w.start_ns, mono_ns());
    atomic_fetch_add_explicit(&slow_w.seq, 1, memory_order_release);
}

static void slow_end(void)
{
    if (slow_w.running)
        atomic_fetch_add_explicit(&slow_w.seq, 1, memory_order_release);
}

static const char err500[] = "Status: 500 Internal Server Error\r\n"
                             "Content-type: text/html; charset=UTF-8\r\n\r\n";

static int run_request(rf_chan_t *ch, const rf_exec_opts_t *o, const rf_chan_msg_t *m,
                       param_vec_t *pv, char *obuf, size_t ocap, rf_exec_stats_t *st)
{
    uint32_t max_pl = o->max_params_len ? o->max_params_len : EXEC_MAX_PARAMS_LEN_DEF;
    uint32_t max_n = o->max_params ? o->max_params : EXEC_MAX_PARAMS_DEF;
    int body_fd_req = (m->flags & RF_CHAN_F_BODY_FD) != 0;
    exec_req_t r = {
        .ch = ch,
        .st = st,
        .slot = m->slot,
        .gen = m->gen,
        .body_fd = -1,
        .obuf = obuf,
        .ocap = ocap,
    };

    if ((m->flags & ~RF_CHAN_F_KNOWN) || m->arg0 > m->len || m->arg0 > max_pl)
        return -EPROTO;
    if (body_fd_req ? m->len != m->arg0 : m->len - m->arg0 != m->arg1)
        return -EPROTO;
    int rc = decode_params(pv, m->data, m->arg0, max_n);
    if (rc < 0)
        return rc;
    r.body = m->data + m->arg0;
    r.body_len = body_fd_req ? 0 : m->arg1;

    exec_ac.info = 0;
    exec_ac.pending = 0;
    exec_ac.queued_ns = m->arg2;
    board_begin();
    int status = 0, fail = 0;
    if (body_fd_req) {
        r.body_fd = o->body_sock >= 0 ? recv_fd(o->body_sock) : -1;
        r.body_left = m->arg1;
        if (r.body_fd < 0) {
            static const char msg[] = "rf_exec: request body fd not received";
            io_log(&r, msg, sizeof(msg) - 1);
            fail = 1;
        }
    }
    if (!fail) {
        rf_php_io_t io = {
            .ctx = &r,
            .write = io_write,
            .read_body = io_read_body,
            .flush = io_flush,
            .log = io_log,
            .finish = io_finish,
            .aborted = io_aborted,
            .started = io_started,
            .script_done = io_script_done,
        };
        double t = m->arg2 ? (double)m->arg2 / 1e9 : 0;
        slow_begin(pv);
        rc = rf_php_execute(pv->v, pv->n, &io, t, &status);
        slow_end();
        if (rc < 0) {
            fail = 1;
            if (rc == -EIO)
                fail = 2;
        }
    }
    if (r.body_fd >= 0)
        close(r.body_fd);
    if (fail) {
        status = 255;
        if (!r.wrote && !r.ended && !r.err && !r.aborted)
            (void)io_write(&r, err500, sizeof(err500) - 1);
    }
    if (!r.ended) {
        (void)out_drain(&r);
        if (!r.err)
            (void)send_end(&r, (uint32_t)status, 0);
    } else if (r.more && !r.err) {
        /* after fastcgi_finish_request: the script has returned now */
        int drc = rf_chan_exec_done(r.ch, r.slot, r.gen);
        if (drc < 0)
            r.err = drc;
    }
    board_set_state(RF_BOARD_IDLE);
    acc_write();
    st->requests++;
    if (r.err)
        return r.err;
    return fail == 2 ? -EIO : 0;
}

int rf_exec_main_stats(rf_chan_t *ch, const rf_exec_opts_t *o, rf_exec_stats_t *stats)
{
    rf_exec_stats_t local;
    rf_exec_opts_t defo;
    param_vec_t pv = {0};
    uint64_t done = 0;
    int ret = 0;

    if (!o) {
        rf_exec_opts_init(&defo);
        o = &defo;
    }
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof(*stats));
    size_t ocap = o->out_buf ? o->out_buf : EXEC_OUT_BUF_DEFAULT;
    char *obuf = malloc(ocap);
    if (!obuf)
        return -ENOMEM;
    if (o->board) {
        exec_bd.b = o->board;
        exec_bd.pool = o->board_pool;
        exec_bd.me = rf_board_slot(o->board, o->board_pool, o->board_slot);
        rf_php_set_status_source(exec_status, &exec_bd);
    }
    (void)acc_open(o, stats);
    exec_bd.measure = exec_bd.me != NULL || exec_ac.fmt != NULL;
    if (o->slowlog_ms && o->slowlog_fd >= 0 && !slow_w.running) {
        slow_w.o = o;
        slow_w.st = stats;
        atomic_store(&slow_w.stop, 0);
        slow_w.running = pthread_create(&slow_w.tid, NULL, slow_main, &slow_w) == 0;
    }

    for (;;) {
        rf_chan_msg_t m;

        if (o->max_requests && done >= o->max_requests)
            break;
        if (o->stop && *o->stop)
            break;
        int rc = rf_chan_exec_next(ch, &m);
        if (rc < 0) {
            ret = rc;
            break;
        }
        if (rc == 0) {
            rc = rf_chan_exec_wait(ch, -1);
            if (rc < 0 && rc != -EINTR) {
                ret = rc;
                break;
            }
            continue;
        }
        if (m.type == RF_CHAN_ABORT) {
            /* for a request that already ended */
            stats->stale++;
            (void)rf_chan_exec_release(ch);
            continue;
        }
        if (m.type != RF_CHAN_REQUEST) {
            ret = -EPROTO;
            break;
        }
        rc = run_request(ch, o, &m, &pv, obuf, ocap, stats);
        done++;
        if (rc < 0) {
            ret = rc;
            break;
        }
    }
    if (slow_w.running) {
        atomic_store(&slow_w.stop, 1);
        pthread_join(slow_w.tid, NULL);
        slow_w.running = 0;
    }
    if (o->board)
        rf_php_set_status_source(NULL, NULL);
    memset(&exec_bd, 0, sizeof(exec_bd));
    acc_close();
    free(pv.v);
    free(obuf);
    return ret;
}

int rf_exec_main(rf_chan_t *ch, const rf_exec_opts_t *o)
{
    return rf_exec_main_stats(ch, o, NULL);
}

long rf_exec_encode_request(uint8_t *out, size_t cap, const rf_php_param_t *params, size_t n,
                            const void *body, size_t body_len, rf_chan_req_t *req)
{
    size_t need = 0;

    for (size_t i = 0; i < n; i++) {
        if (params[i].name_len > 0x7fffffffu || params[i].value_len > 0x7fffffffu)
            return -E2BIG;
        need += rf_fcgi_nv_size((uint32_t)params[i].name_len, (uint32_t)params[i].value_len);
    }
    size_t plen = need;
    need += body_len;
    if (plen > UINT32_MAX || body_len > UINT32_MAX || need > (size_t)0x7fffffff)
        return -E2BIG;
    if (!out)
        return (long)need;
    if (cap < need)
        return -E2BIG;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        int w =
            rf_fcgi_nv_encode(out + pos, cap - pos, params[i].name, (uint32_t)params[i].name_len,
                              params[i].value, (uint32_t)params[i].value_len);
        if (w < 0)
            return w;
        pos += (size_t)w;
    }
    if (body_len)
        memcpy(out + pos, body, body_len);
    if (req) {
        req->flags = 0;
        req->params_len = (uint32_t)plen;
        req->body_len = (uint32_t)body_len;
    }
    return (long)need;
}
