/*
 * write_fanout.h - writes to many sockets at once, spread over helper threads.
 *
 * The loop thread's largest cost per forecast is the write of its answer:
 * the system call, and the kernel waking the client on the other end. When a
 * batch of 60 answers comes back, the loop would write them one after the
 * other. Instead the writes queued during one loop iteration are made at its
 * end (conn.h, conn_flush_deferred), all at once: the helper threads that
 * are awake and the loop itself take them one at a time until none is left,
 * and the loop waits only for the writes already taken. Nothing else runs on
 * the loop meanwhile, so no connection is touched by two threads at once.
 *
 * A helper polls for the next round up to poll_ns after each one, then
 * sleeps; a sleeping helper takes no part (waking it would cost more than
 * the writes) but is woken for the rounds after.
 */
#ifndef TOTOD_WRITE_FANOUT_H
#define TOTOD_WRITE_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

/* One socket write: result is the bytes written, or -errno. */
typedef struct fanout_write {
    int fd;
    const char *data;
    size_t len;
    ssize_t result;
} fanout_write;

typedef struct fanout_helper fanout_helper;

typedef struct write_fanout {
    fanout_helper *helpers;
    int n_helpers;
    uint64_t poll_ns;
    uint64_t round;              /* the loop's count of rounds */
    fanout_write *w;             /* atomic: the current round's writes */
    uint64_t claim;              /* atomic: round, next index, count (write_fanout.c) */
    uint64_t done;               /* atomic: writes of the round made */
    uint64_t written_by_helpers; /* writes made by helpers so far (metrics) */
} write_fanout;

/* Starts n_helpers threads (> 0). 0 or -1 (nothing to free). */
int write_fanout_start(write_fanout *f, int n_helpers, uint64_t poll_ns);
/* Makes every write of w (n of them), the loop's share on the calling thread. */
void write_fanout_run(write_fanout *f, fanout_write *w, size_t n);
/* Makes the writes on the calling thread alone. */
void write_fanout_inline(fanout_write *w, size_t n);
/* Ends the threads and frees them. */
void write_fanout_stop(write_fanout *f);

#endif
