/*
 * forecast_codec.h - the "forecast" method's params and result as JSON
 * (protocol/PROTOCOL.md). Parsing validates shapes and types and names the
 * offending field; limits that depend on the model are checked by
 * toto_request_validate(). Nothing here does I/O.
 */
#ifndef TOTO_FORECAST_CODEC_H
#define TOTO_FORECAST_CODEC_H

#include <jansson.h>

#include "json_read.h"
#include "json_write.h"
#include "toto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* JSON-RPC 2.0 error codes used by the protocol. */
enum {
    PROTO_PARSE_ERROR = -32700,
    PROTO_INVALID_REQUEST = -32600,
    PROTO_METHOD_NOT_FOUND = -32601,
    PROTO_INVALID_PARAMS = -32602,
    PROTO_INTERNAL_ERROR = -32603,
};

/* A parse or validation failure: a JSON-RPC code, a message and the field. */
typedef struct proto_error {
    int code;
    char message[512];
    char field[128]; /* e.g. "series[2][17]", "quantiles[0]"; "" if none */
} proto_error;

/* A parsed forecast request; req points into the owned arrays. */
typedef struct proto_forecast_request {
    toto_request req;
    double *values;
    int32_t *groups;
    double *levels;
} proto_forecast_request;

/* Parses params (a JSON object). Returns 0, or -1 with err filled. */
int proto_forecast_parse(const json_t *params, proto_forecast_request *out, proto_error *err);

/*
 * The same for params read by proto_json_read_numbers(): a "series" that the
 * reader decoded typed is taken from numbers (which may be NULL), with the
 * same checks, errors and values as the generic path gives for its text.
 */
int proto_forecast_parse_numbers(const json_t *params, proto_numbers *numbers,
                                 proto_forecast_request *out, proto_error *err);
void proto_forecast_request_free(proto_forecast_request *req);

/*
 * Encodes a successful result (and what was run, from info) as a JSON object.
 * NULL when out of memory, or when res lacks arrays that req asked for.
 */
json_t *proto_forecast_result_encode(const toto_request *req, const toto_result *res,
                                     const toto_model_info *info);

/*
 * The same result written as text: the members of the object that
 * json_dumps(proto_forecast_result_encode(...), PROTO_JSON_FLAGS |
 * JSON_PRESERVE_ORDER) gives, byte for byte, without its braces ("mean":...,
 * ...,"model":{...}), so that the caller can add its own members after them.
 * -1 (t failed, or res incomplete as above) when encode would give NULL.
 */
int proto_forecast_result_write(proto_text *t, const toto_request *req, const toto_result *res,
                                const toto_model_info *info);

/* Encodes a JSON-RPC error object {"code", "message", "data": {"field"}}. */
json_t *proto_error_encode(const proto_error *err);

/*
 * Turns a model error (a TOTO_E* code and its message) into a protocol error:
 * TOTO_EINVAL becomes PROTO_INVALID_PARAMS, with field taken from a leading
 * "field: " of the message; any other code becomes PROTO_INTERNAL_ERROR.
 */
void proto_error_from_toto(int toto_code, const char *message, proto_error *err);

/* Dump flags that keep every float64 exact through a round trip. */
#define PROTO_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

#ifdef __cplusplus
}
#endif

#endif
