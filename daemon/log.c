/* log.c - journald-prefixed lines on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void log_msg(int priority, const char *fmt, ...) {
    char line[2048];
    int n = snprintf(line, sizeof line, "<%d>totod: ", priority);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    /* One write per line so lines from the loop and the worker never interleave. */
    ssize_t rc = write(STDERR_FILENO, line, len);
    (void)rc; /* nowhere left to report a failing stderr */
}
