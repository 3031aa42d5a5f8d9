/* queue.c - request and completion queues (see queue.h). */
#include "queue.h"

int queue_init(job_queue *q, int64_t limit) {
    *q = (job_queue){.limit = limit};
    if (uv_mutex_init(&q->lock))
        return -1;
    if (uv_cond_init(&q->changed)) {
        uv_mutex_destroy(&q->lock);
        return -1;
    }
    return 0;
}

void queue_destroy(job_queue *q) {
    uv_cond_destroy(&q->changed);
    uv_mutex_destroy(&q->lock);
}

int queue_push(job_queue *q, job *j) {
    int rc = QUEUE_OK;
    uv_mutex_lock(&q->lock);
    if (q->closed)
        rc = QUEUE_CLOSED;
    else if (q->count >= q->limit)
        rc = QUEUE_FULL;
    else {
        j->next = NULL;
        if (q->tail)
            q->tail->next = j;
        else
            q->head = j;
        q->tail = j;
        q->count++;
        q->tokens += j->tokens;
        /* Broadcast: with several workers, any of them may take it. */
        uv_cond_broadcast(&q->changed);
    }
    uv_mutex_unlock(&q->lock);
    return rc;
}

int64_t queue_depth(job_queue *q) {
    uv_mutex_lock(&q->lock);
    int64_t n = q->count;
    uv_mutex_unlock(&q->lock);
    return n;
}

static job *unlink_head(job_queue *q) {
    job *j = q->head;
    q->head = j->next;
    if (!q->head)
        q->tail = NULL;
    q->count--;
    q->tokens -= j->tokens;
    j->next = NULL;
    return j;
}

static void append(job **head, job **tail, job *j) {
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

/* Waits (lock held) until the head's batch delay is over or the batch is full. */
static void wait_for_batch(job_queue *q, const batch_limits *lim) {
    uint64_t until = q->head->received_ns + lim->delay_ns;
    while (!q->closed && q->head && q->tokens < lim->max_tokens && q->count < lim->max_size) {
        uint64_t now = uv_hrtime();
        if (now >= until)
            break;
        uv_cond_timedwait(&q->changed, &q->lock, until - now);
    }
}

int queue_pop_batch(job_queue *q, const batch_limits *lim, job **batch, job **expired) {
    job *btail = NULL, *etail = NULL;
    int n = 0;
    int64_t tokens = 0;
    *batch = *expired = NULL;
    uv_mutex_lock(&q->lock);
    while (!q->closed && !q->head)
        uv_cond_wait(&q->changed, &q->lock);
    if (!q->closed)
        wait_for_batch(q, lim);
    if (q->closed) {
        uv_mutex_unlock(&q->lock);
        return -1;
    }
    uint64_t now = uv_hrtime();
    while (q->head && n < lim->max_size) {
        job *j = q->head;
        if (j->deadline_ns && now >= j->deadline_ns) {
            append(expired, &etail, unlink_head(q));
            continue;
        }
        /* The first job always runs, even alone over budget; then keep FIFO order. */
        if (n > 0 && tokens + j->tokens > lim->max_tokens)
            break;
        tokens += j->tokens;
        append(batch, &btail, unlink_head(q));
        n++;
    }
    uv_mutex_unlock(&q->lock);
    return n;
}

job *queue_take_all(job_queue *q) {
    uv_mutex_lock(&q->lock);
    job *all = q->head;
    q->head = q->tail = NULL;
    q->count = q->tokens = 0;
    uv_mutex_unlock(&q->lock);
    return all;
}

void queue_close(job_queue *q) {
    uv_mutex_lock(&q->lock);
    q->closed = true;
    uv_cond_broadcast(&q->changed);
    uv_mutex_unlock(&q->lock);
}

int completion_init(completion_queue *c, uv_async_t *async) {
    *c = (completion_queue){.async = async};
    return uv_mutex_init(&c->lock) ? -1 : 0;
}

void completion_destroy(completion_queue *c) {
    uv_mutex_destroy(&c->lock);
}

void completion_push(completion_queue *c, job *list) {
    if (!list)
        return;
    job *last = list;
    while (last->next)
        last = last->next;
    uv_mutex_lock(&c->lock);
    if (c->tail)
        c->tail->next = list;
    else
        c->head = list;
    c->tail = last;
    uv_mutex_unlock(&c->lock);
    uv_async_send(c->async); /* coalesces: the loop drains everything on one wakeup */
}

job *completion_take(completion_queue *c) {
    uv_mutex_lock(&c->lock);
    job *all = c->head;
    c->head = c->tail = NULL;
    uv_mutex_unlock(&c->lock);
    return all;
}
