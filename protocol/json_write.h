/*
 * json_write.h - JSON text written straight into one growing buffer.
 *
 * Why not json_dumps(): encoding a forecast's answer as jansson values takes a
 * malloc per number and an object per array, then the dump formats each real
 * with printf("%.17g") (about 0.5 µs on the CI machine) and once more for the
 * locale's decimal point. The worker answers every forecast, so the answer is
 * written here instead, as text, in one buffer that becomes the response
 * line, and reals get their 17 digits from exact integer arithmetic (printf
 * only for magnitudes beyond 2^128 or below about 1e-21; json_write.c).
 *
 * The bytes are those json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(17) |
 * JSON_PRESERVE_ORDER) gives for the same values with jansson 2.14 (built
 * without dtoa, as Debian and Ubuntu ship it): no spaces; a real as "%.17g",
 * with ".0" added when that has neither '.' nor 'e', and the exponent written
 * without '+' or leading zeros (1e+300 -> 1e300, 1e-05 -> 1e-5); integers in
 * decimal; strings with only '"', '\' and control characters escaped (\b \f
 * \n \r \t, else \u00XX in upper case), other UTF-8 as is; object members in
 * insertion order. tests/unit/test_json_write.c checks this against the
 * jansson the build links, so a jansson that formats otherwise fails there.
 * Like json_read.c, it assumes the "C" LC_NUMERIC locale (nobody here calls
 * setlocale()).
 *
 * A failure (out of memory, a string that is not UTF-8, which json_string()
 * would have refused) makes every later call a no-op and proto_text_finish()
 * return NULL, so a writer checks once, at the end.
 */
#ifndef TOTO_JSON_WRITE_H
#define TOTO_JSON_WRITE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct proto_text {
    char *data;
    size_t len, cap;
    bool failed;
} proto_text;

/* Longest real as written here: "-2.2250738585072014e-308" is 24 bytes. */
#define PROTO_TEXT_REAL_MAX 24

/* An empty text ({0} is one too). */
void proto_text_init(proto_text *t);
/* Makes room for more bytes, so that many writes need no realloc. */
void proto_text_reserve(proto_text *t, size_t more);
void proto_text_raw(proto_text *t, const char *s, size_t n);
/* A string literal, its length known at compile time. The "" s "" makes
 * anything but a literal a compile error: sizeof of a pointer (say, of
 * `c ? "}" : "}}"`) would copy 7 bytes from past the end of the literal. */
#define proto_text_literal(t, s) proto_text_raw((t), "" s "", sizeof(s) - 1)
/* A finite double as jansson writes a json_real; NaN and infinities as null (JSON has none). */
void proto_text_real(proto_text *t, double x);
void proto_text_integer(proto_text *t, json_int_t i);
/* s[0..n) as a JSON string; fails on invalid UTF-8. */
void proto_text_string(proto_text *t, const char *s, size_t n);
/* Any jansson value, as json_dumps writes it with the flags above. */
void proto_text_value(proto_text *t, const json_t *v);

/* The text, NUL-terminated, for the caller to free (len may be NULL); NULL if anything failed. */
char *proto_text_finish(proto_text *t, size_t *len);
/* Drops the text (after a failure, or instead of finishing). */
void proto_text_free(proto_text *t);

#ifdef __cplusplus
}
#endif

#endif
