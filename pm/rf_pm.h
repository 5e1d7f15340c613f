/*
 * rf_pm: the master process. After the configuration is loaded it
 *
 *   1. forks the responder (before PHP starts, so the responder's image
 *      holds no PHP state): the responder opens the listen sockets and runs
 *      the io threads (io/rf_io.h); one control socketpair per responder
 *      thread links it to the master (io/rf_ctl.h);
 *   2. starts PHP once (rf_php_startup: php.ini, extensions, opcache's
 *      shared memory) when a pool runs PHP;
 *   3. forks executors: each gets a fresh channel (core/rf_chan.h), applies
 *      its pool's settings (rf_exec_setup) and runs rf_exec_main; the master
 *      hands the channel, an eventfd, a pidfd and the body socket to the
 *      responder thread that will drive it, then forgets them;
 *   4. loops on a signalfd and the control sockets: reaps and logs
 *      children, keeps static pools at pm.max_children, spawns what a
 *      responder thread asks for (dynamic / ondemand) within
 *      pm.max_children, stops retired executors, and shuts everything down
 *      on SIGTERM / SIGINT / SIGQUIT.
 */
#ifndef RF_PM_H
#define RF_PM_H

#include "rf_conf.h"
#include "rf_io.h"
#include "rf_php.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rf_pm_args {
    const rf_conf_t *conf;
    rf_io_conf_t *io;          /* pools[] already filled; ctl_fds set here */
    const rf_php_opts_t *php;  /* -c / -n / -d */
    int notify_fd;             /* -D: write 1 byte when ready, then close; -1 = none */
    const char *pidfile;       /* unlinked on exit; may be NULL */
    const char *conf_path;     /* for the process title */
    void (*reopen_logs)(void); /* SIGUSR1 */
    /* Reload (SIGUSR2 / SIGHUP): the program and the command line the
     * master re-executes itself with (NULL: no reload). */
    const char *exe;
    char *const *argv;
    int handoff_fd; /* >= 0: this image is a reload's (rf_reload.h) */
} rf_pm_args_t;

/* Runs until shutdown; returns the process exit status (0, or 70 when
 * start-up failed after logging why). */
int rf_pm_main(const rf_pm_args_t *a);

#ifdef __cplusplus
}
#endif

#endif
