/*
 * bench_series.h - the series toto-bench and toto-profile forecast: daily
 * and weekly seasonality with a trend and deterministic noise, the same
 * values for both tools (header-only: one is C, the other C++).
 */
#ifndef TOTO_BENCH_SERIES_H
#define TOTO_BENCH_SERIES_H

#include <math.h>
#include <stddef.h>

/* Fills v [variates][context]. */
static inline void bench_series_fill(double *v, int variates, int context, unsigned seed) {
    for (int i = 0; i < variates * context; i++) {
        int t = i % context;
        seed = seed * 1664525u + 1013904223u;
        double noise = ((seed >> 9) & 0xffff) / 65536.0 - 0.5;
        v[i] = 10 + 0.01 * t + 3 * sin(t * 2 * M_PI / 24) + sin(t * 2 * M_PI / 168) + noise;
    }
}

#endif
