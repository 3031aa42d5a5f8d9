/*
 * main.c - totod: configuration, then the model (opened and warmed once),
 * then the listeners, then the loop until a signal (server.h) ends it.
 *
 * Exit status: 0 after a clean shutdown, 1 when the model or a listener
 * cannot be set up (or --stdio lost answers to a read or write error), 2 for
 * a bad configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "worker.h"

/* The process's state lives here, at the top level, and is passed down. */
static totod_config config;
static server the_server;
static worker workers[1]; /* one per GPU later */

static toto_model *open_model(const totod_config *cfg) {
    char err[512];
    toto_model_params p = toto_model_default_params();
    p.device = cfg->device;
    p.dtype = cfg->dtype;
    p.cpu_threads = (int)cfg->threads;
    p.compile = cfg->compile && !cfg->disable_compile;
    p.compile_mode = cfg->compile_mode;
    p.compute_dtype = cfg->compute_dtype[0] ? cfg->compute_dtype : NULL;
    p.max_prediction_length = (int)cfg->max_prediction_length;
    p.max_num_samples = (int)cfg->max_num_samples;
    p.max_context_length = (int)cfg->max_context_length;
    p.max_variates = (int)cfg->max_variates;
    toto_model *model = toto_model_open(cfg->model, &p, err, sizeof err);
    if (!model)
        log_msg(TLOG_ERR, "cannot open the model %s on %s: %s", cfg->model, cfg->device, err);
    return model;
}

/* How far past now systemd's start timeout moves while the model warms. */
#define WARMUP_EXTEND_USEC (300ull * 1000000ull)

/* Opens and warms the model into workers[0]. 0 or -1 (logged). */
static int start_model(server *s, const totod_config *cfg) {
    char err[512];
    double ms;
    batch_limits lim = {cfg->max_batch_tokens, cfg->max_batch_size,
                        (uint64_t)cfg->batch_delay_us * 1000u,
                        (uint64_t)cfg->batch_refill_us * 1000u};
    log_msg(TLOG_INFO, "totod %s: opening model %s%s on %s (%s)", TOTO_VERSION, cfg->model,
            cfg->untrained ? " (bundled, UNTRAINED: random weights)" : "", cfg->device, cfg->dtype);
    /* Under systemd: say what the wait is for, and extend the start timeout
     * by as long again as the unit allows, for a cold GPU's warm-up. */
    sd_notifyf(0, "STATUS=warming: opening %s on %s\nEXTEND_TIMEOUT_USEC=%llu", cfg->model,
               cfg->device, (unsigned long long)WARMUP_EXTEND_USEC);
    toto_model *model = open_model(cfg);
    if (!model)
        return -1;
    shadow_settings shadow = {(int)cfg->shadow_every, (int)cfg->shadow_fallback_after};
    if (worker_init(&workers[0], 0, model, &s->queue, &s->done, &lim, &shadow)) {
        toto_model_free(model);
        log_msg(TLOG_ERR, "cannot set up the inference worker");
        return -1;
    }
    if (worker_warm(&workers[0], &ms, err, sizeof err)) {
        log_msg(TLOG_ERR, "warm-up forecast failed: %s", err);
        worker_destroy(&workers[0]);
        return -1;
    }
    const toto_model_info *info = &workers[0].info;
    log_msg(TLOG_INFO, "model warm in %.1f ms: %lld parameters on %s, %s, path %s%s", ms,
            (long long)info->num_params, info->device, info->dtype, info->path,
            cfg->untrained ? ", untrained" : "");
    if (info->compile.available)
        log_msg(TLOG_INFO,
                "compiled path: mode %s, compute %s, %lld buckets%s warmed in %.0f ms, %.1f MiB",
                info->compile.mode, info->compile.compute_dtype, (long long)info->compile.buckets,
                info->compile.graphs ? " captured as CUDA graphs and" : "", info->compile.warmup_ms,
                (double)info->compile.pool_bytes / (1 << 20));
    else
        log_msg(TLOG_INFO, "compiled path off (%s)",
                cfg->disable_compile ? "TOTO_DISABLE_COMPILE / --disable-compile"
                                     : "compile false");
    return 0;
}

/*
 * A closed stdin, stdout or stderr would be handed to the next open() - the
 * epoll descriptor, a socket, the model file - which --stdio or a log line
 * would then read or overwrite. Fill each with /dev/null first; bit i of the
 * result says that descriptor i was closed.
 */
static int fill_closed_std_fds(void) {
    int closed = 0;
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        closed |= 1 << fd;
        int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (null >= 0 && null != fd) /* cannot happen: open takes the lowest free fd */
            close(null);
    }
    return closed;
}

int main(int argc, char **argv) {
    int closed_std = fill_closed_std_fds();
    signal(SIGPIPE, SIG_IGN); /* a vanished client is a write error, not a death */
    switch (config_load(&config, argc, argv, stdout, stderr)) {
    case CONFIG_EXIT_OK:
        return 0;
    case CONFIG_INVALID:
        return 2;
    case CONFIG_RUN:
        break;
    }
    if (config.stdio && (closed_std & 3)) {
        log_msg(TLOG_ERR, "--stdio: %s is closed; give it a file, a pipe or a terminal",
                closed_std & 1 ? "stdin" : "stdout");
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    if (server_init(&the_server, loop, &config)) {
        log_msg(TLOG_ERR, "cannot set up the event loop");
        return 1;
    }
    int status = 0;
    if (start_model(&the_server, &config)) {
        status = 1;
        server_shutdown(&the_server, "startup failed");
    } else if (server_listen(&the_server, workers, 1)) {
        status = 1;
        server_shutdown(&the_server, "startup failed");
    } else {
        sd_notifyf(0, "READY=1\nSTATUS=serving %s on %s (%s)%s", workers[0].info.name,
                   workers[0].info.device, workers[0].info.path,
                   config.untrained ? ", untrained" : "");
        log_msg(TLOG_INFO, "ready");
    }
    server_run(&the_server);
    /* The loop is done and its signal handlers are gone: a repeated SIGTERM
     * must not turn the clean exit under way into a kill. */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    server_destroy(&the_server);
    uv_loop_close(loop);
    log_msg(TLOG_INFO, "stopped");
    return status ? status : the_server.exit_status;
}
