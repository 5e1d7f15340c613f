/*
 * rf_disp: the dispatcher. On each responder thread it owns the PHP
 * executors the master gave that thread (over the thread's control socket,
 * rf_ctl.h), keeps each pool's bounded request queue, and moves requests
 * to idle executors and their output back to the clients through the
 * executors' shared-memory channels (core/rf_chan.h).
 *
 *   complete request -> idle executor? send REQUEST on its channel
 *                       else queue (bounded: request.queue_max; a full queue
 *                       or an expired wait, request.queue_timeout, answers
 *                       503 or FCGI_OVERLOADED)
 *   every loop turn  -> read every busy executor's response ring: STDOUT /
 *                       STDERR become records on the client connection, END
 *                       ends the request and frees the executor for the
 *                       head of the queue
 *   before sleeping  -> arm each busy channel's doorbell (the executor rings
 *                       the eventfd only when we announced sleep)
 *
 * An executor's death is seen through its pidfd the moment it happens: the
 * request it was running gets a 502 (or, when output was already sent, its
 * END with an error logged on FCGI_STDERR) and nothing else is touched.
 * request_terminate_timeout is checked on the timer tick: the executor is
 * killed through its pidfd and its request answered the same way.
 *
 * pm = dynamic / ondemand decisions are taken here, where the queue and the
 * idle executors are known at once: the thread asks the master for more
 * executors (SPAWN) as soon as a request has to queue, and retires idle ones
 * (RETIRE) on the tick. The master enforces pm.max_children.
 *
 * Everything here runs on the owning responder thread; the status page reads
 * the counters of other threads with relaxed loads.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rf_chan.h"
#include "rf_ctl.h"
#include "rf_fcgi.h"
#include "rf_handler.h"
#include "rf_io_int.h"
#include "rf_log.h"
#include "rf_mem.h"

#define RF_DISP_TICK_NS   (100u * 1000 * 1000)
#define RF_DISP_OUT_LIMIT (1u << 20)  /* client output buffered before we stop reading */
#define RF_DISP_INLINE    (64u << 10) /* larger bodies go to the executor as an fd */
#define RF_DISP_MFD_KEEP  (1u << 20)  /* bodies up to this reuse the executor's memfds */
/* Requests in flight per executor: the running one plus one waiting in its
 * ring, so an executor that finishes finds the next request without a
 * doorbell. The second is only queued behind a request that started less
 * than RF_DISP_PIPE_NS ago: a long request does not hold a short one back
 * while other executors free up. */
#define RF_DISP_DEPTH   2
#define RF_DISP_PIPE_NS (2u * 1000 * 1000)

enum { RF_W_CTL = 0, RF_W_BELL = 1, RF_W_PID = 2 };

enum rf_x_state {
    RF_X_IDLE = 1,
    RF_X_BUSY,
    RF_X_RETIRING, /* withdrawn, the master was asked to stop it */
    RF_X_DEAD,
};

typedef struct rf_exec rf_exec_t;

/* Per request, in the request's arena. */
typedef struct rf_dreq {
    rf_link_t link; /* in the pool's queue while waiting */
    rf_req_t *r;
    rf_exec_t *x; /* running it, NULL while queued */
    uint64_t queued_ns;
    uint32_t gen; /* the REQUEST's generation on its executor's channel */
    uint8_t queued;
    uint8_t slow; /* counted as a slow request */
    uint8_t out;  /* STDOUT bytes went to the client */
    uint8_t abort_sent;
    int8_t mfd; /* index of the executor's memfd holding the body, or -1 */
} rf_dreq_t;

struct rf_exec {
    uint32_t idx; /* in the thread's table; part of the watch tags */
    uint32_t wgen;
    uint32_t id;
    int pid;
    int pool;
    int state;
    rf_chan_t *ch;
    int efd, pidfd, body_sock;
    /* Reused memfds for bodies between RF_DISP_INLINE and RF_DISP_MFD_KEEP,
     * one per request the channel can hold (-1 until first needed), each
     * mapped here: a fresh memfd per request allocated and freed every page
     * of the body each time, and write() looked every page up again. A
     * memfd is only rewritten once the request that used it has ended, so
     * the executor never sees a body change under it. */
    int mfd[RF_DISP_DEPTH];
    uint8_t *mfd_map[RF_DISP_DEPTH];
    rf_dreq_t *q[RF_DISP_DEPTH]; /* in flight, oldest (running) first */
    uint32_t nq;
    uint32_t seq;      /* generation of the last request sent */
    uint64_t since_ns; /* head running since / idle since */
    uint64_t requests; /* served */
    uint64_t left;     /* requests it will still take (pm.max_requests) */
    uint32_t gen;      /* the master's generation it belongs to (RF_CTL_RETIRE_OLD) */
    uint8_t exited;    /* the pidfd fired */
    uint8_t killed;    /* we sent SIGKILL (terminate timeout, broken channel) */
    uint8_t old;       /* of a generation a reload replaced: retire when done */
    /* After fastcgi_finish_request (END flagged RF_CHAN_F_MORE): the client
     * has its response but the script of request finish_gen still runs;
     * busy, and given no request, until its DONE. */
    uint8_t finishing;
    uint32_t finish_gen;
    rf_link_t link; /* in the pool's idle list */
};

typedef struct rf_dpool {
    /* The pool's settings as this thread applies them: the responder's
     * copy at start, then what the master sends on a reload (POOL_SET). */
    rf_io_pool_t cfg;
    rf_link_t idle;
    rf_link_t queue;
    uint32_t nqueue;
    uint32_t nexec; /* not dead */
    uint32_t nold;  /* of them, old-generation ones draining after a reload */
    uint32_t nidle;
    uint32_t spawn_pending;
    uint64_t next_retire_ns;
    int warned_max; /* "server reached pm.max_children" logged, not yet below */
    int publish;    /* counters changed since the scoreboard was written */
} rf_dpool_t;

typedef struct rf_disp {
    int ctl;
    rf_exec_t **xs;
    uint32_t nxs; /* table size (slots, some NULL) */
    uint32_t nbusy;
    rf_dpool_t *pools;
    uint64_t next_tick_ns;
    int ctl_dead;
} rf_disp_t;

static rf_disp_t *rf_disp_of(rf_thread_t *t)
{
    return t->disp;
}

static void rf_disp_pm_spawn(rf_thread_t *t, int pool);

static const rf_io_pool_t *rf_disp_cfg(rf_thread_t *t, int pool)
{
    return &rf_disp_of(t)->pools[pool].cfg;
}

static int rf_pidfd_kill(int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

/* ---- responses we make ourselves ------------------------------------------ */

static void rf_disp_fail(rf_req_t *r, int out_started, const char *status, const char *body,
                         const char *log_line)
{
    char buf[512];
    if (log_line)
        rf_resp_puts(r, RF_FCGI_STDERR, log_line);
    if (!out_started) {
        int n = snprintf(buf, sizeof(buf),
                         "Status: %s\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n%s", status,
                         body);
        rf_resp_write(r, RF_FCGI_STDOUT, buf, (size_t)n);
    }
    rf_resp_end(r, out_started ? 255 : 0, RF_FCGI_REQUEST_COMPLETE);
}

static const char *rf_req_script(const rf_req_t *r, char *buf, size_t len)
{
    const rf_param_t *p = rf_req_param(r, "SCRIPT_FILENAME");
    if (p == NULL)
        p = rf_req_script_name(r);
    if (p == NULL)
        return "-";
    snprintf(buf, len, "%.*s", (int)p->value_len, p->value);
    return buf;
}

/* php-fpm's "(request: ...)": method, URI without its query, then the query. */
static const char *rf_req_line(const rf_req_t *r, char *buf, size_t len)
{
    const rf_param_t *m = rf_req_param(r, "REQUEST_METHOD");
    const rf_param_t *u = rf_req_param(r, "REQUEST_URI");
    const rf_param_t *q = rf_req_param(r, "QUERY_STRING");
    int ulen = 0;
    if (u) {
        const char *qm = memchr(u->value, '?', u->value_len);
        ulen = (int)(qm ? (size_t)(qm - u->value) : u->value_len);
    }
    int has_q = q && q->value_len;
    snprintf(buf, len, "%.*s %.*s%s%.*s", m ? (int)m->value_len : 1, m ? m->value : "-", ulen,
             u ? u->value : "", has_q ? "?" : "", has_q ? (int)q->value_len : 0,
             has_q ? q->value : "");
    return buf;
}

/* ---- executors ------------------------------------------------------------ */

static void rf_disp_pool_stat_gauges(rf_thread_t *t, int pool)
{
    rf_disp_t *d = rf_disp_of(t);
    rf_dpool_t *dp = &d->pools[pool];
    rf_disp_stats_t *s = &t->dstats[pool];
    uint32_t active = dp->nexec - dp->nidle;
    __atomic_store_n(&s->idle, dp->nidle, __ATOMIC_RELAXED);
    __atomic_store_n(&s->active, active, __ATOMIC_RELAXED);
    __atomic_store_n(&s->total, dp->nexec, __ATOMIC_RELAXED);
    __atomic_store_n(&s->queue, dp->nqueue, __ATOMIC_RELAXED);
    if (dp->nqueue > s->max_queue)
        __atomic_store_n(&s->max_queue, dp->nqueue, __ATOMIC_RELAXED);
    if (active > s->max_active)
        __atomic_store_n(&s->max_active, active, __ATOMIC_RELAXED);
    dp->publish = 1; /* to the scoreboard once, at the end of the loop turn */
}

/* The idle list is used as a stack: the executor that finished last takes
 * the next request (its caches are warm and it may not be asleep yet), and
 * the ones idle longest sit at the head, where dynamic/ondemand retire
 * from (bench: +5% requests/s at 4 keep-alive connections). */
static void rf_disp_make_idle(rf_thread_t *t, rf_exec_t *x)
{
    rf_dpool_t *dp = &rf_disp_of(t)->pools[x->pool];
    x->state = RF_X_IDLE;
    x->since_ns = t->now_ns;
    rf_link_append(&dp->idle, &x->link);
    dp->nidle++;
}

static void rf_disp_take_idle(rf_thread_t *t, rf_exec_t *x)
{
    rf_dpool_t *dp = &rf_disp_of(t)->pools[x->pool];
    RF_ASSERT(x->state == RF_X_IDLE);
    rf_link_remove(&x->link);
    dp->nidle--;
}

static void rf_disp_ctl_send(rf_thread_t *t, uint32_t type, int pool, const rf_exec_t *x,
                             uint32_t arg)
{
    rf_disp_t *d = rf_disp_of(t);
    rf_ctl_msg_t m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.pool = (uint32_t)pool;
    m.id = x ? x->id : 0;
    m.pid = x ? x->pid : 0;
    m.arg = arg;
    int rc = rf_ctl_send(d->ctl, &m, NULL, 0);
    if (rc < 0 && !d->ctl_dead)
        rf_log(RF_LOG_ERROR, "responder thread %d: cannot reach the master: %s", t->idx,
               strerror(-rc));
}

/* Write the stream's memory chunks to fd from offset 0, a batch of chunks
 * per pwritev. Returns 0 or -errno. */
static int rf_disp_write_chunks(int fd, const rf_chunk_t *ch)
{
    struct iovec iov[64];
    uint64_t off = 0;
    while (ch != NULL) {
        int n = 0;
        for (const rf_chunk_t *c = ch; c != NULL && n < (int)RF_ARRAY_SIZE(iov); c = c->next) {
            iov[n].iov_base = (void *)c->data;
            iov[n++].iov_len = c->len;
        }
        ssize_t w = pwritev(fd, iov, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        off += (uint64_t)w;
        /* Skip what went out; a short write resumes inside a chunk. */
        size_t done = (size_t)w;
        while (ch != NULL && done >= ch->len) {
            done -= ch->len;
            ch = ch->next;
        }
        if (ch != NULL && done > 0) {
            const uint8_t *p = ch->data + done;
            size_t left = ch->len - done;
            while (left > 0) {
                w = pwrite(fd, p, left, (off_t)off);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    return w < 0 ? -errno : -EIO;
                p += w;
                left -= (size_t)w;
                off += (uint64_t)w;
            }
            ch = ch->next;
        }
    }
    return 0;
}

/* Executor x's memfd slot i: RF_DISP_MFD_KEEP bytes, sealed against
 * shrinking (the executor holds it too: a file cut short under our mapping
 * would be a SIGBUS here) and mapped for writing. Returns 0 or -errno. */
static int rf_disp_mfd_open(rf_exec_t *x, int i)
{
    int fd = memfd_create("ringfpm-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    void *p = MAP_FAILED;
    if (ftruncate(fd, RF_DISP_MFD_KEEP) == 0 &&
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
        p = mmap(NULL, RF_DISP_MFD_KEEP, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        close(fd);
        return -e;
    }
    x->mfd[i] = fd;
    x->mfd_map[i] = p;
    return 0;
}

/* Body too large to go inline: an fd the executor reads from offset 0 (it
 * reads the body's length, whatever the file's size). The spill file when
 * there is one; else one of the executor's mapped memfds that its other
 * request in flight does not use, the body copied in (its pages stay from
 * one request to the next: nothing to fault in or free); a body above
 * RF_DISP_MFD_KEEP, or one whose memfd could not be set up, gets a memfd
 * of its own (*owned). */
static int rf_disp_body_fd(rf_exec_t *x, rf_dreq_t *d, int *owned)
{
    rf_req_t *r = d->r;
    *owned = 0;
    d->mfd = -1;
    if (r->in.fd >= 0)
        return r->in.fd;
    if (r->in.len <= RF_DISP_MFD_KEEP) {
        int slot = -1;
        for (int i = 0; i < RF_DISP_DEPTH && slot < 0; i++) {
            int used = 0;
            for (uint32_t k = 0; k < x->nq; k++)
                if (x->q[k] != d && x->q[k]->mfd == i)
                    used = 1;
            if (!used)
                slot = i;
        }
        RF_ASSERT(slot >= 0);
        if (x->mfd[slot] >= 0 || rf_disp_mfd_open(x, slot) == 0) {
            uint8_t *o = x->mfd_map[slot];
            for (const rf_chunk_t *ch = r->in.head; ch; ch = ch->next) {
                memcpy(o, ch->data, ch->len);
                o += ch->len;
            }
            d->mfd = (int8_t)slot;
            return x->mfd[slot];
        }
    }
    int fd = memfd_create("ringfpm-body", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = rf_disp_write_chunks(fd, r->in.head);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    *owned = 1;
    return fd;
}

static int rf_disp_send_fd(int sock, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    char b = 0;
    struct iovec iov = {&b, 1};
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    memset(&cbuf, 0, sizeof(cbuf));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.buf;
    mh.msg_controllen = sizeof(cbuf.buf);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(fd));
    ssize_t n;
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == 1 ? 0 : -errno;
}

/*
 * Put request d on executor x's channel. Returns 0, or -errno when it
 * cannot be sent (the caller answers the request with an error); *sent is
 * set when the failure left the executor half-way through a request.
 */
static int rf_disp_send(rf_thread_t *t, rf_exec_t *x, rf_dreq_t *d, int *sent)
{
    rf_req_t *r = d->r;
    size_t niov = (size_t)r->nparams * 3 + 1;
    uint64_t body_len = r->in.len;
    int inline_body = r->in.fd < 0 && body_len <= RF_DISP_INLINE;
    if (inline_body)
        for (rf_chunk_t *ch = r->in.head; ch; ch = ch->next)
            niov++;
    struct iovec *iov = rf_arena_alloc(r->arena, niov * sizeof(*iov));
    uint8_t *lens = rf_arena_alloc(r->arena, (size_t)r->nparams * 8 + 1);
    if (iov == NULL || lens == NULL)
        return -ENOMEM;
    int n = 0;
    uint64_t params_len = 0;
    uint8_t *lp = lens;
    for (uint32_t i = 0; i < r->nparams; i++) {
        const rf_param_t *p = &r->params[i];
        uint8_t *start = lp;
        lp = rf_fcgi_nv_put_len(lp, p->name_len);
        lp = rf_fcgi_nv_put_len(lp, p->value_len);
        iov[n].iov_base = start;
        iov[n++].iov_len = (size_t)(lp - start);
        iov[n].iov_base = (void *)p->name;
        iov[n++].iov_len = p->name_len;
        if (p->value_len) {
            iov[n].iov_base = (void *)p->value;
            iov[n++].iov_len = p->value_len;
        }
        params_len += (uint64_t)(lp - start) + p->name_len + p->value_len;
    }
    if (params_len > UINT32_MAX || body_len > UINT32_MAX)
        return -E2BIG;
    if (inline_body)
        for (rf_chunk_t *ch = r->in.head; ch; ch = ch->next) {
            iov[n].iov_base = (void *)ch->data;
            iov[n++].iov_len = ch->len;
        }

    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    uint64_t rt_ns = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
    uint64_t age = t->now_ns > r->begin_ns ? t->now_ns - r->begin_ns : 0;

    x->seq++;
    d->gen = x->seq;
    rf_chan_req_t req;
    memset(&req, 0, sizeof(req));
    req.slot = 0;
    req.gen = x->seq;
    req.flags = inline_body ? 0 : RF_CHAN_F_BODY_FD;
    req.params_len = (uint32_t)params_len;
    req.body_len = (uint32_t)body_len;
    req.t_queued_ns = rt_ns - age;
    int owned = 0, fd = -1;
    uint32_t *bell;
    d->mfd = -1;
    if (!inline_body) {
        fd = rf_disp_body_fd(x, d, &owned);
        if (fd < 0)
            return fd;
    }
    int rc = rf_chan_resp_send_request(x->ch, &req, iov, n);
    if ((bell = rf_chan_resp_wake_due(x->ch)) != NULL)
        t->be->futex_wake(t, bell);
    if (rc == 0 && fd >= 0) {
        rc = rf_disp_send_fd(x->body_sock, fd);
        if (rc < 0)
            *sent = 1; /* the executor waits for an fd that will not come */
    }
    if (owned)
        close(fd);
    return rc;
}

static void rf_disp_kill(rf_thread_t *t, rf_exec_t *x, const char *why)
{
    if (x->killed || x->exited)
        return;
    x->killed = 1;
    if (rf_pidfd_kill(x->pidfd, SIGKILL) < 0) {
        /* Not ours to signal (the executor changed user): the master does it. */
        rf_disp_ctl_send(t, RF_CTL_KILL, x->pool, x, 0);
    }
    rf_log_debug("[pool %s] executor %d killed: %s", t->io->conf->pools[x->pool].name, x->pid, why);
}

static void rf_disp_start_on(rf_thread_t *t, rf_exec_t *x, rf_dreq_t *d)
{
    rf_disp_t *dd = rf_disp_of(t);
    RF_ASSERT(x->nq < RF_DISP_DEPTH);
    d->x = x;
    x->q[x->nq++] = d;
    if (x->nq == 1) {
        x->state = RF_X_BUSY;
        x->since_ns = t->now_ns;
        dd->nbusy++;
    }
    int sent = 0;
    int rc = rf_disp_send(t, x, d, &sent);
    if (rc < 0) {
        /* A request that cannot cross the channel (params larger than the
         * ring, no memory): answer it. An executor left waiting for a body
         * fd is replaced. */
        char line[256];
        snprintf(line, sizeof(line), "ringfpm: cannot pass the request to the executor: %s",
                 rc == -E2BIG ? "its params exceed the executor channel" : strerror(-rc));
        rf_log(RF_LOG_ERROR, "[pool %s] %s", t->io->conf->pools[x->pool].name, line + 9);
        x->nq--;
        d->x = NULL;
        rf_disp_fail(d->r, 0, "500 Internal Server Error", "Internal Server Error\n", line);
        if (sent) {
            rf_disp_kill(t, x, "request could not be sent");
            x->state = RF_X_RETIRING;
        } else if (x->nq == 0) {
            dd->nbusy--;
            rf_disp_make_idle(t, x);
        }
        return;
    }
    RF_STAT_INC(&t->dstats[x->pool], accepted);
    x->left--; /* at 0 it exits after this request: it gets no other */
}

/* Hand queued requests to idle executors. */
static void rf_disp_drain_queue(rf_thread_t *t, int pool)
{
    rf_dpool_t *dp = &rf_disp_of(t)->pools[pool];
    while (dp->nqueue && dp->nidle) {
        rf_dreq_t *d = rf_container_of(dp->queue.next, rf_dreq_t, link);
        rf_link_remove(&d->link);
        d->queued = 0;
        dp->nqueue--;
        rf_exec_t *x = rf_container_of(dp->idle.prev, rf_exec_t, link);
        rf_disp_take_idle(t, x);
        rf_disp_start_on(t, x, d);
    }
}

/* A busy executor of pool that can take a second request now, or NULL. */
static rf_exec_t *rf_disp_pipe_target(rf_thread_t *t, int pool)
{
    rf_disp_t *d = rf_disp_of(t);
    rf_exec_t *best = NULL;
    for (uint32_t i = 0; i < d->nxs; i++) {
        rf_exec_t *x = d->xs[i];
        if (x == NULL || x->pool != pool || x->state != RF_X_BUSY || x->nq != 1 || x->killed ||
            x->left == 0 || t->now_ns - x->since_ns >= RF_DISP_PIPE_NS)
            continue;
        if (best == NULL || x->since_ns > best->since_ns)
            best = x;
    }
    return best;
}

/* Queue's head onto x's ring behind its running request. */
static void rf_disp_pipe_fill(rf_thread_t *t, rf_exec_t *x)
{
    rf_dpool_t *dp = &rf_disp_of(t)->pools[x->pool];
    if (dp->nqueue == 0 || x->nq != 1 || x->state != RF_X_BUSY || x->killed || x->left == 0)
        return;
    rf_dreq_t *d = rf_container_of(dp->queue.next, rf_dreq_t, link);
    rf_link_remove(&d->link);
    d->queued = 0;
    dp->nqueue--;
    rf_disp_start_on(t, x, d);
}

/* The executor's running request is over (END seen): the next in its ring
 * runs now, or it is free for the queue. */
static void rf_disp_exec_free_up(rf_thread_t *t, rf_exec_t *x);

static void rf_disp_exec_done(rf_thread_t *t, rf_exec_t *x)
{
    for (uint32_t i = 1; i < x->nq; i++)
        x->q[i - 1] = x->q[i];
    x->nq--;
    x->requests++;
    if (!x->finishing) /* else: request_terminate_timeout_track_finished counts on */
        x->since_ns = t->now_ns;
    if (x->nq) {
        rf_disp_pipe_fill(t, x);
        return;
    }
    if (x->finishing) {
        rf_disp_pool_stat_gauges(t, x->pool); /* busy until its DONE */
        return;
    }
    rf_disp_exec_free_up(t, x);
}

/* The script x ran after fastcgi_finish_request returned (DONE). */
static void rf_disp_exec_returned(rf_thread_t *t, rf_exec_t *x)
{
    x->finishing = 0;
    x->since_ns = t->now_ns;
    if (x->nq == 0)
        rf_disp_exec_free_up(t, x);
}

/* x has nothing left to run: idle for the queue, or retired. */
static void rf_disp_exec_free_up(rf_thread_t *t, rf_exec_t *x)
{
    rf_disp_t *d = rf_disp_of(t);
    d->nbusy--;
    if (x->state == RF_X_BUSY && x->left == 0) {
        /* exiting on its own (pm.max_requests), or replaced by a reload */
        x->state = RF_X_RETIRING;
        if (x->old)
            rf_disp_ctl_send(t, RF_CTL_RETIRE, x->pool, x, 0);
        rf_disp_pm_spawn(t, x->pool);
    } else if (x->state == RF_X_BUSY) {
        rf_disp_make_idle(t, x);
        rf_disp_drain_queue(t, x->pool);
        rf_disp_pipe_fill(t, x);
    }
    rf_disp_pool_stat_gauges(t, x->pool);
}

/*
 * Read what executor x wrote (all of it with force, else until the client's
 * connection has RF_DISP_OUT_LIMIT bytes waiting). Returns 0, or -EPROTO when its channel is
 * broken (the executor gets killed).
 */
static int rf_disp_pump(rf_thread_t *t, rf_exec_t *x, int force)
{
    int rc = 0, got = 0;
    rf_chan_msg_t m;
    while (x->nq || x->finishing) {
        rf_dreq_t *dr = x->nq ? x->q[0] : NULL;
        rf_conn_t *c = dr ? dr->r->conn : NULL;
        if (c && !force && !c->dead && c->out_bytes > RF_DISP_OUT_LIMIT)
            break; /* the client is slow: let the executor wait on its full ring */
        rc = rf_chan_resp_next(x->ch, &m);
        if (rc <= 0)
            break;
        got++;
        if (m.type == RF_CHAN_DONE && x->finishing && m.slot == 0 && m.gen == x->finish_gen) {
            rf_disp_exec_returned(t, x);
            continue;
        }
        if (dr == NULL || m.slot != 0 || m.gen != dr->gen) {
            rf_chan_resp_set_broken(x->ch);
            rc = -EPROTO;
            break;
        }
        switch (m.type) {
        case RF_CHAN_STDOUT:
            dr->out = 1;
            rf_resp_write(dr->r, RF_FCGI_STDOUT, m.data, m.len);
            break;
        case RF_CHAN_STDERR:
            rf_resp_write(dr->r, RF_FCGI_STDERR, m.data, m.len);
            break;
        case RF_CHAN_FLUSH:
            break; /* everything written this turn is sent at its end */
        case RF_CHAN_END: {
            uint8_t ps = m.arg1 <= RF_FCGI_OVERLOADED ? (uint8_t)m.arg1 : RF_FCGI_REQUEST_COMPLETE;
            if (m.flags & RF_CHAN_F_MORE) {
                x->finishing = 1;
                x->finish_gen = dr->gen;
            }
            rf_resp_end(dr->r, m.arg0, ps);
            rf_disp_exec_done(t, x);
            break;
        }
        default:
            rf_chan_resp_set_broken(x->ch);
            rc = -EPROTO;
            break;
        }
        if (rc < 0)
            break;
    }
    if (got && rf_chan_resp_release(x->ch) < 0)
        rc = -EPROTO;
    uint32_t *bell = rf_chan_resp_wake_due(x->ch); /* it waited for room */
    if (bell)
        t->be->futex_wake(t, bell);
    if (rc < 0) {
        rf_log(RF_LOG_ERROR, "[pool %s] executor %d wrote a malformed channel record: killing it",
               t->io->conf->pools[x->pool].name, x->pid);
        rf_disp_kill(t, x, "malformed channel record");
        return -EPROTO;
    }
    return 0;
}

static void rf_disp_exec_free(rf_thread_t *t, rf_exec_t *x)
{
    rf_disp_t *d = rf_disp_of(t);
    t->be->unwatch(t, x->efd, (x->idx << 2) | RF_W_BELL, x->wgen);
    t->be->unwatch(t, x->pidfd, (x->idx << 2) | RF_W_PID, x->wgen);
    rf_chan_destroy(x->ch);
    close(x->pidfd);
    close(x->body_sock);
    for (int i = 0; i < RF_DISP_DEPTH; i++)
        if (x->mfd[i] >= 0) {
            munmap(x->mfd_map[i], RF_DISP_MFD_KEEP);
            close(x->mfd[i]);
        }
    d->xs[x->idx] = NULL;
    rf_free(x);
}

/* The executor process is gone (pidfd fired). */
static void rf_disp_exec_exited(rf_thread_t *t, rf_exec_t *x)
{
    rf_disp_t *d = rf_disp_of(t);
    const rf_io_pool_t *pool = &t->io->conf->pools[x->pool];
    rf_dpool_t *dp = &d->pools[x->pool];
    x->exited = 1;
    if ((x->nq || x->finishing) && !rf_chan_resp_broken(x->ch))
        rf_disp_pump(t, x, 1); /* it may have finished (written END) just before */
    if (x->finishing && x->nq == 0) {
        x->finishing = 0; /* died after fastcgi_finish_request: nobody waits */
        d->nbusy--;
    }
    /* A request waiting behind the running one never started: it goes back
     * to the head of the queue. */
    while (x->nq > 1) {
        rf_dreq_t *dr = x->q[--x->nq];
        dr->x = NULL;
        dr->queued = 1;
        dr->queued_ns = t->now_ns;
        rf_link_append(dp->queue.next, &dr->link);
        dp->nqueue++;
    }
    if (x->nq) {
        rf_dreq_t *dr = x->q[0];
        char line[512], sbuf[256];
        snprintf(line, sizeof(line),
                 "ringfpm: the executor (pid %d) serving this request %s (script '%s')", x->pid,
                 x->killed ? "was terminated" : "exited", rf_req_script(dr->r, sbuf, sizeof(sbuf)));
        rf_log(RF_LOG_WARNING, "[pool %s] %s", pool->name, line + 9);
        x->nq = 0;
        d->nbusy--;
        RF_STAT_INC(&t->dstats[x->pool], failed);
        rf_disp_fail(dr->r, dr->out, "502 Bad Gateway", "Bad Gateway\n", line);
    }
    if (x->state == RF_X_IDLE)
        rf_disp_take_idle(t, x);
    x->state = RF_X_DEAD;
    dp->nexec--;
    if (x->old)
        dp->nold--;
    rf_disp_exec_free(t, x);
    rf_disp_pm_spawn(t, (int)(pool - t->io->conf->pools)); /* dynamic/ondemand replace */
    rf_disp_pool_stat_gauges(t, (int)(pool - t->io->conf->pools));
}

/* EXEC_UP from the master. */
static void rf_disp_exec_up(rf_thread_t *t, const rf_ctl_msg_t *m, int *fds, int nfds)
{
    rf_disp_t *d = rf_disp_of(t);
    const rf_io_conf_t *conf = t->io->conf;
    if (nfds != 4 || m->pool >= (uint32_t)conf->npools) {
        rf_log(RF_LOG_ERROR, "responder thread %d: bad executor announcement", t->idx);
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        return;
    }
    const rf_io_pool_t *pool = &conf->pools[m->pool];
    rf_dpool_t *dp = &d->pools[m->pool];
    if (dp->spawn_pending)
        dp->spawn_pending--;
    rf_exec_t *x = rf_calloc(1, sizeof(*x));
    rf_chan_opts_t co;
    memset(&co, 0, sizeof(co));
    co.req_ring_size = pool->chan_ring_size;
    co.resp_ring_size = pool->chan_ring_size;
    co.resp_eventfd = 1;
    int rc = x ? rf_chan_open(fds[0], fds[1], &co, &x->ch) : -ENOMEM;
    close(fds[0]);
    close(fds[1]);
    if (rc < 0) {
        rf_log(RF_LOG_ERROR, "[pool %s] cannot map the channel of executor %d: %s", pool->name,
               m->pid, strerror(-rc));
        rf_pidfd_kill(fds[2], SIGKILL);
        close(fds[2]);
        close(fds[3]);
        rf_free(x);
        return;
    }
    uint32_t idx = 0;
    while (idx < d->nxs && d->xs[idx])
        idx++;
    if (idx == d->nxs) {
        uint32_t ncap = d->nxs ? d->nxs * 2 : 16;
        rf_exec_t **nx = rf_realloc(d->xs, ncap * sizeof(*nx));
        RF_ASSERT(nx != NULL);
        memset(nx + d->nxs, 0, (ncap - d->nxs) * sizeof(*nx));
        d->xs = nx;
        d->nxs = ncap;
    }
    d->xs[idx] = x;
    x->idx = idx;
    x->wgen = ++t->gen;
    x->id = m->id;
    x->pid = m->pid;
    x->pool = (int)m->pool;
    x->gen = m->gen;
    x->left = m->arg64 ? m->arg64 : UINT64_MAX;
    x->efd = rf_chan_eventfd(x->ch);
    rf_chan_resp_defer_wakes(x->ch, t->futex_wake_ok);
    rf_chan_resp_drain_bell(x->ch, !t->be->watch_edge);
    x->pidfd = fds[2];
    x->body_sock = fds[3];
    for (int i = 0; i < RF_DISP_DEPTH; i++)
        x->mfd[i] = -1;
    rf_link_init(&x->link);
    dp->nexec++;
    t->be->watch(t, x->efd, (idx << 2) | RF_W_BELL, x->wgen);
    t->be->watch(t, x->pidfd, (idx << 2) | RF_W_PID, x->wgen);
    rf_disp_make_idle(t, x);
    rf_disp_drain_queue(t, x->pool);
    rf_disp_pool_stat_gauges(t, x->pool);
}

static void rf_disp_retire(rf_thread_t *t, rf_exec_t *x);

/* POOL_SET: a reload changed the pool's process-manager or queue settings. */
static void rf_disp_pool_set(rf_thread_t *t, int pool, const uint32_t *v)
{
    rf_io_pool_t *p = &rf_disp_of(t)->pools[pool].cfg;
    if (p->handler)
        return;
    p->pm = (int)v[RF_SET_PM];
    p->max_children = v[RF_SET_MAX_CHILDREN];
    p->min_spare = v[RF_SET_MIN_SPARE];
    p->max_spare = v[RF_SET_MAX_SPARE];
    p->max_spawn_rate = v[RF_SET_MAX_SPAWN_RATE];
    p->idle_timeout_ms = v[RF_SET_IDLE_TIMEOUT_MS];
    p->queue_max = v[RF_SET_QUEUE_MAX];
    p->queue_timeout_ms = v[RF_SET_QUEUE_TIMEOUT_MS];
    p->terminate_ms = v[RF_SET_TERMINATE_MS];
    p->slowlog_ms = v[RF_SET_SLOWLOG_MS];
    p->overload_fcgi = (int)v[RF_SET_OVERLOAD_FCGI];
    p->track_finished = (int)v[RF_SET_TRACK_FINISHED];
    rf_board_pool_set_pm(t->io->conf->board, pool, p->pm); /* the status page's name */
}

/*
 * RETIRE_OLD: a reload's generation `gen` is up. Older executors take no
 * new request: idle ones are retired now, busy ones (and one with a request
 * waiting in its ring) as soon as they are done, so no request is cut short
 * and none waits for the slowest old one. The queue goes to the new ones.
 */
static void rf_disp_retire_old(rf_thread_t *t, uint32_t gen)
{
    rf_disp_t *d = rf_disp_of(t);
    for (uint32_t i = 0; i < d->nxs; i++) {
        rf_exec_t *x = d->xs[i];
        if (x == NULL || x->gen >= gen || x->old || x->exited)
            continue;
        x->old = 1;
        d->pools[x->pool].nold++;
        x->left = 0; /* no pipelining onto it; retired when its ring is empty */
        if (x->state == RF_X_IDLE)
            rf_disp_retire(t, x); /* a RETIRING one is on its way out already */
    }
    for (int p = 0; p < t->io->conf->npools; p++)
        if (!d->pools[p].cfg.handler) {
            rf_disp_drain_queue(t, p);
            rf_disp_pool_stat_gauges(t, p);
        }
}

static void rf_disp_ctl_read(rf_thread_t *t)
{
    rf_disp_t *d = rf_disp_of(t);
    for (;;) {
        rf_ctl_msg_t m;
        int fds[RF_CTL_MAX_FDS], nfds;
        int rc = rf_ctl_recv(d->ctl, &m, fds, &nfds);
        if (rc == 0)
            return;
        if (rc < 0) {
            if (rc == -EPROTO)
                continue;
            if (!d->ctl_dead)
                rf_log(RF_LOG_ERROR, "responder thread %d: lost the master (%s)", t->idx,
                       strerror(-rc));
            d->ctl_dead = 1;
            t->be->unwatch(t, d->ctl, RF_W_CTL, 0);
            return;
        }
        if (m.type == RF_CTL_EXEC_UP) {
            rf_disp_exec_up(t, &m, fds, nfds);
        } else if (m.type == RF_CTL_COMING && m.pool < (uint32_t)t->io->conf->npools) {
            d->pools[m.pool].spawn_pending += m.arg;
        } else if (m.type == RF_CTL_POOL_SET && m.pool < (uint32_t)t->io->conf->npools) {
            rf_disp_pool_set(t, (int)m.pool, m.set);
        } else if (m.type == RF_CTL_RETIRE_OLD) {
            rf_disp_retire_old(t, m.gen);
        } else if (m.type == RF_CTL_SPAWN && m.pool < (uint32_t)t->io->conf->npools) {
            /* The master refused m.arg of the executors we asked for. */
            rf_dpool_t *dp = &d->pools[m.pool];
            dp->spawn_pending = dp->spawn_pending > m.arg ? dp->spawn_pending - m.arg : 0;
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
        } else {
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
        }
    }
}

/* ---- the process manager's responder half --------------------------------- */

static uint32_t rf_disp_share(const rf_thread_t *t, uint32_t n)
{
    uint32_t k = (uint32_t)t->io->nthreads;
    return (n + k - 1) / k;
}

static void rf_disp_pm_spawn(rf_thread_t *t, int pool)
{
    const rf_io_pool_t *p = rf_disp_cfg(t, pool);
    rf_dpool_t *dp = &rf_disp_of(t)->pools[pool];
    if (p->pm != 2 && p->pm != 3)
        return; /* static: the master keeps max_children running */
    uint32_t want = 0;
    uint32_t coming = dp->nidle + dp->spawn_pending;
    if (dp->nqueue > coming)
        want = dp->nqueue - coming;
    if (p->pm == 2) {
        uint32_t min_spare = rf_disp_share(t, p->min_spare);
        if (coming < min_spare && min_spare - coming > want)
            want = min_spare - coming;
    }
    uint32_t cap = rf_disp_share(t, p->max_children);
    uint32_t have = dp->nexec - dp->nold + dp->spawn_pending;
    if (have >= cap)
        want = 0;
    else if (want > cap - have)
        want = cap - have;
    if (p->max_spawn_rate && want > p->max_spawn_rate)
        want = p->max_spawn_rate;
    if (want == 0)
        return;
    dp->spawn_pending += want;
    rf_disp_ctl_send(t, RF_CTL_SPAWN, pool, NULL, want);
}

static void rf_disp_retire(rf_thread_t *t, rf_exec_t *x)
{
    rf_disp_take_idle(t, x);
    x->state = RF_X_RETIRING;
    rf_disp_ctl_send(t, RF_CTL_RETIRE, x->pool, x, 0);
}

static void rf_disp_pm_tick(rf_thread_t *t, int pool)
{
    const rf_io_pool_t *p = rf_disp_cfg(t, pool);
    rf_dpool_t *dp = &rf_disp_of(t)->pools[pool];
    rf_disp_pm_spawn(t, pool);
    if (dp->nexec - dp->nold + dp->spawn_pending < rf_disp_share(t, p->max_children))
        dp->warned_max = 0;
    if (p->pm == 3 && p->idle_timeout_ms) {
        /* ondemand: every executor idle longer than process_idle_timeout */
        uint64_t limit = (uint64_t)p->idle_timeout_ms * 1000000u;
        while (!rf_link_empty(&dp->idle)) {
            rf_exec_t *x = rf_container_of(dp->idle.next, rf_exec_t, link);
            if (t->now_ns - x->since_ns < limit)
                break;
            rf_disp_retire(t, x);
        }
    } else if (p->pm == 2 && dp->nidle > rf_disp_share(t, p->max_spare) &&
               t->now_ns >= dp->next_retire_ns) {
        /* dynamic: one surplus idle executor a second, the longest idle, as
         * php-fpm's maintenance does */
        rf_disp_retire(t, rf_container_of(dp->idle.next, rf_exec_t, link));
        dp->next_retire_ns = t->now_ns + 1000000000u;
    }
}

/* ---- the handler side ------------------------------------------------------ */

static void rf_disp_refuse(rf_thread_t *t, rf_req_t *r, const rf_io_pool_t *p, const char *why)
{
    char line[256];
    snprintf(line, sizeof(line), "ringfpm: pool %s %s", p->name, why);
    if (p->overload_fcgi) {
        rf_resp_end(r, 0, RF_FCGI_OVERLOADED);
        return;
    }
    rf_resp_puts(r, RF_FCGI_STDERR, line);
    static const char resp[] = "Status: 503 Service Unavailable\r\n"
                               "Content-Type: text/plain; charset=UTF-8\r\n"
                               "Retry-After: 1\r\n\r\n"
                               "Service Unavailable\n";
    rf_resp_write(r, RF_FCGI_STDOUT, resp, sizeof(resp) - 1);
    rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
}

void rf_disp_start(rf_req_t *r)
{
    rf_conn_t *c = r->conn;
    rf_thread_t *t = c->t;
    rf_disp_t *d = rf_disp_of(t);
    if (d == NULL) {
        rf_disp_fail(r, 0, "503 Service Unavailable", "Service Unavailable\n",
                     "ringfpm: no PHP executors on this responder");
        return;
    }
    rf_dreq_t *dr = rf_arena_alloc(r->arena, sizeof(*dr));
    if (dr == NULL) {
        rf_disp_fail(r, 0, "500 Internal Server Error", "Internal Server Error\n", NULL);
        return;
    }
    memset(dr, 0, sizeof(*dr));
    rf_link_init(&dr->link);
    dr->r = r;
    r->handler = dr;
    rf_dpool_t *dp = &d->pools[c->pool_idx];
    const rf_io_pool_t *p = &dp->cfg;
    if (dp->nidle) {
        rf_exec_t *x = rf_container_of(dp->idle.prev, rf_exec_t, link);
        rf_disp_take_idle(t, x);
        rf_disp_start_on(t, x, dr);
        rf_disp_pool_stat_gauges(t, c->pool_idx);
        return;
    }
    rf_exec_t *px = dp->nqueue ? NULL : rf_disp_pipe_target(t, c->pool_idx);
    if (px) {
        rf_disp_start_on(t, px, dr);
        rf_disp_pool_stat_gauges(t, c->pool_idx);
        return;
    }
    if (dp->nqueue >= p->queue_max) {
        RF_STAT_INC(&t->dstats[c->pool_idx], queue_full);
        rf_disp_refuse(t, r, p, "is overloaded: request.queue_max reached");
        return;
    }
    /* It will wait: let go of the receive buffers it points into. */
    if (r->nrefs && rf_req_detach(r) < 0) {
        rf_disp_fail(r, 0, "500 Internal Server Error", "Internal Server Error\n", NULL);
        return;
    }
    dr->queued = 1;
    dr->queued_ns = t->now_ns;
    if ((p->pm == 2 || p->pm == 3) &&
        dp->nexec - dp->nold + dp->spawn_pending >= rf_disp_share(t, p->max_children) &&
        !dp->warned_max) {
        /* php-fpm's warning, once per episode at the limit */
        dp->warned_max = 1;
        RF_STAT_INC(&t->dstats[c->pool_idx], maxed);
        rf_log(RF_LOG_WARNING,
               "[pool %s] server reached pm.max_children setting (%u), consider raising it",
               p->name, p->max_children);
    }
    rf_link_append(&dp->queue, &dr->link);
    dp->nqueue++;
    RF_STAT_INC(&t->dstats[c->pool_idx], queued);
    rf_disp_pm_spawn(t, c->pool_idx);
    rf_disp_pool_stat_gauges(t, c->pool_idx);
}

void rf_disp_abort(rf_req_t *r)
{
    rf_dreq_t *dr = r->handler;
    rf_conn_t *c = r->conn;
    rf_thread_t *t = c->t;
    if (dr == NULL)
        return;
    if (dr->queued) {
        /* Never reaches PHP. */
        rf_dpool_t *dp = &rf_disp_of(t)->pools[c->pool_idx];
        rf_link_remove(&dr->link);
        dr->queued = 0;
        dp->nqueue--;
        RF_STAT_INC(&t->dstats[c->pool_idx], queue_aborted);
        rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
        rf_disp_pool_stat_gauges(t, c->pool_idx);
        return;
    }
    rf_exec_t *x = dr->x;
    if (x && !dr->abort_sent) {
        dr->abort_sent = 1;
        if (rf_chan_resp_send_abort(x->ch, 0, dr->gen) < 0)
            rf_log_debug("abort could not be queued for executor %d", x->pid);
        uint32_t *bell = rf_chan_resp_wake_due(x->ch);
        if (bell)
            t->be->futex_wake(t, bell);
    }
}

/* ---- the thread's loop ---------------------------------------------------- */

int rf_disp_thread_init(rf_thread_t *t)
{
    const rf_io_conf_t *conf = t->io->conf;
    t->dstats = rf_calloc((size_t)conf->npools, sizeof(*t->dstats));
    if (t->dstats == NULL)
        return -ENOMEM;
    if (conf->ctl_fds == NULL || conf->ctl_fds[t->idx] < 0)
        return 0;
    rf_disp_t *d = rf_calloc(1, sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->pools = rf_calloc((size_t)conf->npools, sizeof(*d->pools));
    if (d->pools == NULL) {
        rf_free(d);
        return -ENOMEM;
    }
    for (int i = 0; i < conf->npools; i++) {
        d->pools[i].cfg = conf->pools[i];
        rf_link_init(&d->pools[i].idle);
        rf_link_init(&d->pools[i].queue);
    }
    d->ctl = conf->ctl_fds[t->idx];
    t->disp = d;
    /* The master announced its first executors (RF_CTL_COMING) before this
     * process started: count them before any spare-executor decision. */
    rf_disp_ctl_read(t);
    return t->be->watch(t, d->ctl, RF_W_CTL, 0);
}

void rf_disp_thread_fini(rf_thread_t *t)
{
    rf_disp_t *d = rf_disp_of(t);
    if (d) {
        for (uint32_t i = 0; i < d->nxs; i++) {
            rf_exec_t *x = d->xs[i];
            if (x == NULL)
                continue;
            for (uint32_t k = 0; k < x->nq; k++) {
                rf_dreq_t *dr = x->q[k];
                rf_disp_fail(dr->r, dr->out, "503 Service Unavailable", "Service Unavailable\n",
                             "ringfpm: shutting down");
            }
            x->nq = 0;
            rf_disp_exec_free(t, x);
        }
        for (int i = 0; i < t->io->conf->npools; i++) {
            rf_dpool_t *dp = &d->pools[i];
            while (!rf_link_empty(&dp->queue)) {
                rf_dreq_t *dr = rf_container_of(dp->queue.next, rf_dreq_t, link);
                rf_link_remove(&dr->link);
                dr->queued = 0;
                rf_resp_end(dr->r, 0, RF_FCGI_REQUEST_COMPLETE);
            }
        }
        rf_free(d->xs);
        rf_free(d->pools);
        rf_free(d);
        t->disp = NULL;
    }
    rf_free(t->dstats);
    t->dstats = NULL;
}

void rf_disp_event(rf_thread_t *t, uint32_t tag, uint32_t gen, int res)
{
    rf_disp_t *d = rf_disp_of(t);
    if (d == NULL)
        return;
    uint32_t kind = tag & 3, idx = tag >> 2;
    if (kind == RF_W_CTL) {
        rf_disp_ctl_read(t);
        return;
    }
    if (idx >= d->nxs || d->xs[idx] == NULL || d->xs[idx]->wgen != gen)
        return; /* a completion for an executor already gone */
    rf_exec_t *x = d->xs[idx];
    if (kind == RF_W_PID)
        rf_disp_exec_exited(t, x);
    /* RF_W_BELL: the pump in rf_disp_run reads every busy channel anyway */
}

void rf_disp_rewatch(rf_thread_t *t, uint32_t tag, uint32_t gen)
{
    rf_disp_t *d = rf_disp_of(t);
    if (d == NULL)
        return;
    uint32_t kind = tag & 3, idx = tag >> 2;
    if (kind == RF_W_CTL) {
        if (!d->ctl_dead)
            t->be->watch(t, d->ctl, tag, gen);
        return;
    }
    if (idx >= d->nxs || d->xs[idx] == NULL || d->xs[idx]->wgen != gen)
        return;
    rf_exec_t *x = d->xs[idx];
    t->be->watch(t, kind == RF_W_PID ? x->pidfd : x->efd, tag, gen);
}

int rf_disp_idle(rf_thread_t *t)
{
    rf_disp_t *d = rf_disp_of(t);
    if (d == NULL || d->nbusy == 0)
        return 0;
    int ready = 0;
    for (uint32_t i = 0; i < d->nxs; i++) {
        rf_exec_t *x = d->xs[i];
        if (x == NULL || (x->nq == 0 && !x->finishing))
            continue;
        rf_conn_t *c = x->nq ? x->q[0]->r->conn : NULL;
        if (c && !c->dead && c->out_bytes > RF_DISP_OUT_LIMIT)
            continue; /* waiting for the client, not for the executor */
        if (rf_chan_resp_arm(x->ch, NULL, NULL) != 0)
            ready = 1;
    }
    return ready;
}

static void rf_disp_tick(rf_thread_t *t);

void rf_disp_publish(rf_thread_t *t)
{
    rf_disp_t *d = rf_disp_of(t);
    if (d == NULL)
        return;
    for (int p = 0; p < t->io->conf->npools; p++)
        if (d->pools[p].publish) {
            d->pools[p].publish = 0;
            rf_status_publish(t, p);
        }
}

void rf_disp_run(rf_thread_t *t)
{
    rf_disp_t *d = rf_disp_of(t);
    if (d == NULL)
        return;
    if (d->nbusy) {
        for (uint32_t i = 0; i < d->nxs; i++) {
            rf_exec_t *x = d->xs[i];
            if (x == NULL || (x->nq == 0 && !x->finishing))
                continue;
            rf_chan_resp_disarm(x->ch);
            rf_disp_pump(t, x, 0);
        }
    }
    if (t->now_ns >= d->next_tick_ns)
        rf_disp_tick(t);
    rf_disp_publish(t);
}

/* Every RF_DISP_TICK_NS: queue deadlines, pm decisions, slow and
 * terminated requests. */
static void rf_disp_tick(rf_thread_t *t)
{
    rf_disp_t *d = rf_disp_of(t);
    const rf_io_conf_t *conf = t->io->conf;
    d->next_tick_ns = t->now_ns + RF_DISP_TICK_NS;
    for (int p = 0; p < conf->npools; p++) {
        const rf_io_pool_t *pool = rf_disp_cfg(t, p);
        if (pool->handler)
            continue;
        rf_dpool_t *dp = &d->pools[p];
        /* Queue deadline: oldest first. */
        if (pool->queue_timeout_ms) {
            uint64_t limit = (uint64_t)pool->queue_timeout_ms * 1000000u;
            while (dp->nqueue) {
                rf_dreq_t *dr = rf_container_of(dp->queue.next, rf_dreq_t, link);
                if (t->now_ns - dr->queued_ns < limit)
                    break;
                rf_link_remove(&dr->link);
                dr->queued = 0;
                dp->nqueue--;
                RF_STAT_INC(&t->dstats[p], queue_timeouts);
                rf_disp_refuse(t, dr->r, pool, "is overloaded: request.queue_timeout expired");
            }
        }
        rf_disp_pm_tick(t, p);
        rf_disp_pool_stat_gauges(t, p);
    }
    /* request_terminate_timeout */
    for (uint32_t i = 0; i < d->nxs; i++) {
        rf_exec_t *x = d->xs[i];
        if (x == NULL || (x->nq == 0 && !x->finishing) || x->killed)
            continue;
        const rf_io_pool_t *pool = rf_disp_cfg(t, x->pool);
        if (x->finishing) {
            /* after fastcgi_finish_request: php-fpm's timeout only with
             * request_terminate_timeout_track_finished */
            if (!pool->track_finished || !pool->terminate_ms ||
                t->now_ns - x->since_ns < (uint64_t)pool->terminate_ms * 1000000u)
                continue;
            rf_log(RF_LOG_WARNING,
                   "[pool %s] child %d, script of a finished request (fastcgi_finish_request) "
                   "execution timed out (%.6f sec), terminating",
                   pool->name, x->pid, (double)(t->now_ns - x->since_ns) / 1e9);
            RF_STAT_INC(&t->dstats[x->pool], terminated);
            rf_disp_kill(t, x, "request_terminate_timeout_track_finished");
            continue;
        }
        if (pool->slowlog_ms && !x->q[0]->slow &&
            t->now_ns - x->since_ns >= (uint64_t)pool->slowlog_ms * 1000000u) {
            x->q[0]->slow = 1;
            RF_STAT_INC(&t->dstats[x->pool], slow);
            d->pools[x->pool].publish = 1;
        }
        if (!pool->terminate_ms ||
            t->now_ns - x->since_ns < (uint64_t)pool->terminate_ms * 1000000u)
            continue;
        char sbuf[256], rbuf[512];
        rf_log(RF_LOG_WARNING,
               "[pool %s] child %d, script '%s' (request: \"%s\") execution timed out (%.6f "
               "sec), terminating",
               pool->name, x->pid, rf_req_script(x->q[0]->r, sbuf, sizeof(sbuf)),
               rf_req_line(x->q[0]->r, rbuf, sizeof(rbuf)),
               (double)(t->now_ns - x->since_ns) / 1e9);
        RF_STAT_INC(&t->dstats[x->pool], terminated);
        rf_disp_kill(t, x, "request_terminate_timeout");
    }
}
