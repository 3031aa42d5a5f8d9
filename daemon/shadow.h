/*
 * shadow.h - shadow checks of the compiled path. Now and then (one in
 * `every` compiled forecasts) a forecast's context is kept; when the worker
 * is idle it runs as a mean forecast of up to one patch on both paths, and
 * their divergence is scored: the largest difference of the means over the
 * context's standard deviation. `fallback_after` scores in a row above the
 * compiled path's tolerance (2e-2 in bfloat16, 1e-3 otherwise: the compiled
 * path's accuracy gates) say the compiled path has gone wrong.
 *
 * Runs on the worker's thread only, in a lull (nothing queued for idle_ms):
 * a request that arrives during a check waits for it (two mean forecasts of
 * one series), which under load does not happen.
 */
#ifndef TOTOD_SHADOW_H
#define TOTOD_SHADOW_H

#include <stdbool.h>
#include <stdint.h>

#include "toto.h"

typedef struct shadow_check {
    int every;          /* one check per this many compiled forecasts; 0: off */
    int fallback_after; /* scores in a row above tolerance that mean trouble */
    int idle_ms;        /* a check runs after nothing has been queued this long */
    double tolerance;
    double fault_offset; /* test builds: added to every score */
    uint64_t seen;       /* compiled forecasts since the last one kept */
    bool pending;
    toto_request req; /* the kept context, as a mean forecast; values owned */
    double *values;
} shadow_check;

typedef struct shadow_score {
    double divergence; /* max |compiled - eager| / context standard deviation */
    bool over;         /* above tolerance */
} shadow_score;

void shadow_init(shadow_check *s, int every, int fallback_after, int idle_ms,
                 const char *compute_dtype);
void shadow_free(shadow_check *s);
/* A compiled forecast of r was answered: maybe keep its context (copied). */
void shadow_offer(shadow_check *s, const toto_request *r, int patch_size);
/* Runs the kept context on both paths. 0 and *out, or -1 (err; nothing kept any more). */
int shadow_run(shadow_check *s, toto_model *m, shadow_score *out, char *err, size_t err_len);

#endif
