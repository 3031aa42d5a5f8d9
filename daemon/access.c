/* access.c - tokens, admin methods and who needs them (see access.h). */
#include "access.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "jsonrpc.h"
#include "log.h"

static bool token_configured(const server *s) {
    return s->cfg->auth_token_len > 0;
}

bool access_may_call(const server *s, const conn *c) {
    return c->local || !token_configured(s) || c->authenticated;
}

bool access_may_admin(const server *s, const conn *c, const char *method, dispatch_refusal *r) {
    if (c->local || (token_configured(s) && c->authenticated))
        return true;
    r->code = RPC_UNAUTHORIZED;
    snprintf(r->message, sizeof r->message,
             "unauthorized: %.100s is an admin method: send it over the Unix socket%s", method,
             token_configured(s) ? ", or after auth with the token"
                                 : " (over TCP only once auth-token-file is set and its token "
                                   "presented)");
    r->data = json_pack("{s:s}", "method", method);
    return false;
}

void access_refuse_unauthenticated(const server *s, dispatch_refusal *r) {
    (void)s;
    r->code = RPC_UNAUTHORIZED;
    snprintf(r->message, sizeof r->message,
             "unauthorized: send the method auth with the token (auth-token-file) first");
    r->data = NULL;
}

/* A wrong token: counted, logged (never the token), and after the last one the connection goes. */
static void wrong_token(conn *c, const char *how, dispatch_refusal *r, bool *close) {
    c->authenticated = false;
    c->auth_failures++;
    *close = c->auth_failures >= AUTH_MAX_FAILURES;
    log_msg(TLOG_WARNING, "connection %s: %s: wrong token (%d of %d%s)", c->peer, how,
            c->auth_failures, AUTH_MAX_FAILURES, *close ? "; closing it" : "");
    r->code = RPC_UNAUTHORIZED;
    snprintf(r->message, sizeof r->message, "unauthorized: wrong token (%d of %d attempts%s)",
             c->auth_failures, AUTH_MAX_FAILURES, *close ? "; closing the connection" : "");
    r->data = json_pack("{s:i, s:i}", "failures", c->auth_failures, "max", AUTH_MAX_FAILURES);
}

json_t *access_auth(server *s, conn *c, const json_t *params, dispatch_refusal *r, bool *close) {
    const totod_config *cfg = s->cfg;
    *close = false;
    if (!token_configured(s)) /* nothing to check: say so rather than fail a careful client */
        return json_pack("{s:b, s:b}", "authenticated", 0, "required", 0);
    const json_t *token = json_object_get(params, "token");
    if (!json_is_string(token)) {
        r->code = PROTO_INVALID_PARAMS;
        snprintf(r->message, sizeof r->message,
                 "token: expected a string (the first line of the daemon's auth-token-file)");
        r->data = json_pack("{s:s}", "field", "token");
        return NULL;
    }
    if (!auth_equal(cfg->auth_token, cfg->auth_token_len, json_string_value(token),
                    json_string_length(token))) {
        wrong_token(c, "auth", r, close);
        return NULL;
    }
    c->authenticated = true;
    return json_pack("{s:b, s:b}", "authenticated", 1, "required", !c->local);
}

/* The bearer token of req, if any. */
static bool bearer_of(const http_request *req, const char **token, size_t *len) {
    return auth_bearer(http_header_get(req, "Authorization"), token, len);
}

bool access_http_has_token(const server *s, const http_request *req) {
    const char *token;
    size_t len;
    return token_configured(s) && bearer_of(req, &token, &len) &&
           auth_equal(s->cfg->auth_token, s->cfg->auth_token_len, token, len);
}

bool access_http_allowed(server *s, conn *c, const http_request *req, dispatch_refusal *r,
                         bool *close) {
    const char *token;
    size_t len;
    *close = false;
    if (!token_configured(s))
        return true;
    if (!bearer_of(req, &token, &len)) {
        r->code = RPC_UNAUTHORIZED;
        snprintf(r->message, sizeof r->message,
                 "unauthorized: %.200s needs the header 'Authorization: Bearer TOKEN' "
                 "(auth-token-file)",
                 req->path);
        r->data = NULL;
        return false;
    }
    if (auth_equal(s->cfg->auth_token, s->cfg->auth_token_len, token, len))
        return true;
    wrong_token(c, "HTTP bearer", r, close);
    return false;
}
