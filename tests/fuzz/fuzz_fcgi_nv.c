/*
 * libFuzzer target for the FastCGI name-value codec. The input is decoded as
 * a run of pairs, without a limit and with one taken from the first byte;
 * every decoded pair must lie inside the input, agree between the two runs,
 * report -EAGAIN with the right *need when cut one byte short, and survive a
 * trip through rf_fcgi_nv_encode. The input is also answered as a GET_VALUES
 * query, whose result must be a well-formed record naming only known
 * variables. Any mismatch aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_fuzz.h"
#include "rf_fcgi.h"

/* Checks one decoded pair of r bytes at buf and round-trips it. */
static void check_pair(const uint8_t *buf, int r, const rf_fcgi_nv_t *nv, uint32_t max_len)
{
    size_t prefix, enc_size;
    uint8_t *enc, *cut;
    rf_fcgi_nv_t back;
    uint32_t need;

    CHECK((uint64_t)nv->name_len + nv->value_len <= max_len);
    CHECK((uint64_t)nv->name_len + nv->value_len <= (uint64_t)r);
    prefix = (size_t)r - nv->name_len - nv->value_len;
    CHECK(prefix == 2 || prefix == 5 || prefix == 8);
    CHECK(nv->name == buf + prefix);
    CHECK(nv->value == nv->name + nv->name_len);
    CHECK(nv->value + nv->value_len == buf + r);

    /* One byte short is -EAGAIN; *need is the pair size once the prefix is
     * complete. An exactly-sized copy makes ASan catch a read past it. */
    cut = malloc((size_t)r);
    CHECK(cut);
    memcpy(cut, buf, (size_t)r - 1);
    CHECK(rf_fcgi_nv_decode(cut, (size_t)r - 1, max_len, &back, &need) ==
          ((size_t)r == 1 ? -EPROTO : -EAGAIN));
    CHECK(need == ((size_t)r - 1 >= prefix ? (uint32_t)r : 0));
    free(cut);

    /* Re-encoding gives the minimal form, which is never longer. */
    enc_size = rf_fcgi_nv_size(nv->name_len, nv->value_len);
    CHECK(enc_size <= (size_t)r);
    enc = malloc(enc_size);
    CHECK(enc);
    CHECK(rf_fcgi_nv_encode(enc, enc_size - 1, nv->name, nv->name_len, nv->value, nv->value_len) ==
          -E2BIG);
    CHECK(rf_fcgi_nv_encode(enc, enc_size, nv->name, nv->name_len, nv->value, nv->value_len) ==
          (int)enc_size);
    if (enc_size == (size_t)r)
        CHECK(memcmp(enc, buf, enc_size) == 0);
    CHECK(rf_fcgi_nv_decode(enc, enc_size, max_len, &back, &need) == (int)enc_size);
    CHECK(back.name_len == nv->name_len && back.value_len == nv->value_len);
    CHECK(back.name_len == 0 || memcmp(back.name, nv->name, back.name_len) == 0);
    CHECK(back.value_len == 0 || memcmp(back.value, nv->value, back.value_len) == 0);
    free(enc);
}

/* Decodes [data, data+size) as pairs; returns 1 if all of it was pairs. */
static int decode_all(const uint8_t *data, size_t size, uint32_t max_len)
{
    size_t pos = 0;

    while (pos < size) {
        rf_fcgi_nv_t nv, free_nv;
        uint32_t need = 12345, free_need;
        int r = rf_fcgi_nv_decode(data + pos, size - pos, max_len, &nv, &need);
        int free_r = rf_fcgi_nv_decode(data + pos, size - pos, UINT32_MAX, &free_nv, &free_need);

        if (r > 0) {
            CHECK((size_t)r <= size - pos);
            CHECK(need == 0);
            /* The limit only ever refuses; what it lets through is the same. */
            CHECK(free_r == r && free_nv.name_len == nv.name_len &&
                  free_nv.value_len == nv.value_len);
            check_pair(data + pos, r, &nv, max_len);
            pos += (size_t)r;
            continue;
        }
        if (r == -EAGAIN) {
            CHECK(need == 0 || need > size - pos);
            CHECK(free_r == -EAGAIN || free_r == -E2BIG);
            return 0;
        }
        CHECK(r == -E2BIG);
        CHECK(need == 0);
        return 0;
    }
    return 1;
}

/* The GET_VALUES answer must be a padded type-10 record of known names. */
static void check_get_values(const uint8_t *data, size_t size, int valid)
{
    static const char *const names[] = {"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"};
    uint8_t out[RF_FCGI_HEADER_LEN + 128];
    uint32_t max_conns = size >= 4 ? (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
                                         (uint32_t)data[2] << 8 | data[3]
                                   : UINT32_MAX;
    long n = rf_fcgi_get_values_result(out, sizeof(out), data, size, max_conns, 7,
                                       size ? data[0] & 1 : 0);
    unsigned seen = 0;
    size_t content, pos = RF_FCGI_HEADER_LEN;

    if (!valid) {
        CHECK(n == -EPROTO);
        return;
    }
    CHECK(n >= RF_FCGI_HEADER_LEN && n % 8 == 0 && (size_t)n <= sizeof(out));
    CHECK(out[0] == 1 && out[1] == RF_FCGI_GET_VALUES_RESULT && out[2] == 0 && out[3] == 0);
    content = (size_t)out[4] << 8 | out[5];
    CHECK(RF_FCGI_HEADER_LEN + content + out[6] == (size_t)n && out[6] < 8 && out[7] == 0);
    for (size_t i = RF_FCGI_HEADER_LEN + content; i < (size_t)n; i++)
        CHECK(out[i] == 0);
    while (pos < RF_FCGI_HEADER_LEN + content) {
        rf_fcgi_nv_t nv;
        uint32_t need;
        int r = rf_fcgi_nv_decode(out + pos, RF_FCGI_HEADER_LEN + content - pos, 64, &nv, &need);
        size_t i;

        CHECK(r > 0);
        for (i = 0; i < 3; i++)
            if (nv.name_len == strlen(names[i]) && memcmp(nv.name, names[i], nv.name_len) == 0)
                break;
        CHECK(i < 3 && !(seen & (1u << i)));
        seen |= 1u << i;
        CHECK(nv.value_len >= 1 && nv.value_len <= 10);
        for (size_t j = 0; j < nv.value_len; j++)
            CHECK(nv.value[j] >= '0' && nv.value[j] <= '9');
        pos += (size_t)r;
    }
    CHECK(rf_fcgi_get_values_result(out, (size_t)n - 1, data, size, max_conns, 7,
                                    size ? data[0] & 1 : 0) == -E2BIG);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Limits from "nothing but empty pairs" up to a realistic params cap. */
    static const uint32_t limits[] = {0, 1, 15, 64, 255, 4096, 65535, UINT32_MAX};
    uint32_t limit = size ? limits[data[0] & 7] : 0;
    int valid = decode_all(data, size, UINT32_MAX);

    decode_all(data, size, limit);
    check_get_values(data, size, valid);
    return 0;
}
