/*
 * http.c - incremental HTTP/1.1 request parser and response builder (http.h).
 *
 * The head is read a line at a time: each finished line is checked at once
 * and packed into p->head as NUL-terminated strings, so the pointers handed
 * out after DONE need no copies. Bodies go to their own buffer. Chunked
 * framing is a byte-at-a-time state machine, except for chunk data, which
 * is copied in bulk. Every error is decided by the bytes up to a fixed
 * position in the stream, so the outcome never depends on how the stream
 * was split into feeds.
 */
#include "http.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum parser_state {
    HP_HEAD,
    HP_BODY, /* Content-Length */
    HP_CHUNK_SIZE_START,
    HP_CHUNK_SIZE,
    HP_CHUNK_SIZE_WS, /* whitespace after the size, before ';' */
    HP_CHUNK_EXT,
    HP_CHUNK_SIZE_LF,
    HP_CHUNK_DATA,
    HP_CHUNK_DATA_CR,
    HP_CHUNK_DATA_LF,
    HP_TRAILER_START,
    HP_TRAILER_NAME,
    HP_TRAILER_VALUE,
    HP_TRAILER_LF,
    HP_TRAILER_END_LF,
    HP_DONE,
    HP_ERROR,
};

/* A body buffer above this is freed on reset, so idle connections stay small. */
#define KEEP_BODY_CAPACITY ((size_t)64 * 1024)

/* ---- characters (RFC 9110 5.6) --------------------------------------------------------- */

static bool is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(unsigned char c) {
    return c == ' ' || c == '\t';
}

/* field-vchar, SP or HTAB: what a header value or chunk extension may hold. */
static bool is_field_char(unsigned char c) {
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static char ascii_lower(char c) {
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Whether s[0..n) equals the NUL-terminated word, ignoring ASCII case (not the locale's). */
static bool equals_nocase(const char *s, size_t n, const char *word) {
    size_t i = 0;
    for (; i < n && word[i] != '\0'; i++) {
        if (ascii_lower(s[i]) != ascii_lower(word[i])) {
            return false;
        }
    }
    return i == n && word[i] == '\0';
}

static bool starts_with_nocase(const char *s, size_t n, const char *prefix) {
    size_t len = strlen(prefix);
    return n >= len && equals_nocase(s, len, prefix);
}

static bool is_token(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)s[i])) {
            return false;
        }
    }
    return n > 0;
}

/*
 * Next element of a comma-separated list (RFC 9110 5.6.1), OWS trimmed;
 * empty elements are skipped, as recipients must. False at the end.
 */
static bool list_next(const char **cursor, const char **elem, size_t *elem_len) {
    const char *s = *cursor;
    while (*s == ',' || is_ows((unsigned char)*s)) {
        s++;
    }
    if (*s == '\0') {
        *cursor = s;
        return false;
    }
    const char *start = s;
    while (*s != '\0' && *s != ',') {
        s++;
    }
    const char *end = s;
    while (end > start && is_ows((unsigned char)end[-1])) {
        end--;
    }
    *elem = start;
    *elem_len = (size_t)(end - start);
    *cursor = s;
    return true;
}

/* ---- memory ---------------------------------------------------------------------------- */

/* Grows *buf to hold need bytes, doubling, but never past bound (need <= bound). */
static bool reserve(char **buf, size_t *cap, size_t need, size_t bound) {
    if (need <= *cap) {
        return true;
    }
    size_t n = *cap < 256 ? 256 : *cap;
    while (n < need) {
        n = n > SIZE_MAX / 2 ? need : n * 2;
    }
    if (n > bound) {
        n = bound < need ? need : bound;
    }
    char *grown = realloc(*buf, n);
    if (grown == NULL) {
        return false;
    }
    *buf = grown;
    *cap = n;
    return true;
}

/* Marks the parser failed; returns used so that steps can `return fail(...)`. */
static size_t fail(http_parser *p, int status, const char *message, size_t used) {
    p->state = HP_ERROR;
    p->error_status = status;
    p->error_message = message;
    return used;
}

/* ---- set-up ---------------------------------------------------------------------------- */

void http_limits_default(http_limits *limits) {
    limits->max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
    limits->max_headers = HTTP_DEFAULT_MAX_HEADERS;
    limits->max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES;
}

void http_parser_init(http_parser *p, const http_limits *limits) {
    memset(p, 0, sizeof *p);
    http_limits_default(&p->limits);
    if (limits != NULL) {
        if (limits->max_header_bytes != 0) {
            p->limits.max_header_bytes = limits->max_header_bytes;
        }
        if (limits->max_headers != 0) {
            p->limits.max_headers = limits->max_headers;
        }
        if (limits->max_body_bytes != 0) {
            p->limits.max_body_bytes = limits->max_body_bytes;
        }
    }
    http_parser_reset(p);
}

void http_parser_reset(http_parser *p) {
    if (p->body_cap > KEEP_BODY_CAPACITY) {
        free(p->body);
        p->body = NULL;
        p->body_cap = 0;
    }
    p->state = HP_HEAD;
    p->error_status = 0;
    p->error_message = NULL;
    p->head_len = p->line_start = p->head_bytes = 0;
    p->header_count = 0;
    p->body_len = p->body_left = p->line_bytes = 0;
    p->trailer_bytes = p->trailer_count = 0;
    p->in_request_line = true;
    p->chunked = p->close_after = p->continue_due = false;
    memset(&p->request, 0, sizeof p->request);
}

void http_parser_free(http_parser *p) {
    free(p->head);
    free(p->headers);
    free(p->body);
    p->head = p->body = NULL;
    p->headers = NULL;
    p->head_cap = p->body_cap = p->headers_cap = 0;
    http_parser_reset(p);
}

/* ---- the request line and header lines ------------------------------------------------- */

/* "HTTP/1.1" -> 1; -1 when malformed (400), -2 for another major version (505). */
static int parse_version(const char *s, size_t n) {
    if (n != 8 || memcmp(s, "HTTP/", 5) != 0 || !is_digit(s[5]) || s[6] != '.' || !is_digit(s[7])) {
        return -1;
    }
    if (s[5] != '1') {
        return -2;
    }
    return s[7] == '0' ? 0 : 1; /* 1.2 and up are served as 1.1 (RFC 9110 2.5) */
}

static bool is_target(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            return false;
        }
    }
    return n > 0;
}

/* method SP request-target SP HTTP-version, packed as "method\0target\0". */
static void parse_request_line(http_parser *p, char *line, size_t n) {
    char *sp1 = memchr(line, ' ', n);
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line)) : NULL;
    if (sp2 == NULL) {
        fail(p, 400, "malformed request line", 0);
        return;
    }
    if (!is_token(line, (size_t)(sp1 - line))) {
        fail(p, 400, "invalid method", 0);
        return;
    }
    if (!is_target(sp1 + 1, (size_t)(sp2 - sp1 - 1))) {
        fail(p, 400, "invalid request target", 0);
        return;
    }
    int minor = parse_version(sp2 + 1, n - (size_t)(sp2 + 1 - line));
    if (minor < 0) {
        fail(p, minor == -2 ? 505 : 400,
             minor == -2 ? "HTTP version not supported" : "malformed HTTP version", 0);
        return;
    }
    p->request.version_minor = minor;
    *sp1 = '\0';
    *sp2 = '\0';
    p->head_len = p->line_start + (size_t)(sp2 - line) + 1;
    p->line_start = p->head_len;
    p->in_request_line = false;
}

/* name ":" OWS value OWS, packed as "name\0value\0". */
static void parse_header_line(http_parser *p, char *line, size_t n) {
    if (is_ows((unsigned char)line[0])) {
        fail(p, 400, "obsolete line folding", 0);
        return;
    }
    if (p->header_count == p->limits.max_headers) {
        fail(p, 431, "too many header fields", 0);
        return;
    }
    char *colon = memchr(line, ':', n);
    if (colon == NULL || !is_token(line, (size_t)(colon - line))) {
        fail(p, 400, colon ? "invalid header name" : "header line without ':'", 0);
        return;
    }
    const char *value = colon + 1, *end = line + n;
    while (value < end && is_ows((unsigned char)*value)) {
        value++;
    }
    while (end > value && is_ows((unsigned char)end[-1])) {
        end--;
    }
    for (const char *c = value; c < end; c++) {
        if (!is_field_char((unsigned char)*c)) {
            fail(p, 400, "invalid character in header value", 0);
            return;
        }
    }
    size_t name_len = (size_t)(colon - line), value_len = (size_t)(end - value);
    line[name_len] = '\0';
    memmove(line + name_len + 1, value, value_len);
    line[name_len + 1 + value_len] = '\0';
    p->head_len = p->line_start + name_len + value_len + 2;
    p->line_start = p->head_len;
    p->header_count++;
}

/* ---- the end of the head: pointers, framing, connection --------------------------------- */

static bool name_is(const http_header *h, const char *name) {
    return equals_nocase(h->name, strlen(h->name), name);
}

/* Where the path starts: after "scheme://authority" for the absolute form, else 0. */
static size_t path_start(const char *target, size_t len) {
    size_t skip = starts_with_nocase(target, len, "http://")    ? 7
                  : starts_with_nocase(target, len, "https://") ? 8
                                                                : 0;
    if (skip == 0) {
        return 0;
    }
    return skip + strcspn(target + skip, "/?");
}

/* Copies path and query after the packed head, each NUL-terminated. */
static bool add_path_and_query(http_parser *p, size_t target_off, size_t *path_off,
                               size_t *query_off) {
    const char *target = p->head + target_off;
    size_t len = strlen(target), start = path_start(target, len);
    const char *q = memchr(target + start, '?', len - start);
    size_t path_end = q ? (size_t)(q - target) : len;
    size_t path_len = path_end - start, query_len = q ? len - path_end - 1 : 0;
    size_t need = p->head_len + path_len + query_len + 3; /* 2 NULs and a possible "/" */
    if (!reserve(&p->head, &p->head_cap, need, SIZE_MAX)) {
        return false;
    }
    target = p->head + target_off;
    char *out = p->head + p->head_len;
    *path_off = p->head_len;
    if (path_len == 0) {
        *out++ = '/'; /* "http://host" and "http://host?q" ask for the root */
    }
    memcpy(out, target + start, path_len);
    out += path_len;
    *out++ = '\0';
    *query_off = (size_t)(out - p->head);
    memcpy(out, target + path_end + (q ? 1 : 0), query_len);
    out[query_len] = '\0';
    p->head_len = (size_t)(out + query_len + 1 - p->head);
    return true;
}

/* Points request's strings and the header array into the packed head. */
static bool index_head(http_parser *p) {
    size_t target_off = strlen(p->head) + 1;
    size_t fields_off = target_off + strlen(p->head + target_off) + 1;
    size_t path_off, query_off;
    if (!add_path_and_query(p, target_off, &path_off, &query_off)) {
        return false;
    }
    if (p->headers_cap < p->header_count) {
        http_header *grown = realloc(p->headers, p->header_count * sizeof *grown);
        if (grown == NULL) {
            return false;
        }
        p->headers = grown;
        p->headers_cap = p->header_count;
    }
    const char *s = p->head + fields_off;
    for (size_t i = 0; i < p->header_count; i++) {
        p->headers[i].name = s;
        s += strlen(s) + 1;
        p->headers[i].value = s;
        s += strlen(s) + 1;
    }
    http_request *r = &p->request;
    r->method = p->head;
    r->target = p->head + target_off;
    r->path = p->head + path_off;
    r->query = p->head + query_off;
    r->headers = p->headers;
    r->header_count = p->header_count;
    return true;
}

/* Transfer-Encoding, all fields as one list: 0, or an HTTP status. */
static int read_transfer_encoding(const http_parser *p, bool *present, bool *chunked) {
    *present = *chunked = false;
    for (size_t i = 0; i < p->header_count; i++) {
        if (!name_is(&p->headers[i], "transfer-encoding")) {
            continue;
        }
        *present = true;
        const char *cursor = p->headers[i].value, *elem;
        size_t len;
        while (list_next(&cursor, &elem, &len)) {
            bool is_chunked = equals_nocase(elem, len, "chunked");
            if (!is_chunked && !equals_nocase(elem, len, "identity")) {
                return 501;
            }
            if (*chunked) {
                return 400; /* chunked must be applied once, and last */
            }
            *chunked = is_chunked;
        }
    }
    return 0;
}

/* Content-Length, all fields and list elements agreeing: 0, or 400. Saturates. */
static int read_content_length(const http_parser *p, bool *present, unsigned long long *length) {
    *present = false;
    for (size_t i = 0; i < p->header_count; i++) {
        if (!name_is(&p->headers[i], "content-length")) {
            continue;
        }
        const char *cursor = p->headers[i].value, *elem;
        size_t len;
        bool any = false;
        while (list_next(&cursor, &elem, &len)) {
            unsigned long long v = 0;
            for (size_t k = 0; k < len; k++) {
                if (!is_digit(elem[k])) {
                    return 400;
                }
                unsigned d = (unsigned)(elem[k] - '0');
                v = v > (ULLONG_MAX - d) / 10 ? ULLONG_MAX : v * 10 + d;
            }
            if (*present && v != *length) {
                return 400;
            }
            *present = any = true;
            *length = v;
        }
        if (!any) {
            return 400;
        }
    }
    return 0;
}

static bool method_needs_body(const char *method) {
    return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
           strcmp(method, "PATCH") == 0;
}

/* Chooses how the body is framed (RFC 9112 6.3); false after failing. */
static bool decide_framing(http_parser *p) {
    bool has_te, chunked, has_length;
    unsigned long long length = 0;
    int status = read_transfer_encoding(p, &has_te, &chunked);
    if (status != 0) {
        fail(p, status,
             status == 501 ? "unsupported transfer coding" : "chunked is not the final coding", 0);
        return false;
    }
    if (read_content_length(p, &has_length, &length) != 0) {
        fail(p, 400, "invalid Content-Length", 0);
        return false;
    }
    if (has_te && has_length) {
        fail(p, 400, "both Content-Length and Transfer-Encoding", 0);
        return false;
    }
    if (has_length && length > p->limits.max_body_bytes) {
        fail(p, 413, "body too large", 0);
        return false;
    }
    if (!chunked && !has_length && method_needs_body(p->request.method)) {
        fail(p, 411, "Content-Length required", 0);
        return false;
    }
    p->chunked = chunked;
    p->body_left = has_length ? (size_t)length : 0;
    /* An HTTP/1.0 message with Transfer-Encoding has faulty framing (RFC 9112 6.1). */
    p->close_after = has_te && p->request.version_minor == 0;
    return true;
}

/* Whether a header named name has an element equal to word. */
static bool header_has_element(const http_parser *p, const char *name, const char *word) {
    for (size_t i = 0; i < p->header_count; i++) {
        if (!name_is(&p->headers[i], name)) {
            continue;
        }
        const char *cursor = p->headers[i].value, *elem;
        size_t len;
        while (list_next(&cursor, &elem, &len)) {
            if (equals_nocase(elem, len, word)) {
                return true;
            }
        }
    }
    return false;
}

static bool wants_keep_alive(const http_parser *p) {
    if (p->close_after || header_has_element(p, "connection", "close")) {
        return false;
    }
    return p->request.version_minor >= 1 || header_has_element(p, "connection", "keep-alive");
}

static void finish_request(http_parser *p) {
    if (!reserve(&p->body, &p->body_cap, p->body_len + 1, SIZE_MAX)) {
        fail(p, 500, "out of memory", 0);
        return;
    }
    p->body[p->body_len] = '\0';
    p->request.body = p->body;
    p->request.body_len = p->body_len;
    p->continue_due = false;
    p->state = HP_DONE;
}

static void finish_head(http_parser *p) {
    p->head_len = p->line_start; /* drop the empty line */
    if (!index_head(p)) {
        fail(p, 500, "out of memory", 0);
        return;
    }
    if (!decide_framing(p)) {
        return;
    }
    p->request.keep_alive = wants_keep_alive(p);
    if (!p->chunked && p->body_left == 0) {
        finish_request(p);
        return;
    }
    /* HTTP/1.0 clients do not wait for 100 Continue (RFC 9110 10.1.1). */
    const char *expect = http_header_get(&p->request, "expect");
    p->continue_due = p->request.version_minor >= 1 && expect != NULL &&
                      equals_nocase(expect, strlen(expect), "100-continue");
    p->state = p->chunked ? HP_CHUNK_SIZE_START : HP_BODY;
}

/* A whole line (CRLF included) sits at p->head + p->line_start. */
static void finish_line(http_parser *p) {
    char *line = p->head + p->line_start;
    size_t n = p->head_len - p->line_start;
    if (n < 2 || line[n - 2] != '\r') {
        fail(p, 400, "line ends in a bare LF", 0);
        return;
    }
    n -= 2;
    if (p->in_request_line && n == 0) {
        p->head_len = p->head_bytes = 0; /* empty lines before a request are ignored */
    } else if (p->in_request_line) {
        parse_request_line(p, line, n);
    } else if (n == 0) {
        finish_head(p);
    } else {
        parse_header_line(p, line, n);
    }
}

/* Index of the first byte that no head line may hold (CR is checked per line), or n. */
static size_t find_forbidden(const char *s, size_t n, bool request_line) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f ||
            (request_line && (c == '\t' || c >= 0x80))) {
            return i;
        }
    }
    return n;
}

/* Takes bytes of the head up to the end of a line, checking what it can early. */
static size_t step_head(http_parser *p, const char *data, size_t len) {
    const char *nl = memchr(data, '\n', len);
    size_t take = nl ? (size_t)(nl - data) + 1 : len;
    size_t room = p->limits.max_header_bytes - p->head_bytes;
    size_t scan = take > room ? room : nl ? take - 1 : take;
    size_t bad = find_forbidden(data, scan, p->in_request_line);
    if (bad < scan) {
        return fail(p, 400, "control character in the request head", bad + 1);
    }
    if (take > room) {
        return p->in_request_line ? fail(p, 414, "request line too long", room + 1)
                                  : fail(p, 431, "request head too large", room + 1);
    }
    if (!reserve(&p->head, &p->head_cap, p->head_len + take + 1, SIZE_MAX)) {
        return fail(p, 500, "out of memory", 0);
    }
    memcpy(p->head + p->head_len, data, take);
    p->head_len += take;
    p->head_bytes += take;
    if (nl) {
        finish_line(p);
    }
    return take;
}

/* ---- bodies ---------------------------------------------------------------------------- */

static bool body_append(http_parser *p, const char *data, size_t n) {
    size_t most = p->chunked ? p->limits.max_body_bytes : p->body_len + p->body_left;
    size_t bound = most < SIZE_MAX ? most + 1 : SIZE_MAX;
    if (!reserve(&p->body, &p->body_cap, p->body_len + n + 1, bound)) {
        return false;
    }
    memcpy(p->body + p->body_len, data, n);
    p->body_len += n;
    p->body_left -= n;
    p->continue_due = false;
    return true;
}

/* Content-Length bytes, or the data of one chunk. */
static size_t step_body_data(http_parser *p, const char *data, size_t len) {
    size_t n = len < p->body_left ? len : p->body_left;
    if (!body_append(p, data, n)) {
        return fail(p, 500, "out of memory", 0);
    }
    if (p->body_left == 0) {
        if (p->chunked) {
            p->state = HP_CHUNK_DATA_CR;
        } else {
            finish_request(p);
        }
    }
    return n;
}

/* One hex digit of a chunk size, refusing sizes the body has no room for. */
static size_t add_size_digit(http_parser *p, unsigned d) {
    size_t room = p->limits.max_body_bytes - p->body_len;
    if (d > room || p->body_left > (room - d) / 16) {
        return fail(p, 413, "body too large", 1);
    }
    p->body_left = p->body_left * 16 + d;
    p->state = HP_CHUNK_SIZE;
    return 1;
}

/* chunk-size [ chunk-ext ] CRLF, and the CRLF after chunk data. */
static size_t step_chunk_line(http_parser *p, unsigned char c) {
    if (p->state <= HP_CHUNK_SIZE_LF && ++p->line_bytes > p->limits.max_header_bytes) {
        return fail(p, 400, "chunk size line too long", 1);
    }
    switch (p->state) {
    case HP_CHUNK_SIZE_START:
    case HP_CHUNK_SIZE:
        if (hex_value(c) >= 0) {
            return add_size_digit(p, (unsigned)hex_value(c));
        }
        if (p->state == HP_CHUNK_SIZE_START || (c != '\r' && c != ';' && !is_ows(c))) {
            return fail(p, 400, "invalid chunk size", 1);
        }
        p->state = c == '\r' ? HP_CHUNK_SIZE_LF : c == ';' ? HP_CHUNK_EXT : HP_CHUNK_SIZE_WS;
        return 1;
    case HP_CHUNK_SIZE_WS:
        if (!is_ows(c) && c != ';') {
            return fail(p, 400, "invalid chunk extension", 1);
        }
        p->state = c == ';' ? HP_CHUNK_EXT : HP_CHUNK_SIZE_WS;
        return 1;
    case HP_CHUNK_EXT:
        if (c != '\r' && !is_field_char(c)) {
            return fail(p, 400, "invalid chunk extension", 1);
        }
        p->state = c == '\r' ? HP_CHUNK_SIZE_LF : HP_CHUNK_EXT;
        return 1;
    case HP_CHUNK_SIZE_LF:
        if (c != '\n') {
            return fail(p, 400, "chunk size line ends in a bare CR", 1);
        }
        p->state = p->body_left == 0 ? HP_TRAILER_START : HP_CHUNK_DATA;
        return 1;
    case HP_CHUNK_DATA_CR:
        return c == '\r' ? (p->state = HP_CHUNK_DATA_LF, 1)
                         : fail(p, 400, "chunk data longer than its size", 1);
    default: /* HP_CHUNK_DATA_LF */
        if (c != '\n') {
            return fail(p, 400, "chunk data not followed by CRLF", 1);
        }
        p->state = HP_CHUNK_SIZE_START;
        p->line_bytes = 0;
        return 1;
    }
}

/* The trailer section after the last chunk: checked like headers, then dropped. */
static size_t step_trailer(http_parser *p, unsigned char c) {
    if (++p->trailer_bytes > p->limits.max_header_bytes) {
        return fail(p, 431, "trailer section too large", 1);
    }
    switch (p->state) {
    case HP_TRAILER_START:
        if (c == '\r') {
            p->state = HP_TRAILER_END_LF;
        } else if (!is_tchar(c)) {
            return fail(p, 400, is_ows(c) ? "obsolete line folding" : "invalid trailer name", 1);
        } else if (++p->trailer_count > p->limits.max_headers) {
            return fail(p, 431, "too many trailer fields", 1);
        } else {
            p->state = HP_TRAILER_NAME;
        }
        return 1;
    case HP_TRAILER_NAME:
        if (c != ':' && !is_tchar(c)) {
            return fail(p, 400, "invalid trailer name", 1);
        }
        p->state = c == ':' ? HP_TRAILER_VALUE : HP_TRAILER_NAME;
        return 1;
    case HP_TRAILER_VALUE:
        if (c != '\r' && !is_field_char(c)) {
            return fail(p, 400, "invalid character in trailer value", 1);
        }
        p->state = c == '\r' ? HP_TRAILER_LF : HP_TRAILER_VALUE;
        return 1;
    case HP_TRAILER_LF:
        if (c != '\n') {
            return fail(p, 400, "trailer line ends in a bare CR", 1);
        }
        p->state = HP_TRAILER_START;
        return 1;
    default: /* HP_TRAILER_END_LF */
        if (c != '\n') {
            return fail(p, 400, "trailer section ends in a bare CR", 1);
        }
        finish_request(p);
        return 1;
    }
}

/* ---- feeding --------------------------------------------------------------------------- */

static size_t step(http_parser *p, const char *data, size_t len) {
    switch (p->state) {
    case HP_HEAD:
        return step_head(p, data, len);
    case HP_BODY:
    case HP_CHUNK_DATA:
        return step_body_data(p, data, len);
    default:
        p->continue_due = false;
        return p->state >= HP_TRAILER_START ? step_trailer(p, (unsigned char)data[0])
                                            : step_chunk_line(p, (unsigned char)data[0]);
    }
}

http_result http_parser_feed(http_parser *p, const char *data, size_t len, size_t *consumed) {
    size_t used = 0;
    while (used < len && p->state != HP_DONE && p->state != HP_ERROR) {
        used += step(p, data + used, len - used);
    }
    *consumed = used;
    return p->state == HP_DONE ? HTTP_DONE : p->state == HP_ERROR ? HTTP_ERROR : HTTP_NEED_MORE;
}

bool http_parser_started(const http_parser *p) {
    return p->state != HP_HEAD || p->head_bytes > 0;
}

const http_request *http_parser_request(const http_parser *p) {
    return p->state == HP_DONE ? &p->request : NULL;
}

int http_parser_error_status(const http_parser *p) {
    return p->state == HP_ERROR ? p->error_status : 0;
}

const char *http_parser_error_message(const http_parser *p) {
    return p->state == HP_ERROR ? p->error_message : NULL;
}

bool http_keep_alive(const http_parser *p) {
    return p->state == HP_DONE && p->request.keep_alive;
}

bool http_parser_take_continue(http_parser *p) {
    bool due = p->continue_due && p->state != HP_ERROR && p->state != HP_DONE;
    p->continue_due = false;
    return due;
}

const char *http_header_get(const http_request *req, const char *name) {
    for (size_t i = 0; i < req->header_count; i++) {
        if (name_is(&req->headers[i], name)) {
            return req->headers[i].value;
        }
    }
    return NULL;
}

/* ---- responses ------------------------------------------------------------------------- */

static const struct status_reason {
    int status;
    const char *reason;
} status_reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *http_status_reason(int status) {
    for (size_t i = 0; i < sizeof status_reasons / sizeof status_reasons[0]; i++) {
        if (status_reasons[i].status == status) {
            return status_reasons[i].reason;
        }
    }
    return "Unknown";
}

/* Complete non-empty lines, each ending in CRLF, with no other CR or LF. */
static bool valid_extra_headers(const char *s) {
    size_t line_len = 0;
    for (; *s != '\0'; s++) {
        if (*s == '\r' && s[1] == '\n' && line_len > 0) {
            s++;
            line_len = 0;
        } else if (*s == '\r' || *s == '\n') {
            return false;
        } else {
            line_len++;
        }
    }
    return line_len == 0;
}

static bool response_args_valid(int status, const char *content_type, const char *body,
                                size_t body_len, const char *extra_headers) {
    bool bodiless = status == 204 || status == 304;
    return status >= 200 && status <= 599 && (body != NULL || body_len == 0) &&
           !(bodiless && body_len > 0) &&
           (content_type == NULL || strpbrk(content_type, "\r\n") == NULL) &&
           (extra_headers == NULL || valid_extra_headers(extra_headers));
}

/* The status line and headers, up to and including the empty line; snprintf's result. */
static int format_head(char *buf, size_t size, int status, const char *content_type,
                       const char *length_line, bool keep_alive, const char *extra_headers) {
    return snprintf(buf, size, "HTTP/1.1 %d %s\r\n%s%s%s%sConnection: %s\r\n%s\r\n", status,
                    http_status_reason(status), content_type ? "Content-Type: " : "",
                    content_type ? content_type : "", content_type ? "\r\n" : "", length_line,
                    keep_alive ? "keep-alive" : "close", extra_headers ? extra_headers : "");
}

int http_response_build(char **out, size_t *len, int status, const char *content_type,
                        const char *body, size_t body_len, bool keep_alive,
                        const char *extra_headers) {
    if (!response_args_valid(status, content_type, body, body_len, extra_headers)) {
        return -1;
    }
    char length_line[64] = ""; /* 204 and 304 have no body, so no length either */
    if (status != 204 && status != 304 &&
        snprintf(length_line, sizeof length_line, "Content-Length: %zu\r\n", body_len) < 0) {
        return -1;
    }
    int head_len =
        format_head(NULL, 0, status, content_type, length_line, keep_alive, extra_headers);
    if (head_len < 0 || body_len > SIZE_MAX - (size_t)head_len - 1) {
        return -1;
    }
    char *buf = malloc((size_t)head_len + body_len + 1);
    if (buf == NULL) {
        return -1;
    }
    if (format_head(buf, (size_t)head_len + 1, status, content_type, length_line, keep_alive,
                    extra_headers) != head_len) {
        free(buf);
        return -1;
    }
    if (body_len > 0) {
        memcpy(buf + head_len, body, body_len);
    }
    buf[(size_t)head_len + body_len] = '\0';
    *out = buf;
    *len = (size_t)head_len + body_len;
    return 0;
}
