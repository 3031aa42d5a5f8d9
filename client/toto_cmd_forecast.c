/*
 * toto_cmd_forecast.c - `toto forecast`: a series from a CSV file (or plain
 * numbers on stdin) to the daemon, and its forecast as a table, CSV or JSON,
 * optionally drawn to a PNG. --holdout N keeps the last N steps out of the
 * context and shows them beside the forecast (and on the plot) as actuals.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli_common.h"
#include "csv_series.h"
#include "forecast_output.h"
#include "plot_png.h"
#include "toto_commands.h"

#define MAX_VALUE_COLUMNS 64
#define MAX_LEVELS        99

typedef struct forecast_options {
    cli_connection conn;
    const char *csv, *time_column, *plot, *series_id;
    const char *value_columns[MAX_VALUE_COLUMNS];
    size_t n_value_columns;
    csv_series_options csv_opt;
    long long context, holdout, horizon, samples, seed;
    bool has_seed, samples_set;
    double levels[MAX_LEVELS];
    int n_levels;
    forecast_format format;
} forecast_options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: toto forecast --horizon H [--csv FILE] [--time-column NAME]\n"
            "                     [--value-column NAME]... [--delimiter C] [--interval 1h]\n"
            "                     [--keep-gaps] [--skip-bad-rows]\n"
            "                     [--duplicates error|first|last]\n"
            "                     [--context N] [--holdout N] [--samples N]\n"
            "                     [--quantiles 0.1,0.5,0.9] [--seed N] [--series-id ID]\n"
            "                     [--output table|csv|json] [--plot FILE.png]\n"
            "                     [--address unix:PATH|tcp:HOST:PORT | --socket PATH]\n"
            "                     [--timeout-ms MS]\n\n"
            "Forecasts H steps after a series. With --csv (FILE, or - for stdin) the series is\n"
            "the --value-column(s) (one variate each) of a CSV file with a header row, sorted\n"
            "by --time-column (rows in any order; missing grid steps become missing values\n"
            "unless --keep-gaps; docs/csv-input.md). Without --csv, stdin holds plain numbers\n"
            "(whitespace or comma separated; nan or empty = missing), oldest first.\n\n"
            "  --time-column N   omitted: the rows are steps in file order\n"
            "  --delimiter C     one character, or tab (default ,)\n"
            "  --interval I      the grid step: seconds, or a number with s, m, h, d\n"
            "                    (default: the most common difference between rows)\n"
            "  --skip-bad-rows   skip malformed rows, each reported on stderr (default: fail\n"
            "                    on the first, naming its line)\n"
            "  --context N       send the last N steps (default 4096)\n"
            "  --holdout N       keep the last N steps out of the context and show them as the\n"
            "                    actual values beside the forecast (--horizon defaults to N)\n"
            "  --samples N       sampled paths (default 0, the mean forecast; 256 when\n"
            "                    quantiles or a plot need them past the first patch)\n"
            "  --quantiles LIST  levels in (0, 1) (default none; 0.1,0.5,0.9 with --plot)\n"
            "  --plot FILE.png   draw the context, the median, the 10-90%% band and the actuals\n\n"
            "Exit status: 0 forecast printed, 1 the daemon or the system failed, 2 bad usage,\n"
            "a malformed input row or a request the daemon refused (the message names it).\n");
}

/* "3600", "90s", "15m", "1h", "1d": seconds, or -1. */
static long long parse_interval(const char *v) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    long long unit = !*end               ? 1
                     : !strcmp(end, "s") ? 1
                     : !strcmp(end, "m") ? 60
                     : !strcmp(end, "h") ? 3600
                     : !strcmp(end, "d") ? 86400
                                         : 0;
    if (errno || end == v || unit == 0 || x < 1 || x > 100LL * 365 * 86400)
        return -1;
    return x * unit;
}

/* "0.1,0.5,0.9" into o->levels; false if malformed or too many. */
static bool parse_levels(const char *v, forecast_options *o) {
    o->n_levels = 0;
    const char *p = v;
    while (*p) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (errno || end == p || o->n_levels == MAX_LEVELS || (*end && *end != ','))
            return false;
        o->levels[o->n_levels++] = x;
        p = *end ? end + 1 : end;
    }
    return o->n_levels > 0;
}

static bool parse_duplicates(const char *v, csv_duplicates *out) {
    if (!strcmp(v, "error"))
        *out = CSV_DUPLICATES_ERROR;
    else if (!strcmp(v, "first"))
        *out = CSV_DUPLICATES_FIRST;
    else if (!strcmp(v, "last"))
        *out = CSV_DUPLICATES_LAST;
    else
        return false;
    return true;
}

/* An option with a text value: 1 taken, 0 not one of them, -1 bad value. */
static int text_option(forecast_options *o, const char *a, const char *v) {
    if (!strcmp(a, "--csv"))
        o->csv = v;
    else if (!strcmp(a, "--time-column"))
        o->time_column = v;
    else if (!strcmp(a, "--value-column")) {
        if (o->n_value_columns == MAX_VALUE_COLUMNS)
            return -1;
        o->value_columns[o->n_value_columns++] = v;
    } else if (!strcmp(a, "--plot"))
        o->plot = v;
    else if (!strcmp(a, "--series-id"))
        o->series_id = v;
    else if (!strcmp(a, "--output"))
        return forecast_format_parse(v, &o->format) == 0 ? 1 : -1;
    else if (!strcmp(a, "--quantiles"))
        return parse_levels(v, o) ? 1 : -1;
    else if (!strcmp(a, "--duplicates"))
        return parse_duplicates(v, &o->csv_opt.duplicates) ? 1 : -1;
    else if (!strcmp(a, "--delimiter")) {
        if (strlen(v) != 1 && strcmp(v, "tab"))
            return -1;
        o->csv_opt.delimiter = strcmp(v, "tab") ? v[0] : '\t';
    } else if (!strcmp(a, "--interval"))
        return (o->csv_opt.interval_s = parse_interval(v)) > 0 ? 1 : -1;
    else
        return 0;
    return 1;
}

/* An option with a whole-number value: 1 taken, 0 not one of them, -1 out of range. */
static int number_option(forecast_options *o, const char *a, const char *v) {
    struct {
        const char *name;
        long long *to, lo, hi;
    } table[] = {
        {"--context", &o->context, 1, 1000000000}, {"--holdout", &o->holdout, 1, 1000000000},
        {"--horizon", &o->horizon, 1, 1000000000}, {"--samples", &o->samples, 0, 1000000000},
        {"--seed", &o->seed, 0, INT64_MAX},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(a, table[i].name)) {
            if (!cli_parse_int(v, table[i].lo, table[i].hi, table[i].to))
                return -1;
            o->has_seed |= !strcmp(a, "--seed");
            o->samples_set |= !strcmp(a, "--samples");
            return 1;
        }
    return 0;
}

static bool flag_option(forecast_options *o, const char *a) {
    if (!strcmp(a, "--keep-gaps"))
        o->csv_opt.keep_gaps = true;
    else if (!strcmp(a, "--skip-bad-rows"))
        o->csv_opt.skip_malformed = true;
    else
        return false;
    return true;
}

/* 0 parsed, 1 --help printed, 2 bad usage (message printed). */
static int parse_args(int argc, char **argv, forecast_options *o) {
    memset(o, 0, sizeof *o);
    cli_connection_init(&o->conn);
    o->context = 4096;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (flag_option(o, a))
            continue;
        if (!v)
            return cli_missing_value("forecast", a);
        int taken = cli_connection_option(&o->conn, "forecast", a, v);
        if (taken == 0)
            taken = text_option(o, a, v);
        if (taken == 0)
            taken = number_option(o, a, v);
        if (taken <= 0) {
            fprintf(stderr, "toto forecast: %s %s: %s (see toto forecast --help)\n", a, v,
                    taken < 0 ? "bad value" : "unknown option");
            return CLI_EXIT_USAGE;
        }
        i++;
    }
    if (!o->horizon)
        o->horizon = o->holdout;
    if (!o->horizon) {
        fprintf(stderr, "toto forecast: --horizon is required (or --holdout N)\n");
        return CLI_EXIT_USAGE;
    }
    if (o->n_value_columns == 0 && (o->csv || o->time_column)) {
        fprintf(stderr, "toto forecast: --csv needs at least one --value-column\n");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* Appends x to the growing array *a; false when out of memory. */
static bool push_value(double **a, size_t *n, size_t *cap, double x) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        double *b = realloc(*a, c * sizeof *b);
        if (!b)
            return false;
        *a = b;
        *cap = c;
    }
    (*a)[(*n)++] = x;
    return true;
}

/* One token of plain input: a number, or nan/NaN/null/empty for a missing value. */
static bool parse_token(const char *tok, double *out) {
    if (!*tok || !strcasecmp(tok, "nan") || !strcmp(tok, "null")) {
        *out = NAN;
        return true;
    }
    char *end;
    errno = 0;
    *out = strtod(tok, &end);
    return !errno && end != tok && !*end && isfinite(*out);
}

/* Plain numbers on stdin into a one-variate series without a time axis. */
static int read_plain(FILE *in, csv_series *s, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    char *line = NULL;
    size_t linecap = 0, cap = 0, lineno = 0;
    int rc = 0;
    while (rc == 0 && getline(&line, &linecap, in) >= 0) {
        lineno++;
        for (char *save = NULL, *tok = strtok_r(line, " \t\r\n,", &save); tok && rc == 0;
             tok = strtok_r(NULL, " \t\r\n,", &save)) {
            double x;
            if (!parse_token(tok, &x)) {
                snprintf(err, errlen, "stdin:%zu: not a number: '%.40s'", lineno, tok);
                rc = -1;
            } else if (!push_value(&s->values, &s->length, &cap, x)) {
                snprintf(err, errlen, "out of memory");
                rc = -1;
            }
        }
    }
    free(line);
    if (rc == 0 && s->length == 0) {
        snprintf(err, errlen, "stdin: no values (give numbers, or --csv FILE)");
        rc = -1;
    }
    s->n_variates = 1;
    s->variate_names = calloc(1, sizeof *s->variate_names);
    if (rc == 0 && (!s->variate_names || !(s->variate_names[0] = strdup("value")))) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    return rc;
}

static int read_input(forecast_options *o, csv_series *s, char *err, size_t errlen) {
    if (!o->csv && o->n_value_columns == 0)
        return read_plain(stdin, s, err, errlen);
    o->csv_opt.time_column = o->time_column;
    o->csv_opt.value_columns = o->value_columns;
    o->csv_opt.n_value_columns = o->n_value_columns;
    /* Only what is sent (and held out) is laid out: a gap of years in a file
     * of hourly rows must not become a grid of millions of steps. */
    o->csv_opt.last = (size_t)(o->context + o->holdout);
    const char *path = o->csv ? o->csv : "-";
    int rc = csv_series_read_file(path, &o->csv_opt, s, err, errlen);
    /* A file with thousands of duplicate rows should not bury the answer. */
    const size_t shown = s->n_warnings < 10 ? s->n_warnings : 10;
    for (size_t i = 0; rc == 0 && i < shown; i++)
        fprintf(stderr, "toto forecast: warning: %s\n", s->warnings[i].message);
    if (rc == 0 && s->n_warnings > shown)
        fprintf(stderr,
                "toto forecast: warning: ... %zu more (%zu rows skipped, %zu duplicates "
                "dropped in all)\n",
                s->n_warnings - shown, s->n_skipped, s->n_duplicates);
    return rc;
}

/* The context window of s: its steps [start, end), the held-out ones after it. */
typedef struct window {
    size_t start, end;
} window;

static int choose_window(const forecast_options *o, const csv_series *s, window *w) {
    size_t hold = (size_t)o->holdout;
    if (hold >= s->length) {
        fprintf(stderr, "toto forecast: --holdout %zu leaves no context (%zu steps read)\n", hold,
                s->length);
        return -1;
    }
    if (hold && (long long)hold < o->horizon) {
        fprintf(stderr, "toto forecast: --horizon %lld is longer than --holdout %zu\n", o->horizon,
                hold);
        return -1;
    }
    w->end = s->length - hold;
    w->start = w->end > (size_t)o->context ? w->end - (size_t)o->context : 0;
    return 0;
}

/* The held-out values [V * h] beside the forecast, or NULL; NULL also when out of memory. */
static double *held_out(const forecast_options *o, const csv_series *s, const window *w) {
    if (!o->holdout)
        return NULL;
    const size_t h = (size_t)o->horizon;
    double *a = malloc(s->n_variates * h * sizeof *a);
    for (size_t v = 0; a && v < s->n_variates; v++)
        memcpy(a + v * h, s->values + v * s->length + w->end, h * sizeof *a);
    return a;
}

/* The request's values: each variate's window, copied contiguously. */
static double *window_values(const csv_series *s, const window *w) {
    const size_t n = w->end - w->start;
    double *a = malloc(s->n_variates * n * sizeof *a);
    for (size_t v = 0; a && v < s->n_variates; v++)
        memcpy(a + v * n, s->values + v * s->length + w->start, n * sizeof *a);
    return a;
}

/* The level closest to x among r's, or -1. */
static int nearest_level(const toto_client_forecast_result *r, double x) {
    int best = -1;
    for (int l = 0; l < r->n_levels; l++)
        if (best < 0 || fabs(r->levels[l] - x) < fabs(r->levels[best] - x))
            best = l;
    return best;
}

/* --plot: one panel per variate, the last steps of the context (up to 3x the horizon). */
static int draw_plot(const forecast_options *o, const csv_series *s, const window *w,
                     const toto_client_forecast_result *r, const double *actual) {
    const size_t h = (size_t)r->prediction_length, V = s->n_variates;
    size_t shown = w->end - w->start;
    if (shown > 3 * h && 3 * h >= 64)
        shown = 3 * h;
    else if (shown > 64)
        shown = 64 > 3 * h ? 64 : 3 * h;
    const int lo = nearest_level(r, 0.1), hi = nearest_level(r, 0.9);
    plot_panel *panels = calloc(V, sizeof *panels);
    if (!panels)
        return -1;
    for (size_t v = 0; v < V; v++) {
        panels[v].label = s->variate_names[v];
        panels[v].context = s->values + v * s->length + w->end - shown;
        panels[v].median = r->median ? r->median + v * h : r->mean + v * h;
        if (lo >= 0 && hi > lo) {
            panels[v].low = r->quantiles + ((size_t)lo * V + v) * h;
            panels[v].high = r->quantiles + ((size_t)hi * V + v) * h;
        }
        panels[v].actual = actual ? actual + v * h : NULL;
    }
    char first[40] = "", origin[40] = "", last[40] = "", err[256];
    if (s->times) {
        csv_series_format_time(s->times[w->end - shown], s->interval_s, first, sizeof first);
        csv_series_format_time(s->times[w->end - 1], s->interval_s, origin, sizeof origin);
        csv_series_format_time(s->times[w->end - 1] + (int64_t)h * s->interval_s, s->interval_s,
                               last, sizeof last);
    }
    plot_spec spec = {.title = o->csv ? o->csv : "stdin",
                      .context_len = shown,
                      .horizon = h,
                      .panels = panels,
                      .n_panels = V,
                      .x_label_first = s->times ? first : NULL,
                      .x_label_origin = s->times ? origin : NULL,
                      .x_label_last = s->times ? last : NULL};
    int rc = plot_png_write(o->plot, &spec, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "toto forecast: --plot %s: %s\n", o->plot, err);
    free(panels);
    return rc;
}

/* Sends the window of s; prints and plots the answer. The exit status. */
static int forecast_series(forecast_options *o, const csv_series *s, const window *w) {
    static const double kPlotLevels[] = {0.1, 0.5, 0.9};
    if (o->plot && o->n_levels == 0) {
        memcpy(o->levels, kPlotLevels, sizeof kPlotLevels);
        o->n_levels = 3;
    }
    if (!o->samples_set && o->n_levels > 0)
        o->samples = 256; /* quantiles past the first patch come from sampled paths */
    double *values = window_values(s, w), *actual = held_out(o, s, w);
    int rc = CLI_EXIT_FAILED;
    toto_client *client =
        values && (actual || !o->holdout) ? cli_connect(&o->conn, "forecast", &rc) : NULL;
    if (!values || (o->holdout && !actual))
        fprintf(stderr, "toto forecast: out of memory\n");
    if (client) {
        toto_client_forecast_request req = toto_client_forecast_default_request();
        req.values = values;
        req.n_variates = (int)s->n_variates;
        req.length = (int)(w->end - w->start);
        req.prediction_length = (int)o->horizon;
        req.num_samples = (int)o->samples;
        req.quantile_levels = o->n_levels ? o->levels : NULL;
        req.n_quantiles = o->n_levels;
        req.seed = (uint64_t)o->seed;
        req.has_seed = o->has_seed;
        req.series_id = o->series_id;
        toto_client_forecast_result *r = NULL;
        toto_client_error err;
        if (toto_client_forecast(client, &req, &r, &err) != TOTO_CLIENT_OK) {
            cli_print_error("forecast", &err);
            rc = cli_exit_for(&err);
        } else {
            forecast_axis axis = {.has_times = s->times != NULL,
                                  .origin = s->times ? s->times[w->end - 1] : 0,
                                  .interval_s = s->interval_s,
                                  .variate_names = (const char *const *)s->variate_names,
                                  .actual = actual};
            rc = forecast_output_write(stdout, o->format, r, &axis) == 0 ? CLI_EXIT_OK
                                                                         : CLI_EXIT_FAILED;
            if (rc == CLI_EXIT_OK && o->plot && draw_plot(o, s, w, r, actual) != 0)
                rc = CLI_EXIT_FAILED;
        }
        toto_client_forecast_free(r);
        toto_client_free(client);
    }
    free(values);
    free(actual);
    return rc;
}

int toto_forecast_main(int argc, char **argv) {
    forecast_options o;
    int parsed = parse_args(argc, argv, &o);
    if (parsed != 0)
        return parsed == 1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    csv_series s;
    char err[1024];
    if (read_input(&o, &s, err, sizeof err) != 0) {
        fprintf(stderr, "toto forecast: %s\n", err);
        csv_series_free(&s);
        return CLI_EXIT_USAGE;
    }
    window w;
    int rc = choose_window(&o, &s, &w) == 0 ? forecast_series(&o, &s, &w) : CLI_EXIT_USAGE;
    csv_series_free(&s);
    return rc;
}
