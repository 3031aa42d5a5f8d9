/*
 * dispatch.h - JSON-RPC on a connection: a line in, answers out. Answers
 * health, info, metrics and every error at once; turns each valid forecast
 * into a job on the queue and answers it when the job comes back.
 *
 * Also the one entry point for forecasts from HTTP (httpd.h): the same
 * checks, parsing, validation, queue and worker, only the envelope differs.
 */
#ifndef TOTOD_DISPATCH_H
#define TOTOD_DISPATCH_H

#include <stddef.h>

#include "conn.h"
#include "job.h"
#include "server.h"

/* Why a forecast was not queued: a JSON-RPC error code and message, and data (owned, or NULL). */
typedef struct dispatch_refusal {
    int code;
    char message[600];
    json_t *data;
} dispatch_refusal;

/*
 * A forecast from HTTP: params is the forecast params object, numbers its
 * typed series (proto_json_read_numbers(); may be NULL). 0: queued; the
 * job comes back to httpd_complete() with a bare answer (job.h). -1: refused,
 * *r says why (the caller answers and frees r->data). Counted in metrics.
 */
int dispatch_forecast(server *s, conn *c, const json_t *params, proto_numbers *numbers,
                      uint64_t received_ns, dispatch_refusal *r);

/* One line read from c (a request or a batch array); parsed here, or under
 * load by the parse threads, coming back through dispatch_parsed_line(). */
void dispatch_line(server *s, conn *c, const char *line, size_t len);
/* On a parse thread: a lone forecast call's params typed into its request
 * (proto_forecast_parse_numbers) and its values checked (toto_values_check),
 * so that the loop only checks the limits and queues it. Reads nothing but
 * the line's own document. */
void dispatch_prepare_line(parsed_line *l);
/* A line the parse threads parsed (ctx: the server); frees it. */
void dispatch_parsed_line(void *ctx, parsed_line *l);
/* The answer to a line over max_line_bytes (the connection then closes). */
void dispatch_line_too_long(server *s, conn *c);
/* A line begun and not complete within rpc-line-timeout-ms: refused, the connection closes. */
void dispatch_line_timeout(server *s, conn *c);
/* A job is answered (by a worker, or on shutdown): deliver it and free it. */
void dispatch_complete(server *s, job *j);

#endif
