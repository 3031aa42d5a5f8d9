/*
 * forecast_codec.c - the "forecast" method's params and result as JSON
 * (protocol/PROTOCOL.md). Every refusal is PROTO_INVALID_PARAMS with a
 * message that starts with the offending field and states the rule, so a
 * client can show it as is.
 */
#include "forecast_codec.h"

#include "json_kind.h"
#include "utf8.h"
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Values beyond this magnitude are refused: they are far outside any real
 * measurement, and the scaler's sums and squares over a series need the
 * remaining float64 headroom to stay finite.
 */
#define MAX_VALUE_MAGNITUDE 1e300 /* spelled out in the refusal message too */
#define MAX_QUANTILE_LEVELS 99

/* Fields of params that the daemon reads; the codec accepts and ignores them. */
static const char *const daemon_fields[] = {"timeout_ms", "series_id", "start", "interval",
                                            "timestamps"};
static const char *const forecast_fields[] = {
    "series", "groups", "prediction_length", "num_samples", "quantiles", "seed", "return_samples"};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Fills err as an invalid-params error on field; returns -1 for the caller to pass on. */
static int fail(proto_error *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(proto_error *err, const char *field, const char *fmt, ...) {
    va_list ap;
    err->code = PROTO_INVALID_PARAMS;
    snprintf(err->field, sizeof err->field, "%s", field);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    /* A long field name (an unknown key is the client's text) may have been
     * cut inside a character: the answer must stay valid UTF-8. */
    proto_utf8_cut(err->field);
    proto_utf8_cut(err->message);
    return -1;
}

static bool name_in(const char *name, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* Refuses the first field that is neither a forecast field nor the daemon's. */
static int check_known_fields(const json_t *params, proto_error *err) {
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)params, key, value) {
        if (name_in(key, forecast_fields, COUNT_OF(forecast_fields)) ||
            name_in(key, daemon_fields, COUNT_OF(daemon_fields)))
            continue;
        return fail(err, key,
                    "%s: unknown field (forecast takes series, prediction_length, groups, "
                    "num_samples, quantiles, seed, return_samples)",
                    key);
    }
    return 0;
}

/* An optional field: absent and null both mean "use the default". */
static const json_t *optional_field(const json_t *params, const char *name) {
    const json_t *value = json_object_get(params, name);
    return json_is_null(value) ? NULL : value;
}

/* "series[t]" (flat form, variate < 0) or "series[v][t]": an element's name, for errors. */
static void element_field(char *field, size_t size, int variate, size_t t) {
    if (variate < 0)
        snprintf(field, size, "series[%zu]", t);
    else
        snprintf(field, size, "series[%d][%zu]", variate, t);
}

static int refuse_magnitude(proto_error *err, const char *field, double x) {
    return fail(err, field, "%s: magnitude must be <= 1e300, got %.17g", field, x);
}

/* One element of series: a number, or null for a missing value (stored as NaN). */
static int parse_value(const json_t *elem, const char *field, double *out, proto_error *err) {
    if (json_is_null(elem)) {
        *out = NAN;
        return 0;
    }
    if (!json_is_number(elem))
        return fail(err, field, "%s: must be a number or null (null marks a missing value), got %s",
                    field, json_kind(elem));
    double x = json_number_value(elem);
    if (fabs(x) > MAX_VALUE_MAGNITUDE)
        return refuse_magnitude(err, field, x);
    *out = x;
    return 0;
}

/* Fills row[0..n) from the array; variate < 0 names elements "series[t]" (flat form). */
static int parse_variate(const json_t *array, int variate, double *row, proto_error *err) {
    char field[64];
    for (size_t t = 0; t < json_array_size(array); t++) {
        const json_t *elem = json_array_get(array, t);
        /* A plain number first: naming the element takes a snprintf that only an error needs. */
        if (json_is_number(elem) && fabs(json_number_value(elem)) <= MAX_VALUE_MAGNITUDE) {
            row[t] = json_number_value(elem);
            continue;
        }
        element_field(field, sizeof field, variate, t);
        if (parse_value(elem, field, &row[t], err))
            return -1;
    }
    return 0;
}

/* Shape of the nested form [V][T]: every element an array, all of one length. */
static int nested_shape(const json_t *series, size_t *n_steps, proto_error *err) {
    *n_steps = json_array_size(json_array_get(series, 0));
    for (size_t v = 1; v < json_array_size(series); v++) {
        const json_t *row = json_array_get(series, v);
        char field[32];
        snprintf(field, sizeof field, "series[%zu]", v);
        if (!json_is_array(row))
            return fail(err, field,
                        "%s: must be an array like series[0] (one array of numbers or null per "
                        "variate), got %s",
                        field, json_kind(row));
        if (json_array_size(row) != *n_steps)
            return fail(err, field,
                        "%s has %zu values, series[0] has %zu: every variate needs the same length",
                        field, json_array_size(row), *n_steps);
    }
    return 0;
}

/* V and T of series: a flat [T] array is one variate, an array of arrays is [V][T]. */
static int series_shape(const json_t *series, bool *nested, int *n_variates, int *n_steps,
                        proto_error *err) {
    if (!series)
        return fail(err, "series",
                    "series: required (an array of numbers or null, or an array "
                    "of such arrays, one per variate)");
    if (!json_is_array(series))
        return fail(err, "series",
                    "series: must be an array of numbers or null, or an array of such arrays, "
                    "got %s",
                    json_kind(series));
    size_t variates = 1, steps = json_array_size(series);
    *nested = json_is_array(json_array_get(series, 0));
    if (*nested) {
        variates = json_array_size(series);
        if (nested_shape(series, &steps, err))
            return -1;
    }
    if (steps == 0)
        return fail(err, "series", "series: no values (every variate needs at least one)");
    if (variates > INT_MAX || steps > INT_MAX)
        return fail(err, "series", "series: more than %d variates or steps", INT_MAX);
    *n_variates = (int)variates;
    *n_steps = (int)steps;
    return 0;
}

/* The values array for n_variates x n_steps; an internal error when out of memory. */
static int alloc_values(proto_forecast_request *out, int n_variates, int n_steps,
                        proto_error *err) {
    out->values = malloc((size_t)n_variates * (size_t)n_steps * sizeof *out->values);
    if (!out->values) {
        fail(err, "series", "series: out of memory for %d x %d values", n_variates, n_steps);
        err->code = PROTO_INTERNAL_ERROR;
        return -1;
    }
    out->req.n_variates = n_variates;
    out->req.n_steps = n_steps;
    out->req.values = out->values;
    return 0;
}

/*
 * A series the reader decoded typed: every element is a number or null
 * (NaN) and the shape is regular, so of the generic path's checks only the
 * element count and the magnitude are left, in the same order.
 */
static int parse_typed_series(const proto_number_array *a, proto_forecast_request *out,
                              proto_error *err) {
    if (a->n_rows > INT_MAX || a->n_cols > INT_MAX)
        return fail(err, "series", "series: more than %d variates or steps", INT_MAX);
    if (alloc_values(out, (int)a->n_rows, (int)a->n_cols, err))
        return -1;
    size_t n = a->n_rows * a->n_cols;
    memcpy(out->values, a->values, n * sizeof *out->values);
    bool too_big = false;
    for (size_t i = 0; i < n; i++) /* no early exit: the compiler vectorises this */
        too_big |= fabs(out->values[i]) > MAX_VALUE_MAGNITUDE;
    if (!too_big)
        return 0;
    size_t i = 0;
    while (!(fabs(out->values[i]) > MAX_VALUE_MAGNITUDE))
        i++;
    char field[64];
    element_field(field, sizeof field, a->nested ? (int)(i / a->n_cols) : -1, i % a->n_cols);
    return refuse_magnitude(err, field, out->values[i]);
}

static int parse_series(const json_t *params, proto_numbers *numbers, proto_forecast_request *out,
                        proto_error *err) {
    const json_t *series = json_object_get(params, "series");
    proto_number_array typed;
    if (proto_numbers_find(numbers, series, &typed))
        return parse_typed_series(&typed, out, err);
    bool nested = false;
    int n_variates = 0, n_steps = 0;
    if (series_shape(series, &nested, &n_variates, &n_steps, err) ||
        alloc_values(out, n_variates, n_steps, err))
        return -1;
    if (!nested)
        return parse_variate(series, -1, out->values, err);
    for (int v = 0; v < n_variates; v++)
        if (parse_variate(json_array_get(series, v), v, out->values + (size_t)v * n_steps, err))
            return -1;
    return 0;
}

/* Reads an integer in [min, max] into *out; absent (or null) keeps *out unless required. */
static int parse_integer(const json_t *params, const char *name, json_int_t min, json_int_t max,
                         bool required, json_int_t *out, proto_error *err) {
    const json_t *value = optional_field(params, name);
    if (!value) {
        if (required)
            return fail(err, name, "%s: required (an integer >= %lld)", name, (long long)min);
        return 0;
    }
    if (!json_is_integer(value))
        return fail(err, name, "%s: must be an integer >= %lld, got %s", name, (long long)min,
                    json_kind(value));
    json_int_t x = json_integer_value(value);
    if (x < min)
        return fail(err, name, "%s: must be >= %lld, got %lld", name, (long long)min, (long long)x);
    if (x > max)
        return fail(err, name, "%s: must be <= %lld, got %lld", name, (long long)max, (long long)x);
    *out = x;
    return 0;
}

static int parse_group_id(const json_t *elem, size_t index, int32_t *out, proto_error *err) {
    char field[32];
    snprintf(field, sizeof field, "groups[%zu]", index);
    if (!json_is_integer(elem))
        return fail(err, field, "%s: must be an integer group id, got %s", field, json_kind(elem));
    json_int_t id = json_integer_value(elem);
    if (id < INT32_MIN || id > INT32_MAX)
        return fail(err, field, "%s: must be in [%d, %d], got %lld", field, INT32_MIN, INT32_MAX,
                    (long long)id);
    *out = (int32_t)id;
    return 0;
}

/* groups: one int32 id per variate; absent means every variate in group 0. */
static int parse_groups(const json_t *params, proto_forecast_request *out, proto_error *err) {
    const json_t *groups = optional_field(params, "groups");
    if (!groups)
        return 0;
    if (!json_is_array(groups))
        return fail(err, "groups", "groups: must be an array of integers (one per variate), got %s",
                    json_kind(groups));
    size_t n = json_array_size(groups);
    if (n != (size_t)out->req.n_variates)
        return fail(err, "groups",
                    "groups: has %zu entries, series has %d variates: one group id per variate", n,
                    out->req.n_variates);
    out->groups = malloc(n * sizeof *out->groups);
    if (!out->groups) {
        fail(err, "groups", "groups: out of memory");
        err->code = PROTO_INTERNAL_ERROR;
        return -1;
    }
    out->req.groups = out->groups;
    for (size_t i = 0; i < n; i++)
        if (parse_group_id(json_array_get(groups, i), i, &out->groups[i], err))
            return -1;
    return 0;
}

/* Level i: a number strictly inside (0, 1), different from levels[0..i). */
static int parse_level(const json_t *elem, size_t i, double *levels, proto_error *err) {
    char field[32];
    snprintf(field, sizeof field, "quantiles[%zu]", i);
    if (!json_is_number(elem))
        return fail(err, field, "%s: must be a number strictly between 0 and 1, got %s", field,
                    json_kind(elem));
    double q = json_number_value(elem);
    if (!(q > 0.0 && q < 1.0))
        return fail(err, field, "%s: must be strictly between 0 and 1, got %.17g", field, q);
    for (size_t j = 0; j < i; j++)
        if (levels[j] == q)
            return fail(err, field, "%s: %.17g is already quantiles[%zu]: levels must be distinct",
                        field, q, j);
    levels[i] = q;
    return 0;
}

static int parse_quantiles(const json_t *params, proto_forecast_request *out, proto_error *err) {
    const json_t *quantiles = optional_field(params, "quantiles");
    if (!quantiles)
        return 0;
    if (!json_is_array(quantiles))
        return fail(err, "quantiles",
                    "quantiles: must be an array of levels strictly between 0 and 1, got %s",
                    json_kind(quantiles));
    size_t n = json_array_size(quantiles);
    if (n > MAX_QUANTILE_LEVELS)
        return fail(err, "quantiles", "quantiles: at most %d levels, got %zu", MAX_QUANTILE_LEVELS,
                    n);
    if (n == 0)
        return 0;
    out->levels = malloc(n * sizeof *out->levels);
    if (!out->levels) {
        fail(err, "quantiles", "quantiles: out of memory");
        err->code = PROTO_INTERNAL_ERROR;
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (parse_level(json_array_get(quantiles, i), i, out->levels, err))
            return -1;
    out->req.n_quantiles = (int)n;
    out->req.quantile_levels = out->levels;
    return 0;
}

/* prediction_length, num_samples and seed: integers; model limits come later. */
static int parse_counts(const json_t *params, toto_request *req, proto_error *err) {
    json_int_t horizon = 0, samples = 0, seed = 0;
    if (parse_integer(params, "prediction_length", 1, INT_MAX, true, &horizon, err) ||
        parse_integer(params, "num_samples", 0, INT_MAX, false, &samples, err) ||
        parse_integer(params, "seed", 0, LLONG_MAX, false, &seed, err))
        return -1;
    req->prediction_length = (int)horizon;
    req->num_samples = (int)samples;
    req->seed = (uint64_t)seed;
    return 0;
}

static int parse_return_samples(const json_t *params, toto_request *req, proto_error *err) {
    const json_t *value = optional_field(params, "return_samples");
    if (!value)
        return 0;
    if (!json_is_boolean(value))
        return fail(err, "return_samples", "return_samples: must be true or false, got %s",
                    json_kind(value));
    req->return_samples = json_is_true(value);
    if (req->return_samples && req->num_samples == 0)
        return fail(err, "return_samples",
                    "return_samples: true needs num_samples > 0 (a mean forecast has no samples)");
    return 0;
}

int proto_forecast_parse(const json_t *params, proto_forecast_request *out, proto_error *err) {
    return proto_forecast_parse_numbers(params, NULL, out, err);
}

int proto_forecast_parse_numbers(const json_t *params, proto_numbers *numbers,
                                 proto_forecast_request *out, proto_error *err) {
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    if (!json_is_object(params))
        return fail(err, "params", "params: must be a JSON object, got %s",
                    params ? json_kind(params) : "nothing");
    if (check_known_fields(params, err) || parse_series(params, numbers, out, err) ||
        parse_groups(params, out, err) || parse_counts(params, &out->req, err) ||
        parse_quantiles(params, out, err) || parse_return_samples(params, &out->req, err)) {
        proto_forecast_request_free(out);
        return -1;
    }
    return 0;
}

void proto_forecast_request_free(proto_forecast_request *req) {
    if (!req)
        return;
    free(req->values);
    free(req->groups);
    free(req->levels);
    memset(req, 0, sizeof *req);
}

/* ---- result ---------------------------------------------------------- */

/* json_real refuses NaN and infinities; JSON has no spelling for them. */
static json_t *number_or_null(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}

/* The n values at x as a JSON array; NULL when out of memory. */
static json_t *encode_vector(const double *x, int n) {
    json_t *array = json_array();
    for (int i = 0; array && i < n; i++) {
        if (json_array_append_new(array, number_or_null(x[i]))) {
            json_decref(array);
            return NULL;
        }
    }
    return array;
}

/* Row-major [rows][cols] as an array of arrays. */
static json_t *encode_matrix(const double *x, int rows, int cols) {
    json_t *array = json_array();
    for (int r = 0; array && r < rows; r++) {
        if (json_array_append_new(array, encode_vector(x + (size_t)r * cols, cols))) {
            json_decref(array);
            return NULL;
        }
    }
    return array;
}

/* Row-major [n][rows][cols] as nested arrays. */
static json_t *encode_stack(const double *x, int n, int rows, int cols) {
    size_t stride = (size_t)rows * cols;
    json_t *array = json_array();
    for (int i = 0; array && i < n; i++) {
        if (json_array_append_new(array, encode_matrix(x + i * stride, rows, cols))) {
            json_decref(array);
            return NULL;
        }
    }
    return array;
}

/* {"levels": [L], "values": [L][V][h]} */
static json_t *encode_quantiles(const toto_request *req, const toto_result *res) {
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    if (json_object_set_new(obj, "levels", encode_vector(req->quantile_levels, req->n_quantiles)) ||
        json_object_set_new(obj, "values",
                            encode_stack(res->quantiles, res->n_quantiles, res->n_variates,
                                         res->prediction_length))) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* The path that computed this result (the model's current one if it says none). */
static const char *path_of(const toto_result *res, const toto_model_info *info) {
    return res->path[0] ? res->path : info->path;
}

static json_t *encode_model(const toto_model_info *info, const toto_result *res) {
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "name", info->name, "device", info->device,
                     "dtype", info->dtype, "path", path_of(res, info), "num_params",
                     (json_int_t)info->num_params);
}

/* The arrays the encoder reads must be there and agree with the request. */
static bool result_is_complete(const toto_request *req, const toto_result *res) {
    if (res->status != TOTO_OK || !res->mean || res->n_variates < 1 || res->prediction_length < 1)
        return false;
    if (res->n_quantiles > 0 &&
        (!res->quantiles || res->n_quantiles != req->n_quantiles || !req->quantile_levels))
        return false;
    return !res->samples || res->num_samples > 0;
}

/* Adds the optional members: quantiles when asked for, samples when returned. */
static int add_optional(json_t *obj, const toto_request *req, const toto_result *res) {
    if (res->n_quantiles > 0 && json_object_set_new(obj, "quantiles", encode_quantiles(req, res)))
        return -1;
    if (res->samples && json_object_set_new(obj, "samples",
                                            encode_stack(res->samples, res->num_samples,
                                                         res->n_variates, res->prediction_length)))
        return -1;
    return 0;
}

json_t *proto_forecast_result_encode(const toto_request *req, const toto_result *res,
                                     const toto_model_info *info) {
    if (!req || !res || !info || !result_is_complete(req, res))
        return NULL;
    int rows = res->n_variates, cols = res->prediction_length;
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    if (json_object_set_new(obj, "mean", encode_matrix(res->mean, rows, cols)) ||
        json_object_set_new(obj, "median",
                            res->median ? encode_matrix(res->median, rows, cols) : json_null()) ||
        add_optional(obj, req, res) || json_object_set_new(obj, "model", encode_model(info, res))) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* ---- result as text ---------------------------------------------------- */

/* What encode_vector() gives, dumped: [x, ...] with null for a non-finite x. */
static void write_vector(proto_text *t, const double *x, int n) {
    proto_text_literal(t, "[");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            proto_text_literal(t, ",");
        proto_text_real(t, x[i]);
    }
    proto_text_literal(t, "]");
}

static void write_matrix(proto_text *t, const double *x, int rows, int cols) {
    proto_text_literal(t, "[");
    for (int r = 0; r < rows; r++) {
        if (r > 0)
            proto_text_literal(t, ",");
        write_vector(t, x + (size_t)r * cols, cols);
    }
    proto_text_literal(t, "]");
}

static void write_stack(proto_text *t, const double *x, int n, int rows, int cols) {
    size_t stride = (size_t)rows * cols;
    proto_text_literal(t, "[");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            proto_text_literal(t, ",");
        write_matrix(t, x + i * stride, rows, cols);
    }
    proto_text_literal(t, "]");
}

/* A member "key": as json_dumps writes it (keys here need no escapes). */
static void write_key(proto_text *t, const char *key, bool first) {
    if (!first)
        proto_text_literal(t, ",");
    proto_text_raw(t, "\"", 1);
    proto_text_raw(t, key, strlen(key));
    proto_text_literal(t, "\":");
}

static void write_model(proto_text *t, const toto_model_info *info, const toto_result *res) {
    const char *names[] = {"name", "device", "dtype", "path"};
    const char *values[] = {info->name, info->device, info->dtype, path_of(res, info)};
    proto_text_literal(t, "{");
    for (int i = 0; i < 4; i++) {
        write_key(t, names[i], i == 0);
        proto_text_string(t, values[i], strlen(values[i]));
    }
    write_key(t, "num_params", false);
    proto_text_integer(t, (json_int_t)info->num_params);
    proto_text_literal(t, "}");
}

/* Room for every number of the result at once, so that writing them never reallocates. */
static void reserve_numbers(proto_text *t, const toto_result *res) {
    size_t matrix = (size_t)res->n_variates * (size_t)res->prediction_length;
    size_t n = 2 * matrix + (size_t)res->n_quantiles * (matrix + 1);
    if (res->samples)
        n += (size_t)res->num_samples * matrix;
    proto_text_reserve(t, n * (PROTO_TEXT_REAL_MAX + 1) + 1024);
}

int proto_forecast_result_write(proto_text *t, const toto_request *req, const toto_result *res,
                                const toto_model_info *info) {
    if (!req || !res || !info || !result_is_complete(req, res))
        return -1;
    int rows = res->n_variates, cols = res->prediction_length;
    reserve_numbers(t, res);
    write_key(t, "mean", true);
    write_matrix(t, res->mean, rows, cols);
    write_key(t, "median", false);
    if (res->median)
        write_matrix(t, res->median, rows, cols);
    else
        proto_text_literal(t, "null");
    if (res->n_quantiles > 0) {
        write_key(t, "quantiles", false);
        proto_text_literal(t, "{");
        write_key(t, "levels", true);
        write_vector(t, req->quantile_levels, req->n_quantiles);
        write_key(t, "values", false);
        write_stack(t, res->quantiles, res->n_quantiles, rows, cols);
        proto_text_literal(t, "}");
    }
    if (res->samples) {
        write_key(t, "samples", false);
        write_stack(t, res->samples, res->num_samples, rows, cols);
    }
    write_key(t, "model", false);
    write_model(t, info, res);
    return t->failed ? -1 : 0;
}

/* ---- errors ---------------------------------------------------------- */

json_t *proto_error_encode(const proto_error *err) {
    json_t *obj = json_pack("{s:i, s:s}", "code", err->code, "message", err->message);
    if (!obj || err->field[0] == '\0')
        return obj;
    if (json_object_set_new(obj, "data", json_pack("{s:s}", "field", err->field))) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* Length of a leading "name", "name[3]" or "name[1][2]" followed by ':', else 0. */
static size_t field_prefix_length(const char *message) {
    size_t n = 0;
    while (message[n] != '\0' && (isalnum((unsigned char)message[n]) || strchr("_[]", message[n])))
        n++;
    return n > 0 && message[n] == ':' ? n : 0;
}

void proto_error_from_toto(int toto_code, const char *message, proto_error *err) {
    memset(err, 0, sizeof *err);
    err->code = toto_code == TOTO_EINVAL ? PROTO_INVALID_PARAMS : PROTO_INTERNAL_ERROR;
    snprintf(err->message, sizeof err->message, "%s", message);
    size_t n = toto_code == TOTO_EINVAL ? field_prefix_length(message) : 0;
    if (n > 0 && n < sizeof err->field)
        memcpy(err->field, message, n);
}
