/*
 * bench_workload.h - what `toto bench` sends: a preset workload of
 * ../shared/TOTO.md (a synthetic series of the preset's shape), or the
 * forecasts of a request file, each encoded once as a request line without
 * its id so that the load generator's own JSON cost stays out of the way.
 */
#ifndef TOTO_BENCH_WORKLOAD_H
#define TOTO_BENCH_WORKLOAD_H

#include <stddef.h>

typedef struct bench_workload {
    const char *name;
    int variates, context, horizon, samples;
} bench_workload;

/* The preset called name (seed, mean64, long, ett, small); -1 if none is. */
int bench_workload_find(const char *name, bench_workload *out);

/* The preset names, comma-separated, for messages. */
const char *bench_workload_names(void);

/* One request line up to its id's value ('...,"id":'), owned by the set. */
typedef struct bench_request {
    char *prefix;
    size_t len;
} bench_request;

typedef struct bench_requests {
    bench_request *items;
    size_t n;
} bench_requests;

/* The one request of a workload. 0, or -1 (out of memory). */
int bench_requests_from_workload(const bench_workload *w, bench_requests *out);

/*
 * The requests of a file of JSON lines, each the params object of a
 * forecast ({"series": ..., "prediction_length": ...}) or a whole JSON-RPC
 * forecast request (its id is replaced). Blank lines and lines starting with
 * '#' are skipped. 0, or -1 with a message naming the line in err.
 */
int bench_requests_from_file(const char *path, bench_requests *out, char *err, size_t errlen);

void bench_requests_free(bench_requests *r);

#endif
