/* shadow.c - shadow checks of the compiled path (see shadow.h). */
#include "shadow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void shadow_init(shadow_check *s, int every, int fallback_after, int idle_ms,
                 const char *compute_dtype) {
    *s = (shadow_check){.every = every, .fallback_after = fallback_after, .idle_ms = idle_ms};
    s->tolerance = compute_dtype && strcmp(compute_dtype, "bfloat16") == 0 ? 2e-2 : 1e-3;
#ifdef TOTO_FAULT_INJECTION
    const char *offset = getenv("TOTO_FAULT_SHADOW_OFFSET");
    s->fault_offset = offset ? atof(offset) : 0;
#endif
}

void shadow_free(shadow_check *s) {
    free(s->values);
    s->values = NULL;
    s->pending = false;
}

void shadow_offer(shadow_check *s, const toto_request *r, int patch_size) {
    if (s->every <= 0 || s->pending || ++s->seen < (uint64_t)s->every || r->groups)
        return; /* grouped variates: kept simple, their groups are not copied */
    size_t n = (size_t)r->n_variates * (size_t)r->n_steps;
    double *v = realloc(s->values, n * sizeof *v);
    if (!v)
        return;
    memcpy(v, r->values, n * sizeof *v);
    s->values = v;
    s->req = (toto_request){
        .n_variates = r->n_variates,
        .n_steps = r->n_steps,
        .values = v,
        .prediction_length = r->prediction_length < patch_size ? r->prediction_length : patch_size};
    s->seen = 0;
    s->pending = true;
}

/* The standard deviation of the observed values (1 when there is no spread). */
static double spread(const toto_request *r) {
    double sum = 0, sq = 0;
    size_t n = 0;
    for (size_t i = 0; i < (size_t)r->n_variates * (size_t)r->n_steps; i++)
        if (!isnan(r->values[i])) {
            sum += r->values[i];
            sq += r->values[i] * r->values[i];
            n++;
        }
    double var = n ? sq / (double)n - (sum / (double)n) * (sum / (double)n) : 0;
    return var > 0 ? sqrt(var) : 1.0;
}

int shadow_run(shadow_check *s, toto_model *m, shadow_score *out, char *err, size_t err_len) {
    toto_result c, e;
    memset(&c, 0, sizeof c);
    memset(&e, 0, sizeof e);
    s->pending = false;
    int rc = toto_forecast_on(m, "compiled", &s->req, &c, 1, err, err_len);
    if (rc == TOTO_OK)
        rc = toto_forecast_on(m, "eager", &s->req, &e, 1, err, err_len);
    if (rc == TOTO_OK && (c.status != TOTO_OK || e.status != TOTO_OK)) {
        snprintf(err, err_len, "%s", c.status != TOTO_OK ? c.error : e.error);
        rc = c.status != TOTO_OK ? c.status : e.status;
    }
    if (rc == TOTO_OK) {
        double worst = 0, sd = spread(&s->req);
        for (int i = 0; i < c.n_variates * c.prediction_length; i++)
            worst = fmax(worst, fabs(c.mean[i] - e.mean[i]) / sd);
        out->divergence = worst + s->fault_offset;
        out->over = !(out->divergence <= s->tolerance); /* NaN is over */
    }
    toto_result_free(&c);
    toto_result_free(&e);
    return rc == TOTO_OK ? 0 : -1;
}
