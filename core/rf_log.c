/*
 * rf_log: formats php-fpm style log lines and writes each with one write(2)
 * or sends it as one syslog datagram. The only file in core/ that touches a
 * file descriptor, and only to send finished lines: logging must work from
 * every thread without locks.
 */
#include "rf_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* php-fpm's zlog buffer: shorter lines are written whole, whatever log_limit. */
#define RF_LOG_WHOLE_MAX 2048
/* php-fpm's MAX_WRAPPING_PREFIX_LENGTH - 1: the longest "[pool p] child N said into x: ". */
#define RF_LOG_MSG_PREFIX_MAX 511

static int rf_log_fd = 2;
static int rf_log_level = RF_LOG_NOTICE;
static int rf_log_limit = RF_LOG_LIMIT_DEFAULT;
static int rf_log_buffering = 1;

/* error_log = syslog: set once by rf_log_open_syslog on the main thread. */
static struct {
    int on;
    int sock;
    int facility;
    char ident[128];
    struct sockaddr_un addr;
    socklen_t addrlen;
} rf_log_sys = {.sock = -1};

void rf_log_set_fd(int fd)
{
    __atomic_store_n(&rf_log_fd, fd, __ATOMIC_RELEASE);
    __atomic_store_n(&rf_log_sys.on, 0, __ATOMIC_RELEASE);
}

int rf_log_get_fd(void)
{
    return __atomic_load_n(&rf_log_sys.on, __ATOMIC_ACQUIRE)
               ? -1
               : __atomic_load_n(&rf_log_fd, __ATOMIC_ACQUIRE);
}

void rf_log_set_level(int level)
{
    __atomic_store_n(&rf_log_level, level, __ATOMIC_RELAXED);
}

int rf_log_get_level(void)
{
    return __atomic_load_n(&rf_log_level, __ATOMIC_RELAXED);
}

void rf_log_set_limit(int limit)
{
    if (limit < RF_LOG_LIMIT_MIN)
        limit = RF_LOG_LIMIT_MIN;
    __atomic_store_n(&rf_log_limit, limit, __ATOMIC_RELAXED);
}

int rf_log_get_limit(void)
{
    return __atomic_load_n(&rf_log_limit, __ATOMIC_RELAXED);
}

void rf_log_set_buffering(int on)
{
    __atomic_store_n(&rf_log_buffering, on ? 1 : 0, __ATOMIC_RELAXED);
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

int rf_log_facility_parse(const char *name)
{
    /* fpm_conf_set_syslog_facility's list */
    static const struct {
        const char *name;
        int facility;
    } names[] = {
        {"AUTH", LOG_AUTH},     {"AUTHPRIV", LOG_AUTHPRIV}, {"CRON", LOG_CRON},
        {"DAEMON", LOG_DAEMON}, {"FTP", LOG_FTP},           {"KERN", LOG_KERN},
        {"LPR", LOG_LPR},       {"MAIL", LOG_MAIL},         {"NEWS", LOG_NEWS},
        {"SYSLOG", LOG_SYSLOG}, {"USER", LOG_USER},         {"UUCP", LOG_UUCP},
        {"LOCAL0", LOG_LOCAL0}, {"LOCAL1", LOG_LOCAL1},     {"LOCAL2", LOG_LOCAL2},
        {"LOCAL3", LOG_LOCAL3}, {"LOCAL4", LOG_LOCAL4},     {"LOCAL5", LOG_LOCAL5},
        {"LOCAL6", LOG_LOCAL6}, {"LOCAL7", LOG_LOCAL7},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i].name) == 0)
            return names[i].facility;
    return -EINVAL;
}

static int rf_log_syslog_priority(int level)
{
    /* zlog.c syslog_priorities[] */
    switch (level) {
    case RF_LOG_DEBUG:
        return LOG_DEBUG;
    case RF_LOG_NOTICE:
        return LOG_NOTICE;
    case RF_LOG_WARNING:
        return LOG_WARNING;
    case RF_LOG_ERROR:
        return LOG_ERR;
    }
    return LOG_ALERT;
}

int rf_log_open_syslog(const char *ident, int facility, const char *path)
{
    if (path == NULL)
        path = getenv("RINGFPM_SYSLOG_SOCKET");
    if (path == NULL || *path == '\0')
        path = "/dev/log";
    if (rf_log_sys.sock < 0) {
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            return -errno;
        rf_log_sys.sock = s;
    }
    memset(&rf_log_sys.addr, 0, sizeof(rf_log_sys.addr));
    rf_log_sys.addr.sun_family = AF_UNIX;
    snprintf(rf_log_sys.addr.sun_path, sizeof(rf_log_sys.addr.sun_path), "%s", path);
    rf_log_sys.addrlen = (socklen_t)sizeof(rf_log_sys.addr);
    snprintf(rf_log_sys.ident, sizeof(rf_log_sys.ident), "%s", ident ? ident : "php-fpm");
    rf_log_sys.facility = facility;
    __atomic_store_n(&rf_log_sys.on, 1, __ATOMIC_RELEASE);
    return 0;
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

/* One syslog(3) call: "<PRI>Mmm dd hh:mm:ss ident[pid]: text". */
static void rf_log_syslog_send(int level, const char *text, size_t n)
{
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char head[256];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    int h = snprintf(head, sizeof(head), "<%d>%s %2d %02d:%02d:%02d %s[%d]: ",
                     rf_log_syslog_priority(level) | rf_log_sys.facility, months[tm.tm_mon % 12],
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rf_log_sys.ident, (int)getpid());
    if (h < 0 || (size_t)h >= sizeof(head))
        return;
    struct iovec iov[2] = {{head, (size_t)h}, {(void *)text, n}};
    struct msghdr mh = {.msg_name = &rf_log_sys.addr,
                        .msg_namelen = rf_log_sys.addrlen,
                        .msg_iov = iov,
                        .msg_iovlen = 2};
    ssize_t w;
    do
        w = sendmsg(rf_log_sys.sock, &mh, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w >= 0)
        return;
    /* LOG_CONS: the daemon is away, the console still hears it. */
    int c = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (c >= 0) {
        size_t skip = (size_t)(strchr(head, '>') - head) + 1; /* no "<PRI>" there */
        struct iovec cv[3] = {{head + skip, (size_t)h - skip}, {(void *)text, n}, {"\r\n", 2}};
        ssize_t cw = writev(c, cv, 3);
        (void)cw;
        close(c);
    }
}

/* php_syslog() with syslog.filter = no-ctrl: one message per line of text,
 * control characters as \xNN. */
static void rf_log_syslog(int level, const char *text, size_t n)
{
    char out[4 * RF_LOG_WHOLE_MAX];
    size_t o = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || text[i] == '\n' || o + 4 > sizeof(out)) {
            rf_log_syslog_send(level, out, o);
            o = 0;
            if (i == n)
                break;
            if (text[i] == '\n')
                continue;
        }
        unsigned char c = (unsigned char)text[i];
        if ((c >= 0x20 && c <= 0x7e) || c >= 0x80) {
            out[o++] = (char)c;
        } else {
            static const char hex[] = "0123456789abcdef";
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
}

/* A finished line (len bytes, buf has room for one more) to the log. */
static void rf_log_emit(int level, char *line, size_t len)
{
    if (__atomic_load_n(&rf_log_sys.on, __ATOMIC_ACQUIRE)) {
        rf_log_syslog(level, line, len);
        return;
    }
    line[len] = '\n';
    rf_log_write(__atomic_load_n(&rf_log_fd, __ATOMIC_ACQUIRE), line, len + 1);
}

/* zlog_buf_prefix of the master: "[22-Nov-2026 03:05:22] WARNING: ", or
 * "[WARNING] " to syslog. */
static size_t rf_log_prefix(char *buf, size_t cap, int level)
{
    int n;
    if (__atomic_load_n(&rf_log_sys.on, __ATOMIC_ACQUIRE)) {
        n = snprintf(buf, cap, "[%s] ", rf_log_level_name(level));
    } else {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t t = strftime(buf, cap, "[%d-%b-%Y %H:%M:%S] ", &tm);
        n = (int)t + snprintf(buf + t, cap - t, "%s: ", rf_log_level_name(level));
    }
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

void rf_logv(int level, const char *fmt, va_list ap)
{
    if (level < rf_log_get_level())
        return;

    char small[RF_LOG_WHOLE_MAX + 64];
    char prefix[96];
    size_t plen = rf_log_prefix(prefix, sizeof(prefix), level);
    va_list aq;
    va_copy(aq, ap);
    int mlen = vsnprintf(small + plen, sizeof(small) - plen, fmt, aq);
    va_end(aq);
    if (mlen < 0)
        return;
    if (plen + (size_t)mlen < RF_LOG_WHOLE_MAX) {
        /* php-fpm writes these whole, log_limit or not */
        memcpy(small, prefix, plen);
        rf_log_emit(level, small, plen + (size_t)mlen);
        return;
    }
    /* Where php-fpm cuts with "...": wrap, each line at most log_limit
     * bytes with its newline, each with the prefix. */
    char *msg = malloc((size_t)mlen + 1);
    if (msg == NULL)
        return;
    vsnprintf(msg, (size_t)mlen + 1, fmt, ap);
    size_t limit = (size_t)rf_log_get_limit();
    size_t room = limit > plen + 1 ? limit - plen - 1 : 1;
    char *line = malloc(plen + room + 1);
    if (line != NULL) {
        const char *p = msg;
        size_t left = (size_t)mlen;
        while (left > 0) {
            size_t take = left > room ? room : left;
            memcpy(line, prefix, plen);
            memcpy(line + plen, p, take);
            rf_log_emit(level, line, plen + take);
            p += take;
            left -= take;
        }
    }
    free(line);
    free(msg);
}

void rf_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rf_logv(level, fmt, ap);
    va_end(ap);
}

/* ---- captured executor output (php-fpm's buffered zlog_stream) ---------------- */

/* fpm_stdio.c FPM_STDIO_CMD_FLUSH, its terminating NUL included. */
static const char rf_log_cmd_flush[6] = "\0fscf";

void rf_log_stream_init(rf_log_stream_t *s, const char *pool, int pid, int decorate)
{
    memset(s, 0, sizeof(*s));
    s->pool = pool;
    s->pid = pid;
    s->decorate = decorate ? 1 : 0;
}

/* Begin a line: the prefix, php-fpm's msg_prefix and the opening quote
 * when decorated, nothing otherwise. */
static int rf_log_stream_start(rf_log_stream_t *s, int quote)
{
    size_t need = (size_t)rf_log_get_limit() + 96 + RF_LOG_MSG_PREFIX_MAX + 8;
    if (s->cap < need) {
        char *b = realloc(s->buf, need);
        if (b == NULL)
            return -ENOMEM;
        s->buf = b;
        s->cap = need;
    }
    s->len = 0;
    if (!s->decorate)
        return 0;
    s->len = rf_log_prefix(s->buf, 96, RF_LOG_WARNING);
    int m = snprintf(s->buf + s->len, RF_LOG_MSG_PREFIX_MAX + 1,
                     "[pool %s] child %d said into %s: ", s->pool, s->pid,
                     s->is_stdout ? "stdout" : "stderr");
    s->len += m < 0 ? 0 : (size_t)m > RF_LOG_MSG_PREFIX_MAX ? RF_LOG_MSG_PREFIX_MAX : (size_t)m;
    if (quote)
        s->buf[s->len++] = '"';
    return 0;
}

static void rf_log_stream_flush(rf_log_stream_t *s)
{
    rf_log_emit(RF_LOG_WARNING, s->buf, s->len);
    s->len = 0;
}

/* zlog_stream_buf_append: a line reaching log_limit is closed with '"'
 * one byte early, so that every written line, newline included, is at most
 * log_limit bytes, and the rest goes on a new decorated line. */
static void rf_log_stream_append(rf_log_stream_t *s, const char *p, size_t n)
{
    for (;;) {
        if (s->len == 0 && rf_log_stream_start(s, 1) < 0)
            return;
        size_t limit = (size_t)rf_log_get_limit();
        size_t reserved = s->len + (size_t)s->decorate;
        if (reserved + n < limit) {
            memcpy(s->buf + s->len, p, n);
            s->len += n;
            return;
        }
        size_t avail = limit > reserved + 1 ? limit - reserved - 1 : 1;
        memcpy(s->buf + s->len, p, avail);
        s->len += avail;
        if (s->decorate)
            s->buf[s->len++] = '"';
        rf_log_stream_flush(s);
        p += avail;
        n -= avail;
        if (n == 0)
            return;
    }
}

/* zlog_stream_finish: the closing quote, php-fpm's final suffix (only when
 * decorated), the line out. A line not started (undecorated and empty) is
 * not written. */
static void rf_log_stream_finish(rf_log_stream_t *s, const char *suffix)
{
    if (s->len == 0)
        return;
    if (s->decorate) {
        s->buf[s->len++] = '"';
        if (suffix) {
            size_t limit = (size_t)rf_log_get_limit(), slen = strlen(suffix);
            if (s->len + slen >= limit) {
                /* the part that fits, the rest on a line of its own (php-fpm
                 * also leaves an empty line after each: not copied) */
                size_t wrap = s->len + slen + 1 - limit;
                memcpy(s->buf + s->len, suffix, slen - wrap);
                s->len += slen - wrap;
                rf_log_stream_flush(s);
                if (rf_log_stream_start(s, 0) < 0)
                    return;
                suffix += slen - wrap;
                slen = wrap;
            }
            memcpy(s->buf + s->len, suffix, slen);
            s->len += slen;
        }
    }
    rf_log_stream_flush(s);
}

void rf_log_stream_event(rf_log_stream_t *s, int is_stdout)
{
    is_stdout = is_stdout ? 1 : 0;
    if (s->events++ > 0 && s->is_stdout != is_stdout)
        rf_log_stream_finish(s, NULL);
    s->is_stdout = is_stdout;
}

void rf_log_stream_feed(rf_log_stream_t *s, const char *p, size_t n)
{
    const size_t clen = sizeof(rf_log_cmd_flush);
    size_t start = 0;
    if (s->cmd_pos > 0) {
        /* the flush command began at the end of the last chunk */
        size_t need = clen - s->cmd_pos;
        if (need <= n && memcmp(p, rf_log_cmd_flush + s->cmd_pos, need) == 0) {
            rf_log_stream_finish(s, NULL);
            start = need;
        } else {
            rf_log_stream_append(s, rf_log_cmd_flush, s->cmd_pos);
        }
        s->cmd_pos = 0;
    }
    for (size_t pos = start; pos < n; pos++) {
        if (p[pos] == '\n') {
            rf_log_stream_append(s, p + start, pos - start);
            rf_log_stream_finish(s, NULL);
            start = pos + 1;
        } else if (p[pos] == '\0') {
            if (pos + clen <= n) {
                if (memcmp(p + pos, rf_log_cmd_flush, clen) == 0) {
                    rf_log_stream_append(s, p + start, pos - start);
                    rf_log_stream_finish(s, NULL);
                    start = pos + clen;
                    pos = start - 1;
                }
            } else if (memcmp(p + pos, rf_log_cmd_flush, n - pos) == 0) {
                rf_log_stream_append(s, p + start, pos - start);
                s->cmd_pos = (unsigned)(n - pos);
                return;
            }
        }
    }
    if (start < n)
        rf_log_stream_append(s, p + start, n - start);
}

void rf_log_stream_eof(rf_log_stream_t *s)
{
    if (s->events == 1)
        rf_log_stream_finish(s, ", pipe is closed");
}

void rf_log_stream_close(rf_log_stream_t *s)
{
    if (s->cmd_pos > 0)
        rf_log_stream_append(s, rf_log_cmd_flush, s->cmd_pos);
    s->cmd_pos = 0;
    rf_log_stream_finish(s, NULL);
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}
