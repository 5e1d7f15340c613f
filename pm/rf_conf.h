/*
 * rf_conf: php-fpm's configuration, read from its INI files unchanged
 * (includes with globs, [global] and any number of pools, ${ENV}, $pool),
 * plus ringfpm's own directives. Every directive php-fpm knows is accepted;
 * one ringfpm does not act on yet is named in a warning, and an unknown one
 * is an error with php-fpm's text. Main thread only.
 */
#ifndef RF_CONF_H
#define RF_CONF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RF_CONF_MAX_POOLS 256

/* process.priority not set (php-fpm's sentinel: -tt prints "undefined"). */
#define RF_CONF_PRIORITY_UNSET 64

/* rf_conf_load flags. */
#define RF_CONF_ALLOW_ROOT 1 /* -R: a PHP pool may run as root */

enum rf_pm_mode {
    RF_PM_NONE = 0,
    RF_PM_STATIC,
    RF_PM_DYNAMIC,
    RF_PM_ONDEMAND,
};

/* Which kind of executor answers a pool's requests. */
enum rf_exec_type {
    RF_EXEC_PHP = 0,     /* PHP executor processes (the default) */
    RF_EXEC_BUILTIN = 1, /* the responder answers itself: hello / echo / bytes
                            (engine tests and benchmarks; no PHP, no executors) */
};

/* Array directives of a pool: env[NAME], php_value[NAME], ... kept in file
 * order. php-fpm 8.2 keeps each list newest first and applies it in that
 * order, so when a name repeats the FIRST entry in the file wins [observed
 * with php-fpm8.2: env[A] = first / env[A] = second gives A=first]; users of
 * kv apply it last-to-first to get the same result, and -tt prints it
 * newest first as php-fpm does. php_flag / php_admin_flag belong to the
 * php_value / php_admin_value lists there (same name space, same order). */
enum rf_kv_kind {
    RF_KV_ENV = 1,
    RF_KV_PHP_VALUE,
    RF_KV_PHP_FLAG,
    RF_KV_PHP_ADMIN_VALUE,
    RF_KV_PHP_ADMIN_FLAG,
    RF_KV_SUPPRESS_PATH, /* access.suppress_path[] (the key is unused) */
};

typedef struct rf_conf_kv {
    int kind; /* enum rf_kv_kind */
    char *key;
    char *value; /* flags already normalised to "1" / "0" */
} rf_conf_kv_t;

typedef struct rf_conf_pool {
    char *name;
    /* php-fpm */
    char *prefix;
    char *user;
    char *group;
    char *listen;
    long listen_backlog;
    char *listen_acl_users; /* comma-separated names: POSIX ACL on the unix socket */
    char *listen_acl_groups;
    char *listen_owner;
    char *listen_group;
    long listen_mode;
    char *listen_allowed_clients;
    int pm;
    long pm_max_children;
    long pm_start_servers;
    long pm_min_spare_servers;
    long pm_max_spare_servers;
    long pm_max_spawn_rate;
    long pm_process_idle_timeout;
    long pm_max_requests;
    char *pm_status_path;
    char *pm_status_listen; /* pm.status_listen: status and ping only, NULL = none */
    char *apparmor_hat;     /* the AppArmor hat executors change into, NULL = none */
    int request_terminate_timeout_track_finished; /* the timeout also after fastcgi_finish_request
                                                   */
    char *ping_path;
    char *ping_response;
    char *access_log;
    char *access_format;
    char *slowlog;
    long request_slowlog_timeout;
    long request_slowlog_trace_depth;
    long request_terminate_timeout;
    long rlimit_files;     /* RLIMIT_NOFILE of executors; 0 = inherited */
    long rlimit_core;      /* RLIMIT_CORE of executors; 0 = inherited, -1 = unlimited */
    long process_priority; /* nice value of executors; RF_CONF_PRIORITY_UNSET */
    char *chroot;
    char *chdir;
    int process_dumpable; /* process.dumpable: PR_SET_DUMPABLE after setuid */
    int catch_workers_output;
    int decorate_workers_output; /* default yes */
    int clear_env;
    char *security_limit_extensions;
    /* ringfpm */
    long max_params_bytes;
    long max_params;
    long max_multiplex;
    long max_per_connection;
    long buffer_memory;
    long max_body;
    long read_timeout_ms;
    int executor_type;     /* executor.type: enum rf_exec_type */
    long queue_max;        /* request.queue_max: requests waiting for an executor */
    long queue_timeout_ms; /* request.queue_timeout: longest wait; 0 = none */
    int overload_fcgi;     /* request.overload: 0 = "503" (Status: 503 response),
                              1 = "overloaded" (END_REQUEST FCGI_OVERLOADED) */
    int *exec_cpu_list;    /* executor.cpu_list: cpus executors may run on */
    int exec_ncpu;         /* 0 = no pinning */
    int exec_cpu_spread;   /* executor.cpu_list = spread [list]: executor i on
                              one cpu, i modulo exec_cpu_list when given, else
                              modulo the cpus it was allowed at fork (online) */
    rf_conf_kv_t *kv;      /* env[], php_value[], php_flag[], php_admin_*[],
                              access.suppress_path[] (enum rf_kv_kind) */
    size_t nkv;
    /* directives given that ringfpm does not act on yet (for the warning) */
    char *ignored;
} rf_conf_pool_t;

typedef struct rf_conf {
    char *file;   /* the main config file, NULL for the built-in default */
    char *prefix; /* -p */
    /* php-fpm [global] */
    char *pid;
    char *error_log;     /* NULL: log/php-fpm.log; "syslog": syslog */
    char *syslog_ident;  /* default "php-fpm", as php-fpm's */
    int syslog_facility; /* LOG_* value, default LOG_DAEMON */
    int log_buffering;
    int log_level;
    long log_limit; /* >= 512, default 1024 */
    int daemonize;
    long rlimit_files;
    long rlimit_core;      /* RLIMIT_CORE of the master; 0 = inherited, -1 = unlimited */
    long process_priority; /* nice value of the master; RF_CONF_PRIORITY_UNSET */
    long process_control_timeout;
    long emergency_restart_threshold; /* SIGSEGV/SIGBUS deaths that trigger a reload; 0 = off */
    long emergency_restart_interval;  /* seconds: the window they are counted in */
    long process_max;                 /* executors over all pools; 0 = no limit */
    long systemd_interval;            /* seconds between STATUS= heartbeats; 0 = none */
    char *events_mechanism; /* epoll, poll or select (checked, shown by -tt); NULL = unset */
    /* ringfpm [global] */
    int threads; /* 0 = auto */
    int *cpu_list;
    int ncpu;
    int backend;
    long max_connections;
    long idle_timeout_ms;
    long ring_entries;
    long recv_buffers;
    long recv_buffer_size;
    char *ignored;

    rf_conf_pool_t *pools;
    int npools;
} rf_conf_t;

/*
 * Load and validate a configuration file (path NULL: the built-in default,
 * 127.0.0.1:9000). prefix is -p (NULL: none). flags: RF_CONF_ALLOW_ROOT
 * (-R). As php-fpm's post-processing does, relative paths are made absolute
 * (see rf_conf_full_path), access.format is checked when access.log is set,
 * and, when running as root without RF_CONF_ALLOW_ROOT, a PHP pool must set
 * `user`. On error returns -EINVAL and leaves a message in err (php-fpm's
 * form: "[file:line] text"); on success 0, with warnings already logged.
 * Free with rf_conf_free.
 */
int rf_conf_load(rf_conf_t *conf, const char *path, const char *prefix, int flags, char *err,
                 size_t errlen);

/*
 * php-fpm's fpm_evaluate_full_path: a relative *path (malloc'd, replaced)
 * becomes "<base>/<path>", base being the pool's prefix (p may be NULL), else
 * the global prefix (-p), else /usr. With expand_prefix, a leading "$prefix"
 * stands for that base (chroot). An absolute path is left alone. Returns 0
 * or -ENOMEM.
 */
int rf_conf_full_path(char **path, const rf_conf_t *conf, const rf_conf_pool_t *p,
                      int expand_prefix);

void rf_conf_free(rf_conf_t *conf);

/* Print every directive with its effective value (for -tt), one per line. */
void rf_conf_dump(const rf_conf_t *conf, void (*out)(void *ctx, const char *line), void *ctx);

/* Log the directives ringfpm accepted but does not act on yet. */
void rf_conf_warn_ignored(const rf_conf_t *conf);

#ifdef __cplusplus
}
#endif

#endif
