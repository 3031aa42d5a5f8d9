/*
 * toto_commands.h - the subcommands of the `toto` CLI (client/toto.c).
 * Each takes the arguments after the command's name (argv[0] is the
 * command's name) and returns the process's exit status (docs/toto-cli.md):
 * 0 success, 1 the daemon or the system failed, 2 bad usage or input.
 */
#ifndef TOTO_COMMANDS_H
#define TOTO_COMMANDS_H

int toto_bench_main(int argc, char **argv);
int toto_health_main(int argc, char **argv);
int toto_info_main(int argc, char **argv);
int toto_metrics_main(int argc, char **argv);
int toto_forecast_main(int argc, char **argv);

#endif
