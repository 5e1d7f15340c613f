/*
 * rf_pm: the master process: responder and executor processes, their
 * lifecycle and the signals (see rf_pm.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rf_board.h"
#include "rf_chan.h"
#include "rf_ctl.h"
#include "rf_exec.h"
#include "rf_exec_setup.h"
#include "rf_fpm_sockets.h"
#include "rf_ids.h"
#include "rf_log.h"
#include "rf_pm.h"
#include "rf_proctitle.h"
#include "rf_reload.h"
#include "rf_sdnotify.h"

typedef struct rf_pm_exec {
    uint32_t id;
    int pid;
    int pool;
    int thread;
    uint64_t started_ns;
    int retiring;
    int old;      /* of a generation a reload replaced (not counted in live) */
    uint32_t gen; /* the generation it was started in */
    int slot;     /* its process slot on the scoreboard, -1 = none */
    /* catch_workers_output: the read ends of its stdout and stderr pipes
     * (non-blocking, -1 once closed) and the lines being built from them;
     * both drained and closed when it is reaped. */
    int out_fd, err_fd;
    rf_log_stream_t *said;
} rf_pm_exec_t;

typedef struct rf_pm_pool {
    uint32_t live;              /* executors running */
    uint32_t fast_fails;        /* consecutive executors that died young */
    uint64_t respawn_at_ns;     /* static: respawn not before */
    uint32_t respawn_due;       /* static: executors owed */
    uint64_t last_maxed_log_ns; /* "server reached pm.max_children" rate limit */
} rf_pm_pool_t;

typedef struct rf_pm {
    const rf_pm_args_t *a;
    const rf_conf_t *conf;
    int nthreads;
    int *ctl;      /* master ends, per responder thread */
    int *ctl_peer; /* responder ends (closed in the master once forked) */
    int responder;
    int sfd;
    rf_pm_exec_t *xs;
    size_t nxs, cap;
    uint32_t next_id;
    uint32_t *thread_load; /* executors per responder thread */
    rf_pm_pool_t *pools;
    rf_board_t *board; /* shared with the responder and every executor */
    int stopping;
    int finishing; /* SIGQUIT: the responder drains, executors still serve */
    pid_t master;
    uint32_t gen;             /* executors started now belong to it: 1, +1 per reload */
    int php_down;             /* a reload's PHP start failed: no executor can start */
    uint64_t old_deadline_ns; /* old generation killed then (process_control_timeout) */
    int process_max_warned;   /* "The maximum number of processes..." logged */
    uint64_t *faults;         /* emergency_restart_*: recent SIGSEGV/SIGBUS deaths */
    size_t nfaults;
    int reload_due; /* emergency_restart_threshold reached */
    /* systemd_interval: the next STATUS= (and WATCHDOG=1) heartbeat */
    uint64_t beat_ns, next_beat_ns, beat_requests;
    int watchdog;
    /* The listening sockets, held for the next responder (a reload that
     * restarts it, rf_fpm_sockets.h): the responder's, or inherited. */
    int *lfds;
    int nlfds;
} rf_pm_t;

static volatile sig_atomic_t rf_exec_stop;

static uint64_t rf_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int rf_pidfd_open(int pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    errno = ENOSYS;
    return -1;
#endif
}

static int rf_pool_is_php(const rf_conf_pool_t *p)
{
    return p->executor_type == RF_EXEC_PHP;
}

/* How long a graceful stop (SIGQUIT) lets the responder finish the
 * requests it has: process_control_timeout, or 30 s when that is 0 (php-fpm
 * would then cut them at once; 30 s is the QUIT step of Debian's init
 * script, after which it sends TERM anyway). */
static uint64_t rf_pm_finish_ns(const rf_conf_t *conf)
{
    long s = conf->process_control_timeout > 0 ? conf->process_control_timeout : 30;
    return (uint64_t)s * 1000000000u;
}

/* ---- executors -------------------------------------------------------------- */

/*
 * SIGUSR1 after a rotation renamed the access logs away. php-fpm's master
 * opens them anew as root and recycles its workers; executors here reopen
 * the path themselves once they see it names another file (checked at most
 * once a second), but as the pool's user, who often may not create files
 * where logs live. So the master creates each missing file for them, mode
 * 0600, owned by the pool's user and group. An existing file is left alone.
 */
static void rf_pm_reopen_access_logs(const rf_pm_t *pm)
{
    for (int i = 0; i < pm->conf->npools; i++) {
        const rf_conf_pool_t *p = &pm->conf->pools[i];
        if (!rf_pool_is_php(p) || !p->access_log || !p->access_log[0] ||
            (p->chroot && p->chroot[0]))
            continue;
        const char *path = p->access_log; /* absolute: rf_conf resolved it */
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            if (errno != EEXIST)
                rf_log(RF_LOG_ERROR, "[pool %s] failed to open access log (%s): %s (%d)", p->name,
                       path, strerror(errno), errno);
            continue;
        }
        uid_t uid;
        gid_t gid;
        const char *failed = NULL;
        if (geteuid() == 0 && rf_ids_lookup(p->user, p->group, &uid, &gid, &failed) == 0 &&
            (uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)
            rf_log(RF_LOG_ERROR, "[pool %s] failed to chown() the access log (%s): %s (%d)",
                   p->name, path, strerror(errno), errno);
        close(fd);
    }
}

static void rf_exec_on_quit(int sig)
{
    (void)sig;
    rf_exec_stop = 1;
}

/* In the forked executor: never returns. */
static void rf_pm_exec_child(rf_pm_t *pm, int pool, unsigned index, rf_chan_t *ch, int body_sock,
                             uint64_t max_requests, int slot)
{
    const rf_conf_pool_t *p = &pm->conf->pools[pool];
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != pm->master)
        _exit(1); /* the master died between fork and prctl */
    for (int i = 0; i < pm->nthreads; i++)
        close(pm->ctl[i]);
    for (int i = 0; i < pm->nlfds; i++)
        close(pm->lfds[i]);
    close(pm->sfd);
    rf_chan_close_fd(ch);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    int dfl[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP, SIGCHLD};
    for (size_t i = 0; i < sizeof(dfl) / sizeof(dfl[0]); i++)
        sigaction(dfl[i], &sa, NULL);
    sa.sa_handler = rf_exec_on_quit; /* SIGQUIT: finish the request, then exit */
    sigaction(SIGQUIT, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (!p->catch_workers_output) {
        /* php-fpm: a child's stdout/stderr go nowhere unless caught. */
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
            close(null);
        }
    }
    int slow_fd = -1;
    if (p->request_slowlog_timeout > 0 && p->slowlog) {
        /* Opened before the pool's user is taken, like php-fpm's master;
         * the path is absolute (rf_conf resolved it under the prefix). */
        const char *s = p->slowlog;
        slow_fd = open(s, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (slow_fd < 0)
            rf_log(RF_LOG_ERROR, "[pool %s] cannot open slowlog '%s': %s (%d)", p->name, s,
                   strerror(errno), errno);
    }
    /* access.log: opened here, still privileged, as php-fpm's master does. */
    const char *acc_path = p->access_log; /* absolute: rf_conf resolved it */
    int acc_fd = -1;
    const char **acc_sup = NULL;
    size_t acc_nsup = 0;
    if (p->access_log && p->access_log[0]) {
        acc_fd = open(acc_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (acc_fd < 0)
            rf_log(RF_LOG_ERROR, "[pool %s] failed to open access log (%s): %s (%d)", p->name,
                   acc_path, strerror(errno), errno);
        acc_sup = calloc(p->nkv + 1, sizeof(*acc_sup));
        for (size_t i = 0; acc_sup && i < p->nkv; i++)
            if (p->kv[i].kind == RF_KV_SUPPRESS_PATH)
                acc_sup[acc_nsup++] = p->kv[i].value;
    }
    char err[512];
    if (rf_exec_setup(pm->conf, p, index, err, sizeof(err)) < 0) {
        rf_log(RF_LOG_ERROR, "%s", err);
        _exit(78);
    }

    rf_exec_opts_t o;
    rf_exec_opts_init(&o);
    o.max_requests = (uint32_t)max_requests;
    o.body_sock = body_sock;
    o.stop = &rf_exec_stop;
    o.slowlog_ms = (uint32_t)(p->request_slowlog_timeout * 1000);
    o.slowlog_fd = slow_fd;
    o.slowlog_depth = (int)p->request_slowlog_trace_depth;
    o.pool_name = p->name;
    o.board = pm->board;
    o.board_pool = pool;
    o.board_slot = slot;
    o.access_fd = acc_fd;
    /* inside a chroot the path names nothing: no reopen */
    o.access_path = p->chroot && p->chroot[0] ? NULL : acc_path;
    o.access_format = p->access_format;
    o.access_suppress = acc_sup;
    o.access_nsuppress = acc_nsup;
    /* php-fpm's %R is its FastCGI peer's IP, "-" on a unix socket */
    o.access_remote_param = p->listen && (strchr(p->listen, ':') != NULL ||
                                          strspn(p->listen, "0123456789") == strlen(p->listen));
    int rc = rf_exec_main(ch, &o);
    _exit(rc == 0 ? 0 : 1);
}

static void rf_pm_close_said(int said[2][2])
{
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++)
            if (said[i][k] >= 0) {
                close(said[i][k]);
                said[i][k] = -1;
            }
}

/*
 * catch_workers_output: what an executor wrote to its stdout (is_stdout)
 * or stderr, logged line by line as php-fpm's fpm_stdio_child_said does.
 * Reads at most `budget` bytes, so a chatty executor cannot hold the loop
 * (the rest waits for the next poll); at EOF the pipe is closed.
 */
static void rf_pm_exec_said(rf_pm_exec_t *x, int is_stdout, size_t budget)
{
    int *fd = is_stdout ? &x->out_fd : &x->err_fd;
    if (*fd < 0 || x->said == NULL)
        return;
    rf_log_stream_event(x->said, is_stdout);
    char buf[4096];
    for (size_t got = 0; got < budget;) {
        ssize_t r = read(*fd, buf, sizeof(buf));
        if (r > 0) {
            rf_log_stream_feed(x->said, buf, (size_t)r);
            got += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        if (r < 0)
            rf_log(RF_LOG_ERROR, "unable to read what child %d said into %s: %s (%d)", x->pid,
                   is_stdout ? "stdout" : "stderr", strerror(errno), errno);
        rf_log_stream_eof(x->said);
        close(*fd);
        *fd = -1;
        return;
    }
}

/* An executor is gone: log all it still had to say, free the pipes. */
static void rf_pm_exec_said_close(rf_pm_exec_t *x)
{
    if (x->said == NULL)
        return;
    rf_pm_exec_said(x, 1, SIZE_MAX);
    rf_pm_exec_said(x, 0, SIZE_MAX);
    if (x->out_fd >= 0)
        close(x->out_fd);
    if (x->err_fd >= 0)
        close(x->err_fd);
    x->out_fd = x->err_fd = -1;
    rf_log_stream_close(x->said);
    free(x->said);
    x->said = NULL;
}

static rf_pm_exec_t *rf_pm_exec_add(rf_pm_t *pm)
{
    if (pm->nxs == pm->cap) {
        size_t ncap = pm->cap ? pm->cap * 2 : 32;
        rf_pm_exec_t *n = realloc(pm->xs, ncap * sizeof(*n));
        if (n == NULL)
            return NULL;
        pm->xs = n;
        pm->cap = ncap;
    }
    return &pm->xs[pm->nxs++];
}

/* The responder thread with the fewest executors of this pool (every
 * thread must get one before any gets a second: a thread serves a pool only
 * with its own executors), ties to the least loaded thread overall. */
static int rf_pm_pick_thread(const rf_pm_t *pm, int pool)
{
    uint32_t *mine = calloc((size_t)pm->nthreads, sizeof(*mine));
    if (mine == NULL)
        return 0;
    for (size_t i = 0; i < pm->nxs; i++)
        if (pm->xs[i].pool == pool && !pm->xs[i].retiring)
            mine[pm->xs[i].thread]++;
    int best = 0;
    for (int i = 1; i < pm->nthreads; i++)
        if (mine[i] < mine[best] ||
            (mine[i] == mine[best] && pm->thread_load[i] < pm->thread_load[best]))
            best = i;
    free(mine);
    return best;
}

/* Fork one executor of pool for responder thread `thread`. */
/*
 * Places of a pool's pm.max_children taken: its executors, and after a
 * reload the old-generation ones still in a request, as the scoreboard shows
 * them (so the limit holds across generations). Idle old ones are not
 * counted: they are retired at once and exit in a few ms.
 */
static uint32_t rf_pm_pool_taken(rf_pm_t *pm, int pool)
{
    uint32_t n = pm->pools[pool].live;
    for (size_t i = 0; i < pm->nxs; i++) {
        const rf_pm_exec_t *x = &pm->xs[i];
        if (!x->old || x->pool != pool)
            continue;
        rf_board_proc_t *sp = x->slot >= 0 ? rf_board_slot(pm->board, pool, x->slot) : NULL;
        uint32_t st = sp ? __atomic_load_n(&sp->state, __ATOMIC_RELAXED) : RF_BOARD_RUNNING;
        n += st != RF_BOARD_IDLE;
    }
    return n;
}

static int rf_pm_spawn(rf_pm_t *pm, int pool, int thread)
{
    const rf_conf_pool_t *p = &pm->conf->pools[pool];
    const rf_io_pool_t *iop = &pm->a->io->pools[pool];
    if (pm->php_down)
        return -EAGAIN; /* the reload that failed to start PHP said why */
    if (pm->conf->process_max > 0 && pm->nxs >= (size_t)pm->conf->process_max) {
        if (!pm->process_max_warned)
            rf_log(RF_LOG_WARNING, "The maximum number of processes has been reached. Please "
                                   "review your configuration and consider raising 'process.max'");
        pm->process_max_warned = 1;
        return -EAGAIN;
    }
    rf_chan_opts_t co;
    memset(&co, 0, sizeof(co));
    co.req_ring_size = iop->chan_ring_size;
    co.resp_ring_size = iop->chan_ring_size;
    co.resp_eventfd = 1;
    co.spin = 64;
    rf_chan_t *ch;
    int rc = rf_chan_create(&co, &ch);
    if (rc < 0) {
        rf_log(RF_LOG_ERROR, "[pool %s] cannot create an executor channel: %s", p->name,
               strerror(-rc));
        return rc;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = -errno;
        rf_chan_destroy(ch);
        return rc;
    }
    uint64_t max_requests = (uint64_t)p->pm_max_requests;
    if (max_requests > 8) {
        /* Jitter, so executors started together do not all restart together. */
        max_requests -= (uint64_t)rand() % (max_requests / 8 + 1);
    }
    /* catch_workers_output: a pipe per stream, as php-fpm's fpm_stdio_prepare_pipes. */
    int said[2][2] = {{-1, -1}, {-1, -1}};
    if (p->catch_workers_output &&
        (pipe2(said[0], O_CLOEXEC) < 0 || pipe2(said[1], O_CLOEXEC) < 0)) {
        rc = -errno;
        rf_log(RF_LOG_ERROR, "[pool %s] failed to prepare the %s pipe: %s (%d)", p->name,
               said[0][0] < 0 ? "stdout" : "stderr", strerror(errno), errno);
        rf_pm_close_said(said);
        close(sv[0]);
        close(sv[1]);
        rf_chan_destroy(ch);
        return rc;
    }
    uint32_t id = ++pm->next_id;
    /* Taken before fork, so the executor finds it ready; freed when reaped. */
    int slot = rf_board_slot_alloc(pm->board, pool, (int64_t)time(NULL));
    if (slot < 0)
        rf_log_debug("[pool %s] no free scoreboard slot: executor not shown in status", p->name);
    int pid = fork();
    if (pid < 0) {
        rc = -errno;
        rf_log(RF_LOG_ERROR, "[pool %s] fork() failed: %s (%d)", p->name, strerror(errno), errno);
        rf_board_slot_free(pm->board, pool, slot);
        rf_pm_close_said(said);
        close(sv[0]);
        close(sv[1]);
        rf_chan_destroy(ch);
        return rc;
    }
    if (pid == 0) {
        close(sv[0]);
        for (size_t i = 0; i < pm->nxs; i++) {
            /* the other executors' pipes are the master's to read */
            if (pm->xs[i].out_fd >= 0)
                close(pm->xs[i].out_fd);
            if (pm->xs[i].err_fd >= 0)
                close(pm->xs[i].err_fd);
        }
        if (said[0][1] >= 0) {
            /* fpm_stdio_child_use_pipes; dup2 leaves 1 and 2 open on exec */
            dup2(said[0][1], 1);
            dup2(said[1][1], 2);
            rf_pm_close_said(said);
        }
        rf_pm_exec_child(pm, pool, (unsigned)(id - 1), ch, sv[1], max_requests, slot);
    }
    /* Before the responder hears of it: the executor writes its slot only
     * once it has a request, so the master is still the slot's one writer. */
    rf_board_slot_set_pid(pm->board, pool, slot, pid);
    close(sv[1]);
    int pidfd = rf_pidfd_open(pid);
    rf_ctl_msg_t m;
    memset(&m, 0, sizeof(m));
    m.type = RF_CTL_EXEC_UP;
    m.pool = (uint32_t)pool;
    m.id = id;
    m.pid = pid;
    m.gen = pm->gen;
    m.arg64 = max_requests;
    int fds[4] = {rf_chan_fd(ch), rf_chan_eventfd(ch), pidfd, sv[0]};
    rc = pidfd < 0 ? -errno : rf_ctl_send(pm->ctl[thread], &m, fds, 4);
    if (pidfd >= 0)
        close(pidfd);
    close(sv[0]);
    rf_chan_destroy(ch);
    rf_pm_exec_t *x = rf_pm_exec_add(pm);
    rf_log_stream_t *ls = said[0][0] >= 0 ? malloc(sizeof(*ls)) : NULL;
    if (x == NULL || (said[0][0] >= 0 && ls == NULL)) {
        kill(pid, SIGKILL);
        rf_board_slot_free(pm->board, pool, slot);
        rf_pm_close_said(said);
        free(ls);
        if (x != NULL)
            pm->nxs--;
        return -ENOMEM;
    }
    x->out_fd = said[0][0];
    x->err_fd = said[1][0];
    x->said = ls;
    if (ls != NULL) {
        close(said[0][1]);
        close(said[1][1]);
        /* never block the master on an executor's pipe */
        fcntl(x->out_fd, F_SETFL, O_NONBLOCK);
        fcntl(x->err_fd, F_SETFL, O_NONBLOCK);
        rf_log_stream_init(ls, p->name, pid, p->decorate_workers_output);
    }
    x->id = id;
    x->pid = pid;
    x->pool = pool;
    x->thread = thread;
    x->started_ns = rf_mono_ns();
    x->retiring = 0;
    x->old = 0;
    x->gen = pm->gen;
    x->slot = slot;
    pm->pools[pool].live++;
    pm->thread_load[thread]++;
    if (rc < 0) {
        rf_log(RF_LOG_ERROR, "[pool %s] cannot hand executor %d to the responder: %s", p->name, pid,
               strerror(-rc));
        kill(pid, SIGKILL);
        x->retiring = 1;
        return rc;
    }
    rf_log(RF_LOG_NOTICE, "[pool %s] child %d started", p->name, pid);
    return 0;
}

/* Tell `thread` that n executors it counts as on their way will not come
 * (no EXEC_UP): the reply to its SPAWN, or to our own COMING. */
static void rf_pm_refuse(rf_pm_t *pm, int pool, int thread, uint32_t n)
{
    rf_ctl_msg_t m;
    memset(&m, 0, sizeof(m));
    m.type = RF_CTL_SPAWN;
    m.pool = (uint32_t)pool;
    m.arg = n;
    rf_ctl_send(pm->ctl[thread], &m, NULL, 0);
}

/*
 * An executor the master starts on its own account (a static pool's
 * replacement): the thread counts it as on its way (RF_CTL_COMING) before
 * it exists, so its spare-executor decisions never double it.
 */
static void rf_pm_spawn_own(rf_pm_t *pm, int pool, int thread)
{
    rf_ctl_msg_t m;
    memset(&m, 0, sizeof(m));
    m.type = RF_CTL_COMING;
    m.pool = (uint32_t)pool;
    m.arg = 1;
    rf_ctl_send(pm->ctl[thread], &m, NULL, 0);
    if (rf_pm_spawn(pm, pool, thread) < 0)
        rf_pm_refuse(pm, pool, thread, 1);
}

/* Executors a pool starts with: static max_children, dynamic start_servers. */
static long rf_pm_initial(const rf_conf_pool_t *p)
{
    if (p->executor_type != RF_EXEC_PHP)
        return 0;
    return p->pm == RF_PM_STATIC    ? p->pm_max_children
           : p->pm == RF_PM_DYNAMIC ? p->pm_start_servers
                                    : 0;
}

static rf_pm_exec_t *rf_pm_find(rf_pm_t *pm, uint32_t id, int pid)
{
    for (size_t i = 0; i < pm->nxs; i++)
        if ((id && pm->xs[i].id == id) || (pid && pm->xs[i].pid == pid))
            return &pm->xs[i];
    return NULL;
}

static void rf_pm_maxed(rf_pm_t *pm, int pool)
{
    const rf_conf_pool_t *p = &pm->conf->pools[pool];
    uint64_t now = rf_mono_ns();
    if (now - pm->pools[pool].last_maxed_log_ns < 1000000000u && pm->pools[pool].last_maxed_log_ns)
        return;
    pm->pools[pool].last_maxed_log_ns = now;
    rf_log(RF_LOG_WARNING,
           "[pool %s] server reached pm.max_children setting (%ld), consider "
           "raising it",
           p->name, p->pm_max_children);
}

static void rf_pm_ctl(rf_pm_t *pm, int thread)
{
    for (;;) {
        rf_ctl_msg_t m;
        int fds[RF_CTL_MAX_FDS], nfds;
        int rc = rf_ctl_recv(pm->ctl[thread], &m, fds, &nfds);
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        if (rc == 0)
            return;
        if (rc < 0) {
            if (rc == -EPROTO)
                continue;
            return; /* the responder is gone: SIGCHLD tells the rest */
        }
        if (m.pool >= (uint32_t)pm->conf->npools)
            continue;
        const rf_conf_pool_t *p = &pm->conf->pools[m.pool];
        if (m.type == RF_CTL_SPAWN) {
            uint32_t live = rf_pm_pool_taken(pm, (int)m.pool);
            uint32_t max = (uint32_t)p->pm_max_children;
            uint32_t grant = live >= max ? 0 : max - live;
            if (grant > m.arg)
                grant = m.arg;
            uint32_t done = 0;
            for (; done < grant && !pm->stopping; done++)
                if (rf_pm_spawn(pm, (int)m.pool, thread) < 0)
                    break;
            if (done < m.arg) {
                if (live + done >= max)
                    rf_pm_maxed(pm, (int)m.pool);
                rf_pm_refuse(pm, (int)m.pool, thread, m.arg - done);
            }
        } else if (m.type == RF_CTL_RETIRE || m.type == RF_CTL_KILL) {
            rf_pm_exec_t *x = rf_pm_find(pm, m.id, 0);
            if (x == NULL || x->pool != (int)m.pool)
                continue;
            x->retiring = 1;
            kill(x->pid, m.type == RF_CTL_KILL ? SIGKILL : SIGTERM);
        }
    }
}

static void rf_pm_describe_exit(int status, char *buf, size_t len)
{
    if (WIFEXITED(status)) {
        snprintf(buf, len, "with code %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *name = sigabbrev_np(sig);
        snprintf(buf, len, "on signal %d (SIG%s%s)", sig, name ? name : "?",
                 WCOREDUMP(status) ? " - core dumped" : "");
    } else {
        snprintf(buf, len, "with status %d", status);
    }
}

/*
 * emergency_restart_threshold executors died of SIGSEGV or SIGBUS within
 * emergency_restart_interval: reload, as php-fpm does (a corrupted opcache
 * is the usual suspect, and a reload starts it afresh).
 */
static void rf_pm_fault(rf_pm_t *pm, uint64_t now)
{
    const rf_conf_t *c = pm->conf;
    if (c->emergency_restart_threshold <= 0 || c->emergency_restart_interval <= 0)
        return;
    uint64_t window = (uint64_t)c->emergency_restart_interval * 1000000000u;
    size_t keep = 0;
    for (size_t i = 0; i < pm->nfaults; i++)
        if (now - pm->faults[i] <= window)
            pm->faults[keep++] = pm->faults[i];
    pm->nfaults = keep;
    uint64_t *n = realloc(pm->faults, (pm->nfaults + 1) * sizeof(*n));
    if (n == NULL)
        return;
    pm->faults = n;
    pm->faults[pm->nfaults++] = now;
    if (pm->nfaults < (size_t)c->emergency_restart_threshold)
        return;
    pm->nfaults = 0;
    rf_log(RF_LOG_WARNING,
           "failed processes threshold (%ld in %ld sec) is reached, initiating reload",
           c->emergency_restart_threshold, c->emergency_restart_interval);
    pm->reload_due = 1;
}

/* Returns 1 when the responder itself died. */
static int rf_pm_reap(rf_pm_t *pm)
{
    int status, pid, responder_died = 0;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        char how[96];
        rf_pm_describe_exit(status, how, sizeof(how));
        if (pid == pm->responder) {
            if (!pm->stopping && !pm->finishing)
                rf_log(RF_LOG_ALERT, "the responder (pid %d) exited %s", pid, how);
            pm->responder = -1;
            responder_died = 1;
            continue;
        }
        rf_pm_exec_t *x = rf_pm_find(pm, 0, pid);
        if (x == NULL)
            continue;
        const rf_conf_pool_t *p = &pm->conf->pools[x->pool];
        rf_pm_exec_said_close(x); /* what it said comes before its exit */
        uint64_t now = rf_mono_ns();
        double age = (double)(now - x->started_ns) / 1e9;
        int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        rf_log(clean || x->retiring || pm->stopping ? RF_LOG_NOTICE : RF_LOG_WARNING,
               "[pool %s] child %d exited %s after %.6f seconds from start", p->name, pid, how,
               age);
        int pool = x->pool, retiring = x->retiring, old = x->old;
        if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS))
            rf_pm_fault(pm, now);
        pm->process_max_warned = 0;
        rf_board_slot_free(pm->board, pool, x->slot);
        if (!old) {
            pm->pools[pool].live--;
            pm->thread_load[x->thread]--;
        }
        *x = pm->xs[--pm->nxs];
        if (pm->stopping || old || p->pm != RF_PM_STATIC)
            continue;
        /* static: keep max_children running; back off when executors die
         * young (a broken php.ini, chroot or user setting), as php-fpm's
         * emergency restart would, without hammering fork. */
        rf_pm_pool_t *pp = &pm->pools[pool];
        if (!clean && !retiring && age < 1.0) {
            pp->fast_fails++;
            uint64_t delay = 10000000ull << (pp->fast_fails > 9 ? 9 : pp->fast_fails);
            if (delay > 5000000000ull)
                delay = 5000000000ull;
            pp->respawn_at_ns = now + delay;
        } else {
            pp->fast_fails = 0;
        }
        pp->respawn_due++;
    }
    return responder_died;
}

static void rf_pm_respawn_due(rf_pm_t *pm)
{
    uint64_t now = rf_mono_ns();
    for (int i = 0; i < pm->conf->npools; i++) {
        rf_pm_pool_t *pp = &pm->pools[i];
        while (pp->respawn_due && now >= pp->respawn_at_ns && !pm->stopping) {
            if (pm->conf->process_max > 0 && pm->nxs >= (size_t)pm->conf->process_max)
                return; /* owed until an executor exits (rf_pm_spawn warned) */
            uint32_t max = (uint32_t)pm->conf->pools[i].pm_max_children;
            if (pp->live < max && rf_pm_pool_taken(pm, i) >= max)
                break; /* owed until an old executor's request ends (a reload) */
            pp->respawn_due--;
            if (pp->live >= max)
                continue;
            rf_pm_spawn_own(pm, i, rf_pm_pick_thread(pm, i));
        }
    }
}

/* ---- the responder process ------------------------------------------------ */

/*
 * The responder needs no root once its sockets are open: it takes the user
 * (and group) of the first pool that names one, so a bug in the code that
 * parses untrusted bytes cannot act as root. Executors of that pool are then
 * its to signal; others it asks the master to stop (RF_CTL_KILL).
 */
static int rf_pm_responder_drop(const rf_conf_t *conf)
{
    if (geteuid() != 0)
        return 0;
    const rf_conf_pool_t *p = NULL;
    for (int i = 0; i < conf->npools && p == NULL; i++)
        if (conf->pools[i].user && *conf->pools[i].user)
            p = &conf->pools[i];
    if (p == NULL)
        return 0; /* every pool runs as root (php-fpm -R): so does the responder */
    uid_t u;
    gid_t g;
    const char *failed = NULL;
    if (rf_ids_lookup(p->user, p->group, &u, &g, &failed) < 0) {
        int user = failed[0] == 'u';
        rf_log(RF_LOG_ERROR, "responder: cannot get %s for %s '%s'", user ? "uid" : "gid", failed,
               user ? p->user : p->group);
        return -1;
    }
    if (g == (gid_t)-1)
        g = (gid_t)u; /* a numeric user without a passwd entry */
    if (u == 0)
        return 0;
    if (setgroups(0, NULL) < 0 || setgid(g) < 0 || setuid(u) < 0) {
        rf_log(RF_LOG_ERROR, "responder: cannot switch to user '%s': %s", p->user, strerror(errno));
        return -1;
    }
    rf_log_debug("responder runs as uid %d gid %d", (int)u, (int)g);
    return 0;
}

static void rf_pm_responder_child(rf_pm_t *pm, int ready_fd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != pm->master)
        _exit(1);
    for (int i = 0; i < pm->nthreads; i++)
        if (pm->ctl[i] >= 0)
            close(pm->ctl[i]);
    close(pm->sfd);
    rf_proctitle_set("responder");
    rf_io_t *io = NULL;
    int rc = rf_io_start(&io, pm->a->io);
    if (rc == 0 && rf_pm_responder_drop(pm->conf) < 0)
        rc = -EPERM;
    /* Its listening sockets to the master, which keeps them for the next
     * responder, then whether it started. */
    rf_ctl_msg_t m;
    memset(&m, 0, sizeof(m));
    int fds[512];
    int nfds = rc == 0 ? rf_io_listen_fds(io, fds, 512) : 0;
    for (int i = 0; i < nfds; i += RF_CTL_MAX_FDS) {
        m.type = RF_CTL_LISTEN;
        m.arg = (uint32_t)(nfds - i < RF_CTL_MAX_FDS ? nfds - i : RF_CTL_MAX_FDS);
        rf_ctl_send(ready_fd, &m, fds + i, (int)m.arg);
    }
    m.type = RF_CTL_READY;
    m.arg = rc == 0;
    rf_ctl_send(ready_fd, &m, NULL, 0);
    close(ready_fd);
    if (rc < 0)
        _exit(1);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGQUIT);
    uint64_t finish_by = 0; /* SIGQUIT: draining until then */
    for (;;) {
        struct timespec tick = {0, 20000000};
        int sig = finish_by ? sigtimedwait(&sigs, NULL, &tick) : sigwaitinfo(&sigs, NULL);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGQUIT && !finish_by) {
            finish_by = rf_mono_ns() + rf_pm_finish_ns(pm->conf);
            rf_io_drain(io);
        }
        if (finish_by && (rf_io_drained(io) || rf_mono_ns() >= finish_by))
            break;
    }
    rf_io_stop(io);
    _exit(0);
}

static int rf_pm_start_responder(rf_pm_t *pm)
{
    int pfd[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pfd) < 0)
        return -errno;
    int pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -errno;
    }
    if (pid == 0) {
        close(pfd[0]);
        rf_pm_responder_child(pm, pfd[1]);
    }
    close(pfd[1]);
    pm->responder = pid;
    int ok = 0, *got = NULL, ngot = 0;
    for (;;) {
        rf_ctl_msg_t m;
        int fds[RF_CTL_MAX_FDS], nfds = 0;
        int rc = rf_ctl_recv(pfd[0], &m, fds, &nfds);
        if (rc == 0) {
            struct pollfd p = {pfd[0], POLLIN, 0};
            poll(&p, 1, -1); /* nothing yet: it is starting */
            continue;
        }
        if (rc < 0 && rc != -EPROTO)
            break; /* it died */
        int *n = nfds ? realloc(got, (size_t)(ngot + nfds) * sizeof(*n)) : got;
        for (int i = 0; i < nfds; i++) {
            if (n != NULL && rc == 1 && m.type == RF_CTL_LISTEN)
                n[ngot++] = fds[i];
            else
                close(fds[i]);
        }
        got = n;
        if (rc == 1 && m.type == RF_CTL_READY) {
            ok = m.arg == 1;
            break;
        }
    }
    close(pfd[0]);
    for (int i = 0; i < pm->nthreads; i++)
        if (pm->ctl_peer[i] >= 0) {
            close(pm->ctl_peer[i]);
            pm->ctl_peer[i] = -1;
        }
    /* The responder's sockets replace whatever we held (FPM_SOCKETS it was
     * given took what it uses): from now on they are what a reload hands on. */
    for (int i = 0; i < pm->nlfds; i++)
        close(pm->lfds[i]);
    free(pm->lfds);
    pm->lfds = got;
    pm->nlfds = ngot;
    rf_fpm_sockets_unset();
    return ok ? 0 : -EIO;
}

/* At the master's exit for good (not a reload): the sockets close, and a
 * unix socket's path goes with it (the responder leaves it: keep_sockets). */
static void rf_pm_release_sockets(rf_pm_t *pm)
{
    for (int i = 0; i < pm->nlfds; i++) {
        char key[256];
        if (rf_fpm_sockets_key(pm->lfds[i], key, sizeof(key)) == 0 && key[0] == '/')
            unlink(key);
        close(pm->lfds[i]);
    }
    free(pm->lfds);
    pm->lfds = NULL;
    pm->nlfds = 0;
}

/* ---- shutdown --------------------------------------------------------------- */

static void rf_pm_signal_all(rf_pm_t *pm, int sig)
{
    if (pm->responder > 0)
        kill(pm->responder, sig);
    for (size_t i = 0; i < pm->nxs; i++)
        kill(pm->xs[i].pid, sig);
}

/* sig: SIGTERM, or SIGQUIT after a graceful stop drained the responder
 * (the executors are idle: they get 1 s to exit cleanly, then SIGTERM). */
static void rf_pm_shutdown(rf_pm_t *pm, int sig, uint64_t grace_ns)
{
    pm->stopping = 1;
    rf_pm_signal_all(pm, sig);
    uint64_t deadline = rf_mono_ns() + (sig == SIGQUIT ? 1000000000u : grace_ns);
    while (pm->responder > 0 || pm->nxs) {
        rf_pm_reap(pm);
        if (pm->responder <= 0 && pm->nxs == 0)
            break;
        if (rf_mono_ns() > deadline && sig == SIGQUIT) {
            sig = SIGTERM;
            rf_pm_signal_all(pm, SIGTERM);
            deadline = rf_mono_ns() + grace_ns;
        } else if (rf_mono_ns() > deadline) {
            rf_pm_signal_all(pm, SIGKILL);
            deadline = UINT64_MAX;
        }
        usleep(10000);
    }
}

/* ---- reload ------------------------------------------------------------------------ */

static void rf_pm_cloexec(int fd, int on)
{
    if (fd < 0)
        return;
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0)
        fcntl(fd, F_SETFD, on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC);
}

/* The handoff's descriptors: inherited by the next image, or not. */
static void rf_pm_handoff_fds(rf_pm_t *pm, int inherit)
{
    for (int i = 0; i < pm->nthreads; i++)
        rf_pm_cloexec(pm->ctl[i], !inherit);
    rf_pm_cloexec(rf_board_fd(pm->board), !inherit);
    for (size_t i = 0; i < pm->nxs; i++) {
        rf_pm_cloexec(pm->xs[i].out_fd, !inherit);
        rf_pm_cloexec(pm->xs[i].err_fd, !inherit);
    }
}

/*
 * `exe argv... -t`: does the configuration as it is on disk now load? Its
 * messages are logged (without their own time stamp) when it does not.
 * Returns 0 when it does.
 */
static int rf_pm_test_config(rf_pm_t *pm)
{
    int argc = 0;
    while (pm->a->argv[argc])
        argc++;
    char **argv = calloc((size_t)argc + 2, sizeof(*argv));
    int pfd[2];
    if (argv == NULL || pipe2(pfd, O_CLOEXEC) < 0) {
        free(argv);
        rf_log(RF_LOG_ERROR, "reload: cannot test the configuration: %s", strerror(errno));
        return -1;
    }
    memcpy(argv, pm->a->argv, (size_t)argc * sizeof(*argv));
    argv[argc] = (char *)"-t";
    int pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        unsetenv(RF_HANDOFF_ENV);
        execv(pm->a->exe, argv);
        dprintf(2, "cannot execute %s: %s\n", pm->a->exe, strerror(errno));
        _exit(127);
    }
    free(argv);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        rf_log(RF_LOG_ERROR, "reload: cannot test the configuration: fork: %s", strerror(errno));
        return -1;
    }
    char out[8192];
    size_t len = 0;
    uint64_t deadline = rf_mono_ns() + 30000000000ull;
    for (;;) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        uint64_t now = rf_mono_ns();
        if (now >= deadline) {
            kill(pid, SIGKILL);
            break;
        }
        if (poll(&p, 1, (int)((deadline - now) / 1000000u) + 1) <= 0)
            continue;
        char tmp[4096];
        ssize_t r = read(pfd[0], tmp, sizeof(tmp));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t take = (size_t)r < sizeof(out) - 1 - len ? (size_t)r : sizeof(out) - 1 - len;
        memcpy(out + len, tmp, take);
        len += take;
    }
    close(pfd[0]);
    out[len] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    char *save = NULL;
    for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (l[0] == '[' && strchr(l, ']'))
            l = strchr(l, ']') + 1; /* its time stamp */
        while (*l == ' ')
            l++;
        if (*l)
            rf_log(RF_LOG_ERROR, "reload: %s", l);
    }
    char how[96];
    rf_pm_describe_exit(status, how, sizeof(how));
    rf_log(RF_LOG_ERROR, "reload: the configuration test exited %s", how);
    return -1;
}

/*
 * SIGUSR2 / SIGHUP. php-fpm stops every child and re-executes itself; here
 * the master re-executes itself alone: the responder keeps its sockets and
 * connections, the running executors keep serving until the new image has
 * started a new generation (rf_pm_adopt, rf_pm_new_generation). A
 * configuration that does not load keeps everything as it is. Returns only
 * when the reload did not happen.
 */
static void rf_pm_reload(rf_pm_t *pm, const char *signame)
{
    rf_log(RF_LOG_NOTICE, "Reloading in progress ...");
    rf_log_debug("reload asked for by %s", signame);
    if (pm->a->exe == NULL || pm->a->argv == NULL) {
        rf_log(RF_LOG_ERROR, "reload: the program's own path is unknown; not reloading");
        return;
    }
    if (rf_pm_test_config(pm) < 0) {
        rf_log(RF_LOG_ERROR, "reload: the new configuration does not load: the running "
                             "configuration and executors stay");
        return;
    }
    int nxs = (int)pm->nxs;
    rf_handoff_exec_t *xs = calloc(pm->nxs ? pm->nxs : 1, sizeof(*xs));
    int nboard = rf_board_npools(pm->board);
    uint32_t *nslots = calloc((size_t)nboard + 1, sizeof(*nslots));
    if (xs == NULL || nslots == NULL) {
        free(xs);
        free(nslots);
        rf_log(RF_LOG_ERROR, "reload: out of memory; not reloading");
        return;
    }
    for (int i = 0; i < nboard; i++)
        nslots[i] = (uint32_t)rf_board_nslots(pm->board, i);
    for (int i = 0; i < nxs; i++) {
        const rf_pm_exec_t *x = &pm->xs[i];
        rf_pm_exec_said(&pm->xs[i], 1, SIZE_MAX); /* what it said so far, by this image */
        rf_pm_exec_said(&pm->xs[i], 0, SIZE_MAX);
        xs[i] = (rf_handoff_exec_t){x->id,  x->pid,        x->pool,   x->thread, x->slot,
                                    x->gen, x->started_ns, x->out_fd, x->err_fd};
    }
    rf_handoff_t h = {
        .proto = RF_CTL_PROTO,
        .fingerprint = rf_reload_fingerprint(pm->a->io),
        .responder = pm->responder,
        .gen = pm->gen,
        .next_id = pm->next_id,
        .board_fd = rf_board_fd(pm->board),
        .npools = nboard,
        .nslots = nslots,
        .nthreads = pm->nthreads,
        .ctl = pm->ctl,
        .xs = xs,
        .nxs = (size_t)nxs,
    };
    int fd = h.board_fd < 0 ? -EINVAL : rf_handoff_write(&h);
    free(xs);
    free(nslots);
    if (fd < 0) {
        rf_log(RF_LOG_ERROR, "reload: cannot write the handoff: %s; not reloading", strerror(-fd));
        return;
    }
    int src = rf_fpm_sockets_export(pm->lfds, pm->nlfds);
    if (src < 0)
        rf_log(RF_LOG_WARNING,
               "reload: cannot hand the listening sockets over (%s): a "
               "responder restart would bind them again",
               strerror(-src));
    char num[16];
    snprintf(num, sizeof(num), "%d", fd);
    setenv(RF_HANDOFF_ENV, num, 1);
    rf_pm_handoff_fds(pm, 1);
    /* systemd's Type=notify-reload wants the time with RELOADING=1 */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    rf_sd_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)ts.tv_sec * 1000000ull +
                                                          (unsigned long long)ts.tv_nsec / 1000);
    execv(pm->a->exe, pm->a->argv);
    int e = errno;
    rf_pm_handoff_fds(pm, 0);
    unsetenv(RF_HANDOFF_ENV);
    rf_fpm_sockets_unset();
    for (int i = 0; i < pm->nlfds; i++)
        rf_pm_cloexec(pm->lfds[i], 1);
    close(fd);
    rf_log(RF_LOG_ERROR, "reload: cannot execute %s: %s; the running master stays", pm->a->exe,
           strerror(e));
    rf_sd_notify("READY=1");
}

/* The responder and executors of a handoff we do not adopt: stopped (TERM,
 * then KILL after grace), their descriptors closed. */
static void rf_pm_drop_handoff(rf_pm_t *pm, rf_handoff_t *h, uint64_t grace_ns)
{
    /* The responder first, gracefully (SIGQUIT): it answers what it has
     * received, with its executors still there; new connections wait in
     * the listen backlog, the sockets being ours. Then the executors. */
    kill(h->responder, SIGQUIT);
    uint64_t deadline = rf_mono_ns() + rf_pm_finish_ns(pm->conf) + 1000000000u;
    int responder = 1, phase = 0;
    size_t left = h->nxs;
    while (responder || left) {
        int status, pid = waitpid(-1, &status, WNOHANG);
        if (pid > 0) {
            responder &= pid != h->responder;
            for (size_t i = 0; i < h->nxs; i++)
                left -= h->xs[i].pid == pid;
            continue;
        }
        if (pid < 0 && errno == ECHILD)
            break;
        uint64_t now = rf_mono_ns();
        if (phase == 0 && (!responder || now > deadline)) {
            if (responder)
                kill(h->responder, SIGKILL);
            for (size_t i = 0; i < h->nxs; i++)
                kill(h->xs[i].pid, SIGTERM);
            deadline = now + grace_ns;
            phase = 1;
        } else if (phase == 1 && now > deadline) {
            for (size_t i = 0; i < h->nxs; i++)
                kill(h->xs[i].pid, SIGKILL);
            phase = 2;
        }
        usleep(10000);
    }
    for (int i = 0; i < h->nthreads; i++)
        if (h->ctl[i] >= 0)
            close(h->ctl[i]);
    close(h->board_fd);
    for (size_t i = 0; i < h->nxs; i++) {
        if (h->xs[i].out_fd >= 0)
            close(h->xs[i].out_fd);
        if (h->xs[i].err_fd >= 0)
            close(h->xs[i].err_fd);
    }
    (void)pm;
}

/*
 * In the re-executed master: take over the responder, the control sockets,
 * the scoreboard and the running executors (all of them now "old") from the
 * handoff. Returns 1 when adopted, 0 when the new configuration needs a new
 * responder (the old one and its executors were stopped: start afresh), or
 * -1 when the handoff is unreadable.
 */
static int rf_pm_adopt(rf_pm_t *pm, int fd, uint64_t grace_ns)
{
    rf_handoff_t h;
    char err[256];
    if (rf_handoff_read(fd, &h, err, sizeof(err)) < 0) {
        rf_log(RF_LOG_ALERT, "reload: the previous master's handoff is unreadable (%s)", err);
        return -1;
    }
    pm->next_id = h.next_id;
    pm->gen = h.gen + 1;
    const char *why = NULL;
    if (h.proto != RF_CTL_PROTO)
        why = "the program's control protocol changed";
    else if (h.nthreads != pm->nthreads || h.npools != pm->a->io->npools ||
             h.fingerprint != rf_reload_fingerprint(pm->a->io))
        why = "pools, listen or responder settings changed";
    int brc = why ? 0 : rf_io_board_create(pm->a->io, h.nslots, dup(h.board_fd), &pm->board);
    if (brc < 0)
        why = "the scoreboard cannot be mapped again";
    if (why) {
        rf_log(RF_LOG_NOTICE,
               "reload: %s: starting a new responder on the sockets still configured, once "
               "the old one has answered what it received",
               why);
        rf_pm_drop_handoff(pm, &h, grace_ns);
        rf_handoff_free(&h);
        return 0;
    }
    close(h.board_fd);
    pm->responder = h.responder;
    for (int i = 0; i < pm->nthreads; i++) {
        pm->ctl[i] = h.ctl[i];
        rf_pm_cloexec(pm->ctl[i], 1);
        if (pm->ctl[i] >= 0)
            fcntl(pm->ctl[i], F_SETFL, O_NONBLOCK);
    }
    for (size_t i = 0; i < h.nxs; i++) {
        const rf_handoff_exec_t *hx = &h.xs[i];
        rf_pm_exec_t *x = rf_pm_exec_add(pm);
        if (x == NULL) {
            kill(hx->pid, SIGKILL); /* reaped as an unknown child */
            continue;
        }
        memset(x, 0, sizeof(*x));
        x->id = hx->id;
        x->pid = hx->pid;
        x->pool = hx->pool;
        x->thread = hx->thread;
        x->slot = rf_board_slot_adopt(pm->board, hx->pool, hx->slot) == 0 ? hx->slot : -1;
        x->gen = hx->gen;
        x->started_ns = hx->started_ns;
        x->retiring = 1;
        x->old = 1;
        x->out_fd = hx->out_fd;
        x->err_fd = hx->err_fd;
        rf_pm_cloexec(x->out_fd, 1);
        rf_pm_cloexec(x->err_fd, 1);
        if (x->out_fd >= 0 && (x->said = malloc(sizeof(*x->said))) != NULL) {
            const rf_conf_pool_t *p = &pm->conf->pools[x->pool];
            rf_log_stream_init(x->said, p->name, x->pid, p->decorate_workers_output);
        } else if (x->out_fd >= 0) {
            close(x->out_fd);
            close(x->err_fd);
            x->out_fd = x->err_fd = -1;
        }
    }
    rf_log(RF_LOG_NOTICE,
           "reload: the responder (pid %d) and %zu executor%s of generation %u "
           "carry on while generation %u starts",
           pm->responder, h.nxs, h.nxs == 1 ? "" : "s", h.gen, pm->gen);
    rf_handoff_free(&h);
    return 1;
}

/* After an adoption, PHP started: the responder threads get the pools' new
 * settings, each pool its first executors, then the old generation is
 * retired (after the new one is announced, on the same ordered sockets). */
static void rf_pm_new_generation(rf_pm_t *pm)
{
    const rf_conf_t *conf = pm->conf;
    rf_ctl_msg_t m;
    for (int i = 0; i < conf->npools; i++) {
        const rf_io_pool_t *q = &pm->a->io->pools[i];
        if (q->handler)
            continue;
        memset(&m, 0, sizeof(m));
        m.type = RF_CTL_POOL_SET;
        m.pool = (uint32_t)i;
        m.set[RF_SET_PM] = (uint32_t)q->pm;
        m.set[RF_SET_MAX_CHILDREN] = q->max_children;
        m.set[RF_SET_MIN_SPARE] = q->min_spare;
        m.set[RF_SET_MAX_SPARE] = q->max_spare;
        m.set[RF_SET_MAX_SPAWN_RATE] = q->max_spawn_rate;
        m.set[RF_SET_IDLE_TIMEOUT_MS] = q->idle_timeout_ms;
        m.set[RF_SET_QUEUE_MAX] = q->queue_max;
        m.set[RF_SET_QUEUE_TIMEOUT_MS] = q->queue_timeout_ms;
        m.set[RF_SET_TERMINATE_MS] = q->terminate_ms;
        m.set[RF_SET_SLOWLOG_MS] = q->slowlog_ms;
        m.set[RF_SET_OVERLOAD_FCGI] = (uint32_t)q->overload_fcgi;
        m.set[RF_SET_TRACK_FINISHED] = (uint32_t)q->track_finished;
        for (int k = 0; k < pm->nthreads; k++)
            rf_ctl_send(pm->ctl[k], &m, NULL, 0);
    }
    for (int i = 0; i < conf->npools; i++) {
        /* pm.max_children holds across generations: old executors still in
         * a request leave their places to be filled when they end (a static
         * pool's are owed; a dynamic pool asks again for what it needs). */
        const rf_conf_pool_t *p = &conf->pools[i];
        long n = rf_pm_initial(p), room = p->pm_max_children - (long)rf_pm_pool_taken(pm, i);
        long now = n < room ? n : room > 0 ? room : 0;
        for (long k = 0; k < now; k++)
            rf_pm_spawn_own(pm, i, rf_pm_pick_thread(pm, i));
        if (n > now && p->pm == RF_PM_STATIC)
            pm->pools[i].respawn_due += (uint32_t)(n - now);
    }
    if (pm->php_down)
        return; /* the old generation is all there is: it keeps serving */
    memset(&m, 0, sizeof(m));
    m.type = RF_CTL_RETIRE_OLD;
    m.gen = pm->gen;
    for (int k = 0; k < pm->nthreads; k++)
        rf_ctl_send(pm->ctl[k], &m, NULL, 0);
    if (conf->process_control_timeout > 0)
        pm->old_deadline_ns = rf_mono_ns() + (uint64_t)conf->process_control_timeout * 1000000000u;
}

/* process_control_timeout after a reload: old executors still running. */
static void rf_pm_old_deadline(rf_pm_t *pm)
{
    if (pm->old_deadline_ns == 0 || rf_mono_ns() < pm->old_deadline_ns)
        return;
    pm->old_deadline_ns = 0;
    for (size_t i = 0; i < pm->nxs; i++)
        if (pm->xs[i].old) {
            rf_log(RF_LOG_WARNING,
                   "[pool %s] child %d of the previous generation still runs after "
                   "process_control_timeout: killing it",
                   pm->conf->pools[pm->xs[i].pool].name, pm->xs[i].pid);
            kill(pm->xs[i].pid, SIGKILL);
        }
}

/* ---- systemd heartbeat ---------------------------------------------------------- */

/* Under systemd ($NOTIFY_SOCKET): every systemd_interval seconds, or half
 * of $WATCHDOG_USEC when the unit has a watchdog, php-fpm's STATUS= line
 * (and WATCHDOG=1). */
static void rf_pm_heartbeat_init(rf_pm_t *pm)
{
    if (getenv("NOTIFY_SOCKET") == NULL)
        return;
    const char *wd = getenv("WATCHDOG_USEC"), *wpid = getenv("WATCHDOG_PID");
    uint64_t every = (uint64_t)pm->conf->systemd_interval * 1000000000u;
    if (wd && (wpid == NULL || atol(wpid) == (long)getpid()) && strtoull(wd, NULL, 10) > 0) {
        every = strtoull(wd, NULL, 10) * 500u; /* half the timeout, in ns */
        pm->watchdog = 1;
        rf_log(RF_LOG_NOTICE, "systemd watchdog configured to %.3gsec", (double)every / 1e9);
    }
    if (every == 0)
        return;
    pm->beat_ns = every;
    pm->next_beat_ns = rf_mono_ns() + every;
}

static void rf_pm_heartbeat(rf_pm_t *pm)
{
    uint64_t now = rf_mono_ns();
    if (pm->next_beat_ns == 0 || now < pm->next_beat_ns)
        return;
    pm->next_beat_ns = now + pm->beat_ns;
    uint64_t active = 0, idle = 0, requests = 0, slow = 0;
    for (int i = 0; i < pm->conf->npools; i++) {
        rf_board_stats_t st;
        if (rf_board_stats_get(pm->board, i, &st) < 0)
            continue;
        active += st.active;
        idle += st.idle;
        requests += st.accepted_conn;
        slow += st.slow_requests;
    }
    double rate = (double)(requests - pm->beat_requests) * 1e9 / (double)pm->beat_ns;
    pm->beat_requests = requests;
    if (rf_sd_notifyf("READY=1\n%sSTATUS=Processes active: %llu, idle: %llu, Requests: %llu, "
                      "slow: %llu, Traffic: %.3greq/sec",
                      pm->watchdog ? "WATCHDOG=1\n" : "", (unsigned long long)active,
                      (unsigned long long)idle, (unsigned long long)requests,
                      (unsigned long long)slow, rate) < 0)
        rf_log(RF_LOG_NOTICE, "failed to notify status to systemd");
}

/* ---- main loop ------------------------------------------------------------------ */

int rf_pm_main(const rf_pm_args_t *a)
{
    const rf_conf_t *conf = a->conf;
    rf_pm_t pmv, *pm = &pmv;
    memset(pm, 0, sizeof(*pm));
    pm->a = a;
    pm->conf = conf;
    pm->master = getpid();
    pm->responder = -1;
    pm->gen = 1;
    srand((unsigned)(getpid() ^ time(NULL)));
    rf_proctitle_set("master process (%s)", a->conf_path ? a->conf_path : "built-in");

    int php = 0;
    for (int i = 0; i < conf->npools; i++)
        php |= rf_pool_is_php(&conf->pools[i]);

    pm->nthreads = rf_io_thread_count(a->io);
    pm->ctl = calloc((size_t)pm->nthreads, sizeof(int));
    pm->ctl_peer = calloc((size_t)pm->nthreads, sizeof(int));
    pm->thread_load = calloc((size_t)pm->nthreads, sizeof(uint32_t));
    pm->pools = calloc((size_t)conf->npools, sizeof(*pm->pools));
    if (!pm->ctl || !pm->ctl_peer || !pm->thread_load || !pm->pools)
        return 70;
    for (int i = 0; i < pm->nthreads; i++)
        pm->ctl[i] = pm->ctl_peer[i] = -1;
    uint64_t grace =
        (uint64_t)(conf->process_control_timeout > 0 ? conf->process_control_timeout : 2) *
        1000000000u;
    /* Listening sockets handed over (FPM_SOCKETS): by the master before a
     * reload, or by a supervisor. The responder takes what it needs from
     * the environment; the master holds them all meanwhile. */
    int ninh = rf_fpm_sockets_take(&pm->lfds);
    pm->nlfds = ninh > 0 ? ninh : 0;
    a->io->keep_sockets = 1;
    int adopted = 0;
    if (a->handoff_fd >= 0) {
        /* A reload: this image was executed by the previous master. */
        adopted = rf_pm_adopt(pm, a->handoff_fd, grace);
        if (adopted < 0)
            return 70; /* its children follow (PR_SET_PDEATHSIG) */
        if (adopted)
            rf_fpm_sockets_unset(); /* the running responder has them */
    }
    /* Before any fork: the responder and every executor inherit it. */
    int brc = adopted ? 0 : rf_io_board_create(a->io, NULL, -1, &pm->board);
    if (brc < 0) {
        rf_log(RF_LOG_ERROR, "cannot map the scoreboard: %s", strerror(-brc));
        return 70;
    }
    a->io->board = pm->board;
    if (php && !adopted) {
        for (int i = 0; i < pm->nthreads; i++) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                rf_log(RF_LOG_ERROR, "socketpair() failed: %s", strerror(errno));
                return 70;
            }
            /* The master blocks on nothing: its end never stalls the loop. */
            fcntl(sv[0], F_SETFL, O_NONBLOCK);
            pm->ctl[i] = sv[0];
            pm->ctl_peer[i] = sv[1];
        }
        a->io->ctl_fds = pm->ctl_peer;
    }

    sigset_t sigs;
    sigemptyset(&sigs);
    int handled[] = {SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP, SIGCHLD};
    for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
        sigaddset(&sigs, handled[i]);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    pm->sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
    if (pm->sfd < 0) {
        rf_log(RF_LOG_ERROR, "signalfd() failed: %s", strerror(errno));
        return 70;
    }

    /* The first executors are announced before the responder runs, so a
     * thread's first spare-executor decision already counts them: thread
     * k % nthreads gets a pool's k-th executor. */
    for (int i = 0; i < conf->npools && !adopted; i++)
        for (int k = 0; k < pm->nthreads && k < rf_pm_initial(&conf->pools[i]); k++) {
            long n = rf_pm_initial(&conf->pools[i]);
            rf_ctl_msg_t m;
            memset(&m, 0, sizeof(m));
            m.type = RF_CTL_COMING;
            m.pool = (uint32_t)i;
            m.arg = (uint32_t)(n / pm->nthreads + (k < n % pm->nthreads));
            rf_ctl_send(pm->ctl[k], &m, NULL, 0);
        }

    if (!adopted && rf_pm_start_responder(pm) < 0) {
        /* php-fpm exits 78 when its listen sockets cannot be set up. */
        rf_log(RF_LOG_ERROR, "FPM initialization failed");
        rf_pm_shutdown(pm, SIGTERM, 1000000000u);
        rf_pm_release_sockets(pm);
        return 78;
    }
    if (php) {
        /* The executors' SIGQUIT handler, set before PHP starts: zend_signal
         * takes its snapshot of the handlers here and puts that snapshot
         * back at every request, so a handler set only after the fork is
         * lost once an executor has run two requests. The master never runs
         * it: it keeps SIGQUIT blocked and reads it from its signalfd. */
        struct sigaction sq;
        memset(&sq, 0, sizeof(sq));
        sq.sa_handler = rf_exec_on_quit;
        sigaction(SIGQUIT, &sq, NULL);
        int rc = rf_php_startup(a->php);
        if (rc < 0 && adopted) {
            /* The old generation is all there is: it keeps serving. */
            rf_log(RF_LOG_ALERT,
                   "reload: PHP failed to start (%s): the previous generation of executors "
                   "keeps serving; no executor can be started until a reload succeeds",
                   strerror(-rc));
            pm->php_down = 1;
        } else if (rc < 0) {
            rf_log(RF_LOG_ERROR, "PHP failed to start (%s): FPM initialization failed",
                   strerror(-rc));
            rf_pm_shutdown(pm, SIGTERM, 1000000000u);
            return 70;
        }
    }
    if (adopted)
        rf_pm_new_generation(pm);
    for (int i = 0; i < conf->npools && !adopted; i++)
        for (long k = 0; k < rf_pm_initial(&conf->pools[i]); k++)
            if (rf_pm_spawn(pm, i, (int)(k % pm->nthreads)) < 0)
                rf_pm_refuse(pm, i, (int)(k % pm->nthreads), 1);

    rf_log(RF_LOG_NOTICE, "fpm is running, pid %d", (int)getpid());
    rf_log(RF_LOG_NOTICE, "ready to handle connections");
    rf_sd_notifyf("READY=1\nMAINPID=%d\nSTATUS=Ready to handle connections", (int)getpid());
    rf_pm_heartbeat_init(pm);
    if (a->notify_fd >= 0) {
        char ok = 1;
        ssize_t w = write(a->notify_fd, &ok, 1);
        (void)w;
        close(a->notify_fd);
    }

    size_t pcap = (size_t)pm->nthreads + 1;
    struct pollfd *pfds = calloc(pcap, sizeof(*pfds));
    int *said_of = NULL; /* per pfds entry past the ctl ones: executor index * 2 + is_stdout */
    if (pfds == NULL)
        return 70;
    int exit_code = 0;
    uint64_t finish_by = 0; /* SIGQUIT: the responder must be gone by then */
    for (;;) {
        int n = 0;
        pfds[n].fd = pm->sfd;
        pfds[n++].events = POLLIN;
        for (int i = 0; i < pm->nthreads; i++) {
            pfds[n].fd = pm->ctl[i];
            pfds[n++].events = POLLIN;
        }
        /* catch_workers_output pipes */
        size_t want = (size_t)n + 2 * pm->nxs;
        if (want > pcap) {
            struct pollfd *np = realloc(pfds, want * sizeof(*pfds));
            if (np != NULL)
                pfds = np;
            int *ns = realloc(said_of, want * sizeof(*said_of));
            if (ns != NULL)
                said_of = ns;
            if (np != NULL && ns != NULL)
                pcap = want;
        }
        int nctl = n;
        for (size_t i = 0; i < pm->nxs && (size_t)n + 2 <= pcap; i++)
            for (int out = 0; out < 2; out++) {
                int fd = out ? pm->xs[i].out_fd : pm->xs[i].err_fd;
                if (fd < 0)
                    continue;
                said_of[n - nctl] = (int)i * 2 + out;
                pfds[n].fd = fd;
                pfds[n++].events = POLLIN;
            }
        int due = 0;
        for (int i = 0; i < conf->npools; i++)
            due |= pm->pools[i].respawn_due != 0;
        int wait_ms = due || pm->old_deadline_ns ? 10 : 1000;
        if (pm->next_beat_ns) {
            uint64_t now = rf_mono_ns();
            uint64_t left = pm->next_beat_ns > now ? (pm->next_beat_ns - now) / 1000000u + 1 : 0;
            if (left < (uint64_t)wait_ms)
                wait_ms = (int)left;
        }
        int rc = poll(pfds, (nfds_t)n, wait_ms);
        if (rc < 0 && errno != EINTR)
            break;
        /* before rf_pm_ctl and rf_pm_reap change pm->xs */
        for (int i = nctl; i < n; i++)
            if (pfds[i].revents & (POLLIN | POLLHUP | POLLERR))
                rf_pm_exec_said(&pm->xs[said_of[i - nctl] / 2], said_of[i - nctl] % 2, 64u << 10);
        for (int i = 0; i < pm->nthreads; i++)
            if (pfds[1 + i].revents & POLLIN)
                rf_pm_ctl(pm, i);
        struct signalfd_siginfo si;
        int stop = 0;
        while (read(pm->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            int sig = (int)si.ssi_signo;
            if (sig == SIGTERM || sig == SIGINT) {
                rf_log(RF_LOG_NOTICE, "Terminating ...");
                pm->finishing = 0; /* terminating overrides finishing */
                stop = 1;
            } else if (sig == SIGQUIT && !pm->finishing) {
                /* Graceful: the responder stops accepting and answers what
                 * it has; the executors serve it until it is gone. */
                rf_log(RF_LOG_NOTICE, "Finishing ...");
                pm->finishing = 1;
                finish_by = rf_mono_ns() + rf_pm_finish_ns(conf) + 1000000000u;
                /* No responder follows: our hold on the sockets goes now
                 * (a unix socket's path with it), so once the responder has
                 * stopped accepting, new connections are refused. */
                rf_pm_release_sockets(pm);
                if (pm->responder > 0)
                    kill(pm->responder, SIGQUIT);
            } else if (sig == SIGUSR1) {
                if (a->reopen_logs)
                    a->reopen_logs();
                rf_log(RF_LOG_NOTICE, "error log file re-opened");
                rf_pm_reopen_access_logs(pm);
                rf_log(RF_LOG_NOTICE, "access log file re-opened");
            } else if ((sig == SIGUSR2 || sig == SIGHUP) && !stop && !pm->finishing) {
                /* Only returns when the reload did not happen. */
                rf_pm_reload(pm, sig == SIGHUP ? "HUP" : "USR2");
            }
        }
        if (stop)
            pm->stopping = 1; /* executors hit by the same ^C exit as expected */
        if (rf_pm_reap(pm) && !pm->stopping && !pm->finishing) {
            rf_log(RF_LOG_ALERT, "the responder died: stopping");
            exit_code = 70;
            stop = 1;
        }
        if (pm->finishing && (pm->responder <= 0 || rf_mono_ns() >= finish_by))
            stop = 1;
        if (stop)
            break;
        rf_pm_respawn_due(pm);
        rf_pm_old_deadline(pm);
        if (pm->reload_due && !pm->finishing) {
            pm->reload_due = 0;
            rf_pm_reload(pm, "emergency_restart_threshold");
        }
        rf_pm_heartbeat(pm);
    }
    rf_sd_notify("STOPPING=1");
    rf_pm_shutdown(pm, pm->finishing && pm->responder <= 0 ? SIGQUIT : SIGTERM, grace);
    free(pfds);
    free(said_of);
    for (int i = 0; i < pm->nthreads; i++)
        if (pm->ctl[i] >= 0)
            close(pm->ctl[i]);
    close(pm->sfd);
    free(pm->ctl);
    free(pm->ctl_peer);
    free(pm->thread_load);
    free(pm->pools);
    free(pm->xs);
    free(pm->faults);
    a->io->board = NULL;
    rf_board_destroy(pm->board);
    rf_pm_release_sockets(pm);
    return exit_code;
}
