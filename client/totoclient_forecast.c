/*
 * totoclient_forecast.c - typed forecast requests and results, one or pipelined.
 *
 * Requests are written directly (17 significant digits, NaN as null), not
 * through jansson objects: a long series is most of the bytes and this is the
 * hot path. Results are read with jansson (strtod: full float64 precision).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "totoclient_internal.h"

toto_client_forecast_request toto_client_forecast_default_request(void) {
    toto_client_forecast_request r;
    memset(&r, 0, sizeof r);
    r.n_variates = 1;
    return r;
}

static int invalid(toto_client_error *err, const char *field, const char *fmt, double v) {
    tc_error(err, TOTO_CLIENT_EINVAL, fmt, field, v);
    if (err != NULL)
        snprintf(err->field, sizeof err->field, "%s", field);
    return TOTO_CLIENT_EINVAL;
}

/* Checks what encoding needs; the daemon checks the rest. */
static int check_request(const toto_client_forecast_request *q, toto_client_error *err) {
    if (q->values == NULL || q->n_variates < 1 || q->length < 1)
        return tc_error(err, TOTO_CLIENT_EINVAL,
                        "series: values must be non-NULL with n_variates >= 1 and length >= 1 "
                        "(got %d x %d)",
                        q->n_variates, q->length);
    if (q->n_quantiles < 0 || (q->n_quantiles > 0 && q->quantile_levels == NULL))
        return tc_error(err, TOTO_CLIENT_EINVAL, "quantiles: n_quantiles %d without levels",
                        q->n_quantiles);
    size_t n = (size_t)q->n_variates * (size_t)q->length;
    for (size_t k = 0; k < n; k++) {
        if (isinf(q->values[k])) {
            char field[64];
            snprintf(field, sizeof field, "series[%zu][%zu]", k / (size_t)q->length,
                     k % (size_t)q->length);
            return invalid(err, field, "%s: must be finite or NaN (missing), got %g", q->values[k]);
        }
    }
    for (int l = 0; l < q->n_quantiles; l++) {
        if (!isfinite(q->quantile_levels[l])) {
            char field[32];
            snprintf(field, sizeof field, "quantiles[%d]", l);
            return invalid(err, field, "%s: must be a finite number, got %g",
                           q->quantile_levels[l]);
        }
    }
    return TOTO_CLIENT_OK;
}

static int put_number(tc_buf *b, double v) {
    return isnan(v) ? tc_buf_puts(b, "null") : tc_buf_printf(b, "%.17g", v);
}

static int put_series(tc_buf *b, const toto_client_forecast_request *q) {
    int rc = tc_buf_puts(b, "\"series\":[");
    for (int v = 0; v < q->n_variates && rc == 0; v++) {
        const double *row = q->values + (size_t)v * (size_t)q->length;
        rc = tc_buf_puts(b, v ? ",[" : "[");
        for (int t = 0; t < q->length && rc == 0; t++) {
            if (t > 0)
                rc = tc_buf_puts(b, ",");
            if (rc == 0)
                rc = put_number(b, row[t]);
        }
        if (rc == 0)
            rc = tc_buf_puts(b, "]");
    }
    return rc == 0 ? tc_buf_puts(b, "]") : rc;
}

/* ,"series_id":"..." with JSON escapes; EINVAL when not UTF-8. */
static int put_series_id(tc_buf *b, const char *id, toto_client_error *err) {
    json_t *s = json_string(id);
    if (s == NULL)
        return tc_error(err, TOTO_CLIENT_EINVAL, "series_id: not valid UTF-8");
    char *text = json_dumps(s, JSON_ENCODE_ANY);
    json_decref(s);
    int rc = text == NULL ? -1 : tc_buf_printf(b, ",\"series_id\":%s", text);
    free(text);
    return rc == 0 ? TOTO_CLIENT_OK
                   : tc_error(err, TOTO_CLIENT_ENOMEM, "out of memory writing the request");
}

static int write_request(const toto_client_forecast_request *q, tc_buf *b, toto_client_error *err) {
    int kind = check_request(q, err);
    if (kind != TOTO_CLIENT_OK)
        return kind;
    int rc = tc_buf_puts(b, ",\"params\":{");
    rc = rc ? rc : put_series(b, q);
    rc = rc ? rc
            : tc_buf_printf(b, ",\"prediction_length\":%d,\"num_samples\":%d", q->prediction_length,
                            q->num_samples);
    if (q->n_quantiles > 0) {
        rc = rc ? rc : tc_buf_puts(b, ",\"quantiles\":[");
        for (int l = 0; l < q->n_quantiles && rc == 0; l++)
            rc = tc_buf_printf(b, l ? ",%.17g" : "%.17g", q->quantile_levels[l]);
        rc = rc ? rc : tc_buf_puts(b, "]");
    }
    if (q->has_seed)
        rc = rc ? rc : tc_buf_printf(b, ",\"seed\":%" PRIu64, q->seed);
    if (q->timeout_ms > 0)
        rc = rc ? rc : tc_buf_printf(b, ",\"timeout_ms\":%d", q->timeout_ms);
    if (rc != 0)
        return tc_error(err, TOTO_CLIENT_ENOMEM, "out of memory writing the request");
    if (q->series_id != NULL && (kind = put_series_id(b, q->series_id, err)) != TOTO_CLIENT_OK)
        return kind;
    return tc_buf_puts(b, "}") == 0
               ? TOTO_CLIENT_OK
               : tc_error(err, TOTO_CLIENT_ENOMEM, "out of memory writing the request");
}

/* ---- Results ------------------------------------------------------------- */

void toto_client_forecast_free(toto_client_forecast_result *f) {
    if (f == NULL)
        return;
    free(f->mean);
    free(f->median);
    free(f->levels);
    free(f->quantiles);
    free(f->series_id);
    free(f->model_path);
    free(f->model_device);
    free(f);
}

/* n numbers (null: NaN) from a JSON array of exactly n; 0 or -1. */
static int read_row(json_t *row, size_t n, double *out) {
    if (!json_is_array(row) || json_array_size(row) != n)
        return -1;
    for (size_t t = 0; t < n; t++) {
        json_t *x = json_array_get(row, t);
        if (json_is_number(x))
            out[t] = json_number_value(x);
        else if (json_is_null(x))
            out[t] = NAN;
        else
            return -1;
    }
    return 0;
}

/* A [V][h] array into a new V*h block; NULL if misshapen (or out of memory). */
static double *read_matrix(json_t *m, int V, int h) {
    if (!json_is_array(m) || json_array_size(m) != (size_t)V)
        return NULL;
    double *out = malloc((size_t)V * (size_t)h * sizeof *out);
    for (int v = 0; out != NULL && v < V; v++) {
        if (read_row(json_array_get(m, (size_t)v), (size_t)h, out + (size_t)v * h) != 0) {
            free(out);
            out = NULL;
        }
    }
    return out;
}

static char *copy_string(json_t *s) {
    if (json_is_string(s))
        return strdup(json_string_value(s));
    if (json_is_integer(s)) {
        char text[32];
        snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(s));
        return strdup(text);
    }
    return NULL;
}

/* quantiles: {"levels": [L], "values": [L][V][h]}; 0 or -1. */
static int read_quantiles(json_t *q, toto_client_forecast_result *f) {
    json_t *levels = json_object_get(q, "levels");
    json_t *values = json_object_get(q, "values");
    size_t L = json_array_size(levels);
    size_t block = (size_t)f->n_variates * (size_t)f->prediction_length;
    if (!json_is_array(levels) || !json_is_array(values) || json_array_size(values) != L)
        return -1;
    if (L == 0)
        return 0;
    f->n_levels = (int)L;
    f->levels = malloc(L * sizeof *f->levels);
    f->quantiles = malloc(L * block * sizeof *f->quantiles);
    if (f->levels == NULL || f->quantiles == NULL || read_row(levels, L, f->levels) != 0)
        return -1;
    for (size_t l = 0; l < L; l++) {
        double *m = read_matrix(json_array_get(values, l), f->n_variates, f->prediction_length);
        if (m == NULL)
            return -1;
        memcpy(f->quantiles + l * block, m, block * sizeof *m);
        free(m);
    }
    return 0;
}

/* The result of q, or NULL (EPROTOCOL, or ENOMEM) with err filled. */
static toto_client_forecast_result *read_result(const toto_client_forecast_request *q,
                                                json_t *result, toto_client_error *err) {
    toto_client_forecast_result *f = calloc(1, sizeof *f);
    if (f == NULL) {
        tc_error(err, TOTO_CLIENT_ENOMEM, "out of memory reading the result");
        return NULL;
    }
    f->n_variates = q->n_variates;
    f->prediction_length = q->prediction_length;
    const char *bad = NULL;
    json_t *median = json_object_get(result, "median");
    json_t *quantiles = json_object_get(result, "quantiles");
    json_t *model = json_object_get(result, "model");
    json_t *timing = json_object_get(result, "timing");
    if ((f->mean = read_matrix(json_object_get(result, "mean"), f->n_variates,
                               f->prediction_length)) == NULL)
        bad = "mean";
    else if (median != NULL && !json_is_null(median) &&
             (f->median = read_matrix(median, f->n_variates, f->prediction_length)) == NULL)
        bad = "median";
    else if (quantiles != NULL && !json_is_null(quantiles) && read_quantiles(quantiles, f) != 0)
        bad = "quantiles";
    if (bad != NULL) {
        tc_error(err, TOTO_CLIENT_EPROTOCOL, "forecast result: '%s' is missing or not [%d][%d]",
                 bad, f->n_variates, f->prediction_length);
        toto_client_forecast_free(f);
        return NULL;
    }
    f->series_id = copy_string(json_object_get(result, "series_id"));
    f->model_path = copy_string(json_object_get(model, "path"));
    f->model_device = copy_string(json_object_get(model, "device"));
    f->queue_ms = json_number_value(json_object_get(timing, "queue_ms"));
    f->model_ms = json_number_value(json_object_get(timing, "model_ms"));
    f->batch_size = (int)json_integer_value(json_object_get(timing, "batch_size"));
    return f;
}

/* ---- Calls --------------------------------------------------------------- */

typedef struct many {
    const toto_client_forecast_request *reqs;
    toto_client_forecast_result **outs;
} many;

static int many_write_params(void *ctx, int i, tc_buf *out, toto_client_error *err) {
    many *m = ctx;
    return write_request(&m->reqs[i], out, err);
}

static int many_take_result(void *ctx, int i, json_t *result, toto_client_error *err) {
    many *m = ctx;
    m->outs[i] = read_result(&m->reqs[i], result, err);
    return m->outs[i] != NULL ? TOTO_CLIENT_OK : err->kind;
}

int toto_client_forecast_many(toto_client *client, const toto_client_forecast_request *reqs, int n,
                              toto_client_forecast_result **outs, toto_client_error *errs) {
    if (client == NULL || n < 0 || (n > 0 && (reqs == NULL || outs == NULL))) {
        toto_client_error e;
        tc_error(&e, TOTO_CLIENT_EINVAL,
                 "toto_client_forecast_many: client, reqs and outs are required, n >= 0");
        for (int i = 0; errs != NULL && i < n; i++)
            errs[i] = e;
        return TOTO_CLIENT_EINVAL;
    }
    for (int i = 0; i < n; i++)
        outs[i] = NULL;
    toto_client_error *slots = errs;
    if (slots == NULL && n > 0 && (slots = malloc((size_t)n * sizeof *slots)) == NULL)
        return TOTO_CLIENT_ENOMEM;
    many m = {reqs, outs};
    tc_pipeline p = {
        .method = "forecast",
        .n = n,
        .timeout_ms = client->params.timeout_ms,
        .ctx = &m,
        .write_params = many_write_params,
        .take_result = many_take_result,
        .errs = slots,
    };
    int kind = tc_pipeline_run(client, &p);
    if (slots != errs)
        free(slots);
    return kind;
}

int toto_client_forecast(toto_client *client, const toto_client_forecast_request *req,
                         toto_client_forecast_result **out, toto_client_error *err) {
    if (out != NULL)
        *out = NULL;
    if (client == NULL || req == NULL || out == NULL)
        return tc_error(err, TOTO_CLIENT_EINVAL,
                        "toto_client_forecast: client, req and out are required");
    toto_client_error one;
    int kind = toto_client_forecast_many(client, req, 1, out, &one);
    if (err != NULL)
        *err = one;
    return kind;
}
