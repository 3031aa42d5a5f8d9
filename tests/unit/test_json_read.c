/*
 * test_json_read.c - protocol/json_read.c against jansson's own parser:
 * the same documents accepted and rejected, and the same values built, reals
 * bit for bit; numbers against strtod(); nesting limits; error positions.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_random.h"
#include "json_read.h"
#include "json_same.h"
#include "tap.h"

/* Both parsers on text: 1 same value, 0 both reject, -1 they disagree. */
static int compare(const char *text, size_t len) {
    json_error_t e1, e2;
    json_t *ours = proto_json_read(text, len, &e1);
    json_t *theirs = json_loadb(text, len, JSON_DECODE_ANY, &e2);
    int rc = !ours && !theirs ? 0 : ours && theirs && json_same(ours, theirs) ? 1 : -1;
    json_decref(ours);
    json_decref(theirs);
    return rc;
}

static void check_all(const char *const *docs, size_t n, int want, const char *what) {
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (compare(docs[i], strlen(docs[i])) != want) {
            if (bad++ < 5)
                tap_diag("%s: %s", what, docs[i]);
        }
    tap_check(bad == 0, "%s: %zu documents, %d differ from jansson", what, n, bad);
}

static const char *const kValid[] = {
    "{}",
    "[]",
    " [ ] ",
    "0",
    "-0",
    "-0.0",
    "0.0",
    "1",
    "-1",
    "true",
    "false",
    "null",
    "\"\"",
    "9223372036854775807",
    "-9223372036854775808",
    "999999999999999999",
    "1e5",
    "1E+5",
    "1e-5",
    "123456789012345678901234567890.5",
    "1e308",
    "1.7976931348623157e308",
    "4.9e-324",
    "1e-400",
    "2.2250738585072011e-308",
    "0.1",
    "0.30000000000000004",
    "9007199254740993.0",
    "9007199254740992",
    "18446744073709551615e0",
    "1234567890123456789e-5",
    "12345678901234567890e-5",
    "0.000000000000000000000000000001",
    "123e-22",
    "123e22",
    "123e23",
    "1.5e-23",
    "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
    "\"\\u00e9\\u4e2d\\ud83d\\ude00\"",
    "\"é中😀\"",
    "{\"a\":1,\"a\":2}",
    "{\"\\u00e9\":[1,{\"b\":null}]}",
    "[1,2.5,\"x\",true,false,null,[],{}]",
    "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"forecast\",\"params\":{\"series\":[[1,2,3.5]]}}",
    "\t\r\n[\t1\r,\n2 ]\n",
};

static const char *const kInvalid[] = {
    "",
    " ",
    "[",
    "]",
    "{",
    "[1,]",
    "[,1]",
    "{\"a\"}",
    "{\"a\":}",
    "{a:1}",
    "{\"a\":1,}",
    "01",
    "-",
    "1.",
    ".5",
    "1e",
    "1e+",
    "+1",
    "0x10",
    "NaN",
    "Infinity",
    "-Infinity",
    "tru",
    "nul",
    "truex",
    "[1 2]",
    "{\"a\":1 \"b\":2}",
    "\"abc",
    "\"\\x\"",
    "\"\\u12\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\udc00\"",
    "\"\\ud800\\u0041\"",
    "\"a\x01b\"",
    "\"\xff\"",
    "\"\xc0\xaf\"",
    "\"\xed\xa0\x80\"",
    "\"\xf4\x90\x80\x80\"",
    "\"\xe2\x82\"",
    "1e400",
    "-1e400",
    "9223372036854775808",
    "-9223372036854775809",
    "[1] [2]",
    "{} x",
    "[1]]",
    "\"a\"\"b\"",
    "[\"\\",
};

static void test_corpus(void) {
    check_all(kValid, sizeof kValid / sizeof *kValid, 1, "valid corpus");
    check_all(kInvalid, sizeof kInvalid / sizeof *kInvalid, 0, "invalid corpus");
}

static void test_numbers(void) {
    uint64_t s = 0x9E3779B97F4A7C15u;
    int n = 200000, bad = 0, real_bad = 0;
    char text[128];
    for (int i = 0; i < n; i++) {
        random_number(&s, text, sizeof text);
        /* Integers beyond 64 bits are rejected by both. */
        if (compare(text, strlen(text)) < 0 && bad++ < 5)
            tap_diag("number differs from jansson: %s", text);
        json_t *v = proto_json_read(text, strlen(text), NULL);
        if (!json_is_real(v)) {
            json_decref(v);
            continue;
        }
        double want = strtod(text, NULL), got = json_real_value(v);
        if (memcmp(&want, &got, sizeof got) && real_bad++ < 5)
            tap_diag("number differs from strtod: %s", text);
        json_decref(v);
    }
    tap_check(bad == 0, "%d random numbers: the values jansson builds (%d differ)", n, bad);
    tap_check(real_bad == 0, "%d random numbers: bit-identical to strtod (%d differ)", n, real_bad);
}

static const char *const kSeeds[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":\"a\\u00e9\",\"method\":\"forecast\",\"params\":{\"series\":[[1.5,"
    "-2e3,0.125,7],[1,2,3,4]],\"prediction_length\":8,\"quantiles\":[0.1,0.9],\"x\":[true,false,"
    "null,{}]}}",
    "[{\"id\":1,\"method\":\"health\"},{\"id\":-0.0,\"s\":\"\\ud83d\\ude00\\n\"}]",
};

/* Random edits of valid documents: both parsers must still agree on every one. */
static void test_mutations(void) {
    static const char alphabet[] = "{}[],:\"\\0123456789-+.eEtrufalsn \t\nux\x01\xc3\xa9\xed\xff";
    uint64_t s = 12345;
    int n = 60000, bad = 0;
    char buf[512];
    for (int i = 0; i < n; i++) {
        const char *seed = kSeeds[i % 2];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        len = mutate(&s, buf, len, sizeof buf, alphabet, sizeof alphabet - 1);
        if (compare(buf, len) < 0 && bad++ < 5)
            tap_diag("mutation differs: %.*s", (int)len, buf);
    }
    tap_check(bad == 0, "%d mutated documents: accepted and rejected as jansson does (%d differ)",
              n, bad);
}

static char *nested(int depth, const char *leaf) {
    size_t leaf_len = strlen(leaf);
    char *t = malloc(2 * (size_t)depth + leaf_len + 1);
    memset(t, '[', (size_t)depth);
    memcpy(t + depth, leaf, leaf_len);
    memset(t + depth + leaf_len, ']', (size_t)depth);
    t[2 * depth + leaf_len] = '\0';
    return t;
}

static void test_depth(void) {
    int cases[][2] = {{JSON_PARSER_MAX_DEPTH, 0},
                      {JSON_PARSER_MAX_DEPTH - 1, 1},
                      {JSON_PARSER_MAX_DEPTH, 1},
                      {JSON_PARSER_MAX_DEPTH + 1, 0},
                      {100000, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t = nested(cases[i][0], cases[i][1] ? "1" : "");
        json_error_t e;
        json_t *v = proto_json_read(t, strlen(t), &e);
        int agree = compare(t, strlen(t));
        tap_check(agree >= 0, "%d nested arrays%s: %s, as jansson", cases[i][0],
                  cases[i][1] ? " around a number" : "", v ? "accepted" : e.text);
        json_decref(v);
        free(t);
    }
}

static void test_errors(void) {
    struct {
        const char *text;
        int position;
        const char *words;
    } cases[] = {
        {"[1,2,x]", 5, "invalid token"},         {"{\"a\":01}", 5, "leading zero"},
        {"[\"a\x01\"]", 3, "control character"}, {"[1e999]", 1, "overflow"},
        {"[1] 2", 4, "after the JSON value"},    {"\"\\u0000\"", 1, "\\u0000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_error_t e;
        json_t *v = proto_json_read(cases[i].text, strlen(cases[i].text), &e);
        tap_check(!v && e.position == cases[i].position && strstr(e.text, cases[i].words),
                  "error for %s at byte %d: %s", cases[i].text, e.position, e.text);
        json_decref(v);
    }
}

/* An error message quotes input bytes only when they are printable ASCII. */
static void test_message_is_utf8(void) {
    const char text[] = "{\"a\":\"\\\xc3\"}";
    json_error_t e;
    json_t *v = proto_json_read(text, strlen(text), &e);
    bool ascii = true;
    for (const char *p = e.text; *p; p++)
        ascii &= (unsigned char)*p < 0x80;
    tap_check(!v && ascii && strstr(e.text, "0xC3"),
              "an escape of a non-ASCII byte: an ASCII message naming the byte: %s", e.text);
    json_decref(v);
}

/* Stricter than jansson, which stops reading at a NUL byte. */
static void test_nul_byte(void) {
    json_error_t e;
    json_t *v = proto_json_read("[2]\0", 4, &e);
    tap_check(!v && e.position == 3, "a NUL byte after the value is an error at byte 3: %s",
              v ? "accepted" : e.text);
    json_decref(v);
}

int main(void) {
    test_corpus();
    test_numbers();
    test_mutations();
    test_depth();
    test_errors();
    test_nul_byte();
    test_message_is_utf8();
    return tap_done();
}
