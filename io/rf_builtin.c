/*
 * rf_builtin: the handler the engine ships with, answering on the responder
 * thread with no PHP behind it. It is what README's quick start serves
 * before PHP is attached, what the engine's integration tests talk to, and
 * the "ringfpm without PHP" line of the benchmarks. Routes on SCRIPT_NAME:
 *   /echo    params in received order as NAME=VALUE lines, a blank line,
 *            then the request body (from memory or the spilled temp file)
 *   /bytes   QUERY_STRING n=N: N bytes of 'x'
 *   /stderr  "hello stderr" on FCGI_STDERR, "ok" on stdout
 *   other    "Hello, World!" as PHP's hello world sends it
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rf_fcgi.h"
#include "rf_handler.h"

#define RF_BUILTIN_BYTES_MAX (256u << 20)

static int rf_builtin_is(const rf_req_t *r, const char *path)
{
    const rf_param_t *p = rf_req_script_name(r);
    size_t len = strlen(path);
    return p && p->value_len == len && memcmp(p->value, path, len) == 0;
}

static void rf_builtin_stream(rf_req_t *r, const rf_stream_t *st)
{
    if (st->fd < 0) {
        for (const rf_chunk_t *c = st->head; c; c = c->next)
            rf_resp_write(r, RF_FCGI_STDOUT, c->data, c->len);
        return;
    }
    char buf[65536];
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(st->fd, buf, sizeof(buf), off);
        if (n <= 0)
            break;
        rf_resp_write(r, RF_FCGI_STDOUT, buf, (size_t)n);
        off += n;
    }
}

static void rf_builtin_echo(rf_req_t *r)
{
    rf_resp_puts(r, RF_FCGI_STDOUT, "Content-Type: text/plain\r\n\r\n");
    for (uint32_t i = 0; i < r->nparams; i++) {
        const rf_param_t *p = &r->params[i];
        rf_resp_write(r, RF_FCGI_STDOUT, p->name, p->name_len);
        rf_resp_write(r, RF_FCGI_STDOUT, "=", 1);
        rf_resp_write(r, RF_FCGI_STDOUT, p->value, p->value_len);
        rf_resp_write(r, RF_FCGI_STDOUT, "\n", 1);
    }
    rf_resp_write(r, RF_FCGI_STDOUT, "\n", 1);
    rf_builtin_stream(r, &r->in);
}

static void rf_builtin_bytes(rf_req_t *r)
{
    size_t n = 0;
    const rf_param_t *q = rf_req_param(r, "QUERY_STRING");
    if (q && q->value_len > 2 && memcmp(q->value, "n=", 2) == 0) {
        char num[24];
        size_t l = q->value_len - 2 < sizeof(num) - 1 ? q->value_len - 2 : sizeof(num) - 1;
        memcpy(num, q->value + 2, l);
        num[l] = '\0';
        n = strtoull(num, NULL, 10);
    }
    if (n > RF_BUILTIN_BYTES_MAX)
        n = RF_BUILTIN_BYTES_MAX;
    rf_resp_puts(r, RF_FCGI_STDOUT, "Content-Type: application/octet-stream\r\n\r\n");
    char chunk[16384];
    memset(chunk, 'x', sizeof(chunk));
    while (n > 0) {
        size_t take = n < sizeof(chunk) ? n : sizeof(chunk);
        if (rf_resp_write(r, RF_FCGI_STDOUT, chunk, take) < 0)
            break;
        n -= take;
    }
}

static void rf_builtin_start(void *ctx, rf_req_t *r)
{
    static const char hello[] = "Content-type: text/html; charset=UTF-8\r\n\r\nHello, World!";
    if (rf_builtin_is(r, "/echo")) {
        rf_builtin_echo(r);
    } else if (rf_builtin_is(r, "/bytes")) {
        rf_builtin_bytes(r);
    } else if (rf_builtin_is(r, "/stderr")) {
        rf_resp_puts(r, RF_FCGI_STDERR, "hello stderr");
        rf_resp_puts(r, RF_FCGI_STDOUT, "Content-Type: text/plain\r\n\r\nok");
    } else {
        rf_resp_write(r, RF_FCGI_STDOUT, hello, sizeof(hello) - 1);
    }
    rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
}

static void rf_builtin_abort(void *ctx, rf_req_t *r)
{
    /* Answers are synchronous: nothing is ever in progress to abort. */
}

const rf_handler_t rf_builtin_handler = {
    .name = "builtin",
    .ctx = NULL,
    .start = rf_builtin_start,
    .abort = rf_builtin_abort,
};

/* A pm.status_listen listener: ping and status are answered before a
 * handler is asked, anything else is a script it does not have (php-fpm's
 * 404 page). */
static void rf_status_only_start(void *ctx, rf_req_t *r)
{
    static const char resp[] = "Status: 404 Not Found\r\n"
                               "Content-type: text/html; charset=UTF-8\r\n\r\n"
                               "File not found.\n";
    rf_resp_write(r, RF_FCGI_STDOUT, resp, sizeof(resp) - 1);
    rf_resp_end(r, 0, RF_FCGI_REQUEST_COMPLETE);
}

const rf_handler_t rf_status_only_handler = {
    .name = "status",
    .ctx = NULL,
    .start = rf_status_only_start,
    .abort = rf_builtin_abort,
};
