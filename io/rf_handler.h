/*
 * rf_handler: the interface between the FastCGI engine and whatever executes
 * requests. The engine hands over a complete request (params and body, see
 * rf_req_t in core/rf_proto.h); the handler streams the response back with
 * rf_resp_write() and finishes it with rf_resp_end(). All calls happen on
 * the responder thread that owns the request's connection; a handler whose
 * work runs elsewhere (another process) delivers its results through that
 * thread's loop.
 */
#ifndef RF_HANDLER_H
#define RF_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#include "rf_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rf_handler {
    const char *name;
    void *ctx;
    /* A complete request. The handler owns r until it calls rf_resp_end. */
    void (*start)(void *ctx, rf_req_t *r);
    /* The client aborted r (ABORT_REQUEST or the connection closed). The
     * handler should stop work and must still call rf_resp_end. */
    void (*abort)(void *ctx, rf_req_t *r);
} rf_handler_t;

/*
 * Append stream bytes (RF_FCGI_STDOUT or RF_FCGI_STDERR) to r's response,
 * framed as records; the bytes are copied. Returns 0, -EPIPE when the
 * client is gone (the bytes are dropped; keep going to rf_resp_end), or
 * -ENOMEM.
 */
int rf_resp_write(rf_req_t *r, uint8_t stream, const void *p, size_t n);

/* Like rf_resp_write for a NUL-terminated string. */
int rf_resp_puts(rf_req_t *r, uint8_t stream, const char *s);

/*
 * Finish r: queue END_REQUEST(app_status, protocol_status) and free the
 * request. r is gone afterwards.
 */
void rf_resp_end(rf_req_t *r, uint32_t app_status, uint8_t protocol_status);

/* The built-in handler: ping, /echo, /bytes, /stderr and "Hello, World!". */
extern const rf_handler_t rf_builtin_handler;

/* pm.status_listen: 404 "File not found." for all but ping and status. */
extern const rf_handler_t rf_status_only_handler;

#ifdef __cplusplus
}
#endif

#endif
