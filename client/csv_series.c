/*
 * csv_series.c - CSV rows to a series on a regular time grid. The steps,
 * in order: header and columns, rows parsed (or rejected), rows sorted by
 * time, duplicates resolved, the interval and the grid's phase found, rows
 * off the grid rejected, the last N steps laid out with gaps filled.
 */
#include "csv_series.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv_record.h"
#include "csv_time.h"

#define NO_COLUMN SIZE_MAX
/* Filling a gap of years at a one-second interval would eat the machine:
 * a series this long is a mistake in the input, not a context. */
#define MAX_STEPS      ((size_t)100 * 1000 * 1000)
#define MAX_SHOWN_TEXT 40 /* of a bad field, in messages */

typedef struct parsed_row {
    int64_t t;
    size_t line;
    size_t slot; /* where its values are in reading.row_values */
} parsed_row;

/* Everything one read holds until the series is handed out. */
typedef struct reading {
    const char *name;
    const csv_series_options *opt;
    csv_reader reader;
    size_t n_header;
    size_t time_col; /* NO_COLUMN without one */
    size_t *value_cols;
    parsed_row *rows;
    size_t n_rows, rows_cap;
    double *row_values; /* [slot][n_variates] */
    csv_series *out;
    char *err;
    size_t errlen;
} reading;

static void reading_free(reading *rd) {
    csv_reader_free(&rd->reader);
    free(rd->value_cols);
    free(rd->rows);
    free(rd->row_values);
}

static int fail(reading *rd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rd->err, rd->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int add_warning(csv_series *s, size_t line, const char *message) {
    csv_series_warning *w = realloc(s->warnings, (s->n_warnings + 1) * sizeof *w);
    if (!w)
        return -1;
    s->warnings = w;
    w[s->n_warnings].line = line;
    w[s->n_warnings].message = strdup(message);
    if (!w[s->n_warnings].message)
        return -1;
    s->n_warnings++;
    return 0;
}

/* A row that cannot be used: the error, or (skip_malformed) a warning.
 * Returns 0 when the row is to be skipped, -1 to stop. */
static int reject_row(reading *rd, size_t line, const char *fmt, ...) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "%s:%zu: ", rd->name, line);
    if (n < 0 || (size_t)n >= sizeof msg) /* a long name (a path): the rest is cut */
        n = n < 0 ? 0 : (int)sizeof msg - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (!rd->opt->skip_malformed)
        return fail(rd, "%s", msg);
    size_t len = strlen(msg);
    snprintf(msg + len, sizeof msg - len, " (row skipped)");
    rd->out->n_skipped++;
    if (add_warning(rd->out, line, msg))
        return fail(rd, "out of memory");
    return 0;
}

/* ---- header ---------------------------------------------------------- */

static int no_such_column(reading *rd, const char *wanted, char **names, size_t n) {
    int len = snprintf(rd->err, rd->errlen,
                       "%s: no column '%s' in the header; the columns are: ", rd->name, wanted);
    for (size_t i = 0; i < n && len >= 0 && (size_t)len < rd->errlen; i++)
        len += snprintf(rd->err + len, rd->errlen - (size_t)len, "%s'%s'", i ? ", " : "", names[i]);
    return -1;
}

static int find_column(reading *rd, const char *wanted, char **names, size_t n, size_t *col) {
    *col = NO_COLUMN;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], wanted) != 0)
            continue;
        if (*col != NO_COLUMN)
            return fail(rd, "%s: column '%s' appears twice in the header (columns %zu and %zu)",
                        rd->name, wanted, *col + 1, i + 1);
        *col = i;
    }
    return *col == NO_COLUMN ? no_such_column(rd, wanted, names, n) : 0;
}

static int read_header(reading *rd) {
    const csv_series_options *opt = rd->opt;
    size_t line;
    int got = csv_reader_next(&rd->reader, &line, rd->err, rd->errlen);
    if (got < 0)
        return -1;
    if (got == 0)
        return fail(rd, "%s: empty input: no header row", rd->name);
    char **names = rd->reader.fields;
    rd->n_header = rd->reader.n_fields;
    rd->time_col = NO_COLUMN;
    if (opt->time_column && find_column(rd, opt->time_column, names, rd->n_header, &rd->time_col))
        return -1;
    rd->value_cols = calloc(opt->n_value_columns, sizeof *rd->value_cols);
    if (!rd->value_cols)
        return fail(rd, "out of memory");
    for (size_t v = 0; v < opt->n_value_columns; v++)
        if (find_column(rd, opt->value_columns[v], names, rd->n_header, &rd->value_cols[v]))
            return -1;
    return 0;
}

/* ---- rows ------------------------------------------------------------ */

static bool is_missing(const char *s) {
    return *s == '\0' || strcasecmp(s, "nan") == 0 || strcasecmp(s, "null") == 0 ||
           strcasecmp(s, "na") == 0;
}

/* A plain decimal: [+-] digits [. digits] [e [+-] digits]. strtod alone
 * would also take hex, "inf" and "nan(...)". */
static bool is_decimal(const char *s) {
    size_t digits = 0;
    if (*s == '+' || *s == '-')
        s++;
    for (; *s >= '0' && *s <= '9'; s++)
        digits++;
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++)
            digits++;
    if (digits == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* Blanks around a field are the writer's formatting, not data. */
static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* 1 parsed, 0 not a number. */
static int parse_value(char *text, double *v) {
    text = trim(text);
    if (is_missing(text)) {
        *v = NAN;
        return 1;
    }
    if (!is_decimal(text))
        return 0;
    *v = strtod(text, NULL);
    return isfinite(*v) ? 1 : 0; /* 1e999: out of range is not a value */
}

static int grow_rows(reading *rd) {
    if (rd->n_rows < rd->rows_cap)
        return 0;
    size_t cap = rd->rows_cap ? rd->rows_cap * 2 : 1024;
    size_t nv = rd->opt->n_value_columns;
    parsed_row *rows = realloc(rd->rows, cap * sizeof *rows);
    if (!rows)
        return -1;
    rd->rows = rows;
    double *vals = realloc(rd->row_values, cap * nv * sizeof *vals);
    if (!vals)
        return -1;
    rd->row_values = vals;
    rd->rows_cap = cap;
    return 0;
}

/* Parses one record into the next row; 0 also when the row was skipped. */
static int parse_row(reading *rd, size_t line) {
    char **f = rd->reader.fields;
    const csv_series_options *opt = rd->opt;
    if (rd->reader.n_fields != rd->n_header)
        return reject_row(rd, line, "%zu fields where the header has %zu", rd->reader.n_fields,
                          rd->n_header);
    if (grow_rows(rd))
        return fail(rd, "out of memory");
    parsed_row *row = &rd->rows[rd->n_rows];
    row->line = line;
    row->slot = rd->n_rows;
    row->t = 0;
    if (rd->time_col != NO_COLUMN && csv_time_parse(f[rd->time_col], &row->t))
        return reject_row(rd, line, "column '%s': not a timestamp: '%.*s'", opt->time_column,
                          MAX_SHOWN_TEXT, f[rd->time_col]);
    double *vals = rd->row_values + row->slot * opt->n_value_columns;
    for (size_t v = 0; v < opt->n_value_columns; v++)
        if (!parse_value(f[rd->value_cols[v]], &vals[v]))
            return reject_row(rd, line, "column '%s': not a number: '%.*s'", opt->value_columns[v],
                              MAX_SHOWN_TEXT, f[rd->value_cols[v]]);
    rd->n_rows++;
    return 0;
}

static int read_rows(reading *rd) {
    size_t line;
    int got;
    while ((got = csv_reader_next(&rd->reader, &line, rd->err, rd->errlen)) == 1) {
        rd->out->n_rows++;
        if (parse_row(rd, line))
            return -1;
    }
    if (got < 0) {
        /* The tokenizer's message has the line but not the input's name. */
        char msg[512];
        snprintf(msg, sizeof msg, "%s: %s", rd->name, rd->err);
        return fail(rd, "%s", msg);
    }
    if (rd->n_rows == 0)
        return fail(rd, "%s: no data rows%s", rd->name,
                    rd->out->n_rows ? " left after skipping malformed ones" : " after the header");
    return 0;
}

/* ---- time order and duplicates --------------------------------------- */

static int by_time_then_line(const void *a, const void *b) {
    const parsed_row *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int drop_duplicate(reading *rd, const parsed_row *dropped, const parsed_row *kept) {
    char when[32], msg[256];
    csv_time_format(dropped->t, false, when, sizeof when);
    snprintf(msg, sizeof msg, "%s:%zu: duplicate time %s (also at line %zu); kept line %zu",
             rd->name, dropped->line, when, kept->line, kept->line);
    rd->out->n_duplicates++;
    return add_warning(rd->out, dropped->line, msg) ? fail(rd, "out of memory") : 0;
}

/* Rows are sorted by (time, line): equal times are adjacent, the top
 * of the file first. */
static int resolve_duplicates(reading *rd) {
    size_t kept = 0;
    for (size_t i = 0; i < rd->n_rows; i++) {
        parsed_row *row = &rd->rows[i];
        if (kept == 0 || rd->rows[kept - 1].t != row->t) {
            rd->rows[kept++] = *row;
            continue;
        }
        parsed_row *prev = &rd->rows[kept - 1];
        if (rd->opt->duplicates == CSV_DUPLICATES_ERROR) {
            char when[32];
            csv_time_format(row->t, false, when, sizeof when);
            return fail(rd, "%s:%zu: duplicate time %s (also at line %zu)", rd->name, row->line,
                        when, prev->line);
        }
        if (rd->opt->duplicates == CSV_DUPLICATES_FIRST) {
            if (drop_duplicate(rd, row, prev))
                return -1;
        } else {
            parsed_row later = *row;
            if (drop_duplicate(rd, prev, &later))
                return -1;
            *prev = later;
        }
    }
    rd->n_rows = kept;
    return 0;
}

/* ---- the grid -------------------------------------------------------- */

static int by_value(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The most common value of v[0..n) (n > 0; sorts v); ties go to the smallest. */
static int64_t most_common(int64_t *v, size_t n) {
    qsort(v, n, sizeof *v, by_value);
    int64_t best = v[0];
    size_t best_run = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j] == v[i])
            j++;
        if (j - i > best_run) {
            best = v[i];
            best_run = j - i;
        }
        i = j;
    }
    return best;
}

/* The interval (given, or the most common difference of sorted times) and
 * the phase (time modulo interval) most rows share, so that one stray row
 * is reported rather than every row but it. */
static int find_grid(reading *rd, int64_t *interval, int64_t *phase) {
    size_t n = rd->n_rows;
    *interval = rd->opt->interval_s;
    *phase = 0;
    if (n < 2 && *interval == 0)
        return 0;
    int64_t *scratch = malloc(n * sizeof *scratch);
    if (!scratch)
        return fail(rd, "out of memory");
    if (*interval == 0) {
        for (size_t i = 1; i < n; i++)
            scratch[i - 1] = rd->rows[i].t - rd->rows[i - 1].t;
        *interval = most_common(scratch, n - 1);
    }
    for (size_t i = 0; i < n; i++)
        scratch[i] = ((rd->rows[i].t % *interval) + *interval) % *interval;
    *phase = most_common(scratch, n);
    free(scratch);
    return 0;
}

static int reject_off_grid(reading *rd, int64_t interval, int64_t phase) {
    size_t kept = 0;
    for (size_t i = 0; i < rd->n_rows; i++) {
        parsed_row *row = &rd->rows[i];
        if (((row->t % interval) + interval) % interval == phase) {
            rd->rows[kept++] = *row;
            continue;
        }
        char when[32], on_grid[32];
        csv_time_format(row->t, false, when, sizeof when);
        int64_t near = row->t - (((row->t - phase) % interval) + interval) % interval;
        csv_time_format(near, false, on_grid, sizeof on_grid);
        if (reject_row(rd, row->line,
                       "time %s is off the grid of the other rows (every %lld s, as %s)", when,
                       (long long)interval, on_grid))
            return -1;
    }
    rd->n_rows = kept;
    if (kept == 0)
        return fail(rd, "%s: no rows left on the grid", rd->name);
    return 0;
}

/* ---- the series ------------------------------------------------------ */

static int alloc_series(reading *rd, size_t length, bool with_times) {
    csv_series *s = rd->out;
    size_t nv = rd->opt->n_value_columns;
    s->n_variates = nv;
    s->length = length;
    s->values = malloc((nv * length > 0 ? nv * length : 1) * sizeof *s->values);
    s->times = with_times ? malloc((length ? length : 1) * sizeof *s->times) : NULL;
    s->variate_names = calloc(nv, sizeof *s->variate_names);
    if (!s->values || (with_times && !s->times) || !s->variate_names)
        return fail(rd, "out of memory");
    for (size_t v = 0; v < nv; v++)
        if (!(s->variate_names[v] = strdup(rd->opt->value_columns[v])))
            return fail(rd, "out of memory");
    for (size_t i = 0; i < nv * length; i++)
        s->values[i] = NAN;
    return 0;
}

static void put_row(reading *rd, const parsed_row *row, size_t step) {
    csv_series *s = rd->out;
    const double *vals = rd->row_values + row->slot * s->n_variates;
    for (size_t v = 0; v < s->n_variates; v++)
        s->values[v * s->length + step] = vals[v];
}

/* One step a row (no time column, or gaps kept), the last N rows. */
static int lay_out_rows(reading *rd, bool with_times) {
    size_t first = rd->opt->last && rd->n_rows > rd->opt->last ? rd->n_rows - rd->opt->last : 0;
    if (alloc_series(rd, rd->n_rows - first, with_times))
        return -1;
    for (size_t i = first; i < rd->n_rows; i++) {
        put_row(rd, &rd->rows[i], i - first);
        if (with_times)
            rd->out->times[i - first] = rd->rows[i].t;
    }
    return 0;
}

/* Every grid step from the first row to the last (the last N of them),
 * NaN where no row is. */
static int lay_out_grid(reading *rd, int64_t interval) {
    int64_t t0 = rd->rows[0].t, t1 = rd->rows[rd->n_rows - 1].t;
    uint64_t steps = (uint64_t)((t1 - t0) / interval) + 1;
    uint64_t skip = rd->opt->last && steps > rd->opt->last ? steps - rd->opt->last : 0;
    if (steps - skip > MAX_STEPS)
        return fail(rd,
                    "%s: %llu steps of %lld s from the first row to the last: too many "
                    "(a gap in the times? use the last-N limit)",
                    rd->name, (unsigned long long)steps, (long long)interval);
    size_t length = (size_t)(steps - skip);
    if (alloc_series(rd, length, true))
        return -1;
    int64_t start = t0 + (int64_t)skip * interval;
    for (size_t k = 0; k < length; k++)
        rd->out->times[k] = start + (int64_t)k * interval;
    size_t placed = 0;
    for (size_t i = 0; i < rd->n_rows; i++) {
        if (rd->rows[i].t < start)
            continue;
        put_row(rd, &rd->rows[i], (size_t)((rd->rows[i].t - start) / interval));
        placed++;
    }
    rd->out->n_filled = length - placed;
    return 0;
}

static int build_timed(reading *rd) {
    qsort(rd->rows, rd->n_rows, sizeof *rd->rows, by_time_then_line);
    if (resolve_duplicates(rd))
        return -1;
    int64_t interval, phase;
    if (find_grid(rd, &interval, &phase))
        return -1;
    rd->out->interval_s = interval;
    if (interval > 0 && reject_off_grid(rd, interval, phase))
        return -1;
    if (rd->opt->keep_gaps || interval == 0)
        return lay_out_rows(rd, true);
    return lay_out_grid(rd, interval);
}

/* ---- entry points ---------------------------------------------------- */

static int check_options(const csv_series_options *opt, char *err, size_t errlen) {
    if (!opt || !opt->value_columns || opt->n_value_columns == 0) {
        snprintf(err, errlen, "no value column given");
        return -1;
    }
    for (size_t v = 0; v < opt->n_value_columns; v++)
        if (!opt->value_columns[v]) {
            snprintf(err, errlen, "value column %zu has no name", v + 1);
            return -1;
        }
    if (opt->interval_s < 0) {
        snprintf(err, errlen, "negative interval %lld s", (long long)opt->interval_s);
        return -1;
    }
    if (opt->delimiter == '"' || opt->delimiter == '\n' || opt->delimiter == '\r') {
        snprintf(err, errlen, "a quote or a line end cannot be the delimiter");
        return -1;
    }
    return 0;
}

int csv_series_read_buffer(const char *data, size_t len, const char *name,
                           const csv_series_options *opt, csv_series *out, char *err,
                           size_t errlen) {
    memset(out, 0, sizeof *out);
    if (check_options(opt, err, errlen))
        return -1;
    reading rd = {
        .name = name ? name : "<input>", .opt = opt, .out = out, .err = err, .errlen = errlen};
    csv_reader_init(&rd.reader, data, len, opt->delimiter ? opt->delimiter : ',');
    int rc = read_header(&rd);
    if (rc == 0)
        rc = read_rows(&rd);
    if (rc == 0)
        rc = rd.time_col == NO_COLUMN ? lay_out_rows(&rd, false) : build_timed(&rd);
    reading_free(&rd);
    if (rc)
        csv_series_free(out);
    return rc;
}

static char *read_all(FILE *in, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, in);
        if (n < cap)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger)
            free(buf);
        buf = bigger;
        cap *= 2;
    }
    *len = n;
    return buf;
}

int csv_series_read_stream(FILE *in, const char *name, const csv_series_options *opt,
                           csv_series *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *data = read_all(in, &len);
    if (!data) {
        snprintf(err, errlen, "%s: out of memory", name ? name : "<input>");
        return -1;
    }
    if (ferror(in)) {
        snprintf(err, errlen, "%s: read error: %s", name ? name : "<input>", strerror(errno));
        free(data);
        return -1;
    }
    int rc = csv_series_read_buffer(data, len, name, opt, out, err, errlen);
    free(data);
    return rc;
}

int csv_series_read_file(const char *path, const csv_series_options *opt, csv_series *out,
                         char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (strcmp(path, "-") == 0)
        return csv_series_read_stream(stdin, "<stdin>", opt, out, err, errlen);
    FILE *in = fopen(path, "rb");
    if (!in) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = csv_series_read_stream(in, path, opt, out, err, errlen);
    fclose(in);
    return rc;
}

void csv_series_free(csv_series *s) {
    if (!s)
        return;
    free(s->values);
    free(s->times);
    if (s->variate_names)
        for (size_t v = 0; v < s->n_variates; v++)
            free(s->variate_names[v]);
    free(s->variate_names);
    for (size_t i = 0; i < s->n_warnings; i++)
        free(s->warnings[i].message);
    free(s->warnings);
    memset(s, 0, sizeof *s);
}

int csv_series_format_time(int64_t t, int64_t interval_s, char *buf, size_t buflen) {
    bool whole_days = interval_s > 0 && interval_s % 86400 == 0 && t % 86400 == 0;
    return csv_time_format(t, whole_days, buf, buflen);
}
