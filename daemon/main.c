/*
 * main.c - totod: configuration, then the model (opened and warmed once),
 * then the listeners, then the loop until a signal (server.h) ends it.
 *
 * Exit status: 0 after a clean shutdown, 1 when the model or a listener
 * cannot be set up (or --stdio lost answers to a read or write error), 2 for
 * a bad configuration.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "worker.h"

/* The process's state lives here, at the top level, and is passed down. */
static totod_config config;
static server the_server;
/* One inference worker per device (--device cuda:all or a list); they share
 * the queue, so each batch goes to the first worker free to take it. */
#define MAX_WORKERS 16
static worker workers[MAX_WORKERS];
static int n_workers;
static int in_rotation; /* workers taking batches (worker.h); atomic */

/* A reload (SIGHUP) under way: the configuration read again, the models it opens. */
typedef struct reload_job {
    uv_work_t work;
    int argc;
    char **argv;
    totod_config cfg;
    toto_model *models[MAX_WORKERS]; /* one per worker, on its device */
    char err[512];
    bool running;
} reload_job;
static reload_job reload;

/* Under systemd, what the wait is for while the compiled path warms. */
static void warm_progress(void *ctx, int done, int total) {
    const totod_config *cfg = ctx;
    sd_notifyf(0, "STATUS=warming %s: %d/%d buckets", cfg->model, done, total);
}

/* The devices of cfg->device: cuda:all, a comma-separated list, or one. The
 * count, or -1 (logged) for none or too many. */
static int device_list(const char *spec, char devs[][32]) {
    int n = 0;
    if (!strcmp(spec, "cuda:all")) {
        n = toto_cuda_device_count();
        for (int i = 0; i < n && i < MAX_WORKERS; i++)
            snprintf(devs[i], 32, "cuda:%d", i);
        if (n == 0)
            log_msg(TLOG_ERR, "device cuda:all: no CUDA device here");
    } else
        for (const char *d = spec; n <= MAX_WORKERS; n++) {
            const char *end = strchr(d, ',');
            int len = end ? (int)(end - d) : (int)strlen(d);
            if (n < MAX_WORKERS)
                snprintf(devs[n], 32, "%.*s", len, d);
            if (!end) {
                n++;
                break;
            }
            d = end + 1;
        }
    if (n > MAX_WORKERS)
        log_msg(TLOG_ERR, "device %s: at most %d workers", spec, MAX_WORKERS);
    return n >= 1 && n <= MAX_WORKERS ? n : -1;
}

static toto_model *open_model(const totod_config *cfg, const char *device) {
    char err[512];
    toto_model_params p = toto_model_default_params();
    p.warm_progress = warm_progress;
    p.warm_progress_ctx = (void *)cfg;
    p.device = device;
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
        log_msg(TLOG_ERR, "cannot open the model %s on %s: %s", cfg->model, device, err);
    return model;
}

/* How far past now systemd's start timeout moves while the model warms. */
#define WARMUP_EXTEND_USEC (300ull * 1000000ull)

/* What the log says of a warm worker's model and compiled path. */
static void log_warm(const worker *w, double ms, bool untrained) {
    const toto_model_info *info = &w->info;
    log_msg(TLOG_INFO, "worker %d: model warm in %.1f ms: %lld parameters on %s, %s, path %s%s",
            w->index, ms, (long long)info->num_params, info->device, info->dtype, info->path,
            untrained ? ", untrained" : "");
    if (info->compile.available)
        log_msg(TLOG_INFO,
                "worker %d: compiled path: mode %s, compute %s, %lld buckets%s warmed in %.0f ms, "
                "%.1f MiB",
                w->index, info->compile.mode, info->compile.compute_dtype,
                (long long)info->compile.buckets,
                info->compile.graphs ? " captured as CUDA graphs and" : "", info->compile.warmup_ms,
                (double)info->compile.pool_bytes / (1 << 20));
}

/* Opens and warms the model on device into workers[i]. 0 or -1 (logged). */
static int start_worker(server *s, const totod_config *cfg, int i, const char *device) {
    char err[512];
    double ms;
    batch_limits lim = {cfg->max_batch_tokens, cfg->max_batch_size,
                        (uint64_t)cfg->batch_delay_us * 1000u,
                        (uint64_t)cfg->batch_refill_us * 1000u};
    toto_model *model = open_model(cfg, device);
    if (!model)
        return -1;
    shadow_settings shadow = {(int)cfg->shadow_every, (int)cfg->shadow_fallback_after,
                              (int)cfg->shadow_idle_ms};
    if (worker_init(&workers[i], i, model, &s->queue, &s->done, &lim, &shadow)) {
        toto_model_free(model);
        log_msg(TLOG_ERR, "cannot set up inference worker %d", i);
        return -1;
    }
    workers[i].in_rotation = &in_rotation;
    if (worker_warm(&workers[i], &ms, err, sizeof err)) {
        log_msg(TLOG_ERR, "worker %d: warm-up forecast failed: %s", i, err);
        worker_destroy(&workers[i]);
        return -1;
    }
    log_warm(&workers[i], ms, cfg->untrained);
    return 0;
}

/* Opens and warms the model once per device, one worker each. 0 or -1 (logged). */
static int start_model(server *s, const totod_config *cfg) {
    char devs[MAX_WORKERS][32];
    int n = device_list(cfg->device, devs);
    if (n < 0)
        return -1;
    log_msg(TLOG_INFO, "totod %s: opening model %s%s on %s (%s)%s", TOTO_VERSION, cfg->model,
            cfg->untrained ? " (bundled, UNTRAINED: random weights)" : "", cfg->device, cfg->dtype,
            n > 1 ? ": one worker per device" : "");
    /* Under systemd: say what the wait is for, and extend the start timeout
     * by as long again as the unit allows, for a cold GPU's warm-up. */
    sd_notifyf(0, "STATUS=warming: opening %s on %s\nEXTEND_TIMEOUT_USEC=%llu", cfg->model,
               cfg->device, (unsigned long long)(WARMUP_EXTEND_USEC * (unsigned)n));
    for (n_workers = 0; n_workers < n; n_workers++)
        if (start_worker(s, cfg, n_workers, devs[n_workers])) {
            while (n_workers > 0)
                worker_destroy(&workers[--n_workers]);
            return -1;
        }
    in_rotation = n_workers;
    if (!workers[0].info.compile.available)
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

/* Descriptors open now: the loop's, the model's, a GPU's devices (64 if unknown). */
static long open_fds(void) {
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return 64;
    long n = 0;
    while (readdir(dir))
        n++;
    closedir(dir);
    return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own descriptor */
}

/* Spare descriptors beyond the connections: listeners, the state file, a
 * reload's files, connections accepted only to be refused (each holds its
 * descriptor until its -32000 is written, in the next loop iteration). */
#define FD_HEADROOM 64

/*
 * Every connection holds a descriptor. At RLIMIT_NOFILE libuv accepts and
 * closes new connections unanswered (no -32000, no log, no count), so
 * max-connections must fit under it: a soft limit too low is raised to the
 * hard one (room too for a flood of connections refused with -32000); if
 * that is not enough, max-connections is lowered to what fits, and the log
 * says so. Returns 0 (never stops the start).
 */
static int fit_connections_to_fd_limit(totod_config *cfg) {
    struct rlimit rl;
    if (cfg->stdio || getrlimit(RLIMIT_NOFILE, &rl))
        return 0;
    rlim_t need = (rlim_t)cfg->max_connections + (rlim_t)open_fds() + FD_HEADROOM;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return 0;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY ? need : rl.rlim_max;
    if (rl.rlim_cur > was && setrlimit(RLIMIT_NOFILE, &rl) == 0)
        log_info("open-file limit (RLIMIT_NOFILE) raised from %llu to %llu for max-connections "
                 "%lld",
                 (unsigned long long)was, (unsigned long long)rl.rlim_cur,
                 (long long)cfg->max_connections);
    else
        rl.rlim_cur = was;
    if (rl.rlim_cur >= need)
        return 0;
    long long fit = (long long)rl.rlim_cur - (long long)(need - (rlim_t)cfg->max_connections);
    fit = fit < 1 ? 1 : fit;
    log_warning("max-connections %lld needs about %llu file descriptors, but the open-file limit "
                "(RLIMIT_NOFILE) is %llu: serving at most %lld connections (raise the limit: "
                "ulimit -n, LimitNOFILE=)",
                (long long)cfg->max_connections, (unsigned long long)need,
                (unsigned long long)rl.rlim_cur, fit);
    cfg->max_connections = fit;
    return 0;
}

/* ---- reload (SIGHUP): a new model opens and warms beside the serving one ---- */

static void notify_serving(const char *note) {
    const toto_model_info *info = &the_server.info;
    sd_notifyf(0, "READY=1\nSTATUS=serving %s on %s (%s)%s%s", info->name, info->device, info->path,
               config.untrained ? ", untrained" : "", note);
}

static void free_models(toto_model **models, int n) {
    for (int i = 0; i < n; i++) {
        toto_model_free(models[i]);
        models[i] = NULL;
    }
}

/* A libuv pool thread: open and warm what the new configuration names, once
 * per worker. The devices must be the same ones: workers are not added or
 * removed by a reload. */
static void reload_open(uv_work_t *req) {
    reload_job *r = req->data;
    char devs[MAX_WORKERS][32];
    double ms;
    if (device_list(r->cfg.device, devs) != n_workers) {
        snprintf(r->err, sizeof r->err,
                 "device %s is not the %d device(s) served now: restart totod to change them",
                 r->cfg.device, n_workers);
        return;
    }
    for (int i = 0; i < n_workers; i++) {
        r->models[i] = open_model(&r->cfg, devs[i]);
        if (!r->models[i])
            snprintf(r->err, sizeof r->err, "cannot open the model %s on %s (the log says why)",
                     r->cfg.model, devs[i]);
        else if (model_warm(r->models[i], &ms, r->err, sizeof r->err) == 0)
            continue;
        free_models(r->models, n_workers);
        return;
    }
}

/* What a reload takes over: the model and its settings. The others (listeners,
 * limits of the daemon itself) need a restart. */
static void take_model_settings(totod_config *to, const totod_config *from) {
    memcpy(to->model, from->model, sizeof to->model);
    memcpy(to->device, from->device, sizeof to->device);
    memcpy(to->dtype, from->dtype, sizeof to->dtype);
    memcpy(to->compile_mode, from->compile_mode, sizeof to->compile_mode);
    memcpy(to->compute_dtype, from->compute_dtype, sizeof to->compute_dtype);
    to->compile = from->compile;
    to->disable_compile = from->disable_compile;
    to->threads = from->threads;
    to->max_prediction_length = from->max_prediction_length;
    to->max_num_samples = from->max_num_samples;
    to->max_context_length = from->max_context_length;
    to->max_variates = from->max_variates;
    to->untrained = from->untrained;
}

/* The loop, once the new models are warm (or could not be): hand them to the
 * workers, each at its next batch boundary. A worker out of rotation takes
 * none (its thread has ended): its model is freed. */
static void reload_opened(uv_work_t *req, int status) {
    reload_job *r = req->data;
    (void)status;
    r->running = false;
    if (r->models[0] && the_server.state != SERVER_SERVING) {
        free_models(r->models, n_workers); /* shutting down meanwhile */
        return;
    }
    for (int i = 0; r->models[0] && i < n_workers; i++) {
        worker_stats st;
        worker_get_stats(&workers[i], &st);
        if (!st.out_of_rotation && (workers[i].next_model || workers[i].retired)) {
            free_models(r->models, n_workers);
            snprintf(r->err, sizeof r->err, "the previous reload is not finished");
        }
    }
    if (!r->models[0]) {
        log_error("reload failed: %s; still serving %s", r->err, config.model);
        notify_serving(" (the last reload failed)");
        return;
    }
    for (int i = 0; i < n_workers; i++) {
        worker_stats st;
        worker_get_stats(&workers[i], &st);
        if (st.out_of_rotation || !worker_offer_model(&workers[i], r->models[i]))
            toto_model_free(r->models[i]);
        r->models[i] = NULL; /* the worker's now, or freed */
    }
    take_model_settings(&config, &r->cfg);
}

/* A worker serves on the new model and its old one is freed (once per worker). */
static void reload_done(server *s) {
    toto_model_get_info(worker_model(&s->workers[0]), &s->info);
    log_info("reloaded: serving %s on %s (%s), path %s%s", s->info.name, s->info.device,
             s->info.dtype, s->info.path, n_workers > 1 ? " (one worker's swap)" : "");
    notify_serving("");
}

/* SIGHUP: read the configuration again and open its model in the background;
 * the current one serves until the new one is warm. */
static void start_reload(server *s) {
    if (reload.running) {
        log_warning("SIGHUP: a reload is under way already; this one is ignored");
        return;
    }
    if (config_load(&reload.cfg, reload.argc, reload.argv, stdout, stderr) != CONFIG_RUN) {
        log_error("SIGHUP: the configuration is not valid (above); nothing is reloaded");
        return;
    }
    if (strcmp(reload.cfg.unix_path, config.unix_path) || strcmp(reload.cfg.tcp, config.tcp) ||
        strcmp(reload.cfg.http, config.http))
        log_warning("SIGHUP: the listeners changed: they need a restart; only the model reloads");
    reload.running = true;
    reload.work.data = &reload;
    sd_notifyf(0, "RELOADING=1\nSTATUS=reloading: opening %s on %s", reload.cfg.model,
               reload.cfg.device);
    log_info("SIGHUP: reloading: opening %s on %s (%s) beside the serving model", reload.cfg.model,
             reload.cfg.device, reload.cfg.dtype);
    if (uv_queue_work(s->loop, &reload.work, reload_open, reload_opened)) {
        reload.running = false;
        log_error("reload failed: cannot start its thread; still serving %s", config.model);
        notify_serving("");
    }
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
    reload.argc = argc;
    reload.argv = argv;
    the_server.reload = config.stdio ? NULL : start_reload;
    the_server.on_reloaded = reload_done;
    int status = 0;
    if (start_model(&the_server, &config)) {
        status = 1;
        server_shutdown(&the_server, "startup failed");
    } else if (fit_connections_to_fd_limit(&config) ||
               server_listen(&the_server, workers, n_workers)) {
        status = 1;
        server_shutdown(&the_server, "startup failed");
    } else {
        sd_notifyf(0, "READY=1\nSTATUS=serving %s on %s (%s)%s", workers[0].info.name,
                   config.device, workers[0].info.path, config.untrained ? ", untrained" : "");
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
