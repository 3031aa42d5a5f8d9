/* latency.c - rolling latency windows (see latency.h). */
#include "latency.h"

#include <math.h>
#include <stdlib.h>

#define SLOTS      900 /* seconds kept: the longest window */
#define BINS       96  /* 4 an octave from 1 µs: the last holds everything from ~16.8 s */
#define PER_OCTAVE 4.0

typedef struct slot {
    uint64_t second; /* which second this slot holds; stale slots are skipped */
    uint32_t bins[LAT_PATHS][LAT_PHASES][BINS];
} slot;

struct latency_windows {
    slot slots[SLOTS];
};

latency_windows *latency_new(void) {
    latency_windows *w = calloc(1, sizeof *w);
    if (w)
        for (int i = 0; i < SLOTS; i++)
            w->slots[i].second = UINT64_MAX; /* empty */
    return w;
}

void latency_free(latency_windows *w) {
    free(w);
}

static int bin_of(double ms) {
    double us = ms * 1e3;
    if (us <= 1.0)
        return 0;
    int b = (int)ceil(log2(us) * PER_OCTAVE);
    return b < BINS ? b : BINS - 1;
}

/* The upper edge of bin b, in ms. */
static double bin_ms(int b) {
    return exp2(b / PER_OCTAVE) / 1e3;
}

static slot *slot_for(latency_windows *w, uint64_t second) {
    slot *s = &w->slots[second % SLOTS];
    if (s->second != second) {
        for (int p = 0; p < LAT_PATHS; p++)
            for (int f = 0; f < LAT_PHASES; f++)
                for (int b = 0; b < BINS; b++)
                    s->bins[p][f][b] = 0;
        s->second = second;
    }
    return s;
}

void latency_record(latency_windows *w, latency_path path, uint64_t now_ns, double queue_ms,
                    double model_ms, double total_ms) {
    slot *s = slot_for(w, now_ns / 1000000000u);
    const double ms[LAT_PHASES] = {queue_ms, model_ms, total_ms};
    for (int f = 0; f < LAT_PHASES; f++)
        if (ms[f] >= 0)
            s->bins[path][f][bin_of(ms[f])]++;
}

/* The smallest bin edge with at least q of count at or below it. */
static double percentile(const uint64_t *bins, uint64_t count, double q) {
    uint64_t need = (uint64_t)ceil(q * (double)count), seen = 0;
    for (int b = 0; b < BINS; b++) {
        seen += bins[b];
        if (seen >= need && seen > 0)
            return bin_ms(b);
    }
    return bin_ms(BINS - 1);
}

latency_summary latency_summarize(const latency_windows *w, latency_path path, latency_phase phase,
                                  uint64_t now_ns, int window_s) {
    uint64_t now_s = now_ns / 1000000000u, bins[BINS] = {0}, count = 0;
    if (window_s > SLOTS)
        window_s = SLOTS;
    for (int i = 0; i < window_s && (uint64_t)i <= now_s; i++) {
        const slot *s = &w->slots[(now_s - (uint64_t)i) % SLOTS];
        if (s->second != now_s - (uint64_t)i)
            continue;
        for (int b = 0; b < BINS; b++) {
            bins[b] += s->bins[path][phase][b];
            count += s->bins[path][phase][b];
        }
    }
    latency_summary out = {.count = count};
    if (count) {
        out.p50 = percentile(bins, count, 0.50);
        out.p90 = percentile(bins, count, 0.90);
        out.p99 = percentile(bins, count, 0.99);
    }
    return out;
}

static json_t *window_json(const latency_windows *w, latency_path path, uint64_t now_ns,
                           int window_s) {
    static const char *const names[LAT_PHASES] = {"queue", "model", "total"};
    json_t *o = json_object();
    for (int f = 0; o && f < LAT_PHASES; f++) {
        latency_summary s = latency_summarize(w, path, (latency_phase)f, now_ns, window_s);
        json_object_set_new(o, names[f],
                            json_pack("{s:I, s:f, s:f, s:f}", "count", (json_int_t)s.count, "p50",
                                      s.p50, "p90", s.p90, "p99", s.p99));
    }
    return o;
}

json_t *latency_to_json(const latency_windows *w, uint64_t now_ns) {
    static const char *const paths[LAT_PATHS] = {"compiled", "eager"};
    json_t *o = json_object();
    for (int p = 0; o && p < LAT_PATHS; p++) {
        if (latency_summarize(w, (latency_path)p, LAT_TOTAL, now_ns, SLOTS).count == 0)
            continue;
        json_object_set_new(o, paths[p],
                            json_pack("{s:o, s:o}", "1m", window_json(w, p, now_ns, 60), "15m",
                                      window_json(w, p, now_ns, SLOTS)));
    }
    return o;
}
