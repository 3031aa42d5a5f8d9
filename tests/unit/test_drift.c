/*
 * test_drift.c - daemon/drift.h: scores of observed values against
 * remembered forecasts (scaled, each step once, matched by time), the
 * baseline and recent windows and their ratio, drifting and recovering,
 * the least recently used series dropped, and the MASE-style scale.
 */
#include <math.h>
#include <string.h>

#include "../../daemon/drift.h" /* the unit test table gives no daemon include dir */
#include "tap.h"

static const double ones[4] = {1, 1, 1, 1}, unit_scale[1] = {1};

/* One round for key: a forecast of 1s after 10 steps from start, then actuals of 1 + err. */
static int round_trip(drift_tracker *d, const char *key, double start, double err) {
    double actual[4];
    for (int i = 0; i < 4; i++)
        actual[i] = 1 + err;
    drift_remember(d, key, start, 1.0, 10, 1, 4, ones, unit_scale);
    return drift_observe(d, key, start + 10, 1.0, 1, 4, actual);
}

static void test_windows(void) {
    drift_settings set = {.max_series = 8, .baseline = 2, .recent = 2, .threshold = 1.2};
    drift_tracker *d = drift_new(&set);
    int scored = round_trip(d, "a", 0, 1.0);
    scored += round_trip(d, "a", 100, 1.0);
    drift_status st = drift_check(d);
    tap_check(scored == 8 && st.tracked == 1 && st.rated == 0,
              "baseline filling: 8 steps scored, nothing rated yet");
    round_trip(d, "a", 200, 1.0);
    round_trip(d, "a", 300, 1.0);
    st = drift_check(d);
    tap_check(st.rated == 1 && fabs(st.ratio - 1.0) < 1e-12 && !st.drifting,
              "same errors as the baseline: ratio %.3f, not drifting", st.ratio);
    round_trip(d, "a", 400, 3.0);
    round_trip(d, "a", 500, 3.0);
    st = drift_check(d);
    tap_check(st.drifting && fabs(st.ratio - 3.0) < 1e-12 && st.over == 1 &&
                  strcmp(st.worst, "a") == 0,
              "errors three times the baseline: ratio %.3f, drifting, worst 'a'", st.ratio);
    round_trip(d, "a", 600, 1.0);
    round_trip(d, "a", 700, 1.0);
    st = drift_check(d);
    tap_check(!st.drifting && fabs(st.ratio - 1.0) < 1e-12, "recovers as good scores come back");
    drift_free(d);
}

static void test_matching(void) {
    drift_settings set = {.max_series = 8, .baseline = 2, .recent = 2, .threshold = 1.2};
    drift_tracker *d = drift_new(&set);
    double actual[6] = {NAN, 2, 2, 2, 2, 2};
    drift_remember(d, "b", 0, 60, 10, 1, 4, ones, unit_scale); /* steps at 600..780 */
    int before = drift_observe(d, "b", 540, 60, 1, 6, actual); /* 540..840: NaN, 4 steps, 1 past */
    int again = drift_observe(d, "b", 540, 60, 1, 6, actual);
    int other = drift_observe(d, "b", 600, 30, 1, 6, actual); /* another interval */
    int off = drift_observe(d, "b", 610, 60, 1, 6, actual);   /* between the steps */
    int unknown = drift_observe(d, "zz", 600, 60, 1, 6, actual);
    tap_check(before == 4 && again == 0 && other == 0 && off == 0 && unknown == 0,
              "steps match by time, each scored once; other intervals, offsets, series: none "
              "(%d %d %d %d %d)",
              before, again, other, off, unknown);
    drift_free(d);
}

static void test_lru_and_scale(void) {
    drift_settings set = {.max_series = 2, .baseline = 1, .recent = 1, .threshold = 1.2};
    drift_tracker *d = drift_new(&set);
    round_trip(d, "x", 0, 1);
    round_trip(d, "y", 0, 1);
    round_trip(d, "z", 0, 1); /* x is the least recently used */
    double actual[4] = {2, 2, 2, 2};
    tap_check(drift_check(d).tracked == 2 && drift_observe(d, "x", 10, 1, 1, 4, actual) == 0,
              "max_series 2: the least recently used series is dropped");
    json_t *j = drift_to_json(d);
    tap_check(json_integer_value(json_object_get(j, "tracked")) == 2 &&
                  json_object_get(j, "threshold") != NULL,
              "JSON: tracked, threshold");
    json_decref(j);
    drift_free(d);
    double ctx[6] = {0, 1, 3, 5, 5, 5}, scale[2];
    drift_scale(2, 3, ctx, scale);
    tap_check(fabs(scale[0] - 1.5) < 1e-12 && scale[1] == 1.0,
              "scale: mean one-step change (1.5); 1 for a constant series");
}

int main(void) {
    test_windows();
    test_matching();
    test_lru_and_scale();
    return tap_done();
}
