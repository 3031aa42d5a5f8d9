/*
 * sd_watchdog.h - systemd's watchdog (WatchdogSec=): totod pings it only
 * while its inference workers are alive, so that a model call that hangs (a
 * stuck GPU) gets the service restarted instead of leaving it answering
 * health checks forever.
 *
 * A worker is alive when it is idle, or busy in one model call for less
 * than the watchdog interval. The pings go out from a loop timer at a
 * quarter of the interval (sd_watchdog_enabled(); WATCHDOG_USEC and
 * WATCHDOG_PID from systemd); without them there is no timer.
 */
#ifndef TOTOD_SD_WATCHDOG_H
#define TOTOD_SD_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "worker.h"

typedef struct sd_watchdog {
    uv_timer_t timer;
    uint64_t interval_us; /* 0: systemd asked for no watchdog */
    worker *workers;
    int n_workers;
    bool stale;          /* the last tick found every worker stuck (logged once per episode) */
    bool stuck_reported; /* a stuck worker among others was logged (once per episode) */
} sd_watchdog;

/* Inits the timer on loop (always: the server closes it with its other handles). */
void sd_watchdog_init(uv_loop_t *loop, sd_watchdog *w);
/* Starts pinging if systemd asked for it. Returns the interval in µs, 0 if not. */
uint64_t sd_watchdog_start(sd_watchdog *w, worker *workers, int n_workers);
void sd_watchdog_stop(sd_watchdog *w);
uv_handle_t *sd_watchdog_handle(sd_watchdog *w);

#endif
