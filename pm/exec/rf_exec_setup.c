/*
 * rf_exec_setup: an executor's start-up after fork, step for step what
 * php-fpm's child does (fpm_unix_conf_wp's lookups, fpm_unix_init_child,
 * fpm_env_init_child, fpm_php_init_child), plus ringfpm's cpu pinning.
 * Messages keep php-fpm's texts; where php-fpm appends errno (its
 * ZLOG_SYSERROR) so do we: ": <strerror> (<errno>)".
 */
#include "rf_exec_setup.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "rf_exec_env.h"
#include "rf_log.h"
#include "rf_php.h"
#include "rf_proctitle.h"

/* Who the executor becomes; resolved before chroot. */
typedef struct rf_exec_ident {
    uid_t uid; /* 0 = keep */
    gid_t gid; /* 0 = keep */
    char *initgroups_name;
    char *user; /* USER / HOME for the environment; NULL = leave */
    char *home;
} rf_exec_ident_t;

static int rf_exec_fail(char *err, size_t errlen, int e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* php-fpm's ZLOG_SYSERROR form: "<text>: <strerror> (<errno>)". */
static int rf_exec_fail(char *err, size_t errlen, int e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (e)
        snprintf(err, errlen, "%s: %s (%d)", msg, strerror(e), e);
    else
        snprintf(err, errlen, "%s", msg);
    return e ? -e : -EINVAL;
}

static int rf_exec_is_id(const char *s)
{
    return *s && strspn(s, "0123456789") == strlen(s);
}

static void rf_exec_ident_free(rf_exec_ident_t *id)
{
    free(id->initgroups_name);
    free(id->user);
    free(id->home);
}

static int rf_exec_dup_pw(rf_exec_ident_t *id, const struct passwd *pw, int with_env)
{
    id->initgroups_name = strdup(pw->pw_name);
    if (with_env) {
        id->user = strdup(pw->pw_name);
        id->home = strdup(pw->pw_dir);
    }
    if (!id->initgroups_name || (with_env && (!id->user || !id->home)))
        return -ENOMEM;
    return 0;
}

/* fpm_unix_conf_wp */
static int rf_exec_ident(const rf_conf_pool_t *p, rf_exec_ident_t *id, char *err, size_t errlen)
{
    memset(id, 0, sizeof(*id));
    if (geteuid() != 0) {
        /* USER and HOME anyway, from the uid we run as */
        struct passwd *pw = getpwuid(getuid());
        if (pw && rf_exec_dup_pw(id, pw, 1) < 0)
            return rf_exec_fail(err, errlen, ENOMEM, "[pool %s] out of memory", p->name);
        return 0;
    }
    if (p->user && *p->user) {
        struct passwd *pw;
        if (rf_exec_is_id(p->user)) {
            /* numeric: no USER/HOME, but initgroups by the passwd name
             * when there is one (php-fpm bug 80669) */
            id->uid = (uid_t)strtoul(p->user, NULL, 10);
            pw = getpwuid(id->uid);
            if (pw) {
                id->gid = pw->pw_gid;
                if (rf_exec_dup_pw(id, pw, 0) < 0)
                    return rf_exec_fail(err, errlen, ENOMEM, "[pool %s] out of memory", p->name);
            }
        } else {
            errno = 0;
            pw = getpwnam(p->user);
            if (pw == NULL) {
                int e = errno;
                rf_exec_fail(err, errlen, e, "[pool %s] cannot get uid for user '%s'", p->name,
                             p->user);
                return e ? -e : -ENOENT;
            }
            id->uid = pw->pw_uid;
            id->gid = pw->pw_gid;
            if (rf_exec_dup_pw(id, pw, 1) < 0)
                return rf_exec_fail(err, errlen, ENOMEM, "[pool %s] out of memory", p->name);
        }
    }
    if (p->group && *p->group) {
        if (rf_exec_is_id(p->group)) {
            id->gid = (gid_t)strtoul(p->group, NULL, 10);
        } else {
            errno = 0;
            struct group *gr = getgrnam(p->group);
            if (gr == NULL) {
                int e = errno;
                rf_exec_fail(err, errlen, e, "[pool %s] cannot get gid for group '%s'", p->name,
                             p->group);
                return e ? -e : -ENOENT;
            }
            id->gid = gr->gr_gid;
        }
    }
    return 0;
}

static void rf_exec_rlimits(const rf_conf_pool_t *p)
{
    struct rlimit r;
    if (p->rlimit_files) {
        r.rlim_cur = r.rlim_max = (rlim_t)p->rlimit_files;
        if (setrlimit(RLIMIT_NOFILE, &r) < 0)
            rf_log(RF_LOG_ERROR,
                   "[pool %s] failed to set rlimit_files for this pool. Please check your "
                   "system limits or decrease rlimit_files. setrlimit(RLIMIT_NOFILE, %ld): %s "
                   "(%d)",
                   p->name, p->rlimit_files, strerror(errno), errno);
    }
    if (p->rlimit_core) {
        r.rlim_cur = r.rlim_max = p->rlimit_core < 0 ? RLIM_INFINITY : (rlim_t)p->rlimit_core;
        if (setrlimit(RLIMIT_CORE, &r) < 0)
            rf_log(RF_LOG_ERROR,
                   "[pool %s] failed to set rlimit_core for this pool. Please check your "
                   "system limits or decrease rlimit_core. setrlimit(RLIMIT_CORE, %ld): %s (%d)",
                   p->name, p->rlimit_core, strerror(errno), errno);
    }
}

/* fpm_unix_init_child, from chroot on */
static int rf_exec_unix(const rf_conf_pool_t *p, const rf_exec_ident_t *id, char *err,
                        size_t errlen)
{
    int root = geteuid() == 0;
    int made_chroot = 0;

    if (root && p->chroot && *p->chroot) {
        if (chroot(p->chroot) < 0)
            return rf_exec_fail(err, errlen, errno, "[pool %s] failed to chroot(%s)", p->name,
                                p->chroot);
        made_chroot = 1;
    }
    if (p->chdir && *p->chdir) {
        if (chdir(p->chdir) < 0)
            return rf_exec_fail(err, errlen, errno, "[pool %s] failed to chdir(%s)", p->name,
                                p->chdir);
    } else if (made_chroot && chdir("/") < 0) {
        rf_log(RF_LOG_WARNING, "[pool %s] failed to chdir(/): %s (%d)", p->name, strerror(errno),
               errno);
    }
    if (root && p->process_priority != RF_CONF_PRIORITY_UNSET &&
        setpriority(PRIO_PROCESS, 0, (int)p->process_priority) < 0)
        return rf_exec_fail(err, errlen, errno,
                            "[pool %s] Unable to set priority for this new process", p->name);

    if (root) {
        if (id->gid && setgid(id->gid) < 0)
            return rf_exec_fail(err, errlen, errno, "[pool %s] failed to setgid(%u)", p->name,
                                (unsigned)id->gid);
        if (id->uid) {
            const char *name = id->initgroups_name ? id->initgroups_name : p->user;
            if (initgroups(name, id->gid) < 0)
                return rf_exec_fail(err, errlen, errno, "[pool %s] failed to initgroups(%s, %u)",
                                    p->name, p->user, (unsigned)id->gid);
            if (setuid(id->uid) < 0)
                return rf_exec_fail(err, errlen, errno, "[pool %s] failed to setuid(%u)", p->name,
                                    (unsigned)id->uid);
        }
    }

    if (p->process_dumpable && prctl(PR_SET_DUMPABLE, 1UL, 0UL, 0UL, 0UL) < 0)
        rf_log(RF_LOG_ERROR, "[pool %s] failed to prctl(PR_SET_DUMPABLE): %s (%d)", p->name,
               strerror(errno), errno);
    return 0;
}

/* fpm_php_apply_defines: the php_value list (values and flags), then the
 * php_admin_value list, each newest first as php-fpm keeps them. */
static void rf_exec_php_values(const rf_conf_pool_t *p)
{
    for (int admin = 0; admin <= 1; admin++) {
        int kv_value = admin ? RF_KV_PHP_ADMIN_VALUE : RF_KV_PHP_VALUE;
        int kv_flag = admin ? RF_KV_PHP_ADMIN_FLAG : RF_KV_PHP_FLAG;
        for (size_t i = p->nkv; i-- > 0;) {
            const rf_conf_kv_t *kv = &p->kv[i];
            if (kv->kind != kv_value && kv->kind != kv_flag)
                continue;
            int rc = rf_php_apply_ini(kv->key, kv->value, admin);
            if (rc == -ENOENT)
                rf_log(RF_LOG_ERROR, "Unable to set %s '%s'",
                       admin ? "php_admin_value" : "php_value", kv->key);
            else if (rc < 0)
                rf_log_debug("[pool %s] %s[%s] = %s refused", p->name,
                             admin ? "php_admin_value" : "php_value", kv->key, kv->value);
        }
    }
}

/* The index-th cpu set in s (n bytes), or -1. */
static int rf_exec_nth_cpu(const cpu_set_t *s, size_t n, unsigned index)
{
    int count = CPU_COUNT_S(n, s);
    if (count == 0)
        return -1;
    unsigned want = index % (unsigned)count;
    for (int c = 0; c < (int)(n * 8); c++)
        if (CPU_ISSET_S(c, n, s) && want-- == 0)
            return c;
    return -1;
}

/* executor.cpu_list */
static int rf_exec_pin(const rf_conf_pool_t *p, unsigned index, char *err, size_t errlen)
{
    if (p->exec_ncpu == 0 && !p->exec_cpu_spread)
        return 0;
    long conf = sysconf(_SC_NPROCESSORS_CONF);
    int ncpus = conf > CPU_SETSIZE ? (int)conf : CPU_SETSIZE;
    for (int i = 0; i < p->exec_ncpu; i++)
        if (p->exec_cpu_list[i] >= ncpus)
            ncpus = p->exec_cpu_list[i] + 1;
    cpu_set_t *set = CPU_ALLOC(ncpus);
    if (set == NULL)
        return rf_exec_fail(err, errlen, ENOMEM, "[pool %s] out of memory", p->name);
    size_t n = CPU_ALLOC_SIZE(ncpus);
    CPU_ZERO_S(n, set);

    int cpu = -1;
    if (!p->exec_cpu_spread) {
        for (int i = 0; i < p->exec_ncpu; i++)
            CPU_SET_S(p->exec_cpu_list[i], n, set);
    } else if (p->exec_ncpu) {
        cpu = p->exec_cpu_list[index % (unsigned)p->exec_ncpu];
    } else {
        if (sched_getaffinity(0, n, set) < 0) {
            int e = errno;
            CPU_FREE(set);
            return rf_exec_fail(err, errlen, e, "[pool %s] failed to sched_getaffinity()", p->name);
        }
        cpu = rf_exec_nth_cpu(set, n, index);
        CPU_ZERO_S(n, set);
    }
    if (cpu >= 0)
        CPU_SET_S(cpu, n, set);

    int rc = 0;
    if (sched_setaffinity(0, n, set) < 0) {
        if (cpu >= 0)
            rc = rf_exec_fail(err, errlen, errno,
                              "[pool %s] executor %u: failed to sched_setaffinity(cpu %d) "
                              "(executor.cpu_list)",
                              p->name, index, cpu);
        else
            rc = rf_exec_fail(err, errlen, errno,
                              "[pool %s] executor %u: failed to sched_setaffinity() to "
                              "executor.cpu_list",
                              p->name, index);
    }
    CPU_FREE(set);
    return rc;
}

/*
 * apparmor_hat: move into the hat <current profile>//<hat>, as php-fpm's
 * aa_getcon + aa_change_profile, spoken directly to the kernel (no
 * libapparmor): read the confinement from the task's attr file, write
 * "changeprofile <label>" to it. Either failing ends the executor with
 * php-fpm's message (php-fpm's children die without saying why when
 * AppArmor is off).
 */
static int rf_exec_apparmor(const rf_conf_pool_t *p, char *err, size_t errlen)
{
    static const char *const attrs[] = {"/proc/thread-self/attr/apparmor/current",
                                        "/proc/thread-self/attr/current"};
    char con[512];
    const char *attr = NULL;
    int e = ENOENT;
    for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]) && attr == NULL; i++) {
        int fd = open(attrs[i], O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, con, sizeof(con) - 1) : -1;
        e = n < 0 ? errno : e;
        if (fd >= 0)
            close(fd);
        if (n > 0) {
            con[n] = '\0';
            attr = attrs[i];
        }
    }
    if (attr == NULL)
        return rf_exec_fail(err, errlen, e,
                            "[pool %s] failed to query apparmor confinement. Please check if "
                            "\"/proc/*/attr/current\" is read and writeable.",
                            p->name);
    /* "label (mode)\n" or "unconfined\n": the label alone */
    con[strcspn(con, "\n")] = '\0';
    char *mode = strstr(con, " (");
    if (mode)
        *mode = '\0';
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "changeprofile %s//%s", con, p->apparmor_hat);
    int fd = open(attr, O_WRONLY | O_CLOEXEC);
    ssize_t w = fd >= 0 ? write(fd, cmd, strlen(cmd)) : -1;
    e = w < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    if (w < 0)
        return rf_exec_fail(err, errlen, e,
                            "[pool %s] failed to change to new confinement (%s//%s). Please check "
                            "if \"/proc/*/attr/current\" is read and writeable and "
                            "\"change_profile -> %s//*\" is allowed.",
                            p->name, con, p->apparmor_hat, con);
    return 0;
}

int rf_exec_setup(const rf_conf_t *g, const rf_conf_pool_t *p, unsigned exec_index, char *err,
                  size_t errlen)
{
    (void)g;
    err[0] = '\0';
    /* php-fpm sets it with the environment; first here, so an executor
     * that fails below is already recognisable in ps. */
    rf_proctitle_set("pool %s", p->name);

    rf_exec_ident_t id;
    int rc = rf_exec_ident(p, &id, err, errlen);
    if (rc == 0) {
        rf_exec_rlimits(p);
        rc = rf_exec_unix(p, &id, err, errlen);
    }
    if (rc == 0 && p->apparmor_hat && *p->apparmor_hat)
        rc = rf_exec_apparmor(p, err, errlen); /* last of php-fpm's fpm_unix_init_child */
    if (rc == 0)
        rc = rf_exec_env_apply(p, err, errlen);
    if (rc == 0)
        rc = rf_exec_env_user(p, id.user, id.home, err, errlen);
    rf_exec_ident_free(&id);
    if (rc < 0)
        return rc;

    rf_exec_php_values(p);
    rc = rf_php_set_limit_extensions(p->security_limit_extensions);
    if (rc < 0)
        return rf_exec_fail(err, errlen, -rc, "[pool %s] unable to set security.limit_extensions",
                            p->name);
    return rf_exec_pin(p, exec_index, err, errlen);
}
