/*
 * rf_status: ping and status answered by the responder thread itself, never
 * by the pool's handler, so they answer when every executor is busy. Matched
 * like php-fpm: an exact compare of SCRIPT_NAME with ping.path or
 * pm.status_path; ping first. Query keys select the status format (json,
 * else plain text) and `full` adds php-fpm's per-process blocks. php-fpm's
 * pool fields come from the scoreboard (core/rf_board.h), which each thread
 * keeps up to date with rf_status_publish and fpm_get_status() reads too;
 * ringfpm's own counters are summed over the threads with relaxed loads: a
 * snapshot, not a transaction.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "rf_fcgi.h"
#include "rf_handler.h"
#include "rf_io_int.h"

#define RF_NO_CACHE                                                                                \
    "Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\n"                                                   \
    "Cache-Control: no-cache, no-store, must-revalidate, max-age=0\r\n"

static int rf_param_is(const rf_req_t *r, const char *name, const char *value)
{
    const rf_param_t *p = rf_req_param(r, name);
    size_t len = strlen(value);
    return p && p->value_len == len && memcmp(p->value, value, len) == 0;
}

/* Does the query string have this key (presence, value ignored)? */
static int rf_query_has(const rf_req_t *r, const char *key)
{
    const rf_param_t *q = rf_req_param(r, "QUERY_STRING");
    if (q == NULL)
        return 0;
    size_t klen = strlen(key);
    const char *p = q->value, *end = q->value + q->value_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - p) == klen && memcmp(p, key, klen) == 0)
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
    rf_board_stats_t s = {
        .accepted_conn = d->conns,
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

/* s as a JSON string body (no quotes) into out (cap > 0), cut to fit;
 * escaped as php-fpm's status page does (php_json_escape_string). */
static const char *rf_json_esc(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        size_t k;
        if (ch == '"' || ch == '\\' || ch == '/') { /* '/' as php's json escape does */
            esc[0] = '\\';
            esc[1] = (char)ch;
            k = 2;
        } else if (ch < 0x20) {
            k = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", ch);
        } else {
            esc[0] = (char)ch;
            k = 1;
        }
        if (n + k >= cap)
            break;
        memcpy(out + n, esc, k);
        n += k;
    }
    out[n] = '\0';
    return out;
}

/* php-fpm's per-process block (fpm_status.c, `full`) for one executor. */
static void rf_status_proc(rf_req_t *r, const rf_board_proc_view_t *v, int json, int first)
{
    char buf[4096], start[64];
    if (json) {
        char uri[2 * RF_BOARD_URI_LEN], query[2 * RF_BOARD_QUERY_LEN];
        char user[2 * RF_BOARD_USER_LEN], script[2 * RF_BOARD_SCRIPT_LEN];
        int n = snprintf(
            buf, sizeof(buf),
            "%s{\"pid\":%d,\"state\":\"%s\",\"start time\":%lld,\"start since\":%lld,"
            "\"requests\":%llu,\"request duration\":%llu,\"request method\":\"%s\","
            "\"request uri\":\"%s%s%s\",\"content length\":%llu,\"user\":\"%s\","
            "\"script\":\"%s\",\"last request cpu\":%.2f,\"last request memory\":%llu}",
            first ? "" : ",", v->pid, v->state, (long long)v->start_time, (long long)v->start_since,
            (unsigned long long)v->requests, (unsigned long long)v->request_duration, v->method,
            rf_json_esc(v->uri, uri, sizeof(uri)), v->query[0] ? "?" : "",
            rf_json_esc(v->query, query, sizeof(query)), (unsigned long long)v->content_length,
            rf_json_esc(v->user, user, sizeof(user)),
            rf_json_esc(v->script, script, sizeof(script)), v->last_request_cpu,
            (unsigned long long)v->last_request_memory);
        rf_resp_write(r, RF_FCGI_STDOUT, buf,
                      (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
        return;
    }
    struct tm tm;
    time_t st = (time_t)v->start_time;
    localtime_r(&st, &tm);
    strftime(start, sizeof(start), "%d/%b/%Y:%H:%M:%S %z", &tm);
    int n = snprintf(buf, sizeof(buf),
                     "\n************************\n"
                     "pid:                  %d\n"
                     "state:                %s\n"
                     "start time:           %s\n"
                     "start since:          %lld\n"
                     "requests:             %llu\n"
                     "request duration:     %llu\n"
                     "request method:       %s\n"
                     "request URI:          %s%s%s\n"
                     "content length:       %llu\n"
                     "user:                 %s\n"
                     "script:               %s\n"
                     "last request cpu:     %.2f\n"
                     "last request memory:  %llu\n",
                     v->pid, v->state, start, (long long)v->start_since,
                     (unsigned long long)v->requests, (unsigned long long)v->request_duration,
                     v->method, v->uri, v->query[0] ? "?" : "", v->query,
                     (unsigned long long)v->content_length, v->user, v->script, v->last_request_cpu,
                     (unsigned long long)v->last_request_memory);
    rf_resp_write(r, RF_FCGI_STDOUT, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* Every live executor of pool, in slot order (json: `,"processes":[...]`). */
static void rf_status_procs(rf_req_t *r, const rf_board_t *b, int pool, int json)
{
    struct timespec mono;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    uint64_t now_us = (uint64_t)mono.tv_sec * 1000000u + (uint64_t)mono.tv_nsec / 1000u;
    int64_t now = (int64_t)time(NULL);
    int first = 1;
    if (json)
        rf_resp_puts(r, RF_FCGI_STDOUT, ", \"processes\":[");
    for (int i = 0; i < rf_board_nslots(b, pool); i++) {
        rf_board_proc_t p;
        rf_board_proc_view_t v;
        if (rf_board_proc_read(b, pool, i, &p) != 1)
            continue;
        rf_board_proc_view(&p, now, now_us, &v);
        rf_status_proc(r, &v, json, first);
        first = 0;
    }
    if (json)
        rf_resp_puts(r, RF_FCGI_STDOUT, "]");
}

static void rf_status_reply(rf_thread_t *t, rf_conn_t *c, rf_req_t *r)
{
    rf_io_t *io = t->io;
    const rf_board_t *board = io->conf->board;
    rf_status_sum_t s;
    rf_status_collect(io, c->pool_idx, &s);
    rf_board_stats_t b;
    (void)rf_board_stats_get(board, c->pool_idx, &b); /* a busy block: the rest */
    const rf_board_pool_t *bp = rf_board_pool_get(board, c->pool_idx);
    int json = rf_query_has(r, "json");
    int full = rf_query_has(r, "full");
    long since = (long)(time(NULL) - bp->start_time);

    struct {
        const char *name;
        unsigned long long v;
    } rows[] = {
        {"accepted conn", b.accepted_conn},
        {"listen queue", b.listen_queue},
        {"max listen queue", b.max_listen_queue},
        {"listen queue len", bp->listen_queue_len},
        {"idle processes", b.idle},
        {"active processes", b.active},
        {"total processes", b.total},
        {"max active processes", b.max_active},
        {"max children reached", b.max_children_reached},
        {"slow requests", b.slow_requests},
        {"executor requests", s.d.accepted},
        {"queued requests", s.d.queued},
        {"queue full", s.d.queue_full},
        {"queue timeouts", s.d.queue_timeouts},
        {"queue aborted", s.d.queue_aborted},
        {"executor failures", s.d.failed},
        {"terminated requests", s.d.terminated},
        {"active connections", s.io.active},
        {"requests", s.p.requests},
        {"protocol errors", s.p.protocol_errors},
        {"limit params", s.p.limit_params},
        {"limit body", s.p.limit_body},
        {"limit connections", s.io.limit_connections},
        {"limit multiplex", s.p.limit_multiplex},
        {"limit per connection", s.p.limit_per_connection},
        {"timeouts read", s.io.timeouts_read},
        {"timeouts idle", s.io.timeouts_idle},
        {"aborted requests", s.p.aborted},
        {"records ignored", s.p.records_ignored},
        {"get values", s.p.get_values},
        {"unknown types", s.p.unknown_types},
        {"unknown roles", s.p.unknown_roles},
        {"spilled bodies", s.p.spilled},
        {"accept errors", s.io.accept_errors},
        {"receive buffer shortages", s.io.enobufs},
        {"responder threads", (unsigned long long)io->nthreads},
    };

    char buf[4096];
    size_t n = 0;
    const char *ctype = json ? "application/json" : "text/plain;charset=UTF-8";
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "Content-Type: %s\r\n" RF_NO_CACHE "\r\n",
                          ctype);
    if (json)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                              "{\"pool\":\"%s\",\"start time\":%lld,\"start since\":%ld,"
                              "\"io backend\":\"%s\"",
                              c->pool->name, (long long)bp->start_time, since, io->be->name);
    else
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%-25s %s\n%-25s %ld\n%-25s %s\n",
                              "pool:", c->pool->name, "start since:", since,
                              "io backend:", io->be->name);
    for (size_t i = 0; i < RF_ARRAY_SIZE(rows) && n < sizeof(buf) - 128; i++) {
        if (json)
            n +=
                (size_t)snprintf(buf + n, sizeof(buf) - n, ",\"%s\":%llu", rows[i].name, rows[i].v);
        else
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s:%*s%llu\n", rows[i].name,
                                  (int)(25 - strlen(rows[i].name)), "", rows[i].v);
    }
    if (rf_param_is(r, "REQUEST_METHOD", "HEAD")) {
        n = (size_t)(strstr(buf, "\r\n\r\n") - buf) + 4;
        rf_resp_write(r, RF_FCGI_STDOUT, buf, n);
        rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
        return;
    }
    rf_resp_write(r, RF_FCGI_STDOUT, buf, n);
    if (full)
        rf_status_procs(r, board, c->pool_idx, json);
    if (json)
        rf_resp_puts(r, RF_FCGI_STDOUT, "}");
    rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
}

static int rf_script_is(const rf_param_t *sn, const char *path)
{
    size_t len = strlen(path);
    return sn && sn->value_len == len && memcmp(sn->value, path, len) == 0;
}

int rf_status_handle(rf_thread_t *t, rf_conn_t *c, rf_req_t *r)
{
    const rf_io_pool_t *pool = c->pool;
    const rf_param_t *sn = rf_req_script_name(r);
    if (pool->ping_path && rf_script_is(sn, pool->ping_path)) {
        static const char hdr[] = "Content-Type: text/plain\r\n" RF_NO_CACHE "\r\n";
        rf_resp_write(r, RF_FCGI_STDOUT, hdr, sizeof(hdr) - 1);
        if (!rf_param_is(r, "REQUEST_METHOD", "HEAD"))
            rf_resp_puts(r, RF_FCGI_STDOUT, pool->ping_response ? pool->ping_response : "pong");
        rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
        return 1;
    }
    if (pool->status_path && rf_script_is(sn, pool->status_path)) {
        rf_status_reply(t, c, r);
        return 1;
    }
    return 0;
}
