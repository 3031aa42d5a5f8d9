/*
 * test_http.c - daemon/http.h: request parsing (framing, splits, pipelining,
 * every refusal, limits at and past their bounds, keep-alive) and response
 * building. Streams are fed the way the connection code feeds them: bytes
 * that a feed did not use are offered again after the reset.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/http.h" /* the unit test table gives no daemon include dir */
#include "tap.h"

#define LIT(s)      (s), (sizeof(s) - 1)
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- a bounded text builder for describing outcomes ------------------------------------ */

typedef struct text {
    char buf[8192];
    size_t len;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof t->buf - t->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        t->len += (size_t)n < sizeof t->buf - t->len ? (size_t)n : sizeof t->buf - t->len - 1;
    }
}

static void put_escaped(text *t, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            put(t, "%c", c);
        } else {
            put(t, "\\x%02x", c);
        }
    }
}

/* Every field of a parsed request, so two parses compare as strings. */
static void describe_request(text *t, const http_parser *p) {
    const http_request *r = http_parser_request(p);
    put(t, "[%s %s path=%s query=%s 1.%d ka=%d", r->method, r->target, r->path, r->query,
        r->version_minor, http_keep_alive(p));
    for (size_t i = 0; i < r->header_count; i++) {
        put(t, " {%s=%s}", r->headers[i].name, r->headers[i].value);
    }
    put(t, " body=");
    put_escaped(t, r->body, r->body_len);
    put(t, "]");
}

/* ---- feeding a stream in pieces --------------------------------------------------------- */

/* How a stream is cut into feeds: whole, fixed-size pieces, one cut, or random. */
typedef struct splitter {
    size_t fixed; /* every piece this long (0: not used) */
    size_t cut;   /* first piece this long, then the rest (0: not used) */
    uint64_t rng; /* random pieces of 1..max_random bytes when nonzero */
    size_t max_random;
    size_t fed;
} splitter;

static uint64_t next_random(uint64_t *state) {
    uint64_t x = *state; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static size_t next_piece(splitter *s, size_t remaining) {
    size_t n = remaining;
    if (s->fixed > 0) {
        n = s->fixed;
    } else if (s->cut > 0 && s->fed < s->cut) {
        n = s->cut - s->fed;
    } else if (s->rng != 0) {
        n = 1 + (size_t)(next_random(&s->rng) % s->max_random);
    }
    n = n < remaining ? n : remaining;
    s->fed += n;
    return n;
}

/*
 * Feeds msg through one parser like a connection does and describes every
 * request, the error (with where the stream stopped) or the unfinished tail.
 * Also counts broken feed invariants in *bad.
 */
static void run_stream(const char *msg, size_t len, const http_limits *limits, splitter *sp,
                       text *out, int *bad) {
    http_parser p;
    http_parser_init(&p, limits);
    size_t pos = 0, piece_end = 0;
    http_result r = HTTP_NEED_MORE;
    out->len = 0;
    out->buf[0] = '\0';
    while (pos < len) {
        if (piece_end <= pos) {
            piece_end = pos + next_piece(sp, len - pos);
        }
        size_t used = SIZE_MAX;
        r = http_parser_feed(&p, msg + pos, piece_end - pos, &used);
        *bad += used > piece_end - pos || (r == HTTP_NEED_MORE && used != piece_end - pos);
        pos += used;
        if (r == HTTP_ERROR) {
            put(out, "[ERROR %d at %zu]", http_parser_error_status(&p), pos);
            *bad += http_parser_error_message(&p) == NULL;
            break;
        }
        if (r == HTTP_DONE) {
            describe_request(out, &p);
            http_parser_reset(&p);
        }
    }
    if (r == HTTP_NEED_MORE) {
        put(out, "[NEED_MORE]");
    }
    http_parser_free(&p);
}

static void run_whole(const char *msg, size_t len, const http_limits *limits, text *out) {
    splitter whole = {0};
    int bad = 0;
    run_stream(msg, len, limits, &whole, out, &bad);
}

/* One feed of a whole request: its result and the parser, left for checks. */
static http_result parse_once(http_parser *p, const http_limits *limits, const char *msg,
                              size_t len, size_t *used) {
    http_parser_init(p, limits);
    return http_parser_feed(p, msg, len, used);
}

/* ---- basic requests ---------------------------------------------------------------------- */

static void test_simple_get(void) {
    http_parser p;
    size_t used;
    const char msg[] = "GET /health HTTP/1.1\r\nHost: localhost\r\nUser-Agent:  t/1 \r\n\r\n";
    http_result r = parse_once(&p, NULL, LIT(msg), &used);
    const http_request *req = http_parser_request(&p);
    tap_check(r == HTTP_DONE && used == sizeof msg - 1, "GET: done, all bytes used");
    tap_check(req && strcmp(req->method, "GET") == 0 && strcmp(req->target, "/health") == 0 &&
                  strcmp(req->path, "/health") == 0 && strcmp(req->query, "") == 0,
              "GET: method, target, path, empty query");
    tap_check(req && req->version_minor == 1 && req->header_count == 2 &&
                  strcmp(req->headers[0].name, "Host") == 0 &&
                  strcmp(req->headers[0].value, "localhost") == 0 &&
                  strcmp(req->headers[1].value, "t/1") == 0,
              "GET: version, headers in order, values trimmed");
    tap_check(req && req->body_len == 0 && req->body && req->body[0] == '\0' && req->keep_alive,
              "GET: empty NUL-terminated body, keep-alive");
    http_parser_free(&p);
}

static void check_target(const char *target, const char *path, const char *query) {
    char msg[256];
    int n = snprintf(msg, sizeof msg, "OPTIONS %s HTTP/1.1\r\n\r\n", target);
    http_parser p;
    size_t used;
    http_result r = parse_once(&p, NULL, msg, (size_t)n, &used);
    const http_request *req = http_parser_request(&p);
    tap_check(r == HTTP_DONE && strcmp(req->target, target) == 0 && strcmp(req->path, path) == 0 &&
                  strcmp(req->query, query) == 0,
              "target %s: path %s, query '%s'", target, path, query);
    http_parser_free(&p);
}

static void test_targets(void) {
    check_target("/v1/forecast?verbose=1&x", "/v1/forecast", "verbose=1&x");
    check_target("/a?b?c", "/a", "b?c");
    check_target("/a?", "/a", "");
    check_target("http://localhost:8080/v1/x?q=1", "/v1/x", "q=1");
    check_target("HTTPS://host", "/", "");
    check_target("http://host?q", "/", "q");
    check_target("*", "*", "");
}

static void test_post_content_length(void) {
    http_parser p;
    size_t used;
    const char msg[] = "POST /v1/forecast HTTP/1.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: 11\r\n\r\n{\"a\":[1,2]}";
    http_result r = parse_once(&p, NULL, LIT(msg), &used);
    const http_request *req = http_parser_request(&p);
    tap_check(r == HTTP_DONE && used == sizeof msg - 1, "POST: done, all bytes used");
    tap_check(req && req->body_len == 11 && memcmp(req->body, "{\"a\":[1,2]}", 12) == 0,
              "POST: body, NUL-terminated");
    http_parser_free(&p);

    const char binary[] = "PUT /x HTTP/1.1\r\nContent-Length: 4\r\n\r\na\0\r\n";
    r = parse_once(&p, NULL, LIT(binary), &used);
    req = http_parser_request(&p);
    tap_check(r == HTTP_DONE && req->body_len == 4 && memcmp(req->body, "a\0\r\n", 4) == 0,
              "PUT: a body may hold NUL, CR and LF");
    http_parser_free(&p);

    const char same[] =
        "POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3 ,, 03\r\n\r\nabc";
    r = parse_once(&p, NULL, LIT(same), &used);
    tap_check(r == HTTP_DONE && http_parser_request(&p)->body_len == 3,
              "POST: repeated Content-Length with equal values is accepted");
    http_parser_free(&p);
}

static void test_chunked(void) {
    http_parser p;
    size_t used;
    const char msg[] = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "4;ext=1\r\nWiki\r\n5 ; a=\"q;\\\"x\" ;b\r\npedia\r\n"
                       "E\r\n in\r\n\r\nchunks.\r\n000A\r\n0123456789\r\n"
                       "0;last\r\nX-Trailer: 1\r\nOther:\r\n\r\n";
    http_result r = parse_once(&p, NULL, LIT(msg), &used);
    const http_request *req = http_parser_request(&p);
    const char want[] = "Wikipedia in\r\n\r\nchunks.0123456789";
    tap_check(r == HTTP_DONE && used == sizeof msg - 1, "chunked: done, all bytes used");
    tap_check(req && req->body_len == sizeof want - 1 && memcmp(req->body, want, sizeof want) == 0,
              "chunked: decoded body (extensions, upper-case hex, leading zeros)");
    tap_check(req && req->header_count == 1 && http_header_get(req, "X-Trailer") == NULL,
              "chunked: trailers are checked and dropped");
    http_parser_free(&p);

    const char codings[] = "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n"
                           "transfer-encoding: , Chunked\r\n\r\n0\r\n\r\n";
    r = parse_once(&p, NULL, LIT(codings), &used);
    tap_check(r == HTTP_DONE && http_parser_request(&p)->body_len == 0,
              "chunked: identity before chunked, across two fields, any case");
    http_parser_free(&p);
}

/* ---- splits and pipelining ---------------------------------------------------------------- */

typedef struct stream_case {
    const char *name;
    const char *msg;
    size_t len;
    const http_limits *limits;
} stream_case;

static const http_limits small_limits = {64, 3, 10};

static const stream_case split_cases[] = {
    {"GET", LIT("GET /health?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"), NULL},
    {"POST", LIT("POST /f HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"), NULL},
    {"chunked",
     LIT("POST /f HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n"
         "10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n"),
     NULL},
    {"pipelined",
     LIT("\r\nGET /a HTTP/1.1\r\n\r\nPOST /b HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi"
         "\r\n\r\nGET /c HTTP/1.1\r\nConnection: close\r\n\r\nGET /d"),
     NULL},
    {"pipelined chunked",
     LIT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0"
         "\r\n\r\nGET /n HTTP/1.1\r\n\r\n"),
     NULL},
    {"bad header after good request",
     LIT("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nBad Name: 1\r\n"
         "\r\n"),
     NULL},
    {"control byte",
     LIT("GET /x HTTP/1.1\r\nA: b\x01"
         "c\r\n\r\n"),
     NULL},
    {"TLS hello", LIT("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), NULL},
    {"bad chunk", LIT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n"), NULL},
    {"head limit",
     LIT("GET / HTTP/1.1\r\nA: 01234567890123456789012345678901234567890123456789\r\n\r\n"),
     &small_limits},
    {"body limit", LIT("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n6\r\n"),
     &small_limits},
};

/* Whole, byte by byte, every single cut, fixed pieces and random pieces: one outcome. */
static void test_split(const stream_case *c) {
    text whole, split;
    int bad = 0, differ = 0;
    run_whole(c->msg, c->len, c->limits, &whole);
    for (size_t mode = 0; mode < c->len + 200; mode++) {
        splitter sp = {0};
        if (mode < c->len) {
            sp.cut = mode + 1; /* cut after byte mode+1, and whole at mode == len-1 */
        } else if (mode < c->len + 8) {
            sp.fixed = mode - c->len + 1; /* 1..8 bytes a feed, 1 is byte by byte */
        } else {
            sp.rng = 0x9e3779b97f4a7c15u + mode;
            sp.max_random = 1 + mode % 23;
        }
        run_stream(c->msg, c->len, c->limits, &sp, &split, &bad);
        if (strcmp(whole.buf, split.buf) != 0 && differ++ == 0) {
            tap_diag("whole: %s", whole.buf);
            tap_diag("split: %s", split.buf);
        }
    }
    tap_check(differ == 0 && bad == 0, "split %s: same outcome at every cut (%s)", c->name,
              whole.buf);
}

static void test_pipelined(void) {
    const stream_case *c = &split_cases[3];
    text out;
    run_whole(c->msg, c->len, c->limits, &out);
    const char want[] = "[GET /a path=/a query= 1.1 ka=1 body=]"
                        "[POST /b path=/b query= 1.0 ka=0 {Content-Length=2} body=hi]"
                        "[GET /c path=/c query= 1.1 ka=0 {Connection=close} body=]"
                        "[NEED_MORE]";
    tap_check(strcmp(out.buf, want) == 0, "pipelined: three requests, empty lines between, tail");

    /* The bytes after a request are not used, however many came in the same feed. */
    http_parser p;
    size_t used;
    http_result r = parse_once(&p, NULL, c->msg, c->len, &used);
    tap_check(r == HTTP_DONE && used == strlen("\r\nGET /a HTTP/1.1\r\n\r\n"),
              "pipelined: the first feed stops at the end of the first request");
    http_parser_free(&p);
}

/* ---- refusals ---------------------------------------------------------------------------- */

typedef struct error_case {
    const char *name;
    const char *msg;
    size_t len;
    int status;
} error_case;

#define E(name, msg, status)                                                                       \
    { name, LIT(msg), status }

static const error_case error_cases[] = {
    E("two spaces in request line", "GET  / HTTP/1.1\r\n\r\n", 400),
    E("trailing space in request line", "GET / HTTP/1.1 \r\n\r\n", 400),
    E("HTTP/0.9 request line", "GET /\r\n\r\n", 400),
    E("lower-case http", "GET / http/1.1\r\n\r\n", 400),
    E("version with two digits", "GET / HTTP/1.10\r\n\r\n", 400),
    E("HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 505),
    E("HTTP/0.9 with version", "GET / HTTP/0.9\r\n\r\n", 505),
    E("HTTP/3.1", "GET / HTTP/3.1\r\n\r\n", 505),
    E("method with '('", "G(T / HTTP/1.1\r\n\r\n", 400),
    E("tab in request line", "GET\t/ HTTP/1.1\r\n\r\n", 400),
    E("raw UTF-8 in target", "GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400),
    E("DEL in target", "GET /\x7f HTTP/1.1\r\n\r\n", 400),
    E("NUL in request line", "GET /\0 HTTP/1.1\r\n\r\n", 400),
    E("bare LF after request line", "GET / HTTP/1.1\n\r\n", 400),
    E("bare LF after header", "GET / HTTP/1.1\r\nHost: x\n\r\n", 400),
    E("bare LF ending the head", "GET / HTTP/1.1\r\nHost: x\r\n\n", 400),
    E("bare CR in header value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400),
    E("obsolete line folding", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400),
    E("tab folding", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", 400),
    E("whitespace before first header", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),
    E("NUL in header value", "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 400),
    E("NUL in header name", "GET / HTTP/1.1\r\nX\0: b\r\n\r\n", 400),
    E("control byte in header value",
      "GET / HTTP/1.1\r\nX: a\x01"
      "b\r\n\r\n",
      400),
    E("space in header name", "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400),
    E("space before colon", "GET / HTTP/1.1\r\nName : x\r\n\r\n", 400),
    E("empty header name", "GET / HTTP/1.1\r\n: x\r\n\r\n", 400),
    E("header without colon", "GET / HTTP/1.1\r\nName x\r\n\r\n", 400),
    E("'@' in header name", "GET / HTTP/1.1\r\nX@y: 1\r\n\r\n", 400),
    E("two Content-Lengths that differ",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    E("Content-Length list that differs", "POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\nabcd",
      400),
    E("Content-Length not a number", "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
    E("negative Content-Length", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    E("Content-Length with '+'", "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\nabc", 400),
    E("empty Content-Length", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400),
    E("hexadecimal Content-Length", "POST / HTTP/1.1\r\nContent-Length: 0x3\r\n\r\nabc", 400),
    E("Content-Length and chunked",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    E("Transfer-Encoding identity and Content-Length",
      "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc", 400),
    E("chunked twice", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
    E("chunked then identity",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: identity\r\n\r\n",
      400),
    E("gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    E("gzip, chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    E("chunked with a parameter", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 501),
    E("POST without length", "POST /v1/forecast HTTP/1.1\r\nHost: a\r\n\r\n", 411),
    E("PUT without length", "PUT / HTTP/1.0\r\n\r\n", 411),
    E("POST with identity only", "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 411),
    E("Content-Length past 16 MiB", "POST / HTTP/1.1\r\nContent-Length: 16777217\r\n\r\n", 413),
    E("Content-Length past 2^64",
      "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
    E("chunk size past 2^64",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\n", 413),
    E("chunk size not hexadecimal", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      400),
    E("chunk size missing", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", 400),
    E("chunk size with sign", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\n", 400),
    E("junk after chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\n", 400),
    E("bare LF in chunk extension",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nhello\r\n", 400),
    E("NUL in chunk extension",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a\0\r\nhello\r\n", 400),
    E("bare LF after chunk size",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n", 400),
    E("bare CR after chunk size",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello\r\n", 400),
    E("chunk data longer than its size",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", 400),
    E("chunk data without LF", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\rx",
      400),
    E("folded trailer",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\n c\r\n\r\n", 400),
    E("bad trailer name",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA b: c\r\n\r\n", 400),
    E("bare LF in trailer", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\n\r\n",
      400),
    E("bare CR in trailer",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\rx\r\n\r\n", 400),
    E("bare CR ending trailers", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\rx",
      400),
    E("TLS client hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
};

static void test_errors(void) {
    for (size_t i = 0; i < COUNT_OF(error_cases); i++) {
        const error_case *c = &error_cases[i];
        http_parser p;
        size_t used;
        http_result r = parse_once(&p, NULL, c->msg, c->len, &used);
        int status = http_parser_error_status(&p);
        const char *why = http_parser_error_message(&p);
        tap_check(r == HTTP_ERROR && status == c->status && why != NULL && used <= c->len &&
                      http_parser_request(&p) == NULL && !http_keep_alive(&p),
                  "refused with %d: %s (got %d: %s)", c->status, c->name, status, why ? why : "-");
        http_parser_free(&p);
    }
}

/* ---- limits ------------------------------------------------------------------------------- */

/* Feeds msg whole under limits: 0 when a request was done, else the error status. */
static int status_of(const char *msg, size_t len, const http_limits *limits) {
    http_parser p;
    size_t used;
    http_result r = parse_once(&p, limits, msg, len, &used);
    int status = r == HTTP_DONE ? 0 : r == HTTP_ERROR ? http_parser_error_status(&p) : -1;
    http_parser_free(&p);
    return status;
}

/* "GET / HTTP/1.1\r\nX: aaa\r\n\r\n" of exactly total bytes (total >= 23), in buf. */
static size_t head_of_size(char *buf, size_t total) {
    const char *fixed = "GET / HTTP/1.1\r\nX: ";
    size_t n = strlen(fixed);
    memcpy(buf, fixed, n);
    memset(buf + n, 'a', total - n - 4);
    memcpy(buf + total - 4, "\r\n\r\n", 4);
    return total;
}

/* A request line of exactly line bytes (CRLF included) and the empty line. */
static size_t request_line_of_size(char *buf, size_t line) {
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', line - 5 - 11);
    memcpy(buf + line - 11, " HTTP/1.1\r\n\r\n", 13);
    return line + 2;
}

/* A request with count headers "Hn: v". */
static size_t request_with_headers(char *buf, size_t size, size_t count) {
    size_t n = (size_t)snprintf(buf, size, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < count; i++) {
        n += (size_t)snprintf(buf + n, size - n, "H%zu: v\r\n", i);
    }
    n += (size_t)snprintf(buf + n, size - n, "\r\n");
    return n;
}

static void test_small_limits(void) {
    const http_limits *lim = &small_limits; /* 64 head bytes, 3 headers, 10 body bytes */
    char buf[256];
    tap_check(status_of(buf, head_of_size(buf, 64), lim) == 0, "head of 64 bytes under 64: done");
    tap_check(status_of(buf, head_of_size(buf, 65), lim) == 431, "head of 65 bytes: 431");
    tap_check(status_of(buf, request_line_of_size(buf, 62), lim) == 0,
              "request line of 62 + empty line = 64: done");
    tap_check(status_of(buf, request_line_of_size(buf, 65), lim) == 414,
              "request line of 65 bytes: 414");
    tap_check(status_of(buf, request_with_headers(buf, sizeof buf, 3), lim) == 0,
              "3 headers under 3: done");
    tap_check(status_of(buf, request_with_headers(buf, sizeof buf, 4), lim) == 431,
              "4 headers: 431");
    tap_check(status_of(LIT("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"), lim) == 0,
              "Content-Length 10 under 10: done");
    tap_check(status_of(LIT("POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"), lim) == 413,
              "Content-Length 11: 413 before the body comes");
    const char *te = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    int n = snprintf(buf, sizeof buf, "%s5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", te);
    tap_check(status_of(buf, (size_t)n, lim) == 0, "chunked body of 10 under 10: done");
    n = snprintf(buf, sizeof buf, "%s5\r\n01234\r\n6\r\n", te);
    tap_check(status_of(buf, (size_t)n, lim) == 413, "chunked body of 11: 413 at the size");
    n = snprintf(buf, sizeof buf, "%s0\r\nA: %057d\r\n\r\n", te, 0); /* 3 + 57 + 4 bytes */
    tap_check(status_of(buf, (size_t)n, lim) == 0, "trailer section of 64 bytes: done");
    n = snprintf(buf, sizeof buf, "%s0\r\nA: %058d\r\n\r\n", te, 0);
    tap_check(status_of(buf, (size_t)n, lim) == 431, "trailer section of 65 bytes: 431");
    n = snprintf(buf, sizeof buf, "%s0\r\nA:\r\nB:\r\nC:\r\nD:\r\n\r\n", te);
    tap_check(status_of(buf, (size_t)n, lim) == 431, "4 trailer fields: 431");
    n = snprintf(buf, sizeof buf, "%s0;%060d\r\n\r\n", te, 0); /* 2 + 60 + 2 bytes */
    tap_check(status_of(buf, (size_t)n, lim) == 0, "chunk size line of 64 bytes: done");
    n = snprintf(buf, sizeof buf, "%s0;%061d\r\n\r\n", te, 0);
    tap_check(status_of(buf, (size_t)n, lim) == 400, "chunk size line of 65 bytes: 400");
}

static void test_default_limits(void) {
    size_t big = HTTP_DEFAULT_MAX_HEADER_BYTES + 64;
    char *buf = malloc(HTTP_DEFAULT_MAX_BODY_BYTES + 128);
    if (!tap_check(buf != NULL, "allocate the big requests")) {
        return;
    }
    tap_check(status_of(buf, head_of_size(buf, big - 64), NULL) == 0, "head of 16384 bytes: done");
    tap_check(status_of(buf, head_of_size(buf, big - 63), NULL) == 431, "head of 16385: 431");
    tap_check(status_of(buf, request_with_headers(buf, big, 64), NULL) == 0, "64 headers: done");
    tap_check(status_of(buf, request_with_headers(buf, big, 65), NULL) == 431, "65 headers: 431");
    int n = snprintf(buf, 128, "POST / HTTP/1.1\r\nContent-Length: %zu\r\n\r\n",
                     HTTP_DEFAULT_MAX_BODY_BYTES);
    memset(buf + n, 'x', HTTP_DEFAULT_MAX_BODY_BYTES);
    tap_check(status_of(buf, (size_t)n + HTTP_DEFAULT_MAX_BODY_BYTES, NULL) == 0,
              "body of 16 MiB: done");
    n = snprintf(buf, 128, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n",
                 HTTP_DEFAULT_MAX_BODY_BYTES + 1);
    tap_check(status_of(buf, (size_t)n, NULL) == 413, "chunk of 16 MiB + 1: 413");
    free(buf);
}

/* ---- connection semantics ------------------------------------------------------------------ */

static void check_keep_alive(const char *msg, bool want, const char *name) {
    http_parser p;
    size_t used;
    http_result r = parse_once(&p, NULL, msg, strlen(msg), &used);
    tap_check(r == HTTP_DONE && http_keep_alive(&p) == want &&
                  http_parser_request(&p)->keep_alive == want,
              "keep-alive %s: %s", want ? "yes" : "no", name);
    http_parser_free(&p);
}

static void test_keep_alive(void) {
    check_keep_alive("GET / HTTP/1.1\r\n\r\n", true, "HTTP/1.1 by default");
    check_keep_alive("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false, "1.1, close");
    check_keep_alive("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", false,
                     "1.1, a list holding close");
    check_keep_alive("GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", true, "1.1, other option");
    check_keep_alive("GET / HTTP/1.2\r\n\r\n", true, "HTTP/1.2 is served as 1.1");
    check_keep_alive("GET / HTTP/1.0\r\n\r\n", false, "HTTP/1.0 by default");
    check_keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true, "1.0, keep-alive");
    check_keep_alive("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n", true, "1.0, any case");
    check_keep_alive("GET / HTTP/1.0\r\nConnection: x\r\nConnection: keep-alive\r\n\r\n", true,
                     "1.0, the second Connection field");
    check_keep_alive("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false,
                     "1.0, keep-alive and close");
    check_keep_alive("POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
                     "\r\n0\r\n\r\n",
                     false, "1.0 with Transfer-Encoding (faulty framing)");
}

static void test_header_lookup(void) {
    http_parser p;
    size_t used;
    const char msg[] = "GET / HTTP/1.1\r\nContent-Type: a/b\r\nX-Dup: 1\r\nx-dup: 2\r\n"
                       "Empty:\r\nTabs:\t v \t\r\n\r\n";
    parse_once(&p, NULL, LIT(msg), &used);
    const http_request *req = http_parser_request(&p);
    const char *ct = http_header_get(req, "content-TYPE");
    const char *dup = http_header_get(req, "X-DUP");
    const char *empty = http_header_get(req, "empty");
    const char *tabs = http_header_get(req, "tabs");
    tap_check(ct && strcmp(ct, "a/b") == 0, "lookup ignores case");
    tap_check(dup && strcmp(dup, "1") == 0, "lookup gives the first of repeated fields");
    tap_check(empty && *empty == '\0' && tabs && strcmp(tabs, "v") == 0,
              "empty value, tabs and spaces trimmed");
    tap_check(http_header_get(req, "Content") == NULL &&
                  http_header_get(req, "Content-Types") == NULL,
              "lookup needs the whole name");
    http_parser_free(&p);
}

static void test_continue(void) {
    http_parser p;
    size_t used;
    const char head[] = "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n";
    http_result r = parse_once(&p, NULL, LIT(head), &used);
    bool first = http_parser_take_continue(&p), second = http_parser_take_continue(&p);
    tap_check(r == HTTP_NEED_MORE && first && !second, "Expect: 100-continue is due once");
    r = http_parser_feed(&p, LIT("hello"), &used);
    tap_check(r == HTTP_DONE && !http_parser_take_continue(&p), "then the body completes it");
    http_parser_free(&p);

    const char whole[] = "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx";
    r = parse_once(&p, NULL, LIT(whole), &used);
    tap_check(r == HTTP_DONE && !http_parser_take_continue(&p), "not due when the body came too");
    http_parser_free(&p);
    const char old[] = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
    parse_once(&p, NULL, LIT(old), &used);
    tap_check(!http_parser_take_continue(&p), "not due for HTTP/1.0");
    http_parser_free(&p);
    const char big[] =
        "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 99999999\r\n\r\n";
    r = parse_once(&p, NULL, LIT(big), &used);
    tap_check(r == HTTP_ERROR && http_parser_error_status(&p) == 413 &&
                  !http_parser_take_continue(&p),
              "a body too large is refused instead");
    http_parser_free(&p);
}

static void test_parser_states(void) {
    http_parser p;
    size_t used = 1;
    http_parser_init(&p, NULL);
    http_result r = http_parser_feed(&p, NULL, 0, &used);
    tap_check(r == HTTP_NEED_MORE && used == 0 && http_parser_request(&p) == NULL &&
                  http_parser_error_status(&p) == 0,
              "an empty feed needs more");
    r = http_parser_feed(&p, LIT("GET /a HTTP/1.1\r\n\r\nGET /b"), &used);
    r = http_parser_feed(&p, LIT("GET /b HTTP/1.1\r\n\r\n"), &used);
    tap_check(r == HTTP_DONE && used == 0 && strcmp(http_parser_request(&p)->path, "/a") == 0,
              "DONE holds until reset, taking nothing");
    http_parser_reset(&p);
    r = http_parser_feed(&p, LIT("GET /b HTTP/1.1\r\n\r\n"), &used);
    tap_check(r == HTTP_DONE && strcmp(http_parser_request(&p)->path, "/b") == 0,
              "after reset the next request parses");
    http_parser_reset(&p);
    r = http_parser_feed(&p, LIT("BAD\r\n"), &used);
    r = http_parser_feed(&p, LIT("GET / HTTP/1.1\r\n\r\n"), &used);
    tap_check(r == HTTP_ERROR && used == 0 && http_parser_error_status(&p) == 400,
              "ERROR holds until reset, taking nothing");
    http_parser_free(&p);

    /* A large body is freed on reset, and the parser still works. */
    size_t body = 100 * 1000;
    char *msg = malloc(body + 64);
    int n = snprintf(msg, 64, "POST / HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", body);
    memset(msg + n, 'b', body);
    http_parser_init(&p, NULL);
    r = http_parser_feed(&p, msg, (size_t)n + body, &used);
    bool big_ok = r == HTTP_DONE && http_parser_request(&p)->body_len == body;
    http_parser_reset(&p);
    r = http_parser_feed(&p, LIT("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nok"), &used);
    tap_check(big_ok && r == HTTP_DONE && strcmp(http_parser_request(&p)->body, "ok") == 0,
              "a 100 kB body, then a small one on the same parser");
    http_parser_free(&p);
    free(msg);
}

/* What the connection's idle timer reads: has a request begun? */
static void test_started(void) {
    http_parser p;
    size_t used;
    http_parser_init(&p, NULL);
    bool fresh = !http_parser_started(&p);
    http_parser_feed(&p, LIT("\r\n\r\n"), &used);
    bool blank = !http_parser_started(&p);
    http_parser_feed(&p, LIT("G"), &used);
    bool one = http_parser_started(&p);
    http_parser_feed(&p, LIT("ET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab"), &used);
    bool body = http_parser_started(&p);
    http_result r = http_parser_feed(&p, LIT("c"), &used);
    bool done = r == HTTP_DONE && http_parser_started(&p);
    http_parser_reset(&p);
    tap_check(fresh && blank && one && body && done && !http_parser_started(&p),
              "started: not before a byte nor for empty lines; from the first byte of the "
              "request line through its body until reset (%d %d %d %d %d)",
              fresh, blank, one, body, done);
    http_parser_free(&p);
}

/* ---- responses ------------------------------------------------------------------------------ */

static bool built_equals(int status, const char *type, const char *body, size_t body_len,
                         bool keep_alive, const char *extra, const char *want, size_t want_len) {
    char *out = NULL;
    size_t len = 0;
    if (http_response_build(&out, &len, status, type, body, body_len, keep_alive, extra) != 0) {
        return false;
    }
    bool same = len == want_len && memcmp(out, want, len) == 0 && out[len] == '\0';
    if (!same) {
        tap_diag("built: %s", out);
    }
    free(out);
    return same;
}

static bool build_fails(int status, const char *type, const char *body, size_t body_len,
                        const char *extra) {
    char *out = NULL;
    size_t len = 0;
    int rc = http_response_build(&out, &len, status, type, body, body_len, true, extra);
    return rc == -1 && out == NULL;
}

static void test_responses(void) {
    tap_check(built_equals(200, "application/json", LIT("{}"), true, NULL,
                           LIT("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}")),
              "response: 200 JSON, keep-alive");
    tap_check(built_equals(404, NULL, NULL, 0, false, "Retry-After: 1\r\nX-A: b\r\n",
                           LIT("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                               "Connection: close\r\nRetry-After: 1\r\nX-A: b\r\n\r\n")),
              "response: 404 without body, close, extra headers");
    tap_check(built_equals(204, NULL, NULL, 0, true, "",
                           LIT("HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n")),
              "response: 204 has no Content-Length");
    tap_check(built_equals(200, "application/octet-stream", LIT("a\0b"), true, NULL,
                           LIT("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                               "Content-Length: 3\r\nConnection: keep-alive\r\n\r\na\0b")),
              "response: binary body");
    tap_check(built_equals(599, NULL, NULL, 0, false, NULL,
                           LIT("HTTP/1.1 599 Unknown\r\nContent-Length: 0\r\n"
                               "Connection: close\r\n\r\n")),
              "response: unknown status");
    tap_check(build_fails(199, NULL, NULL, 0, NULL) && build_fails(600, NULL, NULL, 0, NULL) &&
                  build_fails(100, NULL, NULL, 0, NULL),
              "response: status outside 200..599 refused");
    tap_check(build_fails(200, "text/plain\r\nX: y", NULL, 0, NULL) &&
                  build_fails(200, "a\nb", NULL, 0, NULL),
              "response: CR or LF in content type refused");
    tap_check(build_fails(200, NULL, NULL, 0, "X: 1") &&
                  build_fails(200, NULL, NULL, 0, "X: 1\n") &&
                  build_fails(200, NULL, NULL, 0, "X: 1\r\n\r\nbody") &&
                  build_fails(200, NULL, NULL, 0, "\r\n") &&
                  build_fails(200, NULL, NULL, 0, "X: a\rb\r\n"),
              "response: malformed extra headers refused");
    tap_check(build_fails(200, NULL, NULL, 3, NULL) && build_fails(204, NULL, LIT("x"), NULL) &&
                  build_fails(304, NULL, LIT("x"), NULL),
              "response: missing body, or a body on 204/304, refused");
    static const int statuses[] = {400, 411, 413, 414, 431, 500, 501, 505};
    static const char *const reasons[] = {"Bad Request",
                                          "Length Required",
                                          "Content Too Large",
                                          "URI Too Long",
                                          "Request Header Fields Too Large",
                                          "Internal Server Error",
                                          "Not Implemented",
                                          "HTTP Version Not Supported"};
    bool all = true;
    for (size_t i = 0; i < COUNT_OF(statuses); i++) {
        all = all && strcmp(http_status_reason(statuses[i]), reasons[i]) == 0;
    }
    tap_check(all && strcmp(http_status_reason(200), "OK") == 0 &&
                  strcmp(http_status_reason(42), "Unknown") == 0,
              "reason phrases of every status the parser answers with");
}

int main(void) {
    test_simple_get();
    test_targets();
    test_post_content_length();
    test_chunked();
    for (size_t i = 0; i < COUNT_OF(split_cases); i++) {
        test_split(&split_cases[i]);
    }
    test_pipelined();
    test_errors();
    test_small_limits();
    test_default_limits();
    test_keep_alive();
    test_header_lookup();
    test_continue();
    test_parser_states();
    test_started();
    test_responses();
    return tap_done();
}
