/*
 * forecast_output.h - how `toto forecast` prints a forecast: an aligned
 * table, CSV or JSON, one row per (step, variate) with the step's time
 * when the series has a time axis.
 */
#ifndef TOTO_FORECAST_OUTPUT_H
#define TOTO_FORECAST_OUTPUT_H

#include <stdint.h>
#include <stdio.h>

#include "totoclient.h"

typedef enum forecast_format {
    FORECAST_TABLE = 0,
    FORECAST_CSV,
    FORECAST_JSON,
} forecast_format;

/* The forecast's time axis: step t's time is origin + (t + 1) * interval_s. */
typedef struct forecast_axis {
    int has_times;
    int64_t origin, interval_s;       /* the last context step's time, and the grid step */
    const char *const *variate_names; /* [V] */
    const double *actual;             /* [V * h] held-out values, or NULL */
} forecast_axis;

/* Parses "table", "csv" or "json"; -1 if name is none of them. */
int forecast_format_parse(const char *name, forecast_format *out);

/* Writes r to f in format; 0, or -1 if writing failed. */
int forecast_output_write(FILE *f, forecast_format format, const toto_client_forecast_result *r,
                          const forecast_axis *axis);

#endif
