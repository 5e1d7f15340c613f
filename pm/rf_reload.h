/*
 * rf_reload: what a master hands to the master it re-executes into on
 * SIGUSR2 / SIGHUP. The process keeps its pid, so the responder and the
 * running executors stay its children; the new image learns about them from
 * a handoff written to a memfd whose number is in RINGFPM_HANDOFF:
 *
 *   ringfpm-handoff 1
 *   proto <RF_CTL_PROTO>          fingerprint <hex>
 *   responder <pid>               gen <generation>      next_id <id>
 *   board <fd> <nslots per pool...>
 *   ctl <fd per responder thread...>
 *   x <id> <pid> <pool> <thread> <slot> <gen> <started_ns> <out_fd> <err_fd>
 *
 * The fingerprint covers what only a new responder can change (listen
 * sockets, limits, threads, backend, ping/status paths, pools): when the
 * new configuration's differs, the new master restarts the responder
 * instead of adopting it. Every descriptor named is inherited (not
 * close-on-exec).
 */
#ifndef RF_RELOAD_H
#define RF_RELOAD_H

#include <stddef.h>
#include <stdint.h>

#include "rf_io.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RF_HANDOFF_ENV "RINGFPM_HANDOFF"

typedef struct rf_handoff_exec {
    uint32_t id;
    int pid;
    int pool;
    int thread;
    int slot;
    uint32_t gen;
    uint64_t started_ns; /* CLOCK_MONOTONIC */
    int out_fd, err_fd;  /* catch_workers_output pipes, -1 = none */
} rf_handoff_exec_t;

typedef struct rf_handoff {
    uint32_t proto;       /* the sender's RF_CTL_PROTO */
    uint64_t fingerprint; /* rf_reload_fingerprint of the sender's responder */
    int responder;        /* pid */
    uint32_t gen;         /* the sender's executor generation */
    uint32_t next_id;     /* the last executor id it gave out */
    int board_fd;
    int npools;
    uint32_t *nslots; /* npools: the board's layout */
    int nthreads;
    int *ctl; /* nthreads: the master's ends of the control sockets (-1 = none) */
    rf_handoff_exec_t *xs;
    size_t nxs;
} rf_handoff_t;

/* The handoff as text in a new memfd without close-on-exec. Returns the
 * fd or -errno. */
int rf_handoff_write(const rf_handoff_t *h);

/* Parse what fd holds (and close fd). Returns 0, or -EINVAL with the
 * reason in err (nothing allocated). Free with rf_handoff_free. */
int rf_handoff_read(int fd, rf_handoff_t *h, char *err, size_t errlen);

void rf_handoff_free(rf_handoff_t *h);

/* A hash of the settings a running responder cannot change. */
uint64_t rf_reload_fingerprint(const rf_io_conf_t *io);

#ifdef __cplusplus
}
#endif

#endif
