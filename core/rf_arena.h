/*
 * rf_arena: region allocation with written lifetimes. A request gets an arena
 * on BEGIN_REQUEST and drops it on END_REQUEST or abort; everything the
 * request allocates dies with it, and cleanup handlers close fds and unlink
 * temp files. Chunks come from a per-thread rf_arena_pool_t and go back to it,
 * so the steady state never calls malloc. In debug builds every allocation is
 * followed by a redzone that is checked when the arena is reset or destroyed.
 * Built with -Darena_debug=true (RF_ARENA_DEBUG), every allocation is a
 * plain malloc, so ASan and valgrind see each object on its own.
 *
 * Threads: a pool and its arenas belong to one thread; nothing here locks.
 */
#ifndef RF_ARENA_H
#define RF_ARENA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RF_ARENA_MAGIC      0x41524e41u /* "ARNA" */
#define RF_ARENA_POOL_MAGIC 0x41504f4cu /* "APOL" */
#define RF_ARENA_ALIGN      16

/* Default chunk size: one page fits a typical request's params and state. */
#define RF_ARENA_CHUNK_SIZE 4096

typedef struct rf_arena_chunk rf_arena_chunk_t;
typedef struct rf_arena_cleanup rf_arena_cleanup_t;

/* Per-thread cache of free chunks of one size. */
typedef struct rf_arena_pool {
    uint32_t magic;
    uint32_t chunk_size; /* bytes per chunk, header included */
    uint32_t nfree;      /* chunks in the free list */
    uint32_t max_free;   /* beyond this, freed chunks go back to the allocator */
    rf_arena_chunk_t *free;
    uint64_t allocated; /* chunks obtained from the allocator, for stats */
} rf_arena_pool_t;

typedef struct rf_arena {
    uint32_t magic;
    uint32_t overflow; /* set when an allocation failed (out of memory) */
    rf_arena_pool_t *pool;
    rf_arena_chunk_t *chunks; /* chunk list, newest first */
    rf_arena_chunk_t *large;  /* oversized allocations, each its own block */
    rf_arena_cleanup_t *cleanups;
    uint8_t *pos; /* next free byte in the newest chunk */
    uint8_t *end; /* end of the newest chunk */
    uint8_t *reserved; /* non-NULL between rf_arena_reserve and _release */
    size_t bytes;      /* bytes handed out, for stats and limits */
} rf_arena_t;

typedef void (*rf_arena_cleanup_fn)(void *data);

/* Initialise a pool for chunks of chunk_size bytes (>= 256), caching at most
 * max_free of them. */
void rf_arena_pool_init(rf_arena_pool_t *pool, uint32_t chunk_size, uint32_t max_free);

/* Give every cached chunk back to the allocator. Arenas must be gone. */
void rf_arena_pool_drain(rf_arena_pool_t *pool);

/*
 * Create an arena whose own header lives in its first chunk. Returns NULL
 * when memory is exhausted. Destroy with rf_arena_destroy().
 */
rf_arena_t *rf_arena_create(rf_arena_pool_t *pool);

/* Run cleanups (newest first), check redzones, return chunks to the pool.
 * The arena and everything allocated from it are gone afterwards. */
void rf_arena_destroy(rf_arena_t *a);

/*
 * Allocate size bytes aligned to RF_ARENA_ALIGN. Requests larger than a
 * chunk get a block of their own, freed with the arena. Returns NULL (and
 * sets a->overflow) when memory is exhausted. Never fails for size 0.
 */
void *rf_arena_alloc(rf_arena_t *a, size_t size);

/* rf_arena_alloc + zero fill. */
void *rf_arena_calloc(rf_arena_t *a, size_t size);

/* Copy len bytes into the arena (not NUL-terminated). */
void *rf_arena_memdup(rf_arena_t *a, const void *p, size_t len);

/* Copy len bytes into the arena and append a NUL. */
char *rf_arena_strndup(rf_arena_t *a, const void *p, size_t len);

/*
 * Register fn(data) to run when the arena is destroyed (newest first).
 * Returns 0, or -ENOMEM.
 */
int rf_arena_cleanup_add(rf_arena_t *a, rf_arena_cleanup_fn fn, void *data);

/*
 * Reserve the free tail of the current chunk for in-place writing (receive
 * straight into the arena): returns a pointer with *avail >= min bytes
 * behind it (a new chunk is started if needed), or NULL on exhaustion.
 * No other allocation may happen until rf_arena_release(a, used) commits the
 * first `used` bytes and gives the rest back. min must not exceed the chunk's
 * usable size.
 */
void *rf_arena_reserve(rf_arena_t *a, size_t min, size_t *avail);
void rf_arena_release(rf_arena_t *a, size_t used);

/* Check every redzone; returns 0 when intact, -EFAULT when one was written
 * over. Always 0 in builds without redzones. */
int rf_arena_check(const rf_arena_t *a);

#ifdef __cplusplus
}
#endif

#endif
