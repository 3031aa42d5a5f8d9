/*
 * toto_bench.c - `toto bench`, the closed-loop load generator for totod.
 *
 *   toto bench [--address unix:PATH|tcp:HOST:PORT | --socket PATH] [--clients N]
 *              [--duration-s S | --count N] [--warmup-s W]
 *              [--workload seed|mean64|long|ett|small | --requests FILE]
 *              [--context T --horizon H --samples N] [--format md|kv] [--json FILE]
 *              [--floor]
 *
 * N threads, each with its own connection (to the --address i mod n when it
 * is given several times), send one forecast, wait for its answer, and send
 * the next (closed loop). Per request it records the latency
 * the client sees (monotonic clock, from the write to the parsed answer line)
 * and the daemon's own "timing" (queue_ms, model_ms, batch_size), so the
 * daemon's overhead (latency - model_ms) can be told apart from the model.
 *
 * Each request line is encoded once (bench_workload.h); each request reuses
 * the same bytes with only the id changing, so the client's own JSON cost
 * stays out of the way. --floor measures the socket floor instead
 * (loadgen_floor.h): one client against an echo process that answers with a
 * result captured from the daemon at --address.
 * Exit status: 0 all answers were results, 1 any error, 2 bad usage.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_workload.h"
#include "loadgen_floor.h"
#include "toto_commands.h"
#include "totoclient.h"

/* --address (or --socket) may be given this many times: client i connects to
 * address i % n, so that one run can load several daemons (one per GPU). */
#define BENCH_MAX_ADDRESSES 16

typedef struct options {
    const char *given[BENCH_MAX_ADDRESSES]; /* --address / --socket values, in order */
    bool given_socket[BENCH_MAX_ADDRESSES]; /* that one came as --socket PATH */
    int n_given;
    char *addresses[BENCH_MAX_ADDRESSES]; /* then as unix:PATH or tcp:HOST:PORT (owned) */
    int n_addresses;
    const char *address; /* the first: the floor's, and the one a report names first */
    const char *format, *json_path, *requests_path;
    const char *token_file; /* --token-file, else $TOTO_TOKEN_FILE */
    char *auth_line;        /* then: the auth request each connection sends first */
    bench_workload w;
    long long count; /* --count: stop after this many answers (0: by duration) */
    int clients;
    bool floor;     /* against the echo process, not the daemon */
    double hold_us; /* --floor-hold-us: the echo process holds each answer this long */
    double duration_s, warmup_s, timeout_s, wait_s;
} options;

/* The shared, read-only part of a run: what to send and when to stop. */
typedef struct plan {
    const options *o;
    const bench_requests *reqs; /* request i goes out as reqs->items[i % n] */
    int floor_fd;               /* --floor: the echo process's socket, else -1 */
    uint64_t warmup_end_ns, end_ns;
    atomic_llong *measured; /* --count: answers measured so far, over all clients */
} plan;

typedef struct sample {
    double latency_ms, queue_ms, model_ms;
    int batch_size;
} sample;

/* One client thread's connection, buffers and results; only that thread writes it. */
typedef struct client {
    const plan *p;
    int index, fd;
    pthread_t thread;
    char *buf;
    size_t buf_len, buf_cap;
    sample *samples;
    size_t n_samples, cap_samples;
    uint64_t last_finish_ns, errors;
    char first_error[256];
} client;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Keeps the first error message of a client; later ones are only counted. */
static void client_error(client *c, const char *fmt, ...) {
    c->errors++;
    if (c->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->first_error, sizeof c->first_error, fmt, ap);
    va_end(ap);
}

/* Connects to unix:PATH or tcp:HOST:PORT; -1 with errno set on failure. */
static int connect_unix(const char *path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int connect_tcp(const char *hostport) {
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host) {
        errno = EINVAL;
        return -1;
    }
    /* "[::1]:PORT" names a v6 host in brackets. */
    const char *h = hostport;
    size_t hl = (size_t)(colon - hostport);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(hl ? host : "127.0.0.1", colon + 1, &hints, &res) != 0 || !res) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        int e = errno;
        close(fd);
        fd = -1;
        errno = e;
    }
    freeaddrinfo(res);
    /* One small request per answer: Nagle's delay would be measured as the daemon's. */
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int connect_address(const char *address) {
    if (!strncmp(address, "unix:", 5))
        return connect_unix(address + 5);
    if (!strncmp(address, "tcp:", 4))
        return connect_tcp(address + 4);
    errno = EINVAL;
    return -1;
}

/* Retries while the daemon is not listening yet, for up to wait_s seconds. */
static int connect_retrying(const char *address, double wait_s) {
    uint64_t until = now_ns() + (uint64_t)(wait_s * 1e9);
    for (;;) {
        int fd = connect_address(address);
        if (fd >= 0 || errno == EINVAL || now_ns() >= until)
            return fd;
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/* Writes the whole request (prefix + id + "}\n"); 0 or -1. */
static int send_request(client *c, uint64_t id) {
    char tail[32];
    int n = snprintf(tail, sizeof tail, "%llu}\n", (unsigned long long)id);
    if (n < 0 || (size_t)n >= sizeof tail)
        return -1;
    const bench_request *r = &c->p->reqs->items[id % c->p->reqs->n];
    struct iovec iov[2] = {{r->prefix, r->len}, {tail, (size_t)n}};
    int cnt = 2;
    struct iovec *v = iov;
    while (cnt > 0) {
        ssize_t w = writev(c->fd, v, cnt);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        while (cnt > 0 && (size_t)w >= v->iov_len)
            w -= (ssize_t)v->iov_len, v++, cnt--;
        if (cnt > 0) {
            v->iov_base = (char *)v->iov_base + w;
            v->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Reads until buf holds a whole line; returns its length (without '\n') or -1. */
static ssize_t read_line(client *c, uint64_t deadline_ns) {
    size_t scanned = 0;
    for (;;) {
        char *nl = memchr(c->buf + scanned, '\n', c->buf_len - scanned);
        if (nl)
            return nl - c->buf;
        scanned = c->buf_len;
        if (c->buf_len == c->buf_cap) {
            char *b = realloc(c->buf, c->buf_cap * 2);
            if (!b)
                return -1;
            c->buf = b;
            c->buf_cap *= 2;
        }
        uint64_t now = now_ns();
        if (now >= deadline_ns) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int ms = (int)((deadline_ns - now) / 1000000u) + 1;
        int pr = poll(&pfd, 1, ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue; /* the deadline check above ends it */
        ssize_t r = read(c->fd, c->buf + c->buf_len, c->buf_cap - c->buf_len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            errno = r == 0 ? ECONNRESET : errno;
            return -1;
        }
        c->buf_len += (size_t)r;
    }
}

/* Drops the first line (len bytes + '\n') from buf. */
static void consume_line(client *c, size_t len) {
    c->buf_len -= len + 1;
    memmove(c->buf, c->buf + len + 1, c->buf_len);
}

static int push_sample(client *c, const sample *s) {
    if (c->n_samples == c->cap_samples) {
        size_t cap = c->cap_samples ? c->cap_samples * 2 : 1024;
        sample *ns = realloc(c->samples, cap * sizeof *ns);
        if (!ns)
            return -1;
        c->samples = ns;
        c->cap_samples = cap;
    }
    c->samples[c->n_samples++] = *s;
    return 0;
}

/* Checks the answer to request id and fills s from its timing; 0 or -1 (error recorded). */
static int parse_answer(client *c, const char *line, size_t len, uint64_t id, sample *s) {
    json_error_t jerr;
    json_t *root = json_loadb(line, len, 0, &jerr);
    if (!root) {
        client_error(c, "answer is not JSON: %s", jerr.text);
        return -1;
    }
    int rc = -1;
    json_t *result = json_object_get(root, "result");
    json_t *timing = json_object_get(result, "timing");
    json_t *error = json_object_get(root, "error");
    if ((uint64_t)json_integer_value(json_object_get(root, "id")) != id)
        client_error(c, "answer for another id (sent %llu)", (unsigned long long)id);
    else if (error)
        client_error(c, "error %lld: %s",
                     (long long)json_integer_value(json_object_get(error, "code")),
                     json_string_value(json_object_get(error, "message")));
    else if (!json_is_object(timing))
        client_error(c, "result without timing");
    else {
        s->queue_ms = json_number_value(json_object_get(timing, "queue_ms"));
        s->model_ms = json_number_value(json_object_get(timing, "model_ms"));
        s->batch_size = (int)json_integer_value(json_object_get(timing, "batch_size"));
        rc = 0;
    }
    json_decref(root);
    return rc;
}

/* One request and its answer; -1 ends the client (the connection is unusable). */
static int round_trip(client *c, uint64_t id) {
    const options *o = c->p->o;
    uint64_t t0 = now_ns();
    if (send_request(c, id) != 0) {
        client_error(c, "write: %s", strerror(errno));
        return -1;
    }
    ssize_t len = read_line(c, t0 + (uint64_t)(o->timeout_s * 1e9));
    if (len < 0) {
        client_error(c, "read: %s", strerror(errno));
        return -1;
    }
    sample s = {0};
    int ok = parse_answer(c, c->buf, (size_t)len, id, &s) == 0;
    uint64_t t1 = now_ns();
    consume_line(c, (size_t)len);
    s.latency_ms = (double)(t1 - t0) / 1e6;
    /* Requests sent during the warm-up are not measured; --count counts error
     * answers too, so that a run of refused requests ends. */
    if (t0 >= c->p->warmup_end_ns)
        atomic_fetch_add(c->p->measured, 1);
    if (ok && t0 >= c->p->warmup_end_ns) {
        c->last_finish_ns = t1;
        if (push_sample(c, &s) != 0) {
            client_error(c, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* --token-file: presents the token (the `auth` method) before the load. */
static int authenticate(client *c) {
    const char *line = c->p->o->auth_line;
    size_t len = strlen(line);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(c->fd, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            client_error(c, "auth: write: %s", strerror(errno));
            return -1;
        }
        off += (size_t)w;
    }
    ssize_t n = read_line(c, now_ns() + (uint64_t)(c->p->o->timeout_s * 1e9));
    if (n < 0) {
        client_error(c, "auth: read: %s", strerror(errno));
        return -1;
    }
    json_t *root = json_loadb(c->buf, (size_t)n, 0, NULL);
    json_t *error = json_object_get(root, "error");
    if (!root || error)
        client_error(c, "auth: %s",
                     error ? json_string_value(json_object_get(error, "message")) : "bad answer");
    int rc = root && !error ? 0 : -1;
    json_decref(root);
    consume_line(c, (size_t)n);
    return rc;
}

/* By --count, or by time (the duration after the warm-up). */
static bool plan_done(const plan *p) {
    if (p->o->count > 0)
        return atomic_load(p->measured) >= p->o->count;
    return now_ns() >= p->end_ns;
}

static void *client_main(void *arg) {
    client *c = arg;
    const char *address = c->p->o->addresses[c->index % c->p->o->n_addresses];
    c->fd = c->p->floor_fd >= 0 ? c->p->floor_fd : connect_retrying(address, c->p->o->wait_s);
    if (c->fd < 0) {
        client_error(c, "connect %s: %s", address, strerror(errno));
        return NULL;
    }
    if (c->p->o->auth_line && c->fd != c->p->floor_fd && authenticate(c) != 0) {
        close(c->fd);
        c->fd = -1;
        return NULL;
    }
    /* Ids are distinct across clients, though each connection has its own. */
    uint64_t id = (uint64_t)c->index << 40;
    while (!plan_done(c->p))
        if (round_trip(c, ++id) != 0)
            break;
    if (c->fd != c->p->floor_fd)
        close(c->fd);
    c->fd = -1;
    return NULL;
}

/* Nearest-rank percentile of a sorted array. */
static double percentile(const double *sorted, size_t n, double p) {
    if (n == 0)
        return NAN;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return sorted[rank ? rank - 1 : 0];
}

typedef struct summary {
    size_t n;
    uint64_t errors;
    double throughput, window_s, batch_mean;
    double lat_p50, lat_p90, lat_p99, lat_max, model_p50, queue_p50;
    double over_p50_us, over_p99_us, rest_p50_us; /* latency - model; latency - queue - model */
} summary;

/* Sorts values in place and fills the three percentiles asked for. */
static void pcts(double *v, size_t n, double *p50, double *p99, double *p90) {
    qsort(v, n, sizeof *v, cmp_double);
    *p50 = percentile(v, n, 50);
    *p99 = percentile(v, n, 99);
    if (p90)
        *p90 = percentile(v, n, 90);
}

static int summarize(const plan *p, const client *cs, int nc, summary *out) {
    *out = (summary){0};
    uint64_t last = p->warmup_end_ns;
    for (int i = 0; i < nc; i++) {
        out->n += cs[i].n_samples;
        out->errors += cs[i].errors;
        if (cs[i].last_finish_ns > last)
            last = cs[i].last_finish_ns;
    }
    size_t n = out->n;
    double *v = malloc((n ? n : 1) * 4 * sizeof *v);
    if (!v)
        return -1;
    double *lat = v, *model = v + n, *queue = v + 2 * n, *over = v + 3 * n, bsum = 0;
    size_t k = 0;
    for (int i = 0; i < nc; i++)
        for (size_t j = 0; j < cs[i].n_samples; j++, k++) {
            const sample *s = &cs[i].samples[j];
            lat[k] = s->latency_ms;
            model[k] = s->model_ms;
            queue[k] = s->queue_ms;
            over[k] = (s->latency_ms - s->model_ms) * 1e3;
            bsum += s->batch_size;
        }
    /* The window ends with the last measured answer: closed-loop clients finish late. */
    out->window_s = (double)(last - p->warmup_end_ns) / 1e9;
    out->throughput = out->window_s > 0 ? (double)n / out->window_s : 0;
    out->batch_mean = n ? bsum / (double)n : NAN;
    pcts(lat, n, &out->lat_p50, &out->lat_p99, &out->lat_p90);
    out->lat_max = n ? lat[n - 1] : NAN;
    pcts(over, n, &out->over_p50_us, &out->over_p99_us, NULL);
    double unused;
    pcts(model, n, &out->model_p50, &unused, NULL);
    pcts(queue, n, &out->queue_p50, &unused, NULL);
    /* What is neither queue nor model: the socket, JSON on both sides, the event loop. */
    k = 0;
    for (int i = 0; i < nc; i++)
        for (size_t j = 0; j < cs[i].n_samples; j++, k++) {
            const sample *s = &cs[i].samples[j];
            over[k] = (s->latency_ms - s->model_ms - s->queue_ms) * 1e3;
        }
    pcts(over, n, &out->rest_p50_us, &unused, NULL);
    free(v);
    return 0;
}

/* What was sent: the workload's name and shape, or the request file. */
static void describe(const options *o, char *buf, size_t len) {
    const bench_workload *w = &o->w;
    if (o->requests_path)
        snprintf(buf, len, "requests of %s", o->requests_path);
    else
        snprintf(buf, len, "workload %s (%d x %d, horizon %d, samples %d)", w->name, w->variates,
                 w->context, w->horizon, w->samples);
}

static void print_kv(const options *o, const summary *s) {
    const bench_workload *w = &o->w;
    printf("workload=%s\nvariates=%d\ncontext=%d\nhorizon=%d\nsamples=%d\nclients=%d\n"
           "requests=%zu\nerrors=%llu\nwindow_s=%.3f\nthroughput=%.3f\nlatency_p50_ms=%.3f\n"
           "latency_p90_ms=%.3f\nlatency_p99_ms=%.3f\nlatency_max_ms=%.3f\n"
           "model_p50_ms=%.3f\nqueue_p50_ms=%.3f\noverhead_p50_us=%.1f\n"
           "overhead_p99_us=%.1f\nrest_p50_us=%.1f\nbatch_mean=%.2f\n",
           o->requests_path ? "file" : w->name, w->variates, w->context, w->horizon, w->samples,
           o->clients, s->n, (unsigned long long)s->errors, s->window_s, s->throughput, s->lat_p50,
           s->lat_p90, s->lat_p99, s->lat_max, s->model_p50, s->queue_p50, s->over_p50_us,
           s->over_p99_us, s->rest_p50_us, s->batch_mean);
}

static void print_summary(const options *o, const summary *s) {
    if (!strcmp(o->format, "kv")) {
        print_kv(o, s);
        return;
    }
    char what[PATH_MAX + 64];
    describe(o, what, sizeof what);
    printf("# toto bench %s", o->address);
    for (int i = 1; i < o->n_addresses; i++)
        printf(", %s", o->addresses[i]);
    printf(": %s, %s after %.1f s warm-up\n", what, o->count > 0 ? "by count" : "by duration",
           o->warmup_s);
    printf("# overhead = latency - model_ms (queue wait included); rest = latency - queue_ms - "
           "model_ms\n");
    printf("| clients | requests | errors | forecasts/s | p50 ms | p90 ms | p99 ms | max ms | "
           "model p50 ms | overhead p50 us | overhead p99 us | queue p50 ms | rest p50 us | "
           "batch mean |\n");
    printf(
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    printf("| %d | %zu | %llu | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f | %.0f | %.0f | %.3f | "
           "%.0f | %.2f |\n",
           o->clients, s->n, (unsigned long long)s->errors, s->throughput, s->lat_p50, s->lat_p90,
           s->lat_p99, s->lat_max, s->model_p50, s->over_p50_us, s->over_p99_us, s->queue_p50,
           s->rest_p50_us, s->batch_mean);
}

/* --json FILE: the same numbers for programs. 0, or -1 (message printed). */
static int write_json(const options *o, const summary *s) {
    char what[PATH_MAX + 64];
    describe(o, what, sizeof what);
    json_t *j = json_pack(
        "{s:s, s:s, s:i, s:I, s:I, s:f, s:f, s:{s:f, s:f, s:f, s:f}, s:f, s:f, s:f, s:f, s:f, "
        "s:f}",
        "address", o->address, "sent", what, "clients", o->clients, "requests", (json_int_t)s->n,
        "errors", (json_int_t)s->errors, "window_s", s->window_s, "throughput", s->throughput,
        "latency_ms", "p50", s->lat_p50, "p90", s->lat_p90, "p99", s->lat_p99, "max", s->lat_max,
        "model_p50_ms", s->model_p50, "queue_p50_ms", s->queue_p50, "overhead_p50_us",
        s->over_p50_us, "overhead_p99_us", s->over_p99_us, "rest_p50_us", s->rest_p50_us,
        "batch_mean", s->batch_mean);
    int rc = j && json_dump_file(j, o->json_path, JSON_INDENT(2)) == 0 ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "toto bench: --json %s: cannot write it\n", o->json_path);
    json_decref(j);
    return rc;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: toto bench [--address unix:PATH|tcp:HOST:PORT | --socket PATH] [--clients N]\n"
            "                  [--duration-s S | --count N] [--warmup-s W]\n"
            "                  [--workload NAME | --requests FILE] [--context T] [--horizon H]\n"
            "                  [--samples N] [--timeout-s S] [--wait-s S] [--format md|kv]\n"
            "                  [--json FILE] [--token-file FILE] [--floor [--floor-hold-us US]]\n"
            "\n"
            "Closed loop: each of N clients (threads, one connection each) sends a forecast,\n"
            "waits for its answer and sends the next, for --duration-s seconds (default 5)\n"
            "after --warmup-s, or until --count answers came back (errors too). Prints\n"
            "throughput and latency percentiles (markdown, or key=value with --format kv);\n"
            "--json FILE also writes them as JSON.\n"
            "\n"
            "  --workload NAME   seed (default), mean64, long, ett, small: the shapes of the\n"
            "                    upstream benchmarks (docs/toto-cli.md); --context, --horizon\n"
            "                    and --samples override the preset's\n"
            "  --requests FILE   JSON lines, each a forecast's params or a forecast request,\n"
            "                    sent in turn instead of a preset\n"
            "  --address A       may be given up to 16 times (--socket too): client i\n"
            "                    connects to the (i mod n)th, to load several daemons at once\n"
            "  --wait-s S        retry connecting for S seconds while the daemon starts\n"
            "  --token-file FILE each connection first presents this token (auth; default\n"
            "                    $TOTO_TOKEN_FILE): a daemon with auth-token-file needs it\n"
            "                    over TCP\n"
            "  --timeout-s S     an answer slower than S seconds is an error (default 60)\n"
            "  --floor           one client against an echo process answering with a result\n"
            "                    captured from the daemon (the socket floor), after holding\n"
            "                    each answer --floor-hold-us (as long as a model call)\n"
            "\n"
            "Exit status: 0 every answer was a result, 1 an error answer or a failure,\n"
            "2 bad usage.\n");
}

/* Parses a number into *out; -1 if v is not entirely one. */
static int parse_num(const char *v, double *out) {
    char *end;
    errno = 0;
    *out = strtod(v, &end);
    return (errno || end == v || *end || !isfinite(*out)) ? -1 : 0;
}

static bool is_text_option(const char *a) {
    static const char *const names[] = {"--address", "--socket",   "--workload",  "--format",
                                        "--json",    "--requests", "--token-file"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(a, names[i]))
            return true;
    return false;
}

/* One option with a text value; false if a is not one of them or v is bad. */
static bool text_option(options *o, const char *a, const char *v) {
    if (!strcmp(a, "--address") || !strcmp(a, "--socket")) {
        if (o->n_given == BENCH_MAX_ADDRESSES)
            return false;
        o->given_socket[o->n_given] = !strcmp(a, "--socket");
        o->given[o->n_given++] = v;
    } else if (!strcmp(a, "--format") && (!strcmp(v, "md") || !strcmp(v, "kv")))
        o->format = v;
    else if (!strcmp(a, "--workload"))
        return bench_workload_find(v, &o->w) == 0;
    else if (!strcmp(a, "--json"))
        o->json_path = v;
    else if (!strcmp(a, "--requests"))
        o->requests_path = v;
    else if (!strcmp(a, "--token-file"))
        o->token_file = v;
    else
        return false;
    return true;
}

/* One option with a numeric value x; false if a is not one of them or x is out of range. */
static bool num_option(options *o, const char *a, double x, int *context, int *horizon,
                       int *samples) {
    if (!strcmp(a, "--clients") && x >= 1 && x <= 4096)
        o->clients = (int)x;
    else if (!strcmp(a, "--duration-s") && x > 0)
        o->duration_s = x;
    else if (!strcmp(a, "--count") && x >= 1 && x <= 1e12)
        o->count = (long long)x;
    else if (!strcmp(a, "--warmup-s") && x >= 0)
        o->warmup_s = x;
    else if (!strcmp(a, "--timeout-s") && x > 0)
        o->timeout_s = x;
    else if (!strcmp(a, "--wait-s") && x >= 0)
        o->wait_s = x;
    else if (!strcmp(a, "--context") && x >= 1 && x <= 1e7)
        *context = (int)x;
    else if (!strcmp(a, "--horizon") && x >= 1 && x <= 1e7)
        *horizon = (int)x;
    else if (!strcmp(a, "--samples") && x >= 0 && x <= 1e7)
        *samples = (int)x;
    else if (!strcmp(a, "--floor-hold-us") && x >= 0 && x <= 10e6)
        o->hold_us = x;
    else
        return false;
    return true;
}

/* Any address the client library takes (a bare path, tcp::PORT, NULL for the
 * default), written as the unix:PATH or tcp:HOST:PORT the connections use
 * (malloc'd), or NULL (message printed). */
static char *canonical_address(const char *given, bool socket_path) {
    char path[PATH_MAX + 8];
    toto_client_address a;
    toto_client_error err;
    if (socket_path)
        snprintf(path, sizeof path, "unix:%s", given);
    if (toto_client_parse_address(socket_path ? path : given, &a, &err) != TOTO_CLIENT_OK) {
        fprintf(stderr, "toto bench: %s\n", err.message);
        return NULL;
    }
    size_t len = strlen(a.kind == TOTO_CLIENT_ADDRESS_UNIX ? a.path : a.host) + 32;
    char *out = malloc(len);
    if (!out)
        fprintf(stderr, "toto bench: out of memory\n");
    else if (a.kind == TOTO_CLIENT_ADDRESS_UNIX)
        snprintf(out, len, "unix:%s", a.path);
    else if (strchr(a.host, ':'))
        snprintf(out, len, "tcp:[%s]:%d", a.host, a.port);
    else
        snprintf(out, len, "tcp:%s:%d", a.host, a.port);
    return out;
}

/* Every address given (the default if none), canonical. 0, or -1 (printed). */
static int canonical_addresses(options *o) {
    int n = o->n_given > 0 ? o->n_given : 1;
    for (int i = 0; i < n; i++) {
        bool given = o->n_given > 0;
        o->addresses[i] =
            canonical_address(given ? o->given[i] : NULL, given && o->given_socket[i]);
        if (!o->addresses[i])
            return -1;
        o->n_addresses++;
    }
    o->address = o->addresses[0];
    return 0;
}

static void free_addresses(options *o) {
    for (int i = 0; i < o->n_addresses; i++)
        free(o->addresses[i]);
    o->n_addresses = 0;
}

/* 0, 1 for --help (printed), or -1 (message printed). */
static int parse_args(int argc, char **argv, options *o) {
    *o = (options){.format = "md", .clients = 1, .duration_s = 5, .timeout_s = 60};
    bench_workload_find("seed", &o->w);
    int context = -1, horizon = -1, samples = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--floor")) {
            o->floor = true;
            continue;
        }
        bool text = is_text_option(a);
        if (!v || (!text && parse_num(v, &x) != 0)) {
            fprintf(stderr, "toto bench: %s needs a %svalue (see --help)\n", a,
                    v && !text ? "numeric " : "");
            return -1;
        }
        i++;
        if ((!strcmp(a, "--address") || !strcmp(a, "--socket")) &&
            o->n_given == BENCH_MAX_ADDRESSES) {
            fprintf(stderr, "toto bench: %s %s: at most %d addresses (--address, --socket)\n", a, v,
                    BENCH_MAX_ADDRESSES);
            return -1;
        }
        if (text ? !text_option(o, a, v) : !num_option(o, a, x, &context, &horizon, &samples)) {
            fprintf(stderr, "toto bench: bad option or value: %s %s (see --help; workloads: %s)\n",
                    a, v, bench_workload_names());
            return -1;
        }
    }
    /* Explicit sizes override the workload's, whatever the order of the flags. */
    o->w.context = context > 0 ? context : o->w.context;
    o->w.horizon = horizon > 0 ? horizon : o->w.horizon;
    o->w.samples = samples >= 0 ? samples : o->w.samples;
    if (o->floor)
        o->clients = 1;
    return canonical_addresses(o);
}

static void report_errors(const client *cs, int nc) {
    for (int i = 0; i < nc; i++)
        if (cs[i].errors)
            fprintf(stderr, "toto bench: client %d: %llu errors, first: %s\n", i,
                    (unsigned long long)cs[i].errors, cs[i].first_error);
}

/* Runs the clients to the end; 0, or -1 if one could not even start. */
static int run_clients(client *cs, int nc) {
    int started = 0, rc = 0;
    for (; started < nc; started++) {
        cs[started].buf_cap = 65536;
        cs[started].buf = malloc(cs[started].buf_cap);
        if (!cs[started].buf ||
            pthread_create(&cs[started].thread, NULL, client_main, &cs[started])) {
            fprintf(stderr, "toto bench: cannot start client %d\n", started);
            rc = -1;
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(cs[i].thread, NULL);
    return rc;
}

/* --floor: captures a real result from the daemon, then starts the echo process. */
static int start_floor(const options *o, const bench_request *req, pid_t *child) {
    char err[200], *line = malloc(req->len + 4), *result = NULL;
    int fd = connect_retrying(o->address, o->wait_s), echo = -1;
    if (fd < 0)
        snprintf(err, sizeof err, "connect %s: %s", o->address, strerror(errno));
    else if (!line)
        snprintf(err, sizeof err, "out of memory");
    else {
        memcpy(line, req->prefix, req->len);
        memcpy(line + req->len, "0}\n", 3);
        result = floor_capture_result(fd, line, req->len + 3, o->timeout_s, o->hold_us / 1e3, err,
                                      sizeof err);
    }
    if (result && (echo = floor_start(result, (long)o->hold_us, child)) < 0)
        snprintf(err, sizeof err, "cannot start the echo process: %s", strerror(errno));
    if (echo < 0)
        fprintf(stderr, "toto bench: --floor: %s\n", err);
    if (fd >= 0)
        close(fd);
    free(line);
    free(result);
    return echo;
}

/* The requests to send: the file's, or the workload's one. 0, or -1 (printed). */
static int load_requests(const options *o, bench_requests *reqs) {
    char err[512];
    if (o->requests_path) {
        if (bench_requests_from_file(o->requests_path, reqs, err, sizeof err) == 0)
            return 0;
        fprintf(stderr, "toto bench: --requests %s\n", err);
        return -1;
    }
    if (bench_requests_from_workload(&o->w, reqs) == 0)
        return 0;
    fprintf(stderr, "toto bench: out of memory\n");
    return -1;
}

/* Runs the clients and reports; the exit status. */
static int measure(const options *o, plan *p) {
    client *cs = calloc((size_t)o->clients, sizeof *cs);
    if (!cs) {
        fprintf(stderr, "toto bench: out of memory\n");
        return 1;
    }
    /* Connecting (and waiting for the daemon) happens inside the warm-up. */
    p->warmup_end_ns = now_ns() + (uint64_t)(o->warmup_s * 1e9);
    p->end_ns = p->warmup_end_ns + (uint64_t)(o->duration_s * 1e9);
    for (int i = 0; i < o->clients; i++)
        cs[i] = (client){.p = p, .index = i, .fd = -1};
    int rc = run_clients(cs, o->clients);
    summary s = {0};
    if (rc == 0 && summarize(p, cs, o->clients, &s) == 0) {
        print_summary(o, &s);
        if (o->json_path && write_json(o, &s) != 0)
            rc = -1;
    } else
        rc = -1;
    report_errors(cs, o->clients);
    if (rc == 0 && s.n == 0)
        fprintf(stderr, "toto bench: no answer was measured\n");
    for (int i = 0; i < o->clients; i++) {
        free(cs[i].buf);
        free(cs[i].samples);
    }
    free(cs);
    return rc != 0 || s.errors || s.n == 0 ? 1 : 0;
}

/* --token-file: the auth request line. 0, or -1 (message printed). */
static int make_auth_line(options *o) {
    if (!o->token_file) {
        const char *env = getenv("TOTO_TOKEN_FILE");
        o->token_file = env && *env ? env : NULL;
    }
    if (!o->token_file)
        return 0;
    char token[1100];
    toto_client_error err;
    if (toto_client_read_token_file(o->token_file, token, sizeof token, &err)) {
        fprintf(stderr, "toto bench: %s\n", err.message);
        return -1;
    }
    json_t *req = json_pack("{s:s, s:i, s:s, s:{s:s}}", "jsonrpc", "2.0", "id", 0, "method", "auth",
                            "params", "token", token);
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    o->auth_line = text ? malloc(strlen(text) + 2) : NULL;
    if (o->auth_line)
        sprintf(o->auth_line, "%s\n", text);
    free(text);
    if (!o->auth_line)
        fprintf(stderr, "toto bench: out of memory\n");
    return o->auth_line ? 0 : -1;
}

int toto_bench_main(int argc, char **argv) {
    options o;
    int parsed = parse_args(argc, argv, &o);
    if (parsed != 0 || make_auth_line(&o) != 0) {
        free_addresses(&o);
        return parsed > 0 ? 0 : 2;
    }
    bench_requests reqs;
    if (load_requests(&o, &reqs) != 0) {
        free(o.auth_line);
        free_addresses(&o);
        return o.requests_path ? 2 : 1;
    }
    atomic_llong measured = 0;
    plan p = {.o = &o, .reqs = &reqs, .floor_fd = -1, .measured = &measured};
    pid_t floor_child = -1;
    int status = 1;
    if (!o.floor || (p.floor_fd = start_floor(&o, &reqs.items[0], &floor_child)) >= 0)
        status = measure(&o, &p);
    if (o.floor && p.floor_fd >= 0)
        floor_stop(p.floor_fd, floor_child);
    bench_requests_free(&reqs);
    free(o.auth_line);
    free_addresses(&o);
    return status;
}
