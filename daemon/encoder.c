/* encoder.c - the answer encoder thread (see encoder.h). */
#include "encoder.h"

static void encoder_main(void *arg) {
    answer_encoder *e = arg;
    uv_mutex_lock(&e->lock);
    for (;;) {
        while (!e->head && !e->stopping)
            uv_cond_wait(&e->changed, &e->lock);
        answered_batch *b = e->head;
        if (!b)
            break; /* stopping, and everything queued is answered */
        e->head = b->next;
        if (!e->head)
            e->tail = NULL;
        uv_mutex_unlock(&e->lock);
        e->encode(e->ctx, b);
        uv_mutex_lock(&e->lock);
        e->pending--;
    }
    uv_mutex_unlock(&e->lock);
}

int encoder_start(answer_encoder *e, encoder_fn encode, void *ctx) {
    *e = (answer_encoder){.encode = encode, .ctx = ctx};
    if (uv_mutex_init(&e->lock))
        return -1;
    if (uv_cond_init(&e->changed)) {
        uv_mutex_destroy(&e->lock);
        return -1;
    }
    if (uv_thread_create(&e->thread, encoder_main, e)) {
        uv_cond_destroy(&e->changed);
        uv_mutex_destroy(&e->lock);
        return -1;
    }
    e->started = true;
    return 0;
}

void encoder_push(answer_encoder *e, answered_batch *b) {
    b->next = NULL;
    uv_mutex_lock(&e->lock);
    if (e->tail)
        e->tail->next = b;
    else
        e->head = b;
    e->tail = b;
    e->pending++;
    uv_mutex_unlock(&e->lock);
    uv_cond_signal(&e->changed);
}

bool encoder_busy(answer_encoder *e) {
    if (!e->started)
        return false;
    uv_mutex_lock(&e->lock);
    bool busy = e->pending > 0;
    uv_mutex_unlock(&e->lock);
    return busy;
}

void encoder_stop(answer_encoder *e) {
    if (!e->started)
        return;
    uv_mutex_lock(&e->lock);
    e->stopping = true;
    uv_mutex_unlock(&e->lock);
    uv_cond_signal(&e->changed);
    uv_thread_join(&e->thread);
    uv_cond_destroy(&e->changed);
    uv_mutex_destroy(&e->lock);
    e->started = false;
}
