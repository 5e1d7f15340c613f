/*
 * rf_mem: the general-purpose allocator for everything that is not
 * arena-shaped (connections, buffers, tables). mimalloc when the build has
 * it, the C library otherwise (sanitizer and arena_debug builds, so every
 * object is visible to ASan and valgrind). Any thread.
 */
#ifndef RF_MEM_H
#define RF_MEM_H

#include <stddef.h>
#include <stdlib.h>

#ifdef RF_HAVE_MIMALLOC
#include <mimalloc.h>
#define rf_malloc(n)           mi_malloc(n)
#define rf_calloc(n, s)        mi_calloc((n), (s))
#define rf_realloc(p, n)       mi_realloc((p), (n))
#define rf_free(p)             mi_free(p)
#define rf_aligned_alloc(a, n) mi_malloc_aligned((n), (a))
#else
#define rf_malloc(n)           malloc(n)
#define rf_calloc(n, s)        calloc((n), (s))
#define rf_realloc(p, n)       realloc((p), (n))
#define rf_free(p)             free(p)
#define rf_aligned_alloc(a, n) aligned_alloc((a), (n))
#endif

#endif
