/*
 * queue.h - the bounded request queue between the loop and the worker(s),
 * and the completion queue that carries answered jobs back to the loop.
 *
 * The request queue is FIFO. A worker takes a batch: the oldest job, then
 * more in order while they fit the token budget and the count cap, waiting
 * up to the batch delay (counted from the oldest job's arrival) for the
 * batch to fill. Jobs whose deadline has passed are handed back separately,
 * never to be computed. Several workers may share one queue.
 */
#ifndef TOTOD_QUEUE_H
#define TOTOD_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "job.h"

typedef struct job_queue {
    uv_mutex_t lock;
    uv_cond_t changed; /* a job arrived, or the queue closed */
    job *head, *tail;
    int64_t count, limit, tokens;
    bool closed;
} job_queue;

typedef struct batch_limits {
    int64_t max_tokens;
    int64_t max_size;
    uint64_t delay_ns;
} batch_limits;

enum { QUEUE_OK = 0, QUEUE_FULL = 1, QUEUE_CLOSED = 2 };

int queue_init(job_queue *q, int64_t limit);
void queue_destroy(job_queue *q); /* the queue must be empty */

/* Adds j at the tail; QUEUE_FULL or QUEUE_CLOSED leave j with the caller. */
int queue_push(job_queue *q, job *j);
int64_t queue_depth(job_queue *q);

/*
 * Blocks until a batch is ready. Returns its size (>= 0; 0 when every job
 * taken had expired) with the batch in *batch and expired jobs in *expired
 * (both lists linked by next), or -1 once the queue is closed.
 */
int queue_pop_batch(job_queue *q, const batch_limits *lim, job **batch, job **expired);

/* Removes and returns every queued job (a list), e.g. to answer them on shutdown. */
job *queue_take_all(job_queue *q);

/* Wakes the workers; queue_pop_batch() returns -1 from now on. */
void queue_close(job_queue *q);

/* Answered jobs on their way back to the loop, which drains it on async. */
typedef struct completion_queue {
    uv_mutex_t lock;
    job *head, *tail;
    uv_async_t *async;
} completion_queue;

int completion_init(completion_queue *c, uv_async_t *async);
void completion_destroy(completion_queue *c);
/* Appends a list of jobs and wakes the loop. Any thread. */
void completion_push(completion_queue *c, job *list);
/* Takes everything pushed so far (a list). Loop thread. */
job *completion_take(completion_queue *c);

#endif
