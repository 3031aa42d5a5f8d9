/*
 * plot_png.c - the chart's layout and drawing order: grid, band, origin,
 * context, median, actuals, then axes and text on top. Steps map to x
 * linearly, first context step at the left edge, last forecast step at the
 * right; values map to y over the panel's finite min..max plus 5%.
 */
#include "plot_png.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_canvas.h"
#include "png_write.h"

#define DEFAULT_WIDTH      960
#define DEFAULT_HEIGHT     480 /* one panel */
#define EXTRA_PANEL_HEIGHT 260
#define MARGIN_LEFT        84 /* room for a y label like "-1.23457e+06" */
#define MARGIN_RIGHT       24
#define TITLE_HEIGHT       30
#define PANEL_TOP_PAD      20 /* the panel's label */
#define PANEL_BOTTOM_PAD   12
#define X_LABELS_HEIGHT    30
#define MIN_PLOT_SIDE      40
#define Y_TICKS            5
#define X_TICKS            10

/* Where one panel's plot area is and what it shows. */
typedef struct frame {
    int x0, x1, y0, y1; /* inclusive pixels; y0 is the top */
    size_t steps;       /* context_len + horizon */
    double vmin, vmax;  /* the values at y1 and y0 */
} frame;

static int x_of(const frame *f, double step) {
    return f->x0 + (int)lround(step * (f->x1 - f->x0) / (double)(f->steps - 1));
}

static int y_of(const frame *f, double v) {
    double y = f->y1 - (v - f->vmin) / (f->vmax - f->vmin) * (f->y1 - f->y0);
    return (int)lround(fmin(fmax(y, f->y0), f->y1));
}

static void widen(const double *v, size_t n, double *lo, double *hi) {
    for (size_t i = 0; v && i < n; i++)
        if (isfinite(v[i]))
            *lo = fmin(*lo, v[i]), *hi = fmax(*hi, v[i]);
}

/* The finite range of everything in the panel, 5% more each side; a flat
 * or empty series gets a range around its value so it is still drawn. */
static void value_range(const plot_spec *spec, const plot_panel *p, double *vmin, double *vmax) {
    double lo = INFINITY, hi = -INFINITY;
    widen(p->context, spec->context_len, &lo, &hi);
    widen(p->median, spec->horizon, &lo, &hi);
    widen(p->low, spec->horizon, &lo, &hi);
    widen(p->high, spec->horizon, &lo, &hi);
    widen(p->actual, spec->horizon, &lo, &hi);
    if (lo > hi)
        lo = 0, hi = 1;
    double pad = (hi - lo) * 0.05;
    if (pad == 0)
        pad = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
    *vmin = lo - pad;
    *vmax = hi + pad;
}

/* Segments between neighbouring finite values; a lone value is a dot. */
static void draw_polyline(canvas *c, const frame *f, size_t first_step, const double *v, size_t n,
                          uint32_t color) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            continue;
        int x = x_of(f, (double)(first_step + i)), y = y_of(f, v[i]);
        bool prev = i > 0 && isfinite(v[i - 1]), next = i + 1 < n && isfinite(v[i + 1]);
        if (prev)
            canvas_line(c, x_of(f, (double)(first_step + i - 1)), y_of(f, v[i - 1]), x, y, color);
        else if (!next)
            canvas_dot(c, x, y, 1, color);
    }
}

/* The band's edge at a step: the forecast's low/high, or at the origin the
 * last context value, so the band opens from the last observation. */
static double band_at(const plot_spec *spec, const plot_panel *p, const double *edge, size_t step) {
    if (step < spec->context_len)
        return p->context[spec->context_len - 1];
    return edge[step - spec->context_len];
}

/* Column by column, so each pixel is blended once. */
static void draw_band(canvas *c, const frame *f, const plot_spec *spec, const plot_panel *p) {
    if (!p->low || !p->high)
        return;
    size_t origin = spec->context_len - 1;
    size_t start = isfinite(p->context[origin]) ? origin : origin + 1;
    for (int x = x_of(f, (double)start); x <= f->x1; x++) {
        double s = (double)(x - f->x0) * (double)(f->steps - 1) / (f->x1 - f->x0);
        size_t k = (size_t)s;
        if (k >= f->steps - 1)
            k = f->steps - 2;
        if (k < start)
            k = start;
        double frac = fmin(fmax(s - (double)k, 0), 1);
        if (k + 1 >= f->steps)
            break;
        double lo0 = band_at(spec, p, p->low, k), lo1 = band_at(spec, p, p->low, k + 1);
        double hi0 = band_at(spec, p, p->high, k), hi1 = band_at(spec, p, p->high, k + 1);
        if (!isfinite(lo0) || !isfinite(lo1) || !isfinite(hi0) || !isfinite(hi1))
            continue;
        double lo = lo0 + (lo1 - lo0) * frac, hi = hi0 + (hi1 - hi0) * frac;
        canvas_blend_span(c, x, y_of(f, hi), y_of(f, lo), PLOT_COLOR_BAND, PLOT_BAND_ALPHA);
    }
}

static void draw_forecast(canvas *c, const frame *f, const plot_spec *spec, const plot_panel *p) {
    size_t n = spec->context_len;
    draw_polyline(c, f, 0, p->context, n, PLOT_COLOR_CONTEXT);
    if (isfinite(p->context[n - 1]) && isfinite(p->median[0]))
        canvas_line(c, x_of(f, (double)(n - 1)), y_of(f, p->context[n - 1]), x_of(f, (double)n),
                    y_of(f, p->median[0]), PLOT_COLOR_MEDIAN);
    draw_polyline(c, f, n, p->median, spec->horizon, PLOT_COLOR_MEDIAN);
    for (size_t i = 0; p->actual && i < spec->horizon; i++)
        if (isfinite(p->actual[i]))
            canvas_dot(c, x_of(f, (double)(n + i)), y_of(f, p->actual[i]), 3, PLOT_COLOR_ACTUAL);
}

static void draw_axes(canvas *c, const frame *f) {
    canvas_fill_rect(c, f->x0 - 1, f->y0, f->x0 - 1, f->y1 + 1, PLOT_COLOR_AXIS);
    canvas_fill_rect(c, f->x0 - 1, f->y1 + 1, f->x1, f->y1 + 1, PLOT_COLOR_AXIS);
    for (int k = 0; k < Y_TICKS; k++) {
        double v = f->vmin + (f->vmax - f->vmin) * k / (Y_TICKS - 1);
        int y = y_of(f, v);
        char label[32];
        snprintf(label, sizeof label, "%.6g", v);
        canvas_fill_rect(c, f->x0 - 6, y, f->x0 - 2, y, PLOT_COLOR_AXIS);
        canvas_text(c, f->x0 - 9 - canvas_text_width(label, 1), y - CANVAS_GLYPH_H / 2, label, 1,
                    PLOT_COLOR_TEXT);
    }
    for (int k = 0; k <= X_TICKS; k++) {
        int x = f->x0 + (f->x1 - f->x0) * k / X_TICKS;
        canvas_fill_rect(c, x, f->y1 + 2, x, f->y1 + 5, PLOT_COLOR_AXIS);
    }
}

static void draw_grid(canvas *c, const frame *f) {
    for (int k = 0; k < Y_TICKS; k++) {
        int y = y_of(f, f->vmin + (f->vmax - f->vmin) * k / (Y_TICKS - 1));
        canvas_fill_rect(c, f->x0, y, f->x1, y, PLOT_COLOR_GRID);
    }
}

static void draw_panel(canvas *c, const frame *f, const plot_spec *spec, const plot_panel *p) {
    int origin_x = x_of(f, (double)(spec->context_len - 1));
    draw_grid(c, f);
    draw_band(c, f, spec, p);
    canvas_dashed_vline(c, origin_x, f->y0, f->y1, PLOT_COLOR_ORIGIN);
    draw_forecast(c, f, spec, p);
    draw_axes(c, f);
    if (p->label)
        canvas_text(c, f->x0 + 4, f->y0 - PANEL_TOP_PAD + 6, p->label, 1, PLOT_COLOR_TEXT);
}

/* First label from its step rightwards, the last ending at its step, the
 * origin's centred (or ending at it near the right edge); one that would
 * overlap its left neighbour drops a line. */
static void draw_x_labels(canvas *c, const frame *f, const plot_spec *spec) {
    const char *texts[3] = {spec->x_label_first, spec->x_label_origin, spec->x_label_last};
    int xs[3] = {f->x0, x_of(f, (double)(spec->context_len - 1)), f->x1};
    int right_of_prev = -1000, row = 0;
    for (int i = 0; i < 3; i++) {
        if (!texts[i])
            continue;
        int w = canvas_text_width(texts[i], 1);
        int x = i == 0 ? xs[0] : i == 2 ? xs[2] - w : xs[1] - w / 2;
        if (i == 1 && x + w > f->x1)
            x = xs[1] - w;
        row = x <= right_of_prev + 8 ? row + 1 : 0;
        canvas_text(c, x, f->y1 + 10 + row * (CANVAS_GLYPH_H + 4), texts[i], 1, PLOT_COLOR_TEXT);
        right_of_prev = x + w;
    }
}

static int check_spec(const plot_spec *spec, char *err, size_t errlen) {
    const char *why = NULL;
    if (!spec || !spec->panels || spec->n_panels == 0)
        why = "no panels to draw";
    else if (spec->context_len == 0 || spec->horizon == 0)
        why = "the context and the forecast need a step each at least";
    for (size_t i = 0; !why && i < spec->n_panels; i++) {
        const plot_panel *p = &spec->panels[i];
        if (!p->context || !p->median)
            why = "a panel without its context or median";
        else if (!p->low != !p->high)
            why = "a band needs both its low and its high edge";
    }
    if (why)
        snprintf(err, errlen, "plot: %s", why);
    return why ? -1 : 0;
}

static int render(const plot_spec *spec, canvas *c, char *err, size_t errlen) {
    int width = spec->width ? (int)spec->width : DEFAULT_WIDTH;
    int height = spec->height ? (int)spec->height
                              : DEFAULT_HEIGHT + EXTRA_PANEL_HEIGHT * (int)(spec->n_panels - 1);
    int top = spec->title ? TITLE_HEIGHT : 8;
    int panel_h = (height - top - X_LABELS_HEIGHT) / (int)spec->n_panels;
    if (spec->width > 16384 || spec->height > 16384 || spec->n_panels > 64 ||
        width - MARGIN_LEFT - MARGIN_RIGHT < MIN_PLOT_SIDE ||
        panel_h - PANEL_TOP_PAD - PANEL_BOTTOM_PAD < MIN_PLOT_SIDE) {
        snprintf(err, errlen, "plot: %dx%d is too small or too large for %zu panel(s)", width,
                 height, spec->n_panels);
        return -1;
    }
    if (canvas_init(c, width, height, PLOT_COLOR_BACKGROUND)) {
        snprintf(err, errlen, "plot: out of memory");
        return -1;
    }
    if (spec->title)
        canvas_text(c, MARGIN_LEFT, 8, spec->title, 2, PLOT_COLOR_TEXT);
    frame f = {.x0 = MARGIN_LEFT,
               .x1 = width - MARGIN_RIGHT - 1,
               .steps = spec->context_len + spec->horizon};
    for (size_t i = 0; i < spec->n_panels; i++) {
        f.y0 = top + (int)i * panel_h + PANEL_TOP_PAD;
        f.y1 = top + (int)(i + 1) * panel_h - PANEL_BOTTOM_PAD;
        value_range(spec, &spec->panels[i], &f.vmin, &f.vmax);
        draw_panel(c, &f, spec, &spec->panels[i]);
    }
    draw_x_labels(c, &f, spec);
    return 0;
}

int plot_png_encode(const plot_spec *spec, uint8_t **png, size_t *png_len, char *err,
                    size_t errlen) {
    *png = NULL;
    *png_len = 0;
    canvas c = {0};
    if (check_spec(spec, err, errlen) || render(spec, &c, err, errlen))
        return -1;
    int rc =
        png_encode_rgb(c.rgb, (uint32_t)c.width, (uint32_t)c.height, png, png_len, err, errlen);
    canvas_free(&c);
    return rc;
}

int plot_png_write(const char *path, const plot_spec *spec, char *err, size_t errlen) {
    uint8_t *png;
    size_t len;
    if (plot_png_encode(spec, &png, &len, err, errlen))
        return -1;
    FILE *out = fopen(path, "wb");
    if (!out) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(png);
        return -1;
    }
    size_t written = fwrite(png, 1, len, out);
    int saved = errno;
    int closed = fclose(out);
    free(png);
    if (written != len || closed != 0) {
        snprintf(err, errlen, "%s: write failed: %s", path,
                 strerror(written != len ? saved : errno));
        remove(path); /* half a PNG is worse than none */
        return -1;
    }
    return 0;
}
