/* httpd.c - the HTTP endpoints (see httpd.h). */
#include "httpd.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "dispatch.h"
#include "forecast_codec.h"
#include "json_read.h"
#include "jsonrpc.h"
#include "log.h"
#include "methods.h"
#include "metrics_prom.h"

#define JSON_TYPE "application/json"

static const char oom_response[] = "HTTP/1.1 500 Internal Server Error\r\n"
                                   "Content-Type: application/json\r\n"
                                   "Content-Length: 52\r\n"
                                   "Connection: close\r\n\r\n"
                                   "{\"error\":{\"code\":-32603,\"message\":\"out of memory\"}}\n";

int httpd_status_of(int rpc_code) {
    if (rpc_code == RPC_OVERLOADED)
        return 429;
    if (rpc_code == RPC_SHUTTING_DOWN)
        return 503;
    if (rpc_code == RPC_DEADLINE_EXCEEDED)
        return 504;
    if (rpc_code == RPC_MODEL_ERROR || rpc_code == PROTO_INTERNAL_ERROR)
        return 500;
    if (rpc_code == PROTO_METHOD_NOT_FOUND)
        return 404;
    if (rpc_code == RPC_UNAUTHORIZED)
        return 401;
    return 400; /* parse error, invalid request, invalid params */
}

/*
 * Writes one response. Keep-alive only while serving: during shutdown every
 * answer closes its connection. head: HEAD, the headers without the body.
 * Returns whether the connection stays open.
 */
static bool respond(server *s, conn *c, int status, const char *type, const char *body, size_t len,
                    bool keep_alive, const char *extra, bool head) {
    char *out, headers[256];
    size_t out_len;
    keep_alive = keep_alive && s->state == SERVER_SERVING;
    metrics_count_http(&s->metrics, status);
    if (keep_alive && s->cfg->http_idle_timeout_ms > 0) {
        /* In whole seconds, rounded down: a client that trusts it never reuses a
         * connection that totod is closing for idleness. */
        snprintf(headers, sizeof headers, "Keep-Alive: timeout=%lld\r\n%s",
                 (long long)(s->cfg->http_idle_timeout_ms / 1000), extra ? extra : "");
        extra = headers;
    }
    if (http_response_build(&out, &out_len, status, type, body, len, keep_alive, extra)) {
        conn_send_raw(c, oom_response, sizeof oom_response - 1);
        return false;
    }
    if (head)
        out_len -= len; /* the same headers, Content-Length included, without the body */
    conn_send_raw(c, out, out_len);
    free(out);
    return keep_alive;
}

/* A JSON body: text (owned, NULL when out of memory) and a newline, for terminals. */
static bool respond_json(server *s, conn *c, int status, char *text, bool keep_alive,
                         const char *extra, bool head) {
    if (!text) {
        conn_send_raw(c, oom_response, sizeof oom_response - 1);
        metrics_count_http(&s->metrics, 500);
        return false;
    }
    size_t n = strlen(text);
    char *body = realloc(text, n + 2);
    if (!body) {
        free(text);
        return respond_json(s, c, status, NULL, keep_alive, extra, head);
    }
    memcpy(body + n, "\n", 2);
    bool open = respond(s, c, status, JSON_TYPE, body, n + 1, keep_alive, extra, head);
    free(body);
    return open;
}

/* {"error": {code, message, data}} with the status for code; takes data. */
static bool respond_error(server *s, conn *c, int code, const char *message, json_t *data,
                          bool keep_alive, const char *extra) {
    int status = httpd_status_of(code);
    metrics_count_error(&s->metrics, code);
    if (status == 429 && !extra)
        extra = "Retry-After: 1\r\n";
    return respond_json(s, c, status, rpc_bare_error_text(code, message, data), keep_alive, extra,
                        false);
}

/* A JSON result object (taken), 200. */
static bool respond_result(server *s, conn *c, int status, json_t *result, bool keep_alive,
                           bool head) {
    if (!result)
        return respond_error(s, c, PROTO_INTERNAL_ERROR, "internal error: out of memory", NULL,
                             false, NULL);
    return respond_json(s, c, status, rpc_bare_result_text(result), keep_alive, NULL, head);
}

static bool serve_metrics(server *s, conn *c, bool keep_alive, bool head) {
    json_t *m = methods_metrics(s), *h = methods_health(s);
    size_t len = 0;
    char *text = m && h ? metrics_prom_render(m, h, &len) : NULL;
    json_decref(m);
    json_decref(h);
    if (!text)
        return respond_error(s, c, PROTO_INTERNAL_ERROR, "internal error: out of memory", NULL,
                             false, NULL);
    bool open = respond(s, c, 200, METRICS_PROM_CONTENT_TYPE, text, len, keep_alive, NULL, head);
    free(text);
    return open;
}

/* Ready: warm and serving. Listeners open only once warm, so "starting" is rare. */
static bool serve_ready(server *s, conn *c, bool keep_alive, bool head) {
    if (s->n_workers > 0 && s->state == SERVER_SERVING)
        return respond_result(s, c, 200, json_pack("{s:b}", "ready", 1), keep_alive, head);
    const char *why = s->n_workers == 0 ? "starting" : "shutting_down";
    return respond_result(s, c, 503, json_pack("{s:b, s:s}", "ready", 0, "status", why), keep_alive,
                          head);
}

/* POST /v1/forecast: true when the answer comes later (httpd_complete). */
static bool start_forecast(server *s, conn *c, const http_request *req, bool *open) {
    json_error_t jerr;
    char message[300];
    dispatch_refusal r;
    uint64_t received_ns = uv_hrtime();
    bool keep_alive = http_keep_alive(&c->http);
    proto_numbers *numbers; /* the series, typed, as on the other transports */
    json_t *params = proto_json_read_numbers(req->body, req->body_len, &jerr, &numbers);
    if (!params) {
        s->metrics.requests[METHOD_FORECAST]++;
        snprintf(message, sizeof message, "parse error: %s (at byte %d)", jerr.text, jerr.position);
        *open = respond_error(s, c, PROTO_PARSE_ERROR, message, NULL, keep_alive, NULL);
        return false;
    }
    int rc = dispatch_forecast(s, c, params, numbers, received_ns, &r);
    json_decref(params);
    proto_numbers_free(numbers);
    if (rc == 0)
        return true;
    /* Not respond_error(): dispatch_forecast() has counted the error already. */
    *open =
        respond_json(s, c, httpd_status_of(r.code), rpc_bare_error_text(r.code, r.message, r.data),
                     keep_alive, r.code == RPC_OVERLOADED ? "Retry-After: 1\r\n" : NULL, false);
    return false;
}

typedef enum endpoint { EP_HEALTH, EP_READY, EP_METRICS, EP_FORECAST } endpoint;

typedef struct route {
    const char *path;
    endpoint ep;
    const char *allow; /* the methods it answers, for 405's Allow header */
} route;

static const route routes[] = {
    {"/health", EP_HEALTH, "GET, HEAD"},
    {"/ready", EP_READY, "GET, HEAD"},
    {"/metrics", EP_METRICS, "GET, HEAD"},
    {"/v1/forecast", EP_FORECAST, "POST"},
};

static const route *route_of(const char *path) {
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(path, routes[i].path))
            return &routes[i];
    return NULL;
}

/* 404 for an unknown path, 405 (with Allow) for a known one asked with another method. */
static bool respond_unrouted(server *s, conn *c, const http_request *req, const route *known,
                             bool keep_alive) {
    char message[300], allow[64];
    s->metrics.requests[METHOD_OTHER]++;
    if (!known) {
        snprintf(message, sizeof message,
                 "not found: %.200s (endpoints: GET /health, /ready, /metrics; POST /v1/forecast)",
                 req->path);
        return respond_error(s, c, PROTO_METHOD_NOT_FOUND, message,
                             json_pack("{s:s}", "path", req->path), keep_alive, NULL);
    }
    snprintf(message, sizeof message, "method not allowed: %.40s %.200s (allowed: %s)", req->method,
             req->path, known->allow);
    snprintf(allow, sizeof allow, "Allow: %s\r\n", known->allow);
    metrics_count_error(&s->metrics, PROTO_METHOD_NOT_FOUND);
    return respond_json(
        s, c, 405,
        rpc_bare_error_text(PROTO_METHOD_NOT_FOUND, message,
                            json_pack("{s:s, s:s}", "method", req->method, "allow", known->allow)),
        keep_alive, allow, false);
}

/* GET or HEAD of /health, /ready or /metrics (access already checked). With a
 * token configured, /health without it is a probe's answer: the status only. */
static bool serve_get(server *s, conn *c, const http_request *req, endpoint ep, bool keep_alive,
                      bool head) {
    s->metrics.requests[ep == EP_METRICS ? METHOD_METRICS : METHOD_HEALTH]++;
    if (ep == EP_HEALTH && s->cfg->auth_token_len > 0 && !access_http_has_token(s, req))
        return respond_result(s, c, 200, methods_health_public(s), keep_alive, head);
    if (ep == EP_HEALTH)
        return respond_result(s, c, 200, methods_health(s), keep_alive, head);
    if (ep == EP_READY)
        return serve_ready(s, c, keep_alive, head);
    return serve_metrics(s, c, keep_alive, head);
}

/* 401 with the Bearer challenge; a wrong token (r->data counts the failures: access.c)
 * says so with error="invalid_token" (RFC 6750). */
static bool respond_unauthorized(server *s, conn *c, dispatch_refusal *r, bool keep_alive) {
    s->metrics.requests[METHOD_OTHER]++;
    const char *challenge = r->data ? "WWW-Authenticate: Bearer realm=\"totod\", "
                                      "error=\"invalid_token\"\r\n"
                                    : "WWW-Authenticate: Bearer realm=\"totod\"\r\n";
    return respond_error(s, c, r->code, r->message, r->data, keep_alive, challenge);
}

void httpd_request(server *s, conn *c, const http_request *req) {
    const route *known = route_of(req->path);
    bool keep_alive = http_keep_alive(&c->http), open, close;
    bool get = !strcmp(req->method, "GET"), head = !strcmp(req->method, "HEAD");
    bool post = !strcmp(req->method, "POST");
    bool served = known && (known->ep == EP_FORECAST ? post : get || head);
    bool protected = known && (known->ep == EP_METRICS || known->ep == EP_FORECAST);
    dispatch_refusal r;
    if (served && protected && !access_http_allowed(s, c, req, &r, &close)) {
        open = respond_unauthorized(s, c, &r, keep_alive && !close);
    } else if (served && known->ep == EP_FORECAST) {
        if (start_forecast(s, c, req, &open))
            return; /* answered by httpd_complete() */
    } else if (served) {
        open = serve_get(s, c, req, known->ep, keep_alive, head);
    } else {
        open = respond_unrouted(s, c, req, known, keep_alive);
    }
    conn_http_done(c, open);
}

void httpd_complete(server *s, conn *c, job *j) {
    bool keep_alive = http_keep_alive(&c->http), open;
    int status = j->error_code ? httpd_status_of(j->error_code) : 200;
    if (j->response == rpc_oom_text) {
        conn_send_raw(c, oom_response, sizeof oom_response - 1);
        open = false;
    } else {
        /* The job's response is already the bare result or error text. */
        char *text = strdup(j->response);
        open = respond_json(s, c, status, text, keep_alive,
                            status == 429 ? "Retry-After: 1\r\n" : NULL, false);
    }
    conn_http_done(c, open);
}

void httpd_parse_error(server *s, conn *c, int status, const char *message) {
    char text[200];
    json_t *data = NULL;
    if (status == 413)
        data = json_pack("{s:s, s:I}", "limit", "max-line-bytes", "max",
                         (json_int_t)s->cfg->max_line_bytes);
    else if (status == 431 || status == 414)
        data = json_pack("{s:s, s:I}", "limit", "max-header-bytes", "max",
                         (json_int_t)HTTP_DEFAULT_MAX_HEADER_BYTES);
    else if (status == 408)
        data = json_pack("{s:s, s:I}", "limit", "http-idle-timeout-ms", "max",
                         (json_int_t)s->cfg->http_idle_timeout_ms);
    snprintf(text, sizeof text, "invalid request: %s", message ? message : "bad HTTP");
    log_msg(TLOG_DEBUG, "connection %s: HTTP %d: %s", c->peer, status, text);
    int code = status >= 500 && status != 501 && status != 505 ? PROTO_INTERNAL_ERROR
                                                               : PROTO_INVALID_REQUEST;
    metrics_count_error(&s->metrics, code);
    respond_json(s, c, status, rpc_bare_error_text(code, text, data), false, NULL, false);
}

void httpd_refuse_connection(server *s, conn *c) {
    char *text =
        rpc_bare_error_text(RPC_OVERLOADED, "overloaded: too many connections (max-connections)",
                            json_pack("{s:s, s:I}", "limit", "max-connections", "max",
                                      (json_int_t)s->cfg->max_connections));
    metrics_count_error(&s->metrics, RPC_OVERLOADED);
    respond_json(s, c, 429, text, false, "Retry-After: 1\r\n", false);
}
