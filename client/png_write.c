/*
 * png_write.c - PNG = signature, IHDR, IDAT, IEND; each chunk is length,
 * type, data and a CRC-32 of type and data. IDAT holds a zlib stream:
 * a two-byte header, deflate blocks, the Adler-32 of the raw data. The
 * raw data is each row behind a filter byte 0 (none).
 */
#include "png_write.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORED_BLOCK_MAX 65535 /* LEN is 16 bits */
#define MAX_SIDE         16384 /* keeps every size below in 32 bits */

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    /* Bitwise, no table: a chart is a few MB at most, and no state to set up. */
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
    }
    return ~crc;
}

typedef struct adler32 {
    uint32_t a, b;
} adler32;

static void adler32_update(adler32 *s, const uint8_t *p, size_t n) {
    while (n > 0) {
        size_t chunk = n < 5552 ? n : 5552; /* the most bytes before b can overflow */
        n -= chunk;
        while (chunk--) {
            s->a += *p++;
            s->b += s->a;
        }
        s->a %= 65521;
        s->b %= 65521;
    }
}

static uint8_t *put32(uint8_t *o, uint32_t v) {
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
    return o + 4;
}

/* Writes a chunk whose data is already at o + 8; returns the end. */
static uint8_t *close_chunk(uint8_t *o, const char type[4], uint32_t len) {
    put32(o, len);
    memcpy(o + 4, type, 4);
    return put32(o + 8 + len, crc32_update(0, o + 4, 4 + (size_t)len));
}

/* Streams the filtered rows into stored blocks at o; returns the end. */
static uint8_t *put_zlib(uint8_t *o, const uint8_t *rgb, uint32_t width, uint32_t height) {
    size_t row_len = (size_t)width * 3, raw_len = (row_len + 1) * height;
    adler32 sum = {1, 0};
    *o++ = 0x78;             /* deflate, 32K window */
    *o++ = 0x01;             /* no dictionary, fastest; (0x78 << 8 | 0x01) % 31 == 0 */
    size_t row = 0, col = 0; /* col 0 is the filter byte, col 1.. the pixels */
    for (size_t left = raw_len; left > 0;) {
        uint16_t n = (uint16_t)(left < STORED_BLOCK_MAX ? left : STORED_BLOCK_MAX);
        left -= n;
        *o++ = left == 0; /* BFINAL, BTYPE 00, then padding to the byte */
        o[0] = (uint8_t)n, o[1] = (uint8_t)(n >> 8);
        o[2] = (uint8_t)~n, o[3] = (uint8_t)(~n >> 8);
        o += 4;
        uint8_t *data = o;
        for (uint16_t i = 0; i < n;) {
            if (col == 0) {
                *o++ = 0, i++, col = 1;
                continue;
            }
            size_t take = row_len - (col - 1);
            if (take > (size_t)(n - i))
                take = n - i;
            memcpy(o, rgb + row * row_len + (col - 1), take);
            o += take, i += (uint16_t)take, col += take;
            if (col - 1 == row_len)
                row++, col = 0;
        }
        adler32_update(&sum, data, n);
    }
    return put32(o, sum.b << 16 | sum.a);
}

int png_encode_rgb(const uint8_t *rgb, uint32_t width, uint32_t height, uint8_t **png,
                   size_t *png_len, char *err, size_t errlen) {
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    *png = NULL;
    *png_len = 0;
    if (width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE) {
        snprintf(err, errlen, "image size %ux%u out of range (1..%d)", width, height, MAX_SIDE);
        return -1;
    }
    size_t raw_len = ((size_t)width * 3 + 1) * height;
    size_t blocks = (raw_len + STORED_BLOCK_MAX - 1) / STORED_BLOCK_MAX;
    size_t zlib_len = 2 + blocks * 5 + raw_len + 4;
    size_t total = 8 + (12 + 13) + (12 + zlib_len) + 12;
    uint8_t *out = malloc(total);
    if (!out) {
        snprintf(err, errlen, "out of memory for a %zu-byte PNG", total);
        return -1;
    }
    uint8_t *o = out;
    memcpy(o, signature, 8);
    o += 8;
    uint8_t *ihdr = o + 8;
    put32(ihdr, width);
    put32(ihdr + 4, height);
    memcpy(ihdr + 8, "\x08\x02\x00\x00\x00", 5); /* 8 bits, RGB, deflate, no filter, no interlace */
    o = close_chunk(o, "IHDR", 13);
    put_zlib(o + 8, rgb, width, height);
    o = close_chunk(o, "IDAT", (uint32_t)zlib_len);
    o = close_chunk(o, "IEND", 0);
    *png = out;
    *png_len = (size_t)(o - out);
    return 0;
}
