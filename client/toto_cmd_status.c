/*
 * toto_cmd_status.c - `toto health`, `toto info` and `toto metrics`: one
 * call each, printed for people (one "key: value" line per leaf, nested
 * keys joined with '.') or, with --json, as the daemon's JSON result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_common.h"
#include "toto_commands.h"

/* `toto health` exits 3 when the daemon is degraded, 4 when it is not serving yet. */
enum { HEALTH_EXIT_DEGRADED = 3, HEALTH_EXIT_NOT_READY = 4 };

static void usage(FILE *f, const char *cmd) {
    fprintf(f,
            "usage: toto %s [--address unix:PATH|tcp:HOST:PORT | --socket PATH]\n"
            "       %*s [--timeout-ms MS] [--json]\n\n",
            cmd, (int)strlen(cmd), "");
    if (!strcmp(cmd, "health"))
        fprintf(f, "The daemon's health: status (ok, degraded, starting), the reasons it is\n"
                   "degraded, latency windows, queue and connections.\n"
                   "Exit status: 0 ok, 3 degraded, 4 not serving yet, 1 no answer, 2 bad usage.\n");
    else if (!strcmp(cmd, "info"))
        fprintf(f, "The model (name, device, dtype, path, parameters, architecture, request\n"
                   "limits), the workers and every effective setting.\n"
                   "Exit status: 0 answered, 1 no answer, 2 bad usage.\n");
    else
        fprintf(f, "Counters since start: requests, errors, batches, latency histograms,\n"
                   "fallbacks, drift and shadow checks (PROTOCOL.md, metrics).\n"
                   "Exit status: 0 answered, 1 no answer, 2 bad usage.\n");
    fprintf(f, "  --json  print the daemon's JSON result (one line) instead of key: value lines\n");
}

static void print_scalar(const json_t *v) {
    if (json_is_string(v))
        fputs(json_string_value(v), stdout);
    else {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
        fputs(s ? s : "?", stdout);
        free(s);
    }
}

/* One line per leaf; arrays print inline (histogram buckets stay readable). */
static void print_tree(const json_t *v, char *key, size_t len, size_t cap) {
    if (!json_is_object(v) || json_object_size(v) == 0) {
        printf("%s: ", len ? key : "(result)");
        print_scalar(v);
        putchar('\n');
        return;
    }
    const char *k;
    json_t *child;
    json_object_foreach((json_t *)v, k, child) {
        int n = snprintf(key + len, cap - len, "%s%s", len ? "." : "", k);
        size_t sub = n > 0 && (size_t)n < cap - len ? len + (size_t)n : len;
        print_tree(child, key, sub, cap);
        key[len] = '\0';
    }
}

static int health_status(const json_t *result) {
    const char *status = json_string_value(json_object_get(result, "status"));
    if (status && !strcmp(status, "ok"))
        return CLI_EXIT_OK;
    return status && !strcmp(status, "degraded") ? HEALTH_EXIT_DEGRADED : HEALTH_EXIT_NOT_READY;
}

/* Prints the result; the exit status. */
static int print_result(const char *cmd, const char *text, bool raw) {
    json_error_t jerr;
    json_t *result = json_loads(text, 0, &jerr);
    if (!result) {
        fprintf(stderr, "toto %s: the answer is not JSON: %s\n", cmd, jerr.text);
        return CLI_EXIT_FAILED;
    }
    if (raw)
        printf("%s\n", text);
    else {
        char key[1024] = "";
        print_tree(result, key, 0, sizeof key);
    }
    int rc = !strcmp(cmd, "health") ? health_status(result) : CLI_EXIT_OK;
    json_decref(result);
    return rc;
}

static int status_main(const char *cmd, int argc, char **argv) {
    cli_connection conn;
    cli_connection_init(&conn);
    bool raw = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout, cmd);
            return CLI_EXIT_OK;
        }
        if (!strcmp(a, "--json")) {
            raw = true;
            continue;
        }
        if (i + 1 >= argc)
            return cli_missing_value(cmd, a);
        int taken = cli_connection_option(&conn, cmd, a, argv[i + 1]);
        if (taken < 0)
            return CLI_EXIT_USAGE;
        if (taken == 0) {
            fprintf(stderr, "toto %s: unknown option %s (see toto %s --help)\n", cmd, a, cmd);
            return CLI_EXIT_USAGE;
        }
        i++;
    }
    int status = CLI_EXIT_FAILED;
    toto_client *client = cli_connect(&conn, cmd, &status);
    if (!client)
        return status;
    char *text = NULL;
    toto_client_error err;
    int rc = toto_client_call(client, cmd, NULL, -1, &text, &err) == TOTO_CLIENT_OK
                 ? print_result(cmd, text, raw)
                 : (cli_print_error(cmd, &err), cli_exit_for(&err));
    toto_client_string_free(text);
    toto_client_free(client);
    return rc;
}

int toto_health_main(int argc, char **argv) {
    return status_main("health", argc, argv);
}

int toto_info_main(int argc, char **argv) {
    return status_main("info", argc, argv);
}

int toto_metrics_main(int argc, char **argv) {
    return status_main("metrics", argc, argv);
}
