/*
 * mixture_impl.h - the implementation of mixture.h, as static inline
 * functions that compile both as host C (model/mixture.c wraps them into
 * mixture.h's API) and as CUDA device code (model/cuda/mixture_stats.cu), so
 * the GPU runs the same math from the same source.
 *
 * Student-t CDF through the regularized incomplete beta function, and the
 * Student-t mixture's CDF, quantiles and mean. For T with nu degrees of
 * freedom and u = |x| / sqrt(nu):
 *   P(T > |x|) = 1/2 * I_z(nu/2, 1/2),   z = 1 / (1 + u^2),
 * and I_z(a, b) = 1 - I_{1-z}(b, a). For moderate df a continued fraction
 * evaluates whichever of the two converges fast, so the small tail is
 * computed directly and never as 1 - (something close to 1); for large df an
 * expansion in incomplete gamma functions replaces it (see below).
 * Accuracy: about 1e-15 absolute and 1e-14 relative in the tails, any df.
 *
 * Sums over the components are split over the lanes of a CUDA warp: a loop
 * `for (k = MIX_LANE; k < m->k; k += MIX_LANES)` then MIX_REDUCE_SUM. On the
 * host MIX_LANE is 0, MIX_LANES 1 and the reduction nothing, so the loop and
 * its order of additions are the plain sequential ones. On the device a
 * butterfly all-reduce (__shfl_xor_sync) leaves the same bits in every lane
 * (each step adds the same two values, and addition commutes), so every lane
 * takes the same branches: control flow outside the per-component loops is
 * warp-uniform, as the shuffles' full mask requires. Device code must call
 * these with all 32 lanes of the warp, each with the same arguments.
 */
#ifndef TOTO_MIXTURE_IMPL_H
#define TOTO_MIXTURE_IMPL_H

#include "mixture.h"

#include <float.h>
#include <math.h>

#ifdef __CUDACC__
#define MIX_FN static inline __host__ __device__
#else
#define MIX_FN static inline
#endif

#ifdef __CUDA_ARCH__
#define MIX_LANE          ((int)(threadIdx.x & 31u))
#define MIX_LANES         32
#define MIX_REDUCE_SUM(s) ((s) = mix_warp_sum(s))
#define MIX_REDUCE_MIN(s) ((s) = mix_warp_min(s))

/* Every lane ends with the same sum (see the top of the file). */
static __device__ __forceinline__ double mix_warp_sum(double s) {
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}

static __device__ __forceinline__ double mix_warp_min(double s) {
    for (int o = 16; o > 0; o >>= 1)
        s = fmin(s, __shfl_xor_sync(0xffffffffu, s, o));
    return s;
}
#else
#define MIX_LANE          0
#define MIX_LANES         1
#define MIX_REDUCE_SUM(s) ((void)0)
#define MIX_REDUCE_MIN(s) ((void)0)
#endif

#define MIX_PI_D        3.14159265358979323846
#define MIX_LOG_SQRT_PI 0.57236494292470008707 /* log(sqrt(pi)) = lgamma(1/2) */
#define MIX_CF_MAX_ITER 100000
#define MIX_CF_TINY     1e-300
#define MIX_QUANT_ITER  400
#define MIX_LARGE_DF    500.0

/* log(1 + u^2) for u >= 0 without overflowing u^2 when u is huge, so that
 * very small df (where the tail at huge |x| is still sizeable) stays finite. */
MIX_FN double mix_log1p_sq(double u) {
    if (u > 1e150)
        return 2.0 * log(u) + log1p(1.0 / u / u);
    return log1p(u * u);
}

/* Stirling's series for lgamma without its leading terms; enough terms that
 * the truncation error is below 1e-17 for z >= 20. */
MIX_FN double mix_stirling_tail(double z) {
    double r = 1.0 / (z * z);
    return (1.0 / 12.0 - r * (1.0 / 360.0 - r * (1.0 / 1260.0 - r * (1.0 / 1680.0 - r / 1188.0)))) /
           z;
}

/* lgamma(a + 1/2) - lgamma(a). For large a both lgammas are huge and their
 * difference would lose about log10(lgamma(a)) digits (1e-9 relative at
 * df = 1e6), so the difference is taken analytically from Stirling's series.
 * Small a is shifted up with Gamma(a + 1) = a Gamma(a), which also keeps
 * libm's lgamma (and its global signgam, a data race between threads) out. */
MIX_FN double mix_lgamma_half_ratio(double a) {
    double shift = 0.0;
    for (; a < 20.0; a += 1.0)
        shift += log1p(0.5 / a); /* log((a + 1/2) / a) */
    return a * log1p(0.5 / a) - 0.5 + 0.5 * log(a) +
           (mix_stirling_tail(a + 0.5) - mix_stirling_tail(a)) - shift;
}

/* lgamma_half_ratio(df / 2), NaN for df <= 0 or NaN (where the loop above
 * would not end, and no Student-t exists). */
MIX_FN double mix_lgh_of(double df) {
    return df > 0.0 ? mix_lgamma_half_ratio(0.5 * df) : NAN;
}

/* Keeps a Lentz denominator away from zero (the textbook fix-up). */
MIX_FN double mix_lentz_guard(double v) {
    return fabs(v) < MIX_CF_TINY ? MIX_CF_TINY : v;
}

/* Continued fraction of I_x(a, b) without its prefactor, by the modified Lentz
 * method. It converges quickly for x < (a + 1) / (a + b + 2), which the caller
 * ensures by choosing between I_z(a, 1/2) and I_{1-z}(1/2, a). */
MIX_FN double mix_beta_cf(double x, double a, double b) {
    double c = 1.0;
    double d = 1.0 / mix_lentz_guard(1.0 - (a + b) * x / (a + 1.0));
    double h = d;
    for (int m = 1; m < MIX_CF_MAX_ITER; m++) {
        double m2 = 2.0 * m;
        /* even step: m (b - m) x / ((a + 2m - 1)(a + 2m)) */
        double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
        d = 1.0 / mix_lentz_guard(1.0 + num * d);
        c = mix_lentz_guard(1.0 + num / c);
        h *= d * c;
        /* odd step: -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)) */
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
        d = 1.0 / mix_lentz_guard(1.0 + num * d);
        c = mix_lentz_guard(1.0 + num / c);
        double delta = d * c;
        h *= delta;
        if (fabs(delta - 1.0) < 0.5 * DBL_EPSILON)
            break;
    }
    return h;
}

/* P(T > |x|) for large df, where the continued fraction in z loses about
 * df/2 ulps (z's rounding is amplified by z^(df/2)). With t = e^(-s),
 *   I_z(a, 1/2) = 1/B(a, 1/2) int_xi^inf e^(-T s) s^(-1/2) h(s) ds,
 * xi = -log z, T = a - 1/4 (t below), h(s) = (sinh(s/2) / (s/2))^(-1/2). Expanding h
 * termwise gives upper incomplete gammas E_j = Gamma(j + 1/2, T xi) / T^(j + 1/2),
 * whose upward recurrence only adds positive terms. Every input is a log, so
 * nothing is raised to a huge power, and the tail keeps full relative accuracy.
 * Needs T xi < 800 to imply xi well inside h's radius 2 pi: T >= ~250. */
MIX_FN double mix_student_t_upper_large_df(double ax, double df, double lgh) {
    double a = 0.5 * df;
    double t = a - 0.25;
    double xi = mix_log1p_sq(ax / sqrt(df));
    double y = t * xi;
    if (y > 800.0) /* the tail is below e^-800: it underflows anyway */
        return 0.0;
    double e = sqrt(MIX_PI_D / t) * erfc(sqrt(y)); /* E_0 */
    double p = sqrt(xi) * exp(-y);                 /* xi^(j + 1/2) e^(-y), for j = 0 */
    /* Coefficients h_n of (sinh(s/2) / (s/2))^(-1/2) = sum_n h_n s^(2n), from the
     * power-series power recurrence (J.C.P. Miller) applied to
     * sinh(s/2) / (s/2) = sum_k s^(2k) / (4^k (2k+1)!), in 60-digit arithmetic.
     * |h_n| ~ 0.2 (2 pi)^(-2n): the series converges for |s| < 2 pi. Local to
     * the function so that device code has its own copy (in global memory);
     * a file-scope table would be host memory there. */
    static const double SINHC_POW[] = {
        1.0,
        -2.0833333333333333e-2,
        3.90625e-4,
        -7.8796709656084656e-6,
        1.6967665791721781e-7,
        -3.8050641917219066e-9,
        8.7483775963154073e-11,
        -2.0445233594119738e-12,
        4.8333517979677044e-14,
        -1.1524341017673859e-15,
        2.76605204359937e-17,
        -6.67428195089166e-19,
        1.6174550771815799e-20,
        -3.93397792009138e-22,
        9.5976340625860467e-24,
        -2.3476902911626321e-25,
        5.7558703875442666e-27,
        -1.414008810826549e-28,
        3.4798693650590278e-30,
        -8.5774661653403763e-32,
        2.1172351041679866e-33,
        -5.2327802857375982e-35,
        1.2947835769777706e-36,
        -3.2071412978037776e-38,
        7.9516273142055149e-40,
        -1.973224903040875e-41,
        4.9006030938755649e-43,
        -1.218002072404472e-44,
        3.029341376031126e-46,
        -7.539260834355307e-48,
    };
    const int n_terms = (int)(sizeof SINHC_POW / sizeof SINHC_POW[0]);
    double sum = e;
    for (int n = 1; n < n_terms; n++) {
        for (int j = 2 * n - 2; j < 2 * n; j++) { /* E_j -> E_(j+1), twice */
            e = ((j + 0.5) * e + p) / t;
            p *= xi;
        }
        double term = SINHC_POW[n] * e;
        sum += term;
        if (fabs(term) < 1e-17 * sum)
            break;
    }
    return 0.5 * exp(lgh) / sqrt(MIX_PI_D) * sum;
}

/* P(T > |x|) for T ~ t_df, x finite and nonzero; lgh = mix_lgh_of(df). */
MIX_FN double mix_student_t_upper(double ax, double df, double lgh) {
    if (df >= MIX_LARGE_DF)
        return mix_student_t_upper_large_df(ax, df, lgh);
    double a = 0.5 * df;
    double u = ax / sqrt(df);
    double l1p = mix_log1p_sq(u);       /* -log z */
    double log_w = -log1p(1.0 / u / u); /* log(1 - z), w = u^2 / (1 + u^2) */
    /* log(z^a w^(1/2) / B(a, 1/2)), from logs so that large a can't underflow early */
    double log_front = -a * l1p + 0.5 * log_w + lgh - MIX_LOG_SQRT_PI;
    double front = exp(log_front);
    double w = exp(log_w);
    /* The tail: I_z(a, 1/2) directly. The centre: the tail is near 1/2, so
     * 1/2 - front I_w(1/2, a) loses nothing. One call site for both, so that
     * lanes of a warp on different sides run the fraction's loop together. */
    int tail = w > 1.5 / (a + 2.5);
    double cf = mix_beta_cf(tail ? exp(-l1p) : w, tail ? a : 0.5, tail ? 0.5 : a);
    return tail ? 0.5 * front * cf / a : 0.5 - front * cf;
}

/* The large-df limit; also the answer for df = +inf. */
MIX_FN double mix_normal_cdf(double x) {
    return 0.5 * erfc(-x / sqrt(2.0));
}

/* P(T <= x) for T ~ t_df, with lgh = mix_lgh_of(df). */
MIX_FN double mix_student_t_cdf_lgh(double x, double df, double lgh) {
    if (isnan(x) || isnan(df) || !(df > 0.0))
        return NAN;
    if (x == 0.0)
        return 0.5;
    if (isinf(x))
        return x > 0.0 ? 1.0 : 0.0;
    if (isinf(df))
        return mix_normal_cdf(x);
    double tail = mix_student_t_upper(fabs(x), df, lgh);
    return x < 0.0 ? tail : 1.0 - tail;
}

MIX_FN double mix_student_t_cdf(double x, double df) {
    return mix_student_t_cdf_lgh(x, df, mix_lgh_of(df));
}

/* Density of t_df at x: Gamma((df+1)/2) / (Gamma(df/2) sqrt(df pi)) (1 + x^2/df)^(-(df+1)/2).
 * Only the quantile's Newton steps use it, but it shares the accurate ratio
 * lgh = mix_lgh_of(df). */
MIX_FN double mix_student_t_pdf(double x, double df, double lgh) {
    if (isinf(df))
        return exp(-0.5 * x * x) / sqrt(2.0 * MIX_PI_D);
    double a = 0.5 * df;
    double logp = lgh - 0.5 * log(df * MIX_PI_D) - (a + 0.5) * mix_log1p_sq(fabs(x) / sqrt(df));
    return exp(logp);
}

/* A mixture_t, and optionally what depends on each component's df alone:
 * lgh[k] = mix_lgh_of(df[k]) costs up to 20 log1p calls, so a caller that
 * evaluates the CDF many times computes it once per component. NULL: each
 * evaluation computes it. The values are the same either way, and so are
 * the results. */
typedef struct mix_t {
    int k;
    const double *w, *df, *loc, *scale, *lgh;
} mix_t;

MIX_FN double mix_lgh(const mix_t *m, int k) {
    return m->lgh ? m->lgh[k] : mix_lgh_of(m->df[k]);
}

MIX_FN double mix_cdf(const mix_t *m, double x) {
    double s = 0.0;
    for (int k = MIX_LANE; k < m->k; k += MIX_LANES) {
        if (m->w[k] != 0.0) /* zero weights cost nothing and can't make NaN */
            s += m->w[k] *
                 mix_student_t_cdf_lgh((x - m->loc[k]) / m->scale[k], m->df[k], mix_lgh(m, k));
    }
    MIX_REDUCE_SUM(s);
    return s;
}

MIX_FN double mix_pdf(const mix_t *m, double x) {
    double s = 0.0;
    for (int k = MIX_LANE; k < m->k; k += MIX_LANES) {
        if (m->w[k] != 0.0)
            s += m->w[k] *
                 mix_student_t_pdf((x - m->loc[k]) / m->scale[k], m->df[k], mix_lgh(m, k)) /
                 m->scale[k];
    }
    MIX_REDUCE_SUM(s);
    return s;
}

MIX_FN double mix_mean(const mix_t *m) {
    double s = 0.0;
    for (int k = MIX_LANE; k < m->k; k += MIX_LANES)
        s += m->w[k] * m->loc[k];
    MIX_REDUCE_SUM(s);
    return s;
}

MIX_FN double mix_weight_sum(const mix_t *m) {
    double s = 0.0;
    for (int k = MIX_LANE; k < m->k; k += MIX_LANES)
        s += m->w[k];
    MIX_REDUCE_SUM(s);
    return s;
}

/* The smallest scale (fmin skips NaN, in any order). A lane past the last
 * component starts from component 0's, which the minimum already holds. */
MIX_FN double mix_min_scale(const mix_t *m) {
    double smin = m->scale[MIX_LANE < m->k ? MIX_LANE : 0];
    for (int k = MIX_LANE + MIX_LANES; k < m->k; k += MIX_LANES)
        smin = fmin(smin, m->scale[k]);
    MIX_REDUCE_MIN(smin);
    return smin;
}

/* The search state: lo < hi with F(lo) - target = rlo < 0 <= rhi = F(hi) - target,
 * and at each end the residual g of the log tail mass (see mix_quantile). */
typedef struct mix_bracket_t {
    double lo, hi, rlo, rhi, glo, ghi;
} mix_bracket_t;

/* A rough standard normal quantile (|error| < 5e-3): only a starting point. */
MIX_FN double mix_rough_normal_quantile(double q) {
    double p = q < 0.5 ? q : 1.0 - q;
    double t = sqrt(-2.0 * log(p));
    double z = t - (2.515517 + 0.802853 * t + 0.010328 * t * t) /
                       (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t);
    return q < 0.5 ? -z : z;
}

/* Mean and spread of the mixture, a Student-t's variance capped where df is
 * near 2 (infinite there): they only place the first guess and the step of
 * the outward search. */
MIX_FN void mix_spread(const mix_t *m, double *mean, double *spread) {
    double mu = mix_mean(m), var = 0.0, wsum = mix_weight_sum(m);
    mu /= wsum;
    for (int k = MIX_LANE; k < m->k; k += MIX_LANES) {
        double v = m->df[k] > 2.5 ? m->df[k] / (m->df[k] - 2.0) : 5.0;
        double d = m->loc[k] - mu;
        var += m->w[k] * (m->scale[k] * m->scale[k] * v + d * d);
    }
    MIX_REDUCE_SUM(var);
    *mean = mu;
    *spread = sqrt(var / wsum);
}

/* The smallest step worth taking at x: about one ulp, with a floor tied to
 * the smallest scale smin (the steepest component) so that a root at 0 still
 * terminates; F moves by ~1e-17 or less over the floor. */
MIX_FN double mix_x_resolution(double smin, double x) {
    return DBL_EPSILON * fabs(x) + 1e-17 * smin;
}

/* The x with F(x) = q * (sum of weights). Each evaluation of F gives a point
 * and, from the density there, the next one:
 *  - Newton steps on the log of the tail mass that holds the root (g below),
 *    which the tails make far more linear than F, aimed a little past the
 *    root they predict: by their own estimated error plus a pad of about the
 *    resolution (an ulp of x, or F's rounding over the density). Points then
 *    fall on both sides of the root, and the bracket closes from both ends:
 *    a search that converges from one side leaves the far end where it was,
 *    and only a point past the root can move it;
 *  - until the root is bracketed, that step or a doubling one outward;
 *  - where Newton leaves the bracket or doesn't halve its previous step,
 *    regula falsi on g if the last point crossed the root, else bisection
 *    (two points in a row on one side: interpolation would creep).
 * It stops when the bracket is one resolution wide, or F at both ends is
 * within its own rounding (a few eps F) of the target. Typically 5 to 8
 * evaluations; every decision depends on reduced values only, so it stays
 * warp-uniform on the device. */
MIX_FN double mix_quantile(const mix_t *m, double q) {
    if (!(q > 0.0 && q < 1.0) || m->k < 1)
        return NAN;
    /* Invert the CDF normalized by the total weight, so that weights that sum
     * to 1 only up to rounding can't leave q just below 1 unreachable. */
    double wsum = mix_weight_sum(m), target = q * wsum;
    double mean, spread;
    mix_spread(m, &mean, &spread);
    double x = mean + spread * mix_rough_normal_quantile(q);
    if (!isfinite(x) || !(spread > 0.0))
        return NAN;
    /* The tail mass on the root's side, T = F (q < 1/2) or wsum - F, and its
     * target tau. In a Student-t tail T ~ |x|^-df: log T is nearly linear in
     * log |x| where F is far from linear in x and Newton on F overshoots by
     * far, so the search works on g = log(T / tau), which has the sign of r =
     * F - target and is about r / tau near the root. */
    int lower = q < 0.5;
    double tau = lower ? target : wsum - target;
    /* F's rounding: its jitter at the ulp scale was measured at a few eps F. */
    double smin = mix_min_scale(m), f_tol = 4.0 * DBL_EPSILON * target;
    mix_bracket_t b = {-INFINITY, INFINITY, -INFINITY, INFINITY, -INFINITY, INFINITY};
    double width = spread, step_prev = INFINITY, x_prev = NAN, slope_prev = NAN;
    int run = 0; /* the end that moved last, and how many times in a row: n lo, -n hi */
    for (int it = 0; it < MIX_QUANT_ITER; it++) {
        double r = mix_cdf(m, x) - target;
        if (isnan(r))
            return NAN;
        if (r == 0.0)
            return x;
        double g = lower ? log1p(r / tau) : -log1p(-r / tau);
        if (r < 0.0) {
            b.lo = x;
            b.rlo = r;
            b.glo = g;
            run = run > 0 ? run + 1 : 1;
        } else {
            b.hi = x;
            b.rhi = r;
            b.ghi = g;
            run = run < 0 ? run - 1 : -1;
        }
        int bracketed = isfinite(b.lo) && isfinite(b.hi);
        double res = mix_x_resolution(smin, x), w = b.hi - b.lo;
        /* Done at one resolution, or where F can't tell the ends from the
         * root (unless the bracket is wide: a plateau of F, where x can still
         * be had to 1e-12 by closing in). */
        if (bracketed &&
            (w <= res || (-b.rlo <= f_tol && b.rhi <= f_tol && w <= 1e-12 * (fabs(x) + spread))))
            break;
        /* Newton's step on g, g' = dens / T; on F where g is infinite (T
         * rounded to 0 or below). */
        double dens = mix_pdf(m, x), slope = dens / (lower ? tau + r : tau - r);
        double d = dens > 0.0 ? -g / slope : NAN;
        if (!isfinite(d) && dens > 0.0)
            d = -r / dens;
        /* Half the resolution in x and in F: a point that far past the
         * predicted root lands on the other side of it. */
        double pad = 0.5 * res + (dens > 0.0 ? 0.5 * f_tol / dens : 0.0), xn;
        if (!bracketed) {
            /* Newton's steps cross the root in a step or two on the usual
             * unimodal head; where Newton is unusable the end moves outward
             * by a doubling step. */
            double step = d + (d > 0.0 ? pad : -pad);
            if (!(fabs(step) > 0.0 && fabs(step) < 64.0 * width) || (r < 0.0) != (step > 0.0))
                step = r < 0.0 ? width : -width;
            width = fmax(width, fabs(step)) * 2.0;
            xn = x + step;
            if (xn == x) /* a step below half an ulp; res is at least one */
                xn = x + (step > 0.0 ? res : -res);
            if (!isfinite(xn))
                return NAN;
        } else {
            /* Newton's own error after a step d is about (g'' / (2 g')) d^2,
             * g'' from the slopes at the last two points. */
            double curv = fabs((slope - slope_prev) / (x - x_prev)) / (2.0 * slope);
            double over = fmin(curv * d * d, 0.5 * fabs(d));
            if (!(over >= 0.0))
                over = 0.0;
            xn = x + d + (d > 0.0 ? over + pad : -(over + pad));
            if (!(fabs(d) <= 0.5 * step_prev && xn > b.lo && xn < b.hi)) {
                /* Regula falsi kept off the ends by the pad: beside an end
                 * whose residual is about 0 it would give that end again. */
                double xr = b.lo + w * (b.glo / (b.glo - b.ghi)), p = fmin(pad, 0.25 * w);
                int crossed = run == 1 || run == -1;
                xn = crossed && isfinite(xr) ? fmin(fmax(xr, b.lo + p), b.hi - p) : NAN;
                if (!(xn > b.lo && xn < b.hi))
                    xn = b.lo + 0.5 * w;
            }
            step_prev = fabs(xn - x);
        }
        x_prev = x;
        slope_prev = slope;
        x = xn;
    }
    if (!(isfinite(b.lo) && isfinite(b.hi)))
        return NAN;
    /* Within the bracket, F is about linear: the secant's root is nearer
     * the crossing than either end (whose residuals the pads made up to
     * about f_tol / 2). */
    double xi = b.lo + (b.hi - b.lo) * (b.rlo / (b.rlo - b.rhi));
    return xi >= b.lo && xi <= b.hi ? xi : -b.rlo < b.rhi ? b.lo : b.hi;
}

#endif
