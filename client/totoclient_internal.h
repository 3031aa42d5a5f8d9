/*
 * totoclient_internal.h - what the client library's files share; not installed.
 *
 * totoclient_error.c   error kinds and the helpers that fill toto_client_error
 * totoclient_addr.c    address parsing
 * totoclient_buf.c     a growable byte buffer
 * totoclient_conn.c    connecting, and the pipeline that writes requests and
 *                      matches answers by id
 * totoclient_forecast.c  forecast requests and results
 * totoclient.c         params, raw calls
 */
#ifndef TOTOCLIENT_INTERNAL_H
#define TOTOCLIENT_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "totoclient.h"

/* A growable byte buffer; data is NUL-terminated whenever len < cap. */
typedef struct tc_buf {
    char *data;
    size_t len;
    size_t cap;
} tc_buf;

int tc_buf_reserve(tc_buf *b, size_t extra); /* 0, or -1 when out of memory */
int tc_buf_append(tc_buf *b, const char *s, size_t n);
int tc_buf_puts(tc_buf *b, const char *s);
int tc_buf_printf(tc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tc_buf_free(tc_buf *b);

struct toto_client {
    int fd; /* -1 once broken */
    toto_client_params params;
    char address[300];       /* as shown in messages: "unix:/run/toto/toto.sock" */
    char broken_reason[256]; /* why the connection was closed */
    uint64_t next_id;
    tc_buf rbuf;    /* bytes read but not yet consumed as answer lines */
    size_t scanned; /* rbuf bytes already searched for a newline */
};

/* Fills err (when not NULL) and returns kind. */
int tc_error(toto_client_error *err, int kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clears err to TOTO_CLIENT_OK (when not NULL). */
void tc_error_clear(toto_client_error *err);
/* Copies a JSON-RPC error object into err as ESERVER; EPROTOCOL if malformed. */
int tc_error_from_rpc(toto_client_error *err, json_t *error);

/*
 * n requests of one method, pipelined (totoclient_conn.c). The pipeline
 * writes each request as {"jsonrpc":"2.0","id":ID,"method":METHOD PARAMS}
 * where PARAMS is what write_params appends (",\"params\":{...}" or nothing),
 * and hands each answer's "result" to take_result.
 */
typedef struct tc_pipeline {
    const char *method;
    int n;
    int timeout_ms; /* per request, from when it is sent; 0: no bound */
    void *ctx;
    /* Appends request i's params; a non-zero kind (EINVAL, ENOMEM) fails request i unsent. */
    int (*write_params)(void *ctx, int i, tc_buf *out, toto_client_error *err);
    /* Takes request i's result (borrowed); a non-zero kind fails request i. */
    int (*take_result)(void *ctx, int i, json_t *result, toto_client_error *err);
    toto_client_error *errs; /* n slots, filled for every request */
} tc_pipeline;

/* Runs p; returns 0, or the kind of the lowest-index request that failed. */
int tc_pipeline_run(toto_client *c, const tc_pipeline *p);

#endif
