/*
 * access.h - who may do what, on every transport (docs/security.md):
 *
 *  - a Unix socket or stdio connection is local: its file permissions
 *    (unix-mode, unix-group) decided who connects, so it needs no token and
 *    may call the admin methods;
 *  - with auth-token-file set, a TCP connection must first send the method
 *    auth with the token, and every other request before that is answered
 *    -32004; an HTTP request to /metrics or /v1/forecast must carry
 *    "Authorization: Bearer TOKEN" (401 otherwise), /health and /ready
 *    need none (probes) and then reveal only the status;
 *  - admin methods (use_compiled) need a local connection, or a TCP one
 *    that presented the token: without a token configured, never over TCP;
 *  - AUTH_MAX_FAILURES wrong tokens close the connection.
 */
#ifndef TOTOD_ACCESS_H
#define TOTOD_ACCESS_H

#include <stdbool.h>

#include <jansson.h>

#include "conn.h"
#include "dispatch.h"
#include "http.h"
#include "server.h"

/* Whether c may call methods other than auth now (JSON-RPC). */
bool access_may_call(const server *s, const conn *c);
/* Whether c may call an admin method; if not, fills *r (-32004, saying why). */
bool access_may_admin(const server *s, const conn *c, const char *method, dispatch_refusal *r);
/* Fills *r with the answer to a request on a connection that must auth first. */
void access_refuse_unauthenticated(const server *s, dispatch_refusal *r);

/*
 * The method auth with params (may be NULL): the result, or NULL with *r
 * filled (-32602 for a token that is not a string, -32004 for a wrong one).
 * *close: the connection has had AUTH_MAX_FAILURES wrong tokens; answer,
 * then close it.
 */
json_t *access_auth(server *s, conn *c, const json_t *params, dispatch_refusal *r, bool *close);

/*
 * HTTP: whether req may have a protected endpoint (/metrics, /v1/forecast).
 * If not, fills *r (-32004: no or a wrong bearer token); *close as above.
 */
bool access_http_allowed(server *s, conn *c, const http_request *req, dispatch_refusal *r,
                         bool *close);
/* HTTP: whether req carries the right bearer token (never counted as a failure). */
bool access_http_has_token(const server *s, const http_request *req);

#endif
