/*
 * rf_fuzz: what every fuzz target shares: the libFuzzer entry point's
 * prototype (the targets build with -Wmissing-prototypes) and CHECK, an
 * invariant check that aborts with its location in every build, so the
 * replay driver and libFuzzer both see a failure.
 */
#ifndef RF_FUZZ_H
#define RF_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
