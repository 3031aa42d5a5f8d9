/* conn.c - a client connection: lines or HTTP requests in, answers out (see conn.h). */
#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define READ_CHUNK 65536

typedef struct write_req {
    uv_write_t req;
    conn *c;
    size_t size;
    char data[];
} write_req;

static void process_input(conn *c);
static void maybe_finish(conn *c);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *out);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void close_cb(uv_handle_t *h) {
    conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    if (c->ops)
        c->ops->on_closed(c->ctx, c);
    conn_release(c); /* the connection's own reference */
}

void conn_close(conn *c) {
    if (c->closing)
        return;
    c->closing = true;
    c->reading = false;
    uv_close(&c->in_h.handle, close_cb);
    if (c->out != c->in)
        uv_close(&c->out_h.handle, close_cb);
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
    free(c->buf);
    free(c);
}

/* Starts or stops reading to match the connection's state. */
static void update_reading(conn *c) {
    bool want = !c->closing && !c->eof && !c->paused && (!c->input_done || c->discard);
    /* HTTP: while a request is being answered, read ahead only a little. */
    if (c->http_busy && !c->discard && c->len >= READ_CHUNK)
        want = false;
    if (want == c->reading)
        return;
    c->reading = want;
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
}

static void line_too_long(conn *c) {
    c->discard = true; /* keep draining input so that closing does not reset the answer away */
    c->ops->on_line_too_long(c->ctx, c);
    conn_end_input(c);
}

/* Hands out complete lines while the connection may take more requests. */
static void process_lines(conn *c) {
    size_t start = 0;
    while (!c->input_done && !c->paused && !c->closing) {
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
    if (c->eof && !c->paused)
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
    if (c->framing == CONN_HTTP)
        process_http(c);
    else
        process_lines(c);
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

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn *c = s->data;
    (void)buf;
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
        conn_close(c);
    } else if (nread > 0 && !c->discard) {
        c->len += (size_t)nread;
        process_input(c);
    }
}

static void write_cb(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    conn *c = w->c;
    c->write_bytes -= w->size;
    free(w);
    if (status < 0) {
        if (!c->closing)
            log_msg(TLOG_DEBUG, "connection %s: write error: %s", c->peer, uv_strerror(status));
        conn_close(c);
        return;
    }
    if (c->paused && c->write_bytes <= c->lim.max_write_buffer / 2) {
        c->paused = false;
        process_input(c); /* requests read before the pause come first */
        update_reading(c);
    }
}

/* Queues len bytes of data, and a '\n' when newline. */
static void queue_write(conn *c, const char *data, size_t len, bool newline) {
    if (!conn_is_open(c))
        return;
    write_req *w = malloc(sizeof *w + len + 1);
    if (!w) {
        log_msg(TLOG_ERR, "connection %s: out of memory for an answer; closing", c->peer);
        conn_close(c);
        return;
    }
    memcpy(w->data, data, len);
    w->data[len] = '\n';
    w->c = c;
    w->size = len + newline;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->size);
    if (uv_write(&w->req, c->out, &buf, 1, write_cb)) {
        free(w);
        conn_close(c);
        return;
    }
    c->write_bytes += w->size;
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
    return c->closing ? -1 : 0;
}

static conn *conn_new(void *ctx, const conn_limits *lim) {
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
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
    conn *c = conn_new(ctx, lim);
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
    if (uv_accept(listener, c->in)) {
        conn_close(c); /* ops is still NULL: nobody is told */
        return NULL;
    }
    describe_peer(c);
    c->ops = ops;
    return c;
}

/* Opens fd as a libuv stream; stdin and stdout may be pipes, sockets or terminals. */
static int open_std(uv_loop_t *loop, conn_handle *h, int fd, bool readable) {
    switch (uv_guess_handle(fd)) {
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
    conn *c = conn_new(ctx, lim);
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    snprintf(c->peer, sizeof c->peer, "stdio");
    c->out = &c->out_h.stream;
    int in = open_std(loop, &c->in_h, 0, true);
    int out = in < 0 ? -1 : open_std(loop, &c->out_h, 1, false);
    c->open_handles = (in >= 0) + (out >= 0);
    if (in == 0 && out == 0) {
        c->ops = ops;
        return c;
    }
    snprintf(err, err_len,
             "--stdio needs stdin and stdout to be pipes, sockets or terminals (a regular "
             "file is not supported: use 'cat FILE | totod --stdio')");
    if (c->open_handles == 0) {
        free(c);
        return NULL;
    }
    c->closing = true;
    if (in >= 0)
        uv_close(&c->in_h.handle, close_cb);
    if (out >= 0)
        uv_close(&c->out_h.handle, close_cb);
    return NULL;
}
