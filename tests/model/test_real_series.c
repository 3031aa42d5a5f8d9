/*
 * test_real_series.c - the compiled path against the eager path on real
 * series (tests/data/series, unmodified copies of ../shared/data): with a
 * checkpoint of the published shape, the mean forecast's MAE over backtest
 * windows must be within 1% of the eager path's, per series.
 *
 *   test_real_series TOTO_MAKE_CHECKPOINT
 *
 * The checkpoint (random weights, seed 1) is written once under
 * $TOTO_BUILD_DIR/bench/toto-151m, where scripts/bench-model keeps it too.
 * Runs on $TOTO_TEST_DEVICE (default cpu, where both paths compute in the
 * model's dtype; the test matters most on a GPU, in bfloat16).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tap.h"
#include "toto.h"

#define CONTEXT 512
#define HORIZON 64
#define WINDOWS 4 /* the last WINDOWS * HORIZON steps, one window each */

typedef struct series_file {
    const char *file, *column;
} series_file;

static const series_file kSeries[] = {
    {"Binance_BTCUSDT_1h.csv", "close"},
    {"Binance_ETHUSDT_1h.csv", "close"},
    {"WIKI-AAPL.csv", "Adj. Close"},
    {"ETTh1.csv", "OT"},
};

/* The index of column name in a CSV header line, or -1. */
static int column_index(char *header, const char *name) {
    int i = 0;
    for (char *tok = strtok(header, ",\r\n"); tok; tok = strtok(NULL, ",\r\n"), i++)
        if (!strcmp(tok, name))
            return i;
    return -1;
}

/* Field col of a data line as a number; NAN when absent. */
static double field(const char *line, int col) {
    const char *p = line;
    for (int i = 0; i < col && p; i++)
        p = (p = strchr(p, ',')) ? p + 1 : NULL;
    return p ? strtod(p, NULL) : NAN;
}

/*
 * The column of a CSV file, oldest first (files come newest first too: the
 * order is read from the first field of the first two rows, ISO dates or
 * Unix times, which both sort as text of one length). NULL on failure.
 */
static double *read_column(const char *path, const char *column, int *n_out) {
    FILE *f = fopen(path, "r");
    char line[1024], first[2][64] = {"", ""};
    double *v = NULL;
    int n = 0, cap = 0, col = -1;
    if (f && fgets(line, sizeof line, f))
        col = column_index(line, column);
    while (col >= 0 && fgets(line, sizeof line, f)) {
        if (n == cap) {
            double *v2 = realloc(v, sizeof *v * (size_t)(cap = cap ? 2 * cap : 4096));
            if (!v2)
                break;
            v = v2;
        }
        if (n < 2)
            snprintf(first[n], sizeof first[n], "%.*s", (int)strcspn(line, ","), line);
        v[n++] = field(line, col);
    }
    if (f)
        fclose(f);
    if (col < 0 || n < CONTEXT + WINDOWS * HORIZON) {
        free(v);
        return NULL;
    }
    if (strcmp(first[0], first[1]) > 0) /* newest first */
        for (int i = 0; i < n / 2; i++) {
            double t = v[i];
            v[i] = v[n - 1 - i];
            v[n - 1 - i] = t;
        }
    *n_out = n;
    return v;
}

/* Mean absolute error of the path's mean forecasts over the windows; NAN on failure. */
static double backtest_mae(toto_model *m, const char *path, const double *v, int n) {
    toto_request r[WINDOWS];
    toto_result res[WINDOWS];
    char err[512];
    memset(res, 0, sizeof res);
    for (int w = 0; w < WINDOWS; w++) {
        int end = n - (WINDOWS - w) * HORIZON; /* the forecast starts here */
        r[w] = (toto_request){.n_variates = 1,
                              .n_steps = CONTEXT,
                              .values = v + end - CONTEXT,
                              .prediction_length = HORIZON};
    }
    double sum = 0;
    int rc = toto_model_set_path(m, path, err, sizeof err);
    if (rc == TOTO_OK)
        rc = toto_forecast(m, r, res, WINDOWS, err, sizeof err);
    for (int w = 0; w < WINDOWS; w++) {
        if (rc == TOTO_OK && res[w].status != TOTO_OK)
            rc = res[w].status, snprintf(err, sizeof err, "%s", res[w].error);
        int end = n - (WINDOWS - w) * HORIZON;
        for (int t = 0; rc == TOTO_OK && t < HORIZON; t++)
            sum += fabs(res[w].mean[t] - v[end + t]);
        toto_result_free(&res[w]);
    }
    if (rc != TOTO_OK)
        tap_diag("%s: %s", path, err);
    return rc == TOTO_OK ? sum / (WINDOWS * HORIZON) : NAN;
}

/* The published-shape checkpoint, written once. */
static int ensure_checkpoint(const char *maker, const char *dir) {
    char file[1200], cmd[2600];
    struct stat st;
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    if (stat(file, &st) == 0)
        return 0;
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && '%s' --config published --out '%s' --seed 1 >&2",
             dir, maker, dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    const char *data = getenv("TOTO_TEST_DATA"), *build = getenv("TOTO_BUILD_DIR");
    const char *device = getenv("TOTO_TEST_DEVICE");
    char dir[1024], err[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/bench/toto-151m", build ? build : "build");
    if (!tap_check(argc > 1 && ensure_checkpoint(argv[1], dir) == 0,
                   "a checkpoint of the published shape in %s", dir))
        return tap_done();
    toto_model_params p = toto_model_default_params();
    p.device = device && *device ? device : "cpu";
    toto_model *m = toto_model_open(dir, &p, err, sizeof err);
    if (!tap_check(m != NULL, "it opens with the compiled path (%s)", m ? "ok" : err))
        return tap_done();
    for (size_t i = 0; i < sizeof kSeries / sizeof kSeries[0]; i++) {
        int n = 0;
        snprintf(path, sizeof path, "%s/series/%s", data ? data : "tests/data", kSeries[i].file);
        double *v = read_column(path, kSeries[i].column, &n);
        if (!tap_check(v != NULL, "%s: column %s read (%d rows)", kSeries[i].file,
                       kSeries[i].column, n))
            continue;
        double eager = backtest_mae(m, "eager", v, n), compiled = backtest_mae(m, "compiled", v, n);
        tap_check(fabs(compiled - eager) <= 0.01 * eager,
                  "%s: MAE compiled %.6g vs eager %.6g (%d windows of %d after %d): within 1%%",
                  kSeries[i].file, compiled, eager, WINDOWS, HORIZON, CONTEXT);
        free(v);
    }
    toto_model_free(m);
    return tap_done();
}
