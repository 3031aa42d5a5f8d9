/*
 * worker.h - an inference worker: one thread that owns one toto_model, takes
 * batches from a job_queue, runs one toto_forecast() per batch and pushes
 * the answered jobs to a completion_queue.
 *
 * A worker is a plain struct, not a global: several (one per GPU) may share
 * one request queue and one completion queue.
 */
#ifndef TOTOD_WORKER_H
#define TOTOD_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "encoder.h"
#include "queue.h"
#include "shadow.h"
#include "toto.h"

/* Batch-size histogram buckets: 1, 2, 4, ..., 256, then +Inf. */
#define WORKER_BATCH_BUCKETS 10

typedef struct worker_stats {
    uint64_t batches;
    uint64_t computed; /* jobs that went through the model */
    uint64_t expired;  /* jobs answered deadline exceeded */
    uint64_t failed_batches;
    uint64_t encoded_async; /* batches answered by the encoder thread, not the worker */
    uint64_t fallbacks;     /* times the compiled path failed and the eager path took over */
    bool on_fallback;       /* serving on the eager path since the compiled path failed */
    char fallback_reason[256];
    uint64_t shadow_checks;                           /* compiled against eager (shadow.h) */
    double shadow_last;                               /* the latest divergence */
    double shadow_max;                                /* the largest since start */
    int shadow_over_in_a_row;                         /* scores above tolerance in a row now */
    uint64_t batch_size_counts[WORKER_BATCH_BUCKETS]; /* not cumulative */
    bool busy;                                        /* inside toto_forecast() now */
    uint64_t busy_since_ns;                           /* when that call began */
    uint64_t busy_ns;     /* inside model calls (forecasts and shadow checks), ended ones */
    bool last_failed;     /* the latest model call failed as a whole */
    int failed_in_a_row;  /* model calls failed as a whole, in a row */
    bool out_of_rotation; /* stopped taking batches (WORKER_FAILS_TO_LEAVE); see in_rotation */
} worker_stats;

/* With other workers serving, this many failed model calls in a row take a
 * worker (its GPU) out of rotation: it takes no more batches. */
#define WORKER_FAILS_TO_LEAVE 3

typedef struct worker {
    int index;
    toto_model *model;      /* owned; forecasts on this worker's thread once started; the loop
                             * reads it through worker_model() (validation, info) */
    toto_model *next_model; /* worker_offer_model(): taken at the next batch boundary */
    toto_model *retired;    /* the model it replaced, for the loop to free */
    toto_model_info info;
    job_queue *queue;
    completion_queue *done;
    batch_limits limits;
    batch_refill refill;      /* this worker's previous batch (queue.h) */
    bool expect_completions;  /* hand-off polling is on: wake the loop before encoding */
    answer_encoder encoder;   /* encodes a batch while the next one runs (encoder.h) */
    int fault_compiled_fails; /* test builds (TOTO_FAULT_INJECTION): model calls to fail */
    int fault_stuck_ms;       /* test builds: the next model call hangs this long first */
    bool fault_broken;        /* test builds: every model call fails (TOTO_FAULT_BROKEN_WORKER) */
    shadow_check shadow;      /* worker thread only */
    int *in_rotation; /* workers taking batches, shared by all (atomic); NULL: never leaves */
    uv_thread_t thread;
    bool started;
    uv_mutex_t stats_lock;
    worker_stats stats;
} worker;

/* Takes model. Returns 0 or -1. */
/* Shadow checks (shadow.h): one in every compiled forecasts (0: none), and
 * fallback_after scores in a row over tolerance make the worker fall back. */
typedef struct shadow_settings {
    int every, fallback_after, idle_ms;
} shadow_settings;

int worker_init(worker *w, int index, toto_model *model, job_queue *queue, completion_queue *done,
                const batch_limits *limits, const shadow_settings *shadow);
/* Runs one small forecast before serving, on the calling thread. 0 or -1 (err set). */
int worker_warm(worker *w, double *ms, char *err, size_t err_len);
/* The same for a model not yet given to a worker (a reload). */
int model_warm(toto_model *m, double *ms, char *err, size_t err_len);
/* The model forecasts run on now (loop thread; a reload may swap it). */
toto_model *worker_model(worker *w);
/*
 * Reload (loop thread): the worker takes m at its next batch boundary, after
 * the answers being encoded are out, and serves on it from then on; the
 * model it replaces is handed back by worker_take_retired() (loop thread:
 * the loop frees it, so that no loop callback can still be reading it).
 * One offer at a time: false while one is still pending or not freed.
 */
bool worker_offer_model(worker *w, toto_model *m);
toto_model *worker_take_retired(worker *w);
int worker_start(worker *w);
/* Waits for the thread to end (after queue_close()), then frees the model. */
void worker_destroy(worker *w);
void worker_get_stats(worker *w, worker_stats *out);
/* After a fallback: the compiled path serves again. 0, or -1 (err: there is none). Any thread. */
int worker_use_compiled(worker *w, char *err, size_t err_len);

#endif
