/*
 * fuzz_csv_series.c - libFuzzer harness for the CSV reader of `toto
 * forecast` (client/csv_series.c, csv_record.c, csv_time.c).
 *
 * The first four bytes pick the options: a time column or none, keep_gaps,
 * skip_malformed, the duplicates policy, the delimiter, 1-3 value columns,
 * last N, the interval, and the length of the input's name (a path, in
 * messages); the rest is the CSV text. The columns are those the text's own
 * header names (the time first, then the values), so most inputs get past
 * the header. For an accepted input it aborts unless
 *   - the series has the columns asked for, at least one step (at most last),
 *     values NaN or finite, and times strictly increasing on the grid of
 *     interval_s (every step, unless keep_gaps);
 *   - the counts add up: a warning per skipped or dropped row, none without
 *     skip_malformed or a duplicates policy, n_filled steps all NaN;
 *   - reading it with last = N gives the last N steps of reading it all
 *     (all: at most the last 4096 steps, or 64 Ki with byte 2's high bit);
 *   - csv_series_read_stream() gives the same as csv_series_read_buffer().
 * A refused input must leave *out empty and say why in err.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv_record.h"
#include "csv_series.h"
#include "fuzz_check.h"

#define MAX_COLUMNS 3

static bool same_double(double a, double b) {
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

static void check_empty(const csv_series *s) {
    csv_series zero;
    memset(&zero, 0, sizeof zero);
    CHECK(memcmp(s, &zero, sizeof zero) == 0);
}

static void check_series(const csv_series *s, const csv_series_options *o) {
    CHECK(s->n_variates == o->n_value_columns && s->length >= 1 && s->values);
    CHECK(o->last == 0 || s->length <= o->last);
    for (size_t v = 0; v < s->n_variates; v++)
        CHECK(s->variate_names[v] && strcmp(s->variate_names[v], o->value_columns[v]) == 0);
    size_t all_nan = 0;
    for (size_t t = 0; t < s->length; t++) {
        bool missing = true;
        for (size_t v = 0; v < s->n_variates; v++) {
            double x = s->values[v * s->length + t];
            CHECK(isnan(x) || isfinite(x));
            missing = missing && isnan(x);
        }
        all_nan += missing;
    }
    CHECK(s->n_filled <= all_nan);
    CHECK((s->times != NULL) == (o->time_column != NULL));
    CHECK(s->interval_s >= 0);
    if (!s->times) {
        CHECK(s->interval_s == 0 && s->n_filled == 0 && s->n_duplicates == 0);
    } else {
        if (o->interval_s > 0)
            CHECK(s->interval_s == o->interval_s);
        for (size_t t = 0; t < s->length; t++) {
            /* Formatting is slow and the same at every step: the ends suffice. */
            if (t < 4 || s->length - t <= 4) {
                char when[64];
                int n = csv_series_format_time(s->times[t], s->interval_s, when, sizeof when);
                CHECK(n > 0 && (size_t)n < sizeof when);
            }
            if (t == 0)
                continue;
            CHECK(s->times[t] > s->times[t - 1]);
            if (s->interval_s > 0) {
                int64_t step = s->times[t] - s->times[t - 1];
                CHECK(o->keep_gaps ? step % s->interval_s == 0 : step == s->interval_s);
            }
        }
        if (o->keep_gaps || s->interval_s == 0)
            CHECK(s->n_filled == 0);
    }
    CHECK(s->n_warnings == s->n_skipped + s->n_duplicates);
    CHECK(o->skip_malformed || s->n_skipped == 0);
    CHECK(o->duplicates != CSV_DUPLICATES_ERROR || s->n_duplicates == 0);
    CHECK(s->n_rows >= s->n_skipped + s->n_duplicates);
    for (size_t i = 0; i < s->n_warnings; i++)
        CHECK(s->warnings[i].message && s->warnings[i].message[0] && s->warnings[i].line >= 2);
}

/* tail is the last steps of full (same grid, same values, same warnings). */
static void check_tail(const csv_series *tail, const csv_series *full) {
    CHECK(tail->length <= full->length && tail->n_variates == full->n_variates);
    size_t skip = full->length - tail->length;
    for (size_t v = 0; v < full->n_variates; v++)
        for (size_t t = 0; t < tail->length; t++)
            CHECK(same_double(tail->values[v * tail->length + t],
                              full->values[v * full->length + skip + t]));
    for (size_t t = 0; tail->times && t < tail->length; t++)
        CHECK(tail->times[t] == full->times[skip + t]);
    CHECK(tail->interval_s == full->interval_s && tail->n_rows == full->n_rows);
    CHECK(tail->n_warnings == full->n_warnings);
}

static void check_same(const csv_series *a, const csv_series *b) {
    CHECK(a->length == b->length && a->n_filled == b->n_filled);
    check_tail(a, b);
}

/* The header's fields (from the CSV text itself), copied into names. */
static size_t header_names(const char *text, size_t len, char delimiter, char **names, size_t max) {
    csv_reader r;
    size_t line, n = 0;
    char err[256];
    csv_reader_init(&r, text, len, delimiter);
    if (csv_reader_next(&r, &line, err, sizeof err) == 1)
        for (; n < r.n_fields && n < max; n++)
            names[n] = strdup(r.fields[n]);
    csv_reader_free(&r);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char delimiters[] = {0, ',', ';', '\t', '|', ' ', ':', 'x'};
    static const int64_t intervals[] = {0, 0, 0, 0, 1, 60, 3600, 86400, 7, 1800, 604800, 3};
    if (size < 4)
        return 0;
    csv_series_options o = {0};
    bool timed = data[0] & 1;
    o.keep_gaps = data[0] & 2;
    o.skip_malformed = data[0] & 4;
    o.duplicates = (csv_duplicates)((data[0] >> 3) % 3);
    o.delimiter = delimiters[(data[0] >> 5) & 7];
    size_t wanted = 1 + (data[1] & 3) % MAX_COLUMNS;
    size_t last = data[1] >> 2; /* 0..63 */
    o.interval_s = intervals[(data[2] & 0x7f) % (sizeof intervals / sizeof intervals[0])];
    /* A 1 s grid over days of rows is 10^5 steps and more, and csv_series.c
     * allows 10^8 (3.2 GB for 3 variates and their times: past libFuzzer's
     * memory limit). So the "whole" read keeps the last 4096 steps, or 64 Ki
     * when byte 2's high bit is set. */
    size_t whole = data[2] & 0x80 ? 65536 : 4096;
    size_t name_len = (size_t)data[3] * 3;
    const char *text = (const char *)data + 4;
    size_t len = size - 4;

    char *names[1 + MAX_COLUMNS] = {0};
    size_t n = header_names(text, len, o.delimiter ? o.delimiter : ',', names, 1 + MAX_COLUMNS);
    const char *fallback[] = {"time", "value", "open", "close"};
    const char *columns[1 + MAX_COLUMNS];
    for (size_t i = 0; i < 1 + MAX_COLUMNS; i++)
        columns[i] = i < n ? names[i] : fallback[i];
    o.time_column = timed ? columns[0] : NULL;
    o.value_columns = columns + 1;
    o.n_value_columns = wanted;
    char *name = NULL;
    if (name_len > 0) {
        name = malloc(name_len + 1);
        CHECK(name != NULL);
        memset(name, 'n', name_len);
        name[name_len] = '\0';
    }

    csv_series full, tail, streamed;
    char err[512] = "", err2[512] = "";
    o.last = whole;
    int rc = csv_series_read_buffer(text, len, name, &o, &full, err, sizeof err);
    if (rc != 0) {
        CHECK(rc == -1 && err[0] != '\0');
        check_empty(&full);
    } else {
        check_series(&full, &o);
        if (last > 0) {
            o.last = last;
            CHECK(csv_series_read_buffer(text, len, name, &o, &tail, err, sizeof err) == 0);
            check_series(&tail, &o);
            check_tail(&tail, &full);
            csv_series_free(&tail);
            o.last = whole;
        }
    }
    FILE *in = len > 0 ? fmemopen((void *)text, len, "rb") : NULL;
    if (in) {
        int rc2 = csv_series_read_stream(in, name, &o, &streamed, err2, sizeof err2);
        fclose(in);
        CHECK(rc2 == rc);
        if (rc == 0)
            check_same(&streamed, &full);
        else
            CHECK(strcmp(err, err2) == 0);
        csv_series_free(&streamed);
    }
    csv_series_free(&full);
    check_empty(&full);
    free(name);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return 0;
}
