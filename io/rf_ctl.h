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
};

#define RF_CTL_MAX_FDS 4

typedef struct rf_ctl_msg {
    uint32_t type;
    uint32_t pool;
    uint32_t id; /* executor id: unique for the master's lifetime */
    int32_t pid;
    uint32_t arg;
    uint32_t pad;
    uint64_t arg64; /* EXEC_UP: the executor's max_requests (0 = none) */
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
