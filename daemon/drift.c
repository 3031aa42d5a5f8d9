/* drift.c - forecast error drift (see drift.h). */
#include "drift.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WINDOW 64 /* baseline and recent windows: at most this many scores */

typedef struct series {
    char key[129];
    uint64_t used; /* tick of the last use; 0: free slot */
    /* The latest forecast: step i of variate v at first + i * interval. */
    double first, interval;
    int V, h;
    double *mean, *scale;  /* [V][h], [V] */
    unsigned char *scored; /* [V][h] */
    /* Scores: the first `baseline` ones, and a ring of the last `recent`. */
    double base_sum;
    int base_n;
    double recent[MAX_WINDOW];
    int recent_n, recent_next;
} series;

struct drift_tracker {
    drift_settings set;
    uint64_t tick;
    bool dirty;  /* scores changed since drift_scores() */
    series *all; /* max_series slots */
};

static int clamp_window(int n) {
    return n < 1 ? 1 : n > MAX_WINDOW ? MAX_WINDOW : n;
}

drift_tracker *drift_new(const drift_settings *s) {
    drift_tracker *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->set = *s;
    d->set.baseline = clamp_window(s->baseline);
    d->set.recent = clamp_window(s->recent);
    if (d->set.max_series < 1)
        d->set.max_series = 1;
    d->all = calloc((size_t)d->set.max_series, sizeof *d->all);
    if (!d->all) {
        free(d);
        return NULL;
    }
    return d;
}

static void forget_forecast(series *s) {
    free(s->mean);
    free(s->scale);
    free(s->scored);
    s->mean = s->scale = NULL;
    s->scored = NULL;
    s->V = s->h = 0;
}

void drift_free(drift_tracker *d) {
    if (!d)
        return;
    for (int i = 0; i < d->set.max_series; i++)
        forget_forecast(&d->all[i]);
    free(d->all);
    free(d);
}

/* key's series; with make, a new one (replacing the least recently used). */
static series *find(drift_tracker *d, const char *key, bool make) {
    series *lru = &d->all[0];
    for (int i = 0; i < d->set.max_series; i++) {
        series *s = &d->all[i];
        if (s->used && strcmp(s->key, key) == 0) {
            s->used = ++d->tick;
            return s;
        }
        if (s->used < lru->used)
            lru = s;
    }
    if (!make)
        return NULL;
    forget_forecast(lru);
    memset(lru, 0, sizeof *lru);
    snprintf(lru->key, sizeof lru->key, "%s", key);
    lru->used = ++d->tick;
    return lru;
}

int drift_remember(drift_tracker *d, const char *key, double start, double interval, int T, int V,
                   int h, const double *mean, const double *scale) {
    series *s = find(d, key, true);
    forget_forecast(s);
    size_t cells = (size_t)V * (size_t)h;
    s->mean = malloc(cells * sizeof *s->mean);
    s->scale = malloc((size_t)V * sizeof *s->scale);
    s->scored = calloc(cells, 1);
    if (!s->mean || !s->scale || !s->scored) {
        forget_forecast(s);
        return -1;
    }
    memcpy(s->mean, mean, cells * sizeof *s->mean);
    memcpy(s->scale, scale, (size_t)V * sizeof *s->scale);
    s->V = V;
    s->h = h;
    s->first = start + (double)T * interval;
    s->interval = interval;
    return 0;
}

static void add_score(drift_tracker *d, series *s, double score) {
    d->dirty = true;
    if (s->base_n < d->set.baseline) {
        s->base_sum += score;
        s->base_n++;
        return;
    }
    s->recent[s->recent_next] = score;
    s->recent_next = (s->recent_next + 1) % d->set.recent;
    if (s->recent_n < d->set.recent)
        s->recent_n++;
}

/* Scores values [V][n] at times[j] (or start + j * interval when times is NULL). */
static int observe(drift_tracker *d, const char *key, const double *times, double start,
                   double interval, int V, int n, const double *values) {
    series *s = find(d, key, false);
    if (!s || !s->mean || V != s->V ||
        (!times && fabs(interval - s->interval) > 1e-9 * fabs(interval)))
        return 0;
    double sum = 0;
    int scored = 0;
    for (int j = 0; j < n; j++) {
        double t = times ? times[j] : start + (double)j * interval;
        double at = (t - s->first) / s->interval, step = round(at);
        if (fabs(at - step) > 1e-6 || step < 0 || step >= s->h)
            continue;
        for (int v = 0; v < V; v++) {
            size_t cell = (size_t)v * (size_t)s->h + (size_t)step;
            double actual = values[(size_t)v * (size_t)n + (size_t)j];
            if (isnan(actual) || s->scored[cell])
                continue;
            s->scored[cell] = 1;
            sum += fabs(actual - s->mean[cell]) / s->scale[v];
            scored++;
        }
    }
    if (scored)
        add_score(d, s, sum / scored);
    return scored;
}

int drift_observe(drift_tracker *d, const char *key, double start, double interval, int V, int n,
                  const double *values) {
    return observe(d, key, NULL, start, interval, V, n, values);
}

int drift_observe_at(drift_tracker *d, const char *key, const double *times, int V, int n,
                     const double *values) {
    return observe(d, key, times, 0, 0, V, n, values);
}

static bool rated(const drift_tracker *d, const series *s, double *base, double *recent) {
    if (!s->used || s->base_n < d->set.baseline || s->recent_n < d->set.recent)
        return false;
    double r = 0;
    for (int i = 0; i < s->recent_n; i++)
        r += s->recent[i];
    *base = s->base_sum / s->base_n;
    *recent = r / s->recent_n;
    return true;
}

drift_status drift_check(const drift_tracker *d) {
    drift_status st = {0};
    double base_all = 0, recent_all = 0;
    for (int i = 0; i < d->set.max_series; i++) {
        const series *s = &d->all[i];
        double base, recent;
        st.tracked += s->used != 0;
        if (!rated(d, s, &base, &recent))
            continue;
        st.rated++;
        base_all += base;
        recent_all += recent;
        double ratio = base > 0 ? recent / base : (recent > 0 ? INFINITY : 1.0);
        st.over += ratio > d->set.threshold;
        if (st.rated == 1 || ratio > st.worst_ratio) {
            st.worst_ratio = ratio;
            snprintf(st.worst, sizeof st.worst, "%s", s->key);
        }
    }
    if (st.rated)
        st.ratio = base_all > 0 ? recent_all / base_all : (recent_all > 0 ? INFINITY : 1.0);
    st.drifting = st.rated > 0 && st.ratio > d->set.threshold;
    return st;
}

json_t *drift_to_json(const drift_tracker *d) {
    drift_status st = drift_check(d);
    return json_pack("{s:i, s:i, s:f, s:i, s:f, s:b, s:o}", "tracked", st.tracked, "rated",
                     st.rated, "ratio", isfinite(st.ratio) ? st.ratio : 1e300, "over", st.over,
                     "threshold", d->set.threshold, "drifting", st.drifting, "worst",
                     st.rated ? json_pack("{s:s, s:f}", "series_id", st.worst, "ratio",
                                          isfinite(st.worst_ratio) ? st.worst_ratio : 1e300)
                              : json_null());
}

void drift_scale(int V, int T, const double *context, double *scale) {
    for (int v = 0; v < V; v++) {
        const double *x = context + (size_t)v * (size_t)T;
        double sum = 0;
        int n = 0;
        for (int t = 1; t < T; t++)
            if (!isnan(x[t]) && !isnan(x[t - 1])) {
                sum += fabs(x[t] - x[t - 1]);
                n++;
            }
        scale[v] = n && sum > 0 ? sum / n : 1.0;
    }
}

bool drift_dirty(const drift_tracker *d) {
    return d->dirty;
}

void drift_mark_dirty(drift_tracker *d) {
    d->dirty = true;
}

json_t *drift_scores(drift_tracker *d) {
    json_t *list = json_array();
    for (int i = 0; list && i < d->set.max_series; i++) {
        const series *s = &d->all[i];
        if (!s->used || (s->base_n == 0 && s->recent_n == 0))
            continue;
        json_t *recent = json_array();
        for (int k = 0; k < s->recent_n; k++) /* oldest first */
            json_array_append_new(
                recent,
                json_real(
                    s->recent[(s->recent_next - s->recent_n + k + d->set.recent) % d->set.recent]));
        json_array_append_new(list,
                              json_pack("{s:s, s:f, s:i, s:o}", "series_id", s->key, "baseline_sum",
                                        s->base_sum, "baseline_n", s->base_n, "recent", recent));
    }
    d->dirty = false;
    return json_pack("{s:i, s:o}", "version", 1, "series", list ? list : json_array());
}

int drift_restore(drift_tracker *d, const json_t *scores, char *err, size_t err_len) {
    const json_t *list = json_object_get(scores, "series");
    if (json_integer_value(json_object_get(scores, "version")) != 1 || !json_is_array(list)) {
        snprintf(err, err_len, "not a drift state of version 1");
        return -1;
    }
    int restored = 0;
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e) {
        const char *key = json_string_value(json_object_get(e, "series_id"));
        const json_t *recent = json_object_get(e, "recent");
        int base_n = (int)json_integer_value(json_object_get(e, "baseline_n"));
        if (!key || !json_is_array(recent) || base_n < 0 || base_n > d->set.baseline)
            continue;
        series *s = find(d, key, true);
        s->base_sum = json_number_value(json_object_get(e, "baseline_sum"));
        s->base_n = base_n;
        s->recent_n = s->recent_next = 0;
        size_t k;
        const json_t *v;
        json_array_foreach(recent, k, v) {
            s->recent[s->recent_next] = json_number_value(v);
            s->recent_next = (s->recent_next + 1) % d->set.recent;
            if (s->recent_n < d->set.recent)
                s->recent_n++;
        }
        restored++;
    }
    return restored;
}
