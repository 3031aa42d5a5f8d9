/*
 * test_queue.c - daemon/queue.h: the order in which queued jobs are taken
 * (FIFO per connection, round-robin across connections, in one batch and
 * from batch to batch), the token budget, the global limit, deadlines
 * anywhere in the queue, take_all, close, several workers at once, which
 * push wakes a waiting worker, and hand-off polling (queue_expect,
 * completion_expect).
 *
 * Jobs here are bare structs: a connection is any distinct pointer, and the
 * label a test reads back is kept in batch_size, which only a worker sets.
 */
#include <stdlib.h>
#include <string.h>

#include "../../daemon/queue.h" /* the unit test table gives no daemon include dir */
#include "tap.h"

#define LABEL(j) ((j)->batch_size)

static char conn_a, conn_b, conn_c; /* three connections: only their addresses matter */

static const batch_limits unlimited = {INT64_MAX, 1 << 20, 0, 0};

static job *make(void *conn, int label, int64_t tokens) {
    job *j = calloc(1, sizeof *j);
    j->conn = conn;
    LABEL(j) = label;
    j->tokens = tokens;
    j->received_ns = uv_hrtime();
    return j;
}

/* Pushes labels first..first+n-1 for conn, one token each. */
static void push_n(job_queue *q, void *conn, int first, int n) {
    for (int i = 0; i < n; i++)
        queue_push(q, make(conn, first + i, 1));
}

/* The labels of a list, as "1 2 3", and frees it. */
static char *labels(job *list, char *out, size_t len) {
    size_t used = 0;
    out[0] = '\0';
    while (list) {
        job *next = list->next;
        int n = snprintf(out + used, len - used, used ? " %d" : "%d", LABEL(list));
        if (n > 0 && (size_t)n < len - used)
            used += (size_t)n;
        free(list);
        list = next;
    }
    return out;
}

/* One pop with lim; its batch's labels into out, the count of expired jobs in *n_expired. */
static const char *pop(job_queue *q, const batch_limits *lim, char *out, size_t len,
                       int *n_expired) {
    job *batch, *expired;
    queue_pop_batch(q, lim, NULL, &batch, &expired);
    int n = 0;
    for (job *j = expired; j; j = j->next)
        n++;
    if (n_expired)
        *n_expired = n;
    char scratch[256];
    labels(expired, scratch, sizeof scratch);
    return labels(batch, out, len);
}

static bool same(const char *got, const char *want, const char *what) {
    if (strcmp(got, want) != 0) {
        tap_diag("%s: got '%s', want '%s'", what, got, want);
        return false;
    }
    return true;
}

static void test_fifo_one_connection(void) {
    job_queue q;
    char out[512];
    queue_init(&q, 100);
    push_n(&q, &conn_a, 1, 5);
    tap_check(same(pop(&q, &unlimited, out, sizeof out, NULL), "1 2 3 4 5", "batch"),
              "one connection: its jobs in the order queued");
    queue_destroy(&q);
}

static void test_round_robin_in_a_batch(void) {
    job_queue q;
    char out[512];
    queue_init(&q, 100);
    push_n(&q, &conn_a, 1, 6);   /* a pipelines six */
    push_n(&q, &conn_b, 101, 1); /* then b sends one */
    push_n(&q, &conn_c, 201, 2); /* and c two */
    tap_check(same(pop(&q, &unlimited, out, sizeof out, NULL), "1 101 201 2 202 3 4 5 6", "batch"),
              "a batch takes the connections in turn, each one's jobs in order");
    tap_check(queue_depth(&q) == 0, "... and the queue is empty after it");
    queue_destroy(&q);
}

static void test_round_robin_across_batches(void) {
    job_queue q;
    char out[512];
    batch_limits two = {INT64_MAX, 2, 0, 0};
    queue_init(&q, 100);
    push_n(&q, &conn_a, 1, 6);
    push_n(&q, &conn_b, 101, 1);
    push_n(&q, &conn_c, 201, 2);
    const char *want[] = {"1 101", "201 2", "202 3", "4 5", "6"};
    bool ok = true;
    for (size_t i = 0; i < 5; i++)
        ok = same(pop(&q, &two, out, sizeof out, NULL), want[i], "batch of two") && ok;
    tap_check(ok, "batches of two: the next batch goes on with the next connection's turn");
    queue_destroy(&q);
}

/* What runs next: a connection that arrives behind a long pipeline waits one turn, not all. */
static void test_newcomer_waits_one_turn(void) {
    job_queue q;
    char out[512];
    batch_limits one = {INT64_MAX, 1, 0, 0};
    queue_init(&q, 2000);
    push_n(&q, &conn_a, 1, 1000);
    pop(&q, &one, out, sizeof out, NULL); /* a's first job is running */
    push_n(&q, &conn_b, 5001, 1);
    char got[64] = "";
    for (int i = 0; i < 2; i++) {
        pop(&q, &one, out, sizeof out, NULL);
        strcat(got, i ? " " : "");
        strcat(got, out);
    }
    tap_check(same(got, "2 5001", "next two"),
              "behind 1000 pipelined jobs, a second connection's job runs after one more of them");
    job *rest = queue_take_all(&q);
    int n = 0, last = 0;
    bool ordered = true;
    for (job *j = rest; j; j = rest) {
        rest = j->next;
        ordered = ordered && LABEL(j) == last + 1 + (last == 0 ? 2 : 0);
        last = LABEL(j);
        n++;
        free(j);
    }
    tap_check(n == 998 && ordered && queue_depth(&q) == 0,
              "take_all returns the other 998, in order, and empties the queue (%d)", n);
    push_n(&q, &conn_b, 1, 1); /* flows are reused after take_all */
    tap_check(same(pop(&q, &one, out, sizeof out, NULL), "1", "after take_all"),
              "the queue works after take_all");
    queue_destroy(&q);
}

static void test_token_budget(void) {
    job_queue q;
    char out[512];
    batch_limits budget = {10, 100, 0, 0};
    queue_init(&q, 100);
    queue_push(&q, make(&conn_a, 1, 25)); /* over budget alone */
    queue_push(&q, make(&conn_a, 2, 4));
    queue_push(&q, make(&conn_b, 101, 4));
    queue_push(&q, make(&conn_b, 102, 8));
    queue_push(&q, make(&conn_c, 201, 4));
    bool ok = same(pop(&q, &budget, out, sizeof out, NULL), "1", "first");
    ok = same(pop(&q, &budget, out, sizeof out, NULL), "101 201", "second") && ok;
    ok = same(pop(&q, &budget, out, sizeof out, NULL), "2", "third") && ok;
    ok = same(pop(&q, &budget, out, sizeof out, NULL), "102", "fourth") && ok;
    tap_check(ok, "token budget: the first job runs even alone over it; a job that does not fit "
                  "ends the batch and starts the next");
    queue_destroy(&q);
}

static void test_limit_and_close(void) {
    job_queue q;
    queue_init(&q, 3);
    push_n(&q, &conn_a, 1, 2);
    job *third = make(&conn_b, 3, 1), *fourth = make(&conn_c, 4, 1);
    int r3 = queue_push(&q, third), r4 = queue_push(&q, fourth);
    tap_check(r3 == QUEUE_OK && r4 == QUEUE_FULL && queue_depth(&q) == 3,
              "queue-limit bounds all connections together");
    queue_close(&q);
    job *late = make(&conn_a, 5, 1), *batch, *expired;
    int r5 = queue_push(&q, late);
    int n = queue_pop_batch(&q, &unlimited, NULL, &batch, &expired);
    tap_check(r5 == QUEUE_CLOSED && n == -1, "closed: pushes refused, pop returns -1");
    char out[64];
    tap_check(same(labels(queue_take_all(&q), out, sizeof out), "1 2 3", "left"),
              "take_all after close returns what was queued");
    free(fourth);
    free(late);
    queue_destroy(&q);
}

static void test_deadlines(void) {
    job_queue q;
    char out[512];
    int n_expired;
    batch_limits one = {INT64_MAX, 1, 0, 0};
    queue_init(&q, 100);
    uint64_t now = uv_hrtime();
    push_n(&q, &conn_a, 1, 3);
    job *soon = make(&conn_a, 4, 1); /* deep in a's flow */
    soon->deadline_ns = now + 1;
    queue_push(&q, soon);
    push_n(&q, &conn_a, 5, 1);
    job *later = make(&conn_b, 101, 1);
    later->deadline_ns = now + 60ull * 1000000000ull;
    queue_push(&q, later);
    job *gone = make(&conn_c, 201, 1); /* c's only job */
    gone->deadline_ns = now + 1;
    queue_push(&q, gone);
    while (uv_hrtime() < now + 1000) {
    }
    const char *first = pop(&q, &one, out, sizeof out, &n_expired);
    tap_check(same(first, "1", "first") && n_expired == 2,
              "expired jobs anywhere in the queue come back at the next pop, not computed");
    char rest[256] = "";
    for (int i = 0; i < 4; i++) {
        strcat(rest, i ? " " : "");
        strcat(rest, pop(&q, &one, out, sizeof out, &n_expired));
    }
    tap_check(same(rest, "101 2 3 5", "rest") && queue_depth(&q) == 0,
              "the others keep their turns and order; a deadline not due is kept");
    queue_destroy(&q);
}

static void test_batch_delay(void) {
    job_queue q;
    char out[64];
    batch_limits wait = {INT64_MAX, 8, 30 * 1000000ull, 0}; /* 30 ms */
    queue_init(&q, 100);
    push_n(&q, &conn_a, 1, 1);
    uint64_t t0 = uv_hrtime();
    pop(&q, &wait, out, sizeof out, NULL);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    tap_check(same(out, "1", "delayed") && ms >= 20,
              "batch delay: a lone job waits for company (%.1f ms)", ms);
    push_n(&q, &conn_a, 1, 4);
    push_n(&q, &conn_b, 11, 4);
    t0 = uv_hrtime();
    pop(&q, &wait, out, sizeof out, NULL);
    ms = (double)(uv_hrtime() - t0) / 1e6;
    tap_check(same(out, "1 11 2 12 3 13 4 14", "full") && ms < 20,
              "... but a full batch goes at once (%.1f ms)", ms);
    queue_destroy(&q);
}

/* ---- refill: waiting for the clients just answered ---------------------------------------- */

static void push_later(void *arg) {
    job_queue *q = arg;
    uv_sleep(5);
    push_n(q, &conn_b, 21, 1);
    push_n(q, &conn_c, 31, 1);
}

static double pop_ms(job_queue *q, const batch_limits *lim, const batch_refill *r, char *out,
                     size_t len) {
    job *batch, *expired;
    uint64_t t0 = uv_hrtime();
    queue_pop_batch(q, lim, r, &batch, &expired);
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    labels(expired, out, len);
    labels(batch, out, len);
    return ms;
}

static void test_refill_target(void) {
    job_queue q;
    queue_init(&q, 100);
    batch_limits lim = {INT64_MAX, 8, 0, 30 * 1000000ull};
    /* A batch answered a, b and c; a still has a job queued (it pipelines). */
    job *answered = make(&conn_a, 1, 1);
    answered->next = make(&conn_b, 2, 1);
    answered->next->next = make(&conn_c, 3, 1);
    push_n(&q, &conn_a, 4, 1);
    int64_t t = queue_refill_target(&q, &lim, answered);
    tap_check(t == 3, "refill target: 1 queued + b and c expected back, not a (%lld)",
              (long long)t);
    lim.max_size = 2;
    t = queue_refill_target(&q, &lim, answered);
    tap_check(t == 2, "refill target capped by max-batch-size (%lld)", (long long)t);
    lim.refill_ns = 0;
    t = queue_refill_target(&q, &lim, answered);
    tap_check(t == 0, "refill off: no target (%lld)", (long long)t);
    char out[64];
    labels(answered, out, sizeof out);
    labels(queue_take_all(&q), out, sizeof out);
    queue_destroy(&q);
}

static void test_refill_wait(void) {
    job_queue q;
    char out[64];
    queue_init(&q, 100);
    batch_limits lim = {INT64_MAX, 8, 0, 30 * 1000000ull}; /* 30 ms window */
    batch_refill r = {.target = 3, .end_ns = uv_hrtime()};
    push_n(&q, &conn_a, 1, 2);
    double ms = pop_ms(&q, &lim, &r, out, sizeof out);
    tap_check(same(out, "1 2", "short") && ms >= 20,
              "refill: 2 of 3 expected jobs wait out the window (%.1f ms)", ms);

    lim.refill_ns = 10ull * 1000000000ull; /* 10 s: ends only by the jobs coming */
    r = (batch_refill){.target = 3, .end_ns = uv_hrtime()};
    push_n(&q, &conn_a, 11, 1);
    uv_thread_t t;
    uv_thread_create(&t, push_later, &q);
    ms = pop_ms(&q, &lim, &r, out, sizeof out);
    uv_thread_join(&t);
    tap_check(same(out, "11 21 31", "refilled") && ms < 5000,
              "refill: the batch goes as soon as the expected jobs are back (%.1f ms)", ms);

    r = (batch_refill){.target = 2, .end_ns = uv_hrtime()};
    push_n(&q, &conn_a, 41, 2);
    ms = pop_ms(&q, &lim, &r, out, sizeof out);
    tap_check(same(out, "41 42", "met") && ms < 5000, "refill: a met target waits for nothing");

    r = (batch_refill){.target = 3,
                       .end_ns = uv_hrtime() - 20ull * 1000000000ull}; /* ended 20 s ago */
    push_n(&q, &conn_a, 51, 1);
    ms = pop_ms(&q, &lim, &r, out, sizeof out);
    tap_check(same(out, "51", "late") && ms < 5000,
              "refill: a job after the window goes at once (%.1f ms)", ms);
    queue_destroy(&q);
}

static void test_refill_backoff(void) {
    batch_refill r = {0};
    refill_next(&r, 0, 4, 8, 1);
    tap_check(r.target == 8 && r.end_ns == 1, "refill_next: the first target is waited for");
    refill_next(&r, 8, 8, 8, 2); /* filled */
    tap_check(r.target == 8 && r.skip == 0, "a refill that filled: the next one waits too");
    int waits = 0, pops = 0;
    for (pops = 0; pops < 300; pops++) { /* every refill times out: 5 of 8 come back */
        int64_t waited = r.target;
        waits += waited > 0;
        refill_next(&r, waited, waited > 0 ? 5 : 4, 8, 3);
    }
    tap_check(waits >= 4 && waits <= 12 && r.backoff == REFILL_MAX_BACKOFF,
              "timed-out refills back off (%d waits in %d batches, backoff %d)", waits, pops,
              r.backoff);
    while (r.target == 0)
        refill_next(&r, 0, 4, 8, 4);
    refill_next(&r, r.target, 8, 8, 5); /* the probe filled */
    tap_check(r.target == 8 && r.backoff == 1, "a probe that fills: waiting again, backoff reset");
}

/* ---- several workers -------------------------------------------------------------------- */

#define PRODUCERS    8
#define PER_PRODUCER 5000
#define WORKERS      4

typedef struct shared {
    job_queue q;
    int seen[PRODUCERS * PER_PRODUCER];
    uv_mutex_t lock;
    int taken;
} shared;

typedef struct producer {
    shared *sh;
    int index;
} producer;

static void produce(void *arg) {
    producer *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        job *j = make(p, p->index * PER_PRODUCER + i, 1 + i % 3);
        while (queue_push(&p->sh->q, j) == QUEUE_FULL)
            uv_sleep(0);
    }
}

static void consume(void *arg) {
    shared *sh = arg;
    batch_limits lim = {16, 8, 0, 0};
    job *batch, *expired;
    while (queue_pop_batch(&sh->q, &lim, NULL, &batch, &expired) >= 0) {
        uv_mutex_lock(&sh->lock);
        for (job *j = batch; j; j = batch) {
            batch = j->next;
            sh->seen[LABEL(j)]++;
            sh->taken++;
            free(j);
        }
        uv_mutex_unlock(&sh->lock);
    }
}

static void test_workers(void) {
    static shared sh;
    producer prods[PRODUCERS];
    uv_thread_t pt[PRODUCERS], wt[WORKERS];
    queue_init(&sh.q, 256);
    uv_mutex_init(&sh.lock);
    for (int i = 0; i < WORKERS; i++)
        uv_thread_create(&wt[i], consume, &sh);
    for (int i = 0; i < PRODUCERS; i++) {
        prods[i] = (producer){&sh, i};
        uv_thread_create(&pt[i], produce, &prods[i]);
    }
    for (int i = 0; i < PRODUCERS; i++)
        uv_thread_join(&pt[i]);
    for (int tries = 0; tries < 10000 && queue_depth(&sh.q) > 0; tries++)
        uv_sleep(1);
    queue_close(&sh.q);
    for (int i = 0; i < WORKERS; i++)
        uv_thread_join(&wt[i]);
    int once = 0;
    for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
        once += sh.seen[i] == 1;
    tap_check(once == PRODUCERS * PER_PRODUCER && sh.taken == once && queue_depth(&sh.q) == 0,
              "%d producers, %d workers on one queue: every job taken exactly once (%d of %d)",
              PRODUCERS, WORKERS, once, PRODUCERS * PER_PRODUCER);
    uv_mutex_destroy(&sh.lock);
    queue_destroy(&sh.q);
}

/* ---- waking: a push wakes a waiting worker once what it waits for is there ---- */

typedef struct waiter {
    job_queue *q;
    batch_limits lim;
    batch_refill refill;
    int n;     /* jobs its pop gave (-1 until it returns) */
    double ms; /* how long the pop took */
} waiter;

static void wait_pop(void *arg) {
    waiter *w = arg;
    job *batch, *expired;
    uint64_t t0 = uv_hrtime();
    int n = queue_pop_batch(w->q, &w->lim, &w->refill, &batch, &expired);
    w->ms = (double)(uv_hrtime() - t0) / 1e6;
    __atomic_store_n(&w->n, n, __ATOMIC_RELEASE);
    char out[128];
    labels(batch, out, sizeof out);
    labels(expired, out, sizeof out);
}

/* Waits up to 5 s for a waiting worker to register that it waits for want jobs. */
static bool registers(job_queue *q, int64_t want) {
    for (int i = 0; i < 5000; i++) {
        uv_mutex_lock(&q->lock);
        int64_t need = q->wake_count;
        uv_mutex_unlock(&q->lock);
        if (need == want)
            return true;
        uv_sleep(1);
    }
    return false;
}

static void idle_for_1s(void *arg) {
    waiter *w = arg;
    uint64_t t0 = uv_hrtime();
    w->n = queue_idle_for(w->q, 1000ull * 1000000ull);
    w->ms = (double)(uv_hrtime() - t0) / 1e6;
}

static void test_push_wakes(void) {
    job_queue q;
    uv_thread_t t1, t2;
    char out[64];
    const uint64_t ten_s = 10ull * 1000000000ull;

    /* A worker waiting for a refill of 3 (1 job queued, a window of 10 s). */
    queue_init(&q, 100);
    waiter a = {&q, {INT64_MAX, 8, 0, ten_s}, {.target = 3, .end_ns = uv_hrtime()}, -1, 0};
    push_n(&q, &conn_a, 1, 1);
    uv_thread_create(&t1, wait_pop, &a);
    tap_check(registers(&q, 3), "a worker waiting for a refill of 3 registers it");
    push_n(&q, &conn_b, 11, 1);
    uv_sleep(30);
    tap_check(__atomic_load_n(&a.n, __ATOMIC_ACQUIRE) == -1, "2 jobs of 3: it waits on");
    push_n(&q, &conn_c, 21, 1);
    uv_thread_join(&t1);
    tap_check(a.n == 3 && a.ms < 5000, "the push that makes 3 wakes it: 3 jobs (%.1f ms)", a.ms);
    queue_destroy(&q);

    /* Two workers waiting for 2 and 4: the least registers, and meeting it
     * wakes both; the one waiting for 2 takes the jobs. */
    queue_init(&q, 100);
    waiter b = {&q, {INT64_MAX, 8, 0, ten_s}, {.target = 2, .end_ns = uv_hrtime()}, -1, 0};
    waiter c = {&q, {INT64_MAX, 8, 0, ten_s}, {.target = 4, .end_ns = uv_hrtime()}, -1, 0};
    push_n(&q, &conn_a, 1, 1);
    uv_thread_create(&t1, wait_pop, &c);
    tap_check(registers(&q, 4), "a worker waiting for 4 registers 4");
    uv_thread_create(&t2, wait_pop, &b);
    tap_check(registers(&q, 2), "a second one waiting for 2 lowers it to 2");
    push_n(&q, &conn_b, 11, 1);
    uv_thread_join(&t2);
    tap_check(b.n == 2 && b.ms < 5000, "2 jobs: the one waiting for 2 takes them (%.1f ms)", b.ms);
    /* Woken too, the other waits on for its 4 or, if it woke to an emptied
     * queue, returns with none (queue_pop_batch's contract): never 10 s. */
    push_n(&q, &conn_c, 21, 4);
    uv_thread_join(&t1);
    tap_check((c.n == 4 || c.n == 0) && c.ms < 5000,
              "the other returns once 4 more are there, or at once with none (%d jobs, %.1f ms)",
              c.n, c.ms);
    labels(queue_take_all(&q), out, sizeof out);
    queue_destroy(&q);

    /* A batch delay of 10 s ends as soon as the batch is full. */
    queue_init(&q, 100);
    waiter d = {&q, {INT64_MAX, 4, ten_s, 0}, {0}, -1, 0};
    push_n(&q, &conn_a, 1, 1);
    uv_thread_create(&t1, wait_pop, &d);
    tap_check(registers(&q, 4), "a worker in a batch delay registers the batch's size");
    push_n(&q, &conn_b, 11, 3);
    uv_thread_join(&t1);
    tap_check(d.n == 4 && d.ms < 5000, "a full batch ends the delay (%.1f ms)", d.ms);
    queue_destroy(&q);

    /* A lull (queue_idle_for, before a shadow check) ends with the first job. */
    queue_init(&q, 100);
    waiter l = {&q, {0}, {0}, -1, 0};
    uv_thread_create(&t1, idle_for_1s, &l);
    tap_check(registers(&q, 1), "a worker waiting for a lull wakes for any job");
    push_n(&q, &conn_a, 1, 1);
    uv_thread_join(&t1);
    tap_check(l.n == 0 && l.ms < 900, "a job ends the lull at once (%.1f ms)", l.ms);
    labels(queue_take_all(&q), out, sizeof out);
    queue_destroy(&q);
}

/* ---- hand-off polling ---- */

static void pop_once(void *arg) {
    job *batch, *expired;
    int n = queue_pop_batch(arg, &unlimited, NULL, &batch, &expired);
    char out[64];
    tap_check(n == 1 && !strcmp(labels(batch, out, sizeof out), "7"),
              "the polling worker takes the job pushed while it polls");
}

/* Waits up to 5 s for q->sleepers to become want; true if it did. */
static bool sleepers_become(job_queue *q, int want) {
    for (int i = 0; i < 5000; i++) {
        if (__atomic_load_n(&q->sleepers, __ATOMIC_RELAXED) == want)
            return true;
        uv_sleep(1);
    }
    return false;
}

static void test_handoff_poll(void) {
    job_queue q;
    uv_thread_t t;
    queue_init(&q, 16);
    uv_thread_create(&t, pop_once, &q);
    tap_check(sleepers_become(&q, 1), "an idle worker sleeps");
    queue_expect(&q); /* poll_ns 0: off */
    uv_sleep(50);
    tap_check(__atomic_load_n(&q.sleepers, __ATOMIC_RELAXED) == 1 && !q.expected,
              "with polling off, queue_expect leaves the worker asleep");
    queue_set_poll(&q, 100 * 1000 * 1000); /* 100 ms, long enough to watch */
    queue_expect(&q);
    tap_check(sleepers_become(&q, 0), "queue_expect wakes the idle worker to poll");
    tap_check(sleepers_become(&q, 1), "a worker whose job never comes sleeps again");
    queue_expect(&q);
    tap_check(sleepers_become(&q, 0), "woken again by the next queue_expect");
    queue_push(&q, make(&conn_a, 7, 1));
    uv_thread_join(&t);
    queue_destroy(&q);

    uv_loop_t loop;
    uv_async_t async;
    completion_queue c;
    uv_loop_init(&loop);
    uv_async_init(&loop, &async, NULL);
    completion_init(&c, &async);
    bool before = completion_expected(&c);
    completion_expect(&c);
    bool first = completion_expected(&c), second = completion_expected(&c);
    tap_check(!before && first && !second, "completion_expected says once that answers are coming");
    completion_destroy(&c);
    uv_close((uv_handle_t *)&async, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
}

int main(void) {
    test_fifo_one_connection();
    test_round_robin_in_a_batch();
    test_round_robin_across_batches();
    test_newcomer_waits_one_turn();
    test_token_budget();
    test_limit_and_close();
    test_deadlines();
    test_batch_delay();
    test_refill_target();
    test_refill_wait();
    test_refill_backoff();
    test_workers();
    test_push_wakes();
    test_handoff_poll();
    return tap_done();
}
