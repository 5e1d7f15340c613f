/*
 * rf_exec_env: clear_env, env[] and USER/HOME for an executor, in
 * php-fpm's order (fpm_env.c). php-fpm resolves "$NAME" values in the
 * master at start-up; an executor forked from the master still has the
 * master's environment until clearenv(), so resolving on entry here gives
 * the same values.
 */
#include "rf_exec_env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int rf_exec_env_fail(const rf_conf_pool_t *p, const char *what, const char *name, int e,
                            char *err, size_t errlen)
{
    snprintf(err, errlen, "[pool %s] %s(%s) failed: %s (%d)", p->name, what, name, strerror(e), e);
    return -e;
}

int rf_exec_env_apply(const rf_conf_pool_t *p, char *err, size_t errlen)
{
    struct {
        const char *key;
        const char *val;
        char *owned; /* a resolved "$NAME" */
    } *e = NULL;
    size_t n = 0;
    for (size_t i = 0; i < p->nkv; i++)
        n += p->kv[i].kind == RF_KV_ENV;
    if (n && (e = calloc(n, sizeof(*e))) == NULL)
        return rf_exec_env_fail(p, "malloc", "env", ENOMEM, err, errlen);

    /* Resolve every value before clearenv() takes the sources away. */
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < p->nkv && rc == 0; i++) {
        const rf_conf_kv_t *kv = &p->kv[i];
        if (kv->kind != RF_KV_ENV)
            continue;
        e[k].key = kv->key;
        e[k].val = kv->value;
        if (kv->value[0] == '$') {
            const char *v = getenv(kv->value + 1);
            e[k].owned = strdup(v ? v : "");
            if (e[k].owned == NULL)
                rc = rf_exec_env_fail(p, "strdup", kv->key, ENOMEM, err, errlen);
            e[k].val = e[k].owned;
        }
        k++;
    }

    if (rc == 0 && p->clear_env)
        clearenv();
    /* php-fpm's list is newest first and set in that order, so the first
     * entry of a name in the file is set last and wins: same here. */
    for (size_t i = k; rc == 0 && i-- > 0;)
        if (setenv(e[i].key, e[i].val, 1) < 0 && errno == ENOMEM)
            rc = rf_exec_env_fail(p, "setenv", e[i].key, ENOMEM, err, errlen);

    for (size_t i = 0; i < k; i++)
        free(e[i].owned);
    free(e);
    return rc;
}

static int rf_exec_env_has(const rf_conf_pool_t *p, const char *name)
{
    for (size_t i = 0; i < p->nkv; i++)
        if (p->kv[i].kind == RF_KV_ENV && strcmp(p->kv[i].key, name) == 0)
            return 1;
    return 0;
}

int rf_exec_env_user(const rf_conf_pool_t *p, const char *user, const char *home, char *err,
                     size_t errlen)
{
    if (user && !rf_exec_env_has(p, "USER") && setenv("USER", user, 1) < 0)
        return rf_exec_env_fail(p, "setenv", "USER", errno, err, errlen);
    if (home && !rf_exec_env_has(p, "HOME") && setenv("HOME", home, 1) < 0)
        return rf_exec_env_fail(p, "setenv", "HOME", errno, err, errlen);
    return 0;
}
