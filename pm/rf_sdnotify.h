/*
 * rf_sdnotify: systemd's readiness protocol, spoken directly (no
 * libsystemd): one datagram to the unix socket named by $NOTIFY_SOCKET
 * ("@name" is an abstract socket). Without $NOTIFY_SOCKET every call is a
 * no-op, so a service started any other way is unaffected.
 */
#ifndef RF_SDNOTIFY_H
#define RF_SDNOTIFY_H

#ifdef __cplusplus
extern "C" {
#endif

/* Send state lines such as "READY=1\nSTATUS=Ready to handle connections".
 * Returns 1 when sent, 0 when there is no $NOTIFY_SOCKET, -errno on error. */
int rf_sd_notify(const char *state);

/* printf-style variant. */
int rf_sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif

#endif
