/*
 * json_random.h - reproducible random inputs for the JSON tests: an
 * xorshift64 generator and number tokens in the shapes clients write. Shared
 * by tests/unit/test_json_read.c, test_typed_series.c and test_json_write.c.
 */
#ifndef TOTO_TEST_JSON_RANDOM_H
#define TOTO_TEST_JSON_RANDOM_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static inline uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A random number token in one of the shapes clients write. */
static inline void random_number(uint64_t *s, char *out, size_t cap) {
    uint64_t bits = rng_next(s);
    double d;
    memcpy(&d, &bits, sizeof d);
    if (!isfinite(d))
        d = (double)(int64_t)bits;
    switch (rng_next(s) % 6) {
    case 0:
        snprintf(out, cap, "%.17g", d);
        break;
    case 1:
        snprintf(out, cap, "%.9g", (double)(float)((int64_t)(bits % 2000001) - 1000000) / 997.0);
        break;
    case 2:
        snprintf(out, cap, "%.3e", d);
        break;
    case 3:
        snprintf(out, cap, "%.6f", (double)((int64_t)(bits % 20000001) - 10000000) / 1000.0);
        break;
    case 4:
        snprintf(out, cap, "%llde%d", (long long)(bits % 100000000000000000ULL),
                 (int)(rng_next(s) % 60) - 30);
        break;
    default:
        snprintf(out, cap, "%.*g", (int)(rng_next(s) % 20) + 1, d);
        break;
    }
}

/* One to three random edits of buf[0..len) (cap bytes): a byte replaced by,
 * deleted, or inserted from alphabet. Returns the new length. */
static inline size_t mutate(uint64_t *s, char *buf, size_t len, size_t cap, const char *alphabet,
                            size_t n_alphabet) {
    for (int k = 0, edits = 1 + (int)(rng_next(s) % 3); k < edits && len > 0; k++) {
        size_t at = rng_next(s) % len;
        char c = alphabet[rng_next(s) % n_alphabet];
        switch (rng_next(s) % 3) {
        case 0:
            buf[at] = c;
            break;
        case 1:
            memmove(buf + at, buf + at + 1, len - at - 1);
            len--;
            break;
        default:
            if (len + 1 < cap) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = c;
                len++;
            }
        }
    }
    return len;
}

#endif
