/* conn_defer.c - answers written at the end of the loop iteration (see conn.h). */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "write_fanout.h"

int conn_defer(conn *c, const char *data, size_t len, bool newline) {
    size_t need = c->dlen + len + newline;
    if (need > c->dcap) {
        size_t cap = need < 512 ? 512 : need * 2;
        char *buf = realloc(c->dbuf, cap);
        if (!buf) {
            if (c->dlen == 0)
                return -1;
            log_msg(TLOG_ERR, "connection %s: out of memory for an answer; closing", c->peer);
            c->failed = true;
            conn_close(c);
            return 0;
        }
        c->dbuf = buf;
        c->dcap = cap;
    }
    memcpy(c->dbuf + c->dlen, data, len);
    c->dlen += len;
    if (newline)
        c->dbuf[c->dlen++] = '\n';
    if (!c->deferred_listed) {
        conn_hold(c); /* until the flush */
        c->deferred_listed = true;
        c->deferred_next = c->deferred->head;
        c->deferred->head = c;
        c->deferred->count++;
    }
    return 0;
}

static int grow_items(conn_deferred *d, size_t n) {
    if (n <= d->cap)
        return 0;
    size_t cap = n * 2;
    fanout_write *items = realloc(d->items, cap * sizeof *items);
    if (items)
        d->items = items;
    conn **conns = realloc(d->conns, cap * sizeof *conns);
    if (conns)
        d->conns = conns;
    if (!items || !conns)
        return -1;
    d->cap = cap;
    return 0;
}

/* After the writes: what the kernel did not take goes to libuv's queue
 * (an error shows again there and closes the connection as usual). */
static void finish(conn *c, ssize_t result) {
    size_t done = result > 0 ? (size_t)result : 0;
    if (done < c->dlen)
        conn_queue_bytes(c, c->dbuf + done, c->dlen - done);
    c->dlen = 0;
}

void conn_flush_deferred(conn_deferred *d, write_fanout *fanout, size_t fanout_min) {
    if (!d->count)
        return;
    conn *list = d->head;
    d->head = NULL;
    bool room = grow_items(d, d->count) == 0;
    d->count = 0;
    size_t n = 0;
    for (conn *c = list; c; c = c->deferred_next) {
        uv_os_fd_t fd;
        if (!room || c->closing || uv_fileno((uv_handle_t *)c->out, &fd))
            continue; /* closed: dropped, as conn_send drops; out of memory: libuv's queue */
        d->items[n] = (fanout_write){fd, c->dbuf, c->dlen, 0};
        d->conns[n++] = c;
    }
    if (fanout && n >= fanout_min)
        write_fanout_run(fanout, d->items, n);
    else
        write_fanout_inline(d->items, n);
    for (size_t i = 0; i < n; i++)
        finish(d->conns[i], d->items[i].result);
    for (conn *c = list, *next; c; c = next) {
        next = c->deferred_next;
        c->deferred_next = NULL;
        c->deferred_listed = false;
        if (c->dlen) /* not written above (out of memory): the usual way */
            finish(c, 0);
        conn_release(c); /* may finish the connection, now that its bytes are out */
    }
}

void conn_deferred_free(conn_deferred *d) {
    free(d->items);
    free(d->conns);
    memset(d, 0, sizeof *d);
}
