/*
 * toto.c - the `toto` command-line client: one binary, a subcommand per
 * job (docs/toto-cli.md). This file only dispatches; each command lives in
 * its own file (toto_commands.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "toto_commands.h"

typedef struct command {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *what;
} command;

static const command kCommands[] = {
    {"forecast", toto_forecast_main, "forecast a series from a CSV file or stdin"},
    {"health", toto_health_main, "the daemon's health (exit 3 when degraded)"},
    {"info", toto_info_main, "the model, its limits and the daemon's settings"},
    {"metrics", toto_metrics_main, "counters, histograms, drift and shadow checks"},
    {"bench", toto_bench_main, "load generator: throughput and latency percentiles"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: toto COMMAND [OPTIONS]   (toto COMMAND --help for its options)\n\n"
               "Commands:\n");
    for (size_t i = 0; i < sizeof kCommands / sizeof kCommands[0]; i++)
        fprintf(f, "  %-10s %s\n", kCommands[i].name, kCommands[i].what);
    fprintf(f, "\nEvery command talks to totod at --address unix:PATH|tcp:HOST:PORT or\n"
               "--socket PATH; the default is $TOTO_ADDRESS, else unix:/run/toto/toto.sock.\n"
               "Exit status: 0 success, 1 the daemon or the system failed, 2 bad usage or\n"
               "input (docs/toto-cli.md).\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof kCommands / sizeof kCommands[0]; i++)
        if (!strcmp(argv[1], kCommands[i].name))
            return kCommands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "toto: unknown command '%s' (see toto --help)\n", argv[1]);
    return 2;
}
