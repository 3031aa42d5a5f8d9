/*
 * png_write.h - an 8-bit RGB image to PNG bytes, with no library: the
 * zlib stream inside IDAT is made of stored (uncompressed) deflate blocks,
 * with this file's own CRC-32 and Adler-32. Files are large (3 bytes a
 * pixel) but any PNG reader opens them.
 */
#ifndef TOTO_PNG_WRITE_H
#define TOTO_PNG_WRITE_H

#include <stddef.h>
#include <stdint.h>

/* rgb is width*height pixels, rows top to bottom, 3 bytes each. On success
 * returns 0 and a malloc'd PNG in *png (*png_len bytes; the caller frees
 * it); on failure -1 with a message in err. */
int png_encode_rgb(const uint8_t *rgb, uint32_t width, uint32_t height, uint8_t **png,
                   size_t *png_len, char *err, size_t errlen);

#endif
