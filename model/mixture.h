/*
 * mixture.h - the Student-t mixture of Toto's output head, evaluated exactly
 * in float64: CDF, quantiles (by inverting the CDF) and mean.
 * Component k has weight w[k], degrees of freedom df[k] (> 0), location
 * loc[k] and scale scale[k] (> 0).
 */
#ifndef TOTO_MIXTURE_H
#define TOTO_MIXTURE_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mixture_t {
    int k;
    const double *w;
    const double *df;
    const double *loc;
    const double *scale;
} mixture_t;

/* P(T <= x) for one Student-t with df degrees of freedom (location 0, scale 1). */
double student_t_cdf(double x, double df);
/* P(X <= x) for the mixture. */
double mixture_cdf(const mixture_t *m, double x);
/* The x with mixture_cdf(x) = q, q in (0,1), to about 1e-12 relative. */
double mixture_quantile(const mixture_t *m, double q);
/* Sum_k w[k] * loc[k]. */
double mixture_mean(const mixture_t *m);

#ifdef __cplusplus
}
#endif

#endif
