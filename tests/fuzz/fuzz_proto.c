/*
 * libFuzzer target for the per-connection FastCGI session (core/rf_proto.c).
 * The input is a client's byte stream. It is fed to a fresh session four
 * times: whole, in pieces of data-derived sizes, in the same pieces with
 * owner == NULL, and (when short) one byte per buffer. A fake connection
 * owner plays io/: requests live in arenas, complete ones go to a "handler"
 * that, by data-derived choice, answers them at once, detaches them or keeps
 * them until the end; bodies beyond the memory budget spill into fixed-size
 * in-memory sinks. Every owned piece is its own exactly-sized heap buffer
 * with a counted reference that is wiped and freed on release, so ASan sees
 * any slice kept past it.
 *
 * After every feed the session's invariants are checked (list length vs
 * nreqs, limits, every buffer's reference count equal to the references live
 * requests hold); after rf_proto_close and the handler finishing, nothing may
 * be left: every request freed exactly once, every buffer released exactly
 * once. What the owner observes (requests with their params and bodies,
 * aborts, frees, bytes sent, counters) must not depend on how the input was
 * split. Any failed check aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_fuzz.h"
#include "rf_arena.h"
#include "rf_fcgi.h"
#include "rf_proto.h"

#define MAX_LIVE   32   /* requests alive at once (max_multiplex is 8) */
#define SINK_SLOTS 16   /* two streams per request in flight */
#define SINK_SIZE  4096 /* per stream: less than max_body, so a spill can fail */
#define BYTES_MAX  4096 /* inputs up to this size also run one byte per buffer */

enum feed_mode { FEED_WHOLE, FEED_PIECES, FEED_UNOWNED, FEED_BYTES };

/* One owned input buffer. */
struct fbuf {
    rf_ref_t ref; /* first: release() casts back */
    uint8_t *data;
    size_t len;
    uint32_t releases;
    uint32_t held; /* scratch: references live requests hold */
    struct fbuf *next;
};

/* A spill target standing in for a temp file. */
struct sink {
    uint8_t used;
    size_t len;
    uint8_t buf[SINK_SIZE];
};

struct run {
    rf_arena_pool_t pool;
    rf_proto_t s;
    rf_proto_limits_t lim;
    rf_proto_stats_t stats;
    rf_proto_ops_t ops;

    struct fbuf *bufs;     /* every owned buffer of the run */
    struct fbuf **pending; /* buffers not yet released (compacted lazily) */
    size_t npending, pending_cap;

    rf_req_t *live[MAX_LIVE]; /* created, not yet freed */
    unsigned nlive;
    rf_req_t *held[MAX_LIVE]; /* READY, with the handler */
    unsigned nheld;
    unsigned nnew, nfree, ndone;
    unsigned fail_new_at; /* the n-th req_new fails (1-based), 0: never */
    uint32_t policy;      /* handler decisions, advanced per event */
    int closing_seen;     /* req_done returned 1 */

    struct sink sinks[SINK_SLOTS];

    /* what the owner observed, independent of the split */
    uint8_t *log;
    size_t log_len, log_cap;
};

/* ---- small helpers ------------------------------------------------------- */

static uint32_t xorshift(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

static void log_put(struct run *R, const void *p, size_t n)
{
    if (R->log_len + n > R->log_cap) {
        size_t cap = R->log_cap ? R->log_cap : 1024;
        while (cap < R->log_len + n)
            cap *= 2;
        R->log = realloc(R->log, cap);
        CHECK(R->log);
        R->log_cap = cap;
    }
    if (n)
        memcpy(R->log + R->log_len, p, n);
    R->log_len += n;
}

static void log_u32(struct run *R, uint32_t v)
{
    log_put(R, &v, sizeof(v));
}

static void log_u64(struct run *R, uint64_t v)
{
    log_put(R, &v, sizeof(v));
}

static struct fbuf *fbuf_of(rf_ref_t *ref)
{
    return (struct fbuf *)(void *)ref;
}

static void fbuf_release(rf_ref_t *ref)
{
    struct fbuf *b = fbuf_of(ref);
    CHECK(b->releases == 0);
    b->releases++;
    memset(b->data, 0xDB, b->len ? b->len : 1);
    free(b->data);
    b->data = NULL;
}

static int live_index(const struct run *R, const rf_req_t *r)
{
    for (unsigned i = 0; i < R->nlive; i++)
        if (R->live[i] == r)
            return (int)i;
    return -1;
}

static int held_index(const struct run *R, const rf_req_t *r)
{
    for (unsigned i = 0; i < R->nheld; i++)
        if (R->held[i] == r)
            return (int)i;
    return -1;
}

/* A slice a request keeps must lie in a buffer it holds a reference on, or
 * in no owned buffer at all (its arena). Reading it lets ASan check it. */
static uint32_t check_slice(const struct run *R, const rf_req_t *r, const void *p, size_t n)
{
    const uint8_t *q = p;
    uint32_t sum = 0;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < R->npending; i++) {
        const struct fbuf *b = R->pending[i];
        if (b->data == NULL || q < b->data || q >= b->data + b->len)
            continue;
        int found = 0;
        CHECK(q + n <= b->data + b->len);
        for (uint32_t k = 0; k < r->nrefs; k++)
            found |= r->refs[k] == &b->ref;
        CHECK(found);
        break;
    }
    for (size_t i = 0; i < n; i++)
        sum += q[i];
    return sum;
}

/* ---- what the handler sees ---------------------------------------------- */

static void log_stream(struct run *R, const rf_req_t *r, const rf_stream_t *st)
{
    log_u64(R, st->len);
    log_u32(R, st->done);
    if (st->fd >= 0) {
        struct sink *k = &R->sinks[st->fd - 1000];
        CHECK(st->fd >= 1000 && st->fd < 1000 + SINK_SLOTS && k->used);
        CHECK(st->head == NULL);
        CHECK(k->len == st->len);
        log_put(R, k->buf, k->len);
        return;
    }
    uint64_t total = 0;
    for (const rf_chunk_t *c = st->head; c; c = c->next) {
        check_slice(R, r, c->data, c->len);
        log_put(R, c->data, c->len);
        total += c->len;
    }
    CHECK(total == st->len);
}

static void log_request(struct run *R, const rf_req_t *r)
{
    log_put(R, "R", 1);
    log_u32(R, r->id);
    log_u32(R, r->role);
    log_u32(R, r->keep_conn);
    log_u32(R, r->nparams);
    for (uint32_t i = 0; i < r->nparams; i++) {
        const rf_param_t *p = &r->params[i];
        check_slice(R, r, p->name, p->name_len);
        check_slice(R, r, p->value, p->value_len);
        log_u32(R, p->name_len);
        log_put(R, p->name, p->name_len);
        log_u32(R, p->value_len);
        log_put(R, p->value, p->value_len);
    }
    log_stream(R, r, &r->in);
    log_stream(R, r, &r->data);
}

/* ---- the fake owner ------------------------------------------------------- */

static void destroy_req(struct run *R, rf_req_t *r)
{
    int i = live_index(R, r);
    CHECK(i >= 0);
    R->live[i] = R->live[--R->nlive];
    rf_req_release_refs(r);
    CHECK(r->nrefs == 0);
    rf_arena_t *a = r->arena;
    r->magic = 0;
    rf_arena_destroy(a);
}

/* The handler is done with r: unlink it and free it. */
static void handler_finish(struct run *R, rf_req_t *r)
{
    int i = held_index(R, r);
    CHECK(i >= 0);
    R->held[i] = R->held[--R->nheld];
    uint16_t id = r->id;
    int rc = rf_proto_req_done(&R->s, r);
    CHECK(rc == 0 || rc == 1);
    CHECK(r->state == RF_REQ_DONE);
    if (rc == 1) {
        CHECK(R->s.closing && R->s.nreqs == 0);
        R->closing_seen = 1;
    }
    log_put(R, "D", 1);
    log_u32(R, id);
    log_u32(R, (uint32_t)rc);
    destroy_req(R, r);
    R->ndone++;
}

static rf_req_t *op_req_new(void *ctx)
{
    struct run *R = ctx;
    if (R->fail_new_at && R->nnew + 1 == R->fail_new_at) {
        R->fail_new_at = 0;
        return NULL;
    }
    CHECK(R->nlive < MAX_LIVE);
    rf_arena_t *a = rf_arena_create(&R->pool);
    CHECK(a);
    rf_req_t *r = rf_arena_calloc(a, sizeof(*r));
    CHECK(r);
    r->magic = RF_REQ_MAGIC;
    r->arena = a;
    r->conn = R;
    R->live[R->nlive++] = r;
    R->nnew++;
    return r;
}

static void op_req_ready(void *ctx, rf_req_t *r)
{
    struct run *R = ctx;
    CHECK(r->magic == RF_REQ_MAGIC && r->state == RF_REQ_READY && !r->aborted);
    CHECK(live_index(R, r) >= 0 && held_index(R, r) < 0);
    CHECK(r->nv_part == NULL && r->nv_lenhave == 0);
    CHECK(r->role == RF_FCGI_AUTHORIZER || r->in.done);
    CHECK(r->role != RF_FCGI_FILTER || r->data.done);
    log_request(R, r);
    /* rf_req_param: the last pair of that name, or none. */
    const rf_param_t *want = NULL;
    for (uint32_t i = 0; i < r->nparams; i++)
        if (r->params[i].name_len == 15 && memcmp(r->params[i].name, "SCRIPT_FILENAME", 15) == 0)
            want = &r->params[i];
    CHECK(rf_req_param(r, "SCRIPT_FILENAME") == want);
    R->held[R->nheld++] = r;
    uint32_t choice = xorshift(&R->policy);
    if (choice & 1) {
        CHECK(rf_req_detach(r) == 0);
        CHECK(r->nrefs == 0);
    }
    if (choice & 2)
        handler_finish(R, r);
}

static void op_req_abort(void *ctx, rf_req_t *r)
{
    struct run *R = ctx;
    CHECK(r->magic == RF_REQ_MAGIC && r->state == RF_REQ_READY && r->aborted);
    CHECK(held_index(R, r) >= 0);
    log_put(R, "A", 1);
    log_u32(R, r->id);
    if (xorshift(&R->policy) & 4)
        handler_finish(R, r);
}

static void op_req_free(void *ctx, rf_req_t *r)
{
    struct run *R = ctx;
    CHECK(r->magic == RF_REQ_MAGIC);
    CHECK(r->state != RF_REQ_READY && r->state != RF_REQ_DONE);
    CHECK(r->next == NULL && held_index(R, r) < 0);
    log_put(R, "F", 1);
    log_u32(R, r->id);
    log_u32(R, r->state);
    destroy_req(R, r);
    R->nfree++;
}

static void sink_cleanup(void *p)
{
    struct sink *k = p;
    k->used = 0;
    k->len = 0;
}

static int sink_write(struct sink *k, const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    if (n > SINK_SIZE - k->len)
        return -ENOSPC;
    memcpy(k->buf + k->len, p, n);
    k->len += n;
    return 0;
}

static int op_spill(void *ctx, rf_req_t *r, rf_stream_t *st, const uint8_t *p, size_t n)
{
    struct run *R = ctx;
    CHECK(r->magic == RF_REQ_MAGIC && (st == &r->in || st == &r->data));
    CHECK(n > 0 || (st->fd >= 0 && st->done)); /* n == 0: the end-of-stream flush */
    if (st->fd < 0) {
        struct sink *k = NULL;
        for (int i = 0; i < SINK_SLOTS && !k; i++) {
            if (!R->sinks[i].used) {
                k = &R->sinks[i];
                st->fd = 1000 + i;
            }
        }
        CHECK(k != NULL);
        CHECK(rf_arena_cleanup_add(r->arena, sink_cleanup, k) == 0);
        k->used = 1;
        k->len = 0;
        for (const rf_chunk_t *c = st->head; c; c = c->next)
            if (sink_write(k, c->data, c->len) < 0)
                return -ENOSPC;
    }
    return sink_write(&R->sinks[st->fd - 1000], p, n);
}

/* Sends are whole records: log them, error responses (STDOUT) by header
 * only, since which limit fires first inside one record may depend on how
 * the record was split. */
static int op_send(void *ctx, const uint8_t *p, size_t n)
{
    struct run *R = ctx;
    size_t pos = 0;
    CHECK(n > 0 && n % 8 == 0);
    while (pos < n) {
        CHECK(n - pos >= RF_FCGI_HEADER_LEN);
        const uint8_t *h = p + pos;
        size_t clen = (size_t)h[4] << 8 | h[5];
        CHECK(h[0] == RF_FCGI_VERSION_1 && h[7] == 0);
        CHECK(n - pos >= RF_FCGI_HEADER_LEN + clen + h[6]);
        log_put(R, "W", 1);
        log_put(R, h, 4);
        if (h[1] == RF_FCGI_STDOUT) {
            CHECK(clen > 0 && memcmp(h + 8, "Status: ", 8) == 0);
        } else {
            CHECK(h[1] == RF_FCGI_END_REQUEST || h[1] == RF_FCGI_GET_VALUES_RESULT ||
                  h[1] == RF_FCGI_UNKNOWN_TYPE);
            log_put(R, h + 8, clen);
        }
        pos += RF_FCGI_HEADER_LEN + clen + h[6];
    }
    return 0;
}

/* ---- invariants ----------------------------------------------------------- */

static void check_invariants(struct run *R)
{
    const rf_proto_limits_t *lim = &R->lim;
    unsigned n = 0;
    int last_found = R->s.last == NULL;

    for (const rf_req_t *r = R->s.reqs; r; r = r->next) {
        CHECK(++n <= MAX_LIVE);
        CHECK(r->magic == RF_REQ_MAGIC);
        CHECK(live_index(R, r) >= 0);
        CHECK(r->state >= RF_REQ_PARAMS && r->state <= RF_REQ_READY);
        CHECK((r->state == RF_REQ_READY) == (held_index(R, r) >= 0));
        CHECK(r->aborted == 0 || r->state == RF_REQ_READY);
        CHECK(r->params_bytes <= lim->max_params_bytes);
        CHECK(r->nparams <= lim->max_params);
        CHECK(r->nparams <= r->params_cap);
        CHECK(r->nrefs <= r->refs_cap);
        CHECK(r->body_mem <= lim->buffer_memory);
        CHECK(r->in.len + r->data.len <= lim->max_body);
        CHECK(r->role == RF_FCGI_FILTER || r->data.len == 0);
        CHECK(r->nv_part == NULL || r->nv_part_have < r->nv_part_need);
        CHECK(r->nv_lenhave < sizeof(r->nv_lenbuf));
        for (const rf_req_t *o = r->next; o; o = o->next)
            CHECK(o->id != r->id);
        last_found |= R->s.last == r;
    }
    CHECK(n == R->s.nreqs);
    CHECK(last_found);
    CHECK(R->s.nreqs <= lim->max_multiplex);
    /* Finished requests are freed at once, so everything alive is listed. */
    CHECK(n == R->nlive);

    /* Each pending buffer's count is exactly the references requests hold;
     * the released ones leave the list. */
    for (size_t i = 0; i < R->npending; i++)
        R->pending[i]->held = 0;
    for (unsigned i = 0; i < R->nlive; i++) {
        const rf_req_t *r = R->live[i];
        for (uint32_t k = 0; k < r->nrefs; k++) {
            struct fbuf *b = fbuf_of(r->refs[k]);
            CHECK(b->releases == 0);
            b->held++;
        }
    }
    size_t keep = 0;
    for (size_t i = 0; i < R->npending; i++) {
        struct fbuf *b = R->pending[i];
        if (b->releases) {
            CHECK(b->releases == 1 && b->ref.refs == 0);
            continue;
        }
        CHECK(b->ref.refs == b->held && b->held > 0);
        R->pending[keep++] = b;
    }
    R->npending = keep;
}

/* ---- one pass --------------------------------------------------------------- */

static int feed_owned(struct run *R, const uint8_t *p, size_t n)
{
    struct fbuf *b = calloc(1, sizeof(*b));
    CHECK(b);
    b->data = malloc(n ? n : 1);
    CHECK(b->data);
    memcpy(b->data, p, n);
    b->len = n;
    b->ref.refs = 1;
    b->ref.release = fbuf_release;
    b->next = R->bufs;
    R->bufs = b;
    if (R->npending == R->pending_cap) {
        R->pending_cap = R->pending_cap ? 2 * R->pending_cap : 64;
        R->pending = realloc(R->pending, R->pending_cap * sizeof(*R->pending));
        CHECK(R->pending);
    }
    R->pending[R->npending++] = b;
    int rc = rf_proto_feed(&R->s, b->data, n, &b->ref);
    rf_ref_put(&b->ref);
    return rc;
}

static int feed_unowned(struct run *R, const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy);
    memcpy(copy, p, n);
    int rc = rf_proto_feed(&R->s, copy, n, NULL);
    memset(copy, 0xDB, n);
    free(copy);
    return rc;
}

static void run_pass(struct run *R, const uint8_t *data, size_t size, enum feed_mode mode,
                     uint32_t seed)
{
    uint32_t cut_rng = seed | 1;
    size_t pos = 0;
    int rc = 0;

    rf_arena_pool_init(&R->pool, RF_ARENA_CHUNK_SIZE, 8);
    R->lim.max_params_bytes = 4096;
    R->lim.max_params = 50;
    R->lim.max_multiplex = 8;
    R->lim.max_per_connection = (seed >> 4) % 4 == 0 ? 3 : 0;
    R->lim.buffer_memory = 1024;
    R->lim.max_body = 8192;
    R->lim.max_conns = 100;
    R->lim.max_reqs = 8;
    R->ops.req_new = op_req_new;
    R->ops.req_ready = op_req_ready;
    R->ops.req_abort = op_req_abort;
    R->ops.req_free = op_req_free;
    R->ops.spill = op_spill;
    R->ops.send = op_send;
    R->policy = (seed ^ 0x9e3779b9u) | 1;
    R->fail_new_at = (seed & 0x3f) == 0 ? 1 + (seed >> 8) % 8 : 0;
    rf_proto_init(&R->s, &R->ops, R, &R->lim, &R->stats);

    while (pos < size) {
        size_t n = size - pos;
        if (mode == FEED_BYTES) {
            n = 1;
        } else if (mode != FEED_WHOLE) {
            uint32_t x = xorshift(&cut_rng);
            size_t want = 1 + (x >> 8) % ((size_t)1 << (x % 10));
            if (want < n)
                n = want;
        }
        rc = mode == FEED_UNOWNED ? feed_unowned(R, data + pos, n) : feed_owned(R, data + pos, n);
        pos += n;
        check_invariants(R);
        if (rc < 0)
            break;
    }
    CHECK(rc == 0 || rc == -EPROTO || rc == -E2BIG || rc == -ENOMEM);
    CHECK(rc >= 0 || R->s.error != NULL || rc == -ENOMEM);
    log_put(R, "E", 1);
    log_u32(R, (uint32_t)rc);
    if (rc == 0)
        log_u32(R, (uint32_t)rf_proto_idle(&R->s));

    /* Everything still alive is read once more (ASan checks the slices). */
    for (const rf_req_t *r = R->s.reqs; r; r = r->next) {
        for (uint32_t i = 0; i < r->nparams; i++) {
            check_slice(R, r, r->params[i].name, r->params[i].name_len);
            check_slice(R, r, r->params[i].value, r->params[i].value_len);
        }
    }

    /* The connection goes away; the handler then finishes what it holds. */
    rf_proto_close(&R->s);
    for (const rf_req_t *r = R->s.reqs; r; r = r->next)
        CHECK(r->state == RF_REQ_READY && r->aborted);
    check_invariants(R);
    rf_proto_close(&R->s);
    while (R->nheld)
        handler_finish(R, R->held[0]);
    check_invariants(R);

    CHECK(R->s.nreqs == 0 && R->s.reqs == NULL && R->s.last == NULL);
    CHECK(R->nlive == 0);
    CHECK(R->nnew == R->nfree + R->ndone);
    for (struct fbuf *b = R->bufs, *next; b; b = next) {
        next = b->next;
        CHECK(b->ref.refs == 0 && b->releases == 1);
        free(b);
    }
    for (int i = 0; i < SINK_SLOTS; i++)
        CHECK(!R->sinks[i].used);

    /* Counters, except `spilled`: a body that is over max_body within one
     * record is refused before spilling when the record arrives whole, and
     * may spill first when it arrives in pieces. */
    const rf_proto_stats_t *st = &R->stats;
    const uint64_t counters[] = {st->requests,      st->protocol_errors, st->limit_params,
                                 st->limit_body,    st->limit_multiplex, st->limit_per_connection,
                                 st->aborted,       st->records_ignored, st->get_values,
                                 st->unknown_types, st->unknown_roles};
    log_put(R, counters, sizeof(counters));
    log_u32(R, R->s.closing);
    log_u32(R, (uint32_t)R->closing_seen);
    rf_arena_pool_drain(&R->pool);
    free(R->pending);
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum feed_mode modes[] = {FEED_WHOLE, FEED_PIECES, FEED_UNOWNED, FEED_BYTES};
    uint32_t seed = fnv1a(data, size);
    struct run *first = NULL;

    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        if (modes[m] == FEED_BYTES && size > BYTES_MAX)
            continue;
        struct run *R = calloc(1, sizeof(*R));
        CHECK(R);
        run_pass(R, data, size, modes[m], seed);
        if (first == NULL) {
            first = R;
            continue;
        }
        /* The same observations however the input was cut. */
        if (R->log_len != first->log_len || memcmp(R->log, first->log, R->log_len) != 0) {
            fprintf(stderr, "feed mode %zu observed something else than whole input\n", m);
            abort();
        }
        free(R->log);
        free(R);
    }
    free(first->log);
    free(first);
    return 0;
}
