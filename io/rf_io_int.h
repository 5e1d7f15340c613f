/*
 * rf_io_int: what the pieces of io/ share and nobody else sees: the
 * responder thread, the connection, receive buffers, output blocks and the
 * backend function table (io_uring and epoll implement it). Everything here
 * belongs to one responder thread; the only cross-thread reads are stats
 * counters (relaxed atomics) and the stop flag.
 */
#ifndef RF_IO_INT_H
#define RF_IO_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/uio.h>

#include "rf_arena.h"
#include "rf_assert.h"
#include "rf_io.h"
#include "rf_proto.h"

#define RF_CONN_MAGIC   0x434f4e4eu /* "CONN" */
#define RF_THREAD_MAGIC 0x54485244u /* "THRD" */
#define RF_IOV_MAX      64
#define RF_OBLK_SIZE    16384

typedef struct rf_thread rf_thread_t;
typedef struct rf_conn rf_conn_t;

/* Doubly linked list node, for timer lists. */
typedef struct rf_link {
    struct rf_link *prev, *next;
} rf_link_t;

static inline void rf_link_init(rf_link_t *l)
{
    l->prev = l->next = l;
}

static inline int rf_link_empty(const rf_link_t *l)
{
    return l->next == l;
}

static inline void rf_link_remove(rf_link_t *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

static inline void rf_link_append(rf_link_t *head, rf_link_t *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}

#define rf_container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/*
 * A receive buffer. Owned by the kernel while it sits in the io_uring
 * buffer ring (or the epoll free list); owned by the thread from the
 * completion that fills it until its last reference is dropped.
 */
typedef struct rf_rbuf {
    rf_ref_t ref;
    rf_thread_t *t;
    uint8_t *data;
    uint16_t bid;
    struct rf_rbuf *next_free; /* epoll free list */
} rf_rbuf_t;

/* A block of response bytes waiting to be sent: [start, end) of data. */
typedef struct rf_oblk {
    struct rf_oblk *next;
    uint32_t start;
    uint32_t end;
    uint32_t cap;
    uint8_t data[];
} rf_oblk_t;

/* A listener: one socket per thread for TCP (SO_REUSEPORT), or one shared
 * unix socket. */
typedef struct rf_listener {
    const rf_io_pool_t *pool;
    int pool_idx;
    int unix_sock;
    int shared;               /* one socket for every thread: unix, or an inherited TCP
                               * socket without SO_REUSEPORT */
    int *fds;                 /* per thread, or fds[0] for all (shared) */
    struct in6_addr *allowed; /* listen.allowed_clients (IPv4 as v4-mapped) */
    int nallowed;             /* 0 = everyone */
} rf_listener_t;

/* listen.allowed_clients: may the peer of fd connect? Logs a refusal. */
int rf_listen_allowed(const rf_listener_t *l, int fd);

enum rf_timer_kind {
    RF_TIMER_NONE = 0,
    RF_TIMER_READ,   /* a request (or the first record) is arriving */
    RF_TIMER_IDLE,   /* keep-alive, nothing in flight */
    RF_TIMER_LINGER, /* error answer sent, write side shut, draining input */
    RF_TIMER_KINDS = RF_TIMER_LINGER,
};

/*
 * A connection. Lives on one thread for its whole life. The fd is closed
 * once no kernel operation references it any more (uring: inflight == 0);
 * the struct itself lives on while requests handed to a handler (nlive)
 * still point at it.
 */
struct rf_conn {
    uint32_t magic;
    uint32_t gen; /* generation of the slot: stale completions are dropped */
    uint32_t slot;
    int fd;
    rf_thread_t *t;
    const rf_io_pool_t *pool;
    int pool_idx;

    uint8_t recv_armed; /* uring: multishot recv in flight */
    uint8_t send_busy;  /* uring: a send in flight (at most one) */
    uint8_t closing;    /* flush what is queued, then close */
    uint8_t dead;       /* closed or closing hard: no more I/O */
    uint8_t in_dirty;   /* on the thread's flush list */
    uint8_t starved;    /* uring: recv stopped for lack of buffers */
    uint8_t timer;      /* enum rf_timer_kind */
    uint8_t want_out;   /* epoll: EPOLLOUT registered */
    uint8_t fd_closed;
    uint8_t linger;    /* after flushing: shut the write side, drain, close */
    uint8_t lingering; /* write side shut, waiting for the peer's EOF */
    uint16_t inflight; /* uring: operations the kernel still holds */
    uint32_t nlive;    /* requests handed to a handler, not yet ended */

    rf_oblk_t *out_head;
    rf_oblk_t *out_tail;
    size_t out_bytes;
    size_t sending; /* bytes of the send in flight */
    void *be_send;  /* uring: msghdr + iovecs of the send in flight; the
                       kernel reads them until the send's completion */

    rf_link_t tlink; /* in the thread's timer list for `timer` */
    uint64_t deadline_ns;
    rf_conn_t *dirty_next;
    rf_conn_t *zombie_next; /* own link: a zombie may still be on the dirty list */
    rf_conn_t *starved_next;

    rf_proto_t proto;
};

typedef struct rf_io_stats {
    uint64_t accepted;
    uint64_t active; /* gauge: open connections */
    uint64_t limit_connections;
    uint64_t timeouts_read;
    uint64_t timeouts_idle;
    uint64_t accept_errors;
    uint64_t enobufs;
    uint64_t closed_errors; /* connections closed on a socket error */
} rf_io_stats_t;

/* Backend function table: io_uring and epoll implement the same verbs. */
typedef struct rf_backend_ops {
    const char *name;
    int (*init)(rf_thread_t *t);
    void (*fini)(rf_thread_t *t);
    /* Start accepting on every listener. */
    int (*listen)(rf_thread_t *t);
    /* Stop accepting for good (graceful stop): cancel or unregister every
     * listener and never re-arm one; the sockets themselves are closed by
     * the main thread afterwards (rf_listen_shut). */
    void (*unlisten)(rf_thread_t *t);
    /* A new connection: start receiving. */
    int (*conn_start)(rf_thread_t *t, rf_conn_t *c);
    /* Push queued output (called at the end of a loop iteration). */
    void (*flush)(rf_thread_t *t, rf_conn_t *c);
    /* Stop all I/O and close the fd (possibly later, when the kernel
     * lets go); rf_conn_fd_closed() is called once it is closed. */
    void (*close)(rf_thread_t *t, rf_conn_t *c);
    /* Wait up to timeout_ms for events and dispatch them. */
    int (*poll)(rf_thread_t *t, int timeout_ms);
    /* Give a receive buffer back (its last reference went away). */
    void (*rbuf_return)(rf_thread_t *t, rf_rbuf_t *b);
    /* Watch fd for readability until unwatch: every time it becomes
     * readable rf_disp_event(t, tag, gen, res) runs (tag < 2^24). The fd
     * must stay open until unwatch. */
    int (*watch)(rf_thread_t *t, int fd, uint32_t tag, uint32_t gen);
    /* Whether a watch reports each wake-up of the fd rather than its state
     * (io_uring's multishot poll): an executor's doorbell eventfd then
     * needs no read(2) to keep it from firing again. */
    int watch_edge;
    void (*unwatch)(rf_thread_t *t, int fd, uint32_t tag, uint32_t gen);
    /* FUTEX_WAKE a shared futex word (an executor's doorbell); io_uring
     * batches it into the next submit. NULL: the channel wakes itself. */
    void (*futex_wake)(rf_thread_t *t, uint32_t *uaddr);
} rf_backend_ops_t;

/* Per pool and responder thread: the dispatcher's counters and gauges
 * (written by the owning thread, read by the status page). */
typedef struct rf_disp_stats {
    uint64_t accepted;       /* requests handed to an executor */
    uint64_t queued;         /* requests that had to wait */
    uint64_t queue_full;     /* refused: request.queue_max */
    uint64_t queue_timeouts; /* refused: request.queue_timeout */
    uint64_t queue_aborted;  /* client went away while queued */
    uint64_t failed;         /* executor died under the request */
    uint64_t terminated;     /* request_terminate_timeout kills */
    uint64_t maxed;          /* a request queued with pm.max_children running */
    uint64_t slow;           /* requests that ran past request_slowlog_timeout */
    uint64_t conns;          /* connections accepted on the pool's listener */
    uint64_t answered;       /* ping and status requests the responder answered */
    uint32_t idle, active, total, queue;
    uint32_t max_queue, max_active;
} rf_disp_stats_t;

extern const rf_backend_ops_t rf_uring_ops;
extern const rf_backend_ops_t rf_epoll_ops;

struct rf_io {
    const rf_io_conf_t *conf;
    rf_io_conf_t conf_copy;
    int backend;
    const rf_backend_ops_t *be;
    int nthreads;
    rf_thread_t *threads;
    rf_listener_t *listeners;
    int nlisteners;
    uint64_t max_conns_per_thread;
    int board_owned; /* conf->board was made by rf_io_start */
};

struct rf_thread {
    uint32_t magic;
    int idx;
    rf_io_t *io;
    const rf_backend_ops_t *be;
    void *be_data;
    pthread_t tid;
    int cpu; /* -1: not pinned */
    int stop;
    int started; /* 1 ok, -errno failed */
    /* Graceful stop (rf_io_drain): `drain` is set by the main thread; the
     * thread then stops accepting (`draining`, its own), says so in
     * `unlistened`, and sets `drained` once it has no connection left. */
    int drain;
    int draining;
    int unlistened;
    int drained;

    rf_conn_t **slots; /* connection table; index is part of user_data */
    uint32_t nslots;
    uint32_t *free_slots;
    uint32_t nfree_slots;
    uint32_t gen;
    uint32_t nconns; /* open connections on this thread */

    rf_conn_t *dirty;   /* connections with output to push */
    rf_conn_t *starved; /* uring: connections waiting for receive buffers */
    rf_conn_t *zombies; /* closed connections waiting to be freed */
    rf_link_t *timers;  /* [pool * RF_TIMER_KINDS + kind - 1]: FIFO by deadline */

    rf_arena_pool_t arena_pool;
    rf_rbuf_t *rbufs;
    uint8_t *rbuf_mem;
    uint32_t rbuf_size;
    uint32_t rbuf_count;
    uint32_t rbuf_free; /* buffers the kernel (or free list) holds */
    rf_rbuf_t *rbuf_free_list;
    rf_oblk_t *oblk_free;
    uint32_t noblk_free;

    uint64_t now_ns;
    uint64_t next_timer_ns;
    uint64_t next_relieve_ns;

    rf_proto_stats_t pstats;
    rf_io_stats_t stats;

    void *disp;              /* rf_disp.c: executors, queues (NULL: none) */
    int futex_wake_ok;       /* the backend batches executor wake-ups */
    rf_disp_stats_t *dstats; /* [npools] */
};

/* ---- rf_conn.c: what the backends call ---------------------------------- */

/* A connection was accepted on listener l (fd is non-blocking). */
void rf_conn_accepted(rf_thread_t *t, rf_listener_t *l, int fd);
/* Bytes arrived; owner is the buffer's reference (may be NULL). */
void rf_conn_data(rf_thread_t *t, rf_conn_t *c, const uint8_t *p, size_t n, rf_ref_t *owner);
/* The peer closed (err == 0) or the socket failed (err < 0). */
void rf_conn_eof(rf_thread_t *t, rf_conn_t *c, int err);
/* n bytes of the queued output went out. */
void rf_conn_sent(rf_thread_t *t, rf_conn_t *c, size_t n);
/* The backend closed c's fd; the struct may be freed when nothing else
 * points at it. */
void rf_conn_fd_closed(rf_thread_t *t, rf_conn_t *c);
/* A closing connection has sent everything: close it (or linger first). */
void rf_conn_finish(rf_thread_t *t, rf_conn_t *c);
/* Close c at once (error, timeout, shutdown). */
void rf_conn_close(rf_thread_t *t, rf_conn_t *c);
/* Graceful stop begins on t: close every idle keep-alive connection; the
 * others close once their requests are answered (no more keep-alive). */
void rf_conn_drain(rf_thread_t *t);
/* Look a connection up by slot and generation (NULL when stale). */
rf_conn_t *rf_conn_lookup(rf_thread_t *t, uint32_t slot, uint32_t gen);
/* Fill iov with queued output; returns the count and the bytes. */
int rf_conn_iov(rf_conn_t *c, struct iovec *iov, int max, size_t *bytes);
/* After the loop walked its events: push output, run timers. */
void rf_thread_after_events(rf_thread_t *t);
/* Receive buffer reference dropped to zero. */
void rf_rbuf_release(rf_ref_t *ref);

static inline uint64_t rf_io_user_data(uint8_t op, uint32_t slot, uint32_t gen)
{
    return ((uint64_t)gen << 32) | ((uint64_t)(slot & 0xffffff) << 8) | op;
}

uint64_t rf_now_ns(void);

/* ---- rf_disp.c: PHP executors -------------------------------------------- */

/* Per thread: executors arrive over the thread's control socket. */
int rf_disp_thread_init(rf_thread_t *t);
void rf_disp_thread_fini(rf_thread_t *t);
/* A watched fd (control socket, doorbell, pidfd) became readable. */
void rf_disp_event(rf_thread_t *t, uint32_t tag, uint32_t gen, int res);
/* io_uring ended a multishot watch on its own: arm it again if still live. */
void rf_disp_rewatch(rf_thread_t *t, uint32_t tag, uint32_t gen);
/* Before the loop sleeps: arm the doorbells; 1 = a response is already
 * waiting, do not sleep. */
int rf_disp_idle(rf_thread_t *t);
/* After the events of a loop turn: read responses, dispatch, timers. */
void rf_disp_run(rf_thread_t *t);
/* Write the pools whose counters changed to the scoreboard (once per loop
 * turn, and before the status page reads it). */
void rf_disp_publish(rf_thread_t *t);
/* A complete request for a PHP pool / its client went away. */
void rf_disp_start(rf_req_t *r);
void rf_disp_abort(rf_req_t *r);

/* ---- rf_listen.c ---------------------------------------------------------- */

/* Open the listeners of every pool (TCP: nthreads sockets each). */
int rf_listen_open_all(rf_io_t *io);
int rf_listen_fds(const rf_io_t *io, int *fds, int max);
void rf_listen_close_all(rf_io_t *io);
/* Refuse new connections: shut down and close every listen socket and
 * remove the unix socket files. Threads must no longer accept on them
 * (t->unlistened); rf_listen_close_all then only frees. */
void rf_listen_shut(rf_io_t *io);

/* ---- rf_status.c ---------------------------------------------------------- */

/* Answer ping/status if r asks for them; returns 1 when answered. */
int rf_status_handle(rf_thread_t *t, rf_conn_t *c, rf_req_t *r);
/* Copy the thread's counters of pool (t->dstats) to its block of the
 * scoreboard: plain stores, no syscall; call after they change. */
void rf_status_publish(rf_thread_t *t, int pool);

#endif
