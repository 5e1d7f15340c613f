/*
 * Unit tests for core/rf_proto.c, the per-connection FastCGI session. A fake
 * connection owner (Conn) implements rf_proto_ops_t the way io/ does: each
 * request lives in its own arena from a pool, complete requests are captured
 * (params, STDIN/DATA read back from memory chunks or the spill memfd),
 * management replies collect in a "wire out" string. Every input buffer is
 * its own reference-counted owner that counts releases and overwrites and
 * frees its bytes when the last reference goes, so a slice kept past its
 * release reads garbage (or trips ASan). Every test ends by closing the
 * session, finishing what the handler holds and asserting that each buffer
 * was released exactly once and every request was freed.
 */
#include "rf_proto.h"

#include "rf_arena.h"
#include "rf_fcgi.h"

#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <list>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace
{

using Bytes = std::vector<uint8_t>;
using Params = std::vector<std::pair<std::string, std::string>>;

/* ---- encoding -------------------------------------------------------------- */

void append(Bytes &out, const Bytes &b)
{
    out.insert(out.end(), b.begin(), b.end());
}

Bytes bytes(const std::string &s)
{
    return Bytes(s.begin(), s.end());
}

Bytes cat(std::initializer_list<Bytes> parts)
{
    Bytes out;
    for (const Bytes &p : parts)
        append(out, p);
    return out;
}

/* One record; padding to 8 like nginx, filled with non-zero bytes to prove it
 * is skipped. */
Bytes record(uint8_t type, uint16_t id, const Bytes &content)
{
    uint8_t pad = rf_fcgi_padding(content.size());
    Bytes r(RF_FCGI_HEADER_LEN);
    rf_fcgi_header(r.data(), type, id, (uint16_t)content.size(), pad);
    append(r, content);
    r.insert(r.end(), pad, 0xEE);
    return r;
}

Bytes begin_req(uint16_t id, uint16_t role = RF_FCGI_RESPONDER, uint8_t flags = RF_FCGI_KEEP_CONN)
{
    return record(RF_FCGI_BEGIN_REQUEST, id,
                  {(uint8_t)(role >> 8), (uint8_t)role, flags, 0, 0, 0, 0, 0});
}

Bytes nv(const std::string &name, const std::string &value)
{
    Bytes out(rf_fcgi_nv_size((uint32_t)name.size(), (uint32_t)value.size()));
    int n = rf_fcgi_nv_encode(out.data(), out.size(), name.data(), (uint32_t)name.size(),
                              value.data(), (uint32_t)value.size());
    EXPECT_EQ(n, (int)out.size());
    return out;
}

Bytes nv_blob(const Params &ps)
{
    Bytes out;
    for (const auto &p : ps)
        append(out, nv(p.first, p.second));
    return out;
}

/* A stream as records of at most `chunk` bytes (no end-of-stream record). */
Bytes stream(uint8_t type, uint16_t id, const std::string &data, size_t chunk = 32768)
{
    Bytes out;
    for (size_t pos = 0; pos < data.size(); pos += chunk)
        append(out, record(type, id, bytes(data.substr(pos, chunk))));
    return out;
}

Bytes eos(uint8_t type, uint16_t id)
{
    return record(type, id, {});
}

Bytes end_request(uint16_t id, uint8_t proto_status)
{
    return {1,
            RF_FCGI_END_REQUEST,
            (uint8_t)(id >> 8),
            (uint8_t)id,
            0,
            8,
            0,
            0,
            0,
            0,
            0,
            0,
            proto_status,
            0,
            0,
            0};
}

/* ---- what nginx sends -------------------------------------------------------- */

Params nginx_params()
{
    return {
        {"SCRIPT_FILENAME", "/var/www/html/index.php"},
        {"QUERY_STRING", ""},
        {"REQUEST_METHOD", "POST"},
        {"CONTENT_TYPE", "application/x-www-form-urlencoded"},
        {"CONTENT_LENGTH", "27"},
        {"SCRIPT_NAME", "/index.php"},
        {"REQUEST_URI", "/index.php?a=1"},
        {"DOCUMENT_URI", "/index.php"},
        {"DOCUMENT_ROOT", "/var/www/html"},
        {"SERVER_PROTOCOL", "HTTP/1.1"},
        {"REQUEST_SCHEME", "http"},
        {"GATEWAY_INTERFACE", "CGI/1.1"},
        {"SERVER_SOFTWARE", "nginx/1.24.0"},
        {"REMOTE_ADDR", "127.0.0.1"},
        {"REMOTE_PORT", "51234"},
        {"SERVER_ADDR", "127.0.0.1"},
        {"SERVER_PORT", "80"},
        {"SERVER_NAME", "localhost"},
        {"REDIRECT_STATUS", "200"},
        {"HTTP_HOST", "localhost"},
        {"HTTP_USER_AGENT", "curl/8.5.0"},
        /* 4-byte value length */
        {"HTTP_COOKIE", std::string(200, 'c')},
        /* 4-byte name length */
        {"HTTP_X_" + std::string(130, 'N'), "v"},
    };
}

const std::string kBody = "name=ringfpm&lang=c&x=1+2%3";

/* BEGIN keep-conn + PARAMS in 2 records + empty PARAMS + STDIN + empty STDIN. */
Bytes nginx_request(uint16_t id = 1, const Params &ps = nginx_params(),
                    const std::string &body = kBody, uint8_t flags = RF_FCGI_KEEP_CONN)
{
    Bytes out = begin_req(id, RF_FCGI_RESPONDER, flags);
    size_t half = ps.size() / 2;
    /* An empty PARAMS record would end the stream: skip an empty half. */
    for (const Params &part :
         {Params(ps.begin(), ps.begin() + (long)half), Params(ps.begin() + (long)half, ps.end())})
        if (!part.empty())
            append(out, record(RF_FCGI_PARAMS, id, nv_blob(part)));
    append(out, eos(RF_FCGI_PARAMS, id));
    if (!body.empty())
        append(out, stream(RF_FCGI_STDIN, id, body));
    append(out, eos(RF_FCGI_STDIN, id));
    return out;
}

/* ---- wire out ------------------------------------------------------------------- */

struct WireRec {
    uint8_t type;
    uint16_t id;
    std::string content;
};

/* Split what the session sent into records; fails the test on bad framing. */
std::vector<WireRec> parse_wire(const std::string &w)
{
    std::vector<WireRec> out;
    size_t pos = 0;
    while (pos < w.size()) {
        EXPECT_LE(pos + RF_FCGI_HEADER_LEN, w.size()) << "truncated header";
        if (pos + RF_FCGI_HEADER_LEN > w.size())
            break;
        const auto *h = (const uint8_t *)w.data() + pos;
        EXPECT_EQ(h[0], RF_FCGI_VERSION_1);
        size_t clen = (size_t)h[4] << 8 | h[5];
        size_t total = RF_FCGI_HEADER_LEN + clen + h[6];
        EXPECT_LE(pos + total, w.size()) << "truncated record";
        if (pos + total > w.size())
            break;
        out.push_back({h[1], (uint16_t)(h[2] << 8 | h[3]), w.substr(pos + 8, clen)});
        pos += total;
    }
    return out;
}

std::string wire_of(const Bytes &b)
{
    return std::string(b.begin(), b.end());
}

/* ---- the fake connection owner ------------------------------------------------ */

/* A receive buffer: its own reference-counted owner. */
struct Buf {
    rf_ref_t ref; /* first: the release callback casts back */
    uint8_t *data;
    size_t len;
    int releases;
};

void buf_release(rf_ref_t *ref)
{
    Buf *b = reinterpret_cast<Buf *>(ref);
    b->releases++;
    if (b->data) {
        /* Garbage first, then gone: a slice used after its release either
         * reads 0xDB or trips ASan. */
        memset(b->data, 0xDB, b->len);
        delete[] b->data;
        b->data = nullptr;
    }
}

/* A complete request as the handler saw it. */
struct Ready {
    uint16_t id = 0;
    uint8_t role = 0;
    bool keep_conn = false;
    Params params;
    std::string in, data;
    bool in_spilled = false, data_spilled = false;

    bool operator==(const Ready &o) const
    {
        return id == o.id && role == o.role && keep_conn == o.keep_conn && params == o.params &&
               in == o.in && data == o.data && in_spilled == o.in_spilled &&
               data_spilled == o.data_spilled;
    }
};

std::ostream &operator<<(std::ostream &os, const Ready &r)
{
    os << "{id=" << r.id << " role=" << (int)r.role << " keep=" << r.keep_conn << " params=[";
    for (const auto &p : r.params)
        os << p.first.substr(0, 40) << "=" << p.second.substr(0, 40) << ";";
    return os << "] in=" << r.in.size() << "B data=" << r.data.size() << "B}";
}

Ready expect_ready(uint16_t id, const Params &ps, const std::string &in, uint8_t role = 1,
                   bool keep = true)
{
    Ready r;
    r.id = id;
    r.role = role;
    r.keep_conn = keep;
    r.params = ps;
    r.in = in;
    return r;
}

void close_fd(void *data)
{
    close((int)(intptr_t)data);
}

rf_proto_limits_t default_limits()
{
    rf_proto_limits_t l{};
    l.max_params_bytes = 65536;
    l.max_params = 1000;
    l.max_multiplex = 128;
    l.max_per_connection = 0;
    l.buffer_memory = 1 << 20;
    l.max_body = 0;
    l.max_conns = 17;
    l.max_reqs = 99;
    return l;
}

class Conn
{
  public:
    explicit Conn(const rf_proto_limits_t &lim = default_limits()) : lim_(lim)
    {
        rf_arena_pool_init(&pool_, RF_ARENA_CHUNK_SIZE, 16);
        ops_.req_new = req_new;
        ops_.req_ready = req_ready;
        ops_.req_abort = req_abort;
        ops_.req_free = req_free;
        ops_.spill = spill;
        ops_.send = send;
        rf_proto_init(&s, &ops_, this, &lim_, &stats);
    }

    Conn(const Conn &) = delete;
    Conn &operator=(const Conn &) = delete;

    ~Conn()
    {
        finish_all();
        rf_arena_pool_drain(&pool_);
    }

    /* Feed n bytes as one buffer that owns them; the feeder's own reference
     * is dropped after the call, as io/ does once a receive is consumed. */
    int feed(const uint8_t *p, size_t n)
    {
        bufs.push_back(Buf{});
        Buf &b = bufs.back();
        b.data = new uint8_t[n ? n : 1];
        b.len = n;
        if (n)
            memcpy(b.data, p, n);
        b.ref.refs = 1;
        b.ref.release = buf_release;
        int rc = rf_proto_feed(&s, b.data, n, &b.ref);
        rf_ref_put(&b.ref);
        return rc;
    }

    int feed(const Bytes &b)
    {
        return feed(b.data(), b.size());
    }

    /* Feed in pieces of `piece` bytes (the last may be shorter), each its
     * own buffer; stops at the first error and returns it. */
    int feed_pieces(const Bytes &b, size_t piece)
    {
        for (size_t pos = 0; pos < b.size(); pos += piece) {
            int rc = feed(b.data() + pos, std::min(piece, b.size() - pos));
            if (rc < 0)
                return rc;
        }
        return 0;
    }

    /* Feed with owner == NULL: the bytes are garbage right after the call. */
    int feed_unowned(const uint8_t *p, size_t n)
    {
        auto *copy = new uint8_t[n ? n : 1];
        if (n)
            memcpy(copy, p, n);
        int rc = rf_proto_feed(&s, copy, n, nullptr);
        memset(copy, 0xDB, n);
        delete[] copy;
        return rc;
    }

    /* The handler finished r: unlink and free it. Returns req_done's result. */
    int finish(rf_req_t *r)
    {
        auto it = std::find(held.begin(), held.end(), r);
        EXPECT_NE(it, held.end()) << "finishing a request the handler does not hold";
        if (it != held.end())
            held.erase(it);
        int rc = rf_proto_req_done(&s, r);
        EXPECT_EQ(r->state, RF_REQ_DONE);
        destroy(r);
        ndone++;
        return rc;
    }

    /* Close the session and finish what the handler holds; then nothing may
     * be left: no request, no buffer reference. Idempotent. */
    void finish_all()
    {
        rf_proto_close(&s);
        while (!held.empty())
            finish(held.front());
        EXPECT_EQ(s.nreqs, 0u);
        EXPECT_EQ(s.reqs, nullptr);
        EXPECT_TRUE(live_.empty()) << live_.size() << " requests leaked";
        EXPECT_EQ(nnew, nfree + ndone);
        check_bufs_released();
    }

    void check_bufs_released()
    {
        int i = 0;
        for (const Buf &b : bufs) {
            EXPECT_EQ(b.ref.refs, 0u) << "buffer " << i << " still referenced";
            EXPECT_EQ(b.releases, 1) << "buffer " << i << " released " << b.releases << " times";
            i++;
        }
    }

    /* Buffers released so far. */
    int released() const
    {
        int n = 0;
        for (const Buf &b : bufs)
            n += b.releases;
        return n;
    }

    /* What the handler would read: params and both streams. Also checks that
     * every slice lies in a buffer the request holds a reference on, or in
     * none (its arena). */
    Ready capture(const rf_req_t *r)
    {
        Ready out;
        out.id = r->id;
        out.role = r->role;
        out.keep_conn = r->keep_conn != 0;
        for (uint32_t i = 0; i < r->nparams; i++) {
            const rf_param_t &p = r->params[i];
            check_slice(r, p.name, p.name_len);
            check_slice(r, p.value, p.value_len);
            out.params.emplace_back(std::string(p.name, p.name_len),
                                    std::string(p.value, p.value_len));
        }
        out.in = read_stream(r, r->in);
        out.data = read_stream(r, r->data);
        out.in_spilled = r->in.fd >= 0;
        out.data_spilled = r->data.fd >= 0;
        return out;
    }

    rf_proto_t s;
    rf_proto_stats_t stats{};
    std::string wire;              /* what the session sent */
    std::vector<Ready> ready;      /* captured at req_ready, in order */
    std::vector<rf_req_t *> held;  /* READY requests the handler holds */
    std::vector<uint16_t> aborted; /* ids given to req_abort */
    std::vector<uint16_t> freed;   /* ids given to req_free */
    std::list<Buf> bufs;           /* every owned input buffer, stable addresses */
    int nnew = 0, nfree = 0, ndone = 0, nspill = 0;
    int spill_error = 0;            /* spill returns this when non-zero */
    int nspill_end = 0;             /* spill calls with n == 0 (end of stream) */
    int spill_end_error = 0;        /* those return this when non-zero */
    bool fail_new = false;          /* req_new returns NULL */
    bool finish_in_ready = false;   /* the handler answers inside req_ready */
    std::vector<int> done_in_ready; /* req_done results of those */

  private:
    static Conn *self(void *ctx)
    {
        return static_cast<Conn *>(ctx);
    }

    static rf_req_t *req_new(void *ctx)
    {
        Conn *c = self(ctx);
        if (c->fail_new)
            return nullptr;
        rf_arena_t *a = rf_arena_create(&c->pool_);
        if (a == nullptr)
            return nullptr;
        auto *r = static_cast<rf_req_t *>(rf_arena_calloc(a, sizeof(rf_req_t)));
        if (r == nullptr) {
            rf_arena_destroy(a);
            return nullptr;
        }
        r->magic = RF_REQ_MAGIC;
        r->arena = a;
        r->conn = c;
        c->live_.insert(r);
        c->nnew++;
        return r;
    }

    static void req_ready(void *ctx, rf_req_t *r)
    {
        Conn *c = self(ctx);
        EXPECT_EQ(r->magic, RF_REQ_MAGIC);
        EXPECT_EQ(r->state, RF_REQ_READY);
        EXPECT_TRUE(c->live_.count(r));
        c->ready.push_back(c->capture(r));
        c->held.push_back(r);
        if (c->finish_in_ready)
            c->done_in_ready.push_back(c->finish(r));
    }

    static void req_abort(void *ctx, rf_req_t *r)
    {
        Conn *c = self(ctx);
        EXPECT_EQ(r->magic, RF_REQ_MAGIC);
        EXPECT_EQ(r->state, RF_REQ_READY) << "req_abort for a request the handler does not hold";
        EXPECT_TRUE(r->aborted);
        c->aborted.push_back(r->id);
    }

    static void req_free(void *ctx, rf_req_t *r)
    {
        Conn *c = self(ctx);
        EXPECT_EQ(r->magic, RF_REQ_MAGIC);
        EXPECT_NE(r->state, RF_REQ_READY) << "req_free for a request the handler holds";
        EXPECT_EQ(r->next, nullptr) << "freed while still linked";
        c->freed.push_back(r->id);
        c->destroy(r);
        c->nfree++;
    }

    static int write_all(int fd, const uint8_t *p, size_t n)
    {
        while (n > 0) {
            ssize_t w = write(fd, p, n);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return w < 0 ? -errno : -EIO;
            p += w;
            n -= (size_t)w;
        }
        return 0;
    }

    static int spill(void *ctx, rf_req_t *r, rf_stream_t *st, const uint8_t *p, size_t n)
    {
        Conn *c = self(ctx);
        c->nspill++;
        if (c->spill_error)
            return c->spill_error;
        if (n == 0) {
            EXPECT_GE(st->fd, 0) << "end-of-stream call for a stream that never spilled";
            EXPECT_TRUE(st->done);
            c->nspill_end++;
            return c->spill_end_error;
        }
        if (st->fd < 0) {
            int fd = memfd_create("rf_proto_test", MFD_CLOEXEC);
            if (fd < 0)
                return -errno;
            if (rf_arena_cleanup_add(r->arena, close_fd, (void *)(intptr_t)fd) < 0) {
                close(fd);
                return -ENOMEM;
            }
            st->fd = fd;
            for (const rf_chunk_t *ch = st->head; ch; ch = ch->next) {
                int rc = write_all(fd, ch->data, ch->len);
                if (rc < 0)
                    return rc;
            }
        }
        return write_all(st->fd, p, n);
    }

    static int send(void *ctx, const uint8_t *p, size_t n)
    {
        self(ctx)->wire.append((const char *)p, n);
        return 0;
    }

    std::string read_stream(const rf_req_t *r, const rf_stream_t &st)
    {
        std::string out;
        if (st.fd >= 0) {
            EXPECT_EQ(st.head, nullptr) << "spilled stream still has memory chunks";
            out.resize(st.len);
            size_t have = 0;
            while (have < st.len) {
                ssize_t n = pread(st.fd, &out[have], st.len - have, (off_t)have);
                EXPECT_GT(n, 0) << "spill file shorter than the stream";
                if (n <= 0)
                    break;
                have += (size_t)n;
            }
            char extra;
            EXPECT_EQ(pread(st.fd, &extra, 1, (off_t)st.len), 0) << "spill file too long";
            return out;
        }
        for (const rf_chunk_t *ch = st.head; ch; ch = ch->next) {
            check_slice(r, ch->data, ch->len);
            out.append((const char *)ch->data, ch->len);
        }
        EXPECT_EQ(out.size(), st.len);
        return out;
    }

    void check_slice(const rf_req_t *r, const void *p, size_t n)
    {
        if (n == 0)
            return;
        const auto *q = static_cast<const uint8_t *>(p);
        for (Buf &b : bufs) {
            if (b.data == nullptr || q < b.data || q >= b.data + b.len)
                continue;
            EXPECT_LE(q + n, b.data + b.len) << "slice runs past its buffer";
            bool held_ref = false;
            for (uint32_t i = 0; i < r->nrefs; i++)
                held_ref |= r->refs[i] == &b.ref;
            EXPECT_TRUE(held_ref) << "slice into a buffer the request holds no reference on";
            return;
        }
    }

    void destroy(rf_req_t *r)
    {
        rf_req_release_refs(r);
        EXPECT_EQ(r->nrefs, 0u);
        live_.erase(r);
        rf_arena_t *a = r->arena;
        r->magic = 0;
        rf_arena_destroy(a);
    }

    rf_proto_limits_t lim_;
    rf_arena_pool_t pool_;
    rf_proto_ops_t ops_{};
    std::set<rf_req_t *> live_;
};

/* The status line of the error response the session queued for id, after
 * checking it is exactly STDOUT + END_REQUEST(complete). */
std::string reject_status(const std::string &wire, uint16_t id)
{
    auto recs = parse_wire(wire);
    EXPECT_EQ(recs.size(), 2u);
    if (recs.size() != 2)
        return "";
    EXPECT_EQ(recs[0].type, RF_FCGI_STDOUT);
    EXPECT_EQ(recs[0].id, id);
    EXPECT_EQ(wire.substr(wire.size() - 16), wire_of(end_request(id, RF_FCGI_REQUEST_COMPLETE)));
    const std::string &c = recs[0].content;
    EXPECT_NE(c.find("\r\n\r\n"), std::string::npos);
    return c.substr(0, c.find("\r\n"));
}

/* ---- complete requests ------------------------------------------------------------ */

TEST(ProtoRequest, NginxRequest)
{
    Conn c;
    ASSERT_EQ(c.feed(nginx_request()), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.ready[0], expect_ready(1, nginx_params(), kBody));
    EXPECT_EQ(c.wire, "");
    EXPECT_EQ(c.stats.requests, 1u);
    EXPECT_EQ(c.stats.protocol_errors, 0u);
    EXPECT_EQ(c.stats.records_ignored, 0u);
    EXPECT_EQ(c.s.nreqs, 1u);
    EXPECT_EQ(c.s.closing, 0);
    EXPECT_TRUE(rf_proto_idle(&c.s));

    rf_req_t *r = c.held.at(0);
    const rf_param_t *m = rf_req_param(r, "REQUEST_METHOD");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(std::string(m->value, m->value_len), "POST");
    EXPECT_EQ(rf_req_param(r, "REQUEST"), nullptr);
    EXPECT_EQ(rf_req_param(r, "request_method"), nullptr);

    /* Params and body point into the one receive buffer, which the request
     * holds until it is freed. */
    EXPECT_EQ(r->nrefs, 1u);
    EXPECT_EQ(c.bufs.front().ref.refs, 1u);
    EXPECT_EQ(c.released(), 0);
    EXPECT_EQ(c.finish(r), 0) << "keep-conn: the connection stays";
    EXPECT_EQ(c.released(), 1);
    EXPECT_EQ(c.nfree, 0);
}

TEST(ProtoRequest, ScriptNameIsTheLastOne)
{
    /* nginx's stock fastcgi_params plus a site's own line send SCRIPT_NAME
     * twice; php-fpm (and ping/status matching) use the last. */
    Conn c;
    Params ps = {{"SCRIPT_NAME", "/first.php"},
                 {"QUERY_STRING", ""},
                 {"SCRIPT_NAME", "/ping"},
                 {"REQUEST_METHOD", "GET"}};
    ASSERT_EQ(c.feed(nginx_request(1, ps, "")), 0);
    ASSERT_EQ(c.held.size(), 1u);
    const rf_param_t *sn = rf_req_script_name(c.held.at(0));
    ASSERT_NE(sn, nullptr);
    EXPECT_EQ(std::string(sn->value, sn->value_len), "/ping");

    Conn none;
    ASSERT_EQ(none.feed(nginx_request(1, {{"QUERY_STRING", "a=1"}}, "")), 0);
    ASSERT_EQ(none.held.size(), 1u);
    EXPECT_EQ(rf_req_script_name(none.held.at(0)), nullptr);
    EXPECT_EQ(c.finish(c.held.at(0)), 0);
    EXPECT_EQ(none.finish(none.held.at(0)), 0);
}

TEST(ProtoRequest, SplitAtEveryOffset)
{
    const Bytes req = nginx_request();
    const Ready want = expect_ready(1, nginx_params(), kBody);
    for (size_t cut = 0; cut <= req.size() && !HasFailure(); cut++) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        Conn c;
        ASSERT_EQ(c.feed(req.data(), cut), 0);
        ASSERT_EQ(c.feed(req.data() + cut, req.size() - cut), 0);
        ASSERT_EQ(c.ready.size(), 1u);
        EXPECT_EQ(c.ready[0], want);
        EXPECT_TRUE(rf_proto_idle(&c.s));
        EXPECT_EQ(c.finish(c.held.at(0)), 0);
        c.check_bufs_released();
    }
}

TEST(ProtoRequest, OneBytePerBuffer)
{
    const Bytes req = nginx_request();
    Conn c;
    for (size_t i = 0; i < req.size(); i++) {
        ASSERT_EQ(c.feed(&req[i], 1), 0) << "at byte " << i;
        if (i + 1 < req.size()) {
            EXPECT_FALSE(rf_proto_idle(&c.s)) << "at byte " << i;
        }
    }
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.ready[0], expect_ready(1, nginx_params(), kBody));
    EXPECT_GT(c.held.at(0)->nrefs, 4u) << "the refs array had to grow";
    EXPECT_EQ(c.finish(c.held.at(0)), 0);
    c.check_bufs_released();
}

TEST(ProtoRequest, EveryPieceSize)
{
    const Bytes req = nginx_request();
    const Ready want = expect_ready(1, nginx_params(), kBody);
    for (size_t piece = 1; piece <= 64 && !HasFailure(); piece++) {
        SCOPED_TRACE("pieces of " + std::to_string(piece));
        Conn c;
        ASSERT_EQ(c.feed_pieces(req, piece), 0);
        ASSERT_EQ(c.ready.size(), 1u);
        EXPECT_EQ(c.ready[0], want);
    }
}

TEST(ProtoRequest, OwnerNullCopiesWhatItKeeps)
{
    /* owner == NULL: the bytes are overwritten right after each call, so
     * everything the request keeps must have been copied. */
    const Bytes req = nginx_request();
    const Ready want = expect_ready(1, nginx_params(), kBody);
    for (size_t cut = 0; cut <= req.size() && !HasFailure(); cut++) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        Conn c;
        ASSERT_EQ(c.feed_unowned(req.data(), cut), 0);
        ASSERT_EQ(c.feed_unowned(req.data() + cut, req.size() - cut), 0);
        ASSERT_EQ(c.ready.size(), 1u);
        EXPECT_EQ(c.ready[0], want);
        EXPECT_EQ(c.held.at(0)->nrefs, 0u);
        /* and again, after the input is long gone */
        EXPECT_EQ(c.capture(c.held.at(0)), want);
    }
    Conn c;
    for (uint8_t b : req)
        ASSERT_EQ(c.feed_unowned(&b, 1), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.ready[0], want);
}

TEST(ProtoRequest, HandlerAnswersInsideReady)
{
    /* The owner may finish (and free) a request from inside req_ready. */
    Conn c;
    c.finish_in_ready = true;
    ASSERT_EQ(c.feed(cat({nginx_request(1), nginx_request(2), nginx_request(3)})), 0);
    ASSERT_EQ(c.ready.size(), 3u);
    EXPECT_EQ(c.done_in_ready, (std::vector<int>{0, 0, 0}));
    EXPECT_EQ(c.s.nreqs, 0u);
    ASSERT_EQ(c.feed(nginx_request(4, nginx_params(), kBody, 0)), 0);
    EXPECT_EQ(c.done_in_ready, (std::vector<int>{0, 0, 0, 1})) << "no keep-conn: close now";
    c.check_bufs_released();
}

TEST(ProtoRequest, IdleOnlyBetweenRequests)
{
    Conn c;
    const Bytes b = begin_req(1);
    EXPECT_TRUE(rf_proto_idle(&c.s));
    ASSERT_EQ(c.feed(b.data(), 5), 0);
    EXPECT_FALSE(rf_proto_idle(&c.s)) << "inside a header";
    ASSERT_EQ(c.feed(b.data() + 5, b.size() - 5), 0);
    EXPECT_FALSE(rf_proto_idle(&c.s)) << "a request is half received";
    ASSERT_EQ(c.feed(cat({eos(RF_FCGI_PARAMS, 1), eos(RF_FCGI_STDIN, 1)})), 0);
    EXPECT_TRUE(rf_proto_idle(&c.s)) << "the only request is with the handler";
}

TEST(ProtoRequest, RequestIdReusedAfterDone)
{
    Conn c;
    ASSERT_EQ(c.feed(nginx_request(7)), 0);
    ASSERT_EQ(c.finish(c.held.at(0)), 0);
    ASSERT_EQ(c.feed(nginx_request(7, {{"X", "again"}}, "")), 0);
    ASSERT_EQ(c.ready.size(), 2u);
    EXPECT_EQ(c.ready[1], expect_ready(7, {{"X", "again"}}, ""));
}

TEST(ProtoRequest, StdinAfterEndIsIgnored)
{
    Conn c;
    ASSERT_EQ(c.feed(nginx_request(1)), 0);
    ASSERT_EQ(c.feed(cat({stream(RF_FCGI_STDIN, 1, "late"), eos(RF_FCGI_STDIN, 1),
                          stream(RF_FCGI_DATA, 1, "data")})),
              0);
    EXPECT_EQ(c.stats.records_ignored, 3u);
    EXPECT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.capture(c.held.at(0)).in, kBody);
}

TEST(ProtoRequest, ReqNewFailureIsOutOfMemory)
{
    Conn c;
    c.fail_new = true;
    EXPECT_EQ(c.feed(begin_req(1)), -ENOMEM);
    EXPECT_EQ(c.s.nreqs, 0u);
}

/* ---- params ------------------------------------------------------------------------ */

TEST(ProtoParams, PairStraddlesBuffersAndRecords)
{
    /* nginx never cuts a pair across PARAMS records, but the spec allows it
     * and so do we; the cut pair is gathered into the request arena. */
    const Params ps = {{"A", "1"}, {"HTTP_X_STRADDLE", std::string(300, 's') + "end"}, {"B", "2"}};
    const Bytes blob = nv_blob(ps);
    const size_t pair_start = nv("A", "1").size();
    const size_t pair_end = pair_start + nv(ps[1].first, ps[1].second).size();
    const size_t rec1 = 16 + 8; /* content of the first PARAMS record starts here */
    for (size_t k = pair_start + 1; k < pair_end && !HasFailure(); k++) {
        Bytes req = begin_req(1);
        append(req, record(RF_FCGI_PARAMS, 1, Bytes(blob.begin(), blob.begin() + (long)k)));
        const size_t rec2 = req.size();
        append(req, record(RF_FCGI_PARAMS, 1, Bytes(blob.begin() + (long)k, blob.end())));
        append(req, cat({eos(RF_FCGI_PARAMS, 1), eos(RF_FCGI_STDIN, 1)}));
        /* Buffer cuts: inside the pair's part in record 1, inside record 2's
         * header, inside the pair's rest in record 2. */
        for (size_t cut :
             {rec1 + pair_start + (k - pair_start) / 2, rec2 + 3, rec2 + 8 + (pair_end - k) / 2}) {
            SCOPED_TRACE("record cut " + std::to_string(k) + ", buffer cut " + std::to_string(cut));
            Conn c;
            ASSERT_EQ(c.feed(req.data(), cut), 0);
            ASSERT_EQ(c.feed(req.data() + cut, req.size() - cut), 0);
            ASSERT_EQ(c.ready.size(), 1u);
            EXPECT_EQ(c.ready[0], expect_ready(1, ps, ""));
        }
    }
}

TEST(ProtoParams, EmptyPairsAndLongLengthForms)
{
    /* Zero-length pairs, in short and 4-byte length forms, complete inside
     * the length prefix: the path where no pair body follows. */
    Bytes blob = {0, 0, 0x80, 0, 0, 0, 0x80, 0, 0, 0};
    append(blob, nv("K", "V"));
    append(blob, {0x80, 0, 0, 1, 0, 'Z'});
    const Params want = {{"", ""}, {"", ""}, {"K", "V"}, {"Z", ""}};
    const Bytes req = cat({begin_req(1), record(RF_FCGI_PARAMS, 1, blob), eos(RF_FCGI_PARAMS, 1),
                           eos(RF_FCGI_STDIN, 1)});
    for (size_t cut = 0; cut <= req.size() && !HasFailure(); cut++) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        Conn c;
        ASSERT_EQ(c.feed(req.data(), cut), 0);
        ASSERT_EQ(c.feed(req.data() + cut, req.size() - cut), 0);
        ASSERT_EQ(c.ready.size(), 1u);
        EXPECT_EQ(c.ready[0].params, want);
    }
    /* And with every byte its own PARAMS record. */
    Bytes req2 = begin_req(1);
    for (uint8_t b : blob)
        append(req2, record(RF_FCGI_PARAMS, 1, {b}));
    append(req2, cat({eos(RF_FCGI_PARAMS, 1), eos(RF_FCGI_STDIN, 1)}));
    Conn c;
    ASSERT_EQ(c.feed_pieces(req2, 3), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.ready[0].params, want);
}

TEST(ProtoParams, ManyParamsManyBuffers)
{
    Params ps;
    for (int i = 0; i < 300; i++)
        ps.emplace_back("HTTP_X_HEADER_" + std::to_string(i), std::string((size_t)i, 'v'));
    Conn c;
    ASSERT_EQ(c.feed_pieces(nginx_request(1, ps, "body"), 7), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.ready[0], expect_ready(1, ps, "body"));
}

TEST(ProtoParams, DuplicateNameLastWins)
{
    Conn c;
    ASSERT_EQ(c.feed(nginx_request(1, {{"A", "1"}, {"B", "x"}, {"A", "2"}}, "")), 0);
    ASSERT_EQ(c.held.size(), 1u);
    const rf_param_t *a = rf_req_param(c.held[0], "A");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(std::string(a->value, a->value_len), "2");
    EXPECT_EQ(c.held[0]->nparams, 3u);
}

/* ---- multiplexing ------------------------------------------------------------------ */

TEST(ProtoMultiplex, SixtyFourInterleavedRequests)
{
    rf_proto_limits_t lim = default_limits();
    lim.max_multiplex = 64;
    auto params_of = [](uint16_t id) {
        Params ps;
        for (int round = 0; round < 3; round++)
            ps.emplace_back("ROUND" + std::to_string(round), "id-" + std::to_string(id));
        return ps;
    };
    Bytes in;
    for (uint16_t id = 1; id <= 64; id++)
        append(in, begin_req(id));
    for (int round = 0; round < 3; round++)
        for (uint16_t id = 1; id <= 64; id++)
            append(in, record(RF_FCGI_PARAMS, id, nv_blob({params_of(id)[(size_t)round]})));
    for (uint16_t id = 64; id >= 1; id--)
        append(in, eos(RF_FCGI_PARAMS, id));
    for (uint16_t id = 1; id <= 64; id++)
        append(in, stream(RF_FCGI_STDIN, id, "body-" + std::to_string(id)));
    /* Completion order: a permutation (37 is prime to 64). */
    std::vector<uint16_t> order;
    for (int i = 0; i < 64; i++)
        order.push_back((uint16_t)((i * 37) % 64 + 1));
    for (uint16_t id : order)
        append(in, eos(RF_FCGI_STDIN, id));

    for (size_t piece : {in.size(), (size_t)13}) {
        SCOPED_TRACE("pieces of " + std::to_string(piece));
        Conn c(lim);
        ASSERT_EQ(c.feed_pieces(in, piece), 0);
        ASSERT_EQ(c.ready.size(), 64u);
        for (size_t i = 0; i < 64; i++)
            EXPECT_EQ(c.ready[i], expect_ready(order[i], params_of(order[i]),
                                               "body-" + std::to_string(order[i])));
        EXPECT_EQ(c.s.nreqs, 64u);
        EXPECT_EQ(c.stats.requests, 64u);
        EXPECT_EQ(c.stats.limit_multiplex, 0u);
        EXPECT_EQ(c.wire, "");
        while (!c.held.empty())
            EXPECT_EQ(c.finish(c.held.back()), 0);
        c.check_bufs_released();
    }
}

TEST(ProtoMultiplex, OverMaxMultiplexIsOverloaded)
{
    rf_proto_limits_t lim = default_limits();
    lim.max_multiplex = 2;
    Conn c(lim);
    ASSERT_EQ(c.feed(cat({begin_req(1), begin_req(2), begin_req(3)})), 0);
    EXPECT_EQ(c.wire, wire_of(end_request(3, RF_FCGI_OVERLOADED)));
    EXPECT_EQ(c.stats.limit_multiplex, 1u);
    EXPECT_EQ(c.nnew, 2);
    /* The refused request's records are not for anyone. */
    ASSERT_EQ(c.feed(cat({record(RF_FCGI_PARAMS, 3, nv("A", "1")), eos(RF_FCGI_PARAMS, 3),
                          eos(RF_FCGI_STDIN, 3)})),
              0);
    EXPECT_EQ(c.stats.records_ignored, 3u);
    EXPECT_EQ(c.wire.size(), 16u);
    ASSERT_EQ(c.feed(cat({eos(RF_FCGI_PARAMS, 1), eos(RF_FCGI_STDIN, 1), eos(RF_FCGI_PARAMS, 2),
                          eos(RF_FCGI_STDIN, 2)})),
              0);
    ASSERT_EQ(c.ready.size(), 2u);
    /* A READY request still counts; once answered its slot is free. */
    ASSERT_EQ(c.feed(begin_req(4)), 0);
    EXPECT_EQ(c.stats.limit_multiplex, 2u);
    EXPECT_EQ(c.finish(c.held.at(0)), 0);
    ASSERT_EQ(c.feed(nginx_request(3)), 0);
    ASSERT_EQ(c.ready.size(), 3u);
    EXPECT_EQ(c.ready[2], expect_ready(3, nginx_params(), kBody));
}

TEST(ProtoMultiplex, RecordsForUnknownIdIgnored)
{
    Conn c;
    const Bytes params = record(RF_FCGI_PARAMS, 9, nv_blob(nginx_params()));
    ASSERT_EQ(c.feed(params.data(), 30), 0);
    ASSERT_EQ(c.feed(params.data() + 30, params.size() - 30), 0);
    ASSERT_EQ(c.feed(cat({eos(RF_FCGI_STDIN, 9), record(RF_FCGI_DATA, 9, {1, 2, 3})})), 0);
    EXPECT_EQ(c.stats.records_ignored, 3u) << "a record counts once however it is split";
    EXPECT_EQ(c.wire, "");
    EXPECT_EQ(c.nnew, 0);
    EXPECT_EQ(c.released(), 3);
}

/* ---- abort ------------------------------------------------------------------------- */

TEST(ProtoAbort, WhileReceiving)
{
    Conn c;
    ASSERT_EQ(c.feed(cat({begin_req(1), record(RF_FCGI_PARAMS, 1, nv_blob(nginx_params()))})), 0);
    /* and a pair cut short, gathered in the arena */
    const Bytes part = nv("HTTP_X_PART", std::string(200, 'p'));
    ASSERT_EQ(c.feed(record(RF_FCGI_PARAMS, 1, Bytes(part.begin(), part.begin() + 50))), 0);
    EXPECT_EQ(c.released(), 1) << "the params buffer is held, the partial one copied";
    ASSERT_EQ(c.feed(record(RF_FCGI_ABORT_REQUEST, 1, {})), 0);
    EXPECT_EQ(c.wire, wire_of(end_request(1, RF_FCGI_REQUEST_COMPLETE)));
    EXPECT_EQ(c.freed, (std::vector<uint16_t>{1}));
    EXPECT_TRUE(c.aborted.empty());
    EXPECT_EQ(c.stats.aborted, 1u);
    EXPECT_EQ(c.s.nreqs, 0u);
    EXPECT_EQ(c.released(), 3);
    /* Stragglers are ignored; the id may then be reused. */
    ASSERT_EQ(c.feed(record(RF_FCGI_PARAMS, 1, nv("A", "1"))), 0);
    EXPECT_EQ(c.stats.records_ignored, 1u);
    ASSERT_EQ(c.feed(nginx_request(1)), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.ready[0], expect_ready(1, nginx_params(), kBody));
}

TEST(ProtoAbort, ReadyRequestGoesToHandler)
{
    Conn c;
    ASSERT_EQ(c.feed(nginx_request(1)), 0);
    ASSERT_EQ(c.feed(record(RF_FCGI_ABORT_REQUEST, 1, {})), 0);
    EXPECT_EQ(c.aborted, (std::vector<uint16_t>{1}));
    EXPECT_EQ(c.held.at(0)->aborted, 1);
    EXPECT_EQ(c.wire, "") << "the handler answers it";
    EXPECT_EQ(c.nfree, 0);
    EXPECT_EQ(c.stats.aborted, 1u);
    ASSERT_EQ(c.feed(record(RF_FCGI_ABORT_REQUEST, 1, {})), 0);
    EXPECT_EQ(c.aborted.size(), 1u) << "req_abort once";
    rf_proto_close(&c.s);
    EXPECT_EQ(c.aborted.size(), 1u) << "not again on close";
    EXPECT_EQ(c.finish(c.held.at(0)), 1);
}

TEST(ProtoAbort, UnknownIdIgnored)
{
    Conn c;
    ASSERT_EQ(c.feed(record(RF_FCGI_ABORT_REQUEST, 5, {})), 0);
    EXPECT_EQ(c.wire, "");
    EXPECT_EQ(c.stats.records_ignored, 1u);
    EXPECT_EQ(c.stats.aborted, 0u);
}

/* ---- management records ------------------------------------------------------------ */

TEST(ProtoManagement, GetValuesExactBytes)
{
    const Bytes q =
        record(RF_FCGI_GET_VALUES, 0,
               nv_blob({{"FCGI_MAX_CONNS", ""}, {"FCGI_MAX_REQS", ""}, {"FCGI_MPXS_CONNS", ""}}));
    Bytes want = {1, RF_FCGI_GET_VALUES_RESULT, 0, 0, 0, 53, 3, 0};
    append(want, {14, 2});
    append(want, bytes("FCGI_MAX_CONNS17"));
    append(want, {13, 2});
    append(want, bytes("FCGI_MAX_REQS99"));
    append(want, {15, 1});
    append(want, bytes("FCGI_MPXS_CONNS1"));
    append(want, {0, 0, 0});
    ASSERT_EQ(want.size(), 64u);
    for (size_t piece : {q.size(), (size_t)1}) {
        Conn c;
        ASSERT_EQ(c.feed_pieces(q, piece), 0);
        EXPECT_EQ(c.wire, wire_of(want));
        EXPECT_EQ(c.stats.get_values, 1u);
    }
    Conn c;
    ASSERT_EQ(c.feed(record(RF_FCGI_GET_VALUES, 0, nv_blob({{"PHP_VALUE", ""}}))), 0);
    EXPECT_EQ(c.wire, wire_of({1, RF_FCGI_GET_VALUES_RESULT, 0, 0, 0, 0, 0, 0}));
}

TEST(ProtoManagement, GetValuesQueryLongerThanGatherBufferIsAnswered)
{
    /* Regression: the session gathers 256 bytes of a query; a longer one was
     * cut mid-pair and the whole connection closed as malformed. The pairs
     * that arrived whole are answered, the rest is not. */
    const Bytes q = record(RF_FCGI_GET_VALUES, 0,
                           nv_blob({{"FCGI_MAX_CONNS", ""},
                                    {"FCGI_MPXS_CONNS", ""},
                                    {"X_PAD", std::string(400, 'p')},
                                    {"FCGI_MAX_REQS", ""}}));
    Bytes want = {1, RF_FCGI_GET_VALUES_RESULT, 0, 0, 0, 36, 4, 0};
    append(want, {14, 2});
    append(want, bytes("FCGI_MAX_CONNS17"));
    append(want, {15, 1});
    append(want, bytes("FCGI_MPXS_CONNS1"));
    append(want, {0, 0, 0, 0});
    for (size_t piece : {q.size(), (size_t)100}) {
        Conn c;
        ASSERT_EQ(c.feed_pieces(q, piece), 0) << c.s.error;
        EXPECT_EQ(c.wire, wire_of(want));
        EXPECT_EQ(c.stats.protocol_errors, 0u);
    }
}

TEST(ProtoManagement, GetValuesMalformedQuery)
{
    Conn c;
    EXPECT_EQ(c.feed(record(RF_FCGI_GET_VALUES, 0, {14, 2, 'F'})), -EPROTO);
    EXPECT_EQ(c.stats.protocol_errors, 1u);
    EXPECT_EQ(c.wire, "");
}

TEST(ProtoManagement, UnknownTypeExactBytes)
{
    const Bytes want = {1, RF_FCGI_UNKNOWN_TYPE, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0};
    const Bytes rec = record(42, 0, bytes("abc"));
    for (size_t piece : {rec.size(), (size_t)1}) {
        Conn c;
        ASSERT_EQ(c.feed_pieces(rec, piece), 0);
        EXPECT_EQ(c.wire, wire_of(want)) << "one answer per record, however split";
        EXPECT_EQ(c.stats.unknown_types, 1u);
    }
    Conn c;
    ASSERT_EQ(c.feed(record(0, 3, {})), 0);
    EXPECT_EQ(c.wire, wire_of({1, RF_FCGI_UNKNOWN_TYPE, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
}

/* ---- protocol errors --------------------------------------------------------------- */

TEST(ProtoErrors, DuplicateBegin)
{
    Conn c;
    EXPECT_EQ(c.feed(cat({begin_req(1), begin_req(1)})), -EPROTO);
    EXPECT_NE(c.s.error, nullptr);
    EXPECT_EQ(c.stats.protocol_errors, 1u);
    /* also while the handler holds it */
    Conn d;
    ASSERT_EQ(d.feed(nginx_request(1)), 0);
    EXPECT_EQ(d.feed(begin_req(1)), -EPROTO);
}

TEST(ProtoErrors, ParamsAfterEndOfParams)
{
    Conn c;
    EXPECT_EQ(c.feed(cat(
                  {begin_req(1), eos(RF_FCGI_PARAMS, 1), record(RF_FCGI_PARAMS, 1, nv("A", "1"))})),
              -EPROTO);
    EXPECT_EQ(c.stats.protocol_errors, 1u);
}

TEST(ProtoErrors, StdinBeforeEndOfParams)
{
    Conn c;
    EXPECT_EQ(c.feed(cat({begin_req(1), record(RF_FCGI_PARAMS, 1, nv("A", "1")),
                          stream(RF_FCGI_STDIN, 1, "x")})),
              -EPROTO);
    EXPECT_EQ(c.stats.protocol_errors, 1u);
    Conn d;
    EXPECT_EQ(d.feed(cat({begin_req(1), eos(RF_FCGI_STDIN, 1)})), -EPROTO);
}

TEST(ProtoErrors, ParamsEndInsideAPair)
{
    const Bytes pair = nv("NAME", std::string(200, 'v'));
    for (size_t keep : {(size_t)1, (size_t)3, (size_t)10, pair.size() - 1}) {
        SCOPED_TRACE("pair cut after " + std::to_string(keep));
        Conn c;
        EXPECT_EQ(
            c.feed(cat({begin_req(1),
                        record(RF_FCGI_PARAMS, 1, Bytes(pair.begin(), pair.begin() + (long)keep)),
                        eos(RF_FCGI_PARAMS, 1)})),
            -EPROTO);
        EXPECT_EQ(c.stats.protocol_errors, 1u);
    }
}

TEST(ProtoErrors, BadVersion)
{
    Conn c;
    /* a request in flight, then garbage */
    ASSERT_EQ(c.feed(cat({begin_req(1), record(RF_FCGI_PARAMS, 1, nv_blob(nginx_params()))})), 0);
    Bytes bad = begin_req(2);
    bad[0] = 2;
    EXPECT_EQ(c.feed(bad), -EPROTO);
    EXPECT_EQ(c.stats.protocol_errors, 1u);
    EXPECT_NE(c.s.error, nullptr);
    rf_proto_close(&c.s);
    EXPECT_EQ(c.freed, (std::vector<uint16_t>{1}));
}

TEST(ProtoErrors, RequestRecordWithIdZero)
{
    Conn c;
    EXPECT_EQ(c.feed(begin_req(0)), -EPROTO);
    EXPECT_EQ(c.stats.protocol_errors, 1u);
}

TEST(ProtoErrors, OutboundTypesSentToUs)
{
    for (uint8_t type : {RF_FCGI_END_REQUEST, RF_FCGI_STDOUT, RF_FCGI_STDERR,
                         RF_FCGI_GET_VALUES_RESULT, RF_FCGI_UNKNOWN_TYPE}) {
        SCOPED_TRACE(rf_fcgi_type_name(type));
        Conn c;
        EXPECT_EQ(c.feed(record(type, 1, Bytes(8, 0))), -EPROTO);
        EXPECT_EQ(c.stats.protocol_errors, 1u);
        EXPECT_EQ(c.wire, "");
    }
}

TEST(ProtoErrors, UnknownRole)
{
    Conn c;
    ASSERT_EQ(c.feed(begin_req(5, 7)), 0);
    EXPECT_EQ(c.wire.size(), 16u);
    EXPECT_EQ(c.wire, wire_of(end_request(5, RF_FCGI_UNKNOWN_ROLE)));
    EXPECT_EQ(c.stats.unknown_roles, 1u);
    EXPECT_EQ(c.nnew, 0);
    ASSERT_EQ(c.feed(record(RF_FCGI_PARAMS, 5, nv("A", "1"))), 0);
    EXPECT_EQ(c.stats.records_ignored, 1u);
    ASSERT_EQ(c.feed(begin_req(6, 0)), 0);
    EXPECT_EQ(c.wire.substr(16), wire_of(end_request(6, RF_FCGI_UNKNOWN_ROLE)));
}

/* ---- limits ------------------------------------------------------------------------ */

TEST(ProtoLimits, MaxParamsBytes)
{
    rf_proto_limits_t lim = default_limits();
    const Bytes blob = nv_blob(nginx_params());
    lim.max_params_bytes = (uint32_t)blob.size();
    {
        Conn c(lim);
        ASSERT_EQ(c.feed(nginx_request()), 0) << "exactly at the limit";
        EXPECT_EQ(c.ready.size(), 1u);
    }
    lim.max_params_bytes = (uint32_t)blob.size() - 1;
    Conn c(lim);
    EXPECT_EQ(c.feed(nginx_request()), -E2BIG);
    EXPECT_EQ(reject_status(c.wire, 1), "Status: 431 Request Header Fields Too Large");
    EXPECT_NE(c.wire.find("request.max_params_bytes"), std::string::npos);
    EXPECT_EQ(c.stats.limit_params, 1u);
    EXPECT_EQ(c.s.closing, 1);
    EXPECT_NE(c.s.error, nullptr);
    EXPECT_EQ(c.freed, (std::vector<uint16_t>{1}));
    EXPECT_EQ(c.s.nreqs, 0u);
    EXPECT_EQ(c.released(), 1);
}

TEST(ProtoLimits, PairDeclaredTooBigRejectedEarly)
{
    /* A pair whose length prefix alone is over the limit is refused before
     * its bytes are gathered. */
    rf_proto_limits_t lim = default_limits();
    lim.max_params_bytes = 1024;
    Conn c(lim);
    EXPECT_EQ(c.feed(cat({begin_req(3),
                          record(RF_FCGI_PARAMS, 3, {4, 0x80, 0x10, 0x00, 0x00, 'N', 'A'})})),
              -E2BIG);
    EXPECT_EQ(reject_status(c.wire, 3), "Status: 431 Request Header Fields Too Large");
    EXPECT_EQ(c.stats.limit_params, 1u);
    EXPECT_EQ(c.freed, (std::vector<uint16_t>{3}));
}

TEST(ProtoLimits, MaxParams)
{
    rf_proto_limits_t lim = default_limits();
    lim.max_params = 3;
    const Params three = {{"A", "1"}, {"B", "2"}, {"C", "3"}};
    {
        Conn c(lim);
        ASSERT_EQ(c.feed(nginx_request(1, three, "")), 0);
        EXPECT_EQ(c.ready.size(), 1u);
    }
    Params four = three;
    four.emplace_back("D", "4");
    Conn c(lim);
    EXPECT_EQ(c.feed(nginx_request(2, four, "")), -E2BIG);
    EXPECT_EQ(reject_status(c.wire, 2), "Status: 431 Request Header Fields Too Large");
    EXPECT_NE(c.wire.find("request.max_params)"), std::string::npos);
    EXPECT_EQ(c.stats.limit_params, 1u);
    EXPECT_EQ(c.s.closing, 1);
    EXPECT_EQ(c.freed, (std::vector<uint16_t>{2}));
}

TEST(ProtoLimits, MaxBody)
{
    rf_proto_limits_t lim = default_limits();
    lim.max_body = 100;
    {
        Conn c(lim);
        ASSERT_EQ(c.feed(nginx_request(1, nginx_params(), std::string(100, 'b'))), 0);
        EXPECT_EQ(c.ready.size(), 1u);
    }
    Conn c(lim);
    EXPECT_EQ(c.feed(nginx_request(1, nginx_params(), std::string(101, 'b'))), -E2BIG);
    EXPECT_EQ(reject_status(c.wire, 1), "Status: 413 Content Too Large");
    EXPECT_EQ(c.stats.limit_body, 1u);
    EXPECT_EQ(c.s.closing, 1);
    EXPECT_EQ(c.freed, (std::vector<uint16_t>{1}));
}

std::string pseudo_random(size_t n)
{
    std::string s(n, '\0');
    uint32_t x = 2463534242u;
    for (char &ch : s) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        ch = (char)(x >> 24);
    }
    return s;
}

TEST(ProtoLimits, BodyBeyondBufferMemorySpills)
{
    rf_proto_limits_t lim = default_limits();
    lim.buffer_memory = 64 << 10;
    const std::string body = pseudo_random(1 << 20);
    const Bytes req = nginx_request(1, nginx_params(), body);
    for (size_t piece : {req.size(), (size_t)10007}) {
        SCOPED_TRACE("pieces of " + std::to_string(piece));
        Conn c(lim);
        ASSERT_EQ(c.feed_pieces(req, piece), 0);
        ASSERT_EQ(c.ready.size(), 1u);
        Ready want = expect_ready(1, nginx_params(), body);
        want.in_spilled = true;
        EXPECT_EQ(c.ready[0], want);
        EXPECT_EQ(c.stats.spilled, 1u);
        EXPECT_GT(c.nspill, 1);
        EXPECT_EQ(c.nspill_end, 1) << "the spill is told once that the stream ended";
        const rf_req_t *r = c.held.at(0);
        EXPECT_EQ(r->in.len, body.size());
        EXPECT_EQ(r->body_mem, 0u) << "spilled chunks are no longer counted";
    }
    /* Exactly the budget stays in memory. */
    Conn c(lim);
    ASSERT_EQ(c.feed(nginx_request(1, nginx_params(), body.substr(0, 64 << 10))), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_FALSE(c.ready[0].in_spilled);
    EXPECT_EQ(c.ready[0].in, body.substr(0, 64 << 10));
    EXPECT_EQ(c.stats.spilled, 0u);
    EXPECT_EQ(c.nspill, 0);
    EXPECT_EQ(c.nspill_end, 0);
}

TEST(ProtoLimits, ZeroCopyBodyIsCapped)
{
    /* A body kept in memory holds receive buffers only for its first 64 KiB
     * (RF_PROTO_ZC_BODY in rf_proto.c); the rest is copied into the arena so
     * one upload cannot pin the buffer ring. */
    rf_proto_limits_t lim = default_limits();
    lim.buffer_memory = 2 << 20;
    const std::string body = pseudo_random(1 << 20);
    const Bytes req = nginx_request(1, nginx_params(), body);
    /* where the body's 64 KiB end: two full STDIN records in */
    const size_t zc_end = nginx_request(1, nginx_params(), "").size() - 8 + 2 * (8 + 32768);
    const size_t piece = 10000;
    Conn c(lim);
    ASSERT_EQ(c.feed_pieces(req, piece), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.ready[0], expect_ready(1, nginx_params(), body));
    EXPECT_EQ(c.held.at(0)->body_mem, body.size());
    size_t i = 0, held = 0;
    for (const Buf &b : c.bufs) {
        if (i * piece >= zc_end) {
            EXPECT_EQ(b.releases, 1) << "buffer " << i << " is past the zero-copy part";
        }
        held += b.releases == 0;
        i++;
    }
    EXPECT_GT(held, 0u);
    EXPECT_LE(held, zc_end / piece + 1);
}

TEST(ProtoLimits, SpillFailureIs500)
{
    rf_proto_limits_t lim = default_limits();
    lim.buffer_memory = 16;
    Conn c(lim);
    c.spill_error = -ENOSPC;
    EXPECT_EQ(c.feed(nginx_request(1, nginx_params(), std::string(100, 'b'))), -E2BIG);
    EXPECT_EQ(reject_status(c.wire, 1), "Status: 500 Internal Server Error");
    EXPECT_EQ(c.freed, (std::vector<uint16_t>{1}));
    EXPECT_EQ(c.stats.spilled, 0u);
}

TEST(ProtoLimits, SpillFlushFailureAtEndOfStreamIs500)
{
    /* The spill may buffer; failing to write that out when the stream ends
     * is a failure to spool, not a request dispatched with half a body. */
    rf_proto_limits_t lim = default_limits();
    lim.buffer_memory = 16;
    Conn c(lim);
    c.spill_end_error = -ENOSPC;
    EXPECT_EQ(c.feed(nginx_request(1, nginx_params(), std::string(100, 'b'))), -E2BIG);
    EXPECT_EQ(c.nspill_end, 1);
    EXPECT_TRUE(c.ready.empty());
    EXPECT_EQ(reject_status(c.wire, 1), "Status: 500 Internal Server Error");
    EXPECT_EQ(c.freed, (std::vector<uint16_t>{1}));
}

/* ---- connection lifetime ----------------------------------------------------------- */

TEST(ProtoConnection, NoKeepConnClosesAfterRequest)
{
    Conn c;
    ASSERT_EQ(c.feed(nginx_request(1, nginx_params(), kBody, 0)), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_FALSE(c.ready[0].keep_conn);
    EXPECT_EQ(c.s.closing, 1);
    /* Nothing new is started on a closing connection. */
    ASSERT_EQ(c.feed(nginx_request(2)), 0);
    EXPECT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.nnew, 1);
    EXPECT_EQ(c.stats.records_ignored, 6u);
    EXPECT_EQ(c.finish(c.held.at(0)), 1);
}

TEST(ProtoConnection, MaxPerConnection)
{
    rf_proto_limits_t lim = default_limits();
    lim.max_per_connection = 2;
    Conn c(lim);
    ASSERT_EQ(c.feed(nginx_request(1)), 0);
    EXPECT_EQ(c.finish(c.held.at(0)), 0);
    EXPECT_EQ(c.s.closing, 0);
    ASSERT_EQ(c.feed(nginx_request(2)), 0);
    EXPECT_EQ(c.s.closing, 1);
    EXPECT_EQ(c.stats.limit_per_connection, 1u);
    ASSERT_EQ(c.feed(nginx_request(3)), 0);
    EXPECT_EQ(c.ready.size(), 2u) << "the third BEGIN is ignored";
    EXPECT_EQ(c.nnew, 2);
    EXPECT_EQ(c.stats.records_ignored, 6u);
    EXPECT_EQ(c.finish(c.held.at(0)), 1);
}

TEST(ProtoConnection, CloseFreesReceivingAbortsReady)
{
    Conn c;
    ASSERT_EQ(c.feed(nginx_request(1)), 0);
    ASSERT_EQ(c.feed(cat({begin_req(2), record(RF_FCGI_PARAMS, 2, nv_blob(nginx_params()))})), 0);
    rf_proto_close(&c.s);
    EXPECT_EQ(c.freed, (std::vector<uint16_t>{2}));
    EXPECT_EQ(c.aborted, (std::vector<uint16_t>{1}));
    EXPECT_EQ(c.held.at(0)->aborted, 1);
    EXPECT_EQ(c.s.nreqs, 1u) << "the READY one stays until the handler is done";
    EXPECT_EQ(c.released(), 1);
    rf_proto_close(&c.s);
    EXPECT_EQ(c.freed.size(), 1u);
    EXPECT_EQ(c.aborted.size(), 1u);
    EXPECT_EQ(c.finish(c.held.at(0)), 1);
    EXPECT_EQ(c.released(), 2);
}

/* ---- detach ------------------------------------------------------------------------ */

TEST(ProtoDetach, CopiesAndDropsRefs)
{
    Conn c;
    const Bytes req = nginx_request();
    ASSERT_EQ(c.feed_pieces(req, 50), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    rf_req_t *r = c.held.at(0);
    EXPECT_GT(r->nrefs, 4u);
    const int before = c.released();
    EXPECT_LT(before, (int)c.bufs.size());
    ASSERT_EQ(rf_req_detach(r), 0);
    EXPECT_EQ(r->nrefs, 0u);
    /* Every buffer is now back: overwritten with garbage and freed. */
    EXPECT_EQ(c.released(), (int)c.bufs.size());
    EXPECT_EQ(c.capture(r), expect_ready(1, nginx_params(), kBody));
    EXPECT_EQ(rf_req_detach(r), 0) << "nothing left to detach";
    EXPECT_EQ(c.finish(r), 0);
}

TEST(ProtoDetach, WhileReceiving)
{
    Conn c;
    const Bytes req = nginx_request();
    const size_t cut = 16 + 8 + 40; /* inside the first PARAMS record */
    ASSERT_EQ(c.feed_pieces(Bytes(req.begin(), req.begin() + (long)cut), 9), 0);
    rf_req_t *r = c.s.reqs;
    ASSERT_NE(r, nullptr);
    ASSERT_EQ(rf_req_detach(r), 0);
    EXPECT_EQ(c.released(), (int)c.bufs.size());
    ASSERT_EQ(c.feed_pieces(Bytes(req.begin() + (long)cut, req.end()), 11), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.ready[0], expect_ready(1, nginx_params(), kBody));
}

/* ---- roles ------------------------------------------------------------------------- */

TEST(ProtoRoles, AuthorizerReadyAfterEmptyParams)
{
    const Params ps = {{"REMOTE_USER", "alice"}, {"REQUEST_URI", "/private"}};
    Conn c;
    ASSERT_EQ(c.feed(cat({begin_req(1, RF_FCGI_AUTHORIZER), record(RF_FCGI_PARAMS, 1, nv_blob(ps)),
                          eos(RF_FCGI_PARAMS, 1)})),
              0);
    ASSERT_EQ(c.ready.size(), 1u);
    EXPECT_EQ(c.ready[0], expect_ready(1, ps, "", RF_FCGI_AUTHORIZER));
    /* An authorizer has no STDIN: whatever comes is ignored. */
    ASSERT_EQ(c.feed(cat({stream(RF_FCGI_STDIN, 1, "x"), eos(RF_FCGI_STDIN, 1)})), 0);
    EXPECT_EQ(c.stats.records_ignored, 2u);
    EXPECT_EQ(c.ready.size(), 1u);
}

TEST(ProtoRoles, FilterNeedsStdinThenData)
{
    const Params ps = {{"FCGI_DATA_LAST_MOD", "0"}, {"FCGI_DATA_LENGTH", "9"}};
    Conn c;
    ASSERT_EQ(c.feed(cat({begin_req(1, RF_FCGI_FILTER), record(RF_FCGI_PARAMS, 1, nv_blob(ps)),
                          eos(RF_FCGI_PARAMS, 1), stream(RF_FCGI_STDIN, 1, "abc"),
                          eos(RF_FCGI_STDIN, 1)})),
              0);
    EXPECT_TRUE(c.ready.empty()) << "a filter also needs its DATA";
    ASSERT_NE(c.s.reqs, nullptr);
    EXPECT_EQ(c.s.reqs->state, RF_REQ_DATA);
    ASSERT_EQ(c.feed(stream(RF_FCGI_DATA, 1, "file data")), 0);
    EXPECT_TRUE(c.ready.empty());
    ASSERT_EQ(c.feed(eos(RF_FCGI_DATA, 1)), 0);
    ASSERT_EQ(c.ready.size(), 1u);
    Ready want = expect_ready(1, ps, "abc", RF_FCGI_FILTER);
    want.data = "file data";
    EXPECT_EQ(c.ready[0], want);
}

TEST(ProtoRoles, StateNames)
{
    EXPECT_STREQ(rf_req_state_name(RF_REQ_PARAMS), "params");
    EXPECT_STREQ(rf_req_state_name(RF_REQ_READY), "ready");
    EXPECT_STREQ(rf_req_state_name(99), "unknown");
}

} // namespace
