/*
 * totoclient_pipeline.c - writing requests and matching answers by id.
 *
 * Every call goes through tc_pipeline_run(), one request or many: requests
 * are encoded lazily into one write buffer (at most max_inflight unanswered,
 * and about WRITE_AHEAD bytes ahead), and one poll() loop writes while it
 * reads, so neither side's socket buffer can fill up and deadlock the other.
 * The daemon answers in any order; request i of a run has id base + i.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "totoclient_internal.h"

#define WRITE_AHEAD (64 * 1024)
#define READ_CHUNK  (64 * 1024)

enum { REQ_UNSENT = 0, REQ_INFLIGHT = 1, REQ_DONE = 2 };

typedef struct run {
    toto_client *c;
    const tc_pipeline *p;
    uint64_t base;        /* id of request 0 */
    unsigned char *state; /* [n] REQ_* */
    int64_t *sent_at;     /* [n] when each request was encoded, ms */
    int next;             /* the next request to encode */
    int oldest;           /* no request below this is in flight */
    int inflight;
    int remaining; /* requests not done */
    char *method;  /* the method as a JSON string */
    tc_buf out;
    size_t out_pos; /* bytes of out already sent */
} run;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void finish(run *r, int i) {
    if (r->state[i] == REQ_INFLIGHT)
        r->inflight--;
    r->state[i] = REQ_DONE;
    r->remaining--;
}

/* Closes the connection for good, and fails every request not done with err. */
static void fail_all(run *r, const toto_client_error *err) {
    toto_client *c = r->c;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        snprintf(c->broken_reason, sizeof c->broken_reason, "%s", err->message);
    }
    for (int i = 0; i < r->p->n; i++) {
        if (r->state[i] != REQ_DONE) {
            r->p->errs[i] = *err;
            finish(r, i);
        }
    }
}

/* Appends request i's line to the write buffer; on failure only request i fails. */
static void encode_next(run *r) {
    int i = r->next++;
    const tc_pipeline *p = r->p;
    size_t start = r->out.len;
    int kind = TOTO_CLIENT_OK;
    if (tc_buf_printf(&r->out, "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":",
                      (unsigned long long)(r->base + (uint64_t)i)) != 0 ||
        tc_buf_puts(&r->out, r->method) != 0)
        kind = tc_error(&p->errs[i], TOTO_CLIENT_ENOMEM, "out of memory writing the request");
    if (kind == TOTO_CLIENT_OK)
        kind = p->write_params(p->ctx, i, &r->out, &p->errs[i]);
    if (kind == TOTO_CLIENT_OK && tc_buf_puts(&r->out, "}\n") != 0)
        kind = tc_error(&p->errs[i], TOTO_CLIENT_ENOMEM, "out of memory writing the request");
    if (kind != TOTO_CLIENT_OK) {
        r->out.len = start; /* drop the partial line */
        finish(r, i);
        return;
    }
    r->state[i] = REQ_INFLIGHT;
    r->sent_at[i] = now_ms();
    r->inflight++;
}

/* Sends what it can without blocking; 0, or -1 with err filled. */
static int flush_out(run *r, toto_client_error *err) {
    while (r->out_pos < r->out.len) {
        ssize_t n = send(r->c->fd, r->out.data + r->out_pos, r->out.len - r->out_pos, MSG_NOSIGNAL);
        if (n > 0) {
            r->out_pos += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        tc_error(err, TOTO_CLIENT_EIO, "%s: connection lost sending (%s)", r->c->address,
                 n < 0 ? strerror(errno) : "nothing written");
        return -1;
    }
    r->out.len = r->out_pos = 0;
    return 0;
}

/* The request an answer's id names, or -1. An id null (the daemon could not
 * read the request) can only be the request in flight when exactly one is. */
static int match_id(run *r, json_t *id) {
    if (json_is_null(id) && r->inflight == 1) {
        while (r->state[r->oldest] != REQ_INFLIGHT)
            r->oldest++;
        return r->oldest;
    }
    if (!json_is_integer(id) || json_integer_value(id) < 0)
        return -1;
    uint64_t v = (uint64_t)json_integer_value(id);
    if (v < r->base || v - r->base >= (uint64_t)r->p->n)
        return -1;
    int i = (int)(v - r->base);
    return r->state[i] == REQ_INFLIGHT ? i : -1;
}

/* Takes one answer line; 0, or -1 with err filled when the line is not a
 * JSON-RPC answer to a request in flight (the stream can no longer be trusted). */
static int take_line(run *r, const char *line, size_t len, toto_client_error *err) {
    json_error_t jerr;
    json_t *msg = json_loadb(line, len, 0, &jerr);
    if (msg == NULL) {
        tc_error(err, TOTO_CLIENT_EPROTOCOL, "%s sent a line that is not JSON (%s): %.80s",
                 r->c->address, jerr.text, line);
        return -1;
    }
    json_t *result = json_object_get(msg, "result");
    json_t *error = json_object_get(msg, "error");
    int i = json_is_object(msg) && (result != NULL) != (error != NULL)
                ? match_id(r, json_object_get(msg, "id"))
                : -1;
    if (i < 0) {
        tc_error(err, TOTO_CLIENT_EPROTOCOL,
                 "%s sent a line that answers no request in flight: %.80s", r->c->address, line);
        json_decref(msg);
        return -1;
    }
    toto_client_error *slot = &r->p->errs[i];
    if (error != NULL)
        tc_error_from_rpc(slot, error);
    else if (r->p->take_result(r->p->ctx, i, result, slot) == TOTO_CLIENT_OK)
        tc_error_clear(slot);
    json_decref(msg);
    finish(r, i);
    return 0;
}

/* Reads what is there and takes every whole line; 0, or -1 with err filled. */
static int read_answers(run *r, toto_client_error *err) {
    toto_client *c = r->c;
    for (;;) {
        if (tc_buf_reserve(&c->rbuf, READ_CHUNK) != 0) {
            tc_error(err, TOTO_CLIENT_ENOMEM, "out of memory reading an answer");
            return -1;
        }
        ssize_t n = recv(c->fd, c->rbuf.data + c->rbuf.len, c->rbuf.cap - c->rbuf.len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0) {
            tc_error(err, TOTO_CLIENT_EIO, "%s: connection lost (%s) with %d answer%s owed",
                     c->address, n == 0 ? "the daemon closed it" : strerror(errno), r->inflight,
                     r->inflight == 1 ? "" : "s");
            return -1;
        }
        c->rbuf.len += (size_t)n;
        size_t pos = 0;
        char *nl;
        while ((nl = memchr(c->rbuf.data + c->scanned, '\n', c->rbuf.len - c->scanned)) != NULL) {
            size_t end = (size_t)(nl - c->rbuf.data);
            *nl = '\0';
            if (end > pos && take_line(r, c->rbuf.data + pos, end - pos, err) != 0)
                return -1;
            pos = c->scanned = end + 1;
        }
        c->scanned = c->rbuf.len;
        memmove(c->rbuf.data, c->rbuf.data + pos, c->rbuf.len - pos);
        c->rbuf.len -= pos;
        c->scanned -= pos;
        if (r->remaining == 0)
            return 0;
    }
}

/* How long poll() may wait: until the oldest request in flight times out. */
static int wait_ms(run *r) {
    if (r->p->timeout_ms <= 0)
        return -1;
    while (r->state[r->oldest] != REQ_INFLIGHT)
        r->oldest++;
    int64_t left = r->sent_at[r->oldest] + r->p->timeout_ms - now_ms();
    return left < 0 ? 0 : (int)left;
}

/* One round: encode, wait, write, read. 0 to go on, -1 with err filled. */
static int step(run *r, toto_client_error *err) {
    int cap = r->c->params.max_inflight;
    while (r->next < r->p->n && r->inflight < cap && r->out.len - r->out_pos < WRITE_AHEAD)
        encode_next(r);
    if (r->remaining == 0)
        return 0;
    if (r->inflight == 0) { /* every byte waiting to be sent belongs to answered requests */
        tc_error(err, TOTO_CLIENT_EPROTOCOL,
                 "%s answered requests it had not read whole (it reads no more from this "
                 "connection)",
                 r->c->address);
        return -1;
    }
    int ms = wait_ms(r);
    if (ms == 0) {
        tc_error(err, TOTO_CLIENT_ETIMEOUT, "no answer to %s (id %llu) from %s within %d ms",
                 r->p->method, (unsigned long long)(r->base + (uint64_t)r->oldest), r->c->address,
                 r->p->timeout_ms);
        return -1;
    }
    struct pollfd pfd = {.fd = r->c->fd, .events = POLLIN};
    if (r->out_pos < r->out.len)
        pfd.events |= POLLOUT;
    int rc = poll(&pfd, 1, ms);
    if (rc < 0 && errno != EINTR) {
        tc_error(err, TOTO_CLIENT_EIO, "poll: %s", strerror(errno));
        return -1;
    }
    if (rc <= 0)
        return 0;
    if ((pfd.revents & POLLOUT) && flush_out(r, err) != 0)
        return -1;
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
        return read_answers(r, err);
    return 0;
}

int tc_pipeline_run(toto_client *c, const tc_pipeline *p) {
    for (int i = 0; i < p->n; i++)
        tc_error_clear(&p->errs[i]);
    run r = {.c = c, .p = p, .base = c->next_id, .remaining = p->n};
    c->next_id += (uint64_t)p->n;
    toto_client_error fatal;
    r.state = calloc((size_t)p->n + 1, 1);
    r.sent_at = calloc((size_t)p->n + 1, sizeof *r.sent_at);
    json_t *method = json_string(p->method);
    r.method = method != NULL ? json_dumps(method, JSON_ENCODE_ANY) : NULL;
    json_decref(method);
    if (r.state == NULL || r.sent_at == NULL || r.method == NULL) {
        int kind = method == NULL ? TOTO_CLIENT_EINVAL : TOTO_CLIENT_ENOMEM;
        tc_error(&fatal, kind,
                 kind == TOTO_CLIENT_EINVAL ? "method: not valid UTF-8" : "out of memory");
        for (int i = 0; i < p->n; i++)
            p->errs[i] = fatal;
        free(r.state);
        free(r.sent_at);
        free(r.method);
        return p->n > 0 ? kind : TOTO_CLIENT_OK;
    }
    if (c->fd < 0) {
        tc_error(&fatal, TOTO_CLIENT_EIO,
                 "%s: the connection is closed after an earlier error (%s)", c->address,
                 c->broken_reason);
        fail_all(&r, &fatal);
    }
    while (r.remaining > 0) {
        if (step(&r, &fatal) != 0)
            fail_all(&r, &fatal);
    }
    tc_buf_free(&r.out);
    free(r.method);
    free(r.state);
    free(r.sent_at);
    for (int i = 0; i < p->n; i++)
        if (p->errs[i].kind != TOTO_CLIENT_OK)
            return p->errs[i].kind;
    return TOTO_CLIENT_OK;
}
