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

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Parses text[0..len). Returns a new reference, or NULL with err filled (err may be NULL). */
json_t *proto_json_read(const char *text, size_t len, json_error_t *err);

/*
 * Typed series: a forecast's "series" is nearly all of a request, and a
 * json_real per number (a malloc, then a free) cost more than converting it.
 * proto_json_read_numbers() reads like proto_json_read() - it accepts and
 * refuses exactly the same texts, with the same error - but the value of a
 * member named "series" that is
 *
 *   - a flat array of one or more numbers or nulls, or
 *   - an array of one or more such arrays, all of the same length,
 *
 * is converted straight into doubles (null: NaN; integers as (double) of the
 * json_integer, so every value has the bits json_number_value() would give)
 * and left in the tree as an empty array, a placeholder whose numbers
 * proto_numbers_find() returns. Any other "series" (another shape, another
 * element, an error inside) is read the generic way, so that whoever checks
 * it (proto_forecast_parse_numbers) sees it, and reports it, as before.
 * Consumers of such a tree must look "series" up with proto_numbers_find();
 * nothing but the forecast codec reads that member.
 */
typedef struct proto_numbers proto_numbers;

/* One typed series: n_rows x n_cols values, row-major (a flat one: one row). */
typedef struct proto_number_array {
    const double *values;
    size_t n_rows, n_cols; /* each at least 1 */
    bool nested;           /* written [[...], ...] (else [...]: n_rows is 1) */
} proto_number_array;

/*
 * As proto_json_read(); *numbers receives the typed series (NULL when there
 * are none, or on error). Free it with proto_numbers_free(), before or after
 * the document.
 */
json_t *proto_json_read_numbers(const char *text, size_t len, json_error_t *err,
                                proto_numbers **numbers);

/* The numbers of array when it is a placeholder of numbers (which may be NULL). */
bool proto_numbers_find(proto_numbers *numbers, const json_t *array, proto_number_array *out);

void proto_numbers_free(proto_numbers *numbers);

#ifdef __cplusplus
}
#endif

#endif
