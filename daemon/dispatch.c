/*
 * dispatch.c - JSON-RPC on a connection (see dispatch.h).
 *
 * Every request that is read gets exactly one answer: at once (errors,
 * health, info, metrics, refusals), or when its job comes back. A batch
 * array is answered as one array once all of its members are answered;
 * it holds a reference to the connection until then, as every job does.
 */
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "httpd.h"
#include "json_read.h"
#include "jsonrpc.h"
#include "log.h"
#include "methods.h"
#include "observe.h"

#define MAX_TIMEOUT_MS      86400000 /* a day */
#define MAX_SERIES_ID_BYTES 256

/* The answers to one batch array, collected as text. */
typedef struct rpc_batch {
    conn *c;
    int pending; /* members not answered yet, +1 while the array is being read */
    char *text;
    size_t len, cap;
    bool oom;
} rpc_batch;

static void batch_add(rpc_batch *b, const char *answer) {
    size_t n = strlen(answer);
    if (b->oom)
        return;
    if (b->len + n + 2 > b->cap) {
        size_t cap = (b->len + n + 2) * 2;
        char *text = realloc(b->text, cap);
        if (!text) {
            b->oom = true;
            return;
        }
        b->text = text;
        b->cap = cap;
    }
    char separator = b->len == 0 ? '[' : ',';
    b->text[b->len++] = separator;
    memcpy(b->text + b->len, answer, n);
    b->len += n;
}

static void batch_release(rpc_batch *b) {
    if (--b->pending > 0)
        return;
    if (b->oom)
        conn_send(b->c, rpc_oom_text, strlen(rpc_oom_text));
    else if (b->len > 0) { /* nothing at all when every member was a notification */
        b->text[b->len++] = ']';
        conn_send(b->c, b->text, b->len);
    }
    conn_release(b->c);
    free(b->text);
    free(b);
}

/* Sends text (owned; NULL means out of memory) as an answer, or adds it to the batch. */
static void reply(server *s, conn *c, rpc_batch *b, char *text, int code) {
    const char *answer = text ? text : rpc_oom_text;
    if (code)
        metrics_count_error(&s->metrics, code);
    if (b)
        batch_add(b, answer);
    else
        conn_send(c, answer, strlen(answer));
    free(text);
}

static void reply_error(server *s, conn *c, rpc_batch *b, const json_t *id, int code,
                        const char *message, json_t *data) {
    reply(s, c, b, rpc_error_text(id, code, message, data), code);
}

static void reply_result(server *s, conn *c, rpc_batch *b, const json_t *id, json_t *result) {
    if (!result) {
        reply_error(s, c, b, id, PROTO_INTERNAL_ERROR, "internal error: out of memory", NULL);
        return;
    }
    reply(s, c, b, rpc_result_text(id, result), 0);
}

static int param_error(proto_error *err, const char *field, const char *message) {
    err->code = PROTO_INVALID_PARAMS;
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->message, sizeof err->message, "%s: %s", field, message);
    return -1;
}

/* timeout_ms and series_id: the params the daemon reads itself. */
static int parse_daemon_fields(const json_t *params, job *j, proto_error *err) {
    const json_t *timeout = json_object_get(params, "timeout_ms");
    const json_t *series_id = json_object_get(params, "series_id");
    if (timeout && !json_is_null(timeout)) {
        json_int_t ms = json_is_integer(timeout) ? json_integer_value(timeout) : -1;
        if (ms < 0 || ms > MAX_TIMEOUT_MS)
            return param_error(err, "timeout_ms",
                               "expected an integer from 0 to 86400000 (milliseconds)");
        j->timeout_ms = ms;
    }
    if (series_id && !json_is_null(series_id)) {
        bool ok =
            json_is_integer(series_id) ||
            (json_is_string(series_id) && json_string_length(series_id) <= MAX_SERIES_ID_BYTES);
        if (!ok)
            return param_error(err, "series_id",
                               "expected a string of at most 256 bytes, or an integer");
        j->series_id = json_deep_copy(series_id);
    }
    return 0;
}

/* A lone forecast call's params as a parse thread typed them, and the
 * verdict on its values (dispatch_prepare_line). */
typedef struct prepared_forecast {
    int rc; /* proto_forecast_parse_numbers(): 0, req filled; -1, err says why */
    proto_forecast_request req;
    proto_error err;
    int values_rc; /* toto_values_check() of req, when rc is 0 */
    char values_err[256];
} prepared_forecast;

static void prepared_forecast_free(void *data) {
    prepared_forecast *pf = data;
    proto_forecast_request_free(&pf->req);
    free(pf);
}

void dispatch_prepare_line(parsed_line *l) {
    const json_t *method = json_object_get(l->doc, "method");
    const json_t *params = json_object_get(l->doc, "params");
    if (!json_is_object(l->doc) || !json_is_string(method) ||
        strcmp(json_string_value(method), "forecast") != 0 || !json_is_object(params))
        return; /* the loop judges everything else as before */
    prepared_forecast *pf = calloc(1, sizeof *pf);
    if (!pf)
        return; /* the loop parses the params itself */
    pf->rc = proto_forecast_parse_numbers(params, l->numbers, &pf->req, &pf->err);
    /* The values were just written on this thread: scanning them here saves
     * the loop the scan and the trip of the cache lines to its core. */
    if (pf->rc == 0)
        pf->values_rc = toto_values_check(&pf->req.req, pf->values_err, sizeof pf->values_err);
    l->prepared = (line_prepared){pf, prepared_forecast_free};
}

/* The forecast's typed params: taken from a parse thread's work (pf keeps
 * nothing of them), or parsed here. */
static int forecast_params(const json_t *params, proto_numbers *numbers, prepared_forecast *pf,
                           proto_forecast_request *out, proto_error *err) {
    if (!pf)
        return proto_forecast_parse_numbers(params, numbers, out, err);
    if (pf->rc) {
        *err = pf->err;
        return -1;
    }
    *out = pf->req;
    memset(&pf->req, 0, sizeof pf->req);
    return 0;
}

/*
 * Parses and checks a forecast's params into j (pf: already typed by a parse
 * thread, or NULL). toto_request_validate() runs here, on the loop thread,
 * while the worker may be inside toto_forecast(): it only reads the limits
 * and the configuration fixed by toto_model_open() (model/toto.cc), so
 * refusing a bad request needs no trip through the queue. A reload frees
 * models on this thread, which is why only the checks of the values, which
 * need no model, moved to the parse threads with the parsing.
 */
static int prepare_forecast(server *s, const json_t *params, proto_numbers *numbers,
                            prepared_forecast *pf, job *j, proto_error *err) {
    char message[512];
    if (parse_daemon_fields(params, j, err) || forecast_params(params, numbers, pf, &j->req, err) ||
        observe_parse_time_axis(params, j, err))
        return -1;
    const toto_model *model = worker_model(&s->workers[0]);
    int rc = pf ? toto_request_validate_checked(model, &j->req.req, pf->values_rc, pf->values_err,
                                                message, sizeof message)
                : toto_request_validate(model, &j->req.req, message, sizeof message);
    if (rc != TOTO_OK) {
        proto_error_from_toto(rc, message, err);
        return -1;
    }
    j->tokens = (int64_t)j->req.req.n_variates * j->req.req.n_steps;
    observe_forecast_accepted(s, j);
    return 0;
}

static json_t *limit_data(const char *limit, int64_t max) {
    return json_pack("{s:s, s:I}", "limit", limit, "max", (json_int_t)max);
}

/* Fills *r with a refusal; returns -1 so that callers can `return refuse(...)`. */
static int refuse(dispatch_refusal *r, int code, const char *message, json_t *data) {
    r->code = code;
    snprintf(r->message, sizeof r->message, "%s", message);
    r->data = data;
    return -1;
}

/* Queues j; on success the job belongs to the queue and the worker. Else frees j, fills *r. */
static int enqueue(server *s, conn *c, rpc_batch *b, job *j, dispatch_refusal *r) {
    char message[160];
    j->conn = c;
    j->batch = b;
    conn_hold(c);
    c->inflight++;
    if (b)
        b->pending++;
    s->outstanding++;
    int rc = queue_push(&s->queue, j); /* from here on the worker may own j */
    if (rc == QUEUE_OK) {
        answer_poll_arm(s, &s->answer_poll);
        return 0;
    }
    s->outstanding--;
    if (b)
        b->pending--;
    c->inflight--;
    conn_release(c);
    job_free(j);
    if (rc == QUEUE_CLOSED)
        return refuse(r, RPC_SHUTTING_DOWN, "shutting down", NULL);
    snprintf(message, sizeof message,
             "overloaded: the queue is full (queue-limit %lld); retry later",
             (long long)s->cfg->queue_limit);
    return refuse(r, RPC_OVERLOADED, message, limit_data("queue-limit", s->cfg->queue_limit));
}

/*
 * The one way into the queue, for every framing: checks the state and the
 * limits, parses and validates params, and queues the job. 0: queued, the
 * answer comes through dispatch_complete(); -1: refused, *r says why.
 */
static int submit_forecast(server *s, conn *c, rpc_batch *b, const json_t *id, const json_t *params,
                           proto_numbers *numbers, prepared_forecast *pf, bool bare,
                           uint64_t received_ns, dispatch_refusal *r) {
    char message[200];
    proto_error err;
    if (!json_is_object(params))
        return refuse(r, PROTO_INVALID_PARAMS, "params: must be an object",
                      json_pack("{s:s}", "field", "params"));
    if (s->state != SERVER_SERVING)
        return refuse(r, RPC_SHUTTING_DOWN, "shutting down: no new forecasts are accepted", NULL);
    if (c->inflight >= s->cfg->max_inflight) {
        snprintf(message, sizeof message,
                 "overloaded: %lld forecasts already in flight on this connection "
                 "(max-inflight); wait for answers before sending more",
                 (long long)c->inflight);
        return refuse(r, RPC_OVERLOADED, message, limit_data("max-inflight", s->cfg->max_inflight));
    }
    job *j = job_new(id);
    if (!j)
        return refuse(r, PROTO_INTERNAL_ERROR, "internal error: out of memory", NULL);
    j->bare = bare;
    if (prepare_forecast(s, params, numbers, pf, j, &err)) {
        job_free(j);
        return refuse(r, err.code, err.message,
                      err.field[0] ? json_pack("{s:s}", "field", err.field) : NULL);
    }
    j->received_ns = received_ns;
    if (j->timeout_ms >= 0)
        j->deadline_ns = received_ns + (uint64_t)j->timeout_ms * 1000000u;
    return enqueue(s, c, b, j, r);
}

int dispatch_forecast(server *s, conn *c, const json_t *params, proto_numbers *numbers,
                      uint64_t received_ns, dispatch_refusal *r) {
    s->metrics.requests[METHOD_FORECAST]++;
    int rc = submit_forecast(s, c, NULL, NULL, params, numbers, NULL, true, received_ns, r);
    if (rc)
        metrics_count_error(&s->metrics, r->code);
    return rc;
}

static void rpc_forecast(server *s, conn *c, rpc_batch *b, const rpc_call *call,
                         proto_numbers *numbers, prepared_forecast *pf, uint64_t received_ns) {
    dispatch_refusal r;
    if (call->notification)
        return; /* nothing could carry its result: not computed */
    if (submit_forecast(s, c, b, call->id, call->params, numbers, pf, false, received_ns, &r))
        reply_error(s, c, b, call->id, r.code, r.message, r.data);
}

/* The answer to a refusal that did not queue anything. */
static void reply_refusal(server *s, conn *c, rpc_batch *b, const json_t *id, dispatch_refusal *r) {
    reply_error(s, c, b, id, r->code, r->message, r->data);
}

/* The method auth (access.h); the connection closes after the last wrong token. */
static void rpc_auth(server *s, conn *c, rpc_batch *b, const rpc_call *call) {
    dispatch_refusal r;
    bool close;
    if (call->notification)
        return; /* a token whose outcome nobody hears is not checked */
    json_t *result = access_auth(s, c, call->params, &r, &close);
    if (result)
        reply_result(s, c, b, call->id, result);
    else
        reply_refusal(s, c, b, call->id, &r);
    if (close)
        conn_end_input(c); /* after the answer: what is owed is still written */
}

/* Every method but forecast and auth, answered at once. */
static void rpc_other(server *s, conn *c, rpc_batch *b, const rpc_call *call,
                      metrics_method method) {
    char message[300];
    dispatch_refusal r;
    if (method == METHOD_HEALTH)
        reply_result(s, c, b, call->id, methods_health(s));
    else if (method == METHOD_INFO)
        reply_result(s, c, b, call->id, methods_info(s));
    else if (method == METHOD_METRICS)
        reply_result(s, c, b, call->id, methods_metrics(s));
    else if (strcmp(call->method, "observe") == 0) {
        proto_error err = {0};
        json_t *res = observe_method(s, call->params, &err);
        if (res)
            reply_result(s, c, b, call->id, res);
        else
            reply_error(s, c, b, call->id, err.code, err.message,
                        err.field[0] ? json_pack("{s:s}", "field", err.field) : NULL);
    } else if (strcmp(call->method, "use_compiled") == 0) {
        json_t *res = NULL;
        if (!access_may_admin(s, c, call->method, &r))
            reply_refusal(s, c, b, call->id, &r);
        else if ((res = methods_use_compiled(s, message, sizeof message)))
            reply_result(s, c, b, call->id, res);
        else
            reply_error(s, c, b, call->id, RPC_MODEL_ERROR, message, NULL);
    } else {
        /* Cut at 200 bytes, but not inside a UTF-8 character: a message that
         * is not UTF-8 cannot be answered (the client got "out of memory"). */
        int shown = (int)strnlen(call->method, 200);
        while (shown > 0 && ((unsigned char)call->method[shown] & 0xC0) == 0x80)
            shown--;
        snprintf(message, sizeof message,
                 "method not found: '%.*s' (methods: forecast, observe, health, info, "
                 "metrics, use_compiled, auth)",
                 shown, call->method);
        reply_error(s, c, b, call->id, PROTO_METHOD_NOT_FOUND, message,
                    json_pack("{s:s}", "method", call->method));
    }
}

static void dispatch_one(server *s, conn *c, rpc_batch *b, const json_t *msg,
                         proto_numbers *numbers, prepared_forecast *pf, uint64_t received_ns) {
    rpc_call call;
    const char *why;
    dispatch_refusal r;
    if (rpc_call_check(msg, &call, &why)) {
        s->metrics.requests[METHOD_OTHER]++;
        reply_error(s, c, b, call.id, PROTO_INVALID_REQUEST, why, NULL);
        return;
    }
    metrics_method method = metrics_method_of(call.method);
    s->metrics.requests[method]++;
    s->metrics.notifications += call.notification;
    if (strcmp(call.method, "auth") == 0) {
        rpc_auth(s, c, b, &call);
    } else if (!access_may_call(s, c)) {
        if (!call.notification) { /* nothing runs, and a notification hears nothing */
            access_refuse_unauthenticated(s, &r);
            reply_refusal(s, c, b, call.id, &r);
        }
    } else if (method == METHOD_FORECAST) {
        rpc_forecast(s, c, b, &call, numbers, pf, received_ns);
    } else if (!call.notification) { /* JSON-RPC: a notification is never answered */
        rpc_other(s, c, b, &call, method);
    }
}

static void dispatch_batch(server *s, conn *c, const json_t *array, proto_numbers *numbers,
                           uint64_t received_ns) {
    rpc_batch *b = calloc(1, sizeof *b);
    if (!b) {
        reply_error(s, c, NULL, NULL, PROTO_INTERNAL_ERROR, "internal error: out of memory", NULL);
        return;
    }
    b->c = c;
    b->pending = 1;
    conn_hold(c);
    size_t i;
    const json_t *msg;
    json_array_foreach(array, i, msg) dispatch_one(s, c, b, msg, numbers, NULL, received_ns);
    batch_release(b);
}

static bool blank(const char *line, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            return false;
    return true;
}

/* A line read and parsed (doc NULL: jerr says why; pf: a lone forecast's
 * params typed off the loop, or NULL); doc and numbers are freed here. */
static void dispatch_doc(server *s, conn *c, json_t *doc, proto_numbers *numbers,
                         prepared_forecast *pf, const json_error_t *jerr, uint64_t received_ns) {
    char message[300];
    if (!doc) {
        s->metrics.requests[METHOD_OTHER]++;
        snprintf(message, sizeof message, "parse error: %s (at byte %d)", jerr->text,
                 jerr->position);
        reply_error(s, c, NULL, NULL, PROTO_PARSE_ERROR, message, NULL);
    } else if (json_is_array(doc) && json_array_size(doc) == 0) {
        s->metrics.requests[METHOD_OTHER]++;
        reply_error(s, c, NULL, NULL, PROTO_INVALID_REQUEST, "invalid request: empty batch", NULL);
    } else if (json_is_array(doc)) {
        dispatch_batch(s, c, doc, numbers, received_ns);
    } else {
        dispatch_one(s, c, NULL, doc, numbers, pf, received_ns);
    }
    json_decref(doc);
    proto_numbers_free(numbers);
}

/*
 * Whether a line goes to the parse threads (parse_pool.h): only under load,
 * where the loop thread is what limits forecasts/s, and only a line long
 * enough for its parse to outweigh the hand-off; and always while the
 * connection's earlier lines are there, so that its requests keep their order.
 */
#define OFFLOAD_MIN_BYTES 1024 /* a seed forecast's line is 5.7 KB; health's 40 B */
#define OFFLOAD_MIN_OWED  16   /* forecasts queued, running or parsing */

static bool offload(server *s, conn *c, size_t len) {
    if (!s->io.parse_on)
        return false;
    return c->parsing > 0 || (len >= OFFLOAD_MIN_BYTES && s->outstanding >= OFFLOAD_MIN_OWED);
}

void dispatch_line(server *s, conn *c, const char *line, size_t len) {
    uint64_t received_ns = uv_hrtime();
    json_error_t jerr;
    if (blank(line, len))
        return;
    if (offload(s, c, len) && parse_pool_submit(&s->io.parse, c, line, len, received_ns) == 0) {
        conn_hold(c);
        c->parsing++;
        s->outstanding++; /* shutdown waits for it as for a queued forecast */
        s->metrics.lines_parsed_off_loop++;
        return;
    }
    proto_numbers *numbers; /* the series, typed: no json_t per number */
    json_t *doc = proto_json_read_numbers(line, len, &jerr, &numbers);
    dispatch_doc(s, c, doc, numbers, NULL, &jerr, received_ns);
}

void dispatch_parsed_line(void *ctx, parsed_line *l) {
    server *s = ctx;
    conn *c = l->c;
    c->parsing--;
    /* A connection closed meanwhile cannot hear an answer: nothing is computed for it. */
    if (!c->closing) {
        dispatch_doc(s, c, l->doc, l->numbers, l->prepared.data, &l->jerr,
                     l->received_ns); /* frees doc and numbers; pf is freed with l */
        l->doc = NULL;
        l->numbers = NULL;
    }
    parsed_line_free(l);
    conn_release(c);
    server_job_done(s); /* after dispatching: its forecast, if any, is owed by now */
}

/* A line refused as a whole (what it broke: limit = value): one -32600 naming
 * the limit; the connection reads no more and closes once its answers are out. */
static void refuse_line(server *s, conn *c, const char *what, const char *limit, int64_t value) {
    char message[200];
    snprintf(message, sizeof message, "invalid request: %s (%lld); closing the connection", what,
             (long long)value);
    log_msg(TLOG_WARNING, "connection %s: %s", c->peer, message);
    reply_error(s, c, NULL, NULL, PROTO_INVALID_REQUEST, message, limit_data(limit, value));
}

void dispatch_line_too_long(server *s, conn *c) {
    s->metrics.lines_too_long++;
    refuse_line(s, c, "line longer than max-line-bytes", "max-line-bytes", s->cfg->max_line_bytes);
}

void dispatch_line_timeout(server *s, conn *c) {
    s->metrics.lines_timed_out++;
    refuse_line(s, c, "line not complete within rpc-line-timeout-ms of its first byte",
                "rpc-line-timeout-ms", s->cfg->rpc_line_timeout_ms);
}

void dispatch_complete(server *s, job *j) {
    conn *c = j->conn;
    uint64_t now = uv_hrtime();
    if (j->error_code)
        metrics_count_error(&s->metrics, j->error_code);
    if (j->started_ns)
        histogram_add(&s->metrics.queue_ms, job_ms(j->received_ns, j->started_ns));
    if (j->batch_size > 0) {
        histogram_add(&s->metrics.model_ms, job_ms(j->started_ns, j->finished_ns));
        answer_poll_observe(&s->answer_poll, j->started_ns, j->finished_ns - j->started_ns);
    }
    histogram_add(&s->metrics.total_ms, job_ms(j->received_ns, now));
    observe_forecast_answered(s, j);
    if (j->batch_size > 0 && !j->error_code)
        latency_record(s->latency, j->eager_path ? LAT_EAGER : LAT_COMPILED, now,
                       job_ms(j->received_ns, j->started_ns), job_ms(j->started_ns, j->finished_ns),
                       job_ms(j->received_ns, now));
    conn_inflight_done(c); /* may hand out lines held back for it (--stdio) */
    /* On a connection that has closed meanwhile, conn_send drops the answer. */
    if (j->bare)
        httpd_complete(s, c, j);
    else if (j->batch)
        batch_add(j->batch, j->response);
    else
        conn_send(c, j->response, strlen(j->response));
    if (j->batch)
        batch_release(j->batch);
    job_free(j);
    conn_release(c);
    server_job_done(s);
}
