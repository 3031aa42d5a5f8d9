/*
 * listen.h - opening the Unix and TCP listeners. A stale Unix socket file
 * (no process listening) is replaced; a live one is left alone and
 * refused, so two daemons never fight over one path.
 */
#ifndef TOTOD_LISTEN_H
#define TOTOD_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <uv.h>

/*
 * Binds path and listens: the file gets mode (unix-mode) and, when gid is not
 * -1, that group (unix-group). Records the file's identity in dev/ino. 0 or
 * -1 (err, naming the setting at fault).
 */
int listen_unix(uv_loop_t *loop, uv_pipe_t *h, const char *path, unsigned mode, long gid,
                uv_connection_cb cb, dev_t *dev, ino_t *ino, char *err, size_t err_len);
/* Binds HOST:PORT and listens; bound receives the address actually bound. 0 or -1 (err).
 * config_split_hostport() makes a missing host 127.0.0.1: loopback unless told otherwise. */
int listen_tcp(uv_loop_t *loop, uv_tcp_t *h, const char *hostport, uv_connection_cb cb, char *bound,
               size_t bound_len, char *err, size_t err_len);
/*
 * Socket activation: the listening sockets systemd hands over (toto.socket;
 * LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES). A socket named "http"
 * (FileDescriptorName=http) serves HTTP; any other stream socket, Unix or
 * TCP, serves JSON-RPC. At most one of each kind.
 */
typedef enum { LISTEN_FD_UNIX, LISTEN_FD_TCP, LISTEN_FD_HTTP } listen_fd_kind;
typedef struct listen_fd {
    int fd;
    listen_fd_kind kind;
} listen_fd;

/* The sockets passed to this process (the variables are unset): their count
 * (0: not activated), or -1 (err: one of an unknown kind, or two of a kind). */
int listen_fds_from_systemd(listen_fd out[3], char *err, size_t err_len);
/* Listens on an inherited socket: h a uv_pipe_t for LISTEN_FD_UNIX, else a
 * uv_tcp_t. 0 or -1 (err). */
int listen_open_fd(uv_loop_t *loop, uv_stream_t *h, const listen_fd *f, uv_connection_cb cb,
                   char *err, size_t err_len);
/* Whether a TCP listener (configured or inherited) is bound to a loopback address only:
 * 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. 0.0.0.0 and :: are not. */
bool listen_is_loopback(uv_tcp_t *h);
/* Removes the socket file if it is still the one listen_unix() made. */
void listen_remove_unix(const char *path, dev_t dev, ino_t ino);

#endif
