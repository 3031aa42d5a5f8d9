/*
 * queue.h - the bounded request queue between the loop and the worker(s),
 * and the completion queue that carries answered jobs back to the loop.
 *
 * The request queue is fair across connections: each connection (job->conn,
 * compared as a pointer, never dereferenced) has its own FIFO sub-queue, a
 * "flow", and the flows with queued jobs form a ring. A worker takes a
 * batch round-robin: the head of one flow, then the head of the next, and
 * so on around the ring, while the jobs fit the token budget and the count
 * cap; the next batch goes on where this one stopped. So a connection that
 * pipelines a thousand requests gets one job in each turn of the ring like
 * any other, and a newcomer waits for at most one job per busy connection
 * instead of behind all of them. A connection's own jobs keep their order.
 * A flow that becomes non-empty joins the ring at the end of the current
 * turn. The batch delay is counted from the oldest queued job's arrival.
 *
 * Limits: `limit` bounds the queued jobs of all connections together. Jobs
 * whose deadline has passed, anywhere in the queue, are handed back
 * separately by the next queue_pop_batch(), never to be computed. Several
 * workers may share one queue.
 */
#ifndef TOTOD_QUEUE_H
#define TOTOD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "job.h"

/* One connection's queued jobs (private to queue.c). */
typedef struct job_flow job_flow;

typedef struct job_queue {
    uv_mutex_t lock;
    uv_cond_t changed; /* a job arrived, or the queue closed */
    job_flow *ring;    /* the flow whose head goes next; NULL when the queue is empty */
    job_flow **table;  /* owner -> flow for the flows in the ring; table_size buckets */
    size_t table_size; /* a power of two */
    size_t n_flows;    /* flows in the ring */
    job_flow *spare;   /* flows no longer in the ring, kept for reuse */
    int64_t count, limit, tokens;
    uint64_t next_deadline_ns; /* no queued job expires before this; 0: none has a deadline */
    bool closed;
    uint64_t kicks; /* queue_kick()s so far: every worker waiting then returns, even empty */
    /* Hand-off polling (queue_expect): how long, whether a job is expected,
     * idle workers asleep, and a push counter read without the lock. */
    uint64_t poll_ns;
    bool expected;
    int sleepers;
    uint64_t pushes;
    /* A push wakes the workers waiting for a batch to fill only once count or
     * tokens reach the least that one of them waits for (each registers it
     * before it sleeps; a wake resets both). Waking every waiting worker on
     * every push cost the pushing loop thread a wake-up per job, mostly for
     * workers that went back to sleep: 1-5% of two GPUs' forecasts/s at 256
     * clients (docs/PERFORMANCE.md). Workers asleep for lack of any job
     * (sleepers) are woken by every push. */
    int64_t wake_count, wake_tokens;
} job_queue;

typedef struct batch_limits {
    int64_t max_tokens;
    int64_t max_size;
    uint64_t delay_ns;  /* from the oldest queued job's arrival */
    uint64_t refill_ns; /* from the end of the caller's previous batch (batch_refill) */
} batch_limits;

/*
 * Refill: closed-loop clients (each sends its next request when it has the
 * answer to the last) keep sharing a batch only if the worker waits for the
 * ones it just answered. Without it, the jobs that queued during a batch go
 * at once, the answered clients' next requests queue behind them, and two
 * half batches alternate, while a batch of 32 costs the model as much as one
 * of 64 (the compiled path's buckets are powers of 4). So when a batch ends
 * with k jobs queued, having answered e jobs of connections that have
 * nothing queued (those may come back; a connection with jobs still queued
 * is pipelining and will not wait for its answers), the next batch waits,
 * for at most refill_ns from that end, until k + e jobs are queued (capped
 * by the limits). A lone client's expected job is the one that arrives:
 * it waits for nothing.
 */
typedef struct batch_refill {
    int64_t target;  /* jobs the next batch waits for; 0: none */
    uint64_t end_ns; /* when the previous batch's answers were handed back */
    int skip;        /* batches left that do not wait (after a refill that timed out) */
    int backoff;     /* the skip after the next timeout; 0 counts as 1 */
} batch_refill;

/*
 * Refill pays only when the clients come back within the window: many
 * clients behind one loop thread take longer to turn around than the model
 * takes to run half of them, and then waiting only idles the model. So a
 * refill that timed out (the pop gave fewer than its target) is not waited
 * for again for `backoff` batches, doubling with each timeout up to 64 (one
 * probe in 65 batches), back to 1 after a refill that filled.
 * refill_next() sets r for the next pop: `waited` was r->target at the pop
 * that gave n jobs; target is queue_refill_target() of that batch.
 */
#define REFILL_MAX_BACKOFF 64
void refill_next(batch_refill *r, int64_t waited, int n, int64_t target, uint64_t end_ns);

enum { QUEUE_OK = 0, QUEUE_FULL = 1, QUEUE_CLOSED = 2 };

int queue_init(job_queue *q, int64_t limit);
void queue_destroy(job_queue *q); /* the queue must be empty */

/* Adds j at the tail of its connection's flow; QUEUE_FULL (also when out of
 * memory) or QUEUE_CLOSED leave j with the caller. */
int queue_push(job_queue *q, job *j);
int64_t queue_depth(job_queue *q);
/* The refill target after the batch `answered` (a list), before its answers go out. */
int64_t queue_refill_target(job_queue *q, const batch_limits *lim, const job *answered);

/*
 * Hand-off polling. Waking a sleeping thread costs 20-100 µs on a virtual
 * machine, about as much as the daemon's whole work for a request, and a
 * request crosses threads twice. So the loop calls queue_expect() when it
 * starts parsing a request line: an idle worker is woken at once, its wake-up
 * overlapping the parse, and polls (without the lock) for up to poll_ns for
 * the job before it sleeps again. poll_ns 0 turns it off (a fresh queue's
 * value; totod sets it from --handoff-poll-us).
 */
void queue_set_poll(job_queue *q, uint64_t poll_ns);
void queue_expect(job_queue *q);

/*
 * Blocks until a batch is ready. Returns its size (>= 0; 0 when every job
 * taken had expired, or another worker took them) with the batch in *batch
 * and expired jobs in *expired (both lists linked by next), or -1 once the
 * queue is closed. refill (NULL: none) is the caller's previous batch; the
 * caller sets it again once this batch has been answered.
 */
int queue_pop_batch(job_queue *q, const batch_limits *lim, const batch_refill *refill, job **batch,
                    job **expired);
/* The same, but it returns at once (0 jobs) if queue_kick() was called since
 * queue_kicks() gave kicks_seen: a worker reads that before looking for an
 * offered model, so that an offer made in between is not slept through. */
int queue_pop_batch_since(job_queue *q, const batch_limits *lim, const batch_refill *refill,
                          uint64_t kicks_seen, job **batch, job **expired);
uint64_t queue_kicks(job_queue *q);

/* Removes and returns every queued job (a list), e.g. to answer them on shutdown. */
job *queue_take_all(job_queue *q);

/* True once nothing has been queued for ns (a worker's lull), false as soon
 * as a job comes, the queue closes or queue_kick() is called. */
bool queue_idle_for(job_queue *q, uint64_t ns);

/* Makes a worker's pending or next queue_pop_batch() return at once (0 jobs
 * if none is queued), so that it sees what it was asked to do (a new model). */
void queue_kick(job_queue *q);

/* Wakes the workers; queue_pop_batch() returns -1 from now on. */
void queue_close(job_queue *q);

/* Answered jobs on their way back to the loop, which drains it on async. */
typedef struct completion_queue {
    uv_mutex_t lock;
    job *head, *tail;
    uv_async_t *async;
    int expected; /* completion_expect() was called; read and cleared atomically */
} completion_queue;

int completion_init(completion_queue *c, uv_async_t *async);
void completion_destroy(completion_queue *c);
/* Appends a list of jobs and wakes the loop. Any thread. */
void completion_push(completion_queue *c, job *list);
/* Takes everything pushed so far (a list). Loop thread. */
job *completion_take(completion_queue *c);
/*
 * The other half of hand-off polling: a worker whose model call has returned
 * wakes the loop before it encodes the answers, so that the loop's wake-up
 * overlaps the encoding; completion_expected() (loop thread) then says, once,
 * that completions are on their way and worth polling for.
 */
void completion_expect(completion_queue *c);
bool completion_expected(completion_queue *c);

#endif
