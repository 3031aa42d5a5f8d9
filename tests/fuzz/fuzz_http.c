/*
 * fuzz_http.c - libFuzzer harness for daemon/http.c. scripts/fuzz builds and
 * runs it (tests/fuzz/meson.build); by hand, from the repository root:
 *
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -D_DEFAULT_SOURCE \
 *       tests/fuzz/fuzz_http.c daemon/http.c -o /tmp/fuzz_http
 *   mkdir -p /tmp/fuzz_http_corpus
 *   /tmp/fuzz_http -max_total_time=60 -max_len=4096 /tmp/fuzz_http_corpus
 *
 * The first input byte picks the limits (default or tiny, so that every limit
 * is reachable) and seeds the random cuts; the rest is a byte stream fed the
 * way the connection code feeds it: whole, byte by byte, and in random
 * pieces. It aborts when a feed breaks its contract (consumed > len, NEED_MORE
 * without taking everything), when a request or error is malformed, or when
 * the three ways of cutting the stream disagree on any request or error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/http.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* FNV-1a over everything a stream produced, so outcomes compare cheaply. */
static uint64_t mix(uint64_t h, const void *data, size_t n) {
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 0x100000001b3u;
    }
    return h;
}

static uint64_t mix_str(uint64_t h, const char *s) {
    CHECK(s != NULL);
    return mix(h, s, strlen(s) + 1);
}

static uint64_t check_request(const http_parser *p, const http_limits *limits, uint64_t h) {
    const http_request *r = http_parser_request(p);
    CHECK(r != NULL && r->method[0] != '\0' && r->target[0] != '\0' && r->path[0] != '\0');
    CHECK(r->version_minor == 0 || r->version_minor == 1);
    CHECK(r->header_count <= limits->max_headers && r->body_len <= limits->max_body_bytes);
    CHECK(r->body != NULL && r->body[r->body_len] == '\0');
    CHECK(r->keep_alive == http_keep_alive(p));
    h = mix_str(mix_str(mix_str(mix_str(h, r->method), r->target), r->path), r->query);
    for (size_t i = 0; i < r->header_count; i++) {
        CHECK(http_header_get(r, r->headers[i].name) != NULL);
        h = mix_str(mix_str(h, r->headers[i].name), r->headers[i].value);
    }
    int flags = r->version_minor * 2 + r->keep_alive;
    h = mix(mix(h, &flags, sizeof flags), r->body, r->body_len);
    return mix(h, &r->body_len, sizeof r->body_len);
}

static uint64_t check_error(const http_parser *p, uint64_t h) {
    static const int allowed[] = {400, 411, 413, 414, 431, 500, 501, 505};
    int status = http_parser_error_status(p);
    bool known = false;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        known = known || status == allowed[i];
    }
    CHECK(known && http_parser_error_message(p) != NULL && http_parser_request(p) == NULL);
    char *out;
    size_t len;
    const char *why = http_parser_error_message(p);
    CHECK(http_response_build(&out, &len, status, "text/plain", why, strlen(why), false, NULL) ==
          0);
    CHECK(len > 12 && memcmp(out, "HTTP/1.1 ", 9) == 0 && out[len] == '\0');
    free(out);
    return mix(h, &status, sizeof status);
}

/* Feeds data in pieces: piece 0 means whole, else random 1..piece bytes from *rng. */
static uint64_t run(const uint8_t *data, size_t size, const http_limits *limits, size_t piece,
                    uint64_t rng) {
    http_parser p;
    http_parser_init(&p, limits);
    uint64_t h = 0xcbf29ce484222325u;
    size_t pos = 0, end = 0;
    while (pos < size) {
        if (end <= pos) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            end = piece == 0 ? size : pos + 1 + (size_t)(rng % piece);
            end = end < size ? end : size;
        }
        size_t used = SIZE_MAX;
        http_result r = http_parser_feed(&p, (const char *)data + pos, end - pos, &used);
        CHECK(used <= end - pos);
        CHECK(r != HTTP_NEED_MORE || used == end - pos);
        pos += used;
        if (r == HTTP_ERROR) {
            h = mix(check_error(&p, h), &pos, sizeof pos);
            break;
        }
        if (r == HTTP_DONE) {
            h = mix(check_request(&p, limits, h), &pos, sizeof pos);
            http_parser_reset(&p);
        }
    }
    http_parser_free(&p);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) {
        return 0;
    }
    http_limits limits = {48, 3, 24}; /* tiny, or else the defaults */
    if ((data[0] & 1) == 0) {
        http_limits_default(&limits);
    }
    uint64_t seed = 0x9e3779b97f4a7c15u ^ data[0];
    data++, size--;
    uint64_t whole = run(data, size, &limits, 0, seed);
    CHECK(run(data, size, &limits, 1, seed) == whole);
    CHECK(run(data, size, &limits, 7, seed) == whole);
    CHECK(run(data, size, &limits, 64, seed + 1) == whole);
    return 0;
}
