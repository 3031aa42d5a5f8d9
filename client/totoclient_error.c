/*
 * totoclient_error.c - error kinds and filling toto_client_error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "totoclient_internal.h"

const char *toto_client_error_kind_name(int kind) {
    switch (kind) {
    case TOTO_CLIENT_OK:
        return "OK";
    case TOTO_CLIENT_EADDRESS:
        return "EADDRESS";
    case TOTO_CLIENT_ECONNECT:
        return "ECONNECT";
    case TOTO_CLIENT_ETIMEOUT:
        return "ETIMEOUT";
    case TOTO_CLIENT_EIO:
        return "EIO";
    case TOTO_CLIENT_EPROTOCOL:
        return "EPROTOCOL";
    case TOTO_CLIENT_ESERVER:
        return "ESERVER";
    case TOTO_CLIENT_EINVAL:
        return "EINVAL";
    case TOTO_CLIENT_ENOMEM:
        return "ENOMEM";
    default:
        return "E?";
    }
}

int tc_error(toto_client_error *err, int kind, const char *fmt, ...) {
    if (err == NULL)
        return kind;
    err->kind = kind;
    err->rpc_code = 0;
    err->field[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return kind;
}

void tc_error_clear(toto_client_error *err) {
    if (err == NULL)
        return;
    err->kind = TOTO_CLIENT_OK;
    err->rpc_code = 0;
    err->message[0] = '\0';
    err->field[0] = '\0';
}

int tc_error_from_rpc(toto_client_error *err, json_t *error) {
    json_t *code = json_object_get(error, "code");
    json_t *message = json_object_get(error, "message");
    if (!json_is_integer(code))
        return tc_error(err, TOTO_CLIENT_EPROTOCOL, "an error answer without an integer code");
    int kind = tc_error(err, TOTO_CLIENT_ESERVER, "%s",
                        json_is_string(message) ? json_string_value(message) : "(no message)");
    if (err == NULL)
        return kind;
    err->rpc_code = (int)json_integer_value(code);
    json_t *field = json_object_get(json_object_get(error, "data"), "field");
    if (json_is_string(field))
        snprintf(err->field, sizeof err->field, "%s", json_string_value(field));
    return kind;
}
