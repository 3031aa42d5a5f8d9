/* write_fanout.c - socket writes spread over helper threads (see write_fanout.h). */
#include "write_fanout.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "spin.h"

/*
 * A round: the loop publishes the writes (w) and then one word, `claim`,
 * holding the round's number, the next unclaimed index and the count. Every
 * thread (helpers and the loop) claims one write at a time by a
 * compare-and-swap on that word, so a helper that is slow or preempted holds
 * up at most the one write it claimed, and the loop takes what is left. A
 * claim succeeds only while the word still names the round it read, and the
 * loop starts the next round only once every write of this one is done, so
 * no write is made twice or against another round's array.
 */
#define ROUND_BITS       24
#define INDEX_BITS       20
#define MAX_ROUND_WRITES ((1u << INDEX_BITS) - 1)

static uint64_t pack(uint64_t round, uint64_t index, uint64_t n) {
    return (round & ((1u << ROUND_BITS) - 1)) << (2 * INDEX_BITS) | index << INDEX_BITS | n;
}

static uint64_t index_of(uint64_t word) {
    return (word >> INDEX_BITS) & MAX_ROUND_WRITES;
}

static uint64_t count_of(uint64_t word) {
    return word & MAX_ROUND_WRITES;
}

/* A helper: polls the claim word, then sleeps until kicked or stopped. */
struct fanout_helper {
    uv_thread_t thread;
    uv_mutex_t lock;
    uv_cond_t wake;
    write_fanout *f;
    int awake;       /* atomic: polling or writing, not asleep */
    uint64_t writes; /* atomic: writes made so far */
    bool kick;       /* under lock: wake up and poll */
    bool stopping;   /* under lock */
    char pad[64];    /* keeps helpers off each other's cache lines */
};

static void write_one(fanout_write *w) {
    ssize_t r;
    do
        r = send(w->fd, w->data, w->len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    w->result = r < 0 ? -errno : r;
}

void write_fanout_inline(fanout_write *w, size_t n) {
    for (size_t i = 0; i < n; i++)
        write_one(&w[i]);
}

/* Claims and makes writes of the current round until none is left; how many. */
static size_t claim_and_write(write_fanout *f) {
    size_t made = 0;
    uint64_t word = __atomic_load_n(&f->claim, __ATOMIC_ACQUIRE);
    while (index_of(word) < count_of(word)) {
        fanout_write *w = __atomic_load_n(&f->w, __ATOMIC_ACQUIRE);
        if (!__atomic_compare_exchange_n(&f->claim, &word, word + (1u << INDEX_BITS), false,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue; /* word now holds the newer value */
        write_one(&w[index_of(word)]);
        __atomic_add_fetch(&f->done, 1, __ATOMIC_RELEASE);
        made++;
        word = __atomic_load_n(&f->claim, __ATOMIC_ACQUIRE);
    }
    return made;
}

/* Sleeps until kicked or stopped; false when stopped. */
static bool helper_sleep(fanout_helper *h) {
    uv_mutex_lock(&h->lock);
    __atomic_store_n(&h->awake, 0, __ATOMIC_SEQ_CST);
    uint64_t word = __atomic_load_n(&h->f->claim, __ATOMIC_SEQ_CST);
    while (index_of(word) >= count_of(word) && !h->kick && !h->stopping) {
        uv_cond_wait(&h->wake, &h->lock);
        word = __atomic_load_n(&h->f->claim, __ATOMIC_SEQ_CST);
    }
    h->kick = false;
    bool go = !h->stopping;
    __atomic_store_n(&h->awake, 1, __ATOMIC_SEQ_CST);
    uv_mutex_unlock(&h->lock);
    return go;
}

static void helper_thread(void *arg) {
    fanout_helper *h = arg;
    write_fanout *f = h->f;
    for (;;) {
        uint64_t until = uv_hrtime() + f->poll_ns;
        uint64_t word = __atomic_load_n(&f->claim, __ATOMIC_ACQUIRE);
        while (index_of(word) >= count_of(word) && uv_hrtime() < until) {
            cpu_relax();
            word = __atomic_load_n(&f->claim, __ATOMIC_ACQUIRE);
        }
        if (index_of(word) >= count_of(word)) {
            if (!helper_sleep(h))
                return;
            continue;
        }
        size_t made = claim_and_write(f);
        __atomic_add_fetch(&h->writes, made, __ATOMIC_RELAXED);
    }
}

int write_fanout_start(write_fanout *f, int n_helpers, uint64_t poll_ns) {
    memset(f, 0, sizeof *f);
    f->poll_ns = poll_ns;
    f->helpers = calloc((size_t)n_helpers, sizeof *f->helpers);
    if (!f->helpers)
        return -1;
    for (; f->n_helpers < n_helpers; f->n_helpers++) {
        fanout_helper *h = &f->helpers[f->n_helpers];
        h->f = f;
        h->awake = 1;
        if (uv_mutex_init(&h->lock))
            break;
        if (uv_cond_init(&h->wake)) {
            uv_mutex_destroy(&h->lock);
            break;
        }
        if (uv_thread_create(&h->thread, helper_thread, h)) {
            uv_cond_destroy(&h->wake);
            uv_mutex_destroy(&h->lock);
            break;
        }
    }
    if (f->n_helpers < n_helpers) {
        write_fanout_stop(f);
        return -1;
    }
    return 0;
}

static void kick(fanout_helper *h) {
    uv_mutex_lock(&h->lock);
    h->kick = true;
    uv_cond_signal(&h->wake);
    uv_mutex_unlock(&h->lock);
}

void write_fanout_run(write_fanout *f, fanout_write *w, size_t n) {
    while (n > MAX_ROUND_WRITES) { /* a million connections at once: in parts */
        write_fanout_run(f, w, MAX_ROUND_WRITES);
        w += MAX_ROUND_WRITES;
        n -= MAX_ROUND_WRITES;
    }
    f->round++;
    __atomic_store_n(&f->done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&f->w, w, __ATOMIC_RELEASE);
    __atomic_store_n(&f->claim, pack(f->round, 0, n), __ATOMIC_SEQ_CST);
    /* An asleep helper takes no part now (its wake-up costs more than the
     * writes) but is kicked awake for the next rounds. */
    for (int i = 0; i < f->n_helpers; i++)
        if (!__atomic_load_n(&f->helpers[i].awake, __ATOMIC_SEQ_CST))
            kick(&f->helpers[i]);
    claim_and_write(f);
    /* A write a helper claimed is under way. Its thread may have been
     * preempted (more threads than cores): after a while, give the core up. */
    for (unsigned spins = 0; __atomic_load_n(&f->done, __ATOMIC_ACQUIRE) < n; spins++) {
        if (spins < 4096)
            cpu_relax();
        else
            sched_yield();
    }
    uint64_t by_helpers = 0;
    for (int i = 0; i < f->n_helpers; i++)
        by_helpers += __atomic_load_n(&f->helpers[i].writes, __ATOMIC_RELAXED);
    f->written_by_helpers = by_helpers;
}

void write_fanout_stop(write_fanout *f) {
    for (int i = 0; i < f->n_helpers; i++) {
        fanout_helper *h = &f->helpers[i];
        uv_mutex_lock(&h->lock);
        h->stopping = true;
        uv_cond_signal(&h->wake);
        uv_mutex_unlock(&h->lock);
        uv_thread_join(&h->thread);
        uv_cond_destroy(&h->wake);
        uv_mutex_destroy(&h->lock);
    }
    free(f->helpers);
    f->helpers = NULL;
    f->n_helpers = 0;
}
