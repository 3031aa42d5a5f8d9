/* observe.c - forecast error drift in the daemon (see observe.h). */
#include "observe.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "drift.h"
#include "log.h"
#include "server.h"

static int field_error(proto_error *err, const char *field, const char *message) {
    err->code = PROTO_INVALID_PARAMS;
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->message, sizeof err->message, "%s: %s", field, message);
    return -1;
}

/* series_id as the tracker's key: the string, or the integer in decimal. */
static void key_of(const json_t *series_id, char *key, size_t len) {
    if (json_is_string(series_id))
        snprintf(key, len, "%s", json_string_value(series_id));
    else
        snprintf(key, len, "%lld", (long long)json_integer_value(series_id));
}

/* A time axis: start + i * interval, or the given times [n] (then start is
 * times[0] and interval the last step). */
typedef struct time_axis {
    bool timed;
    double start, interval;
    double *times; /* owned by the caller once parsed */
} time_axis;

static int parse_timestamps(const json_t *ts, int n, time_axis *ax, proto_error *err) {
    const char *want = "expected increasing finite numbers, one per step (at least 2)";
    if (!json_is_array(ts) || json_array_size(ts) != (size_t)n || n < 2)
        return field_error(err, "timestamps", want);
    ax->times = malloc((size_t)n * sizeof *ax->times);
    if (!ax->times)
        return field_error(err, "timestamps", "out of memory");
    for (int i = 0; i < n; i++) {
        const json_t *t = json_array_get(ts, (size_t)i);
        double v = json_is_number(t) ? json_number_value(t) : NAN;
        if (!isfinite(v) || (i > 0 && !(v > ax->times[i - 1]))) {
            free(ax->times);
            ax->times = NULL;
            return field_error(err, "timestamps", want);
        }
        ax->times[i] = v;
    }
    ax->start = ax->times[0];
    ax->interval = ax->times[n - 1] - ax->times[n - 2];
    ax->timed = true;
    return 0;
}

/* start and interval, or timestamps for n steps; neither: not timed. */
static int parse_axis(const json_t *params, int n, time_axis *ax, proto_error *err) {
    const json_t *a = json_object_get(params, "start"), *b = json_object_get(params, "interval");
    const json_t *ts = json_object_get(params, "timestamps");
    *ax = (time_axis){0};
    if (ts && (a || b))
        return field_error(err, "timestamps", "give timestamps, or start and interval, not both");
    if (ts)
        return parse_timestamps(ts, n, ax, err);
    if (!a && !b)
        return 0;
    if (!a || !json_is_number(a) || !isfinite(json_number_value(a)))
        return field_error(err, "start",
                           "expected a finite number (the first step's time), with interval");
    if (!b || !json_is_number(b) || !(json_number_value(b) > 0) || !isfinite(json_number_value(b)))
        return field_error(err, "interval",
                           "expected a positive finite number (time between steps), with start");
    ax->start = json_number_value(a);
    ax->interval = json_number_value(b);
    ax->timed = true;
    return 0;
}

int observe_parse_time_axis(const json_t *params, job *j, proto_error *err) {
    time_axis ax;
    const int T = j->req.req.n_steps;
    if (parse_axis(params, T, &ax, err))
        return -1;
    j->timed = ax.timed;
    j->times = ax.times;
    j->interval = ax.interval;
    /* The predicted steps follow the context's last at the interval. */
    j->start = ax.times ? ax.times[T - 1] - (double)(T - 1) * ax.interval : ax.start;
    return 0;
}

void observe_forecast_accepted(server *s, job *j) {
    if (!j->timed || !j->series_id || j->req.req.groups)
        return;
    const toto_request *r = &j->req.req;
    char key[300];
    key_of(j->series_id, key, sizeof key);
    char why[512];
    int scored =
        j->times ? drift_observe_at(s->drift, key, j->times, r->n_variates, r->n_steps, r->values)
                 : drift_observe(s->drift, key, j->start, j->interval, r->n_variates, r->n_steps,
                                 r->values);
    if (scored)
        observe_drift_reason(s, why, sizeof why); /* logs an episode's start or end now */
    j->drift_scale = malloc((size_t)r->n_variates * sizeof *j->drift_scale);
    if (j->drift_scale)
        drift_scale(r->n_variates, r->n_steps, r->values, j->drift_scale);
    j->drift_V = r->n_variates;
    j->drift_T = r->n_steps;
    j->drift_h = r->prediction_length;
}

void observe_forecast_answered(server *s, job *j) {
    if (j->drift_mean && j->drift_scale) {
        char key[300];
        key_of(j->series_id, key, sizeof key);
        drift_remember(s->drift, key, j->start, j->interval, j->drift_T, j->drift_V, j->drift_h,
                       j->drift_mean, j->drift_scale);
    }
    free(j->drift_mean);
    free(j->drift_scale);
    j->drift_mean = j->drift_scale = NULL;
}

/* values: [n] numbers (or null: missing) for one variate, or [V][n]. */
static int parse_values(const json_t *values, int *V, int *n, double **out, proto_error *err) {
    const char *shape = "expected an array of numbers (null: missing), or one such array per "
                        "variate, all as long, at most 1000000 values";
    size_t rows = json_array_size(values);
    bool nested = rows > 0 && json_is_array(json_array_get(values, 0));
    size_t cols = nested ? json_array_size(json_array_get(values, 0)) : rows;
    if (!json_is_array(values) || rows == 0 || cols == 0 || (nested ? rows : 1) * cols > 1000000)
        return field_error(err, "values", shape);
    *V = nested ? (int)rows : 1;
    *n = (int)cols;
    double *v = malloc((size_t)*V * cols * sizeof *v);
    if (!v)
        return field_error(err, "values", "out of memory");
    for (int r = 0; r < *V; r++) {
        const json_t *row = nested ? json_array_get(values, (size_t)r) : values;
        if (!json_is_array(row) || json_array_size(row) != cols) {
            free(v);
            return field_error(err, "values", shape);
        }
        for (size_t t = 0; t < cols; t++) {
            const json_t *x = json_array_get(row, t);
            if (!json_is_null(x) && !json_is_number(x)) {
                free(v);
                return field_error(err, "values", shape);
            }
            v[(size_t)r * cols + t] = json_is_null(x) ? NAN : json_number_value(x);
        }
    }
    *out = v;
    return 0;
}

json_t *observe_method(server *s, const json_t *params, proto_error *err) {
    const json_t *series_id = json_object_get(params, "series_id");
    double *values = NULL;
    time_axis ax;
    int V, n;
    if (!json_is_object(params)) {
        field_error(err, "params", "expected an object");
        return NULL;
    }
    if (!(json_is_string(series_id) && json_string_length(series_id) <= 256) &&
        !json_is_integer(series_id)) {
        field_error(err, "series_id", "expected a string of at most 256 bytes, or an integer");
        return NULL;
    }
    if (parse_values(json_object_get(params, "values"), &V, &n, &values, err))
        return NULL;
    if (parse_axis(params, n, &ax, err) ||
        (!ax.timed && field_error(err, "start",
                                  "expected a finite number (the first value's time) with "
                                  "interval, or timestamps"))) {
        free(values);
        return NULL;
    }
    char key[300], why[512];
    key_of(series_id, key, sizeof key);
    int scored = ax.times ? drift_observe_at(s->drift, key, ax.times, V, n, values)
                          : drift_observe(s->drift, key, ax.start, ax.interval, V, n, values);
    free(values);
    free(ax.times);
    if (scored)
        observe_drift_reason(s, why, sizeof why); /* logs an episode's start or end now */
    return json_pack("{s:i}", "scored", scored);
}

bool observe_drift_reason(server *s, char *why, size_t len) {
    drift_status st = drift_check(s->drift);
    if (st.drifting && !s->drift_logged)
        log_warning("forecast error drift: recent errors %.2fx the baseline over %d series "
                    "(threshold %.2f; worst %s at %.2fx)",
                    st.ratio, st.rated, (double)s->cfg->drift_threshold_percent / 100, st.worst,
                    st.worst_ratio);
    else if (!st.drifting && s->drift_logged)
        log_info("forecast error drift over: recent errors %.2fx the baseline", st.ratio);
    s->drift_logged = st.drifting;
    if (st.drifting)
        snprintf(why, len,
                 "forecast error drift: recent errors %.2fx the baseline over %d series "
                 "(threshold %.2f; %d over it, worst %s at %.2fx)",
                 st.ratio, st.rated, (double)s->cfg->drift_threshold_percent / 100, st.over,
                 st.worst, st.worst_ratio);
    return st.drifting;
}

static void state_path(const server *s, const char *suffix, char *path, size_t len) {
    snprintf(path, len, "%s/drift.json%s", s->cfg->state_dir, suffix);
}

void observe_load_state(server *s) {
    char path[TOTOD_PATH_MAX + 32], err[256];
    json_error_t jerr;
    if (!s->cfg->state_dir[0])
        return;
    state_path(s, "", path, sizeof path);
    if (access(path, F_OK) != 0)
        return; /* a first start */
    json_t *doc = json_load_file(path, 0, &jerr);
    int n = doc ? drift_restore(s->drift, doc, err, sizeof err) : -1;
    if (n < 0)
        log_warning("state file %s not used (%s): drift starts afresh", path,
                    doc ? err : jerr.text);
    else
        log_info("drift scores of %d series restored from %s", n, path);
    json_decref(doc);
}

/* Writes doc to path through path.tmp, synced, then renamed: never half a file. */
static int write_atomically(const json_t *doc, const char *tmp, const char *path) {
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int rc = json_dumpf(doc, f, JSON_COMPACT) == 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    rc = fclose(f) == 0 && rc;
    if (!rc || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

uint64_t observe_state_every_ms(void) {
#ifdef TOTO_FAULT_INJECTION
    const char *every = getenv("TOTO_FAULT_STATE_EVERY_MS");
    if (every && atoi(every) > 0)
        return (uint64_t)atoi(every);
#endif
    return 60000;
}

void observe_save_state(server *s) {
    char path[TOTOD_PATH_MAX + 32], tmp[TOTOD_PATH_MAX + 32];
    if (!s->cfg->state_dir[0] || !drift_dirty(s->drift))
        return;
    state_path(s, "", path, sizeof path);
    state_path(s, ".tmp", tmp, sizeof tmp);
    json_t *doc = drift_scores(s->drift);
    if (!doc || write_atomically(doc, tmp, path)) {
        log_warning("cannot write the state file %s: %s", path, strerror(errno));
        drift_mark_dirty(s->drift); /* not saved: the next tick (or the shutdown) tries again */
    }
    json_decref(doc);
}
