/*
 * latency.h - rolling latency windows for health and metrics: the p50, p90
 * and p99 of each phase of a forecast (queue wait, model call, total as the
 * daemon saw it) for each path (compiled, eager), over the last minute and
 * the last 15.
 *
 * Each second of the last 15 minutes keeps a log-scale histogram (4 bins an
 * octave from 1 µs, so a percentile is the upper edge of its bin: within
 * 19% above the true value); a window sums its seconds. No allocation after
 * latency_new(), no locks: the loop thread records and reads.
 */
#ifndef TOTOD_LATENCY_H
#define TOTOD_LATENCY_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

typedef enum { LAT_COMPILED, LAT_EAGER, LAT_PATHS } latency_path;
typedef enum { LAT_QUEUE, LAT_MODEL, LAT_TOTAL, LAT_PHASES } latency_phase;

typedef struct latency_windows latency_windows;

typedef struct latency_summary {
    uint64_t count;
    double p50, p90, p99; /* milliseconds; 0 when count is 0 */
} latency_summary;

/* NULL when out of memory. */
latency_windows *latency_new(void);
void latency_free(latency_windows *w);
/* One answered forecast at now_ns (a monotonic clock), times in ms; a
 * negative time (not reached: an expired request has no model call) is not
 * recorded. */
void latency_record(latency_windows *w, latency_path path, uint64_t now_ns, double queue_ms,
                    double model_ms, double total_ms);
/* The last window_s seconds (at most 900) up to now_ns. */
latency_summary latency_summarize(const latency_windows *w, latency_path path, latency_phase phase,
                                  uint64_t now_ns, int window_s);
/* {"compiled": {"1m": {"queue": {count, p50, p90, p99}, "model": .., "total": ..},
 *  "15m": ..}, "eager": ..}; a path with nothing in 15 minutes is left out. */
json_t *latency_to_json(const latency_windows *w, uint64_t now_ns);

#endif
