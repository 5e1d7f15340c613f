/*
 * rf_php — the PHP side of an executor: a libphp SAPI named "fpm-fcgi" that
 * behaves like php-fpm's (sapi/fpm/fpm/fpm_main.c) as seen from PHP code and
 * from the web server. The process manager starts PHP once in the master
 * (rf_php_startup, before fork, so opcache's shared memory is inherited),
 * then each executor runs requests one at a time with rf_php_execute. All
 * request I/O goes through a small callback table (rf_php_io_t): this file
 * knows nothing about FastCGI records, channels or sockets.
 *
 * Threading: libphp is NTS; every function here must be called from the one
 * thread of the process that called rf_php_startup.
 */
#ifndef RF_PHP_H
#define RF_PHP_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Default php.ini and scan dir: the ones Debian's php-fpm8.2 uses. */
#define RF_PHP_DEFAULT_INI      "/etc/php/8.2/fpm/php.ini"
#define RF_PHP_DEFAULT_SCAN_DIR "/etc/php/8.2/fpm/conf.d"
/* php-fpm's default security.limit_extensions. */
#define RF_PHP_DEFAULT_LIMIT_EXTENSIONS ".php .phar"

/* Start-up options: php-fpm's -c / -n / -d and the pool's
 * security.limit_extensions. Every field may be zero/NULL. Strings are
 * copied; the caller keeps ownership. */
typedef struct rf_php_opts {
    /* -c: php.ini file or directory; NULL = RF_PHP_DEFAULT_INI. */
    const char *ini_path;
    /* conf.d scan dir; NULL = $PHP_INI_SCAN_DIR if set, else
     * RF_PHP_DEFAULT_SCAN_DIR. Ignored with no_ini (as php -n does). */
    const char *ini_scan_dir;
    /* -n: no php.ini at all. */
    int no_ini;
    /* -d list, each "name" or "name=value" (same quoting as php -d). */
    const char *const *defines;
    size_t ndefines;
    /* security.limit_extensions (space/tab separated); NULL = ".php .phar",
     * "" = every extension allowed. */
    const char *limit_extensions;
} rf_php_opts_t;

/* The request as PHP resolved it (SG(request_info) after cgi.fix_pathinfo):
 * what php-fpm copies to its scoreboard. Strings are valid during the call
 * only and NULL when unset. */
typedef struct rf_php_req_info {
    const char *method;
    const char *uri;    /* SCRIPT_NAME after cgi.fix_pathinfo, no query */
    const char *query;  /* QUERY_STRING */
    const char *script; /* the script's path; NULL when there is none (404) */
    const char *user;   /* HTTP_AUTHORIZATION's user (Basic / Digest) */
    long long content_length;
} rf_php_req_info_t;

/* Request I/O. ctx is handed back untouched to every callback. Every
 * callback is called on the executing thread, during rf_php_execute. */
typedef struct rf_php_io {
    void *ctx;
    /* stdout bytes: the CGI header block ("Status: ...\r\n...\r\n\r\n")
     * first, then the body. Returns bytes taken (may be short; it is called
     * again for the rest) or < 0 on a dead connection, which PHP sees as an
     * aborted connection (connection_aborted(), ignore_user_abort). */
    ssize_t (*write)(void *ctx, const char *p, size_t n);
    /* Request body (FCGI_STDIN): up to n bytes into buf; 0 = end of body,
     * < 0 = error (treated as end). May be NULL (no body). */
    ssize_t (*read_body)(void *ctx, char *buf, size_t n);
    /* flush(): push what was written so far to the client now. May be NULL.
     * < 0 = dead connection. */
    int (*flush)(void *ctx);
    /* One log message, exactly the text php-fpm sends in FCGI_STDERR and
     * its log for it ("PHP message: PHP Warning:  ...", "Primary script
     * unknown", ...); no trailing newline. php-fpm joins the messages of one
     * request with "; " inside FCGI_STDERR: that is the caller's job. Only
     * called while fastcgi.logging=1 (the default). May be NULL. */
    void (*log)(void *ctx, const char *msg, size_t n);
    /* fastcgi_finish_request(): all output so far (headers included) has
     * been written; the caller should end the FastCGI request now
     * (END_REQUEST) while the script keeps running. Later output is
     * dropped by this SAPI. Returns < 0 on failure. May be NULL. */
    int (*finish)(void *ctx);
    /* Non-zero once the client went away (FCGI_ABORT_REQUEST, peer closed).
     * Checked before every write/flush; PHP then behaves as on a failed
     * write. May be NULL. */
    int (*aborted)(void *ctx);
    /* The request's params are resolved (php-fpm's "Getting request
     * information", before php_request_startup). May be NULL. */
    void (*started)(void *ctx, const rf_php_req_info_t *info);
    /* The script returned (or never ran); request shutdown — shutdown
     * functions, destructors, the last output — follows: php-fpm's
     * fpm_request_end, where it takes the request's duration, cpu and
     * memory (rf_php_memory_peak). May be NULL. */
    void (*script_done)(void *ctx);
} rf_php_io_t;

/* One FastCGI param. Not NUL-terminated; copied by rf_php_execute. */
typedef struct rf_php_param {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} rf_php_param_t;

/* The PHP version this SAPI was built against ("8.2.36"). */
const char *rf_php_version(void);

/* Start PHP once, in the master before fork: php.ini lookup as php-fpm does
 * (opts above), sapi_startup and php_module_startup with SAPI "fpm-fcgi"
 * (so opcache, a zend_extension in conf.d, enables itself). Returns 0, or
 * -EALREADY if already started, -EINVAL/-ENOMEM on bad options, -EIO if PHP
 * failed to start (PHP printed why on stderr). */
int rf_php_startup(const rf_php_opts_t *opts);

/* Shut PHP down (php_module_shutdown + sapi_shutdown). Safe to call when not
 * started. Executors may simply _exit() instead. */
void rf_php_shutdown(void);

/* php-fpm -m: "[PHP Modules]", every loaded module sorted by name
 * (case-insensitive), a blank line, "[Zend Modules]", every Zend extension
 * sorted, a blank line; on stdout. Needs rf_php_startup. Returns 0 or
 * -EINVAL when PHP is not started. */
int rf_php_print_modules(void);

/* php-fpm -i: phpinfo() as text (every section) on stdout, inside a
 * request of its own that has no params ($_SERVER is the environment).
 * Needs rf_php_startup. Returns 0, -EINVAL when PHP is not started, or -EIO
 * when the request could not start. */
int rf_php_print_info(void);

/* Apply one INI setting the way php-fpm applies pool php_value (admin=0) /
 * php_admin_value (admin=1) and the PHP_VALUE / PHP_ADMIN_VALUE params: the
 * master value is rewritten (persists for later requests of this process),
 * admin additionally locks it against ini_set(). "extension" loads an
 * extension, disable_functions / disable_classes take effect. Call between
 * requests (e.g. in the executor after fork). Returns 0, -ENOENT for an
 * unknown entry, -EINVAL if the value was refused or an extension failed. */
int rf_php_apply_ini(const char *name, const char *value, int admin);

/* Replace the security.limit_extensions list (see rf_php_opts_t). Returns 0
 * or -ENOMEM. */
int rf_php_set_limit_extensions(const char *list);

/* Run one request like one turn of php-fpm's request loop: params become
 * SG(request_info) and $_SERVER (over the process environment) after the
 * cgi.fix_pathinfo resolution; PHP_VALUE / PHP_ADMIN_VALUE are applied;
 * "Primary script unknown" gives 404 "File not found.", a script outside
 * security.limit_extensions 403 "Access denied."; the script runs and its
 * output goes to io. request_time_float is $_SERVER['REQUEST_TIME_FLOAT']
 * (when the web server's request arrived, so queue time is included; <= 0
 * means now). *exit_status (may be NULL) gets the script's exit status:
 * exit(N) gives N, a fatal error 255, anything else 0. Returns 0 when the
 * request was handled (whatever its HTTP status), -EINVAL on bad arguments,
 * -EIO if PHP could not start the request (the process should exit, as
 * php-fpm's child does). */
int rf_php_execute(const rf_php_param_t *params, size_t nparams, const rf_php_io_t *io,
                   double request_time_float, int *exit_status);

/* The running request's peak memory as php-fpm reports it
 * (zend_memory_peak_usage(1): memory taken from the system). Meaningful
 * while a request runs, e.g. in script_done; PHP resets it at request
 * shutdown. */
size_t rf_php_memory_peak(void);

/* What php-fpm's access log reads from the SAPI (fpm_log.c), for the same
 * moment (script_done): meaningful only while a request runs.
 *   rf_php_response_status: SG(sapi_headers).http_response_code (%s);
 *   rf_php_response_header: %{name}o — the value of the first header set so
 *     far whose line is "name: value" (case-sensitive, php-fpm's match; the
 *     default Content-type only counts once headers were sent), or NULL;
 *   rf_php_request_param: %{name}e — the request's FastCGI param as PHP sees
 *     it after cgi.fix_pathinfo, or NULL when not set.
 * The strings are valid until the request ends. */
int rf_php_response_status(void);
const char *rf_php_response_header(const char *name);
const char *rf_php_request_param(const char *name);

/*
 * fpm_get_status(). PHP's array is built by a status source the process
 * manager registers (rf_php_set_status_source); this file knows only the
 * "procs" key. The source adds the pool's keys in order with
 * rf_php_status_long / _str / _double, then for each process calls
 * rf_php_status_proc() and adds that process's keys the same way. It
 * returns 0, or < 0 to make fpm_get_status() return false (php-fpm: the
 * scoreboard is busy). With no source fpm_get_status() returns false.
 */
typedef struct rf_php_status_out rf_php_status_out_t;
typedef int (*rf_php_status_fn)(void *ctx, rf_php_status_out_t *out);

/* Register (or with fn NULL remove) the status source; ctx is passed back. */
void rf_php_set_status_source(rf_php_status_fn fn, void *ctx);

void rf_php_status_long(rf_php_status_out_t *out, const char *key, long long value);
void rf_php_status_str(rf_php_status_out_t *out, const char *key, const char *value);
void rf_php_status_double(rf_php_status_out_t *out, const char *key, double value);
/* Start the next element of "procs": the keys that follow go into it. */
void rf_php_status_proc(rf_php_status_out_t *out);

/* The running script's call stack, innermost first, one line per frame as
 * php-fpm's slowlog prints it: "[0xADDR] function() /path/file.php:LINE".
 * Meant for another thread of the executor (the slowlog watcher) while this
 * process's main thread is inside rf_php_execute: the frames are read
 * without locks, as php-fpm's master reads them with ptrace, so a frame
 * that changes under the read can give a stale name or line (never a
 * write). Returns the bytes written to buf (NUL-terminated). */
size_t rf_php_trace(char *buf, size_t cap, int max_depth);

#ifdef __cplusplus
}
#endif

#endif /* RF_PHP_H */
