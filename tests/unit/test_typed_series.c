/*
 * test_typed_series.c - the typed series road (proto_json_read_numbers() and
 * proto_forecast_parse_numbers()) against the generic one (proto_json_read()
 * and proto_forecast_parse()), which it must not be told apart from: the
 * same documents refused with the same error and position, the same values
 * everywhere but in the placeholders, whose numbers must be the generic
 * values bit for bit, and for every forecast params in a document (an HTTP
 * body, a JSON-RPC request, each member of a batch) the same request or the
 * same refusal, message and field. Over a corpus of shapes, elements, errors
 * and places, random params, mutations of them, and nesting at the limit.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forecast_codec.h"
#include "json_random.h"
#include "json_read.h"
#include "json_same.h"
#include "tap.h"

/* ---- comparing the two roads ---- */

typedef struct tally {
    int docs, bad, typed; /* typed: placeholders seen */
} tally;

static bool same_bits(double a, double b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

/* One generic element against its typed double: a number's value, or null as NaN. */
static bool same_element(const json_t *g, double x) {
    if (json_is_null(g))
        return same_bits(x, NAN);
    return json_is_number(g) && same_bits(json_number_value(g), x);
}

/* The generic array g holds exactly the numbers of the typed series a. */
static bool same_numbers(const json_t *g, const proto_number_array *a) {
    if (!json_is_array(g) || json_array_size(g) != (a->nested ? a->n_rows : a->n_cols))
        return false;
    if (!a->nested)
        for (size_t t = 0; t < a->n_cols; t++)
            if (!same_element(json_array_get(g, t), a->values[t]))
                return false;
    for (size_t r = 0; a->nested && r < a->n_rows; r++) {
        const json_t *row = json_array_get(g, r);
        if (!json_is_array(row) || json_array_size(row) != a->n_cols)
            return false;
        for (size_t t = 0; t < a->n_cols; t++)
            if (!same_element(json_array_get(row, t), a->values[r * a->n_cols + t]))
                return false;
    }
    return true;
}

/* g (generic) and t (typed) are the same document, the placeholders aside. */
static bool same_tree(const json_t *g, const json_t *t, proto_numbers *nums, tally *n) {
    if (json_typeof(g) != json_typeof(t))
        return false;
    if (json_is_array(g)) {
        if (json_array_size(g) != json_array_size(t))
            return false;
        for (size_t i = 0; i < json_array_size(g); i++)
            if (!same_tree(json_array_get(g, i), json_array_get(t, i), nums, n))
                return false;
        return true;
    }
    if (!json_is_object(g))
        return json_same(g, t);
    if (json_object_size(g) != json_object_size(t))
        return false;
    const char *key;
    json_t *gv;
    json_object_foreach((json_t *)g, key, gv) {
        const json_t *tv = json_object_get(t, key);
        proto_number_array a;
        if (!tv)
            return false;
        if (!strcmp(key, "series") && proto_numbers_find(nums, tv, &a)) {
            n->typed++;
            if (json_array_size(tv) != 0 || !same_numbers(gv, &a))
                return false;
        } else if (!same_tree(gv, tv, nums, n)) {
            return false;
        }
    }
    return true;
}

static bool same_request(const toto_request *a, const toto_request *b) {
    size_t n = (size_t)a->n_variates * (size_t)a->n_steps;
    return a->n_variates == b->n_variates && a->n_steps == b->n_steps &&
           a->prediction_length == b->prediction_length && a->num_samples == b->num_samples &&
           a->n_quantiles == b->n_quantiles && a->seed == b->seed &&
           a->return_samples == b->return_samples && a->values && b->values &&
           !memcmp(a->values, b->values, n * sizeof *a->values) && !a->groups == !b->groups &&
           (!a->groups ||
            !memcmp(a->groups, b->groups, (size_t)a->n_variates * sizeof *a->groups)) &&
           !a->quantile_levels == !b->quantile_levels &&
           (!a->quantile_levels || !memcmp(a->quantile_levels, b->quantile_levels,
                                           (size_t)a->n_quantiles * sizeof(double)));
}

/* Both parses of one params: the same request, or the same refusal. */
static bool same_parse(const json_t *g, const json_t *t, proto_numbers *nums, char *why,
                       size_t why_len) {
    proto_forecast_request rg, rt;
    proto_error eg, et;
    int cg = proto_forecast_parse(g, &rg, &eg),
        ct = proto_forecast_parse_numbers(t, nums, &rt, &et);
    bool same = cg == ct && (cg ? eg.code == et.code && !strcmp(eg.message, et.message) &&
                                      !strcmp(eg.field, et.field)
                                : same_request(&rg.req, &rt.req));
    if (!same)
        snprintf(why, why_len, "generic %d \"%s\" [%s], typed %d \"%s\" [%s]", cg,
                 cg ? eg.message : "ok", cg ? eg.field : "", ct, ct ? et.message : "ok",
                 ct ? et.field : "");
    proto_forecast_request_free(&rg);
    proto_forecast_request_free(&rt);
    return same;
}

/* Every place params may be: the document (HTTP), its "params" (JSON-RPC), each member's. */
static bool same_parses(const json_t *g, const json_t *t, proto_numbers *nums, char *why,
                        size_t why_len) {
    if (json_is_array(g)) {
        for (size_t i = 0; i < json_array_size(g); i++)
            if (!same_parses(json_array_get(g, i), json_array_get(t, i), nums, why, why_len))
                return false;
        return true;
    }
    if (!same_parse(g, t, nums, why, why_len))
        return false;
    const json_t *gp = json_object_get(g, "params"), *tp = json_object_get(t, "params");
    return !gp || same_parse(gp, tp, nums, why, why_len);
}

static void compare(const char *text, size_t len, tally *n) {
    json_error_t eg, et;
    proto_numbers *nums = NULL;
    json_t *g = proto_json_read(text, len, &eg);
    json_t *t = proto_json_read_numbers(text, len, &et, &nums);
    char why[1400] = "";
    bool same;
    if (!g || !t)
        same = !g && !t && !nums && eg.position == et.position && !strcmp(eg.text, et.text);
    else if (!(same = same_tree(g, t, nums, n)))
        snprintf(why, sizeof why, "trees differ");
    else
        same = same_parses(g, t, nums, why, sizeof why);
    if (!same && n->bad++ < 5)
        tap_diag("differs (%s): %.*s", why, (int)(len < 300 ? len : 300), text);
    n->docs++;
    json_decref(g);
    json_decref(t);
    proto_numbers_free(nums);
}

/* params as an HTTP body, as a JSON-RPC request, and inside a batch. */
static void compare_everywhere(const char *params, tally *n) {
    size_t len = strlen(params);
    char *doc = malloc(2 * len + 300);
    compare(params, len, n);
    int k =
        snprintf(doc, 2 * len + 300,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"forecast\",\"params\":%s}", params);
    compare(doc, (size_t)k, n);
    k = snprintf(doc, 2 * len + 300,
                 "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"forecast\",\"params\":%s},"
                 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"health\"},"
                 "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"forecast\",\"params\":%s}]",
                 params, params);
    compare(doc, (size_t)k, n);
    free(doc);
}

/* ---- the corpus ---- */

static const char *const kParams[] = {
    /* typed: flat and nested, numbers of every form, null */
    "{\"series\":[1,2.5,-3],\"prediction_length\":4}",
    "{\"series\":[[1,null,3],[4,5.5,12345678901234]],\"prediction_length\":2,\"groups\":[0,-7],"
    "\"num_samples\":8,\"quantiles\":[0.1,0.5,0.9],\"seed\":42,\"return_samples\":true,"
    "\"timeout_ms\":100,\"series_id\":\"x\"}",
    "{\"series\":[[null,1e300,-1e300]],\"prediction_length\":2147483647,\"groups\":[-2147483648],"
    "\"seed\":9223372036854775807,\"num_samples\":null,\"quantiles\":[],\"return_samples\":false}",
    "{\"series\":[-0,-0.0,0,0.0,0e5,-0e-5],\"prediction_length\":1}",
    "{\"series\":[9007199254740993,-9007199254740993,123456789012345678,999999999999999999,"
    "1234567890123456789,-9223372036854775808,9223372036854775807],\"prediction_length\":1}",
    "{\"series\":[1e22,1e23,1.5e-23,4.9e-324,1e-400,2.2250738585072011e-308,"
    "123456789012345678901234567890.5,0.30000000000000004],\"prediction_length\":1}",
    "{\"series\":[null],\"prediction_length\":1}",
    "{\"series\":[[null]],\"prediction_length\":1}",
    "{\"series\":[null,null,null],\"prediction_length\":1}",
    "{\"series\" : [ 1 ,\t2\n,\r3 ] , \"prediction_length\":1}",
    "{\"series\":[ [ 1 , 2 ] , [ 3 , 4 ] ],\"prediction_length\":1}",
    "{\"series\":[\n[1,2]\n,\n[3,4]\n],\"prediction_length\":1}",
    /* typed, refused later */
    "{\"series\":[1,1e301],\"prediction_length\":1}",
    "{\"series\":[[0],[-2e300]],\"prediction_length\":1}",
    "{\"series\":[[0,1],[2,3],[4,1e308]],\"prediction_length\":1}",
    "{\"series\":[1.7976931348623157e308,2e300],\"prediction_length\":1}",
    "{\"series\":[1,2],\"prediction_length\":0}",
    "{\"series\":[[1],[2]],\"prediction_length\":1,\"groups\":[0]}",
    "{\"series\":[[1],[2]],\"prediction_length\":1,\"groups\":[0,2147483648]}",
    "{\"series\":[1,2],\"prediction_length\":1,\"quantiles\":[0.5,0.5]}",
    "{\"series\":[1],\"prediction_length\":1,\"return_samples\":true}",
    "{\"horizon\":3,\"series\":[1,2]}",
    "{\"series\":[1,2]}",
    "{\"series\":[1e301],\"horizon\":3}",
    /* not typed: other shapes and elements */
    "{\"prediction_length\":1}",
    "{\"series\":[],\"prediction_length\":1}",
    "{\"series\":[[]],\"prediction_length\":1}",
    "{\"series\":[[],[]],\"prediction_length\":1}",
    "{\"series\":[[1],[]],\"prediction_length\":1}",
    "{\"series\":[[1,2],[3,4],[5]],\"prediction_length\":1}",
    "{\"series\":[[1,2],3],\"prediction_length\":1}",
    "{\"series\":[[1,2],null],\"prediction_length\":1}",
    "{\"series\":[null,[1]],\"prediction_length\":1}",
    "{\"series\":[1,[2]],\"prediction_length\":1}",
    "{\"series\":[1,\"NaN\"],\"prediction_length\":1}",
    "{\"series\":[1,true],\"prediction_length\":1}",
    "{\"series\":[1,false,1e301],\"prediction_length\":1}",
    "{\"series\":[1e301,false],\"prediction_length\":1}",
    "{\"series\":[[1,2,3,4,5,6,7,8],[1,2,3,4,5,6,7,true]],\"prediction_length\":1}",
    "{\"series\":[[1,2],[3,\"4\"]],\"prediction_length\":1}",
    "{\"series\":[{}],\"prediction_length\":1}",
    "{\"series\":[[[1]]],\"prediction_length\":1}",
    "{\"series\":[[1],[[2]]],\"prediction_length\":1}",
    "{\"series\":{},\"prediction_length\":1}",
    "{\"series\":\"1,2\",\"prediction_length\":1}",
    "{\"series\":1,\"prediction_length\":1}",
    "{\"series\":null,\"prediction_length\":1}",
    "{\"series\":true,\"prediction_length\":1}",
    /* not JSON: the same error, at the same byte */
    "{\"series\":[1,,2],\"prediction_length\":1}",
    "{\"series\":[1 2],\"prediction_length\":1}",
    "{\"series\":[1,2,],\"prediction_length\":1}",
    "{\"series\":[,1],\"prediction_length\":1}",
    "{\"series\":[1,2]],\"prediction_length\":1}",
    "{\"series\":[[1,2],[3,4]]]}",
    "{\"series\":[01],\"prediction_length\":1}",
    "{\"series\":[1.],\"prediction_length\":1}",
    "{\"series\":[.5],\"prediction_length\":1}",
    "{\"series\":[-],\"prediction_length\":1}",
    "{\"series\":[+1],\"prediction_length\":1}",
    "{\"series\":[nul],\"prediction_length\":1}",
    "{\"series\":[nulll],\"prediction_length\":1}",
    "{\"series\":[null1],\"prediction_length\":1}",
    "{\"series\":[NaN],\"prediction_length\":1}",
    "{\"series\":[Infinity],\"prediction_length\":1}",
    "{\"series\":[1e400],\"prediction_length\":1}",
    "{\"series\":[[1],[-1e400]],\"prediction_length\":1}",
    "{\"series\":[99999999999999999999],\"prediction_length\":1}",
    "{\"series\":[-9223372036854775809],\"prediction_length\":1}",
    "{\"series\":[1]x,\"prediction_length\":1}",
    "{\"series\":[1,2",
    "{\"series\":[[1,2],[3",
    "{\"series\":[",
    "{\"series\":[[",
    "{\"series\":[1,\"a\x01\"]}",
    "{\"series\":[1,2]",
    "{\"series\":[1,2]} x",
    /* where "series" is, and which one */
    "{\"series\":[1],\"series\":[[1,2],[3,4]],\"prediction_length\":1}",
    "{\"series\":[[1,2],[3,4]],\"series\":\"x\",\"prediction_length\":1}",
    "{\"series\":\"x\",\"series\":[1,2],\"prediction_length\":1}",
    "{\"series\":[1],\"series\":[1e400],\"prediction_length\":1}",
    "{\"ser\\u0069es\":[1,2],\"prediction_length\":1}",
    "{\"series \":[1],\"prediction_length\":1}",
    "{\"Series\":[1],\"prediction_length\":1}",
    "{\"x\":{\"series\":[1,2]},\"series\":[3],\"prediction_length\":1}",
    "{\"series\":{\"series\":[1]},\"prediction_length\":1}",
    "{\"series_id\":\"series\",\"series\":[1],\"prediction_length\":1}",
    "[1,2,3]",
    "[[1,2],[3,4]]",
    "{\"params\":{\"series\":[1,2],\"prediction_length\":1}}",
};

static void test_corpus(void) {
    tally n = {0};
    size_t count = sizeof kParams / sizeof *kParams;
    for (size_t i = 0; i < count; i++)
        compare_everywhere(kParams[i], &n);
    tap_check(n.bad == 0,
              "corpus: %d documents (%zu params, alone, in a request, in a batch), %d "
              "differ; %d typed series",
              n.docs, count, n.bad, n.typed);
}

/* The typed road is taken where it should be: the reader does not just fall back. */
static void test_typed_taken(void) {
    const char *text = "{\"series\":[[1,null,-2.5],[1e3,4,5]],\"prediction_length\":1}";
    proto_numbers *nums;
    json_t *doc = proto_json_read_numbers(text, strlen(text), NULL, &nums);
    const json_t *series = json_object_get(doc, "series");
    proto_number_array a;
    bool found = proto_numbers_find(nums, series, &a);
    tap_check(found && a.nested && a.n_rows == 2 && a.n_cols == 3 && json_array_size(series) == 0,
              "[[1,null,-2.5],[1e3,4,5]] is read typed: 2 x 3, an empty placeholder in the tree");
    tap_check(found && a.values[0] == 1 && isnan(a.values[1]) && a.values[2] == -2.5 &&
                  a.values[3] == 1000,
              "typed values: 1, NaN for null, -2.5, 1000");
    tap_check(!proto_numbers_find(nums, json_object_get(doc, "prediction_length"), &a) &&
                  !proto_numbers_find(NULL, series, &a),
              "only placeholders are found, and nothing without numbers");
    json_decref(doc);
    proto_numbers_free(nums);

    text = "{\"series\":[1,\"x\"],\"prediction_length\":1}";
    doc = proto_json_read_numbers(text, strlen(text), NULL, &nums);
    tap_check(doc && !nums && json_array_size(json_object_get(doc, "series")) == 2,
              "[1,\"x\"] is read the generic way, with no numbers");
    json_decref(doc);
    proto_numbers_free(nums);
}

/* A batch of many forecasts: each member's series is found (the cursor goes round). */
static void test_batch(void) {
    size_t cap = 64 * 200, len = 0;
    char *text = malloc(cap);
    len += (size_t)snprintf(text, cap, "[");
    for (int i = 0; i < 150; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"forecast\","
                                "\"params\":{\"series\":[%d,%d.5]}}",
                                i ? "," : "", i, i, i);
    snprintf(text + len, cap - len, "]");
    tally n = {0};
    compare(text, strlen(text), &n);
    tap_check(n.bad == 0 && n.typed == 150, "a batch of 150 forecasts: %d typed series, %d differ",
              n.typed, n.bad);
    free(text);
}

/* ---- random params ---- */

typedef struct out {
    char *p;
    size_t len, cap;
} out;

static void put(out *o, const char *s) {
    size_t n = strlen(s);
    if (o->len + n < o->cap) {
        memcpy(o->p + o->len, s, n);
        o->len += n;
        o->p[o->len] = '\0';
    }
}

static void put_space(uint64_t *s, out *o) {
    static const char *const spaces[] = {"", "", "", "", " ", "\n", " \t ", "\r\n"};
    put(o, spaces[rng_next(s) % 8]);
}

/* One element: mostly numbers, some null, now and then something else. */
static void put_element(uint64_t *s, out *o) {
    static const char *const odd[] = {"\"x\"", "true",  "false",  "[]",    "{}",
                                      "[1]",   "1e301", "-2e300", "1e400", "99999999999999999999",
                                      "-0",    "nul",   "1.",     "--1",   "1e"};
    char number[64];
    uint64_t k = rng_next(s) % 100;
    if (k < 88) {
        random_number(s, number, sizeof number);
        put(o, number);
    } else if (k < 96) {
        put(o, "null");
    } else {
        put(o, odd[rng_next(s) % (sizeof odd / sizeof *odd)]);
    }
}

static void put_row(uint64_t *s, out *o, size_t cols) {
    put(o, "[");
    for (size_t t = 0; t < cols; t++) {
        if (t)
            put(o, ",");
        put_space(s, o);
        put_element(s, o);
        put_space(s, o);
    }
    put(o, "]");
}

static void put_series(uint64_t *s, out *o) {
    size_t rows = 1 + rng_next(s) % 4, cols = 1 + rng_next(s) % 30;
    uint64_t kind = rng_next(s) % 20;
    if (kind == 0) {
        put(o, rng_next(s) % 2 ? "\"1,2\"" : "{}");
    } else if (kind < 7) {
        put_row(s, o, cols);
    } else {
        put(o, "[");
        for (size_t r = 0; r < rows; r++) {
            if (r)
                put(o, ",");
            put_space(s, o);
            size_t n = rng_next(s) % 25 == 0 ? rng_next(s) % (cols + 2) : cols; /* ragged */
            put_row(s, o, n);
        }
        put(o, "]");
    }
}

static void put_field(uint64_t *s, out *o, int which, bool *first) {
    static const char *const lengths[] = {"1", "8", "64", "0", "-1", "2.5", "\"8\"", "null"};
    static const char *const extras[] = {"\"num_samples\":16",
                                         "\"quantiles\":[0.1,0.9]",
                                         "\"groups\":[0]",
                                         "\"groups\":[0,1]",
                                         "\"seed\":7",
                                         "\"return_samples\":true",
                                         "\"series_id\":\"cpu\"",
                                         "\"timeout_ms\":5",
                                         "\"horizon\":1",
                                         "\"series\":[1,2]"};
    if (!*first)
        put(o, ",");
    *first = false;
    put_space(s, o);
    if (which == 0) {
        put(o, "\"series\":");
        put_space(s, o);
        put_series(s, o);
    } else if (which == 1) {
        put(o, "\"prediction_length\":");
        put(o, lengths[rng_next(s) % 16 < 12 ? 1 : rng_next(s) % 8]);
    } else {
        put(o, extras[rng_next(s) % (sizeof extras / sizeof *extras)]);
    }
    put_space(s, o);
}

/* A random params object: series, prediction_length and a few others, in any order. */
static void random_params(uint64_t *s, out *o) {
    int fields[4] = {0, 1, 2, 2};
    int n = 2 + (int)(rng_next(s) % 3);
    for (int i = n - 1; i > 0; i--) { /* shuffle */
        int j = (int)(rng_next(s) % (uint64_t)(i + 1)), tmp = fields[i];
        fields[i] = fields[j];
        fields[j] = tmp;
    }
    bool first = true;
    o->len = 0;
    put(o, "{");
    for (int i = 0; i < n; i++)
        put_field(s, o, fields[i], &first);
    put(o, "}");
}

static void test_random(void) {
    uint64_t s = 0xC0FFEE;
    char buf[8192];
    out o = {buf, 0, sizeof buf};
    tally n = {0};
    for (int i = 0; i < 4000; i++) {
        random_params(&s, &o);
        compare_everywhere(o.p, &n);
    }
    tap_check(n.bad == 0, "%d random params documents: %d differ; %d typed series", n.docs, n.bad,
              n.typed);
}

/* Random edits of random params: errors anywhere, in and around the series. */
static void test_mutations(void) {
    static const char alphabet[] = "{}[],:\"\\0123456789-+.eEtrufalsn \t\nux\x01\xc3\xa9\xff";
    uint64_t s = 31337;
    char buf[8192];
    out o = {buf, 0, sizeof buf};
    tally n = {0};
    for (int i = 0; i < 40000; i++) {
        random_params(&s, &o);
        size_t len = o.len;
        len = mutate(&s, buf, len, sizeof buf, alphabet, sizeof alphabet - 1);
        compare(buf, len, &n);
    }
    tap_check(n.bad == 0, "%d mutated params documents: %d differ; %d typed series", n.docs, n.bad,
              n.typed);
}

/* A series depth levels down, in objects or arrays: at the nesting limit both refuse alike. */
static void test_depth(void) {
    tally n = {0};
    const char *leaf = "{\"series\":[[1,2],[3,4]],\"prediction_length\":1}";
    for (int depth = JSON_PARSER_MAX_DEPTH - 6; depth <= JSON_PARSER_MAX_DEPTH + 1; depth++) {
        for (int arrays = 0; arrays < 2; arrays++) {
            size_t cap = (size_t)depth * 8 + 100, len = 0;
            char *text = malloc(cap);
            for (int i = 0; i < depth; i++)
                len += (size_t)snprintf(text + len, cap - len, arrays ? "[" : "{\"a\":");
            len += (size_t)snprintf(text + len, cap - len, "%s", leaf);
            for (int i = 0; i < depth; i++)
                len += (size_t)snprintf(text + len, cap - len, arrays ? "]" : "}");
            compare(text, len, &n);
            free(text);
        }
    }
    tap_check(n.bad == 0,
              "a series nested up to the depth limit and past it: %d documents, %d "
              "differ, %d typed",
              n.docs, n.bad, n.typed);
}

/* The shapes the benchmark uses: 1 x 512 and 7 x 2048 numbers, all typed. */
static void test_large(void) {
    uint64_t s = 5;
    tally n = {0};
    int shapes[][2] = {{1, 512}, {7, 2048}};
    for (int k = 0; k < 2; k++) {
        size_t cap = (size_t)shapes[k][0] * (size_t)shapes[k][1] * 32 + 100;
        char *text = malloc(cap);
        out o = {text, 0, cap};
        put(&o, "{\"series\":[");
        for (int v = 0; v < shapes[k][0]; v++) {
            put(&o, v ? ",[" : "[");
            for (int t = 0; t < shapes[k][1]; t++) {
                char number[32];
                snprintf(number, sizeof number, "%s%.9g", t ? "," : "",
                         (double)(float)((double)(rng_next(&s) % 2000001) / 997.0 - 1000));
                put(&o, number);
            }
            put(&o, "]");
        }
        put(&o, "],\"prediction_length\":8,\"num_samples\":1024}");
        compare_everywhere(o.p, &n);
        free(text);
    }
    tap_check(n.bad == 0 && n.typed == 8, "1 x 512 and 7 x 2048 series: %d typed, %d differ",
              n.typed, n.bad);
}

int main(void) {
    test_corpus();
    test_typed_taken();
    test_batch();
    test_random();
    test_mutations();
    test_depth();
    test_large();
    return tap_done();
}
