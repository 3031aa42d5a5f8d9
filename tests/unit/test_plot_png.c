/*
 * test_plot_png.c - client/plot_png.h and client/png_write.h: the PNG is
 * taken apart here with this file's own reader (signature, chunk CRCs,
 * IHDR, the zlib stream's stored blocks with LEN/NLEN and Adler-32, filter
 * bytes) and the pixels are looked at: the band, the median and the
 * actuals right of the origin, the context left of it, a NaN gap in the
 * context left undrawn, no band when none is given. python3's zlib, when
 * there is one, checks the same file independently.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../client/plot_png.h"
#include "../../client/png_write.h"
#include "tap.h"

/* ---- a PNG reader for what png_write.c makes ------------------------- */

typedef struct image {
    uint32_t width, height;
    uint8_t *rgb;
} image;

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--)
        c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static uint32_t adler32_of(const uint8_t *p, size_t n) {
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < n; i++) {
        a = (a + p[i]) % 65521;
        b = (b + a) % 65521;
    }
    return b << 16 | a;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Inflates a zlib stream of stored blocks only; NULL with *why otherwise. */
static uint8_t *inflate_stored(const uint8_t *z, size_t n, size_t *out_len, const char **why) {
    if (n < 6 || (z[0] & 0x0F) != 8 || ((z[0] << 8) | z[1]) % 31 != 0 || (z[1] & 0x20)) {
        *why = "bad zlib header";
        return NULL;
    }
    uint8_t *out = malloc(n);
    size_t pos = 2, len = 0;
    for (bool final = false; !final;) {
        if (pos + 5 > n || (z[pos] & 0x06) != 0) {
            *why = "not a stored block, or truncated";
            free(out);
            return NULL;
        }
        final = z[pos] & 1;
        uint16_t blen = (uint16_t)(z[pos + 1] | z[pos + 2] << 8);
        uint16_t nlen = (uint16_t)(z[pos + 3] | z[pos + 4] << 8);
        pos += 5;
        if (blen + nlen != 0xFFFF || pos + blen > n) { /* NLEN is ~LEN */
            *why = "LEN/NLEN mismatch or block past the end";
            free(out);
            return NULL;
        }
        memcpy(out + len, z + pos, blen);
        len += blen;
        pos += blen;
    }
    if (pos + 4 != n || be32(z + pos) != adler32_of(out, len)) {
        *why = "Adler-32 mismatch or bytes after the stream";
        free(out);
        return NULL;
    }
    *out_len = len;
    return out;
}

/* 0 and the pixels, or -1 with *why. */
static int read_png(const uint8_t *png, size_t n, image *img, const char **why) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    uint8_t *idat = NULL;
    size_t idat_len = 0, pos = 8;
    bool ihdr = false, iend = false;
    memset(img, 0, sizeof *img);
    if (n < 8 || memcmp(png, sig, 8) != 0)
        return *why = "bad signature", -1;
    while (!iend) {
        if (pos + 12 > n)
            return free(idat), *why = "truncated chunk", -1;
        uint32_t len = be32(png + pos);
        const uint8_t *type = png + pos + 4, *data = png + pos + 8;
        if (pos + 12 + len > n || be32(data + len) != crc32_of(type, 4 + (size_t)len))
            return free(idat), *why = "chunk CRC mismatch", -1;
        if (memcmp(type, "IHDR", 4) == 0) {
            img->width = be32(data);
            img->height = be32(data + 4);
            ihdr = len == 13 && data[8] == 8 && data[9] == 2 && !data[10] && !data[11] && !data[12];
        } else if (memcmp(type, "IDAT", 4) == 0) {
            idat = realloc(idat, idat_len + len);
            memcpy(idat + idat_len, data, len);
            idat_len += len;
        } else if (memcmp(type, "IEND", 4) == 0) {
            iend = pos + 12 == n;
        }
        pos += 12 + len;
    }
    if (!ihdr || !iend || !idat)
        return free(idat), *why = "IHDR not 8-bit RGB, or IEND/IDAT missing", -1;
    size_t raw_len;
    uint8_t *raw = inflate_stored(idat, idat_len, &raw_len, why);
    free(idat);
    if (!raw)
        return -1;
    size_t row = (size_t)img->width * 3 + 1;
    if (raw_len != row * img->height)
        return free(raw), *why = "inflated size is not height * (1 + 3 * width)", -1;
    img->rgb = malloc(raw_len);
    for (uint32_t y = 0; y < img->height; y++) {
        if (raw[y * row] != 0)
            return free(raw), free(img->rgb), *why = "a row filter other than 0", -1;
        memcpy(img->rgb + y * (row - 1), raw + y * row + 1, row - 1);
    }
    free(raw);
    return 0;
}

static uint32_t pixel(const image *img, uint32_t x, uint32_t y) {
    const uint8_t *p = img->rgb + ((size_t)y * img->width + x) * 3;
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

/* Pixels of this colour with x in [x0, x1) and y in [y0, y1). */
static size_t count(const image *img, uint32_t color, uint32_t x0, uint32_t x1, uint32_t y0,
                    uint32_t y1) {
    size_t n = 0;
    for (uint32_t y = y0; y < y1 && y < img->height; y++)
        for (uint32_t x = x0; x < x1 && x < img->width; x++)
            n += pixel(img, x, y) == color;
    return n;
}

/* The smallest and largest x where this colour is; false if nowhere. */
static bool x_extent(const image *img, uint32_t color, uint32_t *lo, uint32_t *hi) {
    *lo = UINT32_MAX;
    *hi = 0;
    for (uint32_t y = 0; y < img->height; y++)
        for (uint32_t x = 0; x < img->width; x++)
            if (pixel(img, x, y) == color) {
                *lo = x < *lo ? x : *lo;
                *hi = x > *hi ? x : *hi;
            }
    return *lo != UINT32_MAX;
}

static uint32_t blend(uint32_t below, uint32_t color, int alpha) {
    uint32_t out = 0;
    for (int shift = 16; shift >= 0; shift -= 8) {
        uint32_t b = (below >> shift) & 0xFF, c = (color >> shift) & 0xFF;
        out |= ((b * (uint32_t)(256 - alpha) + c * (uint32_t)alpha + 128) / 256) << shift;
    }
    return out;
}

/* ---- the encoder alone ------------------------------------------------ */

static void test_encoder_round_trip(void) {
    /* 300 x 250 x 3 bytes: more than one 65535-byte stored block. */
    uint32_t w = 300, h = 250;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    uint32_t seed = 12345;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        seed = seed * 1103515245u + 12345u;
        rgb[i] = (uint8_t)(seed >> 16);
    }
    uint8_t *png;
    size_t len;
    char err[256];
    image img;
    const char *why = "";
    int rc = png_encode_rgb(rgb, w, h, &png, &len, err, sizeof err);
    int parsed = rc == 0 ? read_png(png, len, &img, &why) : -1;
    tap_check(rc == 0 && parsed == 0 && img.width == w && img.height == h &&
                  memcmp(img.rgb, rgb, (size_t)w * h * 3) == 0,
              "encoder: 300x250 random pixels come back exactly (%zu bytes%s%s)", len,
              parsed ? ": " : "", parsed ? why : "");
    if (parsed == 0) {
        /* A flipped pixel byte must be caught: by the chunk CRC. */
        png[8 + 25 + 8 + 100] ^= 1;
        image bad;
        const char *bad_why = "";
        int bad_rc = read_png(png, len, &bad, &bad_why);
        tap_check(bad_rc != 0 && strstr(bad_why, "CRC"),
                  "the checker is real: a flipped IDAT byte fails the CRC (%s)", bad_why);
        free(img.rgb);
    }
    free(png);
    rc = png_encode_rgb(rgb, 0, 10, &png, &len, err, sizeof err);
    tap_check(rc == -1 && png == NULL && strstr(err, "0x10"), "a 0x10 image is refused: %s", err);
    free(rgb);
}

/* ---- the chart -------------------------------------------------------- */

#define CTX 100
#define HOR 20

typedef struct fixture {
    double context[CTX], median[HOR], low[HOR], high[HOR], actual[HOR];
} fixture;

static void make_fixture(fixture *f) {
    for (int i = 0; i < CTX; i++)
        f->context[i] = 10 + 3 * sin(i / 7.0);
    double last = f->context[CTX - 1];
    for (int i = 0; i < HOR; i++) {
        f->median[i] = last + 0.1 * i;
        f->low[i] = f->median[i] - 1 - 0.1 * i;
        f->high[i] = f->median[i] + 1 + 0.1 * i;
        f->actual[i] = f->median[i] + (i % 2 ? 0.5 : -0.5);
    }
}

static int render(const plot_spec *spec, image *img, const char **why) {
    uint8_t *png;
    size_t len;
    char err[256];
    if (plot_png_encode(spec, &png, &len, err, sizeof err)) {
        tap_diag("plot_png_encode: %s", err);
        *why = "encode failed";
        return -1;
    }
    int rc = read_png(png, len, img, why);
    free(png);
    return rc;
}

static void test_chart(void) {
    fixture f;
    make_fixture(&f);
    plot_panel panel = {.label = "close",
                        .context = f.context,
                        .median = f.median,
                        .low = f.low,
                        .high = f.high,
                        .actual = f.actual};
    plot_spec spec = {.title = "BTC/USDT close",
                      .context_len = CTX,
                      .horizon = HOR,
                      .panels = &panel,
                      .n_panels = 1,
                      .x_label_first = "2021-06-01 00:00:00",
                      .x_label_origin = "2021-06-05 03:00:00",
                      .x_label_last = "2021-06-05 23:00:00"};
    image img;
    const char *why = "";
    if (!tap_check(render(&spec, &img, &why) == 0, "a one-panel chart encodes and parses (%s)",
                   why))
        return;
    tap_check(img.width == 960 && img.height == 480, "default size 960x480 (%ux%u)", img.width,
              img.height);
    uint32_t ctx_lo, ctx_hi, med_lo, med_hi, origin_lo, origin_hi;
    bool has_ctx = x_extent(&img, PLOT_COLOR_CONTEXT, &ctx_lo, &ctx_hi);
    bool has_med = x_extent(&img, PLOT_COLOR_MEDIAN, &med_lo, &med_hi);
    bool has_origin = x_extent(&img, PLOT_COLOR_ORIGIN, &origin_lo, &origin_hi);
    tap_check(has_origin && origin_lo == origin_hi, "one dashed origin line, at x %u", origin_lo);
    tap_check(has_ctx && ctx_hi <= origin_lo + 1 && ctx_lo + 700 < origin_lo &&
                  count(&img, PLOT_COLOR_CONTEXT, 0, origin_lo, 0, img.height) > 500,
              "the context line lies left of the origin, across the plot (x %u..%u)", ctx_lo,
              ctx_hi);
    tap_check(has_med && med_lo >= origin_lo && med_hi > origin_lo + 20,
              "the median lies right of the origin (x %u..%u)", med_lo, med_hi);
    uint32_t band_on_white = blend(PLOT_COLOR_BACKGROUND, PLOT_COLOR_BAND, PLOT_BAND_ALPHA);
    size_t band_right = count(&img, band_on_white, origin_lo, img.width, 0, img.height);
    size_t band_left = count(&img, band_on_white, 0, origin_lo, 0, img.height);
    tap_check(band_right > 1000 && band_left == 0,
              "the band (#%06X, blended) fills the forecast region only (%zu px right, %zu left)",
              band_on_white, band_right, band_left);
    size_t dots = count(&img, PLOT_COLOR_ACTUAL, origin_lo + 1, img.width, 0, img.height);
    tap_check(dots >= HOR * 20, "the actuals are drawn as dots right of the origin (%zu px)", dots);
    size_t text = count(&img, PLOT_COLOR_TEXT, 0, img.width, 0, 30);
    tap_check(text > 100, "the title is drawn at the top (%zu px)", text);
    size_t labels = count(&img, PLOT_COLOR_TEXT, 0, 80, 30, img.height - 30);
    tap_check(labels > 100, "y-axis labels are drawn left of the plot (%zu px)", labels);
    free(img.rgb);
}

/* Without a band nothing has the band's colour: the band test above
 * could fail. */
static void test_no_band(void) {
    fixture f;
    make_fixture(&f);
    plot_panel panel = {.context = f.context, .median = f.median};
    plot_spec spec = {.context_len = CTX, .horizon = HOR, .panels = &panel, .n_panels = 1};
    image img;
    const char *why = "";
    if (!tap_check(render(&spec, &img, &why) == 0, "a chart without band or actuals (%s)", why))
        return;
    uint32_t band_on_white = blend(PLOT_COLOR_BACKGROUND, PLOT_COLOR_BAND, PLOT_BAND_ALPHA);
    tap_check(count(&img, band_on_white, 0, img.width, 0, img.height) == 0 &&
                  count(&img, PLOT_COLOR_ACTUAL, 0, img.width, 0, img.height) == 0 &&
                  count(&img, PLOT_COLOR_MEDIAN, 0, img.width, 0, img.height) > 50,
              "no band and no actuals drawn, the median still is");
    free(img.rgb);
}

/* Steps 40..59 of the context are NaN: no context pixel over them. */
static void test_nan_gap(void) {
    fixture f;
    make_fixture(&f);
    for (int i = 40; i < 60; i++)
        f.context[i] = NAN;
    plot_panel panel = {.context = f.context, .median = f.median, .low = f.low, .high = f.high};
    plot_spec spec = {.context_len = CTX, .horizon = HOR, .panels = &panel, .n_panels = 1};
    image img;
    const char *why = "";
    if (!tap_check(render(&spec, &img, &why) == 0, "a context with a NaN gap (%s)", why))
        return;
    uint32_t lo, hi;
    x_extent(&img, PLOT_COLOR_CONTEXT, &lo, &hi);
    double px_per_step = (hi - 1 - lo) / (double)(CTX - 1); /* hi - 1: the 2-px brush */
    uint32_t gap0 = lo + (uint32_t)(41 * px_per_step), gap1 = lo + (uint32_t)(58 * px_per_step);
    uint32_t a0 = lo + (uint32_t)(10 * px_per_step), a1 = lo + (uint32_t)(30 * px_per_step);
    size_t in_gap = count(&img, PLOT_COLOR_CONTEXT, gap0, gap1, 0, img.height);
    size_t before = count(&img, PLOT_COLOR_CONTEXT, a0, a1, 0, img.height);
    tap_check(in_gap == 0 && before > 50, "the line breaks over the gap (%zu px in it, %zu before)",
              in_gap, before);
    free(img.rgb);
}

/* Three variates: three panels stacked, each with its own context line. */
static void test_panels(void) {
    fixture f[3];
    plot_panel panels[3];
    for (int i = 0; i < 3; i++) {
        make_fixture(&f[i]);
        for (int k = 0; k < CTX; k++)
            f[i].context[k] *= i + 1;
        panels[i] = (plot_panel){
            .context = f[i].context, .median = f[i].median, .low = f[i].low, .high = f[i].high};
    }
    plot_spec spec = {
        .title = "three", .context_len = CTX, .horizon = HOR, .panels = panels, .n_panels = 3};
    image img;
    const char *why = "";
    if (!tap_check(render(&spec, &img, &why) == 0, "a three-panel chart (%s)", why))
        return;
    uint32_t third = img.height / 3;
    size_t a = count(&img, PLOT_COLOR_CONTEXT, 0, img.width, 0, third);
    size_t b = count(&img, PLOT_COLOR_CONTEXT, 0, img.width, third, 2 * third);
    size_t c = count(&img, PLOT_COLOR_CONTEXT, 0, img.width, 2 * third, img.height);
    tap_check(img.height == 480 + 2 * 260 && a > 300 && b > 300 && c > 300,
              "stacked: %u px high, a context line in each third (%zu, %zu, %zu px)", img.height, a,
              b, c);
    free(img.rgb);
}

static void test_errors(void) {
    fixture f;
    make_fixture(&f);
    plot_panel half_band = {.context = f.context, .median = f.median, .low = f.low};
    plot_spec spec = {.context_len = CTX, .horizon = HOR, .panels = &half_band, .n_panels = 1};
    char err[256] = "";
    uint8_t *png = (uint8_t *)"x";
    size_t len = 1;
    tap_check(plot_png_encode(&spec, &png, &len, err, sizeof err) == -1 && png == NULL &&
                  strstr(err, "band"),
              "a band with one edge is refused: %s", err);
    plot_panel ok = {.context = f.context, .median = f.median};
    spec.panels = &ok;
    spec.horizon = 0;
    tap_check(plot_png_encode(&spec, &png, &len, err, sizeof err) == -1, "no horizon: %s", err);
    spec.horizon = HOR;
    spec.width = 50;
    tap_check(plot_png_encode(&spec, &png, &len, err, sizeof err) == -1 && strstr(err, "small"),
              "a 50-px-wide chart: %s", err);
    spec.width = 0;
    tap_check(plot_png_write("/nonexistent-dir/chart.png", &spec, err, sizeof err) == -1 &&
                  strstr(err, "/nonexistent-dir/chart.png"),
              "an unwritable path: %s", err);
}

/* The file written, and read back by python3's zlib (an independent inflate). */
static void test_file_and_python(void) {
    fixture f;
    make_fixture(&f);
    plot_panel panel = {.context = f.context, .median = f.median, .low = f.low, .high = f.high};
    plot_spec spec = {
        .title = "file", .context_len = CTX, .horizon = HOR, .panels = &panel, .n_panels = 1};
    char path[] = "/tmp/test_plot_png_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        tap_check(0, "mkstemp");
        return;
    }
    close(fd);
    char err[256] = "";
    int rc = plot_png_write(path, &spec, err, sizeof err);
    FILE *in = fopen(path, "rb");
    uint8_t *buf = malloc(4 << 20);
    size_t len = in ? fread(buf, 1, 4 << 20, in) : 0;
    if (in)
        fclose(in);
    image img;
    const char *why = "";
    tap_check(rc == 0 && read_png(buf, len, &img, &why) == 0 && img.width == 960,
              "plot_png_write writes a valid PNG file (%zu bytes%s%s)", len, err, why);
    if (rc == 0 && len)
        free(img.rgb);
    free(buf);
    if (system("python3 -c 'import zlib' >/dev/null 2>&1") != 0) {
        printf("ok %d - # SKIP python3 with zlib not found\n", ++tap_g.run);
    } else {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import sys,struct,zlib\n"
                 "d=open(sys.argv[1],\"rb\").read();i=8;z=b\"\"\n"
                 "while i<len(d):\n"
                 " n=struct.unpack(\">I\",d[i:i+4])[0];t=d[i+4:i+8]\n"
                 " assert struct.unpack(\">I\",d[i+8+n:i+12+n])[0]==zlib.crc32(d[i+4:i+8+n])\n"
                 " z+=d[i+8:i+8+n] if t==b\"IDAT\" else b\"\";i+=12+n\n"
                 "w,h=struct.unpack(\">II\",d[16:24]);r=zlib.decompress(z)\n"
                 "assert len(r)==h*(1+3*w),len(r)' %s",
                 path);
        tap_check(system(cmd) == 0, "python3's zlib inflates it to height * (1 + 3 * width)");
    }
    unlink(path);
}

int main(void) {
    crc_init();
    test_encoder_round_trip();
    test_chart();
    test_no_band();
    test_nan_gap();
    test_panels();
    test_errors();
    test_file_and_python();
    return tap_done();
}
