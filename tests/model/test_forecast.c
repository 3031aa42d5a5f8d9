/*
 * test_forecast.c - the model through its C API (model/toto.h) on the small
 * fixture checkpoints: inputs that must work, inputs that must be refused,
 * batch invariance, seeds, exact first-patch quantiles, checkpoint refusals.
 * The eager path (compile off); tests/model/test_compiled.c has the compiled
 * one. Runs on $TOTO_TEST_DEVICE (default cpu).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "toto.h"

#define MAX_V 8
#define MAX_T 512

static char fixture_a[1024], fixture_b[1024];

static const char *device_name(void) {
    const char *d = getenv("TOTO_TEST_DEVICE");
    return d && *d ? d : "cpu";
}

static toto_model *open_model(const char *dir, const char *dtype, char *err, size_t len) {
    toto_model_params p = toto_model_default_params();
    p.device = device_name();
    p.dtype = dtype;
    p.compile = false;
    return toto_model_open(dir, &p, err, len);
}

/* A request over caller-owned storage. */
typedef struct test_series {
    double values[MAX_V * MAX_T];
    int32_t groups[MAX_V];
    double levels[8];
    toto_request req;
} test_series;

/* A smooth seasonal series with noise from a fixed linear congruence. */
static void make_series(test_series *s, int V, int T, int h, int N, double base, double amp) {
    memset(s, 0, sizeof *s);
    unsigned state = 12345u + (unsigned)(V * 7 + T);
    for (int v = 0; v < V; v++) {
        for (int t = 0; t < T; t++) {
            state = state * 1103515245u + 12345u;
            double noise = ((state >> 8) & 0xffff) / 65536.0 - 0.5;
            s->values[v * T + t] = base + amp * (sin(t * 0.3 + v) + 0.2 * noise);
        }
        s->groups[v] = 0;
    }
    s->req = (toto_request){.n_variates = V,
                            .n_steps = T,
                            .values = s->values,
                            .groups = s->groups,
                            .prediction_length = h,
                            .num_samples = N,
                            .seed = 7};
}

static int run_one(toto_model *m, const toto_request *r, toto_result *res) {
    char err[512] = "";
    if (toto_forecast(m, r, res, 1, err, sizeof err) != TOTO_OK) {
        tap_diag("toto_forecast: %s", err);
        return -1;
    }
    if (res->status != TOTO_OK)
        tap_diag("status %d: %s", res->status, res->error);
    return res->status;
}

static int all_finite(const double *x, long n) {
    for (long i = 0; x && i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return x != NULL;
}

/* Runs r and checks it succeeds with finite outputs of the right size. */
static void expect_works(toto_model *m, const toto_request *r, const char *what) {
    toto_result res;
    int rc = run_one(m, r, &res);
    long n = (long)r->n_variates * r->prediction_length;
    tap_check(rc == TOTO_OK && all_finite(res.mean, n), "works: %s", what);
    toto_result_free(&res);
}

static void expect_refused(toto_model *m, const toto_request *r, const char *field,
                           const char *limit, const char *what) {
    char err[512] = "";
    int rc = toto_request_validate(m, r, err, sizeof err);
    toto_result res;
    run_one(m, r, &res);
    int ok = rc == TOTO_EINVAL && res.status == TOTO_EINVAL && strstr(err, field) &&
             (!limit || strstr(err, limit)) && !res.mean;
    tap_check(ok, "refused: %s (\"%s\")", what, err);
    toto_result_free(&res);
}

static void test_inputs_that_work(toto_model *m) {
    static test_series s;
    make_series(&s, 3, 100, 20, 0, 5.0, 2.0);
    for (int t = 10; t < 100; t += 9)
        s.values[t] = NAN;
    s.values[2 * 100 + 99] = NAN; /* the very last step */
    expect_works(m, &s.req, "missing values anywhere");

    make_series(&s, 3, 100, 20, 0, 5.0, 2.0);
    for (int t = 0; t < 100; t++)
        s.values[100 + t] = NAN;
    expect_works(m, &s.req, "a variate with no observed value");

    make_series(&s, 2, 80, 20, 16, 0.0, 0.0);
    for (int i = 0; i < 160; i++)
        s.values[i] = 42.0;
    expect_works(m, &s.req, "constant series (sampled)");

    make_series(&s, 1, 5, 40, 0, 1.0, 1.0);
    expect_works(m, &s.req, "context shorter than one patch");

    make_series(&s, 1, 200, 20, 0, 1e12, 1e3);
    toto_result res;
    int rc = run_one(m, &s.req, &res);
    tap_check(rc == TOTO_OK && fabs(res.mean[0] / 1e12 - 1.0) < 1e-3,
              "works: values near 1e12 stay near 1e12 (%.6g)", rc == TOTO_OK ? res.mean[0] : 0);
    toto_result_free(&res);

    make_series(&s, 1, 200, 20, 0, 3e-9, 1e-9);
    expect_works(m, &s.req, "values near 1e-9");

    make_series(&s, 4, 90, 20, 8, 1.0, 1.0);
    s.groups[0] = 3, s.groups[1] = 3, s.groups[2] = -1, s.groups[3] = 9;
    expect_works(m, &s.req, "several groups, sampled");
}

/* toto_values_check() judges the values alone; toto_request_validate_checked()
 * takes its result instead of reading them, and reports each error where
 * toto_request_validate() does: the series' limits, then the values, then
 * the outputs. */
static void test_checked_validation(toto_model *m) {
    static test_series s;
    char e1[256], e2[256];
    make_series(&s, 2, 50, 10, 0, 1.0, 1.0);
    s.values[57] = INFINITY;
    int values_rc = toto_values_check(&s.req, e1, sizeof e1);
    int rc = toto_request_validate_checked(m, &s.req, values_rc, e1, e2, sizeof e2);
    tap_check(values_rc == TOTO_EINVAL && rc == TOTO_EINVAL && !strcmp(e1, e2) &&
                  strstr(e2, "series[1][7]"),
              "checked: a bad value judged apart is reported as validate reports it (%s)", e2);
    s.req.prediction_length = 0; /* outputs: after the values */
    rc = toto_request_validate_checked(m, &s.req, values_rc, e1, e2, sizeof e2);
    tap_check(rc == TOTO_EINVAL && strstr(e2, "series[1][7]"),
              "checked: the values' error comes before the outputs' (%s)", e2);
    s.req.n_variates = 1 << 20; /* over any limit: the series' limits come before the values */
    int plain = toto_request_validate(m, &s.req, e1, sizeof e1);
    rc = toto_request_validate_checked(m, &s.req, TOTO_EINVAL, "series[1][7]: infinite value", e2,
                                       sizeof e2);
    tap_check(plain == TOTO_EINVAL && rc == TOTO_EINVAL && !strcmp(e1, e2) &&
                  strstr(e2, "variates"),
              "checked: the series' limits come before the values (%s)", e2);
    make_series(&s, 2, 50, 10, 0, 1.0, 1.0);
    s.values[3] = INFINITY; /* judged fine elsewhere: not read again */
    rc = toto_request_validate_checked(m, &s.req, TOTO_OK, NULL, e2, sizeof e2);
    s.values[3] = 1.0;
    tap_check(rc == TOTO_OK && toto_values_check(&s.req, e1, sizeof e1) == TOTO_OK,
              "checked: values judged fine are not read again");
}

static void test_refusals(toto_model *m) {
    static test_series s;
    make_series(&s, 2, 50, 10, 0, 1.0, 1.0);
    for (int i = 0; i < 100; i++)
        s.values[i] = NAN;
    expect_refused(m, &s.req, "series", NULL, "no observed value at all");

    make_series(&s, 2, 50, 10, 0, 1.0, 1.0);
    s.req.n_steps = 0;
    expect_refused(m, &s.req, "series", NULL, "no values at all");

    make_series(&s, 2, 50, 10, 0, 1.0, 1.0);
    s.values[57] = INFINITY;
    expect_refused(m, &s.req, "series[1][7]", NULL, "an infinite value");

    make_series(&s, 1, 50, 0, 0, 1.0, 1.0);
    expect_refused(m, &s.req, "prediction_length", "4096", "prediction_length 0");
    s.req.prediction_length = 5000;
    expect_refused(m, &s.req, "prediction_length", "4096", "prediction_length above the limit");

    make_series(&s, 1, 50, 10, 9000, 1.0, 1.0);
    expect_refused(m, &s.req, "num_samples", "8192", "num_samples above the limit");

    double bad_levels[][1] = {{0.0}, {1.0}, {1.5}, {NAN}};
    for (int i = 0; i < 4; i++) {
        make_series(&s, 1, 50, 10, 0, 1.0, 1.0);
        s.req.n_quantiles = 1;
        s.req.quantile_levels = bad_levels[i];
        expect_refused(m, &s.req, "quantiles[0]", "(0, 1)", "quantile level outside (0,1)");
    }

    static const double level[] = {0.5};
    make_series(&s, 1, 50, 40, 0, 1.0, 1.0);
    s.req.n_quantiles = 1;
    s.req.quantile_levels = level;
    expect_refused(m, &s.req, "quantiles", "num_samples",
                   "quantiles past the first patch, no samples");

    make_series(&s, 1, 50, 10, 0, 1.0, 1.0);
    s.req.return_samples = true;
    expect_refused(m, &s.req, "return_samples", "num_samples", "return_samples without samples");
}

/* Largest relative difference between two arrays (NULL == NULL). */
static double max_rel(const double *a, const double *b, long n) {
    if (!a || !b)
        return a == b ? 0 : INFINITY;
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]) / fmax(1e-300, fmax(fabs(a[i]), fabs(b[i])));
        if (d > worst && fabs(a[i] - b[i]) > 1e-300)
            worst = d;
    }
    return worst;
}

static double result_diff(const toto_result *x, const toto_result *y) {
    long n = (long)x->n_variates * x->prediction_length;
    double d = max_rel(x->mean, y->mean, n);
    d = fmax(d, max_rel(x->median, y->median, n));
    d = fmax(d, max_rel(x->quantiles, y->quantiles, n * x->n_quantiles));
    d = fmax(d, max_rel(x->samples, y->samples, n * x->num_samples));
    return d;
}

/* A mixed batch: each result equals the request's result alone (float64). */
static void test_batch_invariance(toto_model *m64) {
    enum { N_REQ = 6 };
    static test_series s[N_REQ];
    static const double levels[] = {0.1, 0.5, 0.9};
    make_series(&s[0], 2, 100, 20, 0, 3.0, 1.0);
    make_series(&s[1], 2, 100, 50, 0, 2.0, 3.0);  /* same shape, other horizon */
    make_series(&s[2], 3, 37, 10, 32, 1.0, 1.0);  /* sampled */
    make_series(&s[3], 2, 100, 40, 64, 0.5, 2.0); /* sampled, same shape as 0 */
    make_series(&s[4], 1, 250, 16, 0, -4.0, 0.5);
    make_series(&s[5], 3, 37, 33, 16, 1.0, 1.0); /* sampled, same shape as 2 */
    s[2].req.n_quantiles = s[3].req.n_quantiles = 3;
    s[2].req.quantile_levels = s[3].req.quantile_levels = levels;
    s[3].req.return_samples = s[5].req.return_samples = true;
    s[3].req.seed = 99;
    s[5].groups[2] = 1;

    toto_request batch[N_REQ];
    toto_result together[N_REQ], alone;
    for (int i = 0; i < N_REQ; i++)
        batch[i] = s[i].req;
    char err[512];
    int rc = toto_forecast(m64, batch, together, N_REQ, err, sizeof err);
    tap_check(rc == TOTO_OK, "mixed batch runs");
    for (int i = 0; i < N_REQ; i++) {
        run_one(m64, &s[i].req, &alone);
        double d = together[i].status == TOTO_OK && alone.status == TOTO_OK
                       ? result_diff(&together[i], &alone)
                       : INFINITY;
        tap_check(d <= 1e-12, "batch invariance: request %d same as alone (rel %.1e)", i, d);
        toto_result_free(&alone);
        toto_result_free(&together[i]);
    }
}

static void test_seeds(toto_model *m) {
    static test_series s;
    make_series(&s, 2, 64, 40, 32, 1.0, 1.0);
    s.req.return_samples = true;
    toto_result a, b, c;
    run_one(m, &s.req, &a);
    run_one(m, &s.req, &b);
    s.req.seed = 8;
    run_one(m, &s.req, &c);
    long n = 32L * 2 * 40;
    tap_check(a.samples && b.samples && max_rel(a.samples, b.samples, n) == 0,
              "same seed, same samples");
    tap_check(a.samples && c.samples && max_rel(a.samples, c.samples, n) > 0,
              "another seed, other samples");
    toto_result_free(&a);
    toto_result_free(&b);
    toto_result_free(&c);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Exact first-patch quantiles against 8192 sampled paths. */
static void test_exact_quantiles(toto_model *m, int patch) {
    enum { N = 8192 };
    static test_series s;
    static const double levels[] = {0.05, 0.25, 0.5, 0.75, 0.95};
    static double column[N];
    make_series(&s, 1, 120, patch, N, 2.0, 1.0);
    s.req.n_quantiles = 5;
    s.req.quantile_levels = levels;
    s.req.return_samples = true;
    toto_result r;
    if (!tap_check(run_one(m, &s.req, &r) == TOTO_OK, "sampled forecast with %d paths", N))
        return;
    int close = 0, total = 0;
    for (int t = 0; t < patch; t++) {
        for (int n = 0; n < N; n++)
            column[n] = r.samples[(long)n * patch + t];
        qsort(column, N, sizeof(double), cmp_double);
        double spread = r.quantiles[4 * patch + t] - r.quantiles[t];
        for (int l = 0; l < 5; l++) {
            double pos = levels[l] * (N - 1), frac = pos - floor(pos);
            int lo = (int)floor(pos);
            double est = column[lo] + frac * (column[lo + 1] - column[lo]);
            close += fabs(est - r.quantiles[l * patch + t]) <= 0.05 * spread;
            total++;
        }
    }
    tap_check(close >= total * 95 / 100, "exact quantiles agree with %d samples (%d/%d)", N, close,
              total);

    /* Without samples, the first patch gets the same exact median and quantiles. */
    s.req.num_samples = 0;
    s.req.return_samples = false;
    toto_result e;
    run_one(m, &s.req, &e);
    tap_check(e.status == TOTO_OK && max_rel(e.median, r.median, patch) < 1e-12 &&
                  max_rel(e.quantiles, r.quantiles, 5L * patch) < 1e-12,
              "num_samples 0 gives the same exact first-patch quantiles");
    toto_result_free(&e);
    toto_result_free(&r);

    s.req.prediction_length = patch + 1;
    s.req.n_quantiles = 0;
    run_one(m, &s.req, &e);
    tap_check(e.status == TOTO_OK && e.median == NULL && e.mean,
              "mean forecast past the first patch has no median");
    toto_result_free(&e);
}

static void expect_open_error(const char *dir, const char *device, const char *dtype,
                              const char *needle, const char *what) {
    toto_model_params p = toto_model_default_params();
    p.device = device;
    p.dtype = dtype;
    char err[1024] = "";
    toto_model *m = toto_model_open(dir, &p, err, sizeof err);
    tap_check(!m && strstr(err, needle), "open refused: %s (\"%s\")", what, err);
    toto_model_free(m);
}

/* Writes a copy of fixture tiny-a into tmp with config.json replaced by cfg. */
static int copy_with_config(const char *tmp, const char *cfg) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp %s/model.safetensors %s/ && printf '%%s' '%s' > %s/config.json",
             fixture_a, tmp, cfg, tmp);
    return system(cmd);
}

static void test_open_errors(void) {
    expect_open_error("/nonexistent/toto", "cpu", "float32", "/nonexistent/toto", "missing dir");
    expect_open_error(fixture_a, "tpu", "float32", "device 'tpu'", "unknown device");
    expect_open_error(fixture_a, "cpu", "float16", "dtype 'float16'", "unknown dtype");
    expect_open_error(fixture_a, "cuda:99", "float32", "cuda:99", "absent CUDA device");

    char tmp[] = "/tmp/toto-test-XXXXXX";
    if (!mkdtemp(tmp))
        return;
    const char *three_layers =
        "{\"patch_size\":16,\"stride\":16,\"embed_dim\":64,\"num_layers\":2,\"num_heads\":4,"
        "\"mlp_hidden_dim\":128,\"spacewise_every_n_layers\":2,\"spacewise_first\":true,"
        "\"output_distribution_kwargs\":{\"k_components\":4}}";
    copy_with_config(tmp, three_layers);
    expect_open_error(tmp, "cpu", "float32", "unexpected tensor 'model.transformer.layers.2",
                      "config with fewer layers than the weights");
    const char *wide =
        "{\"patch_size\":16,\"stride\":16,\"embed_dim\":128,\"num_layers\":4,\"num_heads\":4,"
        "\"mlp_hidden_dim\":128,\"spacewise_every_n_layers\":2,\"spacewise_first\":true,"
        "\"output_distribution_kwargs\":{\"k_components\":4}}";
    copy_with_config(tmp, wide);
    expect_open_error(tmp, "cpu", "float32", "expected [128, 16]",
                      "config whose embed_dim does not match the weights");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp %s/config.json %s/ && truncate -s 500000 %s/model.safetensors",
             fixture_a, tmp, tmp);
    if (system(cmd) == 0)
        expect_open_error(tmp, "cpu", "float32", "model.safetensors", "truncated weights");
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", tmp);
}

static void test_info(toto_model *m) {
    toto_model_info info;
    toto_model_get_info(m, &info);
    tap_check(info.config.patch_size == 16 && info.config.num_layers == 4 &&
                  info.num_params > 50000 && !strcmp(info.dtype, "float64") &&
                  !strcmp(info.path, "eager"),
              "info: config, %lld parameters, dtype, path", (long long)info.num_params);
}

int main(void) {
    const char *data = getenv("TOTO_TEST_DATA");
    snprintf(fixture_a, sizeof fixture_a, "%s/fixtures/tiny-a", data ? data : "tests/data");
    snprintf(fixture_b, sizeof fixture_b, "%s/fixtures/tiny-b", data ? data : "tests/data");
    tap_diag("device %s", device_name());
    char err[1024];
    toto_model *m32 = open_model(fixture_a, "float32", err, sizeof err);
    toto_model *m64 = open_model(fixture_a, "float64", err, sizeof err);
    if (!tap_check(m32 && m64, "fixture tiny-a opens (%s)", m32 && m64 ? "ok" : err))
        return tap_done();
    test_info(m64);
    test_inputs_that_work(m32);
    test_refusals(m32);
    test_checked_validation(m32);
    test_batch_invariance(m64);
    test_seeds(m32);
    test_exact_quantiles(m64, 16);
    toto_model *mb = open_model(fixture_b, "float64", err, sizeof err);
    tap_check(mb != NULL, "fixture tiny-b opens (plain MLP names)");
    if (mb)
        test_batch_invariance(mb);
    toto_model_free(mb);
    test_open_errors();
    toto_model_free(m32);
    toto_model_free(m64);
    return tap_done();
}
