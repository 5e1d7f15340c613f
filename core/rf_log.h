/*
 * rf_log: the process log (php-fpm's error_log), one line per call written
 * with a single write(2) (or one syslog datagram) so lines from several
 * threads never interleave. Format as php-fpm's zlog:
 * "[22-Nov-2026 03:05:22] WARNING: message" in a file, "[WARNING] message"
 * to syslog. core/ and io/ log at debug only; the caller that decides logs
 * once, with the reason. Any thread may log; the setters (fd, syslog, level,
 * limit) are for the main thread before other threads start or while they
 * only log.
 *
 * rf_log_stream_t is php-fpm's catch_workers_output: what an executor
 * writes to its stdout/stderr, cut into lines and logged as
 * "WARNING: [pool www] child 1234 said into stderr: "text"", wrapped at
 * log_limit exactly as php-fpm's buffered zlog stream wraps.
 */
#ifndef RF_LOG_H
#define RF_LOG_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum rf_log_level {
    RF_LOG_DEBUG = 1,
    RF_LOG_NOTICE = 2,
    RF_LOG_WARNING = 3,
    RF_LOG_ERROR = 4,
    RF_LOG_ALERT = 5,
};

/* php-fpm's log_limit: default and minimum. */
#define RF_LOG_LIMIT_DEFAULT 1024
#define RF_LOG_LIMIT_MIN     512

/* Send lines to fd (default 2) at or above level (default NOTICE). Setting
 * an fd leaves syslog mode. */
void rf_log_set_fd(int fd);
/* The fd lines go to, or -1 in syslog mode. */
int rf_log_get_fd(void);
void rf_log_set_level(int level);
int rf_log_get_level(void);

/* log_limit: the longest line, prefix and newline included, that a wrapped
 * worker-output line or an over-long message may take (>= 512). */
void rf_log_set_limit(int limit);
int rf_log_get_limit(void);

/* log_buffering: accepted and remembered for -tt; ringfpm always builds a
 * line whole and writes it at once (php-fpm's "yes"). */
void rf_log_set_buffering(int on);

/*
 * error_log = syslog: from now on every line is one datagram
 * "<PRI>Mmm dd hh:mm:ss ident[pid]: [LEVEL] text" (glibc's openlog(ident,
 * LOG_PID | LOG_CONS, facility) format) to the unix socket path, or, when
 * path is NULL, $RINGFPM_SYSLOG_SOCKET if set, else /dev/log. The priority is
 * the message's level (DEBUG->debug, NOTICE->notice, WARNING->warning,
 * ERROR->err, ALERT->alert) or'ed with facility (a LOG_* value). Not
 * reachable now is not an error: each line tries again, and a line that
 * cannot be sent goes to /dev/console like LOG_CONS. Returns 0 or -errno
 * (socket(2) failed).
 */
int rf_log_open_syslog(const char *ident, int facility, const char *path);

/* php-fpm's syslog.facility names (AUTH, AUTHPRIV, CRON, DAEMON, FTP, KERN,
 * LPR, MAIL, NEWS, SYSLOG, USER, UUCP, LOCAL0..LOCAL7; case-insensitive).
 * Returns the LOG_* value or -EINVAL. */
int rf_log_facility_parse(const char *name);

/* Parse a php-fpm level name (alert, error, warning/warn, notice, debug;
 * case-insensitive). Returns the level or -EINVAL. */
int rf_log_level_parse(const char *name);

/* Name of a level as php-fpm prints it ("WARNING"). */
const char *rf_log_level_name(int level);

/* Log one line (a trailing newline is added). As php-fpm: a line (prefix
 * included) shorter than 2048 bytes is written whole whatever log_limit
 * says. Where php-fpm would cut a longer one to log_limit with "...",
 * ringfpm wraps it into lines of at most log_limit bytes, each with the
 * prefix: nothing is ever lost. */
__attribute__((format(printf, 2, 3))) void rf_log(int level, const char *fmt, ...);
void rf_logv(int level, const char *fmt, va_list ap);

#define rf_log_debug(...)                                                                          \
    do {                                                                                           \
        if (rf_log_get_level() <= RF_LOG_DEBUG)                                                    \
            rf_log(RF_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

/*
 * One executor's captured output (php-fpm's child->log_stream): one stream
 * for both its stdout and its stderr, owned by the master's main thread.
 * The pool name is borrowed and must outlive the stream.
 */
typedef struct rf_log_stream {
    char *buf;  /* the line being built (malloc'd, cap bytes) */
    size_t len; /* bytes in buf; 0: no line started */
    size_t cap;
    const char *pool; /* borrowed */
    int pid;
    int is_stdout;    /* the source of the line being built */
    int decorate;     /* decorate_workers_output */
    unsigned events;  /* rf_log_stream_feed calls so far */
    unsigned cmd_pos; /* bytes of php-fpm's "\0fscf\0" flush seen at a chunk end */
} rf_log_stream_t;

void rf_log_stream_init(rf_log_stream_t *s, const char *pool, int pid, int decorate);

/* A poll event on the executor's stdout (is_stdout 1) or stderr pipe, before
 * its bytes are fed (php-fpm's fpm_stdio_child_said entry): output from
 * the other pipe than the pending line's first ends that line. */
void rf_log_stream_event(rf_log_stream_t *s, int is_stdout);

/*
 * Bytes read in that event, as php-fpm handles them: each '\n' (or
 * php-fpm's flush command "\0fscf\0", also when split across reads) ends
 * a line; a partial line waits for more; a line longer than log_limit is
 * wrapped: each piece closed with '"' and continued on a new decorated line.
 */
void rf_log_stream_feed(rf_log_stream_t *s, const char *p, size_t n);

/* The pipe of this event is closed: as php-fpm, a pending line is logged
 * now, with ", pipe is closed", only when this is the stream's first event;
 * otherwise it waits for rf_log_stream_close. */
void rf_log_stream_eof(rf_log_stream_t *s);

/* Log a pending partial line (the executor is gone) and free the buffer. */
void rf_log_stream_close(rf_log_stream_t *s);

#ifdef __cplusplus
}
#endif

#endif
