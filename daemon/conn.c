/* conn.c - a client connection: lines or HTTP requests in, answers out (see conn.h). */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define READ_CHUNK 65536

/* Bytes on their way out: a stream write, or an entry of a file end's queue. */
typedef struct conn_write {
    uv_write_t req;
    conn *c;
    struct conn_write *next; /* a file end's queue */
    size_t size;
    char data[];
} write_req;

static void process_input(conn *c);
static void maybe_finish(conn *c);
static void update_reading(conn *c);
static void timer_update(conn *c);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* One end (a handle or a file) is closed; the last one ends the connection. */
static void end_closed(conn *c) {
    if (--c->open_handles > 0)
        return;
    if (c->ops)
        c->ops->on_closed(c->ctx, c);
    conn_release(c); /* the connection's own reference */
}

static void close_cb(uv_handle_t *h) {
    end_closed(h->data);
}

static void file_close_cb(uv_fs_t *req) {
    conn *c = req->data;
    uv_fs_req_cleanup(req);
    end_closed(c);
}

/* Closes a file end, after the request in flight on it, which may still use its buffer. */
static void file_close(conn *c, conn_file *f) {
    if (f->busy)
        return; /* the request's callback comes back here */
    f->busy = true;
    f->req.data = c;
    /* The end's own duplicate: stdin and stdout stay open, as libuv leaves them for a stream. */
    if (uv_fs_close(c->loop, &f->req, f->fd, file_close_cb))
        end_closed(c); /* cannot happen with a callback given; the end counts as closed */
}

/* Drops the writes queued on a file end, except the one in flight. */
static void file_drop_queued(conn *c, conn_file *f) {
    write_req *keep = f->busy ? f->queue : NULL;
    write_req *w = keep ? keep->next : f->queue;
    while (w) {
        write_req *next = w->next;
        c->write_bytes -= w->size;
        free(w);
        w = next;
    }
    if (keep)
        keep->next = NULL;
    f->queue = f->queue_tail = keep;
}

static void close_end(conn *c, conn_handle *h, conn_file *f) {
    if (!f->active) {
        uv_close(&h->handle, close_cb);
        return;
    }
    file_drop_queued(c, f);
    file_close(c, f);
}

void conn_close(conn *c) {
    if (c->closing)
        return;
    c->closing = true;
    c->reading = false;
    close_end(c, &c->in_h, &c->in_f);
    if (c->out != c->in)
        close_end(c, &c->out_h, &c->out_f);
    if (c->timer_on)
        uv_close((uv_handle_t *)&c->timer, close_cb);
}

void conn_hold(conn *c) {
    c->refs++;
}

void conn_release(conn *c) {
    if (--c->refs > 0) {
        maybe_finish(c);
        return;
    }
    if (c->framing == CONN_HTTP)
        http_parser_free(&c->http);
    for (write_req *w = c->out_f.queue, *next; w; w = next) { /* none left, normally */
        next = w->next;
        free(w);
    }
    free(c->in_f.chunk);
    free(c->buf);
    free(c->dbuf);
    free(c);
}

/* Whether the connection waits for answers before handing out more lines (hold_inflight). */
static bool held_for_answers(const conn *c) {
    return c->lim.hold_inflight > 0 && c->inflight >= c->lim.hold_inflight;
}

void conn_inflight_done(conn *c) {
    bool was_held = held_for_answers(c);
    c->inflight--;
    if (!was_held || c->closing)
        return;
    process_input(c); /* the lines read before the hold come first */
    update_reading(c);
}

static void file_read_cb(uv_fs_t *req);

/* A file end reads one chunk at a time while reading is wanted. */
static void file_read_next(conn *c) {
    conn_file *f = &c->in_f;
    if (f->busy || !c->reading || c->closing)
        return;
    if (!f->chunk && !(f->chunk = malloc(READ_CHUNK))) {
        log_msg(TLOG_ERR, "connection %s: out of memory for reading; closing", c->peer);
        conn_close(c);
        return;
    }
    uv_buf_t buf = uv_buf_init(f->chunk, READ_CHUNK);
    f->req.data = c;
    /* Offset -1 reads from the file's current position, as a shell's '<' leaves it. */
    if (uv_fs_read(c->loop, &f->req, f->fd, &buf, 1, -1, file_read_cb)) {
        conn_close(c);
        return;
    }
    f->busy = true;
}

/* Starts or stops reading to match the connection's state. */
static void update_reading(conn *c) {
    bool want = !c->closing && !c->eof && !c->paused && (!c->input_done || c->discard);
    /* HTTP: while a request is being answered, read ahead only a little. */
    if (c->http_busy && !c->discard && c->len >= READ_CHUNK)
        want = false;
    /* Also hold while answers are owed (hold_inflight), or the buffer would grow without bound. */
    if (held_for_answers(c) && !c->discard)
        want = false;
    if (want == c->reading)
        return;
    c->reading = want;
    if (c->in_f.active) {
        file_read_next(c); /* stopping: the read in flight, if any, is the last */
        return;
    }
    if (!want) {
        uv_read_stop(c->in);
        return;
    }
    if (uv_read_start(c->in, alloc_cb, read_cb))
        conn_close(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
    (void)status; /* closing either way */
    conn_close(req->data);
}

/* Once input is over and nothing is owed, flush the output and close. */
static void maybe_finish(conn *c) {
    if (c->closing || c->ending || !c->input_done || c->refs > 1)
        return;
    c->ending = true;
    if (c->out_f.active) {
        if (!c->out_f.queue)
            conn_close(c); /* else the last write's callback closes */
        return;
    }
    c->shutdown_req.data = c;
    /* uv_shutdown waits for queued writes, then half-closes the output. */
    if (uv_shutdown(&c->shutdown_req, c->out, shutdown_cb))
        conn_close(c);
}

void conn_end_input(conn *c) {
    c->input_done = true;
    c->len = c->scanned = 0; /* requests not yet handed out are not accepted */
    update_reading(c);
    maybe_finish(c);
    timer_update(c); /* now bounds how long the answers owed may stay unread */
}

static void on_timeout(uv_timer_t *t) {
    conn *c = t->data;
    unsigned long long ms = (unsigned long long)c->lim.idle_timeout_ms;
    if (c->closing || c->http_busy)
        return; /* the timer is stopped in both cases */
    if (c->framing == CONN_LINES) {
        log_msg(TLOG_DEBUG, "connection %s: line not complete %llu ms after its first byte",
                c->peer, (unsigned long long)c->lim.line_timeout_ms);
        c->timing_request = false;
        c->discard = true; /* keep draining so that closing does not reset the answer away */
        c->ops->on_line_timeout(c->ctx, c);
        conn_end_input(c);
        return;
    }
    if (c->timing_request) {
        log_msg(TLOG_DEBUG, "connection %s: request not complete %llu ms after its first byte",
                c->peer, ms);
        c->timing_request = false;
        c->discard = true; /* as for a malformed request: do not let a reset eat the answer */
        c->ops->on_http_error(c->ctx, c, 408, "request not complete within http-idle-timeout-ms");
        conn_end_input(c);
    } else if (!c->input_done && c->write_bytes == 0) {
        log_msg(TLOG_DEBUG, "connection %s: idle for %llu ms; closing", c->peer, ms);
        conn_end_input(c); /* nothing owed: an orderly close */
    } else {
        log_msg(TLOG_DEBUG, "connection %s: answers unread for %llu ms; closing", c->peer, ms);
        conn_close(c);
    }
}

/* CONN_LINES: times a line from its first byte to its end, and nothing else
 * (not while reading is paused for our own flow control). */
static void line_timer_update(conn *c) {
    bool begun = !c->input_done && !c->paused && c->len > 0;
    if (!begun) {
        uv_timer_stop(&c->timer);
        c->timing_request = false;
    } else if (!c->timing_request) {
        c->timing_request = true;
        uv_timer_start(&c->timer, on_timeout, c->lim.line_timeout_ms, 0);
    }
}

/* Sets the timer to what the connection waits for now (see Timeouts in conn.h). */
static void timer_update(conn *c) {
    if (!c->timer_on || c->closing)
        return;
    if (c->framing == CONN_LINES) {
        line_timer_update(c);
        return;
    }
    if (c->http_busy) { /* a request is being answered: never time it out */
        uv_timer_stop(&c->timer);
        c->timing_request = false;
        return;
    }
    bool begun = !c->input_done && (c->len > 0 || http_parser_started(&c->http));
    if (begun && c->timing_request)
        return; /* counted from the request's first byte: a trickle does not extend it */
    c->timing_request = begun;
    uv_timer_start(&c->timer, on_timeout, c->lim.idle_timeout_ms, 0); /* restarts */
}

static void line_too_long(conn *c) {
    c->discard = true; /* keep draining input so that closing does not reset the answer away */
    c->ops->on_line_too_long(c->ctx, c);
    conn_end_input(c);
}

/* Hands out complete lines while the connection may take more requests. */
static void process_lines(conn *c) {
    size_t start = 0;
    while (!c->input_done && !c->paused && !c->closing && !held_for_answers(c)) {
        char *nl = memchr(c->buf + c->scanned, '\n', c->len - c->scanned);
        size_t end = nl ? (size_t)(nl - c->buf) : c->len;
        if (end - start > c->lim.max_line_bytes) {
            line_too_long(c);
            return;
        }
        c->scanned = nl ? end + 1 : end;
        if (!nl)
            break;
        size_t n = end - start;
        if (n && c->buf[end - 1] == '\r')
            n--;
        const char *line = c->buf + start;
        start = end + 1;
        c->ops->on_line(c->ctx, c, line, n); /* may pause or end the connection */
    }
    if (c->input_done)
        return;
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
    c->scanned -= start;
    /* After EOF, once every complete line is handed out, input is over. */
    if (c->eof && !c->paused && !held_for_answers(c))
        conn_end_input(c);
}

static void http_failed(conn *c) {
    c->discard = true; /* as for a too-long line: do not let a reset eat the answer */
    c->ops->on_http_error(c->ctx, c, http_parser_error_status(&c->http),
                          http_parser_error_message(&c->http));
    conn_end_input(c);
}

/* Feeds the parser and hands out one request at a time (see conn.h). */
static void process_http(conn *c) {
    size_t start = 0;
    while (!c->input_done && !c->paused && !c->closing && !c->http_busy && start < c->len) {
        size_t used;
        http_result r = http_parser_feed(&c->http, c->buf + start, c->len - start, &used);
        start += used;
        if (http_parser_take_continue(&c->http))
            conn_send_raw(c, HTTP_CONTINUE_RESPONSE, sizeof HTTP_CONTINUE_RESPONSE - 1);
        if (r == HTTP_NEED_MORE)
            break;
        if (r == HTTP_ERROR) {
            http_failed(c);
            return;
        }
        c->http_busy = true;
        c->ops->on_request(c->ctx, c, http_parser_request(&c->http)); /* may answer at once */
    }
    if (c->input_done)
        return;
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
    /* After EOF, once every complete request is answered, input is over (a
     * request cut short by EOF is not one). */
    if (c->eof && !c->paused && !c->http_busy)
        conn_end_input(c);
    else
        update_reading(c);
}

static void process_input(conn *c) {
    if (c->in_process)
        return; /* an answer given while handing out; the loop below goes on */
    c->in_process = true;
    if (c->framing == CONN_HTTP) {
        process_http(c);
        timer_update(c); /* bytes arrived, or a request was handed out or answered */
    } else {
        process_lines(c);
        timer_update(c); /* a line begun, or none */
    }
    c->in_process = false;
}

void conn_http_done(conn *c, bool keep_alive) {
    http_parser_reset(&c->http);
    c->http_busy = false;
    if (!keep_alive) {
        conn_end_input(c);
        return;
    }
    if (!c->closing)
        process_input(c);
}

/* Makes room for at least `room` more bytes, without passing the line limit by much. */
static void grow(conn *c, size_t room) {
    if (c->cap - c->len >= room)
        return;
    size_t cap = c->cap * 2 > c->len + room ? c->cap * 2 : c->len + room;
    size_t most = c->lim.max_line_bytes + READ_CHUNK + 2; /* a line, '\r\n', a chunk */
    if (cap > most && most >= c->len + room)
        cap = most;
    char *buf = realloc(c->buf, cap);
    if (buf) {
        c->buf = buf;
        c->cap = cap;
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out) {
    conn *c = h->data;
    (void)suggested;
    if (c->discard)
        c->len = c->scanned = 0; /* the bytes are dropped; reuse the buffer */
    grow(c, READ_CHUNK);
    /* No room (out of memory) makes libuv report UV_ENOBUFS: the connection closes. */
    *out = uv_buf_init(c->buf ? c->buf + c->len : NULL, (unsigned)(c->cap - c->len));
}

/* nread bytes are at buf + len (or EOF, or an error): the same for streams and files. */
static void got_input(conn *c, ssize_t nread) {
    if (nread == UV_EOF) {
        c->eof = true;
        c->reading = false; /* libuv stops reading at EOF */
        c->discard = false;
        if (c->framing == CONN_LINES && !c->input_done &&
            c->len > 0) { /* a last line without '\n' */
            grow(c, 1);
            if (c->cap > c->len)
                c->buf[c->len++] = '\n';
        }
        if (c->input_done)
            maybe_finish(c);
        else
            process_input(c);
    } else if (nread < 0) {
        log_msg(TLOG_DEBUG, "connection %s: read error: %s", c->peer, uv_strerror((int)nread));
        c->failed = true;
        conn_close(c);
    } else if (nread > 0 && !c->discard && !c->input_done) {
        c->len += (size_t)nread;
        process_input(c);
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    (void)buf; /* it is c->buf + c->len (alloc_cb) */
    got_input(s->data, nread);
}

/* The file's bytes join buf here: the request must not read into buf, which
 * moves and shrinks while lines are handed out. */
static void file_read_cb(uv_fs_t *req) {
    conn *c = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    c->in_f.busy = false;
    if (c->closing) {
        file_close(c, &c->in_f);
        return;
    }
    if (n > 0 && !c->discard && !c->input_done) {
        grow(c, (size_t)n);
        if (!c->buf || c->cap - c->len < (size_t)n)
            n = UV_ENOBUFS; /* out of memory: closes, as for a stream */
        else
            memcpy(c->buf + c->len, c->in_f.chunk, (size_t)n);
    }
    got_input(c, n == 0 ? UV_EOF : n);
    file_read_next(c);
}

/* A write is over (status < 0: failed): the same for streams and files. */
static void write_done(write_req *w, int status) {
    conn *c = w->c;
    c->write_bytes -= w->size;
    free(w);
    if (status < 0) {
        if (!c->closing) {
            log_msg(TLOG_DEBUG, "connection %s: write error: %s", c->peer, uv_strerror(status));
            c->failed = true;
        }
        conn_close(c);
        return;
    }
    if (c->paused && c->write_bytes <= c->lim.max_write_buffer / 2) {
        c->paused = false;
        process_input(c); /* requests read before the pause come first */
        update_reading(c);
    }
    timer_update(c); /* the client reads: not idle */
}

static void write_cb(uv_write_t *req, int status) {
    write_done((write_req *)req, status);
}

static void file_write_cb(uv_fs_t *req);

/* A file end writes its queue's head, one request at a time to keep the order. */
static void file_write_next(conn *c) {
    conn_file *f = &c->out_f;
    write_req *w = f->queue;
    if (f->busy || !w)
        return;
    uv_buf_t buf = uv_buf_init(w->data + f->written, (unsigned)(w->size - f->written));
    f->req.data = c;
    /* Offset -1 writes at the current position (the end, with '>>'). */
    int rc = uv_fs_write(c->loop, &f->req, f->fd, &buf, 1, -1, file_write_cb);
    if (rc == 0) {
        f->busy = true;
        return;
    }
    f->queue = w->next;
    if (!f->queue)
        f->queue_tail = NULL;
    f->written = 0;
    write_done(w, rc);
}

static void file_write_cb(uv_fs_t *req) {
    conn *c = req->data;
    conn_file *f = &c->out_f;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    f->busy = false;
    write_req *w = f->queue;
    if (n == 0)
        n = UV_EIO; /* no progress: do not spin */
    if (n > 0 && (f->written += (size_t)n) < w->size && !c->closing) {
        file_write_next(c); /* a short write: the rest */
        return;
    }
    f->queue = w->next;
    if (!f->queue)
        f->queue_tail = NULL;
    f->written = 0;
    write_done(w, n < 0 ? (int)n : 0);
    if (c->closing) {
        file_drop_queued(c, f);
        file_close(c, f);
        return;
    }
    file_write_next(c);
    if (c->ending && !f->queue)
        conn_close(c); /* everything owed is written: what uv_shutdown does for a stream */
}

/* Queues len bytes of data, and a '\n' when newline. */
/*
 * Sockets, pipes and terminals with nothing queued: the kernel takes the
 * answer at once, without a copy, a write request or an epoll change (libuv
 * refuses when earlier writes wait, so order holds). Returns the bytes taken.
 */
static size_t write_now(conn *c, const char *data, size_t len, bool newline) {
    if (c->out_f.active)
        return 0;
    uv_buf_t bufs[2] = {uv_buf_init((char *)data, (unsigned)len), uv_buf_init("\n", 1)};
    int n = uv_try_write(c->out, bufs, newline ? 2 : 1);
    return n > 0 ? (size_t)n : 0; /* errors show again, and are handled, in uv_write */
}

static void queue_rest(conn *c, const char *data, size_t len, bool newline);

static void queue_write(conn *c, const char *data, size_t len, bool newline) {
    if (!conn_is_open(c))
        return;
    /* Nothing in libuv's queue: the bytes may wait for the iteration's flush. */
    if (c->deferred && c->write_bytes == 0 && conn_defer(c, data, len, newline) == 0)
        return;
    size_t taken = write_now(c, data, len, newline);
    if (taken >= len + newline)
        return;
    if (taken >= len) { /* only the newline is left */
        data += len;
        len = 0;
    } else {
        data += taken;
        len -= taken;
    }
    queue_rest(c, data, len, newline);
}

void conn_queue_bytes(conn *c, const char *data, size_t len) {
    if (conn_is_open(c) && len > 0)
        queue_rest(c, data, len, false);
}

/* What the kernel did not take at once: a copy to libuv's queue (or a file end's). */
static void queue_rest(conn *c, const char *data, size_t len, bool newline) {
    write_req *w = malloc(sizeof *w + len + 1);
    if (!w) {
        log_msg(TLOG_ERR, "connection %s: out of memory for an answer; closing", c->peer);
        c->failed = true;
        conn_close(c);
        return;
    }
    memcpy(w->data, data, len);
    w->data[len] = '\n';
    w->c = c;
    w->next = NULL;
    w->size = len + newline;
    c->write_bytes += w->size;
    if (c->out_f.active) {
        conn_file *f = &c->out_f;
        if (f->queue_tail)
            f->queue_tail->next = w;
        else
            f->queue = w;
        f->queue_tail = w;
        file_write_next(c);
        if (!conn_is_open(c))
            return; /* the write failed at once and closed the connection */
    } else {
        uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->size);
        if (uv_write(&w->req, c->out, &buf, 1, write_cb)) {
            c->write_bytes -= w->size;
            free(w);
            conn_close(c);
            return;
        }
    }
    if (!c->paused && c->write_bytes > c->lim.max_write_buffer) {
        c->paused = true; /* backpressure: read nothing more until the client reads */
        update_reading(c);
    }
}

void conn_send(conn *c, const char *text, size_t len) {
    queue_write(c, text, len, true);
}

void conn_send_raw(conn *c, const char *data, size_t len) {
    queue_write(c, data, len, false);
}

int conn_start(conn *c) {
    update_reading(c);
    timer_update(c); /* idle from the start */
    return c->closing ? -1 : 0;
}

static conn *conn_new(uv_loop_t *loop, void *ctx, const conn_limits *lim) {
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->ctx = ctx;
    c->lim = *lim;
    c->refs = 1;
    c->in = c->out = &c->in_h.stream;
    c->in_h.handle.data = c->out_h.handle.data = c;
    return c;
}

static void describe_peer(conn *c) {
    struct sockaddr_storage addr;
    int len = sizeof addr;
    char ip[48] = "?";
    if (c->in->type != UV_TCP || uv_tcp_getpeername(&c->in_h.tcp, (struct sockaddr *)&addr, &len)) {
        snprintf(c->peer, sizeof c->peer, "unix");
        return;
    }
    int port = 0;
    if (addr.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&addr;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
    }
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
}

conn *conn_accept(uv_stream_t *listener, void *ctx, const conn_ops *ops, const conn_limits *lim,
                  conn_framing framing) {
    conn *c = conn_new(listener->loop, ctx, lim);
    if (!c)
        return NULL;
    if (framing == CONN_HTTP) {
        http_limits hl = {.max_body_bytes = lim->max_line_bytes}; /* default header limits */
        http_parser_init(&c->http, &hl);
        c->framing = CONN_HTTP;
    }
    int rc = listener->type == UV_TCP ? uv_tcp_init(listener->loop, &c->in_h.tcp)
                                      : uv_pipe_init(listener->loop, &c->in_h.pipe, 0);
    if (rc) {
        free(c);
        return NULL;
    }
    c->open_handles = 1;
    if ((c->framing == CONN_HTTP && lim->idle_timeout_ms > 0) ||
        (c->framing == CONN_LINES && lim->line_timeout_ms > 0)) {
        uv_timer_init(listener->loop, &c->timer); /* cannot fail on Linux */
        c->timer.data = c;
        c->timer_on = true;
        c->open_handles++;
    }
    if (uv_accept(listener, c->in)) {
        conn_close(c); /* ops is still NULL: nobody is told */
        return NULL;
    }
    describe_peer(c);
    c->ops = ops;
    return c;
}

/*
 * Opens fd as one end of --stdio: a pipe, socket or terminal as a libuv
 * stream, a regular file or a character device (/dev/null) as a file end.
 * 0: open; 1: a handle to close; -1: nothing to close.
 */
static int open_std(uv_loop_t *loop, conn_handle *h, conn_file *f, int fd, bool readable) {
    switch (uv_guess_handle(fd)) {
    case UV_FILE:
        /* A duplicate shares the file position; closing it later leaves fd itself alone. */
        f->fd = dup(fd);
        f->active = f->fd >= 0;
        return f->active ? 0 : -1;
    case UV_NAMED_PIPE:
        if (uv_pipe_init(loop, &h->pipe, 0))
            return -1;
        return uv_pipe_open(&h->pipe, fd) ? 1 : 0;
    case UV_TCP:
        if (uv_tcp_init(loop, &h->tcp))
            return -1;
        return uv_tcp_open(&h->tcp, fd) ? 1 : 0;
    case UV_TTY:
        return uv_tty_init(loop, &h->tty, fd, readable) ? -1 : 0;
    default:
        return -1;
    }
}

conn *conn_open_stdio(uv_loop_t *loop, void *ctx, const conn_ops *ops, const conn_limits *lim,
                      char *err, size_t err_len) {
    conn *c = conn_new(loop, ctx, lim);
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    snprintf(c->peer, sizeof c->peer, "stdio");
    c->out = &c->out_h.stream;
    int in = open_std(loop, &c->in_h, &c->in_f, 0, true);
    int out = in < 0 ? -1 : open_std(loop, &c->out_h, &c->out_f, 1, false);
    if (in == 0 && out == 0) {
        c->open_handles = 2;
        c->ops = ops;
        return c;
    }
    snprintf(err, err_len,
             "--stdio needs stdin and stdout to be files, pipes, sockets or terminals (%s is "
             "not: a directory, or closed?)",
             in != 0 ? "stdin" : "stdout");
    /* Undo: close the handles and descriptors made. */
    if (c->in_f.active)
        close(c->in_f.fd);
    if (c->out_f.active)
        close(c->out_f.fd);
    bool close_in = in >= 0 && !c->in_f.active, close_out = out >= 0 && !c->out_f.active;
    c->open_handles = close_in + close_out;
    if (c->open_handles == 0) {
        free(c);
        return NULL;
    }
    c->closing = true;
    if (close_in)
        uv_close(&c->in_h.handle, close_cb);
    if (close_out)
        uv_close(&c->out_h.handle, close_cb);
    return NULL;
}
