/*
 * totoclient_buf.c - a growable byte buffer for request lines and reading.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "totoclient_internal.h"

int tc_buf_reserve(tc_buf *b, size_t extra) {
    if (extra < b->cap - b->len)
        return 0; /* room for extra bytes and a NUL */
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= extra) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (data == NULL)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

int tc_buf_append(tc_buf *b, const char *s, size_t n) {
    if (tc_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int tc_buf_puts(tc_buf *b, const char *s) {
    return tc_buf_append(b, s, strlen(s));
}

int tc_buf_printf(tc_buf *b, const char *fmt, ...) {
    char small[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return tc_buf_append(b, small, (size_t)n);
    if (tc_buf_reserve(b, (size_t)n) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void tc_buf_free(tc_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
