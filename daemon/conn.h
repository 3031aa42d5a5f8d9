/*
 * conn.h - one client connection on the loop thread: reads bytes, frames
 * them into requests, writes answers, and applies the per-connection limits.
 *
 * Two framings share this machinery (reading, writing, reference counts,
 * flow control, closing):
 *  - CONN_LINES: one JSON-RPC message per line; complete lines go to
 *    ops->on_line, and many may be in flight at once.
 *  - CONN_HTTP: HTTP/1.1 requests (http.h); each complete request goes to
 *    ops->on_request, one at a time: the next one, even when pipelined, is
 *    handed out only after conn_http_done(), so responses leave in order.
 * Knows nothing of JSON-RPC or of what the HTTP endpoints mean. A socket
 * connection has one stream; --stdio has two ends (stdin, stdout), each a
 * stream (pipe, socket, terminal) or a file (a regular file, /dev/null):
 * libuv cannot poll a file, so a file end is read and written with uv_fs_*
 * requests, one at a time so that the bytes stay in order. Either way the
 * bytes go through the same framing, limits and flow control.
 *
 * Lifetime: a connection is reference counted. It holds one reference for
 * itself until its handles are closed; whoever still has to answer on it
 * (a queued job, an unfinished batch) holds one more. Once closed, answers
 * sent to it are dropped, and the memory goes with the last reference.
 *
 * Timeouts (CONN_HTTP with idle_timeout_ms): one timer, never running while
 * a request is handed out (its forecast may take as long as it takes). With
 * no request begun it measures idleness from the latest activity (accept, an
 * answer queued or written), then closes the connection; from the first byte
 * of a request it measures how long the request takes to arrive, then answers
 * 408 and closes; once input is over it bounds how long the client may leave
 * the answers owed to it unread. CONN_LINES on a socket with line_timeout_ms:
 * the same timer runs only while a line is begun and not complete (never
 * between requests: a JSON-RPC connection may idle for hours); at the limit
 * the line is refused and the connection closes once its answers are out.
 *
 * Flow control: when unsent output exceeds max_write_buffer the connection
 * stops reading (and stops handing out lines it has already read) until the
 * output drains to half of that. A slow reader stalls only itself. With
 * hold_inflight, the same happens while that many forecasts are unanswered
 * (conn_inflight_done() resumes it): --stdio's one client, a file perhaps,
 * cannot retry what max-inflight would refuse, so it is made to wait instead.
 */
#ifndef TOTOD_CONN_H
#define TOTOD_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "http.h"

typedef struct conn conn;

typedef enum conn_framing { CONN_LINES, CONN_HTTP } conn_framing;

typedef struct conn_ops {
    /* One line, without its '\n' (and '\r'); valid during the call only. */
    void (*on_line)(void *ctx, conn *c, const char *line, size_t len);
    /* A line grew past max_line_bytes. The connection reads no more
     * requests and closes once what it owes is written. */
    void (*on_line_too_long)(void *ctx, conn *c);
    /* The handles are closed; nothing more can be written. */
    void (*on_closed)(void *ctx, conn *c);
    /* CONN_HTTP: one complete request, valid until conn_http_done(). The
     * connection hands out nothing more until then. */
    void (*on_request)(void *ctx, conn *c, const http_request *req);
    /* CONN_HTTP: the bytes are not a request we can serve (status 400, 413,
     * 431, ...). Answer it; the connection then reads no more and closes. */
    void (*on_http_error)(void *ctx, conn *c, int status, const char *message);
    /* CONN_LINES: a line begun was not complete within line_timeout_ms (a
     * slowloris). Answer it; the connection then reads no more and closes. */
    void (*on_line_timeout)(void *ctx, conn *c);
} conn_ops;

typedef struct conn_limits {
    size_t max_line_bytes; /* CONN_HTTP: the largest request body */
    size_t max_write_buffer;
    int64_t hold_inflight; /* CONN_LINES: hand out no line while this many are in flight; 0: off */
    uint64_t idle_timeout_ms; /* CONN_HTTP: the idle and slow-request limit (below); 0: none */
    uint64_t line_timeout_ms; /* CONN_LINES on a socket: a line begun must end within it; 0: none */
} conn_limits;

typedef union conn_handle {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_pipe_t pipe;
    uv_tcp_t tcp;
    uv_tty_t tty;
} conn_handle;

struct conn_write;
struct fanout_write;
struct write_fanout;

/*
 * Answers deferred to the end of the loop iteration (conn_defer.c): a
 * JSON-RPC socket connection given a conn_deferred keeps what it sends
 * during one iteration in its own buffer, and conn_flush_deferred() writes
 * every such connection's bytes at once, over write_fanout.h's helper
 * threads when there are many. What the kernel does not take then goes the
 * usual way (libuv's queue, flow control).
 */
typedef struct conn_deferred {
    conn *head;   /* connections with deferred bytes; each holds a reference */
    size_t count; /* connections in the list */
    struct fanout_write *items;
    conn **conns;
    size_t cap; /* of items and conns */
} conn_deferred;

/* One end of --stdio that is a file rather than a stream (see above). */
typedef struct conn_file {
    bool active; /* this end is a file: the conn_handle beside it is unused */
    bool busy;   /* req is in flight (a read, a write or the close) */
    uv_file fd;
    uv_fs_t req;
    char *chunk;                           /* reading: the request reads here first */
    struct conn_write *queue, *queue_tail; /* writing: the head is in flight */
    size_t written;                        /* writing: bytes of the head already written */
} conn_file;

struct conn {
    conn *prev, *next; /* the server's list */
    void *ctx;
    const conn_ops *ops; /* NULL until the connection is set up */
    conn_limits lim;
    conn_framing framing;
    http_parser http; /* CONN_HTTP only */
    bool http_busy;   /* CONN_HTTP: a request is handed out and not yet answered */
    bool in_process;  /* handing out input now: no reentry */
    char peer[64];    /* for logs */
    uv_loop_t *loop;
    conn_handle in_h, out_h;
    conn_file in_f, out_f; /* stdio: an end that is a file (in_f.active, out_f.active) */
    uv_stream_t *in, *out; /* equal for a socket; unused for an end that is a file */
    uv_shutdown_t shutdown_req;
    uv_timer_t timer;    /* CONN_HTTP with idle_timeout_ms (see Timeouts) */
    bool timer_on;       /* timer is initialised (and counts in open_handles) */
    bool timing_request; /* timer measures a request begun, not idleness */
    int open_handles;
    int refs;
    char *buf; /* bytes read, not yet split into lines */
    size_t len, cap, scanned;
    size_t write_bytes;      /* queued for writing, not yet written */
    int64_t inflight;        /* forecasts queued or running (max-inflight) */
    int64_t parsing;         /* lines at the server's parse threads, not back yet */
    conn_deferred *deferred; /* set: answers wait for conn_flush_deferred() (above) */
    conn *deferred_next;     /* in deferred's list */
    bool deferred_listed;
    char *dbuf; /* deferred bytes */
    size_t dlen, dcap;
    bool reading;    /* uv_read_start is in force */
    bool eof;        /* the peer will send no more bytes */
    bool input_done; /* no more requests: EOF, a too-long line, or shutdown */
    bool discard;    /* still read, but drop the bytes (after a too-long line) */
    bool paused;     /* output over max_write_buffer */
    bool ending;     /* write side shutting down, then close */
    bool closing;    /* uv_close called */
    bool failed;     /* closed by a read or write error, not by agreement */
    /* Access (docs/security.md), set and read by the server, not here: a Unix
     * socket or stdio connection is local (its file permissions decided);
     * a TCP one is authenticated once it presented the token. */
    bool local;
    bool authenticated;
    int auth_failures; /* wrong tokens so far; AUTH_MAX_FAILURES closes */
};

/* Accepts a pending connection on listener (TCP or Unix). NULL on failure. */
conn *conn_accept(uv_stream_t *listener, void *ctx, const conn_ops *ops, const conn_limits *lim,
                  conn_framing framing);
/* stdin/stdout as one connection; NULL with err set when they are not streams. */
conn *conn_open_stdio(uv_loop_t *loop, void *ctx, const conn_ops *ops, const conn_limits *lim,
                      char *err, size_t err_len);
int conn_start(conn *c);

/* Queues text and a '\n' for writing; dropped when the connection is closed. */
void conn_send(conn *c, const char *text, size_t len);
/* Queues bytes as they are (an HTTP response); dropped when the connection is closed. */
void conn_send_raw(conn *c, const char *data, size_t len);
/* Writes every deferred connection's bytes (above): over fanout when it is
 * given and at least fanout_min connections wait, else on this thread. */
void conn_flush_deferred(conn_deferred *d, struct write_fanout *fanout, size_t fanout_min);
void conn_deferred_free(conn_deferred *d);

/* conn.c for conn_defer.c: bytes (newlines included) to libuv's queue, never deferred. */
void conn_queue_bytes(conn *c, const char *data, size_t len);
/* conn_defer.c for conn.c: keeps bytes (and a '\n') for the flush. 0, or -1:
 * nothing was deferred yet and there is no memory; write them the usual way. */
int conn_defer(conn *c, const char *data, size_t len, bool newline);
/* CONN_HTTP: the answer to the current request is queued. Without keep_alive
 * the connection reads no more and closes once written; else the next
 * request (maybe already read) is handed out. */
void conn_http_done(conn *c, bool keep_alive);

void conn_hold(conn *c);
void conn_release(conn *c); /* may free c */

/* A forecast on c is answered: one fewer in flight, and held input (hold_inflight) may go on. */
void conn_inflight_done(conn *c);

/* Reads no more requests; closes once everything owed is written. */
void conn_end_input(conn *c);
/* Closes at once; unsent output is lost. */
void conn_close(conn *c);

static inline bool conn_is_open(const conn *c) {
    return !c->closing && !c->ending;
}

#endif
