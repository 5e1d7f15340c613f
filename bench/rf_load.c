/*
 * rf-load: a FastCGI load generator that plays the web server. It sends the
 * params nginx's stock fastcgi_params would send, over keep-alive connections
 * (optionally with several multiplexed request ids in flight on each), over a
 * new connection per request, or at a fixed open-loop rate, and measures
 * every request from its write to its END_REQUEST in a log-linear histogram.
 * Each thread owns an epoll instance and its connections outright, so the hot
 * path takes no lock and calls no malloc: requests are encoded once at start
 * (one copy per request id) and each is sent with one write. Everything is
 * bounded: by --duration or --requests, per-request --timeout, and a stall
 * watchdog, so a dead or wedged server ends the run with errors, not a hang.
 */
#include "rf_assert.h"
#include "rf_fcgi.h"
#include "rf_mem.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define RL_NS         1000000000ull
#define RL_MS         1000000ull
#define RL_READ_BUF   65536
#define RL_MAX_EVENTS 256
#define RL_SCAN_NS    (10 * RL_MS) /* timeout and retry timer granularity */
#define RL_CONN_MAGIC 0x726c636fu  /* "rlco" */

/* ---- histogram ----------------------------------------------------------- */

/*
 * Log-linear, HDR-like: values below 256 ns are exact, above that every
 * power of two is split into 128 sub-buckets (relative error < 0.8%), up to
 * 2^41 ns (~36 min). Fixed size, so recording never allocates.
 */
#define RL_H_SUB_BITS 7
#define RL_H_SUB      (1u << RL_H_SUB_BITS)
#define RL_H_LINEAR   (2u * RL_H_SUB)
#define RL_H_MAX_EXP  40
#define RL_H_BUCKETS  (RL_H_LINEAR + (RL_H_MAX_EXP - RL_H_SUB_BITS) * RL_H_SUB)
#define RL_H_CAP      (1ull << (RL_H_MAX_EXP + 1))

typedef struct rl_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint64_t b[RL_H_BUCKETS];
} rl_hist_t;

static unsigned rl_hist_index(uint64_t v)
{
    if (v < RL_H_LINEAR)
        return (unsigned)v;
    if (v >= RL_H_CAP)
        v = RL_H_CAP - 1;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = e - RL_H_SUB_BITS;
    unsigned top = (unsigned)(v >> shift);
    return RL_H_LINEAR + (e - RL_H_SUB_BITS - 1) * RL_H_SUB + (top - RL_H_SUB);
}

/* Highest value that lands in bucket idx. */
static uint64_t rl_hist_upper(unsigned idx)
{
    if (idx < RL_H_LINEAR)
        return idx;
    unsigned k = idx - RL_H_LINEAR;
    unsigned e = RL_H_SUB_BITS + 1 + k / RL_H_SUB;
    uint64_t top = RL_H_SUB + k % RL_H_SUB;
    return ((top + 1) << (e - RL_H_SUB_BITS)) - 1;
}

static void rl_hist_add(rl_hist_t *h, uint64_t v)
{
    h->b[rl_hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
    if (h->count == 1 || v < h->min)
        h->min = v;
}

static void rl_hist_merge(rl_hist_t *dst, const rl_hist_t *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < RL_H_BUCKETS; i++)
        dst->b[i] += src->b[i];
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
}

static uint64_t rl_hist_quantile(const rl_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)h->count);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < RL_H_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = rl_hist_upper(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---- configuration ------------------------------------------------------- */

enum rl_err {
    RL_ERR_CONNECT,
    RL_ERR_RESET,
    RL_ERR_PROTOCOL,
    RL_ERR_STATUS,
    RL_ERR_EXPECT,
    RL_ERR_TIMEOUT,
    RL_ERR_N,
};

static const char *const rl_err_names[RL_ERR_N] = {
    "connect", "reset", "protocol", "status", "expect", "timeout",
};

typedef struct rl_param {
    char *name;
    char *value;
} rl_param_t;

static struct {
    const char *target;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int family;
    int is_tcp;
    int connections;
    int depth;
    int threads;
    int new_conn;
    double duration;   /* 0: none */
    uint64_t requests; /* 0: none */
    double warmup;
    size_t body;
    const char *script;
    const char *uri;
    const char *expect;
    size_t expect_len;
    uint32_t *expect_fail; /* KMP failure table */
    int idle;
    double rate;
    int progress;
    int json;
    double timeout;
    uint64_t timeout_ns;
    rl_param_t *params;
    size_t nparams;
    /* The encoded request, one copy per request id 1..depth, read-only once built. */
    uint8_t **tmpl;
    size_t tmpl_len;
    /* The --idle connections' request: id 1, always with KEEP_CONN. */
    uint8_t *idle_tmpl;
    size_t idle_tmpl_len;
} g = {
    .connections = 4,
    .depth = 1,
    .threads = 1,
    .script = "/var/www/html/index.php",
    .uri = "/index.php",
    .timeout = 10.0,
};

static volatile sig_atomic_t rl_interrupted;

static uint64_t rl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * RL_NS + (uint64_t)ts.tv_nsec;
}

/* ---- connections and threads --------------------------------------------- */

enum rl_state {
    RL_C_CLOSED,     /* no socket; connects when kicked */
    RL_C_WAIT,       /* no socket; backing off until t_retry */
    RL_C_CONNECTING, /* non-blocking connect in progress */
    RL_C_OPEN,
};

/* One request id of a connection. */
typedef struct rl_slot {
    uint64_t t_start; /* ns: the write, or the intended send time under --rate */
    uint32_t kmp;     /* --expect match state across STDOUT pieces */
    uint8_t inflight;
    uint8_t matched;
    uint8_t measured; /* started after warmup: counts in the results */
} rl_slot_t;

struct rl_thread;

/*
 * A client connection, reached through epoll's data.ptr; owned by one thread.
 * `gen` changes whenever the socket is closed, so an event that was collected
 * for the previous socket is never applied to the new one.
 */
typedef struct rl_conn {
    uint32_t magic;
    int fd;
    uint32_t gen;
    uint8_t state;
    uint8_t wr_pending; /* request wr_id partly written, waiting for EPOLLOUT */
    uint8_t end_have;
    uint8_t idle_done; /* --idle setup: request finished (or failed) */
    uint8_t idle_bad;
    uint32_t ev_mask;
    struct rl_thread *th;
    rf_fcgi_parser_t parser;
    rl_slot_t *slots; /* depth entries, index id - 1 */
    uint16_t *ready;  /* ids free to send, a stack */
    int nready;
    int inflight;
    uint16_t wr_id;
    size_t wr_off;
    uint8_t end_buf[8]; /* END_REQUEST body gathered across reads */
    int64_t budget;     /* requests this connection may still start; -1 unlimited */
    uint64_t t_conn_start;
    uint64_t t_conn_first; /* first attempt of the current connect streak */
    uint64_t t_retry;
    uint64_t backoff_ns;
} rl_conn_t;

typedef struct rl_thread {
    int idx;
    int epfd;
    int idle_phase;
    uint8_t *const *tmpl; /* request bytes by id - 1 */
    size_t tmpl_len;
    rl_conn_t *conns;
    int nconns;
    int inflight;
    int connecting;
    int active; /* idle phase: connections not yet done */
    int stopping;
    int rate_blocked;
    int rr; /* round-robin cursor for --rate */
    uint64_t limit;
    uint64_t issued; /* measured requests started */
    double rate;
    uint64_t rate_t0;
    uint64_t rate_sent;
    uint64_t t_measure;
    uint64_t t_end;
    uint64_t t_drain;
    uint64_t t_next_scan;
    uint64_t t_next_retry;
    uint64_t t_last_done;
    uint64_t t_finish;
    uint64_t ok;
    uint64_t err[RL_ERR_N];
    uint64_t bytes_in;
    uint64_t connect_retries;
    uint64_t pub_ok; /* copies for the progress line, written relaxed */
    uint64_t pub_err;
    int done;
    pthread_t tid;
    rl_hist_t hist;
    uint8_t rbuf[RL_READ_BUF];
} rl_thread_t;

static void rl_conn_kick(rl_conn_t *c, uint64_t now);
static void rl_try_send(rl_conn_t *c);

static int rl_measuring(const rl_thread_t *th, uint64_t now)
{
    return !th->idle_phase && now >= th->t_measure;
}

static void rl_count_err(rl_thread_t *th, int kind)
{
    th->err[kind]++;
    __atomic_store_n(&th->pub_err, th->pub_err + 1, __ATOMIC_RELAXED);
}

static void rl_set_state(rl_conn_t *c, uint8_t s)
{
    if (c->state == RL_C_CONNECTING)
        c->th->connecting--;
    if (s == RL_C_CONNECTING)
        c->th->connecting++;
    c->state = s;
}

static void rl_epoll_update(rl_conn_t *c)
{
    uint32_t want;
    if (c->state == RL_C_CONNECTING)
        want = EPOLLOUT;
    else
        want = EPOLLIN | (c->wr_pending ? EPOLLOUT : 0);
    if (want == c->ev_mask)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    int rc = epoll_ctl(c->th->epfd, c->ev_mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev);
    RF_ASSERT(rc == 0);
    c->ev_mask = want;
}

static void rl_conn_close(rl_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->gen++;
    c->ev_mask = 0;
    c->wr_pending = 0;
    rl_set_state(c, RL_C_CLOSED);
}

/* Tokens the open-loop schedule has released and nobody has taken yet. */
static int64_t rl_tokens(const rl_thread_t *th, uint64_t now)
{
    if (now < th->rate_t0)
        return 0;
    double due = floor((double)(now - th->rate_t0) * th->rate / 1e9) + 1.0;
    return (int64_t)due - (int64_t)th->rate_sent;
}

static int rl_may_issue(rl_thread_t *th, const rl_conn_t *c, uint64_t now)
{
    if (th->stopping || rl_interrupted || c->budget == 0)
        return 0;
    if (th->limit && rl_measuring(th, now) && th->issued >= th->limit)
        return 0;
    if (th->rate > 0 && rl_tokens(th, now) <= 0)
        return 0;
    return 1;
}

static void rl_idle_finish(rl_conn_t *c, int bad)
{
    if (c->idle_done)
        return;
    c->idle_done = 1;
    c->idle_bad = (uint8_t)bad;
    c->budget = 0;
    c->th->active--;
    /* Nothing more is read on it until the final check. */
    if (c->fd >= 0 && c->ev_mask) {
        epoll_ctl(c->th->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        c->ev_mask = 0;
    }
}

static void rl_backoff(rl_conn_t *c, uint64_t now, uint64_t min_ns, uint64_t max_ns)
{
    rl_thread_t *th = c->th;
    c->backoff_ns = c->backoff_ns ? c->backoff_ns * 2 : min_ns;
    if (c->backoff_ns < min_ns)
        c->backoff_ns = min_ns;
    if (c->backoff_ns > max_ns)
        c->backoff_ns = max_ns;
    c->t_retry = now + c->backoff_ns;
    rl_set_state(c, RL_C_WAIT);
    if (c->t_retry < th->t_next_retry)
        th->t_next_retry = c->t_retry;
}

/*
 * The connection failed: count its lost requests as `kind`, close it and,
 * unless this is the --idle setup, connect again (at once, or after a backoff
 * for connect failures).
 */
static void rl_conn_fail(rl_conn_t *c, int kind, uint64_t now)
{
    rl_thread_t *th = c->th;
    int had = c->inflight;

    for (int i = 0; i < g.depth && c->inflight > 0; i++) {
        rl_slot_t *s = &c->slots[i];
        if (!s->inflight)
            continue;
        s->inflight = 0;
        c->inflight--;
        th->inflight--;
        if (s->measured && !th->idle_phase)
            rl_count_err(th, kind);
    }
    RF_ASSERT(c->inflight == 0);
    if (kind == RL_ERR_CONNECT && rl_measuring(th, now))
        rl_count_err(th, kind);
    else if (had == 0 && kind != RL_ERR_CONNECT && !th->stopping && rl_measuring(th, now))
        rl_count_err(th, kind); /* e.g. the peer closed an idle keep-alive connection */
    rl_conn_close(c);
    if (th->idle_phase) {
        rl_idle_finish(c, 1);
        return;
    }
    if (kind == RL_ERR_CONNECT) {
        rl_backoff(c, now, 10 * RL_MS, RL_NS);
        return;
    }
    /* Reconnect from the loop's next turn, not from here: a failure found
     * while sending on a fresh connection must not recurse. */
    c->t_retry = now;
    rl_set_state(c, RL_C_WAIT);
    th->t_next_retry = now;
}

static void rl_conn_opened(rl_conn_t *c, uint64_t now)
{
    rl_set_state(c, RL_C_OPEN);
    c->backoff_ns = 0;
    c->t_conn_first = 0;
    rf_fcgi_parser_init(&c->parser);
    c->nready = 0;
    for (int id = g.depth; id >= 1; id--)
        c->ready[c->nready++] = (uint16_t)id;
    c->inflight = 0;
    c->wr_pending = 0;
    c->end_have = 0;
    c->th->rate_blocked = 0;
    rl_epoll_update(c);
    rl_try_send(c);
}

static void rl_conn_start(rl_conn_t *c, uint64_t now)
{
    rl_thread_t *th = c->th;
    RF_ASSERT(c->fd < 0);
    if (c->t_conn_first == 0)
        c->t_conn_first = now;
    int fd = socket(g.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rl_conn_fail(c, RL_ERR_CONNECT, now);
        return;
    }
    if (g.is_tcp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    int rc = connect(fd, (struct sockaddr *)&g.addr, g.addrlen);
    if (rc == 0 || errno == EINPROGRESS) {
        c->fd = fd;
        c->t_conn_start = now;
        rl_set_state(c, rc == 0 ? RL_C_OPEN : RL_C_CONNECTING);
        if (rc == 0)
            rl_conn_opened(c, now);
        else
            rl_epoll_update(c);
        return;
    }
    int e = errno;
    close(fd);
    if (e == EAGAIN && now - c->t_conn_first < g.timeout_ns) {
        /* A unix socket's backlog is full: the server is behind, try again soon. */
        th->connect_retries++;
        rl_backoff(c, now, RL_MS, 100 * RL_MS);
        return;
    }
    c->t_conn_first = 0;
    rl_conn_fail(c, RL_ERR_CONNECT, now);
}

static void rl_conn_kick(rl_conn_t *c, uint64_t now)
{
    rl_thread_t *th = c->th;
    if (c->state == RL_C_OPEN) {
        rl_try_send(c);
        return;
    }
    if (c->state != RL_C_CLOSED || th->stopping || rl_interrupted || c->budget == 0)
        return;
    if (g.new_conn) {
        /* A new connection is a request about to start: it needs a token. */
        if (!rl_may_issue(th, c, now))
            return;
        if (th->rate > 0 && rl_tokens(th, now) <= th->connecting)
            return;
    }
    rl_conn_start(c, now);
}

/* Continue writing request wr_id. Returns -1 if the connection failed. */
static int rl_write_pending(rl_conn_t *c)
{
    const uint8_t *p = c->th->tmpl[c->wr_id - 1];
    size_t len = c->th->tmpl_len;
    while (c->wr_off < len) {
        ssize_t w = write(c->fd, p + c->wr_off, len - c->wr_off);
        if (w > 0) {
            c->wr_off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            c->wr_pending = 1;
            rl_epoll_update(c);
            return 0;
        } else {
            rl_conn_fail(c, RL_ERR_RESET, rl_now());
            return -1;
        }
    }
    if (c->wr_pending) {
        c->wr_pending = 0;
        rl_epoll_update(c);
    }
    return 0;
}

/* Start as many requests on c as its free ids, the schedule and limits allow. */
static void rl_try_send(rl_conn_t *c)
{
    rl_thread_t *th = c->th;
    while (c->state == RL_C_OPEN && !c->wr_pending && c->nready > 0) {
        uint64_t now = rl_now();
        if (!rl_may_issue(th, c, now))
            return;
        uint16_t id = c->ready[--c->nready];
        rl_slot_t *s = &c->slots[id - 1];
        uint64_t start = now;
        if (th->rate > 0) {
            /* Open loop: latency runs from when the request was due, so a
             * server that falls behind cannot hide it (coordinated omission). */
            start = th->rate_t0 + (uint64_t)((double)th->rate_sent * 1e9 / th->rate);
            th->rate_sent++;
        }
        RF_ASSERT(!s->inflight);
        s->t_start = start;
        s->kmp = 0;
        s->matched = 0;
        s->inflight = 1;
        s->measured = (uint8_t)(start >= th->t_measure);
        if (s->measured && !th->idle_phase)
            th->issued++;
        if (c->budget > 0)
            c->budget--;
        c->inflight++;
        th->inflight++;
        c->wr_id = id;
        c->wr_off = 0;
        if (rl_write_pending(c) < 0)
            return;
    }
}

static void rl_expect_feed(rl_slot_t *s, const uint8_t *p, size_t n)
{
    uint32_t k = s->kmp;
    const char *pat = g.expect;
    for (size_t i = 0; i < n; i++) {
        while (k > 0 && (uint8_t)pat[k] != p[i])
            k = g.expect_fail[k - 1];
        if ((uint8_t)pat[k] == p[i])
            k++;
        if (k == g.expect_len) {
            s->matched = 1;
            return;
        }
    }
    s->kmp = k;
}

static rl_slot_t *rl_slot_get(rl_conn_t *c, uint16_t id)
{
    if (id == 0 || id > g.depth || !c->slots[id - 1].inflight)
        return NULL;
    return &c->slots[id - 1];
}

enum { RL_EV_MORE, RL_EV_FAILED, RL_EV_REOPEN, RL_EV_IDLE_DONE };

static int rl_on_event(rl_conn_t *c, const rf_fcgi_event_t *ev, uint64_t now)
{
    rl_thread_t *th = c->th;
    rl_slot_t *s;

    switch (ev->type) {
    case RF_FCGI_STDOUT:
        s = rl_slot_get(c, ev->id);
        if (s == NULL)
            break;
        if (s->measured)
            th->bytes_in += ev->len;
        if (g.expect_len && !s->matched)
            rl_expect_feed(s, ev->data, ev->len);
        return RL_EV_MORE;
    case RF_FCGI_STDERR:
        if (rl_slot_get(c, ev->id) == NULL)
            break;
        return RL_EV_MORE;
    case RF_FCGI_END_REQUEST: {
        if (ev->content_len != 8)
            break;
        if (ev->first)
            c->end_have = 0;
        RF_ASSERT(c->end_have + ev->len <= sizeof(c->end_buf));
        memcpy(c->end_buf + c->end_have, ev->data, ev->len);
        c->end_have = (uint8_t)(c->end_have + ev->len);
        if (!ev->last)
            return RL_EV_MORE;
        s = rl_slot_get(c, ev->id);
        if (s == NULL)
            break;
        uint8_t status = c->end_buf[4];
        int bad = status != RF_FCGI_REQUEST_COMPLETE || (g.expect_len && !s->matched);
        if (s->measured && !th->idle_phase) {
            rl_hist_add(&th->hist, now > s->t_start ? now - s->t_start : 0);
            if (status != RF_FCGI_REQUEST_COMPLETE)
                rl_count_err(th, RL_ERR_STATUS);
            else if (bad)
                rl_count_err(th, RL_ERR_EXPECT);
            else
                __atomic_store_n(&th->pub_ok, ++th->ok, __ATOMIC_RELAXED);
        }
        s->inflight = 0;
        c->inflight--;
        th->inflight--;
        th->t_last_done = now;
        th->rate_blocked = 0;
        if (th->idle_phase) {
            rl_idle_finish(c, bad);
            return RL_EV_IDLE_DONE;
        }
        if (g.new_conn)
            return RL_EV_REOPEN;
        c->ready[c->nready++] = ev->id;
        return RL_EV_MORE;
    }
    case RF_FCGI_GET_VALUES_RESULT:
    case RF_FCGI_UNKNOWN_TYPE:
        return RL_EV_MORE;
    default:
        break;
    }
    rl_conn_fail(c, RL_ERR_PROTOCOL, now);
    return RL_EV_FAILED;
}

static void rl_on_readable(rl_conn_t *c)
{
    rl_thread_t *th = c->th;
    for (;;) {
        ssize_t n = read(c->fd, th->rbuf, sizeof(th->rbuf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        uint64_t now = rl_now();
        if (n <= 0) {
            rl_conn_fail(c, RL_ERR_RESET, now);
            return;
        }
        size_t off = 0;
        while (off < (size_t)n) {
            rf_fcgi_event_t ev;
            size_t used;
            int r = rf_fcgi_parse(&c->parser, th->rbuf + off, (size_t)n - off, &used, &ev);
            off += used;
            if (r == -EAGAIN)
                break;
            if (r < 0) {
                rl_conn_fail(c, RL_ERR_PROTOCOL, now);
                return;
            }
            switch (rl_on_event(c, &ev, now)) {
            case RL_EV_MORE:
                continue;
            case RL_EV_REOPEN:
                rl_conn_close(c);
                rl_conn_kick(c, now);
                return;
            default:
                return;
            }
        }
        if ((size_t)n < sizeof(th->rbuf))
            break;
    }
    rl_try_send(c);
}

static void rl_on_writable(rl_conn_t *c, uint64_t now)
{
    if (c->state == RL_C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err == 0) {
            rl_conn_opened(c, now);
        } else {
            c->t_conn_first = 0;
            rl_conn_fail(c, RL_ERR_CONNECT, now);
        }
        return;
    }
    if (c->state == RL_C_OPEN && c->wr_pending) {
        if (rl_write_pending(c) == 0 && !c->wr_pending)
            rl_try_send(c);
    }
}

/* Timers: backoffs that expired, connects and requests that took too long. */
static void rl_scan(rl_thread_t *th, uint64_t now)
{
    uint64_t next_retry = UINT64_MAX;
    for (int i = 0; i < th->nconns; i++) {
        rl_conn_t *c = &th->conns[i];
        switch (c->state) {
        case RL_C_WAIT:
            if (now >= c->t_retry) {
                rl_set_state(c, RL_C_CLOSED);
                rl_conn_kick(c, now);
            }
            break;
        case RL_C_CONNECTING:
            if (now - c->t_conn_start > g.timeout_ns) {
                c->t_conn_first = 0;
                rl_conn_fail(c, RL_ERR_CONNECT, now);
            }
            break;
        case RL_C_OPEN:
            for (int d = 0; d < g.depth && c->inflight > 0; d++) {
                const rl_slot_t *s = &c->slots[d];
                if (s->inflight && now > s->t_start && now - s->t_start > g.timeout_ns) {
                    rl_conn_fail(c, RL_ERR_TIMEOUT, now);
                    break;
                }
            }
            break;
        default:
            break;
        }
        if (c->state == RL_C_WAIT && c->t_retry < next_retry)
            next_retry = c->t_retry;
    }
    th->t_next_retry = next_retry;
}

/* Under --rate: hand released tokens to connections with a free id. */
static void rl_rate_pass(rl_thread_t *th, uint64_t now)
{
    for (int k = 0; k < th->nconns && rl_tokens(th, now) > 0; k++) {
        rl_conn_t *c = &th->conns[th->rr];
        th->rr = (th->rr + 1) % th->nconns;
        rl_conn_kick(c, now);
    }
    th->rate_blocked = rl_tokens(th, now) > 0;
}

static void rl_stop(rl_thread_t *th, uint64_t now, uint64_t drain_ns)
{
    th->stopping = 1;
    th->t_drain = now + drain_ns;
}

/*
 * epoll_pwait2 for a nanosecond timeout (open-loop sends are spaced by
 * microseconds); epoll_wait, rounded up to a millisecond, where the kernel
 * (< 5.11) or valgrind does not have it.
 */
static int rl_epoll_wait(int epfd, struct epoll_event *evs, uint64_t wait_ns)
{
    static int no_pwait2;
    if (!__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
        struct timespec ts = {.tv_sec = (time_t)(wait_ns / RL_NS),
                              .tv_nsec = (long)(wait_ns % RL_NS)};
        int n = epoll_pwait2(epfd, evs, RL_MAX_EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        __atomic_store_n(&no_pwait2, 1, __ATOMIC_RELAXED);
    }
    uint64_t ms = (wait_ns + RL_MS - 1) / RL_MS;
    return epoll_wait(epfd, evs, RL_MAX_EVENTS, ms > INT32_MAX ? INT32_MAX : (int)ms);
}

static void *rl_thread_main(void *arg)
{
    rl_thread_t *th = arg;
    struct epoll_event evs[RL_MAX_EVENTS];
    uint64_t now = rl_now();

    /* Under --rate latency counts from the due time: the default 50 us timer
     * slack on the wakeup would be measured as server latency. */
    if (th->rate > 0)
        prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    th->t_last_done = now;
    th->t_next_retry = UINT64_MAX;
    th->t_next_scan = now + RL_SCAN_NS;
    for (int i = 0; i < th->nconns; i++)
        rl_conn_kick(&th->conns[i], now);

    for (;;) {
        now = rl_now();
        if (!th->stopping) {
            if (rl_interrupted)
                rl_stop(th, now, 0);
            else if (th->t_end && now >= th->t_end)
                rl_stop(th, now, g.timeout_ns);
            else if (th->limit && rl_measuring(th, now) && th->issued >= th->limit)
                rl_stop(th, now, g.timeout_ns);
            else if (th->idle_phase && th->active == 0)
                rl_stop(th, now, 0);
            else if (!th->t_end && now - th->t_last_done > g.timeout_ns + RL_NS) {
                fprintf(stderr, "rf-load: thread %d: no response for %.1f s, giving up\n", th->idx,
                        (double)(now - th->t_last_done) / 1e9);
                rl_stop(th, now, 0);
            }
        }
        if (th->stopping && (th->inflight == 0 || now >= th->t_drain))
            break;
        if (now >= th->t_next_scan || now >= th->t_next_retry) {
            rl_scan(th, now);
            th->t_next_scan = now + RL_SCAN_NS;
        }
        if (th->rate > 0 && !th->stopping && !th->rate_blocked)
            rl_rate_pass(th, now);

        uint64_t wake = th->t_next_scan;
        if (th->t_next_retry < wake)
            wake = th->t_next_retry;
        if (!th->stopping && th->t_end && th->t_end < wake)
            wake = th->t_end;
        if (th->stopping && th->t_drain < wake)
            wake = th->t_drain;
        if (th->rate > 0 && !th->stopping && !th->rate_blocked) {
            uint64_t due = th->rate_t0 + (uint64_t)((double)th->rate_sent * 1e9 / th->rate);
            if (due < wake)
                wake = due;
        }
        now = rl_now();
        uint64_t wait_ns = wake > now ? wake - now : 0;
        int n = rl_epoll_wait(th->epfd, evs, wait_ns);
        if (n < 0) {
            RF_ASSERT(errno == EINTR);
            continue;
        }
        now = rl_now();
        for (int i = 0; i < n; i++) {
            rl_conn_t *c = evs[i].data.ptr;
            RF_ASSERT(c->magic == RL_CONN_MAGIC);
            uint32_t gen = c->gen;
            uint32_t e = evs[i].events;
            if (c->state == RL_C_OPEN && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                rl_on_readable(c);
            if (c->gen == gen && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                rl_on_writable(c, now);
        }
    }

    now = rl_now();
    th->t_finish = now;
    for (int i = 0; i < th->nconns; i++) {
        rl_conn_t *c = &th->conns[i];
        if (c->inflight > 0 && !th->idle_phase) {
            for (int d = 0; d < g.depth; d++)
                if (c->slots[d].inflight && c->slots[d].measured)
                    rl_count_err(th, RL_ERR_TIMEOUT);
        }
        if (th->idle_phase && c->idle_done && !c->idle_bad)
            continue; /* stays open: checked at the end of the run */
        if (th->idle_phase && !c->idle_done) {
            th->active--;
            c->idle_done = 1;
            c->idle_bad = 1;
        }
        rl_conn_close(c);
    }
    __atomic_store_n(&th->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void rl_thread_setup(rl_thread_t *th, int idx, int nconns)
{
    th->idx = idx;
    th->tmpl = g.tmpl;
    th->tmpl_len = g.tmpl_len;
    th->epfd = epoll_create1(EPOLL_CLOEXEC);
    RF_ASSERT(th->epfd >= 0);
    th->nconns = nconns;
    th->conns = rf_calloc((size_t)nconns, sizeof(rl_conn_t));
    RF_ASSERT(th->conns != NULL);
    for (int i = 0; i < nconns; i++) {
        rl_conn_t *c = &th->conns[i];
        c->magic = RL_CONN_MAGIC;
        c->fd = -1;
        c->th = th;
        c->budget = -1;
        c->slots = rf_calloc((size_t)g.depth, sizeof(rl_slot_t));
        c->ready = rf_calloc((size_t)g.depth, sizeof(uint16_t));
        RF_ASSERT(c->slots != NULL && c->ready != NULL);
    }
}

static void rl_thread_free(rl_thread_t *th)
{
    for (int i = 0; i < th->nconns; i++) {
        rl_conn_t *c = &th->conns[i];
        if (c->fd >= 0)
            close(c->fd);
        rf_free(c->slots);
        rf_free(c->ready);
        c->magic = 0;
    }
    rf_free(th->conns);
    if (th->epfd >= 0)
        close(th->epfd);
}

/* ---- the request -------------------------------------------------------- */

static char *rl_strdup(const char *s, size_t n)
{
    char *d = rf_malloc(n + 1);
    RF_ASSERT(d != NULL);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Set a param, replacing one of the same name so --param overrides a default. */
static void rl_param_set(const char *name, size_t nlen, const char *value)
{
    for (size_t i = 0; i < g.nparams; i++) {
        if (strlen(g.params[i].name) == nlen && memcmp(g.params[i].name, name, nlen) == 0) {
            rf_free(g.params[i].value);
            g.params[i].value = rl_strdup(value, strlen(value));
            return;
        }
    }
    rl_param_t *p = rf_realloc(g.params, (g.nparams + 1) * sizeof(*p));
    RF_ASSERT(p != NULL);
    g.params = p;
    g.params[g.nparams].name = rl_strdup(name, nlen);
    g.params[g.nparams].value = rl_strdup(value, strlen(value));
    g.nparams++;
}

/* What nginx sends with the stock fastcgi.conf (+ PATH_INFO) and a browser's headers. */
static void rl_default_params(void)
{
    const char *q = strchr(g.uri, '?');
    size_t plen = q ? (size_t)(q - g.uri) : strlen(g.uri);
    char *path = rl_strdup(g.uri, plen);
    size_t slen = strlen(g.script);
    char *docroot;
    if (slen > plen && strcmp(g.script + slen - plen, path) == 0) {
        docroot = rl_strdup(g.script, slen - plen);
    } else {
        const char *slash = strrchr(g.script, '/');
        docroot = rl_strdup(g.script, slash && slash != g.script ? (size_t)(slash - g.script) : 1);
    }
    char clen[32] = "";
    if (g.body > 0)
        snprintf(clen, sizeof(clen), "%zu", g.body);

    static const char *const fixed[][2] = {
        {"SERVER_PROTOCOL", "HTTP/1.1"},
        {"REQUEST_SCHEME", "http"},
        {"GATEWAY_INTERFACE", "CGI/1.1"},
        {"SERVER_SOFTWARE", "nginx/1.22.1"},
        {"REMOTE_ADDR", "127.0.0.1"},
        {"REMOTE_PORT", "51234"},
        {"SERVER_ADDR", "127.0.0.1"},
        {"SERVER_PORT", "80"},
        {"SERVER_NAME", "localhost"},
        {"REDIRECT_STATUS", "200"},
        {"PATH_INFO", ""},
        {"HTTP_HOST", "localhost"},
        {"HTTP_USER_AGENT",
         "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
        {"HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
        {"HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"},
        {"HTTP_ACCEPT_ENCODING", "gzip, deflate"},
    };
    const char *var[][2] = {
        {"SCRIPT_FILENAME", g.script},
        {"QUERY_STRING", q ? q + 1 : ""},
        {"REQUEST_METHOD", g.body > 0 ? "POST" : "GET"},
        {"CONTENT_TYPE", g.body > 0 ? "application/octet-stream" : ""},
        {"CONTENT_LENGTH", clen},
        {"SCRIPT_NAME", path},
        {"REQUEST_URI", g.uri},
        {"DOCUMENT_URI", path},
        {"DOCUMENT_ROOT", docroot},
    };
    /* Defaults go first; --param values given earlier are kept (they override). */
    rl_param_t *user = g.params;
    size_t nuser = g.nparams;
    g.params = NULL;
    g.nparams = 0;
    for (size_t i = 0; i < RF_ARRAY_SIZE(var); i++)
        rl_param_set(var[i][0], strlen(var[i][0]), var[i][1]);
    for (size_t i = 0; i < RF_ARRAY_SIZE(fixed); i++)
        rl_param_set(fixed[i][0], strlen(fixed[i][0]), fixed[i][1]);
    for (size_t i = 0; i < nuser; i++) {
        rl_param_set(user[i].name, strlen(user[i].name), user[i].value);
        rf_free(user[i].name);
        rf_free(user[i].value);
    }
    rf_free(user);
    rf_free(path);
    rf_free(docroot);
}

/* True if the encoded records in [p, p+len) end with an empty STDIN record. */
static int rl_ends_with_empty_stdin(const uint8_t *p, size_t len)
{
    rf_fcgi_parser_t ps;
    rf_fcgi_event_t ev, last = {0};
    size_t off = 0, used;
    rf_fcgi_parser_init(&ps);
    while (off < len) {
        int r = rf_fcgi_parse(&ps, p + off, len - off, &used, &ev);
        off += used;
        if (r == 1)
            last = ev;
        else
            RF_ASSERT(r == -EAGAIN && off == len);
    }
    RF_ASSERT(rf_fcgi_parser_idle(&ps));
    return last.type == RF_FCGI_STDIN && last.content_len == 0;
}

/* Encode the whole request for one id: BEGIN, PARAMS..., empty PARAMS, STDIN..., empty STDIN. */
static int rl_encode_request(uint16_t id, int keep, const uint8_t *body, uint8_t **out,
                             size_t *out_len)
{
    size_t pairs = 0;
    for (size_t i = 0; i < g.nparams; i++) {
        size_t n = rf_fcgi_nv_size((uint32_t)strlen(g.params[i].name),
                                   (uint32_t)strlen(g.params[i].value));
        if (n > RF_FCGI_CHUNK) {
            fprintf(stderr, "rf-load: param %s is too long for one record\n", g.params[i].name);
            return -E2BIG;
        }
        pairs += n;
    }
    /* Worst case: one record per pair. */
    size_t cap = 16 + pairs + g.nparams * 16 + 8 + g.body + rf_fcgi_stream_overhead(g.body) + 8;
    uint8_t *buf = rf_malloc(cap);
    RF_ASSERT(buf != NULL);
    size_t off = 0;

    rf_fcgi_header(buf, RF_FCGI_BEGIN_REQUEST, id, 8, 0);
    memset(buf + 8, 0, 8);
    buf[9] = RF_FCGI_RESPONDER;
    buf[10] = keep ? RF_FCGI_KEEP_CONN : 0;
    off = 16;

    /* PARAMS records filled up to RF_FCGI_CHUNK, never splitting a pair (php-fpm rejects that). */
    size_t i = 0;
    while (i < g.nparams) {
        size_t rec = off;
        size_t clen = 0;
        off += RF_FCGI_HEADER_LEN;
        while (i < g.nparams) {
            const char *nm = g.params[i].name, *v = g.params[i].value;
            uint32_t nl = (uint32_t)strlen(nm), vl = (uint32_t)strlen(v);
            if (clen + rf_fcgi_nv_size(nl, vl) > RF_FCGI_CHUNK)
                break;
            int n = rf_fcgi_nv_encode(buf + off, cap - off, nm, nl, v, vl);
            RF_ASSERT(n > 0);
            off += (size_t)n;
            clen += (size_t)n;
            i++;
        }
        uint8_t pad = rf_fcgi_padding(clen);
        rf_fcgi_header(buf + rec, RF_FCGI_PARAMS, id, (uint16_t)clen, pad);
        memset(buf + off, 0, pad);
        off += pad;
    }
    rf_fcgi_header(buf + off, RF_FCGI_PARAMS, id, 0, 0);
    off += RF_FCGI_HEADER_LEN;

    size_t stdin_at = off;
    long n = rf_fcgi_stream_encode(buf + off, cap - off, RF_FCGI_STDIN, id, body, g.body);
    RF_ASSERT(n > 0);
    off += (size_t)n;
    /* The header leaves open whether a non-empty payload gets the terminator. */
    if (!rl_ends_with_empty_stdin(buf + stdin_at, off - stdin_at)) {
        n = rf_fcgi_stream_encode(buf + off, cap - off, RF_FCGI_STDIN, id, NULL, 0);
        RF_ASSERT(n == RF_FCGI_HEADER_LEN);
        off += (size_t)n;
    }
    RF_ASSERT(off <= cap);
    *out = buf;
    *out_len = off;
    return 0;
}

static int rl_build_templates(void)
{
    uint8_t *body = NULL;
    if (g.body > 0) {
        body = rf_malloc(g.body);
        RF_ASSERT(body != NULL);
        for (size_t i = 0; i < g.body; i++)
            body[i] = (uint8_t)('a' + i % 26);
    }
    g.tmpl = rf_calloc((size_t)g.depth, sizeof(uint8_t *));
    RF_ASSERT(g.tmpl != NULL);
    for (int id = 1; id <= g.depth; id++) {
        size_t len;
        if (rl_encode_request((uint16_t)id, !g.new_conn, body, &g.tmpl[id - 1], &len) < 0)
            return -1;
        RF_ASSERT(id == 1 || len == g.tmpl_len);
        g.tmpl_len = len;
        if (id == 1 && (double)len * g.depth > 1024.0 * 1024 * 1024) {
            fprintf(stderr, "rf-load: --depth x request size exceeds 1 GiB\n");
            return -1;
        }
    }
    if (g.idle > 0 && rl_encode_request(1, 1, body, &g.idle_tmpl, &g.idle_tmpl_len) < 0)
        return -1;
    rf_free(body);
    return 0;
}

/* ---- options, target ----------------------------------------------------- */

static int rl_parse_target(const char *spec)
{
    if (strncmp(spec, "unix:", 5) == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)&g.addr;
        const char *path = spec + 5;
        if (*path == '\0' || strlen(path) >= sizeof(sun->sun_path)) {
            fprintf(stderr, "rf-load: bad unix socket path '%s'\n", path);
            return -1;
        }
        sun->sun_family = AF_UNIX;
        strcpy(sun->sun_path, path);
        g.addrlen = sizeof(*sun);
        g.family = AF_UNIX;
        g.is_tcp = 0;
        return 0;
    }
    if (strncmp(spec, "tcp:", 4) == 0) {
        char host[256];
        const char *hp = spec + 4, *port, *e;
        size_t hl;
        if (*hp == '[') {
            e = strchr(hp, ']');
            if (e == NULL || e[1] != ':')
                goto bad;
            hp++;
            port = e + 2;
        } else {
            e = strrchr(hp, ':');
            if (e == NULL)
                goto bad;
            port = e + 1;
        }
        hl = (size_t)(e - hp);
        if (hl == 0 || hl >= sizeof(host) || *port == '\0')
            goto bad;
        memcpy(host, hp, hl);
        host[hl] = '\0';
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
        int rc = getaddrinfo(host, port, &hints, &ai);
        if (rc != 0) {
            fprintf(stderr, "rf-load: %s: %s\n", spec, gai_strerror(rc));
            return -1;
        }
        memcpy(&g.addr, ai->ai_addr, ai->ai_addrlen);
        g.addrlen = ai->ai_addrlen;
        g.family = ai->ai_family;
        g.is_tcp = 1;
        freeaddrinfo(ai);
        return 0;
    }
bad:
    fprintf(stderr, "rf-load: bad --target '%s' (tcp:HOST:PORT, tcp:[::1]:PORT, unix:/path)\n",
            spec);
    return -1;
}

static int rl_parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    if (errno || end == s || *end != '\0' || *s == '-' || v > max / mul || v * mul < min) {
        fprintf(stderr, "rf-load: bad %s '%s'\n", opt, s);
        return -1;
    }
    *out = v * mul;
    return 0;
}

static int rl_parse_double(const char *opt, const char *s, double min, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= min) || isinf(v)) {
        fprintf(stderr, "rf-load: bad %s '%s'\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

static void rl_usage(FILE *f)
{
    fprintf(f, "usage: rf-load --target tcp:HOST:PORT|tcp:[V6]:PORT|unix:/path [options]\n"
               "  --connections N   keep-alive connections (default 4)\n"
               "  --depth D         requests in flight per connection, ids 1..D (default 1)\n"
               "  --new-conn        a new connection per request, no KEEP_CONN\n"
               "  --threads T       load threads, connections split across them (default 1)\n"
               "  --duration SEC    measured run time (default 10 unless --requests)\n"
               "  --requests N      total measured requests\n"
               "  --warmup SEC      unmeasured load before the run\n"
               "  --rate R          open loop: R requests/s overall (default closed loop)\n"
               "  --body BYTES      POST a body of BYTES (k/m suffix ok)\n"
               "  --script PATH     SCRIPT_FILENAME (default /var/www/html/index.php)\n"
               "  --uri URI         request URI, ?query allowed (default /index.php)\n"
               "  --param N=V       extra or overriding param (repeatable)\n"
               "  --expect STRING   every response's STDOUT must contain STRING\n"
               "  --idle N          hold N extra idle keep-alive connections through the run\n"
               "  --timeout SEC     per request (default 10)\n"
               "  --progress        a progress line per second on stderr\n"
               "  --json            one JSON object on stdout\n"
               "Exit status: 0 no errors, 1 errors, 2 usage.\n");
}

static int rl_parse_args(int argc, char **argv)
{
    enum {
        O_TARGET = 256,
        O_CONN,
        O_DEPTH,
        O_NEWCONN,
        O_DURATION,
        O_REQUESTS,
        O_WARMUP,
        O_BODY,
        O_SCRIPT,
        O_URI,
        O_PARAM,
        O_EXPECT,
        O_IDLE,
        O_RATE,
        O_PROGRESS,
        O_JSON,
        O_TIMEOUT,
        O_THREADS,
        O_HELP,
    };
    static const struct option opts[] = {
        {"target", required_argument, NULL, O_TARGET},
        {"connections", required_argument, NULL, O_CONN},
        {"depth", required_argument, NULL, O_DEPTH},
        {"new-conn", no_argument, NULL, O_NEWCONN},
        {"duration", required_argument, NULL, O_DURATION},
        {"requests", required_argument, NULL, O_REQUESTS},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"body", required_argument, NULL, O_BODY},
        {"script", required_argument, NULL, O_SCRIPT},
        {"uri", required_argument, NULL, O_URI},
        {"param", required_argument, NULL, O_PARAM},
        {"expect", required_argument, NULL, O_EXPECT},
        {"idle", required_argument, NULL, O_IDLE},
        {"rate", required_argument, NULL, O_RATE},
        {"progress", no_argument, NULL, O_PROGRESS},
        {"json", no_argument, NULL, O_JSON},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"threads", required_argument, NULL, O_THREADS},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    uint64_t u;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_TARGET:
            g.target = optarg;
            break;
        case O_CONN:
            if (rl_parse_u64("--connections", optarg, 1, 1000000, &u) < 0)
                return -1;
            g.connections = (int)u;
            break;
        case O_DEPTH:
            if (rl_parse_u64("--depth", optarg, 1, 65535, &u) < 0)
                return -1;
            g.depth = (int)u;
            break;
        case O_NEWCONN:
            g.new_conn = 1;
            break;
        case O_DURATION:
            if (rl_parse_double("--duration", optarg, 0.001, &g.duration) < 0)
                return -1;
            break;
        case O_REQUESTS:
            if (rl_parse_u64("--requests", optarg, 1, UINT64_MAX / 2, &g.requests) < 0)
                return -1;
            break;
        case O_WARMUP:
            if (rl_parse_double("--warmup", optarg, 0, &g.warmup) < 0)
                return -1;
            break;
        case O_BODY:
            if (rl_parse_u64("--body", optarg, 0, (uint64_t)1 << 30, &u) < 0)
                return -1;
            g.body = (size_t)u;
            break;
        case O_SCRIPT:
            g.script = optarg;
            break;
        case O_URI:
            g.uri = optarg;
            break;
        case O_PARAM: {
            const char *eq = strchr(optarg, '=');
            if (eq == NULL || eq == optarg) {
                fprintf(stderr, "rf-load: --param wants NAME=VALUE, got '%s'\n", optarg);
                return -1;
            }
            rl_param_set(optarg, (size_t)(eq - optarg), eq + 1);
            break;
        }
        case O_EXPECT:
            g.expect = optarg;
            break;
        case O_IDLE:
            if (rl_parse_u64("--idle", optarg, 0, 1000000, &u) < 0)
                return -1;
            g.idle = (int)u;
            break;
        case O_RATE:
            if (rl_parse_double("--rate", optarg, 0.001, &g.rate) < 0)
                return -1;
            break;
        case O_PROGRESS:
            g.progress = 1;
            break;
        case O_JSON:
            g.json = 1;
            break;
        case O_TIMEOUT:
            if (rl_parse_double("--timeout", optarg, 0.001, &g.timeout) < 0)
                return -1;
            break;
        case O_THREADS:
            if (rl_parse_u64("--threads", optarg, 1, 1024, &u) < 0)
                return -1;
            g.threads = (int)u;
            break;
        case O_HELP:
            rl_usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "rf-load: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (g.target == NULL) {
        fprintf(stderr, "rf-load: --target is required\n");
        return -1;
    }
    if (g.new_conn && g.depth > 1) {
        fprintf(stderr, "rf-load: --new-conn sends one request per connection: no --depth\n");
        return -1;
    }
    if (g.duration == 0 && g.requests == 0)
        g.duration = 10.0;
    if (g.threads > g.connections)
        g.threads = g.connections;
    if (g.requests && (uint64_t)g.threads > g.requests)
        g.threads = (int)g.requests; /* a thread with no quota would run unlimited */
    if (g.uri[0] != '/') {
        fprintf(stderr, "rf-load: --uri must start with '/'\n");
        return -1;
    }
    g.timeout_ns = (uint64_t)(g.timeout * 1e9);
    if (g.expect != NULL && g.expect[0] != '\0') {
        g.expect_len = strlen(g.expect);
        g.expect_fail = rf_calloc(g.expect_len, sizeof(uint32_t));
        RF_ASSERT(g.expect_fail != NULL);
        for (size_t i = 1, k = 0; i < g.expect_len; i++) {
            while (k > 0 && g.expect[i] != g.expect[k])
                k = g.expect_fail[k - 1];
            if (g.expect[i] == g.expect[k])
                k++;
            g.expect_fail[i] = (uint32_t)k;
        }
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------- */

static void rl_on_signal(int sig)
{
    (void)sig;
    rl_interrupted = 1;
}

/* Open the --idle connections, one request on each, and leave them open. */
static void rl_idle_setup(rl_thread_t *th)
{
    rl_thread_setup(th, -1, g.idle);
    th->idle_phase = 1;
    th->tmpl = &g.idle_tmpl;
    th->tmpl_len = g.idle_tmpl_len;
    th->active = g.idle;
    for (int i = 0; i < th->nconns; i++)
        th->conns[i].budget = 1;
    rl_thread_main(th);
}

/* At the end: an idle connection is fine if the peer neither closed it nor sent anything. */
static void rl_idle_check(rl_thread_t *th, uint64_t *ok, uint64_t *failed)
{
    for (int i = 0; i < th->nconns; i++) {
        rl_conn_t *c = &th->conns[i];
        char b;
        if (c->idle_bad || c->fd < 0) {
            (*failed)++;
            continue;
        }
        ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            (*ok)++;
        else
            (*failed)++;
    }
}

static void rl_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

int main(int argc, char **argv)
{
    if (rl_parse_args(argc, argv) < 0) {
        rl_usage(stderr);
        return 2;
    }
    if (rl_parse_target(g.target) < 0)
        return 2;
    rl_default_params();
    if (rl_build_templates() < 0)
        return 2;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        (uint64_t)g.connections + (uint64_t)g.idle + 64 > (uint64_t)rl.rlim_cur)
        fprintf(stderr, "rf-load: warning: %d connections + %d idle exceed RLIMIT_NOFILE %llu\n",
                g.connections, g.idle, (unsigned long long)rl.rlim_cur);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = rl_on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    rl_thread_t *idle_th = NULL;
    if (g.idle > 0) {
        idle_th = rf_calloc(1, sizeof(*idle_th));
        RF_ASSERT(idle_th != NULL);
        rl_idle_setup(idle_th);
        int bad = 0;
        for (int i = 0; i < idle_th->nconns; i++)
            bad += idle_th->conns[i].idle_bad;
        if (bad > 0)
            fprintf(stderr, "rf-load: %d of %d idle connections failed to set up\n", bad, g.idle);
    }

    rl_thread_t **ths = rf_calloc((size_t)g.threads, sizeof(*ths));
    RF_ASSERT(ths != NULL);
    uint64_t t0 = rl_now();
    uint64_t t_measure = t0 + (uint64_t)(g.warmup * 1e9);
    for (int t = 0; t < g.threads; t++) {
        rl_thread_t *th = rf_calloc(1, sizeof(*th));
        RF_ASSERT(th != NULL);
        ths[t] = th;
        int n = g.connections / g.threads + (t < g.connections % g.threads);
        rl_thread_setup(th, t, n);
        th->t_measure = t_measure;
        th->t_end = g.duration > 0 ? t_measure + (uint64_t)(g.duration * 1e9) : 0;
        th->limit = g.requests ? g.requests / (uint64_t)g.threads +
                                     (t < (int)(g.requests % (uint64_t)g.threads))
                               : 0;
        if (g.rate > 0) {
            th->rate = g.rate / g.threads;
            /* Stagger the threads' schedules so their sends interleave. */
            th->rate_t0 = t0 + (uint64_t)((double)t * 1e9 / g.rate);
        }
        int rc = pthread_create(&th->tid, NULL, rl_thread_main, th);
        RF_ASSERT(rc == 0);
    }

    /* Wait, printing progress once a second. */
    uint64_t next = t0 + RL_NS, prev_ok = 0, prev_err = 0;
    for (;;) {
        int done = 0;
        for (int t = 0; t < g.threads; t++)
            done += __atomic_load_n(&ths[t]->done, __ATOMIC_ACQUIRE);
        if (done == g.threads)
            break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        uint64_t now = rl_now();
        if (g.progress && now >= next) {
            uint64_t ok = 0, err = 0;
            for (int t = 0; t < g.threads; t++) {
                ok += __atomic_load_n(&ths[t]->pub_ok, __ATOMIC_RELAXED);
                err += __atomic_load_n(&ths[t]->pub_err, __ATOMIC_RELAXED);
            }
            fprintf(stderr, "%7.1fs %s %10llu req/s  errors %llu (total %llu)\n",
                    (double)(now - t0) / 1e9, now < t_measure ? "warmup" : "      ",
                    (unsigned long long)(ok - prev_ok), (unsigned long long)(err - prev_err),
                    (unsigned long long)err);
            prev_ok = ok;
            prev_err = err;
            next += RL_NS;
        }
    }

    rl_hist_t *h = rf_calloc(1, sizeof(*h));
    RF_ASSERT(h != NULL);
    uint64_t ok = 0, err[RL_ERR_N] = {0}, errors = 0, bytes_in = 0, retries = 0, unsent = 0;
    uint64_t t_finish = t_measure;
    for (int t = 0; t < g.threads; t++) {
        rl_thread_t *th = ths[t];
        pthread_join(th->tid, NULL);
        rl_hist_merge(h, &th->hist);
        ok += th->ok;
        for (int k = 0; k < RL_ERR_N; k++)
            err[k] += th->err[k];
        bytes_in += th->bytes_in;
        retries += th->connect_retries;
        if (th->t_finish > t_finish)
            t_finish = th->t_finish;
        if (th->rate > 0) {
            uint64_t end = (th->t_end ? th->t_end : th->t_finish) - 1;
            int64_t tok = rl_tokens(th, end);
            unsent += tok > 0 ? (uint64_t)tok : 0;
        }
    }
    uint64_t idle_ok = 0, idle_failed = 0;
    if (idle_th != NULL) {
        rl_idle_check(idle_th, &idle_ok, &idle_failed);
        retries += idle_th->connect_retries;
    }
    for (int k = 0; k < RL_ERR_N; k++)
        errors += err[k];
    errors += idle_failed;
    double secs = (double)(t_finish - t_measure) / 1e9;
    double rps = secs > 0 ? (double)ok / secs : 0;
    const double qs[] = {0.5, 0.9, 0.99, 0.999};
    double lat[4];
    for (int i = 0; i < 4; i++)
        lat[i] = (double)rl_hist_quantile(h, qs[i]) / 1e3;
    double lat_max = (double)h->max / 1e3;
    double lat_mean = h->count ? (double)h->sum / (double)h->count / 1e3 : 0;
    const char *mode = g.new_conn ? "new-conn" : "keep-conn";

    if (g.json) {
        printf("{\"target\":");
        rl_json_str(g.target);
        printf(",\"threads\":%d,\"connections\":%d,\"depth\":%d,\"mode\":\"%s\",\"rate\":%.3f,"
               "\"body\":%zu,\"duration\":%.6f,\"requests\":%llu,\"errors\":%llu,"
               "\"error_breakdown\":{",
               g.threads, g.connections, g.depth, mode, g.rate, g.body, secs,
               (unsigned long long)ok, (unsigned long long)errors);
        for (int k = 0; k < RL_ERR_N; k++)
            printf("\"%s\":%llu,", rl_err_names[k], (unsigned long long)err[k]);
        printf("\"idle\":%llu},\"connect_retries\":%llu,\"unsent\":%llu,\"rps\":%.1f,"
               "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
               "\"max\":%.1f,\"mean\":%.1f},\"bytes_in\":%llu,\"idle\":%d,\"idle_ok\":%llu,"
               "\"idle_failed\":%llu}\n",
               (unsigned long long)idle_failed, (unsigned long long)retries,
               (unsigned long long)unsent, rps, lat[0], lat[1], lat[2], lat[3], lat_max, lat_mean,
               (unsigned long long)bytes_in, g.idle, (unsigned long long)idle_ok,
               (unsigned long long)idle_failed);
    } else {
        printf("target     %s (%s, %d connections x depth %d, %d thread%s, ", g.target, mode,
               g.connections, g.depth, g.threads, g.threads > 1 ? "s" : "");
        if (g.rate > 0)
            printf("open loop %.1f req/s)\n", g.rate);
        else
            printf("closed loop)\n");
        printf("duration   %.3f s\n", secs);
        printf("requests   %llu ok, %llu errors (", (unsigned long long)ok,
               (unsigned long long)errors);
        for (int k = 0; k < RL_ERR_N; k++)
            printf("%s %llu, ", rl_err_names[k], (unsigned long long)err[k]);
        printf("idle %llu)\n", (unsigned long long)idle_failed);
        printf("throughput %.1f req/s, %.2f MB/s stdout\n", rps,
               secs > 0 ? (double)bytes_in / secs / 1e6 : 0);
        printf("latency us p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n", lat[0],
               lat[1], lat[2], lat[3], lat_max, lat_mean);
        if (retries > 0 || unsent > 0)
            printf("connect    %llu EAGAIN retries; %llu scheduled requests unsent\n",
                   (unsigned long long)retries, (unsigned long long)unsent);
        if (g.idle > 0)
            printf("idle       %d held: %llu ok, %llu failed\n", g.idle,
                   (unsigned long long)idle_ok, (unsigned long long)idle_failed);
    }
    fflush(stdout);

    for (int t = 0; t < g.threads; t++) {
        rl_thread_free(ths[t]);
        rf_free(ths[t]);
    }
    rf_free(ths);
    if (idle_th != NULL) {
        rl_thread_free(idle_th);
        rf_free(idle_th);
    }
    for (int id = 0; id < g.depth; id++)
        rf_free(g.tmpl[id]);
    rf_free(g.tmpl);
    rf_free(g.idle_tmpl);
    for (size_t i = 0; i < g.nparams; i++) {
        rf_free(g.params[i].name);
        rf_free(g.params[i].value);
    }
    rf_free(g.params);
    rf_free(g.expect_fail);
    rf_free(h);
    return errors > 0 ? 1 : 0;
}
