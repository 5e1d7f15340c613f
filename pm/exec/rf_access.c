/*
 * rf_access: php-fpm's access.format, compiled once, formatted per request
 * (see rf_access.h). The parser follows fpm_log_write's test pass step by
 * step, so a format is accepted or refused exactly where php-fpm accepts or
 * refuses it, with its messages.
 */
#include "rf_access.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum acc_kind {
    ACC_LIT = 1, /* literal text: arg */
    ACC_CPU,     /* unit: 0 total, 1 user, 2 system */
    ACC_DUR,     /* unit: 0 s, 1 ms, 2 us */
    ACC_WAIT,    /* same units, queue time */
    ACC_ENV,     /* arg: param name */
    ACC_SCRIPT,
    ACC_CLEN,
    ACC_METHOD,
    ACC_MEM, /* unit: 0 bytes, 1 KiB, 2 MiB */
    ACC_POOL,
    ACC_HEADER, /* arg: header name */
    ACC_PID,
    ACC_PPID,
    ACC_QUERY,
    ACC_QMARK,
    ACC_URI,
    ACC_REMOTE,
    ACC_STATUS,
    ACC_TSTART, /* arg: strftime format, "" = default */
    ACC_TNOW,
    ACC_USER,
};

typedef struct acc_item {
    int kind;
    int unit;
    char *arg; /* NUL-terminated, owned by the format's text block */
    size_t arg_len;
} acc_item_t;

struct rf_access_fmt {
    acc_item_t *items;
    size_t n;
    char *text; /* every literal and argument, NUL-separated */
};

void rf_access_free(rf_access_fmt_t *f)
{
    if (f == NULL)
        return;
    free(f->items);
    free(f->text);
    free(f);
}

static int acc_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int acc_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* The unit of %d / %w, -1 if unknown. */
static int acc_dur_unit(const char *m)
{
    if (*m == '\0' || strcasecmp(m, "seconds") == 0)
        return 0;
    if (strcasecmp(m, "milli") == 0 || strcasecmp(m, "milliseconds") == 0 ||
        strcasecmp(m, "mili") == 0 || strcasecmp(m, "miliseconds") == 0)
        return 1;
    if (strcasecmp(m, "micro") == 0 || strcasecmp(m, "microseconds") == 0)
        return 2;
    return -1;
}

/* Adds an item; its argument (may be "") is copied into the text block at
 * *tpos. The block is sized for the whole format, so it never overflows. */
static void acc_push(rf_access_fmt_t *f, size_t *tpos, int kind, int unit, const char *arg,
                     size_t len)
{
    acc_item_t *it = &f->items[f->n++];
    it->kind = kind;
    it->unit = unit;
    it->arg = f->text + *tpos;
    it->arg_len = len;
    memcpy(it->arg, arg, len);
    it->arg[len] = '\0';
    *tpos += len + 1;
}

int rf_access_compile(const char *fmt, rf_access_fmt_t **out, char *err, size_t errlen)
{
    if (fmt == NULL)
        fmt = RF_ACCESS_DEFAULT_FORMAT;
    size_t flen = strlen(fmt);
    rf_access_fmt_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    /* At most one item per format byte, plus one literal run after each. */
    f->items = calloc(2 * flen + 1, sizeof(*f->items));
    f->text = malloc(2 * flen + 2);
    if (f->items == NULL || f->text == NULL) {
        rf_access_free(f);
        return -ENOMEM;
    }
    size_t tpos = 0;
    const char *s = fmt, *lit = NULL;
    const char *arg = "";
    size_t arg_len = 0;
    int token = 0, rc = 0;

    while (*s != '\0') {
        if (!token && *s == '%') {
            if (lit)
                acc_push(f, &tpos, ACC_LIT, 0, lit, (size_t)(s - lit));
            lit = NULL;
            token = 1;
            arg = "";
            arg_len = 0;
            s++;
            continue;
        }
        if (!token) {
            if (lit == NULL)
                lit = s;
            s++;
            continue;
        }
        token = 0;
        int kind = 0, unit = 0, takes_arg = 1;
        char m[256];
        size_t ml = arg_len < sizeof(m) - 1 ? arg_len : sizeof(m) - 1;
        memcpy(m, arg, ml);
        m[ml] = '\0';
        switch (*s) {
        case '%':
            kind = ACC_LIT;
            takes_arg = 0;
            break;
        case 'C':
            kind = ACC_CPU;
            if (*m == '\0' || strcasecmp(m, "total") == 0)
                unit = 0;
            else if (strcasecmp(m, "user") == 0)
                unit = 1;
            else if (strcasecmp(m, "system") == 0)
                unit = 2;
            else
                rc = acc_fail(err, errlen,
                              "only 'total', 'user' or 'system' are allowed as a modifier for "
                              "%%%c ('%s')",
                              *s, m);
            break;
        case 'd':
        case 'w':
            kind = *s == 'd' ? ACC_DUR : ACC_WAIT;
            unit = acc_dur_unit(m);
            if (unit < 0)
                rc = acc_fail(err, errlen,
                              "only 'seconds', 'milli', 'milliseconds', 'micro' or "
                              "'microseconds' are allowed as a modifier for %%%c ('%s')",
                              *s, m);
            break;
        case 'e':
            kind = ACC_ENV;
            if (arg_len == 0)
                rc = acc_fail(err, errlen,
                              "the name of the environment variable must be set between "
                              "embraces for %%%c",
                              *s);
            break;
        case 'M':
            kind = ACC_MEM;
            if (*m == '\0' || strcasecmp(m, "bytes") == 0)
                unit = 0;
            else if (strcasecmp(m, "kilo") == 0 || strcasecmp(m, "kilobytes") == 0)
                unit = 1;
            else if (strcasecmp(m, "mega") == 0 || strcasecmp(m, "megabytes") == 0)
                unit = 2;
            else
                rc = acc_fail(err, errlen,
                              "only 'bytes', 'kilo', 'kilobytes', 'mega' or 'megabytes' are "
                              "allowed as a modifier for %%%c ('%s')",
                              *s, m);
            break;
        case 'o':
            kind = ACC_HEADER;
            if (arg_len == 0)
                rc = acc_fail(err, errlen,
                              "the name of the header must be set between embraces for %%%c", *s);
            break;
        case 't':
        case 'T':
            kind = *s == 't' ? ACC_TSTART : ACC_TNOW;
            break;
        case 'f':
        case 'l':
        case 'm':
        case 'n':
        case 'p':
        case 'P':
        case 'q':
        case 'Q':
        case 'r':
        case 'R':
        case 's':
        case 'u': {
            static const char letters[] = "flmnpPqQrRsu";
            static const int kinds[] = {ACC_SCRIPT, ACC_CLEN,   ACC_METHOD, ACC_POOL,
                                        ACC_PID,    ACC_PPID,   ACC_QUERY,  ACC_QMARK,
                                        ACC_URI,    ACC_REMOTE, ACC_STATUS, ACC_USER};
            kind = kinds[strchr(letters, *s) - letters];
            takes_arg = 0;
            break;
        }
        case '{': {
            /* php-fpm: the argument runs to the next '}', and a format that
             * ends right after it (no letter) is refused too */
            const char *start = ++s;
            while (*s != '\0' && *s != '}')
                s++;
            if (*s == '\0' || s[1] == '\0') {
                rc = acc_fail(err, errlen, "missing closing embrace in the access.format");
                break;
            }
            arg = start;
            arg_len = (size_t)(s - start);
            token = 1;
            s++;
            continue;
        }
        default:
            rc = acc_fail(err, errlen, "Invalid token in the access.format (%%%c)", *s);
            break;
        }
        if (rc < 0)
            break;
        if (!takes_arg && arg_len) {
            rc = acc_fail(err, errlen, "embrace is not allowed for modifier %%%c", *s);
            break;
        }
        if (kind == ACC_LIT)
            acc_push(f, &tpos, ACC_LIT, 0, "%", 1);
        else
            acc_push(f, &tpos, kind, unit, arg, takes_arg ? arg_len : 0);
        s++;
    }
    if (rc == 0 && !token && lit)
        acc_push(f, &tpos, ACC_LIT, 0, lit, (size_t)(s - lit));
    if (rc < 0) {
        rf_access_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---- formatting ------------------------------------------------------------ */

static int buf_reserve(rf_access_buf_t *b, size_t more)
{
    if (b->cap - b->len > more)
        return 0;
    size_t nc = b->cap ? b->cap : 256;
    while (nc - b->len <= more)
        nc *= 2;
    char *p = realloc(b->p, nc);
    if (p == NULL)
        return -ENOMEM;
    b->p = p;
    b->cap = nc;
    return 0;
}

static int buf_put(rf_access_buf_t *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -ENOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static int buf_str(rf_access_buf_t *b, const char *s)
{
    return buf_put(b, s, strlen(s));
}

static int buf_printf(rf_access_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int buf_printf(rf_access_buf_t *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof(tmp)) { /* only a huge double; print it whole */
        if (buf_reserve(b, (size_t)n) < 0)
            return -ENOMEM;
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
    }
    return buf_put(b, tmp, (size_t)n);
}

/* A string field: "-" when NULL or empty if dash, else "" */
static int buf_field(rf_access_buf_t *b, const char *s, int dash)
{
    if (s == NULL || *s == '\0')
        return dash ? buf_put(b, "-", 1) : 0;
    return buf_str(b, s);
}

static int buf_time(rf_access_buf_t *b, int64_t when, const char *fmt)
{
    time_t t = (time_t)when;
    struct tm tm;
    if (localtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    if (*fmt == '\0')
        fmt = "%d/%b/%Y:%H:%M:%S %z";
    /* strftime returns 0 both for "too small" and for an empty result:
     * grow a few times, then settle for nothing. */
    for (size_t cap = 256; cap <= 65536; cap *= 4) {
        if (buf_reserve(b, cap) < 0)
            return -ENOMEM;
        size_t n = strftime(b->p + b->len, cap, fmt, &tm);
        if (n > 0) {
            b->len += n;
            return 0;
        }
    }
    return 0;
}

static int buf_duration(rf_access_buf_t *b, uint64_t us, int unit)
{
    if (unit == 0)
        return buf_printf(b, "%.3f", (double)us / 1e6);
    if (unit == 1)
        return buf_printf(b, "%.3f", (double)us / 1e3);
    return buf_printf(b, "%" PRIu64, us);
}

long rf_access_format(const rf_access_fmt_t *f, const rf_access_req_t *r, rf_access_buf_t *b)
{
    size_t start = b->len;
    int rc = 0;

    for (size_t i = 0; i < f->n && rc == 0; i++) {
        const acc_item_t *it = &f->items[i];
        switch (it->kind) {
        case ACC_LIT:
            rc = buf_put(b, it->arg, it->arg_len);
            break;
        case ACC_CPU: {
            uint64_t cpu = it->unit == 1   ? r->cpu_user_us
                           : it->unit == 2 ? r->cpu_sys_us
                                           : r->cpu_user_us + r->cpu_sys_us;
            /* php-fpm divides by zero here (nan); a 0 s request used 0 % */
            double pct = r->duration_us ? (double)cpu / (double)r->duration_us * 100. : 0.;
            rc = buf_printf(b, "%.2f", pct);
            break;
        }
        case ACC_DUR:
            rc = buf_duration(b, r->duration_us, it->unit);
            break;
        case ACC_WAIT:
            rc = r->queue_us < 0 ? buf_put(b, "-", 1)
                                 : buf_duration(b, (uint64_t)r->queue_us, it->unit);
            break;
        case ACC_ENV:
            rc = buf_field(b, r->param ? r->param(r->ctx, it->arg) : NULL, 1);
            break;
        case ACC_SCRIPT:
            rc = buf_field(b, r->script, 1);
            break;
        case ACC_CLEN:
            rc = buf_printf(b, "%" PRIu64, r->content_length);
            break;
        case ACC_METHOD:
            rc = buf_field(b, r->method, 1);
            break;
        case ACC_MEM:
            rc = buf_printf(b, "%" PRIu64,
                            it->unit == 0   ? r->memory
                            : it->unit == 1 ? r->memory / 1024
                                            : r->memory / 1024 / 1024);
            break;
        case ACC_POOL:
            rc = buf_field(b, r->pool, 1);
            break;
        case ACC_HEADER:
            rc = buf_field(b, r->header ? r->header(r->ctx, it->arg) : NULL, 1);
            break;
        case ACC_PID:
            rc = buf_printf(b, "%ld", r->pid);
            break;
        case ACC_PPID:
            rc = buf_printf(b, "%ld", r->ppid);
            break;
        case ACC_QUERY:
            rc = buf_field(b, r->query, 0);
            break;
        case ACC_QMARK:
            rc = r->query && *r->query ? buf_put(b, "?", 1) : 0;
            break;
        case ACC_URI:
            rc = buf_field(b, r->uri, 0);
            break;
        case ACC_REMOTE:
            rc = buf_field(b, r->remote, 1);
            break;
        case ACC_STATUS:
            rc = buf_printf(b, "%d", r->status);
            break;
        case ACC_TSTART:
            rc = buf_time(b, r->start_sec, it->arg);
            break;
        case ACC_TNOW:
            rc = buf_time(b, r->now_sec, it->arg);
            break;
        case ACC_USER:
            rc = buf_field(b, r->user, 0);
            break;
        }
    }
    if (rc == 0 && b->len > start)
        rc = buf_put(b, "\n", 1);
    if (rc < 0) {
        b->len = start;
        return rc;
    }
    return (long)(b->len - start);
}

int rf_access_suppressed(const rf_access_req_t *r, const char *const *paths, size_t n)
{
    if (n == 0 || (r->query && *r->query) || r->method == NULL)
        return 0;
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
        return 0;
    if (r->status < 200 || r->status > 299 || r->content_length > 0)
        return 0;
    const char *uri = r->uri ? r->uri : "";
    for (size_t i = 0; i < n; i++)
        if (strcmp(uri, paths[i]) == 0)
            return 1;
    return 0;
}
