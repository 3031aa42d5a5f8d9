/*
 * c_client_driver.c - drives the C client library (client/totoclient.h) for
 * tests/client/test_c_client.py, which starts the real totod and checks what
 * this prints.
 *
 *   c_client_driver unit                        TAP: the address parser and small API parts
 *   c_client_driver call ADDR METHOD PARAMS|- TIMEOUT_MS
 *   c_client_driver forecast ADDR SPEC          SPEC: a JSON request (below)
 *   c_client_driver many ADDR SPECFILE          SPECFILE: a JSON array of SPECs
 *   c_client_driver timeout ADDR TIMEOUT_MS     a health call that should time out
 *   c_client_driver hold ADDR SPEC              prints "connected", waits for a stdin line,
 *                                               then forecasts (the test kills the daemon)
 *
 * Every command but unit prints one JSON line: the error ("kind", "rpc_code",
 * "message", "field"), "elapsed_ms", and the result; then a second call's
 * kind ("after_kind") to show whether the client is still usable.
 * SPEC: {"series": [[number|null]], "prediction_length", "num_samples",
 * "quantiles", "seed", "series_id", "timeout_ms", "inf_at": k (values[k] = inf)}.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "tap.h"
#include "totoclient.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- unit: no daemon ------------------------------------------------------ */

static int parses(const char *address, int kind, const char *path_or_host, int port) {
    toto_client_address a;
    toto_client_error err;
    int rc = toto_client_parse_address(address, &a, &err);
    if (rc != 0 || a.kind != kind) {
        tap_diag("%s: rc %s (%s), kind %d", address ? address : "(null)",
                 toto_client_error_kind_name(rc), err.message, a.kind);
        return 0;
    }
    const char *got = kind == TOTO_CLIENT_ADDRESS_UNIX ? a.path : a.host;
    if (strcmp(got, path_or_host) != 0 || (kind == TOTO_CLIENT_ADDRESS_TCP && a.port != port)) {
        tap_diag("%s: got '%s' port %d", address, got, a.port);
        return 0;
    }
    return 1;
}

/* address is refused with EADDRESS and a message containing needle. */
static int refused(const char *address, const char *needle) {
    toto_client_address a;
    toto_client_error err;
    int rc = toto_client_parse_address(address, &a, &err);
    int ok = rc == TOTO_CLIENT_EADDRESS && err.kind == rc && strstr(err.message, needle) != NULL;
    if (!ok)
        tap_diag("%s: rc %s, message '%s'", address ? address : "(null)",
                 toto_client_error_kind_name(rc), err.message);
    return ok;
}

static void unit_addresses(void) {
    char long_path[300];
    memset(long_path, 'x', sizeof long_path - 1);
    long_path[0] = '/';
    long_path[sizeof long_path - 1] = '\0';
    tap_check(parses("unix:/tmp/t.sock", 1, "/tmp/t.sock", 0), "unix:PATH");
    tap_check(parses("unix:rel.sock", 1, "rel.sock", 0), "unix:relative path");
    tap_check(parses("/run/x/toto.sock", 1, "/run/x/toto.sock", 0), "bare absolute path");
    tap_check(parses("./toto.sock", 1, "./toto.sock", 0), "bare relative path with a slash");
    tap_check(parses("tcp:127.0.0.1:7070", 2, "127.0.0.1", 7070), "tcp:HOST:PORT");
    tap_check(parses("tcp:localhost:1", 2, "localhost", 1), "tcp host name, port 1");
    tap_check(parses("tcp::65535", 2, "127.0.0.1", 65535), "tcp::PORT means 127.0.0.1");
    tap_check(parses("tcp:[::1]:80", 2, "::1", 80), "tcp:[v6]:PORT");
    tap_check(refused("tcp:localhost", "no port"), "tcp without port: 'no port'");
    tap_check(refused("tcp:localhost:0", "bad port '0'"), "port 0 refused");
    tap_check(refused("tcp:localhost:65536", "bad port '65536'"), "port 65536 refused");
    tap_check(refused("tcp:localhost:80x", "bad port '80x'"), "port with a letter refused");
    tap_check(refused("tcp:localhost:", "bad port ''"), "empty port refused");
    tap_check(refused("tcp:::1:80", "brackets"), "bare IPv6 host refused");
    tap_check(refused("tcp:[::1:80", "unclosed '['"), "unclosed bracket refused");
    tap_check(refused("unix:", "no socket path"), "unix: without a path refused");
    tap_check(refused("toto.sock", "containing '/'"), "a name without '/' refused");
    tap_check(refused("ftp://host/x", "unknown scheme 'ftp'"), "unknown scheme refused");
    tap_check(refused(long_path, "too long"), "a path longer than sun_path refused");
}

static void unit_default_address(void) {
    unsetenv(TOTO_CLIENT_ADDRESS_ENV);
    tap_check(parses(NULL, 1, "/run/toto/toto.sock", 0), "NULL: /run/toto/toto.sock");
    tap_check(parses("", 1, "/run/toto/toto.sock", 0), "\"\": /run/toto/toto.sock");
    setenv(TOTO_CLIENT_ADDRESS_ENV, "", 1);
    tap_check(parses(NULL, 1, "/run/toto/toto.sock", 0), "empty TOTO_ADDRESS: the default");
    setenv(TOTO_CLIENT_ADDRESS_ENV, "tcp:example.org:7070", 1);
    tap_check(parses(NULL, 2, "example.org", 7070), "TOTO_ADDRESS overrides the default");
    tap_check(parses("unix:/a/b", 1, "/a/b", 0), "an explicit address beats TOTO_ADDRESS");
    setenv(TOTO_CLIENT_ADDRESS_ENV, "nonsense", 1);
    tap_check(refused(NULL, "nonsense"), "a bad TOTO_ADDRESS is reported");
    unsetenv(TOTO_CLIENT_ADDRESS_ENV);
}

static void unit_api(void) {
    const char *names[] = {"OK",        "EADDRESS", "ECONNECT", "ETIMEOUT", "EIO",
                           "EPROTOCOL", "ESERVER",  "EINVAL",   "ENOMEM"};
    int named = 1;
    for (int k = 0; k < 9; k++)
        named &= strcmp(toto_client_error_kind_name(k), names[k]) == 0;
    tap_check(named, "every error kind has its name");
    tap_check(strcmp(toto_client_error_kind_name(99), "E?") == 0, "an unknown kind is E?");
    toto_client_params p = toto_client_default_params();
    tap_check(p.connect_timeout_ms > 0 && p.timeout_ms > 0 && p.max_inflight == 256,
              "default params: bounded timeouts, 256 in flight");
    toto_client *c = (toto_client *)&p; /* must be overwritten with NULL */
    toto_client_error err;
    int rc = toto_client_open("tcp:h", NULL, &c, &err);
    tap_check(rc == TOTO_CLIENT_EADDRESS && c == NULL && strstr(err.message, "tcp:h"),
              "open with a bad address: EADDRESS naming it, *out NULL");
    p.max_inflight = 0;
    rc = toto_client_open("unix:/nonexistent/x.sock", &p, &c, &err);
    tap_check(rc == TOTO_CLIENT_EINVAL && strstr(err.message, "max_inflight"),
              "open with max_inflight 0: EINVAL");
    toto_client_free(NULL);
    toto_client_forecast_free(NULL);
    toto_client_string_free(NULL);
    tap_check(1, "the free functions take NULL");
}

/* ---- printing ------------------------------------------------------------- */

static json_t *number(double v) {
    return isnan(v) ? json_null() : json_real(v);
}

static json_t *matrix(const double *x, int rows, int cols) {
    json_t *m = json_array();
    for (int r = 0; r < rows; r++) {
        json_t *row = json_array();
        for (int c = 0; c < cols; c++)
            json_array_append_new(row, number(x[(size_t)r * cols + c]));
        json_array_append_new(m, row);
    }
    return m;
}

static json_t *string_or_null(const char *s) {
    return s ? json_string(s) : json_null();
}

static json_t *result_json(const toto_client_forecast_result *f) {
    int V = f->n_variates, h = f->prediction_length;
    json_t *q = json_array();
    for (int l = 0; l < f->n_levels; l++)
        json_array_append_new(q, matrix(f->quantiles + (size_t)l * V * h, V, h));
    json_t *levels = json_array();
    for (int l = 0; l < f->n_levels; l++)
        json_array_append_new(levels, number(f->levels[l]));
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:f,s:f,s:i,s:i,s:i}", "mean",
                     matrix(f->mean, V, h), "median",
                     f->median ? matrix(f->median, V, h) : json_null(), "levels", levels,
                     "quantiles", q, "model_path", string_or_null(f->model_path), "model_device",
                     string_or_null(f->model_device), "series_id", string_or_null(f->series_id),
                     "queue_ms", f->queue_ms, "model_ms", f->model_ms, "batch_size", f->batch_size,
                     "n_variates", V, "prediction_length", h);
}

static json_t *error_json(const toto_client_error *e) {
    return json_pack("{s:s,s:i,s:s,s:s}", "kind", toto_client_error_kind_name(e->kind), "rpc_code",
                     e->rpc_code, "message", e->message, "field", e->field);
}

/* Prints obj as one line and frees it; returns 0. */
static int print_line(json_t *obj) {
    char *text = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(17));
    printf("%s\n", text);
    fflush(stdout);
    free(text);
    json_decref(obj);
    return 0;
}

/* ---- requests from JSON ----------------------------------------------------- */

typedef struct spec {
    toto_client_forecast_request req;
    double *values;
    double *levels;
    char *series_id;
} spec;

static void spec_free(spec *s) {
    free(s->values);
    free(s->levels);
    free(s->series_id);
}

static int spec_read(json_t *j, spec *s) {
    memset(s, 0, sizeof *s);
    s->req = toto_client_forecast_default_request();
    json_t *series = json_object_get(j, "series");
    size_t V = json_array_size(series), T = json_array_size(json_array_get(series, 0));
    if (V == 0 || T == 0)
        return -1;
    s->values = malloc(V * T * sizeof *s->values);
    for (size_t v = 0; v < V; v++)
        for (size_t t = 0; t < T; t++) {
            json_t *x = json_array_get(json_array_get(series, v), t);
            s->values[v * T + t] = json_is_number(x) ? json_number_value(x) : NAN;
        }
    json_t *inf_at = json_object_get(j, "inf_at");
    if (json_is_integer(inf_at))
        s->values[json_integer_value(inf_at)] = INFINITY;
    json_t *q = json_object_get(j, "quantiles");
    s->levels = malloc((json_array_size(q) + 1) * sizeof *s->levels);
    for (size_t l = 0; l < json_array_size(q); l++)
        s->levels[l] = json_number_value(json_array_get(q, l));
    json_t *id = json_object_get(j, "series_id");
    s->series_id = json_is_string(id) ? strdup(json_string_value(id)) : NULL;
    s->req.values = s->values;
    s->req.n_variates = (int)V;
    s->req.length = (int)T;
    s->req.prediction_length = (int)json_integer_value(json_object_get(j, "prediction_length"));
    s->req.num_samples = (int)json_integer_value(json_object_get(j, "num_samples"));
    s->req.quantile_levels = q ? s->levels : NULL;
    s->req.n_quantiles = (int)json_array_size(q);
    s->req.has_seed = json_is_integer(json_object_get(j, "seed"));
    s->req.seed = (uint64_t)json_integer_value(json_object_get(j, "seed"));
    s->req.series_id = s->series_id;
    s->req.timeout_ms = (int)json_integer_value(json_object_get(j, "timeout_ms"));
    return 0;
}

/* ---- commands against a daemon --------------------------------------------- */

static toto_client *open_or_print(const char *address, int timeout_ms) {
    toto_client_params p = toto_client_default_params();
    if (timeout_ms >= 0)
        p.timeout_ms = timeout_ms;
    toto_client *c = NULL;
    toto_client_error err;
    double t0 = now_ms();
    if (toto_client_open(address, &p, &c, &err) != 0) {
        json_t *o = error_json(&err);
        json_object_set_new(o, "stage", json_string("open"));
        json_object_set_new(o, "elapsed_ms", json_real(now_ms() - t0));
        print_line(o);
    }
    return c;
}

/* The kind a health call gets now: is the client still usable? */
static const char *after_kind(toto_client *c) {
    char *result = NULL;
    toto_client_error err;
    int rc = toto_client_call(c, "health", NULL, -1, &result, &err);
    free(result);
    return toto_client_error_kind_name(rc);
}

static int cmd_call(const char *address, const char *method, const char *params, int timeout) {
    toto_client *c = open_or_print(address, -1);
    if (c == NULL)
        return 0;
    char *result = NULL;
    toto_client_error err;
    double t0 = now_ms();
    int rc =
        toto_client_call(c, method, strcmp(params, "-") ? params : NULL, timeout, &result, &err);
    json_t *o = error_json(&err);
    json_object_set_new(o, "elapsed_ms", json_real(now_ms() - t0));
    json_object_set_new(o, "result_text", string_or_null(result));
    json_object_set_new(o, "result", result ? json_loads(result, 0, NULL) : json_null());
    json_object_set_new(o, "rc", json_string(toto_client_error_kind_name(rc)));
    json_object_set_new(o, "after_kind", json_string(after_kind(c)));
    free(result);
    toto_client_free(c);
    return print_line(o);
}

static int cmd_forecast(const char *address, const char *spec_text, int wait_for_stdin) {
    json_t *j = json_loads(spec_text, 0, NULL);
    spec s;
    if (j == NULL || spec_read(j, &s) != 0) {
        fprintf(stderr, "bad spec\n");
        return 2;
    }
    json_decref(j);
    toto_client *c = open_or_print(address, -1);
    if (c != NULL && wait_for_stdin) {
        char line[64];
        printf("connected\n");
        fflush(stdout);
        if (fgets(line, sizeof line, stdin) == NULL)
            return 2;
    }
    if (c != NULL) {
        toto_client_forecast_result *f = NULL;
        toto_client_error err;
        double t0 = now_ms();
        toto_client_forecast(c, &s.req, &f, &err);
        json_t *o = error_json(&err);
        json_object_set_new(o, "elapsed_ms", json_real(now_ms() - t0));
        json_object_set_new(o, "result", f ? result_json(f) : json_null());
        json_object_set_new(o, "after_kind", json_string(after_kind(c)));
        toto_client_forecast_free(f);
        toto_client_free(c);
        print_line(o);
    }
    spec_free(&s);
    return 0;
}

static int cmd_many(const char *address, const char *path) {
    json_t *arr = json_load_file(path, 0, NULL);
    int n = (int)json_array_size(arr);
    spec *specs = calloc((size_t)n + 1, sizeof *specs);
    toto_client_forecast_request *reqs = calloc((size_t)n + 1, sizeof *reqs);
    for (int i = 0; i < n; i++) {
        if (spec_read(json_array_get(arr, (size_t)i), &specs[i]) != 0)
            return 2;
        reqs[i] = specs[i].req;
    }
    json_decref(arr);
    toto_client *c = open_or_print(address, -1);
    if (c != NULL) {
        toto_client_forecast_result **outs = calloc((size_t)n + 1, sizeof *outs);
        toto_client_error *errs = calloc((size_t)n + 1, sizeof *errs);
        double t0 = now_ms();
        int rc = toto_client_forecast_many(c, reqs, n, outs, errs);
        json_t *items = json_array();
        for (int i = 0; i < n; i++) {
            json_t *o = error_json(&errs[i]);
            json_object_set_new(o, "result", outs[i] ? result_json(outs[i]) : json_null());
            json_array_append_new(items, o);
            toto_client_forecast_free(outs[i]);
        }
        print_line(json_pack("{s:s,s:f,s:o,s:s}", "rc", toto_client_error_kind_name(rc),
                             "elapsed_ms", now_ms() - t0, "items", items, "after_kind",
                             after_kind(c)));
        free(outs);
        free(errs);
        toto_client_free(c);
    }
    for (int i = 0; i < n; i++)
        spec_free(&specs[i]);
    free(specs);
    free(reqs);
    return 0;
}

static int cmd_timeout(const char *address, int timeout_ms) {
    toto_client *c = open_or_print(address, timeout_ms);
    if (c == NULL)
        return 0;
    char *result = NULL;
    toto_client_error err;
    double t0 = now_ms();
    toto_client_call(c, "health", NULL, -1, &result, &err);
    json_t *o = error_json(&err);
    json_object_set_new(o, "elapsed_ms", json_real(now_ms() - t0));
    json_object_set_new(o, "result_is_null", json_boolean(result == NULL));
    toto_client_error again;
    toto_client_call(c, "health", NULL, -1, &result, &again);
    free(result);
    json_object_set_new(o, "after", error_json(&again));
    toto_client_free(c);
    return print_line(o);
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "unit") == 0) {
        unit_addresses();
        unit_default_address();
        unit_api();
        return tap_done();
    }
    if (strcmp(cmd, "call") == 0 && argc == 6)
        return cmd_call(argv[2], argv[3], argv[4], atoi(argv[5]));
    if (strcmp(cmd, "forecast") == 0 && argc == 4)
        return cmd_forecast(argv[2], argv[3], 0);
    if (strcmp(cmd, "hold") == 0 && argc == 4)
        return cmd_forecast(argv[2], argv[3], 1);
    if (strcmp(cmd, "many") == 0 && argc == 4)
        return cmd_many(argv[2], argv[3]);
    if (strcmp(cmd, "timeout") == 0 && argc == 4)
        return cmd_timeout(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: c_client_driver unit|call|forecast|hold|many|timeout ...\n");
    return 2;
}
