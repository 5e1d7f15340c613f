/*
 * rf_status: ping and status answered by the responder thread itself, never
 * by the pool's handler, so they answer when every executor is busy. Matched
 * like php-fpm: an exact compare of SCRIPT_NAME with ping.path or
 * pm.status_path; ping first. The page is php-fpm 8.2's (fpm_status.c), byte
 * for byte where the values allow: the same formats chosen by the same query
 * keys (html, then xml, json, openmetrics, else plain text; `full` adds the
 * per-process part, not to openmetrics), the same field names, order,
 * escaping, headers and content types, and HEAD answered with headers only.
 * php-fpm's pool fields come from the scoreboard (core/rf_board.h), which
 * each thread keeps up to date with rf_status_publish and fpm_get_status()
 * reads too. ringfpm's own counters follow php-fpm's fields in every format
 * (in openmetrics as ringfpm_* families); they are summed over the threads
 * with relaxed loads: a snapshot, not a transaction.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rf_fcgi.h"
#include "rf_handler.h"
#include "rf_io_int.h"

#define RF_STATUS_EXPIRES  "Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
#define RF_STATUS_NO_CACHE "Cache-Control: no-cache, no-store, must-revalidate, max-age=0\r\n"
/* php-fpm's plain text puts every value at this column ("name:" padded). */
#define RF_STATUS_TEXT_COL 22

static int rf_param_is(const rf_req_t *r, const char *name, const char *value)
{
    const rf_param_t *p = rf_req_param(r, name);
    size_t len = strlen(value);
    return p && p->value_len == len && memcmp(p->value, value, len) == 0;
}

static int rf_hex(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/*
 * Is key one of $_GET's keys (presence; the value is ignored)? PHP's rules
 * as far as they matter for these ASCII keys: pairs split at '&', the name
 * url-decoded ('+' is a space), leading spaces dropped, and "key[...]" is
 * key made an array.
 */
static int rf_query_has(const rf_param_t *q, const char *key)
{
    if (q == NULL)
        return 0;
    size_t klen = strlen(key);
    const char *p = q->value, *end = q->value + q->value_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        char k[256];
        size_t n = 0;
        for (const char *s = p; s < kend && n < sizeof(k); s++) {
            int ch = (unsigned char)*s;
            if (ch == '+') {
                ch = ' ';
            } else if (ch == '%' && kend - s >= 3 && rf_hex(s[1]) >= 0 && rf_hex(s[2]) >= 0) {
                ch = rf_hex(s[1]) * 16 + rf_hex(s[2]);
                s += 2;
            }
            k[n++] = (char)ch;
        }
        size_t i = 0;
        while (i < n && k[i] == ' ')
            i++;
        size_t j = i;
        while (j < n && k[j] != '[')
            j++;
        if (j == n || memchr(k + j, ']', n - j) == NULL)
            j = n; /* no array: PHP keeps the whole name ('[' made '_') */
        if (j - i == klen && memcmp(k + i, key, klen) == 0)
            return 1;
        p = stop + 1;
    }
    return 0;
}

#define RF_SUM(dst, src, f) (dst)->f += RF_STAT_LOAD(src, f)

typedef struct rf_status_sum {
    rf_proto_stats_t p;
    rf_io_stats_t io;
    rf_disp_stats_t d; /* this pool's executors and queue */
} rf_status_sum_t;

static void rf_status_collect(rf_io_t *io, int pool, rf_status_sum_t *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < io->nthreads; i++) {
        rf_thread_t *t = &io->threads[i];
        if (t->dstats) {
            rf_disp_stats_t *d = &t->dstats[pool];
            RF_SUM(&s->d, d, accepted);
            RF_SUM(&s->d, d, queued);
            RF_SUM(&s->d, d, queue_full);
            RF_SUM(&s->d, d, queue_timeouts);
            RF_SUM(&s->d, d, queue_aborted);
            RF_SUM(&s->d, d, failed);
            RF_SUM(&s->d, d, terminated);
        }
        RF_SUM(&s->p, &t->pstats, requests);
        RF_SUM(&s->p, &t->pstats, protocol_errors);
        RF_SUM(&s->p, &t->pstats, limit_params);
        RF_SUM(&s->p, &t->pstats, limit_body);
        RF_SUM(&s->p, &t->pstats, limit_multiplex);
        RF_SUM(&s->p, &t->pstats, limit_per_connection);
        RF_SUM(&s->p, &t->pstats, aborted);
        RF_SUM(&s->p, &t->pstats, records_ignored);
        RF_SUM(&s->p, &t->pstats, get_values);
        RF_SUM(&s->p, &t->pstats, unknown_types);
        RF_SUM(&s->p, &t->pstats, unknown_roles);
        RF_SUM(&s->p, &t->pstats, spilled);
        RF_SUM(&s->io, &t->stats, active);
        RF_SUM(&s->io, &t->stats, limit_connections);
        RF_SUM(&s->io, &t->stats, timeouts_read);
        RF_SUM(&s->io, &t->stats, timeouts_idle);
        RF_SUM(&s->io, &t->stats, accept_errors);
        RF_SUM(&s->io, &t->stats, enobufs);
        RF_SUM(&s->io, &t->stats, closed_errors);
#undef RF_SUM
    }
}

void rf_status_publish(rf_thread_t *t, int pool)
{
    const rf_disp_stats_t *d = &t->dstats[pool];
    /* php-fpm's "accepted conn" counts requests its workers took (ping and
     * status included: they run on a worker there). A PHP pool counts the
     * same; a builtin pool, with no workers to hand requests to, counts
     * the connections its listener accepted. */
    int php = t->io->conf->pools[pool].handler == NULL;
    rf_board_stats_t s = {
        .accepted_conn = php ? d->accepted + d->answered : d->conns,
        .listen_queue = d->queue,
        .max_listen_queue = d->max_queue,
        .idle = d->idle,
        .active = d->active,
        .total = d->total,
        .max_active = d->max_active,
        .max_children_reached = d->maxed,
        .slow_requests = d->slow,
    };
    rf_board_stats_put(t->io->conf->board, pool, t->idx, &s);
}

/* ---- output --------------------------------------------------------------- */

/* The page is streamed through this buffer so it goes out in few records. */
typedef struct rf_status_out {
    rf_req_t *r;
    size_t n;
    char buf[8192];
} rf_status_out_t;

static void rf_out_flush(rf_status_out_t *o)
{
    if (o->n)
        rf_resp_write(o->r, RF_FCGI_STDOUT, o->buf, o->n);
    o->n = 0;
}

static void rf_out_put(rf_status_out_t *o, const char *s, size_t len)
{
    while (len) {
        if (o->n == sizeof(o->buf))
            rf_out_flush(o);
        size_t k = sizeof(o->buf) - o->n;
        if (k > len)
            k = len;
        memcpy(o->buf + o->n, s, k);
        o->n += k;
        s += k;
        len -= k;
    }
}

static void rf_out_puts(rf_status_out_t *o, const char *s)
{
    rf_out_put(o, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void rf_out_printf(rf_status_out_t *o, const char *fmt,
                                                                ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (k > 0)
        rf_out_put(o, tmp, (size_t)k < sizeof(tmp) ? (size_t)k : sizeof(tmp) - 1);
}

/*
 * One UTF-8 character of s[*pos, len) into *cp, judged as PHP's
 * php_next_utf8_char does: shortest form, no surrogates, at most U+10FFFF.
 * Returns 0, or -1 for an invalid byte (*pos then moves one byte on; the
 * continuation bytes that follow fail on their own).
 */
static int rf_utf8_next(const unsigned char *s, size_t len, size_t *pos, uint32_t *cp)
{
    size_t i = *pos, need;
    uint32_t c = s[i], v, min;
    *pos = i + 1;
    if (c < 0x80) {
        *cp = c;
        return 0;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1, v = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2, v = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3, v = c & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if (len - i - 1 < need)
        return -1;
    for (size_t k = 1; k <= need; k++) {
        if ((s[i + k] & 0xc0) != 0x80)
            return -1;
        v = (v << 6) | (s[i + k] & 0x3f);
    }
    if (v < min || (v >= 0xd800 && v <= 0xdfff) || v > 0x10ffff)
        return -1;
    *cp = v;
    *pos = i + 1 + need;
    return 0;
}

/* s as the inside of a JSON string, as php-fpm 8.2 encodes its fields
 * (php_json_encode_string with PHP_JSON_INVALID_UTF8_IGNORE): '/' escaped,
 * everything past ASCII as \uXXXX, invalid bytes dropped. */
static void rf_out_json(rf_status_out_t *o, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s), pos = 0;
    while (pos < len) {
        uint32_t cp;
        if (rf_utf8_next(u, len, &pos, &cp) < 0)
            continue;
        char e[16];
        const char *lit = NULL;
        switch (cp) {
        case '"':
            lit = "\\\"";
            break;
        case '\\':
            lit = "\\\\";
            break;
        case '/':
            lit = "\\/";
            break;
        case '\b':
            lit = "\\b";
            break;
        case '\f':
            lit = "\\f";
            break;
        case '\n':
            lit = "\\n";
            break;
        case '\r':
            lit = "\\r";
            break;
        case '\t':
            lit = "\\t";
            break;
        default:
            if (cp >= 0x20 && cp < 0x80) {
                e[0] = (char)cp;
                e[1] = '\0';
            } else if (cp < 0x10000) {
                snprintf(e, sizeof(e), "\\u%04x", (unsigned)cp);
            } else {
                cp -= 0x10000;
                snprintf(e, sizeof(e), "\\u%04x\\u%04x", (unsigned)(0xd800 | (cp >> 10)),
                         (unsigned)(0xdc00 | (cp & 0x3ff)));
            }
            lit = e;
        }
        rf_out_puts(o, lit);
    }
}

/* s escaped for html and xml as php-fpm 8.2 does (htmlspecialchars with
 * double quotes, characters XML forbids made U+FFFD): a string that is not
 * valid UTF-8 shows as nothing at all, as there. */
static void rf_out_html(rf_status_out_t *o, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s), pos = 0;
    uint32_t cp = 0;
    while (pos < len)
        if (rf_utf8_next(u, len, &pos, &cp) < 0)
            return;
    for (pos = 0; pos < len;) {
        size_t at = pos;
        rf_utf8_next(u, len, &pos, &cp);
        if (cp == '&')
            rf_out_puts(o, "&amp;");
        else if (cp == '<')
            rf_out_puts(o, "&lt;");
        else if (cp == '>')
            rf_out_puts(o, "&gt;");
        else if (cp == '"')
            rf_out_puts(o, "&quot;");
        else if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0xfffe ||
                 cp == 0xffff)
            rf_out_puts(o, "\xef\xbf\xbd");
        else
            rf_out_put(o, s + at, pos - at);
    }
}

/* ---- formats -------------------------------------------------------------- */

enum rf_status_fmt {
    RF_STATUS_TEXT,
    RF_STATUS_HTML,
    RF_STATUS_XML,
    RF_STATUS_JSON,
    RF_STATUS_OPENMETRICS,
};

/* The Content-Type line php-fpm puts on the wire (PHP adds ";charset=UTF-8"
 * to text/ types and spells those "Content-type"). */
static const char *const rf_status_ctype[] = {
    [RF_STATUS_TEXT] = "Content-type: text/plain;charset=UTF-8\r\n",
    [RF_STATUS_HTML] = "Content-type: text/html;charset=UTF-8\r\n",
    [RF_STATUS_XML] = "Content-type: text/xml;charset=UTF-8\r\n",
    [RF_STATUS_JSON] = "Content-Type: application/json\r\n",
    [RF_STATUS_OPENMETRICS] =
        "Content-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n",
};

/* php-fpm's precedence when several keys are given. */
static enum rf_status_fmt rf_status_format(const rf_param_t *q)
{
    if (rf_query_has(q, "html"))
        return RF_STATUS_HTML;
    if (rf_query_has(q, "xml"))
        return RF_STATUS_XML;
    if (rf_query_has(q, "json"))
        return RF_STATUS_JSON;
    if (rf_query_has(q, "openmetrics"))
        return RF_STATUS_OPENMETRICS;
    return RF_STATUS_TEXT;
}

/* A field name as the format spells it: text as given, the others in lower
 * case ("request URI" is php-fpm's only capital), xml with '-' for ' '. */
static void rf_out_name(rf_status_out_t *o, enum rf_status_fmt fmt, const char *name)
{
    for (const char *p = name; *p; p++) {
        char ch = *p;
        if (fmt != RF_STATUS_TEXT && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (fmt == RF_STATUS_XML && ch == ' ')
            ch = '-';
        rf_out_put(o, &ch, 1);
    }
}

/* Where a field opens and closes; proc: a per-process field, idx: its
 * position (json separators). */
static void rf_field_open(rf_status_out_t *o, enum rf_status_fmt fmt, int proc, int idx,
                          const char *name)
{
    switch (fmt) {
    case RF_STATUS_TEXT: {
        size_t len = strlen(name) + 1;
        rf_out_puts(o, name);
        rf_out_printf(o, ":%*s", len < RF_STATUS_TEXT_COL ? (int)(RF_STATUS_TEXT_COL - len) : 1,
                      "");
        break;
    }
    case RF_STATUS_HTML:
        if (proc) {
            rf_out_puts(o, "<td>");
        } else {
            rf_out_puts(o, "<tr><th>");
            rf_out_name(o, fmt, name);
            rf_out_puts(o, "</th><td>");
        }
        break;
    case RF_STATUS_XML:
        rf_out_puts(o, "<");
        rf_out_name(o, fmt, name);
        rf_out_puts(o, ">");
        break;
    case RF_STATUS_JSON:
        rf_out_puts(o, idx ? ",\"" : proc ? "\"" : "{\"");
        rf_out_name(o, fmt, name);
        rf_out_puts(o, "\":");
        break;
    case RF_STATUS_OPENMETRICS:
        break;
    }
}

static void rf_field_close(rf_status_out_t *o, enum rf_status_fmt fmt, int proc, const char *name)
{
    switch (fmt) {
    case RF_STATUS_TEXT:
        rf_out_puts(o, "\n");
        break;
    case RF_STATUS_HTML:
        rf_out_puts(o, proc ? "</td>" : "</td></tr>\n");
        break;
    case RF_STATUS_XML:
        rf_out_puts(o, "</");
        rf_out_name(o, fmt, name);
        rf_out_puts(o, proc ? ">" : ">\n");
        break;
    case RF_STATUS_JSON:
    case RF_STATUS_OPENMETRICS:
        break;
    }
}

/* A string value, escaped for the format (json: quoted). */
static void rf_out_value(rf_status_out_t *o, enum rf_status_fmt fmt, const char *s)
{
    if (fmt == RF_STATUS_JSON) {
        rf_out_puts(o, "\"");
        rf_out_json(o, s);
        rf_out_puts(o, "\"");
    } else if (fmt == RF_STATUS_HTML || fmt == RF_STATUS_XML) {
        rf_out_html(o, s);
    } else {
        rf_out_puts(o, s);
    }
}

static void rf_field_str(rf_status_out_t *o, enum rf_status_fmt fmt, int proc, int idx,
                         const char *name, const char *s)
{
    rf_field_open(o, fmt, proc, idx, name);
    rf_out_value(o, fmt, s);
    rf_field_close(o, fmt, proc, name);
}

static void rf_field_num(rf_status_out_t *o, enum rf_status_fmt fmt, int proc, int idx,
                         const char *name, unsigned long long v)
{
    rf_field_open(o, fmt, proc, idx, name);
    rf_out_printf(o, "%llu", v);
    rf_field_close(o, fmt, proc, name);
}

/* A start time: epoch seconds in json and xml, php-fpm's local date in
 * text and html. */
static void rf_field_time(rf_status_out_t *o, enum rf_status_fmt fmt, int proc, int idx,
                          const char *name, int64_t epoch)
{
    if (fmt == RF_STATUS_JSON || fmt == RF_STATUS_XML) {
        rf_field_open(o, fmt, proc, idx, name);
        rf_out_printf(o, "%lld", (long long)epoch);
        rf_field_close(o, fmt, proc, name);
        return;
    }
    char buf[64];
    struct tm tm;
    time_t st = (time_t)epoch;
    localtime_r(&st, &tm);
    strftime(buf, sizeof(buf), "%d/%b/%Y:%H:%M:%S %z", &tm);
    rf_field_str(o, fmt, proc, idx, name, buf);
}

/* ringfpm's counters beyond php-fpm's: a name in php-fpm's style (made
 * ringfpm_<name> in openmetrics), its help text, and whether it is a gauge. */
typedef struct rf_status_row {
    const char *name;
    const char *help;
    unsigned long long v;
    int gauge;
} rf_status_row_t;

/* php-fpm's per-process block (fpm_status.c, `full`) for one executor. */
static void rf_status_proc(rf_status_out_t *o, enum rf_status_fmt fmt,
                           const rf_board_proc_view_t *v, int first)
{
    int i = 0;
    if (fmt == RF_STATUS_TEXT)
        rf_out_puts(o, "\n************************\n");
    else if (fmt == RF_STATUS_HTML)
        rf_out_puts(o, "<tr>");
    else if (fmt == RF_STATUS_XML)
        rf_out_puts(o, "<process>");
    else
        rf_out_puts(o, first ? "{" : ",{");
    rf_field_num(o, fmt, 1, i++, "pid", (unsigned long long)v->pid);
    rf_field_str(o, fmt, 1, i++, "state", v->state);
    rf_field_time(o, fmt, 1, i++, "start time", v->start_time);
    rf_field_num(o, fmt, 1, i++, "start since", (unsigned long long)v->start_since);
    rf_field_num(o, fmt, 1, i++, "requests", v->requests);
    rf_field_num(o, fmt, 1, i++, "request duration", v->request_duration);
    rf_field_str(o, fmt, 1, i++, "request method", v->method);
    /* uri and query escaped apart, "?" between when there is a query */
    rf_field_open(o, fmt, 1, i++, "request URI");
    if (fmt == RF_STATUS_JSON)
        rf_out_puts(o, "\"");
    const char *uri = v->uri[0] ? v->uri : "-";
    if (fmt == RF_STATUS_JSON) {
        rf_out_json(o, uri);
        if (v->query[0]) {
            rf_out_puts(o, "?");
            rf_out_json(o, v->query);
        }
        rf_out_puts(o, "\"");
    } else {
        rf_out_value(o, fmt, uri);
        if (v->query[0]) {
            rf_out_puts(o, "?");
            rf_out_value(o, fmt, v->query);
        }
    }
    rf_field_close(o, fmt, 1, "request URI");
    rf_field_num(o, fmt, 1, i++, "content length", v->content_length);
    rf_field_str(o, fmt, 1, i++, "user", v->user);
    rf_field_str(o, fmt, 1, i++, "script", v->script);
    rf_field_open(o, fmt, 1, i++, "last request cpu");
    rf_out_printf(o, "%.2f", v->last_request_cpu);
    rf_field_close(o, fmt, 1, "last request cpu");
    rf_field_num(o, fmt, 1, i++, "last request memory", v->last_request_memory);
    if (fmt == RF_STATUS_HTML)
        rf_out_puts(o, "</tr>\n");
    else if (fmt == RF_STATUS_XML)
        rf_out_puts(o, "</process>\n");
    else if (fmt == RF_STATUS_JSON)
        rf_out_puts(o, "}");
}

/* Every live executor of pool, in slot order. */
static void rf_status_procs(rf_status_out_t *o, enum rf_status_fmt fmt, const rf_board_t *b,
                            int pool)
{
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    uint64_t now_us = (uint64_t)mono.tv_sec * 1000000u + (uint64_t)mono.tv_nsec / 1000u;
    int64_t now = (int64_t)time(NULL);
    int first = 1;
    for (int i = 0; i < rf_board_nslots(b, pool); i++) {
        rf_board_proc_t p;
        rf_board_proc_view_t v;
        if (rf_board_proc_read(b, pool, i, &p) != 1)
            continue;
        rf_board_proc_view(&p, now, now_us, &v);
        rf_status_proc(o, fmt, &v, first);
        first = 0;
    }
}

/* php-fpm's openmetrics text (fpm_status.c, its HELP and TYPE lines as they
 * are), then ringfpm's families, then "# EOF". */
static void rf_status_openmetrics(rf_status_out_t *o, const char *pool, const char *pm, long since,
                                  const rf_board_stats_t *b, const rf_board_pool_t *bp,
                                  const char *backend, const rf_status_row_t *rows, size_t nrows)
{
    rf_out_puts(o, "# HELP phpfpm_up Could pool ");
    rf_out_puts(o, pool);
    rf_out_puts(o, " using a ");
    rf_out_puts(o, pm);
    rf_out_puts(o, " PM on PHP-FPM be reached?\n"
                   "# TYPE phpfpm_up gauge\n"
                   "phpfpm_up 1\n");
    rf_out_printf(o,
                  "# HELP phpfpm_start_since The number of seconds since FPM has started.\n"
                  "# TYPE phpfpm_start_since counter\n"
                  "phpfpm_start_since %ld\n"
                  "# HELP phpfpm_accepted_connections The number of requests accepted by the "
                  "pool.\n"
                  "# TYPE phpfpm_accepted_connections counter\n"
                  "phpfpm_accepted_connections %llu\n",
                  since, (unsigned long long)b->accepted_conn);
    rf_out_printf(o,
                  "# HELP phpfpm_listen_queue The number of requests in the queue of pending "
                  "connections.\n"
                  "# TYPE phpfpm_listen_queue gauge\n"
                  "phpfpm_listen_queue %llu\n"
                  "# HELP phpfpm_max_listen_queue The maximum number of requests in the queue "
                  "of pending connections since FPM has started.\n"
                  "# TYPE phpfpm_max_listen_queue counter\n"
                  "phpfpm_max_listen_queue %llu\n",
                  (unsigned long long)b->listen_queue, (unsigned long long)b->max_listen_queue);
    rf_out_printf(o,
                  "# TYPE phpfpm_listen_queue_length gauge\n"
                  "# HELP phpfpm_listen_queue_length The size of the socket queue of pending "
                  "connections.\n"
                  "phpfpm_listen_queue_length %llu\n"
                  "# HELP phpfpm_idle_processes The number of idle processes.\n"
                  "# TYPE phpfpm_idle_processes gauge\n"
                  "phpfpm_idle_processes %llu\n"
                  "# HELP phpfpm_active_processes The number of active processes.\n"
                  "# TYPE phpfpm_active_processes gauge\n"
                  "phpfpm_active_processes %llu\n",
                  (unsigned long long)bp->listen_queue_len, (unsigned long long)b->idle,
                  (unsigned long long)b->active);
    rf_out_printf(o,
                  "# HELP phpfpm_total_processes The number of idle + active processes.\n"
                  "# TYPE phpfpm_total_processes gauge\n"
                  "phpfpm_total_processes %llu\n"
                  "# HELP phpfpm_max_active_processes The maximum number of active processes "
                  "since FPM has started.\n"
                  "# TYPE phpfpm_max_active_processes counter\n"
                  "phpfpm_max_active_processes %llu\n",
                  (unsigned long long)b->total, (unsigned long long)b->max_active);
    rf_out_printf(o,
                  "# HELP phpfpm_max_children_reached The number of times, the process limit "
                  "has been reached, when pm tries to start more children (works only for pm "
                  "'dynamic' and 'ondemand').\n"
                  "# TYPE phpfpm_max_children_reached counter\n"
                  "phpfpm_max_children_reached %llu\n"
                  "# HELP phpfpm_slow_requests The number of requests that exceeded your "
                  "'request_slowlog_timeout' value.\n"
                  "# TYPE phpfpm_slow_requests counter\n"
                  "phpfpm_slow_requests %llu\n",
                  (unsigned long long)b->max_children_reached,
                  (unsigned long long)b->slow_requests);
    rf_out_printf(o,
                  "# HELP ringfpm_io_backend The io backend of the responder threads.\n"
                  "# TYPE ringfpm_io_backend info\n"
                  "ringfpm_io_backend_info{backend=\"%s\"} 1\n",
                  backend);
    for (size_t i = 0; i < nrows; i++) {
        char name[64];
        size_t k = 0;
        for (const char *p = rows[i].name; *p && k < sizeof(name) - 1; p++)
            name[k++] = *p == ' ' ? '_' : *p;
        name[k] = '\0';
        rf_out_printf(o, "# HELP ringfpm_%s %s\n# TYPE ringfpm_%s %s\nringfpm_%s%s %llu\n", name,
                      rows[i].help, name, rows[i].gauge ? "gauge" : "counter", name,
                      rows[i].gauge ? "" : "_total", rows[i].v);
    }
    rf_out_puts(o, "# EOF\n");
}

/* The pool whose status c's listener shows: its own, or for a
 * pm.status_listen listener the pool it was configured in. */
static int rf_status_pool_of(const rf_conn_t *c)
{
    return c->pool->status_of ? c->pool->status_of - 1 : c->pool_idx;
}

static void rf_status_reply(rf_thread_t *t, rf_conn_t *c, rf_req_t *r)
{
    rf_io_t *io = t->io;
    const rf_board_t *board = io->conf->board;
    int pool = rf_status_pool_of(c);
    const char *pool_name = io->conf->pools[pool].name;
    rf_status_sum_t s;
    rf_status_collect(io, pool, &s);
    rf_board_stats_t b;
    (void)rf_board_stats_get(board, pool, &b); /* a busy block: the rest */
    const rf_board_pool_t *bp = rf_board_pool_get(board, pool);
    const rf_param_t *q = rf_req_param(r, "QUERY_STRING");
    enum rf_status_fmt fmt = rf_status_format(q);
    int full = fmt != RF_STATUS_OPENMETRICS && rf_query_has(q, "full");
    long since = (long)(time(NULL) - bp->start_time);

    rf_status_out_t out = {.r = r}, *o = &out;
    rf_out_puts(o, RF_STATUS_EXPIRES RF_STATUS_NO_CACHE);
    if (rf_param_is(r, "REQUEST_METHOD", "HEAD")) {
        /* php-fpm returns before it picks a format: PHP's default type */
        rf_out_puts(o, "Content-type: text/html; charset=UTF-8\r\n\r\n");
        rf_out_flush(o);
        rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
        return;
    }
    rf_out_puts(o, rf_status_ctype[fmt]);
    rf_out_puts(o, "\r\n");

    const rf_status_row_t rows[] = {
        {"executor requests", "Requests handed to an executor.", s.d.accepted, 0},
        {"queued requests", "Requests that waited for an executor.", s.d.queued, 0},
        {"queue full", "Requests refused: the queue was full (request.queue_max).", s.d.queue_full,
         0},
        {"queue timeouts", "Requests refused after waiting request.queue_timeout.",
         s.d.queue_timeouts, 0},
        {"queue aborted", "Requests whose client went away while they waited.", s.d.queue_aborted,
         0},
        {"executor failures", "Requests whose executor died under them.", s.d.failed, 0},
        {"terminated requests", "Requests ended by request_terminate_timeout.", s.d.terminated, 0},
        {"active connections", "Open FastCGI connections (all pools).", s.io.active, 1},
        {"requests", "FastCGI requests begun (all pools).", s.p.requests, 0},
        {"protocol errors", "Connections closed for malformed FastCGI input.", s.p.protocol_errors,
         0},
        {"limit params", "Requests refused: params over the limit.", s.p.limit_params, 0},
        {"limit body", "Requests refused: body over the limit.", s.p.limit_body, 0},
        {"limit connections", "Connections refused: too many open.", s.io.limit_connections, 0},
        {"limit multiplex", "Requests refused: too many at once on one connection.",
         s.p.limit_multiplex, 0},
        {"limit per connection", "Requests refused: the per-connection limit.",
         s.p.limit_per_connection, 0},
        {"timeouts read", "Requests that did not arrive in time.", s.io.timeouts_read, 0},
        {"timeouts idle", "Idle keep-alive connections closed.", s.io.timeouts_idle, 0},
        {"aborted requests", "Requests aborted by the client.", s.p.aborted, 0},
        {"records ignored", "FastCGI records ignored.", s.p.records_ignored, 0},
        {"get values", "FCGI_GET_VALUES records answered.", s.p.get_values, 0},
        {"unknown types", "Records of unknown type answered.", s.p.unknown_types, 0},
        {"unknown roles", "Requests refused for an unknown role.", s.p.unknown_roles, 0},
        {"spilled bodies", "Request bodies that went to a temporary file.", s.p.spilled, 0},
        {"accept errors", "Failed accepts.", s.io.accept_errors, 0},
        {"receive buffer shortages", "Times the receive buffers ran out.", s.io.enobufs, 0},
        {"responder threads", "Responder threads.", (unsigned long long)io->nthreads, 1},
    };

    if (fmt == RF_STATUS_OPENMETRICS) {
        rf_status_openmetrics(o, pool_name, rf_board_pool_pm(board, pool), since, &b, bp,
                              io->be->name, rows, RF_ARRAY_SIZE(rows));
        rf_out_flush(o);
        rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
        return;
    }

    if (fmt == RF_STATUS_HTML)
        rf_out_puts(o, "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" "
                       "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n"
                       "<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" "
                       "lang=\"en\">\n"
                       "<head><title>PHP-FPM Status Page</title></head>\n"
                       "<body>\n"
                       "<table>\n");
    else if (fmt == RF_STATUS_XML)
        rf_out_puts(o, "<?xml version=\"1.0\" ?>\n<status>\n");
    int i = 0;
    rf_field_str(o, fmt, 0, i++, "pool", pool_name);
    rf_field_str(o, fmt, 0, i++, "process manager", rf_board_pool_pm(board, pool));
    rf_field_time(o, fmt, 0, i++, "start time", bp->start_time);
    rf_field_num(o, fmt, 0, i++, "start since", (unsigned long long)since);
    rf_field_num(o, fmt, 0, i++, "accepted conn", b.accepted_conn);
    rf_field_num(o, fmt, 0, i++, "listen queue", b.listen_queue);
    rf_field_num(o, fmt, 0, i++, "max listen queue", b.max_listen_queue);
    rf_field_num(o, fmt, 0, i++, "listen queue len", bp->listen_queue_len);
    rf_field_num(o, fmt, 0, i++, "idle processes", b.idle);
    rf_field_num(o, fmt, 0, i++, "active processes", b.active);
    rf_field_num(o, fmt, 0, i++, "total processes", b.total);
    rf_field_num(o, fmt, 0, i++, "max active processes", b.max_active);
    rf_field_num(o, fmt, 0, i++, "max children reached", b.max_children_reached);
    rf_field_num(o, fmt, 0, i++, "slow requests", b.slow_requests);
    /* ringfpm's own, after php-fpm's */
    rf_field_str(o, fmt, 0, i++, "io backend", io->be->name);
    for (size_t k = 0; k < RF_ARRAY_SIZE(rows); k++)
        rf_field_num(o, fmt, 0, i++, rows[k].name, rows[k].v);

    switch (fmt) {
    case RF_STATUS_HTML:
        rf_out_puts(o, "</table>\n");
        if (!full) {
            rf_out_puts(o, "</body></html>");
            break;
        }
        rf_out_puts(o, "<table border=\"1\">\n<tr><th>pid</th><th>state</th><th>start "
                       "time</th><th>start since</th><th>requests</th><th>request "
                       "duration</th><th>request method</th><th>request uri</th><th>content "
                       "length</th><th>user</th><th>script</th><th>last request "
                       "cpu</th><th>last request memory</th></tr>\n");
        rf_status_procs(o, fmt, board, pool);
        rf_out_puts(o, "</table></body></html>");
        break;
    case RF_STATUS_XML:
        if (!full) {
            rf_out_puts(o, "</status>");
            break;
        }
        rf_out_puts(o, "<processes>\n");
        rf_status_procs(o, fmt, board, pool);
        rf_out_puts(o, "</processes>\n</status>");
        break;
    case RF_STATUS_JSON:
        if (full) {
            rf_out_puts(o, ", \"processes\":[");
            rf_status_procs(o, fmt, board, pool);
            rf_out_puts(o, "]");
        }
        rf_out_puts(o, "}");
        break;
    case RF_STATUS_TEXT:
        if (full)
            rf_status_procs(o, fmt, board, pool);
        break;
    case RF_STATUS_OPENMETRICS:
        break;
    }
    rf_out_flush(o);
    rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
}

static int rf_script_is(const rf_param_t *sn, const char *path)
{
    size_t len = strlen(path);
    return sn && sn->value_len == len && memcmp(sn->value, path, len) == 0;
}

/* Count r as a request the pool took, as php-fpm's worker would have. */
static void rf_status_count(rf_thread_t *t, int pool)
{
    if (t->dstats == NULL)
        return;
    RF_STAT_INC(&t->dstats[pool], answered);
    rf_status_publish(t, pool);
    rf_disp_publish(t); /* this thread's other changes of this turn, too */
}

int rf_status_handle(rf_thread_t *t, rf_conn_t *c, rf_req_t *r)
{
    const rf_io_pool_t *pool = c->pool;
    const rf_param_t *sn = rf_req_script_name(r);
    if (pool->ping_path && rf_script_is(sn, pool->ping_path)) {
        rf_status_count(t, rf_status_pool_of(c));
        static const char hdr[] =
            "Content-type: text/plain;charset=UTF-8\r\n" RF_STATUS_EXPIRES RF_STATUS_NO_CACHE
            "\r\n";
        rf_resp_write(r, RF_FCGI_STDOUT, hdr, sizeof(hdr) - 1);
        if (!rf_param_is(r, "REQUEST_METHOD", "HEAD"))
            rf_resp_puts(r, RF_FCGI_STDOUT, pool->ping_response ? pool->ping_response : "pong");
        rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
        return 1;
    }
    if (pool->status_path && rf_script_is(sn, pool->status_path)) {
        rf_status_count(t, rf_status_pool_of(c));
        rf_status_reply(t, c, r);
        return 1;
    }
    return 0;
}
