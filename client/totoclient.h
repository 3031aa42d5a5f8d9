/*
 * totoclient.h - a C client for totod (protocol/PROTOCOL.md).
 *
 * One toto_client is one connection to the daemon: JSON-RPC 2.0, one request
 * per line, over a Unix socket or TCP. It offers a raw call for any method
 * (health, info, metrics, ...), a typed forecast, and a pipelined batch of
 * forecasts on the one connection (answers matched to requests by id).
 *
 * Nothing here prints, exits or raises signals (SIGPIPE is avoided with
 * MSG_NOSIGNAL). Every function that can fail returns an error kind
 * (TOTO_CLIENT_OK, 0, on success) and, when given a toto_client_error,
 * fills it with the kind, a message for people and, for errors the daemon
 * answered, its code and the parameter at fault.
 *
 * Lifetime: toto_client_open() -> calls -> toto_client_free().
 *
 * Threads: a client is not thread-safe. Use one client per thread (each its
 * own connection; the daemon schedules connections fairly), or guard one
 * client with a mutex. Different clients share nothing.
 *
 * Broken connections: a timeout, a lost connection (EIO) or an answer line
 * that cannot be read or matched to a request (EPROTOCOL) may leave answers
 * owed on the wire that would be mistaken for later ones, so the client
 * closes its connection and
 * every later call returns TOTO_CLIENT_EIO at once. There is no automatic
 * reconnection: free the client and open a new one. Errors the daemon
 * answers (ESERVER) and bad arguments (EINVAL) leave the client usable.
 */
#ifndef TOTOCLIENT_H
#define TOTOCLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The default socket, as the daemon's default --unix outside systemd. */
#define TOTO_CLIENT_DEFAULT_ADDRESS "/run/toto/toto.sock"
/* The environment variable that overrides the default address. */
#define TOTO_CLIENT_ADDRESS_ENV "TOTO_ADDRESS"

/* What went wrong; toto_client_error.kind and every function's return value. */
enum toto_client_error_kind {
    TOTO_CLIENT_OK = 0,
    TOTO_CLIENT_EADDRESS = 1,  /* the address could not be parsed */
    TOTO_CLIENT_ECONNECT = 2,  /* connecting failed (no such socket, refused, unknown host) */
    TOTO_CLIENT_ETIMEOUT = 3,  /* no answer (or no connection) within the timeout */
    TOTO_CLIENT_EIO = 4,       /* the connection was lost, or is closed after an earlier error */
    TOTO_CLIENT_EPROTOCOL = 5, /* the daemon's answer was not understood */
    TOTO_CLIENT_ESERVER = 6,   /* the daemon answered a JSON-RPC error: see rpc_code, field */
    TOTO_CLIENT_EINVAL = 7,    /* a bad argument; nothing was sent */
    TOTO_CLIENT_ENOMEM = 8,    /* out of memory */
};

/* An error's details. message and field are always NUL-terminated. */
typedef struct toto_client_error {
    int kind;          /* an enum toto_client_error_kind */
    int rpc_code;      /* ESERVER: the JSON-RPC error code (-32602, -32000, ...); else 0 */
    char message[512]; /* for people: what failed and why (ESERVER: the daemon's message) */
    char field[128];   /* ESERVER: the answer's data.field ("prediction_length"); EINVAL:
                          the argument at fault where one is; else "" */
} toto_client_error;

/* The name of an error kind ("EADDRESS", "ESERVER", ...); "OK" for 0, "E?" if unknown.
 * A static string: never free it. */
const char *toto_client_error_kind_name(int kind);

/* ---- Addresses ---------------------------------------------------------- */

enum toto_client_address_kind {
    TOTO_CLIENT_ADDRESS_UNIX = 1,
    TOTO_CLIENT_ADDRESS_TCP = 2,
};

/* A parsed address. */
typedef struct toto_client_address {
    int kind;       /* an enum toto_client_address_kind */
    char path[108]; /* UNIX: the socket path (fits sockaddr_un.sun_path) */
    char host[256]; /* TCP: a host name or IP literal, without [] ("127.0.0.1" if empty) */
    int port;       /* TCP: 1 ... 65535 */
} toto_client_address;

/*
 * Parses an address:
 *   "unix:PATH"          a Unix socket
 *   "tcp:HOST:PORT"      TCP; HOST may be "[v6 literal]" or empty (127.0.0.1)
 *   "PATH" containing /  a Unix socket (as totod's --unix takes)
 *   NULL or ""           $TOTO_ADDRESS when set and not empty (parsed by the same
 *                        rules), else TOTO_CLIENT_DEFAULT_ADDRESS
 * Returns 0, or TOTO_CLIENT_EADDRESS with a message naming what was wrong.
 * Touches nothing but *out and *err (err may be NULL).
 */
int toto_client_parse_address(const char *address, toto_client_address *out,
                              toto_client_error *err);

/* ---- Connection ---------------------------------------------------------- */

typedef struct toto_client toto_client;

/* Options for toto_client_open(); start from toto_client_default_params(). */
typedef struct toto_client_params {
    int connect_timeout_ms; /* bound on connecting; 0: no bound. Default 5000 */
    int timeout_ms;         /* bound on waiting for each answer (counted from when its
                               request is sent); 0: no bound. Default 60000 */
    int max_inflight;       /* forecast_many keeps at most this many requests unanswered;
                               at most totod's max-inflight (default 256). Default 256 */
    const char *token;      /* NULL: none. Else sent with the `auth` method right after
                               connecting (a daemon with auth-token-file needs it over
                               TCP; docs/security.md); a refused token fails the open
                               with ESERVER -32004. Not copied: keep it alive until
                               toto_client_open() returns */
} toto_client_params;

/* The defaults above (no token). */
toto_client_params toto_client_default_params(void);

/*
 * Reads a token file as the daemon does: its first line, surrounding white
 * space trimmed, into buf (len bytes with the NUL). 0, or EINVAL with a
 * message (a missing or empty file, a token longer than the buffer).
 */
int toto_client_read_token_file(const char *path, char *buf, size_t len, toto_client_error *err);

/*
 * Connects to address (see toto_client_parse_address; NULL means the default).
 * params may be NULL for the defaults. On success *out is a new client, to be
 * released with toto_client_free(); on failure *out is NULL and the kind is
 * EADDRESS, ECONNECT, ETIMEOUT, EINVAL or ENOMEM. Host names are resolved with
 * getaddrinfo(), which connect_timeout_ms does not bound.
 */
int toto_client_open(const char *address, const toto_client_params *params, toto_client **out,
                     toto_client_error *err);

/* Closes the connection and frees the client. NULL is a no-op. */
void toto_client_free(toto_client *client);

/* ---- Raw calls ----------------------------------------------------------- */

/*
 * Calls method with params_json (the text of a JSON object, or NULL for
 * none) and waits up to timeout_ms for the answer (-1: the client's
 * timeout_ms; 0: no bound). On success *result_json is the answer's
 * "result" as compact JSON text, malloc'd: the caller frees it with
 * toto_client_string_free() (or free()). On failure *result_json is NULL.
 * A params_json that is not a JSON object is EINVAL (nothing is sent).
 * Numbers keep full float64 precision both ways.
 */
int toto_client_call(toto_client *client, const char *method, const char *params_json,
                     int timeout_ms, char **result_json, toto_client_error *err);

/* Frees a string this library returned. NULL is a no-op. */
void toto_client_string_free(char *s);

/* ---- Forecasts ----------------------------------------------------------- */

/*
 * A forecast request (PROTOCOL.md, forecast). The client checks only what it
 * needs to encode the request (pointers, sizes, finite numbers); the daemon
 * checks the rest (prediction_length range, quantile levels, limits) and
 * answers ESERVER -32602 naming the field. Nothing is copied or kept: the
 * pointers need to live only during the call.
 * Start from toto_client_forecast_default_request().
 */
typedef struct toto_client_forecast_request {
    const double *values;  /* [n_variates][length], row-major; NaN: a missing value (null) */
    int n_variates;        /* V >= 1 */
    int length;            /* T >= 1 steps of history */
    int prediction_length; /* h steps to forecast */
    int num_samples;       /* 0: the mean forecast; N > 0: N sampled paths */
    const double *quantile_levels; /* [n_quantiles] levels in (0, 1), or NULL */
    int n_quantiles;               /* 0: no quantiles */
    uint64_t seed;                 /* sent only when has_seed */
    int has_seed;
    const char *series_id; /* NULL: none; else UTF-8, echoed in the result */
    int timeout_ms;        /* > 0: the daemon's queue deadline (answered -32001 when passed);
                              <= 0: not sent. The client's wait is bounded by its own timeout_ms */
} toto_client_forecast_request;

/* A request with no series, 1 variate, no samples, quantiles, seed, id or deadline. */
toto_client_forecast_request toto_client_forecast_default_request(void);

/*
 * A forecast result (named _result: toto_client_forecast is the function).
 * Arrays are indexed variate first, then step: mean[v * prediction_length + t],
 * quantiles[(l * n_variates + v) * prediction_length + t].
 * A null in the answer (a non-finite prediction) reads as NaN.
 * All memory belongs to the result: free it with toto_client_forecast_free().
 */
typedef struct toto_client_forecast_result {
    int n_variates;        /* V */
    int prediction_length; /* h */
    double *mean;          /* [V*h] */
    double *median;        /* [V*h], or NULL when the answer's median is null */
    int n_levels;          /* L: 0 when no quantiles were asked for */
    double *levels;        /* [L] in the order asked, or NULL */
    double *quantiles;     /* [L*V*h], or NULL */
    char *series_id;       /* the echoed series_id (an integer one as text), or NULL */
    char *model_path;      /* the execution path that served it: "eager", "compiled" */
    char *model_device;    /* "cpu", "cuda:0", ... */
    double queue_ms;       /* time queued in the daemon */
    double model_ms;       /* the model call's duration */
    int batch_size;        /* requests that shared the model call */
} toto_client_forecast_result;

/*
 * Sends one forecast and waits for its answer (up to the client's timeout_ms).
 * On success *out is a new result (free with toto_client_forecast_free());
 * on failure *out is NULL.
 */
int toto_client_forecast(toto_client *client, const toto_client_forecast_request *req,
                         toto_client_forecast_result **out, toto_client_error *err);

/*
 * Pipelines n forecasts on the one connection: writes requests without
 * waiting for answers (at most max_inflight unanswered at a time, reading
 * answers while writing, so any n works), and matches the answers, which
 * come in any order, to their requests by id. outs[i] and errs[i] (n slots
 * each; errs may be NULL) receive request i's result or error: a request the
 * daemon refuses (-32602, -32000) fails alone while the others succeed. Each
 * request's wait is bounded by the client's timeout_ms from when it was sent;
 * a timeout or a lost connection fails every unanswered request (and the
 * client, see above). Returns 0 when every request succeeded, else the kind
 * of the first (lowest index) that failed. Free each non-NULL outs[i] with
 * toto_client_forecast_free().
 */
int toto_client_forecast_many(toto_client *client, const toto_client_forecast_request *reqs, int n,
                              toto_client_forecast_result **outs, toto_client_error *errs);

/* Frees a result and everything it points to. NULL is a no-op. */
void toto_client_forecast_free(toto_client_forecast_result *result);

#ifdef __cplusplus
}
#endif

#endif
