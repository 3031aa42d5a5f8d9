/* listen.c - Unix and TCP listeners (see listen.h). */
#include "listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"

#define BACKLOG 511

/* 0: someone accepts connections on path; 1: nobody does (stale); -1: cannot tell. */
static int probe_unix(const char *path, char *err, size_t err_len) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return -1;
    }
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    int saved = errno;
    close(fd);
    if (rc == 0)
        return 0;
    if (saved == ECONNREFUSED || saved == ENOENT)
        return 1;
    snprintf(err, err_len, "%s: cannot tell whether it is in use: %s", path, strerror(saved));
    return -1;
}

/* Makes path free for bind(): absent, or a stale socket that is removed. */
static int clear_unix_path(const char *path, char *err, size_t err_len) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : (snprintf(err, err_len, "%s: %s", path, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, err_len, "%s exists and is not a socket; refusing to replace it", path);
        return -1;
    }
    int probe = probe_unix(path, err, err_len);
    if (probe == 0)
        snprintf(err, err_len,
                 "%s: another process is listening on it (another totod?); stop it or pass "
                 "another --unix",
                 path);
    if (probe != 1)
        return -1;
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, err_len, "%s: cannot remove the stale socket: %s", path, strerror(errno));
        return -1;
    }
    log_msg(TLOG_INFO, "replaced the stale socket %s (nothing was listening)", path);
    return 0;
}

/* The socket file, just bound: its group, then its mode, before anyone may connect. */
static int set_owner_and_mode(const char *path, unsigned mode, long gid, char *err,
                              size_t err_len) {
    if (gid >= 0 && lchown(path, (uid_t)-1, (gid_t)gid) != 0) {
        snprintf(err, err_len,
                 "unix-group: cannot give %s to group %ld: %s (totod's user must be a member of "
                 "the group, or root)",
                 path, gid, strerror(errno));
        return -1;
    }
    if (chmod(path, (mode_t)mode) != 0) {
        snprintf(err, err_len, "unix-mode: cannot set %s to mode %04o: %s", path, mode,
                 strerror(errno));
        return -1;
    }
    return 0;
}

int listen_unix(uv_loop_t *loop, uv_pipe_t *h, const char *path, unsigned mode, long gid,
                uv_connection_cb cb, dev_t *dev, ino_t *ino, char *err, size_t err_len) {
    struct stat st;
    if (clear_unix_path(path, err, err_len))
        return -1;
    if (uv_pipe_init(loop, h, 0)) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    /* Owner only at bind, widened once the group is right: never a moment when
     * the wrong group (totod's primary one) may connect. */
    mode_t old = umask(0177);
    int rc = uv_pipe_bind(h, path);
    umask(old);
    if (rc == 0 && set_owner_and_mode(path, mode, gid, err, err_len)) {
        unlink(path);
        uv_close((uv_handle_t *)h, NULL);
        return -1;
    }
    if (rc == 0 && stat(path, &st) == 0) {
        *dev = st.st_dev;
        *ino = st.st_ino;
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)h, BACKLOG, cb);
    if (rc) {
        snprintf(err, err_len, "cannot listen on %s: %s%s", path, uv_strerror(rc),
                 rc == UV_ENOENT ? " (does its directory exist? see --unix, RUNTIME_DIRECTORY)"
                                 : "");
        return -1;
    }
    return 0;
}

int listen_tcp(uv_loop_t *loop, uv_tcp_t *h, const char *hostport, uv_connection_cb cb, char *bound,
               size_t bound_len, char *err, size_t err_len) {
    char host[256];
    int port, rc;
    struct sockaddr_storage addr;
    if (config_split_hostport(hostport, host, sizeof host, &port)) {
        snprintf(err, err_len, "bad address '%s'", hostport);
        return -1;
    }
    bool v6 = strchr(host, ':') != NULL;
    rc = v6 ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
            : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc == 0 && (rc = uv_tcp_init(loop, h)) == 0) {
        rc = uv_tcp_bind(h, (struct sockaddr *)&addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)h, BACKLOG, cb);
        if (rc)
            uv_close((uv_handle_t *)h, NULL);
    }
    if (rc) {
        snprintf(err, err_len, "cannot listen on tcp %s: %s", hostport, uv_strerror(rc));
        return -1;
    }
    int len = sizeof addr;
    uv_tcp_getsockname(h, (struct sockaddr *)&addr, &len);
    if (v6)
        port = ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
    else
        port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
    snprintf(bound, bound_len, v6 ? "[%s]:%d" : "%s:%d", host, port);
    return 0;
}

static const char *kind_name(listen_fd_kind k) {
    return k == LISTEN_FD_UNIX ? "Unix JSON-RPC" : k == LISTEN_FD_TCP ? "TCP JSON-RPC" : "HTTP";
}

int listen_fds_from_systemd(listen_fd out[3], char *err, size_t err_len) {
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names), count = 0, rc = 0;
    bool seen[3] = {false, false, false};
    for (int i = 0; i < n && rc == 0; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        bool http = names && names[i] && strcmp(names[i], "http") == 0;
        listen_fd_kind kind;
        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0 && !http)
            kind = LISTEN_FD_UNIX;
        else if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0)
            kind = http ? LISTEN_FD_HTTP : LISTEN_FD_TCP;
        else {
            snprintf(err, err_len,
                     "socket activation: fd %d (%s) is not a listening stream socket totod serves "
                     "(Unix or TCP; HTTP only on TCP)",
                     fd, names && names[i] ? names[i] : "unnamed");
            rc = -1;
            break;
        }
        if (seen[kind]) {
            snprintf(err, err_len, "socket activation: two %s sockets; totod serves one of each",
                     kind_name(kind));
            rc = -1;
            break;
        }
        seen[kind] = true;
        out[count++] = (listen_fd){fd, kind};
    }
    for (int i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
    if (n < 0) {
        snprintf(err, err_len, "socket activation: %s", strerror(-n));
        return -1;
    }
    return rc ? -1 : count;
}

int listen_open_fd(uv_loop_t *loop, uv_stream_t *h, const listen_fd *f, uv_connection_cb cb,
                   char *err, size_t err_len) {
    int rc = f->kind == LISTEN_FD_UNIX ? uv_pipe_init(loop, (uv_pipe_t *)h, 0)
                                       : uv_tcp_init(loop, (uv_tcp_t *)h);
    if (rc == 0)
        rc = f->kind == LISTEN_FD_UNIX ? uv_pipe_open((uv_pipe_t *)h, f->fd)
                                       : uv_tcp_open((uv_tcp_t *)h, f->fd);
    if (rc == 0)
        rc = uv_listen(h, BACKLOG, cb);
    if (rc) {
        snprintf(err, err_len, "socket activation: cannot listen on fd %d (%s): %s", f->fd,
                 kind_name(f->kind), uv_strerror(rc));
        return -1;
    }
    return 0;
}

bool listen_is_loopback(uv_tcp_t *h) {
    struct sockaddr_storage addr;
    int len = sizeof addr;
    if (uv_tcp_getsockname(h, (struct sockaddr *)&addr, &len) != 0)
        return false;
    if (addr.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&addr;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr.ss_family != AF_INET6)
        return false;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)&addr)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

void listen_remove_unix(const char *path, dev_t dev, ino_t ino) {
    struct stat st;
    /* Another daemon may have replaced it meanwhile: remove only our own file. */
    if (lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino && unlink(path) != 0)
        log_msg(TLOG_WARNING, "cannot remove %s: %s", path, strerror(errno));
}
