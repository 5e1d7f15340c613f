/*
 * rf_exec_env: the environment of a PHP executor, as php-fpm builds its
 * children's (fpm_env_conf_wp + fpm_env_init_child): clear_env empties it,
 * env[NAME] entries are set, then USER and HOME come from the pool's user
 * unless env[] names them. Kept apart from rf_exec_setup (which needs
 * libphp) so the unit tests can drive it. Called in the executor after
 * fork, single-threaded; it changes this process's environ.
 */
#ifndef RF_EXEC_ENV_H
#define RF_EXEC_ENV_H

#include <stddef.h>

#include "rf_conf.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Apply clear_env and the pool's env[] entries (RF_KV_ENV in p->kv) to this
 * process. Values are resolved first, from the environment as it is on
 * entry: a value starting with '$' is replaced as a whole by getenv(rest),
 * "" when unset (php-fpm: "$HOME" -> the master's HOME; "a$B" stays as is).
 * Then clearenv() if p->clear_env, then setenv() of every entry. When a
 * name repeats, the first entry in the file wins, as in php-fpm 8.2. A
 * name setenv() refuses (one containing '=') is skipped, as php-fpm does.
 * Returns 0, or -ENOMEM with "[pool NAME] ..." in err (errlen bytes).
 */
int rf_exec_env_apply(const rf_conf_pool_t *p, char *err, size_t errlen);

/*
 * Set USER and HOME (each when not NULL) unless the pool's env[] sets that
 * name itself (php-fpm: env[USER] wins over the passwd entry). Call after
 * rf_exec_env_apply. Returns 0 or -ENOMEM with a message in err.
 */
int rf_exec_env_user(const rf_conf_pool_t *p, const char *user, const char *home, char *err,
                     size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
