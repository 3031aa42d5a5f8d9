/* job.c - a forecast request's life (see job.h). */
#include "job.h"

#include <stdlib.h>

#include "jsonrpc.h"

job *job_new(const json_t *id) {
    job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->timeout_ms = -1;
    /* A deep copy shares no reference count with the loop's document. */
    j->id = id ? json_deep_copy(id) : json_null();
    if (!j->id) {
        free(j);
        return NULL;
    }
    return j;
}

void job_free(job *j) {
    if (!j)
        return;
    json_decref(j->id);
    json_decref(j->series_id);
    proto_forecast_request_free(&j->req);
    free(j->drift_scale);
    free(j->times);
    free(j->drift_mean);
    if (j->response != rpc_oom_text)
        free(j->response);
    free(j);
}

static void set_response(job *j, char *text) {
    if (j->response != rpc_oom_text)
        free(j->response);
    j->response = text ? text : (char *)rpc_oom_text;
}

void job_fail(job *j, int code, const char *message, json_t *data) {
    j->error_code = code;
    set_response(j, j->bare ? rpc_bare_error_text(code, message, data)
                            : rpc_error_text(j->id, code, message, data));
}

void job_succeed(job *j, char *text) {
    j->error_code = 0;
    set_response(j, text);
}
