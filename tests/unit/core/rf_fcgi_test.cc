/*
 * Unit tests for core/rf_fcgi.c: the encoders against exact bytes, the record
 * parser against a realistic request cut at every point and fed one byte at a
 * time, malformed and truncated streams, and the name-value decoder at every
 * truncation. Input pieces are copied into exactly-sized heap buffers so a
 * sanitizer build catches any read past the piece the parser was given.
 */
#include "rf_fcgi.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace
{

using Bytes = std::vector<uint8_t>;

Bytes bytes(const std::string &s)
{
    return Bytes(s.begin(), s.end());
}

void append(Bytes &out, const Bytes &b)
{
    out.insert(out.end(), b.begin(), b.end());
}

/* A record built by hand, independent of the encoders under test. */
Bytes record(uint8_t type, uint16_t id, const Bytes &content, uint8_t padding, uint8_t version = 1)
{
    size_t clen = content.size();
    Bytes r;
    /* Sized up front: growing from an 8-byte initializer list trips a GCC 12
     * -O3 -Warray-bounds false positive inside vector::insert. */
    r.reserve(8 + clen + padding);
    for (uint8_t b : {version, type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(clen >> 8),
                      (uint8_t)clen, padding, (uint8_t)0})
        r.push_back(b);
    append(r, content);
    /* Padding content is arbitrary on the wire; non-zero proves it is skipped. */
    r.insert(r.end(), padding, 0xEE);
    return r;
}

Bytes begin_body(uint16_t role, uint8_t flags)
{
    return {(uint8_t)(role >> 8), (uint8_t)role, flags, 0, 0, 0, 0, 0};
}

void put_len(Bytes &out, size_t n, bool force_long = false)
{
    if (n < 128 && !force_long) {
        out.push_back((uint8_t)n);
        return;
    }
    out.push_back((uint8_t)((n >> 24) | 0x80));
    out.push_back((uint8_t)(n >> 16));
    out.push_back((uint8_t)(n >> 8));
    out.push_back((uint8_t)n);
}

/* A name-value pair built by hand. */
Bytes pair(const std::string &name, const std::string &value)
{
    Bytes out;
    put_len(out, name.size());
    put_len(out, value.size());
    append(out, bytes(name));
    append(out, bytes(value));
    return out;
}

/* ---- parser driver ------------------------------------------------------- */

struct Rec {
    uint8_t type;
    uint16_t id;
    uint16_t content_len;
    Bytes content;

    bool operator==(const Rec &o) const
    {
        return type == o.type && id == o.id && content_len == o.content_len && content == o.content;
    }
};

std::ostream &operator<<(std::ostream &os, const Rec &r)
{
    return os << "{" << rf_fcgi_type_name(r.type) << " id=" << r.id << " len=" << r.content_len
              << "}";
}

/* What a parse produced: whole records reassembled from their events. */
struct Outcome {
    std::vector<Rec> recs;
    int err = 0;       /* 0, or the error rf_fcgi_parse returned */
    size_t err_at = 0; /* absolute offset reported with the error */
    bool idle = false; /* parser state after the last byte */
    size_t events = 0;
};

/*
 * Feeds pieces to one parser the way a connection would, checking every
 * event against the header contract as it goes.
 */
class Driver
{
  public:
    Driver()
    {
        rf_fcgi_parser_init(&p_);
    }

    void feed(const uint8_t *data, size_t n)
    {
        if (out_.err)
            return;
        /* Exactly n bytes on the heap: ASan flags any read past the piece. */
        std::unique_ptr<uint8_t[]> piece(new uint8_t[n ? n : 1]);
        if (n)
            memcpy(piece.get(), data, n);
        const uint8_t *buf = n ? piece.get() : nullptr;
        size_t pos = 0;

        for (;;) {
            rf_fcgi_event_t ev;
            size_t consumed = SIZE_MAX;
            int rc = rf_fcgi_parse(&p_, buf + pos, n - pos, &consumed, &ev);

            ASSERT_LE(consumed, n - pos);
            if (rc == -EAGAIN) {
                EXPECT_EQ(consumed, n - pos) << "-EAGAIN must consume all input";
                break;
            }
            if (rc < 0) {
                out_.err = rc;
                out_.err_at = base_ + pos + consumed;
                break;
            }
            ASSERT_EQ(rc, 1);
            ASSERT_GT(consumed, 0u) << "an event must consume input";
            check_event(ev, buf + pos, consumed);
            pos += consumed;
        }
        base_ += n;
    }

    void feed(const Bytes &b)
    {
        feed(b.data(), b.size());
    }

    Outcome finish()
    {
        out_.idle = rf_fcgi_parser_idle(&p_);
        EXPECT_TRUE(!out_.idle || !in_rec_ || out_.err) << "idle inside a record";
        return out_;
    }

    rf_fcgi_parser_t *parser()
    {
        return &p_;
    }

  private:
    void check_event(const rf_fcgi_event_t &ev, const uint8_t *piece, size_t consumed)
    {
        out_.events++;
        if (ev.type == RF_FCGI_BEGIN_REQUEST) {
            EXPECT_EQ(ev.len, 8u);
            EXPECT_TRUE(ev.first && ev.last) << "BEGIN_REQUEST body is delivered whole";
            bool in_piece = ev.data >= piece && ev.data + 8 <= piece + consumed;
            bool in_parser = ev.data == p_.gather;
            EXPECT_TRUE(in_piece || in_parser);
        } else {
            EXPECT_GE(ev.data, piece);
            EXPECT_LE(ev.data + ev.len, piece + consumed) << "slice outside consumed input";
        }
        if (ev.content_len == 0) {
            EXPECT_TRUE(ev.len == 0 && ev.first && ev.last);
        } else {
            EXPECT_GT(ev.len, 0u) << "empty event for a record with content";
        }
        if (ev.first) {
            EXPECT_FALSE(in_rec_) << "first event while a record is open";
            cur_ = Rec{ev.type, ev.id, ev.content_len, {}};
            in_rec_ = true;
        } else {
            ASSERT_TRUE(in_rec_) << "continuation without a first event";
            EXPECT_EQ(ev.type, cur_.type);
            EXPECT_EQ(ev.id, cur_.id);
            EXPECT_EQ(ev.content_len, cur_.content_len);
        }
        cur_.content.insert(cur_.content.end(), ev.data, ev.data + ev.len);
        EXPECT_LE(cur_.content.size(), cur_.content_len);
        if (ev.last) {
            EXPECT_EQ(cur_.content.size(), cur_.content_len);
            out_.recs.push_back(cur_);
            in_rec_ = false;
        }
    }

    rf_fcgi_parser_t p_;
    Outcome out_;
    Rec cur_{};
    bool in_rec_ = false;
    size_t base_ = 0;
};

Outcome parse_whole(const Bytes &in)
{
    Driver d;
    d.feed(in);
    return d.finish();
}

Outcome parse_split(const Bytes &in, size_t cut)
{
    Driver d;
    d.feed(in.data(), cut);
    d.feed(in.data() + cut, in.size() - cut);
    return d.finish();
}

Outcome parse_bytewise(const Bytes &in)
{
    Driver d;
    for (size_t i = 0; i < in.size(); i++)
        d.feed(in.data() + i, 1);
    return d.finish();
}

void expect_same(const Outcome &a, const Outcome &b, const std::string &what)
{
    EXPECT_EQ(a.recs, b.recs) << what;
    EXPECT_EQ(a.err, b.err) << what;
    EXPECT_EQ(a.err_at, b.err_at) << what;
    EXPECT_EQ(a.idle, b.idle) << what;
}

/* Every two-piece split and the byte-at-a-time feed agree with one shot. */
void expect_split_invariant(const Bytes &in)
{
    Outcome whole = parse_whole(in);
    for (size_t cut = 0; cut <= in.size(); cut++) {
        expect_same(whole, parse_split(in, cut), "cut at " + std::to_string(cut));
        if (::testing::Test::HasFailure())
            return;
    }
    expect_same(whole, parse_bytewise(in), "byte at a time");
}

/*
 * What nginx sends for a small POST: BEGIN, params over several records
 * (one value long enough for a 4-byte length), the empty PARAMS that ends
 * them, the body in two records and the empty STDIN that ends it.
 */
Bytes realistic_request(std::vector<Rec> *expect, Bytes *params_out = nullptr)
{
    const uint16_t id = 1;
    std::vector<std::pair<Bytes, uint8_t>> recs; /* content, padding */
    std::vector<uint8_t> types;

    auto add = [&](uint8_t type, Bytes content, uint8_t padding) {
        types.push_back(type);
        recs.push_back({std::move(content), padding});
    };

    add(RF_FCGI_BEGIN_REQUEST, begin_body(RF_FCGI_RESPONDER, RF_FCGI_KEEP_CONN), 0);

    Bytes p1, p2, p3;
    append(p1, pair("SCRIPT_FILENAME", "/var/www/html/index.php"));
    append(p1, pair("QUERY_STRING", "a=1&b=2"));
    append(p1, pair("REQUEST_METHOD", "POST"));
    append(p1, pair("CONTENT_TYPE", "application/x-www-form-urlencoded"));
    append(p1, pair("CONTENT_LENGTH", "27"));
    append(p1, pair("SCRIPT_NAME", "/index.php"));
    append(p1, pair("REQUEST_URI", "/index.php?a=1&b=2"));
    append(p1, pair("DOCUMENT_URI", "/index.php"));
    append(p1, pair("DOCUMENT_ROOT", "/var/www/html"));
    append(p1, pair("SERVER_PROTOCOL", "HTTP/1.1"));
    append(p1, pair("GATEWAY_INTERFACE", "CGI/1.1"));
    append(p1, pair("SERVER_SOFTWARE", "nginx/1.24.0"));
    add(RF_FCGI_PARAMS, p1, rf_fcgi_padding(p1.size()));

    std::string cookie(300, 'c');
    for (size_t i = 0; i < cookie.size(); i++)
        cookie[i] = (char)('a' + i % 26);
    append(p2, pair("REMOTE_ADDR", "127.0.0.1"));
    append(p2, pair("REMOTE_PORT", "54321"));
    append(p2, pair("HTTP_COOKIE", cookie));
    append(p2, pair("HTTP_HOST", "localhost"));
    append(p2, pair("HTTP_ACCEPT", "*/*"));
    append(p2, pair("HTTPS", ""));
    add(RF_FCGI_PARAMS, p2, 5); /* odd padding: senders need not align */

    append(p3, pair("HTTP_USER_AGENT", "curl/8.5.0"));
    append(p3, pair("REDIRECT_STATUS", "200"));
    add(RF_FCGI_PARAMS, p3, 0);
    add(RF_FCGI_PARAMS, {}, 0);

    add(RF_FCGI_STDIN, bytes("name=ringfpm&"), 3);
    add(RF_FCGI_STDIN, bytes("lang=c&x=1234"), 3);
    add(RF_FCGI_STDIN, {}, 0);

    Bytes wire;
    expect->clear();
    for (size_t i = 0; i < recs.size(); i++) {
        append(wire, record(types[i], id, recs[i].first, recs[i].second));
        expect->push_back(Rec{types[i], id, (uint16_t)recs[i].first.size(), recs[i].first});
    }
    if (params_out) {
        *params_out = p1;
        append(*params_out, p2);
        append(*params_out, p3);
    }
    return wire;
}

/* ---- encoders: exact bytes ----------------------------------------------- */

TEST(FcgiEncode, HeaderIsBigEndianWithZeroReservedByte)
{
    uint8_t out[8];
    memset(out, 0xAA, sizeof(out));
    rf_fcgi_header(out, RF_FCGI_STDOUT, 0x1234, 0xABCD, 3);
    const uint8_t want[8] = {1, 6, 0x12, 0x34, 0xAB, 0xCD, 3, 0};
    EXPECT_EQ(0, memcmp(out, want, 8));
}

TEST(FcgiEncode, EndRequestZeroesReservedBytes)
{
    uint8_t out[RF_FCGI_END_REQUEST_LEN];
    memset(out, 0xAA, sizeof(out));
    rf_fcgi_end_request(out, 0x0102, 0xDEADBEEF, RF_FCGI_OVERLOADED);
    const uint8_t want[16] = {1, 3, 0x01, 0x02, 0, 8, 0, 0, 0xDE, 0xAD, 0xBE, 0xEF, 2, 0, 0, 0};
    EXPECT_EQ(0, memcmp(out, want, sizeof(want)));
}

TEST(FcgiEncode, EndRequestCompleteWithStatusZero)
{
    uint8_t out[RF_FCGI_END_REQUEST_LEN];
    rf_fcgi_end_request(out, 1, 0, RF_FCGI_REQUEST_COMPLETE);
    const uint8_t want[16] = {1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    EXPECT_EQ(0, memcmp(out, want, sizeof(want)));
}

TEST(FcgiEncode, UnknownTypeUsesIdZeroAndZeroedBody)
{
    uint8_t out[RF_FCGI_UNKNOWN_TYPE_LEN];
    memset(out, 0xAA, sizeof(out));
    rf_fcgi_unknown_type(out, 42);
    const uint8_t want[16] = {1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0};
    EXPECT_EQ(0, memcmp(out, want, sizeof(want)));
}

TEST(FcgiEncode, PaddingRoundsUpToMultipleOfEight)
{
    EXPECT_EQ(rf_fcgi_padding(0), 0);
    EXPECT_EQ(rf_fcgi_padding(1), 7);
    EXPECT_EQ(rf_fcgi_padding(7), 1);
    EXPECT_EQ(rf_fcgi_padding(8), 0);
    EXPECT_EQ(rf_fcgi_padding(9), 7);
    EXPECT_EQ(rf_fcgi_padding(RF_FCGI_CHUNK), 0);
    EXPECT_EQ(rf_fcgi_padding(65535), 1);
}

/* Expected framing of a stream, record by record: {content_len, padding}. */
struct Frame {
    size_t len;
    uint8_t pad;
};

void expect_stream_bytes(size_t len, const std::vector<Frame> &frames,
                         uint8_t type = RF_FCGI_STDOUT, uint16_t id = 0x0203)
{
    Bytes data(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 + 1);

    size_t total = len;
    for (const Frame &f : frames)
        total += 8 + f.pad;
    EXPECT_EQ(rf_fcgi_stream_overhead(len), total - len) << "len " << len;

    Bytes out(total + 16, 0xAA);
    long n = rf_fcgi_stream_encode(out.data(), out.size(), type, id, data.data(), len);
    ASSERT_EQ(n, (long)total) << "len " << len;

    size_t o = 0, src = 0;
    for (const Frame &f : frames) {
        const uint8_t hdr[8] = {
            1,     type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(f.len >> 8), (uint8_t)f.len,
            f.pad, 0};
        ASSERT_EQ(0, memcmp(out.data() + o, hdr, 8)) << "header at " << o;
        o += 8;
        ASSERT_TRUE(std::equal(data.begin() + src, data.begin() + src + f.len, out.begin() + o))
            << "content at " << o;
        o += f.len;
        src += f.len;
        for (uint8_t i = 0; i < f.pad; i++)
            ASSERT_EQ(out[o + i], 0) << "padding must be zeroed";
        o += f.pad;
    }
    EXPECT_EQ(o, total);
    EXPECT_EQ(src, len);
    EXPECT_EQ(out[total], 0xAA) << "wrote past the returned length";
}

TEST(FcgiEncode, StreamOfZeroBytesIsOneEmptyRecord)
{
    expect_stream_bytes(0, {{0, 0}});
}

TEST(FcgiEncode, StreamOfOneBytePadsToEight)
{
    expect_stream_bytes(1, {{1, 7}});
}

TEST(FcgiEncode, StreamOfEightBytesHasNoPadding)
{
    expect_stream_bytes(8, {{8, 0}});
}

TEST(FcgiEncode, StreamOfExactlyOneChunkIsOneRecord)
{
    expect_stream_bytes(65528, {{65528, 0}});
}

TEST(FcgiEncode, StreamOneByteOverChunkSplitsLikePhpFpm)
{
    expect_stream_bytes(65529, {{65528, 0}, {1, 7}});
}

TEST(FcgiEncode, StreamOf200000BytesIsFourRecords)
{
    /* 3 * 65528 = 196584; the rest, 3416, is already 8-aligned. */
    expect_stream_bytes(200000, {{65528, 0}, {65528, 0}, {65528, 0}, {3416, 0}});
}

TEST(FcgiEncode, StreamOf200001BytesPadsOnlyTheLastRecord)
{
    expect_stream_bytes(200001, {{65528, 0}, {65528, 0}, {65528, 0}, {3417, 7}}, RF_FCGI_STDERR, 7);
}

TEST(FcgiEncode, StreamEncodeRefusesShortBufferWithoutWriting)
{
    for (size_t len : {0u, 1u, 8u, 65528u, 65529u}) {
        Bytes data(len, 'x');
        size_t need = len + rf_fcgi_stream_overhead(len);
        Bytes out(need, 0xAA);
        EXPECT_EQ(rf_fcgi_stream_encode(out.data(), need - 1, RF_FCGI_STDOUT, 1, data.data(), len),
                  -E2BIG)
            << "len " << len;
        EXPECT_EQ(out, Bytes(need, 0xAA)) << "nothing may be written on -E2BIG";
        EXPECT_EQ(rf_fcgi_stream_encode(out.data(), need, RF_FCGI_STDOUT, 1, data.data(), len),
                  (long)need);
    }
}

TEST(FcgiEncode, StreamEncodeOutputParsesBackToThePayload)
{
    for (size_t len : {1u, 65527u, 65529u, 140000u}) {
        Bytes data(len);
        for (size_t i = 0; i < len; i++)
            data[i] = (uint8_t)(i >> 3);
        Bytes out(len + rf_fcgi_stream_overhead(len));
        ASSERT_EQ(
            rf_fcgi_stream_encode(out.data(), out.size(), RF_FCGI_STDOUT, 9, data.data(), len),
            (long)out.size());
        Outcome o = parse_whole(out);
        EXPECT_TRUE(o.idle);
        EXPECT_EQ(o.err, 0);
        Bytes got;
        for (const Rec &r : o.recs) {
            EXPECT_EQ(r.type, RF_FCGI_STDOUT);
            EXPECT_EQ(r.id, 9);
            append(got, r.content);
        }
        EXPECT_EQ(got, data);
    }
}

TEST(FcgiEncode, NvEncodeOneByteLengths)
{
    uint8_t out[32];
    int n = rf_fcgi_nv_encode(out, sizeof(out), "NAME", 4, "val", 3);
    const uint8_t want[] = {4, 3, 'N', 'A', 'M', 'E', 'v', 'a', 'l'};
    ASSERT_EQ(n, (int)sizeof(want));
    EXPECT_EQ(0, memcmp(out, want, sizeof(want)));
    EXPECT_EQ(rf_fcgi_nv_size(4, 3), sizeof(want));
}

TEST(FcgiEncode, NvEncodeSwitchesToFourBytesAt128)
{
    std::string name(127, 'n'), value(128, 'v');
    Bytes out(300);
    int n = rf_fcgi_nv_encode(out.data(), out.size(), name.data(), 127, value.data(), 128);
    ASSERT_EQ(n, 1 + 4 + 127 + 128);
    EXPECT_EQ(out[0], 127);
    const uint8_t vlen[4] = {0x80, 0, 0, 128};
    EXPECT_EQ(0, memcmp(out.data() + 1, vlen, 4));
    EXPECT_EQ(0, memcmp(out.data() + 5, name.data(), 127));
    EXPECT_EQ(0, memcmp(out.data() + 5 + 127, value.data(), 128));
    EXPECT_EQ(rf_fcgi_nv_size(127, 128), (size_t)n);
}

TEST(FcgiEncode, NvEncodeFourByteLengthIsBigEndianWithHighBit)
{
    std::string value(70000, 'v');
    Bytes out(70010);
    int n = rf_fcgi_nv_encode(out.data(), out.size(), "K", 1, value.data(), 70000);
    ASSERT_EQ(n, 1 + 4 + 1 + 70000);
    /* 70000 = 0x00011170 */
    const uint8_t want[] = {1, 0x80, 0x01, 0x11, 0x70, 'K'};
    EXPECT_EQ(0, memcmp(out.data(), want, sizeof(want)));
}

TEST(FcgiEncode, NvEncodeEmptyNameAndValue)
{
    uint8_t out[2] = {0xAA, 0xAA};
    EXPECT_EQ(rf_fcgi_nv_encode(out, 2, nullptr, 0, nullptr, 0), 2);
    EXPECT_EQ(out[0], 0);
    EXPECT_EQ(out[1], 0);
}

TEST(FcgiEncode, NvEncodeTooSmallWritesNothing)
{
    uint8_t out[16];
    memset(out, 0xAA, sizeof(out));
    EXPECT_EQ(rf_fcgi_nv_encode(out, 8, "NAME", 4, "val", 3), -E2BIG);
    for (uint8_t b : out)
        EXPECT_EQ(b, 0xAA);
    EXPECT_EQ(rf_fcgi_nv_encode(out, 0, "", 0, "", 0), -E2BIG);
    EXPECT_EQ(out[0], 0xAA);
}

TEST(FcgiEncode, NvEncodeRefusesLengthsBeyond31Bits)
{
    uint8_t out[16];
    memset(out, 0xAA, sizeof(out));
    /* The pointers are never read: the length check comes first. */
    EXPECT_EQ(rf_fcgi_nv_encode(out, SIZE_MAX, "x", 0x80000000u, "", 0), -E2BIG);
    EXPECT_EQ(rf_fcgi_nv_encode(out, SIZE_MAX, "", 0, "x", 0x80000000u), -E2BIG);
    /* Both halves fit 31 bits but the total would not fit the int return. */
    EXPECT_EQ(rf_fcgi_nv_encode(out, SIZE_MAX, "x", 0x40000000u, "y", 0x40000000u), -E2BIG);
    EXPECT_EQ(out[0], 0xAA);
}

/* ---- GET_VALUES_RESULT --------------------------------------------------- */

TEST(FcgiGetValues, AllThreeKnownNamesAnsweredInQueryOrder)
{
    Bytes q;
    append(q, pair("FCGI_MAX_CONNS", ""));
    append(q, pair("FCGI_MAX_REQS", ""));
    append(q, pair("FCGI_MPXS_CONNS", ""));
    uint8_t out[RF_FCGI_HEADER_LEN + 128];
    memset(out, 0xAA, sizeof(out));
    long n = rf_fcgi_get_values_result(out, sizeof(out), q.data(), q.size(), 50, 100, 1);

    Bytes content;
    append(content, bytes("\x0e\x02"
                          "FCGI_MAX_CONNS50"));
    append(content, bytes("\x0d\x03"
                          "FCGI_MAX_REQS100"));
    append(content, bytes("\x0f\x01"
                          "FCGI_MPXS_CONNS1"));
    ASSERT_EQ(content.size(), 54u);
    Bytes want = {1, 10, 0, 0, 0, 54, 2, 0};
    append(want, content);
    want.push_back(0);
    want.push_back(0);
    ASSERT_EQ(n, (long)want.size());
    EXPECT_EQ(Bytes(out, out + n), want);
}

TEST(FcgiGetValues, UnknownNamesGiveEmptyResultRecord)
{
    Bytes q;
    append(q, pair("FCGI_FOO", ""));
    append(q, pair("fcgi_max_conns", "")); /* names are case-sensitive */
    append(q, pair("FCGI_MAX_CONN", ""));
    uint8_t out[64];
    long n = rf_fcgi_get_values_result(out, sizeof(out), q.data(), q.size(), 1, 2, 1);
    const uint8_t want[8] = {1, 10, 0, 0, 0, 0, 0, 0};
    ASSERT_EQ(n, 8);
    EXPECT_EQ(0, memcmp(out, want, 8));
}

TEST(FcgiGetValues, EmptyQueryGivesEmptyResultRecord)
{
    uint8_t out[8];
    EXPECT_EQ(rf_fcgi_get_values_result(out, sizeof(out), nullptr, 0, 1, 2, 1), 8);
    const uint8_t want[8] = {1, 10, 0, 0, 0, 0, 0, 0};
    EXPECT_EQ(0, memcmp(out, want, 8));
}

TEST(FcgiGetValues, MixedQueryKeepsOnlyKnownNamesAndIgnoresQueryValues)
{
    Bytes q;
    append(q, pair("FCGI_MPXS_CONNS", "ignored"));
    append(q, pair("X", ""));
    append(q, pair("FCGI_MAX_REQS", ""));
    uint8_t out[64];
    long n = rf_fcgi_get_values_result(out, sizeof(out), q.data(), q.size(), 7, 0, 0);
    Bytes content = bytes("\x0f\x01"
                          "FCGI_MPXS_CONNS0"
                          "\x0d\x01"
                          "FCGI_MAX_REQS0");
    Bytes want = {1, 10, 0, 0, 0, (uint8_t)content.size(), rf_fcgi_padding(content.size()), 0};
    append(want, content);
    want.insert(want.end(), rf_fcgi_padding(content.size()), 0);
    ASSERT_EQ(n, (long)want.size());
    EXPECT_EQ(Bytes(out, out + n), want);
}

TEST(FcgiGetValues, RepeatedNamesAnsweredOnceSoWorstCaseFitsDocumentedBound)
{
    Bytes q;
    for (int i = 0; i < 20; i++) {
        append(q, pair("FCGI_MAX_CONNS", ""));
        append(q, pair("FCGI_MAX_REQS", ""));
        append(q, pair("FCGI_MPXS_CONNS", ""));
    }
    uint8_t out[RF_FCGI_HEADER_LEN + 128];
    long n =
        rf_fcgi_get_values_result(out, sizeof(out), q.data(), q.size(), UINT32_MAX, UINT32_MAX, 1);
    ASSERT_GT(n, 0);
    EXPECT_EQ(n % 8, 0);
    Bytes content = bytes("\x0e\x0a"
                          "FCGI_MAX_CONNS4294967295"
                          "\x0d\x0a"
                          "FCGI_MAX_REQS4294967295"
                          "\x0f\x01"
                          "FCGI_MPXS_CONNS1");
    EXPECT_EQ(out[5], content.size());
    EXPECT_EQ(0, memcmp(out + 8, content.data(), content.size()));
}

TEST(FcgiGetValues, TruncatedQueryPairIsEproto)
{
    Bytes q = pair("FCGI_MAX_CONNS", "");
    uint8_t out[64];
    for (size_t cut = 1; cut < q.size(); cut++)
        EXPECT_EQ(rf_fcgi_get_values_result(out, sizeof(out), q.data(), cut, 1, 1, 1), -EPROTO)
            << "cut " << cut;
}

TEST(FcgiGetValues, SmallOutputIsE2big)
{
    Bytes q = pair("FCGI_MPXS_CONNS", "");
    uint8_t out[64];
    long full = rf_fcgi_get_values_result(out, sizeof(out), q.data(), q.size(), 1, 1, 1);
    ASSERT_EQ(full, 32); /* header + 18 content + 6 padding */
    for (size_t cap = 0; cap < (size_t)full; cap++)
        EXPECT_EQ(rf_fcgi_get_values_result(out, cap, q.data(), q.size(), 1, 1, 1), -E2BIG)
            << "cap " << cap;
}

TEST(FcgiGetValues, ResultParsesAsManagementRecord)
{
    Bytes q;
    append(q, pair("FCGI_MAX_CONNS", ""));
    append(q, pair("FCGI_MPXS_CONNS", ""));
    uint8_t out[RF_FCGI_HEADER_LEN + 128];
    long n = rf_fcgi_get_values_result(out, sizeof(out), q.data(), q.size(), 12345, 1, 1);
    ASSERT_GT(n, 0);
    Outcome o = parse_whole(Bytes(out, out + n));
    ASSERT_EQ(o.recs.size(), 1u);
    EXPECT_TRUE(o.idle);
    EXPECT_EQ(o.recs[0].type, RF_FCGI_GET_VALUES_RESULT);
    EXPECT_EQ(o.recs[0].id, 0);
    const Bytes &c = o.recs[0].content;
    rf_fcgi_nv_t nv;
    uint32_t need;
    int r = rf_fcgi_nv_decode(c.data(), c.size(), 1000, &nv, &need);
    ASSERT_GT(r, 0);
    EXPECT_EQ(std::string((const char *)nv.name, nv.name_len), "FCGI_MAX_CONNS");
    EXPECT_EQ(std::string((const char *)nv.value, nv.value_len), "12345");
}

/* ---- type names ---------------------------------------------------------- */

TEST(FcgiTypeName, NamesEveryDefinedTypeAndUnknownOtherwise)
{
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_BEGIN_REQUEST), "BEGIN_REQUEST");
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_ABORT_REQUEST), "ABORT_REQUEST");
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_END_REQUEST), "END_REQUEST");
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_PARAMS), "PARAMS");
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_STDIN), "STDIN");
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_STDOUT), "STDOUT");
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_STDERR), "STDERR");
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_DATA), "DATA");
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_GET_VALUES), "GET_VALUES");
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_GET_VALUES_RESULT), "GET_VALUES_RESULT");
    EXPECT_STREQ(rf_fcgi_type_name(RF_FCGI_UNKNOWN_TYPE), "UNKNOWN_TYPE");
    EXPECT_STREQ(rf_fcgi_type_name(0), "UNKNOWN");
    EXPECT_STREQ(rf_fcgi_type_name(12), "UNKNOWN");
    EXPECT_STREQ(rf_fcgi_type_name(255), "UNKNOWN");
}

/* ---- record parser: valid streams ---------------------------------------- */

TEST(FcgiParse, EmptyInputIsEagainAndIdle)
{
    rf_fcgi_parser_t p;
    rf_fcgi_parser_init(&p);
    rf_fcgi_event_t ev;
    size_t consumed = 99;
    EXPECT_EQ(rf_fcgi_parse(&p, nullptr, 0, &consumed, &ev), -EAGAIN);
    EXPECT_EQ(consumed, 0u);
    EXPECT_TRUE(rf_fcgi_parser_idle(&p));
}

TEST(FcgiParse, ZeroedParserWorksLikeInitialised)
{
    rf_fcgi_parser_t p;
    memset(&p, 0, sizeof(p));
    Bytes in = record(RF_FCGI_PARAMS, 3, {}, 0);
    rf_fcgi_event_t ev;
    size_t consumed;
    ASSERT_EQ(rf_fcgi_parse(&p, in.data(), in.size(), &consumed, &ev), 1);
    EXPECT_EQ(consumed, 8u);
    EXPECT_EQ(ev.type, RF_FCGI_PARAMS);
    EXPECT_EQ(ev.id, 3);
    EXPECT_EQ(ev.len, 0u);
    EXPECT_TRUE(rf_fcgi_parser_idle(&p));
}

TEST(FcgiParse, RealisticRequestInOneShotGivesEveryRecord)
{
    std::vector<Rec> expect;
    Bytes in = realistic_request(&expect);
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, 0);
    EXPECT_TRUE(o.idle);
    EXPECT_EQ(o.recs, expect);
    /* One shot: one event per record, slices straight out of the input. */
    EXPECT_EQ(o.events, expect.size());
    ASSERT_FALSE(o.recs.empty());
    EXPECT_EQ(rf_fcgi_begin_role(o.recs[0].content.data()), RF_FCGI_RESPONDER);
    EXPECT_EQ(rf_fcgi_begin_flags(o.recs[0].content.data()), RF_FCGI_KEEP_CONN);
}

TEST(FcgiParse, RealisticRequestSplitAtEveryPointMatchesOneShot)
{
    std::vector<Rec> expect;
    Bytes in = realistic_request(&expect);
    Outcome whole = parse_whole(in);
    for (size_t cut = 0; cut <= in.size(); cut++) {
        expect_same(whole, parse_split(in, cut), "cut at " + std::to_string(cut));
        if (HasFailure())
            return;
    }
}

TEST(FcgiParse, RealisticRequestOneByteAtATimeMatchesOneShot)
{
    std::vector<Rec> expect;
    Bytes in = realistic_request(&expect);
    Outcome o = parse_bytewise(in);
    expect_same(parse_whole(in), o, "byte at a time");
    EXPECT_EQ(o.recs, expect);
    EXPECT_TRUE(o.idle);
}

TEST(FcgiParse, RealisticRequestInPseudoRandomChunksMatchesOneShot)
{
    std::vector<Rec> expect;
    Bytes in = realistic_request(&expect);
    Outcome whole = parse_whole(in);
    uint32_t seed = 12345;
    for (int round = 0; round < 200; round++) {
        Driver d;
        size_t pos = 0;
        while (pos < in.size()) {
            seed = seed * 1103515245u + 12345u;
            size_t n = 1 + (seed >> 16) % 40;
            if (n > in.size() - pos)
                n = in.size() - pos;
            d.feed(in.data() + pos, n);
            pos += n;
        }
        expect_same(whole, d.finish(), "round " + std::to_string(round));
        if (HasFailure())
            return;
    }
}

TEST(FcgiParse, RealisticRequestParamsDecodeToThePairsSent)
{
    std::vector<Rec> expect;
    Bytes params;
    Bytes in = realistic_request(&expect, &params);
    Outcome o = parse_whole(in);
    Bytes got;
    for (const Rec &r : o.recs)
        if (r.type == RF_FCGI_PARAMS)
            append(got, r.content);
    ASSERT_EQ(got, params);

    std::vector<std::string> names;
    size_t pos = 0;
    while (pos < got.size()) {
        rf_fcgi_nv_t nv;
        uint32_t need;
        int r = rf_fcgi_nv_decode(got.data() + pos, got.size() - pos, 4096, &nv, &need);
        ASSERT_GT(r, 0) << "at " << pos;
        names.emplace_back((const char *)nv.name, nv.name_len);
        if (names.back() == "HTTP_COOKIE") {
            EXPECT_EQ(nv.value_len, 300u);
        }
        if (names.back() == "HTTPS") {
            EXPECT_EQ(nv.value_len, 0u);
        }
        pos += (size_t)r;
    }
    EXPECT_EQ(names.size(), 20u);
    EXPECT_EQ(names.front(), "SCRIPT_FILENAME");
    EXPECT_EQ(names.back(), "REDIRECT_STATUS");
}

TEST(FcgiParse, BeginRequestSplitInsideBodyIsGatheredWhole)
{
    Bytes in = record(RF_FCGI_BEGIN_REQUEST, 7, begin_body(RF_FCGI_AUTHORIZER, 0), 0);
    rf_fcgi_parser_t p;
    rf_fcgi_parser_init(&p);
    rf_fcgi_event_t ev;
    size_t consumed;
    ASSERT_EQ(rf_fcgi_parse(&p, in.data(), 11, &consumed, &ev), -EAGAIN);
    EXPECT_EQ(consumed, 11u);
    EXPECT_FALSE(rf_fcgi_parser_idle(&p));
    ASSERT_EQ(rf_fcgi_parse(&p, in.data() + 11, in.size() - 11, &consumed, &ev), 1);
    EXPECT_EQ(consumed, in.size() - 11);
    EXPECT_EQ(ev.data, p.gather) << "split body is delivered from the parser";
    EXPECT_EQ(ev.len, 8u);
    EXPECT_EQ(rf_fcgi_begin_role(ev.data), RF_FCGI_AUTHORIZER);
    EXPECT_EQ(rf_fcgi_begin_flags(ev.data), 0);
    EXPECT_TRUE(rf_fcgi_parser_idle(&p));
}

TEST(FcgiParse, BeginRequestWholeInBufferPointsIntoBuffer)
{
    Bytes in = record(RF_FCGI_BEGIN_REQUEST, 7, begin_body(RF_FCGI_FILTER, 1), 0);
    rf_fcgi_parser_t p;
    rf_fcgi_parser_init(&p);
    rf_fcgi_event_t ev;
    size_t consumed;
    ASSERT_EQ(rf_fcgi_parse(&p, in.data(), in.size(), &consumed, &ev), 1);
    EXPECT_EQ(ev.data, in.data() + 8);
    EXPECT_EQ(rf_fcgi_begin_role(ev.data), RF_FCGI_FILTER);
}

TEST(FcgiParse, BeginRequestWithPaddingIsAccepted)
{
    Bytes in = record(RF_FCGI_BEGIN_REQUEST, 1, begin_body(1, 1), 8);
    append(in, record(RF_FCGI_PARAMS, 1, {}, 0));
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, 0);
    EXPECT_TRUE(o.idle);
    ASSERT_EQ(o.recs.size(), 2u);
    EXPECT_EQ(o.recs[1].type, RF_FCGI_PARAMS);
    expect_split_invariant(in);
}

TEST(FcgiParse, MultiplexedRequestsKeepTheirIds)
{
    Bytes in;
    append(in, record(RF_FCGI_BEGIN_REQUEST, 1, begin_body(1, 1), 0));
    append(in, record(RF_FCGI_BEGIN_REQUEST, 2, begin_body(1, 1), 0));
    append(in, record(RF_FCGI_PARAMS, 2, pair("A", "2"), 4));
    append(in, record(RF_FCGI_PARAMS, 1, pair("A", "1"), 4));
    append(in, record(RF_FCGI_PARAMS, 1, {}, 0));
    append(in, record(RF_FCGI_ABORT_REQUEST, 2, {}, 0));
    append(in, record(RF_FCGI_STDIN, 1, {}, 0));
    append(in, record(RF_FCGI_BEGIN_REQUEST, 65535, begin_body(1, 0), 0));
    Outcome o = parse_whole(in);
    ASSERT_EQ(o.recs.size(), 8u);
    const uint16_t ids[] = {1, 2, 2, 1, 1, 2, 1, 65535};
    for (size_t i = 0; i < 8; i++)
        EXPECT_EQ(o.recs[i].id, ids[i]) << i;
    EXPECT_EQ(o.recs[2].content, pair("A", "2"));
    EXPECT_EQ(o.recs[5].type, RF_FCGI_ABORT_REQUEST);
    expect_split_invariant(in);
}

TEST(FcgiParse, GetValuesWithIdZeroIsReportedAsEvent)
{
    Bytes q = pair("FCGI_MPXS_CONNS", "");
    Bytes in = record(RF_FCGI_GET_VALUES, 0, q, rf_fcgi_padding(q.size()));
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, 0);
    ASSERT_EQ(o.recs.size(), 1u);
    EXPECT_EQ(o.recs[0], (Rec{RF_FCGI_GET_VALUES, 0, (uint16_t)q.size(), q}));
    expect_split_invariant(in);
}

TEST(FcgiParse, UnknownRecordTypesArePassedThrough)
{
    Bytes in;
    append(in, record(0, 0, bytes("zero"), 4));
    append(in, record(12, 0, bytes("twelve"), 2));
    append(in, record(200, 5, {}, 0)); /* the caller decides about ids here */
    append(in, record(255, 0, bytes("x"), 0));
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, 0);
    EXPECT_TRUE(o.idle);
    ASSERT_EQ(o.recs.size(), 4u);
    EXPECT_EQ(o.recs[0], (Rec{0, 0, 4, bytes("zero")}));
    EXPECT_EQ(o.recs[1], (Rec{12, 0, 6, bytes("twelve")}));
    EXPECT_EQ(o.recs[2], (Rec{200, 5, 0, {}}));
    EXPECT_EQ(o.recs[3], (Rec{255, 0, 1, bytes("x")}));
    expect_split_invariant(in);
}

TEST(FcgiParse, OutboundTypesAreReportedForTheCallerToReject)
{
    Bytes in;
    append(in, record(RF_FCGI_END_REQUEST, 1, Bytes(8, 0), 0));
    append(in, record(RF_FCGI_STDOUT, 1, bytes("out"), 5));
    append(in, record(RF_FCGI_STDERR, 0, bytes("err"), 5));
    append(in, record(RF_FCGI_GET_VALUES_RESULT, 0, {}, 0));
    append(in, record(RF_FCGI_UNKNOWN_TYPE, 0, Bytes(8, 1), 0));
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, 0);
    ASSERT_EQ(o.recs.size(), 5u);
    EXPECT_EQ(o.recs[0].type, RF_FCGI_END_REQUEST);
    EXPECT_EQ(o.recs[1].type, RF_FCGI_STDOUT);
    EXPECT_EQ(o.recs[2].type, RF_FCGI_STDERR);
    EXPECT_EQ(o.recs[3].type, RF_FCGI_GET_VALUES_RESULT);
    EXPECT_EQ(o.recs[4].type, RF_FCGI_UNKNOWN_TYPE);
    expect_split_invariant(in);
}

TEST(FcgiParse, ContentPlusPaddingAbove65535IsAccepted)
{
    /* php-fpm resets the connection for this on PARAMS; we are lenient. */
    Bytes big(65535);
    for (size_t i = 0; i < big.size(); i++)
        big[i] = (uint8_t)i;
    Bytes in;
    append(in, record(RF_FCGI_STDIN, 1, big, 255));
    append(in, record(RF_FCGI_PARAMS, 1, big, 1));
    append(in, record(RF_FCGI_STDIN, 1, {}, 255));
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, 0);
    EXPECT_TRUE(o.idle);
    ASSERT_EQ(o.recs.size(), 3u);
    EXPECT_EQ(o.recs[0].content, big);
    EXPECT_EQ(o.recs[1].content, big);
    EXPECT_EQ(o.recs[2].content_len, 0);
    expect_same(o, parse_split(in, 65535 + 8 + 100), "cut inside padding");
}

TEST(FcgiParse, PaddingInTheSameBufferIsConsumedWithTheLastEvent)
{
    /* So the parser is idle right after the record, not one call later. */
    Bytes in = record(RF_FCGI_STDIN, 1, {}, 8);
    append(in, record(RF_FCGI_STDIN, 1, bytes("abc"), 5));
    rf_fcgi_parser_t p;
    rf_fcgi_parser_init(&p);
    rf_fcgi_event_t ev;
    size_t consumed;
    ASSERT_EQ(rf_fcgi_parse(&p, in.data(), in.size(), &consumed, &ev), 1);
    EXPECT_EQ(consumed, 16u);
    EXPECT_EQ(ev.len, 0u);
    EXPECT_TRUE(ev.first && ev.last);
    EXPECT_TRUE(rf_fcgi_parser_idle(&p));
    ASSERT_EQ(rf_fcgi_parse(&p, in.data() + 16, in.size() - 16, &consumed, &ev), 1);
    EXPECT_EQ(consumed, 16u);
    EXPECT_EQ(ev.len, 3u);
    EXPECT_TRUE(rf_fcgi_parser_idle(&p));
}

TEST(FcgiParse, EmptyRecordWithPaddingStillToComeIsNotIdle)
{
    Bytes in = record(RF_FCGI_STDIN, 1, {}, 8);
    rf_fcgi_parser_t p;
    rf_fcgi_parser_init(&p);
    rf_fcgi_event_t ev;
    size_t consumed;
    ASSERT_EQ(rf_fcgi_parse(&p, in.data(), 11, &consumed, &ev), 1);
    EXPECT_EQ(consumed, 11u);
    EXPECT_EQ(ev.len, 0u);
    EXPECT_TRUE(ev.first && ev.last);
    EXPECT_FALSE(rf_fcgi_parser_idle(&p)) << "5 bytes of padding still pending";
    ASSERT_EQ(rf_fcgi_parse(&p, in.data() + 11, 5, &consumed, &ev), -EAGAIN);
    EXPECT_EQ(consumed, 5u);
    EXPECT_TRUE(rf_fcgi_parser_idle(&p));
}

TEST(FcgiParse, ContentSplitGivesFirstAndLastPieces)
{
    Bytes in = record(RF_FCGI_STDIN, 4, bytes("0123456789"), 6);
    rf_fcgi_parser_t p;
    rf_fcgi_parser_init(&p);
    rf_fcgi_event_t ev;
    size_t consumed;
    ASSERT_EQ(rf_fcgi_parse(&p, in.data(), 12, &consumed, &ev), 1);
    EXPECT_EQ(consumed, 12u);
    EXPECT_EQ(ev.len, 4u);
    EXPECT_EQ(ev.data, in.data() + 8);
    EXPECT_TRUE(ev.first);
    EXPECT_FALSE(ev.last);
    EXPECT_EQ(ev.content_len, 10);
    ASSERT_EQ(rf_fcgi_parse(&p, in.data() + 12, 8, &consumed, &ev), 1);
    EXPECT_EQ(consumed, 8u) << "6 content bytes and 2 of the padding";
    EXPECT_EQ(ev.len, 6u);
    EXPECT_FALSE(ev.first);
    EXPECT_TRUE(ev.last);
    EXPECT_FALSE(rf_fcgi_parser_idle(&p));
    ASSERT_EQ(rf_fcgi_parse(&p, in.data() + 20, in.size() - 20, &consumed, &ev), -EAGAIN);
    EXPECT_EQ(consumed, 4u);
    EXPECT_TRUE(rf_fcgi_parser_idle(&p));
}

/* ---- record parser: malformed and truncated ------------------------------ */

TEST(FcgiParseMalformed, BadVersionIsEprotoAtHeaderEnd)
{
    for (uint8_t version : {0, 2, 255}) {
        Bytes in = record(RF_FCGI_PARAMS, 1, bytes("abc"), 5, version);
        Outcome o = parse_whole(in);
        EXPECT_EQ(o.err, -EPROTO) << (int)version;
        EXPECT_EQ(o.err_at, 8u);
        EXPECT_TRUE(o.recs.empty());
        expect_split_invariant(in);
    }
}

TEST(FcgiParseMalformed, BadVersionAfterValidRecordReportsItsOwnHeaderEnd)
{
    Bytes in = record(RF_FCGI_BEGIN_REQUEST, 1, begin_body(1, 0), 0);
    append(in, record(RF_FCGI_PARAMS, 1, pair("A", "B"), 5));
    size_t bad_at = in.size();
    append(in, record(RF_FCGI_PARAMS, 1, {}, 0, 2));
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, -EPROTO);
    EXPECT_EQ(o.err_at, bad_at + 8);
    EXPECT_EQ(o.recs.size(), 2u);
    expect_split_invariant(in);
}

TEST(FcgiParseMalformed, BeginRequestWithContentLength7IsEproto)
{
    Bytes in = record(RF_FCGI_BEGIN_REQUEST, 1, Bytes(7, 0), 1);
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, -EPROTO);
    EXPECT_EQ(o.err_at, 8u);
    expect_split_invariant(in);
}

TEST(FcgiParseMalformed, BeginRequestWithContentLength9IsEproto)
{
    Bytes in = record(RF_FCGI_BEGIN_REQUEST, 1, Bytes(9, 0), 7);
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, -EPROTO);
    EXPECT_EQ(o.err_at, 8u);
    expect_split_invariant(in);
}

TEST(FcgiParseMalformed, BeginRequestWithEmptyContentIsEproto)
{
    Bytes in = record(RF_FCGI_BEGIN_REQUEST, 1, {}, 0);
    EXPECT_EQ(parse_whole(in).err, -EPROTO);
}

TEST(FcgiParseMalformed, IdZeroOnParamsIsEproto)
{
    Bytes in = record(RF_FCGI_PARAMS, 0, pair("A", "B"), 4);
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, -EPROTO);
    EXPECT_EQ(o.err_at, 8u);
    expect_split_invariant(in);
}

TEST(FcgiParseMalformed, IdZeroOnEveryRequestTypeIsEproto)
{
    const uint8_t types[] = {RF_FCGI_BEGIN_REQUEST, RF_FCGI_ABORT_REQUEST, RF_FCGI_PARAMS,
                             RF_FCGI_STDIN, RF_FCGI_DATA};
    for (uint8_t t : types) {
        Bytes content = t == RF_FCGI_BEGIN_REQUEST ? begin_body(1, 0) : Bytes{};
        Outcome o = parse_whole(record(t, 0, content, 0));
        EXPECT_EQ(o.err, -EPROTO) << rf_fcgi_type_name(t);
        EXPECT_TRUE(o.recs.empty());
    }
}

TEST(FcgiParseMalformed, ErrorSticksOnLaterCalls)
{
    Bytes bad = record(RF_FCGI_STDIN, 0, {}, 0);
    Bytes good = record(RF_FCGI_STDIN, 1, {}, 0);
    rf_fcgi_parser_t p;
    rf_fcgi_parser_init(&p);
    rf_fcgi_event_t ev;
    size_t consumed;
    ASSERT_EQ(rf_fcgi_parse(&p, bad.data(), bad.size(), &consumed, &ev), -EPROTO);
    EXPECT_EQ(consumed, 8u);
    EXPECT_FALSE(rf_fcgi_parser_idle(&p));
    EXPECT_EQ(rf_fcgi_parse(&p, good.data(), good.size(), &consumed, &ev), -EPROTO);
    EXPECT_EQ(consumed, 0u);
}

TEST(FcgiParseMalformed, TruncatedHeaderAtEofLeavesParserBusy)
{
    Bytes in = record(RF_FCGI_PARAMS, 1, {}, 0);
    for (size_t cut = 1; cut < 8; cut++) {
        Outcome o = parse_whole(Bytes(in.begin(), in.begin() + cut));
        EXPECT_EQ(o.err, 0);
        EXPECT_TRUE(o.recs.empty());
        EXPECT_FALSE(o.idle) << "cut " << cut;
    }
}

TEST(FcgiParseMalformed, TruncatedContentAtEofLeavesParserBusy)
{
    Bytes in = record(RF_FCGI_STDIN, 1, bytes("hello world"), 5);
    for (size_t cut = 8; cut < 8 + 11; cut++) {
        Outcome o = parse_whole(Bytes(in.begin(), in.begin() + cut));
        EXPECT_EQ(o.err, 0);
        EXPECT_TRUE(o.recs.empty()) << "no record may complete";
        EXPECT_FALSE(o.idle) << "cut " << cut;
    }
}

TEST(FcgiParseMalformed, TruncatedBeginBodyAtEofLeavesParserBusy)
{
    Bytes in = record(RF_FCGI_BEGIN_REQUEST, 1, begin_body(1, 1), 0);
    for (size_t cut = 8; cut < 16; cut++) {
        Outcome o = parse_whole(Bytes(in.begin(), in.begin() + cut));
        EXPECT_TRUE(o.recs.empty());
        EXPECT_FALSE(o.idle) << "cut " << cut;
    }
}

TEST(FcgiParseMalformed, PaddingLiesLeavesParserBusyAtEof)
{
    /* The header promises 200 bytes of padding that never arrive: the
     * record's content is complete, but EOF here is not a clean boundary. */
    Bytes in = record(RF_FCGI_STDIN, 1, bytes("body"), 200);
    in.resize(8 + 4 + 10);
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.err, 0);
    ASSERT_EQ(o.recs.size(), 1u);
    EXPECT_EQ(o.recs[0].content, bytes("body"));
    EXPECT_FALSE(o.idle);
    expect_split_invariant(in);
}

TEST(FcgiParseMalformed, PaddingLiesOnEmptyRecordLeavesParserBusyAtEof)
{
    Bytes in = record(RF_FCGI_PARAMS, 1, {}, 3);
    in.resize(8);
    Outcome o = parse_whole(in);
    EXPECT_EQ(o.recs.size(), 1u);
    EXPECT_FALSE(o.idle);
}

TEST(FcgiParseMalformed, LatePaddingIsSkippedWhenItArrives)
{
    Bytes in = record(RF_FCGI_STDIN, 1, bytes("body"), 200);
    append(in, record(RF_FCGI_STDIN, 1, {}, 0));
    Outcome o = parse_split(in, 8 + 4 + 10);
    EXPECT_EQ(o.err, 0);
    EXPECT_TRUE(o.idle);
    ASSERT_EQ(o.recs.size(), 2u);
    EXPECT_EQ(o.recs[1].content_len, 0);
}

/* ---- name-value decoder -------------------------------------------------- */

TEST(FcgiNvDecode, OneByteLengths)
{
    Bytes b = pair("NAME", "value");
    rf_fcgi_nv_t nv;
    uint32_t need = 99;
    ASSERT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 1000, &nv, &need), (int)b.size());
    EXPECT_EQ(nv.name, b.data() + 2);
    EXPECT_EQ(nv.name_len, 4u);
    EXPECT_EQ(nv.value, b.data() + 6);
    EXPECT_EQ(nv.value_len, 5u);
}

TEST(FcgiNvDecode, FourByteLengthsForNameAndValue)
{
    std::string name(200, 'N'), value(300, 'V');
    Bytes b = pair(name, value);
    ASSERT_EQ(b.size(), 4u + 4 + 200 + 300);
    rf_fcgi_nv_t nv;
    uint32_t need;
    ASSERT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 1000, &nv, &need), (int)b.size());
    EXPECT_EQ(nv.name, b.data() + 8);
    EXPECT_EQ(nv.name_len, 200u);
    EXPECT_EQ(nv.value, b.data() + 208);
    EXPECT_EQ(nv.value_len, 300u);
}

TEST(FcgiNvDecode, LengthBoundaryAt127And128)
{
    std::string n127(127, 'a'), n128(128, 'b');
    Bytes b = pair(n127, n128);
    EXPECT_EQ(b[0], 127);
    EXPECT_EQ(b[1], 0x80);
    rf_fcgi_nv_t nv;
    uint32_t need;
    ASSERT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 1000, &nv, &need), (int)b.size());
    EXPECT_EQ(nv.name_len, 127u);
    EXPECT_EQ(nv.value_len, 128u);
}

TEST(FcgiNvDecode, NonMinimalFourByteLengthIsAccepted)
{
    Bytes b;
    put_len(b, 2, true);
    put_len(b, 1, true);
    append(b, bytes("ABc"));
    rf_fcgi_nv_t nv;
    uint32_t need;
    ASSERT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 1000, &nv, &need), 11);
    EXPECT_EQ(nv.name_len, 2u);
    EXPECT_EQ(nv.value_len, 1u);
    EXPECT_EQ(nv.value[0], 'c');
}

TEST(FcgiNvDecode, HighBitIsMaskedOutOfFourByteLength)
{
    /* 0x80 0x00 0x01 0x00 is 256, not 0x80000100. */
    Bytes b = {0x80, 0x00, 0x01, 0x00, 0};
    b.resize(5 + 256, 'x');
    rf_fcgi_nv_t nv;
    uint32_t need;
    ASSERT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 1000, &nv, &need), (int)b.size());
    EXPECT_EQ(nv.name_len, 256u);
    EXPECT_EQ(nv.value_len, 0u);
}

TEST(FcgiNvDecode, ZeroLengthNameAndValue)
{
    Bytes b = {0, 0, 0, 3, 'a', 'b', 'c', 3, 0, 'x', 'y', 'z'};
    rf_fcgi_nv_t nv;
    uint32_t need;
    ASSERT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 0, &nv, &need), 2)
        << "an empty pair fits any limit";
    EXPECT_EQ(nv.name_len, 0u);
    EXPECT_EQ(nv.value_len, 0u);
    ASSERT_EQ(rf_fcgi_nv_decode(b.data() + 2, b.size() - 2, 100, &nv, &need), 5);
    EXPECT_EQ(nv.name_len, 0u);
    EXPECT_EQ(nv.value_len, 3u);
    EXPECT_EQ(0, memcmp(nv.value, "abc", 3));
    ASSERT_EQ(rf_fcgi_nv_decode(b.data() + 7, b.size() - 7, 100, &nv, &need), 5);
    EXPECT_EQ(nv.name_len, 3u);
    EXPECT_EQ(nv.value_len, 0u);
}

TEST(FcgiNvDecode, EmptyBufferIsEproto)
{
    rf_fcgi_nv_t nv;
    uint32_t need;
    EXPECT_EQ(rf_fcgi_nv_decode(nullptr, 0, 100, &nv, &need), -EPROTO);
}

/* Cut a pair at every point; expect -EAGAIN with need 0 until the prefix
 * (prefix_len bytes) is complete and the pair's total size afterwards. */
void expect_truncations(const Bytes &b, size_t prefix_len)
{
    for (size_t cut = 1; cut < b.size(); cut++) {
        rf_fcgi_nv_t nv;
        uint32_t need = 12345;
        Bytes piece(b.begin(), b.begin() + cut);
        EXPECT_EQ(rf_fcgi_nv_decode(piece.data(), piece.size(), 100000, &nv, &need), -EAGAIN)
            << "cut " << cut;
        EXPECT_EQ(need, cut < prefix_len ? 0u : (uint32_t)b.size()) << "cut " << cut;
    }
}

TEST(FcgiNvDecode, TruncatedOneByteLengthsAtEveryCut)
{
    expect_truncations(pair("NAME", "value"), 2);
}

TEST(FcgiNvDecode, TruncatedFourByteLengthsAtEveryCut)
{
    expect_truncations(pair(std::string(200, 'n'), std::string(300, 'v')), 8);
}

TEST(FcgiNvDecode, TruncatedShortNameLongValueAtEveryCut)
{
    expect_truncations(pair("HTTP_COOKIE", std::string(300, 'c')), 5);
}

TEST(FcgiNvDecode, TruncatedLongNameShortValueAtEveryCut)
{
    expect_truncations(pair(std::string(128, 'n'), "v"), 5);
}

TEST(FcgiNvDecode, MaxLenCountsNameAndValue)
{
    Bytes b = pair("NAME", "value"); /* 4 + 5 = 9 */
    rf_fcgi_nv_t nv;
    uint32_t need;
    EXPECT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 9, &nv, &need), (int)b.size());
    EXPECT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 8, &nv, &need), -E2BIG);
    EXPECT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 4, &nv, &need), -E2BIG);
}

TEST(FcgiNvDecode, OversizedPairIsE2bigBeforeItsBodyArrives)
{
    /* The caller must not buffer megabytes only to refuse them. */
    Bytes b;
    put_len(b, 10);
    put_len(b, 1000000);
    rf_fcgi_nv_t nv;
    uint32_t need = 7;
    EXPECT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 65536, &nv, &need), -E2BIG);
    EXPECT_EQ(need, 0u);
}

TEST(FcgiNvDecode, OversizedNameIsE2bigBeforeValueLengthArrives)
{
    Bytes b;
    put_len(b, 5000);
    rf_fcgi_nv_t nv;
    uint32_t need;
    EXPECT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 4096, &nv, &need), -E2BIG);
    EXPECT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), 8192, &nv, &need), -EAGAIN);
    EXPECT_EQ(need, 0u);
}

TEST(FcgiNvDecode, PairBeyondIntRangeIsE2bigEvenWithoutLimit)
{
    Bytes b = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    rf_fcgi_nv_t nv;
    uint32_t need;
    EXPECT_EQ(rf_fcgi_nv_decode(b.data(), b.size(), UINT32_MAX, &nv, &need), -E2BIG);
}

TEST(FcgiNvDecode, SequenceOfPairsDecodesBackToBack)
{
    Bytes b;
    append(b, pair("A", "1"));
    append(b, pair("", ""));
    append(b, pair(std::string(130, 'B'), "2"));
    append(b, pair("C", std::string(1000, '3')));
    const uint32_t want_name[] = {1, 0, 130, 1}, want_value[] = {1, 0, 1, 1000};
    size_t pos = 0;
    for (int i = 0; i < 4; i++) {
        rf_fcgi_nv_t nv;
        uint32_t need;
        int r = rf_fcgi_nv_decode(b.data() + pos, b.size() - pos, 2000, &nv, &need);
        ASSERT_GT(r, 0) << i;
        EXPECT_EQ(nv.name_len, want_name[i]);
        EXPECT_EQ(nv.value_len, want_value[i]);
        EXPECT_EQ((size_t)r, rf_fcgi_nv_size(nv.name_len, nv.value_len));
        pos += (size_t)r;
    }
    EXPECT_EQ(pos, b.size());
}

TEST(FcgiNvDecode, EncodeThenDecodeRoundTrips)
{
    for (uint32_t nl : {0u, 1u, 127u, 128u, 5000u}) {
        for (uint32_t vl : {0u, 1u, 127u, 128u, 70000u}) {
            std::string name(nl, 'n'), value(vl, 'v');
            Bytes out(rf_fcgi_nv_size(nl, vl));
            ASSERT_EQ(rf_fcgi_nv_encode(out.data(), out.size(), name.data(), nl, value.data(), vl),
                      (int)out.size());
            EXPECT_EQ(out, pair(name, value));
            rf_fcgi_nv_t nv;
            uint32_t need;
            ASSERT_EQ(rf_fcgi_nv_decode(out.data(), out.size(), 100000, &nv, &need),
                      (int)out.size());
            EXPECT_EQ(nv.name_len, nl);
            EXPECT_EQ(nv.value_len, vl);
        }
    }
}

} // namespace
