/*
 * job.h - one forecast request on its way from a connection, through the
 * queue and the worker, back to the connection.
 *
 * Ownership moves with the job: the loop fills it and queues it; from then
 * on only the worker touches it, until it is pushed to the completion queue
 * and the loop takes it back. The worker never looks at conn or batch.
 */
#ifndef TOTOD_JOB_H
#define TOTOD_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "forecast_codec.h"

typedef struct job {
    struct job *next; /* link in the request or completion queue */

    /* Set by the loop before queueing. */
    void *conn;        /* the connection to answer (opaque here; it holds a reference) */
    void *batch;       /* the JSON-RPC batch array it belongs to, or NULL */
    bool bare;         /* answer without the JSON-RPC envelope (HTTP) */
    json_t *id;        /* a copy of the request's id, owned */
    json_t *series_id; /* a copy of params.series_id, owned, or NULL */
    proto_forecast_request req;
    int64_t tokens;       /* n_variates * n_steps */
    int64_t timeout_ms;   /* -1: none */
    uint64_t received_ns; /* uv_hrtime() when the line was read */
    uint64_t deadline_ns; /* 0: none */
    /* Forecast error drift (observe.h): the time axis, and what remembering needs. */
    bool timed;             /* start and interval (or timestamps) were given */
    double *times;          /* the context's timestamps [n_steps] when given; owned */
    double start, interval; /* the first context step's time; the step */
    int drift_V, drift_T, drift_h;
    double *drift_scale; /* [V], owned; set when the forecast is tracked */
    double *drift_mean;  /* [V][h], owned; the worker copies the answer's mean */

    /* Set by whoever answers it: the worker, or the loop on shutdown. */
    uint64_t started_ns, finished_ns;
    int batch_size;
    bool eager_path; /* the eager path computed it (else the compiled one) */
    int error_code;  /* 0: a result; else the JSON-RPC error code answered */
    char *response;  /* the JSON-RPC response (or bare: the result or {"error":...}), one line */
} job;

/* A job for request id (copied); NULL when out of memory. */
job *job_new(const json_t *id);
void job_free(job *j);

/* Sets the answer to an error; takes data (may be NULL). */
void job_fail(job *j, int code, const char *message, json_t *data);
/* Sets the answer to a result's text (rpc_forecast_result_text()); takes text. */
void job_succeed(job *j, char *text);

/* Milliseconds between two uv_hrtime() readings. */
static inline double job_ms(uint64_t from_ns, uint64_t to_ns) {
    return to_ns > from_ns ? (double)(to_ns - from_ns) / 1e6 : 0.0;
}

#endif
