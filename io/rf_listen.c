/*
 * rf_listen: listen sockets in php-fpm's `listen` forms: "ip:port",
 * "[ipv6]:port", "port" (dual-stack ::, falling back to 0.0.0.0), a host
 * name (first address), or a unix socket path. TCP listeners get one socket
 * per responder thread with SO_REUSEPORT, so the kernel spreads connections
 * and threads never share an accept queue; a unix socket cannot do that and
 * is shared by all threads. A unix socket gets listen.mode, then either
 * listen.owner/listen.group or, when listen.acl_users/listen.acl_groups are
 * set, a POSIX ACL (as php-fpm: the owner and group are then ignored).
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "rf_fpm_sockets.h"
#include "rf_ids.h"
#include "rf_io_int.h"
#include "rf_log.h"
#include "rf_mem.h"

typedef struct rf_sockaddr {
    struct sockaddr_storage ss;
    socklen_t len;
} rf_sockaddr_t;

static int rf_listen_is_port(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Resolve a TCP listen address. */
static int rf_listen_resolve(const char *addr, rf_sockaddr_t *sa, int *dual)
{
    char host[256];
    const char *port;
    *dual = 0;
    memset(sa, 0, sizeof(*sa));

    if (rf_listen_is_port(addr)) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa->ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_any;
        in6->sin6_port = htons((uint16_t)atoi(addr));
        sa->len = sizeof(*in6);
        *dual = 1;
        return 0;
    }
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
            return -EINVAL;
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        port = colon + 1;
    }
    if (!rf_listen_is_port(port) || atoi(port) > 65535)
        return -EINVAL;

    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
    if (rc != 0)
        return -EADDRNOTAVAIL;
    if (res->ai_next)
        rf_log(RF_LOG_WARNING, "Found multiple addresses for '%s', using the first one", host);
    memcpy(&sa->ss, res->ai_addr, res->ai_addrlen);
    sa->len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/*
 * Is another process listening on sa? The responder's own sockets share the
 * port through SO_REUSEPORT, which would also let a second ringfpm (any
 * process of the same user that sets it) join the group silently and take
 * half the connections. A bind without SO_REUSEPORT (SO_REUSEADDR still
 * ignores TIME_WAIT leftovers) fails when anyone listens there.
 */
static int rf_listen_tcp_free(const rf_sockaddr_t *sa, int dual)
{
    int fd = socket(sa->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0, rc = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (dual)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (const struct sockaddr *)&sa->ss, sa->len) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

static int rf_listen_tcp(const char *addr, const rf_sockaddr_t *sa, int dual, int backlog)
{
    int fd = socket(sa->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (dual)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    /* Responses are batched into one send per connection per loop turn, so
     * Nagle only adds delay. Accepted sockets inherit this from the
     * listener: no setsockopt per connection. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&sa->ss, sa->len) < 0)
        goto fail;
    if (listen(fd, backlog) < 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

/* What a unix socket gets after bind: an owner and group, or an ACL. */
typedef struct rf_sock_perm {
    uid_t uid;             /* listen.owner, -1 = keep */
    gid_t gid;             /* listen.group, -1 = keep */
    int acl;               /* listen.acl_users or listen.acl_groups is set */
    uint32_t *uids, *gids; /* their ids, sorted, distinct */
    size_t nuids, ngids;
} rf_sock_perm_t;

static void rf_sock_perm_free(rf_sock_perm_t *sp)
{
    rf_free(sp->uids);
    rf_free(sp->gids);
    sp->uids = sp->gids = NULL;
}

static int rf_id_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* A comma-separated list of user (or group) names or numbers into sorted,
 * distinct ids; an unknown one is logged in php-fpm's words. */
static int rf_sock_perm_ids(const rf_io_pool_t *pool, const char *list, int group, uint32_t **out,
                            size_t *n)
{
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    uint32_t *ids = rf_calloc(cap, sizeof(*ids));
    if (ids == NULL)
        return -ENOMEM;
    *out = ids;
    *n = 0;
    for (const char *s = list;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char name[256];
        uid_t uid;
        gid_t gid;
        const char *failed = NULL;
        snprintf(name, sizeof(name), "%.*s", (int)len, s);
        errno = 0;
        if (len >= sizeof(name) || *name == '\0' ||
            rf_ids_lookup(group ? NULL : name, group ? name : NULL, &uid, &gid, &failed) < 0) {
            /* php-fpm's text, errno and all (": Success (0)" for a name
             * that does not exist) */
            int err = errno;
            rf_log(RF_LOG_ERROR, "[pool %s] cannot get %s for %s '%s': %s (%d)", pool->name,
                   group ? "gid" : "uid", group ? "group" : "user", name, strerror(err), err);
            return -EINVAL;
        }
        ids[(*n)++] = group ? (uint32_t)gid : (uint32_t)uid;
        if (comma == NULL)
            break;
        s = comma + 1;
    }
    qsort(ids, *n, sizeof(*ids), rf_id_cmp);
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (k == 0 || ids[k - 1] != ids[i])
            ids[k++] = ids[i];
    *n = k;
    return 0;
}

/* Before bind, so a bad name leaves no socket behind: php-fpm's
 * fpm_unix_resolve_socket_premissions. */
static int rf_sock_perm_resolve(const rf_io_pool_t *pool, rf_sock_perm_t *sp)
{
    memset(sp, 0, sizeof(*sp));
    sp->uid = (uid_t)-1;
    sp->gid = (gid_t)-1;
    const char *users = pool->listen_acl_users, *groups = pool->listen_acl_groups;
    sp->acl = (users && *users) || (groups && *groups);
    if (sp->acl) {
        int rc = 0;
        if (users && *users)
            rc = rf_sock_perm_ids(pool, users, 0, &sp->uids, &sp->nuids);
        if (rc == 0 && groups && *groups)
            rc = rf_sock_perm_ids(pool, groups, 1, &sp->gids, &sp->ngids);
        if (rc < 0) {
            rf_sock_perm_free(sp);
            return rc;
        }
        if (pool->listen_owner && *pool->listen_owner)
            rf_log(RF_LOG_WARNING, "[pool %s] ACL set, listen.owner = '%s' is ignored", pool->name,
                   pool->listen_owner);
        if (pool->listen_group && *pool->listen_group)
            rf_log(RF_LOG_WARNING, "[pool %s] ACL set, listen.group = '%s' is ignored", pool->name,
                   pool->listen_group);
        return 0;
    }
    const char *failed = NULL;
    if (rf_ids_lookup(pool->listen_owner, pool->listen_group, &sp->uid, &sp->gid, &failed) == 0)
        return 0;
    int user = failed[0] == 'u';
    rf_log(RF_LOG_ERROR, "[pool %s] cannot get %s for %s '%s'", pool->name, user ? "uid" : "gid",
           failed, user ? pool->listen_owner : pool->listen_group);
    return -EINVAL;
}

/*
 * The system.posix_acl_access value the kernel takes (no libacl): a version,
 * then entries ordered by tag, named ones by id, all little endian. As
 * php-fpm builds it: the file's own entries from its mode, read and write
 * for every listed user and group, and the mask over all of them.
 */
enum {
    RF_ACL_VERSION = 2,
    RF_ACL_USER_OBJ = 0x01,
    RF_ACL_USER = 0x02,
    RF_ACL_GROUP_OBJ = 0x04,
    RF_ACL_GROUP = 0x08,
    RF_ACL_MASK = 0x10,
    RF_ACL_OTHER = 0x20,
    RF_ACL_RW = 6,
    RF_ACL_ENTRY_LEN = 8,
};

static uint8_t *rf_acl_entry(uint8_t *p, uint16_t tag, uint16_t perm, uint32_t id)
{
    uint16_t t = htole16(tag), m = htole16(perm);
    uint32_t i = htole32(id);
    memcpy(p, &t, 2);
    memcpy(p + 2, &m, 2);
    memcpy(p + 4, &i, 4);
    return p + RF_ACL_ENTRY_LEN;
}

static int rf_sock_perm_acl(const char *path, int mode, const rf_sock_perm_t *sp)
{
    size_t len = 4 + (4 + sp->nuids + sp->ngids) * RF_ACL_ENTRY_LEN;
    uint8_t *buf = rf_malloc(len), *p = buf;
    if (buf == NULL)
        return -ENOMEM;
    uint32_t version = htole32(RF_ACL_VERSION);
    uint16_t group = (uint16_t)((mode >> 3) & 7);
    memcpy(p, &version, 4);
    p += 4;
    p = rf_acl_entry(p, RF_ACL_USER_OBJ, (uint16_t)((mode >> 6) & 7), (uint32_t)-1);
    for (size_t i = 0; i < sp->nuids; i++)
        p = rf_acl_entry(p, RF_ACL_USER, RF_ACL_RW, sp->uids[i]);
    p = rf_acl_entry(p, RF_ACL_GROUP_OBJ, group, (uint32_t)-1);
    for (size_t i = 0; i < sp->ngids; i++)
        p = rf_acl_entry(p, RF_ACL_GROUP, RF_ACL_RW, sp->gids[i]);
    p = rf_acl_entry(p, RF_ACL_MASK, RF_ACL_RW | group, (uint32_t)-1);
    rf_acl_entry(p, RF_ACL_OTHER, (uint16_t)(mode & 7), (uint32_t)-1);
    int rc = setxattr(path, "system.posix_acl_access", buf, len, 0) < 0 ? -errno : 0;
    rf_free(buf);
    return rc;
}

/* After bind: php-fpm's fpm_unix_set_socket_premissions, with its texts. */
static int rf_sock_perm_apply(const rf_io_pool_t *pool, const rf_sock_perm_t *sp)
{
    int rc = 0;
    if (sp->acl) {
        rc = rf_sock_perm_acl(pool->listen, pool->listen_mode, sp);
        if (rc < 0)
            rf_log(RF_LOG_ERROR, "[pool %s] failed to write the ACL of the socket '%s': %s (%d)",
                   pool->name, pool->listen, strerror(-rc), -rc);
    } else if ((sp->uid != (uid_t)-1 || sp->gid != (gid_t)-1) &&
               chown(pool->listen, sp->uid, sp->gid) < 0) {
        rc = -errno;
        rf_log(RF_LOG_ERROR, "[pool %s] failed to chown() the socket '%s': %s (%d)", pool->name,
               pool->listen, strerror(-rc), -rc);
    }
    return rc;
}

/* listen.allowed_clients: "127.0.0.1,::1" into v6 (v4-mapped) addresses. */
static int rf_listen_parse_allowed(rf_listener_t *l)
{
    const char *s = l->pool->allowed_clients;
    if (s == NULL || *s == '\0')
        return 0;
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    l->allowed = rf_calloc(cap, sizeof(*l->allowed));
    if (l->allowed == NULL)
        return -ENOMEM;
    char item[INET6_ADDRSTRLEN + 8];
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        while (n && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n && n < sizeof(item)) {
            memcpy(item, s, n);
            item[n] = '\0';
            struct in_addr v4;
            struct in6_addr *a = &l->allowed[l->nallowed];
            if (inet_pton(AF_INET, item, &v4) == 1) {
                memset(a, 0, sizeof(*a));
                a->s6_addr[10] = a->s6_addr[11] = 0xff;
                memcpy(&a->s6_addr[12], &v4, 4);
                l->nallowed++;
            } else if (inet_pton(AF_INET6, item, a) == 1) {
                l->nallowed++;
            } else {
                /* php-fpm's words */
                rf_log(RF_LOG_WARNING, "[pool %s] Wrong IP address '%s' in listen.allowed_clients",
                       l->pool->name, item);
            }
        }
        s = comma ? comma + 1 : s + strlen(s);
    }
    if (l->nallowed == 0) {
        rf_log(RF_LOG_ERROR, "[pool %s] There are no allowed addresses", l->pool->name);
        return -EINVAL;
    }
    return 0;
}

int rf_listen_allowed(const rf_listener_t *l, int fd)
{
    if (l->nallowed == 0 || l->unix_sock)
        return 1;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    struct in6_addr a;
    memset(&a, 0, sizeof(a));
    if (ss.ss_family == AF_INET) {
        a.s6_addr[10] = a.s6_addr[11] = 0xff;
        memcpy(&a.s6_addr[12], &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        a = ((struct sockaddr_in6 *)&ss)->sin6_addr;
    } else {
        return 0;
    }
    for (int i = 0; i < l->nallowed; i++)
        if (memcmp(&a, &l->allowed[i], sizeof(a)) == 0)
            return 1;
    char text[INET6_ADDRSTRLEN];
    if (IN6_IS_ADDR_V4MAPPED(&a))
        inet_ntop(AF_INET, &a.s6_addr[12], text, sizeof(text));
    else
        inet_ntop(AF_INET6, &a, text, sizeof(text));
    rf_log(RF_LOG_ERROR, "Connection disallowed: IP address '%s' has been dropped.", text);
    return 0;
}

static int rf_listen_unix(const char *path, int backlog, int mode)
{
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path))
        return -ENAMETOOLONG;
    strcpy(sun.sun_path, path);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* A live socket file means another server is there: refuse, as php-fpm
     * does. A stale one is removed. */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            close(probe);
            close(fd);
            rf_log(RF_LOG_ERROR, "Another FPM instance seems to already listen on %s", path);
            return -EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    mode_t old = umask(0777 & ~(mode_t)mode);
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    umask(old);
    if (rc < 0 || listen(fd, backlog) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* ---- inherited sockets (FPM_SOCKETS) ----------------------------------------- */

/* Does listening socket fd have this address (port and address; a unix
 * socket: the path)? */
static int rf_listen_same(int fd, const struct sockaddr *want)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 || ss.ss_family != want->sa_family)
        return 0;
    if (want->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        const struct sockaddr_in *b = (const struct sockaddr_in *)want;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (want->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)want;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0;
    }
    if (want->sa_family == AF_UNIX)
        return strncmp(((const struct sockaddr_un *)&ss)->sun_path,
                       ((const struct sockaddr_un *)want)->sun_path,
                       sizeof(((struct sockaddr_un *)want)->sun_path)) == 0;
    return 0;
}

/* The next inherited socket with this address, taken out of the list
 * (made non-blocking), or -1. */
static int rf_listen_take(int *inh, int ninh, const struct sockaddr *want)
{
    for (int i = 0; i < ninh; i++)
        if (inh[i] >= 0 && rf_listen_same(inh[i], want)) {
            int fd = inh[i];
            inh[i] = -1;
            int fl = fcntl(fd, F_GETFL);
            if (fl >= 0)
                fcntl(fd, F_SETFL, fl | O_NONBLOCK);
            return fd;
        }
    return -1;
}

/* Inherited sockets no pool listens on any more: closed; a unix socket's
 * path removed too (php-fpm's fpm_sockets_init_main). */
static void rf_listen_drop_unused(int *inh, int ninh)
{
    for (int i = 0; i < ninh; i++) {
        if (inh[i] < 0)
            continue;
        struct sockaddr_un un;
        socklen_t len = sizeof(un);
        memset(&un, 0, sizeof(un));
        if (getsockname(inh[i], (struct sockaddr *)&un, &len) == 0 && un.sun_family == AF_UNIX &&
            un.sun_path[0] == '/')
            unlink(un.sun_path);
        close(inh[i]);
        inh[i] = -1;
    }
}

static int rf_listen_open_unix(rf_listener_t *l, int *inh, int ninh)
{
    const rf_io_pool_t *pool = l->pool;
    struct sockaddr_un want;
    memset(&want, 0, sizeof(want));
    want.sun_family = AF_UNIX;
    snprintf(want.sun_path, sizeof(want.sun_path), "%s", pool->listen);
    struct stat st;
    int fd = stat(pool->listen, &st) == 0 && S_ISSOCK(st.st_mode)
                 ? rf_listen_take(inh, ninh, (const struct sockaddr *)&want)
                 : -1;
    if (fd >= 0) {
        /* Its path, mode, owner and ACL are as they were set. */
        rf_log_debug("[pool %s] using inherited socket fd=%d, \"%s\"", pool->name, fd,
                     pool->listen);
        l->fds[0] = fd;
        return 0;
    }
    rf_sock_perm_t sp;
    int rc = rf_sock_perm_resolve(pool, &sp);
    if (rc < 0)
        return rc;
    fd = rf_listen_unix(pool->listen, pool->backlog, pool->listen_mode);
    rc = fd >= 0 ? rf_sock_perm_apply(pool, &sp) : 0;
    rf_sock_perm_free(&sp);
    if (rc < 0) {
        close(fd);
        unlink(pool->listen);
        return rc;
    }
    if (fd < 0) {
        rf_log(RF_LOG_ERROR, "[pool %s] unable to bind listening socket for address '%s': %s",
               pool->name, pool->listen, strerror(-fd));
        return fd;
    }
    l->fds[0] = fd;
    return 0;
}

static int rf_listen_open_tcp(rf_io_t *io, rf_listener_t *l, int *inh, int ninh)
{
    const rf_io_pool_t *pool = l->pool;
    rf_sockaddr_t sa;
    int dual;
    int rc = rf_listen_resolve(pool->listen, &sa, &dual);
    if (rc < 0) {
        rf_log(RF_LOG_ERROR, "[pool %s] invalid listen address '%s'", pool->name, pool->listen);
        return rc;
    }
    int n = io->nthreads, have = 0;
    for (int fd; have < n && (fd = rf_listen_take(inh, ninh, (struct sockaddr *)&sa.ss)) >= 0;)
        l->fds[have++] = fd;
    if (have > 0) {
        rf_log_debug("[pool %s] using %d inherited socket%s for '%s'", pool->name, have,
                     have == 1 ? "" : "s", pool->listen);
        int reuse = 0;
        socklen_t rl = sizeof(reuse);
        getsockopt(l->fds[0], SOL_SOCKET, SO_REUSEPORT, &reuse, &rl);
        if (have < n && !reuse) {
            /* Not ours (no SO_REUSEPORT): every thread accepts on it. */
            l->shared = 1;
            return 0;
        }
    }
    for (int k = have; k < n; k++) {
        int fd = k == 0 ? rf_listen_tcp_free(&sa, dual) : 0;
        if (fd == -EADDRINUSE) {
            rf_log(RF_LOG_ERROR,
                   "[pool %s] unable to bind listening socket for address '%s': %s (%d)",
                   pool->name, pool->listen, strerror(EADDRINUSE), EADDRINUSE);
            return fd;
        }
        fd = rf_listen_tcp(pool->listen, &sa, dual, pool->backlog);
        if (fd < 0 && dual && k == 0) {
            /* No IPv6 here: fall back to 0.0.0.0 as php-fpm does. */
            struct sockaddr_in *in = (struct sockaddr_in *)&sa.ss;
            uint16_t port = ((struct sockaddr_in6 *)&sa.ss)->sin6_port;
            memset(&sa, 0, sizeof(sa));
            in->sin_family = AF_INET;
            in->sin_port = port;
            in->sin_addr.s_addr = htonl(INADDR_ANY);
            sa.len = sizeof(*in);
            dual = 0;
            fd = rf_listen_tcp(pool->listen, &sa, 0, pool->backlog);
        }
        if (fd < 0) {
            rf_log(RF_LOG_ERROR, "[pool %s] unable to bind listening socket for address '%s': %s",
                   pool->name, pool->listen, strerror(-fd));
            return fd;
        }
        l->fds[k] = fd;
    }
    return 0;
}

int rf_listen_open_all(rf_io_t *io)
{
    const rf_io_conf_t *conf = io->conf;
    io->listeners = rf_calloc((size_t)conf->npools, sizeof(*io->listeners));
    if (io->listeners == NULL)
        return -ENOMEM;
    io->nlisteners = conf->npools;
    int *inh = NULL;
    int ninh = rf_fpm_sockets_take(&inh);
    if (ninh < 0)
        return ninh;
    int rc = 0;
    for (int i = 0; i < conf->npools && rc == 0; i++) {
        const rf_io_pool_t *pool = &conf->pools[i];
        rf_listener_t *l = &io->listeners[i];
        l->pool = pool;
        l->pool_idx = i;
        l->unix_sock = pool->listen[0] == '/';
        l->shared = l->unix_sock;
        int n = l->unix_sock ? 1 : io->nthreads;
        l->fds = rf_malloc((size_t)n * sizeof(int));
        if (l->fds == NULL) {
            rc = -ENOMEM;
            break;
        }
        for (int k = 0; k < n; k++)
            l->fds[k] = -1;
        rc = rf_listen_parse_allowed(l);
        if (rc == 0)
            rc = l->unix_sock ? rf_listen_open_unix(l, inh, ninh)
                              : rf_listen_open_tcp(io, l, inh, ninh);
    }
    rf_listen_drop_unused(inh, ninh);
    free(inh);
    return rc;
}

int rf_listen_fds(const rf_io_t *io, int *fds, int max)
{
    int n = 0;
    for (int i = 0; i < io->nlisteners; i++) {
        const rf_listener_t *l = &io->listeners[i];
        int m = l->shared ? 1 : io->nthreads;
        for (int k = 0; l->fds && k < m && n < max; k++)
            if (l->fds[k] >= 0)
                fds[n++] = l->fds[k];
    }
    return n;
}

void rf_listen_shut(rf_io_t *io)
{
    int keep = io->conf->keep_sockets;
    for (int i = 0; i < io->nlisteners; i++) {
        rf_listener_t *l = &io->listeners[i];
        if (l->fds == NULL)
            continue;
        if (l->unix_sock && l->fds[0] >= 0 && !keep)
            unlink(l->pool->listen);
        int n = l->shared ? 1 : io->nthreads;
        for (int k = 0; k < n; k++)
            if (l->fds[k] >= 0) {
                /* Out of the listening state (and out of its SO_REUSEPORT
                 * group) even while an io_uring accept still holds it;
                 * unless the master keeps the socket for the next responder
                 * (the accepts were cancelled, rf_io_drain). */
                if (!keep)
                    shutdown(l->fds[k], SHUT_RDWR);
                close(l->fds[k]);
                l->fds[k] = -1;
            }
    }
}

void rf_listen_close_all(rf_io_t *io)
{
    rf_listen_shut(io);
    for (int i = 0; i < io->nlisteners; i++) {
        rf_free(io->listeners[i].fds);
        rf_free(io->listeners[i].allowed);
    }
    rf_free(io->listeners);
    io->listeners = NULL;
    io->nlisteners = 0;
}
