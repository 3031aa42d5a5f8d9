/*
 * result_reference.h - a forecast's answer built the way the worker built it
 * before protocol/json_write.c: the codec's jansson object, "timing" and
 * "series_id" added to it, then dumped by rpc_result_text() (or, bare, by
 * rpc_bare_result_text()). The reference that rpc_forecast_result_text() must
 * match byte for byte (tests/unit/test_json_write.c) and the baseline that
 * tests/bench/bench_protocol.c times it against.
 */
#ifndef TOTO_TEST_RESULT_REFERENCE_H
#define TOTO_TEST_RESULT_REFERENCE_H

#include <stdbool.h>

#include <jansson.h>

#include "../daemon/jsonrpc.h"
#include "forecast_codec.h"

static inline char *reference_result_text(const json_t *id, bool bare, const toto_request *req,
                                          const toto_result *res, const toto_model_info *info,
                                          const rpc_timing *timing, const json_t *series_id) {
    json_t *result = proto_forecast_result_encode(req, res, info);
    if (!result)
        return NULL;
    json_t *t = json_pack("{s:f, s:i, s:f}", "queue_ms", timing->queue_ms, "batch_size",
                          timing->batch_size, "model_ms", timing->model_ms);
    if (json_object_set_new(result, "timing", t) ||
        (series_id && json_object_set(result, "series_id", (json_t *)series_id))) {
        json_decref(result);
        return NULL;
    }
    return bare ? rpc_bare_result_text(result) : rpc_result_text(id, result);
}

#endif
