/*
 * metrics.h - the daemon's counters and latency histograms. Owned and
 * updated by the loop thread only (the worker keeps its own, see worker.h),
 * so nothing here locks.
 */
#ifndef TOTOD_METRICS_H
#define TOTOD_METRICS_H

#include <stdint.h>

#include <jansson.h>

#define METRICS_LATENCY_BUCKETS 15 /* upper bounds in ms, then +Inf */

typedef struct histogram {
    uint64_t counts[METRICS_LATENCY_BUCKETS + 1]; /* not cumulative; last: +Inf */
    uint64_t count;
    double sum;
} histogram;

typedef enum metrics_method {
    METHOD_FORECAST,
    METHOD_HEALTH,
    METHOD_INFO,
    METHOD_METRICS,
    METHOD_OTHER, /* unknown methods and invalid requests */
    METHOD_COUNT
} metrics_method;

#define METRICS_ERROR_CODES 10

typedef struct metrics {
    uint64_t requests[METHOD_COUNT];
    uint64_t notifications;
    uint64_t errors[METRICS_ERROR_CODES]; /* indexed like metrics_error_codes */
    uint64_t connections_accepted, connections_refused, lines_too_long, lines_timed_out;
    uint64_t lines_parsed_off_loop;    /* by the parse threads (parse_pool.h) */
    uint64_t answers_written_off_loop; /* by the write helpers (write_fanout.h) */
    uint64_t http_responses[5];        /* by status class: 1xx (index 0) ... 5xx */
    histogram queue_ms, model_ms, total_ms;
} metrics;

extern const int metrics_error_codes[METRICS_ERROR_CODES];

metrics_method metrics_method_of(const char *name);
void metrics_count_error(metrics *m, int code);
/* An HTTP response with this status was sent. */
void metrics_count_http(metrics *m, int status);
void histogram_add(histogram *h, double ms);
/* {"buckets": [{"le": bound, "count": cumulative}...], "count", "sum"} */
json_t *histogram_to_json(const histogram *h);
/* requests, notifications, errors, connections, http_responses and the latency histograms. */
json_t *metrics_to_json(const metrics *m);

#endif
