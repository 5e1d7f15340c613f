/*
 * rf_conf: loads php-fpm configuration files. The lexical work (one Zend INI
 * parse per line, ${ENV}, constants) is core/rf_ini; this file reads files,
 * follows `include` globs (depth 5), tracks sections ([global] or a pool,
 * re-opened pools merge), expands $pool, and stores each directive through
 * a table that knows its scope, type, default and whether ringfpm acts on
 * it yet. Error texts and exit behaviour follow php-fpm's fpm_conf.c.
 */
#include "rf_conf.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rf_ini.h"
#include "rf_io.h"
#include "rf_log.h"

#define RF_CONF_MAX_DEPTH 5

enum rf_conf_type {
    RF_T_STR = 1,
    RF_T_INT,
    RF_T_BOOL,
    RF_T_TIME,    /* seconds, php-fpm suffixes */
    RF_T_TIME_MS, /* ringfpm: milliseconds; "ms" or php-fpm's suffixes */
    RF_T_SIZE,    /* ringfpm: bytes with k/m/g suffixes */
    RF_T_MODE,    /* octal */
    RF_T_PM,
    RF_T_LEVEL,
    RF_T_THREADS,
    RF_T_CPUS,
    RF_T_BACKEND,
    RF_T_DAEMONIZE,
    RF_T_IGNORED, /* php-fpm's, accepted, not acted on yet */
};

enum { RF_SCOPE_GLOBAL = 1, RF_SCOPE_POOL = 2 };

typedef struct rf_directive {
    const char *name;
    int scope;
    int type;
    size_t off;  /* into rf_conf_t or rf_conf_pool_t */
    int pending; /* parsed and validated, acted on once PHP executors run:
                    named in the startup warning when set */
} rf_directive_t;

#define G(n, t, f)                                                                                 \
    {                                                                                              \
        n, RF_SCOPE_GLOBAL, t, offsetof(rf_conf_t, f), 0                                           \
    }
#define P(n, t, f)                                                                                 \
    {                                                                                              \
        n, RF_SCOPE_POOL, t, offsetof(rf_conf_pool_t, f), 0                                        \
    }
/* A pool directive parsed now, acted on with the PHP executors. */
#define PP(n, t, f)                                                                                \
    {                                                                                              \
        n, RF_SCOPE_POOL, t, offsetof(rf_conf_pool_t, f), 1                                        \
    }
#define GI(n)                                                                                      \
    {                                                                                              \
        n, RF_SCOPE_GLOBAL, RF_T_IGNORED, 0, 0                                                     \
    }
#define PI(n)                                                                                      \
    {                                                                                              \
        n, RF_SCOPE_POOL, RF_T_IGNORED, 0, 0                                                       \
    }

static const rf_directive_t rf_directives[] = {
    /* [global], php-fpm 8.2 order */
    G("pid", RF_T_STR, pid),
    G("error_log", RF_T_STR, error_log),
    GI("syslog.ident"),
    GI("syslog.facility"),
    GI("log_buffering"),
    G("log_level", RF_T_LEVEL, log_level),
    GI("log_limit"),
    GI("emergency_restart_threshold"),
    GI("emergency_restart_interval"),
    G("process_control_timeout", RF_T_TIME, process_control_timeout),
    GI("process.max"),
    GI("process.priority"),
    G("daemonize", RF_T_DAEMONIZE, daemonize),
    G("rlimit_files", RF_T_INT, rlimit_files),
    GI("rlimit_core"),
    GI("events.mechanism"),
    GI("systemd_interval"),
    /* [global], ringfpm */
    G("responder.threads", RF_T_THREADS, threads),
    G("responder.cpu_list", RF_T_CPUS, cpu_list),
    G("io.backend", RF_T_BACKEND, backend),
    G("responder.max_connections", RF_T_INT, max_connections),
    G("responder.idle_timeout", RF_T_TIME_MS, idle_timeout_ms),
    G("responder.ring_entries", RF_T_INT, ring_entries),
    G("responder.recv_buffers", RF_T_INT, recv_buffers),
    G("responder.recv_buffer_size", RF_T_SIZE, recv_buffer_size),

    /* pools, php-fpm 8.2 order */
    PP("prefix", RF_T_STR, prefix),
    PP("user", RF_T_STR, user),
    PP("group", RF_T_STR, group),
    P("listen", RF_T_STR, listen),
    P("listen.backlog", RF_T_INT, listen_backlog),
    PI("listen.acl_users"),
    PI("listen.acl_groups"),
    PP("listen.owner", RF_T_STR, listen_owner),
    PP("listen.group", RF_T_STR, listen_group),
    P("listen.mode", RF_T_MODE, listen_mode),
    PP("listen.allowed_clients", RF_T_STR, listen_allowed_clients),
    PI("process.priority"),
    PI("process.dumpable"),
    PP("pm", RF_T_PM, pm),
    PP("pm.max_children", RF_T_INT, pm_max_children),
    PP("pm.start_servers", RF_T_INT, pm_start_servers),
    PP("pm.min_spare_servers", RF_T_INT, pm_min_spare_servers),
    PP("pm.max_spare_servers", RF_T_INT, pm_max_spare_servers),
    PP("pm.max_spawn_rate", RF_T_INT, pm_max_spawn_rate),
    PP("pm.process_idle_timeout", RF_T_TIME, pm_process_idle_timeout),
    PP("pm.max_requests", RF_T_INT, pm_max_requests),
    P("pm.status_path", RF_T_STR, pm_status_path),
    PI("pm.status_listen"),
    P("ping.path", RF_T_STR, ping_path),
    P("ping.response", RF_T_STR, ping_response),
    PP("access.log", RF_T_STR, access_log),
    PP("access.format", RF_T_STR, access_format),
    PP("slowlog", RF_T_STR, slowlog),
    PP("request_slowlog_timeout", RF_T_TIME, request_slowlog_timeout),
    PI("request_slowlog_trace_depth"),
    PP("request_terminate_timeout", RF_T_TIME, request_terminate_timeout),
    PI("request_terminate_timeout_track_finished"),
    PI("rlimit_files"),
    PI("rlimit_core"),
    PP("chroot", RF_T_STR, chroot),
    PP("chdir", RF_T_STR, chdir),
    PP("catch_workers_output", RF_T_BOOL, catch_workers_output),
    PI("decorate_workers_output"),
    PP("clear_env", RF_T_BOOL, clear_env),
    PP("security.limit_extensions", RF_T_STR, security_limit_extensions),
    PI("apparmor_hat"),
    /* pools, ringfpm */
    P("request.max_params_bytes", RF_T_SIZE, max_params_bytes),
    P("request.max_params", RF_T_INT, max_params),
    P("request.max_multiplex", RF_T_INT, max_multiplex),
    P("request.max_per_connection", RF_T_INT, max_per_connection),
    P("request.buffer_memory", RF_T_SIZE, buffer_memory),
    P("request.max_body", RF_T_SIZE, max_body),
    P("request.read_timeout", RF_T_TIME_MS, read_timeout_ms),
};

typedef struct rf_load {
    rf_conf_t *conf;
    rf_conf_pool_t *pool; /* current section's pool, NULL in [global] */
    int in_global;
    const char *file;
    int depth;
    char *err;
    size_t errlen;
    char envbuf[4096];
} rf_load_t;

static char *rf_strdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL) {
        rf_log(RF_LOG_ALERT, "out of memory");
        abort();
    }
    return d;
}

static void rf_note_ignored(char **list, const char *name)
{
    if (*list && (strstr(*list, name) != NULL))
        return;
    size_t old = *list ? strlen(*list) : 0;
    char *n = realloc(*list, old + strlen(name) + 3);
    if (n == NULL)
        return;
    if (old)
        strcpy(n + old, ", ");
    strcpy(n + old + (old ? 2 : 0), name);
    *list = n;
}

static void rf_pool_defaults(rf_conf_pool_t *p)
{
    p->listen_backlog = -1;
    p->listen_mode = 0660;
    p->pm_max_spawn_rate = 32;
    p->pm_process_idle_timeout = 10;
    p->clear_env = 1;
    p->max_params_bytes = 1 << 20;
    p->max_params = 10000;
    p->max_multiplex = 256;
    p->max_per_connection = 0;
    p->buffer_memory = 1 << 20;
    p->max_body = 0;
    p->read_timeout_ms = 60000;
}

static rf_conf_pool_t *rf_pool_get(rf_conf_t *conf, const char *name)
{
    for (int i = 0; i < conf->npools; i++)
        if (strcasecmp(conf->pools[i].name, name) == 0)
            return &conf->pools[i];
    if (conf->npools == RF_CONF_MAX_POOLS)
        return NULL;
    rf_conf_pool_t *pools = realloc(conf->pools, (size_t)(conf->npools + 1) * sizeof(*pools));
    if (pools == NULL)
        return NULL;
    conf->pools = pools;
    rf_conf_pool_t *p = &pools[conf->npools++];
    memset(p, 0, sizeof(*p));
    p->name = rf_strdup(name);
    rf_pool_defaults(p);
    return p;
}

static int rf_fail(rf_load_t *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int rf_fail(rf_load_t *ld, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(ld->err, ld->errlen, "[%s:%d] %s", ld->file, line, msg);
    else
        snprintf(ld->err, ld->errlen, "%s", msg);
    return -EINVAL;
}

/* Replace every "$pool" with the pool name (php-fpm does it in all
 * string values of a pool). */
static char *rf_expand_pool(const char *v, const char *pool)
{
    size_t n = 0, plen = strlen(pool);
    for (const char *p = v; (p = strstr(p, "$pool")); p += 5)
        n++;
    char *out = malloc(strlen(v) + n * plen + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    while (*v) {
        if (strncmp(v, "$pool", 5) == 0) {
            memcpy(o, pool, plen);
            o += plen;
            v += 5;
        } else {
            *o++ = *v++;
        }
    }
    *o = '\0';
    return out;
}

static int rf_parse_size(const char *v, long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (end == v || errno || n < 0)
        return -EINVAL;
    switch (tolower((unsigned char)*end)) {
    case '\0':
        break;
    case 'k':
        n <<= 10;
        end++;
        break;
    case 'm':
        n <<= 20;
        end++;
        break;
    case 'g':
        n <<= 30;
        end++;
        break;
    default:
        return -EINVAL;
    }
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end)
        return -EINVAL;
    *out = (long)n;
    return 0;
}

static int rf_parse_time_ms(const char *v, long *out)
{
    size_t len = strlen(v);
    if (len > 2 && strcmp(v + len - 2, "ms") == 0) {
        char buf[32];
        if (len - 2 >= sizeof(buf))
            return -EINVAL;
        memcpy(buf, v, len - 2);
        buf[len - 2] = '\0';
        return rf_ini_int(buf, out);
    }
    long s;
    int rc = rf_ini_time(v, &s);
    if (rc == 0)
        *out = s * 1000;
    return rc;
}

static int rf_parse_cpus(const char *v, int **list, int *n)
{
    int *cpus = NULL, count = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        char *end;
        long a = strtol(p, &end, 10);
        if (end == p || a < 0 || a > 4095)
            goto bad;
        long b = a;
        if (*end == '-') {
            p = end + 1;
            b = strtol(p, &end, 10);
            if (end == p || b < a || b > 4095)
                goto bad;
        }
        for (long c = a; c <= b; c++) {
            int *nc = realloc(cpus, (size_t)(count + 1) * sizeof(int));
            if (nc == NULL)
                goto bad;
            cpus = nc;
            cpus[count++] = (int)c;
        }
        p = end;
        if (*p && *p != ',' && *p != ' ')
            goto bad;
    }
    free(*list);
    *list = cpus;
    *n = count;
    return 0;
bad:
    free(cpus);
    return -EINVAL;
}

static int rf_load_file(rf_load_t *ld, const char *path);

static int rf_include(rf_load_t *ld, const char *pattern, int line)
{
    char full[4096];
    if (pattern[0] != '/') {
        const char *prefix = ld->conf->prefix ? ld->conf->prefix : "/usr";
        snprintf(full, sizeof(full), "%s/%s", prefix, pattern);
        pattern = full;
    }
    if (ld->depth >= RF_CONF_MAX_DEPTH)
        return rf_fail(ld, line, "failed to include more than %d files recursively",
                       RF_CONF_MAX_DEPTH);
    glob_t g;
    int rc = glob(pattern, GLOB_ERR | GLOB_MARK, NULL, &g);
    if (rc == GLOB_NOMATCH) {
        rf_log(RF_LOG_WARNING, "Nothing matches the include pattern '%s' from %s at line %d.",
               pattern, ld->file, line);
        return 0;
    }
    if (rc != 0)
        return rf_fail(ld, line, "Unable to globalize '%s' (ret=%d) from %s at line %d.", pattern,
                       rc, ld->file, line);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *f = g.gl_pathv[i];
        size_t l = strlen(f);
        if (l && f[l - 1] == '/')
            continue; /* GLOB_MARK: a directory */
        const char *saved = ld->file;
        ld->depth++;
        rc = rf_load_file(ld, f);
        ld->depth--;
        ld->file = saved;
        if (rc < 0) {
            globfree(&g);
            return rc;
        }
    }
    globfree(&g);
    return 0;
}

static int rf_store(rf_load_t *ld, const rf_directive_t *d, const char *value, int line)
{
    void *base = d->scope == RF_SCOPE_GLOBAL ? (void *)ld->conf : (void *)ld->pool;
    void *field = (char *)base + d->off;
    long n;
    int b, rc;

    switch (d->type) {
    case RF_T_IGNORED:
        rf_note_ignored(d->scope == RF_SCOPE_GLOBAL ? &ld->conf->ignored : &ld->pool->ignored,
                        d->name);
        return 0;
    case RF_T_STR:
        free(*(char **)field);
        *(char **)field = rf_strdup(value);
        return 0;
    case RF_T_INT:
        if (rf_ini_int(value, &n) < 0)
            return rf_fail(ld, line, "'%s' is not a valid number for '%s'", value, d->name);
        *(long *)field = n;
        return 0;
    case RF_T_BOOL:
        if (rf_ini_bool(value, &b) < 0)
            return rf_fail(ld, line, "invalid boolean value for '%s'", d->name);
        *(int *)field = b;
        return 0;
    case RF_T_DAEMONIZE:
        if (rf_ini_bool(value, &b) < 0)
            return rf_fail(ld, line, "invalid boolean value for '%s'", d->name);
        *(int *)field = b;
        return 0;
    case RF_T_TIME:
        rc = rf_ini_time(value, &n);
        if (rc < 0)
            return rf_fail(ld, line, "unknown suffix used in time value for '%s'", d->name);
        *(long *)field = n;
        return 0;
    case RF_T_TIME_MS:
        if (rf_parse_time_ms(value, &n) < 0 || n < 0)
            return rf_fail(ld, line, "invalid time value '%s' for '%s'", value, d->name);
        *(long *)field = n;
        return 0;
    case RF_T_SIZE:
        if (rf_parse_size(value, &n) < 0)
            return rf_fail(ld, line, "invalid size '%s' for '%s' (bytes, or with k/m/g)", value,
                           d->name);
        *(long *)field = n;
        return 0;
    case RF_T_MODE: {
        char *end;
        n = strtol(value, &end, 8);
        if (*value == '\0' || *end || n < 0 || n > 07777)
            return rf_fail(ld, line, "'%s' is not a valid mode for '%s'", value, d->name);
        *(long *)field = n;
        return 0;
    }
    case RF_T_PM:
        if (strcasecmp(value, "static") == 0)
            *(int *)field = RF_PM_STATIC;
        else if (strcasecmp(value, "dynamic") == 0)
            *(int *)field = RF_PM_DYNAMIC;
        else if (strcasecmp(value, "ondemand") == 0)
            *(int *)field = RF_PM_ONDEMAND;
        else
            return rf_fail(ld, line, "invalid process manager (static, dynamic or ondemand)");
        return 0;
    case RF_T_LEVEL:
        rc = rf_log_level_parse(value);
        if (rc < 0)
            return rf_fail(ld, line, "invalid value for 'log_level'");
        *(int *)field = rc;
        return 0;
    case RF_T_THREADS:
        if (strcasecmp(value, "auto") == 0) {
            *(int *)field = 0;
            return 0;
        }
        if (rf_ini_int(value, &n) < 0 || n < 1 || n > 1024)
            return rf_fail(ld, line, "'responder.threads' must be auto or 1..1024, not '%s'",
                           value);
        *(int *)field = (int)n;
        return 0;
    case RF_T_CPUS:
        if (rf_parse_cpus(value, &ld->conf->cpu_list, &ld->conf->ncpu) < 0)
            return rf_fail(ld, line, "invalid cpu list '%s' (e.g. 0,1 or 0-3)", value);
        return 0;
    case RF_T_BACKEND:
        rc = rf_io_backend_parse(value);
        if (rc < 0)
            return rf_fail(ld, line, "'io.backend' must be auto, io_uring or epoll, not '%s'",
                           value);
        *(int *)field = rc;
        return 0;
    }
    return rf_fail(ld, line, "internal: directive type %d", d->type);
}

static int rf_set(rf_load_t *ld, const rf_directive_t *d, const char *value, int line)
{
    int rc = rf_store(ld, d, value, line);
    if (rc == 0 && d->pending)
        rf_note_ignored(&ld->pool->ignored, d->name);
    return rc;
}

static const char *rf_getenv(void *ctx, const char *name)
{
    return getenv(name);
}

static int rf_on_section(void *ctx, const char *section, int line)
{
    rf_load_t *ld = ctx;
    if (strcasecmp(section, "global") == 0) {
        ld->in_global = 1;
        ld->pool = NULL;
        return 0;
    }
    ld->in_global = 0;
    ld->pool = rf_pool_get(ld->conf, section);
    if (ld->pool == NULL)
        return rf_fail(ld, line, "too many pools (%d at most)", RF_CONF_MAX_POOLS);
    return 0;
}

static int rf_on_entry(void *ctx, const rf_ini_entry_t *e)
{
    rf_load_t *ld = ctx;
    if (e->value == NULL)
        return rf_fail(ld, e->line, "value is NULL for a ZEND_INI_PARSER_ENTRY");

    if (strcasecmp(e->name, "include") == 0 && e->key == NULL)
        return rf_include(ld, e->value, e->line);

    if (e->key) {
        static const char *const arrays[] = {"env",
                                             "php_value",
                                             "php_flag",
                                             "php_admin_value",
                                             "php_admin_flag",
                                             "access.suppress_path"};
        int known = 0;
        for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
            known |= strcmp(e->name, arrays[i]) == 0;
        if (!known)
            return rf_fail(ld, e->line, "unknown directive '%s'", e->name);
        if (ld->pool == NULL)
            return rf_fail(ld, e->line, "Array are not allowed in the global section");
        rf_note_ignored(&ld->pool->ignored, e->name);
        return 0;
    }

    for (size_t i = 0; i < sizeof(rf_directives) / sizeof(rf_directives[0]); i++) {
        const rf_directive_t *d = &rf_directives[i];
        if (strcasecmp(d->name, e->name) != 0)
            continue;
        if (d->scope == RF_SCOPE_GLOBAL && !ld->in_global) {
            /* Same name in both scopes (rlimit_files, process.priority):
             * the pool one is further down the table. */
            if (ld->pool)
                continue;
        }
        if (d->scope == RF_SCOPE_POOL && ld->pool == NULL) {
            if (ld->in_global)
                continue;
            return rf_fail(ld, e->line, "unknown entry '%s'", e->name);
        }
        if (d->scope == RF_SCOPE_POOL) {
            if (strstr(e->value, "$pool")) {
                char *v = rf_expand_pool(e->value, ld->pool->name);
                if (v == NULL)
                    return -ENOMEM;
                int rc = rf_set(ld, d, v, e->line);
                free(v);
                return rc;
            }
        } else if (strstr(e->value, "$pool")) {
            return rf_fail(ld, e->line, "Can't use '$pool' when the pool is not defined");
        }
        return rf_set(ld, d, e->value, e->line);
    }
    return rf_fail(ld, e->line, "unknown entry '%s'", e->name);
}

static int rf_load_file(rf_load_t *ld, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rf_fail(ld, 0, "failed to open configuration file '%s': %s (%d)", path,
                       strerror(errno), errno);
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size > (64 << 20)) {
        close(fd);
        return rf_fail(ld, 0, "configuration file '%s' is not a readable file", path);
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t have = 0;
    while (text && have < (size_t)st.st_size) {
        ssize_t n = read(fd, text + have, (size_t)st.st_size - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(fd);
    if (text == NULL)
        return -ENOMEM;
    ld->file = path;
    char msg[512];
    int line = 0;
    int rc = rf_ini_parse(text, have, rf_on_section, rf_on_entry, rf_getenv, ld, msg, sizeof(msg),
                          &line);
    free(text);
    if (rc == -EINVAL && msg[0])
        return rf_fail(ld, line, "%s", msg);
    if (rc < 0 && ld->err[0] == '\0')
        return rf_fail(ld, line, "%s", strerror(-rc));
    return rc;
}

static int rf_check_path_option(rf_load_t *ld, rf_conf_pool_t *p, const char *what, const char *v)
{
    if (v == NULL)
        return 0;
    size_t len = strlen(v);
    if (len < 2 || v[0] != '/')
        return rf_fail(ld, 0,
                       "[pool %s] the %s path '%s' must start with a '/' and be longer "
                       "than 1 character",
                       p->name, what, v);
    for (const char *c = v; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("/_-.~", *c))
            return rf_fail(ld, 0,
                           "[pool %s] the %s path '%s' must contain only the following "
                           "characters '[alphanum]/_-.~'",
                           p->name, what, v);
    return 0;
}

/* fpm_conf_process_all_pools: what php-fpm refuses to start with. */
static int rf_validate(rf_load_t *ld)
{
    rf_conf_t *c = ld->conf;
    if (c->npools == 0)
        return rf_fail(ld, 0,
                       "No pool defined. at least one pool section must be specified in "
                       "config file");
    for (int i = 0; i < c->npools; i++) {
        rf_conf_pool_t *p = &c->pools[i];
        if (p->listen == NULL || p->listen[0] == '\0')
            return rf_fail(ld, 0, "[pool %s] no listen address have been defined!", p->name);
        for (int k = 0; k < i; k++)
            if (strcmp(c->pools[k].listen, p->listen) == 0)
                return rf_fail(ld, 0,
                               "[pool %s] unable to set listen address as it's already "
                               "used in another pool '%s'",
                               p->name, c->pools[k].name);
        if (p->pm != RF_PM_NONE && p->pm_max_children < 1)
            return rf_fail(ld, 0, "[pool %s] pm.max_children must be a positive value", p->name);
        if (p->pm == RF_PM_DYNAMIC) {
            if (p->pm_min_spare_servers <= 0)
                return rf_fail(ld, 0,
                               "[pool %s] pm.min_spare_servers(%ld) must be a positive "
                               "value",
                               p->name, p->pm_min_spare_servers);
            if (p->pm_max_spare_servers <= 0)
                return rf_fail(ld, 0,
                               "[pool %s] pm.max_spare_servers(%ld) must be a positive "
                               "value",
                               p->name, p->pm_max_spare_servers);
            if (p->pm_min_spare_servers > p->pm_max_children ||
                p->pm_max_spare_servers > p->pm_max_children)
                return rf_fail(ld, 0,
                               "[pool %s] pm.min_spare_servers(%ld) and "
                               "pm.max_spare_servers(%ld) cannot be greater than "
                               "pm.max_children(%ld)",
                               p->name, p->pm_min_spare_servers, p->pm_max_spare_servers,
                               p->pm_max_children);
            if (p->pm_max_spare_servers < p->pm_min_spare_servers)
                return rf_fail(ld, 0,
                               "[pool %s] pm.max_spare_servers(%ld) must not be less "
                               "than pm.min_spare_servers(%ld)",
                               p->name, p->pm_max_spare_servers, p->pm_min_spare_servers);
            if (p->pm_start_servers <= 0)
                p->pm_start_servers = p->pm_min_spare_servers +
                                      (p->pm_max_spare_servers - p->pm_min_spare_servers) / 2;
            else if (p->pm_start_servers < p->pm_min_spare_servers ||
                     p->pm_start_servers > p->pm_max_spare_servers)
                return rf_fail(ld, 0,
                               "[pool %s] pm.start_servers(%ld) must not be less than "
                               "pm.min_spare_servers(%ld) and not greater than "
                               "pm.max_spare_servers(%ld)",
                               p->name, p->pm_start_servers, p->pm_min_spare_servers,
                               p->pm_max_spare_servers);
        }
        if (p->pm_max_spawn_rate < 1)
            return rf_fail(ld, 0, "[pool %s] pm.max_spawn_rate must be a positive value", p->name);
        int rc = rf_check_path_option(ld, p, "ping", p->ping_path);
        if (rc == 0)
            rc = rf_check_path_option(ld, p, "status", p->pm_status_path);
        if (rc < 0)
            return rc;
        if (p->ping_path && p->ping_response == NULL)
            p->ping_response = rf_strdup("pong");
        if (p->max_multiplex < 1 || p->max_multiplex > 65535)
            return rf_fail(ld, 0, "[pool %s] request.max_multiplex must be 1..65535", p->name);
        if (p->max_params_bytes < 0 || p->max_params < 0 || p->max_per_connection < 0 ||
            p->buffer_memory < 0 || p->max_body < 0)
            return rf_fail(ld, 0, "[pool %s] request.* limits must not be negative", p->name);
        if (p->max_params_bytes > UINT32_MAX || p->max_params > UINT32_MAX)
            return rf_fail(ld, 0,
                           "[pool %s] request.max_params_bytes and request.max_params "
                           "must fit 32 bits",
                           p->name);
    }
    if (c->max_connections < 0 || c->ring_entries < 0 || c->recv_buffers < 0)
        return rf_fail(ld, 0, "responder.* values must not be negative");
    if (c->recv_buffers & (c->recv_buffers - 1))
        return rf_fail(ld, 0, "responder.recv_buffers must be a power of two");
    if (c->recv_buffer_size && (c->recv_buffer_size < 1024 || c->recv_buffer_size > (1 << 20)))
        return rf_fail(ld, 0, "responder.recv_buffer_size must be 1k..1m");
    return 0;
}

static void rf_global_defaults(rf_conf_t *c)
{
    c->log_level = RF_LOG_NOTICE;
    c->daemonize = 1;
    c->backend = RF_IO_AUTO;
    c->idle_timeout_ms = 600000;
}

int rf_conf_load(rf_conf_t *conf, const char *path, const char *prefix, char *err, size_t errlen)
{
    memset(conf, 0, sizeof(*conf));
    rf_global_defaults(conf);
    if (prefix)
        conf->prefix = rf_strdup(prefix);
    err[0] = '\0';
    rf_load_t ld = {.conf = conf, .in_global = 1, .err = err, .errlen = errlen, .file = "-"};

    if (path == NULL) {
        /* The built-in default: one pool, 127.0.0.1:9000, like a fresh
         * php-fpm pool would listen on. */
        conf->daemonize = 0;
        rf_conf_pool_t *p = rf_pool_get(conf, "www");
        p->listen = rf_strdup("127.0.0.1:9000");
        p->ping_path = rf_strdup("/ping");
        p->ping_response = rf_strdup("pong");
        p->pm_status_path = rf_strdup("/status");
        p->pm = RF_PM_DYNAMIC;
        p->pm_max_children = 5;
        p->pm_start_servers = 2;
        p->pm_min_spare_servers = 1;
        p->pm_max_spare_servers = 3;
        return rf_validate(&ld);
    }
    conf->file = rf_strdup(path);
    int rc = rf_load_file(&ld, path);
    if (rc < 0) {
        if (err[0] == '\0')
            snprintf(err, errlen, "failed to load configuration file '%s': %s", path,
                     strerror(-rc));
        return -EINVAL;
    }
    ld.file = path;
    return rf_validate(&ld);
}

static void rf_pool_free(rf_conf_pool_t *p)
{
    char **strs[] = {&p->name,
                     &p->prefix,
                     &p->user,
                     &p->group,
                     &p->listen,
                     &p->listen_owner,
                     &p->listen_group,
                     &p->listen_allowed_clients,
                     &p->pm_status_path,
                     &p->ping_path,
                     &p->ping_response,
                     &p->access_log,
                     &p->access_format,
                     &p->slowlog,
                     &p->chroot,
                     &p->chdir,
                     &p->security_limit_extensions,
                     &p->ignored};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

void rf_conf_free(rf_conf_t *conf)
{
    for (int i = 0; i < conf->npools; i++)
        rf_pool_free(&conf->pools[i]);
    free(conf->pools);
    free(conf->file);
    free(conf->prefix);
    free(conf->pid);
    free(conf->error_log);
    free(conf->cpu_list);
    free(conf->ignored);
    memset(conf, 0, sizeof(*conf));
}

static void rf_dump_one(const rf_directive_t *d, const void *base,
                        void (*out)(void *ctx, const char *line), void *ctx)
{
    char line[1200];
    const void *field = (const char *)base + d->off;
    switch (d->type) {
    case RF_T_IGNORED:
        return;
    case RF_T_STR: {
        const char *s = *(char *const *)field;
        snprintf(line, sizeof(line), "\t%s = %s", d->name, s ? s : "undefined");
        break;
    }
    case RF_T_BOOL:
    case RF_T_DAEMONIZE:
        snprintf(line, sizeof(line), "\t%s = %s", d->name, *(const int *)field ? "yes" : "no");
        break;
    case RF_T_MODE:
        snprintf(line, sizeof(line), "\t%s = 0%lo", d->name, (unsigned long)*(const long *)field);
        break;
    case RF_T_TIME:
        snprintf(line, sizeof(line), "\t%s = %lds", d->name, *(const long *)field);
        break;
    case RF_T_TIME_MS:
        snprintf(line, sizeof(line), "\t%s = %ldms", d->name, *(const long *)field);
        break;
    case RF_T_PM: {
        static const char *const names[] = {"undefined", "static", "dynamic", "ondemand"};
        snprintf(line, sizeof(line), "\t%s = %s", d->name, names[*(const int *)field & 3]);
        break;
    }
    case RF_T_LEVEL:
        snprintf(line, sizeof(line), "\t%s = %s", d->name, rf_log_level_name(*(const int *)field));
        break;
    case RF_T_THREADS:
        if (*(const int *)field == 0)
            snprintf(line, sizeof(line), "\t%s = auto", d->name);
        else
            snprintf(line, sizeof(line), "\t%s = %d", d->name, *(const int *)field);
        break;
    case RF_T_CPUS: {
        const rf_conf_t *c = base;
        size_t n = (size_t)snprintf(line, sizeof(line), "\t%s = ", d->name);
        if (c->ncpu == 0)
            snprintf(line + n, sizeof(line) - n, "undefined");
        for (int i = 0; i < c->ncpu && n < sizeof(line) - 8; i++)
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%d", i ? "," : "", c->cpu_list[i]);
        break;
    }
    case RF_T_BACKEND:
        snprintf(line, sizeof(line), "\t%s = %s", d->name, rf_io_backend_name(*(const int *)field));
        break;
    default:
        snprintf(line, sizeof(line), "\t%s = %ld", d->name, *(const long *)field);
        break;
    }
    out(ctx, line);
}

void rf_conf_dump(const rf_conf_t *conf, void (*out)(void *ctx, const char *line), void *ctx)
{
    char line[600];
    out(ctx, "[global]");
    for (size_t i = 0; i < sizeof(rf_directives) / sizeof(rf_directives[0]); i++)
        if (rf_directives[i].scope == RF_SCOPE_GLOBAL)
            rf_dump_one(&rf_directives[i], conf, out, ctx);
    for (int p = 0; p < conf->npools; p++) {
        snprintf(line, sizeof(line), "[%s]", conf->pools[p].name);
        out(ctx, line);
        for (size_t i = 0; i < sizeof(rf_directives) / sizeof(rf_directives[0]); i++)
            if (rf_directives[i].scope == RF_SCOPE_POOL)
                rf_dump_one(&rf_directives[i], &conf->pools[p], out, ctx);
    }
}

void rf_conf_warn_ignored(const rf_conf_t *conf)
{
    if (conf->ignored)
        rf_log(RF_LOG_WARNING, "[global] not implemented by ringfpm yet, ignored: %s",
               conf->ignored);
    for (int i = 0; i < conf->npools; i++) {
        const rf_conf_pool_t *p = &conf->pools[i];
        if (p->ignored)
            rf_log(RF_LOG_WARNING,
                   "[pool %s] not implemented by ringfpm yet (no PHP executors in this build), "
                   "ignored: %s",
                   p->name, p->ignored);
    }
}
