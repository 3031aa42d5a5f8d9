/* server.c - listeners, connections and the shutdown sequence (see server.h). */
#include "server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "dispatch.h"
#include "httpd.h"
#include "jsonrpc.h"
#include "listen.h"
#include "log.h"
#include "methods.h"
#include "observe.h"

#define FLUSH_TIMEOUT_MS 5000 /* at exit, how long slow readers get to take their answers */

static void on_line(void *ctx, conn *c, const char *line, size_t len) {
    server *s = ctx;
    queue_expect(&s->queue); /* an idle worker wakes while the line is parsed */
    dispatch_line(s, c, line, len);
}

static void on_line_too_long(void *ctx, conn *c) {
    dispatch_line_too_long(ctx, c);
}

static void on_line_timeout(void *ctx, conn *c) {
    dispatch_line_timeout(ctx, c);
}

static void close_handles(server *s);

static void on_closed(void *ctx, conn *c) {
    server *s = ctx;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->n_conns--;
    if (s->stdio && c->failed) {
        /* Answers were lost: a script must not take the output for complete. */
        log_msg(TLOG_ERR, "stdin could not be read or an answer could not be written");
        s->exit_status = 1;
    }
    if (s->stdio && s->state == SERVER_SERVING)
        server_shutdown(s, c->failed ? "stdio failed" : "stdin closed and every answer written");
    else if (s->state == SERVER_CLOSING && s->n_conns == 0)
        close_handles(s);
}

static void on_request(void *ctx, conn *c, const http_request *req) {
    server *s = ctx;
    queue_expect(&s->queue); /* as on_line: a forecast body is about to be parsed */
    httpd_request(s, c, req);
}

static void on_http_error(void *ctx, conn *c, int status, const char *message) {
    httpd_parse_error(ctx, c, status, message);
}

static const conn_ops server_conn_ops = {on_line,    on_line_too_long, on_closed,
                                         on_request, on_http_error,    on_line_timeout};

static conn_limits limits_of(const totod_config *cfg) {
    return (conn_limits){(size_t)cfg->max_line_bytes, (size_t)cfg->max_write_buffer, 0,
                         (uint64_t)cfg->http_idle_timeout_ms, (uint64_t)cfg->rpc_line_timeout_ms};
}

static void add_conn(server *s, conn *c) {
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
}

/* Accepted only to say why, so the client does not hang in the backlog. */
static void refuse_connection(server *s, conn *c) {
    s->metrics.connections_refused++;
    if (c->framing == CONN_HTTP) {
        httpd_refuse_connection(s, c);
    } else {
        char *text = rpc_error_text(NULL, RPC_OVERLOADED,
                                    "overloaded: too many connections (max-connections)",
                                    json_pack("{s:s, s:I}", "limit", "max-connections", "max",
                                              (json_int_t)s->cfg->max_connections));
        metrics_count_error(&s->metrics, RPC_OVERLOADED);
        conn_send(c, text ? text : rpc_oom_text, strlen(text ? text : rpc_oom_text));
        free(text);
    }
    conn_end_input(c);
}

static void accept_one(uv_stream_t *listener, int status, conn_framing framing) {
    server *s = listener->data;
    conn_limits lim = limits_of(s->cfg);
    if (status < 0) {
        log_msg(TLOG_WARNING, "accept: %s", uv_strerror(status));
        return;
    }
    conn *c = conn_accept(listener, s, &server_conn_ops, &lim, framing);
    if (!c)
        return;
    /* A Unix socket's file mode and group already decided who may connect. */
    c->local = listener->type == UV_NAMED_PIPE;
    add_conn(s, c);
    io_threads_adopt(&s->io, c);
    s->metrics.connections_accepted++;
    if (s->n_conns > s->cfg->max_connections)
        refuse_connection(s, c);
    else
        conn_start(c);
}

static void on_connection(uv_stream_t *listener, int status) {
    accept_one(listener, status, CONN_LINES);
}

static void on_http_connection(uv_stream_t *listener, int status) {
    accept_one(listener, status, CONN_HTTP);
}

static void complete_all(server *s, job *j) {
    while (j) {
        job *next = j->next;
        dispatch_complete(s, j);
        j = next;
    }
}

/* Answers taken from the completion queue, by the async or by polling. */
static void deliver(server *s, job *j) {
    /* Whatever brought these (the async or polling), this wait is over; the
     * next one is timed from now. */
    answer_poll_stop(&s->answer_poll);
    complete_all(s, j);
    if (s->outstanding > 0)
        answer_poll_arm(s, &s->answer_poll); /* the next batch's answers */
}

/* A model a reload replaced: freed here, where no callback can still be reading it. */
static void free_retired_models(server *s) {
    for (int i = 0; i < s->n_workers; i++) {
        toto_model *old = worker_take_retired(&s->workers[i]);
        if (old) {
            toto_model_free(old);
            log_info("the model before the reload is freed");
            if (s->on_reloaded)
                s->on_reloaded(s);
        }
    }
}

static void on_done(uv_async_t *async) {
    server *s = async->data;
    free_retired_models(s);
    job *j = completion_take(&s->done);
    bool expected = completion_expected(&s->done); /* read every time: it is a one-shot */
    if (!j && expected)
        answer_poll_soon(s, &s->answer_poll);
    if (j)
        deliver(s, j);
}

static void on_signal(uv_signal_t *h, int signum) {
    server *s = h->data;
    if (signum == SIGHUP) {
        if (s->reload && s->state == SERVER_SERVING)
            s->reload(s);
        return;
    }
    server_shutdown(s, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void on_grace_over(uv_timer_t *t);
static void on_flush_over(uv_timer_t *t);

int server_init(server *s, uv_loop_t *loop, const totod_config *cfg) {
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cfg = cfg;
    s->started_ns = uv_hrtime();
    if (queue_init(&s->queue, cfg->queue_limit))
        return -1;
    if (completion_init(&s->done, &s->done_async)) {
        queue_destroy(&s->queue);
        return -1;
    }
    drift_settings ds = {(int)cfg->drift_max_series, (int)cfg->drift_baseline,
                         (int)cfg->drift_recent, (double)cfg->drift_threshold_percent / 100};
    if (!(s->latency = latency_new()) || !(s->drift = drift_new(&ds))) {
        latency_free(s->latency);
        completion_destroy(&s->done);
        queue_destroy(&s->queue);
        return -1;
    }
    /* Handles on a fresh loop: these inits cannot fail on Linux. */
    uv_async_init(loop, &s->done_async, on_done);
    answer_poll_init(s, &s->answer_poll, deliver);
    queue_set_poll(&s->queue, (uint64_t)cfg->handoff_poll_us * 1000u);
    uv_signal_init(loop, &s->sigterm);
    uv_signal_init(loop, &s->sigint);
    uv_signal_init(loop, &s->sighup);
    uv_timer_init(loop, &s->grace_timer);
    uv_timer_init(loop, &s->flush_timer);
    sd_watchdog_init(loop, &s->watchdog);
    uv_timer_init(loop, &s->status_timer);
    s->status_timer.data = s;
    uv_timer_init(loop, &s->state_timer);
    s->state_timer.data = s;
    observe_load_state(s);
    s->done_async.data = s->sigterm.data = s->sigint.data = s->sighup.data = s;
    s->grace_timer.data = s->flush_timer.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sighup, on_signal, SIGHUP);
    return 0;
}

static int open_stdio(server *s) {
    char err[256];
    conn_limits lim = limits_of(s->cfg);
    /* The one client, a file perhaps, cannot retry what max-inflight or
     * queue-limit would refuse: read no further until answers come back. */
    lim.hold_inflight =
        s->cfg->max_inflight < s->cfg->queue_limit ? s->cfg->max_inflight : s->cfg->queue_limit;
    conn *c = conn_open_stdio(s->loop, s, &server_conn_ops, &lim, err, sizeof err);
    if (!c) {
        log_msg(TLOG_ERR, "%s", err);
        return -1;
    }
    s->stdio = true;
    c->local = true; /* whoever gave totod its stdin */
    add_conn(s, c);
    log_msg(TLOG_INFO, "serving one client on stdin/stdout");
    return conn_start(c);
}

/* Anyone who can reach a non-loopback address may use a listener without a token. */
static void warn_if_exposed(server *s, uv_tcp_t *h, const char *what) {
    if (s->cfg->auth_token_len == 0 && !listen_is_loopback(h))
        log_msg(TLOG_WARNING,
                "%s listens beyond loopback without a token: anyone who can reach it may use it; "
                "set auth-token-file, or listen on 127.0.0.1 (docs/security.md)",
                what);
}

/* What a setting asked of the Unix socket that socket activation overrides. */
static void note_activated_unix(const totod_config *cfg) {
    if (cfg->unix_group[0] || cfg->unix_mode_bits != 0660)
        log_msg(TLOG_INFO, "socket activation: the Unix socket keeps the mode and group systemd "
                           "gave it (SocketMode=, SocketGroup=); unix-mode and unix-group apply "
                           "only to a socket totod makes");
}

/* Socket activation: exactly the sockets systemd passed, whatever the config says. */
static int open_activated(server *s, const listen_fd *fds, int n) {
    char err[256];
    for (int i = 0; i < n; i++) {
        uv_stream_t *h = fds[i].kind == LISTEN_FD_UNIX  ? (uv_stream_t *)&s->unix_listener
                         : fds[i].kind == LISTEN_FD_TCP ? (uv_stream_t *)&s->tcp_listener
                                                        : (uv_stream_t *)&s->http_listener;
        uv_connection_cb cb = fds[i].kind == LISTEN_FD_HTTP ? on_http_connection : on_connection;
        if (listen_open_fd(s->loop, h, &fds[i], cb, err, sizeof err)) {
            log_msg(TLOG_ERR, "%s", err);
            return -1;
        }
        h->data = s;
        /* The Unix socket file is systemd's: unix_dev/ino stay 0, so it stays. */
        bool *open = fds[i].kind == LISTEN_FD_UNIX  ? &s->unix_open
                     : fds[i].kind == LISTEN_FD_TCP ? &s->tcp_open
                                                    : &s->http_open;
        *open = true;
        log_msg(TLOG_INFO, "listening on %s (socket activation, fd %d)",
                fds[i].kind == LISTEN_FD_UNIX  ? "unix"
                : fds[i].kind == LISTEN_FD_TCP ? "tcp"
                                               : "http",
                fds[i].fd);
        if (fds[i].kind == LISTEN_FD_UNIX)
            note_activated_unix(s->cfg);
        else
            warn_if_exposed(s, (uv_tcp_t *)h, fds[i].kind == LISTEN_FD_TCP ? "TCP" : "HTTP");
    }
    return 0;
}

static int open_listeners(server *s) {
    char err[TOTOD_PATH_MAX + 200], bound[300];
    const totod_config *cfg = s->cfg;
    if (cfg->stdio)
        return open_stdio(s);
    listen_fd fds[3];
    int n = listen_fds_from_systemd(fds, err, sizeof err);
    if (n < 0) {
        log_msg(TLOG_ERR, "%s", err);
        return -1;
    }
    if (n > 0)
        return open_activated(s, fds, n);
    if (!cfg->unix_path[0] && !cfg->tcp[0] && !cfg->http[0]) {
        log_msg(TLOG_ERR, "nothing to listen on: give --unix PATH, --tcp HOST:PORT, --http "
                          "HOST:PORT or --stdio");
        return -1;
    }
    s->unix_listener.data = s->tcp_listener.data = s->http_listener.data = s;
    if (cfg->unix_path[0]) {
        if (listen_unix(s->loop, &s->unix_listener, cfg->unix_path, cfg->unix_mode_bits,
                        cfg->unix_gid, on_connection, &s->unix_dev, &s->unix_ino, err,
                        sizeof err)) {
            log_msg(TLOG_ERR, "%s", err);
            return -1;
        }
        s->unix_open = true;
        log_msg(TLOG_INFO, "listening on unix %s (mode %04o%s%s)", cfg->unix_path,
                cfg->unix_mode_bits, cfg->unix_gid >= 0 ? ", group " : "",
                cfg->unix_gid >= 0 ? cfg->unix_group : "");
    }
    if (cfg->tcp[0]) {
        if (listen_tcp(s->loop, &s->tcp_listener, cfg->tcp, on_connection, bound, sizeof bound, err,
                       sizeof err)) {
            log_msg(TLOG_ERR, "%s", err);
            return -1;
        }
        s->tcp_open = true;
        log_msg(TLOG_INFO, "listening on tcp %s", bound);
        warn_if_exposed(s, &s->tcp_listener, "TCP");
    }
    if (cfg->http[0]) {
        if (listen_tcp(s->loop, &s->http_listener, cfg->http, on_http_connection, bound,
                       sizeof bound, err, sizeof err)) {
            log_msg(TLOG_ERR, "%s", err);
            return -1;
        }
        s->http_open = true;
        log_msg(TLOG_INFO, "listening on http %s", bound);
        warn_if_exposed(s, &s->http_listener, "HTTP");
    }
    return 0;
}

static void on_state_tick(uv_timer_t *t) {
    observe_save_state(t->data);
}

/* Under systemd (NOTIFY_SOCKET): STATUS= says serving, or degraded and the
 * first reason, whenever that changes (checked every second). */
static void on_status_tick(uv_timer_t *t) {
    server *s = t->data;
    json_t *h = methods_health(s);
    const char *status = json_string_value(json_object_get(h, "status"));
    const char *why = json_string_value(json_array_get(json_object_get(h, "reasons"), 0));
    char line[sizeof s->last_status];
    if (status && strcmp(status, "degraded") == 0)
        snprintf(line, sizeof line, "STATUS=degraded: %s", why ? why : "");
    else
        snprintf(line, sizeof line, "STATUS=serving %s on %s (%s)", s->info.name, s->info.device,
                 s->info.path);
    if (strcmp(line, s->last_status) != 0) {
        sd_notify(0, line);
        snprintf(s->last_status, sizeof s->last_status, "%s", line);
    }
    json_decref(h);
}

int server_listen(server *s, worker *workers, int n_workers) {
    s->workers = workers;
    s->n_workers = n_workers;
    s->info = workers[0].info;
    if (!s->cfg->stdio)
        io_threads_start(&s->io, s->loop, (int)s->cfg->io_threads,
                         (uint64_t)s->cfg->handoff_poll_us * 1000u, dispatch_prepare_line,
                         dispatch_parsed_line, s);
    for (int i = 0; i < n_workers; i++) {
        if (worker_start(&workers[i])) {
            log_msg(TLOG_ERR, "cannot start inference worker %d", i);
            return -1;
        }
    }
    if (open_listeners(s))
        return -1;
    if (getenv("NOTIFY_SOCKET"))
        uv_timer_start(&s->status_timer, on_status_tick, 1000, 1000);
    if (s->cfg->state_dir[0])
        uv_timer_start(&s->state_timer, on_state_tick, observe_state_every_ms(),
                       observe_state_every_ms());
    uint64_t usec = sd_watchdog_start(&s->watchdog, workers, n_workers);
    if (usec)
        log_info("systemd watchdog: pinging every %.2f s while the workers answer",
                 (double)usec / 4e6);
    return 0;
}

static void close_listeners(server *s) {
    if (s->unix_open) {
        uv_close((uv_handle_t *)&s->unix_listener, NULL);
        listen_remove_unix(s->cfg->unix_path, s->unix_dev, s->unix_ino);
        s->unix_open = false;
    }
    if (s->tcp_open) {
        uv_close((uv_handle_t *)&s->tcp_listener, NULL);
        s->tcp_open = false;
    }
    if (s->http_open) {
        uv_close((uv_handle_t *)&s->http_listener, NULL);
        s->http_open = false;
    }
}

/* The last step: with these closed, nothing keeps uv_run() going. */
static void close_handles(server *s) {
    uv_handle_t *handles[] = {(uv_handle_t *)&s->done_async,
                              answer_poll_idle_handle(&s->answer_poll),
                              answer_poll_timer_handle(&s->answer_poll),
                              (uv_handle_t *)&s->sigterm,
                              (uv_handle_t *)&s->sigint,
                              (uv_handle_t *)&s->sighup,
                              (uv_handle_t *)&s->grace_timer,
                              (uv_handle_t *)&s->flush_timer,
                              sd_watchdog_handle(&s->watchdog),
                              (uv_handle_t *)&s->status_timer,
                              (uv_handle_t *)&s->state_timer};
    for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++)
        if (!uv_is_closing(handles[i]))
            uv_close(handles[i], NULL);
    io_threads_close_handles(&s->io);
}

/* Once nothing is queued or running: flush and close every connection. */
static void check_drained(server *s) {
    if (s->state != SERVER_DRAINING || s->outstanding > 0)
        return;
    s->state = SERVER_CLOSING;
    uv_timer_stop(&s->grace_timer);
    queue_close(&s->queue); /* the workers end */
    for (conn *c = s->conns; c; c = c->next)
        conn_end_input(c);
    if (s->n_conns == 0)
        close_handles(s);
    else
        uv_timer_start(&s->flush_timer, on_flush_over, FLUSH_TIMEOUT_MS, 0);
}

/* Answers every queued job "shutting down"; running batches still finish. */
static void cancel_queued(server *s) {
    job *j = queue_take_all(&s->queue);
    int n = 0;
    while (j) {
        job *next = j->next;
        job_fail(j, RPC_SHUTTING_DOWN,
                 "shutting down: the grace period ended before this request ran", NULL);
        dispatch_complete(s, j);
        j = next;
        n++;
    }
    if (n)
        log_msg(TLOG_WARNING, "answered %d queued requests 'shutting down'", n);
}

static void on_grace_over(uv_timer_t *t) {
    server *s = t->data;
    log_msg(TLOG_WARNING, "grace period (%lld ms) over", (long long)s->cfg->grace_ms);
    cancel_queued(s);
}

static void on_flush_over(uv_timer_t *t) {
    server *s = t->data;
    log_msg(TLOG_WARNING, "closing %lld connections that did not read their answers",
            (long long)s->n_conns);
    for (conn *c = s->conns; c; c = c->next)
        conn_close(c);
}

void server_shutdown(server *s, const char *reason) {
    if (s->state == SERVER_CLOSING)
        return;
    if (s->state == SERVER_DRAINING) {
        log_msg(TLOG_WARNING, "%s again: not waiting for queued work", reason);
        cancel_queued(s);
        return;
    }
    s->state = SERVER_DRAINING;
    log_msg(TLOG_INFO, "%s: shutting down (%lld requests in flight, grace %lld ms)", reason,
            (long long)s->outstanding, (long long)s->cfg->grace_ms);
    sd_notify(0, "STOPPING=1");
    close_listeners(s);
    if (s->cfg->grace_ms == 0)
        cancel_queued(s);
    else if (s->outstanding > 0)
        uv_timer_start(&s->grace_timer, on_grace_over, (uint64_t)s->cfg->grace_ms, 0);
    check_drained(s);
}

void server_job_done(server *s) {
    s->outstanding--;
    check_drained(s);
}

void server_run(server *s) {
    uv_run(s->loop, UV_RUN_DEFAULT);
}

void server_destroy(server *s) {
    io_threads_stop(&s->io);
    queue_close(&s->queue);
    for (int i = 0; i < s->n_workers; i++)
        worker_destroy(&s->workers[i]);
    s->n_workers = 0;
    completion_destroy(&s->done);
    queue_destroy(&s->queue);
    latency_free(s->latency);
    s->latency = NULL;
    observe_save_state(s); /* the scores survive the restart */
    drift_free(s->drift);
    s->drift = NULL;
}
