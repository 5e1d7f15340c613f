/*
 * rf_proto: the FastCGI application side of one connection. It takes the
 * record parser's events and keeps the state of every request id in flight
 * on the connection (multiplexing): BEGIN -> PARAMS... -> empty PARAMS ->
 * STDIN... -> empty STDIN (-> DATA... -> empty DATA for FILTER), ABORT at any
 * point. PARAMS are decoded in place into slices of the receive buffers (a
 * pair straddling two buffers is copied into the request arena), STDIN is
 * kept as slices up to a memory budget and handed to a spill callback beyond
 * it. Limits are enforced here, with a counter and a reason for each.
 *
 * No I/O: the connection owner (io/) supplies callbacks that create requests,
 * dispatch complete ones, spill bodies and send management replies. One
 * session belongs to one connection on one thread.
 */
#ifndef RF_PROTO_H
#define RF_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "rf_arena.h"
#include "rf_fcgi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RF_REQ_MAGIC 0x52455153u /* "REQS" */

/*
 * A reference-counted owner of input bytes (a receive buffer). Slices that
 * point into it keep a reference; the last rf_ref_put calls release(), which
 * gives the buffer back (to the io_uring buffer ring, say).
 */
typedef struct rf_ref {
    uint32_t refs;
    void (*release)(struct rf_ref *ref);
} rf_ref_t;

static inline void rf_ref_get(rf_ref_t *r)
{
    r->refs++;
}

static inline void rf_ref_put(rf_ref_t *r)
{
    if (--r->refs == 0)
        r->release(r);
}

/* One request parameter; not NUL-terminated. */
typedef struct rf_param {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
} rf_param_t;

/* A piece of body (STDIN or DATA) kept in memory. */
typedef struct rf_chunk {
    struct rf_chunk *next;
    const uint8_t *data;
    uint32_t len;
} rf_chunk_t;

typedef struct rf_stream {
    rf_chunk_t *head;
    rf_chunk_t **tail;
    uint64_t len; /* bytes received in all */
    int fd;       /* spilled to this unlinked temp file when >= 0 */
    void *spill;  /* the spill callback's own state, NULL until it sets it */
    uint8_t done; /* the empty end-of-stream record arrived */
} rf_stream_t;

enum rf_req_state {
    RF_REQ_PARAMS = 1, /* receiving PARAMS */
    RF_REQ_STDIN,      /* receiving STDIN */
    RF_REQ_DATA,       /* FILTER: receiving DATA */
    RF_REQ_READY,      /* complete, handed to the handler */
    RF_REQ_DONE,       /* END_REQUEST queued */
};

const char *rf_req_state_name(int state);

/*
 * A request: created on BEGIN_REQUEST in its own arena (the struct is the
 * arena's first allocation), destroyed with the arena. Params and body
 * slices point into receive buffers whose references are held in refs[].
 */
typedef struct rf_req {
    uint32_t magic;
    uint16_t id;
    uint8_t role;
    uint8_t keep_conn;
    uint8_t state;
    uint8_t aborted; /* ABORT_REQUEST received or the connection went away */
    uint8_t nv_lenhave;
    uint8_t nv_lenbuf[8];
    rf_arena_t *arena;
    struct rf_req *next; /* in the session's list of requests */

    rf_param_t *params;
    int32_t script_name; /* index of the last SCRIPT_NAME param, -1 if none:
                            ping, status and routing look at it per request */
    uint32_t nparams;
    uint32_t params_cap;
    uint32_t params_bytes; /* PARAMS content bytes received */

    /* a name-value pair straddling two slices, being copied */
    uint8_t *nv_part;
    uint32_t nv_part_have;
    uint32_t nv_part_need;

    rf_stream_t in;    /* STDIN */
    rf_stream_t data;  /* DATA (FILTER role) */
    uint64_t body_mem; /* bytes of in+data kept as slices in memory */

    rf_ref_t **refs; /* receive buffers this request points into */
    uint32_t nrefs;
    uint32_t refs_cap;

    uint64_t begin_ns; /* when BEGIN_REQUEST arrived (monotonic) */
    void *conn;        /* the connection (io/) */
    void *handler;     /* handler's per-request state */
} rf_req_t;

/* Find a param by name (exact, case-sensitive; last one wins as in
 * php-fpm). Returns NULL when absent. */
const rf_param_t *rf_req_param(const rf_req_t *r, const char *name);

/* The SCRIPT_NAME param (the last one, as php-fpm), or NULL. */
static inline const rf_param_t *rf_req_script_name(const rf_req_t *r)
{
    return r->script_name >= 0 ? &r->params[r->script_name] : NULL;
}

/* Copy every slice the request points into receive buffers with into its
 * arena and drop the buffer references (call under buffer pressure, or
 * before the request waits long). Returns 0 or -ENOMEM. */
int rf_req_detach(rf_req_t *r);

/* Drop the buffer references (the request is gone or no longer reads its
 * params and body). */
void rf_req_release_refs(rf_req_t *r);

/* Limits of one connection's session (0 = unlimited where noted). */
typedef struct rf_proto_limits {
    uint32_t max_params_bytes;   /* PARAMS content per request */
    uint32_t max_params;         /* pairs per request */
    uint32_t max_multiplex;      /* request ids in flight */
    uint32_t max_per_connection; /* requests per connection, 0 = unlimited */
    uint64_t buffer_memory;      /* body bytes kept in memory per request */
    uint64_t max_body;           /* body bytes per request, 0 = unlimited */
    /* answered to FCGI_GET_VALUES */
    uint32_t max_conns;
    uint32_t max_reqs;
} rf_proto_limits_t;

/* Counters, one set per responder thread; read by the status page with
 * relaxed atomic loads from other threads. */
typedef struct rf_proto_stats {
    uint64_t requests;        /* BEGIN_REQUESTs accepted */
    uint64_t protocol_errors; /* connections closed for malformed input */
    uint64_t limit_params;
    uint64_t limit_body;
    uint64_t limit_multiplex;
    uint64_t limit_per_connection;
    uint64_t aborted;
    uint64_t records_ignored;
    uint64_t get_values;
    uint64_t unknown_types;
    uint64_t unknown_roles;
    uint64_t spilled; /* requests whose body went to a temp file */
} rf_proto_stats_t;

#define RF_STAT_INC(s, f)  __atomic_store_n(&(s)->f, (s)->f + 1, __ATOMIC_RELAXED)
#define RF_STAT_LOAD(s, f) __atomic_load_n(&(s)->f, __ATOMIC_RELAXED)

/* What the connection owner provides. */
typedef struct rf_proto_ops {
    /* A new request on BEGIN_REQUEST: return it with arena, magic, id set
     * (rf_proto_req_init does the rest), or NULL when out of memory. */
    rf_req_t *(*req_new)(void *ctx);
    /* The request is complete (state READY): dispatch it. */
    void (*req_ready)(void *ctx, rf_req_t *r);
    /* ABORT_REQUEST for a request the handler holds (state READY). */
    void (*req_abort)(void *ctx, rf_req_t *r);
    /* Free a request that never reached the handler (aborted, rejected or
     * the connection closed); the owner destroys its arena. */
    void (*req_free)(void *ctx, rf_req_t *r);
    /* Body bytes beyond the memory budget: append them to the stream's temp
     * file, creating it (and writing the in-memory chunks first) when
     * s->fd < 0. Called once more with n == 0 when the stream ends, so
     * that bytes it buffered reach the file before the request is
     * dispatched. Returns 0 or -errno. */
    int (*spill)(void *ctx, rf_req_t *r, rf_stream_t *s, const uint8_t *p, size_t n);
    /* Queue bytes (management replies, END_REQUEST, error responses) for
     * sending; they are copied. Returns 0 or -ENOMEM. */
    int (*send)(void *ctx, const uint8_t *p, size_t n);
} rf_proto_ops_t;

typedef struct rf_proto {
    rf_fcgi_parser_t parser;
    const rf_proto_ops_t *ops;
    void *ctx;
    const rf_proto_limits_t *limits;
    rf_proto_stats_t *stats;
    rf_req_t *reqs;    /* requests in flight, newest first */
    rf_req_t *last;    /* last request looked up (records come in runs) */
    uint32_t nreqs;    /* requests in the list */
    uint32_t served;   /* BEGIN_REQUESTs seen on this connection */
    uint16_t gv_len;   /* GET_VALUES content gathered */
    uint8_t closing;   /* no more requests: a non-keep-conn request or the
                          per-connection limit was reached */
    uint8_t gv[256];   /* GET_VALUES query (longer queries are cut: names
                          beyond are not answered) */
    const char *error; /* why rf_proto_feed failed, for the log */
} rf_proto_t;

void rf_proto_init(rf_proto_t *s, const rf_proto_ops_t *ops, void *ctx,
                   const rf_proto_limits_t *limits, rf_proto_stats_t *stats);

/*
 * Feed received bytes; owner is the reference-counted buffer they live in
 * (NULL: the bytes are only valid during the call, so anything kept is
 * copied). Returns:
 *   0        all consumed
 *   -EPROTO  malformed input: close the connection (s->error says why)
 *   -E2BIG   a limit was hit and an error response was queued: flush, then
 *            close the connection (s->error says which)
 *   -ENOMEM  out of memory: close the connection
 */
int rf_proto_feed(rf_proto_t *s, const uint8_t *buf, size_t len, rf_ref_t *owner);

/*
 * The handler finished request r (its END_REQUEST has been queued by the
 * owner): unlink it. Returns 1 when the connection should now be closed
 * (no keep-conn, or the per-connection limit), else 0. The owner frees r.
 */
int rf_proto_req_done(rf_proto_t *s, rf_req_t *r);

/*
 * The connection is going away: every request not yet handed to the handler
 * is freed (req_free), every READY one gets req_abort (the handler finishes
 * it later and calls rf_proto_req_done). Safe to call more than once.
 */
void rf_proto_close(rf_proto_t *s);

/* Prepare a request that req_new returned (zeroes bookkeeping). */
void rf_proto_req_init(rf_req_t *r, uint16_t id);

/* Whether the EOF the peer sent now is clean (on a record boundary, no
 * request half-received). */
int rf_proto_idle(const rf_proto_t *s);

#ifdef __cplusplus
}
#endif

#endif
