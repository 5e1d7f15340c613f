/*
 * rf_epoll: the fallback backend, for kernels or sandboxes without io_uring
 * (old kernel, kernel.io_uring_disabled, a seccomp profile). Same verbs as
 * rf_uring over readiness: level-triggered EPOLLIN, reads into the thread's
 * receive buffers (a stack buffer when they are all held, so the session
 * copies what it keeps), writev-style sendmsg until EAGAIN, then EPOLLOUT.
 * A unix listener shared by all threads uses EPOLLEXCLUSIVE so one thread
 * wakes per connection.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "rf_io_int.h"
#include "rf_log.h"
#include "rf_mem.h"

enum {
    RF_EP_ACCEPT = 1,
    RF_EP_CONN,
    RF_EP_WATCH,
};

#define RF_EP_EVENTS     256
#define RF_EP_READS_MAX  16 /* reads per readiness event, for fairness */
#define RF_EP_ACCEPT_MAX 64

typedef struct rf_epoll {
    int epfd;
    struct epoll_event events[RF_EP_EVENTS];
    uint64_t *accept_retry_ns;
} rf_epoll_t;

static int rf_epoll_init(rf_thread_t *t)
{
    rf_epoll_t *e = rf_calloc(1, sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    t->be_data = e;
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0)
        return -errno;
    e->accept_retry_ns = rf_calloc((size_t)t->io->nlisteners, sizeof(uint64_t));
    if (e->accept_retry_ns == NULL)
        return -ENOMEM;
    t->rbuf_free_list = NULL;
    for (uint32_t i = t->rbuf_count; i-- > 0;) {
        t->rbufs[i].next_free = t->rbuf_free_list;
        t->rbuf_free_list = &t->rbufs[i];
    }
    t->rbuf_free = t->rbuf_count;
    return 0;
}

static void rf_epoll_fini(rf_thread_t *t)
{
    rf_epoll_t *e = t->be_data;
    if (e == NULL)
        return;
    if (e->epfd >= 0)
        close(e->epfd);
    rf_free(e->accept_retry_ns);
    rf_free(e);
    t->be_data = NULL;
}

static int rf_epoll_listener_fd(rf_thread_t *t, const rf_listener_t *l)
{
    return l->shared ? l->fds[0] : l->fds[t->idx];
}

static int rf_epoll_listen(rf_thread_t *t)
{
    rf_epoll_t *e = t->be_data;
    for (int i = 0; i < t->io->nlisteners; i++) {
        rf_listener_t *l = &t->io->listeners[i];
        struct epoll_event ev = {
            .events = EPOLLIN | (l->shared ? EPOLLEXCLUSIVE : 0),
            .data.u64 = rf_io_user_data(RF_EP_ACCEPT, (uint32_t)i, 0),
        };
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, rf_epoll_listener_fd(t, l), &ev) < 0)
            return -errno;
    }
    return 0;
}

static void rf_epoll_unlisten(rf_thread_t *t)
{
    rf_epoll_t *e = t->be_data;
    for (int i = 0; i < t->io->nlisteners; i++) {
        if (e->accept_retry_ns[i] == 0)
            epoll_ctl(e->epfd, EPOLL_CTL_DEL, rf_epoll_listener_fd(t, &t->io->listeners[i]), NULL);
        e->accept_retry_ns[i] = 0;
    }
}

static int rf_epoll_conn_start(rf_thread_t *t, rf_conn_t *c)
{
    rf_epoll_t *e = t->be_data;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLRDHUP,
        .data.u64 = rf_io_user_data(RF_EP_CONN, c->slot, c->gen),
    };
    if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        return -errno;
    return 0;
}

static void rf_epoll_want_out(rf_thread_t *t, rf_conn_t *c, int on)
{
    rf_epoll_t *e = t->be_data;
    if (c->want_out == on)
        return;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0),
        .data.u64 = rf_io_user_data(RF_EP_CONN, c->slot, c->gen),
    };
    if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = (uint8_t)on;
}

static void rf_epoll_flush(rf_thread_t *t, rf_conn_t *c)
{
    while (c->out_bytes && !c->dead) {
        struct iovec iov[RF_IOV_MAX];
        size_t bytes;
        struct msghdr msg;
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)rf_conn_iov(c, iov, RF_IOV_MAX, &bytes);
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                rf_epoll_want_out(t, c, 1);
                return;
            }
            rf_conn_eof(t, c, -errno);
            return;
        }
        int partial = (size_t)n < bytes;
        if (partial)
            rf_epoll_want_out(t, c, 1);
        rf_conn_sent(t, c, (size_t)n);
        if (partial)
            return;
    }
    if (c->dead)
        return;
    if (c->out_bytes == 0 && c->want_out)
        rf_epoll_want_out(t, c, 0); /* or a lingering close would spin on EPOLLOUT */
    if (c->out_bytes == 0 && c->closing)
        rf_conn_finish(t, c);
}

static void rf_epoll_close(rf_thread_t *t, rf_conn_t *c)
{
    /* close() drops the fd from the epoll set: we never dup it. */
    close(c->fd);
    rf_conn_fd_closed(t, c);
}

static void rf_epoll_rbuf_return(rf_thread_t *t, rf_rbuf_t *b)
{
    b->next_free = t->rbuf_free_list;
    t->rbuf_free_list = b;
    t->rbuf_free++;
}

static void rf_epoll_read(rf_thread_t *t, rf_conn_t *c)
{
    for (int i = 0; i < RF_EP_READS_MAX && !c->dead; i++) {
        rf_rbuf_t *b = t->rbuf_free_list;
        uint8_t stack[4096];
        uint8_t *dst = b ? b->data : stack;
        size_t cap = b ? t->rbuf_size : sizeof(stack);
        ssize_t n = read(c->fd, dst, cap);
        if (n > 0) {
            if (b) {
                t->rbuf_free_list = b->next_free;
                t->rbuf_free--;
                b->ref.refs = 1;
                rf_conn_data(t, c, dst, (size_t)n, &b->ref);
                rf_ref_put(&b->ref);
            } else {
                RF_STAT_INC(&t->stats, enobufs);
                rf_conn_data(t, c, dst, (size_t)n, NULL);
            }
            if ((size_t)n < cap)
                return; /* drained: skip the read that would say EAGAIN */
            continue;
        }
        if (n == 0) {
            rf_conn_eof(t, c, 0);
            if (!c->dead) {
                /* Half-closed while our last response drains: stop
                 * listening for input, or EPOLLIN would fire forever. */
                rf_epoll_t *e = t->be_data;
                struct epoll_event ev = {
                    .events = EPOLLOUT,
                    .data.u64 = rf_io_user_data(RF_EP_CONN, c->slot, c->gen),
                };
                if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
                    c->want_out = 1;
            }
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            rf_conn_eof(t, c, -errno);
        return;
    }
}

static void rf_epoll_accept(rf_thread_t *t, int li)
{
    rf_epoll_t *e = t->be_data;
    rf_listener_t *l = &t->io->listeners[li];
    int lfd = rf_epoll_listener_fd(t, l);
    for (int i = 0; i < RF_EP_ACCEPT_MAX; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            rf_conn_accepted(t, l, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN)
            return;
        RF_STAT_INC(&t->stats, accept_errors);
        rf_log(RF_LOG_ERROR, "[pool %s] accept failed: %s", l->pool->name, strerror(errno));
        /* EMFILE and friends: stop watching for a moment instead of spinning. */
        epoll_ctl(e->epfd, EPOLL_CTL_DEL, lfd, NULL);
        e->accept_retry_ns[li] = t->now_ns + 100000000u;
        return;
    }
}

static int rf_epoll_poll(rf_thread_t *t, int timeout_ms)
{
    rf_epoll_t *e = t->be_data;
    for (int i = 0; i < t->io->nlisteners; i++) {
        if (e->accept_retry_ns[i] && e->accept_retry_ns[i] <= t->now_ns) {
            rf_listener_t *l = &t->io->listeners[i];
            struct epoll_event ev = {
                .events = EPOLLIN | (l->shared ? EPOLLEXCLUSIVE : 0),
                .data.u64 = rf_io_user_data(RF_EP_ACCEPT, (uint32_t)i, 0),
            };
            epoll_ctl(e->epfd, EPOLL_CTL_ADD, rf_epoll_listener_fd(t, l), &ev);
            e->accept_retry_ns[i] = 0;
        }
    }
    int n = epoll_wait(e->epfd, e->events, RF_EP_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    t->now_ns = rf_now_ns();
    for (int i = 0; i < n; i++) {
        uint64_t ud = e->events[i].data.u64;
        uint32_t evs = e->events[i].events;
        uint8_t op = ud & 0xff;
        uint32_t slot = (uint32_t)(ud >> 8) & 0xffffff;
        if (op == RF_EP_ACCEPT) {
            if (!t->stop && !t->draining)
                rf_epoll_accept(t, (int)slot);
            continue;
        }
        if (op == RF_EP_WATCH) {
            rf_disp_event(t, slot, (uint32_t)(ud >> 32), 0);
            continue;
        }
        rf_conn_t *c = rf_conn_lookup(t, slot, (uint32_t)(ud >> 32));
        if (c == NULL || c->dead)
            continue;
        if (evs & EPOLLOUT)
            rf_epoll_flush(t, c);
        if (!c->dead && (evs & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
            rf_epoll_read(t, c);
    }
    return n;
}

/* Edge-triggered: the dispatcher drains what it watches (control messages
 * until EAGAIN, the doorbell eventfd on disarm) and drops a pidfd's watch
 * on its first event. */
static int rf_epoll_watch(rf_thread_t *t, int fd, uint32_t tag, uint32_t gen)
{
    rf_epoll_t *e = t->be_data;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLET,
        .data.u64 = rf_io_user_data(RF_EP_WATCH, tag, gen),
    };
    return epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void rf_epoll_unwatch(rf_thread_t *t, int fd, uint32_t tag, uint32_t gen)
{
    rf_epoll_t *e = t->be_data;
    epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
}

const rf_backend_ops_t rf_epoll_ops = {
    .name = "epoll",
    .init = rf_epoll_init,
    .fini = rf_epoll_fini,
    .listen = rf_epoll_listen,
    .unlisten = rf_epoll_unlisten,
    .conn_start = rf_epoll_conn_start,
    .flush = rf_epoll_flush,
    .close = rf_epoll_close,
    .poll = rf_epoll_poll,
    .rbuf_return = rf_epoll_rbuf_return,
    .watch = rf_epoll_watch,
    .unwatch = rf_epoll_unwatch,
};
