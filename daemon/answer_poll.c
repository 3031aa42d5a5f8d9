/* answer_poll.c - polling for answers near the end of model calls (see answer_poll.h). */
#include "answer_poll.h"

#include "server.h"

void answer_poll_init(server *s, answer_poll *p, void (*deliver)(server *, job *)) {
    *p = (answer_poll){.deliver = deliver};
    uv_idle_init(s->loop, &p->idle);
    uv_timer_init(s->loop, &p->timer);
    p->idle.data = p->timer.data = s;
}

static void on_poll(uv_idle_t *idle) {
    server *s = idle->data;
    answer_poll *p = &s->answer_poll;
    job *j = completion_take(&s->done);
    if (j || uv_hrtime() >= p->until_ns)
        uv_idle_stop(idle);
    if (j)
        p->deliver(s, j);
}

/* Polls from now until answers arrive or for_ns passes (extending a poll under way). */
static void poll_for(server *s, answer_poll *p, uint64_t for_ns) {
    uint64_t until = uv_hrtime() + for_ns;
    if (!uv_is_active((uv_handle_t *)&p->idle) || until > p->until_ns)
        p->until_ns = until;
    uv_idle_start(&p->idle, on_poll);
}

/* The timer fired about lead before the expected end: poll through the lead,
 * twice over, plus the timer's millisecond grain. */
static void on_timer(uv_timer_t *t) {
    server *s = t->data;
    answer_poll *p = &s->answer_poll;
    if (s->outstanding > 0)
        poll_for(s, p, (uint64_t)(2 * s->cfg->model_end_poll_us + 1000) * 1000u);
}

void answer_poll_arm(server *s, answer_poll *p) {
    const int64_t lead_us = s->cfg->model_end_poll_us;
    if (lead_us == 0 || p->model_us <= 0 || s->state == SERVER_CLOSING ||
        uv_is_active((uv_handle_t *)&p->idle) || uv_is_active((uv_handle_t *)&p->timer))
        return;
    double wait_us = p->model_us - (double)lead_us;
    if (wait_us < 1000) /* under the timer's grain: poll from now */
        poll_for(s, p, (uint64_t)(p->model_us + 2 * lead_us + 1000) * 1000u);
    else
        uv_timer_start(&p->timer, on_timer, (uint64_t)(wait_us / 1000), 0);
}

void answer_poll_stop(answer_poll *p) {
    uv_idle_stop(&p->idle);
    uv_timer_stop(&p->timer);
}

void answer_poll_soon(server *s, answer_poll *p) {
    if (s->cfg->handoff_poll_us > 0 && s->state != SERVER_CLOSING)
        poll_for(s, p, (uint64_t)s->cfg->handoff_poll_us * 1000u);
}

void answer_poll_observe(answer_poll *p, uint64_t started_ns, uint64_t model_ns) {
    if (started_ns == p->last_started_ns)
        return; /* another job of the same batch: one call, counted once */
    p->last_started_ns = started_ns;
    double us = (double)model_ns / 1e3;
    /* Recent calls weigh most; the first sets the average. */
    p->model_us = p->model_us > 0 ? 0.8 * p->model_us + 0.2 * us : us;
}

uv_handle_t *answer_poll_idle_handle(answer_poll *p) {
    return (uv_handle_t *)&p->idle;
}

uv_handle_t *answer_poll_timer_handle(answer_poll *p) {
    return (uv_handle_t *)&p->timer;
}
