/*
 * encoder.h - the answer encoder: one thread that turns a finished model
 * call's results into answers (JSON text) and hands them to the loop, while
 * the worker already runs the next batch.
 *
 * Encoding a batch of 32 seed answers takes the worker ~0.1-0.2 ms, during
 * which the GPU would sit idle with the next batch queued; with 64
 * closed-loop clients that is a tenth of every cycle. A worker hands a batch
 * over only when jobs are waiting for it (queue.h): idle, it encodes inline,
 * since a hand-off costs a thread wake-up (20-100 µs on a virtual machine).
 * Batches are encoded in the order they came.
 */
#ifndef TOTOD_ENCODER_H
#define TOTOD_ENCODER_H

#include <stdbool.h>

#include <uv.h>

#include "job.h"
#include "toto.h"

/* One model call's jobs and results, waiting to be answered. */
typedef struct answered_batch {
    struct answered_batch *next;
    job *jobs; /* linked by next, as batched */
    int n;
    toto_request *reqs;   /* n, or NULL (out of memory: every job fails) */
    toto_result *results; /* n, or NULL */
} answered_batch;

typedef void (*encoder_fn)(void *ctx, answered_batch *b); /* answers b and frees it */

typedef struct answer_encoder {
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t changed;
    answered_batch *head, *tail;
    int pending; /* batches pushed and not yet answered */
    bool stopping;
    bool started;
    encoder_fn encode;
    void *ctx;
} answer_encoder;

/* Starts the thread. 0, or -1 (nothing to free; answer inline then). */
int encoder_start(answer_encoder *e, encoder_fn encode, void *ctx);
/* Queues b for the thread (started encoders only). */
void encoder_push(answer_encoder *e, answered_batch *b);
/* True while a pushed batch is not answered yet: a batch answered inline
 * then would overtake it, so it goes to the encoder too (answers keep the
 * order of their batches). */
bool encoder_busy(answer_encoder *e);
/* Encodes what is queued, then ends the thread and frees the encoder. */
void encoder_stop(answer_encoder *e);

#endif
