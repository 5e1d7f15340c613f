/*
 * rf_main: the ringfpm command: php-fpm's command line, exit codes and
 * startup/shutdown log lines, the configuration, the log, the pid file, and
 * the main thread's signal loop (signals are taken synchronously with
 * sigtimedwait: no handler runs in an arbitrary context). The responder
 * threads do the serving; in this build every pool is answered by the
 * built-in handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rf_conf.h"
#include "rf_config.h"
#include "rf_ids.h"
#include "rf_io.h"
#include "rf_log.h"
#include "rf_pm.h"
#include "rf_proctitle.h"
#include "rf_reload.h"

#define RF_EX_OK       0
#define RF_EX_USAGE    64
#define RF_EX_SOFTWARE 70
#define RF_EX_CONFIG   78

#define RF_DEFAULT_CONF "/etc/php/8.2/fpm/php-fpm.conf"

typedef struct rf_opts {
    const char *php_ini; /* -c */
    int no_php_ini;      /* -n */
    char **defines;      /* -d */
    size_t ndefines;
    const char *conf;
    const char *prefix;
    const char *pid;
    int test;
    int force_daemon;
    int force_foreground;
    int force_stderr;
    int allow_root; /* -R */
    int info;       /* -i */
} rf_opts_t;

static void rf_usage(FILE *f, const char *argv0)
{
    const char *prog = strrchr(argv0, '/') ? strrchr(argv0, '/') + 1 : "ringfpm";
    fprintf(f,
            "Usage: %s [-n] [-e] [-h] [-i] [-m] [-v] [-t] [-p <prefix>] [-g <pid>] [-c <file>] "
            "[-d foo[=bar]] [-y <file>] [-D] [-F [-O]]\n"
            "  -c <path>|<file> Look for php.ini file in this directory\n"
            "  -n               No php.ini file will be used\n"
            "  -d foo[=bar]     Define INI entry foo with value 'bar'\n"
            "  -e               Generate extended information for debugger/profiler\n"
            "  -h               This help\n"
            "  -i               PHP information\n"
            "  -m               Show compiled in modules\n"
            "  -v               Version number\n"
            "  -p, --prefix <dir>\n"
            "                   Specify alternative prefix path to FastCGI process manager "
            "(default: /usr).\n"
            "  -g, --pid <file>\n"
            "                   Specify the PID file location.\n"
            "  -y, --fpm-config <file>\n"
            "                   Specify alternative path to FastCGI process manager config file.\n"
            "  -t, --test       Test FPM configuration and exit\n"
            "  -D, --daemonize  force to run in background, and ignore daemonize option from "
            "config file\n"
            "  -F, --nodaemonize\n"
            "                   force to stay in foreground, and ignore daemonize option from "
            "config file\n"
            "  -O, --force-stderr\n"
            "                   force output to stderr in nodaemonize even if stderr is not a "
            "TTY\n"
            "  -R, --allow-to-run-as-root\n"
            "                   Allow pool to run as root (disabled by default)\n",
            prog);
}

/* PHP's start-up options from -c, -n and -d. */
static void rf_main_php_opts(const rf_opts_t *o, rf_php_opts_t *php)
{
    memset(php, 0, sizeof(*php));
    php->ini_path = o->php_ini;
    php->no_ini = o->no_php_ini;
    php->defines = (const char *const *)o->defines;
    php->ndefines = o->ndefines;
}

/* -m and -i: start PHP as the executors get it and print what php-fpm
 * prints. php-fpm acts on -m as soon as it reads it (only the -c/-n/-d
 * before it count) and on -i after the whole command line. */
static int rf_main_php_print(const rf_opts_t *o, int what)
{
    rf_php_opts_t php;
    rf_main_php_opts(o, &php);
    if (rf_php_startup(&php) < 0)
        return RF_EX_SOFTWARE;
    int rc = what == 'm' ? rf_php_print_modules() : rf_php_print_info();
    rf_php_shutdown();
    return rc < 0 ? RF_EX_SOFTWARE : RF_EX_OK;
}

/*
 * fpm_unix_conf_wp, at start-up (-t does not get here). As root, the user
 * and group of every pool must resolve, and a PHP pool must not run as
 * root (uid or gid 0, or unset) unless -R. Not root, a pool's user, group,
 * chroot and process.priority are ignored, with php-fpm's notices. Returns
 * 0, or -1 once the reason is logged.
 */
static int rf_main_check_users(const rf_conf_t *conf, int allow_root)
{
    int root = geteuid() == 0;
    for (int i = 0; i < conf->npools; i++) {
        const rf_conf_pool_t *p = &conf->pools[i];
        if (!root) {
            static const char *const what[] = {"user", "group", "chroot"};
            const char *const vals[] = {p->user, p->group, p->chroot};
            for (int k = 0; k < 3; k++)
                if (vals[k] && *vals[k])
                    rf_log(RF_LOG_NOTICE,
                           "[pool %s] '%s' directive is ignored when FPM is not running as root",
                           p->name, what[k]);
            if (p->process_priority != RF_CONF_PRIORITY_UNSET)
                rf_log(RF_LOG_NOTICE,
                       "[pool %s] 'process.priority' directive is ignored when FPM is not running "
                       "as root",
                       p->name);
            continue;
        }
        uid_t uid = (uid_t)-1;
        gid_t gid = (gid_t)-1;
        const char *failed = NULL;
        if (rf_ids_lookup(p->user, p->group, &uid, &gid, &failed) < 0) {
            int user = failed[0] == 'u';
            rf_log(RF_LOG_ERROR, "[pool %s] cannot get %s for %s '%s'", p->name,
                   user ? "uid" : "gid", failed, user ? p->user : p->group);
            return -1;
        }
        /* unset counts as root, as php-fpm's zeroed set_uid / set_gid */
        if (!allow_root && p->executor_type == RF_EXEC_PHP &&
            (uid == 0 || uid == (uid_t)-1 || gid == 0 || gid == (gid_t)-1)) {
            rf_log(RF_LOG_ERROR, "[pool %s] please specify user and group other than root",
                   p->name);
            return -1;
        }
    }
    return 0;
}

/* The master's rlimit_core (before daemonizing, as php-fpm). */
static int rf_main_rlimit_core(long want)
{
    if (want == 0)
        return 0;
    struct rlimit r;
    r.rlim_cur = r.rlim_max = want < 0 ? RLIM_INFINITY : (rlim_t)want;
    if (setrlimit(RLIMIT_CORE, &r) < 0) {
        rf_log(RF_LOG_ERROR,
               "failed to set rlimit_core for this pool. Please check your system limits or "
               "decrease rlimit_core. setrlimit(RLIMIT_CORE, %ld): %s (%d)",
               want, strerror(errno), errno);
        return -1;
    }
    return 0;
}

/* The master's process.priority (after daemonizing, as php-fpm): its
 * executors and responder inherit it unless a pool sets its own. */
static int rf_main_priority(long prio)
{
    if (prio == RF_CONF_PRIORITY_UNSET)
        return 0;
    if (geteuid() != 0) {
        rf_log(RF_LOG_NOTICE,
               "'process.priority' directive is ignored when FPM is not running as root");
        return 0;
    }
    if (setpriority(PRIO_PROCESS, 0, (int)prio) < 0) {
        rf_log(RF_LOG_ERROR, "Unable to set priority for the master process: %s (%d)",
               strerror(errno), errno);
        return -1;
    }
    return 0;
}

static void rf_dump_line(void *ctx, const char *line)
{
    rf_log(RF_LOG_NOTICE, "%s", line);
}

/* The descriptor a path names when it is one we inherited
 * (/proc/self/fd/N, /dev/fd/N, /dev/stderr, /dev/stdout), else -1. */
static int rf_inherited_fd(const char *path)
{
    if (strcmp(path, "/dev/stderr") == 0)
        return 2;
    if (strcmp(path, "/dev/stdout") == 0)
        return 1;
    const char *n = NULL;
    if (strncmp(path, "/proc/self/fd/", 14) == 0)
        n = path + 14;
    else if (strncmp(path, "/dev/fd/", 8) == 0)
        n = path + 8;
    if (n == NULL || *n < '0' || *n > '9')
        return -1;
    char *end;
    long fd = strtol(n, &end, 10);
    return *end == '\0' && fd >= 0 && fd < 1024 ? (int)fd : -1;
}

static int rf_open_log(const rf_conf_t *conf, const rf_opts_t *o, int foreground)
{
    rf_log_set_limit((int)conf->log_limit);
    rf_log_set_buffering(conf->log_buffering);
    const char *path = conf->error_log;
    if (conf->file == NULL && path == NULL)
        return 0; /* built-in default: stderr */
    if (path == NULL)
        path = "/var/log/php-fpm.log"; /* php-fpm's default, log/php-fpm.log under /var */
    /* -F -O: the log goes to stderr, whatever error_log says. */
    if (foreground && o->force_stderr)
        return 0;
    if (strcasecmp(path, "syslog") == 0) {
        /* php-fpm: openlog(ident, LOG_PID | LOG_CONS, facility) */
        int rc = rf_log_open_syslog(conf->syslog_ident, conf->syslog_facility, NULL);
        if (rc < 0)
            rf_log(RF_LOG_ERROR, "failed to open syslog: %s (%d)", strerror(-rc), -rc);
        return rc;
    }
    char full[4096];
    if (path[0] != '/') {
        snprintf(full, sizeof(full), "%s/%s", o->prefix ? o->prefix : "/var", path);
        path = full;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    int inherited = rf_inherited_fd(path);
    if (fd < 0 && inherited >= 0) {
        /* /proc/self/fd/2 cannot be opened when stderr is a socket (the
         * journal: ENXIO) or a file we may not open again: use the
         * descriptor we already have. */
        fd = fcntl(inherited, F_DUPFD_CLOEXEC, 3);
    }
    if (fd < 0) {
        rf_log(RF_LOG_ERROR, "failed to open error_log (%s): %s (%d)", path, strerror(errno),
               errno);
        return -errno;
    }
    /* Re-opened (SIGUSR1): the new file takes the old descriptor's number,
     * as php-fpm's dup2, so a thread logging meanwhile never writes to a
     * closed or reused descriptor. */
    int old = rf_log_get_fd();
    if (old > 2 && dup3(fd, old, O_CLOEXEC) == old) {
        close(fd);
        fd = old;
    }
    rf_log_set_fd(fd);
    return 0;
}

static void rf_raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    if (want > 0) {
        rl.rlim_cur = (rlim_t)want;
        if (rl.rlim_max < rl.rlim_cur)
            rl.rlim_max = rl.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            rf_log(RF_LOG_WARNING, "failed to set rlimit_files to %ld: %s", want, strerror(errno));
        return;
    }
    /* The responder holds one fd per client connection: use what we may. */
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static int rf_write_pid(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rf_log(RF_LOG_ERROR, "Unable to create the PID file (%s).: %s (%d)", path, strerror(errno),
               errno);
        return -errno;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d", (int)getpid());
    ssize_t w = write(fd, buf, (size_t)n);
    close(fd);
    return w == n ? 0 : -EIO;
}

/* Fork to the background; the parent waits for the child's "ready" byte and
 * exits 0, or 70 when it does not come (php-fpm's -D contract). */
static int rf_daemonize(int *notify_fd)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        close(pfd[1]);
        char ok = 0;
        ssize_t n;
        do {
            n = read(pfd[0], &ok, 1);
        } while (n < 0 && errno == EINTR);
        _exit(n == 1 && ok == 1 ? RF_EX_OK : RF_EX_SOFTWARE);
    }
    close(pfd[0]);
    setsid();
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        close(null);
    }
    *notify_fd = pfd[1];
    return 0;
}

/* SIGUSR1 in the master: reopen error_log. */
static struct {
    const rf_conf_t *conf;
    const rf_opts_t *o;
    int foreground;
} rf_main_log_ctx;

static void rf_main_reopen_logs(void)
{
    if (rf_main_log_ctx.conf)
        rf_open_log(rf_main_log_ctx.conf, rf_main_log_ctx.o, rf_main_log_ctx.foreground);
}

static void rf_build_io(const rf_conf_t *conf, rf_io_conf_t *io, rf_io_pool_t *pools)
{
    struct rlimit rl;
    uint32_t max_conns = (uint32_t)conf->max_connections;
    if (max_conns == 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        max_conns =
            rl.rlim_cur > 64 && rl.rlim_cur < UINT32_MAX ? (uint32_t)rl.rlim_cur - 64 : 1024;
    }
    memset(io, 0, sizeof(*io));
    io->threads = conf->threads;
    /* A responder thread serves a pool only with executors of its own, so
     * there are never more threads than a PHP pool may have executors. */
    rf_io_conf_t probe;
    memset(&probe, 0, sizeof(probe));
    probe.threads = conf->threads;
    int nthreads = rf_io_thread_count(&probe);
    for (int i = 0; i < conf->npools; i++) {
        const rf_conf_pool_t *p = &conf->pools[i];
        if (p->executor_type == RF_EXEC_PHP && p->pm_max_children > 0 &&
            p->pm_max_children < nthreads) {
            rf_log(RF_LOG_NOTICE,
                   "[pool %s] pm.max_children = %ld: using %ld responder thread%s instead of %d",
                   p->name, p->pm_max_children, p->pm_max_children,
                   p->pm_max_children == 1 ? "" : "s", nthreads);
            nthreads = (int)p->pm_max_children;
        }
    }
    io->threads = nthreads;
    io->cpu_list = conf->cpu_list;
    io->ncpu = conf->ncpu;
    io->backend = conf->backend;
    io->max_connections = (uint32_t)conf->max_connections;
    io->idle_timeout_ms = (uint32_t)conf->idle_timeout_ms;
    io->ring_entries = (uint32_t)conf->ring_entries;
    io->rbuf_count = (uint32_t)conf->recv_buffers;
    io->rbuf_size = (uint32_t)conf->recv_buffer_size;
    io->pools = pools;
    io->npools = conf->npools;
    for (int i = 0; i < conf->npools; i++) {
        const rf_conf_pool_t *p = &conf->pools[i];
        rf_io_pool_t *q = &pools[i];
        memset(q, 0, sizeof(*q));
        q->name = p->name;
        q->listen = p->listen;
        q->backlog = (int)p->listen_backlog;
        q->listen_mode = (int)p->listen_mode;
        q->listen_acl_users = p->listen_acl_users;
        q->listen_acl_groups = p->listen_acl_groups;
        q->listen_owner = p->listen_owner;
        q->listen_group = p->listen_group;
        q->allowed_clients = p->listen_allowed_clients;
        q->ping_path = p->ping_path;
        q->ping_response = p->ping_response;
        q->status_path = p->pm_status_path;
        q->read_timeout_ms = (uint32_t)p->read_timeout_ms;
        q->handler = p->executor_type == RF_EXEC_BUILTIN ? &rf_builtin_handler : NULL;
        q->pm = p->pm;
        q->max_children = (uint32_t)p->pm_max_children;
        q->min_spare = (uint32_t)p->pm_min_spare_servers;
        q->max_spare = (uint32_t)p->pm_max_spare_servers;
        q->max_spawn_rate = (uint32_t)p->pm_max_spawn_rate;
        q->idle_timeout_ms = (uint32_t)(p->pm_process_idle_timeout * 1000);
        q->queue_max = (uint32_t)p->queue_max;
        q->queue_timeout_ms = (uint32_t)p->queue_timeout_ms;
        q->terminate_ms = (uint32_t)(p->request_terminate_timeout * 1000);
        q->slowlog_ms = p->slowlog ? (uint32_t)(p->request_slowlog_timeout * 1000) : 0;
        q->overload_fcgi = p->overload_fcgi;
        q->track_finished = p->request_terminate_timeout_track_finished;
        /* The request ring holds a whole params block (request.max_params_bytes). */
        uint32_t ring = 256u << 10;
        while (ring < (uint64_t)p->max_params_bytes + (64u << 10) && ring < (1u << 30))
            ring <<= 1;
        q->chan_ring_size = ring;
        q->limits.max_params_bytes = (uint32_t)p->max_params_bytes;
        q->limits.max_params = (uint32_t)p->max_params;
        q->limits.max_multiplex = (uint32_t)p->max_multiplex;
        q->limits.max_per_connection = (uint32_t)p->max_per_connection;
        q->limits.buffer_memory = (uint64_t)p->buffer_memory;
        q->limits.max_body = (uint64_t)p->max_body;
        q->limits.max_conns = max_conns;
        uint64_t reqs = (uint64_t)max_conns * (uint64_t)p->max_multiplex;
        q->limits.max_reqs = reqs > UINT32_MAX ? UINT32_MAX : (uint32_t)reqs;
    }
    /* pm.status_listen: a listener of its own, with the pool's socket
     * settings, that answers the pool's status (pm.status_path, "/" when
     * unset) and ping, so monitoring gets through when every executor is
     * busy (php-fpm's hidden "<pool>_status" pool). */
    int k = conf->npools;
    for (int i = 0; i < conf->npools; i++) {
        const rf_conf_pool_t *p = &conf->pools[i];
        if (p->pm_status_listen == NULL || p->pm_status_listen[0] == '\0')
            continue;
        rf_io_pool_t *q = &pools[k++];
        *q = pools[i]; /* its name too: log lines name the pool */
        q->listen = p->pm_status_listen;
        q->status_path = p->pm_status_path ? p->pm_status_path : "/";
        q->handler = &rf_status_only_handler;
        q->status_of = i + 1;
    }
    io->npools = k;
}

/* A reload's handoff (pm/rf_reload.h): its descriptor, taken out of the
 * environment so no executor sees it; -1 when this is a plain start. */
static int rf_take_handoff(void)
{
    const char *v = getenv(RF_HANDOFF_ENV);
    int fd = -1;
    if (v) {
        char *end;
        long n = strtol(v, &end, 10);
        fd = *end == '\0' && n >= 0 && n < INT32_MAX ? (int)n : -1;
        unsetenv(RF_HANDOFF_ENV);
        if (fd >= 0)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    return fd;
}

int main(int argc, char **argv)
{
    rf_proctitle_init(argc, argv);
    /* For a reload the master executes itself again, as it was started:
     * the program's path now and argv before getopt reorders it. */
    static char exe[4096];
    ssize_t exe_len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[exe_len > 0 ? exe_len : 0] = '\0';
    /* static: it lives as long as the process (no leak on an early exit) */
    static char **saved_argv;
    saved_argv = calloc((size_t)argc + 1, sizeof(*saved_argv));
    if (saved_argv)
        memcpy(saved_argv, argv, (size_t)argc * sizeof(*argv));
    int handoff_fd = rf_take_handoff();
    static const struct option longopts[] = {
        {"fpm-config", required_argument, NULL, 'y'},
        {"prefix", required_argument, NULL, 'p'},
        {"pid", required_argument, NULL, 'g'},
        {"test", no_argument, NULL, 't'},
        {"daemonize", no_argument, NULL, 'D'},
        {"nodaemonize", no_argument, NULL, 'F'},
        {"force-stderr", no_argument, NULL, 'O'},
        {"allow-to-run-as-root", no_argument, NULL, 'R'},
        {"php-ini", required_argument, NULL, 'c'},
        {"no-php-ini", no_argument, NULL, 'n'},
        {"define", required_argument, NULL, 'd'},
        {"profile-info", no_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {"usage", no_argument, NULL, 'h'},
        {"info", no_argument, NULL, 'i'},
        {"modules", no_argument, NULL, 'm'},
        {"version", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    rf_opts_t o;
    memset(&o, 0, sizeof(o));
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "y:p:g:tDFORc:nd:ehimv?", longopts, NULL)) != -1) {
        switch (c) {
        case 'y':
            o.conf = optarg;
            break;
        case 'p':
            o.prefix = optarg;
            break;
        case 'g':
            o.pid = optarg;
            break;
        case 't':
            o.test++;
            break;
        case 'D':
            o.force_daemon = 1;
            break;
        case 'F':
            o.force_foreground = 1;
            break;
        case 'O':
            o.force_stderr = 1;
            break;
        case 'c':
            o.php_ini = optarg;
            break;
        case 'n':
            o.no_php_ini = 1;
            break;
        case 'd': {
            char **nd = realloc(o.defines, (o.ndefines + 1) * sizeof(*nd));
            if (nd == NULL)
                return RF_EX_SOFTWARE;
            o.defines = nd;
            o.defines[o.ndefines++] = optarg;
            break;
        }
        case 'R':
            o.allow_root = 1;
            break;
        case 'e':
            break;
        case 'h':
            rf_usage(stdout, argv[0]);
            return RF_EX_OK;
        case 'v':
            printf("ringfpm %s (fpm-fcgi) with PHP %s\n"
                   "A FastCGI process manager for PHP, compatible with php-fpm\n",
                   RF_VERSION, rf_php_version());
            return RF_EX_OK;
        case 'm':
            return rf_main_php_print(&o, 'm');
        case 'i':
            o.info = 1;
            break;
        default:
            rf_usage(stderr, argv[0]);
            return RF_EX_USAGE;
        }
    }
    if (o.info) /* before the positional check, as php-fpm */
        return rf_main_php_print(&o, 'i');
    if (optind < argc) {
        rf_usage(stderr, argv[0]);
        return RF_EX_USAGE;
    }
    if (o.prefix) {
        struct stat st;
        if (stat(o.prefix, &st) < 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "ERROR: the global prefix '%s' does not exist or is not a directory\n",
                    o.prefix);
            return RF_EX_CONFIG;
        }
    }

    /* php-fpm's default path when -y is not given; the built-in default
     * only when there is no configuration file at all. */
    const char *path = o.conf;
    char prefixed[4096];
    if (path == NULL) {
        if (o.prefix) {
            snprintf(prefixed, sizeof(prefixed), "%s/etc/php-fpm.conf", o.prefix);
            path = prefixed;
        } else {
            path = RF_DEFAULT_CONF;
        }
        if (access(path, F_OK) != 0) {
            rf_log(RF_LOG_NOTICE,
                   "no configuration file at %s: using the built-in default (127.0.0.1:9000)",
                   path);
            path = NULL;
        }
    }

    rf_conf_t conf;
    char err[1024];
    if (rf_conf_load(&conf, path, o.prefix, o.allow_root ? RF_CONF_ALLOW_ROOT : 0, err,
                     sizeof(err)) < 0) {
        rf_log(RF_LOG_ERROR, "%s", err);
        rf_log(RF_LOG_ERROR, "FPM initialization failed");
        rf_conf_free(&conf);
        return RF_EX_CONFIG;
    }
    /* php-fpm refuses a pool without a process manager (for -t too); a
     * pool the responder answers itself needs none. */
    for (int i = 0; i < conf.npools; i++)
        if (conf.pools[i].executor_type == RF_EXEC_PHP && conf.pools[i].pm == RF_PM_NONE) {
            rf_log(RF_LOG_ALERT,
                   "[pool %s] the process manager is missing (static, dynamic or ondemand)",
                   conf.pools[i].name);
            rf_log(RF_LOG_ERROR, "FPM initialization failed");
            rf_conf_free(&conf);
            return RF_EX_CONFIG;
        }
    rf_log_set_level(conf.log_level);
    if (o.test) {
        if (o.test > 1)
            rf_conf_dump(&conf, rf_dump_line, NULL);
        rf_log(RF_LOG_NOTICE, "configuration file %s test is successful",
               path ? path : "(built-in default)");
        rf_conf_free(&conf);
        return RF_EX_OK;
    }

    int daemon = o.force_daemon || (conf.daemonize && !o.force_foreground);
    int notify_fd = -1;
    if (rf_open_log(&conf, &o, !daemon) < 0) {
        rf_log(RF_LOG_ERROR, "FPM initialization failed");
        return RF_EX_SOFTWARE;
    }
    if (rf_main_check_users(&conf, o.allow_root) < 0 || rf_main_rlimit_core(conf.rlimit_core) < 0) {
        rf_log(RF_LOG_ERROR, "FPM initialization failed");
        rf_conf_free(&conf);
        return RF_EX_CONFIG;
    }
    rf_raise_nofile(conf.rlimit_files);
    signal(SIGPIPE, SIG_IGN);

    /* A reload's image is the master already in the background: forking
     * again would orphan the responder and executors. */
    if (daemon && handoff_fd < 0 && rf_daemonize(&notify_fd) < 0) {
        rf_log(RF_LOG_ERROR, "failed to daemonize: %s", strerror(errno));
        return RF_EX_SOFTWARE;
    }
    if (rf_main_priority(conf.process_priority) < 0) {
        rf_log(RF_LOG_ERROR, "FPM initialization failed");
        return RF_EX_CONFIG;
    }
    const char *pidfile = conf.pid ? conf.pid : o.pid; /* config wins, as in php-fpm */
    char pidfull[4096];
    if (pidfile && pidfile[0] != '/') {
        snprintf(pidfull, sizeof(pidfull), "%s/%s", o.prefix ? o.prefix : "/var", pidfile);
        pidfile = pidfull;
    }
    if (pidfile && rf_write_pid(pidfile) < 0)
        return RF_EX_SOFTWARE;

    rf_conf_warn_ignored(&conf);
    /* room for a pm.status_listen listener per pool */
    rf_io_pool_t *pools = calloc((size_t)conf.npools * 2, sizeof(*pools));
    if (pools == NULL)
        return RF_EX_SOFTWARE;
    rf_io_conf_t ioc;
    rf_build_io(&conf, &ioc, pools);
    rf_main_log_ctx.conf = &conf;
    rf_main_log_ctx.o = &o;
    rf_main_log_ctx.foreground = !daemon;
    rf_php_opts_t php;
    rf_main_php_opts(&o, &php);
    rf_pm_args_t pa = {
        .conf = &conf,
        .io = &ioc,
        .php = &php,
        .notify_fd = notify_fd,
        .pidfile = pidfile,
        .conf_path = path,
        .reopen_logs = rf_main_reopen_logs,
        .exe = exe[0] && saved_argv ? exe : NULL,
        .argv = saved_argv,
        .handoff_fd = handoff_fd,
    };
    int rc = rf_pm_main(&pa);
    if (pidfile)
        unlink(pidfile);
    if (rc == 0)
        rf_log(RF_LOG_NOTICE, "exiting, bye-bye!");
    free(pools);
    rf_conf_free(&conf);
    free(o.defines);
    free(saved_argv);
    saved_argv = NULL;
    return rc;
}