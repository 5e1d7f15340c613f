/*
 * rf-null: the null responder, the ceiling every ringfpm benchmark is measured
 * against. A minimal single-threaded epoll FastCGI responder that answers each
 * request, as soon as its empty STDIN record arrives, with a fixed "Hello,
 * World!" STDOUT record and END_REQUEST(0, REQUEST_COMPLETE) — the same record
 * sequence php-fpm sends (no empty STDOUT record). It runs no PHP and copies
 * nothing it does not have to: one 64 KiB read, every record in it parsed, all
 * the responses of that read gathered into one write. What it does not do
 * (limits, timeouts, fairness between connections beyond one read each per
 * wakeup) is what makes it a ceiling rather than a server.
 */
#include "rf_assert.h"
#include "rf_fcgi.h"
#include "rf_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define RN_READ_BUF 65536
/*
 * The batch of one read's responses. 64 KiB of the smallest requests
 * (BEGIN_REQUEST + empty STDIN, 24 bytes) make 2730 responses of 80 bytes;
 * anything beyond the batch spills into the connection's own buffer.
 */
#define RN_BATCH_CAP  (256 * 1024)
#define RN_MAX_EVENTS 256

#define RN_CONN_MAGIC   0x726e636fu /* "rnco" */
#define RN_LISTEN_MAGIC 0x726e6c69u /* "rnli" */

static const char rn_body[] = "Content-type: text/html; charset=UTF-8\r\n\r\nHello, World!";

/* One request between BEGIN_REQUEST and its empty STDIN record. */
typedef struct rn_req {
    uint16_t id;
    uint8_t keep;
} rn_req_t;

/*
 * One accepted connection, reached through epoll's data.ptr. `out` holds the
 * part of the responses the socket did not take; while it is non-empty the
 * connection reads nothing (backpressure) and waits for EPOLLOUT.
 */
typedef struct rn_conn {
    uint32_t magic;
    int fd;
    rf_fcgi_parser_t parser;
    rn_req_t *reqs; /* active requests, unordered */
    uint32_t nreqs;
    uint32_t reqs_cap;
    uint8_t *out;
    size_t out_len;
    size_t out_off;
    size_t out_cap;
    uint8_t *gv; /* GET_VALUES content gathered across reads */
    uint32_t gv_len;
    uint8_t close_after_flush;
    uint8_t dead;
    uint8_t want_out;            /* EPOLLOUT registered */
    struct rn_conn *prev, *next; /* all connections, to free them at exit */
} rn_conn_t;

typedef struct rn_listener {
    uint32_t magic;
    int fd;
} rn_listener_t;

static uint8_t rn_rbuf[RN_READ_BUF];
static uint8_t rn_batch[RN_BATCH_CAP];
static size_t rn_batch_len;

/* The response for id 1: STDOUT record then END_REQUEST; ids patched per use. */
static uint8_t rn_resp[128];
static size_t rn_resp_len;
static size_t rn_resp_end_off; /* offset of the END_REQUEST header */

static volatile sig_atomic_t rn_stop;
static int rn_epfd;
static int rn_spare_fd = -1;
static uint64_t rn_nconns, rn_nreqs, rn_nerrors;
static rn_conn_t *rn_conns;

static void rn_on_signal(int sig)
{
    (void)sig;
    rn_stop = 1;
}

static void rn_build_response(void)
{
    size_t len = sizeof(rn_body) - 1;
    long n = rf_fcgi_stream_encode(rn_resp, sizeof(rn_resp), RF_FCGI_STDOUT, 1, rn_body, len);
    RF_ASSERT(n > 0 && (size_t)n + RF_FCGI_END_REQUEST_LEN <= sizeof(rn_resp));
    rn_resp_end_off = (size_t)n;
    rf_fcgi_end_request(rn_resp + n, 1, 0, RF_FCGI_REQUEST_COMPLETE);
    rn_resp_len = (size_t)n + RF_FCGI_END_REQUEST_LEN;
}

static void rn_epoll_mod(rn_conn_t *c, int want_out)
{
    struct epoll_event ev = {.events = want_out ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    if (c->want_out == want_out)
        return;
    if (epoll_ctl(rn_epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        c->dead = 1;
        return;
    }
    c->want_out = (uint8_t)want_out;
}

static void rn_out_append(rn_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->out_off > 0 && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 4096;
            while (cap < c->out_len + n)
                cap *= 2;
            uint8_t *o = rf_realloc(c->out, cap);
            RF_ASSERT(o != NULL);
            c->out = o;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

/* Write the batch to c; whatever the socket does not take moves to c->out. */
static void rn_flush_batch(rn_conn_t *c)
{
    size_t off = 0;
    while (off < rn_batch_len && !c->dead) {
        ssize_t w = write(c->fd, rn_batch + off, rn_batch_len - off);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            rn_out_append(c, rn_batch + off, rn_batch_len - off);
            rn_epoll_mod(c, 1);
            break;
        } else {
            c->dead = 1;
        }
    }
    rn_batch_len = 0;
}

/* Queue n bytes for c, keeping order with anything already pending. */
static void rn_emit(rn_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->out_len == c->out_off) {
        if (rn_batch_len + n > RN_BATCH_CAP)
            rn_flush_batch(c);
        if (c->out_len == c->out_off && n <= RN_BATCH_CAP - rn_batch_len) {
            memcpy(rn_batch + rn_batch_len, p, n);
            rn_batch_len += n;
            return;
        }
    }
    rn_out_append(c, p, n);
}

static void rn_emit_response(rn_conn_t *c, uint16_t id)
{
    uint8_t hi = (uint8_t)(id >> 8), lo = (uint8_t)id;
    uint8_t *dst;

    if (c->out_len == c->out_off && rn_batch_len + rn_resp_len > RN_BATCH_CAP)
        rn_flush_batch(c);
    if (c->out_len == c->out_off && rn_batch_len + rn_resp_len <= RN_BATCH_CAP) {
        dst = rn_batch + rn_batch_len;
        rn_batch_len += rn_resp_len;
        memcpy(dst, rn_resp, rn_resp_len);
    } else {
        rn_out_append(c, rn_resp, rn_resp_len);
        dst = c->out + c->out_len - rn_resp_len;
    }
    dst[2] = hi;
    dst[3] = lo;
    dst[rn_resp_end_off + 2] = hi;
    dst[rn_resp_end_off + 3] = lo;
    rn_nreqs++;
}

static rn_req_t *rn_req_find(rn_conn_t *c, uint16_t id)
{
    for (uint32_t i = 0; i < c->nreqs; i++)
        if (c->reqs[i].id == id)
            return &c->reqs[i];
    return NULL;
}

static void rn_req_remove(rn_conn_t *c, rn_req_t *r)
{
    *r = c->reqs[--c->nreqs];
}

static void rn_req_begin(rn_conn_t *c, uint16_t id, uint8_t keep)
{
    rn_req_t *r = rn_req_find(c, id);
    if (r == NULL) {
        if (c->nreqs == c->reqs_cap) {
            uint32_t cap = c->reqs_cap ? c->reqs_cap * 2 : 4;
            rn_req_t *n = rf_realloc(c->reqs, cap * sizeof(*n));
            RF_ASSERT(n != NULL);
            c->reqs = n;
            c->reqs_cap = cap;
        }
        r = &c->reqs[c->nreqs++];
    }
    r->id = id;
    r->keep = keep;
}

static void rn_get_values(rn_conn_t *c, const uint8_t *q, size_t qlen)
{
    uint8_t out[RF_FCGI_HEADER_LEN + 128];
    long n = rf_fcgi_get_values_result(out, sizeof(out), q, qlen, 65535, 65535, 1);
    if (n < 0) {
        c->dead = 1;
        return;
    }
    rn_emit(c, out, (size_t)n);
}

static void rn_on_event(rn_conn_t *c, const rf_fcgi_event_t *ev)
{
    switch (ev->type) {
    case RF_FCGI_BEGIN_REQUEST: {
        uint16_t role = rf_fcgi_begin_role(ev->data);
        uint8_t keep = rf_fcgi_begin_flags(ev->data) & RF_FCGI_KEEP_CONN;
        if (role < RF_FCGI_RESPONDER || role > RF_FCGI_FILTER) {
            uint8_t end[RF_FCGI_END_REQUEST_LEN];
            rf_fcgi_end_request(end, ev->id, 0, RF_FCGI_UNKNOWN_ROLE);
            rn_emit(c, end, sizeof(end));
            if (!keep)
                c->close_after_flush = 1;
            return;
        }
        rn_req_begin(c, ev->id, keep);
        return;
    }
    case RF_FCGI_STDIN:
        if (ev->content_len == 0) {
            rn_req_t *r = rn_req_find(c, ev->id);
            if (r == NULL)
                return; /* a stray end of stream: nothing to answer */
            if (!r->keep)
                c->close_after_flush = 1;
            rn_req_remove(c, r);
            rn_emit_response(c, ev->id);
        }
        return;
    case RF_FCGI_ABORT_REQUEST: {
        rn_req_t *r = rn_req_find(c, ev->id);
        if (r != NULL) {
            uint8_t end[RF_FCGI_END_REQUEST_LEN];
            if (!r->keep)
                c->close_after_flush = 1;
            rn_req_remove(c, r);
            rf_fcgi_end_request(end, ev->id, 0, RF_FCGI_REQUEST_COMPLETE);
            rn_emit(c, end, sizeof(end));
        }
        return;
    }
    case RF_FCGI_PARAMS:
    case RF_FCGI_DATA:
        return;
    case RF_FCGI_GET_VALUES:
        if (ev->first && ev->last) {
            rn_get_values(c, ev->data, ev->len);
            return;
        }
        if (ev->first) {
            rf_free(c->gv);
            c->gv = rf_malloc(ev->content_len);
            RF_ASSERT(c->gv != NULL);
            c->gv_len = 0;
        }
        memcpy(c->gv + c->gv_len, ev->data, ev->len);
        c->gv_len += ev->len;
        if (ev->last) {
            rn_get_values(c, c->gv, c->gv_len);
            rf_free(c->gv);
            c->gv = NULL;
        }
        return;
    default:
        /* Management records of unknown type get UNKNOWN_TYPE; others are ignored. */
        if (ev->id == 0 && ev->last) {
            uint8_t u[RF_FCGI_UNKNOWN_TYPE_LEN];
            rf_fcgi_unknown_type(u, ev->type);
            rn_emit(c, u, sizeof(u));
        }
        return;
    }
}

static void rn_conn_close(rn_conn_t *c)
{
    RF_ASSERT(c->magic == RN_CONN_MAGIC);
    if (c->prev)
        c->prev->next = c->next;
    else
        rn_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    close(c->fd);
    rf_free(c->reqs);
    rf_free(c->out);
    rf_free(c->gv);
    c->magic = 0;
    rf_free(c);
}

static void rn_on_readable(rn_conn_t *c)
{
    /* A full buffer means more may be waiting: read again, a few times at most. */
    for (int round = 0; round < 4; round++) {
        ssize_t n = read(c->fd, rn_rbuf, sizeof(rn_rbuf));
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
            if (n < 0)
                rn_nerrors++;
            c->dead = 1;
            return;
        }
        size_t off = 0;
        while (off < (size_t)n && !c->dead) {
            rf_fcgi_event_t ev;
            size_t used;
            int r = rf_fcgi_parse(&c->parser, rn_rbuf + off, (size_t)n - off, &used, &ev);
            off += used;
            if (r == 1)
                rn_on_event(c, &ev);
            else if (r == -EAGAIN)
                break;
            else {
                rn_nerrors++;
                c->dead = 1;
            }
        }
        if (rn_batch_len > 0 && !c->dead)
            rn_flush_batch(c);
        rn_batch_len = 0;
        if (c->dead || c->out_len > c->out_off || (size_t)n < sizeof(rn_rbuf))
            return;
        if (c->close_after_flush)
            return;
    }
}

static void rn_on_writable(rn_conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w > 0) {
            c->out_off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            return;
        } else {
            c->dead = 1;
            return;
        }
    }
    c->out_off = c->out_len = 0;
    if (c->out_cap > 64 * 1024) { /* do not keep a burst's buffer forever */
        rf_free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    rn_epoll_mod(c, 0);
}

static void rn_accept(rn_listener_t *l, int is_tcp)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && rn_spare_fd >= 0) {
                /* Out of fds: take the connection with the spare and drop it,
                 * so level-triggered epoll does not spin on the backlog. */
                close(rn_spare_fd);
                fd = accept(l->fd, NULL, NULL);
                if (fd >= 0)
                    close(fd);
                rn_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                rn_nerrors++;
                continue;
            }
            return;
        }
        if (is_tcp) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        rn_conn_t *c = rf_calloc(1, sizeof(*c));
        RF_ASSERT(c != NULL);
        c->magic = RN_CONN_MAGIC;
        c->fd = fd;
        c->next = rn_conns;
        if (rn_conns)
            rn_conns->prev = c;
        rn_conns = c;
        rf_fcgi_parser_init(&c->parser);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(rn_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            rn_conn_close(c);
            continue;
        }
        rn_nconns++;
    }
}

/* tcp:HOST:PORT, tcp:[V6]:PORT or unix:/path; returns the bound listening fd. */
static int rn_listen(const char *spec, int backlog, int *is_tcp)
{
    int fd;
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        const char *path = spec + 5;
        struct stat st;
        if (strlen(path) >= sizeof(sun.sun_path)) {
            fprintf(stderr, "rf-null: unix socket path too long: %s\n", path);
            return -1;
        }
        strcpy(sun.sun_path, path);
        if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            fprintf(stderr, "rf-null: bind %s: %s\n", path, strerror(errno));
            return -1;
        }
        *is_tcp = 0;
    } else if (strncmp(spec, "tcp:", 4) == 0) {
        char host[256];
        const char *hp = spec + 4, *port;
        size_t hl;
        if (*hp == '[') {
            const char *e = strchr(hp, ']');
            if (e == NULL || e[1] != ':')
                goto bad;
            hp++;
            hl = (size_t)(e - hp);
            port = e + 2;
        } else {
            const char *e = strrchr(hp, ':');
            if (e == NULL)
                goto bad;
            hl = (size_t)(e - hp);
            port = e + 1;
        }
        if (hl >= sizeof(host))
            goto bad;
        memcpy(host, hp, hl);
        host[hl] = '\0';
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
        int rc = getaddrinfo(host, port, &hints, &ai);
        if (rc != 0) {
            fprintf(stderr, "rf-null: %s: %s\n", spec, gai_strerror(rc));
            return -1;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            fprintf(stderr, "rf-null: bind %s: %s\n", spec, strerror(errno));
            freeaddrinfo(ai);
            return -1;
        }
        freeaddrinfo(ai);
        *is_tcp = 1;
    } else {
        goto bad;
    }
    if (listen(fd, backlog) < 0) {
        fprintf(stderr, "rf-null: listen %s: %s\n", spec, strerror(errno));
        return -1;
    }
    return fd;
bad:
    fprintf(stderr, "rf-null: bad --listen '%s' (tcp:HOST:PORT, tcp:[::1]:PORT, unix:/path)\n",
            spec);
    return -1;
}

static void rn_usage(FILE *f)
{
    fprintf(f, "usage: rf-null --listen tcp:HOST:PORT|tcp:[V6]:PORT|unix:/path [--backlog N]\n"
               "A minimal FastCGI responder answering every request with Hello, World!\n"
               "Stops on SIGINT/SIGTERM and prints its counters on stderr.\n");
}

int main(int argc, char **argv)
{
    const char *listen_spec = NULL;
    int backlog = 4096;
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"backlog", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "l:b:h", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            listen_spec = optarg;
            break;
        case 'b':
            backlog = atoi(optarg);
            if (backlog <= 0) {
                fprintf(stderr, "rf-null: --backlog must be > 0\n");
                return 2;
            }
            break;
        case 'h':
            rn_usage(stdout);
            return 0;
        default:
            rn_usage(stderr);
            return 2;
        }
    }
    if (listen_spec == NULL || optind != argc) {
        rn_usage(stderr);
        return 2;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = rn_on_signal}; /* no SA_RESTART: wake epoll_wait */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    rn_build_response();
    int is_tcp = 0;
    rn_listener_t l = {.magic = RN_LISTEN_MAGIC};
    l.fd = rn_listen(listen_spec, backlog, &is_tcp);
    if (l.fd < 0)
        return 1;
    rn_spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    rn_epfd = epoll_create1(EPOLL_CLOEXEC);
    RF_ASSERT(rn_epfd >= 0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &l};
    RF_ASSERT(epoll_ctl(rn_epfd, EPOLL_CTL_ADD, l.fd, &lev) == 0);
    fprintf(stderr, "rf-null: listening on %s\n", listen_spec);

    struct epoll_event evs[RN_MAX_EVENTS];
    while (!rn_stop) {
        int n = epoll_wait(rn_epfd, evs, RN_MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("rf-null: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            uint32_t magic = *(uint32_t *)evs[i].data.ptr;
            if (magic == RN_LISTEN_MAGIC) {
                rn_accept(evs[i].data.ptr, is_tcp);
                continue;
            }
            rn_conn_t *c = evs[i].data.ptr;
            RF_ASSERT(c->magic == RN_CONN_MAGIC);
            if (evs[i].events & EPOLLOUT)
                rn_on_writable(c);
            else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                rn_on_readable(c);
            if (!c->dead && c->close_after_flush && c->out_off == c->out_len)
                c->dead = 1;
            if (c->dead)
                rn_conn_close(c);
        }
    }
    fprintf(stderr, "rf-null: %llu connections, %llu responses, %llu errors\n",
            (unsigned long long)rn_nconns, (unsigned long long)rn_nreqs,
            (unsigned long long)rn_nerrors);
    while (rn_conns)
        rn_conn_close(rn_conns);
    close(l.fd);
    close(rn_epfd);
    if (rn_spare_fd >= 0)
        close(rn_spare_fd);
    if (strncmp(listen_spec, "unix:", 5) == 0)
        unlink(listen_spec + 5);
    return 0;
}
