/* queue.c - request and completion queues (see queue.h). */
#include "queue.h"

#include <stdlib.h>

#include "spin.h"

#define FIRST_TABLE_SIZE 64 /* buckets; doubled whenever there are more flows than buckets */

struct job_flow {
    const void *owner;     /* the connection: job->conn */
    job *head, *tail;      /* its queued jobs, oldest first; never empty while in the ring */
    job_flow *prev, *next; /* the ring */
    job_flow *chain;       /* the next flow in its table bucket, or in the spare list */
};

int queue_init(job_queue *q, int64_t limit) {
    *q = (job_queue){.limit = limit};
    q->table = calloc(FIRST_TABLE_SIZE, sizeof *q->table);
    if (!q->table)
        return -1;
    q->table_size = FIRST_TABLE_SIZE;
    if (uv_mutex_init(&q->lock)) {
        free(q->table);
        return -1;
    }
    if (uv_cond_init(&q->changed)) {
        uv_mutex_destroy(&q->lock);
        free(q->table);
        return -1;
    }
    return 0;
}

/* ---- the ring and the owner table (lock held) ------------------------------------------ */

/* Fibonacci hashing: connections are allocations, whose low bits say little. */
static size_t bucket_of(const job_queue *q, const void *owner) {
    uint64_t h = (uint64_t)(uintptr_t)owner * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & (q->table_size - 1);
}

/* Adds f at the end of the ring's current turn: just before the flow that goes next. */
static void ring_add(job_queue *q, job_flow *f) {
    if (!q->ring) {
        f->prev = f->next = f;
        q->ring = f;
        return;
    }
    f->next = q->ring;
    f->prev = q->ring->prev;
    f->prev->next = f;
    q->ring->prev = f;
}

/* Takes f out of the ring; if it was to go next, the one after it goes next. */
static void ring_remove(job_queue *q, job_flow *f) {
    if (f->next == f) {
        q->ring = NULL;
        return;
    }
    f->prev->next = f->next;
    f->next->prev = f->prev;
    if (q->ring == f)
        q->ring = f->next;
}

/* Rehashes into twice the buckets; out of memory, the chains just stay longer. */
static void table_grow(job_queue *q) {
    size_t size = q->table_size * 2;
    job_flow **table = calloc(size, sizeof *table);
    if (!table)
        return;
    free(q->table);
    q->table = table;
    q->table_size = size;
    job_flow *f = q->ring; /* every flow in the table is in the ring */
    for (size_t i = 0; i < q->n_flows; i++, f = f->next) {
        size_t b = bucket_of(q, f->owner);
        f->chain = table[b];
        table[b] = f;
    }
}

/* Lock held: the owner's flow, or NULL when it has nothing queued. */
static job_flow *flow_find(const job_queue *q, const void *owner) {
    for (job_flow *f = q->table[bucket_of(q, owner)]; f; f = f->chain)
        if (f->owner == owner)
            return f;
    return NULL;
}

/* The owner's flow; a new one joins the ring when the owner has nothing queued. NULL: no memory. */
static job_flow *flow_for(job_queue *q, const void *owner) {
    job_flow *f = flow_find(q, owner);
    if (f)
        return f;
    size_t b = bucket_of(q, owner);
    f = q->spare;
    if (f)
        q->spare = f->chain;
    else if (!(f = malloc(sizeof *f)))
        return NULL;
    *f = (job_flow){.owner = owner, .chain = q->table[b]};
    q->table[b] = f;
    q->n_flows++;
    ring_add(q, f);
    if (q->n_flows > q->table_size)
        table_grow(q);
    return f;
}

/* An emptied flow leaves the ring and the table, and waits in the spare list. */
static void flow_retire(job_queue *q, job_flow *f) {
    job_flow **link = &q->table[bucket_of(q, f->owner)];
    while (*link != f)
        link = &(*link)->chain;
    *link = f->chain;
    ring_remove(q, f);
    q->n_flows--;
    f->chain = q->spare;
    q->spare = f;
}

static void free_list(job_flow *f) {
    while (f) {
        job_flow *next = f->chain;
        free(f);
        f = next;
    }
}

void queue_destroy(job_queue *q) {
    while (q->ring) /* only if the queue was not emptied: the jobs stay the caller's */
        flow_retire(q, q->ring);
    free_list(q->spare);
    free(q->table);
    uv_cond_destroy(&q->changed);
    uv_mutex_destroy(&q->lock);
}

/* ---- pushing ------------------------------------------------------------------------------ */

static void flow_append(job_queue *q, job_flow *f, job *j) {
    j->next = NULL;
    if (f->tail)
        f->tail->next = j;
    else
        f->head = j;
    f->tail = j;
    q->count++;
    q->tokens += j->tokens;
    if (j->deadline_ns && (!q->next_deadline_ns || j->deadline_ns < q->next_deadline_ns))
        q->next_deadline_ns = j->deadline_ns;
}

int queue_push(job_queue *q, job *j) {
    int rc = QUEUE_OK;
    uv_mutex_lock(&q->lock);
    job_flow *f = NULL;
    if (q->closed)
        rc = QUEUE_CLOSED;
    else if (q->count >= q->limit || !(f = flow_for(q, j->conn)))
        rc = QUEUE_FULL;
    else {
        flow_append(q, f, j);
        __atomic_add_fetch(&q->pushes, 1, __ATOMIC_RELEASE);
    }
    bool wake = rc == QUEUE_OK &&
                (q->sleepers > 0 || q->count >= q->wake_count || q->tokens >= q->wake_tokens);
    if (wake) /* everyone waiting wakes, and registers again if it waits on */
        q->wake_count = q->wake_tokens = INT64_MAX;
    uv_mutex_unlock(&q->lock);
    /* After the unlock, so that a woken worker does not block on the lock at
     * once; broadcast: with several workers, any of them may take it. */
    if (wake)
        uv_cond_broadcast(&q->changed);
    return rc;
}

void queue_set_poll(job_queue *q, uint64_t poll_ns) {
    uv_mutex_lock(&q->lock);
    q->poll_ns = poll_ns;
    uv_mutex_unlock(&q->lock);
}

void queue_expect(job_queue *q) {
    if (!__atomic_load_n(&q->sleepers, __ATOMIC_RELAXED))
        return; /* a worker is busy or polling already: it will see the job */
    uv_mutex_lock(&q->lock);
    bool wake = q->poll_ns > 0 && q->sleepers > 0 && !q->ring && !q->closed;
    q->expected = q->expected || wake;
    uv_mutex_unlock(&q->lock);
    if (wake)
        uv_cond_signal(&q->changed);
}

/* Lock held on entry and exit: polls, unlocked, for a push until poll_ns passes. */
static void poll_for_push(job_queue *q) {
    uint64_t seen = q->pushes;
    uv_mutex_unlock(&q->lock);
    spin_for_change(&q->pushes, seen, q->poll_ns);
    uv_mutex_lock(&q->lock);
}

int64_t queue_depth(job_queue *q) {
    uv_mutex_lock(&q->lock);
    int64_t n = q->count;
    uv_mutex_unlock(&q->lock);
    return n;
}

/* ---- popping ------------------------------------------------------------------------------ */

static void append(job **head, job **tail, job *j) {
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

/* Takes the head of f, which goes on to the next flow's turn (or leaves the ring, emptied). */
static job *take_turn(job_queue *q, job_flow *f) {
    job *j = f->head;
    f->head = j->next;
    if (!f->head) {
        f->tail = NULL;
        flow_retire(q, f);
    } else {
        q->ring = f->next;
    }
    j->next = NULL;
    q->count--;
    q->tokens -= j->tokens;
    return j;
}

/* Removes the expired jobs of one flow to *expired; returns its earliest live deadline (0: none).
 */
static uint64_t flow_sweep(job_queue *q, job_flow *f, uint64_t now, job **expired, job **etail) {
    uint64_t next = 0;
    job **link = &f->head, *last = NULL;
    while (*link) {
        job *j = *link;
        if (j->deadline_ns && now >= j->deadline_ns) {
            *link = j->next;
            j->next = NULL;
            q->count--;
            q->tokens -= j->tokens;
            append(expired, etail, j);
            continue;
        }
        if (j->deadline_ns && (!next || j->deadline_ns < next))
            next = j->deadline_ns;
        last = j;
        link = &j->next;
    }
    f->tail = last;
    return next;
}

/*
 * Every job whose deadline has passed, wherever it waits, goes to *expired,
 * so none is answered late for waiting behind others. Runs only once the
 * earliest deadline is due, so a queue without deadlines costs nothing.
 */
static void sweep_expired(job_queue *q, uint64_t now, job **expired, job **etail) {
    uint64_t next = 0;
    size_t n = q->n_flows;
    job_flow *f = q->ring;
    for (size_t i = 0; i < n; i++) {
        job_flow *following = f->next; /* before f may leave the ring */
        uint64_t d = flow_sweep(q, f, now, expired, etail);
        if (d && (!next || d < next))
            next = d;
        if (!f->head)
            flow_retire(q, f);
        f = following;
    }
    q->next_deadline_ns = next;
}

/* When the oldest queued job arrived (the ring is not empty). */
static uint64_t oldest_arrival(const job_queue *q) {
    uint64_t oldest = UINT64_MAX;
    const job_flow *f = q->ring;
    do {
        if (f->head->received_ns < oldest)
            oldest = f->head->received_ns;
        f = f->next;
    } while (f != q->ring);
    return oldest;
}

int64_t queue_refill_target(job_queue *q, const batch_limits *lim, const job *answered) {
    if (lim->refill_ns == 0)
        return 0;
    uv_mutex_lock(&q->lock);
    int64_t want = q->count;
    for (const job *j = answered; j; j = j->next)
        want += flow_find(q, j->conn) == NULL;
    uv_mutex_unlock(&q->lock);
    return want < lim->max_size ? want : lim->max_size;
}

void refill_next(batch_refill *r, int64_t waited, int n, int64_t target, uint64_t end_ns) {
    int backoff = r->backoff > 0 ? r->backoff : 1;
    if (waited > 0 && n < waited) { /* timed out: stop waiting for a while */
        r->skip = backoff;
        r->backoff = backoff * 2 < REFILL_MAX_BACKOFF ? backoff * 2 : REFILL_MAX_BACKOFF;
    } else if (waited > 0) {
        r->backoff = 1;
    } else if (r->skip > 0) {
        r->skip--;
    }
    r->target = r->skip > 0 ? 0 : target;
    r->end_ns = end_ns;
}

/* Lock held: the batch is full, by count or by tokens. */
static bool batch_full(const job_queue *q, const batch_limits *lim) {
    return q->tokens >= lim->max_tokens || q->count >= lim->max_size;
}

/*
 * Waits (lock held) while the oldest job's batch delay runs, or while fewer
 * than target jobs are queued and the refill window is open; a full batch
 * or a closed queue ends either wait.
 */
static void wait_for_batch(job_queue *q, const batch_limits *lim, int64_t target,
                           uint64_t refill_until) {
    if (lim->delay_ns == 0 && target == 0)
        return;
    uint64_t delay_until = lim->delay_ns ? oldest_arrival(q) + lim->delay_ns : 0;
    while (!q->closed && q->ring && !batch_full(q, lim)) {
        uint64_t now = uv_hrtime(), until = 0;
        if (now < delay_until)
            until = delay_until;
        bool refilling = q->count < target && now < refill_until;
        if (refilling && refill_until > until)
            until = refill_until;
        if (!until)
            break;
        /* What would end this wait early (queue_push wakes no sooner). */
        int64_t need = refilling && target < lim->max_size ? target : lim->max_size;
        if (need < q->wake_count)
            q->wake_count = need;
        if (lim->max_tokens < q->wake_tokens)
            q->wake_tokens = lim->max_tokens;
        uv_cond_timedwait(&q->changed, &q->lock, until - now);
    }
}

/* Lock held: sleeps (or polls, when a job is expected) until a job comes, the
 * queue closes or it is kicked after kicks_seen (each sleeping worker wakes). */
static void wait_for_job(job_queue *q, uint64_t kicks_seen) {
    while (!q->closed && !q->ring && q->kicks == kicks_seen) {
        if (q->expected) {
            q->expected = false;
            poll_for_push(q);
            continue;
        }
        __atomic_add_fetch(&q->sleepers, 1, __ATOMIC_RELAXED);
        uv_cond_wait(&q->changed, &q->lock);
        __atomic_sub_fetch(&q->sleepers, 1, __ATOMIC_RELAXED);
    }
}

uint64_t queue_kicks(job_queue *q) {
    uv_mutex_lock(&q->lock);
    uint64_t kicks = q->kicks;
    uv_mutex_unlock(&q->lock);
    return kicks;
}

int queue_pop_batch(job_queue *q, const batch_limits *lim, const batch_refill *refill, job **batch,
                    job **expired) {
    return queue_pop_batch_since(q, lim, refill, queue_kicks(q), batch, expired);
}

int queue_pop_batch_since(job_queue *q, const batch_limits *lim, const batch_refill *refill,
                          uint64_t kicks_seen, job **batch, job **expired) {
    job *btail = NULL, *etail = NULL;
    int n = 0;
    int64_t tokens = 0;
    *batch = *expired = NULL;
    uv_mutex_lock(&q->lock);
    int64_t target = refill && lim->refill_ns ? refill->target : 0;
    wait_for_job(q, kicks_seen);
    if (!q->closed)
        wait_for_batch(q, lim, target, target ? refill->end_ns + lim->refill_ns : 0);
    if (q->closed) {
        uv_mutex_unlock(&q->lock);
        return -1;
    }
    uint64_t now = uv_hrtime();
    if (q->next_deadline_ns && now >= q->next_deadline_ns)
        sweep_expired(q, now, expired, &etail);
    /* Round-robin over the flows. The first job always runs, even alone over
     * budget; one that does not fit ends the batch, and its flow starts the next. */
    while (q->ring && n < lim->max_size) {
        if (n > 0 && tokens + q->ring->head->tokens > lim->max_tokens)
            break;
        job *j = take_turn(q, q->ring);
        tokens += j->tokens;
        append(batch, &btail, j);
        n++;
    }
    uv_mutex_unlock(&q->lock);
    return n;
}

bool queue_idle_for(job_queue *q, uint64_t ns) {
    uv_mutex_lock(&q->lock);
    uint64_t until = uv_hrtime() + ns, kicks_seen = q->kicks;
    while (!q->ring && !q->closed && q->kicks == kicks_seen) {
        uint64_t now = uv_hrtime();
        if (now >= until)
            break;
        q->wake_count = 1; /* any job ends the lull */
        uv_cond_timedwait(&q->changed, &q->lock, until - now);
    }
    bool idle = !q->ring && !q->closed && q->kicks == kicks_seen;
    uv_mutex_unlock(&q->lock);
    return idle;
}

void queue_kick(job_queue *q) {
    uv_mutex_lock(&q->lock);
    q->kicks++;
    uv_mutex_unlock(&q->lock);
    uv_cond_broadcast(&q->changed);
}

job *queue_take_all(job_queue *q) {
    job *all = NULL, *tail = NULL;
    uv_mutex_lock(&q->lock);
    while (q->ring) {
        job_flow *f = q->ring;
        if (tail)
            tail->next = f->head;
        else
            all = f->head;
        tail = f->tail;
        f->head = f->tail = NULL;
        flow_retire(q, f);
    }
    q->count = q->tokens = 0;
    q->next_deadline_ns = 0;
    uv_mutex_unlock(&q->lock);
    return all;
}

void queue_close(job_queue *q) {
    uv_mutex_lock(&q->lock);
    q->closed = true;
    uv_cond_broadcast(&q->changed);
    uv_mutex_unlock(&q->lock);
}

int completion_init(completion_queue *c, uv_async_t *async) {
    *c = (completion_queue){.async = async};
    return uv_mutex_init(&c->lock) ? -1 : 0;
}

void completion_destroy(completion_queue *c) {
    uv_mutex_destroy(&c->lock);
}

void completion_push(completion_queue *c, job *list) {
    if (!list)
        return;
    job *last = list;
    while (last->next)
        last = last->next;
    uv_mutex_lock(&c->lock);
    if (c->tail)
        c->tail->next = list;
    else
        c->head = list;
    c->tail = last;
    uv_mutex_unlock(&c->lock);
    uv_async_send(c->async); /* coalesces: the loop drains everything on one wakeup */
}

void completion_expect(completion_queue *c) {
    __atomic_store_n(&c->expected, 1, __ATOMIC_RELEASE);
    uv_async_send(c->async);
}

bool completion_expected(completion_queue *c) {
    return __atomic_exchange_n(&c->expected, 0, __ATOMIC_ACQ_REL) != 0;
}

job *completion_take(completion_queue *c) {
    uv_mutex_lock(&c->lock);
    job *all = c->head;
    c->head = c->tail = NULL;
    uv_mutex_unlock(&c->lock);
    return all;
}
