/*
 * rf_proto: per-connection FastCGI request state machine. Everything a
 * client can get wrong is decided here and turned into one of three
 * outcomes: ignore the record (and count it), answer the request with an
 * error response and close after flushing, or close at once. See rf_proto.h
 * for the contract with the connection owner.
 */
#include "rf_proto.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rf_assert.h"

/* Hard cap for one name-value pair when max_params_bytes is unlimited. */
#define RF_PROTO_PAIR_CAP (64u << 20)

/* Body bytes a request may keep as slices of receive buffers; beyond this
 * they are copied into its arena, so one upload cannot hold a large part of
 * the thread's receive-buffer ring. */
#define RF_PROTO_ZC_BODY (64u << 10)

const char *rf_req_state_name(int state)
{
    switch (state) {
    case RF_REQ_PARAMS:
        return "params";
    case RF_REQ_STDIN:
        return "stdin";
    case RF_REQ_DATA:
        return "data";
    case RF_REQ_READY:
        return "ready";
    case RF_REQ_DONE:
        return "done";
    }
    return "unknown";
}

void rf_proto_init(rf_proto_t *s, const rf_proto_ops_t *ops, void *ctx,
                   const rf_proto_limits_t *limits, rf_proto_stats_t *stats)
{
    memset(s, 0, sizeof(*s));
    rf_fcgi_parser_init(&s->parser);
    s->ops = ops;
    s->ctx = ctx;
    s->limits = limits;
    s->stats = stats;
}

void rf_proto_req_init(rf_req_t *r, uint16_t id)
{
    RF_ASSERT(r->magic == RF_REQ_MAGIC);
    rf_arena_t *a = r->arena;
    void *conn = r->conn;
    memset(r, 0, sizeof(*r));
    r->magic = RF_REQ_MAGIC;
    r->arena = a;
    r->conn = conn;
    r->id = id;
    r->in.fd = -1;
    r->in.tail = &r->in.head;
    r->data.fd = -1;
    r->data.tail = &r->data.head;
    r->script_name = -1;
}

const rf_param_t *rf_req_param(const rf_req_t *r, const char *name)
{
    size_t len = strlen(name);
    for (uint32_t i = r->nparams; i-- > 0;) {
        const rf_param_t *p = &r->params[i];
        if (p->name_len == len && memcmp(p->name, name, len) == 0)
            return p;
    }
    return NULL;
}

void rf_req_release_refs(rf_req_t *r)
{
    for (uint32_t i = 0; i < r->nrefs; i++)
        rf_ref_put(r->refs[i]);
    r->nrefs = 0;
}

static int rf_req_detach_stream(rf_req_t *r, rf_stream_t *st)
{
    for (rf_chunk_t *c = st->head; c; c = c->next) {
        void *copy = rf_arena_memdup(r->arena, c->data, c->len);
        if (copy == NULL && c->len)
            return -ENOMEM;
        c->data = copy;
    }
    return 0;
}

int rf_req_detach(rf_req_t *r)
{
    if (r->nrefs == 0)
        return 0;
    for (uint32_t i = 0; i < r->nparams; i++) {
        rf_param_t *p = &r->params[i];
        char *n = rf_arena_memdup(r->arena, p->name, p->name_len);
        char *v = rf_arena_memdup(r->arena, p->value, p->value_len);
        if ((n == NULL && p->name_len) || (v == NULL && p->value_len))
            return -ENOMEM;
        p->name = n;
        p->value = v;
    }
    if (rf_req_detach_stream(r, &r->in) < 0 || rf_req_detach_stream(r, &r->data) < 0)
        return -ENOMEM;
    rf_req_release_refs(r);
    return 0;
}

/* Keep a reference on the buffer a slice points into. Buffers arrive in
 * order, so only the newest reference can be the same owner again. */
static int rf_req_hold(rf_req_t *r, rf_ref_t *owner)
{
    if (r->nrefs && r->refs[r->nrefs - 1] == owner)
        return 0;
    if (r->nrefs == r->refs_cap) {
        uint32_t cap = r->refs_cap ? r->refs_cap * 2 : 4;
        rf_ref_t **refs = rf_arena_alloc(r->arena, cap * sizeof(*refs));
        if (refs == NULL)
            return -ENOMEM;
        if (r->nrefs)
            memcpy(refs, r->refs, r->nrefs * sizeof(*refs));
        r->refs = refs;
        r->refs_cap = cap;
    }
    rf_ref_get(owner);
    r->refs[r->nrefs++] = owner;
    return 0;
}

/* Make bytes outlive the call: a reference on the buffer, or a copy. */
static const uint8_t *rf_req_keep(rf_req_t *r, const uint8_t *p, size_t n, rf_ref_t *owner)
{
    if (owner == NULL)
        return rf_arena_memdup(r->arena, p, n);
    return rf_req_hold(r, owner) < 0 ? NULL : p;
}

static rf_req_t *rf_proto_find(rf_proto_t *s, uint16_t id)
{
    if (s->last && s->last->id == id)
        return s->last;
    for (rf_req_t *r = s->reqs; r; r = r->next) {
        if (r->id == id) {
            s->last = r;
            return r;
        }
    }
    return NULL;
}

static void rf_proto_unlink(rf_proto_t *s, rf_req_t *r)
{
    for (rf_req_t **pp = &s->reqs; *pp; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            r->next = NULL;
            s->nreqs--;
            if (s->last == r)
                s->last = NULL;
            return;
        }
    }
    RF_ASSERT(!"request not in its session");
}

static int rf_proto_send_end(rf_proto_t *s, uint16_t id, uint8_t proto_status)
{
    uint8_t rec[RF_FCGI_END_REQUEST_LEN];
    rf_fcgi_end_request(rec, id, 0, proto_status);
    return s->ops->send(s->ctx, rec, sizeof(rec));
}

/*
 * Answer r with an HTTP error through STDOUT + END_REQUEST, free it, and
 * make the connection close once the answer is flushed: after a limit the
 * rest of the client's stream for this request is not worth reading.
 */
static int rf_proto_reject(rf_proto_t *s, rf_req_t *r, const char *status, const char *reason)
{
    char body[512];
    int blen = snprintf(body, sizeof(body), "Status: %s\r\nContent-Type: text/plain\r\n\r\n%s\n",
                        status, reason);
    if (blen < 0 || (size_t)blen >= sizeof(body))
        blen = (int)sizeof(body) - 1;
    uint8_t out[sizeof(body) + 64];
    long n = rf_fcgi_stream_encode(out, sizeof(out), RF_FCGI_STDOUT, r->id, body, (size_t)blen);
    RF_ASSERT(n > 0);
    rf_fcgi_end_request(out + n, r->id, 0, RF_FCGI_REQUEST_COMPLETE);
    n += RF_FCGI_END_REQUEST_LEN;
    int rc = s->ops->send(s->ctx, out, (size_t)n);
    rf_proto_unlink(s, r);
    s->ops->req_free(s->ctx, r);
    s->error = reason;
    s->closing = 1;
    return rc < 0 ? rc : -E2BIG;
}

static int rf_proto_param_add(rf_proto_t *s, rf_req_t *r, const rf_fcgi_nv_t *nv)
{
    const rf_proto_limits_t *lim = s->limits;
    if (lim->max_params && r->nparams >= lim->max_params) {
        RF_STAT_INC(s->stats, limit_params);
        return rf_proto_reject(s, r, "431 Request Header Fields Too Large",
                               "too many FastCGI params (request.max_params)");
    }
    if (r->nparams == r->params_cap) {
        uint32_t cap = r->params_cap ? r->params_cap * 2 : 32;
        rf_param_t *p = rf_arena_alloc(r->arena, cap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        if (r->nparams)
            memcpy(p, r->params, r->nparams * sizeof(*p));
        r->params = p;
        r->params_cap = cap;
    }
    if (nv->name_len == 11 && memcmp(nv->name, "SCRIPT_NAME", 11) == 0)
        r->script_name = (int32_t)r->nparams;
    rf_param_t *p = &r->params[r->nparams++];
    p->name = (const char *)nv->name;
    p->name_len = nv->name_len;
    p->value = (const char *)nv->value;
    p->value_len = nv->value_len;
    return 0;
}

static int rf_proto_pair_too_big(rf_proto_t *s, rf_req_t *r)
{
    RF_STAT_INC(s->stats, limit_params);
    return rf_proto_reject(s, r, "431 Request Header Fields Too Large",
                           "FastCGI params too large (request.max_params_bytes)");
}

/*
 * Decode PARAMS content in place. A pair that does not end in this slice is
 * gathered: its length prefix in nv_lenbuf until the total size is known,
 * then the whole pair in an arena copy of exactly that size.
 */
static int rf_proto_params(rf_proto_t *s, rf_req_t *r, const uint8_t *p, size_t n, rf_ref_t *owner)
{
    uint32_t max = s->limits->max_params_bytes ? s->limits->max_params_bytes : RF_PROTO_PAIR_CAP;
    rf_fcgi_nv_t nv;
    uint32_t need;
    int rc;

    while (n > 0) {
        if (r->nv_part) {
            size_t take = r->nv_part_need - r->nv_part_have;
            if (take > n)
                take = n;
            memcpy(r->nv_part + r->nv_part_have, p, take);
            r->nv_part_have += (uint32_t)take;
            p += take;
            n -= take;
            if (r->nv_part_have < r->nv_part_need)
                return 0;
            rc = rf_fcgi_nv_decode(r->nv_part, r->nv_part_need, max, &nv, &need);
            RF_ASSERT(rc == (int)r->nv_part_need);
            r->nv_part = NULL;
            if ((rc = rf_proto_param_add(s, r, &nv)) < 0)
                return rc;
            continue;
        }
        if (r->nv_lenhave) {
            /* Grow the length prefix byte by byte until the pair size is known. */
            r->nv_lenbuf[r->nv_lenhave++] = *p++;
            n--;
            rc = rf_fcgi_nv_decode(r->nv_lenbuf, r->nv_lenhave, max, &nv, &need);
            if (rc > 0) { /* both lengths zero-sized: the pair is complete */
                r->nv_lenhave = 0;
                if ((rc = rf_proto_param_add(s, r, &nv)) < 0)
                    return rc;
                continue;
            }
            if (rc == -E2BIG)
                return rf_proto_pair_too_big(s, r);
            if (rc != -EAGAIN)
                return -EPROTO;
            if (need == 0) {
                RF_ASSERT(r->nv_lenhave < sizeof(r->nv_lenbuf));
                continue;
            }
            r->nv_part = rf_arena_alloc(r->arena, need);
            if (r->nv_part == NULL)
                return -ENOMEM;
            memcpy(r->nv_part, r->nv_lenbuf, r->nv_lenhave);
            r->nv_part_have = r->nv_lenhave;
            r->nv_part_need = need;
            r->nv_lenhave = 0;
            continue;
        }
        rc = rf_fcgi_nv_decode(p, n, max, &nv, &need);
        if (rc > 0) {
            if (owner == NULL) {
                nv.name = rf_arena_memdup(r->arena, nv.name, nv.name_len);
                nv.value = rf_arena_memdup(r->arena, nv.value, nv.value_len);
                if ((nv.name == NULL && nv.name_len) || (nv.value == NULL && nv.value_len))
                    return -ENOMEM;
            } else if (rf_req_hold(r, owner) < 0) {
                return -ENOMEM;
            }
            int arc = rf_proto_param_add(s, r, &nv);
            if (arc < 0)
                return arc;
            p += rc;
            n -= (size_t)rc;
            continue;
        }
        if (rc == -E2BIG)
            return rf_proto_pair_too_big(s, r);
        if (rc != -EAGAIN)
            return -EPROTO;
        if (need) {
            r->nv_part = rf_arena_alloc(r->arena, need);
            if (r->nv_part == NULL)
                return -ENOMEM;
            memcpy(r->nv_part, p, n);
            r->nv_part_have = (uint32_t)n;
            r->nv_part_need = need;
        } else {
            RF_ASSERT(n < sizeof(r->nv_lenbuf));
            memcpy(r->nv_lenbuf, p, n);
            r->nv_lenhave = (uint8_t)n;
        }
        return 0;
    }
    return 0;
}

static int rf_proto_spill_failed(rf_proto_t *s, rf_req_t *r)
{
    RF_STAT_INC(s->stats, limit_body);
    return rf_proto_reject(s, r, "500 Internal Server Error",
                           "could not spool the request body to a temp file");
}

static int rf_proto_stream(rf_proto_t *s, rf_req_t *r, rf_stream_t *st, const uint8_t *p, size_t n,
                           rf_ref_t *owner)
{
    const rf_proto_limits_t *lim = s->limits;
    st->len += n;
    if (lim->max_body && r->in.len + r->data.len > lim->max_body) {
        RF_STAT_INC(s->stats, limit_body);
        return rf_proto_reject(s, r, "413 Content Too Large",
                               "request body too large (request.max_body)");
    }
    if (st->fd < 0 && r->body_mem + n <= lim->buffer_memory) {
        rf_chunk_t *c = rf_arena_alloc(r->arena, sizeof(*c));
        if (c == NULL)
            return -ENOMEM;
        c->data = r->body_mem + n <= RF_PROTO_ZC_BODY ? rf_req_keep(r, p, n, owner)
                                                      : rf_arena_memdup(r->arena, p, n);
        if (c->data == NULL)
            return -ENOMEM;
        c->len = (uint32_t)n;
        c->next = NULL;
        *st->tail = c;
        st->tail = &c->next;
        r->body_mem += n;
        return 0;
    }
    int first = st->fd < 0;
    int rc = s->ops->spill(s->ctx, r, st, p, n);
    if (rc < 0)
        return rf_proto_spill_failed(s, r);
    RF_ASSERT(st->fd >= 0);
    if (first) {
        RF_STAT_INC(s->stats, spilled);
        /* The spill wrote the in-memory chunks too: forget them. */
        for (rf_chunk_t *c = st->head; c; c = c->next)
            r->body_mem -= c->len;
        st->head = NULL;
        st->tail = &st->head;
    }
    return 0;
}

static int rf_proto_ready(rf_proto_t *s, rf_req_t *r)
{
    r->state = RF_REQ_READY;
    s->ops->req_ready(s->ctx, r);
    return 0;
}

static int rf_proto_begin(rf_proto_t *s, const rf_fcgi_event_t *ev)
{
    const rf_proto_limits_t *lim = s->limits;
    if (rf_proto_find(s, ev->id)) {
        s->error = "BEGIN_REQUEST for a request id already in flight";
        return -EPROTO;
    }
    if (s->closing) {
        /* After a request without KEEP_CONN or past the per-connection limit:
         * the connection closes once the requests in flight are answered. */
        RF_STAT_INC(s->stats, records_ignored);
        return 0;
    }
    uint16_t role = rf_fcgi_begin_role(ev->data);
    uint8_t flags = rf_fcgi_begin_flags(ev->data);
    /* Refused requests still honour KEEP_CONN: without it the connection
     * ends after the answer. */
    if (role < RF_FCGI_RESPONDER || role > RF_FCGI_FILTER) {
        RF_STAT_INC(s->stats, unknown_roles);
        if (!(flags & RF_FCGI_KEEP_CONN))
            s->closing = 1;
        return rf_proto_send_end(s, ev->id, RF_FCGI_UNKNOWN_ROLE);
    }
    if (lim->max_multiplex && s->nreqs >= lim->max_multiplex) {
        RF_STAT_INC(s->stats, limit_multiplex);
        if (!(flags & RF_FCGI_KEEP_CONN))
            s->closing = 1;
        return rf_proto_send_end(s, ev->id, RF_FCGI_OVERLOADED);
    }
    rf_req_t *r = s->ops->req_new(s->ctx);
    if (r == NULL)
        return -ENOMEM;
    rf_proto_req_init(r, ev->id);
    r->role = (uint8_t)role;
    r->keep_conn = (flags & RF_FCGI_KEEP_CONN) != 0;
    r->state = RF_REQ_PARAMS;
    r->next = s->reqs;
    s->reqs = r;
    s->last = r;
    s->nreqs++;
    s->served++;
    RF_STAT_INC(s->stats, requests);
    if (!r->keep_conn)
        s->closing = 1;
    if (lim->max_per_connection && s->served >= lim->max_per_connection) {
        if (!s->closing)
            RF_STAT_INC(s->stats, limit_per_connection);
        s->closing = 1;
    }
    return 0;
}

static int rf_proto_abort(rf_proto_t *s, rf_req_t *r)
{
    RF_STAT_INC(s->stats, aborted);
    if (r->state == RF_REQ_READY) {
        if (!r->aborted) {
            r->aborted = 1;
            s->ops->req_abort(s->ctx, r);
        }
        return 0;
    }
    /* Not yet handed to anyone: answer the abort ourselves. */
    rf_proto_unlink(s, r);
    int rc = rf_proto_send_end(s, r->id, RF_FCGI_REQUEST_COMPLETE);
    s->ops->req_free(s->ctx, r);
    return rc;
}

static int rf_proto_management(rf_proto_t *s, const rf_fcgi_event_t *ev)
{
    if (ev->type == RF_FCGI_GET_VALUES) {
        size_t room = sizeof(s->gv) - s->gv_len;
        size_t take = ev->len < room ? ev->len : room;
        memcpy(s->gv + s->gv_len, ev->data, take);
        s->gv_len = (uint16_t)(s->gv_len + take);
        if (!ev->last)
            return 0;
        size_t qlen = s->gv_len;
        if (ev->content_len > sizeof(s->gv)) {
            /* The query was cut at our gather limit and may end mid-pair:
             * answer the pairs that arrived whole. (This used to hand the cut
             * query to the encoder, which rejects a partial pair, so a valid
             * query over 256 bytes closed the connection as malformed.) */
            size_t whole = 0;
            rf_fcgi_nv_t nv;
            uint32_t need;
            int w;
            while ((w = rf_fcgi_nv_decode(s->gv + whole, qlen - whole, UINT32_MAX, &nv, &need)) > 0)
                whole += (size_t)w;
            qlen = whole;
        }
        uint8_t out[RF_FCGI_HEADER_LEN + 128];
        const rf_proto_limits_t *lim = s->limits;
        long n = rf_fcgi_get_values_result(out, sizeof(out), s->gv, qlen, lim->max_conns,
                                           lim->max_reqs, 1);
        s->gv_len = 0;
        RF_STAT_INC(s->stats, get_values);
        if (n == -EPROTO) {
            /* A query that arrived whole is malformed: close the connection. */
            s->error = "malformed FCGI_GET_VALUES";
            return -EPROTO;
        }
        RF_ASSERT(n > 0);
        return s->ops->send(s->ctx, out, (size_t)n);
    }
    if (!ev->last)
        return 0;
    RF_STAT_INC(s->stats, unknown_types);
    uint8_t out[RF_FCGI_UNKNOWN_TYPE_LEN];
    rf_fcgi_unknown_type(out, ev->type);
    return s->ops->send(s->ctx, out, sizeof(out));
}

static int rf_proto_event(rf_proto_t *s, const rf_fcgi_event_t *ev, rf_ref_t *owner)
{
    rf_req_t *r;
    switch (ev->type) {
    case RF_FCGI_BEGIN_REQUEST:
        return rf_proto_begin(s, ev);
    case RF_FCGI_GET_VALUES:
        return rf_proto_management(s, ev);
    case RF_FCGI_END_REQUEST:
    case RF_FCGI_STDOUT:
    case RF_FCGI_STDERR:
    case RF_FCGI_GET_VALUES_RESULT:
    case RF_FCGI_UNKNOWN_TYPE:
        s->error = "record type only an application sends";
        return -EPROTO;
    case RF_FCGI_ABORT_REQUEST:
    case RF_FCGI_PARAMS:
    case RF_FCGI_STDIN:
    case RF_FCGI_DATA:
        break;
    default:
        return rf_proto_management(s, ev);
    }

    r = rf_proto_find(s, ev->id);
    if (r == NULL) {
        /* Records for an id that is not in flight: the request may have been
         * answered early (a limit) or aborted; the spec says ignore them. */
        if (ev->first)
            RF_STAT_INC(s->stats, records_ignored);
        return 0;
    }
    if (ev->type == RF_FCGI_ABORT_REQUEST)
        return ev->last ? rf_proto_abort(s, r) : 0;

    if (ev->type == RF_FCGI_PARAMS) {
        if (r->state != RF_REQ_PARAMS) {
            s->error = "PARAMS after the end of the params stream";
            return -EPROTO;
        }
        if (ev->content_len == 0) {
            if (r->nv_part || r->nv_lenhave) {
                s->error = "params stream ends inside a name-value pair";
                return -EPROTO;
            }
            /* An authorizer gets no STDIN (FastCGI 1.0 §6.3). */
            if (r->role == RF_FCGI_AUTHORIZER)
                return rf_proto_ready(s, r);
            r->state = RF_REQ_STDIN;
            return 0;
        }
        r->params_bytes += ev->len;
        if (s->limits->max_params_bytes && r->params_bytes > s->limits->max_params_bytes)
            return rf_proto_pair_too_big(s, r);
        return rf_proto_params(s, r, ev->data, ev->len, owner);
    }

    rf_stream_t *st = ev->type == RF_FCGI_STDIN ? &r->in : &r->data;
    int want = ev->type == RF_FCGI_STDIN ? RF_REQ_STDIN : RF_REQ_DATA;
    if (r->state == RF_REQ_PARAMS) {
        s->error = "body record before the end of the params stream";
        return -EPROTO;
    }
    if (r->state != want) {
        /* e.g. STDIN after an authorizer was dispatched, DATA for a
         * responder: not for us. */
        if (ev->first)
            RF_STAT_INC(s->stats, records_ignored);
        return 0;
    }
    if (ev->content_len == 0) {
        st->done = 1;
        /* The spill may hold bytes back to write in large aligned pieces:
         * they must be in the file before anyone reads it. */
        if (st->fd >= 0 && s->ops->spill(s->ctx, r, st, NULL, 0) < 0)
            return rf_proto_spill_failed(s, r);
        if (r->role == RF_FCGI_FILTER && ev->type == RF_FCGI_STDIN) {
            r->state = RF_REQ_DATA;
            return 0;
        }
        return rf_proto_ready(s, r);
    }
    return rf_proto_stream(s, r, st, ev->data, ev->len, owner);
}

int rf_proto_feed(rf_proto_t *s, const uint8_t *buf, size_t len, rf_ref_t *owner)
{
    size_t off = 0;
    while (off < len) {
        rf_fcgi_event_t ev;
        size_t used;
        int rc = rf_fcgi_parse(&s->parser, buf + off, len - off, &used, &ev);
        off += used;
        if (rc == -EAGAIN)
            break;
        if (rc < 0) {
            RF_STAT_INC(s->stats, protocol_errors);
            s->error = "malformed FastCGI record header";
            return rc;
        }
        rc = rf_proto_event(s, &ev, owner);
        if (rc < 0) {
            if (rc == -EPROTO)
                RF_STAT_INC(s->stats, protocol_errors);
            return rc;
        }
    }
    return 0;
}

int rf_proto_req_done(rf_proto_t *s, rf_req_t *r)
{
    rf_proto_unlink(s, r);
    r->state = RF_REQ_DONE;
    return s->closing && s->nreqs == 0;
}

void rf_proto_close(rf_proto_t *s)
{
    s->closing = 1;
    rf_req_t *next;
    for (rf_req_t *r = s->reqs; r; r = next) {
        next = r->next;
        if (r->state == RF_REQ_READY) {
            if (!r->aborted) {
                r->aborted = 1;
                s->ops->req_abort(s->ctx, r);
            }
            continue;
        }
        rf_proto_unlink(s, r);
        s->ops->req_free(s->ctx, r);
    }
}

int rf_proto_idle(const rf_proto_t *s)
{
    if (!rf_fcgi_parser_idle(&s->parser))
        return 0;
    for (const rf_req_t *r = s->reqs; r; r = r->next)
        if (r->state < RF_REQ_READY)
            return 0;
    return 1;
}
