/*
 * test_csv_series.c - client/csv_series.h (and csv_time.h under it): from
 * strings, every rule of docs/csv-input.md with its error text; from the
 * real files of tests/data/series, newest-first rows sorted, weekend gaps
 * filled and counted, the BTC file read by its `date` and its mixed-epoch
 * `unix` columns giving one series, ETTh1's seven variates.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../client/csv_series.h"
#include "../../client/csv_time.h"
#include "tap.h"

static char err[1024];

static int read_csv(const char *csv, const csv_series_options *opt, csv_series *s) {
    err[0] = '\0';
    return csv_series_read_buffer(csv, strlen(csv), "t.csv", opt, s, err, sizeof err);
}

static const char *value_col[] = {"value"};
#define ONE_VALUE .value_columns = value_col, .n_value_columns = 1

static bool same(double a, double b) {
    return (isnan(a) && isnan(b)) || a == b;
}

static bool values_are(const csv_series *s, size_t variate, const double *want, size_t n) {
    if (s->length != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!same(s->values[variate * s->length + i], want[i]))
            return false;
    return true;
}

static void test_timestamps(void) {
    static const struct {
        const char *text;
        int64_t want;
    } good[] = {
        {"2018-03-27", 1522108800},
        {"2016-07-01 00:00:00", 1467331200},
        {"2016-07-01T00:00:00", 1467331200},
        {"2016-07-01T00:00", 1467331200},
        {"2016-07-01T00:00:00Z", 1467331200},
        {"2016-07-01T02:00:00+02:00", 1467331200},
        {"2016-06-30T20:00:00-0400", 1467331200},
        {"2016-07-01 00:00:00.400", 1467331200},
        {"2016-07-01 00:00:00.6", 1467331201},
        {" 2016-07-01 01:00:00 ", 1467334800},
        {"2017-08-17 05-AM", 1502946000},
        {"2017-08-17 12-AM", 1502928000},
        {"2017-08-17 12-PM", 1502971200},
        {"2017-08-17 11-pm", 1503010800},
        {"2000-02-29", 951782400},
        {"1969-12-31 23:00:00", -3600},
        {"1502946000", 1502946000},
        {"1502946000.0", 1502946000},
        {"1502946000000", 1502946000},
        {"1502946000499", 1502946000},
        {"1502946000000000", 1502946000},
    };
    static const char *bad[] = {
        "",           "abc",         "2017-02-30",       "2017-13-01",
        "2019-02-29", "2017-8-17",   "2017-08-17 13-PM", "2017-08-17 00-AM",
        "0x10",       "1e9",         "2017-08-17 25:00", "2017-08-17T10",
        "12:00",      "2017-08-17x", "1502946000.0.0",   "2016-07-01 00:00:00+25:00"};
    size_t wrong = 0;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t t = 0;
        if (csv_time_parse(good[i].text, &t) != 0 || t != good[i].want) {
            tap_diag("'%s': got %lld, want %lld", good[i].text, (long long)t,
                     (long long)good[i].want);
            wrong++;
        }
    }
    tap_check(wrong == 0, "%zu timestamp forms parse to the right UTC second",
              sizeof good / sizeof good[0]);
    wrong = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t;
        if (csv_time_parse(bad[i], &t) == 0) {
            tap_diag("'%s' parsed as %lld", bad[i], (long long)t);
            wrong++;
        }
    }
    tap_check(wrong == 0, "%zu malformed timestamps are refused", sizeof bad / sizeof bad[0]);
    char buf[32];
    csv_series_format_time(1522108800, 86400, buf, sizeof buf);
    bool date = strcmp(buf, "2018-03-27") == 0;
    csv_series_format_time(1522108800, 3600, buf, sizeof buf);
    bool hourly = strcmp(buf, "2018-03-27 00:00:00") == 0;
    csv_series_format_time(1522108800 + 7200, 86400, buf, sizeof buf);
    bool off_midnight = strcmp(buf, "2018-03-27 02:00:00") == 0;
    csv_series_format_time(-3600, 3600, buf, sizeof buf);
    tap_check(date && hourly && off_midnight && strcmp(buf, "1969-12-31 23:00:00") == 0,
              "format: a date for daily midnights, else date and time (also before 1970)");
}

static void test_sorted_and_filled(void) {
    csv_series_options opt = {.time_column = "time", ONE_VALUE};
    csv_series s;
    const char *csv = "time,value\n2024-01-05,5\n2024-01-03,3\n2024-01-02,2\n2024-01-01,1\n";
    int rc = read_csv(csv, &opt, &s);
    double want[] = {1, 2, 3, NAN, 5};
    char first[32], gap[32];
    if (rc == 0) {
        csv_series_format_time(s.times[0], s.interval_s, first, sizeof first);
        csv_series_format_time(s.times[3], s.interval_s, gap, sizeof gap);
    }
    tap_check(rc == 0 && values_are(&s, 0, want, 5) && s.interval_s == 86400 && s.n_filled == 1 &&
                  s.n_rows == 4 && strcmp(first, "2024-01-01") == 0 &&
                  strcmp(gap, "2024-01-04") == 0 && s.times[4] - s.times[0] == 4 * 86400,
              "newest first: sorted, the missing day filled with NaN and counted (%s)", err);
    csv_series_free(&s);

    opt.keep_gaps = true;
    rc = read_csv(csv, &opt, &s);
    double kept[] = {1, 2, 3, 5};
    tap_check(rc == 0 && values_are(&s, 0, kept, 4) && s.n_filled == 0 &&
                  s.times[3] - s.times[2] == 2 * 86400,
              "keep_gaps: the rows are consecutive steps, times kept");
    csv_series_free(&s);
}

static void test_missing_markers(void) {
    csv_series_options opt = {.time_column = "t", ONE_VALUE};
    csv_series s;
    const char *csv = "t,value\n1,1.5\n2,\n3,NaN\n4,nan\n5,NULL\n6,null\n7,NA\n8,-2e3\n9, 7 \n";
    int rc = read_csv(csv, &opt, &s);
    double want[] = {1.5, NAN, NAN, NAN, NAN, NAN, NAN, -2000, 7};
    tap_check(rc == 0 && values_are(&s, 0, want, 9) && s.interval_s == 1,
              "empty, NaN, nan, NULL, null, NA are missing; -2e3 and ' 7 ' are numbers (%s)", err);
    csv_series_free(&s);
}

static void test_malformed_rows(void) {
    csv_series_options opt = {.time_column = "t", ONE_VALUE};
    csv_series s;
    int rc = read_csv("t,value\n1,1\n2,2\n3,abc\n4,4\n", &opt, &s);
    tap_check(rc == -1 && s.values == NULL &&
                  strcmp(err, "t.csv:4: column 'value': not a number: 'abc'") == 0,
              "a bad value names file, line, column and text: %s", err);
    static const char *not_numbers[] = {"12abc", "0x10", "inf",   "1.2.3",
                                        "--1",   "1e",   "1e999", "\"1,5\""};
    size_t refused = 0;
    for (size_t i = 0; i < sizeof not_numbers / sizeof not_numbers[0]; i++) {
        char csv[128];
        snprintf(csv, sizeof csv, "t,value\n1,1\n2,%s\n", not_numbers[i]);
        refused += read_csv(csv, &opt, &s) == -1 && strstr(err, "t.csv:3: column 'value'");
        csv_series_free(&s);
    }
    tap_check(refused == sizeof not_numbers / sizeof not_numbers[0],
              "%zu near-numbers (12abc, 0x10, inf, 1e999, \"1,5\"...) are errors, not guesses",
              refused);
    rc = read_csv("t,value\n\n1,1\n2017-13-01,2\n", &opt, &s);
    tap_check(rc == -1 && strcmp(err, "t.csv:4: column 't': not a timestamp: '2017-13-01'") == 0,
              "a bad timestamp too, lines counted with the blank one: %s", err);
    rc = read_csv("t,value,x\n1,1,a\n2,2\n", &opt, &s);
    tap_check(rc == -1 && strcmp(err, "t.csv:3: 2 fields where the header has 3") == 0,
              "a short row is an error, not a shifted read: %s", err);

    opt.skip_malformed = true;
    rc = read_csv("t,value\n1,1\n2,2\n3,x\n4,4\n5,5\n6,6,6\n7,7\n", &opt, &s);
    double want[] = {1, 2, NAN, 4, 5, NAN, 7};
    bool warned =
        rc == 0 && s.n_warnings == 2 && s.warnings[0].line == 4 && s.warnings[1].line == 7 &&
        strcmp(s.warnings[0].message, "t.csv:4: column 'value': not a number: 'x' (row skipped)") ==
            0;
    tap_check(warned && s.n_skipped == 2 && s.n_rows == 7 && values_are(&s, 0, want, 7) &&
                  s.n_filled == 2,
              "skip_malformed: bad rows skipped, each a warning with its line (%s)",
              rc == 0 && s.n_warnings ? s.warnings[0].message : err);
    csv_series_free(&s);
    rc = read_csv("t,value\n1,x\n2,y\n", &opt, &s);
    tap_check(rc == -1 && strstr(err, "no data rows left"), "nothing left to read: %s", err);
}

static void test_duplicates(void) {
    csv_series_options opt = {.time_column = "t", ONE_VALUE};
    csv_series s;
    const char *csv = "t,value\n2020-01-01 02:00,2\n2020-01-01 01:00,1\n2020-01-01 02:00,9\n";
    int rc = read_csv(csv, &opt, &s);
    tap_check(rc == -1 &&
                  strcmp(err, "t.csv:4: duplicate time 2020-01-01 02:00:00 (also at line 2)") == 0,
              "a duplicate time names both lines: %s", err);
    opt.duplicates = CSV_DUPLICATES_FIRST;
    rc = read_csv(csv, &opt, &s);
    double first[] = {1, 2};
    tap_check(rc == 0 && values_are(&s, 0, first, 2) && s.n_duplicates == 1 && s.n_warnings == 1 &&
                  s.warnings[0].line == 4,
              "duplicates 'first': the upper row kept, the other a warning (%s)",
              rc == 0 ? s.warnings[0].message : err);
    csv_series_free(&s);
    opt.duplicates = CSV_DUPLICATES_LAST;
    rc = read_csv(csv, &opt, &s);
    double last[] = {1, 9};
    tap_check(rc == 0 && values_are(&s, 0, last, 2) && s.warnings[0].line == 2,
              "duplicates 'last': the lower row kept");
    csv_series_free(&s);
}

static void test_grid(void) {
    csv_series_options opt = {.time_column = "t", ONE_VALUE};
    csv_series s;
    /* The stray row is the first: the grid follows the majority. */
    const char *csv = "t,value\n2020-01-01 00:30,0\n2020-01-01 01:00,1\n2020-01-01 02:00,2\n"
                      "2020-01-01 03:00,3\n2020-01-01 05:00,5\n";
    int rc = read_csv(csv, &opt, &s);
    tap_check(rc == -1 && strstr(err, "t.csv:2: time 2020-01-01 00:30:00 is off the grid") &&
                  strstr(err, "every 3600 s"),
              "an off-grid row is named, not the rows after it: %s", err);
    opt.skip_malformed = true;
    rc = read_csv(csv, &opt, &s);
    double want[] = {1, 2, 3, NAN, 5};
    tap_check(rc == 0 && values_are(&s, 0, want, 5) && s.n_skipped == 1 &&
                  s.warnings[0].line == 2 && s.interval_s == 3600,
              "skip_malformed skips it too");
    csv_series_free(&s);
    opt.skip_malformed = false;

    opt.interval_s = 7200;
    rc = read_csv("t,value\n0,0\n3600,1\n7200,2\n", &opt, &s);
    tap_check(rc == -1 && strstr(err, "t.csv:3: time 1970-01-01 01:00:00 is off the grid"),
              "a given interval the data does not fit: %s", err);
    opt.interval_s = 1800;
    rc = read_csv("t,value\n0,0\n3600,1\n7200,2\n", &opt, &s);
    double half[] = {0, NAN, 1, NAN, 2};
    tap_check(rc == 0 && values_are(&s, 0, half, 5) && s.interval_s == 1800 && s.n_filled == 2,
              "a given finer interval fills the steps between rows");
    csv_series_free(&s);
}

static void test_columns(void) {
    static const char *names[] = {"Close"};
    csv_series_options opt = {.time_column = "Date", .value_columns = names, .n_value_columns = 1};
    csv_series s;
    int rc = read_csv("Date,Open,close\n2020-01-01,1,2\n", &opt, &s);
    tap_check(rc == -1 && strcmp(err, "t.csv: no column 'Close' in the header; the columns are: "
                                      "'Date', 'Open', 'close'") == 0,
              "an unknown column lists the ones there are: %s", err);
    opt.time_column = "time";
    names[0] = "Open";
    rc = read_csv("Date,Open,close\n2020-01-01,1,2\n", &opt, &s);
    tap_check(rc == -1 && strstr(err, "no column 'time'"), "the time column too: %s", err);
    opt.time_column = "Date";
    rc = read_csv("Date,Open,Open\n2020-01-01,1,2\n", &opt, &s);
    tap_check(rc == -1 && strstr(err, "'Open' appears twice"), "an ambiguous name: %s", err);
    names[0] = "Close";
}

static void test_quotes_crlf_blank(void) {
    static const char *names[] = {"the value", "b"};
    csv_series_options opt = {.time_column = "when", .value_columns = names, .n_value_columns = 2};
    csv_series s;
    const char *csv = "\xEF\xBB\xBF\"when\",\"note, with comma\",\"the value\",b\r\n"
                      "\r\n"
                      "2020-01-02,\"say \"\"hi\"\", twice\",\"2.5\",20\r\n"
                      "   \r\n"
                      "2020-01-01,\"two\nlines\",1.5,10\r\n"
                      "2020-01-03,,\"\",30\r\n"
                      "\r\n";
    int rc = read_csv(csv, &opt, &s);
    double a[] = {1.5, 2.5, NAN}, b[] = {10, 20, 30};
    tap_check(rc == 0 && values_are(&s, 0, a, 3) && values_are(&s, 1, b, 3) && s.n_variates == 2 &&
                  strcmp(s.variate_names[0], "the value") == 0,
              "BOM, quoted names and fields with commas, \"\" and newlines, CRLF, blank lines (%s)",
              err);
    csv_series_free(&s);
    rc = read_csv("when,the value,b\r\n2020-01-01,1,2\r\n2020-01-02,\"x\"y,2\r\n", &opt, &s);
    tap_check(rc == -1 && strstr(err, "t.csv: line 3: unexpected 'y' after a closing quote"),
              "text after a closing quote: %s", err);
    rc = read_csv("when,the value,b\n2020-01-01,1,2\n2020-01-02,\"1,\n\n", &opt, &s);
    tap_check(rc == -1 && strstr(err, "line 3: quoted field not closed"),
              "an unclosed quote names the line it opened on: %s", err);
    rc = read_csv("", &opt, &s);
    tap_check(rc == -1 && strstr(err, "no header row"), "empty input: %s", err);
    rc = read_csv("when,the value,b\n\n", &opt, &s);
    tap_check(rc == -1 && strstr(err, "no data rows"), "a header alone: %s", err);
}

static void test_last_and_no_time(void) {
    csv_series_options opt = {.time_column = "t", ONE_VALUE, .last = 3};
    csv_series s;
    const char *csv = "t,value\n5,5\n1,1\n2,2\n3,3\n";
    int rc = read_csv(csv, &opt, &s);
    double want[] = {3, NAN, 5};
    tap_check(rc == 0 && values_are(&s, 0, want, 3) && s.times[0] == 3 && s.times[2] == 5 &&
                  s.n_filled == 1,
              "last 3: the most recent 3 grid steps (gaps count as steps)");
    csv_series_free(&s);
    opt.keep_gaps = true;
    rc = read_csv(csv, &opt, &s);
    double rows[] = {2, 3, 5};
    tap_check(rc == 0 && values_are(&s, 0, rows, 3), "last 3 with gaps kept: the last 3 rows");
    csv_series_free(&s);

    opt = (csv_series_options){.time_column = NULL, ONE_VALUE, .delimiter = ';', .last = 2};
    rc = read_csv("value;other\n3;x\n1;y\n2;z\n", &opt, &s);
    double order[] = {1, 2};
    tap_check(rc == 0 && values_are(&s, 0, order, 2) && s.times == NULL && s.interval_s == 0,
              "no time column: file order, one step a row; ';' delimiter; last 2 (%s)", err);
    csv_series_free(&s);
}

static void test_options_checked(void) {
    csv_series_options opt = {.time_column = "t"};
    csv_series s;
    tap_check(read_csv("t,v\n1,1\n", &opt, &s) == -1 && strstr(err, "no value column"),
              "options without a value column: %s", err);
    tap_check(csv_series_read_file("/nonexistent/x.csv", &opt, &s, err, sizeof err) == -1,
              "a missing file: %s", err);
    opt = (csv_series_options){.time_column = "t", ONE_VALUE};
    tap_check(csv_series_read_file("/nonexistent/x.csv", &opt, &s, err, sizeof err) == -1 &&
                  strstr(err, "/nonexistent/x.csv: No such file"),
              "a missing file, named: %s", err);
}

/* ---- the real files --------------------------------------------------- */

static int read_real(const char *file, const csv_series_options *opt, csv_series *s) {
    const char *data = getenv("TOTO_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/series/%s", data ? data : "tests/data", file);
    err[0] = '\0';
    return csv_series_read_file(path, opt, s, err, sizeof err);
}

static const char *time_text(const csv_series *s, size_t i) {
    static char buf[4][32];
    static int next;
    char *b = buf[next++ % 4];
    csv_series_format_time(s->times[i], s->interval_s, b, 32);
    return b;
}

/* Newest first, daily, weekends and holidays missing. */
static void test_aapl(void) {
    static const char *close[] = {"Close"};
    csv_series_options opt = {.time_column = "Date", .value_columns = close, .n_value_columns = 1};
    csv_series s;
    int rc = read_real("WIKI-AAPL.csv", &opt, &s);
    if (!tap_check(rc == 0, "WIKI-AAPL.csv by Date (%s)", err))
        return;
    bool sorted = true;
    for (size_t i = 1; i < s.length; i++)
        sorted = sorted && s.times[i] - s.times[i - 1] == 86400;
    /* 1980-12-12 .. 2018-03-27 is 13620 days; the file has 9400 rows. */
    tap_check(sorted && s.length == 13620 && s.n_rows == 9400 && s.n_filled == 13620 - 9400 &&
                  strcmp(time_text(&s, 0), "1980-12-12") == 0 &&
                  strcmp(time_text(&s, s.length - 1), "2018-03-27") == 0,
              "sorted oldest first, one step a day, %zu days filled (%s .. %s)", s.n_filled,
              time_text(&s, 0), time_text(&s, s.length - 1));
    /* 2018-03-24/25 are a weekend; 2018-03-23 closed at 164.94, 03-27 at 168.34. */
    size_t n = s.length;
    tap_check(s.values[n - 1] == 168.34 && s.values[n - 2] == 172.77 && isnan(s.values[n - 3]) &&
                  isnan(s.values[n - 4]) && s.values[n - 5] == 164.94 && s.values[0] == 28.75,
              "the last week: Sat and Sun NaN between Friday's and Monday's closes");
    csv_series_free(&s);
    opt.last = 512;
    rc = read_real("WIKI-AAPL.csv", &opt, &s);
    tap_check(rc == 0 && s.length == 512 && s.values[511] == 168.34 &&
                  s.times[511] - s.times[0] == 511 * 86400,
              "last 512: the most recent 512 days");
    csv_series_free(&s);
}

static void test_etth1(void) {
    static const char *cols[] = {"HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"};
    csv_series_options opt = {.time_column = "date", .value_columns = cols, .n_value_columns = 7};
    csv_series s;
    int rc = read_real("ETTh1.csv", &opt, &s);
    if (!tap_check(rc == 0, "ETTh1.csv by date, 7 value columns (%s)", err))
        return;
    size_t n = s.length;
    tap_check(s.n_variates == 7 && n == 17420 && s.n_filled == 0 && s.interval_s == 3600 &&
                  s.values[0] == 5.827000141143799 && s.values[6 * n] == 30.5310001373291 &&
                  s.values[6 * n + n - 1] == 9.56700038909912 &&
                  s.values[2 * n + n - 3] == -0.8169999718666077 &&
                  strcmp(s.variate_names[6], "OT") == 0 &&
                  strcmp(time_text(&s, n - 1), "2018-06-26 19:00:00") == 0,
              "17420 hourly steps x 7 variates laid out [variate][time]");
    csv_series_free(&s);
}

/* Lines 4831..10128 of the Binance files are two exports overlapping: each
 * hour twice, once with a millisecond epoch and once with "...0" seconds. */
static void test_btc_duplicates(void) {
    static const char *close[] = {"close"};
    csv_series_options opt = {.time_column = "unix", .value_columns = close, .n_value_columns = 1};
    csv_series s;
    int rc = read_real("Binance_BTCUSDT_1h.csv", &opt, &s);
    tap_check(rc == -1 && strstr(err, "Binance_BTCUSDT_1h.csv:10128: duplicate time "
                                      "2020-08-01 23:00:00 (also at line 10127)"),
              "BTC's overlapping exports are an error by default: %s", err);
}

static void test_btc_date_vs_unix(void) {
    static const char *cols[] = {"open", "close", "tradecount"};
    csv_series_options opt = {.time_column = "unix",
                              .value_columns = cols,
                              .n_value_columns = 3,
                              .duplicates = CSV_DUPLICATES_FIRST};
    csv_series by_unix, by_date;
    int rc = read_real("Binance_BTCUSDT_1h.csv", &opt, &by_unix);
    if (!tap_check(rc == 0, "BTC by `unix` (ms and s epochs), duplicates 'first' (%s)", err))
        return;
    size_t n = by_unix.length;
    tap_check(n == 33429 && by_unix.n_rows == 36062 && by_unix.n_duplicates == 2649 &&
                  by_unix.n_filled == 16 && by_unix.interval_s == 3600 &&
                  strcmp(time_text(&by_unix, 0), "2017-08-17 04:00:00") == 0 &&
                  strcmp(time_text(&by_unix, n - 1), "2021-06-10 00:00:00") == 0 &&
                  by_unix.values[n] == 4308.83 && by_unix.values[n + n - 1] == 37584.76 &&
                  isnan(by_unix.values[2 * n]) && by_unix.values[3 * n - 1] == 10796,
              "oldest first: 2017-08-17 04:00 (epoch 1502942400.0) to 2021-06-10 (1623283200000), "
              "%zu duplicates dropped, %zu hours filled",
              by_unix.n_duplicates, by_unix.n_filled);
    opt.time_column = "date";
    rc = read_real("Binance_BTCUSDT_1h.csv", &opt, &by_date);
    if (!tap_check(rc == 0, "BTC by `date` (ISO and '05-AM' forms) (%s)", err)) {
        csv_series_free(&by_unix);
        return;
    }
    /* The file's `date` disagrees with its `unix` on 91 rows, 2017-09-22 20:00
     * to 09-26 14:00 (date 4 h behind): only there may the two differ. */
    int64_t from = 1506110400 /* 2017-09-22 20:00 */, to = 1506448800 + 4 * 3600;
    size_t differ = 0, differ_outside = 0;
    bool same_times = by_date.length == n && by_date.n_filled == by_unix.n_filled;
    for (size_t i = 0; same_times && i < n; i++) {
        same_times = by_date.times[i] == by_unix.times[i];
        bool eq = true;
        for (size_t v = 0; v < 3; v++)
            eq = eq && same(by_date.values[v * n + i], by_unix.values[v * n + i]);
        differ += !eq;
        differ_outside += !eq && (by_unix.times[i] < from || by_unix.times[i] > to);
    }
    tap_check(same_times && differ > 0 && differ_outside == 0,
              "by date and by unix: the same grid and values, except %zu steps in the file's "
              "2017-09-22..26 stretch where its date column is 4 h off (%zu outside)",
              differ, differ_outside);
    csv_series_free(&by_unix);
    csv_series_free(&by_date);
}

static void test_eth(void) {
    static const char *cols[] = {"Volume USDT"};
    csv_series_options opt = {.time_column = "unix",
                              .value_columns = cols,
                              .n_value_columns = 1,
                              .duplicates = CSV_DUPLICATES_LAST,
                              .last = 24 * 365 * 3};
    csv_series s;
    int rc = read_real("Binance_ETHUSDT_1h.csv", &opt, &s);
    size_t nans = 0;
    for (size_t i = 0; rc == 0 && i < s.length; i++)
        nans += isnan(s.values[i]);
    tap_check(rc == 0 && s.length == 24 * 365 * 3 && s.n_duplicates == 2649 && nans >= 1,
              "ETH, duplicates 'last', last 3 years: %zu steps, %zu missing (its 'nan' among "
              "them) (%s)",
              s.length, nans, err);
    csv_series_free(&s);
}

int main(void) {
    test_timestamps();
    test_sorted_and_filled();
    test_missing_markers();
    test_malformed_rows();
    test_duplicates();
    test_grid();
    test_columns();
    test_quotes_crlf_blank();
    test_last_and_no_time();
    test_options_checked();
    test_aapl();
    test_etth1();
    test_btc_duplicates();
    test_btc_date_vs_unix();
    test_eth();
    return tap_done();
}
