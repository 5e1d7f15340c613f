/*
 * Unit tests for core/rf_board.c: the layout and its bounds, process slot
 * allocation and free, writer/reader round trips of slots and thread
 * blocks, the seqlock (a torn copy is retried, a writer that died mid-write
 * makes its record busy until the next write, a concurrent writer never
 * shows a mixed record), sharing across fork, and php-fpm's rules for
 * showing a process (rf_board_proc_view).
 */
#include "rf_board.h"

#include "../rf_test_child.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

namespace
{

rf_board_t *make_board(uint32_t nslots = 4, int nthreads = 2)
{
    rf_board_pool_t pools[2] = {
        {"www", "static", nslots, 511, 0},
        {"other", "ondemand", 0, 0, 0},
    };
    rf_board_t *b = nullptr;
    EXPECT_EQ(rf_board_create(&b, pools, 2, nthreads, 1700000000), 0);
    return b;
}

/* Write a whole slot the way an executor does. */
void write_request(rf_board_proc_t *p, uint64_t n)
{
    rf_board_seq_write_begin(&p->seq);
    p->state = RF_BOARD_RUNNING;
    p->requests = n;
    p->req_start_us = n;
    p->content_length = n;
    std::string s = std::to_string(n);
    rf_board_strset(p->uri, sizeof(p->uri), s.c_str(), s.size());
    rf_board_seq_write_end(&p->seq);
}

} // namespace

TEST(Board, CreateCopiesThePoolsAndStartsEmpty)
{
    rf_board_t *b = make_board();
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(rf_board_npools(b), 2);
    EXPECT_EQ(rf_board_nthreads(b), 2);
    const rf_board_pool_t *p = rf_board_pool_get(b, 0);
    ASSERT_NE(p, nullptr);
    EXPECT_STREQ(p->name, "www");
    EXPECT_STREQ(p->pm, "static");
    EXPECT_EQ(p->nslots, 4u);
    EXPECT_EQ(p->listen_queue_len, 511u);
    EXPECT_EQ(p->start_time, 1700000000);
    EXPECT_STREQ(rf_board_pool_get(b, 1)->pm, "ondemand");

    rf_board_stats_t s;
    memset(&s, 0xff, sizeof(s));
    EXPECT_EQ(rf_board_stats_get(b, 0, &s), 0);
    EXPECT_EQ(s.accepted_conn, 0u);
    EXPECT_EQ(s.total, 0u);
    rf_board_proc_t copy;
    for (int i = 0; i < 4; i++)
        EXPECT_EQ(rf_board_proc_read(b, 0, i, &copy), 0) << i;
    rf_board_destroy(b);
    rf_board_destroy(nullptr);
}

// A reload's new process manager: what this process shows from then on;
// the pool as created is unchanged, and bad arguments change nothing.
TEST(Board, ProcessManagerNameFollowsAReload)
{
    rf_board_t *b = make_board();
    EXPECT_STREQ(rf_board_pool_pm(b, 0), "static");
    rf_board_pool_set_pm(b, 0, 2);
    EXPECT_STREQ(rf_board_pool_pm(b, 0), "dynamic");
    EXPECT_STREQ(rf_board_pool_get(b, 0)->pm, "static");
    EXPECT_STREQ(rf_board_pool_pm(b, 1), "ondemand");
    rf_board_pool_set_pm(b, 0, 0);
    rf_board_pool_set_pm(b, 0, 4);
    rf_board_pool_set_pm(b, 2, 1);
    rf_board_pool_set_pm(b, -1, 1);
    EXPECT_STREQ(rf_board_pool_pm(b, 0), "dynamic");
    rf_board_pool_set_pm(b, 0, 3);
    EXPECT_STREQ(rf_board_pool_pm(b, 0), "ondemand");
    EXPECT_EQ(rf_board_pool_pm(b, 2), nullptr);
    rf_board_destroy(b);
}

TEST(Board, CreateRefusesBadArguments)
{
    rf_board_t *b = nullptr;
    rf_board_pool_t pool = {"www", "static", 1, 0, 0};
    EXPECT_EQ(rf_board_create(nullptr, &pool, 1, 1, 0), -EINVAL);
    EXPECT_EQ(rf_board_create(&b, &pool, 1, 0, 0), -EINVAL);
    EXPECT_EQ(rf_board_create(&b, nullptr, 1, 1, 0), -EINVAL);
    EXPECT_EQ(rf_board_create(&b, &pool, -1, 1, 0), -EINVAL);
    EXPECT_EQ(b, nullptr);
    ASSERT_EQ(rf_board_create(&b, nullptr, 0, 1, 0), 0); /* no pools is fine */
    EXPECT_EQ(rf_board_pool_get(b, 0), nullptr);
    rf_board_destroy(b);
}

TEST(Board, OutOfRangeIsRefusedNotTouched)
{
    rf_board_t *b = make_board(2);
    rf_board_proc_t copy;
    rf_board_stats_t s = {};
    s.total = 7;
    EXPECT_EQ(rf_board_pool_get(b, -1), nullptr);
    EXPECT_EQ(rf_board_pool_get(b, 2), nullptr);
    EXPECT_EQ(rf_board_slot(b, 0, -1), nullptr);
    EXPECT_EQ(rf_board_slot(b, 0, 2), nullptr);
    EXPECT_EQ(rf_board_slot(b, 1, 0), nullptr); /* a pool without slots */
    EXPECT_EQ(rf_board_slot(b, 5, 0), nullptr);
    EXPECT_EQ(rf_board_proc_read(b, 0, 2, &copy), -EINVAL);
    EXPECT_EQ(rf_board_proc_read(b, 9, 0, &copy), -EINVAL);
    EXPECT_EQ(rf_board_stats_get(b, 2, &s), -EINVAL);
    EXPECT_EQ(rf_board_slot_alloc(b, 1, 0), -ENOSPC);
    EXPECT_EQ(rf_board_slot_alloc(b, 3, 0), -EINVAL);
    EXPECT_EQ(rf_board_nslots(b, 7), 0);
    /* ignored, not crashes */
    rf_board_stats_put(b, 0, 2, &s);
    rf_board_stats_put(b, 0, -1, &s);
    rf_board_stats_put(b, 2, 0, &s);
    rf_board_slot_set_pid(b, 0, 5, 42);
    rf_board_slot_free(b, 0, -3);
    rf_board_slot_free(b, 0, 1); /* not taken */
    EXPECT_EQ(rf_board_stats_get(b, 0, &s), 0);
    EXPECT_EQ(s.total, 0u);
    EXPECT_EQ(rf_board_slot_alloc(b, 0, 0), 0);
    rf_board_destroy(b);
}

TEST(Board, SlotsAreTakenUntilFreedAndResetWhenTakenAgain)
{
    rf_board_t *b = make_board(3);
    EXPECT_EQ(rf_board_slot_alloc(b, 0, 100), 0);
    EXPECT_EQ(rf_board_slot_alloc(b, 0, 101), 1);
    EXPECT_EQ(rf_board_slot_alloc(b, 0, 102), 2);
    EXPECT_EQ(rf_board_slot_alloc(b, 0, 103), -ENOSPC);

    rf_board_proc_t copy;
    EXPECT_EQ(rf_board_proc_read(b, 0, 1, &copy), 0) << "no pid yet: not shown";
    rf_board_slot_set_pid(b, 0, 1, 4242);
    ASSERT_EQ(rf_board_proc_read(b, 0, 1, &copy), 1);
    EXPECT_EQ(copy.pid, 4242);
    EXPECT_EQ(copy.state, (uint32_t)RF_BOARD_IDLE);
    EXPECT_EQ(copy.start_time, 101);
    EXPECT_EQ(copy.requests, 0u);

    write_request(rf_board_slot(b, 0, 1), 9);
    rf_board_slot_free(b, 0, 1);
    EXPECT_EQ(rf_board_proc_read(b, 0, 1, &copy), 0);
    EXPECT_EQ(rf_board_slot_alloc(b, 0, 200), 1) << "the freed slot is the free one";
    rf_board_slot_set_pid(b, 0, 1, 4343);
    ASSERT_EQ(rf_board_proc_read(b, 0, 1, &copy), 1);
    EXPECT_EQ(copy.pid, 4343);
    EXPECT_EQ(copy.requests, 0u) << "the last executor's record is gone";
    EXPECT_EQ(copy.uri[0], '\0');
    EXPECT_EQ(copy.state, (uint32_t)RF_BOARD_IDLE);
    EXPECT_EQ(copy.start_time, 200);
    rf_board_destroy(b);
}

TEST(Board, SlotWriterReaderRoundTrip)
{
    rf_board_t *b = make_board();
    int slot = rf_board_slot_alloc(b, 0, 5);
    ASSERT_GE(slot, 0);
    rf_board_slot_set_pid(b, 0, slot, 77);
    rf_board_proc_t *p = rf_board_slot(b, 0, slot);
    ASSERT_NE(p, nullptr);
    rf_board_seq_write_begin(&p->seq);
    p->state = RF_BOARD_RUNNING;
    p->requests = 3;
    p->req_start_us = 1000;
    p->content_length = 12;
    rf_board_strset(p->method, sizeof(p->method), "POST", 4);
    rf_board_strset(p->uri, sizeof(p->uri), "/index.php", 10);
    rf_board_strset(p->query, sizeof(p->query), "a=1&b=2", 7);
    rf_board_strset(p->user, sizeof(p->user), "alice", 5);
    rf_board_strset(p->script, sizeof(p->script), "/srv/index.php", 14);
    rf_board_seq_write_end(&p->seq);

    rf_board_proc_t copy;
    ASSERT_EQ(rf_board_proc_read(b, 0, slot, &copy), 1);
    EXPECT_EQ(copy.seq % 2, 0u);
    EXPECT_EQ(copy.pid, 77);
    EXPECT_EQ(copy.requests, 3u);
    EXPECT_EQ(copy.content_length, 12u);
    EXPECT_STREQ(copy.method, "POST");
    EXPECT_STREQ(copy.uri, "/index.php");
    EXPECT_STREQ(copy.query, "a=1&b=2");
    EXPECT_STREQ(copy.user, "alice");
    EXPECT_STREQ(copy.script, "/srv/index.php");
    rf_board_destroy(b);
}

TEST(Board, ThreadBlocksAreSummed)
{
    rf_board_t *b = make_board(4, 3);
    rf_board_stats_t s0 = {10, 1, 2, 3, 1, 4, 2, 1, 5};
    rf_board_stats_t s2 = {20, 0, 1, 1, 0, 1, 1, 0, 1};
    rf_board_stats_put(b, 0, 0, &s0);
    rf_board_stats_put(b, 0, 2, &s2);
    rf_board_stats_t sum;
    ASSERT_EQ(rf_board_stats_get(b, 0, &sum), 0);
    EXPECT_EQ(sum.accepted_conn, 30u);
    EXPECT_EQ(sum.listen_queue, 1u);
    EXPECT_EQ(sum.max_listen_queue, 3u);
    EXPECT_EQ(sum.idle, 4u);
    EXPECT_EQ(sum.active, 1u);
    EXPECT_EQ(sum.total, 5u);
    EXPECT_EQ(sum.max_active, 3u);
    EXPECT_EQ(sum.max_children_reached, 1u);
    EXPECT_EQ(sum.slow_requests, 6u);
    /* a later put replaces the thread's block, it does not add */
    rf_board_stats_put(b, 0, 0, &s2);
    ASSERT_EQ(rf_board_stats_get(b, 0, &sum), 0);
    EXPECT_EQ(sum.accepted_conn, 40u);
    /* the other pool is untouched */
    ASSERT_EQ(rf_board_stats_get(b, 1, &sum), 0);
    EXPECT_EQ(sum.accepted_conn, 0u);
    rf_board_destroy(b);
}

TEST(Board, TornReadIsRetried)
{
    uint32_t seq = 0;
    uint64_t value = 1;

    uint32_t start = rf_board_seq_read_begin(&seq);
    uint64_t copy = value;
    /* a write lands between the reader's copy and its check */
    rf_board_seq_write_begin(&seq);
    value = 2;
    rf_board_seq_write_end(&seq);
    EXPECT_TRUE(rf_board_seq_read_retry(&seq, start)) << "the copy saw the old value";
    EXPECT_EQ(copy, 1u);

    start = rf_board_seq_read_begin(&seq);
    copy = value;
    EXPECT_FALSE(rf_board_seq_read_retry(&seq, start));
    EXPECT_EQ(copy, 2u);

    /* a read that starts during a write is torn whatever follows */
    rf_board_seq_write_begin(&seq);
    start = rf_board_seq_read_begin(&seq);
    EXPECT_EQ(start % 2, 1u);
    EXPECT_TRUE(rf_board_seq_read_retry(&seq, start));
    rf_board_seq_write_end(&seq);
    EXPECT_EQ(seq % 2, 0u);
}

TEST(Board, WriterDeadMidWriteIsBusyUntilTheSlotIsFreed)
{
    rf_board_t *b = make_board();
    int slot = rf_board_slot_alloc(b, 0, 1);
    rf_board_slot_set_pid(b, 0, slot, 55);
    rf_board_proc_t *p = rf_board_slot(b, 0, slot);
    rf_board_seq_write_begin(&p->seq); /* ... and the executor is killed */
    p->requests = 12345;
    rf_board_proc_t copy;
    EXPECT_EQ(rf_board_proc_read(b, 0, slot, &copy), -EBUSY);
    uint32_t stuck = p->seq;
    EXPECT_EQ(stuck % 2, 1u);

    /* the master frees it on reaping: readable (and free) again */
    rf_board_slot_free(b, 0, slot);
    EXPECT_EQ(p->seq % 2, 0u);
    EXPECT_GT(p->seq, stuck);
    EXPECT_EQ(rf_board_proc_read(b, 0, slot, &copy), 0);
    rf_board_destroy(b);
}

TEST(Board, ConcurrentWriterNeverShowsAMixedRecord)
{
    rf_board_t *b = make_board(1, 1);
    int slot = rf_board_slot_alloc(b, 0, 1);
    rf_board_slot_set_pid(b, 0, slot, 99);
    rf_board_proc_t *p = rf_board_slot(b, 0, slot);
    std::atomic<bool> stop{false};
    std::thread writer([&] {
        for (uint64_t n = 1; !stop.load(std::memory_order_relaxed); n++) {
            write_request(p, n);
            rf_board_stats_t s = {n, n, n, n, n, n, n, n, n};
            rf_board_stats_put(b, 0, 0, &s);
        }
    });
    int good = 0, busy = 0;
    for (int i = 0; i < 20000; i++) {
        rf_board_proc_t copy;
        int rc = rf_board_proc_read(b, 0, slot, &copy);
        if (rc == -EBUSY) {
            busy++;
            continue;
        }
        ASSERT_EQ(rc, 1);
        ASSERT_EQ(copy.requests, copy.req_start_us);
        ASSERT_EQ(copy.requests, copy.content_length);
        if (copy.requests) {
            ASSERT_EQ(std::to_string(copy.requests), copy.uri);
        }
        rf_board_stats_t s;
        if (rf_board_stats_get(b, 0, &s) == 0) {
            ASSERT_EQ(s.accepted_conn, s.slow_requests);
            ASSERT_EQ(s.idle, s.max_children_reached);
        }
        good++;
    }
    stop = true;
    writer.join();
    EXPECT_GT(good, 0);
    EXPECT_LT(busy, good);
    rf_board_destroy(b);
}

TEST(Board, SharedWithAForkedProcess)
{
    rf_board_t *b = make_board();
    int slot = rf_board_slot_alloc(b, 0, 1);
    std::string got = in_child([&] {
        /* the executor's side: writes its slot and a thread block */
        rf_board_proc_t *p = rf_board_slot(b, 0, slot);
        rf_board_seq_write_begin(&p->seq);
        p->pid = (int32_t)getpid();
        rf_board_strset(p->uri, sizeof(p->uri), "/child.php", 10);
        rf_board_seq_write_end(&p->seq);
        rf_board_stats_t s = {};
        s.accepted_conn = 31;
        rf_board_stats_put(b, 0, 1, &s);
        return std::to_string(getpid());
    });
    rf_board_proc_t copy;
    ASSERT_EQ(rf_board_proc_read(b, 0, slot, &copy), 1) << got;
    EXPECT_EQ(std::to_string(copy.pid), got);
    EXPECT_STREQ(copy.uri, "/child.php");
    rf_board_stats_t s;
    ASSERT_EQ(rf_board_stats_get(b, 0, &s), 0);
    EXPECT_EQ(s.accepted_conn, 31u);
    rf_board_destroy(b);
}

TEST(Board, StringsAreCutAndTerminated)
{
    char field[8];
    memset(field, 'x', sizeof(field));
    rf_board_strset(field, sizeof(field), "abcdefghijk", 11);
    EXPECT_STREQ(field, "abcdefg") << "cut at cap - 1, as strlcpy";
    rf_board_strset(field, sizeof(field), nullptr, 5);
    EXPECT_STREQ(field, "");
    rf_board_strset(field, sizeof(field), "ab\0cd", 5);
    EXPECT_STREQ(field, "ab");
    rf_board_strset(field, 0, "zz", 2); /* nothing to write into */
    EXPECT_STREQ(field, "ab");

    /* a writer that filled a field without its NUL: the reader stops inside it */
    rf_board_t *b = make_board();
    int slot = rf_board_slot_alloc(b, 0, 1);
    rf_board_slot_set_pid(b, 0, slot, 3);
    rf_board_proc_t *p = rf_board_slot(b, 0, slot);
    memset(p->method, 'M', sizeof(p->method));
    memset(p->uri, 'U', sizeof(p->uri));
    memset(p->query, 'Q', sizeof(p->query));
    memset(p->user, 'A', sizeof(p->user));
    memset(p->script, 'S', sizeof(p->script));
    rf_board_proc_t copy;
    ASSERT_EQ(rf_board_proc_read(b, 0, slot, &copy), 1);
    EXPECT_EQ(strlen(copy.method), sizeof(copy.method) - 1);
    EXPECT_EQ(strlen(copy.uri), sizeof(copy.uri) - 1);
    EXPECT_EQ(strlen(copy.query), sizeof(copy.query) - 1);
    EXPECT_EQ(strlen(copy.user), sizeof(copy.user) - 1);
    EXPECT_EQ(strlen(copy.script), sizeof(copy.script) - 1);
    rf_board_destroy(b);
}

TEST(Board, ViewFollowsPhpFpm)
{
    rf_board_proc_t p;
    memset(&p, 0, sizeof(p));
    p.used = 1;
    p.pid = 10;
    p.start_time = 1000;
    p.requests = 4;
    p.req_start_us = 5000000;
    p.req_duration_us = 2000;
    p.req_cpu_us = 500;
    p.req_memory = 2097152;
    rf_board_proc_view_t v;

    /* Idle: the last request's duration, cpu and memory */
    p.state = RF_BOARD_IDLE;
    rf_board_proc_view(&p, 1010, 9000000, &v);
    EXPECT_STREQ(v.state, "Idle");
    EXPECT_EQ(v.start_since, 10);
    EXPECT_EQ(v.request_duration, 2000u);
    EXPECT_DOUBLE_EQ(v.last_request_cpu, 25.0);
    EXPECT_EQ(v.last_request_memory, 2097152u);
    EXPECT_STREQ(v.method, "-");
    EXPECT_STREQ(v.user, "-");
    EXPECT_STREQ(v.script, "-");
    EXPECT_STREQ(v.uri, "");

    /* Running: time since it began; cpu and memory 0 */
    p.state = RF_BOARD_RUNNING;
    strcpy(p.method, "GET");
    strcpy(p.user, "bob");
    strcpy(p.script, "/s.php");
    rf_board_proc_view(&p, 1010, 5000250, &v);
    EXPECT_STREQ(v.state, "Running");
    EXPECT_EQ(v.request_duration, 250u);
    EXPECT_EQ(v.last_request_cpu, 0.0);
    EXPECT_EQ(v.last_request_memory, 0u);
    EXPECT_STREQ(v.method, "GET");
    EXPECT_STREQ(v.user, "bob");
    EXPECT_STREQ(v.script, "/s.php");

    /* clocks that disagree and garbage numbers never go negative */
    p.state = 77;
    rf_board_proc_view(&p, 10, 1, &v);
    EXPECT_STREQ(v.state, "Unknown");
    EXPECT_EQ(v.start_since, 0);
    EXPECT_EQ(v.request_duration, 0u);
    p.state = RF_BOARD_IDLE;
    p.req_duration_us = 0;
    rf_board_proc_view(&p, 10, 1, &v);
    EXPECT_EQ(v.last_request_cpu, 0.0) << "no division by a zero duration";
}

TEST(Board, StateNames)
{
    EXPECT_STREQ(rf_board_state_name(RF_BOARD_IDLE), "Idle");
    EXPECT_STREQ(rf_board_state_name(RF_BOARD_READING), "Reading headers");
    EXPECT_STREQ(rf_board_state_name(RF_BOARD_INFO), "Getting request information");
    EXPECT_STREQ(rf_board_state_name(RF_BOARD_RUNNING), "Running");
    EXPECT_STREQ(rf_board_state_name(RF_BOARD_ENDING), "Ending");
    EXPECT_STREQ(rf_board_state_name(RF_BOARD_FINISHING), "Finishing");
    EXPECT_STREQ(rf_board_state_name(0), "Unknown");
    EXPECT_STREQ(rf_board_state_name(0xffffffffu), "Unknown");
}
