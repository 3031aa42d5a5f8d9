/* parse_pool.c - threads that parse request lines for the loop (see parse_pool.h). */
#include "parse_pool.h"

#include <stdlib.h>
#include <string.h>

#include "spin.h"

void parsed_line_free(parsed_line *l) {
    if (!l)
        return;
    if (l->prepared.data)
        l->prepared.free(l->prepared.data);
    json_decref(l->doc);
    proto_numbers_free(l->numbers);
    free(l);
}

/* Lock held on entry and exit: polls, unlocked, for a submission until poll_ns passes. */
static void poll_for_line(parse_pool *p) {
    uint64_t seen = p->submitted;
    uv_mutex_unlock(&p->lock);
    spin_for_change(&p->submitted, seen, p->poll_ns);
    uv_mutex_lock(&p->lock);
}

static void parse_thread(void *arg) {
    parse_pool *p = arg;
    uv_mutex_lock(&p->lock);
    for (;;) {
        if (!p->next && !p->stopping && p->poll_ns > 0)
            poll_for_line(p); /* once after each line: then sleep */
        while (!p->next && !p->stopping) {
            p->sleepers++;
            uv_cond_wait(&p->work, &p->lock);
            p->sleepers--;
        }
        if (p->stopping)
            break;
        parsed_line *l = p->next;
        p->next = l->next;
        uv_mutex_unlock(&p->lock);
        l->doc = proto_json_read_numbers(l->line, l->len, &l->jerr, &l->numbers);
        if (l->doc && p->prepare)
            p->prepare(l);
        uv_mutex_lock(&p->lock);
        l->parsed = true;
        /* Only the head's parse lets the loop deliver anything; a line parsed
         * before the head waits, and the head's thread wakes the loop for both. */
        if (l == p->head)
            uv_async_send(&p->arrived);
    }
    uv_mutex_unlock(&p->lock);
}

/* The loop: delivers the parsed lines at the head, in order. */
static void on_arrived(uv_async_t *a) {
    parse_pool *p = a->data;
    uv_mutex_lock(&p->lock);
    parsed_line *first = p->head, *last = NULL;
    while (p->head && p->head->parsed) {
        last = p->head;
        p->head = p->head->next;
    }
    if (!p->head)
        p->tail = NULL;
    if (last)
        last->next = NULL;
    uv_mutex_unlock(&p->lock);
    if (!last)
        return;
    for (parsed_line *l = first, *next; l; l = next) {
        next = l->next;
        l->next = NULL;
        p->deliver(p->ctx, l);
    }
}

int parse_pool_start(parse_pool *p, uv_loop_t *loop, int n_threads, uint64_t poll_ns,
                     parse_prepare_fn prepare, parse_deliver_fn deliver, void *ctx) {
    memset(p, 0, sizeof *p);
    p->poll_ns = poll_ns;
    p->prepare = prepare;
    p->deliver = deliver;
    p->ctx = ctx;
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads)
        return -1;
    if (uv_mutex_init(&p->lock)) {
        free(p->threads);
        p->threads = NULL;
        return -1;
    }
    if (uv_cond_init(&p->work)) {
        uv_mutex_destroy(&p->lock);
        free(p->threads);
        p->threads = NULL;
        return -1;
    }
    /* Threads first: none sends before a line is submitted, after this returns. */
    for (; p->n_threads < n_threads; p->n_threads++)
        if (uv_thread_create(&p->threads[p->n_threads], parse_thread, p))
            break;
    if (p->n_threads < n_threads || uv_async_init(loop, &p->arrived, on_arrived)) {
        parse_pool_stop(p);
        return -1;
    }
    p->arrived.data = p;
    return 0;
}

int parse_pool_submit(parse_pool *p, conn *c, const char *line, size_t len, uint64_t received_ns) {
    parsed_line *l = malloc(sizeof *l + len);
    if (!l)
        return -1;
    memset(l, 0, sizeof *l);
    l->c = c;
    l->received_ns = received_ns;
    l->len = len;
    memcpy(l->line, line, len);
    uv_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = l;
    else
        p->head = l;
    p->tail = l;
    if (!p->next)
        p->next = l;
    __atomic_add_fetch(&p->submitted, 1, __ATOMIC_RELEASE);
    bool wake = p->sleepers > 0; /* else a thread is parsing or polling: it finds the line */
    uv_mutex_unlock(&p->lock);
    if (wake)
        uv_cond_signal(&p->work);
    return 0;
}

uv_handle_t *parse_pool_handle(parse_pool *p) {
    return (uv_handle_t *)&p->arrived;
}

void parse_pool_stop(parse_pool *p) {
    if (!p->threads)
        return;
    uv_mutex_lock(&p->lock);
    p->stopping = true;
    uv_cond_broadcast(&p->work);
    uv_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads; i++)
        uv_thread_join(&p->threads[i]);
    for (parsed_line *l = p->head, *next; l; l = next) { /* none, once the server drained */
        next = l->next;
        parsed_line_free(l);
    }
    p->head = p->tail = p->next = NULL;
    uv_cond_destroy(&p->work);
    uv_mutex_destroy(&p->lock);
    free(p->threads);
    p->threads = NULL;
    p->n_threads = 0;
}
