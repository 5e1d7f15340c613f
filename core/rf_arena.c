/*
 * rf_arena: region allocation for one request's (or connection's) lifetime,
 * in the manner of nginx's pools and varnish's workspaces. An arena is a list
 * of fixed-size chunks taken from a per-thread rf_arena_pool_t; its own header
 * sits at the start of the first chunk, so creating an arena in the steady
 * state is a free-list pop and destroying it a few pushes. Allocation bumps a
 * pointer; what does not fit a chunk gets a block of its own. Debug builds
 * (no NDEBUG) tag every allocation and follow it with a redzone that destroy
 * verifies; RF_ARENA_DEBUG builds skip chunks altogether and malloc every
 * object, so ASan and valgrind see each one.
 */
#include "rf_arena.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rf_assert.h"
#include "rf_mem.h"

#ifndef RF_ARENA_DEBUG
#define RF_ARENA_DEBUG 0
#endif

/* Redzones only where the arena lays out memory itself: with RF_ARENA_DEBUG
 * the sanitizer's own redzones do the job, byte-exact. */
#if !RF_ARENA_DEBUG && !defined(NDEBUG)
#define RF_ARENA_REDZONE 1
#else
#define RF_ARENA_REDZONE 0
#endif

#define RF_ARENA_ALIGN_UP(n) (((n) + (RF_ARENA_ALIGN - 1)) & ~(size_t)(RF_ARENA_ALIGN - 1))

/*
 * Largest single request. Keeps every size computation below from wrapping,
 * and never hands the allocator an absurd size (ASan aborts on those rather
 * than returning NULL).
 */
#define RF_ARENA_MAX_ALLOC (SIZE_MAX / 4)

/* Header of a pool chunk and of a large block alike. */
struct rf_arena_chunk {
    rf_arena_chunk_t *next;
    /* End of the committed bytes. Chunks: set when a newer chunk takes over
     * (the newest chunk's end is a->pos). Large blocks: end of the block. */
    uint8_t *last;
};

struct rf_arena_cleanup {
    rf_arena_cleanup_t *next;
    rf_arena_cleanup_fn fn;
    void *data;
};

#define RF_ARENA_CHUNK_HDR RF_ARENA_ALIGN_UP(sizeof(rf_arena_chunk_t))
#define RF_ARENA_HDR       RF_ARENA_ALIGN_UP(sizeof(rf_arena_t))

#if RF_ARENA_REDZONE
/*
 * Each allocation is laid out as [tag][object][redzone], the redzone running
 * from the object's end to the next aligned boundary and at least
 * RF_ARENA_RZ bytes long. The tag makes a chunk walkable, so rf_arena_check
 * can find every redzone; a damaged tag counts as a damaged redzone.
 */
struct rf_arena_tag {
    size_t size;
    uint32_t magic;
    uint32_t fill;
};
#define RF_ARENA_TAG       RF_ARENA_ALIGN_UP(sizeof(struct rf_arena_tag))
#define RF_ARENA_TAG_MAGIC 0x52445a4eu /* "RDZN" */
#define RF_ARENA_TAG_FILL  0xa5a5a5a5u
#define RF_ARENA_RZ        8
#define RF_ARENA_RZ_BYTE   0xa5
/* Written over chunks going back to the pool, so stale reads look wrong. */
#define RF_ARENA_FREE_BYTE 0x5a
#else
#define RF_ARENA_TAG 0
#define RF_ARENA_RZ  0
#endif
#define RF_ARENA_OVERHEAD (RF_ARENA_TAG + RF_ARENA_RZ)

#if !RF_ARENA_DEBUG
/* Lay out one allocation of size bytes in the total bytes at p (tag,
 * redzone) and return the object's address. Nothing to do without redzones. */
static inline void *rf_arena_tag(uint8_t *p, size_t size, size_t total)
{
#if RF_ARENA_REDZONE
    struct rf_arena_tag *t = (struct rf_arena_tag *)(void *)p;
    t->size = size;
    t->magic = RF_ARENA_TAG_MAGIC;
    t->fill = RF_ARENA_TAG_FILL;
    memset(p + RF_ARENA_TAG + size, RF_ARENA_RZ_BYTE, total - RF_ARENA_TAG - size);
    return p + RF_ARENA_TAG;
#else
    (void)size;
    (void)total;
    return p;
#endif
}
#endif

void rf_arena_pool_init(rf_arena_pool_t *pool, uint32_t chunk_size, uint32_t max_free)
{
    RF_ASSERT(pool != NULL);
    RF_ASSERT(chunk_size >= 256);
    memset(pool, 0, sizeof(*pool));
    pool->magic = RF_ARENA_POOL_MAGIC;
    /* Whole alignment units, so chunk ends are aligned too. */
    pool->chunk_size = chunk_size & ~(uint32_t)(RF_ARENA_ALIGN - 1);
    pool->max_free = max_free;
}

void rf_arena_pool_drain(rf_arena_pool_t *pool)
{
    RF_ASSERT(pool != NULL && pool->magic == RF_ARENA_POOL_MAGIC);
    while (pool->free != NULL) {
        rf_arena_chunk_t *c = pool->free;
        pool->free = c->next;
        rf_free(c);
    }
    pool->nfree = 0;
}

#if !RF_ARENA_DEBUG
static rf_arena_chunk_t *rf_arena_chunk_get(rf_arena_pool_t *pool)
{
    rf_arena_chunk_t *c = pool->free;
    if (c != NULL) {
        pool->free = c->next;
        pool->nfree--;
    } else {
        /* Aligned, and a multiple of the alignment: what ASan insists on. */
        c = rf_aligned_alloc(RF_ARENA_ALIGN, pool->chunk_size);
        if (c == NULL)
            return NULL;
        pool->allocated++;
    }
    c->next = NULL;
    c->last = NULL;
    return c;
}

static void rf_arena_chunk_put(rf_arena_pool_t *pool, rf_arena_chunk_t *c)
{
    if (pool->nfree < pool->max_free) {
        c->next = pool->free;
        pool->free = c;
        pool->nfree++;
    } else {
        rf_free(c);
    }
}

#if RF_ARENA_REDZONE
/* Where allocations start in chunk c: past the arena header in the first. */
static uint8_t *rf_arena_chunk_start(const rf_arena_t *a, rf_arena_chunk_t *c)
{
    uint8_t *start = (uint8_t *)c + RF_ARENA_CHUNK_HDR;
    if (start == (const uint8_t *)a)
        start += RF_ARENA_HDR;
    return start;
}
#endif

/* Retire the newest chunk (its tail is left unused) and start a fresh one. */
static int rf_arena_chunk_new(rf_arena_t *a)
{
    rf_arena_chunk_t *c = rf_arena_chunk_get(a->pool);
    if (c == NULL)
        return -ENOMEM;
    a->chunks->last = a->pos;
    c->next = a->chunks;
    a->chunks = c;
    a->pos = (uint8_t *)c + RF_ARENA_CHUNK_HDR;
    a->end = (uint8_t *)c + a->pool->chunk_size;
    return 0;
}
#else
/*
 * RF_ARENA_DEBUG: one malloc per object, the tracking header in front of it
 * and nothing behind it, so the sanitizer's redzone starts at the object's
 * last byte. Kept on a->large and freed by destroy.
 */
static void *rf_arena_debug_block(rf_arena_t *a, size_t size)
{
    if (size > RF_ARENA_MAX_ALLOC)
        return NULL;
    size_t n = RF_ARENA_CHUNK_HDR + size;
    rf_arena_chunk_t *c = rf_malloc(n);
    if (c != NULL && ((uintptr_t)c & (RF_ARENA_ALIGN - 1)) != 0) {
        /* malloc aligns to 16 on every platform we run on; just in case. */
        rf_free(c);
        c = rf_aligned_alloc(RF_ARENA_ALIGN, RF_ARENA_ALIGN_UP(n));
    }
    if (c == NULL)
        return NULL;
    c->next = a->large;
    c->last = (uint8_t *)c + n;
    a->large = c;
    return (uint8_t *)c + RF_ARENA_CHUNK_HDR;
}
#endif

rf_arena_t *rf_arena_create(rf_arena_pool_t *pool)
{
    RF_ASSERT(pool != NULL && pool->magic == RF_ARENA_POOL_MAGIC);
#if RF_ARENA_DEBUG
    rf_arena_t *a = rf_malloc(sizeof(*a));
    if (a == NULL)
        return NULL;
    memset(a, 0, sizeof(*a));
    /* pos == end == NULL: every allocation takes the malloc path. */
#else
    rf_arena_chunk_t *c = rf_arena_chunk_get(pool);
    if (c == NULL)
        return NULL;
    rf_arena_t *a = (rf_arena_t *)(void *)((uint8_t *)c + RF_ARENA_CHUNK_HDR);
    memset(a, 0, sizeof(*a));
    a->chunks = c;
    a->pos = (uint8_t *)a + RF_ARENA_HDR;
    a->end = (uint8_t *)c + pool->chunk_size;
#endif
    a->magic = RF_ARENA_MAGIC;
    a->pool = pool;
    return a;
}

#if RF_ARENA_REDZONE
/* Walk the allocations in [p, last); -EFAULT at the first damaged one. */
static int rf_arena_check_range(const uint8_t *p, const uint8_t *last)
{
    while (p < last) {
        size_t left = (size_t)(last - p);
        const struct rf_arena_tag *t = (const struct rf_arena_tag *)(const void *)p;
        if (left < RF_ARENA_OVERHEAD || t->magic != RF_ARENA_TAG_MAGIC ||
            t->fill != RF_ARENA_TAG_FILL || t->size > left - RF_ARENA_OVERHEAD)
            return -EFAULT;
        size_t total = RF_ARENA_ALIGN_UP(t->size + RF_ARENA_OVERHEAD);
        for (const uint8_t *z = p + RF_ARENA_TAG + t->size; z < p + total; z++) {
            if (*z != RF_ARENA_RZ_BYTE)
                return -EFAULT;
        }
        p += total;
    }
    return p == last ? 0 : -EFAULT;
}
#endif

int rf_arena_check(const rf_arena_t *a)
{
    RF_ASSERT(a != NULL && a->magic == RF_ARENA_MAGIC);
#if RF_ARENA_REDZONE
    for (rf_arena_chunk_t *c = a->chunks; c != NULL; c = c->next) {
        const uint8_t *last = c == a->chunks ? a->pos : c->last;
        if (rf_arena_check_range(rf_arena_chunk_start(a, c), last) < 0)
            return -EFAULT;
    }
    for (rf_arena_chunk_t *c = a->large; c != NULL; c = c->next) {
        if (rf_arena_check_range((uint8_t *)c + RF_ARENA_CHUNK_HDR, c->last) < 0)
            return -EFAULT;
    }
#endif
    return 0;
}

void rf_arena_destroy(rf_arena_t *a)
{
    RF_ASSERT(a != NULL && a->magic == RF_ARENA_MAGIC);
    RF_ASSERT(a->pool->magic == RF_ARENA_POOL_MAGIC);

    /* A pending reservation is simply dropped (a receive cut short by an
     * abort); cleanups may then still allocate. */
    a->reserved = NULL;
    /* Unlink each before running it: a handler registered by a handler
     * still runs, and none runs twice. */
    while (a->cleanups != NULL) {
        rf_arena_cleanup_t *cl = a->cleanups;
        a->cleanups = cl->next;
        cl->fn(cl->data);
    }
#if RF_ARENA_REDZONE
    RF_ASSERT(rf_arena_check(a) == 0);
#endif

    /* The header may live in a chunk about to be recycled: copy out first. */
    rf_arena_pool_t *pool = a->pool;
    rf_arena_chunk_t *large = a->large;
    rf_arena_chunk_t *chunks = a->chunks;
    a->magic = 0;

    while (large != NULL) {
        rf_arena_chunk_t *next = large->next;
        rf_free(large);
        large = next;
    }
#if RF_ARENA_DEBUG
    (void)pool;
    (void)chunks;
    rf_free(a);
#else
    while (chunks != NULL) {
        rf_arena_chunk_t *next = chunks->next;
#if RF_ARENA_REDZONE
        uint8_t *start = rf_arena_chunk_start(a, chunks);
        memset(start, RF_ARENA_FREE_BYTE, (size_t)((uint8_t *)chunks + pool->chunk_size - start));
#endif
        rf_arena_chunk_put(pool, chunks);
        chunks = next;
    }
#endif
}

/* Everything the bump path cannot serve: a new chunk, a large block, the
 * RF_ARENA_DEBUG malloc, or failure. Kept out of line so the fast path stays
 * small. */
__attribute__((noinline)) static void *rf_arena_alloc_slow(rf_arena_t *a, size_t size)
{
#if RF_ARENA_DEBUG
    void *p = rf_arena_debug_block(a, size);
    if (p == NULL) {
        a->overflow = 1;
        return NULL;
    }
    a->bytes += size;
    return p;
#else
    if (size > RF_ARENA_MAX_ALLOC)
        goto fail;
    size_t total = RF_ARENA_ALIGN_UP(size + RF_ARENA_OVERHEAD);
    if (total > a->pool->chunk_size - RF_ARENA_CHUNK_HDR) {
        rf_arena_chunk_t *c = rf_aligned_alloc(RF_ARENA_ALIGN, RF_ARENA_CHUNK_HDR + total);
        if (c == NULL)
            goto fail;
        c->next = a->large;
        c->last = (uint8_t *)c + RF_ARENA_CHUNK_HDR + total;
        a->large = c;
        a->bytes += size;
        return rf_arena_tag((uint8_t *)c + RF_ARENA_CHUNK_HDR, size, total);
    }
    if (rf_arena_chunk_new(a) < 0)
        goto fail;
    uint8_t *p = a->pos;
    a->pos = p + total;
    a->bytes += size;
    return rf_arena_tag(p, size, total);
fail:
    a->overflow = 1;
    return NULL;
#endif
}

void *rf_arena_alloc(rf_arena_t *a, size_t size)
{
    RF_ASSERT(a->magic == RF_ARENA_MAGIC);
    RF_ASSERT(a->reserved == NULL);
#if !RF_ARENA_DEBUG
    /* Fast path: pos and end are aligned, so rounding up cannot pass end. */
    uint8_t *p = a->pos;
    size_t avail = (size_t)(a->end - p);
#if RF_ARENA_REDZONE
    if (RF_LIKELY(avail >= RF_ARENA_OVERHEAD && size <= avail - RF_ARENA_OVERHEAD)) {
#else
    if (RF_LIKELY(size <= avail)) {
#endif
        size_t total = RF_ARENA_ALIGN_UP(size + RF_ARENA_OVERHEAD);
        a->pos = p + total;
        a->bytes += size;
        return rf_arena_tag(p, size, total);
    }
#endif
    return rf_arena_alloc_slow(a, size);
}

void *rf_arena_calloc(rf_arena_t *a, size_t size)
{
    void *p = rf_arena_alloc(a, size);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

void *rf_arena_memdup(rf_arena_t *a, const void *p, size_t len)
{
    void *q = rf_arena_alloc(a, len);
    if (q != NULL && len > 0)
        memcpy(q, p, len);
    return q;
}

char *rf_arena_strndup(rf_arena_t *a, const void *p, size_t len)
{
    RF_ASSERT(a->magic == RF_ARENA_MAGIC);
    if (len > RF_ARENA_MAX_ALLOC) {
        a->overflow = 1;
        return NULL;
    }
    char *q = rf_arena_alloc(a, len + 1);
    if (q == NULL)
        return NULL;
    if (len > 0)
        memcpy(q, p, len);
    q[len] = '\0';
    return q;
}

int rf_arena_cleanup_add(rf_arena_t *a, rf_arena_cleanup_fn fn, void *data)
{
    RF_ASSERT(a->magic == RF_ARENA_MAGIC);
    RF_ASSERT(fn != NULL);
    rf_arena_cleanup_t *cl = rf_arena_alloc(a, sizeof(*cl));
    if (cl == NULL)
        return -ENOMEM;
    cl->fn = fn;
    cl->data = data;
    cl->next = a->cleanups;
    a->cleanups = cl;
    return 0;
}

void *rf_arena_reserve(rf_arena_t *a, size_t min, size_t *avail)
{
    RF_ASSERT(a->magic == RF_ARENA_MAGIC);
    RF_ASSERT(a->reserved == NULL);
    RF_ASSERT(avail != NULL);
    size_t usable = a->pool->chunk_size - RF_ARENA_CHUNK_HDR - RF_ARENA_OVERHEAD;
    RF_ASSERT(min <= usable);
#if RF_ARENA_DEBUG
    /* As much as a fresh chunk would offer, so callers behave as in normal
     * builds; the sanitizer catches writes past *avail. */
    void *p = rf_arena_debug_block(a, usable);
    if (p == NULL) {
        a->overflow = 1;
        return NULL;
    }
    a->reserved = p;
    *avail = usable;
    return p;
#else
    if ((size_t)(a->end - a->pos) < RF_ARENA_OVERHEAD + min && rf_arena_chunk_new(a) < 0) {
        a->overflow = 1;
        return NULL;
    }
    /* The tag (if any) is written by release, in front of what was used. */
    a->reserved = a->pos + RF_ARENA_TAG;
    *avail = (size_t)(a->end - a->reserved) - RF_ARENA_RZ;
    return a->reserved;
#endif
}

void rf_arena_release(rf_arena_t *a, size_t used)
{
    RF_ASSERT(a->magic == RF_ARENA_MAGIC);
    RF_ASSERT(a->reserved != NULL);
#if RF_ARENA_DEBUG
    /* The reservation is the newest block; it keeps its size (a realloc
     * could move it), only the books shrink. */
    rf_arena_chunk_t *c = a->large;
    RF_ASSERT((uint8_t *)c + RF_ARENA_CHUNK_HDR == a->reserved);
    RF_ASSERT(used <= (size_t)(c->last - a->reserved));
#else
    RF_ASSERT(a->reserved == a->pos + RF_ARENA_TAG);
    RF_ASSERT(used <= (size_t)(a->end - a->reserved) - RF_ARENA_RZ);
    /* Nothing used, nothing committed: not even a tag and redzone. */
    if (used > 0) {
        size_t total = RF_ARENA_ALIGN_UP(used + RF_ARENA_OVERHEAD);
        rf_arena_tag(a->pos, used, total);
        a->pos += total;
    }
#endif
    a->bytes += used;
    a->reserved = NULL;
}
