/*
 * utf8.h - UTF-8 validity as jansson judges it (no overlong forms, no
 * surrogates, nothing above U+10FFFF), shared by the reader (json_read.c),
 * which refuses what jansson refuses, and the writer (json_write.c), which
 * refuses to write a string that jansson could not have held.
 */
#ifndef TOTO_PROTO_UTF8_H
#define TOTO_PROTO_UTF8_H

#include <string.h>

/* Length of the valid UTF-8 sequence at s (1-4), or 0: no overlongs, surrogates or > U+10FFFF. */
static inline int proto_utf8_length(const unsigned char *s, const unsigned char *end) {
    unsigned c = s[0];
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    if (end - s < len || s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/*
 * Ends s before its first invalid or incomplete sequence. snprintf() cuts a
 * long valid string at a byte count, possibly inside a character; after the
 * cut the text must still be valid UTF-8, or no JSON writer takes it.
 */
static inline void proto_utf8_cut(char *s) {
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    int n;
    while (p < end && (n = proto_utf8_length(p, end)) > 0)
        p += n;
    s[p - (const unsigned char *)s] = '\0';
}

#endif
