/*
 * server.h - the loop thread's state: listeners, connections, the request
 * queue, the inference worker(s), metrics and the shutdown sequence.
 *
 * Connections on the Unix and TCP listeners (and stdio) speak JSON-RPC in
 * lines (dispatch.h); those on the HTTP listener speak HTTP (httpd.h). Both
 * kinds share conn.h's machinery, the limits and the shutdown sequence.
 *
 * Everything here runs on the loop thread except the workers, which meet it
 * only through the job and completion queues.
 *
 * Shutdown (SIGTERM/SIGINT, or stdin's EOF under --stdio): stop accepting,
 * answer new forecasts "shutting down", let queued and running work finish
 * for up to grace_ms, then answer what is still queued "shutting down";
 * once nothing is owed, flush every connection, close, and return from
 * server_run(). A second signal skips the grace period.
 */
#ifndef TOTOD_SERVER_H
#define TOTOD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "answer_poll.h"
#include "config.h"
#include "conn.h"
#include "drift.h"
#include "io_threads.h"
#include "latency.h"
#include "metrics.h"
#include "queue.h"
#include "sd_watchdog.h"
#include "worker.h"

typedef enum server_state {
    SERVER_SERVING,
    SERVER_DRAINING, /* no new work; queued work may still run */
    SERVER_CLOSING,  /* nothing owed; connections flushing and closing */
} server_state;

typedef struct server {
    uv_loop_t *loop;
    const totod_config *cfg;
    server_state state;
    uint64_t started_ns;

    job_queue queue;
    completion_queue done;
    uv_async_t done_async;
    answer_poll answer_poll; /* when the loop polls for answers (answer_poll.h) */
    io_threads io;           /* parse and write helpers under load (io_threads.h) */
    worker *workers;         /* one today; one per GPU later */
    int n_workers;
    toto_model_info info; /* of workers[0]; what health and info report */

    uv_pipe_t unix_listener;
    bool unix_open;
    dev_t unix_dev; /* the socket file we made, so only it is removed */
    ino_t unix_ino;
    uv_tcp_t tcp_listener;
    bool tcp_open;
    uv_tcp_t http_listener; /* GET /health, /ready, /metrics; POST /v1/forecast */
    bool http_open;

    uv_signal_t sigterm, sigint, sighup;
    /* SIGHUP: reload (main.c sets it; NULL: ignored), and what to do once a
     * reloaded model serves and the old one is freed. */
    void (*reload)(struct server *s);
    void (*on_reloaded)(struct server *s);
    uv_timer_t grace_timer, flush_timer;
    sd_watchdog watchdog;    /* systemd's WatchdogSec pings (sd_watchdog.h) */
    uv_timer_t status_timer; /* STATUS= to systemd as health changes */
    char last_status[512];
    int open_handles; /* the server's own handles, for the last close */

    conn *conns; /* every open connection */
    int64_t n_conns;
    bool stdio;          /* serving one client on stdin/stdout */
    int exit_status;     /* 1 once --stdio could not read its input or write an answer */
    int64_t outstanding; /* jobs queued or running */
    metrics metrics;
    latency_windows *latency; /* the last 1 and 15 minutes, for health (latency.h) */
    drift_tracker *drift;     /* forecast error drift (drift.h, observe.h) */
    bool drift_logged;        /* a drift episode is under way and was logged */
    uv_timer_t state_timer;   /* writes the drift scores every minute (observe.h) */
} server;

/* Sets up the queues and the loop's handles. 0 or -1. */
int server_init(server *s, uv_loop_t *loop, const totod_config *cfg);
/* Starts the (warm) workers and opens the listeners, or stdio. 0, or -1 after logging why. */
int server_listen(server *s, worker *workers, int n_workers);
/* Runs the loop until shutdown is complete. */
void server_run(server *s);
/* Frees what server_init made; call after server_run(). */
void server_destroy(server *s);

/* Starts the shutdown sequence (see above); reason goes to the log. */
void server_shutdown(server *s, const char *reason);
/* Called by dispatch when a job's answer has been delivered. */
void server_job_done(server *s);

#endif
