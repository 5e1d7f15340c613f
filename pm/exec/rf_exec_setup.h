/*
 * rf_exec_setup: what a freshly forked PHP executor does before it serves
 * its first request, in php-fpm's order (fpm_child_init ->
 * fpm_unix_init_child, fpm_env_init_child, fpm_php_init_child): process
 * title, resource limits, chroot/chdir, dropping root to the pool's
 * user/group, process.dumpable, the environment, the pool's php_value /
 * php_admin_value settings, security.limit_extensions, and ringfpm's
 * executor.cpu_list pinning.
 *
 * Single-threaded, in the executor process right after fork (PHP already
 * started in the master with rf_php_startup).
 */
#ifndef RF_EXEC_SETUP_H
#define RF_EXEC_SETUP_H

#include <stddef.h>

#include "rf_conf.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Prepare this process to serve pool p as its executor number exec_index
 * (0-based within the pool; only executor.cpu_list = spread uses it). g is
 * the whole configuration (reserved; may be NULL).
 *
 * Steps, as php-fpm does them:
 *   - title "ringfpm: pool NAME" (rf_proctitle_set);
 *   - as root: the pool's user (name or numeric uid) and group (name or
 *     gid; default: the user's primary group) are looked up first, before
 *     any chroot hides /etc/passwd; not root: USER/HOME of the current uid;
 *   - rlimit_files / rlimit_core when set (a failure is logged, as php-fpm);
 *   - chroot (root only), then chdir to `chdir`, or to "/" after a chroot;
 *   - process.priority (root only): setpriority(2) of this process;
 *   - as root: setgid, initgroups, setuid (uid/gid 0 are left alone);
 *   - process.dumpable: prctl(PR_SET_DUMPABLE, 1) (after setuid, which
 *     clears it);
 *   - clear_env and env[] (rf_exec_env_apply), then USER/HOME from the
 *     pool's passwd entry unless env[] sets them;
 *   - php_value / php_flag (admin 0), then php_admin_value / php_admin_flag
 *     (admin 1) through rf_php_apply_ini, each list last-to-first so the
 *     first entry of a name wins as in php-fpm; an unknown entry is logged
 *     ("Unable to set php_value 'x'") and skipped, as php-fpm does;
 *   - security.limit_extensions (rf_php_set_limit_extensions; NULL = the
 *     default ".php .phar");
 *   - executor.cpu_list: a list pins the process to that set; spread pins
 *     it to one cpu, exec_index modulo the list, or modulo the cpus this
 *     process may run on (its affinity inherited at fork: fork executors
 *     from an unpinned thread).
 *
 * Returns 0, or -errno with a php-fpm-like message in err (errlen bytes),
 * e.g. "[pool www] failed to chroot(/x): No such file or directory (2)";
 * -ENOENT for an unknown user or group. The caller logs it and exits the
 * executor (php-fpm: "child failed to initialize", exit 70).
 */
int rf_exec_setup(const rf_conf_t *g, const rf_conf_pool_t *p, unsigned exec_index, char *err,
                  size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
