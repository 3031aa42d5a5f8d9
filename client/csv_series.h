/*
 * csv_series.h - one time series (one or more variates) read from a CSV
 * file, a stream or a buffer, for `toto forecast`: a header row names the
 * columns; one column holds the time, the chosen value columns become the
 * variates. Rows may come in any order; they come out sorted by time on a
 * regular grid, missing steps filled with NaN. Nothing is guessed silently:
 * a row that does not parse is an error naming its line, column and text
 * (or, when the caller asks, skipped with a warning). docs/csv-input.md is
 * the user's view of the same rules.
 */
#ifndef TOTO_CSV_SERIES_H
#define TOTO_CSV_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What to do with two rows at the same time. */
typedef enum csv_duplicates {
    CSV_DUPLICATES_ERROR = 0, /* fail, naming both lines (the default) */
    CSV_DUPLICATES_FIRST,     /* keep the row nearest the top of the file */
    CSV_DUPLICATES_LAST,      /* keep the row nearest the bottom */
} csv_duplicates;

/* Zero-initialised options are the defaults, apart from the columns. */
typedef struct csv_series_options {
    const char *time_column;          /* header name; NULL: no time column, one step a row */
    const char *const *value_columns; /* header names, one variate each */
    size_t n_value_columns;           /* at least 1 */
    int64_t interval_s;               /* grid step in seconds; 0: the most common difference */
    char delimiter;                   /* 0: ',' */
    bool keep_gaps;                   /* false: fill missing grid steps with NaN */
    bool skip_malformed;              /* true: skip bad rows, each one a warning */
    csv_duplicates duplicates;        /* rows at the same time (dropped ones are warnings) */
    size_t last;                      /* keep only the most recent N steps; 0: all */
} csv_series_options;

typedef struct csv_series_warning {
    size_t line;   /* 1-based line of the file, the header being line 1 */
    char *message; /* "data.csv:12: column 'close': not a number: 'abc' (row skipped)" */
} csv_series_warning;

typedef struct csv_series {
    size_t n_variates;
    size_t length;        /* steps */
    double *values;       /* [n_variates][length], NaN = missing */
    int64_t *times;       /* [length], seconds since the epoch, UTC; NULL without a time column */
    int64_t interval_s;   /* grid step; 0 without a time column or with fewer than 2 times */
    char **variate_names; /* [n_variates], the value column names */
    size_t n_rows;        /* data rows read (skipped and duplicate rows included) */
    size_t n_filled;      /* grid steps added as NaN (within the kept range) */
    size_t n_skipped;     /* malformed or off-grid rows skipped (skip_malformed) */
    size_t n_duplicates;  /* rows dropped as duplicates */
    csv_series_warning *warnings;
    size_t n_warnings;
} csv_series;

/* Reads a whole CSV file ("-" is standard input). On success returns 0 and
 * fills *out, to be released with csv_series_free. On failure returns -1
 * with a message in err ("data.csv:7: column 'close': not a number: 'x'")
 * and *out empty (csv_series_free on it is harmless). */
int csv_series_read_file(const char *path, const csv_series_options *opt, csv_series *out,
                         char *err, size_t errlen);

/* The same from an open stream, read to its end; name is used in messages. */
int csv_series_read_stream(FILE *in, const char *name, const csv_series_options *opt,
                           csv_series *out, char *err, size_t errlen);

/* The same from len bytes of memory (need not be NUL-terminated). */
int csv_series_read_buffer(const char *data, size_t len, const char *name,
                           const csv_series_options *opt, csv_series *out, char *err,
                           size_t errlen);

void csv_series_free(csv_series *s);

/* Formats time t of a series with this interval as ISO 8601 (UTC):
 * "2018-03-27" when the interval is a whole number of days and t is at
 * midnight, else "2018-03-27 14:00:00". Returns what snprintf returns. */
int csv_series_format_time(int64_t t, int64_t interval_s, char *buf, size_t buflen);

#endif
