/*
 * rf_fpm_sockets: php-fpm's hand-over of listening sockets across exec
 * (FPM-REFERENCE §3.3). The environment holds
 *
 *   FPM_SOCKETS=<key>=<fd>,<key>=<fd>,...
 *
 * split over FPM_SOCKETS, FPM_SOCKETS_1 ... FPM_SOCKETS_255 at 128 entries
 * each; the key is inet_ntop(address) ":" port for TCP (IPv6 without
 * brackets, e.g. ":::9000") and the path for a unix socket. The descriptors
 * are inherited (not close-on-exec).
 *
 * ringfpm's master exports the sockets it holds before it re-executes
 * itself (a reload), and its responder takes the ones whose address a pool
 * still listens on instead of binding again, so a socket never closes. A
 * supervisor can hand sockets over the same way.
 */
#ifndef RF_FPM_SOCKETS_H
#define RF_FPM_SOCKETS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RF_FPM_SOCKETS_SETS 256
#define RF_FPM_SOCKETS_SET  128

/* php-fpm's key for listening socket fd (from getsockname). Returns 0, or
 * -ENOTSOCK / -EINVAL when fd is not a listening stream socket of a family
 * php-fpm knows, or -errno. */
int rf_fpm_sockets_key(int fd, char *buf, size_t len);

/*
 * The listening sockets the environment names: each validated (a
 * listening stream socket; others are left alone and logged at debug
 * level), made close-on-exec, duplicates dropped. *fds is malloc'd (NULL
 * when none). Returns the count, or -ENOMEM.
 */
int rf_fpm_sockets_take(int **fds);

/* Put fds in the environment, php-fpm's format, and clear their
 * close-on-exec flag. Returns 0 or -errno (nothing set). */
int rf_fpm_sockets_export(const int *fds, int n);

/* Remove FPM_SOCKETS and FPM_SOCKETS_1..255 from the environment. */
void rf_fpm_sockets_unset(void);

#ifdef __cplusplus
}
#endif

#endif
