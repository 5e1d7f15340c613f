/*
 * rf_fcgi: the FastCGI 1.0 codec. A resumable, allocation-free record parser
 * that yields slices pointing into the caller's buffers, a name-value pair
 * decoder that works in place, and encoders for every record the responder
 * sends. No syscalls and no allocation here: bytes in, events and bytes out,
 * so unit tests and fuzzers drive it directly. Any thread may use it; each
 * parser object belongs to one connection.
 */
#ifndef RF_FCGI_H
#define RF_FCGI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RF_FCGI_VERSION_1   1
#define RF_FCGI_HEADER_LEN  8
#define RF_FCGI_MAX_CONTENT 65535
/* Largest 8-aligned content length: php-fpm's chunk size for big writes. */
#define RF_FCGI_CHUNK 65528

enum rf_fcgi_type {
    RF_FCGI_BEGIN_REQUEST = 1,
    RF_FCGI_ABORT_REQUEST = 2,
    RF_FCGI_END_REQUEST = 3,
    RF_FCGI_PARAMS = 4,
    RF_FCGI_STDIN = 5,
    RF_FCGI_STDOUT = 6,
    RF_FCGI_STDERR = 7,
    RF_FCGI_DATA = 8,
    RF_FCGI_GET_VALUES = 9,
    RF_FCGI_GET_VALUES_RESULT = 10,
    RF_FCGI_UNKNOWN_TYPE = 11,
};

enum rf_fcgi_role {
    RF_FCGI_RESPONDER = 1,
    RF_FCGI_AUTHORIZER = 2,
    RF_FCGI_FILTER = 3,
};

#define RF_FCGI_KEEP_CONN 1

enum rf_fcgi_proto_status {
    RF_FCGI_REQUEST_COMPLETE = 0,
    RF_FCGI_CANT_MPX_CONN = 1,
    RF_FCGI_OVERLOADED = 2,
    RF_FCGI_UNKNOWN_ROLE = 3,
};

/*
 * One event from the record parser: a piece of one record's content.
 *
 * A record with content arrives as one or more events, all with the same
 * type/id/content_len; `first` marks the first piece and `last` the final
 * one. A record with no content gives exactly one event with len == 0 and
 * first == last == 1. `data` points into the buffer passed to
 * rf_fcgi_parse(), except for BEGIN_REQUEST, whose 8 bytes are always
 * delivered whole in one event (gathered in the parser if they were split),
 * so `data` may then point into the parser itself: valid until the next call.
 * Padding is consumed silently and never reported.
 */
typedef struct rf_fcgi_event {
    const uint8_t *data;
    uint32_t len;
    uint16_t id;
    uint16_t content_len;
    uint8_t type;
    uint8_t first;
    uint8_t last;
} rf_fcgi_event_t;

/*
 * Resumable record parser state. Zero it (or call rf_fcgi_parser_init) before
 * the first byte of a connection. Holds no pointers into input.
 */
typedef struct rf_fcgi_parser {
    uint8_t hdr[RF_FCGI_HEADER_LEN]; /* header bytes gathered so far */
    uint8_t gather[8];               /* BEGIN_REQUEST body gathered so far */
    uint8_t hdr_have;
    uint8_t gather_have;
    uint8_t padding_left;
    uint8_t in_record; /* header complete, content/padding pending */
    uint8_t type;
    uint8_t first; /* next content event is the record's first */
    uint16_t id;
    uint16_t content_len;
    uint16_t content_left;
} rf_fcgi_parser_t;

void rf_fcgi_parser_init(rf_fcgi_parser_t *p);

/*
 * Feed bytes [buf, buf+len). On return *consumed says how many bytes were
 * used (always set). Returns:
 *   1        an event was produced in *ev; call again with the rest
 *   -EAGAIN  all of the input was consumed without completing an event
 *   -EPROTO  malformed input (bad version, BEGIN_REQUEST whose content length
 *            is not 8, a request record with id 0); the connection must be
 *            closed. *consumed is the offset of the offending header's end.
 * Accepts input split anywhere, down to one byte per call. Never allocates.
 */
int rf_fcgi_parse(rf_fcgi_parser_t *p, const uint8_t *buf, size_t len, size_t *consumed,
                  rf_fcgi_event_t *ev);

/* True when the parser sits on a record boundary (EOF here is clean). */
int rf_fcgi_parser_idle(const rf_fcgi_parser_t *p);

/* BEGIN_REQUEST body fields, from an event's 8 bytes. */
static inline uint16_t rf_fcgi_begin_role(const uint8_t *b)
{
    return (uint16_t)((b[0] << 8) | b[1]);
}

static inline uint8_t rf_fcgi_begin_flags(const uint8_t *b)
{
    return b[2];
}

/* ---- name-value pairs ---------------------------------------------------- */

/* One decoded pair; pointers into the decoded buffer. */
typedef struct rf_fcgi_nv {
    const uint8_t *name;
    const uint8_t *value;
    uint32_t name_len;
    uint32_t value_len;
} rf_fcgi_nv_t;

/*
 * Decode the pair at the start of [buf, buf+len), in place.
 * Returns the number of bytes the pair occupies (> 0) with *nv filled,
 * -EAGAIN if buf holds only part of a pair (*need is then set to the total
 * size of the pair when its length prefix is complete, else to 0), -EPROTO
 * for len == 0, or -E2BIG when a length exceeds max_len (a limit the caller
 * sets; name_len + value_len counted). Never allocates.
 */
int rf_fcgi_nv_decode(const uint8_t *buf, size_t len, uint32_t max_len, rf_fcgi_nv_t *nv,
                      uint32_t *need);

/* Bytes needed to encode a pair. */
size_t rf_fcgi_nv_size(uint32_t name_len, uint32_t value_len);

/* One NV length as the wire writes it (1 byte below 128, else 4 with the
 * top bit set) at o; returns the byte after it. n <= RF_FCGI_NV_MAX_LEN. */
uint8_t *rf_fcgi_nv_put_len(uint8_t *o, uint32_t n);

/*
 * Encode one pair into out (capacity cap). Returns the bytes written, or
 * -E2BIG if it does not fit (nothing is written then).
 */
int rf_fcgi_nv_encode(uint8_t *out, size_t cap, const void *name, uint32_t name_len,
                      const void *value, uint32_t value_len);

/* ---- encoders ------------------------------------------------------------ */

/* Padding that brings content_len to a multiple of 8. */
static inline uint8_t rf_fcgi_padding(size_t content_len)
{
    return (uint8_t)((8 - (content_len & 7)) & 7);
}

/* Write an 8-byte record header. */
void rf_fcgi_header(uint8_t out[RF_FCGI_HEADER_LEN], uint8_t type, uint16_t id,
                    uint16_t content_len, uint8_t padding_len);

/* A complete END_REQUEST record (16 bytes, reserved bytes zeroed). */
#define RF_FCGI_END_REQUEST_LEN 16
void rf_fcgi_end_request(uint8_t out[RF_FCGI_END_REQUEST_LEN], uint16_t id, uint32_t app_status,
                         uint8_t protocol_status);

/* A complete UNKNOWN_TYPE record (16 bytes) for the given unknown type. */
#define RF_FCGI_UNKNOWN_TYPE_LEN 16
void rf_fcgi_unknown_type(uint8_t out[RF_FCGI_UNKNOWN_TYPE_LEN], uint8_t type);

/*
 * Frame a stream payload (STDOUT/STDERR) of len bytes: how many bytes of
 * record headers and padding the framing adds. len == 0 means the empty
 * end-of-stream record (8 bytes).
 */
size_t rf_fcgi_stream_overhead(size_t len);

/*
 * Encode a stream payload as records, copying it: writes headers, content
 * chunks of at most RF_FCGI_CHUNK bytes and zeroed padding into out.
 * Returns bytes written, or -E2BIG when cap < len + rf_fcgi_stream_overhead(len).
 * len == 0 writes the empty end-of-stream record.
 */
long rf_fcgi_stream_encode(uint8_t *out, size_t cap, uint8_t type, uint16_t id, const void *data,
                           size_t len);

/*
 * Answer a GET_VALUES record: decode the requested names in [q, q+qlen) and
 * write a complete GET_VALUES_RESULT record into out, holding only the names
 * that are known: FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS, with the
 * given values. Returns the bytes written, -EPROTO for a malformed query, or
 * -E2BIG if out is too small (RF_FCGI_HEADER_LEN + 128 bytes always suffice).
 */
long rf_fcgi_get_values_result(uint8_t *out, size_t cap, const uint8_t *q, size_t qlen,
                               uint32_t max_conns, uint32_t max_reqs, int mpxs_conns);

/* Record type name for logs ("BEGIN_REQUEST", ..., "UNKNOWN"). */
const char *rf_fcgi_type_name(uint8_t type);

#ifdef __cplusplus
}
#endif

#endif
