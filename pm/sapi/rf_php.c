/*
 * rf_php.c — the "fpm-fcgi" SAPI on top of libphp. Mirrors what php-fpm's
 * fpm_main.c does per request (init_request_info's cgi.fix_pathinfo rules,
 * sapi_cgi_send_headers' Status line synthesis, the 404/403 texts, the
 * FastCGI-only functions) but talks to the rest of ringfpm through the
 * rf_php_io_t callbacks of the request being run. The request's params are
 * kept in a small ordered table that behaves like php-fpm's fcgi_hash
 * (later puts of new names come first when iterated, deleted names vanish),
 * because $_SERVER order and getallheaders() order follow it.
 */
#include "rf_php.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "php.h"
#include "php_main.h"
#include "php_ini.h"
#include "php_ini_builder.h"
#include "php_variables.h"
#include "SAPI.h"
#include "fopen_wrappers.h"
#include "http_status_codes.h"
#include "ext/standard/php_standard.h"
#include "ext/standard/url.h"
#include "zend_ini.h"
#include "zend_ini_scanner.h"
#include "zend_signal.h"
#include "zend_exceptions.h"
#include "zend_extensions.h"
#include "zend_virtual_cwd.h"

/* ------------------------------------------------------------------------
 * Request-scoped parameter table (php-fpm's fcgi_hash semantics)
 * ---------------------------------------------------------------------- */

/* The request's strings: bump-allocated from chunks that stay put (a
 * stored pointer stays valid until the request ends); the first chunk is
 * kept from one request to the next. */
typedef struct rf_php_chunk {
    struct rf_php_chunk *next;
    size_t used, cap;
    char data[];
} rf_php_chunk_t;

#define RF_PHP_CHUNK (16u << 10)
#define RF_PHP_HASH  128u /* buckets, as php-fpm's FCGI_HASH_TABLE_SIZE */

typedef struct rf_php_env_ent {
    char *name;
    size_t name_len;
    char *value; /* NULL = deleted */
    size_t value_len;
    uint32_t hash;
    int32_t next; /* next entry of the bucket's chain, -1 = none */
} rf_php_env_ent_t;

#define RF_PHP_REQ_MAGIC 0x52465048u /* "RFPH" */

/* The object SG(server_context) points to while a request runs. */
typedef struct rf_php_req {
    uint32_t magic;
    const rf_php_io_t *io;
    rf_php_env_ent_t *ents; /* insertion order; iterated backwards */
    size_t nents, cap;
    int32_t heads[RF_PHP_HASH]; /* bucket -> its newest live entry, -1 = none */
    rf_php_chunk_t *chunks;     /* newest first; the last one is kept */
    double request_time;
    int closed;  /* fastcgi_finish_request() done */
    int oom;     /* an allocation failed while building the table */
    int body_fd; /* REQUEST_BODY_FILE, -1 = not opened, -2 = none */
} rf_php_req_t;

typedef struct rf_php_cgi_globals {
    bool rfc2616_headers;
    bool nph;
    bool fix_pathinfo;
    bool discard_path;
    bool fcgi_script_path_encoded; /* always on: php-fpm 8.2 has no INI entry for it */
    bool force_redirect;           /* cgi.force_redirect: listed (-i), unused, as in php-fpm */
    char *redirect_status_env;     /* cgi.redirect_status_env: likewise */
    bool fcgi_logging;
    char *error_header;
    char *fpm_config;
    HashTable user_config_cache;
} rf_php_cgi_globals_t;

typedef struct rf_php_user_ini {
    time_t expires;
    HashTable *config;
} rf_php_user_ini_t;

static rf_php_cgi_globals_t rf_php_cgi;
static rf_php_req_t rf_php_cur;
static int rf_php_started;
static char **rf_php_limit_ext; /* NULL-terminated; NULL = allow all */
static char *rf_php_ini_entries;
static char *rf_php_ini_override;
static void (*rf_php_orig_import_env)(zval *array_ptr);

static char *rf_php_str_new(rf_php_req_t *r, const char *s, size_t n)
{
    rf_php_chunk_t *c = r->chunks;
    if (c == NULL || c->cap - c->used < n + 1) {
        size_t cap = n + 1 > RF_PHP_CHUNK ? n + 1 : RF_PHP_CHUNK;
        c = malloc(sizeof(*c) + cap);
        if (!c) {
            r->oom = 1;
            return NULL;
        }
        c->next = r->chunks;
        c->used = 0;
        c->cap = cap;
        r->chunks = c;
    }
    char *p = c->data + c->used;
    c->used += n + 1;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static uint32_t rf_php_env_hash(const char *name, size_t len)
{
    return (uint32_t)zend_inline_hash_func(name, len); /* PHP's own string hash */
}

/* The link that points at name's live entry (to read or unlink it), or
 * NULL. */
static int32_t *rf_php_env_link(rf_php_req_t *r, const char *name, size_t len, uint32_t h)
{
    int32_t *link = &r->heads[h & (RF_PHP_HASH - 1)];
    while (*link >= 0) {
        rf_php_env_ent_t *e = &r->ents[*link];
        if (e->hash == h && e->name_len == len && memcmp(e->name, name, len) == 0) {
            return link;
        }
        link = &e->next;
    }
    return NULL;
}

static rf_php_env_ent_t *rf_php_env_find(rf_php_req_t *r, const char *name, size_t len)
{
    int32_t *link = rf_php_env_link(r, name, len, rf_php_env_hash(name, len));
    return link ? &r->ents[*link] : NULL;
}

static char *rf_php_env_get(const char *name)
{
    rf_php_env_ent_t *e = rf_php_env_find(&rf_php_cur, name, strlen(name));
    return e ? e->value : NULL;
}

/* Set (value != NULL) or delete a param; returns the stored value. Old
 * values stay allocated until the request ends: php-fpm's callers keep
 * pointers to them. */
static char *rf_php_env_put_n(rf_php_req_t *r, const char *name, size_t nlen, const char *value,
                              size_t vlen)
{
    uint32_t h = rf_php_env_hash(name, nlen);
    int32_t *link = rf_php_env_link(r, name, nlen, h);
    if (!value) {
        if (link) {
            /* php-fpm's fcgi_hash_del: out of the index, a hole in the list */
            rf_php_env_ent_t *e = &r->ents[*link];
            *link = e->next;
            e->value = NULL;
            e->value_len = 0;
        }
        return NULL;
    }
    char *v = rf_php_str_new(r, value, vlen);
    if (!v) {
        return NULL;
    }
    if (link) {
        rf_php_env_ent_t *e = &r->ents[*link];
        e->value = v;
        e->value_len = vlen;
        return v;
    }
    if (r->nents == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        rf_php_env_ent_t *n = realloc(r->ents, cap * sizeof(*n));
        if (!n) {
            r->oom = 1;
            return NULL;
        }
        r->ents = n;
        r->cap = cap;
    }
    char *nm = rf_php_str_new(r, name, nlen);
    if (!nm) {
        return NULL;
    }
    uint32_t b = h & (RF_PHP_HASH - 1);
    r->ents[r->nents] = (rf_php_env_ent_t){nm, nlen, v, vlen, h, r->heads[b]};
    r->heads[b] = (int32_t)r->nents++;
    return v;
}

static char *rf_php_env_put(const char *name, const char *value)
{
    return rf_php_env_put_n(&rf_php_cur, name, strlen(name), value, value ? strlen(value) : 0);
}

static void rf_php_req_reset(rf_php_req_t *r)
{
    while (r->chunks && r->chunks->next) {
        rf_php_chunk_t *n = r->chunks->next;
        free(r->chunks);
        r->chunks = n;
    }
    if (r->chunks && r->chunks->cap > RF_PHP_CHUNK) {
        free(r->chunks); /* one large value's: not worth keeping */
        r->chunks = NULL;
    }
    if (r->chunks) {
        r->chunks->used = 0;
    }
    memset(r->heads, 0xff, sizeof(r->heads));
    r->nents = 0;
    r->io = NULL;
    r->closed = 0;
    r->oom = 0;
    if (r->body_fd >= 0) {
        close(r->body_fd);
    }
    r->body_fd = -2;
}

/* ------------------------------------------------------------------------
 * Logging (php-fpm's zlog + sapi_cgi_log_fastcgi, minus the "; " joining)
 * ---------------------------------------------------------------------- */

static void rf_php_log_raw(const char *msg, size_t n)
{
    const rf_php_io_t *io = rf_php_cur.io;
    if (io && io->log && rf_php_cgi.fcgi_logging && n > 0) {
        io->log(io->ctx, msg, n);
    }
}

static void rf_php_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void rf_php_logf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= sizeof(buf)) {
        /* zlog truncates the same way */
        memcpy(buf + sizeof(buf) - 4, "...", 3);
        n = sizeof(buf) - 1;
    }
    rf_php_log_raw(buf, (size_t)n);
}

/* ------------------------------------------------------------------------
 * SAPI callbacks
 * ---------------------------------------------------------------------- */

static int rf_php_io_dead(void)
{
    const rf_php_io_t *io = rf_php_cur.io;
    return io && io->aborted && io->aborted(io->ctx);
}

static size_t rf_php_ub_write(const char *str, size_t len)
{
    const rf_php_io_t *io = rf_php_cur.io;
    size_t done = 0;

    /* Between requests, or after fastcgi_finish_request(): nobody listens.
     * php-fpm buffers and then drops such output as well. */
    if (!io || !io->write || rf_php_cur.closed) {
        return len;
    }
    if (rf_php_io_dead()) {
        php_handle_aborted_connection();
        return 0;
    }
    while (done < len) {
        ssize_t n = io->write(io->ctx, str + done, len - done);
        if (n <= 0) {
            php_handle_aborted_connection();
            return done;
        }
        done += (size_t)n;
    }
    return len;
}

static void rf_php_flush(void *server_context)
{
    const rf_php_io_t *io = rf_php_cur.io;
    (void)server_context;

    if (!io || rf_php_cur.closed) {
        return;
    }
    sapi_send_headers();
    if (rf_php_io_dead() || (io->flush && io->flush(io->ctx) < 0)) {
        php_handle_aborted_connection();
    }
}

static char *rf_php_sapi_getenv(const char *name, size_t name_len)
{
    rf_php_env_ent_t *e = rf_php_env_find(&rf_php_cur, name, name_len);
    return e ? e->value : NULL;
}

static void rf_php_write_h(const char *s, size_t n)
{
    rf_php_ub_write(s, n);
}

#define RF_PHP_MAX_HEADER 1024

/* sapi_cgi_send_headers: no Status line for a plain 200; otherwise the HTTP
 * status line's tail, or the script's own "Status:" header (first one wins),
 * or "Status: NNN Reason" from PHP's table. 304 drops Content-Type. */
static int rf_php_send_headers(sapi_headers_struct *sapi_headers)
{
    char buf[RF_PHP_MAX_HEADER];
    sapi_header_struct *h;
    zend_llist_position pos;
    bool ignore_status = false;
    int status = SG(sapi_headers).http_response_code;
    const char *line = SG(sapi_headers).http_status_line;

    if (SG(request_info).no_headers == 1) {
        return SAPI_HEADER_SENT_SUCCESSFULLY;
    }
    if (rf_php_cgi.nph || status != 200) {
        int len = 0;
        bool has_status = false;
        const char *s;

        if (rf_php_cgi.rfc2616_headers && line) {
            len = snprintf(buf, sizeof(buf), "%s", line);
            if ((s = strchr(line, ' '))) {
                status = atoi(s + 1);
            }
        } else if (line && (s = strchr(line, ' ')) && s - line >= 5 &&
                   strncasecmp(line, "HTTP/", 5) == 0) {
            len = snprintf(buf, sizeof(buf), "Status:%s", s);
            status = atoi(s + 1);
        } else {
            for (h = zend_llist_get_first_ex(&sapi_headers->headers, &pos); h;
                 h = zend_llist_get_next_ex(&sapi_headers->headers, &pos)) {
                if (h->header_len > sizeof("Status:") - 1 &&
                    strncasecmp(h->header, "Status:", sizeof("Status:") - 1) == 0) {
                    has_status = true;
                    break;
                }
            }
            if (!has_status) {
                const http_response_status_code_pair *p = http_status_map;
                int code = SG(sapi_headers).http_response_code;
                while (p->code != 0 && p->code != code) {
                    p++;
                }
                if (p->str) {
                    len = snprintf(buf, sizeof(buf), "Status: %d %s", code, p->str);
                } else {
                    len = snprintf(buf, sizeof(buf), "Status: %d", code);
                }
            }
        }
        if (len >= (int)sizeof(buf)) {
            len = sizeof(buf) - 1;
        }
        if (!has_status) {
            rf_php_write_h(buf, len > 0 ? (size_t)len : 0);
            rf_php_write_h("\r\n", 2);
            ignore_status = true;
        }
    }

    for (h = zend_llist_get_first_ex(&sapi_headers->headers, &pos); h;
         h = zend_llist_get_next_ex(&sapi_headers->headers, &pos)) {
        if (!h->header_len) {
            continue; /* would make CRLFCRLF */
        }
        if (h->header_len > sizeof("Status:") - 1 &&
            strncasecmp(h->header, "Status:", sizeof("Status:") - 1) == 0) {
            if (!ignore_status) {
                ignore_status = true;
                rf_php_write_h(h->header, h->header_len);
                rf_php_write_h("\r\n", 2);
            }
        } else if (status == 304 && h->header_len > sizeof("Content-Type:") - 1 &&
                   strncasecmp(h->header, "Content-Type:", sizeof("Content-Type:") - 1) == 0) {
            continue;
        } else {
            rf_php_write_h(h->header, h->header_len);
            rf_php_write_h("\r\n", 2);
        }
    }
    rf_php_write_h("\r\n", 2);
    return SAPI_HEADER_SENT_SUCCESSFULLY;
}

static size_t rf_php_read_post(char *buffer, size_t count)
{
    rf_php_req_t *r = &rf_php_cur;
    size_t done = 0;
    size_t remaining = (size_t)SG(request_info).content_length - SG(read_post_bytes);

    if (remaining < count) {
        count = remaining;
    }
    while (done < count) {
        ssize_t n;
        if (r->body_fd == -1) {
            /* nginx's fastcgi_pass_request_body off + REQUEST_BODY_FILE */
            const char *file = rf_php_env_get("REQUEST_BODY_FILE");
            if (file && *file) {
                r->body_fd = open(file, O_RDONLY | O_CLOEXEC);
                if (r->body_fd < 0) {
                    int err = errno;
                    php_error(E_WARNING, "REQUEST_BODY_FILE: open('%s') failed: %s (%d)", file,
                              strerror(err), err);
                    return 0;
                }
            }
        }
        if (r->body_fd >= 0) {
            n = read(r->body_fd, buffer + done, count - done);
        } else if (r->io && r->io->read_body) {
            n = r->io->read_body(r->io->ctx, buffer + done, count - done);
        } else {
            n = 0;
        }
        if (n <= 0) {
            break;
        }
        done += (size_t)n;
    }
    return done;
}

static char *rf_php_read_cookies(void)
{
    return rf_php_env_get("HTTP_COOKIE");
}

/* Params over the process environment, each through the input filter. */
static void rf_php_import_env(zval *array_ptr)
{
    rf_php_req_t *r = &rf_php_cur;
    int filter_arg =
        (Z_ARR_P(array_ptr) == Z_ARR(PG(http_globals)[TRACK_VARS_ENV])) ? PARSE_ENV : PARSE_SERVER;

    /* $_SERVER and $_ENV hold the same thing here: copy when one exists. */
    if (Z_TYPE(PG(http_globals)[TRACK_VARS_ENV]) == IS_ARRAY &&
        Z_ARR_P(array_ptr) != Z_ARR(PG(http_globals)[TRACK_VARS_ENV]) &&
        zend_hash_num_elements(Z_ARRVAL(PG(http_globals)[TRACK_VARS_ENV])) > 0) {
        zend_array_destroy(Z_ARR_P(array_ptr));
        Z_ARR_P(array_ptr) = zend_array_dup(Z_ARR(PG(http_globals)[TRACK_VARS_ENV]));
        return;
    }
    if (Z_TYPE(PG(http_globals)[TRACK_VARS_SERVER]) == IS_ARRAY &&
        Z_ARR_P(array_ptr) != Z_ARR(PG(http_globals)[TRACK_VARS_SERVER]) &&
        zend_hash_num_elements(Z_ARRVAL(PG(http_globals)[TRACK_VARS_SERVER])) > 0) {
        zend_array_destroy(Z_ARR_P(array_ptr));
        Z_ARR_P(array_ptr) = zend_array_dup(Z_ARR(PG(http_globals)[TRACK_VARS_SERVER]));
        return;
    }

    rf_php_orig_import_env(array_ptr);
    for (size_t i = r->nents; i-- > 0;) {
        rf_php_env_ent_t *e = &r->ents[i];
        char *val = e->value;
        size_t new_len;
        if (!val) {
            continue;
        }
        if (sapi_module.input_filter(filter_arg, e->name, &val, e->value_len, &new_len)) {
            php_register_variable_safe(e->name, val, new_len, array_ptr);
        }
    }
}

static void rf_php_load_env(zval *array_ptr)
{
    rf_php_req_t *r = &rf_php_cur;
    rf_php_orig_import_env(array_ptr);
    for (size_t i = r->nents; i-- > 0;) {
        rf_php_env_ent_t *e = &r->ents[i];
        if (e->value) {
            php_register_variable_safe(e->name, e->value, e->value_len, array_ptr);
        }
    }
}

static void rf_php_register_variables(zval *track_vars_array)
{
    php_import_environment_variables(track_vars_array);

    if (rf_php_cgi.fix_pathinfo) {
        const char *sn = SG(request_info).request_uri;
        const char *pi = rf_php_env_get("PATH_INFO");
        size_t snl = sn ? strlen(sn) : 0, pil = pi ? strlen(pi) : 0;
        size_t len = snl + pil;
        char *self = emalloc(len + 1);
        memcpy(self, sn ? sn : "", snl);
        memcpy(self + snl, pi ? pi : "", pil);
        self[len] = '\0';
        char *v = self;
        if (sapi_module.input_filter(PARSE_SERVER, "PHP_SELF", &v, len, &len)) {
            php_register_variable_safe("PHP_SELF", v, len, track_vars_array);
        }
        efree(self);
    } else {
        char *v = SG(request_info).request_uri ? SG(request_info).request_uri : (char *)"";
        size_t len = strlen(v);
        if (sapi_module.input_filter(PARSE_SERVER, "PHP_SELF", &v, len, &len)) {
            php_register_variable_safe("PHP_SELF", v, len, track_vars_array);
        }
    }
}

static void rf_php_log_message(const char *message, int syslog_type)
{
    (void)syslog_type;
    rf_php_logf("PHP message: %s", message);
}

static zend_result rf_php_get_request_time(double *t)
{
    *t = rf_php_cur.request_time;
    return SUCCESS;
}

/* .user.ini and php.ini [PATH=]/[HOST=] sections, as php-fpm 8.2's
 * sapi_cgi_activate does. */
static void rf_php_user_ini_dtor(zval *el)
{
    rf_php_user_ini_t *u = Z_PTR_P(el);
    zend_hash_destroy(u->config);
    free(u->config);
    free(u);
}

static void rf_php_activate_user_ini(char *path, size_t path_len, const char *doc_root,
                                     size_t doc_root_len)
{
    time_t now = (time_t)sapi_get_request_time();
    rf_php_user_ini_t *u = zend_hash_str_find_ptr(&rf_php_cgi.user_config_cache, path, path_len);

    if (!u) {
        u = pemalloc(sizeof(*u), 1);
        u->expires = 0;
        u->config = pemalloc(sizeof(HashTable), 1);
        zend_hash_init(u->config, 0, NULL, config_zval_dtor, 1);
        zend_hash_str_update_ptr(&rf_php_cgi.user_config_cache, path, path_len, u);
    }
    if (now > u->expires) {
        char *real = NULL;
        zend_hash_clean(u->config);
        if (!IS_ABSOLUTE_PATH(path, path_len)) {
            real = tsrm_realpath(path, NULL);
            if (!real) {
                return;
            }
            path = real;
            path_len = strlen(real);
        }
        const char *s1 = path_len > doc_root_len ? doc_root : path;
        const char *s2 = path_len > doc_root_len ? path : doc_root;
        size_t slen = path_len > doc_root_len ? doc_root_len : path_len;
        if (strncmp(s1, s2, slen) == 0) {
            /* inside the docroot: every level from it down to the script */
            char *p = path + doc_root_len;
            while ((p = strchr(p, '/')) != NULL) {
                *p = '\0';
                php_parse_user_ini_file(path, PG(user_ini_filename), u->config);
                *p = '/';
                p++;
            }
        } else {
            php_parse_user_ini_file(path, PG(user_ini_filename), u->config);
        }
        if (real) {
            efree(real);
        }
        u->expires = now + PG(user_ini_cache_ttl);
    }
    php_ini_activate_config(u->config, PHP_INI_PERDIR, PHP_INI_STAGE_HTACCESS);
}

static int rf_php_activate(void)
{
    const char *pt = SG(request_info).path_translated;
    if (!pt) {
        return SUCCESS;
    }
    if (php_ini_has_per_host_config()) {
        const char *sn = rf_php_env_get("SERVER_NAME");
        if (sn) {
            size_t l = strlen(sn);
            char *lower = estrndup(sn, l);
            zend_str_tolower(lower, l);
            php_ini_activate_per_host_config(lower, l);
            efree(lower);
        }
    }
    if (php_ini_has_per_dir_config() || (PG(user_ini_filename) && *PG(user_ini_filename))) {
        size_t len = strlen(pt);
        char *path = emalloc(len + 2);
        memcpy(path, pt, len + 1);
        len = zend_dirname(path, len);
        path[len++] = '/';
        path[len] = '\0';
        php_ini_activate_per_dir_config(path, len);
        if (PG(user_ini_filename) && *PG(user_ini_filename)) {
            const char *dr = rf_php_env_get("DOCUMENT_ROOT");
            if (dr) {
                size_t drl = strlen(dr);
                if (drl > 0 && dr[drl - 1] == '/') {
                    drl--;
                }
                rf_php_activate_user_ini(path, len, dr, drl);
            }
        }
        efree(path);
    }
    return SUCCESS;
}

/* ------------------------------------------------------------------------
 * INI: the cgi-fcgi module's entries and per-request PHP_VALUE
 * ---------------------------------------------------------------------- */

/* The same entries as php-fpm 8.2's cgi-fcgi module, so -i, ini_get() and
 * ini_set() agree with it. */

/* clang-format off */
PHP_INI_BEGIN()
    STD_PHP_INI_BOOLEAN("cgi.rfc2616_headers", "0", PHP_INI_ALL, OnUpdateBool, rfc2616_headers, rf_php_cgi_globals_t, rf_php_cgi)
    STD_PHP_INI_BOOLEAN("cgi.nph", "0", PHP_INI_ALL, OnUpdateBool, nph, rf_php_cgi_globals_t, rf_php_cgi)
    STD_PHP_INI_BOOLEAN("cgi.fix_pathinfo", "1", PHP_INI_SYSTEM, OnUpdateBool, fix_pathinfo, rf_php_cgi_globals_t, rf_php_cgi)
    STD_PHP_INI_BOOLEAN("cgi.discard_path", "0", PHP_INI_SYSTEM, OnUpdateBool, discard_path, rf_php_cgi_globals_t, rf_php_cgi)
    STD_PHP_INI_BOOLEAN("cgi.force_redirect", "1", PHP_INI_SYSTEM, OnUpdateBool, force_redirect, rf_php_cgi_globals_t, rf_php_cgi)
    STD_PHP_INI_ENTRY("cgi.redirect_status_env", NULL, PHP_INI_SYSTEM, OnUpdateString, redirect_status_env, rf_php_cgi_globals_t, rf_php_cgi)
    STD_PHP_INI_BOOLEAN("fastcgi.logging", "1", PHP_INI_SYSTEM, OnUpdateBool, fcgi_logging, rf_php_cgi_globals_t, rf_php_cgi)
    STD_PHP_INI_ENTRY("fastcgi.error_header", NULL, PHP_INI_SYSTEM, OnUpdateString, error_header, rf_php_cgi_globals_t, rf_php_cgi)
    STD_PHP_INI_ENTRY("fpm.config", NULL, PHP_INI_SYSTEM, OnUpdateString, fpm_config, rf_php_cgi_globals_t, rf_php_cgi)
PHP_INI_END()
/* clang-format on */

int rf_php_apply_ini(const char *name, const char *value, int admin)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    zend_ini_entry *ini;

    if (strcmp(name, "extension") == 0 && *value) {
        zval zv;
        zend_interned_strings_switch_storage(0);
        php_dl(value, MODULE_PERSISTENT, &zv, 1);
        zend_interned_strings_switch_storage(1);
        return Z_TYPE(zv) == IS_TRUE ? 0 : -EINVAL;
    }
    ini = zend_hash_str_find_ptr(EG(ini_directives), name, nlen);
    if (!ini) {
        return -ENOENT;
    }
    /* Rewrite the master value, bypassing `modifiable`, exactly like
     * fpm_php_zend_ini_alter_master: the web server is trusted. */
    zend_string *dup = zend_string_init(value, vlen, 1);
    if (!ini->on_modify || ini->on_modify(ini, dup, ini->mh_arg1, ini->mh_arg2, ini->mh_arg3,
                                          PHP_INI_STAGE_ACTIVATE) == SUCCESS) {
        zend_string *old = ini->value;
        ini->value = dup;
        if (admin) {
            ini->modifiable = ZEND_INI_SYSTEM;
        }
        /* php-fpm leaks the old value; with PHP_VALUE on every request that
         * adds up, and nothing else holds it once on_modify swapped it. */
        if (old && !ini->modified && !ZSTR_IS_INTERNED(old)) {
            zend_string_release_ex(old, 1);
        }
    } else {
        zend_string_release_ex(dup, 1);
        return -EINVAL;
    }
    if (strcmp(name, "disable_functions") == 0 && *value) {
        zend_disable_functions(value);
    } else if (strcmp(name, "disable_classes") == 0 && *value) {
        char *list = strdup(value);
        if (!list) {
            return -ENOMEM;
        }
        PG(disable_classes) = list;
        for (char *save = NULL, *c = strtok_r(list, ", ", &save); c;
             c = strtok_r(NULL, ", ", &save)) {
            zend_disable_class(c, strlen(c));
        }
    }
    return 0;
}

static void rf_php_ini_value_cb(zval *arg1, zval *arg2, zval *arg3, int type, void *arg)
{
    int admin = *(int *)arg;
    (void)arg3;

    if (!arg1) {
        return;
    }
    if (type != ZEND_INI_PARSER_ENTRY) {
        rf_php_logf("Passing INI directive through FastCGI: only classic entries are allowed");
        return;
    }
    const char *key = Z_STRVAL_P(arg1);
    if (!key || !*key) {
        rf_php_logf("Passing INI directive through FastCGI: empty key");
        return;
    }
    if (!arg2 || Z_TYPE_P(arg2) != IS_STRING) {
        rf_php_logf("Passing INI directive through FastCGI: empty value for key '%s'", key);
        return;
    }
    if (rf_php_apply_ini(key, Z_STRVAL_P(arg2), admin) < 0) {
        rf_php_logf("Passing INI directive through FastCGI: unable to set '%s'", key);
    }
}

static void rf_php_apply_ini_param(const char *param, int admin)
{
    const char *ini = rf_php_env_get(param);
    if (!ini) {
        return;
    }
    char *text;
    spprintf(&text, 0, "%s\n", ini);
    zend_parse_ini_string(text, 1, ZEND_INI_SCANNER_NORMAL, rf_php_ini_value_cb, &admin);
    efree(text);
}

/* ------------------------------------------------------------------------
 * init_request_info: SCRIPT_FILENAME / PATH_INFO / cgi.fix_pathinfo
 * ---------------------------------------------------------------------- */

/* Reject a path with a ".." segment (php-fpm's is_valid_path). */
static int rf_php_valid_path(const char *path)
{
    if (!path) {
        return 0;
    }
    for (const char *p = strstr(path, ".."); p; p = strstr(p + 1, "..")) {
        if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/')) {
            return 0;
        }
    }
    return 1;
}

/* Strip "proxy:fcgi://host:port" / "proxy:balancer://host" and "?query"
 * (Apache mod_proxy_fcgi). Returns 1 when it did. */
static int rf_php_strip_apache_proxy(char *sf, const char *prefix)
{
    size_t plen = strlen(prefix);
    int stripped = 0;
    if (strncasecmp(sf, prefix, plen) != 0) {
        return 0;
    }
    char *p = sf + plen;
    while (*p && *p != '/') {
        p++;
    }
    if (*p) {
        memmove(sf, p, strlen(p) + 1);
        stripped = 1;
    }
    if ((p = strchr(sf, '?'))) {
        *p = '\0';
    }
    return stripped;
}

static void rf_php_fix_pathinfo(char **script_path_translated, char *env_script_filename,
                                char *env_path_translated, char *env_path_info,
                                char *env_script_name, int apache_was_here)
{
    struct stat st;
    char *real_path = NULL;
    char *env_redirect_url = rf_php_env_get("REDIRECT_URL");
    char *env_document_root = rf_php_env_get("DOCUMENT_ROOT");
    char *orig_path_translated = env_path_translated;
    char *orig_path_info = env_path_info;
    char *orig_script_name = env_script_name;
    char *orig_script_filename = env_script_filename;
    char *spt = *script_path_translated;
    size_t spt_len;

    if (!env_document_root && PG(doc_root)) {
        env_document_root = rf_php_env_put("DOCUMENT_ROOT", PG(doc_root));
    }
    if (!apache_was_here && env_path_translated && env_redirect_url && env_path_translated != spt &&
        strcmp(env_path_translated, spt) != 0) {
        /* Apache mod_fastcgi: SCRIPT_FILENAME is the php binary */
        spt = env_path_translated;
        env_script_name = env_redirect_url;
    }

    if (spt && (spt_len = strlen(spt)) > 0 &&
        (spt[spt_len - 1] == '/' || (real_path = tsrm_realpath(spt, NULL)) == NULL)) {
        /* /docroot/info.php/test: walk back to the regular file */
        char *pt = estrndup(spt, spt_len);
        char *ptr;
        while ((ptr = strrchr(pt, '/'))) {
            *ptr = '\0';
            if (stat(pt, &st) != 0 || !S_ISREG(st.st_mode)) {
                continue;
            }
            size_t ptlen = strlen(pt);
            size_t slen = spt_len - ptlen;
            size_t pilen = env_path_info ? strlen(env_path_info) : 0;
            int tflag;
            char *path_info;
            if (apache_was_here) {
                path_info = spt + ptlen;
                tflag = slen != 0 && (!orig_path_info || strcmp(orig_path_info, path_info) != 0);
            } else {
                path_info = (env_path_info && pilen > slen) ? env_path_info + pilen - slen : NULL;
                tflag = path_info && orig_path_info != path_info;
            }
            if (tflag) {
                char *decoded = NULL;
                if (orig_path_info) {
                    rf_php_env_put("ORIG_PATH_INFO", orig_path_info);
                    char old = path_info[0];
                    path_info[0] = '\0';
                    if (!orig_script_name || strcmp(orig_script_name, env_path_info) != 0) {
                        if (orig_script_name) {
                            rf_php_env_put("ORIG_SCRIPT_NAME", orig_script_name);
                        }
                        SG(request_info).request_uri = rf_php_env_put("SCRIPT_NAME", env_path_info);
                    } else {
                        SG(request_info).request_uri = orig_script_name;
                    }
                    path_info[0] = old;
                } else if (apache_was_here && env_script_name) {
                    /* mod_proxy_fcgi: PATH_INFO is also the tail of SCRIPT_NAME */
                    size_t dlen = 0;
                    if (rf_php_cgi.fcgi_script_path_encoded && strchr(path_info, '%')) {
                        decoded = estrdup(path_info);
                        dlen = php_raw_url_decode(decoded, strlen(path_info));
                    }
                    size_t snlen = strlen(env_script_name);
                    size_t start = 0;
                    if ((snlen > slen &&
                         !strcmp(env_script_name + (start = snlen - slen), path_info)) ||
                        (decoded && snlen > dlen &&
                         !strcmp(env_script_name + (start = snlen - dlen), decoded))) {
                        rf_php_env_put("ORIG_SCRIPT_NAME", orig_script_name);
                        env_script_name[start] = '\0';
                        SG(request_info).request_uri =
                            rf_php_env_put("SCRIPT_NAME", env_script_name);
                    }
                }
                env_path_info = rf_php_env_put("PATH_INFO", decoded ? decoded : path_info);
                if (decoded) {
                    efree(decoded);
                }
            }
            if (!orig_script_filename || strcmp(orig_script_filename, pt) != 0) {
                if (orig_script_filename) {
                    rf_php_env_put("ORIG_SCRIPT_FILENAME", orig_script_filename);
                }
                spt = rf_php_env_put("SCRIPT_FILENAME", pt);
            }
            /* PATH_TRANSLATED = DOCUMENT_ROOT + PATH_INFO, or else
             * SCRIPT_FILENAME - SCRIPT_NAME + PATH_INFO */
            const char *base = NULL;
            size_t blen = 0;
            if (env_document_root) {
                base = env_document_root;
                blen = strlen(env_document_root);
                if (blen && env_document_root[blen - 1] == '/') {
                    blen--;
                }
            } else if (env_script_name && strstr(pt, env_script_name)) {
                base = pt;
                blen = strlen(pt) - strlen(env_script_name);
            }
            if (base) {
                size_t pil = env_path_info ? strlen(env_path_info) : 0;
                char *t = emalloc(blen + pil + 1);
                memcpy(t, base, blen);
                memcpy(t + blen, env_path_info ? env_path_info : "", pil);
                t[blen + pil] = '\0';
                if (orig_path_translated) {
                    rf_php_env_put("ORIG_PATH_TRANSLATED", orig_path_translated);
                }
                rf_php_env_put("PATH_TRANSLATED", t);
                efree(t);
            }
            break;
        }
        if (!ptr) {
            /* nothing on the way up is a file: primary script unknown */
            if (orig_script_filename) {
                rf_php_env_put("ORIG_SCRIPT_FILENAME", orig_script_filename);
            }
            spt = rf_php_env_put("SCRIPT_FILENAME", NULL);
            SG(sapi_headers).http_response_code = 404;
        }
        if (!SG(request_info).request_uri) {
            if (!orig_script_name ||
                (env_script_name && strcmp(orig_script_name, env_script_name) != 0)) {
                if (orig_script_name) {
                    rf_php_env_put("ORIG_SCRIPT_NAME", orig_script_name);
                }
                SG(request_info).request_uri = rf_php_env_put("SCRIPT_NAME", env_script_name);
            } else {
                SG(request_info).request_uri = orig_script_name;
            }
        }
        efree(pt);
    } else {
        if (!orig_script_filename ||
            (spt != orig_script_filename && strcmp(spt, orig_script_filename) != 0)) {
            if (orig_script_filename) {
                rf_php_env_put("ORIG_SCRIPT_FILENAME", orig_script_filename);
            }
            spt = rf_php_env_put("SCRIPT_FILENAME", spt);
        }
        if (!apache_was_here && env_redirect_url) {
            if (orig_path_info) {
                rf_php_env_put("ORIG_PATH_INFO", orig_path_info);
                rf_php_env_put("PATH_INFO", NULL);
            }
            if (orig_path_translated) {
                rf_php_env_put("ORIG_PATH_TRANSLATED", orig_path_translated);
                rf_php_env_put("PATH_TRANSLATED", NULL);
            }
        }
        if (env_script_name != orig_script_name) {
            if (orig_script_name) {
                rf_php_env_put("ORIG_SCRIPT_NAME", orig_script_name);
            }
            SG(request_info).request_uri = rf_php_env_put("SCRIPT_NAME", env_script_name);
        } else {
            SG(request_info).request_uri = env_script_name;
        }
        if (real_path) {
            efree(real_path);
        }
    }
    *script_path_translated = spt;
}

/*
 * Zend re-registers its deferring handler for each of its signals at every
 * request start (zend.signal "reset"): seven sigaction() queries that find
 * its handler still in place, since nothing in an executor replaces them
 * behind zend_sigaction's back. Once the first request has installed them,
 * the queries stop; pcntl and zend_signal() keep going through Zend.
 */
static void rf_php_signals_settled(void)
{
#if defined(ZEND_SIGNALS) && !defined(ZTS)
    SIGG(reset) = 0;
#endif
}

/*
 * The script's directory, as php_execute_script would enter it (its
 * getcwd(), then chdir() there and back by path): the way back is an fd
 * on the directory the executor serves from, taken once, so a request
 * costs one chdir() and one fchdir(). Shutdown functions and destructors
 * then run there, as with php-fpm. Returns the fd to go back to, or -1 when
 * PHP is to do it itself (no fd could be taken).
 */
static int rf_php_home_fd = -2;
static char rf_php_home_path[PATH_MAX];

static int rf_php_chdir_script(zend_string *filename)
{
    if (rf_php_home_fd == -2) {
        rf_php_home_fd = -1;
        if (getcwd(rf_php_home_path, sizeof(rf_php_home_path)) != NULL) {
            rf_php_home_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        }
    }
    if (rf_php_home_fd < 0 || filename == NULL) {
        SG(options) &= ~SAPI_OPTION_NO_CHDIR;
        return -1;
    }
    SG(options) |= SAPI_OPTION_NO_CHDIR;
    VCWD_CHDIR_FILE(ZSTR_VAL(filename));
    return rf_php_home_fd;
}

/* A script can close any fd (php://fd/N): then back by path, and a new fd. */
static void rf_php_chdir_home(int fd)
{
    if (fd < 0 || fchdir(fd) == 0) {
        return;
    }
    if (chdir(rf_php_home_path) < 0) {
        rf_php_logf("cannot return to %s: %s", rf_php_home_path, strerror(errno));
        return;
    }
    rf_php_home_fd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

static void rf_php_init_request_info(void)
{
    char *env_script_filename = rf_php_env_get("SCRIPT_FILENAME");
    char *env_path_translated = rf_php_env_get("PATH_TRANSLATED");
    char *spt = env_script_filename ? env_script_filename : env_path_translated;

    SG(request_info).path_translated = NULL;
    SG(request_info).request_method = rf_php_env_get("REQUEST_METHOD");
    SG(request_info).proto_num = 1000;
    SG(request_info).query_string = NULL;
    SG(request_info).request_uri = NULL;
    SG(request_info).content_type = NULL;
    SG(request_info).content_length = 0;
    SG(sapi_headers).http_response_code = 200;

    if (spt) {
        char *content_length = rf_php_env_get("CONTENT_LENGTH");
        char *content_type = rf_php_env_get("CONTENT_TYPE");
        char *env_path_info = rf_php_env_get("PATH_INFO");
        char *env_script_name = rf_php_env_get("SCRIPT_NAME");
        char *sw = rf_php_env_get("SERVER_SOFTWARE");
        int apache_was_here = 0;

        /* IIS puts SCRIPT_NAME in front of PATH_INFO */
        if (sw && env_script_name && env_path_info &&
            strncmp(sw, "Microsoft-IIS", sizeof("Microsoft-IIS") - 1) == 0 &&
            strncmp(env_path_info, env_script_name, strlen(env_script_name)) == 0) {
            env_path_info = rf_php_env_put("ORIG_PATH_INFO", env_path_info);
            env_path_info += strlen(env_script_name);
            env_path_info = rf_php_env_put("PATH_INFO", *env_path_info ? env_path_info : NULL);
        }
        if (env_script_filename) {
            apache_was_here |= rf_php_strip_apache_proxy(env_script_filename, "proxy:fcgi://");
            apache_was_here |= rf_php_strip_apache_proxy(env_script_filename, "proxy:balancer://");
            if (apache_was_here && !rf_php_cgi.fcgi_script_path_encoded) {
                php_raw_url_decode(env_script_filename, strlen(env_script_filename));
            }
        }

        if (rf_php_cgi.fix_pathinfo) {
            rf_php_fix_pathinfo(&spt, env_script_filename, env_path_translated, env_path_info,
                                env_script_name, apache_was_here);
        } else {
            SG(request_info).request_uri = env_path_info ? env_path_info : env_script_name;
            if (!rf_php_cgi.discard_path && env_path_translated) {
                spt = env_path_translated;
            }
        }

        if (rf_php_valid_path(spt)) {
            SG(request_info).path_translated = estrdup(spt);
        }
        SG(request_info).query_string = rf_php_env_get("QUERY_STRING");
        SG(request_info).content_type = content_type ? content_type : "";
        SG(request_info).content_length = content_length ? atol(content_length) : 0;
        php_handle_auth_data(rf_php_env_get("HTTP_AUTHORIZATION"));
    }

    rf_php_apply_ini_param("PHP_VALUE", 0);
    rf_php_apply_ini_param("PHP_ADMIN_VALUE", 1);
}

/* ------------------------------------------------------------------------
 * security.limit_extensions
 * ---------------------------------------------------------------------- */

static void rf_php_free_limit_ext(void)
{
    if (rf_php_limit_ext) {
        for (char **p = rf_php_limit_ext; *p; p++) {
            free(*p);
        }
        free(rf_php_limit_ext);
        rf_php_limit_ext = NULL;
    }
}

int rf_php_set_limit_extensions(const char *list)
{
    size_t n = 0, i = 0;
    char **v;
    const char *p;

    rf_php_free_limit_ext();
    if (!list) {
        list = RF_PHP_DEFAULT_LIMIT_EXTENSIONS;
    }
    for (p = list; *p;) {
        p += strspn(p, " \t");
        if (*p) {
            n++;
            p += strcspn(p, " \t");
        }
    }
    if (n == 0) {
        return 0; /* empty list: everything allowed */
    }
    v = calloc(n + 1, sizeof(*v));
    if (!v) {
        return -ENOMEM;
    }
    for (p = list; *p;) {
        p += strspn(p, " \t");
        size_t l = strcspn(p, " \t");
        if (l) {
            v[i] = strndup(p, l);
            if (!v[i]) {
                rf_php_limit_ext = v;
                rf_php_free_limit_ext();
                return -ENOMEM;
            }
            i++;
        }
        p += l;
    }
    rf_php_limit_ext = v;
    return 0;
}

/* 1 = denied (and logged, as php-fpm's fpm_php_limit_extensions does). */
static int rf_php_limit_extensions(const char *path)
{
    if (!path || !rf_php_limit_ext) {
        return 0;
    }
    size_t plen = strlen(path);
    for (char **p = rf_php_limit_ext; *p; p++) {
        size_t el = strlen(*p);
        if (plen > el && strcmp(*p, path + plen - el) == 0) {
            return 0;
        }
    }
    rf_php_logf("Access to the script '%s' has been denied (see security.limit_extensions)", path);
    return 1;
}

/* ------------------------------------------------------------------------
 * PHP functions only FPM has
 * ---------------------------------------------------------------------- */

static PHP_FUNCTION(fastcgi_finish_request)
{
    ZEND_PARSE_PARAMETERS_NONE();

    rf_php_req_t *r = &rf_php_cur;
    if (r->closed || !r->io) {
        RETURN_FALSE;
    }
    php_output_end_all();
    php_header();
    if (r->io->flush) {
        r->io->flush(r->io->ctx);
    }
    r->closed = 1;
    if (r->io->finish) {
        r->io->finish(r->io->ctx);
    }
    RETURN_TRUE;
}

static PHP_FUNCTION(apache_request_headers)
{
    rf_php_req_t *r = &rf_php_cur;
    ZEND_PARSE_PARAMETERS_NONE();

    array_init(return_value);
    for (size_t i = r->nents; i-- > 0;) {
        rf_php_env_ent_t *e = &r->ents[i];
        if (e->value) {
            sapi_add_request_header(e->name, (unsigned)e->name_len, e->value,
                                    (unsigned)e->value_len, return_value);
        }
    }
}

static rf_php_status_fn rf_php_status_src;
static void *rf_php_status_ctx;

struct rf_php_status_out {
    zval *ret;
    zval procs;
    zval proc;   /* the process being filled */
    int in_proc; /* keys go to proc, not ret */
};

void rf_php_set_status_source(rf_php_status_fn fn, void *ctx)
{
    rf_php_status_src = fn;
    rf_php_status_ctx = ctx;
}

static zval *rf_php_status_to(rf_php_status_out_t *out)
{
    return out->in_proc ? &out->proc : out->ret;
}

void rf_php_status_long(rf_php_status_out_t *out, const char *key, long long value)
{
    add_assoc_long(rf_php_status_to(out), key, (zend_long)value);
}

void rf_php_status_str(rf_php_status_out_t *out, const char *key, const char *value)
{
    add_assoc_string(rf_php_status_to(out), key, value ? value : "");
}

void rf_php_status_double(rf_php_status_out_t *out, const char *key, double value)
{
    add_assoc_double(rf_php_status_to(out), key, value);
}

void rf_php_status_proc(rf_php_status_out_t *out)
{
    if (out->in_proc) {
        add_next_index_zval(&out->procs, &out->proc);
    }
    array_init(&out->proc);
    out->in_proc = 1;
}

/* php-fpm's fpm_status_export_to_zval: the pool's fields, then "procs". */
static PHP_FUNCTION(fpm_get_status)
{
    ZEND_PARSE_PARAMETERS_NONE();

    if (!rf_php_status_src) {
        RETURN_FALSE;
    }
    rf_php_status_out_t out = {.ret = return_value};
    array_init(return_value);
    array_init(&out.procs);
    int rc = rf_php_status_src(rf_php_status_ctx, &out);
    if (out.in_proc) {
        add_next_index_zval(&out.procs, &out.proc);
    }
    if (rc < 0) {
        zval_ptr_dtor(&out.procs);
        zval_ptr_dtor(return_value);
        RETURN_FALSE;
    }
    add_assoc_zval(return_value, "procs", &out.procs);
}

size_t rf_php_memory_peak(void)
{
    return zend_memory_peak_usage(1);
}

int rf_php_response_status(void)
{
    return SG(sapi_headers).http_response_code;
}

const char *rf_php_response_header(const char *name)
{
    size_t flen = strlen(name);
    zend_llist_position pos;
    for (sapi_header_struct *h = zend_llist_get_first_ex(&SG(sapi_headers).headers, &pos); h;
         h = zend_llist_get_next_ex(&SG(sapi_headers).headers, &pos)) {
        /* fpm_log.c: the name anywhere in the line (strstr), then ": " right
         * after the name's length; an empty value does not count */
        if (h->header_len <= flen + 2 || !strstr(h->header, name))
            continue;
        if (h->header[flen] != ':' || h->header[flen + 1] != ' ')
            continue;
        return h->header + flen + 2;
    }
    return NULL;
}

const char *rf_php_request_param(const char *name)
{
    if (rf_php_cur.io == NULL)
        return NULL;
    return rf_php_env_get(name);
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(rf_php_arginfo_finish, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(rf_php_arginfo_headers, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_MASK_EX(rf_php_arginfo_status, 0, 0, MAY_BE_ARRAY | MAY_BE_FALSE)
ZEND_END_ARG_INFO()

static const zend_function_entry rf_php_functions[] = {
    ZEND_FE(fastcgi_finish_request, rf_php_arginfo_finish)
        ZEND_FE(apache_request_headers, rf_php_arginfo_headers)
            ZEND_FALIAS(getallheaders, apache_request_headers, rf_php_arginfo_headers)
                ZEND_FE(fpm_get_status, rf_php_arginfo_status) ZEND_FE_END};

static PHP_MINIT_FUNCTION(rf_php_cgi)
{
    rf_php_cgi.rfc2616_headers = 0;
    rf_php_cgi.nph = 0;
    rf_php_cgi.fix_pathinfo = 1;
    rf_php_cgi.discard_path = 0;
    rf_php_cgi.fcgi_script_path_encoded = 1;
    rf_php_cgi.fcgi_logging = 1;
    rf_php_cgi.error_header = NULL;
    rf_php_cgi.force_redirect = 1;
    rf_php_cgi.redirect_status_env = NULL;
    rf_php_cgi.fpm_config = NULL;
    zend_hash_init(&rf_php_cgi.user_config_cache, 0, NULL, rf_php_user_ini_dtor, 1);
    REGISTER_INI_ENTRIES();
    return SUCCESS;
}

static PHP_MSHUTDOWN_FUNCTION(rf_php_cgi)
{
    zend_hash_destroy(&rf_php_cgi.user_config_cache);
    UNREGISTER_INI_ENTRIES();
    return SUCCESS;
}

static PHP_MINFO_FUNCTION(rf_php_cgi)
{
    php_info_print_table_start();
    php_info_print_table_row(2, "php-fpm", "active");
    php_info_print_table_end();
    DISPLAY_INI_ENTRIES();
}

/* Named "cgi-fcgi" like php-fpm's, so extension_loaded('cgi-fcgi') agrees. */
static zend_module_entry rf_php_module_entry = {
    STANDARD_MODULE_HEADER,
    "cgi-fcgi",
    rf_php_functions,
    PHP_MINIT(rf_php_cgi),
    PHP_MSHUTDOWN(rf_php_cgi),
    NULL,
    NULL,
    PHP_MINFO(rf_php_cgi),
    PHP_VERSION,
    STANDARD_MODULE_PROPERTIES,
};

static int rf_php_module_startup(sapi_module_struct *sm)
{
    return php_module_startup(sm, &rf_php_module_entry);
}

static int rf_php_deactivate(void)
{
    return SUCCESS;
}

static sapi_module_struct rf_php_sapi = {
    .name = "fpm-fcgi",
    .pretty_name = "FPM/FastCGI",
    .startup = rf_php_module_startup,
    .shutdown = php_module_shutdown_wrapper,
    .activate = rf_php_activate,
    .deactivate = rf_php_deactivate,
    .ub_write = rf_php_ub_write,
    .flush = rf_php_flush,
    .getenv = rf_php_sapi_getenv,
    .sapi_error = php_error,
    .send_headers = rf_php_send_headers,
    .read_post = rf_php_read_post,
    .read_cookies = rf_php_read_cookies,
    .register_server_variables = rf_php_register_variables,
    .log_message = rf_php_log_message,
    .get_request_time = rf_php_get_request_time,
};

/* ------------------------------------------------------------------------
 * Public API
 * ---------------------------------------------------------------------- */

int rf_php_startup(const rf_php_opts_t *opts)
{
    static const rf_php_opts_t none = {0};
    struct php_ini_builder ib;
    int set_scan_env = 0;
    int rc;

    if (rf_php_started) {
        return -EALREADY;
    }
    if (!opts) {
        opts = &none;
    }
    rc = rf_php_set_limit_extensions(opts->limit_extensions);
    if (rc < 0) {
        return rc;
    }

    rf_php_cur.magic = RF_PHP_REQ_MAGIC;
    rf_php_cur.body_fd = -2;
    memset(rf_php_cur.heads, 0xff, sizeof(rf_php_cur.heads));

    zend_signal_startup();
    sapi_startup(&rf_php_sapi);

    /* php-fpm: -c overrides, the cwd is never searched. The default php.ini
     * goes in as an override too (libphp's own search path is the embed
     * SAPI's), but not with -n: PHP reads an override that names a file
     * even when told to ignore php.ini. */
    if (opts->ini_path || !opts->no_ini) {
        rf_php_ini_override = strdup(opts->ini_path ? opts->ini_path : RF_PHP_DEFAULT_INI);
        if (!rf_php_ini_override) {
            return -ENOMEM;
        }
    }
    rf_php_sapi.php_ini_path_override = rf_php_ini_override;
    rf_php_sapi.php_ini_ignore_cwd = 1;
    rf_php_sapi.php_ini_ignore = opts->no_ini ? 1 : 0;

    php_ini_builder_init(&ib);
    for (size_t i = 0; i < opts->ndefines; i++) {
        if (opts->defines[i]) {
            php_ini_builder_define(&ib, opts->defines[i]);
        }
    }
    rf_php_ini_entries = php_ini_builder_finish(&ib);
    rf_php_sapi.ini_entries = rf_php_ini_entries;

    /* libphp was built with the embed SAPI's scan dir; php-fpm's is the
     * fpm one. PHP_INI_SCAN_DIR from the environment still wins. */
    if (!opts->no_ini && (opts->ini_scan_dir || !getenv("PHP_INI_SCAN_DIR"))) {
        const char *dir = opts->ini_scan_dir ? opts->ini_scan_dir : RF_PHP_DEFAULT_SCAN_DIR;
        if (setenv("PHP_INI_SCAN_DIR", dir, 1) == 0) {
            set_scan_env = 1;
        }
    }

    rf_php_orig_import_env = php_import_environment_variables;
    php_import_environment_variables = rf_php_import_env;
    php_load_environment_variables = rf_php_load_env;

    rc = rf_php_sapi.startup(&rf_php_sapi);
    if (set_scan_env) {
        /* keep it out of $_SERVER of every request */
        unsetenv("PHP_INI_SCAN_DIR");
    }
    if (rc == FAILURE) {
        sapi_shutdown();
        return -EIO;
    }
    SG(server_context) = &rf_php_cur;
    rf_php_started = 1;
    return 0;
}

void rf_php_shutdown(void)
{
    if (!rf_php_started) {
        return;
    }
    SG(server_context) = NULL;
    php_module_shutdown();
    sapi_shutdown();
    rf_php_started = 0;
    php_import_environment_variables = rf_php_orig_import_env;
    free(rf_php_ini_entries);
    rf_php_ini_entries = NULL;
    free(rf_php_ini_override);
    rf_php_ini_override = NULL;
    rf_php_free_limit_ext();
    rf_php_req_reset(&rf_php_cur);
    free(rf_php_cur.chunks);
    rf_php_cur.chunks = NULL;
    free(rf_php_cur.ents);
    rf_php_cur.ents = NULL;
    rf_php_cur.cap = 0;
}

static int rf_php_module_cmp(Bucket *a, Bucket *b)
{
    const zend_module_entry *ma = Z_PTR(a->val), *mb = Z_PTR(b->val);
    return strcasecmp(ma->name, mb->name);
}

static int rf_php_extension_cmp(const zend_llist_element **a, const zend_llist_element **b)
{
    const zend_extension *ea = (const zend_extension *)(*a)->data;
    const zend_extension *eb = (const zend_extension *)(*b)->data;
    return strcmp(ea->name, eb->name);
}

static void rf_php_print_extension(void *ext)
{
    printf("%s\n", ((zend_extension *)ext)->name);
}

/* fpm_main.c's print_modules / print_extensions */
int rf_php_print_modules(void)
{
    if (!rf_php_started) {
        return -EINVAL;
    }
    HashTable sorted;
    zend_module_entry *m;
    zend_hash_init(&sorted, 64, NULL, NULL, 1);
    zend_hash_copy(&sorted, &module_registry, NULL);
    zend_hash_sort(&sorted, rf_php_module_cmp, 0);
    printf("[PHP Modules]\n");
    ZEND_HASH_FOREACH_PTR(&sorted, m)
    {
        printf("%s\n", m->name);
    }
    ZEND_HASH_FOREACH_END();
    zend_hash_destroy(&sorted);

    zend_llist exts;
    zend_llist_copy(&exts, &zend_extensions);
    exts.dtor = NULL;
    zend_llist_sort(&exts, rf_php_extension_cmp);
    printf("\n[Zend Modules]\n");
    zend_llist_apply(&exts, rf_php_print_extension);
    zend_llist_destroy(&exts);
    printf("\n");
    return fflush(stdout) == 0 ? 0 : -EIO;
}

static ssize_t rf_php_stdout_write(void *ctx, const char *p, size_t n)
{
    (void)ctx;
    return fwrite(p, 1, n, stdout) == n ? (ssize_t)n : -1;
}

int rf_php_print_info(void)
{
    static const rf_php_io_t out = {.write = rf_php_stdout_write};
    rf_php_req_t *r = &rf_php_cur;
    volatile int rc = 0;

    if (!rf_php_started) {
        return -EINVAL;
    }
    rf_php_req_reset(r);
    r->io = &out;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->request_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    sapi_module.phpinfo_as_text = 1;
    SG(server_context) = r;
    zend_first_try
    {
        if (php_request_startup() == FAILURE) {
            rc = -EIO;
        } else {
            SG(headers_sent) = 1;
            SG(request_info).no_headers = 1;
            php_print_info(PHP_INFO_ALL);
            php_request_shutdown(NULL);
        }
    }
    zend_end_try();
    r->io = NULL;
    fflush(stdout);
    return rc;
}

int rf_php_execute(const rf_php_param_t *params, size_t nparams, const rf_php_io_t *io,
                   double request_time_float, int *exit_status)
{
    rf_php_req_t *r = &rf_php_cur;
    zend_file_handle fh;
    char *volatile primary = NULL; /* both survive a bailout's longjmp */
    volatile int rc = 0;

    if (!rf_php_started || !io || (nparams && !params)) {
        return -EINVAL;
    }
    /* invariant, not input: the static request object is never freed */
    if (r->magic != RF_PHP_REQ_MAGIC) {
        abort();
    }
    rf_php_req_reset(r);
    r->io = io;
    r->body_fd = -1;
    if (request_time_float <= 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        request_time_float = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    }
    r->request_time = request_time_float;

    /* php-fpm stores FCGI_ROLE first at BEGIN_REQUEST */
    rf_php_env_put_n(r, "FCGI_ROLE", 9, "RESPONDER", 9);
    for (size_t i = 0; i < nparams; i++) {
        if (params[i].name && params[i].name_len) {
            rf_php_env_put_n(r, params[i].name, params[i].name_len,
                             params[i].value ? params[i].value : "",
                             params[i].value ? params[i].value_len : 0);
        }
    }
    if (r->oom) {
        rf_php_req_reset(r);
        return -ENOMEM;
    }

    SG(server_context) = r;
    EG(exit_status) = 0;

    zend_first_try
    {
        rf_php_init_request_info();
        if (io->started) {
            rf_php_req_info_t info = {
                .method = SG(request_info).request_method,
                .uri = SG(request_info).request_uri,
                .query = SG(request_info).query_string,
                .script = SG(request_info).path_translated,
                .user = SG(request_info).auth_user,
                .content_length = (long long)SG(request_info).content_length,
            };
            io->started(io->ctx, &info);
        }

        if (php_request_startup() == FAILURE) {
            rc = -EIO;
            goto out;
        }
        rf_php_signals_settled();
        if (!SG(request_info).request_method) {
            goto done;
        }
        if (!SG(request_info).path_translated) {
            zend_try
            {
                rf_php_logf("Primary script unknown");
                SG(sapi_headers).http_response_code = 404;
                PUTS("File not found.\n");
            }
            zend_catch {}
            zend_end_try();
            goto done;
        }
        if (rf_php_limit_extensions(SG(request_info).path_translated)) {
            SG(sapi_headers).http_response_code = 403;
            PUTS("Access denied.\n");
            goto done;
        }
        /* php_fopen_primary_script may free path_translated on failure */
        primary = estrdup(SG(request_info).path_translated);
        if (php_fopen_primary_script(&fh) == FAILURE) {
            int err = errno;
            zend_try
            {
                rf_php_logf("Unable to open primary script: %s (%s)", primary, strerror(err));
                if (err == EACCES) {
                    SG(sapi_headers).http_response_code = 403;
                    PUTS("Access denied.\n");
                } else {
                    SG(sapi_headers).http_response_code = 404;
                    PUTS("No input file specified.\n");
                }
            }
            zend_catch {}
            zend_end_try();
        } else {
            EG(exit_status) = 0;
            int home = rf_php_chdir_script(fh.filename);
            php_execute_script(&fh);
            rf_php_chdir_home(home);
            if (!fh.in_list) {
                zend_destroy_file_handle(&fh);
            }
        }
    done:
        if (primary) {
            efree(primary);
            primary = NULL;
        }
        if (EG(exit_status) == 255 && rf_php_cgi.error_header && *rf_php_cgi.error_header &&
            !SG(headers_sent)) {
            sapi_header_line ctr = {0};
            ctr.line = rf_php_cgi.error_header;
            ctr.line_len = strlen(rf_php_cgi.error_header);
            sapi_header_op(SAPI_HEADER_REPLACE, &ctr);
        }
        if (exit_status) {
            *exit_status = EG(exit_status);
        }
        if (io->script_done) {
            io->script_done(io->ctx);
        }
        if (SG(request_info).path_translated) {
            efree(SG(request_info).path_translated);
            SG(request_info).path_translated = NULL;
        }
        php_request_shutdown(NULL);
    out:;
    }
    zend_catch
    {
        rc = -EIO;
    }
    zend_end_try();

    rf_php_req_reset(r);
    return rc;
}

/* ---- slowlog --------------------------------------------------------------- */

static size_t rf_trace_frame_name(const zend_execute_data *ex, char *out, size_t cap)
{
    const zend_function *f = ex->func;
    if (f == NULL)
        return (size_t)snprintf(out, cap, "???");
    if (f->common.function_name) {
        if (f->common.scope && f->common.scope->name)
            return (size_t)snprintf(out, cap, "%s::%s()", ZSTR_VAL(f->common.scope->name),
                                    ZSTR_VAL(f->common.function_name));
        return (size_t)snprintf(out, cap, "%s()", ZSTR_VAL(f->common.function_name));
    }
    /* Top-level code of a file: the include that ran it, as php-fpm names it. */
    const zend_execute_data *prev = ex->prev_execute_data;
    if (prev && prev->func && ZEND_USER_CODE(prev->func->type) && prev->opline &&
        prev->opline->opcode == ZEND_INCLUDE_OR_EVAL) {
        switch (prev->opline->extended_value) {
        case ZEND_INCLUDE:
            return (size_t)snprintf(out, cap, "include()");
        case ZEND_INCLUDE_ONCE:
            return (size_t)snprintf(out, cap, "include_once()");
        case ZEND_REQUIRE:
            return (size_t)snprintf(out, cap, "require()");
        case ZEND_REQUIRE_ONCE:
            return (size_t)snprintf(out, cap, "require_once()");
        default:
            return (size_t)snprintf(out, cap, "eval()");
        }
    }
    return 0; /* the main script: php-fpm prints no frame for it */
}

size_t rf_php_trace(char *buf, size_t cap, int max_depth)
{
    size_t n = 0;
    const zend_execute_data *ex = EG(current_execute_data);
    if (cap < 512)
        return 0;
    for (int depth = 0; ex && depth < max_depth && n < cap - 512; ex = ex->prev_execute_data) {
        char name[256];
        if (rf_trace_frame_name(ex, name, sizeof(name)) == 0)
            continue;
        /* file:line of the nearest user-code frame (an internal function
         * has none: its caller's line is where it was called). */
        const zend_execute_data *u = ex;
        while (u && (u->func == NULL || !ZEND_USER_CODE(u->func->type)))
            u = u->prev_execute_data;
        const char *file = "???";
        unsigned line = 0;
        if (u) {
            if (u->func->op_array.filename)
                file = ZSTR_VAL(u->func->op_array.filename);
            if (u->opline)
                line = u->opline->lineno;
        }
        n += (size_t)snprintf(buf + n, cap - n, "[0x%016lx] %s %s:%u\n", (unsigned long)ex, name,
                              file, line);
        depth++;
    }
    return n;
}

const char *rf_php_version(void)
{
    return PHP_VERSION;
}
