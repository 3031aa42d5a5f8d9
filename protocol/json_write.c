/* json_write.c - JSON text straight into one buffer, as json_dumps writes it (see json_write.h). */
#include "json_write.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

/* Room for any one number (a real, with its NUL while snprintf writes it, or an integer). */
#define NUMBER_ROOM 32

void proto_text_init(proto_text *t) {
    memset(t, 0, sizeof *t);
}

static void set_failed(proto_text *t) {
    t->failed = true;
}

void proto_text_reserve(proto_text *t, size_t more) {
    if (t->failed || t->cap - t->len > more) /* '>': one byte stays free for the final NUL */
        return;
    size_t cap = t->cap ? t->cap : 256;
    while (cap - t->len <= more) {
        if (cap > SIZE_MAX / 2) {
            set_failed(t);
            return;
        }
        cap *= 2;
    }
    char *data = realloc(t->data, cap);
    if (!data) {
        set_failed(t);
        return;
    }
    t->data = data;
    t->cap = cap;
}

void proto_text_raw(proto_text *t, const char *s, size_t n) {
    proto_text_reserve(t, n);
    if (t->failed)
        return;
    memcpy(t->data + t->len, s, n);
    t->len += n;
}

/* ---- reals ---- */

#define SIGNIFICANT 17 /* JSON_REAL_PRECISION(17): what a float64 reader needs to get x back */

/*
 * "%.17g" reshaped as jansson's jsonp_dtostr() reshapes it: ".0" when there
 * is neither '.' nor 'e' (so that a reader sees a real again), and the
 * exponent without its '+' and leading zeros. out has NUMBER_ROOM bytes.
 */
static size_t format_real_printf(char *out, double x) {
    size_t n = (size_t)snprintf(out, NUMBER_ROOM, "%.17g", x);
    char *e = memchr(out, 'e', n);
    if (!e) {
        if (!memchr(out, '.', n)) {
            out[n++] = '.';
            out[n++] = '0';
        }
        return n;
    }
    const char *from = e + 1, *end = out + n;
    char *to = e + 1;
    if (*from == '-')
        *to++ = *from++;
    else if (*from == '+')
        from++;
    while (from < end && *from == '0')
        from++;
    while (from < end)
        *to++ = *from++;
    return (size_t)(to - out);
}

/* Decimal digits of v into out, no leading zeros; returns how many. */
static int u64_digits(uint64_t v, char *out) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

#ifdef __SIZEOF_INT128__
/*
 * printf("%.17g") costs about half a microsecond a number (glibc formats with
 * multiple-precision arithmetic), most of a forecast's answer. Below, the same
 * digits from exact integer arithmetic: every double in the range that
 * forecasts live in is an integer part and a binary fraction of at most 124
 * bits, so its decimal digits come one at a time from exact multiplications
 * of the fraction by 10 in 128 bits; rounding to 17 digits is then exact too,
 * half to even as printf rounds. The rest (|x| >= 2^128, or fractions finer
 * than 2^-124: |x| below about 1e-21 with a full significand) goes to printf.
 */
__extension__ typedef unsigned __int128 u128;

/* The same for 128 bits, 19 digits (what a uint64 holds in full) at a time. */
static int u128_digits(u128 v, char *out) {
    const uint64_t chunk = UINT64_C(10000000000000000000); /* 10^19 */
    if (v <= UINT64_MAX)
        return u64_digits((uint64_t)v, out);
    int n = u128_digits(v / chunk, out);
    uint64_t low = (uint64_t)(v % chunk);
    for (int i = 18; i >= 0; i--) {
        out[n + i] = (char)('0' + low % 10);
        low /= 10;
    }
    return n + 19;
}

/*
 * The first SIGNIFICANT + 1 significant digits of |x| (finite, not zero),
 * exactly, or all of them when there are fewer. *exp10: the decimal exponent
 * of the first; *inexact: nonzero digits follow the last one given. Returns
 * how many, or 0 when x is out of range (above).
 */
static int exact_digits(double x, char *d, int *exp10, bool *inexact) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    int biased = (int)(bits >> 52 & 0x7FF);
    uint64_t m = bits & ((UINT64_C(1) << 52) - 1);
    int e = biased ? biased - 1075 : -1074; /* x = m * 2^e */
    if (biased)
        m |= UINT64_C(1) << 52;
    while (!(m & 1)) { /* the fewest fraction bits */
        m >>= 1;
        e++;
    }
    *inexact = false;
    if (e >= 0) { /* an integer: m << e must fit 128 bits */
        if (e > 128 - (64 - __builtin_clzll(m)))
            return 0;
        int n = u128_digits((u128)m << e, d);
        *exp10 = n - 1;
        return n;
    }
    int q = -e;
    if (q > 124)
        return 0;
    u128 mask = ((u128)1 << q) - 1, fraction = (u128)m & mask;
    uint64_t whole = (uint64_t)((u128)m >> q);
    int n = whole ? u64_digits(whole, d) : 0;
    *exp10 = n - 1;
    if (q <= 60) { /* the common case: fraction * 10 fits 64 bits, a cheaper loop */
        uint64_t f = (uint64_t)fraction, mask64 = (uint64_t)mask;
        while (f && n <= SIGNIFICANT) {
            f *= 10;
            int digit = (int)(f >> q);
            f &= mask64;
            if (n == 0 && digit == 0)
                (*exp10)--;
            else
                d[n++] = (char)('0' + digit);
        }
        *inexact = f != 0;
        return n;
    }
    while (fraction && n <= SIGNIFICANT) {
        fraction *= 10; /* < 2^(q + 4): exact */
        int digit = (int)(fraction >> q);
        fraction &= mask;
        if (n == 0 && digit == 0)
            (*exp10)--; /* a zero before the first significant digit */
        else
            d[n++] = (char)('0' + digit);
    }
    *inexact = fraction != 0;
    return n;
}
#else
static int exact_digits(double x, char *d, int *exp10, bool *inexact) {
    (void)x, (void)d, (void)exp10, (void)inexact;
    return 0; /* without 128-bit integers, printf does it all */
}
#endif

/*
 * Rounds d[0..n) (exact digits, then *inexact) to SIGNIFICANT digits, half to
 * even as printf rounds, and drops trailing zeros as %g does. A carry out of
 * all nines (9.99...9|5 -> 10) moves *exp10. Returns the new count.
 */
static int round_digits(char *d, int n, int *exp10, bool inexact) {
    if (n > SIGNIFICANT) {
        bool rest = inexact;
        for (int i = SIGNIFICANT + 1; i < n; i++)
            rest |= d[i] != '0';
        char next = d[SIGNIFICANT];
        bool odd = (d[SIGNIFICANT - 1] - '0') % 2 == 1;
        n = SIGNIFICANT;
        if (next > '5' || (next == '5' && (rest || odd))) {
            int i = n - 1;
            while (i >= 0 && d[i] == '9')
                d[i--] = '0';
            if (i >= 0) {
                d[i]++;
            } else {
                d[0] = '1';
                (*exp10)++;
            }
        }
    }
    while (n > 1 && d[n - 1] == '0')
        n--;
    return n;
}

/*
 * "%.17g" of the digits d[0..n) times 10^exp10, reshaped as jansson does:
 * %g's e-style below 1e-4 and from 1e17 (exponent without '+' or leading
 * zeros), else its f-style with ".0" for an integer.
 */
static size_t layout_real(char *out, bool negative, const char *d, int n, int exp10) {
    char *p = out;
    if (negative)
        *p++ = '-';
    if (exp10 < -4 || exp10 >= SIGNIFICANT) {
        *p++ = d[0];
        if (n > 1) {
            *p++ = '.';
            memcpy(p, d + 1, (size_t)n - 1);
            p += n - 1;
        }
        *p++ = 'e';
        if (exp10 < 0)
            *p++ = '-';
        p += u64_digits((uint64_t)(exp10 < 0 ? -exp10 : exp10), p);
    } else if (exp10 >= 0) {
        for (int i = 0; i <= exp10; i++)
            *p++ = i < n ? d[i] : '0';
        *p++ = '.';
        if (n > exp10 + 1) {
            memcpy(p, d + exp10 + 1, (size_t)(n - exp10 - 1));
            p += n - exp10 - 1;
        } else {
            *p++ = '0';
        }
    } else {
        *p++ = '0';
        *p++ = '.';
        for (int i = -1; i > exp10; i--)
            *p++ = '0';
        memcpy(p, d, (size_t)n);
        p += n;
    }
    return (size_t)(p - out);
}

/* A finite x as jansson writes it; out has NUMBER_ROOM bytes. */
static size_t format_real(char *out, double x) {
    char d[48];
    int exp10;
    bool inexact;
    if (x == 0) { /* printf: "0" or "-0"; jansson adds ".0" */
        size_t n = signbit(x) ? 4 : 3;
        memcpy(out, signbit(x) ? "-0.0" : "0.0", n);
        return n;
    }
    int n = exact_digits(x, d, &exp10, &inexact);
    if (n == 0)
        return format_real_printf(out, x);
    n = round_digits(d, n, &exp10, inexact);
    return layout_real(out, x < 0, d, n, exp10);
}

void proto_text_real(proto_text *t, double x) {
    if (!isfinite(x)) {
        proto_text_literal(t, "null");
        return;
    }
    proto_text_reserve(t, NUMBER_ROOM);
    if (!t->failed)
        t->len += format_real(t->data + t->len, x);
}

void proto_text_integer(proto_text *t, json_int_t i) {
    char digits[24];
    size_t n = 0;
    /* Unsigned, so that the most negative value has a magnitude too. */
    unsigned long long u = i < 0 ? 0ULL - (unsigned long long)i : (unsigned long long)i;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    proto_text_reserve(t, NUMBER_ROOM);
    if (t->failed)
        return;
    char *out = t->data + t->len;
    if (i < 0)
        *out++ = '-';
    while (n)
        *out++ = digits[--n];
    t->len = (size_t)(out - t->data);
}

/* One ASCII byte of a string, escaped as jansson's dump_string() escapes it. */
static char *put_ascii(char *out, unsigned char c) {
    static const char hex[] = "0123456789ABCDEF";
    if (c >= 0x20 && c != '"' && c != '\\') {
        *out++ = (char)c;
        return out;
    }
    *out++ = '\\';
    switch (c) {
    case '"':
    case '\\':
        *out++ = (char)c;
        break;
    case '\b':
        *out++ = 'b';
        break;
    case '\f':
        *out++ = 'f';
        break;
    case '\n':
        *out++ = 'n';
        break;
    case '\r':
        *out++ = 'r';
        break;
    case '\t':
        *out++ = 't';
        break;
    default:
        memcpy(out, "u00", 3);
        out[3] = hex[c >> 4];
        out[4] = hex[c & 0xF];
        out += 5;
    }
    return out;
}

void proto_text_string(proto_text *t, const char *s, size_t n) {
    if (n > (SIZE_MAX - 2) / 6) {
        set_failed(t);
        return;
    }
    proto_text_reserve(t, 2 + 6 * n); /* at worst every byte becomes \u00XX */
    if (t->failed)
        return;
    char *out = t->data + t->len;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    *out++ = '"';
    while (p < end) {
        if (*p < 0x80) {
            out = put_ascii(out, *p++);
            continue;
        }
        int k = proto_utf8_length(p, end);
        if (!k) {
            set_failed(t); /* t->len unchanged: nothing half-written counts */
            return;
        }
        memcpy(out, p, (size_t)k);
        out += k;
        p += k;
    }
    *out++ = '"';
    t->len = (size_t)(out - t->data);
}

static void write_array(proto_text *t, const json_t *v) {
    proto_text_literal(t, "[");
    for (size_t i = 0; i < json_array_size(v); i++) {
        if (i > 0)
            proto_text_literal(t, ",");
        proto_text_value(t, json_array_get(v, i));
    }
    proto_text_literal(t, "]");
}

/* Members in iteration order, which in jansson 2.14 is insertion order (JSON_PRESERVE_ORDER). */
static void write_object(proto_text *t, const json_t *v) {
    proto_text_literal(t, "{");
    bool first = true;
    for (void *it = json_object_iter((json_t *)v); it;
         it = json_object_iter_next((json_t *)v, it)) {
        if (!first)
            proto_text_literal(t, ",");
        first = false;
        proto_text_string(t, json_object_iter_key(it), json_object_iter_key_len(it));
        proto_text_literal(t, ":");
        proto_text_value(t, json_object_iter_value(it));
    }
    proto_text_literal(t, "}");
}

void proto_text_value(proto_text *t, const json_t *v) {
    if (!v) { /* json_dumps fails on it */
        set_failed(t);
        return;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        write_object(t, v);
        break;
    case JSON_ARRAY:
        write_array(t, v);
        break;
    case JSON_STRING:
        proto_text_string(t, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        proto_text_integer(t, json_integer_value(v));
        break;
    case JSON_REAL:
        proto_text_real(t, json_real_value(v));
        break;
    case JSON_TRUE:
        proto_text_literal(t, "true");
        break;
    case JSON_FALSE:
        proto_text_literal(t, "false");
        break;
    case JSON_NULL:
        proto_text_literal(t, "null");
        break;
    }
}

char *proto_text_finish(proto_text *t, size_t *len) {
    proto_text_reserve(t, 0);
    if (t->failed) {
        proto_text_free(t);
        return NULL;
    }
    char *data = t->data;
    data[t->len] = '\0';
    if (len)
        *len = t->len;
    memset(t, 0, sizeof *t);
    return data;
}

void proto_text_free(proto_text *t) {
    free(t->data);
    memset(t, 0, sizeof *t);
}
