/*
 * tap.h - a minimal TAP producer for the project's test programs (C and C++).
 * Each check prints "ok N - name" or "not ok N - name"; tap_done() prints the
 * plan and returns the exit status. meson runs these with protocol 'tap'.
 */
#ifndef TOTO_TAP_H
#define TOTO_TAP_H

#include <stdarg.h>
#include <stdio.h>

typedef struct tap_state {
    int run;
    int failed;
} tap_state;

static tap_state tap_g; /* one per test program: the harness is the top level */

static inline int tap_check(int ok, const char *fmt, ...) {
    va_list ap;
    tap_g.run++;
    if (!ok) tap_g.failed++;
    printf("%sok %d - ", ok ? "" : "not ", tap_g.run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return ok;
}

/* Diagnostic line, shown by TAP consumers next to the preceding check. */
static inline void tap_diag(const char *fmt, ...) {
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static inline int tap_done(void) {
    printf("1..%d\n", tap_g.run);
    fflush(stdout);
    return tap_g.failed == 0 && tap_g.run > 0 ? 0 : 1;
}

#endif
