/*
 * toto_bench.c - median latency of toto_forecast() on the workloads of
 * upstream's published timings, printed beside them.
 *
 *   toto-bench --model DIR [--device D] [--dtype T] [--repeat N] [--only NAME,...]
 *
 * Each workload runs once to warm up, then --repeat times; a run is timed
 * from the call to the return of every result (results are copied to host
 * memory, so device work is complete). With the compiled path built (the
 * default; TOTO_COMPILE, TOTO_COMPILE_MODE, TOTO_DISABLE_COMPILE apply), each
 * workload is timed on the eager and the compiled path in turn, in the same
 * run, and the ratio printed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_series.h"
#include "toto.h"

typedef struct workload {
    const char *name;
    int batch, variates, context, horizon, samples;
    double upstream_eager_ms, upstream_compiled_ms; /* H100, upstream Python (shared/TOTO.md) */
} workload;

static const workload kWorkloads[] = {
    {"seed", 1, 1, 512, 8, 1024, 87.0, 79.0},
    {"mean64", 1, 1, 512, 64, 0, 16.6, 11.5},
    {"batch64_mean", 64, 1, 512, 64, 0, 20.2, 13.7},
    {"long", 1, 1, 2048, 336, 256, 195.0, 160.0},
    {"ett", 1, 7, 2048, 96, 256, 529.0, 485.0},
    /* Probes (--probes): where the time of the workloads above goes, by difference.
     * mean8: the context pass and one mean patch; seed1 - mean8: sampling one
     * path; seed - seed1: 1023 more paths and their statistics; mean32 - mean8:
     * one decoding step; batch64_seed: 64 sampled requests in one call;
     * mean2048: long's context pass alone; long2: long with one decoded
     * patch, so (long - long2) / 4 is one step of 256 paths; mean336 and
     * batch16_mean96: mean forecasts that decode 5 and 1 more patches. */
    {"mean8", 1, 1, 512, 8, 0, NAN, NAN},
    {"seed1", 1, 1, 512, 8, 1, NAN, NAN},
    {"mean32", 1, 1, 512, 32, 0, NAN, NAN},
    {"batch64_seed", 64, 1, 512, 8, 1024, NAN, NAN},
    {"mean2048", 1, 1, 2048, 64, 0, NAN, NAN},
    {"long2", 1, 1, 2048, 128, 256, NAN, NAN},
    /* Mean forecasts past the first patch (decoded by the path graphs):
     * long's horizon, and ETTh1's 96 steps for 16 series at once. */
    {"mean336", 1, 1, 2048, 336, 0, NAN, NAN},
    {"batch16_mean96", 16, 1, 512, 96, 0, NAN, NAN},
};
#define N_MAIN_WORKLOADS 5

typedef struct options {
    const char *model, *device, *dtype, *only;
    int repeat;
    int probes; /* also run the probe workloads */
    int sweep;  /* also the seed workload's throughput at batch 1..256 */
} options;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Daily and weekly seasonality with a trend and deterministic noise. */
static double *make_values(int variates, int context, unsigned seed) {
    double *v = malloc(sizeof(double) * (size_t)variates * (size_t)context);
    if (v)
        bench_series_fill(v, variates, context, seed);
    return v;
}

/* The spread of a workload's timed runs, in ms. */
typedef struct spread {
    double min, p90, max;
} spread;

/* Runs one workload; returns the median in ms, or -1 with a message printed;
 * *sp (when not NULL) gets the spread of the timed runs. */
static double time_workload(toto_model *m, const workload *w, int repeat, spread *sp) {
    toto_request *reqs = calloc((size_t)w->batch, sizeof *reqs);
    toto_result *res = calloc((size_t)w->batch, sizeof *res);
    double *values = make_values(w->variates, w->context, 1);
    double *times = calloc((size_t)repeat + 1, sizeof *times);
    double median = -1;
    if (!reqs || !res || !values || !times)
        goto done;
    for (int b = 0; b < w->batch; b++)
        reqs[b] = (toto_request){.n_variates = w->variates,
                                 .n_steps = w->context,
                                 .values = values,
                                 .prediction_length = w->horizon,
                                 .num_samples = w->samples,
                                 .seed = (uint64_t)b};
    for (int i = 0; i <= repeat; i++) {
        char err[512] = "";
        double t0 = now_ms();
        int rc = toto_forecast(m, reqs, res, w->batch, err, sizeof err);
        times[i] = now_ms() - t0;
        for (int b = 0; b < w->batch; b++) {
            if (rc == TOTO_OK && res[b].status != TOTO_OK)
                snprintf(err, sizeof err, "%s", res[b].error), rc = res[b].status;
            toto_result_free(&res[b]);
        }
        if (rc != TOTO_OK) {
            fprintf(stderr, "toto-bench: %s: %s\n", w->name, err);
            goto done;
        }
    }
    qsort(times + 1, (size_t)repeat, sizeof(double), cmp_double); /* times[0] is the warm-up */
    median = times[1 + repeat / 2];
    if (sp)
        *sp = (spread){times[1], times[(9 * repeat + 9) / 10], times[repeat]};
done:
    free(reqs);
    free(res);
    free(values);
    free(times);
    return median;
}

static int selected(const options *o, size_t index, const char *name) {
    if (!o->only)
        return index < N_MAIN_WORKLOADS || o->probes;
    size_t n = strlen(name);
    for (const char *p = strstr(o->only, name); p; p = strstr(p + 1, name))
        if ((p == o->only || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){NULL, "cpu", "float32", NULL, 10, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: toto-bench --model DIR [--device cpu|cuda[:N]] [--dtype float32|float64]"
                   " [--repeat N] [--only seed,mean64,...] [--probes] [--batch-sweep]\n");
            exit(0);
        }
        if (!strcmp(a, "--probes")) {
            o->probes = 1;
            continue;
        }
        if (!strcmp(a, "--batch-sweep")) {
            o->sweep = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "toto-bench: %s needs a value (see --help)\n", a);
            return -1;
        }
        if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--device"))
            o->device = v;
        else if (!strcmp(a, "--dtype"))
            o->dtype = v;
        else if (!strcmp(a, "--only"))
            o->only = v;
        else if (!strcmp(a, "--repeat"))
            o->repeat = atoi(v);
        else {
            fprintf(stderr, "toto-bench: unknown option %s (see --help)\n", a);
            return -1;
        }
        i++;
    }
    if (!o->model || o->repeat < 1) {
        fprintf(stderr, "toto-bench: --model DIR is required and --repeat must be >= 1\n");
        return -1;
    }
    return 0;
}

/* One workload on one path: its median, or -1 (printed). */
static double time_on(toto_model *m, const char *path, const workload *w, int repeat, spread *sp) {
    char err[256];
    if (toto_model_set_path(m, path, err, sizeof err) != TOTO_OK) {
        fprintf(stderr, "toto-bench: %s\n", err);
        return -1;
    }
    return time_workload(m, w, repeat, sp);
}

static void print_header(const toto_model_info *info, double open_ms, int repeat) {
    const toto_compile_stats *c = &info->compile;
    printf("# model %s: %lld parameters, device %s, dtype %s, median of %d\n", info->name,
           (long long)info->num_params, info->device, info->dtype, repeat);
    if (c->available)
        printf("# compiled path: mode %s%s, compute %s, %lld buckets%s, warm-up %.0f ms, "
               "%.1f MiB; open to ready %.0f ms\n",
               c->mode, c->autotuned ? " (matrix products timed at warm-up)" : "", c->compute_dtype,
               (long long)c->buckets, c->graphs ? " (CUDA graphs)" : "", c->warmup_ms,
               c->pool_bytes / 1048576.0, open_ms);
    else
        printf("# compiled path off; open to ready %.0f ms\n", open_ms);
    if (c->autotuned)
        printf("# max-autotune: %s chosen (probe passes: cuBLAS %.3f ms, cuBLASLt %.3f ms)\n",
               c->gemm_backend, c->gemm_ms[0], c->gemm_ms[1]);
    printf("| workload | B x V | context | horizon | samples | eager ms | compiled ms | "
           "compiled vs eager | upstream eager ms | upstream compiled ms | vs upstream "
           "compiled |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
}

/* The seed workload's throughput when B requests share one call, on the
 * current path (the compiled one when there is one). */
static int batch_sweep(toto_model *m, int repeat) {
    static const int kBatches[] = {1, 4, 16, 64, 256};
    printf(
        "\n| seed batch | ms per call | forecasts/s | vs batch 1 |\n| --- | --- | --- | --- |\n");
    double base = 0;
    for (size_t i = 0; i < sizeof kBatches / sizeof kBatches[0]; i++) {
        workload w = kWorkloads[0];
        w.batch = kBatches[i];
        double ms = time_workload(m, &w, repeat, NULL);
        if (ms < 0)
            return 1;
        double rate = w.batch / ms * 1e3;
        if (i == 0)
            base = rate;
        printf("| %d | %.3f | %.0f | %.1fx |\n", w.batch, ms, rate, rate / base);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    options o;
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    toto_model_params p = toto_model_default_params();
    p.device = o.device;
    p.dtype = o.dtype;
    char err[1024];
    if (toto_model_params_from_env(&p, err, sizeof err) != TOTO_OK) {
        fprintf(stderr, "toto-bench: %s\n", err);
        return 2;
    }
    double t0 = now_ms();
    toto_model *m = toto_model_open(o.model, &p, err, sizeof err);
    double open_ms = now_ms() - t0;
    if (!m) {
        fprintf(stderr, "toto-bench: %s\n", err);
        return 1;
    }
    toto_model_info info;
    toto_model_get_info(m, &info);
    print_header(&info, open_ms, o.repeat);
    int failed = 0;
    enum { kMaxRows = sizeof kWorkloads / sizeof kWorkloads[0] };
    spread spreads[kMaxRows];
    const char *names[kMaxRows];
    int rows = 0;
    for (size_t i = 0; i < sizeof kWorkloads / sizeof kWorkloads[0]; i++) {
        const workload *w = &kWorkloads[i];
        if (!selected(&o, i, w->name))
            continue;
        double eager = time_on(m, "eager", w, o.repeat, NULL);
        double compiled =
            info.compile.available ? time_on(m, "compiled", w, o.repeat, &spreads[rows]) : NAN;
        if (compiled > 0)
            names[rows++] = w->name;
        double best = compiled > 0 ? compiled : eager;
        failed |= eager < 0 || compiled < 0;
        printf("| %s | %dx%d | %d | %d | %d | %.3f | %.3f | %.1fx | %.1f | %.1f | %.1fx |\n",
               w->name, w->batch, w->variates, w->context, w->horizon, w->samples, eager, compiled,
               eager / compiled, w->upstream_eager_ms, w->upstream_compiled_ms,
               w->upstream_compiled_ms / best);
        fflush(stdout);
    }
    /* A median hides how often a run is slow: the compiled runs' spread. */
    for (int r = 0; r < rows; r++)
        printf("# compiled %s over %d runs: min %.3f, p90 %.3f, max %.3f ms\n", names[r], o.repeat,
               spreads[r].min, spreads[r].p90, spreads[r].max);
    if (o.sweep)
        failed |= batch_sweep(m, o.repeat);
    toto_model_get_info(m, &info);
    printf("# compiled runs %lld (split %lld), eager fallbacks %lld, path runs %lld (%lld path "
           "buckets), captures after warm-up %lld\n",
           (long long)info.compile.runs, (long long)info.compile.split_runs,
           (long long)info.compile.eager_fallbacks, (long long)info.compile.path_runs,
           (long long)info.compile.path_buckets, (long long)info.compile.captures_after_warmup);
    toto_model_free(m);
    return failed ? 1 : 0;
}
