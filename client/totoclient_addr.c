/*
 * totoclient_addr.c - parsing "unix:PATH", "tcp:HOST:PORT" and bare paths.
 */
#include <stdlib.h>
#include <string.h>

#include "totoclient_internal.h"

static int parse_unix(const char *shown, const char *path, toto_client_address *out,
                      toto_client_error *err) {
    size_t len = strlen(path);
    if (len == 0)
        return tc_error(err, TOTO_CLIENT_EADDRESS,
                        "address '%s': no socket path after unix:", shown);
    if (len >= sizeof out->path)
        return tc_error(err, TOTO_CLIENT_EADDRESS,
                        "address '%.200s...': socket path too long (%zu bytes, at most %zu)", shown,
                        len, sizeof out->path - 1);
    out->kind = TOTO_CLIENT_ADDRESS_UNIX;
    memcpy(out->path, path, len + 1);
    return TOTO_CLIENT_OK;
}

/* A decimal port 1 ... 65535, all digits; -1 otherwise. */
static int parse_port(const char *s) {
    if (*s == '\0' || strlen(s) > 5)
        return -1;
    int port = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        port = port * 10 + (*s - '0');
    }
    return port >= 1 && port <= 65535 ? port : -1;
}

static int parse_tcp(const char *shown, const char *hostport, toto_client_address *out,
                     toto_client_error *err) {
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL)
        return tc_error(err, TOTO_CLIENT_EADDRESS, "address '%s': no port (expected tcp:HOST:PORT)",
                        shown);
    int port = parse_port(colon + 1);
    if (port < 0)
        return tc_error(err, TOTO_CLIENT_EADDRESS,
                        "address '%s': bad port '%s' (expected 1 to 65535)", shown, colon + 1);
    const char *host = hostport;
    size_t len = (size_t)(colon - hostport);
    if (len > 0 && host[0] == '[') {
        if (len < 2 || host[len - 1] != ']')
            return tc_error(err, TOTO_CLIENT_EADDRESS, "address '%s': unclosed '[' in the host",
                            shown);
        host++;
        len -= 2;
    } else if (memchr(host, ':', len) != NULL) {
        return tc_error(err, TOTO_CLIENT_EADDRESS,
                        "address '%s': an IPv6 host needs brackets (tcp:[::1]:PORT)", shown);
    }
    if (len >= sizeof out->host)
        return tc_error(err, TOTO_CLIENT_EADDRESS, "address '%.200s...': host name too long",
                        shown);
    out->kind = TOTO_CLIENT_ADDRESS_TCP;
    if (len == 0) {
        strcpy(out->host, "127.0.0.1"); /* ":PORT" means loopback, as totod's --tcp */
    } else {
        memcpy(out->host, host, len);
        out->host[len] = '\0';
    }
    out->port = port;
    return TOTO_CLIENT_OK;
}

/* The scheme of "scheme:rest" when the text starts with one (letters, digits,
 * + - . before a ':' and no '/' before it); its length, or 0. */
static size_t scheme_length(const char *s) {
    size_t i = 0;
    while (s[i] != '\0' && s[i] != ':' && s[i] != '/')
        i++;
    if (s[i] != ':' || i == 0)
        return 0;
    for (size_t j = 0; j < i; j++) {
        char ch = s[j];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '+' || ch == '-' || ch == '.';
        if (!ok)
            return 0;
    }
    return i;
}

int toto_client_parse_address(const char *address, toto_client_address *out,
                              toto_client_error *err) {
    if (out == NULL)
        return tc_error(err, TOTO_CLIENT_EINVAL, "toto_client_parse_address: out is NULL");
    memset(out, 0, sizeof *out);
    tc_error_clear(err);
    if (address == NULL || address[0] == '\0') {
        const char *env = getenv(TOTO_CLIENT_ADDRESS_ENV);
        address = env != NULL && env[0] != '\0' ? env : TOTO_CLIENT_DEFAULT_ADDRESS;
    }
    if (strncmp(address, "unix:", 5) == 0)
        return parse_unix(address, address + 5, out, err);
    if (strncmp(address, "tcp:", 4) == 0)
        return parse_tcp(address, address + 4, out, err);
    size_t scheme = scheme_length(address);
    if (scheme > 0)
        return tc_error(err, TOTO_CLIENT_EADDRESS,
                        "address '%s': unknown scheme '%.*s' (expected unix:PATH or "
                        "tcp:HOST:PORT)",
                        address, (int)scheme, address);
    if (strchr(address, '/') == NULL)
        return tc_error(err, TOTO_CLIENT_EADDRESS,
                        "address '%s': expected unix:PATH, tcp:HOST:PORT or a socket path "
                        "containing '/' (such as ./%s)",
                        address, address);
    return parse_unix(address, address, out, err);
}
