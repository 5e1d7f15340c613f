/*
 * rf_uring: the io_uring backend. One ring per responder thread, created by
 * that thread (SINGLE_ISSUER | DEFER_TASKRUN: completions are processed
 * only when we ask, in one batch). Multishot accept per listener, multishot
 * recv into a provided-buffer ring, at most one sendmsg in flight per
 * connection, cancel-then-close. The loop is submit-and-wait, walk every
 * CQE, advance once. user_data carries op, slot and generation, so a
 * completion for a connection that has since gone is recognised and
 * dropped (its buffer, if any, goes back to the ring).
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rf_io_int.h"
#include "rf_log.h"
#include "rf_mem.h"

enum {
    RF_OP_ACCEPT = 1,
    RF_OP_RECV,
    RF_OP_SEND,
    RF_OP_CANCEL,
    RF_OP_CLOSE,
    RF_OP_WATCH,
    RF_OP_UNWATCH,
};

#define RF_BGID 0

/* IORING_OP_FUTEX_WAKE (Linux 6.7); liburing 2.3 predates it. */
#define RF_IORING_OP_FUTEX_WAKE 52
#define RF_FUTEX2_SIZE_U32      0x02

/* What the kernel reads while a send is in flight. */
typedef struct rf_sendctx {
    struct msghdr msg;
    struct iovec iov[RF_IOV_MAX];
    struct rf_sendctx *next;
} rf_sendctx_t;

typedef struct rf_uring {
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    int br_mask;
    int br_pending; /* buffers added since the last advance */
    rf_sendctx_t *send_free;
    uint64_t *accept_retry_ns; /* per listener: 0 armed, else when to re-arm */
} rf_uring_t;

static struct io_uring_sqe *rf_uring_sqe(rf_uring_t *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL) {
        /* SQ full: push what we have and take the freed slot. */
        io_uring_submit(&u->ring);
        sqe = io_uring_get_sqe(&u->ring);
    }
    RF_ASSERT(sqe != NULL);
    return sqe;
}

static int rf_uring_init(rf_thread_t *t)
{
    rf_uring_t *u = rf_calloc(1, sizeof(*u));
    if (u == NULL)
        return -ENOMEM;
    t->be_data = u;

    uint32_t entries = t->io->conf->ring_entries ? t->io->conf->ring_entries : 4096;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
              IORING_SETUP_CQSIZE;
    p.cq_entries = entries * 4;
    int rc = io_uring_queue_init_params(entries, &u->ring, &p);
    if (rc == -EINVAL) {
        /* Kernel older than 6.1: no DEFER_TASKRUN. Still correct without. */
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, &u->ring, &p);
    }
    if (rc < 0) {
        u->ring.ring_fd = -1;
        return rc;
    }

    /* The provided-buffer ring, filled by hand (liburing 2.3 has no
     * io_uring_setup_buf_ring). */
    u->br_bytes = t->rbuf_count * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, u->br_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED)
        return -errno;
    u->br = br;
    io_uring_buf_ring_init(u->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)u->br;
    reg.ring_entries = t->rbuf_count;
    reg.bgid = RF_BGID;
    rc = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (rc < 0)
        return rc;
    u->br_mask = io_uring_buf_ring_mask(t->rbuf_count);
    for (uint32_t i = 0; i < t->rbuf_count; i++)
        io_uring_buf_ring_add(u->br, t->rbufs[i].data, t->rbuf_size, (unsigned short)i, u->br_mask,
                              (int)i);
    io_uring_buf_ring_advance(u->br, (int)t->rbuf_count);
    t->rbuf_free = t->rbuf_count;

    struct io_uring_probe *probe = io_uring_get_probe_ring(&u->ring);
    t->futex_wake_ok = probe && io_uring_opcode_supported(probe, RF_IORING_OP_FUTEX_WAKE);
    if (probe)
        io_uring_free_probe(probe);

    u->accept_retry_ns = rf_calloc((size_t)t->io->nlisteners, sizeof(uint64_t));
    if (u->accept_retry_ns == NULL)
        return -ENOMEM;
    return 0;
}

static void rf_uring_fini(rf_thread_t *t)
{
    rf_uring_t *u = t->be_data;
    if (u == NULL)
        return;
    if (u->ring.ring_fd >= 0)
        io_uring_queue_exit(&u->ring);
    if (u->br)
        munmap(u->br, u->br_bytes);
    rf_sendctx_t *s, *next;
    for (s = u->send_free; s; s = next) {
        next = s->next;
        rf_free(s);
    }
    rf_free(u->accept_retry_ns);
    rf_free(u);
    t->be_data = NULL;
}

static int rf_listener_fd(rf_thread_t *t, const rf_listener_t *l)
{
    return l->shared ? l->fds[0] : l->fds[t->idx];
}

static void rf_uring_arm_accept(rf_thread_t *t, int li)
{
    rf_uring_t *u = t->be_data;
    rf_listener_t *l = &t->io->listeners[li];
    struct io_uring_sqe *sqe = rf_uring_sqe(u);
    io_uring_prep_multishot_accept(sqe, rf_listener_fd(t, l), NULL, NULL,
                                   SOCK_NONBLOCK | SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, rf_io_user_data(RF_OP_ACCEPT, (uint32_t)li, 0));
    u->accept_retry_ns[li] = 0;
}

static int rf_uring_listen(rf_thread_t *t)
{
    for (int i = 0; i < t->io->nlisteners; i++)
        rf_uring_arm_accept(t, i);
    return 0;
}

static void rf_uring_unlisten(rf_thread_t *t)
{
    rf_uring_t *u = t->be_data;
    for (int i = 0; i < t->io->nlisteners; i++) {
        if (u->accept_retry_ns[i]) {
            u->accept_retry_ns[i] = 0; /* not armed: waiting to retry */
            continue;
        }
        struct io_uring_sqe *sqe = rf_uring_sqe(u);
        io_uring_prep_cancel64(sqe, rf_io_user_data(RF_OP_ACCEPT, (uint32_t)i, 0), 0);
        io_uring_sqe_set_data64(sqe, rf_io_user_data(RF_OP_UNWATCH, 0, 0));
    }
}

static void rf_uring_arm_recv(rf_thread_t *t, rf_conn_t *c)
{
    rf_uring_t *u = t->be_data;
    struct io_uring_sqe *sqe = rf_uring_sqe(u);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = RF_BGID;
    io_uring_sqe_set_data64(sqe, rf_io_user_data(RF_OP_RECV, c->slot, c->gen));
    c->recv_armed = 1;
    c->inflight++;
}

static int rf_uring_conn_start(rf_thread_t *t, rf_conn_t *c)
{
    rf_uring_arm_recv(t, c);
    return 0;
}

static void rf_uring_flush(rf_thread_t *t, rf_conn_t *c)
{
    rf_uring_t *u = t->be_data;
    if (c->send_busy || c->dead)
        return;
    rf_sendctx_t *s = u->send_free;
    if (s)
        u->send_free = s->next;
    else if ((s = rf_malloc(sizeof(*s))) == NULL) {
        rf_conn_close(t, c);
        return;
    }
    size_t bytes;
    int n = rf_conn_iov(c, s->iov, RF_IOV_MAX, &bytes);
    RF_ASSERT(n > 0);
    memset(&s->msg, 0, sizeof(s->msg));
    s->msg.msg_iov = s->iov;
    s->msg.msg_iovlen = (size_t)n;
    c->be_send = s;
    c->sending = bytes;
    c->send_busy = 1;
    c->inflight++;
    struct io_uring_sqe *sqe = rf_uring_sqe(u);
    io_uring_prep_sendmsg(sqe, c->fd, &s->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, rf_io_user_data(RF_OP_SEND, c->slot, c->gen));
}

/* Once the kernel holds nothing of c, close its fd through the ring. */
static void rf_uring_finish_close(rf_thread_t *t, rf_conn_t *c)
{
    if (!c->dead || c->inflight || c->fd_closed)
        return;
    rf_uring_t *u = t->be_data;
    struct io_uring_sqe *sqe = rf_uring_sqe(u);
    io_uring_prep_close(sqe, c->fd);
    io_uring_sqe_set_data64(sqe, rf_io_user_data(RF_OP_CLOSE, c->slot, c->gen));
    c->inflight++;
}

static void rf_uring_close(rf_thread_t *t, rf_conn_t *c)
{
    rf_uring_t *u = t->be_data;
    if (c->recv_armed || c->send_busy) {
        struct io_uring_sqe *sqe = rf_uring_sqe(u);
        io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, rf_io_user_data(RF_OP_CANCEL, c->slot, c->gen));
        c->inflight++;
        return;
    }
    rf_uring_finish_close(t, c);
}

static void rf_uring_rbuf_return(rf_thread_t *t, rf_rbuf_t *b)
{
    rf_uring_t *u = t->be_data;
    io_uring_buf_ring_add(u->br, b->data, t->rbuf_size, b->bid, u->br_mask, u->br_pending++);
    t->rbuf_free++;
}

static void rf_uring_publish_bufs(rf_thread_t *t)
{
    rf_uring_t *u = t->be_data;
    if (u->br_pending) {
        io_uring_buf_ring_advance(u->br, u->br_pending);
        u->br_pending = 0;
    }
    /* Connections that ran dry resume once a quarter of the buffers is back
     * (closed ones just leave the list; their memory is freed after). */
    if (t->starved && (t->rbuf_free >= t->rbuf_count / 4 || t->stop)) {
        rf_conn_t *c = t->starved;
        t->starved = NULL;
        for (; c; c = c->starved_next) {
            c->starved = 0;
            if (!c->dead && !c->recv_armed)
                rf_uring_arm_recv(t, c);
        }
    }
}

static void rf_uring_cqe_recv(rf_thread_t *t, struct io_uring_cqe *cqe, rf_conn_t *c)
{
    int res = cqe->res;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        rf_rbuf_t *b = &t->rbufs[cqe->flags >> IORING_CQE_BUFFER_SHIFT];
        t->rbuf_free--;
        b->ref.refs = 1;
        if (c && res > 0)
            rf_conn_data(t, c, b->data, (size_t)res, &b->ref);
        rf_ref_put(&b->ref);
    }
    if (c == NULL || (cqe->flags & IORING_CQE_F_MORE))
        return;
    c->recv_armed = 0;
    c->inflight--;
    if (c->dead) {
        rf_uring_finish_close(t, c);
        return;
    }
    if (res == -ENOBUFS) {
        /* Backpressure, not an error: resume when buffers come back. */
        RF_STAT_INC(&t->stats, enobufs);
        c->starved = 1;
        c->starved_next = t->starved;
        t->starved = c;
    } else if (res > 0) {
        rf_uring_arm_recv(t, c); /* the kernel ended the multishot; re-arm */
    } else {
        rf_conn_eof(t, c, res);
        if (!c->dead && res == 0 && c->closing)
            return; /* flushing the last response, then close */
    }
}

static void rf_uring_cqe(rf_thread_t *t, struct io_uring_cqe *cqe)
{
    rf_uring_t *u = t->be_data;
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    uint8_t op = ud & 0xff;
    uint32_t slot = (uint32_t)(ud >> 8) & 0xffffff;
    uint32_t gen = (uint32_t)(ud >> 32);
    rf_conn_t *c;

    switch (op) {
    case RF_OP_ACCEPT: {
        rf_listener_t *l = &t->io->listeners[slot];
        if (cqe->res >= 0) {
            rf_conn_accepted(t, l, cqe->res);
        } else if (cqe->res != -ECANCELED && !t->draining) {
            RF_STAT_INC(&t->stats, accept_errors);
            rf_log(RF_LOG_ERROR, "[pool %s] accept failed: %s", l->pool->name, strerror(-cqe->res));
        }
        if (!(cqe->flags & IORING_CQE_F_MORE) && !t->stop && !t->draining) {
            /* After an error (EMFILE...), wait a little before retrying. */
            if (cqe->res < 0)
                u->accept_retry_ns[slot] = t->now_ns + 100000000u;
            else
                rf_uring_arm_accept(t, (int)slot);
        }
        return;
    }
    case RF_OP_RECV:
        rf_uring_cqe_recv(t, cqe, rf_conn_lookup(t, slot, gen));
        return;
    case RF_OP_SEND: {
        c = rf_conn_lookup(t, slot, gen);
        if (c == NULL)
            return;
        rf_sendctx_t *s = c->be_send;
        s->next = u->send_free;
        u->send_free = s;
        c->be_send = NULL;
        c->send_busy = 0;
        c->inflight--;
        if (c->dead) {
            rf_uring_finish_close(t, c);
        } else if (cqe->res >= 0) {
            rf_conn_sent(t, c, (size_t)cqe->res);
        } else {
            rf_conn_eof(t, c, cqe->res);
            rf_uring_finish_close(t, c);
        }
        return;
    }
    case RF_OP_CANCEL:
        c = rf_conn_lookup(t, slot, gen);
        if (c) {
            c->inflight--;
            rf_uring_finish_close(t, c);
        }
        return;
    case RF_OP_CLOSE:
        c = rf_conn_lookup(t, slot, gen);
        if (c) {
            c->inflight--;
            rf_conn_fd_closed(t, c);
        }
        return;
    case RF_OP_WATCH:
        if (cqe->res == -ECANCELED || cqe->res == -ENOENT)
            return;
        rf_disp_event(t, slot, gen, cqe->res);
        if (!(cqe->flags & IORING_CQE_F_MORE) && cqe->res >= 0) {
            /* The kernel ended the multishot poll: re-arm it unless the
             * watch is gone (rf_disp_event dropped a stale tag). */
            rf_disp_rewatch(t, slot, gen);
        }
        return;
    case RF_OP_UNWATCH:
        return;
    }
    RF_ASSERT(!"unknown io_uring completion");
}

static int rf_uring_watch(rf_thread_t *t, int fd, uint32_t tag, uint32_t gen)
{
    rf_uring_t *u = t->be_data;
    struct io_uring_sqe *sqe = rf_uring_sqe(u);
    io_uring_prep_poll_multishot(sqe, fd, POLLIN);
    io_uring_sqe_set_data64(sqe, rf_io_user_data(RF_OP_WATCH, tag, gen));
    return 0;
}

static void rf_uring_unwatch(rf_thread_t *t, int fd, uint32_t tag, uint32_t gen)
{
    rf_uring_t *u = t->be_data;
    struct io_uring_sqe *sqe = rf_uring_sqe(u);
    io_uring_prep_poll_remove(sqe, rf_io_user_data(RF_OP_WATCH, tag, gen));
    io_uring_sqe_set_data64(sqe, rf_io_user_data(RF_OP_UNWATCH, 0, 0));
    /* The removal completes before the fd may be closed: the kernel holds
     * its own file reference for the poll, so closing right after is safe. */
    (void)fd;
}

static void rf_uring_futex_wake(rf_thread_t *t, uint32_t *uaddr)
{
    rf_uring_t *u = t->be_data;
    struct io_uring_sqe *sqe = rf_uring_sqe(u);
    io_uring_prep_rw(RF_IORING_OP_FUTEX_WAKE, sqe, RF_FUTEX2_SIZE_U32, uaddr, 0, 0);
    sqe->addr = (uint64_t)(uintptr_t)uaddr;
    sqe->off = INT32_MAX;     /* addr2: how many to wake */
    sqe->addr3 = 0xffffffffu; /* FUTEX_BITSET_MATCH_ANY */
    sqe->rw_flags = 0;
    io_uring_sqe_set_data64(sqe, rf_io_user_data(RF_OP_UNWATCH, 0, 0));
}

static int rf_uring_poll(rf_thread_t *t, int timeout_ms)
{
    rf_uring_t *u = t->be_data;
    rf_uring_publish_bufs(t);
    for (int i = 0; i < t->io->nlisteners; i++)
        if (u->accept_retry_ns[i] && u->accept_retry_ns[i] <= t->now_ns && !t->stop && !t->draining)
            rf_uring_arm_accept(t, i);

    struct __kernel_timespec ts = {
        .tv_sec = timeout_ms / 1000,
        .tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
    };
    struct io_uring_cqe *cqe;
    int rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY)
        return rc;

    t->now_ns = rf_now_ns();
    unsigned head, n = 0;
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        rf_uring_cqe(t, cqe);
        n++;
    }
    io_uring_cq_advance(&u->ring, n);
    rf_uring_publish_bufs(t);
    return (int)n;
}

const rf_backend_ops_t rf_uring_ops = {
    .name = "io_uring",
    .init = rf_uring_init,
    .fini = rf_uring_fini,
    .listen = rf_uring_listen,
    .unlisten = rf_uring_unlisten,
    .conn_start = rf_uring_conn_start,
    .flush = rf_uring_flush,
    .close = rf_uring_close,
    .poll = rf_uring_poll,
    .rbuf_return = rf_uring_rbuf_return,
    .watch = rf_uring_watch,
    .watch_edge = 1,
    .unwatch = rf_uring_unwatch,
    .futex_wake = rf_uring_futex_wake, /* used when t->futex_wake_ok */
};
