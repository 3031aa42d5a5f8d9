/*
 * httpd.h - the HTTP endpoints, on a CONN_HTTP connection (conn.h frames the
 * requests, one at a time):
 *
 *   GET /health      the health method's result
 *   GET /ready       200 {"ready":true} while serving, else 503
 *   GET /metrics     Prometheus text (metrics_prom.h)
 *   POST /v1/forecast  the body is the forecast params; the result object
 *
 * Everything is answered at once except forecasts, which take the same road
 * as JSON-RPC ones (dispatch_forecast(): checks, queue, worker) and come back
 * through httpd_complete(). JSON-RPC error codes map to HTTP statuses; error
 * bodies are {"error": {"code", "message", "data"}} as in JSON-RPC.
 */
#ifndef TOTOD_HTTPD_H
#define TOTOD_HTTPD_H

#include "conn.h"
#include "http.h"
#include "job.h"
#include "server.h"

/* One complete request from c. */
void httpd_request(server *s, conn *c, const http_request *req);
/* The parser refused the bytes (status 400, 413, 431, ...); the connection then closes. */
void httpd_parse_error(server *s, conn *c, int status, const char *message);
/* A forecast's job is answered: send it as the response to c's current request. */
void httpd_complete(server *s, conn *c, job *j);
/* c is over max-connections: answer 429 and close. */
void httpd_refuse_connection(server *s, conn *c);

/* The HTTP status for a JSON-RPC error code (400, 429, 500, 503, 504, ...). */
int httpd_status_of(int rpc_code);

#endif
