/*
 * test_latency.c - daemon/latency.h: percentiles of known samples (never
 * below the true value, at most one bin, 19%, above it), the 1- and
 * 15-minute windows as seconds pass, paths and phases kept apart, times
 * not reached left out, and the JSON.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/latency.h" /* the unit test table gives no daemon include dir */
#include "tap.h"

#define SEC 1000000000ull

/* A percentile reported for a true value: at or above it, within one bin. */
static bool near(double got, double want) {
    return got >= want * (1 - 1e-9) && got <= want * 1.19 + 1e-9;
}

static void test_percentiles(void) {
    latency_windows *w = latency_new();
    uint64_t now = 1000 * SEC;
    /* 1..100 ms total: p50 50, p90 90, p99 99; queue 0.1 ms each; model not reached. */
    for (int i = 1; i <= 100; i++)
        latency_record(w, LAT_COMPILED, now, 0.1, -1, (double)i);
    latency_summary t = latency_summarize(w, LAT_COMPILED, LAT_TOTAL, now, 60);
    tap_check(t.count == 100 && near(t.p50, 50) && near(t.p90, 90) && near(t.p99, 99),
              "p50 %.2f, p90 %.2f, p99 %.2f of 1..100 ms (count %llu)", t.p50, t.p90, t.p99,
              (unsigned long long)t.count);
    latency_summary q = latency_summarize(w, LAT_COMPILED, LAT_QUEUE, now, 60);
    latency_summary m = latency_summarize(w, LAT_COMPILED, LAT_MODEL, now, 60);
    latency_summary e = latency_summarize(w, LAT_EAGER, LAT_TOTAL, now, 60);
    tap_check(q.count == 100 && near(q.p99, 0.1) && m.count == 0 && m.p99 == 0 && e.count == 0,
              "phases and paths kept apart; a time not reached (negative) is not counted");
    latency_free(w);
}

static void test_windows(void) {
    latency_windows *w = latency_new();
    uint64_t t0 = 5000 * SEC;
    latency_record(w, LAT_EAGER, t0, 1, 1, 1000); /* two slow ones, then fast ones later */
    latency_record(w, LAT_EAGER, t0, 1, 1, 1000);
    for (int s = 1; s <= 120; s++)
        latency_record(w, LAT_EAGER, t0 + (uint64_t)s * SEC, 1, 1, 2);
    uint64_t now = t0 + 120 * SEC;
    latency_summary m1 = latency_summarize(w, LAT_EAGER, LAT_TOTAL, now, 60);
    latency_summary m15 = latency_summarize(w, LAT_EAGER, LAT_TOTAL, now, 900);
    tap_check(m1.count == 60 && near(m1.p99, 2) && m15.count == 122 && near(m15.p99, 1000),
              "the last minute forgets what the last 15 keep (%llu, p99 %.1f; %llu, p99 %.1f)",
              (unsigned long long)m1.count, m1.p99, (unsigned long long)m15.count, m15.p99);
    latency_summary later = latency_summarize(w, LAT_EAGER, LAT_TOTAL, now + 16 * 60 * SEC, 900);
    tap_check(later.count == 0, "15 minutes later nothing is left (%llu)",
              (unsigned long long)later.count);
    /* A slot reused 900 s later holds only the new second. */
    latency_record(w, LAT_EAGER, t0 + 900 * SEC, 1, 1, 5);
    latency_summary reused = latency_summarize(w, LAT_EAGER, LAT_TOTAL, t0 + 900 * SEC, 1);
    tap_check(reused.count == 1 && near(reused.p50, 5), "a reused second starts empty (%llu)",
              (unsigned long long)reused.count);
    latency_free(w);
}

static void test_json(void) {
    latency_windows *w = latency_new();
    uint64_t now = 77 * SEC;
    latency_record(w, LAT_COMPILED, now, 0.5, 1.5, 2.5);
    json_t *j = latency_to_json(w, now);
    json_t *total = json_object_get(json_object_get(json_object_get(j, "compiled"), "1m"), "total");
    tap_check(json_integer_value(json_object_get(total, "count")) == 1 &&
                  near(json_real_value(json_object_get(total, "p99")), 2.5) &&
                  json_object_get(j, "eager") == NULL &&
                  json_object_get(json_object_get(j, "compiled"), "15m") != NULL,
              "JSON: compiled 1m and 15m windows; a path never used is left out");
    json_decref(j);
    latency_free(w);
}

int main(void) {
    test_percentiles();
    test_windows();
    test_json();
    return tap_done();
}
