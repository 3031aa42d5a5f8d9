/* metrics_prom.c - Prometheus text exposition (see metrics_prom.h). */
#include "metrics_prom.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing text; after a failed allocation every append is dropped and oom stays set. */
typedef struct text {
    char *p;
    size_t len, cap;
    bool oom;
} text;

static void add(text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->oom || n < 0)
        return;
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = (t->len + (size_t)n + 1) * 2;
        char *p = realloc(t->p, cap);
        if (!p) {
            t->oom = true;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* A label value: backslash, double quote and newline escaped, as the format asks. */
static void add_label_value(text *t, const char *v) {
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            add(t, "\\%c", *v);
        else if (*v == '\n')
            add(t, "\\n");
        else
            add(t, "%c", *v);
    }
}

static void add_family(text *t, const char *name, const char *type, const char *help) {
    add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static double number(const json_t *v) {
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

/* One sample "name{label="value"} number"; label may be NULL. */
static void add_sample(text *t, const char *name, const char *label, const char *value, double x) {
    add(t, "%s", name);
    if (label) {
        add(t, "{%s=\"", label);
        add_label_value(t, value);
        add(t, "\"}");
    }
    add(t, " %.17g\n", x);
}

static void add_scalar(text *t, const json_t *m, const char *key, const char *name,
                       const char *type, const char *help) {
    add_family(t, name, type, help);
    add_sample(t, name, NULL, NULL, number(json_object_get(m, key)));
}

/* Every member of the object m[key] as name{label="member"}. */
static void add_by_label(text *t, const json_t *m, const char *key, const char *name,
                         const char *label, const char *help) {
    const char *member;
    json_t *v;
    add_family(t, name, "counter", help);
    json_object_foreach((json_t *)json_object_get(m, key), member, v)
        add_sample(t, name, label, member, number(v));
}

/*
 * The series of one histogram object {"buckets": [{"le", "count"}...], "sum",
 * "count"}, its bounds and sum multiplied by scale; label="value" is put
 * first when label is not NULL.
 */
static void add_histogram(text *t, const char *name, const json_t *h, double scale,
                          const char *label, const char *value) {
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(h, "buckets"), i, b) {
        const json_t *le = json_object_get(b, "le");
        add(t, "%s_bucket{", name);
        if (label) {
            add(t, "%s=\"", label);
            add_label_value(t, value);
            add(t, "\",");
        }
        if (json_is_string(le))
            add(t, "le=\"%s\"} ", json_string_value(le));
        else
            add(t, "le=\"%.6g\"} ", number(le) * scale);
        add(t, "%.17g\n", number(json_object_get(b, "count")));
    }
    const char *suffixes[2] = {"_sum", "_count"};
    for (int k = 0; k < 2; k++) {
        add(t, "%s%s", name, suffixes[k]);
        if (label) {
            add(t, "{%s=\"", label);
            add_label_value(t, value);
            add(t, "\"}");
        }
        add(t, " %.17g\n", number(json_object_get(h, suffixes[k] + 1)) * (k == 0 ? scale : 1.0));
    }
}

static void add_counters(text *t, const json_t *m) {
    const json_t *conns = json_object_get(m, "connections");
    add_by_label(t, m, "requests", "totod_requests_total", "method",
                 "Requests read, by method (HTTP endpoints count as the method they serve).");
    add_scalar(t, m, "notifications", "totod_notifications_total", "counter",
               "JSON-RPC notifications read (never answered).");
    add_by_label(t, m, "errors", "totod_errors_total", "code",
                 "Error answers, by JSON-RPC error code.");
    add_by_label(t, m, "http_responses", "totod_http_responses_total", "code",
                 "HTTP responses, by status class.");
    add_family(t, "totod_connections_total", "counter", "Connections accepted, by outcome.");
    add_sample(t, "totod_connections_total", "outcome", "accepted",
               number(json_object_get(conns, "accepted")));
    add_sample(t, "totod_connections_total", "outcome", "refused",
               number(json_object_get(conns, "refused")));
    add_scalar(t, m, "lines_too_long", "totod_lines_too_long_total", "counter",
               "Lines over max-line-bytes.");
    add_scalar(t, m, "lines_timed_out", "totod_lines_timed_out_total", "counter",
               "Lines not complete within rpc-line-timeout-ms.");
    add_scalar(t, m, "lines_parsed_off_loop", "totod_lines_parsed_off_loop_total", "counter",
               "Request lines parsed by the I/O threads (io-threads) instead of the loop.");
    add_scalar(t, m, "answers_written_off_loop", "totod_answers_written_off_loop_total", "counter",
               "Answers written by the I/O threads (io-threads) instead of the loop.");
    add_scalar(t, m, "batches", "totod_batches_total", "counter", "Model calls.");
    const json_t *c = json_object_get(m, "compile");
    add_scalar(t, c, "runs", "totod_compiled_runs_total", "counter",
               "Context passes through the compiled path's buckets.");
    add_scalar(t, c, "eager_fallbacks", "totod_compiled_eager_fallbacks_total", "counter",
               "Context passes that fit no compiled bucket and ran eagerly.");
    add_scalar(t, c, "captures_after_warmup", "totod_compiled_captures_after_warmup_total",
               "counter", "CUDA graph captures after warm-up (stays 0).");
    add_scalar(t, c, "path_runs", "totod_compiled_path_runs_total", "counter",
               "Sampled requests whose paths were decoded by the compiled path's graphs.");
    add_scalar(t, m, "batches_encoded_async", "totod_batches_encoded_async_total", "counter",
               "Model calls whose answers the encoder thread wrote while the next call ran.");
    add_scalar(t, m, "fallbacks", "totod_fallbacks_total", "counter",
               "Times the compiled path failed and the eager path took over.");
    add_scalar(t, m, "failed_batches", "totod_failed_batches_total", "counter",
               "Model calls that failed as a whole.");
    add_scalar(t, m, "expired", "totod_expired_total", "counter",
               "Forecasts answered deadline exceeded (timeout_ms passed while queued).");
}

static void add_drift(text *t, const json_t *m) {
    const json_t *d = json_object_get(m, "drift");
    add_scalar(t, d, "ratio", "totod_drift_ratio", "gauge",
               "Forecast error drift: recent scaled errors over the baseline, pooled.");
    add_scalar(t, d, "over", "totod_drift_series_over", "gauge",
               "Series whose drift ratio is over drift-threshold-percent.");
    add_scalar(t, d, "tracked", "totod_drift_series", "gauge",
               "Series remembered for drift (series_id with start and interval).");
}

static void add_shadow(text *t, const json_t *m) {
    const json_t *sh = json_object_get(m, "shadow");
    add_scalar(t, sh, "checks", "totod_shadow_checks_total", "counter",
               "Shadow checks: compiled forecasts run again on the eager path and compared.");
    add_scalar(t, sh, "last", "totod_shadow_divergence", "gauge",
               "The latest shadow check's divergence (of the context's spread).");
}

static void add_gauges(text *t, const json_t *m) {
    add_scalar(t, m, "queue_depth", "totod_queue_depth", "gauge", "Forecasts queued now.");
    add_scalar(t, m, "inflight", "totod_inflight", "gauge", "Forecasts queued or running now.");
    add_scalar(t, m, "connections_open", "totod_connections_open", "gauge", "Open connections.");
    add_scalar(t, m, "workers_busy", "totod_workers_busy", "gauge",
               "Inference workers inside a model call now.");
    add_scalar(t, m, "uptime_s", "totod_uptime_seconds", "gauge", "Seconds since totod started.");
}

static void add_histograms(text *t, const json_t *m) {
    const char *phases[3] = {"queue", "model", "total"};
    const json_t *latency = json_object_get(m, "latency_ms");
    add_family(t, "totod_batch_size", "histogram", "Forecasts per model call.");
    add_histogram(t, "totod_batch_size", json_object_get(m, "batch_size"), 1.0, NULL, NULL);
    add_family(t, "totod_latency_seconds", "histogram",
               "Forecast latency by phase: queued, in the model call, arrival to answer.");
    for (int i = 0; i < 3; i++)
        add_histogram(t, "totod_latency_seconds", json_object_get(latency, phases[i]), 1e-3,
                      "phase", phases[i]);
}

/* totod_latency_window_seconds{path,phase,window,quantile}: latency.h's windows. */
static void add_windows(text *t, const json_t *m) {
    static const char *const windows[2] = {"1m", "15m"}, *const phases[3] = {"queue", "model",
                                                                             "total"};
    static const char *const quantiles[3][2] = {{"p50", "0.5"}, {"p90", "0.9"}, {"p99", "0.99"}};
    const json_t *paths = json_object_get(m, "latency_windows");
    const char *path;
    const json_t *byw;
    add_family(t, "totod_latency_window_seconds", "gauge",
               "Forecast latency quantiles over the last minute and 15 minutes, by path and phase "
               "(upper edge of a log-scale bin, within 19%).");
    json_object_foreach((json_t *)paths, path, byw) {
        for (int w = 0; w < 2; w++)
            for (int f = 0; f < 3; f++) {
                const json_t *s = json_object_get(json_object_get(byw, windows[w]), phases[f]);
                for (int q = 0; s && q < 3; q++)
                    add(t,
                        "totod_latency_window_seconds{path=\"%s\",phase=\"%s\",window=\"%s\","
                        "quantile=\"%s\"} %.9g\n",
                        path, phases[f], windows[w], quantiles[q][1],
                        json_real_value(json_object_get(s, quantiles[q][0])) / 1e3);
            }
    }
}

/* One sample name{worker="i",device="d"} x per inference worker. */
static void add_per_worker(text *t, const json_t *m, const char *key, const char *name,
                           const char *type, const char *help) {
    size_t i;
    const json_t *w;
    add_family(t, name, type, help);
    json_array_foreach(json_object_get(m, "per_worker"), i, w) {
        const json_t *device = json_object_get(w, "device");
        const json_t *v = json_object_get(w, key);
        add(t, "%s{worker=\"%zu\",device=\"", name, i);
        add_label_value(t, json_is_string(device) ? json_string_value(device) : "");
        add(t, "\"} %.17g\n", json_is_boolean(v) ? (double)json_is_true(v) : number(v));
    }
}

/* Each inference worker (one per device): what it did, and whether it takes batches. */
static void add_workers(text *t, const json_t *m) {
    add_per_worker(t, m, "batches", "totod_worker_batches_total", "counter",
                   "Model calls, by inference worker (device).");
    add_per_worker(t, m, "failed_batches", "totod_worker_failed_batches_total", "counter",
                   "Model calls that failed as a whole, by inference worker.");
    add_per_worker(t, m, "busy_seconds_total", "totod_worker_busy_seconds_total", "counter",
                   "Seconds inside model calls, by inference worker: its rate is the device's "
                   "utilization by totod.");
    add_per_worker(t, m, "in_rotation", "totod_worker_in_rotation", "gauge",
                   "1 while the worker takes batches; 0 once it left after failed calls.");
    add_per_worker(t, m, "busy", "totod_worker_busy", "gauge",
                   "1 while the worker is inside a model call.");
}

/* totod_info{...} 1: the labels say what is served; the value is always 1. */
static void add_info(text *t, const json_t *health) {
    const char *keys[5] = {"version", "model", "device", "dtype", "path"};
    add_family(t, "totod_info", "gauge", "What totod serves (the value is always 1).");
    add(t, "totod_info{");
    for (int i = 0; i < 5; i++) {
        const json_t *v = json_object_get(health, keys[i]);
        add(t, "%s=\"", keys[i]);
        add_label_value(t, json_is_string(v) ? json_string_value(v) : "");
        add(t, "\",");
    }
    add(t, "untrained=\"%s\"} 1\n",
        json_is_true(json_object_get(health, "untrained")) ? "true" : "false");
}

char *metrics_prom_render(const json_t *metrics, const json_t *health, size_t *len) {
    text t = {0};
    add_counters(&t, metrics);
    add_gauges(&t, metrics);
    add_workers(&t, metrics);
    add_windows(&t, metrics);
    add_shadow(&t, metrics);
    add_drift(&t, metrics);
    add_histograms(&t, metrics);
    add_info(&t, health);
    if (t.oom || !t.p) {
        free(t.p);
        return NULL;
    }
    *len = t.len;
    return t.p;
}
