/*
 * test_write_fanout.c - daemon/write_fanout.h: every write of a round made
 * exactly once, whole or reported short, whoever takes it (the calling
 * thread or a helper); rounds after rounds with helpers awake, asleep and
 * kicked; writes larger than a socket's buffer come back short, not lost;
 * a closed peer comes back as an error, not a signal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../daemon/write_fanout.h" /* the unit test table gives no daemon include dir */
#include "tap.h"

#define PAIRS 64

static int pairs[PAIRS][2];

static void open_pairs(void) {
    for (int i = 0; i < PAIRS; i++)
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pairs[i]))
            abort();
}

/* Reads what is waiting on pairs[i][1] (non-blocking); the byte count. */
static size_t drain(int i, char *out, size_t cap) {
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(pairs[i][1], out + got, cap - got, MSG_DONTWAIT);
        if (n <= 0)
            return got;
        got += (size_t)n;
    }
}

/* rounds rounds of PAIRS writes each, every one a distinct text; checks all. */
static void check_rounds(write_fanout *f, int rounds, unsigned pause_us, const char *what) {
    char text[PAIRS][64], got[256];
    fanout_write w[PAIRS];
    int wrong = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < PAIRS; i++) {
            int len = snprintf(text[i], sizeof text[i], "round %d pair %d\n", r, i);
            w[i] = (fanout_write){pairs[i][0], text[i], (size_t)len, 0};
        }
        if (f)
            write_fanout_run(f, w, PAIRS);
        else
            write_fanout_inline(w, PAIRS);
        for (int i = 0; i < PAIRS; i++) {
            size_t n = drain(i, got, sizeof got);
            if (w[i].result != (ssize_t)w[i].len || n != w[i].len || memcmp(got, text[i], n))
                wrong++;
        }
        if (pause_us)
            usleep(pause_us);
    }
    tap_check(wrong == 0, "%s: %d rounds x %d writes, each made once and whole (%d wrong)", what,
              rounds, PAIRS, wrong);
}

static void check_short_and_closed(write_fanout *f) {
    size_t big = 8u << 20; /* far more than a socket buffer */
    char *data = malloc(big);
    memset(data, 'x', big);
    int closed[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, closed))
        abort();
    close(closed[1]);
    fanout_write w[PAIRS + 1];
    for (int i = 0; i < PAIRS; i++)
        w[i] = (fanout_write){pairs[i][0], data, big, 0};
    w[PAIRS] = (fanout_write){closed[0], data, 10, 0};
    write_fanout_run(f, w, PAIRS + 1);
    int shortw = 0;
    char *sink = malloc(big);
    for (int i = 0; i < PAIRS; i++) {
        size_t n = drain(i, sink, big);
        shortw += w[i].result > 0 && (size_t)w[i].result < big && n == (size_t)w[i].result;
    }
    tap_check(shortw == PAIRS,
              "8 MiB writes: each short, and exactly what was sent arrived (%d/%d)", shortw, PAIRS);
    tap_check(w[PAIRS].result == -EPIPE, "a closed peer: -EPIPE (%zd), and no SIGPIPE",
              w[PAIRS].result);
    close(closed[0]);
    free(sink);
    free(data);
}

int main(void) {
    open_pairs();
    check_rounds(NULL, 50, 0, "inline");
    write_fanout f;
    tap_check(write_fanout_start(&f, 3, 2000000) == 0, "3 helpers start");
    check_rounds(&f, 2000, 0, "helpers awake (rounds back to back)");
    check_rounds(&f, 20, 5000, "helpers asleep between rounds (5 ms apart, 2 ms polls)");
    check_rounds(&f, 500, 100, "rounds 0.1 ms apart");
    check_short_and_closed(&f);
    uint64_t by_helpers = f.written_by_helpers;
    write_fanout_stop(&f);
    tap_check(by_helpers > 0, "the helpers made some of the writes (%llu)",
              (unsigned long long)by_helpers);
    for (int i = 0; i < PAIRS; i++) {
        close(pairs[i][0]);
        close(pairs[i][1]);
    }
    return tap_done();
}
