/*
 * rf_ids: user and group names or numbers to ids (see rf_ids.h).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>

#include "rf_ids.h"

static int rf_ids_number(const char *s, long *out)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (*end != '\0' || n < 0)
        return -1;
    *out = n;
    return 0;
}

int rf_ids_lookup(const char *user, const char *group, uid_t *uid, gid_t *gid, const char **failed)
{
    long n;
    *uid = (uid_t)-1;
    *gid = (gid_t)-1;
    if (user && *user) {
        struct passwd *pw = getpwnam(user);
        if (pw == NULL && rf_ids_number(user, &n) == 0)
            pw = getpwuid((uid_t)n);
        if (pw) {
            *uid = pw->pw_uid;
            *gid = pw->pw_gid;
        } else if (rf_ids_number(user, &n) == 0) {
            *uid = (uid_t)n;
        } else {
            *failed = "user";
            return -ENOENT;
        }
    }
    if (group && *group) {
        struct group *gr = getgrnam(group);
        if (gr) {
            *gid = gr->gr_gid;
        } else if (rf_ids_number(group, &n) == 0) {
            *gid = (gid_t)n;
        } else {
            *failed = "group";
            return -ENOENT;
        }
    }
    return 0;
}
