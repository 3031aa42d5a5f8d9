/*
 * jsonrpc.h - JSON-RPC 2.0 envelopes for totod: checking a request object and
 * writing responses as text (one line, no newline). Pure: no I/O, no libuv.
 */
#ifndef TOTOD_JSONRPC_H
#define TOTOD_JSONRPC_H

#include <stdbool.h>

#include <jansson.h>

#include "toto.h"

/* The daemon's own error codes (protocol/PROTOCOL.md, "Daemon"). */
enum {
    RPC_OVERLOADED = -32000,        /* queue, in-flight or connection limit reached */
    RPC_DEADLINE_EXCEEDED = -32001, /* timeout_ms passed while queued */
    RPC_SHUTTING_DOWN = -32002,     /* the daemon is stopping */
    RPC_MODEL_ERROR = -32003,       /* the model failed on a valid request */
    RPC_UNAUTHORIZED = -32004,      /* no token, a wrong one, or an admin method from afar */
};

/* A request object, checked. method and params point into the document. */
typedef struct rpc_call {
    const char *method;
    const json_t *params; /* NULL when absent */
    const json_t *id;     /* NULL when absent (a notification) or unusable */
    bool notification;
} rpc_call;

/*
 * Checks one message of a line (an object, or an element of a batch). On
 * failure returns -1 with *message set; call->id still holds a usable id
 * (or NULL) for the error response.
 */
int rpc_call_check(const json_t *msg, rpc_call *call, const char **message);

/* {"jsonrpc":"2.0","id":id,"result":result}; takes result. NULL when out of memory. */
char *rpc_result_text(const json_t *id, json_t *result);

/* {"jsonrpc":"2.0","id":id,"error":{code,message[,data]}}; takes data (may be NULL). */
char *rpc_error_text(const json_t *id, int code, const char *message, json_t *data);

/* The same without the JSON-RPC envelope, as HTTP answers: the result object
 * itself, or {"error":{code,message[,data]}}. Take result / data. */
char *rpc_bare_result_text(json_t *result);
char *rpc_bare_error_text(int code, const char *message, json_t *data);

/* What the worker measured for a forecast: its "timing" member. */
typedef struct rpc_timing {
    double queue_ms;
    int batch_size;
    double model_ms;
} rpc_timing;

/*
 * A forecast's result as its answer: {"jsonrpc":"2.0","id":id,"result":R}, or
 * R alone when bare (HTTP), where R is the codec's result object followed by
 * "timing" and, when not NULL, "series_id". Written straight as text
 * (protocol/json_write.h), byte for byte what rpc_result_text() /
 * rpc_bare_result_text() make of the same values built as jansson objects
 * (tests/unit/test_json_write.c). NULL when out of memory or res is
 * incomplete.
 */
char *rpc_forecast_result_text(const json_t *id, bool bare, const toto_request *req,
                               const toto_result *res, const toto_model_info *info,
                               const rpc_timing *timing, const json_t *series_id);

/* A fixed answer for when building one failed (out of memory). Not to be freed. */
extern const char rpc_oom_text[];

#endif
