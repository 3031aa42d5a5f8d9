/*
 * test_compiled.c - the compiled path through model/toto.h: it agrees with
 * the eager path on random shapes (on the CPU, where it computes in the
 * model's dtype, to 1e-9 relative; on a GPU in bfloat16 to 2e-2 of the
 * context's spread), every result names its path, seeded sampling repeats
 * bit for bit, the run-time switch, compile off, the environment variables,
 * and the plan's counters (no capture after warm-up, no eager fallback for
 * shapes inside the plan). Runs on $TOTO_TEST_DEVICE (default cpu).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "toto.h"

static char fixture[1024];

static const char *device_name(void) {
    const char *d = getenv("TOTO_TEST_DEVICE");
    return d && *d ? d : "cpu";
}

static bool on_gpu(void) {
    return strncmp(device_name(), "cuda", 4) == 0;
}

static toto_model *open_compute(bool compile, const char *dtype, const char *compute, char *err,
                                size_t len) {
    toto_model_params p = toto_model_default_params();
    p.device = device_name();
    p.dtype = dtype;
    p.compile = compile;
    p.compute_dtype = compute;
    return toto_model_open(fixture, &p, err, len);
}

static toto_model *open_with(bool compile, const char *dtype, char *err, size_t len) {
    return open_compute(compile, dtype, NULL, err, len);
}

static unsigned lcg(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffff;
}

/*
 * A random series [V][T] with a level, a trend, seasonality and noise. The
 * level stays within 20 amplitudes: far beyond, the left padding of a short
 * context scales to values where bfloat16 carries too few digits (an
 * untrained model then amplifies them; compute_dtype float32 is the remedy).
 */
static double *random_series(int V, int T, unsigned *s) {
    double *x = malloc(sizeof(double) * (size_t)V * (size_t)T);
    for (int v = 0; x && v < V; v++) {
        double amp = 1 + lcg(s) % 50, level = amp * ((lcg(s) % 4000) / 100.0 - 20.0);
        for (int t = 0; t < T; t++)
            x[v * T + t] = level + 0.05 * t + amp * sin(t * 0.37 + v) +
                           amp * 0.1 * ((lcg(s) % 1000) / 1000.0 - 0.5);
    }
    return x;
}

/* Runs n requests on path; results in res (caller frees). -1 on any failure. */
static int run_on(toto_model *m, const char *path, const toto_request *r, toto_result *res, int n) {
    char err[512] = "";
    if (toto_model_set_path(m, path, err, sizeof err) != TOTO_OK ||
        toto_forecast(m, r, res, n, err, sizeof err) != TOTO_OK) {
        tap_diag("%s: %s", path, err);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (res[i].status != TOTO_OK || strcmp(res[i].path, path)) {
            tap_diag("%s: request %d: status %d, path '%s': %s", path, i, res[i].status,
                     res[i].path, res[i].error);
            return -1;
        }
    return 0;
}

/*
 * max |a - b| over a request's means, over the range the series moves on:
 * its context and the eager forecast a together (the untrained fixtures
 * forecast far outside short contexts, and a relative error scales with
 * what it is relative to).
 */
static double spread_err(const toto_request *r, const toto_result *a, const toto_result *b) {
    double lo = INFINITY, hi = -INFINITY, worst = 0;
    for (long i = 0; i < (long)r->n_variates * r->n_steps; i++) {
        lo = fmin(lo, r->values[i]);
        hi = fmax(hi, r->values[i]);
    }
    for (long i = 0; i < (long)r->n_variates * r->prediction_length; i++) {
        worst = fmax(worst, fabs(a->mean[i] - b->mean[i]));
        lo = fmin(lo, a->mean[i]);
        hi = fmax(hi, a->mean[i]);
    }
    return worst / (hi - lo);
}

/*
 * B random mean-forecast requests of one shape (V variates, T steps, horizon
 * h, B <= 9) on the compiled path, then the eager one: the worst spread_err,
 * INFINITY when a run fails; *path_runs gets the path-graph runs of the
 * compiled call.
 */
static double compiled_vs_eager(toto_model *m, int B, int V, int T, int h, unsigned *seed,
                                long long *path_runs) {
    toto_request r[9];
    toto_result e[9], c[9];
    double *x[9];
    memset(e, 0, sizeof e); /* freed whatever happens */
    memset(c, 0, sizeof c);
    for (int b = 0; b < B; b++) {
        x[b] = random_series(V, T, seed);
        r[b] =
            (toto_request){.n_variates = V, .n_steps = T, .values = x[b], .prediction_length = h};
    }
    toto_model_info before, after;
    toto_model_get_info(m, &before);
    int ok = run_on(m, "compiled", r, c, B) == 0;
    toto_model_get_info(m, &after);
    *path_runs = (long long)(after.compile.path_runs - before.compile.path_runs);
    ok = ok && run_on(m, "eager", r, e, B) == 0;
    double worst = ok ? 0 : INFINITY;
    for (int b = 0; ok && b < B; b++)
        worst = fmax(worst, spread_err(&r[b], &e[b], &c[b]));
    for (int b = 0; b < B; b++) {
        toto_result_free(&e[b]);
        toto_result_free(&c[b]);
        free(x[b]);
    }
    return worst;
}

/* Random batches: B requests of one shape (V, T, h), mean forecasts. */
static void test_agrees_with_eager(toto_model *m, double tol) {
    static const int shapes[][4] = {{1, 1, 512, 8},  {1, 1, 100, 40}, {3, 2, 64, 16},
                                    {5, 3, 250, 5},  {2, 7, 37, 64},  {4, 1, 10, 20},
                                    {1, 8, 300, 33}, {9, 1, 129, 17}};
    unsigned seed = 99;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int B = shapes[k][0], V = shapes[k][1], T = shapes[k][2], h = shapes[k][3];
        long long runs;
        double worst = compiled_vs_eager(m, B, V, T, h, &seed, &runs);
        tap_check(worst < tol,
                  "compiled = eager: %d x %d variates, %d steps, horizon %d "
                  "(err %.2e of the spread, tol %.0e)",
                  B, V, T, h, worst, tol);
    }
}

/* On a GPU, sampled paths beyond the first patch are decoded by the path
 * graphs: counted, and a seeded request draws the same bits alone or in the
 * middle of a batch of others (counter-based draws keyed by its seed). */
static void test_path_graphs(toto_model *m) {
    unsigned seed = 17;
    double *x[3];
    toto_request r[3];
    for (int i = 0; i < 3; i++) {
        x[i] = random_series(2, 200, &seed);
        r[i] = (toto_request){.n_variates = 2,
                              .n_steps = 200,
                              .values = x[i],
                              .prediction_length = 70,
                              .num_samples = 48 + 8 * i,
                              .return_samples = true,
                              .seed = 100 + (uint64_t)i};
    }
    toto_model_info before, after;
    toto_model_get_info(m, &before);
    toto_result alone, batch[3];
    int ok =
        run_on(m, "compiled", &r[1], &alone, 1) == 0 && run_on(m, "compiled", r, batch, 3) == 0;
    toto_model_get_info(m, &after);
    const size_t n = (size_t)r[1].num_samples * 2 * 70;
    tap_check(ok && alone.samples && batch[1].samples &&
                  !memcmp(alone.samples, batch[1].samples, sizeof(double) * n),
              "path graphs: a seeded request draws the same bits alone and within a batch");
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; ok && i < n; i++) {
        lo = fmin(lo, alone.samples[i]);
        hi = fmax(hi, alone.samples[i]);
    }
    tap_check(ok && isfinite(lo) && isfinite(hi) && hi > lo,
              "path graphs: the samples are finite and spread (%.3g .. %.3g)", lo, hi);
    tap_check(after.compile.path_runs - before.compile.path_runs == 4 &&
                  after.compile.captures_after_warmup == 0,
              "path graphs: 4 requests decoded by them (%lld), no capture after warm-up",
              (long long)(after.compile.path_runs - before.compile.path_runs));
    toto_result_free(&alone);
    for (int i = 0; i < 3; i++) {
        toto_result_free(&batch[i]);
        free(x[i]);
    }
}

/* Staging a job into the path graphs by the two kernels gives the bits that
 * libtorch's operations give (TOTO_STAGE_KERNELS=0): padded variates (3 in
 * a bucket of 4), the second context row of a batch, paths split over
 * several stagings (1100 paths), and the quantiles computed on the GPU. */
static void test_stage_kernels(toto_model *m) {
    char err[512];
    setenv("TOTO_STAGE_KERNELS", "0", 1);
    toto_model *aten = open_with(true, "float64", err, sizeof err);
    unsetenv("TOTO_STAGE_KERNELS");
    if (!tap_check(aten != NULL, "tiny-a opens with libtorch's staging (%s)", aten ? "ok" : err))
        return;
    unsigned seed = 23;
    double levels[2] = {0.1, 0.9};
    const int V[3] = {3, 3, 1}, samples[3] = {1100, 40, 64};
    double *x[3];
    toto_request r[3];
    for (int i = 0; i < 3; i++) {
        x[i] = random_series(V[i], 200, &seed);
        r[i] = (toto_request){.n_variates = V[i],
                              .n_steps = 200,
                              .values = x[i],
                              .prediction_length = 150,
                              .num_samples = samples[i],
                              .return_samples = i < 2,
                              .n_quantiles = 2,
                              .quantile_levels = levels,
                              .seed = 7 + (uint64_t)i};
    }
    toto_model_info before, after;
    toto_model_get_info(m, &before);
    toto_result a[3], b[3];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    int ok = run_on(m, "compiled", r, a, 3) == 0 && run_on(aten, "compiled", r, b, 3) == 0;
    toto_model_get_info(m, &after);
    for (int i = 0; ok && i < 3; i++) {
        const size_t cells = (size_t)V[i] * 150;
        ok = !memcmp(a[i].mean, b[i].mean, sizeof(double) * cells) &&
             !memcmp(a[i].quantiles, b[i].quantiles, sizeof(double) * 2 * cells) &&
             (i == 2 ||
              !memcmp(a[i].samples, b[i].samples, sizeof(double) * (size_t)samples[i] * cells));
    }
    tap_check(ok && after.compile.path_runs - before.compile.path_runs == 3,
              "path graphs: staged by kernels = staged by libtorch, bit for bit (%lld runs)",
              (long long)(after.compile.path_runs - before.compile.path_runs));
    for (int i = 0; i < 3; i++) {
        toto_result_free(&a[i]);
        toto_result_free(&b[i]);
        free(x[i]);
    }
    toto_model_free(aten);
}

/* On a GPU, mean forecasts past the first patch are decoded by the path
 * graphs too (the mixture's mean fed back), several requests a replay: as
 * many as the widest variate bucket (8) holds. They agree with the eager
 * path within the bfloat16 tolerance. */
static void test_mean_paths(toto_model *m) {
    static const int shapes[][4] = {{3, 2, 200, 70}, {9, 1, 100, 40}, {1, 8, 64, 150}};
    const long long want_runs[] = {1, 2, 1}; /* ceil(B / (8 / V)) */
    unsigned seed = 31;
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        const int B = shapes[k][0], V = shapes[k][1], T = shapes[k][2], h = shapes[k][3];
        long long runs;
        double worst = compiled_vs_eager(m, B, V, T, h, &seed, &runs);
        tap_check(runs == want_runs[k] && worst < 2e-2,
                  "mean forecasts by the path graphs: %d x %d variates, horizon %d: %lld "
                  "replay sets (want %lld), err %.2e of the spread",
                  B, V, h, runs, want_runs[k], worst);
    }
}

/* A seeded sampled forecast on the compiled path repeats bit for bit. */
static void test_seeded_repeats(toto_model *m) {
    unsigned seed = 5;
    double *x = random_series(2, 200, &seed);
    double levels[3] = {0.1, 0.5, 0.9};
    toto_request r = {.n_variates = 2,
                      .n_steps = 200,
                      .values = x,
                      .prediction_length = 40,
                      .num_samples = 64,
                      .n_quantiles = 3,
                      .quantile_levels = levels,
                      .seed = 11};
    toto_result a, b;
    int ok = run_on(m, "compiled", &r, &a, 1) == 0 && run_on(m, "compiled", &r, &b, 1) == 0 &&
             !memcmp(a.mean, b.mean, sizeof(double) * 2 * 40) &&
             !memcmp(a.quantiles, b.quantiles, sizeof(double) * 3 * 2 * 40);
    tap_check(ok, "compiled: a seeded sampled forecast repeats bit for bit");
    toto_result_free(&a);
    toto_result_free(&b);
    free(x);
}

static void test_switch(toto_model *m) {
    char err[256] = "";
    toto_model_info info;
    tap_check(toto_model_set_path(m, "eager", err, sizeof err) == TOTO_OK &&
                  (toto_model_get_info(m, &info), !strcmp(info.path, "eager")) &&
                  toto_model_set_path(m, "compiled", err, sizeof err) == TOTO_OK &&
                  (toto_model_get_info(m, &info), !strcmp(info.path, "compiled")),
              "set_path switches between eager and compiled; info says which");
    tap_check(toto_model_set_path(m, "fast", err, sizeof err) == TOTO_EINVAL && strstr(err, "fast"),
              "set_path refuses an unknown path: %s", err);
    toto_model *off = open_with(false, "float32", err, sizeof err);
    int rc = off ? toto_model_set_path(off, "compiled", err, sizeof err) : -1;
    if (off)
        toto_model_get_info(off, &info);
    tap_check(off && rc == TOTO_EINVAL && !strcmp(info.path, "eager") && !info.compile.available,
              "compile off: path eager, no compiled path to switch to (%s)", err);
    toto_model_free(off);
}

static void test_env(void) {
    char err[256] = "";
    toto_model_params p = toto_model_default_params();
    setenv("TOTO_COMPILE", "1", 1);
    setenv("TOTO_COMPILE_MODE", "default", 1);
    setenv("TOTO_DISABLE_COMPILE", "1", 1);
    int rc = toto_model_params_from_env(&p, err, sizeof err);
    tap_check(rc == TOTO_OK && !p.compile && !strcmp(p.compile_mode, "default"),
              "TOTO_DISABLE_COMPILE=1 wins over TOTO_COMPILE=1; TOTO_COMPILE_MODE read");
    unsetenv("TOTO_DISABLE_COMPILE");
    p = toto_model_default_params();
    setenv("TOTO_COMPILE", "0", 1);
    rc = toto_model_params_from_env(&p, err, sizeof err);
    tap_check(rc == TOTO_OK && !p.compile, "TOTO_COMPILE=0 turns compile off");
    setenv("TOTO_COMPILE_MODE", "fastest", 1);
    p = toto_model_default_params();
    rc = toto_model_params_from_env(&p, err, sizeof err);
    tap_check(rc == TOTO_EINVAL && strstr(err, "TOTO_COMPILE_MODE") && p.compile,
              "an unknown TOTO_COMPILE_MODE is refused, params unchanged: %s", err);
    unsetenv("TOTO_COMPILE");
    unsetenv("TOTO_COMPILE_MODE");
    toto_model_params q = toto_model_default_params();
    q.device = device_name();
    q.compile_mode = "turbo";
    toto_model *m = toto_model_open(fixture, &q, err, sizeof err);
    tap_check(!m && strstr(err, "compile_mode"), "open refuses an unknown compile_mode: %s", err);
    toto_model_free(m);
}

static void test_counters(toto_model *m) {
    toto_model_info info;
    toto_model_get_info(m, &info);
    const toto_compile_stats *c = &info.compile;
    bool plan_ok = on_gpu() ? c->graphs && c->buckets > 0 : !c->graphs && c->buckets == 0;
    tap_check(c->available && plan_ok && c->runs > 0 && c->captures_after_warmup == 0 &&
                  c->eager_fallbacks == 0,
              "counters: %lld buckets (%s), %lld runs, %lld split, %lld fallbacks, %lld "
              "captures after warm-up",
              (long long)c->buckets, c->graphs ? "graphs" : "no graphs", (long long)c->runs,
              (long long)c->split_runs, (long long)c->eager_fallbacks,
              (long long)c->captures_after_warmup);
}

int main(void) {
    const char *data = getenv("TOTO_TEST_DATA");
    snprintf(fixture, sizeof fixture, "%s/fixtures/tiny-a", data ? data : "tests/data");
    tap_diag("device %s", device_name());
    char err[1024];
    toto_model *m = open_with(true, "float64", err, sizeof err);
    if (!tap_check(m != NULL, "tiny-a opens with the compiled path (%s)", m ? "ok" : err))
        return tap_done();
    test_agrees_with_eager(m, on_gpu() ? 2e-2 : 1e-9);
    test_seeded_repeats(m);
    if (on_gpu()) {
        test_path_graphs(m);
        test_stage_kernels(m);
        test_mean_paths(m);
    }
    test_switch(m);
    test_counters(m);
    test_env();
    toto_model_free(m);
    /* On a GPU, a plan of at most 4 rows a bucket: larger batches are split. */
    if (on_gpu()) {
        toto_model_params p = toto_model_default_params();
        p.device = device_name();
        p.dtype = "float64";
        p.compile_max_batch = 4;
        toto_model *small = toto_model_open(fixture, &p, err, sizeof err);
        toto_model_info info;
        if (tap_check(small != NULL, "tiny-a opens with a plan of at most 4 rows (%s)",
                      small ? "ok" : err)) {
            test_agrees_with_eager(small, 2e-2);
            toto_model_get_info(small, &info);
            tap_check(info.compile.split_runs > 0 && info.compile.eager_fallbacks == 0,
                      "batches over 4 rows are split over replays (%lld split runs)",
                      (long long)info.compile.split_runs);
        }
        toto_model_free(small);
    }
    /* The bfloat16 network on the CPU too, so that CI runs its code. */
    if (!on_gpu()) {
        toto_model *b = open_compute(true, "float64", "bfloat16", err, sizeof err);
        if (tap_check(b != NULL, "tiny-a opens with a bfloat16 compiled path on the CPU (%s)",
                      b ? "ok" : err))
            test_agrees_with_eager(b, 2e-2);
        toto_model_free(b);
    }
    return tap_done();
}
