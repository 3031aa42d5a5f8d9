/* metrics.c - counters and histograms (see metrics.h). */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

#include "forecast_codec.h"
#include "jsonrpc.h"

const int metrics_error_codes[METRICS_ERROR_CODES] = {
    PROTO_PARSE_ERROR,    PROTO_INVALID_REQUEST, PROTO_METHOD_NOT_FOUND, PROTO_INVALID_PARAMS,
    PROTO_INTERNAL_ERROR, RPC_OVERLOADED,        RPC_DEADLINE_EXCEEDED,  RPC_SHUTTING_DOWN,
    RPC_MODEL_ERROR,      RPC_UNAUTHORIZED,
};

static const double latency_bounds_ms[METRICS_LATENCY_BUCKETS] = {
    0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000,
};

static const char *const method_names[METHOD_COUNT] = {"forecast", "health", "info", "metrics",
                                                       "other"};

metrics_method metrics_method_of(const char *name) {
    for (int i = 0; i < METHOD_OTHER; i++)
        if (!strcmp(name, method_names[i]))
            return (metrics_method)i;
    return METHOD_OTHER;
}

void metrics_count_error(metrics *m, int code) {
    for (int i = 0; i < METRICS_ERROR_CODES; i++)
        if (metrics_error_codes[i] == code)
            m->errors[i]++;
}

void metrics_count_http(metrics *m, int status) {
    if (status >= 100 && status < 600)
        m->http_responses[status / 100 - 1]++;
}

void histogram_add(histogram *h, double ms) {
    int i = 0;
    while (i < METRICS_LATENCY_BUCKETS && ms > latency_bounds_ms[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += ms;
}

json_t *histogram_to_json(const histogram *h) {
    json_t *buckets = json_array();
    uint64_t cumulative = 0;
    for (int i = 0; buckets && i <= METRICS_LATENCY_BUCKETS; i++) {
        cumulative += h->counts[i];
        json_t *le =
            i < METRICS_LATENCY_BUCKETS ? json_real(latency_bounds_ms[i]) : json_string("+Inf");
        json_array_append_new(buckets,
                              json_pack("{s:o, s:I}", "le", le, "count", (json_int_t)cumulative));
    }
    return json_pack("{s:o, s:I, s:f}", "buckets", buckets, "count", (json_int_t)h->count, "sum",
                     h->sum);
}

json_t *metrics_to_json(const metrics *m) {
    json_t *requests = json_object(), *errors = json_object(), *http = json_object();
    char code[16];
    for (int i = 0; requests && i < METHOD_COUNT; i++)
        json_object_set_new(requests, method_names[i], json_integer((json_int_t)m->requests[i]));
    for (int i = 0; errors && i < METRICS_ERROR_CODES; i++) {
        snprintf(code, sizeof code, "%d", metrics_error_codes[i]);
        json_object_set_new(errors, code, json_integer((json_int_t)m->errors[i]));
    }
    for (int i = 0; http && i < 5; i++) {
        snprintf(code, sizeof code, "%dxx", i + 1);
        json_object_set_new(http, code, json_integer((json_int_t)m->http_responses[i]));
    }
    return json_pack(
        "{s:o, s:I, s:o, s:o, s:{s:I, s:I}, s:I, s:I, s:I, s:I, s:{s:o, s:o, s:o}}", "requests",
        requests, "notifications", (json_int_t)m->notifications, "errors", errors, "http_responses",
        http, "connections", "accepted", (json_int_t)m->connections_accepted, "refused",
        (json_int_t)m->connections_refused, "lines_too_long", (json_int_t)m->lines_too_long,
        "lines_timed_out", (json_int_t)m->lines_timed_out, "lines_parsed_off_loop",
        (json_int_t)m->lines_parsed_off_loop, "answers_written_off_loop",
        (json_int_t)m->answers_written_off_loop, "latency_ms", "queue",
        histogram_to_json(&m->queue_ms), "model", histogram_to_json(&m->model_ms), "total",
        histogram_to_json(&m->total_ms));
}
