/*
 * totoclient.c - client params and raw JSON-RPC calls (health, info, metrics, ...).
 */
#include <stdlib.h>
#include <string.h>

#include "totoclient_internal.h"

toto_client_params toto_client_default_params(void) {
    toto_client_params p;
    memset(&p, 0, sizeof p);
    p.connect_timeout_ms = 5000;
    p.timeout_ms = 60000;
    p.max_inflight = 256;
    return p;
}

void toto_client_string_free(char *s) {
    free(s);
}

/* One raw call: the params text as given (validated), the result as text. */
typedef struct raw_call {
    const char *params; /* compact JSON object text, or NULL */
    char *result;
} raw_call;

static int raw_write_params(void *ctx, int i, tc_buf *out, toto_client_error *err) {
    raw_call *call = ctx;
    (void)i;
    if (call->params == NULL)
        return TOTO_CLIENT_OK;
    if (tc_buf_puts(out, ",\"params\":") != 0 || tc_buf_puts(out, call->params) != 0)
        return tc_error(err, TOTO_CLIENT_ENOMEM, "out of memory writing the request");
    return TOTO_CLIENT_OK;
}

static int raw_take_result(void *ctx, int i, json_t *result, toto_client_error *err) {
    raw_call *call = ctx;
    (void)i;
    call->result = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    if (call->result == NULL)
        return tc_error(err, TOTO_CLIENT_ENOMEM, "out of memory copying the result");
    return TOTO_CLIENT_OK;
}

/* params_json as one compact line (a newline would end the request early). */
static int compact_params(const char *params_json, char **out, toto_client_error *err) {
    json_error_t jerr;
    json_t *params = json_loads(params_json, JSON_REJECT_DUPLICATES, &jerr);
    if (params == NULL)
        return tc_error(err, TOTO_CLIENT_EINVAL, "params: not JSON: %s (column %d)", jerr.text,
                        jerr.column);
    if (!json_is_object(params)) {
        json_decref(params);
        return tc_error(err, TOTO_CLIENT_EINVAL, "params: must be a JSON object");
    }
    *out = json_dumps(params, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(params);
    if (*out == NULL)
        return tc_error(err, TOTO_CLIENT_ENOMEM, "out of memory copying the params");
    return TOTO_CLIENT_OK;
}

int toto_client_call(toto_client *client, const char *method, const char *params_json,
                     int timeout_ms, char **result_json, toto_client_error *err) {
    if (result_json != NULL)
        *result_json = NULL;
    if (client == NULL || method == NULL || method[0] == '\0' || result_json == NULL)
        return tc_error(err, TOTO_CLIENT_EINVAL,
                        "toto_client_call: client, method and result_json are required");
    if (timeout_ms < -1)
        return tc_error(err, TOTO_CLIENT_EINVAL, "timeout_ms: must be -1, 0 or more, got %d",
                        timeout_ms);
    raw_call call = {NULL, NULL};
    char *params = NULL;
    if (params_json != NULL) {
        int kind = compact_params(params_json, &params, err);
        if (kind != TOTO_CLIENT_OK)
            return kind;
        call.params = params;
    }
    toto_client_error one;
    tc_pipeline p = {
        .method = method,
        .n = 1,
        .timeout_ms = timeout_ms == -1 ? client->params.timeout_ms : timeout_ms,
        .ctx = &call,
        .write_params = raw_write_params,
        .take_result = raw_take_result,
        .errs = &one,
    };
    int kind = tc_pipeline_run(client, &p);
    free(params);
    if (err != NULL)
        *err = one;
    if (kind != TOTO_CLIENT_OK) {
        free(call.result);
        return kind;
    }
    *result_json = call.result;
    return TOTO_CLIENT_OK;
}
