/*
 * plot_canvas.h - an RGB pixel buffer and the few things a chart draws on
 * it: rectangles, 2-pixel lines, dots, translucent vertical spans and text
 * in a built-in 5x7 bitmap font (digits, letters in upper case, and
 * . - : + / % ( ) _ , = ? #). Everything is clipped to the buffer.
 */
#ifndef TOTO_PLOT_CANVAS_H
#define TOTO_PLOT_CANVAS_H

#include <stdint.h>

#define CANVAS_GLYPH_W       5
#define CANVAS_GLYPH_H       7
#define CANVAS_GLYPH_ADVANCE 6 /* glyph and one column of space */

typedef struct canvas {
    int width, height;
    uint8_t *rgb; /* width*height*3, rows top to bottom */
} canvas;

/* colours are 0xRRGGBB; alpha is out of 256 */
int canvas_init(canvas *c, int width, int height, uint32_t background);
void canvas_free(canvas *c);
uint32_t canvas_get(const canvas *c, int x, int y);
void canvas_fill_rect(canvas *c, int x0, int y0, int x1, int y1, uint32_t color);
/* each channel becomes (old * (256 - alpha) + color * alpha + 128) / 256 */
void canvas_blend_span(canvas *c, int x, int y0, int y1, uint32_t color, int alpha);
void canvas_line(canvas *c, int x0, int y0, int x1, int y1, uint32_t color);
void canvas_dashed_vline(canvas *c, int x, int y0, int y1, uint32_t color);
void canvas_dot(canvas *c, int x, int y, int radius, uint32_t color);
/* text with its top-left corner at (x, y), each font pixel scale x scale */
void canvas_text(canvas *c, int x, int y, const char *text, int scale, uint32_t color);
int canvas_text_width(const char *text, int scale);

#endif
