/*
 * test_protocol.c - the forecast codec without a model: params parsing
 * (accepted shapes, defaults, every refusal with its field and rule) and
 * result encoding (shapes, optional members, exact float64 round trip).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "forecast_codec.h"
#include "tap.h"

/* Parses params given as JSON text. Returns proto_forecast_parse's result. */
static int parse_text(const char *text, proto_forecast_request *out, proto_error *err) {
    json_error_t jerr;
    json_t *params = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!params) {
        tap_diag("bad test JSON: %s: %s", text, jerr.text);
        memset(out, 0, sizeof *out);
        return -2;
    }
    int rc = proto_forecast_parse(params, out, err);
    json_decref(params);
    return rc;
}

/* The params must be refused on field with a message containing fragment. */
static void expect_refusal(const char *text, const char *field, const char *fragment) {
    proto_forecast_request req;
    proto_error err;
    int rc = parse_text(text, &req, &err);
    int ok = rc == -1 && err.code == PROTO_INVALID_PARAMS && strcmp(err.field, field) == 0 &&
             strstr(err.message, fragment) != NULL && req.values == NULL && req.levels == NULL &&
             req.groups == NULL;
    if (!tap_check(ok, "refuses %s: field %s, \"%s\"", text, field, fragment))
        tap_diag("got rc %d, code %d, field \"%s\", message \"%s\"", rc, err.code, err.field,
                 err.message);
    proto_forecast_request_free(&req);
}

static void test_flat_series_and_defaults(void) {
    proto_forecast_request p;
    proto_error err;
    int rc = parse_text("{\"series\": [1, 2.5, -3], \"prediction_length\": 4}", &p, &err);
    tap_check(rc == 0, "flat series parses");
    const toto_request *r = &p.req;
    tap_check(r->n_variates == 1 && r->n_steps == 3, "flat series is one variate of 3 steps");
    tap_check(r->values == p.values && p.values[0] == 1.0 && p.values[1] == 2.5 &&
                  p.values[2] == -3.0,
              "flat series values");
    tap_check(r->prediction_length == 4, "prediction_length read");
    tap_check(r->num_samples == 0 && r->seed == 0 && !r->return_samples,
              "defaults: mean forecast, seed 0, no samples returned");
    tap_check(r->n_quantiles == 0 && r->quantile_levels == NULL, "default: no quantiles");
    tap_check(r->groups == NULL, "default: no groups (all in group 0)");
    proto_forecast_request_free(&p);
    tap_check(p.values == NULL && p.req.values == NULL, "free clears the request");
}

static void test_nested_series_and_options(void) {
    proto_forecast_request p;
    proto_error err;
    int rc = parse_text("{\"series\": [[1, null, 3], [4, 5.5, 12345678901234]],"
                        " \"prediction_length\": 2, \"groups\": [0, -7],"
                        " \"num_samples\": 8, \"quantiles\": [0.1, 0.5, 0.9], \"seed\": 42,"
                        " \"return_samples\": true, \"timeout_ms\": 100, \"series_id\": \"x\"}",
                        &p, &err);
    if (!tap_check(rc == 0, "[V][T] series with every option parses"))
        tap_diag("%s", err.message);
    const toto_request *r = &p.req;
    tap_check(r->n_variates == 2 && r->n_steps == 3, "[V][T] shape is 2 x 3");
    tap_check(rc == 0 && isnan(p.values[1]) && !isnan(p.values[0]), "null is stored as NaN");
    tap_check(rc == 0 && p.values[3] == 4.0 && p.values[5] == 12345678901234.0,
              "row-major values, integers exact");
    tap_check(rc == 0 && r->groups == p.groups && p.groups[0] == 0 && p.groups[1] == -7,
              "groups read");
    tap_check(r->num_samples == 8 && r->seed == 42 && r->return_samples, "samples options read");
    tap_check(rc == 0 && r->n_quantiles == 3 && r->quantile_levels[0] == 0.1 &&
                  r->quantile_levels[2] == 0.9,
              "quantile levels read in order");
    proto_forecast_request_free(&p);
}

static void test_edge_values_accepted(void) {
    proto_forecast_request p;
    proto_error err;
    int rc = parse_text("{\"series\": [[null, 1e300, -1e300]], \"prediction_length\": 2147483647,"
                        " \"groups\": [-2147483648], \"seed\": 9223372036854775807,"
                        " \"num_samples\": null, \"quantiles\": [], \"return_samples\": false}",
                        &p, &err);
    if (!tap_check(rc == 0, "limits themselves are accepted"))
        tap_diag("%s", err.message);
    tap_check(rc == 0 && p.values[1] == 1e300 && p.values[2] == -1e300, "magnitude 1e300 kept");
    tap_check(p.req.seed == 9223372036854775807ULL, "largest seed kept");
    tap_check(rc == 0 && p.groups[0] == INT32_MIN, "smallest group id kept");
    tap_check(p.req.num_samples == 0 && p.req.n_quantiles == 0, "null and [] mean the default");
    proto_forecast_request_free(&p);
}

static void test_series_refusals(void) {
    expect_refusal("[1, 2]", "params", "must be a JSON object");
    expect_refusal("{\"prediction_length\": 1}", "series", "required");
    expect_refusal("{\"series\": \"1,2\", \"prediction_length\": 1}", "series", "must be an array");
    expect_refusal("{\"series\": [], \"prediction_length\": 1}", "series", "no values");
    expect_refusal("{\"series\": [[], []], \"prediction_length\": 1}", "series", "no values");
    expect_refusal("{\"series\": [[1, 2], [3, 4], [5]], \"prediction_length\": 1}", "series[2]",
                   "series[2] has 1 values, series[0] has 2: every variate needs the same length");
    expect_refusal("{\"series\": [[1, 2], 3], \"prediction_length\": 1}", "series[1]",
                   "must be an array");
    expect_refusal("{\"series\": [1, [2]], \"prediction_length\": 1}", "series[1]",
                   "must be a number or null");
    expect_refusal("{\"series\": [1, \"NaN\"], \"prediction_length\": 1}", "series[1]",
                   "got a string");
    expect_refusal("{\"series\": [[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, true]],"
                   " \"prediction_length\": 1}",
                   "series[1][7]", "must be a number or null");
    expect_refusal("{\"series\": [1, 1e301], \"prediction_length\": 1}", "series[1]",
                   "magnitude must be <= 1e300");
    expect_refusal("{\"series\": [[0], [-2e300]], \"prediction_length\": 1}", "series[1][0]",
                   "magnitude must be <= 1e300");
}

static void test_groups_refusals(void) {
    const char *two = "{\"series\": [[1], [2]], \"prediction_length\": 1, \"groups\": ";
    char text[256];
    struct {
        const char *groups, *field, *fragment;
    } cases[] = {
        {"3}", "groups", "must be an array"},
        {"[0]}", "groups", "has 1 entries, series has 2 variates: one group id per variate"},
        {"[0, \"a\"]}", "groups[1]", "must be an integer"},
        {"[0, 1.5]}", "groups[1]", "must be an integer"},
        {"[2147483648, 0]}", "groups[0]", "2147483647"},
        {"[0, -2147483649]}", "groups[1]", "-2147483648"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s%s", two, cases[i].groups);
        expect_refusal(text, cases[i].field, cases[i].fragment);
    }
}

static void test_integer_refusals(void) {
    expect_refusal("{\"series\": [1]}", "prediction_length", "required");
    expect_refusal("{\"series\": [1], \"prediction_length\": 0}", "prediction_length", ">= 1");
    expect_refusal("{\"series\": [1], \"prediction_length\": -3}", "prediction_length", ">= 1");
    expect_refusal("{\"series\": [1], \"prediction_length\": 2.5}", "prediction_length",
                   "must be an integer");
    expect_refusal("{\"series\": [1], \"prediction_length\": \"8\"}", "prediction_length",
                   "must be an integer");
    expect_refusal("{\"series\": [1], \"prediction_length\": 2147483648}", "prediction_length",
                   "<= 2147483647");
    expect_refusal("{\"series\": [1], \"prediction_length\": 1, \"num_samples\": -1}",
                   "num_samples", ">= 0");
    expect_refusal("{\"series\": [1], \"prediction_length\": 1, \"num_samples\": 1.0}",
                   "num_samples", "must be an integer");
    expect_refusal("{\"series\": [1], \"prediction_length\": 1, \"seed\": -1}", "seed", ">= 0");
    expect_refusal("{\"series\": [1], \"prediction_length\": 1, \"seed\": 0.5}", "seed",
                   "must be an integer");
}

static void test_quantile_refusals(void) {
    const char *head = "{\"series\": [1], \"prediction_length\": 1, \"quantiles\": ";
    char text[1024];
    struct {
        const char *quantiles, *field, *fragment;
    } cases[] = {
        {"0.5}", "quantiles", "must be an array"},
        {"[1.5]}", "quantiles[0]", "strictly between 0 and 1"},
        {"[0.5, 0]}", "quantiles[1]", "strictly between 0 and 1"},
        {"[1]}", "quantiles[0]", "strictly between 0 and 1"},
        {"[0.5, \"0.9\"]}", "quantiles[1]", "must be a number"},
        {"[0.1, 0.5, 0.1]}", "quantiles[2]", "levels must be distinct"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s%s", head, cases[i].quantiles);
        expect_refusal(text, cases[i].field, cases[i].fragment);
    }
    size_t n = (size_t)snprintf(text, sizeof text, "%s[", head);
    for (int i = 1; i <= 100; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "%s0.%03d", i > 1 ? ", " : "", i);
    snprintf(text + n, sizeof text - n, "]}");
    expect_refusal(text, "quantiles", "at most 99 levels, got 100");
}

static void test_other_refusals(void) {
    expect_refusal("{\"series\": [1], \"prediction_length\": 1, \"return_samples\": \"yes\"}",
                   "return_samples", "true or false");
    expect_refusal("{\"series\": [1], \"prediction_length\": 1, \"return_samples\": true}",
                   "return_samples", "num_samples > 0");
    expect_refusal("{\"series\": [1], \"prediction_length\": 1, \"horizon\": 3}", "horizon",
                   "unknown field");
    expect_refusal("{\"series\": [1], \"prediction_lenght\": 1}", "prediction_lenght",
                   "unknown field");
}

/* An unknown key longer than the error's field and message buffers, with a
 * two-byte character across each cut: both stay valid UTF-8 (jansson takes
 * them), the field a prefix of the key and of the message. */
static void test_long_unknown_field(void) {
    char key[700], text[900];
    size_t n = 0;
    for (int i = 0; i < 62; i++)
        key[n++] = 'k';
    for (int i = 0; i < 250; i++) { /* U+00E9 from 62 on: across the cuts at 127 and 511 */
        key[n++] = (char)0xC3;
        key[n++] = (char)0xA9;
    }
    key[n] = '\0';
    snprintf(text, sizeof text, "{\"series\": [1], \"prediction_length\": 1, \"%s\": 1}", key);
    proto_forecast_request req;
    proto_error err;
    int rc = parse_text(text, &req, &err);
    json_t *field = json_string(err.field), *message = json_string(err.message);
    size_t len = strlen(err.field);
    tap_check(rc == -1 && field && message && len > 0 && len < sizeof err.field &&
                  strncmp(err.field, key, len) == 0 && strncmp(err.message, err.field, len) == 0,
              "a long unknown key cut inside a character: field (%zu bytes) and message stay "
              "valid UTF-8",
              len);
    json_decref(field);
    json_decref(message);
    proto_forecast_request_free(&req);
}

static void test_error_encoding(void) {
    proto_error err = {.code = PROTO_INVALID_PARAMS, .message = "quantiles[0]: bad", .field = ""};
    snprintf(err.field, sizeof err.field, "quantiles[0]");
    json_t *obj = proto_error_encode(&err);
    tap_check(obj && json_integer_value(json_object_get(obj, "code")) == -32602 &&
                  strcmp(json_string_value(json_object_get(obj, "message")), err.message) == 0,
              "error object has code and message");
    const char *field = json_string_value(json_object_get(json_object_get(obj, "data"), "field"));
    tap_check(field && strcmp(field, "quantiles[0]") == 0, "error object carries data.field");
    json_decref(obj);

    err.field[0] = '\0';
    obj = proto_error_encode(&err);
    tap_check(obj && json_object_get(obj, "data") == NULL, "no data without a field");
    json_decref(obj);
}

static void test_error_from_model(void) {
    proto_error err;
    proto_error_from_toto(TOTO_EINVAL, "prediction_length: must be <= 4096, got 5000", &err);
    tap_check(err.code == PROTO_INVALID_PARAMS && strcmp(err.field, "prediction_length") == 0 &&
                  strstr(err.message, "4096") != NULL,
              "model refusal becomes invalid params with its field");
    proto_error_from_toto(TOTO_EINVAL, "series[0][3]: bad", &err);
    tap_check(strcmp(err.field, "series[0][3]") == 0, "indexed field taken from the message");
    proto_error_from_toto(TOTO_EINVAL, "too many values in this batch", &err);
    tap_check(err.code == PROTO_INVALID_PARAMS && err.field[0] == '\0', "no field, none made up");
    proto_error_from_toto(TOTO_EMODEL, "cuda: launch failed", &err);
    tap_check(err.code == PROTO_INTERNAL_ERROR && err.field[0] == '\0',
              "model failure becomes an internal error");
}

/* A result of V=2, h=3 with 3 quantile levels, built by hand (no model here). */
typedef struct fake_forecast {
    double levels[3];
    double mean[6], median[6], quantiles[18], samples[24];
    toto_request req;
    toto_result res;
    toto_model_info info;
} fake_forecast;

static void fake_forecast_init(fake_forecast *f) {
    static const double tricky[6] = {0.1,    1e-9 * 3.141592653589793, 1e12 + 0.5,
                                     5e-324, 1.7976931348623157e308,   -2.5};
    memset(f, 0, sizeof *f);
    f->levels[0] = 0.1, f->levels[1] = 0.5, f->levels[2] = 0.9;
    memcpy(f->mean, tricky, sizeof tricky);
    for (int i = 0; i < 6; i++)
        f->median[i] = i + 0.25;
    for (int i = 0; i < 18; i++)
        f->quantiles[i] = i / 7.0;
    for (int i = 0; i < 24; i++)
        f->samples[i] = -i / 3.0;
    f->req = (toto_request){.n_variates = 2,
                            .n_steps = 5,
                            .prediction_length = 3,
                            .num_samples = 4,
                            .n_quantiles = 3,
                            .quantile_levels = f->levels};
    f->res = (toto_result){.n_variates = 2,
                           .prediction_length = 3,
                           .num_samples = 4,
                           .n_quantiles = 3,
                           .mean = f->mean,
                           .median = f->median,
                           .quantiles = f->quantiles};
    f->info.num_params = 151000000;
    snprintf(f->info.name, sizeof f->info.name, "/models/toto");
    snprintf(f->info.device, sizeof f->info.device, "cpu");
    snprintf(f->info.dtype, sizeof f->info.dtype, "float64");
    snprintf(f->info.path, sizeof f->info.path, "eager");
}

/* Encodes, dumps with PROTO_JSON_FLAGS and loads back: what a client sees. */
static json_t *encode_round_trip(const fake_forecast *f) {
    json_t *obj = proto_forecast_result_encode(&f->req, &f->res, &f->info);
    if (!obj)
        return NULL;
    char *text = json_dumps(obj, PROTO_JSON_FLAGS);
    json_decref(obj);
    json_error_t jerr;
    json_t *back = text ? json_loads(text, 0, &jerr) : NULL;
    if (!back)
        tap_diag("reload failed: %s", text ? jerr.text : "dump failed");
    free(text);
    return back;
}

/* The JSON array has shape dims[0..n) of numbers equal to data (row-major). */
static int matches(const json_t *json, const int *dims, int n, const double **data) {
    if (n == 0) {
        double x = *(*data)++;
        return json_is_real(json) && json_real_value(json) == x &&
               signbit(json_real_value(json)) == signbit(x);
    }
    if (!json_is_array(json) || json_array_size(json) != (size_t)dims[0])
        return 0;
    for (int i = 0; i < dims[0]; i++)
        if (!matches(json_array_get(json, i), dims + 1, n - 1, data))
            return 0;
    return 1;
}

static int matches_array(const json_t *json, const int *dims, int n, const double *data) {
    return matches(json, dims, n, &data);
}

static void test_encode_shapes(void) {
    fake_forecast f;
    fake_forecast_init(&f);
    json_t *obj = encode_round_trip(&f);
    tap_check(obj != NULL, "result encodes and reloads");
    const int vh[] = {2, 3}, lvh[] = {3, 2, 3}, l[] = {3};
    tap_check(matches_array(json_object_get(obj, "mean"), vh, 2, f.mean),
              "mean [V][h] survives the round trip exactly (0.1, 1e-9*pi, 1e12+0.5, 5e-324, "
              "DBL_MAX)");
    tap_check(matches_array(json_object_get(obj, "median"), vh, 2, f.median), "median [V][h]");
    json_t *q = json_object_get(obj, "quantiles");
    tap_check(matches_array(json_object_get(q, "levels"), l, 1, f.levels), "quantiles.levels");
    tap_check(matches_array(json_object_get(q, "values"), lvh, 3, f.quantiles),
              "quantiles.values [L][V][h]");
    tap_check(json_object_get(obj, "samples") == NULL, "no samples unless returned");
    json_t *model = json_object_get(obj, "model");
    tap_check(strcmp(json_string_value(json_object_get(model, "name")), "/models/toto") == 0 &&
                  strcmp(json_string_value(json_object_get(model, "device")), "cpu") == 0 &&
                  strcmp(json_string_value(json_object_get(model, "dtype")), "float64") == 0 &&
                  strcmp(json_string_value(json_object_get(model, "path")), "eager") == 0 &&
                  json_integer_value(json_object_get(model, "num_params")) == 151000000,
              "model: name, device, dtype, path, num_params");
    json_decref(obj);
}

static void test_encode_optional_members(void) {
    fake_forecast f;
    fake_forecast_init(&f);
    f.res.median = NULL;
    f.res.quantiles = NULL;
    f.res.n_quantiles = f.req.n_quantiles = 0;
    f.res.samples = f.samples;
    f.req.return_samples = true;
    json_t *obj = encode_round_trip(&f);
    tap_check(obj && json_is_null(json_object_get(obj, "median")), "median null when absent");
    tap_check(obj && json_object_get(obj, "quantiles") == NULL, "no quantiles unless asked");
    const int nvh[] = {4, 2, 3};
    tap_check(matches_array(json_object_get(obj, "samples"), nvh, 3, f.samples),
              "samples [N][V][h] when returned");
    json_decref(obj);

    fake_forecast_init(&f);
    f.mean[4] = NAN;
    obj = proto_forecast_result_encode(&f.req, &f.res, &f.info);
    json_t *row = json_array_get(json_object_get(obj, "mean"), 1);
    tap_check(obj && json_is_null(json_array_get(row, 1)), "a non-finite value becomes null");
    json_decref(obj);

    f.res.mean = NULL;
    tap_check(proto_forecast_result_encode(&f.req, &f.res, &f.info) == NULL,
              "an incomplete result is not encoded");
}

/* xorshift64: bit patterns over the whole double range, reproducibly. */
static uint64_t next_bits(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static void test_round_trip_many(void) {
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    int exact = 0, tried = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = next_bits(&state);
        double x;
        memcpy(&x, &bits, sizeof x);
        if (!isfinite(x))
            continue;
        json_t *real = json_real(x);
        char *text = json_dumps(real, PROTO_JSON_FLAGS | JSON_ENCODE_ANY);
        json_t *back = json_loads(text, JSON_DECODE_ANY, NULL);
        double y = json_number_value(back);
        tried++;
        exact += memcmp(&x, &y, sizeof x) == 0;
        json_decref(real);
        json_decref(back);
        free(text);
    }
    if (!tap_check(exact == tried, "%d random finite doubles survive dump and load bit-exactly",
                   tried))
        tap_diag("%d of %d exact", exact, tried);
}

int main(void) {
    test_flat_series_and_defaults();
    test_nested_series_and_options();
    test_edge_values_accepted();
    test_series_refusals();
    test_groups_refusals();
    test_integer_refusals();
    test_quantile_refusals();
    test_other_refusals();
    test_long_unknown_field();
    test_error_encoding();
    test_error_from_model();
    test_encode_shapes();
    test_encode_optional_members();
    test_round_trip_many();
    return tap_done();
}
