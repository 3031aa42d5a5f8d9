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

/*
 * "%.17g" reshaped as jansson's jsonp_dtostr() reshapes it: ".0" when there
 * is neither '.' nor 'e' (so that a reader sees a real again), and the
 * exponent without its '+' and leading zeros. out has NUMBER_ROOM bytes.
 */
static size_t format_real(char *out, double x) {
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
