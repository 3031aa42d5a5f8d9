/*
 * fuzz_rpc_line.c - libFuzzer harness: one JSON-RPC line the way totod's
 * dispatch_line() (daemon/dispatch.c) takes it apart, with only the pure
 * pieces that does: protocol/json_read.c (the typed reader the daemon uses,
 * and the generic one), daemon/jsonrpc.c (rpc_call_check and the answers) and
 * protocol/forecast_codec.c (forecast params). dispatch.c itself needs the
 * server and libuv, and toto_request_validate() needs libtorch, so neither is
 * linked; the model's limits are checked by the integration tests.
 *
 * The input is one line (a batch array, an object, or anything). It aborts
 * when
 *   - the typed reader and the generic one disagree (accept/refuse, error
 *     text and position, or the document when no series was typed);
 *   - rpc_call_check() or the forecast parser judge the typed tree and the
 *     generic one differently (code, field, message, every request value);
 *   - a parsed request breaks its contract (shape >= 1x1, values finite with
 *     magnitude <= 1e300 or NaN, levels distinct in (0,1), return_samples only
 *     with samples, ...), or a refusal does not name its field first;
 *   - an answer cannot be built (the daemon would send the out-of-memory
 *     answer with a null id instead) or does not read back as JSON with the
 *     request's id and code;
 *   - the forecast answer written as text (rpc_forecast_result_text) differs
 *     byte for byte from the one built with jansson, for a result shaped like
 *     the request.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/jsonrpc.h"
#include "forecast_codec.h"
#include "fuzz_check.h"
#include "json_read.h"
#include "json_same.h"

/* A bigger result adds time per input, not coverage. */
#define MAX_RESULT_NUMBERS 4096

/* The answer text reads back as one JSON object with this id and (when code) error code. */
static void check_answer(char *text, const json_t *id, int code) {
    CHECK(text != NULL);
    json_error_t e;
    json_t *doc = proto_json_read(text, strlen(text), &e);
    CHECK(json_is_object(doc));
    CHECK(json_same(json_object_get(doc, "id"), id ? id : json_null()));
    if (code) {
        const json_t *error = json_object_get(doc, "error");
        CHECK(json_is_object(error));
        CHECK(json_integer_value(json_object_get(error, "code")) == code);
        CHECK(json_is_string(json_object_get(error, "message")));
    }
    json_decref(doc);
    free(text);
}

/* What the daemon answers a refused forecast (dispatch.c, submit_forecast). */
static void check_refusal(const json_t *id, const proto_error *err) {
    CHECK(err->code == PROTO_INVALID_PARAMS || err->code == PROTO_INTERNAL_ERROR);
    CHECK(err->message[0] != '\0'); /* field is "" only for an unknown field named "" */
    CHECK(memchr(err->message, 0, sizeof err->message) && memchr(err->field, 0, sizeof err->field));
    /* "every refusal ... a message that starts with the offending field" */
    CHECK(strncmp(err->message, err->field, strlen(err->field)) == 0);
    json_t *data = json_pack("{s:s}", "field", err->field);
    CHECK(data != NULL); /* else the answer silently loses data.field */
    check_answer(rpc_error_text(id, err->code, err->message, data), id, err->code);
    json_t *encoded = proto_error_encode(err);
    CHECK(encoded != NULL);
    json_decref(encoded);
}

static void check_request(const proto_forecast_request *p) {
    const toto_request *r = &p->req;
    CHECK(r->n_variates >= 1 && r->n_steps >= 1 && r->values == p->values && p->values);
    for (size_t i = 0; i < (size_t)r->n_variates * (size_t)r->n_steps; i++)
        CHECK(isnan(r->values[i]) || fabs(r->values[i]) <= 1e300);
    CHECK(r->groups == p->groups);
    CHECK(r->prediction_length >= 1 && r->num_samples >= 0);
    CHECK(r->seed <= (uint64_t)LLONG_MAX);
    CHECK(r->n_quantiles >= 0 && r->n_quantiles <= 99);
    CHECK((r->n_quantiles == 0) == (r->quantile_levels == NULL));
    for (int i = 0; i < r->n_quantiles; i++) {
        CHECK(r->quantile_levels[i] > 0.0 && r->quantile_levels[i] < 1.0);
        for (int j = 0; j < i; j++)
            CHECK(r->quantile_levels[i] != r->quantile_levels[j]);
    }
    CHECK(!r->return_samples || r->num_samples > 0);
}

static bool same_double(double a, double b) {
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

static void check_same_request(const toto_request *a, const toto_request *b) {
    CHECK(a->n_variates == b->n_variates && a->n_steps == b->n_steps);
    for (size_t i = 0; i < (size_t)a->n_variates * (size_t)a->n_steps; i++)
        CHECK(same_double(a->values[i], b->values[i]));
    CHECK(!a->groups == !b->groups);
    for (int v = 0; a->groups && v < a->n_variates; v++)
        CHECK(a->groups[v] == b->groups[v]);
    CHECK(a->prediction_length == b->prediction_length && a->num_samples == b->num_samples);
    CHECK(a->n_quantiles == b->n_quantiles && a->seed == b->seed);
    CHECK(a->return_samples == b->return_samples);
    for (int i = 0; i < a->n_quantiles; i++)
        CHECK(same_double(a->quantile_levels[i], b->quantile_levels[i]));
}

/* n numbers taken from the request's values in turn (NaN stays: it is written null). */
static double *fill(const toto_request *r, size_t n, size_t shift) {
    double *x = malloc((n ? n : 1) * sizeof *x);
    CHECK(x != NULL);
    size_t total = (size_t)r->n_variates * (size_t)r->n_steps;
    for (size_t i = 0; i < n; i++)
        x[i] = r->values[(i + shift) % total];
    return x;
}

/* The answer to a forecast of the request's shape, written as text and built with jansson. */
static void check_result_text(const json_t *id, const toto_request *r) {
    size_t matrix = (size_t)r->n_variates * (size_t)r->prediction_length;
    size_t samples = r->return_samples ? (size_t)r->num_samples : 0;
    if (matrix > MAX_RESULT_NUMBERS ||
        (2 + (size_t)r->n_quantiles + samples) * matrix > MAX_RESULT_NUMBERS)
        return;
    toto_result res = {.n_variates = r->n_variates,
                       .prediction_length = r->prediction_length,
                       .num_samples = r->num_samples,
                       .n_quantiles = r->n_quantiles};
    res.mean = fill(r, matrix, 0);
    res.median = r->n_steps % 2 ? fill(r, matrix, 1) : NULL;
    res.quantiles = r->n_quantiles ? fill(r, (size_t)r->n_quantiles * matrix, 2) : NULL;
    res.samples = samples ? fill(r, samples * matrix, 3) : NULL;
    toto_model_info info = {.num_params = 151306080};
    snprintf(info.device, sizeof info.device, "cpu");
    snprintf(info.dtype, sizeof info.dtype, "float64");
    snprintf(info.path, sizeof info.path, "eager");
    snprintf(info.name, sizeof info.name, "tiny-a");
    rpc_timing timing = {.queue_ms = 0.25, .batch_size = 3, .model_ms = 12.5};

    char *text = rpc_forecast_result_text(id, false, r, &res, &info, &timing, NULL);
    json_t *result = proto_forecast_result_encode(r, &res, &info);
    CHECK(text != NULL && result != NULL);
    json_object_set_new(result, "timing",
                        json_pack("{s:f, s:i, s:f}", "queue_ms", timing.queue_ms, "batch_size",
                                  timing.batch_size, "model_ms", timing.model_ms));
    char *expected = rpc_result_text(id, result);
    CHECK(expected != NULL && strcmp(text, expected) == 0);
    check_answer(text, id, 0);
    free(expected);
    free(res.mean);
    free(res.median);
    free(res.quantiles);
    free(res.samples);
}

/* A forecast's params, typed (as the daemon reads them) and generic, must be judged alike. */
static void check_forecast(const rpc_call *typed, const rpc_call *generic, proto_numbers *numbers) {
    proto_forecast_request a, b;
    proto_error ea, eb;
    int ra = proto_forecast_parse_numbers(typed->params, numbers, &a, &ea);
    int rb = proto_forecast_parse(generic->params, &b, &eb);
    CHECK(ra == rb);
    if (ra) {
        CHECK(ea.code == eb.code && strcmp(ea.field, eb.field) == 0);
        CHECK(strcmp(ea.message, eb.message) == 0);
        check_refusal(typed->id, &ea);
        return;
    }
    check_request(&a);
    check_same_request(&a.req, &b.req);
    check_result_text(typed->id, &a.req);
    proto_forecast_request_free(&a);
    proto_forecast_request_free(&b);
}

/* One message of the line (the object, or a member of a batch). */
static void check_message(const json_t *typed, const json_t *generic, proto_numbers *numbers) {
    rpc_call ct, cg;
    const char *why_t = NULL, *why_g = NULL;
    int rt = rpc_call_check(typed, &ct, &why_t);
    int rg = rpc_call_check(generic, &cg, &why_g);
    CHECK(rt == rg && ct.notification == cg.notification);
    CHECK(!ct.id == !cg.id && (!ct.id || json_same(ct.id, cg.id)));
    if (rt) {
        CHECK(why_t != NULL && why_t == why_g);
        check_answer(rpc_error_text(ct.id, PROTO_INVALID_REQUEST, why_t, NULL), ct.id,
                     PROTO_INVALID_REQUEST);
        return;
    }
    CHECK(ct.method != NULL && strcmp(ct.method, cg.method) == 0);
    CHECK(!ct.params == !cg.params);
    if (strcmp(ct.method, "forecast") == 0 && json_is_object(ct.params))
        check_forecast(&ct, &cg, numbers);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *line = (const char *)data;
    json_error_t et, eg;
    proto_numbers *numbers = NULL;
    json_t *typed = proto_json_read_numbers(line, size, &et, &numbers);
    json_t *generic = proto_json_read(line, size, &eg);
    CHECK(!typed == !generic);
    if (!typed) {
        CHECK(numbers == NULL);
        CHECK(et.position == eg.position && strcmp(et.text, eg.text) == 0);
        char message[300];
        snprintf(message, sizeof message, "parse error: %s (at byte %d)", et.text, et.position);
        check_answer(rpc_error_text(NULL, PROTO_PARSE_ERROR, message, NULL), NULL,
                     PROTO_PARSE_ERROR);
        return 0;
    }
    if (!numbers)
        CHECK(json_same(typed, generic));
    if (json_is_array(typed)) {
        CHECK(json_array_size(typed) == json_array_size(generic));
        for (size_t i = 0; i < json_array_size(typed); i++)
            check_message(json_array_get(typed, i), json_array_get(generic, i), numbers);
    } else {
        check_message(typed, generic, numbers);
    }
    json_decref(typed);
    json_decref(generic);
    proto_numbers_free(numbers);
    return 0;
}
