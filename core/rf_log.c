/*
 * rf_log: formats php-fpm style log lines and writes each with one write(2).
 * The only file in core/ that touches a file descriptor, and only to write
 * finished lines: logging must work from every thread without locks.
 */
#include "rf_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int rf_log_fd = 2;
static int rf_log_level = RF_LOG_NOTICE;

void rf_log_set_fd(int fd)
{
    __atomic_store_n(&rf_log_fd, fd, __ATOMIC_RELEASE);
}

void rf_log_set_level(int level)
{
    __atomic_store_n(&rf_log_level, level, __ATOMIC_RELAXED);
}

int rf_log_get_level(void)
{
    return __atomic_load_n(&rf_log_level, __ATOMIC_RELAXED);
}

int rf_log_level_parse(const char *name)
{
    static const struct {
        const char *name;
        int level;
    } names[] = {
        {"debug", RF_LOG_DEBUG},  {"notice", RF_LOG_NOTICE}, {"warning", RF_LOG_WARNING},
        {"warn", RF_LOG_WARNING}, {"error", RF_LOG_ERROR},   {"alert", RF_LOG_ALERT},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0)
            return names[i].level;
    return -EINVAL;
}

const char *rf_log_level_name(int level)
{
    switch (level) {
    case RF_LOG_DEBUG:
        return "DEBUG";
    case RF_LOG_NOTICE:
        return "NOTICE";
    case RF_LOG_WARNING:
        return "WARNING";
    case RF_LOG_ERROR:
        return "ERROR";
    case RF_LOG_ALERT:
        return "ALERT";
    }
    return "UNKNOWN";
}

static void rf_log_write(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

void rf_logv(int level, const char *fmt, va_list ap)
{
    if (level < rf_log_get_level())
        return;

    char msg[8192];
    int len = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (len < 0)
        return;
    if ((size_t)len >= sizeof(msg))
        len = (int)sizeof(msg) - 1; /* a longer message was formatted past the buffer */

    char prefix[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    size_t plen = strftime(prefix, sizeof(prefix), "[%d-%b-%Y %H:%M:%S] ", &tm);
    plen +=
        (size_t)snprintf(prefix + plen, sizeof(prefix) - plen, "%s: ", rf_log_level_name(level));

    /* Wrap, never cut: each piece of at most 1024 bytes is a line of its own. */
    int fd = __atomic_load_n(&rf_log_fd, __ATOMIC_ACQUIRE);
    char line[64 + 1024 + 1];
    const char *p = msg;
    size_t left = (size_t)len;
    do {
        size_t take = left > 1024 ? 1024 : left;
        memcpy(line, prefix, plen);
        memcpy(line + plen, p, take);
        line[plen + take] = '\n';
        rf_log_write(fd, line, plen + take + 1);
        p += take;
        left -= take;
    } while (left > 0);
}

void rf_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rf_logv(level, fmt, ap);
    va_end(ap);
}
