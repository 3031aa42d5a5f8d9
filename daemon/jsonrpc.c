/* jsonrpc.c - JSON-RPC 2.0 envelopes (see jsonrpc.h). */
#include "jsonrpc.h"

#include <string.h>

#include "forecast_codec.h"

const char rpc_oom_text[] =
    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,\"message\":\"out of memory\"}}";

static bool valid_id(const json_t *id) {
    return json_is_string(id) || json_is_number(id) || json_is_null(id);
}

int rpc_call_check(const json_t *msg, rpc_call *call, const char **message) {
    memset(call, 0, sizeof *call);
    if (!json_is_object(msg)) {
        *message = "invalid request: a request must be a JSON object";
        return -1;
    }
    const json_t *id = json_object_get(msg, "id");
    const json_t *version = json_object_get(msg, "jsonrpc");
    const json_t *method = json_object_get(msg, "method");
    const json_t *params = json_object_get(msg, "params");
    call->id = valid_id(id) ? id : NULL;
    if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0)
        *message = "invalid request: jsonrpc must be \"2.0\"";
    else if (!json_is_string(method))
        *message = "invalid request: method must be a string";
    else if (id && !valid_id(id))
        *message = "invalid request: id must be a string, a number or null";
    else if (params && !json_is_object(params) && !json_is_array(params))
        *message = "invalid request: params must be an object or an array";
    else {
        call->method = json_string_value(method);
        call->params = params;
        call->notification = id == NULL;
        return 0;
    }
    return -1;
}

static char *dump(json_t *doc) {
    char *text = doc ? json_dumps(doc, PROTO_JSON_FLAGS | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    return text;
}

char *rpc_result_text(const json_t *id, json_t *result) {
    if (!result)
        return NULL;
    return dump(json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                          "result", result));
}

/* {code, message[, data]}; takes data. */
static json_t *error_object(int code, const char *message, json_t *data) {
    json_t *error = json_pack("{s:i, s:s}", "code", code, "message", message);
    if (error && data)
        json_object_set_new(error, "data", data);
    else
        json_decref(data);
    return error;
}

char *rpc_error_text(const json_t *id, int code, const char *message, json_t *data) {
    json_t *error = error_object(code, message, data);
    if (!error)
        return NULL;
    return dump(json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error",
                          error));
}

/* "timing" and "series_id", as the worker used to add them to the result object. */
static void write_timing(proto_text *t, const rpc_timing *timing, const json_t *series_id) {
    proto_text_literal(t, ",\"timing\":{\"queue_ms\":");
    proto_text_real(t, timing->queue_ms);
    proto_text_literal(t, ",\"batch_size\":");
    proto_text_integer(t, timing->batch_size);
    proto_text_literal(t, ",\"model_ms\":");
    proto_text_real(t, timing->model_ms);
    proto_text_literal(t, "}");
    if (series_id) {
        proto_text_literal(t, ",\"series_id\":");
        proto_text_value(t, series_id);
    }
}

char *rpc_forecast_result_text(const json_t *id, bool bare, const toto_request *req,
                               const toto_result *res, const toto_model_info *info,
                               const rpc_timing *timing, const json_t *series_id) {
    proto_text t;
    proto_text_init(&t);
    if (!bare) {
        proto_text_literal(&t, "{\"jsonrpc\":\"2.0\",\"id\":");
        proto_text_value(&t, id ? id : json_null());
        proto_text_literal(&t, ",\"result\":");
    }
    proto_text_literal(&t, "{");
    if (proto_forecast_result_write(&t, req, res, info)) {
        proto_text_free(&t);
        return NULL;
    }
    write_timing(&t, timing, series_id);
    if (bare)
        proto_text_literal(&t, "}");
    else
        proto_text_literal(&t, "}}");
    return proto_text_finish(&t, NULL);
}

char *rpc_bare_result_text(json_t *result) {
    return dump(result);
}

char *rpc_bare_error_text(int code, const char *message, json_t *data) {
    json_t *error = error_object(code, message, data);
    return error ? dump(json_pack("{s:o}", "error", error)) : NULL;
}
