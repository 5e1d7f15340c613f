/*
 * rf_io: the responder as the rest of the program sees it. Given the pools'
 * listen sockets and limits, it starts one thread per configured core, each
 * with its own event loop (io_uring, or epoll when io_uring is unavailable
 * or forced), accepts and serves FastCGI connections, answers ping and
 * status itself and passes every other complete request to the pool's
 * handler. Called from the main thread only.
 */
#ifndef RF_IO_H
#define RF_IO_H

#include <stdint.h>

#include "rf_board.h"
#include "rf_handler.h"
#include "rf_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

enum rf_io_backend {
    RF_IO_AUTO = 0,
    RF_IO_URING = 1,
    RF_IO_EPOLL = 2,
};

const char *rf_io_backend_name(int backend);

/* Parse "auto" | "io_uring" | "epoll". Returns the backend or -EINVAL. */
int rf_io_backend_parse(const char *s);

/* One pool as the responder sees it. Strings are borrowed for the
 * responder's lifetime. */
typedef struct rf_io_pool {
    const char *name;
    const char *listen;          /* "127.0.0.1:9000", "[::1]:9000", "9000", "/path.sock" */
    int backlog;                 /* -1: the kernel's somaxconn */
    int listen_mode;             /* unix socket mode, e.g. 0660 */
    const char *listen_owner;    /* unix socket owner (user name or uid); NULL = keep */
    const char *listen_group;    /* unix socket group (name or gid); NULL = owner's group */
    const char *allowed_clients; /* listen.allowed_clients: comma-separated IPs; NULL = any */
    const char *ping_path;       /* NULL: no ping */
    const char *ping_response;   /* body of the ping answer */
    const char *status_path;     /* NULL: no status page */
    /* pm.status_listen: this listener answers ping and status of pool
     * status_of - 1 (its counters, its processes) and nothing else;
     * 0 = an ordinary pool */
    int status_of;
    rf_proto_limits_t limits;
    uint32_t read_timeout_ms;    /* whole request must arrive within; 0 = none */
    const rf_handler_t *handler; /* NULL: PHP executors (the dispatcher, rf_disp.c) */

    /* PHP executors (handler == NULL): what the dispatcher needs */
    int pm;                   /* enum rf_pm_mode of pm/rf_conf.h: 1 static, 2 dynamic, 3 ondemand */
    uint32_t max_children;    /* pm.max_children */
    uint32_t min_spare;       /* pm.min_spare_servers (dynamic) */
    uint32_t max_spare;       /* pm.max_spare_servers (dynamic) */
    uint32_t max_spawn_rate;  /* pm.max_spawn_rate: executors asked for at once */
    uint32_t idle_timeout_ms; /* pm.process_idle_timeout (ondemand) */
    uint32_t queue_max;       /* request.queue_max: 0 = refuse when none is free */
    uint32_t queue_timeout_ms; /* request.queue_timeout: 0 = wait forever */
    uint32_t terminate_ms;     /* request_terminate_timeout: 0 = none */
    int track_finished;        /* request_terminate_timeout_track_finished */
    uint32_t slowlog_ms;       /* request_slowlog_timeout: counted as "slow requests" */
    int overload_fcgi;         /* refuse with FCGI_OVERLOADED instead of Status: 503 */
    uint32_t chan_ring_size;   /* rf_chan ring size both ways (0: rf_chan's default) */

    /* listen.acl_users / listen.acl_groups: comma-separated names or ids
     * given read and write by a POSIX ACL on the unix socket (instead of
     * listen_owner / listen_group); NULL = none. */
    const char *listen_acl_users;
    const char *listen_acl_groups;
} rf_io_pool_t;

typedef struct rf_io_conf {
    int threads;         /* 0 = auto: one per 4 online cpus, at least 1 */
    const int *cpu_list; /* pin thread i to cpu_list[i % ncpu]; NULL = no pinning */
    int ncpu;
    int backend;              /* enum rf_io_backend */
    uint32_t max_connections; /* 0 = unlimited */
    uint32_t idle_timeout_ms; /* keep-alive connection without a request; 0 = none */
    uint32_t ring_entries;    /* io_uring SQ size; 0 = default */
    uint32_t rbuf_size;       /* receive buffer size; 0 = default (16 KiB) */
    uint32_t rbuf_count;      /* receive buffers per thread; 0 = default (256) */
    const rf_io_pool_t *pools;
    int npools;
    /* Per responder thread: its control socket to the master (rf_ctl.h);
     * NULL when no pool has PHP executors. */
    const int *ctl_fds;
    /* The scoreboard (core/rf_board.h, laid out by rf_io_board_create) each
     * responder thread publishes its pool counters to and the status page
     * reads. The master makes it before forking the responder so executors
     * share it; NULL: rf_io_start makes a private one. */
    rf_board_t *board;
    /* The listen sockets outlive the responder (the master holds them to
     * hand them to the next one, rf_fpm_sockets.h): stopping only closes
     * the responder's descriptors, never shutdown()s a socket or unlinks a
     * unix socket's path. */
    int keep_sockets;
} rf_io_conf_t;

/* The number of responder threads rf_io_start will run for conf. */
int rf_io_thread_count(const rf_io_conf_t *conf);

/*
 * A scoreboard for conf's pools and responder threads, every pool starting
 * now: a PHP pool (handler NULL) gets twice pm.max_children process slots
 * (a reload's new generation starts while the old one finishes) plus one per
 * thread and 8 spare, for executors that are being replaced and not yet
 * reaped. With fd >= 0, the board behind that memfd is mapped instead
 * (rf_board_attach), nslots[] giving each pool's slot count it was made
 * with. The caller owns it (rf_board_destroy). Returns 0 or -errno.
 */
int rf_io_board_create(const rf_io_conf_t *conf, const uint32_t *nslots, int fd, rf_board_t **out);

typedef struct rf_io rf_io_t;

/*
 * Open the listen sockets (TCP: one per thread with SO_REUSEPORT), pick
 * the backend (logging which one runs and why) and start the threads.
 * Returns 0 with *out set, or -errno after logging the reason.
 */
int rf_io_start(rf_io_t **out, const rf_io_conf_t *conf);

/* Stop accepting, close every connection, join the threads, free. */
void rf_io_stop(rf_io_t *io);

/*
 * Graceful stop, first half: every thread stops accepting, then the listen
 * sockets are closed (new connections are refused, unix socket files
 * removed); idle keep-alive connections are closed, and every other
 * connection closes once the requests received on it are answered (no new
 * request is accepted on it after that). Returns once the sockets are
 * closed (at most about a second). Poll rf_io_drained, then rf_io_stop.
 */
void rf_io_drain(rf_io_t *io);

/* After rf_io_drain: 1 when no thread has a connection left, else 0. */
int rf_io_drained(rf_io_t *io);

/* The listening sockets (each once), up to max of them into fds; returns
 * how many. They stay the responder's. */
int rf_io_listen_fds(const rf_io_t *io, int *fds, int max);

/* The backend actually running. */
int rf_io_backend(const rf_io_t *io);

#ifdef __cplusplus
}
#endif

#endif
