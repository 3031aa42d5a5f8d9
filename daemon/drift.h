/*
 * drift.h - forecast error drift. A forecast that names its series
 * (series_id) and its time axis (start: the first context step's time;
 * interval: the step) is remembered: its mean at each predicted step's time,
 * and the series' scale per variate (the mean absolute one-step change of
 * its context, as MASE scales errors). Actual values that arrive later, in
 * the observe method or in a later forecast's context of the same series,
 * score the remembered steps they cover: the mean of |actual - forecast| /
 * scale. A series' first `baseline` scores are its baseline; drift is the
 * mean of the last `recent` scores over the baseline's mean, per series and
 * pooled over every series with both. Bounded: the least recently used
 * series goes when `max_series` are tracked. Loop thread only.
 */
#ifndef TOTOD_DRIFT_H
#define TOTOD_DRIFT_H

#include <stdbool.h>

#include <jansson.h>

typedef struct drift_settings {
    int max_series, baseline, recent;
    double threshold; /* a ratio above it is drift (1.2) */
} drift_settings;

typedef struct drift_tracker drift_tracker;

typedef struct drift_status {
    int tracked;     /* series remembered */
    int rated;       /* series with a full baseline and recent window */
    double ratio;    /* pooled: recent mean over baseline mean; 0 with none rated */
    int over;        /* rated series above the threshold */
    char worst[129]; /* the rated series with the largest ratio */
    double worst_ratio;
    bool drifting; /* pooled ratio above the threshold */
} drift_status;

/* NULL when out of memory. */
drift_tracker *drift_new(const drift_settings *s);
void drift_free(drift_tracker *d);
/* A forecast of key: mean [V][h] for the steps after T context steps from
 * start; scale [V] (> 0). 0, or -1 out of memory. */
int drift_remember(drift_tracker *d, const char *key, double start, double interval, int T, int V,
                   int h, const double *mean, const double *scale);
/* Actual values [V][n] of key at start + i * interval (NaN: missing): the
 * number of remembered steps they scored (each is scored once). */
int drift_observe(drift_tracker *d, const char *key, double start, double interval, int V, int n,
                  const double *values);
/* The same with each value's time given: times [n]. */
int drift_observe_at(drift_tracker *d, const char *key, const double *times, int V, int n,
                     const double *values);
drift_status drift_check(const drift_tracker *d);
/* {"tracked", "rated", "ratio", "over", "threshold", "worst": {"series_id", "ratio"}} */
json_t *drift_to_json(const drift_tracker *d);
/* The scores of every series (not the forecasts waiting for actuals) as
 * JSON, and back: what a state file keeps across restarts. drift_restore()
 * takes what it can use and returns how many series it restored, or -1
 * (err) for a document that is not one of drift_scores()'s. */
json_t *drift_scores(drift_tracker *d);
int drift_restore(drift_tracker *d, const json_t *scores, char *err, size_t err_len);
/* Scores changed since drift_scores() last ran. */
bool drift_dirty(const drift_tracker *d);
/* Scores to be saved again: their last drift_scores() could not be written. */
void drift_mark_dirty(drift_tracker *d);

/* The scale drift_remember() wants, of a context [V][T]: per variate, the
 * mean |x_t - x_{t-1}| over observed neighbours (1 when there is none). */
void drift_scale(int V, int T, const double *context, double *scale);

#endif
