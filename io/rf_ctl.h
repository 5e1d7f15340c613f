/*
 * rf_ctl: the control messages between the master process and the
 * responder, one SOCK_SEQPACKET socketpair per responder thread (so a
 * thread reads its own socket and nothing crosses threads). Each message is
 * one fixed-size record, optionally carrying descriptors (SCM_RIGHTS).
 *
 *   master -> thread   EXEC_UP: an executor of `pool` started, id/pid;
 *                      fds: channel memfd, channel eventfd, pidfd, body
 *                      socket (the responder's end of the BODY_FD pair)
 *   thread -> master   SPAWN: `pool` wants `arg` more executors (the master
 *                      clamps to pm.max_children and max_spawn_rate)
 *                      RETIRE: executor `id` is idle and withdrawn from
 *                      dispatch: stop it
 *                      KILL: executor `id` ran past request_terminate_timeout
 *                      (the responder already answered its request)
 *   master -> thread   COMING: `arg` executors of `pool` are being started
 *                      for this thread on the master's own account
 *                      (pm.start_servers, static respawns): counted as on
 *                      their way until their EXEC_UP, or a SPAWN reply
 *                      (refused count) when a start fails
 *   master -> thread   POOL_SET: `pool`'s process-manager and queue settings
 *                      changed (a reload): the values in `set`
 *                      RETIRE_OLD: a reload's new generation `arg` is up:
 *                      every executor of an older generation takes no new
 *                      request; idle ones are retired at once (RETIRE back
 *                      to the master), busy ones when their requests end
 *
 * Every EXEC_UP carries its executor's generation (`gen`): 1 at start, one
 * more for each reload. The layout of this record is part of the reload
 * handoff (RF_CTL_PROTO): a master re-executed from a binary with another
 * layout restarts the responder instead of adopting it.
 *
 * The master never trusts anything but the type/pool/id ranges it checks;
 * the responder trusts the master (its parent).
 */
#ifndef RF_CTL_H
#define RF_CTL_H

#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum rf_ctl_type {
    RF_CTL_EXEC_UP = 1,
    RF_CTL_SPAWN = 2,
    RF_CTL_RETIRE = 3,
    RF_CTL_KILL = 4,
    RF_CTL_COMING = 5,
    RF_CTL_POOL_SET = 6,
    RF_CTL_RETIRE_OLD = 7,
    /* responder -> master, once, on the start-up socket (not a control
     * socket): LISTEN carries `arg` (<= RF_CTL_MAX_FDS) of its listening
     * sockets, READY ends the list, arg = 1 when it started */
    RF_CTL_LISTEN = 8,
    RF_CTL_READY = 9,
};

/* Bumped whenever rf_ctl_msg_t or the meaning of a message changes. */
#define RF_CTL_PROTO 3

/* POOL_SET: indexes into rf_ctl_msg_t.set */
enum rf_ctl_set {
    RF_SET_PM = 0,
    RF_SET_MAX_CHILDREN,
    RF_SET_MIN_SPARE,
    RF_SET_MAX_SPARE,
    RF_SET_MAX_SPAWN_RATE,
    RF_SET_IDLE_TIMEOUT_MS,
    RF_SET_QUEUE_MAX,
    RF_SET_QUEUE_TIMEOUT_MS,
    RF_SET_TERMINATE_MS,
    RF_SET_SLOWLOG_MS,
    RF_SET_OVERLOAD_FCGI,
    RF_SET_TRACK_FINISHED,
    RF_SET_COUNT
};

#define RF_CTL_MAX_FDS 4

typedef struct rf_ctl_msg {
    uint32_t type;
    uint32_t pool;
    uint32_t id; /* executor id: unique for the master's lifetime */
    int32_t pid;
    uint32_t arg;
    uint32_t gen;               /* EXEC_UP: the executor's generation */
    uint64_t arg64;             /* EXEC_UP: the executor's max_requests (0 = none) */
    uint32_t set[RF_SET_COUNT]; /* POOL_SET */
} rf_ctl_msg_t;

/* Send one message with nfds descriptors (nfds <= RF_CTL_MAX_FDS). Blocking
 * socket or not, a full queue gives -EAGAIN. Returns 0 or -errno. */
int rf_ctl_send(int sock, const rf_ctl_msg_t *m, const int *fds, int nfds);

/* Receive one message: returns 1 with *m and up to RF_CTL_MAX_FDS fds in
 * fds (*nfds of them, close-on-exec), 0 when nothing is queued
 * (non-blocking socket), -EPIPE when the peer closed, -EPROTO for a short
 * or oversized message (its fds are closed), or -errno. */
int rf_ctl_recv(int sock, rf_ctl_msg_t *m, int *fds, int *nfds);

#ifdef __cplusplus
}
#endif

#endif
