/*
 * mixture.c - the Student-t CDF and the Student-t mixture's CDF, quantiles
 * and mean (see mixture.h). The math lives in mixture_impl.h, which CUDA
 * device code (model/cuda/mixture_stats.cu) compiles too; here it runs
 * sequentially over the components.
 */
#include "mixture.h"

#include "mixture_impl.h"

#include <stddef.h>

/* Components up to which the quantile keeps each one's lgamma ratio on the
 * stack (the head has 24); more are computed at every evaluation. */
#define LGH_STACK 64

static mix_t from_mixture(const mixture_t *m, const double *lgh) {
    mix_t p = {m->k, m->w, m->df, m->loc, m->scale, lgh};
    return p;
}

double student_t_cdf(double x, double df) {
    return mix_student_t_cdf(x, df);
}

double mixture_cdf(const mixture_t *m, double x) {
    mix_t p = from_mixture(m, NULL);
    return mix_cdf(&p, x);
}

double mixture_quantile(const mixture_t *m, double q) {
    double lgh[LGH_STACK];
    int cached = m->k >= 1 && m->k <= LGH_STACK;
    for (int k = 0; cached && k < m->k; k++)
        lgh[k] = mix_lgh_of(m->df[k]);
    mix_t p = from_mixture(m, cached ? lgh : NULL);
    return mix_quantile(&p, q);
}

double mixture_mean(const mixture_t *m) {
    mix_t p = from_mixture(m, NULL);
    return mix_mean(&p);
}
