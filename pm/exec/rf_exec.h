/*
 * rf_exec: the executor process's request loop. It takes REQUEST records
 * off its channel (pm/rf_chan.h), runs each through the fpm-fcgi SAPI
 * (pm/sapi/rf_php.h) and streams the output back as STDOUT / STDERR / FLUSH
 * records followed by one END per request.
 *
 * REQUEST payload (what rf_exec_encode_request lays out and what the
 * responder may also pass through verbatim from the web server's PARAMS
 * stream): the first arg0 (params_len) bytes are the params as FastCGI
 * name-value pairs (core/rf_fcgi.h), the rest is the inline body, arg1 bytes
 * long. With RF_CHAN_F_BODY_FD the body is not inline: its fd arrives over
 * opts->body_sock (SCM_RIGHTS, one fd per such request, sent before or right
 * after the record) and arg1 bytes are read from it.
 *
 * Per request the executor:
 *   - marks its scoreboard slot (opts->board) Running with the request's
 *     method, URI, query, script, user and content length, Finishing once
 *     the script returned (with its duration, cpu time and peak memory),
 *     then Idle, as php-fpm's child does;
 *   - buffers stdout (opts->out_buf bytes, default 8 KiB, like php-fpm's
 *     out_buf) and writes it as STDOUT records when full, on flush() (then a
 *     FLUSH marker follows) and at the end;
 *   - sends each PHP log message as a STDERR record, joined to the previous
 *     ones of the request with "; " (php-fpm's FCGI_STDERR format); pending
 *     stdout goes first so the order is kept;
 *   - on fastcgi_finish_request() writes what is buffered, releases the
 *     request record and sends END (app status 0, as php-fpm) at once; the
 *     script keeps running, its later output is dropped and its later log
 *     messages go to this process's stderr (fd 2) as "<msg>\n";
 *   - answers aborted() by peeking at the request ring: an ABORT for the
 *     running slot/gen at its head is consumed and the request counts as
 *     aborted from then on (writes fail, as on a dead connection). An ABORT
 *     queued behind the next REQUEST is not seen until that request is
 *     taken (it is then stale and skipped);
 *   - with an access log (opts->access_fd), formats php-fpm's line when
 *     the script returns (pm/exec/rf_access.h) and writes it after END;
 *   - releases the request record (rf_chan_exec_release) before writing
 *     END, as rf_chan.h requires, and ends with END(app status = the
 *     script's exit status, protocol status 0 = FCGI_REQUEST_COMPLETE).
 * ABORT records for requests no longer running are consumed and ignored.
 *
 * Single-threaded, in the process that inherited PHP (rf_php_startup) and
 * the channel handle from master.
 */
#ifndef RF_EXEC_H
#define RF_EXEC_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "rf_board.h"
#include "rf_chan.h"
#include "rf_php.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rf_exec_opts {
    /* pm.max_requests: return after this many requests; 0 = no limit. */
    uint32_t max_requests;
    /* stdout buffer size in bytes; 0 = 8192. */
    uint32_t out_buf;
    /* Largest params block / number of params accepted; 0 = 1 MiB / 4096. */
    uint32_t max_params_len;
    uint32_t max_params;
    /* Socket the BODY_FD fds arrive on (SCM_RIGHTS); < 0 = none (such a
     * request is then answered with a 500 and END). Set it explicitly:
     * 0 is a valid fd. */
    int body_sock;
    /* Optional: checked whenever the loop would block and after each
     * request; when non-zero rf_exec_main returns 0. A signal handler that
     * sets it makes the wait return (-EINTR) so it is seen at once. */
    volatile sig_atomic_t *stop;
    /* request_slowlog_timeout: a request running this long has its PHP
     * backtrace appended to slowlog_fd in php-fpm's slowlog format, taken
     * by a watcher thread of this process (no ptrace); 0 = off. */
    uint32_t slowlog_ms;
    int slowlog_fd;        /* -1 = none (set explicitly: 0 is an fd) */
    int slowlog_depth;     /* request_slowlog_trace_depth; 0 = 20 */
    const char *pool_name; /* for the slowlog header */
    /* The scoreboard (core/rf_board.h) and this executor's place in it: its
     * process slot is written at each request's start and end (a
     * getrusage() each time, as php-fpm calls times()), and
     * fpm_get_status() reads the pool from it. NULL = none; board_slot
     * < 0 = no slot (the pool's fields are still shown). */
    rf_board_t *board;
    int board_pool;
    int board_slot;
    /* access.log (pm/exec/rf_access.h): one line per request, formatted
     * when the script returns (php-fpm's moment: status, headers and params
     * as they are then) and written with one write(2) after END, so it
     * never delays the response. access_fd: opened O_APPEND by the master
     * side (before privileges are dropped), owned by the executor from
     * then on; -1 = no access log (set explicitly: 0 is an fd).
     * access_path: when set, checked at most once a second (on the clock
     * already read for the line, so no syscall per request) and reopened
     * when it no longer names the open file (rotated); the reopen needs
     * the pool's user to be allowed to create / open it. access_format:
     * NULL = php-fpm's default; an invalid one logs php-fpm's warning and
     * turns the log off. access_suppress: access.suppress_path[] entries.
     * access_remote_param: %R is the REMOTE_ADDR param (php-fpm prints its
     * FastCGI peer's IP, which an executor does not see; use 0 for a unix
     * socket pool, where php-fpm prints "-"). */
    int access_fd;
    const char *access_path;
    const char *access_format;
    const char *const *access_suppress;
    size_t access_nsuppress;
    int access_remote_param;
} rf_exec_opts_t;

/* Fills o with the defaults (body_sock = slowlog_fd = board_slot =
 * access_fd = -1, the rest zero). */
void rf_exec_opts_init(rf_exec_opts_t *o);

/* Counters of this executor, for tests and display. */
typedef struct rf_exec_stats {
    uint64_t requests;          /* requests run (ENDs sent) */
    uint64_t aborted;           /* ABORTs that hit a running request */
    uint64_t stale;             /* ABORTs for requests no longer running */
    uint64_t finished;          /* fastcgi_finish_request early ENDs */
    uint64_t out_records;       /* STDOUT/STDERR/FLUSH records written */
    uint64_t slow;              /* slowlog entries written */
    uint64_t access;            /* access log lines written */
    uint64_t access_suppressed; /* lines left out by access.suppress_path */
} rf_exec_stats_t;

/*
 * The executor loop. Returns 0 after o->max_requests requests or when
 * *o->stop is set; -EPROTO when the channel is broken or a request record
 * is malformed; -EIO when PHP could not start a request (rf_php_execute
 * failed: the process should exit, as php-fpm's child does); -ENOMEM.
 * The caller then exits the process (_exit is fine). stats may be NULL.
 */
int rf_exec_main(rf_chan_t *ch, const rf_exec_opts_t *o);
int rf_exec_main_stats(rf_chan_t *ch, const rf_exec_opts_t *o, rf_exec_stats_t *stats);

/*
 * Responder side (and tests): lays out a REQUEST payload in out — params
 * as FastCGI NV pairs, then body_len inline body bytes — and fills *req
 * (slot, gen and t_queued_ns are left for the caller; flags = 0). Returns
 * the payload length (send it as one iovec), or -E2BIG when cap is too
 * small or a length does not fit the format; out may be NULL with cap 0 to
 * learn the size needed (then -E2BIG is not returned for cap).
 */
long rf_exec_encode_request(uint8_t *out, size_t cap, const rf_php_param_t *params, size_t n,
                            const void *body, size_t body_len, rf_chan_req_t *req);

#ifdef __cplusplus
}
#endif

#endif /* RF_EXEC_H */
