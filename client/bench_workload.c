/* bench_workload.c - the presets and request files of `toto bench` (see bench_workload.h). */
#include "bench_workload.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ../shared/TOTO.md's workloads (one request each; batch64 is 64 clients here), and small. */
static const bench_workload kWorkloads[] = {
    {"seed", 1, 512, 8, 1024}, {"mean64", 1, 512, 64, 0}, {"long", 1, 2048, 336, 256},
    {"ett", 7, 2048, 96, 256}, {"small", 1, 64, 8, 0},
};

int bench_workload_find(const char *name, bench_workload *out) {
    for (size_t i = 0; i < sizeof kWorkloads / sizeof kWorkloads[0]; i++)
        if (!strcmp(kWorkloads[i].name, name)) {
            *out = kWorkloads[i];
            return 0;
        }
    return -1;
}

const char *bench_workload_names(void) {
    return "seed, mean64, long, ett, small";
}

/* Daily and weekly seasonality with a trend and deterministic noise (as toto-bench). */
static double series_value(int t, unsigned *seed) {
    *seed = *seed * 1664525u + 1013904223u;
    double noise = ((*seed >> 9) & 0xffff) / 65536.0 - 0.5;
    return 10 + 0.01 * t + 3 * sin(t * 2 * M_PI / 24) + sin(t * 2 * M_PI / 168) + noise;
}

/* A growing string; bad is set once anything fails (out of memory). */
typedef struct text {
    char *s;
    size_t len, cap;
    int bad;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...) {
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (t->bad || n < 0 || (size_t)n >= sizeof buf) {
        t->bad = 1;
        return;
    }
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (t->len + (size_t)n + 1 > cap)
            cap *= 2;
        char *s = realloc(t->s, cap);
        if (!s) {
            t->bad = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
    memcpy(t->s + t->len, buf, (size_t)n + 1);
    t->len += (size_t)n;
}

static int push(bench_requests *r, char *prefix, size_t len) {
    bench_request *items = realloc(r->items, (r->n + 1) * sizeof *items);
    if (!items)
        return -1;
    r->items = items;
    r->items[r->n++] = (bench_request){prefix, len};
    return 0;
}

int bench_requests_from_workload(const bench_workload *w, bench_requests *out) {
    *out = (bench_requests){0};
    text t = {0};
    put(&t, "{\"jsonrpc\":\"2.0\",\"method\":\"forecast\",\"params\":{\"series\":%s",
        w->variates > 1 ? "[" : "");
    for (int v = 0; v < w->variates; v++) {
        unsigned seed = 1 + (unsigned)v;
        put(&t, "%s[", v ? "," : "");
        for (int i = 0; i < w->context; i++)
            put(&t, "%s%.9g", i ? "," : "", series_value(i, &seed) * (1 + v));
        put(&t, "]");
    }
    put(&t, "%s,\"prediction_length\":%d,\"num_samples\":%d},\"id\":", w->variates > 1 ? "]" : "",
        w->horizon, w->samples);
    if (t.bad || push(out, t.s, t.len) != 0) {
        free(t.s);
        return -1;
    }
    return 0;
}

/* One line of a request file: its params, encoded as a request prefix. */
static char *prefix_of_line(const char *line, size_t len, size_t *out_len, char *why,
                            size_t whylen) {
    json_error_t jerr;
    json_t *root = json_loadb(line, len, 0, &jerr), *params = root;
    if (!root) {
        snprintf(why, whylen, "not JSON: %s", jerr.text);
        return NULL;
    }
    if (json_object_get(root, "jsonrpc")) {
        const char *m = json_string_value(json_object_get(root, "method"));
        params = json_object_get(root, "params");
        if (!m || strcmp(m, "forecast") || !json_is_object(params))
            params = NULL;
    }
    char *enc = json_is_object(params) ? json_dumps(params, JSON_COMPACT) : NULL;
    char *prefix = NULL;
    if (!enc)
        snprintf(why, whylen, "expected a forecast's params object or a forecast request");
    else if ((prefix = malloc(strlen(enc) + 64)) != NULL)
        *out_len = (size_t)sprintf(prefix,
                                   "{\"jsonrpc\":\"2.0\",\"method\":\"forecast\",\"params\":%s,"
                                   "\"id\":",
                                   enc);
    else
        snprintf(why, whylen, "out of memory");
    free(enc);
    json_decref(root);
    return prefix;
}

int bench_requests_from_file(const char *path, bench_requests *out, char *err, size_t errlen) {
    *out = (bench_requests){0};
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL, why[200];
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t at = strspn(line, " \t\r\n");
        if ((ssize_t)at == n || line[at] == '#')
            continue;
        size_t len = 0;
        char *prefix = prefix_of_line(line, (size_t)n, &len, why, sizeof why);
        if (!prefix || push(out, prefix, len) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, prefix ? "out of memory" : why);
            free(prefix);
            rc = -1;
        }
    }
    if (rc == 0 && out->n == 0) {
        snprintf(err, errlen, "%s: no request in the file", path);
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc != 0)
        bench_requests_free(out);
    return rc;
}

void bench_requests_free(bench_requests *r) {
    for (size_t i = 0; i < r->n; i++)
        free(r->items[i].prefix);
    free(r->items);
    *r = (bench_requests){0};
}
