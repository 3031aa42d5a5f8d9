/* io_threads.c - the loop thread's helpers (see io_threads.h). */
#include "io_threads.h"

#include "log.h"

/* Fewer deferred answers than this are written by the loop alone: a round
 * with the helpers costs about as much as a few writes. */
#define FANOUT_MIN 8

/* Answers come in rounds, one per finished model call (every 0.5-2 ms under
 * load), not one by one like request lines: a write helper polls this many
 * times longer than a parse thread, or it would be asleep at each round and
 * get no share. The price is that much spinning after each round. */
#define WRITE_POLL_FACTOR 10

static void flush(io_threads *t) {
    conn_flush_deferred(&t->deferred, t->fanout_on ? &t->fanout : NULL, FANOUT_MIN);
}

static void on_prepare(uv_prepare_t *h) {
    flush(h->data);
}

static void on_check(uv_check_t *h) {
    flush(h->data);
}

void io_threads_start(io_threads *t, uv_loop_t *loop, int n, uint64_t poll_ns,
                      parse_prepare_fn prepare, parse_deliver_fn deliver, void *ctx) {
    if (n <= 0)
        return;
    if (parse_pool_start(&t->parse, loop, n, poll_ns, prepare, deliver, ctx) == 0)
        t->parse_on = true;
    else
        log_msg(TLOG_WARNING, "cannot start %d parse threads: request lines parse on the loop", n);
    if (write_fanout_start(&t->fanout, n, poll_ns * WRITE_POLL_FACTOR) == 0)
        t->fanout_on = true;
    else
        log_msg(TLOG_WARNING, "cannot start %d write threads: the loop writes every answer", n);
    /* Handles on a running loop: these inits cannot fail on Linux. */
    uv_prepare_init(loop, &t->prepare);
    uv_check_init(loop, &t->check);
    t->prepare.data = t->check.data = t;
    uv_prepare_start(&t->prepare, on_prepare);
    uv_check_start(&t->check, on_check);
    t->handles_on = true;
    log_info("%d I/O threads: request lines parsed and answers written off the loop under load", n);
}

void io_threads_adopt(io_threads *t, conn *c) {
    if (t->fanout_on && c->framing == CONN_LINES)
        c->deferred = &t->deferred;
}

uint64_t io_threads_answers_written(const io_threads *t) {
    return t->fanout_on ? t->fanout.written_by_helpers : 0;
}

void io_threads_close_handles(io_threads *t) {
    if (t->parse_on && !uv_is_closing(parse_pool_handle(&t->parse)))
        uv_close(parse_pool_handle(&t->parse), NULL);
    if (t->handles_on && !uv_is_closing((uv_handle_t *)&t->prepare)) {
        flush(t); /* nothing is left, normally: every connection is closed */
        uv_close((uv_handle_t *)&t->prepare, NULL);
        uv_close((uv_handle_t *)&t->check, NULL);
    }
}

void io_threads_stop(io_threads *t) {
    if (t->parse_on)
        parse_pool_stop(&t->parse);
    if (t->fanout_on)
        write_fanout_stop(&t->fanout);
    conn_deferred_free(&t->deferred);
    t->parse_on = t->fanout_on = false;
}
