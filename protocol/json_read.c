/* json_read.c - a strict JSON reader building jansson values (see json_read.h). */
#include "json_read.h"
#include "utf8.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fast path needs each double operation rounded once, to double. */
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "json_read.c needs FLT_EVAL_METHOD == 0 (SSE2 or another strict double unit)"
#endif

typedef struct reader {
    const char *start, *p, *end;
    int depth;
    json_error_t *err;
    proto_numbers **numbers; /* NULL: no typed series (proto_json_read) */
} reader;

static json_t *read_value(reader *r);

static json_t *fail_at(reader *r, const char *at, const char *fmt, ...) {
    if (!r->err)
        return NULL;
    json_error_t *e = r->err;
    memset(e, 0, sizeof *e);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text - 1, fmt, ap); /* the last byte is jansson's error code */
    va_end(ap);
    e->position = (int)(at - r->start);
    e->line = e->column = -1;
    snprintf(e->source, sizeof e->source, "<buffer>");
    r->err = NULL; /* the first (innermost) problem is the one reported */
    return NULL;
}

static void skip_space(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
        r->p++;
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* ---- numbers ---- */

static const double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A number token's digits, as scanned before conversion. */
typedef struct number_scan {
    const char *begin, *end;
    bool negative, is_real;
    uint64_t significand; /* the first 19 significant digits */
    int digits;           /* significant digits seen (may exceed 19) */
    int64_t exponent;     /* the decimal exponent of significand (saturated) */
} number_scan;

/*
 * Takes the digit run [p, q) of the integer part (fraction false) or of the
 * fraction: leading zeros are not significant, the first 19 significant
 * digits are kept, and an integer digit beyond them scales what was kept. A
 * run at a time, in tight loops: these are most of a forecast request.
 */
static void take_digits(number_scan *n, const char *p, const char *q, bool fraction) {
    if (n->significand == 0) {
        const char *zeros = p;
        while (p < q && *p == '0')
            p++;
        if (fraction)
            n->exponent -= p - zeros;
    }
    ptrdiff_t room = n->digits < 19 ? 19 - n->digits : 0;
    const char *kept = q - p < room ? q : p + room;
    if (fraction)
        n->exponent -= kept - p;
    else
        n->exponent += q - kept;
    n->digits += (int)(q - p);
    for (; p < kept; p++)
        n->significand = n->significand * 10 + (uint64_t)(*p - '0');
}

static const char *digits_end(const char *p, const char *end) {
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* Scans -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at r->p. */
static int scan_number(reader *r, number_scan *n) {
    const char *p = r->p, *end = r->end;
    *n = (number_scan){.begin = p};
    if (p < end && *p == '-') {
        n->negative = true;
        p++;
    }
    if (p >= end || !is_digit(*p))
        return fail_at(r, p, "invalid number: a digit must follow '-'"), -1;
    if (*p == '0' && p + 1 < end && is_digit(p[1]))
        return fail_at(r, p, "invalid number: leading zero"), -1;
    const char *run = p;
    p = digits_end(p, end);
    take_digits(n, run, p, false);
    if (p < end && *p == '.') {
        n->is_real = true;
        if (++p >= end || !is_digit(*p))
            return fail_at(r, p, "invalid number: a digit must follow '.'"), -1;
        run = p;
        p = digits_end(p, end);
        take_digits(n, run, p, true);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        n->is_real = true;
        bool minus = ++p < end && *p == '-';
        if (p < end && (*p == '-' || *p == '+'))
            p++;
        if (p >= end || !is_digit(*p))
            return fail_at(r, p, "invalid number: a digit must follow the exponent"), -1;
        int64_t e = 0;
        for (; p < end && is_digit(*p); p++)
            if (e < 100000000)
                e = e * 10 + (*p - '0');
        n->exponent += minus ? -e : e;
    }
    n->end = r->p = p;
    return 0;
}

/* strtod/strtoll need a NUL-terminated copy of the token. */
static char *token_copy(const number_scan *n, char *small, size_t small_len) {
    size_t len = (size_t)(n->end - n->begin);
    char *s = len < small_len ? small : malloc(len + 1);
    if (s) {
        memcpy(s, n->begin, len);
        s[len] = '\0';
    }
    return s;
}

/* A converted number token: an integer (beyond int64: an error) or a real. */
typedef struct number_value {
    bool is_real;
    json_int_t integer;
    double real;
} number_value;

/* strtod/strtoll for what the fast paths cannot convert exactly. */
static int number_slow(reader *r, const number_scan *n, number_value *out) {
    char small[64];
    char *s = token_copy(n, small, sizeof small);
    if (!s)
        return fail_at(r, n->begin, "out of memory"), -1;
    int rc = 0;
    errno = 0;
    if (n->is_real) {
        out->real = strtod(s, NULL);
        if (errno == ERANGE && isinf(out->real)) {
            fail_at(r, n->begin, "real number overflow");
            rc = -1;
        }
    } else {
        out->integer = (json_int_t)strtoll(s, NULL, 10);
        if (errno == ERANGE) {
            fail_at(r, n->begin, "integer out of range (beyond 64 bits)");
            rc = -1;
        }
    }
    if (s != small)
        free(s);
    return rc;
}

/*
 * The value of a scanned token. The one conversion for both the generic
 * reader (json_integer / json_real) and the typed series reader (a double),
 * so that both get the same bits.
 */
static int convert_number(reader *r, const number_scan *n, number_value *out) {
    *out = (number_value){.is_real = n->is_real};
    if (!n->is_real && n->digits <= 18) { /* below 10^18: fits int64 either sign */
        json_int_t i = (json_int_t)n->significand;
        out->integer = n->negative ? -i : i;
    } else if (n->is_real && n->significand <= (UINT64_C(1) << 53) && n->digits <= 19 &&
               n->exponent >= -22 && n->exponent <= 22) {
        double d = (double)n->significand; /* exact: at most 2^53 */
        d = n->exponent < 0 ? d / kPow10[-n->exponent] : d * kPow10[n->exponent];
        out->real = n->negative ? -d : d;
    } else {
        return number_slow(r, n, out);
    }
    return 0;
}

/* What json_number_value() gives for the value jansson would build. */
static double number_as_double(const number_value *v) {
    return v->is_real ? v->real : (double)v->integer;
}

static json_t *read_number(reader *r) {
    number_scan n;
    number_value value;
    if (scan_number(r, &n) || convert_number(r, &n, &value))
        return NULL;
    json_t *v = value.is_real ? json_real(value.real) : json_integer(value.integer);
    return v ? v : fail_at(r, n.begin, "out of memory");
}

/* ---- strings ---- */

static int hex4(const char *p, const char *end) {
    if (end - p < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = is_digit(c)            ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A \u escape at p (pointing at 'u'), with its low surrogate if any; advances *p. */
static int read_unicode_escape(reader *r, const char **p, uint32_t *cp) {
    const char *at = *p - 1;
    int v = hex4(*p + 1, r->end);
    if (v < 0)
        return fail_at(r, at, "invalid \\u escape in string"), -1;
    *p += 5;
    if (v >= 0xDC00 && v <= 0xDFFF)
        return fail_at(r, at, "invalid Unicode escape: lone low surrogate"), -1;
    if (v >= 0xD800 && v <= 0xDBFF) {
        int lo = r->end - *p >= 6 && (*p)[0] == '\\' && (*p)[1] == 'u' ? hex4(*p + 2, r->end) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail_at(r, at, "invalid Unicode escape: high surrogate without a low one"), -1;
        *p += 6;
        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (v == 0)
        return fail_at(r, at, "\\u0000 is not allowed in strings"), -1;
    *cp = (uint32_t)v;
    return 0;
}

/* Decodes the escapes of the string body [body, close) into out (at most as long). */
static int unescape(reader *r, const char *body, const char *close, char *out, size_t *out_len) {
    size_t n = 0;
    for (const char *p = body; p < close;) {
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        char c = *++p;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *k = c ? strchr(from, c) : NULL;
        if (k) {
            out[n++] = to[k - from];
            p++;
        } else if (c == 'u') {
            uint32_t cp;
            if (read_unicode_escape(r, &p, &cp))
                return -1;
            n += put_utf8(out + n, cp);
        } else {
            /* The byte is named only when printable: messages must stay valid UTF-8. */
            if (c >= 0x20 && c < 0x7f)
                return fail_at(r, p - 1, "invalid escape '\\%c' in string", c), -1;
            return fail_at(r, p - 1, "invalid escape (byte 0x%02X) in string", (unsigned char)c),
                   -1;
        }
    }
    *out_len = n;
    return 0;
}

/*
 * Reads the string at r->p (at its '"'). *s, *len: its text, pointing into
 * the input when it has no escapes, else into *owned (the caller frees).
 */
static int read_string(reader *r, const char **s, size_t *len, char **owned) {
    const unsigned char *p = (const unsigned char *)r->p + 1, *end = (const unsigned char *)r->end;
    bool escapes = false;
    *owned = NULL;
    while (p < end && *p != '"') {
        if (*p < 0x20)
            return fail_at(r, (const char *)p, "control character in string (escape it)"), -1;
        if (*p == '\\') {
            escapes = true;
            p += p + 1 < end ? 2 : 1; /* an escaped '"' does not close the string */
        } else {
            int n = proto_utf8_length(p, end);
            if (!n)
                return fail_at(r, (const char *)p, "invalid UTF-8 in string"), -1;
            p += n;
        }
    }
    if (p >= end)
        return fail_at(r, r->p, "unterminated string"), -1;
    const char *body = r->p + 1, *close = (const char *)p;
    r->p = close + 1;
    *s = body;
    *len = (size_t)(close - body);
    if (!escapes)
        return 0;
    if (!(*owned = malloc(*len + 1))) /* an escape never decodes longer than it is written */
        return fail_at(r, body, "out of memory"), -1;
    if (unescape(r, body, close, *owned, len)) {
        free(*owned);
        *owned = NULL;
        return -1;
    }
    *s = *owned;
    return 0;
}

static json_t *read_string_value(reader *r) {
    const char *s, *at = r->p;
    size_t len;
    char *owned;
    if (read_string(r, &s, &len, &owned))
        return NULL;
    json_t *v = json_stringn_nocheck(s, len);
    free(owned);
    return v ? v : fail_at(r, at, "out of memory");
}

/* ---- containers ---- */

/* After a member or element: ',' (true, more follow) or the closing char (false). */
static int next_item(reader *r, char close, const char *what) {
    skip_space(r);
    if (r->p < r->end && *r->p == ',') {
        r->p++;
        skip_space(r);
        return 1;
    }
    if (r->p < r->end && *r->p == close) {
        r->p++;
        return 0;
    }
    return fail_at(r, r->p, "expected ',' or '%c' in %s", close, what), -1;
}

static json_t *read_array(reader *r) {
    json_t *a = json_array();
    if (!a)
        return fail_at(r, r->p, "out of memory");
    r->p++;
    skip_space(r);
    int more = 1;
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        more = 0;
    }
    while (more > 0) {
        json_t *v = read_value(r);
        if (!v || json_array_append_new(a, v))
            more = v ? (fail_at(r, r->p, "out of memory"), -1) : -1;
        else
            more = next_item(r, ']', "array");
    }
    if (more < 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}

/* ---- typed series (see json_read.h) ---- */

typedef struct numbers_entry {
    json_t *placeholder; /* a reference: its address stays unique while we live */
    proto_number_array array;
} numbers_entry;

struct proto_numbers {
    numbers_entry *entries;
    size_t n, cap;
    size_t cursor; /* where the last find ended: batch members are looked up in order */
};

/* A growing array of doubles. */
typedef struct double_buf {
    double *v;
    size_t n, cap;
} double_buf;

static int double_buf_push(double_buf *b, double x) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        double *v = realloc(b->v, cap * sizeof *v);
        if (!v)
            return -1;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = x;
    return 0;
}

/* One element: a number, converted as read_number() converts it, or null (NaN). */
static int read_typed_element(reader *r, double_buf *b) {
    if (r->p < r->end && *r->p == 'n') {
        if (r->end - r->p < 4 || memcmp(r->p, "null", 4))
            return -1;
        r->p += 4;
        return double_buf_push(b, NAN);
    }
    number_scan n;
    number_value value;
    if (scan_number(r, &n) || convert_number(r, &n, &value))
        return -1;
    return double_buf_push(b, number_as_double(&value));
}

/* A non-empty [e, e, ...] at r->p (at its '['): appends its elements, counts them. */
static int read_typed_row(reader *r, double_buf *b, size_t *count) {
    size_t first = b->n;
    r->p++;
    skip_space(r);
    int more = 1;
    while (more > 0)
        more = read_typed_element(r, b) ? -1 : next_item(r, ']', "array");
    *count = b->n - first;
    return more;
}

/* [[e, ...], ...] at r->p: non-empty rows of one length. */
static int read_typed_rows(reader *r, double_buf *b, proto_number_array *a) {
    r->p++;
    skip_space(r);
    int more = 1;
    while (more > 0) {
        size_t count;
        if (r->p >= r->end || *r->p != '[' || read_typed_row(r, b, &count))
            return -1;
        if (a->n_rows++ > 0 && count != a->n_cols)
            return -1;
        a->n_cols = count;
        more = next_item(r, ']', "array");
    }
    return more;
}

/*
 * Reads the array at r->p typed into *a (values malloc'd). -1 when it is not
 * of a typed shape or has any problem: then nothing was reported, r->p is back
 * at the array and the generic reader reads it (and reports what it finds).
 */
static int read_typed(reader *r, proto_number_array *a) {
    const char *start = r->p;
    json_error_t *err = r->err;
    double_buf b = {0};
    /* The array, its rows and their elements count towards the depth as values. */
    if (r->depth + 3 > JSON_PARSER_MAX_DEPTH)
        return -1;
    *a = (proto_number_array){0};
    r->err = NULL; /* a failed attempt reports nothing */
    const char *q = start + 1;
    while (q < r->end && (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t'))
        q++;
    a->nested = q < r->end && *q == '[';
    int rc = a->nested ? read_typed_rows(r, &b, a) : read_typed_row(r, &b, &a->n_cols);
    if (!a->nested)
        a->n_rows = 1;
    r->err = err;
    if (rc || b.n == 0) {
        free(b.v);
        r->p = start;
        return -1;
    }
    a->values = b.v;
    return 0;
}

/* Registers a typed series; returns its placeholder, or NULL when out of memory. */
static json_t *add_numbers(reader *r, proto_number_array *a) {
    proto_numbers *nums = *r->numbers;
    if (!nums && !(nums = *r->numbers = calloc(1, sizeof *nums)))
        return NULL;
    if (nums->n == nums->cap) {
        size_t cap = nums->cap ? 2 * nums->cap : 4;
        numbers_entry *e = realloc(nums->entries, cap * sizeof *e);
        if (!e)
            return NULL;
        nums->entries = e;
        nums->cap = cap;
    }
    json_t *placeholder = json_array();
    if (!placeholder)
        return NULL;
    nums->entries[nums->n++] = (numbers_entry){json_incref(placeholder), *a};
    return placeholder;
}

/* The value of a "series" member: typed when it can be, else as any other value. */
static json_t *read_series(reader *r) {
    proto_number_array a;
    if (r->p >= r->end || *r->p != '[' || read_typed(r, &a))
        return read_value(r);
    json_t *placeholder = add_numbers(r, &a);
    if (!placeholder) {
        free((double *)a.values);
        return fail_at(r, r->p, "out of memory");
    }
    return placeholder;
}

bool proto_numbers_find(proto_numbers *numbers, const json_t *array, proto_number_array *out) {
    if (!numbers || !array)
        return false;
    for (size_t k = 0; k < numbers->n; k++) {
        size_t i = (numbers->cursor + k) % numbers->n;
        if (numbers->entries[i].placeholder == array) {
            numbers->cursor = i + 1;
            *out = numbers->entries[i].array;
            return true;
        }
    }
    return false;
}

void proto_numbers_free(proto_numbers *numbers) {
    if (!numbers)
        return;
    for (size_t i = 0; i < numbers->n; i++) {
        json_decref(numbers->entries[i].placeholder);
        free((double *)numbers->entries[i].array.values);
    }
    free(numbers->entries);
    free(numbers);
}

/* ---- objects ---- */

static int read_member(reader *r, json_t *o) {
    if (r->p >= r->end || *r->p != '"')
        return fail_at(r, r->p, "expected a string key in object"), -1;
    const char *key;
    size_t key_len;
    char *owned;
    if (read_string(r, &key, &key_len, &owned))
        return -1;
    skip_space(r);
    int rc = -1;
    if (r->p >= r->end || *r->p != ':') {
        fail_at(r, r->p, "expected ':' after an object key");
    } else {
        r->p++;
        skip_space(r);
        bool series = r->numbers && key_len == 6 && !memcmp(key, "series", 6);
        json_t *v = series ? read_series(r) : read_value(r);
        /* setn_new steals v even on failure; a later duplicate replaces the earlier value. */
        if (v && json_object_setn_new_nocheck(o, key, key_len, v))
            fail_at(r, r->p, "out of memory");
        else
            rc = v ? 0 : -1;
    }
    free(owned);
    return rc;
}

static json_t *read_object(reader *r) {
    json_t *o = json_object();
    if (!o)
        return fail_at(r, r->p, "out of memory");
    r->p++;
    skip_space(r);
    int more = 1;
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        more = 0;
    }
    while (more > 0)
        more = read_member(r, o) ? -1 : next_item(r, '}', "object");
    if (more < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- values ---- */

static json_t *read_literal(reader *r, const char *word, json_t *value) {
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n))
        return fail_at(r, r->p, "invalid token");
    r->p += n;
    return value;
}

static json_t *read_scalar_or_container(reader *r) {
    if (r->p >= r->end)
        return fail_at(r, r->p, "unexpected end of input: a value was expected");
    switch (*r->p) {
    case '{':
        return read_object(r);
    case '[':
        return read_array(r);
    case '"':
        return read_string_value(r);
    case 't':
        return read_literal(r, "true", json_true());
    case 'f':
        return read_literal(r, "false", json_false());
    case 'n':
        return read_literal(r, "null", json_null());
    default:
        if (*r->p == '-' || is_digit(*r->p))
            return read_number(r);
        return fail_at(r, r->p, "invalid token");
    }
}

/* Depth counts every value, scalars too, as jansson's does. */
static json_t *read_value(reader *r) {
    if (++r->depth > JSON_PARSER_MAX_DEPTH)
        return fail_at(r, r->p, "nesting deeper than %d levels", JSON_PARSER_MAX_DEPTH);
    json_t *v = read_scalar_or_container(r);
    r->depth--;
    return v;
}

static json_t *read_document(reader *r) {
    skip_space(r);
    json_t *v = read_value(r);
    if (!v)
        return NULL;
    skip_space(r);
    if (r->p != r->end) {
        json_decref(v);
        return fail_at(r, r->p, "unexpected text after the JSON value");
    }
    return v;
}

json_t *proto_json_read(const char *text, size_t len, json_error_t *err) {
    reader r = {.start = text, .p = text, .end = text + len, .err = err};
    return read_document(&r);
}

json_t *proto_json_read_numbers(const char *text, size_t len, json_error_t *err,
                                proto_numbers **numbers) {
    *numbers = NULL;
    reader r = {.start = text, .p = text, .end = text + len, .err = err, .numbers = numbers};
    json_t *v = read_document(&r);
    if (!v) {
        proto_numbers_free(*numbers);
        *numbers = NULL;
    }
    return v;
}
