/*
 * rf_fpm_sockets: FPM_SOCKETS, php-fpm's listening-socket hand-over (see
 * rf_fpm_sockets.h).
 */
#include "rf_fpm_sockets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "rf_log.h"

static void rf_fpm_sockets_var(int set, char *name, size_t len)
{
    if (set == 0)
        snprintf(name, len, "FPM_SOCKETS");
    else
        snprintf(name, len, "FPM_SOCKETS_%d", set);
}

int rf_fpm_sockets_key(int fd, char *buf, size_t len)
{
    int type = 0, acc = 0;
    socklen_t sl = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0)
        return -errno;
    sl = sizeof(acc);
    if (type != SOCK_STREAM || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) < 0 || !acc)
        return -EINVAL;
    struct sockaddr_storage ss;
    socklen_t alen = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &alen) < 0)
        return -errno;
    char host[INET6_ADDRSTRLEN];
    int n;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        n = snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        n = snprintf(buf, len, "%s:%u", host, ntohs(in6->sin6_port));
    } else if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
        if (alen <= offsetof(struct sockaddr_un, sun_path) || un->sun_path[0] == '\0')
            return -EINVAL; /* unnamed or abstract */
        n = snprintf(buf, len, "%.*s", (int)(alen - offsetof(struct sockaddr_un, sun_path)),
                     un->sun_path);
    } else {
        return -EINVAL;
    }
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int rf_fpm_sockets_add(int **fds, int *n, int *cap, int fd)
{
    for (int i = 0; i < *n; i++)
        if ((*fds)[i] == fd)
            return 0;
    if (*n == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        int *nf = realloc(*fds, (size_t)ncap * sizeof(int));
        if (nf == NULL)
            return -ENOMEM;
        *fds = nf;
        *cap = ncap;
    }
    (*fds)[(*n)++] = fd;
    return 0;
}

int rf_fpm_sockets_take(int **fds)
{
    int n = 0, cap = 0;
    *fds = NULL;
    for (int set = 0; set < RF_FPM_SOCKETS_SETS; set++) {
        char name[32];
        rf_fpm_sockets_var(set, name, sizeof(name));
        const char *v = getenv(name);
        if (v == NULL)
            continue;
        /* "key=fd,key=fd": a key may hold ':' and '=' (IPv6, paths) but the
         * fd is the digits after the last '=' of each entry */
        const char *p = v;
        while (*p) {
            const char *end = strchr(p, ',');
            size_t elen = end ? (size_t)(end - p) : strlen(p);
            const char *eq = NULL;
            for (const char *q = p; q < p + elen; q++)
                if (*q == '=')
                    eq = q;
            char key[256];
            long fd = -1;
            if (eq && eq + 1 < p + elen) {
                char *stop;
                fd = strtol(eq + 1, &stop, 10);
                if (stop != p + elen || fd < 0 || fd > 1 << 20)
                    fd = -1;
            }
            if (fd >= 0 && rf_fpm_sockets_key((int)fd, key, sizeof(key)) == 0) {
                fcntl((int)fd, F_SETFD, FD_CLOEXEC);
                if (rf_fpm_sockets_add(fds, &n, &cap, (int)fd) < 0) {
                    free(*fds);
                    *fds = NULL;
                    return -ENOMEM;
                }
            } else {
                rf_log_debug("%s: '%.*s' is not an inherited listening socket: ignored", name,
                             (int)elen, p);
            }
            p += elen + (end != NULL);
        }
    }
    return n;
}

void rf_fpm_sockets_unset(void)
{
    for (int set = 0; set < RF_FPM_SOCKETS_SETS; set++) {
        char name[32];
        rf_fpm_sockets_var(set, name, sizeof(name));
        unsetenv(name);
    }
}

int rf_fpm_sockets_export(const int *fds, int n)
{
    if (n > RF_FPM_SOCKETS_SETS * RF_FPM_SOCKETS_SET)
        return -E2BIG;
    rf_fpm_sockets_unset();
    size_t cap = (size_t)RF_FPM_SOCKETS_SET * (256 + 16);
    char *val = malloc(cap);
    if (val == NULL)
        return -ENOMEM;
    for (int set = 0; set * RF_FPM_SOCKETS_SET < n; set++) {
        size_t len = 0;
        val[0] = '\0';
        for (int i = set * RF_FPM_SOCKETS_SET; i < n && i < (set + 1) * RF_FPM_SOCKETS_SET; i++) {
            char key[256];
            int rc = rf_fpm_sockets_key(fds[i], key, sizeof(key));
            if (rc < 0) {
                free(val);
                rf_fpm_sockets_unset();
                return rc;
            }
            len += (size_t)snprintf(val + len, cap - len, "%s%s=%d", len ? "," : "", key, fds[i]);
        }
        char name[32];
        rf_fpm_sockets_var(set, name, sizeof(name));
        if (setenv(name, val, 1) < 0) {
            int e = errno;
            free(val);
            rf_fpm_sockets_unset();
            return -e;
        }
    }
    free(val);
    for (int i = 0; i < n; i++) {
        int fl = fcntl(fds[i], F_GETFD);
        if (fl >= 0)
            fcntl(fds[i], F_SETFD, fl & ~FD_CLOEXEC);
    }
    return 0;
}
