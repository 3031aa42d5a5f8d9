/* cli_common.c - connection options and exit statuses of the `toto` commands. */
#include "cli_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_connection_init(cli_connection *c) {
    memset(c, 0, sizeof *c);
    c->timeout_ms = -1;
    const char *env = getenv("TOTO_TOKEN_FILE");
    c->token_file = env && *env ? env : NULL;
}

bool cli_parse_int(const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

int cli_connection_option(cli_connection *c, const char *cmd, const char *a, const char *v) {
    long long ms;
    if (!strcmp(a, "--address"))
        c->address = v;
    else if (!strcmp(a, "--socket")) {
        snprintf(c->socket_address, sizeof c->socket_address, "unix:%s", v);
        c->address = c->socket_address;
    } else if (!strcmp(a, "--token-file")) {
        c->token_file = v;
    } else if (!strcmp(a, "--timeout-ms")) {
        if (!cli_parse_int(v, 0, 86400000, &ms)) {
            fprintf(stderr, "toto %s: --timeout-ms: expected 0 ... 86400000, got '%s'\n", cmd, v);
            return -1;
        }
        c->timeout_ms = (int)ms;
    } else
        return 0;
    return 1;
}

toto_client *cli_connect(const cli_connection *c, const char *cmd, int *status) {
    toto_client_params p = toto_client_default_params();
    if (c->timeout_ms >= 0)
        p.timeout_ms = c->timeout_ms;
    toto_client *client = NULL;
    toto_client_error err;
    char token[1100];
    if (c->token_file) {
        if (toto_client_read_token_file(c->token_file, token, sizeof token, &err)) {
            cli_print_error(cmd, &err);
            *status = CLI_EXIT_USAGE;
            return NULL;
        }
        p.token = token;
    }
    if (toto_client_open(c->address, &p, &client, &err) != TOTO_CLIENT_OK) {
        cli_print_error(cmd, &err);
        *status = cli_exit_for(&err);
        return NULL;
    }
    return client;
}

int cli_exit_for(const toto_client_error *err) {
    if (err->kind == TOTO_CLIENT_OK)
        return CLI_EXIT_OK;
    if (err->kind == TOTO_CLIENT_EADDRESS || err->kind == TOTO_CLIENT_EINVAL)
        return CLI_EXIT_USAGE;
    /* Invalid params, unauthorized: retrying unchanged gives the same answer (PROTOCOL.md). */
    if (err->kind == TOTO_CLIENT_ESERVER && (err->rpc_code == -32602 || err->rpc_code == -32004))
        return CLI_EXIT_USAGE;
    return CLI_EXIT_FAILED;
}

void cli_print_error(const char *cmd, const toto_client_error *err) {
    if (err->kind == TOTO_CLIENT_ESERVER)
        fprintf(stderr, "toto %s: the daemon answered error %d: %s\n", cmd, err->rpc_code,
                err->message);
    else
        fprintf(stderr, "toto %s: %s (%s)\n", cmd, err->message,
                toto_client_error_kind_name(err->kind));
}

int cli_missing_value(const char *cmd, const char *a) {
    fprintf(stderr, "toto %s: %s needs a value (see toto %s --help)\n", cmd, a, cmd);
    return CLI_EXIT_USAGE;
}
