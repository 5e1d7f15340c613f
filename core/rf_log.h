/*
 * rf_log: the process log (php-fpm's error_log), one line per call written
 * with a single write(2) so lines from several threads never interleave.
 * Format as php-fpm's: "[22-Nov-2026 03:05:22] WARNING: message". core/ and
 * io/ log at debug only; the caller that decides logs once, with the reason.
 * Any thread may log; rf_log_open/rf_log_set_fd are for the main thread.
 */
#ifndef RF_LOG_H
#define RF_LOG_H

#include <stdarg.h>

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

/* Send lines to fd (default 2) at or above level (default NOTICE). */
void rf_log_set_fd(int fd);
void rf_log_set_level(int level);
int rf_log_get_level(void);

/* Parse a php-fpm level name (alert, error, warning/warn, notice, debug;
 * case-insensitive). Returns the level or -EINVAL. */
int rf_log_level_parse(const char *name);

/* Name of a level as php-fpm prints it ("WARNING"). */
const char *rf_log_level_name(int level);

/* Log one line (a trailing newline is added). Lines longer than the line
 * buffer (8 KiB) are wrapped into several lines, never cut. */
__attribute__((format(printf, 2, 3))) void rf_log(int level, const char *fmt, ...);
void rf_logv(int level, const char *fmt, va_list ap);

#define rf_log_debug(...)                                                                          \
    do {                                                                                           \
        if (rf_log_get_level() <= RF_LOG_DEBUG)                                                    \
            rf_log(RF_LOG_DEBUG, __VA_ARGS__);                                                     \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif
