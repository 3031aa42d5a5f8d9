/*
 * json_read.h - a strict JSON reader (RFC 8259) that builds jansson values.
 *
 * Why not json_loadb(): jansson converts every number with strtod() after a
 * localeconv() call, about 250 ns a number on the CI machine, and a forecast
 * request is mostly numbers: 512 values cost 150 µs, more than the daemon's
 * whole budget per request. This reader converts almost every number exactly
 * with Clinger's fast path (an integer significand below 2^53 and a power of
 * ten up to 10^22 are both exact doubles, so one IEEE multiply or divide is
 * the correctly rounded result) and falls back to strtod() for the rest.
 *
 * It accepts exactly the documents json_loadb(text, len, JSON_DECODE_ANY, ...)
 * accepts and builds equal values (tests/unit/test_json_read.c checks both on
 * a corpus and on mutated documents; tests/fuzz/fuzz_json_read.c on random
 * input): any value at the top level, integers as json_integer (beyond int64:
 * an error), numbers with a fraction or exponent as json_real (overflow: an
 * error), a later duplicate key replaces an earlier one, no \u0000, valid
 * UTF-8 only, nesting up to JSON_PARSER_MAX_DEPTH. One deliberate difference:
 * a NUL byte outside a string is an error (jansson stops reading there and may
 * accept the text before it). Error messages differ from
 * jansson's; err->position is the byte offset of the problem.
 *
 * The fallback strtod() reads '.' as the decimal point only in the "C"
 * LC_NUMERIC locale, which is what a program has unless it calls setlocale().
 */
#ifndef TOTO_JSON_READ_H
#define TOTO_JSON_READ_H

#include <stddef.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parses text[0..len). Returns a new reference, or NULL with err filled (err may be NULL). */
json_t *proto_json_read(const char *text, size_t len, json_error_t *err);

#ifdef __cplusplus
}
#endif

#endif
