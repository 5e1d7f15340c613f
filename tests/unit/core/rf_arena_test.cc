/*
 * Unit tests for core/rf_arena.c: alignment, chunk recycling through the
 * per-thread pool, large blocks, cleanup order, reserve/release, redzone
 * checks (debug builds) and the assertions that catch use after destroy.
 * Runs in all three CI builds: plain, RF_ARENA_DEBUG under ASan, and NDEBUG;
 * what a build cannot check is reported as skipped.
 */
#include "rf_arena.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#ifndef RF_ARENA_DEBUG
#define RF_ARENA_DEBUG 0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define RF_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RF_TEST_ASAN 1
#endif
#endif
#ifndef RF_TEST_ASAN
#define RF_TEST_ASAN 0
#endif

/* Builds whose arena lays out chunks itself (and so owns the pool). */
#define RF_TEST_CHUNKS (!RF_ARENA_DEBUG)

namespace
{

bool aligned(const void *p)
{
    return (reinterpret_cast<uintptr_t>(p) % RF_ARENA_ALIGN) == 0;
}

/* A pool per test; drained (and checked for leaks by ASan) on teardown. */
class ArenaTest : public ::testing::Test
{
  protected:
    void SetUp() override
    {
        rf_arena_pool_init(&pool, RF_ARENA_CHUNK_SIZE, 8);
    }
    void TearDown() override
    {
        rf_arena_pool_drain(&pool);
        EXPECT_EQ(pool.nfree, 0u);
        EXPECT_EQ(pool.free, nullptr);
    }
    rf_arena_pool_t pool;
};

using ArenaDeathTest = ArenaTest;

} // namespace

TEST_F(ArenaTest, ManyOddSizedAllocationsAreAlignedAndDisjoint)
{
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);

    struct piece {
        uint8_t *p;
        size_t size;
    };
    std::vector<piece> pieces;
    size_t total = 0;
    for (size_t i = 0; i < 3000; i++) {
        /* Odd sizes, zero, a few bigger than a chunk. */
        size_t size = (i * 37) % 211;
        if (i % 101 == 0)
            size = 5000 + i;
        auto *p = static_cast<uint8_t *>(rf_arena_alloc(a, size));
        ASSERT_NE(p, nullptr) << "i=" << i;
        ASSERT_TRUE(aligned(p)) << "i=" << i << " size=" << size;
        std::memset(p, static_cast<int>(i & 0xff), size);
        pieces.push_back({p, size});
        total += size;
    }
    for (size_t i = 0; i < pieces.size(); i++) {
        for (size_t j = 0; j < pieces[i].size; j++)
            ASSERT_EQ(pieces[i].p[j], static_cast<uint8_t>(i & 0xff)) << "piece " << i;
    }
    EXPECT_EQ(a->bytes, total);
    EXPECT_EQ(a->overflow, 0u);
    EXPECT_EQ(rf_arena_check(a), 0);
    rf_arena_destroy(a);
}

TEST_F(ArenaTest, SizeZeroNeverFails)
{
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    for (int i = 0; i < 1000; i++)
        ASSERT_NE(rf_arena_alloc(a, 0), nullptr);
    EXPECT_EQ(a->overflow, 0u);
    EXPECT_EQ(rf_arena_check(a), 0);
    rf_arena_destroy(a);
}

TEST_F(ArenaTest, ChunksAreRecycledAcrossCreateDestroy)
{
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(rf_arena_alloc(a, 100), nullptr);
    uintptr_t first = reinterpret_cast<uintptr_t>(a);
    rf_arena_destroy(a);
    uint64_t allocated = pool.allocated;

    for (int i = 0; i < 1000; i++) {
        a = rf_arena_create(&pool);
        ASSERT_NE(a, nullptr);
#if RF_TEST_CHUNKS
        /* The cached chunk comes straight back. */
        ASSERT_EQ(reinterpret_cast<uintptr_t>(a), first) << "cycle " << i;
#endif
        for (int j = 0; j < 10; j++)
            ASSERT_NE(rf_arena_alloc(a, 64 + j), nullptr);
        rf_arena_destroy(a);
        ASSERT_EQ(pool.allocated, allocated) << "cycle " << i;
    }
#if RF_TEST_CHUNKS
    EXPECT_EQ(allocated, 1u);
    EXPECT_EQ(pool.nfree, 1u);
#else
    (void)first;
    EXPECT_EQ(allocated, 0u) << "RF_ARENA_DEBUG must not use the pool";
#endif
}

TEST_F(ArenaTest, MultiChunkArenasAreRecycledToo)
{
    /* Each arena spans several chunks; all of them fit the cache. */
    for (int i = 0; i < 1000; i++) {
        rf_arena_t *a = rf_arena_create(&pool);
        ASSERT_NE(a, nullptr);
        for (int j = 0; j < 5; j++)
            ASSERT_NE(rf_arena_alloc(a, 3000), nullptr);
        rf_arena_destroy(a);
    }
#if RF_TEST_CHUNKS
    EXPECT_EQ(pool.allocated, 5u);
    EXPECT_EQ(pool.nfree, 5u);
#else
    EXPECT_EQ(pool.allocated, 0u);
#endif
}

TEST_F(ArenaTest, MaxFreeIsRespected)
{
    rf_arena_pool_t small;
    rf_arena_pool_init(&small, 1024, 2);
    rf_arena_t *arenas[3];
    for (auto &a : arenas) {
        a = rf_arena_create(&small);
        ASSERT_NE(a, nullptr);
        /* Three chunks each: two 700-byte pieces never share a 1 KiB chunk. */
        for (int i = 0; i < 3; i++)
            ASSERT_NE(rf_arena_alloc(a, 700), nullptr);
    }
    for (auto *a : arenas)
        rf_arena_destroy(a);
#if RF_TEST_CHUNKS
    EXPECT_EQ(small.allocated, 9u);
    EXPECT_EQ(small.nfree, 2u);
    EXPECT_NE(small.free, nullptr);
#else
    EXPECT_EQ(small.allocated, 0u);
    EXPECT_EQ(small.nfree, 0u);
#endif
    rf_arena_pool_drain(&small);
    EXPECT_EQ(small.nfree, 0u);
    EXPECT_EQ(small.free, nullptr);

    /* max_free 0: nothing is ever cached. */
    rf_arena_pool_t none;
    rf_arena_pool_init(&none, 512, 0);
    for (int i = 0; i < 10; i++) {
        rf_arena_t *a = rf_arena_create(&none);
        ASSERT_NE(a, nullptr);
        rf_arena_destroy(a);
        ASSERT_EQ(none.nfree, 0u);
    }
#if RF_TEST_CHUNKS
    EXPECT_EQ(none.allocated, 10u);
#endif
    rf_arena_pool_drain(&none);
}

TEST_F(ArenaTest, LargeAllocationsGetTheirOwnBlock)
{
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    auto *small = static_cast<uint8_t *>(rf_arena_alloc(a, 10));
    ASSERT_NE(small, nullptr);
    std::memset(small, 'x', 10);
    uint8_t *pos = a->pos;

    std::vector<uint8_t *> big;
    for (size_t size :
         {size_t(RF_ARENA_CHUNK_SIZE), size_t(RF_ARENA_CHUNK_SIZE * 3 + 1), size_t(1) << 20}) {
        auto *p = static_cast<uint8_t *>(rf_arena_alloc(a, size));
        ASSERT_NE(p, nullptr) << size;
        EXPECT_TRUE(aligned(p));
        std::memset(p, 0x11, size);
        big.push_back(p);
    }
    EXPECT_NE(a->large, nullptr);
#if RF_TEST_CHUNKS
    /* The bump pointer and the chunk list did not move. */
    EXPECT_EQ(a->pos, pos);
    EXPECT_EQ(pool.allocated, 1u);
#else
    (void)pos;
#endif
    for (int i = 0; i < 10; i++)
        EXPECT_EQ(small[i], 'x');
    EXPECT_EQ(rf_arena_check(a), 0);
    rf_arena_destroy(a); /* frees the large blocks: ASan/valgrind would say otherwise */
}

TEST_F(ArenaTest, ExhaustionReturnsNullAndSetsOverflow)
{
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->overflow, 0u);
    EXPECT_EQ(rf_arena_alloc(a, SIZE_MAX), nullptr);
    EXPECT_EQ(a->overflow, 1u);
    a->overflow = 0;
    EXPECT_EQ(rf_arena_alloc(a, SIZE_MAX / 2), nullptr);
    EXPECT_EQ(a->overflow, 1u);
    a->overflow = 0;
    EXPECT_EQ(rf_arena_calloc(a, SIZE_MAX - 1), nullptr);
    EXPECT_EQ(a->overflow, 1u);
    a->overflow = 0;
    EXPECT_EQ(rf_arena_strndup(a, "", SIZE_MAX), nullptr);
    EXPECT_EQ(a->overflow, 1u);
    /* The arena stays usable. */
    EXPECT_NE(rf_arena_alloc(a, 100), nullptr);
    EXPECT_EQ(rf_arena_check(a), 0);
    rf_arena_destroy(a);
}

namespace
{
struct order_log {
    std::vector<int> ran;
};
struct order_item {
    order_log *log;
    int id;
};
void record(void *data)
{
    auto *it = static_cast<order_item *>(data);
    it->log->ran.push_back(it->id);
}
} // namespace

TEST_F(ArenaTest, CleanupsRunNewestFirstAndAllRun)
{
    order_log log;
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    for (int i = 0; i < 50; i++) {
        /* The handler's data lives in the arena: it must still be valid. */
        auto *it = static_cast<order_item *>(rf_arena_alloc(a, sizeof(order_item)));
        ASSERT_NE(it, nullptr);
        it->log = &log;
        it->id = i;
        ASSERT_EQ(rf_arena_cleanup_add(a, record, it), 0);
        /* Spread over several chunks. */
        ASSERT_NE(rf_arena_alloc(a, 300), nullptr);
    }
    EXPECT_TRUE(log.ran.empty());
    rf_arena_destroy(a);
    ASSERT_EQ(log.ran.size(), 50u);
    for (int i = 0; i < 50; i++)
        EXPECT_EQ(log.ran[i], 49 - i);
}

namespace
{
struct nested {
    rf_arena_t *a;
    order_item inner;
};
void add_another(void *data)
{
    auto *n = static_cast<nested *>(data);
    n->inner.log->ran.push_back(-1);
    /* A cleanup may still allocate and register more work. */
    void *p = rf_arena_alloc(n->a, 32);
    if (p != nullptr)
        rf_arena_cleanup_add(n->a, record, &n->inner);
}
} // namespace

TEST_F(ArenaTest, CleanupAddedByACleanupStillRuns)
{
    order_log log;
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    nested n{a, {&log, 7}};
    ASSERT_EQ(rf_arena_cleanup_add(a, add_another, &n), 0);
    rf_arena_destroy(a);
    EXPECT_EQ(log.ran, (std::vector<int>{-1, 7}));
}

TEST_F(ArenaTest, CallocZeroesRecycledMemory)
{
    /* Dirty a chunk, give it back, and get it again. */
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    for (int i = 0; i < 20; i++)
        std::memset(rf_arena_alloc(a, 150), 0xff, 150);
    rf_arena_destroy(a);

    a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    for (size_t size : {1, 7, 150, 333, 3000, 9000}) {
        auto *p = static_cast<uint8_t *>(rf_arena_calloc(a, size));
        ASSERT_NE(p, nullptr);
        for (size_t i = 0; i < size; i++)
            ASSERT_EQ(p[i], 0) << "size " << size << " byte " << i;
    }
    EXPECT_NE(rf_arena_calloc(a, 0), nullptr);
    EXPECT_EQ(rf_arena_check(a), 0);
    rf_arena_destroy(a);
}

TEST_F(ArenaTest, MemdupAndStrndupCopyExactly)
{
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    const char src[] = "SCRIPT_FILENAME\0/var/www/index.php";

    auto *m = static_cast<char *>(rf_arena_memdup(a, src, sizeof(src)));
    ASSERT_NE(m, nullptr);
    EXPECT_NE(m, src);
    EXPECT_EQ(std::memcmp(m, src, sizeof(src)), 0);
    EXPECT_NE(rf_arena_memdup(a, nullptr, 0), nullptr);

    /* Not NUL-terminated input: exactly len bytes, then a NUL. */
    char *s = rf_arena_strndup(a, "SCRIPT_NAME=x", 11);
    ASSERT_NE(s, nullptr);
    EXPECT_STREQ(s, "SCRIPT_NAME");
    /* len bytes are copied even past an embedded NUL (binary-safe). */
    char *b = rf_arena_strndup(a, src, sizeof(src) - 1);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(std::memcmp(b, src, sizeof(src)), 0);
    EXPECT_EQ(std::string(b + 16), "/var/www/index.php");
    char *e = rf_arena_strndup(a, nullptr, 0);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e[0], '\0');

    std::string big(10000, 'q');
    char *l = rf_arena_strndup(a, big.data(), big.size());
    ASSERT_NE(l, nullptr);
    EXPECT_EQ(std::string(l), big);
    EXPECT_EQ(rf_arena_check(a), 0);
    rf_arena_destroy(a);
}

TEST_F(ArenaTest, ReserveReleaseCommitsExactlyUsed)
{
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(rf_arena_alloc(a, 40), nullptr);
    size_t before = a->bytes;

    size_t avail = 0;
    auto *p = static_cast<uint8_t *>(rf_arena_reserve(a, 100, &avail));
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(aligned(p));
    ASSERT_GE(avail, 100u);
    EXPECT_EQ(a->reserved, p);
    /* Every reserved byte is usable (ASan/redzone would object otherwise). */
    std::memset(p, 'r', avail);
    for (size_t i = 0; i < 37; i++)
        p[i] = static_cast<uint8_t>('a' + i % 26);
    rf_arena_release(a, 37);
    EXPECT_EQ(a->reserved, nullptr);
    EXPECT_EQ(a->bytes, before + 37);

    auto *q = static_cast<uint8_t *>(rf_arena_alloc(a, 64));
    ASSERT_NE(q, nullptr);
#if RF_TEST_CHUNKS
    /* The next allocation starts right after the committed bytes, rounded
     * to the alignment (plus tag and redzone in debug builds). */
    EXPECT_GE(q, p + 37);
    EXPECT_LE(q, p + 37 + 2 * RF_ARENA_ALIGN + 32);
#endif
    std::memset(q, 'z', 64);
    for (size_t i = 0; i < 37; i++)
        ASSERT_EQ(p[i], static_cast<uint8_t>('a' + i % 26));
    EXPECT_EQ(rf_arena_check(a), 0);
    rf_arena_destroy(a);
}

TEST_F(ArenaTest, ReserveStartsANewChunkWhenTheTailIsShort)
{
    rf_arena_pool_t small;
    rf_arena_pool_init(&small, 1024, 4);
    rf_arena_t *a = rf_arena_create(&small);
    ASSERT_NE(a, nullptr);
    auto *first = static_cast<uint8_t *>(rf_arena_alloc(a, 500));
    ASSERT_NE(first, nullptr);
    std::memset(first, 'f', 500);

    size_t avail = 0;
    auto *p = static_cast<uint8_t *>(rf_arena_reserve(a, 900, &avail));
    ASSERT_NE(p, nullptr);
    ASSERT_GE(avail, 900u);
    std::memset(p, 'r', avail);
#if RF_TEST_CHUNKS
    EXPECT_EQ(small.allocated, 2u);
#endif
    rf_arena_release(a, avail); /* commit all of it */
    EXPECT_EQ(a->bytes, 500 + avail);

    /* Releasing zero bytes gives everything back. */
    size_t before = a->bytes;
    p = static_cast<uint8_t *>(rf_arena_reserve(a, 10, &avail));
    ASSERT_NE(p, nullptr);
    rf_arena_release(a, 0);
    EXPECT_EQ(a->bytes, before);
    auto *next = static_cast<uint8_t *>(rf_arena_alloc(a, 8));
    ASSERT_NE(next, nullptr);
#if RF_TEST_CHUNKS
    EXPECT_EQ(next, p); /* nothing was committed */
#endif
    for (int i = 0; i < 500; i++)
        ASSERT_EQ(first[i], 'f');
    EXPECT_EQ(rf_arena_check(a), 0);
    rf_arena_destroy(a);
    rf_arena_pool_drain(&small);
}

TEST_F(ArenaTest, DestroyDropsAPendingReservation)
{
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    size_t avail = 0;
    ASSERT_NE(rf_arena_reserve(a, 16, &avail), nullptr);
    rf_arena_destroy(a); /* an abort in the middle of a receive */
}

TEST_F(ArenaTest, CheckDetectsAWritePastTheEnd)
{
#if defined(NDEBUG) || RF_ARENA_DEBUG
    GTEST_SKIP() << "no redzones in this build (NDEBUG or RF_ARENA_DEBUG)";
#else
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    auto *small = static_cast<uint8_t *>(rf_arena_alloc(a, 13));
    ASSERT_NE(small, nullptr);
    /* Force older chunks and a large block to be walked too. */
    for (int i = 0; i < 10; i++)
        ASSERT_NE(rf_arena_alloc(a, 1000), nullptr);
    auto *large = static_cast<uint8_t *>(rf_arena_alloc(a, 3 * RF_ARENA_CHUNK_SIZE));
    ASSERT_NE(large, nullptr);
    size_t avail = 0;
    auto *res = static_cast<uint8_t *>(rf_arena_reserve(a, 64, &avail));
    ASSERT_NE(res, nullptr);
    rf_arena_release(a, 50);
    ASSERT_EQ(rf_arena_check(a), 0);

    /* One byte past each kind of allocation; restore and check again. */
    for (uint8_t *over : {small + 13, small + 20, large + 3 * RF_ARENA_CHUNK_SIZE, res + 50}) {
        uint8_t saved = *over;
        *over = 0;
        EXPECT_EQ(rf_arena_check(a), -EFAULT);
        *over = saved;
        EXPECT_EQ(rf_arena_check(a), 0);
    }
    /* A write just before an allocation (into its tag) counts as well. */
    uint8_t saved = small[-1];
    small[-1] ^= 1;
    EXPECT_EQ(rf_arena_check(a), -EFAULT);
    small[-1] = saved;
    EXPECT_EQ(rf_arena_check(a), 0);
    rf_arena_destroy(a);
#endif
}

/* ---- death tests: broken invariants end the process ------------------- */

TEST_F(ArenaDeathTest, DestroyingTwiceAsserts)
{
#if RF_ARENA_DEBUG && !RF_TEST_ASAN
    GTEST_SKIP() << "RF_ARENA_DEBUG frees the header: only ASan can catch this";
#else
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    rf_arena_destroy(a);
    /* The chunk sits in the pool's cache: the header is readable, its magic
     * is gone. */
    EXPECT_DEATH(rf_arena_destroy(a), "assertion failed.*RF_ARENA_MAGIC|heap-use-after-free");
#endif
}

TEST_F(ArenaDeathTest, UsingADestroyedArenaAsserts)
{
#if RF_ARENA_DEBUG && !RF_TEST_ASAN
    GTEST_SKIP() << "RF_ARENA_DEBUG frees the header: only ASan can catch this";
#else
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(rf_arena_alloc(a, 10), nullptr);
    rf_arena_destroy(a);
    const char *msg = "assertion failed.*RF_ARENA_MAGIC|heap-use-after-free";
    EXPECT_DEATH(rf_arena_alloc(a, 10), msg);
    EXPECT_DEATH(rf_arena_calloc(a, 10), msg);
    EXPECT_DEATH(rf_arena_strndup(a, "x", 1), msg);
    EXPECT_DEATH(rf_arena_cleanup_add(a, record, nullptr), msg);
    size_t avail;
    EXPECT_DEATH(rf_arena_reserve(a, 10, &avail), msg);
    EXPECT_DEATH(rf_arena_check(a), msg);
#endif
}

TEST_F(ArenaDeathTest, AllocatingWhileReservedAsserts)
{
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    size_t avail = 0;
    ASSERT_NE(rf_arena_reserve(a, 16, &avail), nullptr);
    EXPECT_DEATH(rf_arena_alloc(a, 1), "assertion failed.*reserved");
    EXPECT_DEATH(rf_arena_reserve(a, 1, &avail), "assertion failed.*reserved");
    EXPECT_DEATH(rf_arena_release(a, avail + 1), "assertion failed.*used");
    rf_arena_release(a, 0);
    EXPECT_DEATH(rf_arena_release(a, 0), "assertion failed.*reserved");
    EXPECT_DEATH(rf_arena_reserve(a, RF_ARENA_CHUNK_SIZE, &avail), "assertion failed.*min");
    rf_arena_destroy(a);
}

TEST_F(ArenaDeathTest, DestroyWithADamagedRedzoneAsserts)
{
#if defined(NDEBUG) || RF_ARENA_DEBUG
    GTEST_SKIP() << "no redzones in this build (NDEBUG or RF_ARENA_DEBUG)";
#else
    rf_arena_t *a = rf_arena_create(&pool);
    ASSERT_NE(a, nullptr);
    auto *p = static_cast<uint8_t *>(rf_arena_alloc(a, 5));
    ASSERT_NE(p, nullptr);
    uint8_t saved = p[5];
    p[5] = 'X';
    EXPECT_DEATH(rf_arena_destroy(a), "assertion failed.*rf_arena_check");
    p[5] = saved;
    rf_arena_destroy(a);
#endif
}
