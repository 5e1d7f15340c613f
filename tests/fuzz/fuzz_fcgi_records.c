/*
 * libFuzzer target for the FastCGI record parser. The same input is parsed
 * whole, split in two at a point taken from the data, in pieces whose sizes
 * come from the data, and one byte at a time; every run must reassemble the
 * same records and end with the same error, offset and idle state, because a
 * socket may deliver any of those splits. Each piece sits in its own
 * exactly-sized heap buffer so ASan catches a read past it. The input is also
 * framed as a STDOUT stream and parsed back to check the encoder and parser
 * agree. Any mismatch aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_fuzz.h"
#include "rf_fcgi.h"

/*
 * A canonical log of a parse, independent of how the input was split: per
 * record its header fields then its whole content, then the final result.
 */
struct trace {
    uint8_t *log;
    size_t len, cap;
    rf_fcgi_parser_t p;
    int err;
    size_t err_at;
    size_t base; /* absolute offset of the current piece */
    int in_rec;
    uint8_t type;
    uint16_t id, content_len;
    size_t have; /* content bytes seen of the open record */
};

static void trace_put(struct trace *t, const void *b, size_t n)
{
    CHECK(t->len + n <= t->cap);
    if (n)
        memcpy(t->log + t->len, b, n);
    t->len += n;
}

static void trace_init(struct trace *t, size_t size)
{
    memset(t, 0, sizeof(*t));
    /* Each record adds 5 bytes of log per 8 bytes of header, plus its
     * content, so the log never outgrows twice the input. */
    t->cap = 2 * size + 32;
    t->log = malloc(t->cap);
    CHECK(t->log);
    rf_fcgi_parser_init(&t->p);
}

static void trace_event(struct trace *t, const rf_fcgi_event_t *ev, const uint8_t *piece,
                        size_t consumed)
{
    if (ev->type == RF_FCGI_BEGIN_REQUEST) {
        CHECK(ev->len == 8 && ev->content_len == 8 && ev->first && ev->last);
        CHECK((ev->data >= piece && ev->data + 8 <= piece + consumed) || ev->data == t->p.gather);
    } else {
        CHECK(ev->data >= piece && ev->data + ev->len <= piece + consumed);
    }
    CHECK(ev->content_len == 0 ? (ev->len == 0 && ev->first && ev->last) : ev->len > 0);
    if (ev->first) {
        uint8_t h[5] = {ev->type, (uint8_t)(ev->id >> 8), (uint8_t)ev->id,
                        (uint8_t)(ev->content_len >> 8), (uint8_t)ev->content_len};

        CHECK(!t->in_rec);
        /* Request records with id 0 are errors, never events. */
        CHECK(ev->id != 0 || (ev->type != RF_FCGI_BEGIN_REQUEST &&
                              ev->type != RF_FCGI_ABORT_REQUEST && ev->type != RF_FCGI_PARAMS &&
                              ev->type != RF_FCGI_STDIN && ev->type != RF_FCGI_DATA));
        trace_put(t, h, sizeof(h));
        t->in_rec = 1;
        t->type = ev->type;
        t->id = ev->id;
        t->content_len = ev->content_len;
        t->have = 0;
    } else {
        CHECK(t->in_rec && ev->type == t->type && ev->id == t->id &&
              ev->content_len == t->content_len);
    }
    t->have += ev->len;
    CHECK(t->have <= t->content_len);
    trace_put(t, ev->data, ev->len);
    if (ev->last) {
        CHECK(t->have == t->content_len);
        t->in_rec = 0;
    }
}

static void trace_feed(struct trace *t, const uint8_t *data, size_t n)
{
    uint8_t *piece;
    size_t pos = 0;

    if (t->err)
        return;
    /* Exactly n bytes on the heap, so reading past the piece is caught. */
    piece = malloc(n ? n : 1);
    CHECK(piece);
    if (n)
        memcpy(piece, data, n);
    for (;;) {
        rf_fcgi_event_t ev;
        size_t consumed = (size_t)-1;
        int rc = rf_fcgi_parse(&t->p, piece + pos, n - pos, &consumed, &ev);

        CHECK(consumed <= n - pos);
        if (rc == -EAGAIN) {
            CHECK(consumed == n - pos);
            break;
        }
        if (rc < 0) {
            CHECK(rc == -EPROTO);
            t->err = rc;
            t->err_at = t->base + pos + consumed;
            break;
        }
        CHECK(rc == 1 && consumed > 0);
        trace_event(t, &ev, piece + pos, consumed);
        pos += consumed;
    }
    free(piece);
    t->base += n;
}

static void trace_finish(struct trace *t)
{
    int idle = rf_fcgi_parser_idle(&t->p);

    /* Idle means a record boundary: no record may be left open. */
    CHECK(!idle || !t->in_rec);
    trace_put(t, &t->err, sizeof(t->err));
    trace_put(t, &t->err_at, sizeof(t->err_at));
    trace_put(t, &idle, sizeof(idle));
}

static void trace_compare(const struct trace *a, const struct trace *b)
{
    CHECK(a->len == b->len);
    CHECK(memcmp(a->log, b->log, a->len) == 0);
}

/* Frame the input as STDOUT and parse it back: the payload must survive. */
static void stream_roundtrip(const uint8_t *data, size_t size)
{
    size_t cap = size + rf_fcgi_stream_overhead(size);
    uint8_t *out = malloc(cap);
    size_t pos = 0, got = 0;
    rf_fcgi_parser_t p;
    long n;

    CHECK(out);
    CHECK(rf_fcgi_stream_encode(out, cap - 1, RF_FCGI_STDOUT, 77, data, size) == -E2BIG);
    n = rf_fcgi_stream_encode(out, cap, RF_FCGI_STDOUT, 77, data, size);
    CHECK(n == (long)cap && n % 8 == 0);
    rf_fcgi_parser_init(&p);
    for (;;) {
        rf_fcgi_event_t ev;
        size_t consumed;
        int rc = rf_fcgi_parse(&p, out + pos, (size_t)n - pos, &consumed, &ev);

        pos += consumed;
        if (rc == -EAGAIN)
            break;
        CHECK(rc == 1);
        CHECK(ev.type == RF_FCGI_STDOUT && ev.id == 77 && ev.content_len <= RF_FCGI_CHUNK);
        CHECK(got + ev.len <= size);
        CHECK(ev.len == 0 || memcmp(ev.data, data + got, ev.len) == 0);
        got += ev.len;
    }
    CHECK(pos == (size_t)n && got == size && rf_fcgi_parser_idle(&p));
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct trace whole, split, chunks, bytes;
    size_t cut, pos, i, k;

    trace_init(&whole, size);
    trace_feed(&whole, data, size);
    trace_finish(&whole);

    /* Split at a point the fuzzer controls through the last two bytes. */
    cut = size >= 2 ? ((size_t)data[size - 1] << 8 | data[size - 2]) % (size + 1) : 0;
    trace_init(&split, size);
    trace_feed(&split, data, cut);
    trace_feed(&split, data + cut, size - cut);
    trace_finish(&split);
    trace_compare(&whole, &split);

    /* Piece sizes 1..16 drawn from the input itself. */
    trace_init(&chunks, size);
    for (pos = 0, k = 0; pos < size; k++) {
        size_t n = 1 + (data[k % size] & 15);

        if (n > size - pos)
            n = size - pos;
        trace_feed(&chunks, data + pos, n);
        pos += n;
    }
    trace_finish(&chunks);
    trace_compare(&whole, &chunks);

    trace_init(&bytes, size);
    for (i = 0; i < size; i++)
        trace_feed(&bytes, data + i, 1);
    trace_finish(&bytes);
    trace_compare(&whole, &bytes);

    free(whole.log);
    free(split.log);
    free(chunks.log);
    free(bytes.log);

    if (size <= 4096)
        stream_roundtrip(data, size);
    return 0;
}
