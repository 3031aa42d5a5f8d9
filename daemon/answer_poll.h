/*
 * answer_poll.h - when the loop polls for answers instead of sleeping.
 *
 * Waking the sleeping loop thread costs 20-100 µs on a virtual machine, as
 * much as totod's own work for a request. So the loop polls (its idle handle
 * keeps epoll from blocking) at two moments:
 * - from just before a model call is expected to end: the recent model time
 *   (a moving average) less --model-end-poll-us, timed with a one-shot timer
 *   of libuv's millisecond grain; it polls until answers arrive, at most
 *   twice the lead plus a millisecond;
 * - when the worker says answers are coming (completion_expect(), as its
 *   model call returns, while it encodes): up to --handoff-poll-us.
 * Either setting at 0 turns its part off.
 */
#ifndef TOTOD_ANSWER_POLL_H
#define TOTOD_ANSWER_POLL_H

#include <uv.h>

#include "job.h"

typedef struct server server;

typedef struct answer_poll {
    uv_idle_t idle;           /* active while polling */
    uv_timer_t timer;         /* starts polling near the expected end of a model call */
    uint64_t until_ns;        /* when the current polling gives up */
    double model_us;          /* moving average of model call times; 0: none seen yet */
    uint64_t last_started_ns; /* the call last averaged in (jobs of a batch share it) */
    void (*deliver)(server *s, job *list); /* answers taken while polling */
} answer_poll;

void answer_poll_init(server *s, answer_poll *p, void (*deliver)(server *, job *));
/* A forecast was queued, or answers came while more are owed: poll near the next end. */
void answer_poll_arm(server *s, answer_poll *p);
/* The worker said answers are coming: poll briefly for them now. */
void answer_poll_soon(server *s, answer_poll *p);
/* Answers came: stop polling and timing (answer_poll_arm starts afresh). */
void answer_poll_stop(answer_poll *p);
/* The model call that started at started_ns took model_ns (once per call). */
void answer_poll_observe(answer_poll *p, uint64_t started_ns, uint64_t model_ns);
/* The handles, for the server's last close. */
uv_handle_t *answer_poll_idle_handle(answer_poll *p);
uv_handle_t *answer_poll_timer_handle(answer_poll *p);

#endif
