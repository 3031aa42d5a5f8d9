/* methods.c - health, info and metrics results (see methods.h). */
#include "methods.h"

#include <string.h>

#include "observe.h"
#include "toto.h"

static double uptime_s(server *s) {
    return (double)(uv_hrtime() - s->started_ns) / 1e9;
}

/* All workers' statistics added up; *any_failed: some worker's last batch failed. */
static void worker_totals(server *s, worker_stats *sum, bool *any_failed, int *busy) {
    worker_stats one;
    memset(sum, 0, sizeof *sum);
    *any_failed = false;
    *busy = 0;
    for (int i = 0; i < s->n_workers; i++) {
        worker_get_stats(&s->workers[i], &one);
        sum->batches += one.batches;
        sum->computed += one.computed;
        sum->expired += one.expired;
        sum->failed_batches += one.failed_batches;
        sum->encoded_async += one.encoded_async;
        sum->fallbacks += one.fallbacks;
        sum->shadow_checks += one.shadow_checks;
        sum->shadow_last = one.shadow_last;
        sum->shadow_max = one.shadow_max > sum->shadow_max ? one.shadow_max : sum->shadow_max;
        sum->shadow_over_in_a_row += one.shadow_over_in_a_row;
        if (one.on_fallback && !sum->on_fallback) {
            sum->on_fallback = true;
            snprintf(sum->fallback_reason, sizeof sum->fallback_reason, "%s", one.fallback_reason);
        }
        for (int b = 0; b < WORKER_BATCH_BUCKETS; b++)
            sum->batch_size_counts[b] += one.batch_size_counts[b];
        *any_failed |= one.last_failed && !one.out_of_rotation;
        *busy += one.busy;
    }
}

/* A model call this long is reported in health (a GPU may hang). */
#define WORKER_STUCK_NS (30ull * 1000000000ull)

/* Each worker (one per device): what it serves on and whether it takes batches. */
static json_t *per_worker_json(server *s) {
    json_t *all = json_array();
    for (int i = 0; all && i < s->n_workers; i++) {
        worker_stats st;
        toto_model_info info;
        worker_get_stats(&s->workers[i], &st);
        toto_model_get_info(worker_model(&s->workers[i]), &info);
        double busy_s = st.busy ? (double)(uv_hrtime() - st.busy_since_ns) / 1e9 : 0;
        /* Its rate is the device's utilization by totod: the call under way counts too. */
        double busy_total_s = (double)st.busy_ns / 1e9 + busy_s;
        json_array_append_new(
            all, json_pack("{s:i, s:s, s:s, s:b, s:b, s:f, s:f, s:I, s:I, s:i, s:b}", "index", i,
                           "device", info.device, "path", info.path, "in_rotation",
                           !st.out_of_rotation, "busy", st.busy, "busy_s", busy_s,
                           "busy_seconds_total", busy_total_s, "batches", (json_int_t)st.batches,
                           "failed_batches", (json_int_t)st.failed_batches, "failed_in_a_row",
                           st.failed_in_a_row, "on_fallback", st.on_fallback));
    }
    return all;
}

/* Reasons of single workers: out of rotation, or in one model call for long. */
static void worker_reasons(server *s, json_t *reasons) {
    char why[256];
    int serving = 0;
    for (int i = 0; i < s->n_workers; i++) {
        worker_stats st;
        worker_get_stats(&s->workers[i], &st);
        serving += !st.out_of_rotation;
    }
    for (int i = 0; i < s->n_workers; i++) {
        worker_stats st;
        worker_get_stats(&s->workers[i], &st);
        uint64_t busy_ns = st.busy ? uv_hrtime() - st.busy_since_ns : 0;
        if (st.out_of_rotation)
            snprintf(why, sizeof why,
                     "worker %d (%s) out of rotation after %d failed model calls in a row; %d of "
                     "%d worker(s) serve",
                     i, s->workers[i].info.device, WORKER_FAILS_TO_LEAVE, serving, s->n_workers);
        else if (busy_ns > WORKER_STUCK_NS)
            snprintf(why, sizeof why, "worker %d (%s) has been in one model call for %.0f s", i,
                     s->workers[i].info.device, (double)busy_ns / 1e9);
        else
            continue;
        json_array_append_new(reasons, json_string(why));
    }
}

/* An objective judged on fewer forecasts than this would flap. */
#define LATENCY_OBJECTIVE_MIN_COUNT 10

/* Why health is degraded, one reason a line in reasons (a JSON array), or nothing. */
static void degraded_reasons(server *s, json_t *reasons) {
    worker_stats sum;
    bool failed;
    int busy;
    char why[256];
    worker_totals(s, &sum, &failed, &busy);
    if (s->state != SERVER_SERVING)
        json_array_append_new(reasons, json_string("shutting down"));
    if (failed)
        json_array_append_new(reasons, json_string("the last model call failed"));
    if (sum.on_fallback) {
        snprintf(why, sizeof why,
                 "serving on the eager path since the compiled path failed (%.150s); method "
                 "use_compiled brings it back",
                 sum.fallback_reason);
        json_array_append_new(reasons, json_string(why));
    }
    if (queue_depth(&s->queue) * 10 >= s->queue.limit * 9) {
        snprintf(why, sizeof why, "queue at %lld of queue-limit %lld",
                 (long long)queue_depth(&s->queue), (long long)s->queue.limit);
        json_array_append_new(reasons, json_string(why));
    }
    if (observe_drift_reason(s, why, sizeof why))
        json_array_append_new(reasons, json_string(why));
    worker_reasons(s, reasons);
    const int64_t objective = s->cfg->latency_objective_ms;
    for (int p = 0; objective > 0 && p < LAT_PATHS; p++) {
        latency_summary l = latency_summarize(s->latency, p, LAT_TOTAL, uv_hrtime(), 60);
        if (l.count >= LATENCY_OBJECTIVE_MIN_COUNT && l.p99 > (double)objective) {
            snprintf(why, sizeof why,
                     "p99 latency %.3g ms on the %s path over the last minute (%llu forecasts) "
                     "is above latency-objective-ms %lld",
                     l.p99, p == LAT_EAGER ? "eager" : "compiled", (unsigned long long)l.count,
                     (long long)objective);
            json_array_append_new(reasons, json_string(why));
        }
    }
}

/* starting, degraded (reasons not empty) or ok. */
static const char *status_of(server *s, const json_t *reasons) {
    if (s->n_workers == 0)
        return "starting";
    /* Degraded: still answering, but a client should expect refusals, errors or delays. */
    return reasons && json_array_size(reasons) > 0 ? "degraded" : "ok";
}

json_t *methods_health(server *s) {
    if (s->n_workers > 0) /* the path may have changed (a fallback, use_compiled) */
        toto_model_get_info(worker_model(&s->workers[0]), &s->info);
    json_t *reasons = json_array();
    if (reasons && s->n_workers > 0)
        degraded_reasons(s, reasons);
    const char *status = status_of(s, reasons);
    return json_pack("{s:s, s:o, s:o, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:s, s:b, s:b, s:o}",
                     "status", status, "reasons", reasons ? reasons : json_array(),
                     "latency_windows", latency_to_json(s->latency, uv_hrtime()), "model",
                     s->info.name, "device", s->info.device, "dtype", s->info.dtype, "path",
                     s->info.path, "queue_depth", (json_int_t)queue_depth(&s->queue), "inflight",
                     (json_int_t)s->outstanding, "connections", (json_int_t)s->n_conns, "uptime_s",
                     uptime_s(s), "version", TOTO_VERSION, "untrained", s->cfg->untrained,
                     "shutting_down", s->state != SERVER_SERVING, "per_worker", per_worker_json(s));
}

json_t *methods_health_public(server *s) {
    json_t *h = methods_health(s);
    json_t *out =
        h ? json_pack("{s:O, s:O, s:O, s:O}", "status", json_object_get(h, "status"),
                      "shutting_down", json_object_get(h, "shutting_down"), "uptime_s",
                      json_object_get(h, "uptime_s"), "version", json_object_get(h, "version"))
          : NULL;
    json_decref(h);
    return out;
}

/* The compiled path's plan and counters, read now (they move as forecasts run). */
static json_t *compile_json(server *s) {
    toto_model_info info;
    if (s->n_workers == 0)
        return json_null();
    toto_model_get_info(worker_model(&s->workers[0]), &info);
    const toto_compile_stats *c = &info.compile;
    json_t *out = json_pack(
        "{s:b, s:s, s:b, s:b, s:s, s:s, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "available",
        c->available, "path", info.path, "graphs", c->graphs, "autotuned", c->autotuned, "mode",
        c->mode, "compute_dtype", c->compute_dtype, "buckets", (json_int_t)c->buckets, "warmup_ms",
        c->warmup_ms, "pool_bytes", (json_int_t)c->pool_bytes, "captures_after_warmup",
        (json_int_t)c->captures_after_warmup, "runs", (json_int_t)c->runs, "split_runs",
        (json_int_t)c->split_runs, "eager_fallbacks", (json_int_t)c->eager_fallbacks,
        "path_buckets", (json_int_t)c->path_buckets, "path_runs", (json_int_t)c->path_runs);
    if (c->autotuned && out)
        json_object_set_new(out, "gemm",
                            json_pack("{s:s, s:f, s:f}", "backend", c->gemm_backend, "cublas_ms",
                                      c->gemm_ms[0], "cublaslt_ms", c->gemm_ms[1]));
    return out;
}

static json_t *model_json(server *s) {
    const toto_config *a = &s->info.config;
    const totod_config *cfg = s->cfg;
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:I, s:b, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:b, s:i, s:b, s:f},"
        " s:{s:I, s:I, s:I, s:I}}",
        "name", s->info.name, "device", s->info.device, "dtype", s->info.dtype, "path",
        s->info.path, "num_params", (json_int_t)s->info.num_params, "untrained", cfg->untrained,
        "config", "patch_size", a->patch_size, "embed_dim", a->embed_dim, "num_layers",
        a->num_layers, "num_heads", a->num_heads, "mlp_hidden_dim", a->mlp_hidden_dim,
        "spacewise_every_n_layers", a->spacewise_every_n_layers, "spacewise_first",
        a->spacewise_first, "k_components", a->k_components, "stabilize_with_global",
        a->stabilize_with_global, "scale_factor_exponent", a->scale_factor_exponent, "limits",
        "max_prediction_length", (json_int_t)cfg->max_prediction_length, "max_num_samples",
        (json_int_t)cfg->max_num_samples, "max_context_length", (json_int_t)cfg->max_context_length,
        "max_variates", (json_int_t)cfg->max_variates);
}

json_t *methods_info(server *s) {
    return json_pack("{s:s, s:o, s:o, s:i, s:o, s:o, s:o}", "version", TOTO_VERSION, "model",
                     model_json(s), "compile", compile_json(s), "workers", s->n_workers, "config",
                     config_to_json(s->cfg, false), "latency_windows",
                     latency_to_json(s->latency, uv_hrtime()), "per_worker", per_worker_json(s));
}

static json_t *batch_size_json(const worker_stats *w) {
    json_t *buckets = json_array();
    uint64_t cumulative = 0;
    for (int i = 0; buckets && i < WORKER_BATCH_BUCKETS; i++) {
        cumulative += w->batch_size_counts[i];
        json_t *le =
            i < WORKER_BATCH_BUCKETS - 1 ? json_integer((json_int_t)1 << i) : json_string("+Inf");
        json_array_append_new(buckets,
                              json_pack("{s:o, s:I}", "le", le, "count", (json_int_t)cumulative));
    }
    return json_pack("{s:o, s:I, s:I}", "buckets", buckets, "count", (json_int_t)w->batches, "sum",
                     (json_int_t)w->computed);
}

json_t *methods_metrics(server *s) {
    worker_stats sum;
    bool failed;
    int busy;
    worker_totals(s, &sum, &failed, &busy);
    s->metrics.answers_written_off_loop = io_threads_answers_written(&s->io);
    json_t *m = metrics_to_json(&s->metrics);
    if (!m)
        return NULL;
    json_t *more = json_pack(
        "{s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:o, s:I, s:I, s:I, s:i, s:f, s:o, s:o}", "batches",
        (json_int_t)sum.batches, "batches_encoded_async", (json_int_t)sum.encoded_async,
        "fallbacks", (json_int_t)sum.fallbacks, "drift", drift_to_json(s->drift), "shadow",
        json_pack("{s:I, s:f, s:f, s:i}", "checks", (json_int_t)sum.shadow_checks, "last",
                  sum.shadow_last, "max", sum.shadow_max, "over_in_a_row",
                  sum.shadow_over_in_a_row),
        "failed_batches", (json_int_t)sum.failed_batches, "expired", (json_int_t)sum.expired,
        "batch_size", batch_size_json(&sum), "queue_depth", (json_int_t)queue_depth(&s->queue),
        "inflight", (json_int_t)s->outstanding, "connections_open", (json_int_t)s->n_conns,
        "workers_busy", busy, "uptime_s", uptime_s(s), "compile", compile_json(s),
        "latency_windows", latency_to_json(s->latency, uv_hrtime()));
    if (more)
        json_object_set_new(more, "per_worker", per_worker_json(s));
    if (!more || json_object_update(m, more)) {
        json_decref(m);
        m = NULL;
    }
    json_decref(more);
    return m;
}

json_t *methods_use_compiled(server *s, char *err, size_t err_len) {
    for (int i = 0; i < s->n_workers; i++)
        if (worker_use_compiled(&s->workers[i], err, err_len))
            return NULL;
    toto_model_get_info(worker_model(&s->workers[0]), &s->info);
    return json_pack("{s:s}", "path", s->info.path);
}
