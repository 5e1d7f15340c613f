/*
 * Unit tests for pm/rf_chan.c: round trips in one process (a second handle
 * on the same memfd plays the responder), wraparound at every record offset
 * in both rings, backpressure on full rings, a forked executor exchanging
 * 100,000 requests with the parent while both sides sleep and wake (doorbell
 * counts asserted), the io_uring FUTEX_WAIT and eventfd sleep paths, and a
 * malicious executor writing bad indices and records: the responder must
 * answer -EPROTO without reading outside the mapping (run under ASan; the
 * mapping is followed by a PROT_NONE guard page, so an overread faults).
 */
#include "rf_chan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include(<liburing.h>)
#include <liburing.h>
#define RF_TEST_URING 1
#else
#define RF_TEST_URING 0
#endif

#ifndef SPIN
#define SPIN 1000 /* executor polls before sleeping: keeps a steady stream syscall-free */
#endif

namespace
{

struct Pair {
    rf_chan_t *exec = nullptr; /* the created handle: plays the executor */
    rf_chan_t *resp = nullptr; /* opened from the memfd: plays the responder */
    rf_chan_layout_t lay{};

    explicit Pair(uint32_t req = 4096, uint32_t rsp = 4096, int efd_opt = 0, uint32_t spin = 0)
    {
        rf_chan_opts_t o{};
        o.spin = spin;
        o.req_ring_size = req;
        o.resp_ring_size = rsp;
        o.resp_eventfd = efd_opt;
        EXPECT_EQ(0, rf_chan_create(&o, &exec));
        EXPECT_EQ(0, rf_chan_open(rf_chan_fd(exec), rf_chan_eventfd(exec), &o, &resp));
        rf_chan_layout(resp, &lay);
    }
    ~Pair()
    {
        rf_chan_destroy(exec);
        rf_chan_destroy(resp);
    }
};

std::string pattern(size_t n, uint32_t seed)
{
    std::string s(n, '\0');
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + (seed * 31 + i * 7) % 26);
    return s;
}

int send_req(rf_chan_t *ch, uint32_t slot, uint32_t gen, const std::string &params,
             const std::string &body)
{
    rf_chan_req_t rq{};
    rq.slot = slot;
    rq.gen = gen;
    rq.params_len = (uint32_t)params.size();
    rq.body_len = (uint32_t)body.size();
    rq.t_queued_ns = 12345;
    struct iovec iov[2] = {{(void *)params.data(), params.size()},
                           {(void *)body.data(), body.size()}};
    return rf_chan_resp_send_request(ch, &rq, iov, 2);
}

std::string data_of(const rf_chan_msg_t &m)
{
    return std::string((const char *)m.data, m.len);
}

} // namespace

TEST(RfChan, OptionsValidated)
{
    rf_chan_t *ch = nullptr;
    rf_chan_opts_t o{};
    o.req_ring_size = 3000;
    EXPECT_EQ(-EINVAL, rf_chan_create(&o, &ch));
    o.req_ring_size = 2048;
    EXPECT_EQ(-EINVAL, rf_chan_create(&o, &ch));
    ASSERT_EQ(0, rf_chan_create(nullptr, &ch));
    rf_chan_layout_t l;
    rf_chan_layout(ch, &l);
    EXPECT_EQ(256u * 1024, l.req_size);
    EXPECT_EQ(256u * 1024, l.resp_size);
    rf_chan_t *ch2 = nullptr;
    rf_chan_opts_t big{};
    big.req_ring_size = 1u << 20; /* larger than the file */
    EXPECT_EQ(-EINVAL, rf_chan_open(rf_chan_fd(ch), -1, &big, &ch2));
    rf_chan_opts_t efd{};
    efd.resp_eventfd = 1; /* option says eventfd, but none given */
    EXPECT_EQ(-EINVAL, rf_chan_open(rf_chan_fd(ch), -1, &efd, &ch2));
    /* Sealed: nobody (an executor holding the fd) can shrink it. */
    EXPECT_NE(0, ftruncate(rf_chan_fd(ch), 4096));
    rf_chan_destroy(ch);
}

TEST(RfChan, RoundTrip)
{
    Pair p;
    rf_chan_msg_t m;

    EXPECT_EQ(0, rf_chan_exec_next(p.exec, &m));
    EXPECT_EQ(0, rf_chan_resp_next(p.resp, &m));
    ASSERT_EQ(0, send_req(p.resp, 7, 99, "PARAMS", "body!"));
    ASSERT_EQ(1, rf_chan_exec_peek(p.exec, &m));
    ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));
    EXPECT_EQ((uint32_t)RF_CHAN_REQUEST, m.type);
    EXPECT_EQ(7u, m.slot);
    EXPECT_EQ(99u, m.gen);
    EXPECT_EQ(6u, m.arg0);
    EXPECT_EQ(5u, m.arg1);
    EXPECT_EQ(12345u, m.arg2);
    EXPECT_EQ("PARAMSbody!", data_of(m));
    EXPECT_EQ(0, rf_chan_exec_next(p.exec, &m));
    ASSERT_EQ(0, rf_chan_resp_send_abort(p.resp, 7, 99));
    ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));
    EXPECT_EQ((uint32_t)RF_CHAN_ABORT, m.type);
    EXPECT_EQ(0, rf_chan_exec_release(p.exec));

    ASSERT_EQ(0, rf_chan_exec_write(p.exec, RF_CHAN_STDOUT, 7, 99, "Status: 200\r\n\r\nhi", 17));
    ASSERT_EQ(0, rf_chan_exec_write(p.exec, RF_CHAN_STDERR, 7, 99, "warn", 4));
    ASSERT_EQ(0, rf_chan_exec_put(p.exec, RF_CHAN_FLUSH, 7, 99, 0, 0, nullptr, 0, 1));
    ASSERT_EQ(0, rf_chan_exec_end(p.exec, 7, 99, 3, 0));

    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ((uint32_t)RF_CHAN_STDOUT, m.type);
    EXPECT_EQ("Status: 200\r\n\r\nhi", data_of(m));
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ((uint32_t)RF_CHAN_STDERR, m.type);
    EXPECT_EQ("warn", data_of(m));
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ((uint32_t)RF_CHAN_FLUSH, m.type);
    ASSERT_EQ(1, rf_chan_resp_peek(p.resp, &m));
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ((uint32_t)RF_CHAN_END, m.type);
    EXPECT_EQ(3u, m.arg0);
    EXPECT_EQ(7u, m.slot);
    EXPECT_EQ(0, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ(0, rf_chan_resp_release(p.resp));
    EXPECT_EQ(0, rf_chan_resp_broken(p.resp));

    rf_chan_stats_t st;
    rf_chan_stats(p.resp, &st);
    EXPECT_EQ(2u, st.records);
    EXPECT_EQ(0u, st.wakes); /* nobody slept: no doorbell */
    rf_chan_peer_stats(p.resp, &st);
    EXPECT_EQ(4u, st.records);
    EXPECT_EQ(0u, st.wakes);
}

// fastcgi_finish_request: an END flagged MORE, then the script's DONE
// (no payload); only END may carry the flag.
TEST(RfChan, EndMoreThenDone)
{
    Pair p;
    rf_chan_msg_t m;
    ASSERT_EQ(0, send_req(p.resp, 1, 5, "P", ""));
    ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));
    ASSERT_EQ(0, rf_chan_exec_release(p.exec));
    ASSERT_EQ(0, rf_chan_exec_end_more(p.exec, 1, 5, 0));
    ASSERT_EQ(0, rf_chan_exec_done(p.exec, 1, 5));
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ((uint32_t)RF_CHAN_END, m.type);
    EXPECT_EQ(RF_CHAN_F_MORE, m.flags);
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ((uint32_t)RF_CHAN_DONE, m.type);
    EXPECT_EQ(5u, m.gen);
    EXPECT_EQ(0u, m.flags);
    EXPECT_EQ(0, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ(0, rf_chan_resp_broken(p.resp));
    // DONE carries nothing
    EXPECT_EQ(-EINVAL, rf_chan_exec_put(p.exec, RF_CHAN_DONE, 1, 5, 0, 0, "x", 1, 1));
}

TEST(RfChan, BodyFdFlagAndLimits)
{
    Pair p;
    rf_chan_msg_t m;
    rf_chan_req_t rq{};
    std::string params = "P";
    struct iovec iov = {(void *)params.data(), 1};

    rq.slot = 1;
    rq.flags = RF_CHAN_F_BODY_FD;
    rq.params_len = 1;
    rq.body_len = 1u << 30; /* travels as an fd: not inline */
    ASSERT_EQ(0, rf_chan_resp_send_request(p.resp, &rq, &iov, 1));
    ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));
    EXPECT_EQ(RF_CHAN_F_BODY_FD, m.flags);
    EXPECT_EQ(1u << 30, m.arg1);
    EXPECT_EQ(1u, m.len);

    rq.flags = 0x80;
    EXPECT_EQ(-EINVAL, rf_chan_resp_send_request(p.resp, &rq, &iov, 1));
    rq.flags = 0;
    rq.body_len = 5; /* iov carries 1 byte, descriptor says 6 */
    EXPECT_EQ(-EINVAL, rf_chan_resp_send_request(p.resp, &rq, &iov, 1));
    std::string big(rf_chan_max_payload(4096) + 1, 'x');
    EXPECT_EQ(-E2BIG, send_req(p.resp, 1, 1, big, ""));
    big.pop_back();
    rf_chan_exec_release(p.exec);
    EXPECT_EQ(0, send_req(p.resp, 1, 1, big, ""));
    EXPECT_EQ(-E2BIG,
              rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 0, 0, 0, 0, big.data(), big.size() + 1, 1));
    EXPECT_EQ(-EINVAL, rf_chan_exec_put(p.exec, RF_CHAN_END, 0, 0, 0, 0, "x", 1, 1));
    EXPECT_EQ(-EINVAL, rf_chan_exec_put(p.exec, RF_CHAN_REQUEST, 0, 0, 0, 0, nullptr, 0, 1));
}

/*
 * Moves both rings' positions through every 32-byte offset and, at each,
 * sends records of lengths around the distance to the end, so PAD records
 * and exact fits happen at every offset. Contents checked byte for byte.
 */
TEST(RfChan, WraparoundAtEveryOffset)
{
    Pair p;
    const uint32_t size = 4096, maxp = rf_chan_max_payload(size);
    uint32_t seed = 0;
    uint64_t n = 0;

    for (uint32_t off = 0; off < size; off += 32) {
        for (uint32_t delta : {0u, 1u, 31u, 32u, 33u, 64u, 100u, 1000u}) {
            uint32_t to_end = size - off;
            std::vector<uint32_t> lens = {0, 1, maxp};
            if (to_end >= 32 + delta)
                lens.push_back(to_end - 32 - delta);
            lens.push_back(std::min(maxp, to_end - 32 + delta));
            for (uint32_t len : lens) {
                len = std::min(len, maxp);
                std::string params = pattern(len / 3, seed),
                            body = pattern(len - len / 3, seed + 1);
                rf_chan_msg_t m;
                ASSERT_EQ(0, send_req(p.resp, seed, seed + 1, params, body));
                ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));
                ASSERT_EQ(seed, m.slot);
                ASSERT_EQ(params + body, data_of(m));
                ASSERT_EQ(0, rf_chan_exec_next(p.exec, &m));
                rf_chan_exec_release(p.exec);

                std::string out = pattern(len, seed + 2);
                ASSERT_EQ(0, rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, seed, 0, 0, 0, out.data(),
                                              out.size(), 1));
                ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
                ASSERT_EQ(out, data_of(m));
                ASSERT_EQ(0, rf_chan_resp_next(p.resp, &m));
                ASSERT_EQ(0, rf_chan_resp_release(p.resp));
                seed++;
                n++;
            }
            /* Filler record to step both positions to the next offset. */
            (void)delta;
        }
        rf_chan_msg_t m;
        /* Step both rings by exactly 32 bytes: a record with no payload. */
        ASSERT_EQ(0, rf_chan_resp_send_abort(p.resp, 0, 0));
        ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));
        rf_chan_exec_release(p.exec);
        ASSERT_EQ(0, rf_chan_exec_put(p.exec, RF_CHAN_FLUSH, 0, 0, 0, 0, nullptr, 0, 1));
        ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
        ASSERT_EQ(0, rf_chan_resp_release(p.resp));
    }
    EXPECT_GT(n, 1000u);
    EXPECT_EQ(0, rf_chan_resp_broken(p.resp));
}

/* An empty ring past 16 KiB starts over at its beginning (a PAD fills the
 * tail), so request/response traffic stays in the first pages; a cursor
 * below 16 KiB just goes on. */
TEST(RfChan, EmptyRingRewinds)
{
    Pair p(65536, 65536);
    const std::string params = pattern(900, 1), body = pattern(100, 2);
    rf_chan_msg_t m;
    uint32_t seen_rewind = 0;
    for (uint32_t i = 0; i < 40; i++) {
        uint32_t before = __atomic_load_n(p.lay.req_prod, __ATOMIC_ACQUIRE) & (65536 - 1);
        ASSERT_EQ(0, send_req(p.resp, i, i, params, body));
        uint32_t after = __atomic_load_n(p.lay.req_prod, __ATOMIC_ACQUIRE) & (65536 - 1);
        uint32_t rec = 32 + ((1000 + 31) & ~31u);
        if (before >= (16u << 10)) {
            EXPECT_EQ(rec, after) << "record " << i << " not written at offset 0";
            seen_rewind++;
        } else {
            EXPECT_EQ(before + rec, after);
        }
        ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));
        ASSERT_EQ(params + body, data_of(m));
        ASSERT_EQ(0, rf_chan_exec_next(p.exec, &m)); /* the PAD is skipped */
        rf_chan_exec_release(p.exec);
    }
    EXPECT_GE(seen_rewind, 2u);
    EXPECT_EQ(0, rf_chan_resp_broken(p.resp));
}

/* Nothing read yet (no room at the ring's beginning): no rewind, the cursor
 * goes on past 16 KiB. */
TEST(RfChan, NoRewindWithoutRoomAtTheBeginning)
{
    Pair p(65536, 65536);
    const std::string params = pattern(900, 1), body = pattern(100, 2);
    for (uint32_t i = 0; i < 20; i++)
        ASSERT_EQ(0, send_req(p.resp, i, i, params, body));
    EXPECT_GT(__atomic_load_n(p.lay.req_prod, __ATOMIC_ACQUIRE) & (65536 - 1), 16u << 10);
    rf_chan_msg_t m;
    for (uint32_t i = 0; i < 20; i++) {
        ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));
        ASSERT_EQ(i, m.slot);
        ASSERT_EQ(params + body, data_of(m));
    }
    ASSERT_EQ(0, rf_chan_exec_next(p.exec, &m));
    EXPECT_EQ(0, rf_chan_resp_broken(p.resp));
}

/*
 * Regression: with a pipelined request always behind the running one the
 * request ring was never empty, so it never rewound and the cursor walked
 * the whole 2 MiB ring: every page ended up resident in the executor and
 * the responder. Now it starts over once the reader has freed enough room
 * at the beginning, and the cursor stays within 16 KiB plus a few times
 * what is in flight. 64 KiB requests (the largest inline body), two at a
 * time.
 */
TEST(RfChan, PipelinedRequestsStayInTheFirstPages)
{
    const uint32_t ring = 2u << 20;
    Pair p(ring, ring);
    const std::string params = pattern(1000, 3), body = pattern(64u << 10, 4);
    const uint32_t req_rec = 32 + ((1000 + (64u << 10) + 31) & ~31u);
    uint32_t req_max = 0, rewinds = 0, last = 0;
    rf_chan_msg_t m;

    ASSERT_EQ(0, send_req(p.resp, 0, 0, params, body));
    for (uint32_t i = 0; i < 500; i++) {
        ASSERT_EQ(0, send_req(p.resp, i + 1, 0, params, body)); /* the one behind */
        ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));            /* the running one */
        ASSERT_EQ(i, m.slot);
        ASSERT_EQ(params + body, data_of(m));
        rf_chan_exec_release(p.exec);
        uint32_t at = __atomic_load_n(p.lay.req_prod, __ATOMIC_ACQUIRE) & (ring - 1);
        rewinds += at < last;
        last = at;
        req_max = std::max(req_max, at);
    }
    EXPECT_LE(req_max, (16u << 10) + 5 * req_rec);
    EXPECT_GT(rewinds, 50u);
    EXPECT_EQ(0, rf_chan_resp_broken(p.resp));
}

/* The response ring rewinds only when empty: with output in flight a
 * rewind would leave the executor only the room before the reader. */
TEST(RfChan, ResponseRingRewindsOnlyWhenEmpty)
{
    Pair p(4096, 65536);
    const std::string out = pattern(4000, 5);
    rf_chan_msg_t m;
    for (int i = 0; i < 6; i++) /* 24 KiB, past the rewind mark */
        ASSERT_EQ(0,
                  rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 1, 1, 0, 0, out.data(), out.size(), 1));
    for (int i = 0; i < 5; i++) /* 20 KiB freed at the head, 4 in flight */
        ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    ASSERT_EQ(0, rf_chan_resp_release(p.resp));
    uint32_t before = __atomic_load_n(p.lay.resp_prod, __ATOMIC_ACQUIRE) & (65536 - 1);
    ASSERT_EQ(0, rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 1, 1, 0, 0, out.data(), out.size(), 1));
    EXPECT_EQ(before + 32 + 4000, __atomic_load_n(p.lay.resp_prod, __ATOMIC_ACQUIRE) & (65536 - 1));
    int n = 0;
    while (rf_chan_resp_next(p.resp, &m) == 1)
        n++;
    EXPECT_EQ(2, n);
    ASSERT_EQ(0, rf_chan_resp_release(p.resp));
    /* Empty now: the next record starts over at offset 0. */
    ASSERT_EQ(0, rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 1, 1, 0, 0, out.data(), out.size(), 1));
    EXPECT_EQ(32u + 4000, __atomic_load_n(p.lay.resp_prod, __ATOMIC_ACQUIRE) & (65536 - 1));
    EXPECT_EQ(0, rf_chan_resp_broken(p.resp));
}

/* Response-ring pages of the memfd that hold data (mincore on a shared
 * memfd mapping reports the file's pages), from byte `from` on. */
size_t resident_pages(const rf_chan_layout_t &lay, uint32_t from)
{
    std::vector<unsigned char> vec(lay.resp_size / 4096);
    EXPECT_EQ(0, mincore(lay.resp_ring, lay.resp_size, vec.data()));
    size_t n = 0;
    for (size_t i = from / 4096; i < vec.size(); i++)
        n += vec[i] & 1;
    return n;
}

/* Writes len bytes of output in 8 KiB records and END. With drain, the
 * responder reads (checking every byte) and releases whenever the ring is
 * full, and at the end. */
void big_response(Pair &p, size_t len, bool drain)
{
    const std::string chunk = pattern(8192, 9);
    size_t got = 0;
    auto read_all = [&] {
        rf_chan_msg_t m;
        while (rf_chan_resp_next(p.resp, &m) == 1)
            if (m.type == RF_CHAN_STDOUT) {
                ASSERT_EQ(chunk, data_of(m));
                got += m.len;
            }
        ASSERT_EQ(0, rf_chan_resp_release(p.resp));
    };
    for (size_t done = 0; done <= len; done += chunk.size()) {
        int r;
        while ((r = done < len ? rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 1, 1, 0, 0, chunk.data(),
                                                  chunk.size(), 1)
                               : rf_chan_exec_put(p.exec, RF_CHAN_END, 1, 1, 0, 0, nullptr, 0,
                                                  1)) == -EAGAIN &&
               drain)
            read_all();
        ASSERT_EQ(0, r);
    }
    if (!drain)
        return;
    read_all();
    ASSERT_EQ(len, got);
}

/*
 * An idle executor gives back the response-ring pages a large response
 * touched (beyond the first 64 KiB, which normal traffic keeps using), in
 * the responder's mapping too, but only once the responder has read
 * everything; the ring works on afterwards (the page at the cursor, where
 * the next rewind writes its PAD, stays until the trim after that).
 */
TEST(RfChan, IdleExecutorGivesBackLargeResponsePages)
{
    Pair p(65536, 2u << 20);
    EXPECT_EQ(0, rf_chan_exec_trim(p.exec)); /* nothing written yet */
    big_response(p, 1u << 20, false);
    EXPECT_GE(resident_pages(p.lay, 64u << 10), (size_t)((1u << 20) - (64u << 10)) / 4096);
    EXPECT_EQ(-EAGAIN, rf_chan_exec_trim(p.exec)); /* unread: nothing may go */
    rf_chan_msg_t m;
    while (rf_chan_resp_next(p.resp, &m) == 1) {
    }
    ASSERT_EQ(0, rf_chan_resp_release(p.resp));
    long freed = rf_chan_exec_trim(p.exec);
    EXPECT_GE(freed, (long)((1u << 20) - (64u << 10) - 4096));
    EXPECT_LE(resident_pages(p.lay, 64u << 10), 1u); /* the cursor's page */
    EXPECT_EQ(0, rf_chan_exec_trim(p.exec));

    /* The ring goes on: a small response rewinds (its PAD in the kept
     * page), reads back intact, and the next trim takes that page too. */
    big_response(p, 8192, true);
    EXPECT_GT(rf_chan_exec_trim(p.exec), 0);
    EXPECT_EQ(0u, resident_pages(p.lay, 64u << 10));

    /* rf_chan_exec_wait trims by itself after a second without a request. */
    big_response(p, 512u << 10, true);
    EXPECT_GT(resident_pages(p.lay, 64u << 10), 64u);
    EXPECT_EQ(0, rf_chan_exec_wait(p.exec, 1200));
    EXPECT_LE(resident_pages(p.lay, 64u << 10), 1u);
    big_response(p, 1u << 20, true);
    EXPECT_EQ(0, rf_chan_resp_broken(p.resp));
}

/* Random lengths with several records in flight, both directions. */
TEST(RfChan, WraparoundManyInFlight)
{
    Pair p(8192, 4096);
    uint32_t rnd = 1, sent = 0, got = 0, osent = 0, ogot = 0;
    auto next = [&] { return rnd = rnd * 1103515245u + 12345u, (rnd >> 8); };

    for (int it = 0; it < 20000; it++) {
        uint32_t len = next() % 700;
        std::string body = pattern(len, sent);
        int r = send_req(p.resp, sent, 0, "", body);
        if (r == 0)
            sent++;
        else
            ASSERT_EQ(-ENOBUFS, r);
        if (next() % 3 == 0) {
            rf_chan_msg_t m;
            while ((r = rf_chan_exec_next(p.exec, &m)) == 1) {
                ASSERT_EQ(got, m.slot);
                ASSERT_EQ(pattern(m.len, got), data_of(m));
                got++;
                std::string out = pattern(m.len, got + 7);
                if (rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, osent, 0, 0, 0, out.data(), out.size(),
                                     1) == 0)
                    osent++;
            }
            ASSERT_EQ(0, r);
            rf_chan_exec_release(p.exec);
        }
        if (next() % 2 == 0) {
            rf_chan_msg_t m;
            while ((r = rf_chan_resp_next(p.resp, &m)) == 1) {
                ASSERT_EQ(ogot, m.slot);
                ogot++;
            }
            ASSERT_EQ(0, r);
            rf_chan_resp_release(p.resp);
        }
    }
    EXPECT_GT(got, 5000u);
    EXPECT_GT(ogot, 2000u);
}

TEST(RfChan, FullRingBackpressure)
{
    Pair p;
    rf_chan_msg_t m;
    std::string chunk(480, 'z'); /* 512-byte records */
    int n = 0;

    while (rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 1, 1, 0, 0, chunk.data(), chunk.size(), 1) == 0)
        n++;
    EXPECT_EQ(4096 / 512, n);
    rf_chan_stats_t st;
    rf_chan_stats(p.exec, &st);
    EXPECT_EQ(1u, st.full);
    /* Consuming without releasing gives no room. */
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ(-EAGAIN,
              rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 1, 1, 0, 0, chunk.data(), chunk.size(), 1));
    ASSERT_EQ(0, rf_chan_resp_release(p.resp));
    EXPECT_EQ(0,
              rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 1, 1, 0, 0, chunk.data(), chunk.size(), 1));

    /* Request ring: -ENOBUFS, the caller keeps the request queued. */
    n = 0;
    while (send_req(p.resp, 1, 1, chunk, "") == 0)
        n++;
    EXPECT_EQ(8, n);
    EXPECT_EQ(-ENOBUFS, send_req(p.resp, 1, 1, chunk, ""));
    ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));
    EXPECT_EQ(-ENOBUFS, send_req(p.resp, 1, 1, chunk, ""));
    rf_chan_exec_release(p.exec);
    EXPECT_EQ(0, send_req(p.resp, 1, 1, chunk, ""));
    EXPECT_EQ(0, rf_chan_resp_broken(p.resp));
}

/* A blocked executor write resumes once the responder releases (2 processes). */
TEST(RfChan, BlockingWriteWaitsForRelease)
{
    Pair p;
    std::string big(100000, 'q');
    for (size_t i = 0; i < big.size(); i++)
        big[i] = (char)(i % 251);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        int r = rf_chan_exec_write(p.exec, RF_CHAN_STDOUT, 5, 6, big.data(), big.size());
        r = r ? r : rf_chan_exec_end(p.exec, 5, 6, 0, 0);
        _exit(r == 0 ? 0 : 1);
    }
    std::string got;
    rf_chan_msg_t m;
    bool end = false;
    while (!end) {
        int r = rf_chan_resp_wait(p.resp, 5000);
        ASSERT_EQ(1, r);
        usleep(200); /* let the executor fill the ring and sleep */
        while ((r = rf_chan_resp_next(p.resp, &m)) == 1) {
            if (m.type == RF_CHAN_END)
                end = true;
            else
                got += data_of(m);
        }
        ASSERT_EQ(0, r);
        ASSERT_EQ(0, rf_chan_resp_release(p.resp));
    }
    int status;
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_EQ(big, got);
    rf_chan_stats_t pst, st;
    rf_chan_peer_stats(p.resp, &pst);
    rf_chan_stats(p.resp, &st);
    EXPECT_GT(pst.full, 0u);
    EXPECT_GT(pst.waits, 0u);
    EXPECT_LE(st.wakes, pst.waits);
}

/*
 * A forked executor: waits for requests, answers each with STDOUT (the
 * request's bytes reversed) and END. Exits with 0 when every request
 * checked out.
 */
static int executor_main(rf_chan_t *ch, uint32_t count)
{
    rf_chan_close_fd(ch);
    for (uint32_t i = 0; i < count;) {
        rf_chan_msg_t m;
        int r = rf_chan_exec_next(ch, &m);
        if (r < 0)
            return 2;
        if (r == 0) {
            if (rf_chan_exec_release(ch) < 0 || rf_chan_exec_wait(ch, 10000) != 1)
                return 3;
            continue;
        }
        if (m.type != RF_CHAN_REQUEST || m.slot != i || m.gen != i * 3 || m.arg0 > m.len)
            return 4;
        char out[64];
        uint32_t n = m.len < sizeof(out) ? m.len : (uint32_t)sizeof(out);
        for (uint32_t k = 0; k < n; k++)
            out[k] = (char)m.data[m.len - 1 - k];
        rf_chan_exec_release(ch); /* done with the request's bytes: free them before END */
        if (rf_chan_exec_write(ch, RF_CHAN_STDOUT, m.slot, m.gen, out, n) < 0 ||
            rf_chan_exec_end(ch, m.slot, m.gen, 0, 0) < 0)
            return 5;
        i++;
    }
    rf_chan_exec_release(ch);
    return 0;
}

/* window = requests in flight; 1 is ping-pong, larger is a steady stream */
static void run_two_process(uint32_t count, uint32_t window, uint32_t spin, rf_chan_stats_t *mine,
                            rf_chan_stats_t *peer)
{
    Pair p(256 * 1024, 256 * 1024, 0, spin);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0)
        _exit(executor_main(p.exec, count));

    uint32_t sent = 0, done = 0;
    std::string cur; /* expected output of the oldest request */
    bool have_out = false;
    while (done < count) {
        while (sent < count && sent - done < window) {
            char params[48];
            int n = snprintf(params, sizeof(params), "REQUEST_URI=/r/%u", sent);
            std::string body = std::to_string(sent * 7);
            int r = send_req(p.resp, sent, sent * 3, std::string(params, n), body);
            if (r == -ENOBUFS)
                break;
            ASSERT_EQ(0, r);
            sent++;
        }
        rf_chan_msg_t m;
        int r, got = 0;
        while ((r = rf_chan_resp_next(p.resp, &m)) == 1) {
            got++;
            ASSERT_EQ(done, m.slot);
            ASSERT_EQ(done * 3, m.gen);
            if (m.type == RF_CHAN_STDOUT) {
                char params[48];
                int n = snprintf(params, sizeof(params), "REQUEST_URI=/r/%u", done);
                std::string req = std::string(params, n) + std::to_string(done * 7);
                std::string rev(req.rbegin(), req.rend());
                ASSERT_EQ(rev, data_of(m));
                have_out = true;
            } else {
                ASSERT_EQ((uint32_t)RF_CHAN_END, m.type);
                ASSERT_TRUE(have_out);
                have_out = false;
                done++;
            }
        }
        ASSERT_EQ(0, r);
        ASSERT_EQ(0, rf_chan_resp_release(p.resp));
        if (!got && (sent == count || sent - done >= window)) {
            r = rf_chan_resp_wait(p.resp, 10000);
            ASSERT_EQ(1, r) << "executor stalled at " << done;
        }
    }
    int status;
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(0, WEXITSTATUS(status));
    rf_chan_stats(p.resp, mine);
    rf_chan_peer_stats(p.resp, peer);
}

TEST(RfChan, TwoProcesses100kStreaming)
{
    const uint32_t count = 100000;
    rf_chan_stats_t me{}, ex{};
    run_two_process(count, 64, SPIN, &me, &ex);
    if (HasFatalFailure())
        return;
    uint64_t msgs = 3ull * count; /* request, stdout, end */
    printf("streaming: responder wakes %llu waits %llu; executor wakes %llu waits %llu; "
           "%llu messages\n",
           (unsigned long long)me.wakes, (unsigned long long)me.waits, (unsigned long long)ex.wakes,
           (unsigned long long)ex.waits, (unsigned long long)msgs);
    EXPECT_EQ(count, me.records);
    EXPECT_EQ(2ull * count, ex.records);
    /* Doorbells only for a sleeping peer: a side never rings more often
     * than the other announced sleep... */
    EXPECT_LE(me.wakes, ex.waits);
    EXPECT_LE(ex.wakes, me.waits);
    /* ...someone did sleep (the responder at least waits for the last END;
     * an executor that never runs dry legitimately never sleeps: seen in CI,
     * 43 ms for the whole stream)... */
    EXPECT_GT(me.waits + ex.waits, 0u);
    /* ...and under a steady stream the rings are far cheaper than one
     * syscall per message. */
    EXPECT_LT(me.wakes + ex.wakes, msgs / 10);
}

TEST(RfChan, TwoProcessesPingPong)
{
    const uint32_t count = 20000;
    rf_chan_stats_t me{}, ex{};
    run_two_process(count, 1, 0, &me, &ex);
    if (HasFatalFailure())
        return;
    printf("ping-pong: responder wakes %llu waits %llu; executor wakes %llu waits %llu\n",
           (unsigned long long)me.wakes, (unsigned long long)me.waits, (unsigned long long)ex.wakes,
           (unsigned long long)ex.waits);
    EXPECT_LE(me.wakes, ex.waits);
    EXPECT_LE(ex.wakes, me.waits);
    /* One request at a time: every exchange ends with both asleep, at most
     * one ring per direction per request. */
    EXPECT_LE(me.wakes, count);
    EXPECT_LE(ex.wakes, 2ull * count);
}

TEST(RfChan, EventfdDoorbell)
{
    Pair p(4096, 4096, 1);
    ASSERT_GE(rf_chan_eventfd(p.resp), 0);
    uint32_t *uaddr = nullptr, val = 0;
    ASSERT_EQ(0, rf_chan_resp_arm(p.resp, &uaddr, &val));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        usleep(20000);
        _exit(rf_chan_exec_end(p.exec, 1, 2, 0, 0) == 0 ? 0 : 1);
    }
    ASSERT_EQ(1, rf_chan_resp_wait(p.resp, 5000));
    rf_chan_msg_t m;
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ((uint32_t)RF_CHAN_END, m.type);
    int status;
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    rf_chan_stats_t ex;
    rf_chan_peer_stats(p.resp, &ex);
    EXPECT_EQ(1u, ex.wakes);
    EXPECT_EQ(0, rf_chan_resp_wait(p.resp, 10)); /* timeout, eventfd drained */
}

TEST(RfChan, IoUringFutexWait)
{
#if !RF_TEST_URING
    GTEST_SKIP() << "liburing.h not available";
#else
    struct io_uring ring;
    if (io_uring_queue_init(4, &ring, 0) < 0)
        GTEST_SKIP() << "io_uring unavailable";
    Pair p;
    uint32_t *uaddr = nullptr, val = 0;
    ASSERT_EQ(0, rf_chan_resp_arm(p.resp, &uaddr, &val));
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = 51; /* IORING_OP_FUTEX_WAIT, filled in by hand for old headers */
    sqe->addr = (uint64_t)(uintptr_t)uaddr;
    sqe->addr2 = val;
    sqe->fd = 0x02;             /* FUTEX2_SIZE_U32, shared (no FUTEX2_PRIVATE) */
    sqe->addr3 = 0xffffffffull; /* FUTEX_BITSET_MATCH_ANY */
    sqe->user_data = 42;
    ASSERT_EQ(1, io_uring_submit(&ring));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        usleep(20000);
        _exit(rf_chan_exec_end(p.exec, 1, 2, 0, 0) == 0 ? 0 : 1);
    }
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {5, 0};
    ASSERT_EQ(0, io_uring_wait_cqe_timeout(&ring, &cqe, &ts));
    int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    int status;
    waitpid(pid, &status, 0);
    io_uring_queue_exit(&ring);
    if (res == -EINVAL || res == -EOPNOTSUPP)
        GTEST_SKIP() << "IORING_OP_FUTEX_WAIT unsupported: " << res;
    EXPECT_EQ(0, res);
    rf_chan_resp_disarm(p.resp);
    rf_chan_msg_t m;
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    EXPECT_EQ((uint32_t)RF_CHAN_END, m.type);
    rf_chan_stats_t ex;
    rf_chan_peer_stats(p.resp, &ex);
    EXPECT_EQ(1u, ex.wakes);
#endif
}

/* The responder's io_uring backend: a multishot poll on the doorbell
 * eventfd reports each ring as one completion, so waking up reads nothing
 * (rf_chan_resp_drain_bell off); the count adds up in the eventfd and no
 * completion comes without a ring. */
TEST(RfChan, EventfdDoorbellEdgeWatchNoDrain)
{
#if !RF_TEST_URING
    GTEST_SKIP() << "liburing.h not available";
#else
    struct io_uring ring;
    if (io_uring_queue_init(4, &ring, 0) < 0)
        GTEST_SKIP() << "io_uring unavailable";
    Pair p(4096, 4096, 1);
    int efd = rf_chan_eventfd(p.resp);
    ASSERT_GE(efd, 0);
    rf_chan_resp_drain_bell(p.resp, 0);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_poll_multishot(sqe, efd, POLLIN);
    sqe->user_data = 7;
    ASSERT_EQ(1, io_uring_submit(&ring));
    struct io_uring_cqe *cqe;
    struct __kernel_timespec shortwait = {0, 50 * 1000 * 1000};
    for (uint32_t i = 0; i < 2; i++) {
        ASSERT_EQ(0, rf_chan_resp_arm(p.resp, nullptr, nullptr));
        ASSERT_EQ(0, rf_chan_exec_end(p.exec, 1, 2 + i, 0, 0)); /* rings: we announced sleep */
        struct __kernel_timespec ts = {5, 0};
        ASSERT_EQ(0, io_uring_wait_cqe_timeout(&ring, &cqe, &ts));
        EXPECT_EQ(7u, cqe->user_data);
        EXPECT_TRUE(cqe->flags & IORING_CQE_F_MORE);
        io_uring_cqe_seen(&ring, cqe);
        rf_chan_resp_disarm(p.resp);
        rf_chan_msg_t m;
        ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
        EXPECT_EQ((uint32_t)RF_CHAN_END, m.type);
        ASSERT_EQ(0, rf_chan_resp_release(p.resp));
        /* Nothing more until the next ring, though the eventfd is readable. */
        EXPECT_EQ(-ETIME, io_uring_wait_cqe_timeout(&ring, &cqe, &shortwait));
    }
    uint64_t v = 0;
    ASSERT_EQ((ssize_t)sizeof(v), read(efd, &v, sizeof(v)));
    EXPECT_EQ(2u, v); /* both rings, never read by the responder */
    rf_chan_stats_t ex;
    rf_chan_peer_stats(p.resp, &ex);
    EXPECT_EQ(2u, ex.wakes);
    io_uring_queue_exit(&ring);
#endif
}

/* With draining on (the default, for epoll), waking up empties the count. */
TEST(RfChan, EventfdDoorbellDrainedByDefault)
{
    Pair p(4096, 4096, 1);
    int efd = rf_chan_eventfd(p.resp);
    ASSERT_GE(efd, 0);
    ASSERT_EQ(0, rf_chan_resp_arm(p.resp, nullptr, nullptr));
    ASSERT_EQ(0, rf_chan_exec_end(p.exec, 1, 2, 0, 0));
    rf_chan_resp_disarm(p.resp);
    uint64_t v = 0;
    EXPECT_EQ(-1, read(efd, &v, sizeof(v)));
    EXPECT_EQ(EAGAIN, errno);
}

/* ---- a malicious executor ---- */

struct Hdr {
    uint32_t len;
    uint16_t type, flags;
    uint32_t slot, gen, arg0, arg1;
    uint64_t arg2;
};
static_assert(sizeof(Hdr) == 32, "record header");

static void put_hdr(uint8_t *at, uint32_t len, uint16_t type, uint16_t flags = 0)
{
    Hdr h{len, type, flags, 1, 2, 0, 0, 0};
    memcpy(at, &h, sizeof(h));
}

static void expect_broken(Pair &p)
{
    rf_chan_msg_t m;
    EXPECT_EQ(-EPROTO, rf_chan_resp_next(p.resp, &m));
    EXPECT_TRUE(rf_chan_resp_broken(p.resp));
    /* Sticky: everything refuses from now on. */
    EXPECT_EQ(-EPROTO, rf_chan_resp_peek(p.resp, &m));
    EXPECT_EQ(-EPROTO, rf_chan_resp_release(p.resp));
    EXPECT_EQ(-EPROTO, send_req(p.resp, 1, 1, "", ""));
    EXPECT_EQ(-EPROTO, rf_chan_resp_arm(p.resp, nullptr, nullptr));
}

TEST(RfChanCorrupt, ProdBeyondRing)
{
    for (uint32_t prod : {4096u + 32, 0xffffffe0u, 0x80000000u, 4097u, 31u, 0xffffffffu}) {
        Pair p;
        *p.lay.resp_prod = prod;
        expect_broken(p);
    }
}

TEST(RfChanCorrupt, ProdMovesBackwards)
{
    Pair p;
    rf_chan_msg_t m;
    ASSERT_EQ(0, rf_chan_exec_end(p.exec, 1, 2, 0, 0));
    ASSERT_EQ(0, rf_chan_exec_end(p.exec, 1, 2, 0, 0));
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    *p.lay.resp_prod = 32; /* behind the read cursor (64), not yet released */
    expect_broken(p);
}

TEST(RfChanCorrupt, BadHeaders)
{
    struct Case {
        const char *what;
        uint32_t len;
        uint16_t type, flags;
        uint32_t prod;
    } cases[] = {
        {"unknown type", 0, 99, 0, 32},
        {"request in response ring", 0, RF_CHAN_REQUEST, 0, 32},
        {"abort in response ring", 0, RF_CHAN_ABORT, 0, 32},
        {"len beyond prod", 100, RF_CHAN_STDOUT, 0, 64},
        {"len beyond ring", 0xfffffff0u, RF_CHAN_STDOUT, 0, 4096},
        {"len at max+1", 4096 / 2 - 31, RF_CHAN_STDOUT, 0, 4096},
        {"flags on stdout", 1, RF_CHAN_STDOUT, 1, 64},
        {"payload on end", 1, RF_CHAN_END, 0, 64},
        {"payload on flush", 8, RF_CHAN_FLUSH, 0, 64},
        {"pad at ring start", 4096 - 32, RF_CHAN_PAD, 0, 4096},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.what);
        Pair p;
        put_hdr(p.lay.resp_ring, c.len, c.type, c.flags);
        *p.lay.resp_prod = c.prod;
        expect_broken(p);
    }
}

TEST(RfChanCorrupt, RecordCrossesRingEnd)
{
    Pair p;
    rf_chan_msg_t m;
    /* Advance to offset 4096 - 96 with legitimate traffic (2016 + 1984). */
    for (uint32_t len : {1984u, 1952u}) {
        std::string s(len, 'a');
        ASSERT_EQ(0, rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 0, 0, 0, 0, s.data(), s.size(), 1));
    }
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    ASSERT_EQ(0, rf_chan_resp_next(p.resp, &m));
    ASSERT_EQ(0, rf_chan_resp_release(p.resp));
    uint32_t pos = *p.lay.resp_prod;
    ASSERT_EQ(4096u - 96, pos);
    /* A 200-byte record at 96 bytes before the end, claimed without PAD. */
    put_hdr(p.lay.resp_ring + pos, 200, RF_CHAN_STDOUT);
    *p.lay.resp_prod = pos + 32 + 224;
    expect_broken(p);
}

TEST(RfChanCorrupt, PadWrongLength)
{
    Pair p;
    rf_chan_msg_t m;
    std::string half(2000, 'a');
    ASSERT_EQ(0, rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 0, 0, 0, 0, half.data(), half.size(), 1));
    ASSERT_EQ(1, rf_chan_resp_next(p.resp, &m));
    ASSERT_EQ(0, rf_chan_resp_release(p.resp));
    uint32_t pos = *p.lay.resp_prod;                          /* 2048 - 16 rounded: 2048 */
    put_hdr(p.lay.resp_ring + (pos & 4095), 64, RF_CHAN_PAD); /* should be to_end - 32 */
    put_hdr(p.lay.resp_ring, 0, RF_CHAN_END);
    *p.lay.resp_prod = pos + (4096 - pos) + 32;
    expect_broken(p);
}

TEST(RfChanCorrupt, ConsGarbageOnRequestSide)
{
    for (uint32_t cons : {4096u, 1u, 0xffffffffu, 96u}) {
        Pair p;
        ASSERT_EQ(0, send_req(p.resp, 1, 1, "x", ""));
        *p.lay.req_cons = cons; /* ahead of prod (32) or misaligned */
        EXPECT_EQ(-EPROTO, send_req(p.resp, 1, 1, "x", ""));
        EXPECT_TRUE(rf_chan_resp_broken(p.resp));
    }
}

TEST(RfChanCorrupt, BellGarbageIsHarmless)
{
    Pair p;
    rf_chan_msg_t m;
    *p.lay.exec_bell = 1; /* "sleeping" when it is not: an extra FUTEX_WAKE, nothing more */
    ASSERT_EQ(0, send_req(p.resp, 1, 1, "x", ""));
    rf_chan_stats_t st;
    rf_chan_stats(p.resp, &st);
    EXPECT_EQ(1u, st.wakes);
    EXPECT_EQ(0u, *p.lay.exec_bell);
    ASSERT_EQ(1, rf_chan_exec_next(p.exec, &m));
    EXPECT_EQ(0, rf_chan_resp_broken(p.resp));
}

/* Payload bytes changed after validation cannot change what was validated. */
TEST(RfChanCorrupt, HeaderRewrittenAfterPeek)
{
    Pair p;
    rf_chan_msg_t m;
    ASSERT_EQ(0, rf_chan_exec_put(p.exec, RF_CHAN_STDOUT, 0, 0, 0, 0, "abc", 3, 1));
    ASSERT_EQ(1, rf_chan_resp_peek(p.resp, &m));
    put_hdr(p.lay.resp_ring, 4000, RF_CHAN_STDOUT); /* too late: m is a private copy */
    EXPECT_EQ(3u, m.len);
    /* next re-reads the header from scratch and refuses the new one. */
    EXPECT_EQ(-EPROTO, rf_chan_resp_next(p.resp, &m));
}
