/*
 * test_auth.c - daemon/auth.h: the token file's checks (each refusal and its
 * reason), the constant-time comparison (results, and that its time does not
 * follow the position of the first wrong byte), and Bearer parsing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../daemon/auth.h" /* the unit test table gives no daemon include dir */
#include "tap.h"

static char dir[] = "/tmp/test_auth_XXXXXX";

/* A file in dir with these bytes and mode; its path. */
static const char *file_with(const char *name, const char *bytes, size_t n, mode_t mode) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) || chmod(path, mode))
        tap_diag("cannot write %s", path);
    return path;
}

/* Loads path; checks the outcome and that the error names why (want_err: a substring). */
static void check_load(const char *what, const char *path, const char *want_token,
                       const char *want_err) {
    char token[AUTH_TOKEN_MAX + 1] = "", err[512] = "";
    size_t len = 0;
    int rc = auth_token_load(path, token, &len, err, sizeof err);
    if (want_token)
        tap_check(rc == 0 && len == strlen(want_token) && !strcmp(token, want_token),
                  "load %s: token '%s'", what, want_token);
    else
        tap_check(rc == -1 && strstr(err, want_err) && strstr(err, path),
                  "load %s: refused, naming the file and '%s'", what, want_err);
    if (rc != 0 || !want_token)
        tap_diag("rc %d, err: %s", rc, err);
}

static void test_load(void) {
    const char *t16 = "0123456789abcdef";
    char missing[300], big[AUTH_TOKEN_MAX + 8], max[AUTH_TOKEN_MAX + 1];
    snprintf(missing, sizeof missing, "%s/none", dir);
    check_load("a missing file", missing, NULL, "No such file");
    check_load("an empty file", file_with("empty", "", 0, 0600), NULL, "empty");
    check_load("white space only", file_with("blank", "  \t\r\n", 5, 0600), NULL, "empty");
    check_load("15 bytes", file_with("short", "0123456789abcde\n", 16, 0600), NULL,
               "15 bytes; at least 16");
    check_load("mode 0644", file_with("o", "0123456789abcdef\n", 17, 0644), NULL, "mode 0644");
    check_load("mode 0640", file_with("g", "0123456789abcdef\n", 17, 0640), NULL, "chmod 600");
    check_load("mode 0604", file_with("w", "0123456789abcdef\n", 17, 0604), NULL, "others");
    check_load("a directory", dir, NULL, "not a regular file");
    check_load("a control byte",
               file_with("ctl",
                         "0123456\x01"
                         "89abcdef",
                         16, 0600),
               NULL, "control character");
    memset(big, 'x', sizeof big);
    check_load("1025 bytes", file_with("long", big, AUTH_TOKEN_MAX + 1, 0600), NULL,
               "longer than 1024");
    check_load("exactly 16 bytes, mode 0600", file_with("ok", t16, 16, 0600), t16, NULL);
    check_load("mode 0400", file_with("ro", t16, 16, 0400), t16, NULL);
    memcpy(max, big, AUTH_TOKEN_MAX);
    max[AUTH_TOKEN_MAX] = '\0';
    check_load("1024 bytes", file_with("max", big, AUTH_TOKEN_MAX, 0600), max, NULL);
    check_load("trimmed, CRLF, second line ignored",
               file_with("trim", "  0123456789abcdef \r\nsecond line\n", 33, 0600), t16, NULL);
}

static bool eq(const char *a, const char *b) {
    return auth_equal(a, strlen(a), b, strlen(b));
}

static void test_equal(void) {
    const char *t = "0123456789abcdef";
    tap_check(eq(t, "0123456789abcdef"), "equal: the same token");
    tap_check(!eq(t, "x123456789abcdef"), "equal: the first byte differs");
    tap_check(!eq(t, "0123456789abcdeF"), "equal: the last byte differs");
    tap_check(!eq(t, "0123456789abcde"), "equal: a prefix");
    tap_check(!eq(t, "0123456789abcdef0"), "equal: one byte more");
    tap_check(!eq(t, "0123456789abcdef0123456789abcdef"), "equal: the token twice");
    tap_check(!eq(t, ""), "equal: empty given");
    tap_check(!eq("", ""), "equal: an empty expected matches nothing");
    tap_check(!auth_equal("ab\0d", 4, "ab\0c", 4), "equal: bytes after a NUL count");
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds for n comparisons of given against expected (-1: one matched). */
static double time_of(const char *expected, const char *given, size_t len, int n) {
    double t0 = seconds();
    int hits = 0;
    for (int i = 0; i < n; i++)
        hits += auth_equal(expected, len, given, len);
    return hits ? -1 : seconds() - t0;
}

/*
 * A mismatch at byte 0 must cost what one at the last byte costs: the loop
 * always runs over the whole token. An early exit would make the first 1/1024
 * of the second; the bounds are wide so that a busy machine cannot fail the
 * test, and the runs alternate so that a slow moment hits both.
 */
static void test_timing(void) {
    enum { LEN = AUTH_TOKEN_MAX, N = 5000, RUNS = 15 };
    static char expected[LEN], first[LEN], last[LEN];
    memset(expected, 'k', LEN);
    memcpy(first, expected, LEN);
    memcpy(last, expected, LEN);
    first[0] = 'x';
    last[LEN - 1] = 'x';
    double a = 1e9, b = 1e9;
    for (int run = 0; run < RUNS; run++) {
        double ta = time_of(expected, first, LEN, N), tb = time_of(expected, last, LEN, N);
        a = ta < a ? ta : a;
        b = tb < b ? tb : b;
    }
    double ratio = a > 0 && b > 0 ? a / b : 0;
    tap_check(ratio > 0.25 && ratio < 4,
              "equal: a wrong first byte takes about as long as a wrong last byte (%.3f vs %.3f "
              "ms per 1000, ratio %.2f; an early exit would give about 0.001)",
              a / N * 1e6, b / N * 1e6, ratio);
}

static void test_bearer(void) {
    const char *tok;
    size_t len;
    tap_check(auth_bearer("Bearer abc", &tok, &len) && len == 3 && !strncmp(tok, "abc", 3),
              "bearer: 'Bearer abc'");
    tap_check(auth_bearer("bearer \t abc \t", &tok, &len) && len == 3 && !strncmp(tok, "abc", 3),
              "bearer: scheme in any case, spaces around the token");
    tap_check(auth_bearer("Bearer ", &tok, &len) && len == 0, "bearer: an empty token");
    tap_check(!auth_bearer("Basic YWJj", &tok, &len), "bearer: another scheme is not one");
    tap_check(!auth_bearer("Bearerabc", &tok, &len), "bearer: no space after the scheme");
    tap_check(!auth_bearer(NULL, &tok, &len), "bearer: no header");
}

int main(void) {
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_load();
    test_equal();
    test_timing();
    test_bearer();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        tap_diag("cannot remove %s", dir);
    return tap_done();
}
