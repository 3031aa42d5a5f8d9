/*
 * plot_png.h - a forecast chart as a PNG file, with no library: the
 * context (what the model saw), a dashed line at the forecast origin, the
 * forecast's band (e.g. its 10-90% quantiles) as a translucent area, its
 * median, and optionally the values that really came. Several variates are
 * stacked top to bottom as panels sharing one x axis (one step a sample);
 * each panel has its own y axis with five labelled ticks, min to max.
 * The x axis is labelled with texts the caller formats (times, say).
 */
#ifndef TOTO_PLOT_PNG_H
#define TOTO_PLOT_PNG_H

#include <stddef.h>
#include <stdint.h>

/* The chart's colours (0xRRGGBB), public so tests and docs can name them.
 * The band is blended over what is below it with alpha PLOT_BAND_ALPHA/256:
 * channel = (below * (256 - alpha) + band * alpha + 128) / 256. */
#define PLOT_COLOR_BACKGROUND 0xFFFFFFu
#define PLOT_COLOR_GRID       0xE8E8E8u
#define PLOT_COLOR_AXIS       0x404040u
#define PLOT_COLOR_TEXT       0x202020u
#define PLOT_COLOR_ORIGIN     0x909090u
#define PLOT_COLOR_CONTEXT    0x2B4C7Eu
#define PLOT_COLOR_MEDIAN     0xD9480Fu
#define PLOT_COLOR_BAND       0xF59F00u
#define PLOT_BAND_ALPHA       90
#define PLOT_COLOR_ACTUAL     0x000000u

/* One variate. NaN in any array is a missing value: lines break there. */
typedef struct plot_panel {
    const char *label;        /* drawn at the panel's top left; may be NULL */
    const double *context;    /* [context_len] */
    const double *median;     /* [horizon] */
    const double *low, *high; /* [horizon] each, the band; both NULL: no band */
    const double *actual;     /* [horizon] or NULL: drawn as black dots */
} plot_panel;

typedef struct plot_spec {
    const char *title;        /* at the top of the image; may be NULL */
    size_t context_len;       /* steps before the origin (at least 1) */
    size_t horizon;           /* forecast steps after it (at least 1) */
    const plot_panel *panels; /* [n_panels], stacked top to bottom */
    size_t n_panels;
    /* Under the x axis, at the first context step, the last context step
     * (the origin) and the last forecast step; each may be NULL. */
    const char *x_label_first, *x_label_origin, *x_label_last;
    /* 0: 960 wide; 480 high for one panel, 260 more for each further one */
    uint32_t width, height;
} plot_spec;

/* Draws the chart into a malloc'd PNG (*png, *png_len; the caller frees).
 * Returns 0, or -1 with a message in err. */
int plot_png_encode(const plot_spec *spec, uint8_t **png, size_t *png_len, char *err,
                    size_t errlen);

/* The same, written to the file at path. */
int plot_png_write(const char *path, const plot_spec *spec, char *err, size_t errlen);

#endif
