/*
 * rf_assert: the one place a broken invariant ends the process, after saying
 * where. Writes with write(2) directly: stdio may be the thing that broke.
 */
#include "rf_assert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rf_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "ringfpm: assertion failed: %s (%s:%d, %s)\n", expr, file,
                     line, func);
    if (n > 0) {
        ssize_t w =
            write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
        (void)w;
    }
    abort();
}
