/*
 * rf_ids: a user and a group as php-fpm's configuration names them — a
 * name or a number — resolved to ids. With no group, the user's primary
 * group (when the user has a passwd entry). Used for listen.owner/group and
 * for the responder's own drop to a pool's user; the executors' full setup
 * (HOME/USER, initgroups) is pm/exec/rf_exec_setup.c.
 */
#ifndef RF_IDS_H
#define RF_IDS_H

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* user/group may be NULL or "" (then that id stays -1). Returns 0, or
 * -ENOENT with *failed pointing at "user" or "group". */
int rf_ids_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid, const char **failed);

#ifdef __cplusplus
}
#endif

#endif
