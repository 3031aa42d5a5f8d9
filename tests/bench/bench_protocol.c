/*
 * bench_protocol.c - the daemon's own CPU time per forecast request, without
 * sockets or a model: parsing a request line on the loop thread, and encoding
 * the answer on the worker, each timed on the path before (the baseline) and
 * the path now, in the same run. Prints one markdown table (scripts/bench-protocol).
 *
 *   bench-protocol [--quick]
 *
 * parse: the line -> document -> proto_forecast_parse*() -> everything freed,
 *   for the seed request (1 x 512 values printed %.9g, prediction_length 8,
 *   num_samples 1024, as toto bench sends it) and a larger one (7 x 2048);
 *   baseline: proto_json_read() (generic, a json_t per number); also jansson's
 *   json_loadb() for reference; now: proto_json_read_numbers() (typed series).
 * encode: a result -> the JSON-RPC response line, for the seed's result (1 x 8
 *   mean and median) and a larger one (7 x 96, mean, median, 3 quantiles);
 *   baseline: jansson objects + json_dumps() (tests/result_reference.h, what
 *   the worker did); now: rpc_forecast_result_text() (direct text).
 *
 * Each path runs in rounds of calls, interleaved with the others of its row
 * group so that drift hits all alike; the table gives the median round's
 * µs per call and the ratio to the baseline. Both paths are checked to give
 * the same request (and the same bytes) before anything is timed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forecast_codec.h"
#include "json_read.h"
#include "result_reference.h"

/* ---- timing ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct path {
    const char *name;
    void (*call)(const void *arg);
    const void *arg;
} path;

#define MAX_ROUNDS 31

/*
 * Times n paths: calibrates each to round_s per round, then rounds rounds of
 * each in turn. us[i]: path i's median round, in µs per call.
 */
static void time_paths(const path *p, int n, int rounds, double round_s, double *us) {
    long calls[8];
    double samples[8][MAX_ROUNDS];
    for (int i = 0; i < n; i++) {
        calls[i] = 1;
        for (;;) { /* warm-up and calibration */
            double t0 = now_s();
            for (long k = 0; k < calls[i]; k++)
                p[i].call(p[i].arg);
            if (now_s() - t0 >= round_s / 4)
                break;
            calls[i] *= 2;
        }
        calls[i] *= 4;
    }
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n; i++) {
            double t0 = now_s();
            for (long k = 0; k < calls[i]; k++)
                p[i].call(p[i].arg);
            samples[i][r] = (now_s() - t0) / (double)calls[i] * 1e6;
        }
    for (int i = 0; i < n; i++) {
        qsort(samples[i], (size_t)rounds, sizeof samples[i][0], cmp_double);
        us[i] = samples[i][rounds / 2];
    }
}

static void print_rows(const char *stage, const char *workload, const path *p, int n,
                       const double *us) {
    for (int i = 0; i < n; i++)
        printf("| %s | %s | %s | %.2f | %.2f |\n", stage, workload, p[i].name, us[i],
               us[i] / us[0]);
    fflush(stdout);
}

/* ---- parse ---- */

typedef struct line {
    char *text;
    size_t len;
} line;

/* The loadgen's series (toto bench, toto-bench): seasonality, trend, noise. */
static double series_value(int t, unsigned *seed) {
    *seed = *seed * 1664525u + 1013904223u;
    double noise = ((*seed >> 9) & 0xffff) / 65536.0 - 0.5;
    return 10 + 0.01 * t + 3 * sin(t * 2 * M_PI / 24) + sin(t * 2 * M_PI / 168) + noise;
}

/* A JSON-RPC forecast line of variates x steps values, as toto bench writes it. */
static line make_line(int variates, int steps, int horizon, int samples) {
    size_t cap = (size_t)variates * (size_t)steps * 24 + 256, len = 0;
    char *s = malloc(cap);
    unsigned seed = 1;
    len += (size_t)snprintf(s, cap,
                            "{\"jsonrpc\":\"2.0\",\"method\":\"forecast\",\"params\":{"
                            "\"series\":%s",
                            variates > 1 ? "[" : "");
    for (int v = 0; v < variates; v++) {
        len += (size_t)snprintf(s + len, cap - len, "%s[", v ? "," : "");
        for (int t = 0; t < steps; t++)
            len += (size_t)snprintf(s + len, cap - len, "%s%.9g", t ? "," : "",
                                    series_value(t, &seed));
        len += (size_t)snprintf(s + len, cap - len, "]");
    }
    len += (size_t)snprintf(s + len, cap - len,
                            "%s,\"prediction_length\":%d,\"num_samples\":%d},\"id\":1}",
                            variates > 1 ? "]" : "", horizon, samples);
    return (line){s, len};
}

static void parse_generic(const void *arg) {
    const line *l = arg;
    proto_forecast_request req;
    proto_error err;
    json_t *doc = proto_json_read(l->text, l->len, NULL);
    proto_forecast_parse(json_object_get(doc, "params"), &req, &err);
    proto_forecast_request_free(&req);
    json_decref(doc);
}

static void parse_jansson(const void *arg) {
    const line *l = arg;
    proto_forecast_request req;
    proto_error err;
    json_t *doc = json_loadb(l->text, l->len, JSON_DECODE_ANY, NULL);
    proto_forecast_parse(json_object_get(doc, "params"), &req, &err);
    proto_forecast_request_free(&req);
    json_decref(doc);
}

static void parse_typed(const void *arg) {
    const line *l = arg;
    proto_forecast_request req;
    proto_error err;
    proto_numbers *numbers;
    json_t *doc = proto_json_read_numbers(l->text, l->len, NULL, &numbers);
    proto_forecast_parse_numbers(json_object_get(doc, "params"), numbers, &req, &err);
    proto_forecast_request_free(&req);
    json_decref(doc);
    proto_numbers_free(numbers);
}

/* Both roads give the same request, and the typed one is taken. */
static int check_parse(const line *l) {
    proto_forecast_request a, b;
    proto_error err;
    proto_numbers *numbers;
    json_t *g = proto_json_read(l->text, l->len, NULL);
    json_t *t = proto_json_read_numbers(l->text, l->len, NULL, &numbers);
    int ok = g && t && numbers && !proto_forecast_parse(json_object_get(g, "params"), &a, &err) &&
             !proto_forecast_parse_numbers(json_object_get(t, "params"), numbers, &b, &err) &&
             a.req.n_variates == b.req.n_variates && a.req.n_steps == b.req.n_steps &&
             !memcmp(a.values, b.values,
                     (size_t)a.req.n_variates * (size_t)a.req.n_steps * sizeof(double));
    proto_forecast_request_free(&a);
    proto_forecast_request_free(&b);
    json_decref(g);
    json_decref(t);
    proto_numbers_free(numbers);
    return ok ? 0 : -1;
}

static int bench_parse(const char *name, const line *l, int rounds, double round_s) {
    if (check_parse(l)) {
        fprintf(stderr, "bench-protocol: %s: the typed and generic parses differ\n", name);
        return -1;
    }
    path p[] = {{"generic json_read, a json_t per number (baseline)", parse_generic, l},
                {"jansson json_loadb", parse_jansson, l},
                {"typed series (json_read_numbers)", parse_typed, l}};
    double us[3];
    time_paths(p, 3, rounds, round_s, us);
    print_rows("parse", name, p, 3, us);
    return 0;
}

/* ---- encode ---- */

typedef struct answer {
    toto_request req;
    toto_result res;
    toto_model_info info;
    rpc_timing timing;
    json_t *id;
    double levels[3];
} answer;

/* A result of v x h in float32 values (as a float32 model gives), with l quantile levels. */
static void make_answer(answer *a, int v, int h, int l) {
    size_t m = (size_t)v * h;
    unsigned seed = 7;
    memset(a, 0, sizeof *a);
    a->res = (toto_result){.n_variates = v, .prediction_length = h, .n_quantiles = l};
    a->res.mean = malloc(m * sizeof(double));
    a->res.median = malloc(m * sizeof(double));
    a->res.quantiles = l ? malloc((size_t)l * m * sizeof(double)) : NULL;
    for (size_t i = 0; i < m; i++) {
        a->res.mean[i] = (float)series_value((int)(512 + i % (size_t)h), &seed);
        a->res.median[i] = (float)(a->res.mean[i] - 0.01);
        for (int q = 0; q < l; q++)
            a->res.quantiles[(size_t)q * m + i] = (float)(a->res.mean[i] + (q - 1) * 1.5);
    }
    for (int q = 0; q < l; q++)
        a->levels[q] = 0.1 + 0.4 * q;
    a->req = (toto_request){.n_variates = v,
                            .n_steps = 512,
                            .prediction_length = h,
                            .n_quantiles = l,
                            .quantile_levels = l ? a->levels : NULL};
    a->info.num_params = 151306080;
    snprintf(a->info.name, sizeof a->info.name, "/srv/models/Toto-Open-Base-1.0");
    snprintf(a->info.device, sizeof a->info.device, "cuda:0");
    snprintf(a->info.dtype, sizeof a->info.dtype, "float32");
    snprintf(a->info.path, sizeof a->info.path, "eager");
    a->timing = (rpc_timing){.queue_ms = 0.021317, .batch_size = 1, .model_ms = 79.412775};
    a->id = json_integer(123456);
}

static void answer_free(answer *a) {
    free(a->res.mean);
    free(a->res.median);
    free(a->res.quantiles);
    json_decref(a->id);
}

static void encode_jansson(const void *arg) {
    const answer *a = arg;
    free(reference_result_text(a->id, false, &a->req, &a->res, &a->info, &a->timing, NULL));
}

static void encode_direct(const void *arg) {
    const answer *a = arg;
    free(rpc_forecast_result_text(a->id, false, &a->req, &a->res, &a->info, &a->timing, NULL));
}

static int bench_encode(const char *name, const answer *a, int rounds, double round_s) {
    char *want = reference_result_text(a->id, false, &a->req, &a->res, &a->info, &a->timing, NULL);
    char *got =
        rpc_forecast_result_text(a->id, false, &a->req, &a->res, &a->info, &a->timing, NULL);
    int same = want && got && !strcmp(want, got);
    free(want);
    free(got);
    if (!same) {
        fprintf(stderr, "bench-protocol: %s: the direct and jansson answers differ\n", name);
        return -1;
    }
    path p[] = {{"jansson objects + json_dumps (baseline)", encode_jansson, a},
                {"direct text (rpc_forecast_result_text)", encode_direct, a}};
    double us[2];
    time_paths(p, 2, rounds, round_s, us);
    print_rows("encode", name, p, 2, us);
    return 0;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (argc > 1 && !quick) {
        fprintf(stderr, "usage: bench-protocol [--quick]\n");
        return 2;
    }
    int rounds = quick ? 3 : 15;
    double round_s = quick ? 0.01 : 0.05;
    line seed = make_line(1, 512, 8, 1024), large = make_line(7, 2048, 96, 256);
    answer seed_answer, large_answer;
    make_answer(&seed_answer, 1, 8, 0);
    make_answer(&large_answer, 7, 96, 3);
    printf("# parse: request line -> toto_request, all freed (seed line %zu bytes, 7x2048 line %zu "
           "bytes); encode: result -> JSON-RPC response line\n",
           seed.len, large.len);
    printf("# %d rounds per path, interleaved; median round; ratio = µs / the baseline's µs\n\n",
           rounds);
    printf("| stage | workload | path | µs/call | vs baseline |\n");
    printf("| --- | --- | --- | ---: | ---: |\n");
    int rc = bench_parse("seed 1x512", &seed, rounds, round_s) ||
             bench_parse("7x2048", &large, rounds, round_s) ||
             bench_encode("seed 1x8 (mean, median)", &seed_answer, rounds, round_s) ||
             bench_encode("7x96 (mean, median, 3 quantiles)", &large_answer, rounds, round_s);
    free(seed.text);
    free(large.text);
    answer_free(&seed_answer);
    answer_free(&large_answer);
    return rc ? 1 : 0;
}
