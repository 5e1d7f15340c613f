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
#include <syslog.h>
#include <unistd.h>

#include "rf_access.h"
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
    RF_T_RLIMIT_CORE, /* php-fpm: integer >= 0 or "unlimited" (-1) */
    RF_T_COUNT,       /* ringfpm: strict integer 0..INT32_MAX */
    RF_T_EXEC_TYPE,   /* ringfpm: php | builtin */
    RF_T_OVERLOAD,    /* ringfpm: 503 | overloaded */
    RF_T_EXEC_CPUS,   /* ringfpm: cpu list, "spread" or "spread <list>" */
    RF_T_FACILITY,    /* php-fpm's syslog.facility names */
    RF_T_FPM_INT,     /* php-fpm's fpm_conf_set_integer: [-]digits */
    RF_T_PRIORITY,    /* process.priority: as RF_T_FPM_INT, unset = 64 */
    RF_T_IGNORED,     /* php-fpm's, accepted, not acted on yet */
    RF_T_EVENTS,      /* events.mechanism: checked as php-fpm does */
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
/* A pool directive parsed and validated, not acted on yet: named in the
 * start-up warning when a configuration sets it. */
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
    G("syslog.ident", RF_T_STR, syslog_ident),
    G("syslog.facility", RF_T_FACILITY, syslog_facility),
    G("log_buffering", RF_T_BOOL, log_buffering),
    G("log_level", RF_T_LEVEL, log_level),
    G("log_limit", RF_T_FPM_INT, log_limit),
    G("emergency_restart_threshold", RF_T_FPM_INT, emergency_restart_threshold),
    G("emergency_restart_interval", RF_T_TIME, emergency_restart_interval),
    G("process_control_timeout", RF_T_TIME, process_control_timeout),
    G("process.max", RF_T_FPM_INT, process_max),
    G("process.priority", RF_T_PRIORITY, process_priority),
    G("daemonize", RF_T_DAEMONIZE, daemonize),
    G("rlimit_files", RF_T_INT, rlimit_files),
    G("rlimit_core", RF_T_RLIMIT_CORE, rlimit_core),
    G("events.mechanism", RF_T_EVENTS, events_mechanism),
    G("systemd_interval", RF_T_TIME, systemd_interval),
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
    P("prefix", RF_T_STR, prefix),
    P("user", RF_T_STR, user),
    P("group", RF_T_STR, group),
    P("listen", RF_T_STR, listen),
    P("listen.backlog", RF_T_INT, listen_backlog),
    P("listen.acl_users", RF_T_STR, listen_acl_users),
    P("listen.acl_groups", RF_T_STR, listen_acl_groups),
    P("listen.owner", RF_T_STR, listen_owner),
    P("listen.group", RF_T_STR, listen_group),
    P("listen.mode", RF_T_MODE, listen_mode),
    P("listen.allowed_clients", RF_T_STR, listen_allowed_clients),
    P("process.priority", RF_T_PRIORITY, process_priority),
    P("process.dumpable", RF_T_BOOL, process_dumpable),
    P("pm", RF_T_PM, pm),
    P("pm.max_children", RF_T_INT, pm_max_children),
    P("pm.start_servers", RF_T_INT, pm_start_servers),
    P("pm.min_spare_servers", RF_T_INT, pm_min_spare_servers),
    P("pm.max_spare_servers", RF_T_INT, pm_max_spare_servers),
    P("pm.max_spawn_rate", RF_T_INT, pm_max_spawn_rate),
    P("pm.process_idle_timeout", RF_T_TIME, pm_process_idle_timeout),
    P("pm.max_requests", RF_T_INT, pm_max_requests),
    P("pm.status_path", RF_T_STR, pm_status_path),
    P("pm.status_listen", RF_T_STR, pm_status_listen),
    P("ping.path", RF_T_STR, ping_path),
    P("ping.response", RF_T_STR, ping_response),
    P("access.log", RF_T_STR, access_log),
    P("access.format", RF_T_STR, access_format),
    P("slowlog", RF_T_STR, slowlog),
    P("request_slowlog_timeout", RF_T_TIME, request_slowlog_timeout),
    P("request_slowlog_trace_depth", RF_T_INT, request_slowlog_trace_depth),
    P("request_terminate_timeout", RF_T_TIME, request_terminate_timeout),
    P("request_terminate_timeout_track_finished", RF_T_BOOL,
      request_terminate_timeout_track_finished),
    P("rlimit_files", RF_T_INT, rlimit_files),
    P("rlimit_core", RF_T_RLIMIT_CORE, rlimit_core),
    P("chroot", RF_T_STR, chroot),
    P("chdir", RF_T_STR, chdir),
    P("catch_workers_output", RF_T_BOOL, catch_workers_output),
    P("decorate_workers_output", RF_T_BOOL, decorate_workers_output),
    P("clear_env", RF_T_BOOL, clear_env),
    P("security.limit_extensions", RF_T_STR, security_limit_extensions),
    P("apparmor_hat", RF_T_STR, apparmor_hat),
    /* pools, ringfpm */
    P("request.max_params_bytes", RF_T_SIZE, max_params_bytes),
    P("request.max_params", RF_T_INT, max_params),
    P("request.max_multiplex", RF_T_INT, max_multiplex),
    P("request.max_per_connection", RF_T_INT, max_per_connection),
    P("request.buffer_memory", RF_T_SIZE, buffer_memory),
    P("request.max_body", RF_T_SIZE, max_body),
    P("request.read_timeout", RF_T_TIME_MS, read_timeout_ms),
    P("executor.type", RF_T_EXEC_TYPE, executor_type),
    P("executor.cpu_list", RF_T_EXEC_CPUS, exec_cpu_list),
    P("request.queue_max", RF_T_COUNT, queue_max),
    P("request.queue_timeout", RF_T_TIME_MS, queue_timeout_ms),
    P("request.overload", RF_T_OVERLOAD, overload_fcgi),
};

typedef struct rf_load {
    rf_conf_t *conf;
    rf_conf_pool_t *pool; /* current section's pool, NULL in [global] */
    int in_global;
    const char *file;
    int depth;
    int flags; /* RF_CONF_ALLOW_ROOT */
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
    size_t nlen = strlen(name);
    /* Already named? Compare whole ", "-separated items: "pm" is not in
     * "pm.max_children". */
    for (const char *it = *list; it && *it;) {
        size_t ilen = strcspn(it, ",");
        if (ilen == nlen && strncmp(it, name, nlen) == 0)
            return;
        it += ilen;
        while (*it == ',' || *it == ' ')
            it++;
    }
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
    p->request_slowlog_trace_depth = 20;
    p->process_priority = RF_CONF_PRIORITY_UNSET;
    p->clear_env = 1;
    p->decorate_workers_output = 1;
    p->max_params_bytes = 1 << 20;
    p->max_params = 10000;
    p->max_multiplex = 256;
    p->max_per_connection = 0;
    p->buffer_memory = 1 << 20;
    p->max_body = 0;
    p->read_timeout_ms = 60000;
    p->executor_type = RF_EXEC_PHP;
    p->queue_max = 4096;
    p->queue_timeout_ms = 60000;
    p->overload_fcgi = 0;
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

/* ringfpm's own counts: digits only, no sign, no wrap-around (unlike
 * php-fpm's atoi-based integers, which are kept for php-fpm's directives). */
static int rf_parse_count(const char *v, long *out)
{
    long n = 0;
    if (*v == '\0')
        return -EINVAL;
    for (; *v; v++) {
        if (*v < '0' || *v > '9')
            return -EINVAL;
        n = n * 10 + (*v - '0');
        if (n > INT32_MAX)
            return -ERANGE;
    }
    *out = n;
    return 0;
}

/* executor.cpu_list: "0-3" / "0,2,4" (every executor may run on the set),
 * "spread" (executor i on one cpu of those it may run on) or "spread 0-3"
 * ("spread:0-3", "spread,0-3"; executor i on the i-th cpu of the list). */
static int rf_parse_exec_cpus(rf_conf_pool_t *p, const char *v)
{
    int spread = 0;
    if (strncasecmp(v, "spread", 6) == 0 && (v[6] == '\0' || strchr(" \t:,", v[6]))) {
        spread = 1;
        v += 6;
        while (*v && strchr(" \t:,", *v))
            v++;
    }
    if (rf_parse_cpus(v, &p->exec_cpu_list, &p->exec_ncpu) < 0)
        return -EINVAL;
    p->exec_cpu_spread = spread;
    return 0;
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
    case RF_T_EVENTS: /* checked with the rest, as php-fpm's post-processing does */
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
            return rf_fail(ld, line, "unable to parse value for entry '%s': invalid boolean value",
                           d->name);
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
            return rf_fail(ld, line,
                           "unable to parse value for entry 'log_level': invalid value for "
                           "'log_level'");
        *(int *)field = rc;
        return 0;
    case RF_T_FACILITY:
        rc = rf_log_facility_parse(value);
        if (rc < 0)
            return rf_fail(ld, line, "unable to parse value for entry '%s': invalid value",
                           d->name);
        *(int *)field = rc;
        return 0;
    case RF_T_FPM_INT:
    case RF_T_PRIORITY: {
        /* fpm_conf_set_integer: an optional '-' then digits, atoi() */
        const char *v = value + (value[0] == '-');
        if (*v == '\0' || strspn(v, "0123456789") != strlen(v))
            return rf_fail(ld, line,
                           "unable to parse value for entry '%s': is not a valid number "
                           "(greater or equal than zero)",
                           d->name);
        *(long *)field = atoi(value);
        return 0;
    }
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
    case RF_T_RLIMIT_CORE:
        /* fpm_conf_set_rlimit_core */
        if (strcasecmp(value, "unlimited") == 0) {
            *(long *)field = -1;
            return 0;
        }
        if (rf_ini_int(value, &n) < 0)
            return rf_fail(ld, line,
                           "unable to parse value for entry '%s': is not a valid number "
                           "(greater or equal than zero)",
                           d->name);
        if (n < 0)
            return rf_fail(ld, line,
                           "unable to parse value for entry '%s': must be greater than zero or "
                           "'unlimited'",
                           d->name);
        *(long *)field = n;
        return 0;
    case RF_T_COUNT:
        if (rf_parse_count(value, &n) < 0)
            return rf_fail(ld, line, "'%s' is not a valid number for '%s' (0 to 2147483647)", value,
                           d->name);
        *(long *)field = n;
        return 0;
    case RF_T_EXEC_TYPE:
        if (strcasecmp(value, "php") == 0)
            *(int *)field = RF_EXEC_PHP;
        else if (strcasecmp(value, "builtin") == 0)
            *(int *)field = RF_EXEC_BUILTIN;
        else
            return rf_fail(ld, line, "'%s' must be php or builtin, not '%s'", d->name, value);
        return 0;
    case RF_T_OVERLOAD:
        if (strcmp(value, "503") == 0)
            *(int *)field = 0;
        else if (strcasecmp(value, "overloaded") == 0)
            *(int *)field = 1;
        else
            return rf_fail(ld, line, "'%s' must be 503 or overloaded, not '%s'", d->name, value);
        return 0;
    case RF_T_EXEC_CPUS:
        if (rf_parse_exec_cpus(ld->pool, value) < 0)
            return rf_fail(ld, line,
                           "invalid cpu list '%s' for '%s' (e.g. 0-3, 0,2,4, spread or "
                           "spread 0-3)",
                           value, d->name);
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

static void rf_kv_add(rf_conf_pool_t *p, int kind, const char *key, char *value)
{
    rf_conf_kv_t *kv = realloc(p->kv, (p->nkv + 1) * sizeof(*kv));
    if (kv == NULL) {
        rf_log(RF_LOG_ALERT, "out of memory");
        abort();
    }
    p->kv = kv;
    kv[p->nkv].kind = kind;
    kv[p->nkv].key = rf_strdup(key);
    kv[p->nkv].value = value;
    p->nkv++;
}

/* name[key] = value: fpm_conf_ini_parser_array, its checks in its order.
 * Array names are case-sensitive there (php_Value[x] is unknown). */
static int rf_array(rf_load_t *ld, const rf_ini_entry_t *e)
{
    static const struct {
        const char *name;
        int kind;
    } arrays[] = {
        {"env", RF_KV_ENV},
        {"php_value", RF_KV_PHP_VALUE},
        {"php_flag", RF_KV_PHP_FLAG},
        {"php_admin_value", RF_KV_PHP_ADMIN_VALUE},
        {"php_admin_flag", RF_KV_PHP_ADMIN_FLAG},
        {"access.suppress_path", RF_KV_SUPPRESS_PATH},
    };
    int kind = 0;
    for (size_t i = 0; i < sizeof(arrays) / sizeof(arrays[0]); i++)
        if (strcmp(e->name, arrays[i].name) == 0)
            kind = arrays[i].kind;

    if (kind == RF_KV_SUPPRESS_PATH) {
        if (e->key[0] != '\0')
            return rf_fail(ld, e->line, "Keys provided to field '%s' are ignored", e->name);
        if (e->value[0] != '/')
            return rf_fail(ld, e->line, "Values provided to field '%s' must begin with '/'",
                           e->name);
    } else if (e->key[0] == '\0') {
        return rf_fail(ld, e->line, "You must provide a key for field '%s'", e->name);
    }
    if (ld->pool == NULL)
        return rf_fail(ld, e->line, "Array are not allowed in the global section");
    if (kind == 0)
        return rf_fail(ld, e->line, "unknown directive '%s'", e->name);
    if (kind == RF_KV_ENV && e->value[0] == '\0')
        return rf_fail(ld, e->line, "empty value");

    char *value;
    if (kind == RF_KV_PHP_FLAG || kind == RF_KV_PHP_ADMIN_FLAG) {
        int b;
        if (rf_ini_bool(e->value, &b) < 0)
            return rf_fail(ld, e->line, "error while parsing '%s[%s]' : invalid boolean value",
                           e->name, e->key);
        value = rf_strdup(b ? "1" : "0");
    } else {
        value = rf_expand_pool(e->value, ld->pool->name);
        if (value == NULL)
            return -ENOMEM;
    }
    rf_kv_add(ld->pool, kind, e->key, value);
    return 0;
}

static int rf_on_entry(void *ctx, const rf_ini_entry_t *e)
{
    rf_load_t *ld = ctx;
    if (e->value == NULL)
        return rf_fail(ld, e->line, "value is NULL for a ZEND_INI_PARSER_ENTRY");

    if (strcasecmp(e->name, "include") == 0 && e->key == NULL)
        return rf_include(ld, e->value, e->line);

    if (e->key)
        return rf_array(ld, e);

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

int rf_conf_full_path(char **path, const rf_conf_t *conf, const rf_conf_pool_t *p,
                      int expand_prefix)
{
    if (path == NULL || *path == NULL || (*path)[0] == '/')
        return 0;
    const char *base = p && p->prefix ? p->prefix : conf->prefix ? conf->prefix : "/usr";
    const char *rest = *path;
    if (expand_prefix) {
        const char *at = strstr(rest, "$prefix");
        if (at != NULL && at != rest) {
            /* left relative: the caller's "must start with a '/'" follows */
            rf_log(RF_LOG_ERROR, "'$prefix' must be use at the beginning of the value");
            return 0;
        }
        if (at != NULL)
            rest += 7;
    }
    size_t len = strlen(base) + strlen(rest) + 2;
    char *full = malloc(len);
    if (full == NULL)
        return -ENOMEM;
    if (expand_prefix && rest != *path && *rest == '\0')
        snprintf(full, len, "%s", base);
    else
        snprintf(full, len, "%s/%s", base, rest);
    free(*path);
    *path = full;
    /* a pool prefix that is itself relative: once more against the global one */
    if (full[0] != '/' && p != NULL)
        return rf_conf_full_path(path, conf, NULL, expand_prefix);
    return 0;
}

static int rf_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The first checks of php-fpm's fpm_conf_process_all_pools, before listen:
 * the pool prefix, and a user for a PHP pool when running as root. */
static int rf_validate_prefix_user(rf_load_t *ld, rf_conf_pool_t *p)
{
    if (p->prefix && *p->prefix) {
        if (rf_conf_full_path(&p->prefix, ld->conf, NULL, 0) < 0)
            return -ENOMEM;
        if (!rf_is_dir(p->prefix))
            return rf_fail(ld, 0, "[pool %s] the prefix '%s' does not exist or is not a directory",
                           p->name, p->prefix);
    }
    /* A builtin pool runs no PHP and starts no process as its user. */
    if (p->user == NULL && p->executor_type == RF_EXEC_PHP && geteuid() == 0 &&
        !(ld->flags & RF_CONF_ALLOW_ROOT)) {
        rf_log(RF_LOG_ALERT, "[pool %s] user has not been defined", p->name);
        return rf_fail(ld, 0, "failed to post process the configuration");
    }
    return 0;
}

/* A unix socket path (php-fpm: no ':' and not only digits) under the
 * prefix when relative. */
static int rf_validate_listen_path(rf_load_t *ld, rf_conf_pool_t *p)
{
    const char *l = p->listen;
    if (l[0] == '/' || strchr(l, ':') || strspn(l, "0123456789") == strlen(l))
        return 0;
    return rf_conf_full_path(&p->listen, ld->conf, p, 0);
}

/* php-fpm's FPM_PHP_INI_TO_EXPAND: php values that are paths. */
static int rf_php_ini_is_path(const char *name)
{
    static const char *const names[] = {"error_log",
                                        "extension_dir",
                                        "mime_magic.magicfile",
                                        "sendmail_path",
                                        "session.cookie_path",
                                        "session_pgsql.sem_file_name",
                                        "soap.wsdl_cache_dir",
                                        "uploadprogress.file.filename_template",
                                        "xdebug.output_dir",
                                        "xdebug.profiler_output_dir",
                                        "xdebug.trace_output_dir",
                                        "xmms.path",
                                        "axis2.client_home",
                                        "blenc.key_file",
                                        "coin_acceptor.device"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* chroot / chdir: under the prefix when relative; then it must be absolute
 * (a relative prefix can leave it relative). */
static int rf_validate_abs(rf_load_t *ld, const rf_conf_pool_t *p, char **path, const char *what,
                           int expand_prefix)
{
    if (rf_conf_full_path(path, ld->conf, p, expand_prefix) < 0)
        return -ENOMEM;
    if ((*path)[0] != '/')
        return rf_fail(ld, 0, "[pool %s] the %s path '%s' must start with a '/'", p->name, what,
                       *path);
    return 0;
}

/* The rest of fpm_conf_process_all_pools' path work, in its order:
 * access.log, slowlog, process.priority, chroot, chdir, path-like php
 * values (not for a chrooted pool; php_admin_value[error_log] = syslog is
 * left alone, php_value's is not, as in php-fpm). */
static int rf_validate_paths(rf_load_t *ld, rf_conf_pool_t *p)
{
    const rf_conf_t *c = ld->conf;
    if (p->access_log && *p->access_log) {
        if (rf_conf_full_path(&p->access_log, c, p, 0) < 0)
            return -ENOMEM;
        if (p->access_format == NULL)
            p->access_format = rf_strdup(RF_ACCESS_DEFAULT_FORMAT);
    }
    if (p->slowlog && *p->slowlog && rf_conf_full_path(&p->slowlog, c, p, 0) < 0)
        return -ENOMEM;
    if (p->process_priority != RF_CONF_PRIORITY_UNSET &&
        (p->process_priority < -19 || p->process_priority > 20))
        return rf_fail(ld, 0, "[pool %s] process.priority must be included into [-19,20]", p->name);
    int rc;
    if (p->chroot && *p->chroot) {
        if ((rc = rf_validate_abs(ld, p, &p->chroot, "chroot", 1)) < 0)
            return rc;
        if (!rf_is_dir(p->chroot))
            return rf_fail(ld, 0,
                           "[pool %s] the chroot path '%s' does not exist or is not a directory",
                           p->name, p->chroot);
    }
    if (p->chdir && *p->chdir) {
        if ((rc = rf_validate_abs(ld, p, &p->chdir, "chdir", 0)) < 0)
            return rc;
        if (p->chroot && *p->chroot) {
            char buf[8192];
            snprintf(buf, sizeof(buf), "%s/%s", p->chroot, p->chdir);
            if (!rf_is_dir(buf))
                return rf_fail(ld, 0,
                               "[pool %s] the chdir path '%s' within the chroot path '%s' "
                               "('%s') does not exist or is not a directory",
                               p->name, p->chdir, p->chroot, buf);
        } else if (!rf_is_dir(p->chdir)) {
            return rf_fail(ld, 0,
                           "[pool %s] the chdir path '%s' does not exist or is not a directory",
                           p->name, p->chdir);
        }
    }
    if (p->chroot && *p->chroot)
        return 0;
    for (size_t i = 0; i < p->nkv; i++) {
        rf_conf_kv_t *kv = &p->kv[i];
        if (kv->kind == RF_KV_ENV || kv->kind == RF_KV_SUPPRESS_PATH ||
            !rf_php_ini_is_path(kv->key))
            continue;
        int admin = kv->kind == RF_KV_PHP_ADMIN_VALUE || kv->kind == RF_KV_PHP_ADMIN_FLAG;
        if (admin && strcasecmp(kv->key, "error_log") == 0 && strcasecmp(kv->value, "syslog") == 0)
            continue;
        if (rf_conf_full_path(&kv->value, c, p, 0) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* fpm_conf_post_process, after the pools: the access.format of every pool
 * with an access.log, compiled as the executor will (php-fpm: a WARNING
 * naming the token, then the error). */
static int rf_validate_access_formats(rf_load_t *ld)
{
    for (int i = 0; i < ld->conf->npools; i++) {
        const rf_conf_pool_t *p = &ld->conf->pools[i];
        if (p->access_log == NULL || p->access_log[0] == '\0')
            continue;
        char why[256];
        rf_access_fmt_t *f = NULL;
        int rc = rf_access_compile(p->access_format, &f, why, sizeof(why));
        rf_access_free(f);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0) {
            rf_log(RF_LOG_WARNING, "%s", why);
            return rf_fail(ld, 0, "[pool %s] wrong format for access.format '%s'", p->name,
                           p->access_format ? p->access_format : RF_ACCESS_DEFAULT_FORMAT);
        }
    }
    return 0;
}

/*
 * events.mechanism: php-fpm's choice of its master's event loop, and what
 * a Linux build of it accepts (any case). ringfpm's master waits with
 * poll(2) on a few descriptors whatever is set, and the responder's
 * mechanism is io.backend, so the value is only checked (php-fpm's error
 * for anything else) and shown by -tt, lower case. Returns 0 and
 * canonicalizes, or -1.
 */
static int rf_events_check(char *name)
{
    static const char *const ok[] = {"epoll", "poll", "select"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcasecmp(name, ok[i]) == 0) {
            memcpy(name, ok[i], strlen(ok[i]) + 1);
            return 0;
        }
    return -1;
}

/* fpm_conf_process_all_pools: what php-fpm refuses to start with. */
static int rf_validate(rf_load_t *ld)
{
    rf_conf_t *c = ld->conf;
    if (c->process_max < 0)
        return rf_fail(ld, 0, "process_max can't be negative");
    if (c->log_limit < RF_LOG_LIMIT_MIN)
        return rf_fail(ld, 0, "log_limit must be greater than %d", RF_LOG_LIMIT_MIN);
    if (c->process_priority != RF_CONF_PRIORITY_UNSET &&
        (c->process_priority < -19 || c->process_priority > 20))
        return rf_fail(ld, 0, "process.priority must be included into [-19,20]");
    if (c->events_mechanism && rf_events_check(c->events_mechanism) < 0) {
        rf_log(RF_LOG_ERROR, "event mechanism '%s' is not available on this system",
               c->events_mechanism);
        return rf_fail(ld, 0, "failed to post process the configuration");
    }
    if (c->npools == 0)
        return rf_fail(ld, 0,
                       "No pool defined. at least one pool section must be specified in "
                       "config file");
    for (int i = 0; i < c->npools; i++) {
        rf_conf_pool_t *p = &c->pools[i];
        int rc = rf_validate_prefix_user(ld, p);
        if (rc < 0)
            return rc;
        if (p->listen == NULL || p->listen[0] == '\0')
            return rf_fail(ld, 0, "[pool %s] no listen address have been defined!", p->name);
        if (rf_validate_listen_path(ld, p) < 0)
            return -ENOMEM;
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
            if (p->pm_start_servers <= 0) {
                p->pm_start_servers = p->pm_min_spare_servers +
                                      (p->pm_max_spare_servers - p->pm_min_spare_servers) / 2;
                rf_log(RF_LOG_NOTICE,
                       "[pool %s] pm.start_servers is not set. It's been set to %ld.", p->name,
                       p->pm_start_servers);
            } else if (p->pm_start_servers < p->pm_min_spare_servers ||
                       p->pm_start_servers > p->pm_max_spare_servers)
                return rf_fail(ld, 0,
                               "[pool %s] pm.start_servers(%ld) must not be less than "
                               "pm.min_spare_servers(%ld) and not greater than "
                               "pm.max_spare_servers(%ld)",
                               p->name, p->pm_start_servers, p->pm_min_spare_servers,
                               p->pm_max_spare_servers);
            if (p->pm_max_spawn_rate < 1)
                return rf_fail(ld, 0, "[pool %s] pm.max_spawn_rate must be a positive value",
                               p->name);
        } else if (p->pm == RF_PM_ONDEMAND) {
            if (p->pm_process_idle_timeout < 1)
                return rf_fail(ld, 0,
                               "[pool %s] pm.process_idle_timeout(%lds) must be greater than 0s",
                               p->name, p->pm_process_idle_timeout);
            /* php-fpm: "certainly useless but proper" */
            p->pm_start_servers = 0;
            p->pm_min_spare_servers = 0;
            p->pm_max_spare_servers = 0;
        }
        rc = rf_check_path_option(ld, p, "ping", p->ping_path);
        if (rc == 0)
            rc = rf_check_path_option(ld, p, "status", p->pm_status_path);
        if (rc == 0)
            rc = rf_validate_paths(ld, p);
        if (rc < 0)
            return rc;
        if (p->ping_path && p->ping_response == NULL)
            p->ping_response = rf_strdup("pong");
        if (p->security_limit_extensions == NULL)
            p->security_limit_extensions = rf_strdup(".php .phar");
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
    return rf_validate_access_formats(ld);
}

static void rf_global_defaults(rf_conf_t *c)
{
    c->log_level = RF_LOG_NOTICE;
    c->syslog_ident = rf_strdup("php-fpm");
    c->syslog_facility = LOG_DAEMON;
    c->log_buffering = 1;
    c->log_limit = RF_LOG_LIMIT_DEFAULT;
    c->daemonize = 1;
    c->systemd_interval = 10;
    c->process_priority = RF_CONF_PRIORITY_UNSET;
    c->backend = RF_IO_AUTO;
    c->idle_timeout_ms = 600000;
}

int rf_conf_load(rf_conf_t *conf, const char *path, const char *prefix, int flags, char *err,
                 size_t errlen)
{
    memset(conf, 0, sizeof(*conf));
    rf_global_defaults(conf);
    if (prefix)
        conf->prefix = rf_strdup(prefix);
    err[0] = '\0';
    rf_load_t ld = {
        .conf = conf, .in_global = 1, .flags = flags, .err = err, .errlen = errlen, .file = "-"};

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
                     &p->listen_acl_users,
                     &p->listen_acl_groups,
                     &p->listen_owner,
                     &p->listen_group,
                     &p->listen_allowed_clients,
                     &p->pm_status_path,
                     &p->pm_status_listen,
                     &p->apparmor_hat,
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
    for (size_t i = 0; i < p->nkv; i++) {
        free(p->kv[i].key);
        free(p->kv[i].value);
    }
    free(p->kv);
    p->kv = NULL;
    p->nkv = 0;
    free(p->exec_cpu_list);
    p->exec_cpu_list = NULL;
    p->exec_ncpu = 0;
}

void rf_conf_free(rf_conf_t *conf)
{
    for (int i = 0; i < conf->npools; i++)
        rf_pool_free(&conf->pools[i]);
    free(conf->pools);
    free(conf->file);
    free(conf->prefix);
    free(conf->pid);
    free(conf->events_mechanism);
    free(conf->error_log);
    free(conf->syslog_ident);
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
    case RF_T_EVENTS: { /* php-fpm shows the mechanism it uses: epoll unless set */
        const char *s = *(char *const *)field;
        snprintf(line, sizeof(line), "\t%s = %s", d->name, s ? s : "epoll");
        break;
    }
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
    case RF_T_PRIORITY:
        if (*(const long *)field == RF_CONF_PRIORITY_UNSET)
            snprintf(line, sizeof(line), "\t%s = undefined", d->name);
        else
            snprintf(line, sizeof(line), "\t%s = %ld", d->name, *(const long *)field);
        break;
    case RF_T_FACILITY: /* php-fpm prints the number */
        snprintf(line, sizeof(line), "\t%s = %d", d->name, *(const int *)field);
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
    case RF_T_EXEC_TYPE:
        snprintf(line, sizeof(line), "\t%s = %s", d->name,
                 *(const int *)field == RF_EXEC_BUILTIN ? "builtin" : "php");
        break;
    case RF_T_OVERLOAD:
        snprintf(line, sizeof(line), "\t%s = %s", d->name,
                 *(const int *)field ? "overloaded" : "503");
        break;
    case RF_T_EXEC_CPUS: {
        const rf_conf_pool_t *p = base;
        size_t n = (size_t)snprintf(line, sizeof(line), "\t%s = %s", d->name,
                                    p->exec_cpu_spread ? "spread" : "");
        if (p->exec_ncpu == 0 && !p->exec_cpu_spread)
            snprintf(line + n, sizeof(line) - n, "undefined");
        for (int i = 0; i < p->exec_ncpu && n < sizeof(line) - 8; i++)
            n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%d",
                                  i ? "," : (p->exec_cpu_spread ? " " : ""), p->exec_cpu_list[i]);
        break;
    }
    default:
        snprintf(line, sizeof(line), "\t%s = %ld", d->name, *(const long *)field);
        break;
    }
    out(ctx, line);
}

/* The array entries of kinds a and b as php-fpm's -tt prints them: its
 * lists are newest first, so last-to-first here; flags print under the
 * value list they belong to there ("php_value[display_errors] = 1"). */
static void rf_dump_kv(const rf_conf_pool_t *p, int a, int b, const char *label,
                       void (*out)(void *ctx, const char *line), void *ctx)
{
    for (size_t i = p->nkv; i-- > 0;) {
        const rf_conf_kv_t *kv = &p->kv[i];
        if (kv->kind != a && kv->kind != b)
            continue;
        size_t len = strlen(label) + strlen(kv->key) + strlen(kv->value) + 16;
        char *line = malloc(len);
        if (line == NULL)
            return;
        snprintf(line, len, "\t%s[%s] = %s", label, kv->key, kv->value);
        out(ctx, line);
        free(line);
    }
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
        const rf_conf_pool_t *pool = &conf->pools[p];
        for (size_t i = 0; i < sizeof(rf_directives) / sizeof(rf_directives[0]); i++) {
            const rf_directive_t *d = &rf_directives[i];
            if (d->scope != RF_SCOPE_POOL)
                continue;
            rf_dump_one(d, pool, out, ctx);
            /* the arrays where php-fpm 8.2 prints them */
            if (strcmp(d->name, "access.format") == 0) {
                rf_dump_kv(pool, RF_KV_SUPPRESS_PATH, 0, "access.suppress_path", out, ctx);
            } else if (strcmp(d->name, "security.limit_extensions") == 0) {
                rf_dump_kv(pool, RF_KV_ENV, 0, "env", out, ctx);
                rf_dump_kv(pool, RF_KV_PHP_VALUE, RF_KV_PHP_FLAG, "php_value", out, ctx);
                rf_dump_kv(pool, RF_KV_PHP_ADMIN_VALUE, RF_KV_PHP_ADMIN_FLAG, "php_admin_value",
                           out, ctx);
            }
        }
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
            rf_log(RF_LOG_WARNING, "[pool %s] not implemented by ringfpm yet, ignored: %s", p->name,
                   p->ignored);
    }
}
