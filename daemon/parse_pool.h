/*
 * parse_pool.h - threads that parse JSON-RPC request lines for the loop.
 *
 * Parsing a seed forecast's line (512 numbers, 5.7 KB) takes about 10 µs,
 * about half of what the loop thread spends on a request. With several GPUs
 * the one loop thread became the bottleneck (forecasts/s stopped growing
 * with workers), so under load it hands the parse of each line to these threads
 * and only dispatches the parsed document. Idle, it parses inline: a hand-off
 * costs two thread wake-ups, more than the parse.
 *
 * Order: lines come back to the loop in the order they were submitted (a
 * line parsed early waits for those before it), so a connection's requests
 * are dispatched in the order it sent them, whichever thread parsed them.
 * A submitted line holds a reference to its connection until it is back.
 */
#ifndef TOTOD_PARSE_POOL_H
#define TOTOD_PARSE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "conn.h"
#include "json_read.h"

/*
 * What the pool's prepare function made of a parsed document, off the loop;
 * freed with the line by its own free function (what the loop keeps of it,
 * it moves out first).
 */
typedef struct line_prepared {
    void *data;
    void (*free)(void *data);
} line_prepared;

/* One line, then its parse: doc and numbers (both NULL with jerr on a parse error). */
typedef struct parsed_line {
    struct parsed_line *next;
    conn *c;
    uint64_t received_ns;
    json_t *doc;
    proto_numbers *numbers;
    json_error_t jerr;
    line_prepared prepared; /* data NULL: nothing prepared */
    bool parsed;
    size_t len;
    char line[]; /* len bytes, not terminated */
} parsed_line;

/* Takes a parsed line (in submission order) and frees it with parsed_line_free. */
typedef void (*parse_deliver_fn)(void *ctx, parsed_line *p);
/* Runs on a parse thread after a successful parse: may fill l->prepared
 * from l->doc and l->numbers alone (nothing the loop owns). */
typedef void (*parse_prepare_fn)(parsed_line *l);

typedef struct parse_pool {
    uv_thread_t *threads;
    int n_threads;
    uv_mutex_t lock;
    uv_cond_t work;    /* a line was submitted, or the pool stops */
    parsed_line *head; /* submitted, not yet delivered, in order */
    parsed_line *tail;
    parsed_line *next;  /* the first line no thread has taken yet */
    uint64_t submitted; /* lines so far, read without the lock while polling */
    uint64_t poll_ns;   /* an idle thread polls this long for the next line, then sleeps */
    int sleepers;       /* threads waiting on work */
    bool stopping;
    uv_async_t arrived; /* the line at head is parsed */
    parse_deliver_fn deliver;
    parse_prepare_fn prepare; /* or NULL */
    void *ctx;
} parse_pool;

/* Starts n_threads threads (n_threads > 0) and the loop's async handle. A
 * thread that finds no line polls for one up to poll_ns before it sleeps
 * (a wake-up costs 20-100 µs on a virtual machine, more than a parse). 0 or -1. */
int parse_pool_start(parse_pool *p, uv_loop_t *loop, int n_threads, uint64_t poll_ns,
                     parse_prepare_fn prepare, parse_deliver_fn deliver, void *ctx);
/* Queues a copy of line for parsing. 0, or -1 (out of memory: parse it inline). */
int parse_pool_submit(parse_pool *p, conn *c, const char *line, size_t len, uint64_t received_ns);
/* The async handle, for the server's last close. */
uv_handle_t *parse_pool_handle(parse_pool *p);
/* Ends the threads (after the loop is done) and frees what was never delivered. */
void parse_pool_stop(parse_pool *p);
void parsed_line_free(parsed_line *l);

#endif
