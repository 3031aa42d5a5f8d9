/*
 * http.h - an incremental HTTP/1.1 request parser and a response builder
 * (RFC 9110, RFC 9112). Pure C11: no I/O, no libuv, nothing printed. The
 * connection code feeds bytes as they arrive and writes what it builds.
 *
 *   http_parser p;
 *   http_parser_init(&p, NULL);               // default limits
 *   ... on every read of buf[0..n):
 *   while (n > 0) {
 *       size_t used;
 *       http_result r = http_parser_feed(&p, buf, n, &used);
 *       buf += used, n -= used;                // bytes not used belong to the next request
 *       if (r == HTTP_NEED_MORE) break;        // (used == n here: everything was taken)
 *       if (r == HTTP_ERROR) { answer http_parser_error_status(&p), then close; }
 *       serve(http_parser_request(&p)), keep open if http_keep_alive(&p);
 *       http_parser_reset(&p);
 *   }
 *   http_parser_free(&p);
 *
 * Strictness: lines end in CRLF (a bare LF or CR is refused), no obsolete
 * line folding, no NUL or other control bytes, header names are tokens,
 * Content-Length and Transfer-Encoding may not both be present, and
 * "chunked" must be the final transfer coding; each of these is a classic
 * request-smuggling vector when two parsers disagree.
 */
#ifndef TOTO_HTTP_H
#define TOTO_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HTTP_DEFAULT_MAX_HEADER_BYTES ((size_t)16 * 1024)
#define HTTP_DEFAULT_MAX_HEADERS      ((size_t)64)
#define HTTP_DEFAULT_MAX_BODY_BYTES   ((size_t)16 * 1024 * 1024)

/* The interim response to write when http_parser_take_continue() says so. */
#define HTTP_CONTINUE_RESPONSE "HTTP/1.1 100 Continue\r\n\r\n"

/* What one request may hold; a zero field means its default. */
typedef struct http_limits {
    /* Request line + header lines + the empty line, CRLFs included (431, or
     * 414 while still in the request line). Also bounds each chunk-size line
     * and the chunked trailer section. */
    size_t max_header_bytes;
    size_t max_headers;    /* header fields (431); also trailer fields */
    size_t max_body_bytes; /* after chunked decoding (413) */
} http_limits;

typedef enum http_result {
    HTTP_NEED_MORE = 0, /* all bytes were taken, the request is not complete yet */
    HTTP_DONE = 1,      /* one complete request: http_parser_request() */
    HTTP_ERROR = -1,    /* http_parser_error_status() / _message(); the stream is unusable */
} http_result;

typedef struct http_header {
    const char *name;  /* as sent */
    const char *value; /* leading and trailing whitespace removed */
} http_header;

/* A complete request; every string is NUL-terminated and owned by the parser. */
typedef struct http_request {
    const char *method; /* as sent ("GET"; methods are case-sensitive) */
    const char *target; /* the request-target as sent: "/v1/forecast?x=1" */
    const char *path;   /* target before '?' ("/a" of "http://host/a?q"; "/" of "http://host") */
    const char *query;  /* target after the first '?'; "" when there is none */
    int version_minor;  /* 0: HTTP/1.0, 1: HTTP/1.1 (also for 1.2 and up, per RFC 9110 2.5) */
    const http_header *headers; /* in the order sent */
    size_t header_count;
    const char *body; /* body_len bytes, chunked already decoded; NUL-terminated */
    size_t body_len;
    bool keep_alive; /* same as http_keep_alive() */
} http_request;

/* Caller-allocated so it can live inside a connection; every field is private. */
typedef struct http_parser {
    http_limits limits;
    int state;
    int error_status;
    const char *error_message;
    /* head: finished lines packed as "method\0target\0name\0value\0...", then the line being read
     */
    char *head;
    size_t head_len, head_cap;
    size_t line_start; /* where the line being read begins in head */
    size_t head_bytes; /* raw bytes of the head so far, for the limit */
    size_t header_count;
    http_header *headers;
    size_t headers_cap;
    char *body;
    size_t body_len, body_cap;
    size_t body_left;  /* Content-Length: bytes still due; chunked: bytes left in this chunk */
    size_t line_bytes; /* chunked: bytes of the current chunk-size line */
    size_t trailer_bytes, trailer_count;
    bool in_request_line, chunked, close_after, continue_due;
    http_request request;
} http_parser;

/* Fills limits with the defaults. */
void http_limits_default(http_limits *limits);

/* limits may be NULL for the defaults. Allocates nothing until the first feed. */
void http_parser_init(http_parser *p, const http_limits *limits);

/*
 * Takes bytes of data, up to the end of the current request at most, and sets
 * *consumed to how many. NEED_MORE takes all len bytes. After DONE the bytes
 * past *consumed start the next request: feed them again after
 * http_parser_reset(). Once DONE or ERROR, further feeds take nothing and
 * return the same until a reset.
 */
http_result http_parser_feed(http_parser *p, const char *data, size_t len, size_t *consumed);

/* Forgets the request (pointers from http_parser_request() die) for the next one. */
void http_parser_reset(http_parser *p);
void http_parser_free(http_parser *p);

/*
 * Whether any byte of a request has been taken since the last reset (empty
 * lines before a request do not count), including after DONE and ERROR. A
 * connection tells a slow request from an idle keep-alive connection by it.
 */
bool http_parser_started(const http_parser *p);

/* The request after DONE, valid until the next reset or free; NULL otherwise. */
const http_request *http_parser_request(const http_parser *p);

/* After ERROR: the status to answer with (400, 411, 413, 414, 431, 501, 505,
 * or 500 when out of memory) and why, a static string; 0 and NULL otherwise. */
int http_parser_error_status(const http_parser *p);
const char *http_parser_error_message(const http_parser *p);

/*
 * Whether the connection may stay open after answering the request: HTTP/1.1
 * unless "Connection: close", HTTP/1.0 only with "Connection: keep-alive".
 * False before DONE and after ERROR.
 */
bool http_keep_alive(const http_parser *p);

/*
 * True once per request, right after the feed that completed the head of a
 * request with "Expect: 100-continue" whose body is yet to come: write
 * HTTP_CONTINUE_RESPONSE then, or the client may wait a second before it sends
 * the body. A body that is too large is refused (413) before this turns true.
 */
bool http_parser_take_continue(http_parser *p);

/* The first header named name (ASCII case-insensitive), or NULL. */
const char *http_header_get(const http_request *req, const char *name);

/* The standard reason phrase ("Not Found"), or "Unknown". */
const char *http_status_reason(int status);

/*
 * Builds a whole HTTP/1.1 response into *out (malloc'd, NUL-terminated after
 * *len bytes; free() it): the status line, Content-Type when content_type is
 * not NULL, Content-Length (not for 204 and 304, which take no body),
 * "Connection: keep-alive" or "Connection: close", then extra_headers (NULL,
 * or complete lines each ending in CRLF, e.g. "Retry-After: 1\r\n"), the
 * empty line and the body. body may be NULL when body_len is 0.
 * Returns 0, or -1 (nothing allocated) for a status outside 200..599, a CR or
 * LF in content_type, malformed extra_headers, a body with 204 or 304, or
 * when out of memory.
 */
int http_response_build(char **out, size_t *len, int status, const char *content_type,
                        const char *body, size_t body_len, bool keep_alive,
                        const char *extra_headers);

#ifdef __cplusplus
}
#endif

#endif
