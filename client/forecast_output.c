/* forecast_output.c - table, CSV and JSON output of `toto forecast` (forecast_output.h). */
#include "forecast_output.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "csv_series.h"

int forecast_format_parse(const char *name, forecast_format *out) {
    static const char *const names[] = {"table", "csv", "json"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, names[i])) {
            *out = (forecast_format)i;
            return 0;
        }
    return -1;
}

/* Step t's label: its time, or its index counted from 1 after the context. */
static void step_label(const forecast_axis *axis, int t, char *buf, size_t len) {
    if (axis->has_times)
        csv_series_format_time(axis->origin + (int64_t)(t + 1) * axis->interval_s, axis->interval_s,
                               buf, len);
    else
        snprintf(buf, len, "+%d", t + 1);
}

/* The statistics of one row, in the column order of the header. */
static int row_values(const toto_client_forecast_result *r, const forecast_axis *axis, int v, int t,
                      double *out) {
    const int h = r->prediction_length, V = r->n_variates;
    int n = 0;
    out[n++] = r->mean[v * h + t];
    if (r->median)
        out[n++] = r->median[v * h + t];
    for (int l = 0; l < r->n_levels; l++)
        out[n++] = r->quantiles[(l * V + v) * h + t];
    if (axis->actual)
        out[n++] = axis->actual[v * h + t];
    return n;
}

/* The column names after time and variate. */
static int header_names(const toto_client_forecast_result *r, const forecast_axis *axis,
                        char names[][24]) {
    int n = 0;
    snprintf(names[n++], 24, "mean");
    if (r->median)
        snprintf(names[n++], 24, "median");
    for (int l = 0; l < r->n_levels; l++)
        snprintf(names[n++], 24, "q%g", r->levels[l]);
    if (axis->actual)
        snprintf(names[n++], 24, "actual");
    return n;
}

static int write_rows(FILE *f, int csv, const toto_client_forecast_result *r,
                      const forecast_axis *axis) {
    char names[104][24], when[40];
    double vals[104];
    int nc = header_names(r, axis, names);
    const char *sep = csv ? "," : "  ";
    fprintf(f, csv ? "%s,%s" : "%-19s  %-12s", axis->has_times ? "time" : "step", "variate");
    for (int c = 0; c < nc; c++)
        fprintf(f, csv ? "%s%s" : "%s%14s", sep, names[c]);
    fputc('\n', f);
    for (int t = 0; t < r->prediction_length; t++)
        for (int v = 0; v < r->n_variates; v++) {
            step_label(axis, t, when, sizeof when);
            fprintf(f, csv ? "%s,%s" : "%-19s  %-12s", when, axis->variate_names[v]);
            row_values(r, axis, v, t, vals);
            for (int c = 0; c < nc; c++)
                fprintf(f, csv ? "%s%.17g" : "%s%14.6g", sep, vals[c]);
            fputc('\n', f);
        }
    return ferror(f) ? -1 : 0;
}

/* [V][h] of a flat array, NaN as null. */
static json_t *matrix(const double *a, int V, int h) {
    json_t *rows = json_array();
    for (int v = 0; v < V; v++) {
        json_t *row = json_array();
        for (int t = 0; t < h; t++) {
            double x = a[v * h + t];
            json_array_append_new(row, isfinite(x) ? json_real(x) : json_null());
        }
        json_array_append_new(rows, row);
    }
    return rows;
}

static int write_json(FILE *f, const toto_client_forecast_result *r, const forecast_axis *axis) {
    const int V = r->n_variates, h = r->prediction_length;
    json_t *o = json_object(), *names = json_array(), *times = json_array();
    for (int v = 0; v < V; v++)
        json_array_append_new(names, json_string(axis->variate_names[v]));
    char when[40];
    for (int t = 0; axis->has_times && t < h; t++) {
        step_label(axis, t, when, sizeof when);
        json_array_append_new(times, json_string(when));
    }
    json_object_set_new(o, "variates", names);
    json_object_set_new(o, "times", axis->has_times ? times : (json_decref(times), json_null()));
    json_object_set_new(o, "mean", matrix(r->mean, V, h));
    json_object_set_new(o, "median", r->median ? matrix(r->median, V, h) : json_null());
    if (r->n_levels > 0) {
        json_t *levels = json_array(), *values = json_array();
        for (int l = 0; l < r->n_levels; l++) {
            json_array_append_new(levels, json_real(r->levels[l]));
            json_array_append_new(values, matrix(r->quantiles + (size_t)l * V * h, V, h));
        }
        json_object_set_new(o, "quantiles",
                            json_pack("{s:o, s:o}", "levels", levels, "values", values));
    }
    if (axis->actual)
        json_object_set_new(o, "actual", matrix(axis->actual, V, h));
    json_object_set_new(o, "model",
                        json_pack("{s:s?, s:s?, s:f}", "path", r->model_path, "device",
                                  r->model_device, "model_ms", r->model_ms));
    int rc =
        json_dumpf(o, f, JSON_INDENT(2) | JSON_REAL_PRECISION(17)) == 0 && fputc('\n', f) != EOF
            ? 0
            : -1;
    json_decref(o);
    return rc;
}

int forecast_output_write(FILE *f, forecast_format format, const toto_client_forecast_result *r,
                          const forecast_axis *axis) {
    if (format == FORECAST_JSON)
        return write_json(f, r, axis);
    return write_rows(f, format == FORECAST_CSV, r, axis);
}
