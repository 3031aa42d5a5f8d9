/*
 * cli_common.h - what every `toto` command that talks to totod shares: the
 * connection options (--address, --socket, --timeout-ms), connecting, and
 * the exit status an error kind maps to (docs/toto-cli.md).
 */
#ifndef TOTO_CLI_COMMON_H
#define TOTO_CLI_COMMON_H

#include <limits.h>
#include <stdbool.h>

#include "totoclient.h"

/* Exit statuses of every command. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1, /* the daemon, the connection or the system failed */
    CLI_EXIT_USAGE = 2,  /* bad options or input (a CSV row, a refused request) */
};

typedef struct cli_connection {
    const char *address; /* NULL: the library's default ($TOTO_ADDRESS, the socket) */
    char socket_address[PATH_MAX + 8];
    int timeout_ms;         /* per answer; the library's default unless set */
    const char *token_file; /* --token-file, else $TOTO_TOKEN_FILE; NULL: no token */
} cli_connection;

void cli_connection_init(cli_connection *c);

/*
 * Takes option a with value v if it is a connection option (--address,
 * --socket, --timeout-ms, --token-file): 1 taken, 0 not
 * one of them, -1 a bad value (message printed, prefixed with cmd).
 */
int cli_connection_option(cli_connection *c, const char *cmd, const char *a, const char *v);

/* Connects; on failure prints "toto CMD: ...", sets *status (2 for a bad
 * address, else 1) and returns NULL. */
toto_client *cli_connect(const cli_connection *c, const char *cmd, int *status);

/* The exit status for an error kind: input errors the daemon refused are 2. */
int cli_exit_for(const toto_client_error *err);

/* Prints "toto CMD: message (field F)" for err. */
void cli_print_error(const char *cmd, const toto_client_error *err);

/* Parses a whole number in [lo, hi]; false if v is not entirely one. */
bool cli_parse_int(const char *v, long long lo, long long hi, long long *out);

/* An option that needs a value but is last on the line: message printed. */
int cli_missing_value(const char *cmd, const char *a);

#endif
