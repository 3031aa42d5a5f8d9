/*
 * fuzz_check.h - the harnesses' one assertion. A broken invariant names its
 * file, line and condition on stderr, then aborts, so that libFuzzer saves
 * the input as a crash (and prints the reason next to it), whatever NDEBUG
 * the build sets.
 */
#ifndef TOTO_FUZZ_CHECK_H
#define TOTO_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
