/*
 * loadgen_floor.h - the socket floor for toto-loadgen --floor: an echo
 * process that answers each request line at once with a canned answer of the
 * daemon's own bytes (a real result captured first, its timing zeroed). What
 * a client measures against it is the cost of the socket, the wake-ups and
 * the client's own JSON, which no daemon can go below on this machine; the
 * benchmark prints it beside the daemon's overhead, measured in the same run.
 */
#ifndef TOTO_LOADGEN_FLOOR_H
#define TOTO_LOADGEN_FLOOR_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Sends request (a whole line, '\n' included) to the connected fd, reads the
 * answer and returns its "result" as JSON text (malloc'd) whose "timing"
 * reports the echo's hold as the model time; NULL with err filled.
 */
char *floor_capture_result(int fd, const char *request, size_t len, double timeout_s,
                           double hold_ms, char *err, size_t err_len);

/*
 * Forks the echo process; returns the client's end of a socketpair (and the
 * child in *child), or -1 with errno set. The child answers each line that
 * ends in "id":N} with {"jsonrpc":"2.0","id":N,"result":RESULT}, delay_us
 * after reading it (0: at once), busy as a model call keeps the worker: with
 * the model's time as the delay the client sleeps as long as it does against
 * the daemon, and a VM's wake-ups, which cost more after a longer sleep, are
 * counted alike.
 */
int floor_start(const char *result, long delay_us, pid_t *child);

/* Closes fd, which ends the child, and reaps it. */
void floor_stop(int fd, pid_t child);

#endif
