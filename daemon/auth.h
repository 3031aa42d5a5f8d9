/*
 * auth.h - the shared token of TCP and HTTP clients (auth-token-file): read
 * and checked once at start, compared in constant time, found in an
 * "Authorization: Bearer" header. Pure C: no libuv, no JSON, no logging, so
 * that tests/unit/test_auth.c links it alone.
 *
 * The Unix socket needs no token: its file mode and group (unix-mode,
 * unix-group) are its access control. docs/security.md has the whole model.
 */
#ifndef TOTOD_AUTH_H
#define TOTOD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#define AUTH_TOKEN_MIN 16   /* bytes: shorter ones are refused at start */
#define AUTH_TOKEN_MAX 1024 /* bytes: longer ones too (a header line, not a file) */

/* Wrong tokens a connection may present before it is closed. */
#define AUTH_MAX_FAILURES 3

/*
 * Reads the token: the first line of the file at path, surrounding white
 * space trimmed, into token (AUTH_TOKEN_MAX + 1 bytes, NUL-terminated).
 * Refuses a file that is missing or not a regular file, readable or
 * writable by group or others (mode & 077), empty, or whose token is
 * shorter than AUTH_TOKEN_MIN, longer than AUTH_TOKEN_MAX, or holds control
 * characters. 0 with *len set, or -1 with err saying which (no token bytes
 * in it).
 */
int auth_token_load(const char *path, char token[AUTH_TOKEN_MAX + 1], size_t *len, char *err,
                    size_t err_len);

/*
 * Whether given equals expected, in time that depends only on given_len
 * (the caller's own input): every byte of given is compared, differences
 * OR-accumulated, no early exit, and the lengths are compared the same way,
 * so neither the position of the first wrong byte nor expected's length
 * shows in the timing. An empty expected never matches.
 */
bool auth_equal(const char *expected, size_t expected_len, const char *given, size_t given_len);

/*
 * The token of an Authorization header value "Bearer TOKEN" (scheme in any
 * case, then spaces): *token and *len point into value. false when value is
 * NULL or another scheme.
 */
bool auth_bearer(const char *value, const char **token, size_t *len);

#endif
