/*
 * rf_assert: invariant checks that stay on in release builds. A broken
 * invariant is a bug, never bad input: bad input is a return value. Keep the
 * condition free of side effects; RF_DEBUG_ASSERT is compiled out by NDEBUG.
 */
#ifndef RF_ASSERT_H
#define RF_ASSERT_H

#ifdef __cplusplus
extern "C" {
#endif

__attribute__((noreturn, cold)) void rf_assert_fail(const char *expr, const char *file, int line,
                                                    const char *func);

#define RF_LIKELY(x)   __builtin_expect(!!(x), 1)
#define RF_UNLIKELY(x) __builtin_expect(!!(x), 0)

#define RF_ASSERT(e)                                                                               \
    do {                                                                                           \
        if (RF_UNLIKELY(!(e)))                                                                     \
            rf_assert_fail(#e, __FILE__, __LINE__, __func__);                                      \
    } while (0)

#ifdef NDEBUG
#define RF_DEBUG_ASSERT(e) ((void)0)
#else
#define RF_DEBUG_ASSERT(e) RF_ASSERT(e)
#endif

#define RF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#ifdef __cplusplus
}
#endif

#endif
