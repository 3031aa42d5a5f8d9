/* sd_watchdog.c - pinging systemd's watchdog while the workers live (see sd_watchdog.h). */
#include "sd_watchdog.h"

#include <systemd/sd-daemon.h>

#include "log.h"

void sd_watchdog_init(uv_loop_t *loop, sd_watchdog *w) {
    *w = (sd_watchdog){0};
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
}

/* The index of a worker stuck in one model call for longer than the interval,
 * or -1; *all: every worker still in rotation is stuck (or out of it). */
static int stuck_worker(const sd_watchdog *w, double *busy_s, bool *all) {
    uint64_t now = uv_hrtime();
    int stuck = -1, fresh = 0;
    for (int i = 0; i < w->n_workers; i++) {
        worker_stats st;
        worker_get_stats(&w->workers[i], &st);
        if (st.busy && now - st.busy_since_ns > w->interval_us * 1000u) {
            if (stuck < 0)
                *busy_s = (double)(now - st.busy_since_ns) / 1e9;
            stuck = stuck < 0 ? i : stuck;
        } else if (!st.out_of_rotation)
            fresh++;
    }
    *all = fresh == 0;
    return stuck;
}

/* Pings while some worker can serve: a hung GPU among several is only
 * reported (health says so; its worker takes no batch while stuck); when no
 * worker can, systemd restarts totod. */
static void on_tick(uv_timer_t *t) {
    sd_watchdog *w = t->data;
    double busy_s = 0;
    bool all = false;
    int stuck = stuck_worker(w, &busy_s, &all);
    if (stuck < 0 || !all) {
        sd_notify(0, "WATCHDOG=1");
        if (w->stale)
            log_info("the workers answer again: pinging the systemd watchdog");
        if (stuck >= 0 && !w->stuck_reported)
            log_error("worker %d has been in one model call for %.1f s: the other workers serve "
                      "on (health says so)",
                      stuck, busy_s);
        w->stuck_reported = stuck >= 0;
        w->stale = false;
        return;
    }
    if (!w->stale)
        log_error("worker %d has been in one model call for %.1f s (watchdog interval %.1f s) and "
                  "no other worker serves: not pinging the systemd watchdog, which will restart "
                  "totod",
                  stuck, busy_s, (double)w->interval_us / 1e6);
    w->stale = true;
}

uint64_t sd_watchdog_start(sd_watchdog *w, worker *workers, int n_workers) {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return 0;
    w->interval_us = usec;
    w->workers = workers;
    w->n_workers = n_workers;
    uint64_t every_ms = usec / 4000u;
    uv_timer_start(&w->timer, on_tick, 0, every_ms > 0 ? every_ms : 1);
    return usec;
}

void sd_watchdog_stop(sd_watchdog *w) {
    uv_timer_stop(&w->timer);
}

uv_handle_t *sd_watchdog_handle(sd_watchdog *w) {
    return (uv_handle_t *)&w->timer;
}
