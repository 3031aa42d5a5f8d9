/* auth.c - the shared token: loading, constant-time comparison, Bearer (see auth.h). */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Enough for the longest token, its white space and a line end: more is not a token file. */
#define READ_MAX (AUTH_TOKEN_MAX + 256)

static bool blank(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* The file's first bytes, after checking what kind of file it is and who may read it. */
static ssize_t read_head(const char *path, char *buf, size_t cap, char *err, size_t err_len) {
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = -1;
    if (fstat(fd, &st) != 0)
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(err, err_len, "%s: not a regular file", path);
    else if (st.st_mode & 077)
        snprintf(err, err_len,
                 "%s: group or others may access it (mode %04o); make it readable by totod's user "
                 "only (chmod 600)",
                 path, (unsigned)(st.st_mode & 07777));
    else if ((n = read(fd, buf, cap)) < 0)
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
    close(fd);
    return n;
}

int auth_token_load(const char *path, char token[AUTH_TOKEN_MAX + 1], size_t *len, char *err,
                    size_t err_len) {
    char buf[READ_MAX];
    ssize_t n = read_head(path, buf, sizeof buf, err, err_len);
    if (n < 0)
        return -1;
    size_t end = 0, start = 0;
    while (end < (size_t)n && buf[end] != '\n')
        end++;
    while (start < end && blank((unsigned char)buf[start]))
        start++;
    while (end > start && blank((unsigned char)buf[end - 1]))
        end--;
    size_t size = end - start;
    if (size == 0)
        snprintf(err, err_len, "%s: empty: its first line must hold the token (at least %d bytes)",
                 path, AUTH_TOKEN_MIN);
    else if (size < AUTH_TOKEN_MIN)
        snprintf(err, err_len, "%s: the token is %zu bytes; at least %d are needed", path, size,
                 AUTH_TOKEN_MIN);
    else if (size > AUTH_TOKEN_MAX)
        snprintf(err, err_len, "%s: the token is longer than %d bytes", path, AUTH_TOKEN_MAX);
    for (size_t i = start; size >= AUTH_TOKEN_MIN && size <= AUTH_TOKEN_MAX && i < end; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c < 0x20 || c == 0x7f) {
            snprintf(err, err_len, "%s: the token holds a control character (byte %zu)", path,
                     i - start);
            size = 0;
        }
    }
    if (size < AUTH_TOKEN_MIN || size > AUTH_TOKEN_MAX)
        return -1;
    memcpy(token, buf + start, size);
    token[size] = '\0';
    *len = size;
    memset(buf, 0, sizeof buf); /* no second copy of the secret on the stack */
    return 0;
}

bool auth_equal(const char *expected, size_t expected_len, const char *given, size_t given_len) {
    if (expected_len == 0)
        return false; /* a configuration fact, not a secret */
    /* Differences, OR-accumulated; volatile keeps the compiler from ending the loop early. */
    volatile size_t diff = expected_len ^ given_len;
    size_t j = 0; /* expected's index, wrapping around without a data-dependent branch */
    for (size_t i = 0; i < given_len; i++) {
        diff |= (size_t)((unsigned char)expected[j] ^ (unsigned char)given[i]);
        size_t next = j + 1;
        size_t wrap = (size_t)0 - (size_t)(next == expected_len); /* all ones at the end */
        j = next & ~wrap;
    }
    return diff == 0;
}

bool auth_bearer(const char *value, const char **token, size_t *len) {
    if (!value || strncasecmp(value, "Bearer", 6) != 0 || (value[6] != ' ' && value[6] != '\t'))
        return false;
    const char *t = value + 6;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    *token = t;
    *len = n;
    return true;
}
