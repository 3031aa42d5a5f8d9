/*
 * io_threads.h - the loop thread's helpers (io-threads): request lines parsed
 * off the loop under load (parse_pool.h), and answers written at the end of
 * each loop iteration, many sockets at once (conn.h's deferred writes over
 * write_fanout.h). With several GPUs the one loop thread limits
 * forecasts/s without them; they take its two largest costs per request,
 * the parse of the line and the write of the answer, off it. 0 threads:
 * neither.
 */
#ifndef TOTOD_IO_THREADS_H
#define TOTOD_IO_THREADS_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "conn.h"
#include "parse_pool.h"
#include "write_fanout.h"

typedef struct io_threads {
    parse_pool parse;
    bool parse_on;
    write_fanout fanout;
    bool fanout_on;
    conn_deferred deferred;
    uv_prepare_t prepare; /* flushes before the loop may block */
    uv_check_t check;     /* flushes right after the iteration's I/O callbacks */
    bool handles_on;
} io_threads;

/* n threads of each kind (helpers poll poll_ns for work before sleeping);
 * a parse thread runs prepare (may be NULL) on each parsed line, then the
 * loop gets it through deliver(ctx, line). Logs and carries on without what
 * cannot start. */
void io_threads_start(io_threads *t, uv_loop_t *loop, int n, uint64_t poll_ns,
                      parse_prepare_fn prepare, parse_deliver_fn deliver, void *ctx);
/* A new JSON-RPC socket connection: its answers are deferred and flushed together. */
void io_threads_adopt(io_threads *t, conn *c);
/* Answers written by the helper threads so far. */
uint64_t io_threads_answers_written(const io_threads *t);
/* The loop handles, for the server's last close. */
void io_threads_close_handles(io_threads *t);
/* Ends the threads, after the loop is done. */
void io_threads_stop(io_threads *t);

#endif
