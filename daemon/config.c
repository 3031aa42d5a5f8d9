/*
 * config.c - totod's settings from defaults, a config file, the environment
 * and flags (precedence in config.h). One table describes every setting, so
 * the flag, the variable, the file key, --help and --check-config cannot
 * drift apart.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "toto.h"

#ifndef TOTO_DEFAULT_MODEL_DIR
#define TOTO_DEFAULT_MODEL_DIR "models/default"
#endif

typedef enum setting_kind { KIND_STRING, KIND_INT, KIND_BYTES, KIND_BOOL } setting_kind;

typedef struct setting {
    const char *name; /* flag without dashes, file key; env is TOTO_ + upper */
    setting_kind kind;
    size_t offset;
    size_t size;      /* strings: buffer size */
    int64_t min, max; /* numbers */
    const char *arg;  /* for --help */
    const char *help;
} setting;

#define STR(field)               KIND_STRING, offsetof(totod_config, field), sizeof(((totod_config *)0)->field)
#define NUM(kind, field, lo, hi) kind, offsetof(totod_config, field), 0, lo, hi
#define FLAG(field)              KIND_BOOL, offsetof(totod_config, field), 0, 0, 1

static const setting settings[] = {
    {"model", STR(model), 0, 0, "DIR", "checkpoint directory (config.json, model.safetensors)"},
    {"device", STR(device), 0, 0, "DEV",
     "cpu, cuda or cuda:N; cuda:all or a list (cuda:0,cuda:1): one inference worker each"},
    {"dtype", STR(dtype), 0, 0, "TYPE", "float32 or float64"},
    {"unix", STR(unix_path), 0, 0, "PATH", "Unix socket (mode 0660); 'none' disables it"},
    {"unix-mode", STR(unix_mode), 0, 0, "MODE",
     "the Unix socket's permissions, octal, 0600 to 0777 (under socket activation: the socket "
     "unit's SocketMode=)"},
    {"unix-group", STR(unix_group), 0, 0, "GROUP",
     "give the Unix socket to this group, a name or a gid (totod's user must be in it, or root; "
     "under socket activation: SocketGroup=)"},
    {"tcp", STR(tcp), 0, 0, "HOST:PORT",
     "TCP listener; ':PORT' means 127.0.0.1 (another host only when written out); port 0 "
     "picks one"},
    {"http", STR(http), 0, 0, "HOST:PORT",
     "HTTP listener: GET /health, /ready, /metrics; POST /v1/forecast; ':PORT' means 127.0.0.1"},
    {"http-idle-timeout-ms", NUM(KIND_INT, http_idle_timeout_ms, 0, 86400000), "MS",
     "close an HTTP connection idle this long, or a request not complete this long after its "
     "first byte (not while its forecast runs); 0: never"},
    {"rpc-line-timeout-ms", NUM(KIND_INT, rpc_line_timeout_ms, 0, 86400000), "MS",
     "JSON-RPC over a socket: a request line not complete this long after its first byte is "
     "refused and the connection closed (slow senders); idle connections are never closed; "
     "0: never"},
    {"auth-token-file", STR(auth_token_file), 0, 0, "FILE",
     "TCP clients must send the method auth, HTTP clients 'Authorization: Bearer TOKEN' (but for "
     "/health, /ready), with the token on this file's first line (16 to 1024 bytes; the file "
     "readable by totod's user only); the Unix socket needs none (docs/security.md)"},
    {"config", STR(config_file), 0, 0, "FILE", "config file of 'key = value' lines"},
    {"stdio", FLAG(stdio), NULL,
     "serve one client on stdin/stdout (files, pipes or a terminal); open no socket"},
    {"compile", FLAG(compile), NULL,
     "build the compiled path at start and serve from it (static buckets; CUDA graphs on a GPU)"},
    {"disable-compile", FLAG(disable_compile), NULL,
     "eager path only, whatever compile says (TOTO_DISABLE_COMPILE=1)"},
    {"compile-mode", STR(compile_mode), 0, 0, "MODE",
     "default (no graphs), reduce-overhead (CUDA graphs) or max-autotune"},
    {"compute-dtype", STR(compute_dtype), 0, 0, "TYPE",
     "compiled path precision: bfloat16, float32 or float64 (default: bfloat16 on CUDA, dtype "
     "on CPU)"},
    {"max-batch-tokens", NUM(KIND_INT, max_batch_tokens, 1, INT64_C(1) << 40), "N",
     "token budget of one model call (sum of variates x steps)"},
    {"max-batch-size", NUM(KIND_INT, max_batch_size, 1, 65536), "N",
     "most requests in one model call"},
    {"batch-delay-us", NUM(KIND_INT, batch_delay_us, 0, 10000000), "US",
     "extra wait for a batch to fill (0: none; batches form while the model runs)"},
    {"batch-refill-us", NUM(KIND_INT, batch_refill_us, 0, 10000000), "US",
     "after a batch, how long the worker may wait for the clients it answered to send their "
     "next requests, so that they share a batch again (0: never)"},
    {"latency-objective-ms", NUM(KIND_INT, latency_objective_ms, 0, 3600000), "MS",
     "health turns degraded while the p99 of forecasts' total latency over the last minute "
     "(at least 10 of them) is above this (0: no objective)"},
    {"state-dir", STR(state_dir), 0, 0, "DIR",
     "where drift scores survive restarts (default $STATE_DIRECTORY under systemd; none)"},
    {"drift-threshold-percent", NUM(KIND_INT, drift_threshold_percent, 100, 100000), "PCT",
     "health turns degraded while forecasts' recent errors exceed their baseline by this much "
     "(120: 1.2x; docs/operations.md)"},
    {"drift-max-series", NUM(KIND_INT, drift_max_series, 1, 10000000), "N",
     "series remembered for drift (series_id with start and interval); the least recently used "
     "goes"},
    {"drift-baseline", NUM(KIND_INT, drift_baseline, 1, 64), "N",
     "a series' first N scored forecasts are its baseline"},
    {"drift-recent", NUM(KIND_INT, drift_recent, 1, 64), "N",
     "drift compares a series' last N scored forecasts with its baseline"},
    {"shadow-every", NUM(KIND_INT, shadow_every, 0, 1000000000), "N",
     "shadow checks: one compiled forecast in N is run again on the eager path while the "
     "worker is idle, and the two compared (0: never)"},
    {"shadow-fallback-after", NUM(KIND_INT, shadow_fallback_after, 1, 1000000), "N",
     "this many shadow checks in a row over the compiled path's tolerance make totod fall back "
     "to the eager path"},
    {"shadow-idle-ms", NUM(KIND_INT, shadow_idle_ms, 0, 3600000), "MS",
     "a shadow check runs only after nothing has been queued for this long, so that it delays "
     "no client"},
    {"handoff-poll-us", NUM(KIND_INT, handoff_poll_us, 0, 100000), "US",
     "how long the loop and the worker poll, instead of sleeping, for a request or answer "
     "they expect (saves a thread wake-up each way; 0: always sleep)"},
    {"model-end-poll-us", NUM(KIND_INT, model_end_poll_us, 0, 1000000), "US",
     "the loop polls for answers from this long before a model call is expected to end (its "
     "recent average time) until they come; saves a wake-up per answer; 0: never"},
    {"queue-limit", NUM(KIND_INT, queue_limit, 1, 1000000), "N",
     "queued forecasts; beyond it: overloaded"},
    {"max-line-bytes", NUM(KIND_BYTES, max_line_bytes, 64, INT64_C(1) << 30), "BYTES",
     "longest message line; beyond it: error, connection closed"},
    {"max-inflight", NUM(KIND_INT, max_inflight, 1, 1000000), "N",
     "unanswered forecasts per connection"},
    {"max-connections", NUM(KIND_INT, max_connections, 1, 1000000), "N", "open connections"},
    {"max-write-buffer", NUM(KIND_BYTES, max_write_buffer, 1024, INT64_C(1) << 40), "BYTES",
     "unsent answers per connection before it stops being read"},
    {"grace-ms", NUM(KIND_INT, grace_ms, 0, 3600000), "MS",
     "on SIGTERM, how long queued work may still run"},
    {"threads", NUM(KIND_INT, threads, 0, 4096), "N", "CPU threads; 0: libtorch's default"},
    {"io-threads", NUM(KIND_INT, io_threads, 0, 64), "N",
     "threads of each kind that, while many forecasts are owed, parse JSON-RPC request lines "
     "and write answers for the one loop thread, so that it keeps up with several GPUs (0: the "
     "loop does both; default: one per 8 CPUs, at most 4)"},
    {"max-prediction-length", NUM(KIND_INT, max_prediction_length, 1, 1000000), "N",
     "longest horizon a request may ask"},
    {"max-num-samples", NUM(KIND_INT, max_num_samples, 0, 1000000), "N",
     "most sampled paths a request may ask"},
    {"max-context-length", NUM(KIND_INT, max_context_length, 1, 100000000), "N",
     "longest series history"},
    {"max-variates", NUM(KIND_INT, max_variates, 1, 1000000), "N", "most variates per series"},
};
#define N_SETTINGS (sizeof settings / sizeof settings[0])
_Static_assert(N_SETTINGS <=
                   sizeof(((totod_config *)0)->source) / sizeof(((totod_config *)0)->source[0]),
               "source[] too small");

static const char *const source_names[] = {"default", "file", "env", "flag"};

/* One per 8 CPUs, at most 4 (of each kind: parse and write): a seed
 * forecast's line takes ~10 µs, so 2 threads parse 100,000 lines/s, and
 * fewer threads stay busy (polling, not sleeping) at a given load. Under 8
 * CPUs the loop does it all: a helper would take a core the workers and
 * libtorch need. */
static int64_t default_io_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n / 8 < 4 ? n / 8 : 4;
}

static void defaults(totod_config *cfg) {
    toto_model_params p = toto_model_default_params();
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->model, sizeof cfg->model, "%s", TOTO_DEFAULT_MODEL_DIR);
    snprintf(cfg->device, sizeof cfg->device, "%s", p.device);
    snprintf(cfg->dtype, sizeof cfg->dtype, "%s", p.dtype);
    const char *runtime = getenv("RUNTIME_DIRECTORY"); /* set by systemd's RuntimeDirectory= */
    if (runtime && runtime[0]) {
        /* systemd may list several directories separated by ':'; use the first. */
        size_t n = strcspn(runtime, ":");
        snprintf(cfg->unix_path, sizeof cfg->unix_path, "%.*s/toto.sock", (int)n, runtime);
    } else {
        snprintf(cfg->unix_path, sizeof cfg->unix_path, "/run/toto/toto.sock");
    }
    snprintf(cfg->unix_mode, sizeof cfg->unix_mode, "0660");
    cfg->unix_gid = -1;
    cfg->http_idle_timeout_ms = 30000;
    cfg->rpc_line_timeout_ms = 60000;
    cfg->compile = true;
    snprintf(cfg->compile_mode, sizeof cfg->compile_mode, "reduce-overhead");
    cfg->max_batch_tokens = 65536;
    cfg->max_batch_size = 64;
    /* No wait by default: an idle worker starts at once, and the requests that
     * arrive while it computes form the next batch. A delay trades each
     * request's latency for larger batches. */
    cfg->batch_delay_us = 0;
    /* Long enough for a few closed-loop clients to come back (8 on the H100:
     * 4,779 forecasts/s against 3,826 without); where many take longer, a
     * timed-out refill backs off (queue.h), so they keep the model busy
     * with half batches instead. */
    cfg->batch_refill_us = 500;
    /* systemd's StateDirectory=: the first of its colon-separated paths. */
    const char *state = getenv("STATE_DIRECTORY");
    if (state)
        snprintf(cfg->state_dir, sizeof cfg->state_dir, "%.*s", (int)strcspn(state, ":"), state);
    cfg->drift_threshold_percent = 120;
    cfg->drift_max_series = 10000;
    cfg->drift_baseline = 20;
    cfg->drift_recent = 10;
    cfg->shadow_every = 100;
    cfg->shadow_fallback_after = 3;
    cfg->shadow_idle_ms = 50;
    /* A thread wake-up costs 20-100 µs on a virtual machine; polling for as
     * long as a parse or an encode takes hides it (queue.h). */
    cfg->handoff_poll_us = 200;
    cfg->model_end_poll_us = 1000;
    cfg->queue_limit = 1024;
    cfg->max_line_bytes = INT64_C(16) << 20;
    cfg->max_inflight = 256;
    cfg->max_connections = 1024;
    cfg->max_write_buffer = INT64_C(32) << 20;
    cfg->grace_ms = 10000;
    cfg->threads = p.cpu_threads;
    cfg->io_threads = default_io_threads();
    cfg->max_prediction_length = p.max_prediction_length;
    cfg->max_num_samples = p.max_num_samples;
    cfg->max_context_length = p.max_context_length;
    cfg->max_variates = p.max_variates;
}

static void env_name(const setting *s, char *out, size_t len) {
    size_t k = (size_t)snprintf(out, len, "TOTO_");
    for (const char *c = s->name; *c && k + 1 < len; c++)
        out[k++] = *c == '-' ? '_' : (char)toupper((unsigned char)*c);
    out[k] = '\0';
}

static const setting *find_setting(const char *name, size_t len) {
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *a = settings[i].name;
        size_t k = 0;
        /* file keys may use '_' where flags use '-' */
        while (k < len && a[k] && (a[k] == name[k] || (a[k] == '-' && name[k] == '_')))
            k++;
        if (k == len && a[k] == '\0')
            return &settings[i];
    }
    return NULL;
}

/* Parses an integer with an optional K/M/G (binary) suffix for byte sizes. */
static int parse_int(const char *text, bool bytes, int64_t *out) {
    char *end;
    errno = 0;
    long long n = strtoll(text, &end, 10);
    if (errno || end == text)
        return -1;
    int shift = 0;
    if (bytes && *end) {
        const char *units = "KMG";
        const char *u = strchr(units, toupper((unsigned char)*end));
        if (!u)
            return -1;
        shift = 10 * (int)(u - units + 1);
        end++;
        if (*end == 'i' || *end == 'I')
            end++;
        if (*end == 'b' || *end == 'B')
            end++;
    }
    if (*end || (shift && (n < 0 || n > (LLONG_MAX >> shift))))
        return -1;
    *out = (int64_t)n * ((int64_t)1 << shift);
    return 0;
}

static int parse_bool(const char *text, bool *out) {
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(text, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}

/* Stores value into the setting; on failure prints "where: why" to err. */
static int apply(totod_config *cfg, const setting *s, const char *value, config_source src,
                 const char *where, FILE *err) {
    char *field = (char *)cfg + s->offset;
    int64_t n;
    bool b;
    switch (s->kind) {
    case KIND_STRING:
        if (strlen(value) >= s->size) {
            fprintf(err, "totod: %s: too long (at most %zu bytes): '%s'\n", where, s->size - 1,
                    value);
            return -1;
        }
        snprintf(field, s->size, "%s", value);
        break;
    case KIND_INT:
    case KIND_BYTES:
        if (parse_int(value, s->kind == KIND_BYTES, &n) || n < s->min || n > s->max) {
            fprintf(err, "totod: %s: expected an integer%s from %lld to %lld, got '%s'\n", where,
                    s->kind == KIND_BYTES ? " (bytes; K, M, G suffixes allowed)" : "",
                    (long long)s->min, (long long)s->max, value);
            return -1;
        }
        memcpy(field, &n, sizeof n);
        break;
    case KIND_BOOL:
        if (parse_bool(value, &b)) {
            fprintf(err, "totod: %s: expected true or false (1/0, yes/no, on/off), got '%s'\n",
                    where, value);
            return -1;
        }
        memcpy(field, &b, sizeof b);
        break;
    }
    cfg->source[s - settings] = src;
    return 0;
}

/* A flag from argv, applied after the file and the environment. */
typedef struct flag_value {
    const setting *s;
    const char *value;
    const char *text; /* as written, for messages */
} flag_value;

typedef struct cli_args {
    flag_value *flags;
    int n;
    bool help, version, check;
} cli_args;

static int parse_flag(int argc, char **argv, int *i, cli_args *cli, FILE *err) {
    const char *arg = argv[*i];
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
        return cli->help = true, 0;
    if (!strcmp(arg, "--version"))
        return cli->version = true, 0;
    if (!strcmp(arg, "--check-config"))
        return cli->check = true, 0;
    const char *eq = strchr(arg, '=');
    size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
    const setting *s = strncmp(arg, "--", 2) == 0 ? find_setting(arg + 2, len - 2) : NULL;
    if (!s) {
        fprintf(err, "totod: unknown argument '%s'\nTry 'totod --help'.\n", arg);
        return -1;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value && s->kind == KIND_BOOL)
        value = "true";
    if (!value && *i + 1 >= argc) {
        fprintf(err, "totod: --%s: missing value (%s)\n", s->name, s->arg);
        return -1;
    }
    if (!value)
        value = argv[++*i];
    cli->flags[cli->n++] = (flag_value){s, value, arg};
    return 0;
}

static int parse_argv(int argc, char **argv, cli_args *cli, FILE *err) {
    memset(cli, 0, sizeof *cli);
    cli->flags = calloc((size_t)(argc > 0 ? argc : 1), sizeof *cli->flags);
    if (!cli->flags) {
        fprintf(err, "totod: out of memory\n");
        return -1;
    }
    for (int i = 1; i < argc; i++)
        if (parse_flag(argc, argv, &i, cli, err))
            return -1;
    return 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One "key = value" line of the config file; comments and blanks were skipped. */
static int apply_file_line(totod_config *cfg, char *line, const char *path, int lineno, FILE *err) {
    char where[TOTOD_PATH_MAX + 160];
    char *eq = strchr(line, '=');
    if (!eq) {
        fprintf(err, "totod: %s:%d: expected 'key = value', got '%s'\n", path, lineno, line);
        return -1;
    }
    *eq = '\0';
    char *key = trim(line), *value = trim(eq + 1);
    size_t n = strlen(value);
    if (n >= 2 && value[0] == '"' && value[n - 1] == '"') { /* optional quotes */
        value[n - 1] = '\0';
        value++;
    }
    const setting *s = find_setting(key, strlen(key));
    if (!s || !strcmp(s->name, "config")) {
        fprintf(err, "totod: %s:%d: unknown key '%s' (keys are the long flags: 'totod --help')\n",
                path, lineno, key);
        return -1;
    }
    snprintf(where, sizeof where, "%s:%d: %s", path, lineno, s->name);
    return apply(cfg, s, value, SOURCE_FILE, where, err);
}

static int apply_file(totod_config *cfg, const char *path, FILE *err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "totod: config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        char *text = trim(line);
        lineno++;
        if (text[0] != '\0' && text[0] != '#')
            rc = apply_file_line(cfg, text, path, lineno, err);
    }
    if (rc == 0 && ferror(f)) {
        fprintf(err, "totod: config file %s: read error\n", path);
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

static int apply_env(totod_config *cfg, FILE *err) {
    char name[64];
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (!strcmp(settings[i].name, "config"))
            continue; /* read first, by apply_config_file() */
        env_name(&settings[i], name, sizeof name);
        const char *value = getenv(name);
        /* An empty variable counts as unset, as shells make that easy to write. */
        if (value && value[0] && apply(cfg, &settings[i], value, SOURCE_ENV, name, err))
            return -1;
    }
    return 0;
}

static int apply_flags(totod_config *cfg, const cli_args *cli, FILE *err) {
    char where[160];
    for (int i = 0; i < cli->n; i++) {
        snprintf(where, sizeof where, "--%s", cli->flags[i].s->name);
        if (apply(cfg, cli->flags[i].s, cli->flags[i].value, SOURCE_FLAG, where, err))
            return -1;
    }
    return 0;
}

/* How the user set setting `name`, for messages about its value. */
static const char *where_set(const totod_config *cfg, const char *name, char *buf, size_t len) {
    const setting *s = find_setting(name, strlen(name));
    config_source src = cfg->source[s - settings];
    if (src == SOURCE_ENV)
        env_name(s, buf, len);
    else if (src == SOURCE_FILE)
        snprintf(buf, len, "%s: %s", cfg->config_file, s->name);
    else
        snprintf(buf, len, "--%s%s", s->name, src == SOURCE_DEFAULT ? " (default)" : "");
    return buf;
}

int config_split_hostport(const char *text, char *host, size_t host_len, int *port) {
    const char *colon = strrchr(text, ':');
    const char *port_text = colon ? colon + 1 : text;
    size_t hlen = colon ? (size_t)(colon - text) : 0;
    const char *h = text;
    if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') { /* [v6]:port */
        h++;
        hlen -= 2;
    } else if (hlen && memchr(text, ':', hlen)) {
        return -1; /* a bare IPv6 address must be bracketed */
    }
    char *end;
    errno = 0;
    long p = strtol(port_text, &end, 10);
    if (!*port_text || *end || errno || p < 0 || p > 65535 || hlen >= host_len)
        return -1;
    if (hlen == 0 || (hlen == 9 && !strncmp(h, "localhost", 9)))
        snprintf(host, host_len, "127.0.0.1"); /* loopback unless asked otherwise */
    else
        snprintf(host, host_len, "%.*s", (int)hlen, h);
    *port = (int)p;
    return 0;
}

/* One device: cpu, cuda or cuda:N (len bytes of text). */
static int check_one_device(const char *d, size_t len) {
    if ((len == 3 && !strncmp(d, "cpu", 3)) || (len == 4 && !strncmp(d, "cuda", 4)))
        return 0;
    if (len < 6 || strncmp(d, "cuda:", 5))
        return -1;
    for (size_t i = 5; i < len; i++)
        if (!isdigit((unsigned char)d[i]))
            return -1;
    return 0;
}

/* cuda:all (one worker per GPU), or a comma-separated list of devices (one
 * worker each, docs/DEPLOYMENT.md), or one device. */
static int check_device(const char *device) {
    if (!strcmp(device, "cuda:all"))
        return 0;
    for (const char *d = device;; d++) {
        const char *end = strchr(d, ',');
        size_t len = end ? (size_t)(end - d) : strlen(d);
        if (check_one_device(d, len))
            return -1;
        if (!end)
            return 0;
        d = end;
    }
}

/* "none" disables a listener; otherwise the address must parse. */
static int check_address(totod_config *cfg, char *addr, const char *name, FILE *err) {
    char where[TOTOD_PATH_MAX + 64], host[256];
    int port;
    if (!strcmp(addr, "none"))
        addr[0] = '\0';
    if (addr[0] && config_split_hostport(addr, host, sizeof host, &port)) {
        fprintf(err,
                "totod: %s: expected HOST:PORT (IPv4, [IPv6] or localhost; port 0..65535), "
                "got '%s'\n",
                where_set(cfg, name, where, sizeof where), addr);
        return -1;
    }
    return 0;
}

/* unix-mode: octal, owner read and write at least, no set-id or sticky bits. */
static int check_unix_mode(totod_config *cfg, FILE *err) {
    char where[TOTOD_PATH_MAX + 64], *end;
    errno = 0;
    unsigned long mode = strtoul(cfg->unix_mode, &end, 8);
    bool octal = cfg->unix_mode[0] && !*end && !errno && cfg->unix_mode[0] != '-' &&
                 cfg->unix_mode[0] != '+' && !isspace((unsigned char)cfg->unix_mode[0]);
    if (!octal || mode > 0777 || (mode & 0600) != 0600) {
        fprintf(err,
                "totod: %s: expected an octal mode from 0600 to 0777 that lets the owner read and "
                "write (e.g. 0660), got '%s'\n",
                where_set(cfg, "unix-mode", where, sizeof where), cfg->unix_mode);
        return -1;
    }
    cfg->unix_mode_bits = (unsigned)mode;
    return 0;
}

/* unix-group: a gid as digits, else a group name looked up now. */
static int check_unix_group(totod_config *cfg, FILE *err) {
    char where[TOTOD_PATH_MAX + 64], buf[16384], *end;
    struct group gr, *found = NULL;
    cfg->unix_gid = -1;
    if (!cfg->unix_group[0])
        return 0;
    errno = 0;
    unsigned long gid = strtoul(cfg->unix_group, &end, 10);
    if (isdigit((unsigned char)cfg->unix_group[0]) && !*end && !errno && gid < 0x7fffffffUL) {
        cfg->unix_gid = (long)gid;
        return 0;
    }
    int rc = getgrnam_r(cfg->unix_group, &gr, buf, sizeof buf, &found);
    if (!found) {
        fprintf(err, "totod: %s: no such group '%s'%s%s (a group name or a numeric gid)\n",
                where_set(cfg, "unix-group", where, sizeof where), cfg->unix_group, rc ? ": " : "",
                rc ? strerror(rc) : "");
        return -1;
    }
    cfg->unix_gid = (long)found->gr_gid;
    return 0;
}

/* auth-token-file: read and checked now, so that a bad one stops totod from starting. */
static int check_auth_token(totod_config *cfg, FILE *err) {
    char where[TOTOD_PATH_MAX + 64], message[TOTOD_PATH_MAX + 200];
    cfg->auth_token_len = 0;
    if (!cfg->auth_token_file[0])
        return 0;
    if (auth_token_load(cfg->auth_token_file, cfg->auth_token, &cfg->auth_token_len, message,
                        sizeof message)) {
        fprintf(err, "totod: %s: %s; refusing to start without a usable token\n",
                where_set(cfg, "auth-token-file", where, sizeof where), message);
        return -1;
    }
    return 0;
}

/* Checks that need more than one value, or the file system. */
static int check_values(totod_config *cfg, FILE *err) {
    char where[TOTOD_PATH_MAX + 64], message[512], path[TOTOD_PATH_MAX + 16];
    if (check_device(cfg->device)) {
        fprintf(err,
                "totod: %s: expected cpu, cuda, cuda:N, cuda:all or a comma-separated list of "
                "them, got '%s'\n",
                where_set(cfg, "device", where, sizeof where), cfg->device);
        return -1;
    }
    if (strcmp(cfg->dtype, "float32") && strcmp(cfg->dtype, "float64")) {
        fprintf(err, "totod: %s: expected float32 or float64, got '%s'\n",
                where_set(cfg, "dtype", where, sizeof where), cfg->dtype);
        return -1;
    }
    if (strcmp(cfg->compile_mode, "default") && strcmp(cfg->compile_mode, "reduce-overhead") &&
        strcmp(cfg->compile_mode, "max-autotune")) {
        fprintf(err, "totod: %s: expected default, reduce-overhead or max-autotune, got '%s'\n",
                where_set(cfg, "compile-mode", where, sizeof where), cfg->compile_mode);
        return -1;
    }
    if (cfg->compute_dtype[0] && strcmp(cfg->compute_dtype, "bfloat16") &&
        strcmp(cfg->compute_dtype, "float32") && strcmp(cfg->compute_dtype, "float64")) {
        fprintf(err, "totod: %s: expected bfloat16, float32 or float64, got '%s'\n",
                where_set(cfg, "compute-dtype", where, sizeof where), cfg->compute_dtype);
        return -1;
    }
    if (!strcmp(cfg->unix_path, "none"))
        cfg->unix_path[0] = '\0';
    if (check_address(cfg, cfg->tcp, "tcp", err) || check_address(cfg, cfg->http, "http", err))
        return -1;
    if (check_unix_mode(cfg, err) || check_unix_group(cfg, err) || check_auth_token(cfg, err))
        return -1;
    toto_config arch;
    snprintf(path, sizeof path, "%s/config.json", cfg->model);
    if (toto_config_load(path, &arch, message, sizeof message) != TOTO_OK) {
        fprintf(err, "totod: %s: not a usable checkpoint directory: %s\n",
                where_set(cfg, "model", where, sizeof where), message);
        return -1;
    }
    /* Untrained: the checkpoint directory carries a file named UNTRAINED, the
     * marker of random weights (models/default is trained, so it has none). */
    snprintf(path, sizeof path, "%s/UNTRAINED", cfg->model);
    FILE *marker = fopen(path, "r");
    cfg->untrained = marker != NULL;
    if (marker)
        fclose(marker);
    return 0;
}

static void print_help(FILE *out) {
    totod_config d;
    char env[64];
    defaults(&d);
    fprintf(out, "Usage: totod [OPTIONS]\n"
                 "       totod --help | --version | --check-config [OPTIONS]\n\n"
                 "Serves Toto forecasts over JSON-RPC 2.0, one message per line, on a Unix\n"
                 "socket, TCP or stdin/stdout (protocol/PROTOCOL.md).\n\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting *s = &settings[i];
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s", s->name, s->arg ? " " : "", s->arg ? s->arg : "");
        env_name(s, env, sizeof env);
        fprintf(out, "  %-30s %s\n  %-30s [%s", flag, s->help, "", env);
        const char *field = (const char *)&d + s->offset;
        if (s->kind == KIND_STRING && field[0])
            fprintf(out, "; default %s", field);
        else if (s->kind == KIND_INT || s->kind == KIND_BYTES)
            fprintf(out, "; default %lld", (long long)*(const int64_t *)(const void *)field);
        fprintf(out, "]\n");
    }
    fprintf(out,
            "  %-30s print the effective settings and their sources as JSON;\n"
            "  %-30s exit 0 if valid, 2 if not\n"
            "  %-30s show this help\n  %-30s show the version\n\n"
            "Precedence: flags > environment (TOTO_*) > config file > defaults. The config\n"
            "file holds 'key = value' lines (keys as the flags, without dashes; '#' starts a\n"
            "comment line). The default model is the bundled one (models/default): a small\n"
            "trained Toto; a model directory holding a file UNTRAINED is reported untrained.\n\n"
            "Queued forecasts are batched round-robin across connections (each connection's\n"
            "in the order sent), so one client's long pipeline does not delay the others.\n\n"
            "With --stdio, 'totod --stdio < requests.jsonl > answers.jsonl' answers every line\n"
            "(in any order: match answers by id), waiting for answers rather than refusing\n"
            "beyond max-inflight, and exits once the input ends and every answer is written.\n\n"
            "Exit status: 0 clean exit (SIGTERM/SIGINT too), 1 runtime failure (with --stdio,\n"
            "also a read or write error on stdin/stdout: answers were lost), 2 bad\n"
            "configuration.\n",
            "--check-config", "", "--help", "--version");
}

json_t *config_to_json(const totod_config *cfg, bool with_sources) {
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < N_SETTINGS; i++) {
        const setting *s = &settings[i];
        const char *field = (const char *)cfg + s->offset;
        json_t *v;
        if (s->kind == KIND_STRING)
            v = json_string(field);
        else if (s->kind == KIND_BOOL)
            v = json_boolean(*(const bool *)(const void *)field);
        else
            v = json_integer(*(const int64_t *)(const void *)field);
        if (with_sources)
            v = json_pack("{s:o, s:s}", "value", v, "source", source_names[cfg->source[i]]);
        if (json_object_set_new(obj, s->name, v)) {
            json_decref(obj);
            return NULL;
        }
    }
    /* Not a setting: derived from --model (the bundled checkpoint is untrained). */
    json_t *untrained = json_boolean(cfg->untrained);
    if (with_sources)
        untrained = json_pack("{s:o, s:s}", "value", untrained, "source", "model");
    if (obj && json_object_set_new(obj, "untrained", untrained)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static config_action print_check(const totod_config *cfg, FILE *out, FILE *err) {
    json_t *doc = config_to_json(cfg, true);
    if (!doc || json_dumpf(doc, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ||
        fputc('\n', out) < 0) {
        fprintf(err, "totod: --check-config: cannot write the configuration\n");
        json_decref(doc);
        return CONFIG_INVALID;
    }
    json_decref(doc);
    return CONFIG_EXIT_OK;
}

/* The config file named by --config, else TOTO_CONFIG, else none. */
static int apply_config_file(totod_config *cfg, const cli_args *cli, FILE *err) {
    const setting *s = find_setting("config", 6);
    const char *env = getenv("TOTO_CONFIG");
    if (env && env[0] && apply(cfg, s, env, SOURCE_ENV, "TOTO_CONFIG", err))
        return -1;
    for (int i = 0; i < cli->n; i++)
        if (cli->flags[i].s == s &&
            apply(cfg, s, cli->flags[i].value, SOURCE_FLAG, "--config", err))
            return -1;
    return cfg->config_file[0] ? apply_file(cfg, cfg->config_file, err) : 0;
}

config_action config_load(totod_config *cfg, int argc, char **argv, FILE *out, FILE *err) {
    cli_args cli;
    config_action action = CONFIG_INVALID;
    defaults(cfg);
    if (parse_argv(argc, argv, &cli, err))
        goto done;
    if (cli.help || cli.version) {
        if (cli.help)
            print_help(out);
        else
            fprintf(out, "totod %s\n", TOTO_VERSION);
        action = CONFIG_EXIT_OK;
        goto done;
    }
    if (apply_config_file(cfg, &cli, err) || apply_env(cfg, err) || apply_flags(cfg, &cli, err) ||
        check_values(cfg, err))
        goto done;
    action = cli.check ? print_check(cfg, out, err) : CONFIG_RUN;
done:
    free(cli.flags);
    return action;
}
