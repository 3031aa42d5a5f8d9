/* worker.c - the inference thread (see worker.h). */
#include "worker.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrpc.h"
#include "log.h"

int worker_init(worker *w, int index, toto_model *model, job_queue *queue, completion_queue *done,
                const batch_limits *limits, const shadow_settings *shadow) {
    memset(w, 0, sizeof *w);
    w->index = index;
    w->model = model;
    w->queue = queue;
    w->done = done;
    w->limits = *limits;
    uv_mutex_lock(&queue->lock); /* poll_ns is the queue's, set before workers start */
    w->expect_completions = queue->poll_ns > 0;
    uv_mutex_unlock(&queue->lock);
    toto_model_get_info(model, &w->info);
    shadow_init(&w->shadow, w->info.compile.available && shadow ? shadow->every : 0,
                shadow ? shadow->fallback_after : 0, shadow ? shadow->idle_ms : 0,
                w->info.compile.compute_dtype);
#ifdef TOTO_FAULT_INJECTION
    const char *fails = getenv("TOTO_FAULT_COMPILED_FAILS");
    const char *stuck = getenv("TOTO_FAULT_STUCK_MS");
    w->fault_compiled_fails = fails ? atoi(fails) : 0;
    w->fault_stuck_ms = stuck ? atoi(stuck) : 0;
    /* TOTO_FAULT_BROKEN_WORKER=K: every model call of worker K fails (a broken GPU). */
    const char *broken = getenv("TOTO_FAULT_BROKEN_WORKER");
    w->fault_broken = broken && *broken && atoi(broken) == index;
#endif
    return uv_mutex_init(&w->stats_lock) ? -1 : 0;
}

int worker_warm(worker *w, double *ms, char *err, size_t err_len) {
    return model_warm(w->model, ms, err, err_len);
}

int model_warm(toto_model *m, double *ms, char *err, size_t err_len) {
    toto_model_info info;
    toto_model_get_info(m, &info);
    int p = info.config.patch_size > 0 ? info.config.patch_size : 16;
    int n = 2 * p;
    double *values = malloc((size_t)n * sizeof *values);
    if (!values) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++)
        values[i] = sin(i / 4.0);
    toto_request req = {.n_variates = 1, .n_steps = n, .values = values, .prediction_length = p};
    toto_result res;
    memset(&res, 0, sizeof res);
    uint64_t t0 = uv_hrtime();
    int rc = toto_forecast(m, &req, &res, 1, err, err_len);
    if (rc == TOTO_OK && res.status != TOTO_OK)
        snprintf(err, err_len, "%s", res.error);
    *ms = job_ms(t0, uv_hrtime());
    rc = rc == TOTO_OK ? res.status : rc;
    toto_result_free(&res);
    free(values);
    return rc == TOTO_OK ? 0 : -1;
}

static void answer_job(worker *w, job *j, const toto_result *res) {
    j->eager_path = strcmp(res->path, "eager") == 0;
    if (j->drift_scale && res->status == TOTO_OK && res->mean) { /* to remember (observe.h) */
        size_t cells = (size_t)res->n_variates * (size_t)res->prediction_length;
        j->drift_mean = malloc(cells * sizeof *j->drift_mean);
        if (j->drift_mean)
            memcpy(j->drift_mean, res->mean, cells * sizeof *j->drift_mean);
    }
    if (res->status != TOTO_OK) {
        proto_error perr;
        proto_error_from_toto(res->status, res->error, &perr);
        bool invalid = perr.code == PROTO_INVALID_PARAMS;
        if (!invalid)
            log_error("worker %d: model error on a request (series_id %s, %d x %d): %s", w->index,
                      json_is_string(j->series_id) ? json_string_value(j->series_id) : "-",
                      j->req.req.n_variates, j->req.req.n_steps, res->error);
        job_fail(j, invalid ? perr.code : RPC_MODEL_ERROR, perr.message,
                 invalid && perr.field[0] ? json_pack("{s:s}", "field", perr.field) : NULL);
        return;
    }
    rpc_timing timing = {.queue_ms = job_ms(j->received_ns, j->started_ns),
                         .batch_size = j->batch_size,
                         .model_ms = job_ms(j->started_ns, j->finished_ns)};
    char *text =
        rpc_forecast_result_text(j->id, j->bare, &j->req.req, res, &w->info, &timing, j->series_id);
    if (!text) {
        job_fail(j, RPC_MODEL_ERROR, "cannot encode the result (out of memory?)", NULL);
        return;
    }
    job_succeed(j, text);
}

/* Stats lock held: a model call ends; its time counts towards busy_ns (utilization). */
static void end_busy(worker_stats *st) {
    if (st->busy)
        st->busy_ns += uv_hrtime() - st->busy_since_ns;
    st->busy = false;
}

static void record_batch(worker *w, int n, bool failed) {
    int bucket = 0;
    while (bucket < WORKER_BATCH_BUCKETS - 1 && n > (1 << bucket))
        bucket++;
    uv_mutex_lock(&w->stats_lock);
    w->stats.batches++;
    w->stats.computed += (uint64_t)n;
    w->stats.batch_size_counts[bucket]++;
    w->stats.failed_batches += failed;
    w->stats.last_failed = failed;
    w->stats.failed_in_a_row = failed ? w->stats.failed_in_a_row + 1 : 0;
    end_busy(&w->stats);
    uv_mutex_unlock(&w->stats_lock);
}

/* Answers every job of b, hands them to the loop and frees b. Worker or encoder thread. */
static void answer_batch(void *ctx, answered_batch *b) {
    worker *w = ctx;
    int i = 0;
    for (job *j = b->jobs; j; j = j->next, i++) {
        if (!b->results)
            job_fail(j, RPC_MODEL_ERROR, "model error: out of memory", NULL);
        else
            answer_job(w, j, &b->results[i]);
        if (b->results)
            toto_result_free(&b->results[i]);
        proto_forecast_request_free(&j->req); /* the series is not needed any more */
    }
    completion_push(w->done, b->jobs);
    free(b->reqs);
    free(b->results);
    free(b);
}

/* The path the model serves now: "compiled" or "eager". */
static bool on_compiled_path(worker *w) {
    toto_model_info info;
    toto_model_get_info(w->model, &info);
    return strcmp(info.path, "compiled") == 0;
}

#ifdef TOTO_FAULT_INJECTION
/* An injected whole-batch failure, as toto_forecast() reports one: in err and every result. */
static int inject_failure(answered_batch *b, char *err, size_t err_len, const char *why) {
    snprintf(err, err_len, "%s", why);
    for (int i = 0; i < b->n; i++) {
        b->results[i].status = TOTO_EMODEL;
        snprintf(b->results[i].error, sizeof b->results[i].error, "%s", why);
    }
    return TOTO_EMODEL;
}
#endif

static int forecast_once(worker *w, answered_batch *b, char *err, size_t err_len) {
#ifdef TOTO_FAULT_INJECTION
    if (w->fault_stuck_ms > 0) { /* a hung call, once: the systemd watchdog must notice */
        uv_sleep((unsigned)w->fault_stuck_ms);
        w->fault_stuck_ms = 0;
    }
    if (w->fault_broken)
        return inject_failure(b, err, err_len,
                              "injected fault: this worker's device is broken (a test build)");
    if (w->fault_compiled_fails > 0 && on_compiled_path(w)) {
        w->fault_compiled_fails--;
        return inject_failure(b, err, err_len,
                              "injected fault: the compiled path failed (a test build)");
    }
#endif
    return toto_forecast(w->model, b->reqs, b->results, b->n, err, err_len);
}

/* The model is on the eager path now (the caller switched it): say why, everywhere. */
static void fall_back(worker *w, const char *why) {
    log_error("worker %d: the compiled path failed (%s): serving on the eager path from now on "
              "(method use_compiled brings it back)",
              w->index, why);
    uv_mutex_lock(&w->stats_lock);
    w->stats.fallbacks++;
    w->stats.on_fallback = true;
    snprintf(w->stats.fallback_reason, sizeof w->stats.fallback_reason, "%s", why);
    uv_mutex_unlock(&w->stats_lock);
}

/* A model error (not a refusal of the request itself) on result i, or the whole call. */
static bool failed_by_model(int rc, const toto_result *res) {
    return rc != TOTO_OK || res->status == TOTO_EMODEL || res->status == TOTO_ENOMEM;
}

/*
 * The batch on the model's path; if the compiled path fails (the whole call,
 * or a request with a model error), the eager path takes over: the model
 * stays on it (logged, health degraded, counted) until worker_use_compiled(),
 * and the batch runs again there, so no request fails for it.
 */
static int forecast_or_fall_back(worker *w, answered_batch *b, char *err, size_t err_len) {
    int rc = forecast_once(w, b, err, err_len);
    bool failed = false;
    for (int i = 0; i < b->n; i++)
        failed |= failed_by_model(rc, &b->results[i]);
    /* The path is looked up only after a failure: the answered batch needs nothing more. */
    char why[512];
    if (!failed || !on_compiled_path(w) ||
        toto_model_set_path(w->model, "eager", why, sizeof why) != TOTO_OK)
        return rc;
    snprintf(why, sizeof why, "%s", err);
    for (int i = 0; rc == TOTO_OK && i < b->n; i++)
        if (failed_by_model(rc, &b->results[i])) {
            snprintf(why, sizeof why, "%s", b->results[i].error);
            break;
        }
    fall_back(w, why);
    for (int i = 0; i < b->n; i++) {
        toto_result_free(&b->results[i]);
        memset(&b->results[i], 0, sizeof b->results[i]);
    }
    return forecast_once(w, b, err, err_len);
}

/*
 * One model call for the n jobs of list. Returns them with their results,
 * still to be answered (answer_batch()); NULL when there was no memory even
 * for that, after answering every job with the error.
 */
static answered_batch *run_batch(worker *w, job *list, int n) {
    answered_batch *b = calloc(1, sizeof *b);
    if (!b) {
        for (job *j = list; j; j = j->next) {
            job_fail(j, RPC_MODEL_ERROR, "model error: out of memory", NULL);
            proto_forecast_request_free(&j->req);
        }
        completion_push(w->done, list);
        record_batch(w, n, true);
        return NULL;
    }
    *b = (answered_batch){.jobs = list,
                          .n = n,
                          .reqs = calloc((size_t)n, sizeof *b->reqs),
                          .results = calloc((size_t)n, sizeof *b->results)};
    char err[512] = "out of memory";
    int rc = TOTO_ENOMEM, i = 0;
    uint64_t t0 = uv_hrtime();
    uv_mutex_lock(&w->stats_lock);
    w->stats.busy = true;
    w->stats.busy_since_ns = t0;
    uv_mutex_unlock(&w->stats_lock);
    for (job *j = list; j; j = j->next, i++) {
        j->started_ns = t0;
        j->batch_size = n;
        if (b->reqs)
            b->reqs[i] = j->req.req;
    }
    if (b->reqs && b->results)
        rc = forecast_or_fall_back(w, b, err, sizeof err);
    if (w->expect_completions)
        completion_expect(w->done); /* the loop wakes while the answers are encoded */
    uint64_t t1 = uv_hrtime();
    for (job *j = list; j; j = j->next)
        j->finished_ns = t1;
    if (rc != TOTO_OK)
        log_error("worker %d: batch of %d failed: %s", w->index, n, err);
    for (int k = 0; b->results && k < n; k++)
        if (b->results[k].status == TOTO_OK && strcmp(b->results[k].path, "compiled") == 0)
            shadow_offer(&w->shadow, &b->reqs[k], w->info.config.patch_size);
    if (!b->reqs) { /* no results without requests: every job fails */
        free(b->results);
        b->results = NULL;
    }
    record_batch(w, n, rc != TOTO_OK);
    return b;
}

static void answer_expired(worker *w, job *list) {
    uint64_t now = uv_hrtime();
    uint64_t n = 0;
    char message[160];
    for (job *j = list; j; j = j->next, n++) {
        j->started_ns = j->finished_ns = now;
        snprintf(message, sizeof message,
                 "deadline exceeded: waited %.1f ms in the queue, timeout_ms was %lld",
                 job_ms(j->received_ns, now), (long long)j->timeout_ms);
        job_fail(j, RPC_DEADLINE_EXCEEDED, message,
                 json_pack("{s:I}", "timeout_ms", (json_int_t)j->timeout_ms));
    }
    uv_mutex_lock(&w->stats_lock);
    w->stats.expired += n;
    uv_mutex_unlock(&w->stats_lock);
}

/* One shadow check, now that nothing is queued; N scores over tolerance in a row: fall back. */
static void run_shadow(worker *w) {
    shadow_score sc;
    char err[256], why[300];
    if (!on_compiled_path(w))
        return; /* on the eager path already */
    uv_mutex_lock(&w->stats_lock);
    w->stats.busy = true; /* the systemd watchdog watches these calls too */
    w->stats.busy_since_ns = uv_hrtime();
    uv_mutex_unlock(&w->stats_lock);
    int rc = shadow_run(&w->shadow, w->model, &sc, err, sizeof err);
    uv_mutex_lock(&w->stats_lock);
    end_busy(&w->stats);
    uv_mutex_unlock(&w->stats_lock);
    if (rc)
        return; /* the check could not run: nothing to score */
    uv_mutex_lock(&w->stats_lock);
    w->stats.shadow_checks++;
    w->stats.shadow_last = sc.divergence;
    if (!(sc.divergence <= w->stats.shadow_max))
        w->stats.shadow_max = sc.divergence;
    w->stats.shadow_over_in_a_row = sc.over ? w->stats.shadow_over_in_a_row + 1 : 0;
    int in_a_row = w->stats.shadow_over_in_a_row;
    uv_mutex_unlock(&w->stats_lock);
    if (in_a_row < w->shadow.fallback_after || w->shadow.fallback_after <= 0)
        return;
    snprintf(why, sizeof why,
             "shadow checks: compiled and eager means differed by %.3g of the context's spread, "
             "over the tolerance %.0e, %d times in a row",
             sc.divergence, w->shadow.tolerance, in_a_row);
    if (toto_model_set_path(w->model, "eager", err, sizeof err) == TOTO_OK)
        fall_back(w, why);
}

/* Runs a batch the pop gave (waited: the refill target it was popped with) and answers it. */
static void serve_batch(worker *w, job *batch, int n, int64_t waited) {
    answered_batch *b = run_batch(w, batch, n);
    /* Now that the next batch has queued, but before these answers go out:
     * none of their clients can be back yet. */
    int64_t target = b ? queue_refill_target(w->queue, &w->limits, batch) : 0;
    /* With jobs waiting, the next model call starts while this batch is encoded. */
    if (b && w->encoder.started && (queue_depth(w->queue) > 0 || encoder_busy(&w->encoder))) {
        uv_mutex_lock(&w->stats_lock);
        w->stats.encoded_async++;
        uv_mutex_unlock(&w->stats_lock);
        encoder_push(&w->encoder, b);
    } else if (b) {
        answer_batch(w, b);
    }
    refill_next(&w->refill, waited, n, target, uv_hrtime());
}

/* Between batches: a model offered by a reload replaces the current one. */
static void take_offered_model(worker *w) {
    uv_mutex_lock(&w->stats_lock);
    toto_model *next = w->next_model;
    w->next_model = NULL;
    uv_mutex_unlock(&w->stats_lock);
    if (!next)
        return;
    while (encoder_busy(&w->encoder)) /* its answers name the current model */
        uv_sleep(1);
    toto_model *old = w->model;
    __atomic_store_n(&w->model, next, __ATOMIC_RELEASE);
    toto_model_get_info(next, &w->info);
    shadow_check was = w->shadow;
    shadow_free(&w->shadow);
    shadow_init(&w->shadow, w->info.compile.available ? was.every : 0, was.fallback_after,
                was.idle_ms, w->info.compile.compute_dtype);
    uv_mutex_lock(&w->stats_lock);
    w->retired = old;
    w->stats.on_fallback = false; /* a new model starts on its own path */
    w->stats.fallback_reason[0] = '\0';
    w->stats.shadow_over_in_a_row = 0;
    uv_mutex_unlock(&w->stats_lock);
    log_info("worker %d: serving on the reloaded model %s (%s, path %s)", w->index, w->info.name,
             w->info.device, w->info.path);
    uv_async_send(w->done->async); /* the loop frees the old model */
}

/*
 * After WORKER_FAILS_TO_LEAVE failed model calls in a row (each answered with
 * its error), a worker leaves the rotation if another one still serves: its
 * GPU is likely broken, and the others take the queue. The last one never
 * leaves (the daemon must answer, even errors). True: leave now.
 */
static bool leave_rotation(worker *w) {
    uv_mutex_lock(&w->stats_lock);
    int fails = w->stats.failed_in_a_row;
    uv_mutex_unlock(&w->stats_lock);
    if (!w->in_rotation || fails < WORKER_FAILS_TO_LEAVE)
        return false;
    int left = __atomic_load_n(w->in_rotation, __ATOMIC_ACQUIRE);
    while (left > 1 && !__atomic_compare_exchange_n(w->in_rotation, &left, left - 1, false,
                                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        ;
    if (left <= 1)
        return false;
    uv_mutex_lock(&w->stats_lock);
    w->stats.out_of_rotation = true;
    uv_mutex_unlock(&w->stats_lock);
    log_error("worker %d (%s): %d model calls in a row failed: out of rotation; %d worker(s) "
              "serve on",
              w->index, w->info.device, fails, left - 1);
    return true;
}

static void worker_main(void *arg) {
    worker *w = arg;
    job *batch, *expired;
    for (;;) {
        const uint64_t kicks = queue_kicks(w->queue); /* before the offer is looked at */
        take_offered_model(w);
        /* Only in a lull: a check waits for nothing queued for idle_ms, so that
         * closed-loop clients between two requests do not wait for it. */
        if (w->shadow.pending && queue_idle_for(w->queue, (uint64_t)w->shadow.idle_ms * 1000000u))
            run_shadow(w);
        const int64_t waited = w->refill.target;
        int n = queue_pop_batch_since(w->queue, &w->limits, &w->refill, kicks, &batch, &expired);
        if (n < 0)
            break;
        if (expired) {
            answer_expired(w, expired);
            completion_push(w->done, expired);
        }
        if (n > 0)
            serve_batch(w, batch, n, waited);
        if (n > 0 && leave_rotation(w))
            break;
    }
    encoder_stop(&w->encoder); /* answers what it holds first */
    shadow_free(&w->shadow);
}

int worker_start(worker *w) {
    /* Without its encoder a worker answers every batch itself. */
    if (encoder_start(&w->encoder, answer_batch, w))
        log_warning("worker %d: no answer encoder thread; answers are encoded inline", w->index);
    if (uv_thread_create(&w->thread, worker_main, w)) {
        encoder_stop(&w->encoder);
        return -1;
    }
    w->started = true;
    return 0;
}

toto_model *worker_model(worker *w) {
    return __atomic_load_n(&w->model, __ATOMIC_ACQUIRE);
}

bool worker_offer_model(worker *w, toto_model *m) {
    uv_mutex_lock(&w->stats_lock);
    bool free_slot = !w->next_model && !w->retired;
    if (free_slot)
        w->next_model = m;
    uv_mutex_unlock(&w->stats_lock);
    if (free_slot)
        queue_kick(w->queue);
    return free_slot;
}

toto_model *worker_take_retired(worker *w) {
    uv_mutex_lock(&w->stats_lock);
    toto_model *old = w->retired;
    w->retired = NULL;
    uv_mutex_unlock(&w->stats_lock);
    return old;
}

void worker_destroy(worker *w) {
    if (w->started)
        uv_thread_join(&w->thread);
    w->started = false;
    toto_model_free(w->model);
    toto_model_free(w->next_model);
    toto_model_free(w->retired);
    w->model = w->next_model = w->retired = NULL;
    uv_mutex_destroy(&w->stats_lock);
}

int worker_use_compiled(worker *w, char *err, size_t err_len) {
    if (toto_model_set_path(worker_model(w), "compiled", err, err_len) != TOTO_OK)
        return -1;
    uv_mutex_lock(&w->stats_lock);
    w->stats.on_fallback = false;
    w->stats.fallback_reason[0] = '\0';
    uv_mutex_unlock(&w->stats_lock);
    log_info("worker %d: back on the compiled path", w->index);
    return 0;
}

void worker_get_stats(worker *w, worker_stats *out) {
    uv_mutex_lock(&w->stats_lock);
    *out = w->stats;
    uv_mutex_unlock(&w->stats_lock);
}
