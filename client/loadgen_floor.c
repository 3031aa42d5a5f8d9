/* loadgen_floor.c - the echo process behind toto-loadgen --floor (see loadgen_floor.h). */
#include "loadgen_floor.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static int write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one line (without '\n') into a malloc'd string; NULL on error or timeout. */
static char *read_one_line(int fd, double timeout_s, size_t *len) {
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    int ms = (int)(timeout_s * 1000);
    while (buf) {
        char *nl = memchr(buf, '\n', n);
        if (nl) {
            *len = (size_t)(nl - buf);
            return buf;
        }
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                break;
            buf = b;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r = poll(&p, 1, ms) == 1 ? read(fd, buf + n, cap - n) : -1;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    free(buf);
    return NULL;
}

char *floor_capture_result(int fd, const char *request, size_t len, double timeout_s,
                           double hold_ms, char *err, size_t err_len) {
    size_t line_len;
    char *line = write_all(fd, request, len) ? NULL : read_one_line(fd, timeout_s, &line_len);
    json_t *root = line ? json_loadb(line, line_len, 0, NULL) : NULL;
    json_t *result = json_object_get(root, "result");
    char *text = NULL;
    if (!json_is_object(result))
        snprintf(err, err_len, "no result to capture from the daemon%s",
                 line ? " (it answered an error)" : "");
    else if (json_object_set_new(result, "timing",
                                 json_pack("{s:f, s:i, s:f}", "queue_ms", 0.0, "batch_size", 1,
                                           "model_ms", hold_ms)) ||
             !(text = json_dumps(result, JSON_COMPACT | JSON_REAL_PRECISION(17))))
        snprintf(err, err_len, "out of memory");
    json_decref(root);
    free(line);
    return text;
}

/* The answer to one request line: its id is the digits before the final '}'. */
static int answer(int fd, const char *result, const char *line, size_t len) {
    size_t end = len;
    while (end > 0 && line[end - 1] != '}')
        end--;
    size_t start = end > 0 ? end - 1 : 0;
    while (start > 0 && line[start - 1] >= '0' && line[start - 1] <= '9')
        start--;
    char head[64];
    int n = snprintf(head, sizeof head, "{\"jsonrpc\":\"2.0\",\"id\":%.*s,\"result\":",
                     (int)(end > 0 ? end - 1 - start : 0), line + start);
    return write_all(fd, head, (size_t)n) || write_all(fd, result, strlen(result)) ||
           write_all(fd, "}\n", 2);
}

/* Holds the answer delay_us on the CPU, as a model call keeps the daemon's
 * worker busy, while the client sleeps as long as it does against the daemon. */
static void hold(long delay_us) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 < delay_us);
}

/* The child: blocking reads, one answer per complete line, until EOF. */
static void serve(int fd, const char *result, long delay_us) {
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && (r = read(fd, buf + n, cap - n)) > 0) {
        n += (size_t)r;
        char *line = buf, *nl;
        while ((nl = memchr(line, '\n', n - (size_t)(line - buf)))) {
            hold(delay_us);
            if (answer(fd, result, line, (size_t)(nl - line)))
                _exit(1);
            line = nl + 1;
        }
        n -= (size_t)(line - buf);
        memmove(buf, line, n);
        if (n == cap)
            _exit(1); /* toto-loadgen's lines are far shorter */
    }
    _exit(0);
}

int floor_start(const char *result, long delay_us, pid_t *child) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    if (pid == 0) {
        close(sv[0]);
        serve(sv[1], result, delay_us);
    }
    close(sv[1]);
    *child = pid;
    return sv[0];
}

void floor_stop(int fd, pid_t child) {
    if (fd >= 0)
        close(fd);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
}
