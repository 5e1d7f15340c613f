/*
 * rf_access: php-fpm's access log (access.log / access.format /
 * access.suppress_path[], sapi/fpm/fpm/fpm_log.c) as a PHP-free formatter.
 * A format is compiled once (rf_access_compile, which also validates it the
 * way php-fpm's start-up does, with php-fpm's messages); each request's line
 * is then built from a plain struct (rf_access_req_t) into a growable
 * buffer. The executor (rf_exec.c) fills the struct from the SAPI and
 * writes the line; this file does no I/O.
 *
 * Tokens, as php-fpm 8.2 prints them:
 *   %%                 a literal %
 *   %C %{total|user|system}C   cpu % of the request ("%.2f")
 *   %d %{seconds|milli|milliseconds|mili|miliseconds|micro|microseconds}d
 *                      duration: "%.3f" s / "%.3f" ms / integer us
 *   %{NAME}e           FastCGI param of the request ("-" when missing)
 *   %f                 script filename ("-" when none)
 *   %l                 request Content-Length
 *   %m                 method ("-" when none)
 *   %M %{bytes|kilo|kilobytes|mega|megabytes}M   peak memory
 *   %n                 pool name
 *   %{Name}o           response header value ("-" when not set)
 *   %p %P              executor pid / master pid
 *   %q %Q              query string / "?" when there is one
 *   %r                 request URI (SCRIPT_NAME, no query)
 *   %R                 remote address ("-" when unknown)
 *   %s                 response status
 *   %t %{strftime}t    request start time (default "%d/%b/%Y:%H:%M:%S %z")
 *   %T %{strftime}T    time the line is written
 *   %u                 HTTP auth user
 * and one of ringfpm's own:
 *   %w %{<unit of %d>}w  the time the request waited in ringfpm's queue for
 *                      an executor (web server's request in -> executor
 *                      starts it), in %d's units; "-" when not known.
 * Values are copied raw (php-fpm escapes nothing). Unlike php-fpm, a line is
 * never cut at 1024 bytes.
 *
 * Threads: a compiled format is read-only and may be shared; a buffer
 * belongs to its caller.
 */
#ifndef RF_ACCESS_H
#define RF_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* php-fpm's default access.format. */
#define RF_ACCESS_DEFAULT_FORMAT "%R - %u %t \"%m %r\" %s"

typedef struct rf_access_fmt rf_access_fmt_t;

/* One request, as the formatter sees it. Strings may be NULL (= empty) and
 * are only read during rf_access_format. */
typedef struct rf_access_req {
    const char *method;
    const char *uri;    /* SCRIPT_NAME after cgi.fix_pathinfo, no query */
    const char *query;  /* QUERY_STRING */
    const char *script; /* SCRIPT_FILENAME as resolved; NULL = none */
    const char *user;   /* HTTP_AUTHORIZATION's user */
    const char *remote; /* %R; NULL = "-" */
    const char *pool;
    uint64_t content_length;
    int status;
    uint64_t duration_us; /* request start -> script end */
    uint64_t cpu_user_us, cpu_sys_us;
    uint64_t memory;   /* peak, bytes */
    int64_t start_sec; /* %t, epoch seconds */
    int64_t now_sec;   /* %T, epoch seconds */
    int64_t queue_us;  /* %w; < 0 = unknown */
    long pid, ppid;
    /* %{NAME}e and %{Name}o: the value (NUL-terminated) or NULL when not
     * set; either callback may be NULL (then "-"). ctx is passed back. */
    void *ctx;
    const char *(*param)(void *ctx, const char *name);
    const char *(*header)(void *ctx, const char *name);
} rf_access_req_t;

/* A growable output buffer; zero-initialise, free p when done. */
typedef struct rf_access_buf {
    char *p;
    size_t len, cap;
} rf_access_buf_t;

/* Compile fmt (NULL = RF_ACCESS_DEFAULT_FORMAT). Returns 0 with *out set
 * (free with rf_access_free), -EINVAL for a format php-fpm refuses (err gets
 * php-fpm's warning text, e.g. "Invalid token in the access.format (%Z)"),
 * -ENOMEM. */
int rf_access_compile(const char *fmt, rf_access_fmt_t **out, char *err, size_t errlen);

void rf_access_free(rf_access_fmt_t *f);

/* Append one line for r to b, newline included, unless the format gives an
 * empty line (php-fpm then writes nothing). Returns the bytes appended (0 =
 * nothing), or -ENOMEM (b keeps what it had). */
long rf_access_format(const rf_access_fmt_t *f, const rf_access_req_t *r, rf_access_buf_t *b);

/* access.suppress_path[] as php-fpm 8.2 applies it: non-zero when r's URI
 * is exactly one of paths[0..n) and the request is a GET or HEAD with no
 * query string and no body that got a 2xx status. */
int rf_access_suppressed(const rf_access_req_t *r, const char *const *paths, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* RF_ACCESS_H */
