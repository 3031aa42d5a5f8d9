/*
 * totoclient_conn.c - connecting within a timeout, and closing.
 *
 * The socket stays non-blocking for its whole life: every wait is a poll()
 * with a deadline (totoclient_pipeline.c), so a stuck daemon can never hang a
 * caller past its timeout.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "totoclient_internal.h"

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline (-1: no deadline), at least 0. */
static int left_ms(int64_t deadline) {
    if (deadline < 0)
        return -1;
    int64_t left = deadline - now_ms();
    return left < 0 ? 0 : left > 1000000000 ? 1000000000 : (int)left;
}

/* Waits for a non-blocking connect() on fd to finish; 0 or an errno (ETIMEDOUT). */
static int finish_connect(int fd, int64_t deadline) {
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    for (;;) {
        int rc = poll(&pfd, 1, left_ms(deadline));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return errno;
        if (rc == 0)
            return ETIMEDOUT;
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
            return errno;
        return soerr;
    }
}

/* Connects a new non-blocking socket to sa; the fd, or -1 with *error an errno. */
static int connect_one(int family, const struct sockaddr *sa, socklen_t len, int64_t deadline,
                       int *error) {
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = errno;
        return -1;
    }
    for (;;) {
        if (connect(fd, sa, len) == 0)
            return fd;
        if (errno == EINTR)
            continue;
        if (errno == EINPROGRESS) {
            *error = finish_connect(fd, deadline);
            break;
        }
        /* A Unix socket's full backlog: retry until the deadline. */
        if (errno == EAGAIN && family == AF_UNIX && left_ms(deadline) != 0) {
            nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
            continue;
        }
        *error = errno == EAGAIN ? ETIMEDOUT : errno;
        break;
    }
    if (*error == 0)
        return fd;
    close(fd);
    return -1;
}

static int connect_failed(toto_client *c, int error, toto_client_error *err) {
    if (error == ETIMEDOUT)
        return tc_error(err, TOTO_CLIENT_ETIMEOUT, "connecting to %s: no connection within %d ms",
                        c->address, c->params.connect_timeout_ms);
    return tc_error(err, TOTO_CLIENT_ECONNECT, "connecting to %s: %s", c->address, strerror(error));
}

static int connect_unix(toto_client *c, const toto_client_address *a, int64_t deadline,
                        toto_client_error *err) {
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, a->path, strlen(a->path) + 1); /* fits: the parser checked */
    int error = 0;
    c->fd = connect_one(AF_UNIX, (struct sockaddr *)&sun, sizeof sun, deadline, &error);
    return c->fd < 0 ? connect_failed(c, error, err) : TOTO_CLIENT_OK;
}

static int connect_tcp(toto_client *c, const toto_client_address *a, int64_t deadline,
                       toto_client_error *err) {
    char port[8];
    snprintf(port, sizeof port, "%d", a->port);
    struct addrinfo hints, *list = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(a->host, port, &hints, &list);
    if (rc != 0)
        return tc_error(err, TOTO_CLIENT_ECONNECT, "connecting to %s: host '%s': %s", c->address,
                        a->host, gai_strerror(rc));
    int error = ECONNREFUSED;
    for (struct addrinfo *ai = list; ai != NULL && c->fd < 0; ai = ai->ai_next) {
        c->fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline, &error);
        if (error == ETIMEDOUT)
            break;
    }
    freeaddrinfo(list);
    if (c->fd < 0)
        return connect_failed(c, error, err);
    int one = 1; /* requests are small and latency matters more than packets */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return TOTO_CLIENT_OK;
}

static int check_params(const toto_client_params *p, toto_client_error *err) {
    if (p->connect_timeout_ms < 0 || p->timeout_ms < 0)
        return tc_error(err, TOTO_CLIENT_EINVAL, "params: timeouts must be 0 or more, got %d, %d",
                        p->connect_timeout_ms, p->timeout_ms);
    if (p->max_inflight < 1)
        return tc_error(err, TOTO_CLIENT_EINVAL, "params: max_inflight must be 1 or more, got %d",
                        p->max_inflight);
    return TOTO_CLIENT_OK;
}

/* Presents the token (the `auth` method) on a fresh connection. */
static int authenticate(toto_client *c, const char *token, toto_client_error *err) {
    json_t *params = json_pack("{s:s}", "token", token);
    char *text = params ? json_dumps(params, JSON_COMPACT) : NULL, *result = NULL;
    json_decref(params);
    if (!text)
        return tc_error(err, TOTO_CLIENT_EINVAL, "token: not valid UTF-8");
    int kind = toto_client_call(c, "auth", text, -1, &result, err);
    free(text);
    toto_client_string_free(result);
    return kind;
}

int toto_client_read_token_file(const char *path, char *buf, size_t len, toto_client_error *err) {
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return tc_error(err, TOTO_CLIENT_EINVAL, "token file %s: %s", path ? path : "(null)",
                        strerror(errno));
    char line[2048];
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *start = line, *end = got ? line + strlen(line) : line;
    while (start < end && isspace((unsigned char)*start))
        start++;
    while (end > start && isspace((unsigned char)end[-1]))
        end--;
    if (end == start)
        return tc_error(err, TOTO_CLIENT_EINVAL, "token file %s: no token on its first line", path);
    if ((size_t)(end - start) >= len)
        return tc_error(err, TOTO_CLIENT_EINVAL,
                        "token file %s: the token is longer than %zu bytes", path, len - 1);
    memcpy(buf, start, (size_t)(end - start));
    buf[end - start] = '\0';
    tc_error_clear(err);
    return TOTO_CLIENT_OK;
}

int toto_client_open(const char *address, const toto_client_params *params, toto_client **out,
                     toto_client_error *err) {
    if (out == NULL)
        return tc_error(err, TOTO_CLIENT_EINVAL, "toto_client_open: out is NULL");
    *out = NULL;
    toto_client_params p = params != NULL ? *params : toto_client_default_params();
    int kind = check_params(&p, err);
    if (kind != TOTO_CLIENT_OK)
        return kind;
    toto_client_address a;
    kind = toto_client_parse_address(address, &a, err);
    if (kind != TOTO_CLIENT_OK)
        return kind;
    toto_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return tc_error(err, TOTO_CLIENT_ENOMEM, "out of memory");
    c->fd = -1;
    c->params = p;
    c->next_id = 1;
    if (a.kind == TOTO_CLIENT_ADDRESS_UNIX)
        snprintf(c->address, sizeof c->address, "unix:%s", a.path);
    else
        snprintf(c->address, sizeof c->address, strchr(a.host, ':') ? "tcp:[%s]:%d" : "tcp:%s:%d",
                 a.host, a.port);
    int64_t deadline = p.connect_timeout_ms > 0 ? now_ms() + p.connect_timeout_ms : -1;
    kind = a.kind == TOTO_CLIENT_ADDRESS_UNIX ? connect_unix(c, &a, deadline, err)
                                              : connect_tcp(c, &a, deadline, err);
    if (kind != TOTO_CLIENT_OK) {
        free(c);
        return kind;
    }
    if (p.token && (kind = authenticate(c, p.token, err)) != TOTO_CLIENT_OK) {
        toto_client_free(c);
        return kind;
    }
    tc_error_clear(err);
    *out = c;
    return TOTO_CLIENT_OK;
}

void toto_client_free(toto_client *client) {
    if (client == NULL)
        return;
    if (client->fd >= 0)
        close(client->fd);
    tc_buf_free(&client->rbuf);
    free(client);
}
