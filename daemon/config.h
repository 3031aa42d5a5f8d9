/*
 * config.h - totod's settings: every knob, its default, and where its value
 * came from.
 *
 * Precedence, highest first: command-line flags > environment (TOTO_*) >
 * config file (--config FILE or TOTO_CONFIG) > built-in defaults. Each
 * setting has one name used everywhere: the flag --NAME, the variable
 * TOTO_NAME (upper case, '-' as '_'), and the file key NAME. Nothing here
 * touches the model or the network.
 */
#ifndef TOTOD_CONFIG_H
#define TOTOD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "auth.h"

#define TOTOD_PATH_MAX 4096
/* sockaddr_un.sun_path holds 108 bytes, the terminating NUL included. */
#define TOTOD_UNIX_PATH_MAX 107

/* Where a setting's value came from, lowest precedence first. */
typedef enum config_source {
    SOURCE_DEFAULT = 0,
    SOURCE_FILE,
    SOURCE_ENV,
    SOURCE_FLAG,
} config_source;

typedef struct totod_config {
    char model[TOTOD_PATH_MAX];              /* checkpoint directory */
    char device[128];                        /* cpu, cuda, cuda:N, cuda:all, or a list */
    char dtype[16];                          /* float32, float64 */
    char unix_path[TOTOD_UNIX_PATH_MAX + 1]; /* "" disables the Unix listener */
    char unix_mode[8];                       /* octal text; unix_mode_bits once checked */
    char unix_group[64];                     /* a group name or gid; "" leaves totod's own */
    char tcp[256];                           /* HOST:PORT; "" disables */
    char http[256];                          /* HOST:PORT; "" disables (httpd.h) */
    int64_t http_idle_timeout_ms;            /* HTTP: idle or slow-request limit; 0: none */
    int64_t rpc_line_timeout_ms;             /* JSON-RPC: a line begun must end within; 0: none */
    char auth_token_file[TOTOD_PATH_MAX];    /* TCP and HTTP need its token; "": no token */
    char config_file[TOTOD_PATH_MAX];        /* the file that was read, or "" */
    bool stdio;                              /* serve one client on stdin/stdout only */
    bool compile;                            /* TOTO_COMPILE: build the compiled path */
    bool disable_compile;                    /* TOTO_DISABLE_COMPILE: eager only; wins */
    char compile_mode[24];                   /* default, reduce-overhead, max-autotune */
    char compute_dtype[16];                  /* bfloat16, float32; "" picks (toto.h) */
    int64_t max_batch_tokens;                /* budget: sum of n_variates * n_steps */
    int64_t max_batch_size;                  /* most requests in one model call */
    int64_t batch_delay_us;                  /* longest wait for a batch to fill */
    int64_t batch_refill_us;                 /* queue.h: wait for the clients just answered */
    int64_t latency_objective_ms;            /* p99 of total, last minute; 0: none */
    char state_dir[TOTOD_PATH_MAX];          /* drift scores across restarts; "": none */
    int64_t drift_threshold_percent;         /* observe.h: recent / baseline errors, in % */
    int64_t drift_max_series, drift_baseline, drift_recent;
    int64_t shadow_every;          /* shadow.h: one check per N compiled forecasts */
    int64_t shadow_fallback_after; /* scores over tolerance in a row to fall back */
    int64_t shadow_idle_ms;        /* a check runs after this long with nothing queued */
    int64_t handoff_poll_us;       /* queue.h: polling for an expected hand-off */
    int64_t model_end_poll_us;     /* answer_poll.h: polling before a call ends */
    int64_t queue_limit;           /* queued requests; beyond: overloaded */
    int64_t max_line_bytes;        /* one JSON-RPC message */
    int64_t max_inflight;          /* unanswered forecasts per connection */
    int64_t max_connections;
    int64_t max_write_buffer; /* bytes of unsent answers before reading pauses */
    int64_t grace_ms;         /* how long shutdown waits for queued work */
    int64_t threads;          /* CPU intra-op threads; 0: libtorch's default */
    int64_t io_threads;       /* parse_pool.h: request lines parsed off the loop; 0: none */
    int64_t max_prediction_length;
    int64_t max_num_samples;
    int64_t max_context_length;
    int64_t max_variates;
    bool untrained;          /* derived: the model directory holds an UNTRAINED marker */
    unsigned unix_mode_bits; /* derived from unix_mode */
    long unix_gid;           /* derived from unix_group; -1: none */
    /* Derived: the token read from auth_token_file (auth.h); never printed. */
    char auth_token[AUTH_TOKEN_MAX + 1];
    size_t auth_token_len;    /* 0: no token configured */
    config_source source[48]; /* per setting, indexed like the settings table */
} totod_config;

/* What config_load() decided. */
typedef enum config_action {
    CONFIG_RUN,     /* serve */
    CONFIG_EXIT_OK, /* --help, --version, or --check-config on a valid config */
    CONFIG_INVALID, /* a message was printed to stderr: exit 2 */
} config_action;

/*
 * Fills cfg from defaults, the config file, env (getenv) and argv in that
 * order of precedence. Prints --help / --version / --check-config output to
 * out and every error to err.
 */
config_action config_load(totod_config *cfg, int argc, char **argv, FILE *out, FILE *err);

/* The effective settings as a JSON object; with_sources wraps each as {value, source}. */
json_t *config_to_json(const totod_config *cfg, bool with_sources);

/* Splits "HOST:PORT", ":PORT", "PORT", "[V6]:PORT"; missing host is 127.0.0.1. 0 or -1. */
int config_split_hostport(const char *text, char *host, size_t host_len, int *port);

#endif
