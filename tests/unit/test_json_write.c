/*
 * test_json_write.c - protocol/json_write.c and rpc_forecast_result_text()
 * against jansson's json_dumps(), byte for byte: reals (random bits, float32
 * values, integers, powers of ten and their neighbours, zeros, subnormals,
 * the largest), integers, strings (every escape, UTF-8, invalid UTF-8), any
 * value; then whole forecast answers of random shapes, enveloped and bare,
 * against the jansson objects the worker used to build (result_reference.h).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_random.h"
#include "json_write.h"
#include "result_reference.h"
#include "tap.h"

#define DUMP_FLAGS (PROTO_JSON_FLAGS | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)

/* Shows the first few differences; returns 1 when got and want agree (both NULL counts). */
static int agree(const char *got, const char *want, int *bad, const char *what) {
    if ((!got && !want) || (got && want && strcmp(got, want) == 0))
        return 1;
    if ((*bad)++ < 5)
        tap_diag("%s: ours %s, jansson %s", what, got ? got : "(failed)", want ? want : "(failed)");
    return 0;
}

/* json_dumps of v, taking v; NULL when v is NULL (jansson refused to build it). */
static char *jansson_text(json_t *v) {
    char *text = v ? json_dumps(v, DUMP_FLAGS) : NULL;
    json_decref(v);
    return text;
}

static void check_real(double x, int *bad) {
    proto_text t = {0};
    proto_text_real(&t, x);
    char *got = proto_text_finish(&t, NULL);
    /* json_real refuses NaN and infinities; the codec writes those as null. */
    char *want = isfinite(x) ? jansson_text(json_real(x)) : strdup("null");
    char what[64];
    snprintf(what, sizeof what, "real %a", x);
    agree(got, want, bad, what);
    free(got);
    free(want);
}

static double random_double(uint64_t *s) {
    uint64_t bits = rng_next(s);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void test_reals(void) {
    static const double special[] = {0.0,
                                     -0.0,
                                     1.0,
                                     -1.0,
                                     0.1,
                                     0.5,
                                     100.0,
                                     1e15,
                                     1e16,
                                     1e17,
                                     9999999999999998.0,
                                     99999999999999984.0,
                                     123456789012345678.0,
                                     9007199254740992.0,
                                     9223372036854775808.0,
                                     1e-4,
                                     1e-5,
                                     0.00012,
                                     1.5e-7,
                                     1e22,
                                     1e23,
                                     1e100,
                                     1e300,
                                     -1e300,
                                     1e-300,
                                     DBL_MAX,
                                     -DBL_MAX,
                                     DBL_MIN,
                                     DBL_EPSILON,
                                     5e-324,
                                     -5e-324,
                                     2.2250738585072009e-308,
                                     NAN,
                                     INFINITY,
                                     -INFINITY};
    int bad = 0, n = 0;
    for (size_t i = 0; i < sizeof special / sizeof *special; i++, n++)
        check_real(special[i], &bad);
    tap_check(bad == 0, "%d chosen reals (zeros, 1e16/1e17, subnormals, DBL_MAX, NaN, inf)", n);

    bad = n = 0;
    for (int k = -325; k <= 309; k++) {
        double p = pow(10.0, k);
        check_real(p, &bad);
        check_real(nextafter(p, 0.0), &bad);
        check_real(-nextafter(p, INFINITY), &bad);
        n += 3;
    }
    tap_check(bad == 0, "%d powers of ten and their neighbours as jansson writes them", n);

    uint64_t s = 0x243F6A8885A308D3u;
    bad = 0;
    int rounds = 150000;
    for (int i = 0; i < rounds; i++) {
        double d = random_double(&s);
        float f;
        memcpy(&f, &(uint32_t){(uint32_t)rng_next(&s)}, sizeof f);
        check_real(d, &bad);
        check_real((double)f, &bad); /* a float32 model's results */
        check_real((double)(int64_t)(rng_next(&s) >> (rng_next(&s) % 64)), &bad);
        check_real((double)((int64_t)(rng_next(&s) % 2000001) - 1000000) / 1000.0, &bad);
    }
    tap_check(bad == 0, "%d random reals (bits, float32, integers, decimals) as jansson",
              4 * rounds);
}

static double from_bits(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/*
 * Where the exact formatter could go wrong: every binary exponent (both
 * sides of the edges of its range, which hands the rest to printf) with
 * full, sparse and random significands; halfway cases, where 17 digits
 * round half to even (an odd significand over 2^k ends in 5); integers of
 * more than 17 digits.
 */
static void test_real_ranges(void) {
    uint64_t s = 0x5851F42D4C957F2Du;
    int bad = 0, n = 0;
    for (uint64_t biased = 0; biased < 2047; biased++)
        for (int k = 0; k < 40; k++, n++) {
            uint64_t m = rng_next(&s) & ((UINT64_C(1) << 52) - 1);
            if (k < 8) /* zero, one, all ones, sparse */
                m = k == 0 ? 0 : k == 1 ? 1 : k == 2 ? (UINT64_C(1) << 52) - 1 : m & (m >> 7);
            check_real(from_bits((k % 2 ? UINT64_C(1) << 63 : 0) | biased << 52 | m), &bad);
        }
    tap_check(bad == 0, "%d reals over every binary exponent as jansson", n);

    bad = n = 0;
    for (int i = 0; i < 100000; i++, n += 2) {
        uint64_t m = (rng_next(&s) | UINT64_C(1)) & ((UINT64_C(1) << 53) - 1);
        check_real(ldexp((double)m, -1 - (int)(rng_next(&s) % 12)), &bad);
        check_real(ldexp((double)m, (int)(rng_next(&s) % 24)), &bad);
    }
    tap_check(bad == 0, "%d halfway cases and long integers rounded half to even, as jansson", n);
}

static void check_integer(json_int_t i, int *bad) {
    proto_text t = {0};
    proto_text_integer(&t, i);
    char *got = proto_text_finish(&t, NULL);
    char *want = jansson_text(json_integer(i));
    char what[64];
    snprintf(what, sizeof what, "integer %lld", (long long)i);
    agree(got, want, bad, what);
    free(got);
    free(want);
}

static void test_integers(void) {
    int bad = 0;
    json_int_t special[] = {0, 1, -1, 9, 10, -10, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof special / sizeof *special; i++)
        check_integer(special[i], &bad);
    uint64_t s = 77;
    for (int i = 0; i < 50000; i++)
        check_integer((json_int_t)(rng_next(&s) >> (rng_next(&s) % 64)) * (i % 2 ? -1 : 1), &bad);
    tap_check(bad == 0, "integers: extremes and 50000 random ones as jansson");
}

/* Bytes that strings are made of: escapes, controls, UTF-8 of every length, and invalid bytes. */
static const char *const kPieces[] = {"a",
                                      "Z",
                                      " ",
                                      "/",
                                      "\"",
                                      "\\",
                                      "\x7f",
                                      "\x01",
                                      "\x1f",
                                      "\b",
                                      "\f",
                                      "\n",
                                      "\r",
                                      "\t",
                                      "\xc3\xa9",
                                      "\xe4\xb8\xad",
                                      "\xf0\x9f\x98\x80",
                                      "\xff",
                                      "\xc0\xaf",
                                      "\xed\xa0\x80",
                                      "\xf4\x90\x80\x80",
                                      "\xe2\x82",
                                      "\xc3",
                                      "0",
                                      "e"};

static size_t random_bytes(uint64_t *s, char *out, size_t cap, bool valid_only) {
    size_t n = 0, pieces = rng_next(s) % 12;
    size_t count = sizeof kPieces / sizeof *kPieces, valid = 17; /* the first 17 are valid UTF-8 */
    for (size_t i = 0; i < pieces; i++) {
        bool any = !valid_only && rng_next(s) % 16 == 0; /* an invalid piece now and then */
        const char *p = kPieces[rng_next(s) % (any ? count : valid)];
        size_t len = strlen(p);
        if (n + len >= cap)
            break;
        memcpy(out + n, p, len);
        n += len;
    }
    if (!valid_only && rng_next(s) % 8 == 0 && n + 1 < cap)
        out[n++] = '\0'; /* jansson holds (and escapes) a NUL in a sized string */
    return n;
}

static void test_strings(void) {
    uint64_t s = 4242;
    int bad = 0, refused = 0, n = 60000;
    char bytes[128];
    for (int i = 0; i < n; i++) {
        size_t len = random_bytes(&s, bytes, sizeof bytes, false);
        proto_text t = {0};
        proto_text_string(&t, bytes, len);
        char *got = proto_text_finish(&t, NULL);
        json_t *v = json_stringn(bytes, len); /* NULL for invalid UTF-8 */
        refused += v == NULL;
        char *want = jansson_text(v);
        agree(got, want, &bad, "string");
        free(got);
        free(want);
    }
    tap_check(bad == 0, "%d random strings: escaped as jansson, invalid UTF-8 refused (%d were)", n,
              refused);
}

/* A random value up to depth levels deep: every kind of JSON value. */
static json_t *random_value(uint64_t *s, int depth) {
    char bytes[128];
    switch (rng_next(s) % (depth > 0 ? 8 : 6)) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(rng_next(s) % 2);
    case 2:
        return json_integer((json_int_t)rng_next(s) >> (rng_next(s) % 64));
    case 3: {
        double d = random_double(s);
        return json_real(isfinite(d) ? d : -0.0);
    }
    case 4:
    case 5:
        return json_stringn(bytes, random_bytes(s, bytes, sizeof bytes, true));
    case 6: {
        json_t *a = json_array();
        for (int i = (int)(rng_next(s) % 4); i > 0; i--)
            json_array_append_new(a, random_value(s, depth - 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = (int)(rng_next(s) % 4); i > 0; i--) {
            size_t len = random_bytes(s, bytes, sizeof bytes - 1, true);
            bytes[len] = '\0';
            json_object_set_new(o, bytes, random_value(s, depth - 1));
        }
        return o;
    }
    }
}

static void test_values(void) {
    uint64_t s = 99;
    int bad = 0, n = 20000;
    for (int i = 0; i < n; i++) {
        json_t *v = random_value(&s, 4);
        proto_text t = {0};
        proto_text_value(&t, v);
        char *got = proto_text_finish(&t, NULL);
        char *want = jansson_text(v);
        agree(got, want, &bad, "value");
        free(got);
        free(want);
    }
    tap_check(bad == 0, "%d random values (nested arrays, objects, every scalar) as jansson", n);
}

/* ---- whole answers ---- */

/* A result's numbers: mostly what a model gives, with the odd extreme. */
static double result_number(uint64_t *s) {
    switch (rng_next(s) % 10) {
    case 0:
        return random_double(s); /* any bits: NaN and infinities included */
    case 1: {
        const double odd[] = {-0.0,  0.0,    NAN,     INFINITY, -INFINITY,
                              1e300, 5e-324, DBL_MAX, 1e16,     1e17};
        return odd[rng_next(s) % (sizeof odd / sizeof *odd)];
    }
    case 2:
        return (double)(int64_t)(rng_next(s) % 2001) - 1000;
    default:
        return (double)(float)((double)(rng_next(s) % 2000000) / 997.0 - 1000); /* float32 */
    }
}

typedef struct random_answer {
    toto_request req;
    toto_result res;
    toto_model_info info;
    rpc_timing timing;
    json_t *id, *series_id;
    bool bare;
} random_answer;

static double *numbers(uint64_t *s, size_t n) {
    double *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = result_number(s);
    return x;
}

static json_t *random_id(uint64_t *s) {
    char bytes[64];
    switch (rng_next(s) % 6) {
    case 0:
        return json_null();
    case 1:
        return json_integer((json_int_t)rng_next(s) >> (rng_next(s) % 64));
    case 2:
        return json_real(rng_next(s) % 2 ? -0.0 : (double)(rng_next(s) % 1000) / 8.0);
    case 3:
        return NULL; /* series_id absent */
    default:
        return json_stringn(bytes, random_bytes(s, bytes, sizeof bytes, true));
    }
}

static void random_info(uint64_t *s, toto_model_info *info) {
    static const char *const names[] = {"/models/toto", "tests/data/fixtures/tiny-a",
                                        "/srv/mod\xc3\xa8les/Toto \"1.0\"", "a\\b\tc\x01",
                                        "/bad/\xff"}; /* the last: not UTF-8, refused */
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", names[rng_next(s) % (rng_next(s) % 50 ? 4 : 5)]);
    snprintf(info->device, sizeof info->device, "%s", rng_next(s) % 2 ? "cpu" : "cuda:0");
    snprintf(info->dtype, sizeof info->dtype, "%s", rng_next(s) % 2 ? "float32" : "float64");
    snprintf(info->path, sizeof info->path, "%s", rng_next(s) % 2 ? "eager" : "compiled");
    info->num_params = (int64_t)(rng_next(s) >> 20);
}

static void random_answer_init(uint64_t *s, random_answer *a) {
    memset(a, 0, sizeof *a);
    int v = 1 + (int)(rng_next(s) % 4), h = 1 + (int)(rng_next(s) % 9);
    int l = (int)(rng_next(s) % 4), n = (int)(rng_next(s) % 4);
    size_t m = (size_t)v * h;
    a->res = (toto_result){.n_variates = v, .prediction_length = h, .num_samples = n};
    a->res.mean = numbers(s, m);
    a->res.median = rng_next(s) % 3 ? numbers(s, m) : NULL;
    if (l > 0) {
        double *levels = malloc((size_t)l * sizeof *levels);
        for (int i = 0; i < l; i++)
            levels[i] = (double)(rng_next(s) % 999 + 1) / 1000.0;
        a->req.quantile_levels = levels;
        a->req.n_quantiles = a->res.n_quantiles = l;
        a->res.quantiles = numbers(s, (size_t)l * m);
    }
    if (n > 0 && rng_next(s) % 2)
        a->res.samples = numbers(s, (size_t)n * m);
    a->req.n_variates = v;
    a->req.prediction_length = h;
    if (rng_next(s) % 40 == 0) /* incomplete: neither writes anything */
        a->res.n_quantiles = l + 1;
    random_info(s, &a->info);
    a->timing = (rpc_timing){.queue_ms = (double)(rng_next(s) % 100000000) / 1e6,
                             .batch_size = 1 + (int)(rng_next(s) % 256),
                             .model_ms = (double)(rng_next(s) % 10000000000) / 1e6};
    a->id = random_id(s);
    if (!a->id)
        a->id = json_null();
    a->series_id = rng_next(s) % 3 ? random_id(s) : NULL;
    if (json_is_null(a->series_id) || json_is_real(a->series_id)) {
        json_decref(a->series_id); /* the daemon keeps a string or an integer */
        a->series_id = NULL;
    }
    a->bare = rng_next(s) % 4 == 0;
}

static void random_answer_free(random_answer *a) {
    free(a->res.mean);
    free(a->res.median);
    free(a->res.quantiles);
    free(a->res.samples);
    free((double *)a->req.quantile_levels);
    json_decref(a->id);
    json_decref(a->series_id);
}

static void test_answers(void) {
    uint64_t s = 2024;
    int bad = 0, n = 20000, refused = 0;
    for (int i = 0; i < n; i++) {
        random_answer a;
        random_answer_init(&s, &a);
        char *got =
            rpc_forecast_result_text(a.id, a.bare, &a.req, &a.res, &a.info, &a.timing, a.series_id);
        char *want =
            reference_result_text(a.id, a.bare, &a.req, &a.res, &a.info, &a.timing, a.series_id);
        refused += want == NULL;
        agree(got, want, &bad, "answer");
        free(got);
        free(want);
        random_answer_free(&a);
    }
    tap_check(bad == 0,
              "%d random answers (shapes, NaN, -0, extremes, ids, series_id, bare): byte for byte "
              "the jansson text (%d refused by both)",
              n, refused);
}

/* The answer every forecast gets: a flat series, a mean forecast, one line. */
static void test_seed_answer(void) {
    double mean[8], median[8];
    for (int i = 0; i < 8; i++) {
        mean[i] = (double)(float)(10.0 + i / 3.0);
        median[i] = (double)(float)(9.5 + i / 7.0);
    }
    toto_request req = {.n_variates = 1, .n_steps = 512, .prediction_length = 8};
    toto_result res = {.n_variates = 1, .prediction_length = 8, .mean = mean, .median = median};
    toto_model_info info = {.num_params = 151306080};
    snprintf(info.name, sizeof info.name, "/models/toto");
    snprintf(info.device, sizeof info.device, "cpu");
    snprintf(info.dtype, sizeof info.dtype, "float32");
    snprintf(info.path, sizeof info.path, "eager");
    rpc_timing timing = {0.123, 1, 4.5};
    json_t *id = json_integer(7), *series_id = json_string("cpu.load");
    char *got = rpc_forecast_result_text(id, false, &req, &res, &info, &timing, series_id);
    char *want = reference_result_text(id, false, &req, &res, &info, &timing, series_id);
    int bad = 0;
    tap_check(agree(got, want, &bad, "seed answer") && got &&
                  strncmp(got, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"mean\":[[10.0,", 46) ==
                      0,
              "the seed answer: %.60s...", got ? got : "(failed)");
    free(got);
    free(want);
    json_decref(id);
    json_decref(series_id);
}

int main(void) {
    test_reals();
    test_real_ranges();
    test_integers();
    test_strings();
    test_values();
    test_answers();
    test_seed_answer();
    return tap_done();
}
