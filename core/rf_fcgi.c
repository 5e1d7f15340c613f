/*
 * rf_fcgi: the FastCGI 1.0 codec behind rf_fcgi.h. The record parser is a
 * small state machine that takes bytes in whatever pieces the socket delivers
 * and hands back slices of the caller's buffer, so request bodies are never
 * copied here; the name-value decoder works in place on a PARAMS or
 * GET_VALUES body; the encoders write the records a responder sends. Nothing
 * in this file makes a syscall, allocates or logs: the caller decides what an
 * error means and says so once.
 */
#include "rf_fcgi.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "rf_assert.h"

/*
 * Record types that belong to a request. Id 0 is reserved for management
 * records, so one of these with id 0 cannot be attributed to any request and
 * the stream is malformed. Types outside this mask are reported whatever
 * their id: the caller answers management records and rejects the rest.
 */
#define RF_FCGI_REQUEST_TYPES                                                                      \
    ((1u << RF_FCGI_BEGIN_REQUEST) | (1u << RF_FCGI_ABORT_REQUEST) | (1u << RF_FCGI_PARAMS) |      \
     (1u << RF_FCGI_STDIN) | (1u << RF_FCGI_DATA))

/* Name-value lengths below 128 take one byte; longer ones take four, the
 * first with its high bit set, leaving 31 bits for the length. */
#define RF_FCGI_NV_SHORT_LIMIT 128u
#define RF_FCGI_NV_LONG        0x80u
#define RF_FCGI_NV_MAX_LEN     0x7fffffffu

void rf_fcgi_parser_init(rf_fcgi_parser_t *p)
{
    memset(p, 0, sizeof(*p));
}

int rf_fcgi_parser_idle(const rf_fcgi_parser_t *p)
{
    return !p->in_record && p->hdr_have == 0;
}

/*
 * Validate a complete header and arm the parser for its content. On error the
 * header is kept in p->hdr with hdr_have == 8, so every later call fails on
 * the same header instead of resynchronising on garbage.
 */
static int rf_fcgi_start_record(rf_fcgi_parser_t *p, const uint8_t *h)
{
    uint8_t type = h[1];
    uint16_t id = (uint16_t)((h[2] << 8) | h[3]);
    uint16_t content_len = (uint16_t)((h[4] << 8) | h[5]);

    if (RF_UNLIKELY(h[0] != RF_FCGI_VERSION_1 ||
                    (id == 0 && type < 32 && ((RF_FCGI_REQUEST_TYPES >> type) & 1u)) ||
                    (type == RF_FCGI_BEGIN_REQUEST && content_len != 8))) {
        if (h != p->hdr)
            memcpy(p->hdr, h, RF_FCGI_HEADER_LEN);
        p->hdr_have = RF_FCGI_HEADER_LEN;
        p->in_record = 0;
        return -EPROTO;
    }
    /* content_len + padding may exceed 65535: php-fpm refuses that for some
     * types, but nothing in the framing depends on it, so we accept it. */
    p->type = type;
    p->id = id;
    p->content_len = content_len;
    p->content_left = content_len;
    p->padding_left = h[6];
    p->hdr_have = 0;
    p->gather_have = 0;
    p->first = 1;
    p->in_record = 1;
    return 0;
}

static inline void rf_fcgi_emit(const rf_fcgi_parser_t *p, rf_fcgi_event_t *ev, const uint8_t *data,
                                uint32_t len, uint8_t first, uint8_t last)
{
    ev->data = data;
    ev->len = len;
    ev->id = p->id;
    ev->content_len = p->content_len;
    ev->type = p->type;
    ev->first = first;
    ev->last = last;
}

/*
 * The record's content is all delivered: skip as much padding as the buffer
 * holds now, so the parser is idle straight after a record's last event
 * whenever its padding came along with it.
 */
static inline size_t rf_fcgi_end_content(rf_fcgi_parser_t *p, size_t avail)
{
    size_t n = p->padding_left;

    if (n > avail)
        n = avail;
    p->padding_left = (uint8_t)(p->padding_left - n);
    p->in_record = p->padding_left != 0;
    return n;
}

int rf_fcgi_parse(rf_fcgi_parser_t *p, const uint8_t *buf, size_t len, size_t *consumed,
                  rf_fcgi_event_t *ev)
{
    size_t pos = 0;

    for (;;) {
        size_t avail = len - pos;

        if (!p->in_record) {
            const uint8_t *h;
            int rc;

            /* Fast path: a whole header in the buffer is read where it lies. */
            if (RF_LIKELY(p->hdr_have == 0 && avail >= RF_FCGI_HEADER_LEN)) {
                h = buf + pos;
                pos += RF_FCGI_HEADER_LEN;
            } else {
                size_t n = RF_FCGI_HEADER_LEN - p->hdr_have;

                if (n > avail)
                    n = avail;
                if (n) {
                    memcpy(p->hdr + p->hdr_have, buf + pos, n);
                    p->hdr_have = (uint8_t)(p->hdr_have + n);
                    pos += n;
                }
                if (p->hdr_have < RF_FCGI_HEADER_LEN) {
                    *consumed = pos;
                    return -EAGAIN;
                }
                h = p->hdr;
            }
            rc = rf_fcgi_start_record(p, h);
            if (RF_UNLIKELY(rc < 0)) {
                *consumed = pos;
                return rc;
            }
            if (p->content_left == 0) {
                /* An empty record is an event of its own: it ends a stream. */
                rf_fcgi_emit(p, ev, buf + pos, 0, 1, 1);
                pos += rf_fcgi_end_content(p, len - pos);
                *consumed = pos;
                return 1;
            }
            avail = len - pos;
        }

        if (p->content_left) {
            uint32_t n;

            if (avail == 0) {
                *consumed = pos;
                return -EAGAIN;
            }
            if (RF_UNLIKELY(p->type == RF_FCGI_BEGIN_REQUEST)) {
                /* Callers read role and flags straight from the event, so the
                 * 8-byte body is delivered whole, gathered here if split. */
                const uint8_t *body;

                if (p->gather_have == 0 && avail >= 8) {
                    body = buf + pos;
                    pos += 8;
                } else {
                    size_t g = 8u - p->gather_have;

                    if (g > avail)
                        g = avail;
                    memcpy(p->gather + p->gather_have, buf + pos, g);
                    p->gather_have = (uint8_t)(p->gather_have + g);
                    pos += g;
                    if (p->gather_have < 8) {
                        *consumed = pos;
                        return -EAGAIN;
                    }
                    body = p->gather;
                }
                p->content_left = 0;
                rf_fcgi_emit(p, ev, body, 8, 1, 1);
            } else {
                n = p->content_left;
                if (n > avail)
                    n = (uint32_t)avail;
                p->content_left = (uint16_t)(p->content_left - n);
                rf_fcgi_emit(p, ev, buf + pos, n, p->first, p->content_left == 0);
                p->first = 0;
                pos += n;
            }
            if (p->content_left == 0)
                pos += rf_fcgi_end_content(p, len - pos);
            *consumed = pos;
            return 1;
        }

        /* Padding that arrives after its record's last event: skipped. */
        if (avail < p->padding_left) {
            p->padding_left = (uint8_t)(p->padding_left - avail);
            *consumed = len;
            return -EAGAIN;
        }
        pos += p->padding_left;
        p->padding_left = 0;
        p->in_record = 0;
    }
}

/* ---- name-value pairs ---------------------------------------------------- */

static inline uint32_t rf_fcgi_nv_len(const uint8_t *b)
{
    if (!(b[0] & RF_FCGI_NV_LONG))
        return b[0];
    return ((uint32_t)(b[0] & 0x7f) << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

int rf_fcgi_nv_decode(const uint8_t *buf, size_t len, uint32_t max_len, rf_fcgi_nv_t *nv,
                      uint32_t *need)
{
    size_t nl_size, vl_size;
    uint32_t name_len, value_len;
    uint64_t total;

    *need = 0;
    if (len == 0)
        return -EPROTO;
    nl_size = (buf[0] & RF_FCGI_NV_LONG) ? 4 : 1;
    if (len < nl_size)
        return -EAGAIN;
    name_len = rf_fcgi_nv_len(buf);
    /* A name already over the limit fails now rather than after the caller
     * has buffered the rest of a pair it will refuse anyway. */
    if (name_len > max_len)
        return -E2BIG;
    if (len == nl_size)
        return -EAGAIN;
    vl_size = (buf[nl_size] & RF_FCGI_NV_LONG) ? 4 : 1;
    if (len < nl_size + vl_size)
        return -EAGAIN;
    value_len = rf_fcgi_nv_len(buf + nl_size);
    if ((uint64_t)name_len + value_len > max_len)
        return -E2BIG;
    total = nl_size + vl_size + (uint64_t)name_len + value_len;
    /* The size is returned as an int; a pair that large is a limit too. */
    if (total > INT_MAX)
        return -E2BIG;
    if (total > len) {
        *need = (uint32_t)total;
        return -EAGAIN;
    }
    nv->name = buf + nl_size + vl_size;
    nv->name_len = name_len;
    nv->value = nv->name + name_len;
    nv->value_len = value_len;
    return (int)total;
}

size_t rf_fcgi_nv_size(uint32_t name_len, uint32_t value_len)
{
    return (name_len < RF_FCGI_NV_SHORT_LIMIT ? 1u : 4u) +
           (value_len < RF_FCGI_NV_SHORT_LIMIT ? 1u : 4u) + (size_t)name_len + value_len;
}

uint8_t *rf_fcgi_nv_put_len(uint8_t *o, uint32_t n)
{
    if (n < RF_FCGI_NV_SHORT_LIMIT) {
        *o++ = (uint8_t)n;
        return o;
    }
    o[0] = (uint8_t)((n >> 24) | RF_FCGI_NV_LONG);
    o[1] = (uint8_t)(n >> 16);
    o[2] = (uint8_t)(n >> 8);
    o[3] = (uint8_t)n;
    return o + 4;
}

int rf_fcgi_nv_encode(uint8_t *out, size_t cap, const void *name, uint32_t name_len,
                      const void *value, uint32_t value_len)
{
    size_t size;
    uint8_t *o;

    /* 31 bits is all the wire format has; the int return bounds the rest. */
    if (name_len > RF_FCGI_NV_MAX_LEN || value_len > RF_FCGI_NV_MAX_LEN)
        return -E2BIG;
    size = rf_fcgi_nv_size(name_len, value_len);
    if (size > cap || size > INT_MAX)
        return -E2BIG;
    o = rf_fcgi_nv_put_len(out, name_len);
    o = rf_fcgi_nv_put_len(o, value_len);
    /* memcpy's arguments must not be NULL even for 0 bytes. */
    if (name_len)
        memcpy(o, name, name_len);
    if (value_len)
        memcpy(o + name_len, value, value_len);
    return (int)size;
}

/* ---- encoders ------------------------------------------------------------ */

void rf_fcgi_header(uint8_t out[RF_FCGI_HEADER_LEN], uint8_t type, uint16_t id,
                    uint16_t content_len, uint8_t padding_len)
{
    out[0] = RF_FCGI_VERSION_1;
    out[1] = type;
    out[2] = (uint8_t)(id >> 8);
    out[3] = (uint8_t)id;
    out[4] = (uint8_t)(content_len >> 8);
    out[5] = (uint8_t)content_len;
    out[6] = padding_len;
    out[7] = 0;
}

void rf_fcgi_end_request(uint8_t out[RF_FCGI_END_REQUEST_LEN], uint16_t id, uint32_t app_status,
                         uint8_t protocol_status)
{
    /* php-fpm leaves the reserved bytes as garbage; we zero them so the
     * output is reproducible and leaks no memory contents. */
    rf_fcgi_header(out, RF_FCGI_END_REQUEST, id, 8, 0);
    out[8] = (uint8_t)(app_status >> 24);
    out[9] = (uint8_t)(app_status >> 16);
    out[10] = (uint8_t)(app_status >> 8);
    out[11] = (uint8_t)app_status;
    out[12] = protocol_status;
    out[13] = 0;
    out[14] = 0;
    out[15] = 0;
}

void rf_fcgi_unknown_type(uint8_t out[RF_FCGI_UNKNOWN_TYPE_LEN], uint8_t type)
{
    rf_fcgi_header(out, RF_FCGI_UNKNOWN_TYPE, 0, 8, 0);
    out[8] = type;
    memset(out + 9, 0, 7);
}

size_t rf_fcgi_stream_overhead(size_t len)
{
    size_t records;

    if (len == 0)
        return RF_FCGI_HEADER_LEN;
    /* Every full chunk is 8-aligned, so only the last record is padded and
     * its padding equals that of the whole length. */
    records = len / RF_FCGI_CHUNK + (len % RF_FCGI_CHUNK != 0);
    return records * RF_FCGI_HEADER_LEN + rf_fcgi_padding(len);
}

long rf_fcgi_stream_encode(uint8_t *out, size_t cap, uint8_t type, uint16_t id, const void *data,
                           size_t len)
{
    const uint8_t *src = data;
    uint8_t *o = out;

    /* Keeps len + overhead and the long return from overflowing. */
    if (len > (size_t)LONG_MAX / 2 || cap < len + rf_fcgi_stream_overhead(len))
        return -E2BIG;
    if (len == 0) {
        rf_fcgi_header(o, type, id, 0, 0);
        return RF_FCGI_HEADER_LEN;
    }
    /* data and out must not overlap: the payload moves as it is framed. */
    while (len) {
        size_t n = len < RF_FCGI_CHUNK ? len : RF_FCGI_CHUNK;
        uint8_t pad = rf_fcgi_padding(n);

        rf_fcgi_header(o, type, id, (uint16_t)n, pad);
        memcpy(o + RF_FCGI_HEADER_LEN, src, n);
        memset(o + RF_FCGI_HEADER_LEN + n, 0, pad);
        o += RF_FCGI_HEADER_LEN + n + pad;
        src += n;
        len -= n;
    }
    return (long)(o - out);
}

/* Decimal digits of v into d (room for 10); returns how many. */
static size_t rf_fcgi_u32_dec(uint32_t v, char d[10])
{
    char tmp[10];
    size_t n = 0, i;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        d[i] = tmp[n - 1 - i];
    return n;
}

long rf_fcgi_get_values_result(uint8_t *out, size_t cap, const uint8_t *q, size_t qlen,
                               uint32_t max_conns, uint32_t max_reqs, int mpxs_conns)
{
    static const struct {
        const char *name;
        uint32_t len;
    } known[] = {
        {"FCGI_MAX_CONNS", sizeof("FCGI_MAX_CONNS") - 1},
        {"FCGI_MAX_REQS", sizeof("FCGI_MAX_REQS") - 1},
        {"FCGI_MPXS_CONNS", sizeof("FCGI_MPXS_CONNS") - 1},
    };
    const uint32_t values[] = {max_conns, max_reqs, mpxs_conns ? 1u : 0u};
    unsigned answered = 0;
    size_t o = RF_FCGI_HEADER_LEN, pos = 0, content;
    uint8_t pad;

    if (cap < RF_FCGI_HEADER_LEN)
        return -E2BIG;
    while (pos < qlen) {
        rf_fcgi_nv_t nv;
        uint32_t need;
        int r = rf_fcgi_nv_decode(q + pos, qlen - pos, UINT32_MAX, &nv, &need);
        size_t i;

        /* A query is one record body: a pair cut short is malformed. */
        if (r < 0)
            return -EPROTO;
        pos += (size_t)r;
        for (i = 0; i < RF_ARRAY_SIZE(known); i++) {
            char digits[10];
            size_t dn;
            int w;

            /* Each name is answered once, which keeps the result within
             * the documented HEADER_LEN + 128 whatever the query repeats. */
            if ((answered & (1u << i)) || nv.name_len != known[i].len ||
                memcmp(nv.name, known[i].name, known[i].len) != 0)
                continue;
            dn = rf_fcgi_u32_dec(values[i], digits);
            w = rf_fcgi_nv_encode(out + o, cap - o, known[i].name, known[i].len, digits,
                                  (uint32_t)dn);
            if (w < 0)
                return -E2BIG;
            o += (size_t)w;
            answered |= 1u << i;
            break;
        }
    }
    content = o - RF_FCGI_HEADER_LEN;
    pad = rf_fcgi_padding(content);
    if (cap - o < pad)
        return -E2BIG;
    memset(out + o, 0, pad);
    rf_fcgi_header(out, RF_FCGI_GET_VALUES_RESULT, 0, (uint16_t)content, pad);
    return (long)(o + pad);
}

const char *rf_fcgi_type_name(uint8_t type)
{
    static const char *const names[] = {
        [RF_FCGI_BEGIN_REQUEST] = "BEGIN_REQUEST",
        [RF_FCGI_ABORT_REQUEST] = "ABORT_REQUEST",
        [RF_FCGI_END_REQUEST] = "END_REQUEST",
        [RF_FCGI_PARAMS] = "PARAMS",
        [RF_FCGI_STDIN] = "STDIN",
        [RF_FCGI_STDOUT] = "STDOUT",
        [RF_FCGI_STDERR] = "STDERR",
        [RF_FCGI_DATA] = "DATA",
        [RF_FCGI_GET_VALUES] = "GET_VALUES",
        [RF_FCGI_GET_VALUES_RESULT] = "GET_VALUES_RESULT",
        [RF_FCGI_UNKNOWN_TYPE] = "UNKNOWN_TYPE",
    };

    if (type < RF_ARRAY_SIZE(names) && names[type])
        return names[type];
    return "UNKNOWN";
}
