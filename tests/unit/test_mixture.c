/*
 * test_mixture.c - the Student-t CDF against closed forms, the normal limit
 * and reference values; the mixture quantile as an inverse of the mixture
 * CDF on random and adversarial mixtures; a Monte Carlo cross-check.
 */
#include "mixture.h"
#include "tap.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define PI 3.14159265358979323846

/* splitmix64: a tiny seeded generator so every run sees the same mixtures. */
typedef struct rng_t {
    uint64_t s;
} rng_t;

static uint64_t rng_next(rng_t *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): 53 random bits, never exactly 0. */
static double rng_unif(rng_t *r) {
    return ((double)(rng_next(r) >> 11) + 0.5) * 0x1.0p-53;
}

static double rng_range(rng_t *r, double lo, double hi) {
    return lo + (hi - lo) * rng_unif(r);
}

/* Box-Muller; wasting the second variate keeps the state trivial. */
static double rng_normal(rng_t *r) {
    return sqrt(-2.0 * log(rng_unif(r))) * cos(2.0 * PI * rng_unif(r));
}

/* Marsaglia-Tsang gamma(shape, 1) for shape >= 1 (df > 2 gives shape > 1). */
static double rng_gamma(rng_t *r, double shape) {
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double z = rng_normal(r), v = 1.0 + c * z;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        if (log(rng_unif(r)) < 0.5 * z * z + d - d * v + d * log(v))
            return d * v;
    }
}

static double normal_cdf(double x) {
    return 0.5 * erfc(-x / sqrt(2.0));
}

static double rel_err(double got, double want) {
    return fabs(got - want) / fabs(want);
}

/* df = 1 is the Cauchy distribution; the lower tail is atan(1/|x|)/pi. */
static void test_cauchy(void) {
    double worst = 0.0;
    for (double x = 1e-3; x < 1e7; x *= 1.7) {
        worst = fmax(worst, rel_err(student_t_cdf(-x, 1.0), atan(1.0 / x) / PI));
        worst = fmax(worst, fabs(student_t_cdf(x, 1.0) - (0.5 + atan(x) / PI)));
    }
    tap_check(worst < 1e-13, "df=1 matches the Cauchy CDF (worst %.2g)", worst);
}

/* df = 2 has F(x) = 1/2 + x / (2 sqrt(2 + x^2)); its lower tail,
 * 1 / (s (s + |x|)) with s = sqrt(2 + x^2), has no cancellation. */
static void test_df2(void) {
    double worst = 0.0;
    for (double x = 1e-3; x < 1e7; x *= 1.3) {
        double s = sqrt(2.0 + x * x);
        worst = fmax(worst, rel_err(student_t_cdf(-x, 2.0), 1.0 / (s * (s + x))));
        worst = fmax(worst, fabs(student_t_cdf(x, 2.0) - (0.5 + x / (2.0 * s))));
    }
    tap_check(worst < 1e-13, "df=2 matches its closed form (worst %.2g)", worst);
}

/* F_df(x) = Phi(x) - phi(x) (x^3 + x) / (4 df) + O(1/df^2): checking the
 * first-order term too probes the large-df code well below 1/df. */
static void test_normal_limit(void) {
    const double dfs[] = {1e3, 1e4, 1e6, 1e8};
    for (int i = 0; i < 4; i++) {
        double df = dfs[i], worst0 = 0.0, worst1 = 0.0;
        for (double x = -8.0; x <= 8.0; x += 0.125) {
            double f = student_t_cdf(x, df), phi = exp(-0.5 * x * x) / sqrt(2.0 * PI);
            worst0 = fmax(worst0, fabs(f - normal_cdf(x)));
            worst1 = fmax(worst1, fabs(f - normal_cdf(x) + phi * (x * x * x + x) / (4.0 * df)));
        }
        tap_check(worst0 < 0.2 / df, "df=%g: |F - Phi| %.2g < 0.2/df", df, worst0);
        tap_check(worst1 < 1.0 / (df * df) + 2e-15, "df=%g: second-order residual %.2g", df,
                  worst1);
    }
    tap_check(fabs(student_t_cdf(1.5, INFINITY) - normal_cdf(1.5)) < 1e-16, "df=inf is the normal");
}

static void test_symmetry(void) {
    const double dfs[] = {0.3, 1.0, 2.0001, 3.7, 17.0, 499.0, 501.0, 1e4, 1e6};
    double worst = 0.0;
    for (int i = 0; i < 9; i++) {
        for (double x = 1e-4; x < 1e3; x *= 1.5)
            worst = fmax(worst, fabs(student_t_cdf(-x, dfs[i]) + student_t_cdf(x, dfs[i]) - 1.0));
    }
    tap_check(worst < 1e-15, "F(-x) + F(x) = 1 (worst %.2g)", worst);
    tap_check(student_t_cdf(0.0, 3.0) == 0.5, "F(0) = 1/2");
    tap_check(student_t_cdf(-INFINITY, 3.0) == 0.0 && student_t_cdf(INFINITY, 3.0) == 1.0,
              "F(-inf) = 0, F(inf) = 1");
    tap_check(isnan(student_t_cdf(NAN, 3.0)) && isnan(student_t_cdf(1.0, 0.0)) &&
                  isnan(student_t_cdf(1.0, -1.0)),
              "NaN for NaN x or df <= 0");
}

/* Upper tails P(T > x) computed with mpmath (80 digits) via the incomplete beta. */
static void test_reference_values(void) {
    static const double ref[][3] = {
        {1.5, 4.5, 0.10010954282807676},   {4.0, 7.25, 0.0024149315402901691},
        {0.7, 2.5, 0.27170247159477404},   {12.0, 3.0, 0.00062250790039466837},
        {3.0, 1e3, 0.0013833545221190962}, {5.0, 1e4, 2.9151633068313236e-7},
        {2.0, 1e5, 0.022751481728753232},  {5.0, 1e6, 2.8669989354453708e-7},
        {1.2, 1e6, 0.11506981236586228},   {6.0, 1e7, 9.8662136668389176e-10},
        {0.25, 1e8, 0.40129367457384807},
    };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        double x = ref[i][0], df = ref[i][1], tail = ref[i][2];
        double e = rel_err(student_t_cdf(-x, df), tail);
        double e_up = fabs(student_t_cdf(x, df) - (1.0 - tail));
        tap_check(e < 1e-13 && e_up < 1e-15, "df=%g x=%g: tail rel err %.2g, upper abs err %.2g",
                  df, x, e, e_up);
    }
    /* Textbook t-table values (16 digits, so about 1e-13 in the CDF). */
    tap_check(fabs(student_t_cdf(2.228138851986274, 10.0) - 0.975) < 1e-13, "t_0.975(10)");
    tap_check(fabs(student_t_cdf(3.182446305284263, 3.0) - 0.975) < 1e-12, "t_0.975(3)");
}

static void test_cdf_monotone(void) {
    const double dfs[] = {2.0001, 5.0, 300.0, 700.0, 1e5};
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        double prev = 0.0;
        for (double x = -50.0; x <= 50.0; x += 1.0 / 64.0) {
            double f = student_t_cdf(x, dfs[i]);
            ok &= f >= prev;
            prev = f;
        }
    }
    tap_check(ok, "F is nondecreasing on a fine grid");
}

/* A random mixture with softmax weights (some nearly 0), df in (2, 50) and
 * scales spread over [10^lo_scale, 10^hi_scale]. */
typedef struct rand_mix_t {
    double w[24], df[24], loc[24], scale[24];
    mixture_t m;
} rand_mix_t;

static void make_mixture(rand_mix_t *r, int k, double lo_scale, double hi_scale, rng_t *g) {
    double logits[24], mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < k; i++) {
        logits[i] = rng_range(g, -30.0, 3.0); /* e^-33: weights down to ~1e-14 */
        mx = fmax(mx, logits[i]);
    }
    for (int i = 0; i < k; i++)
        sum += r->w[i] = exp(logits[i] - mx);
    for (int i = 0; i < k; i++) {
        r->w[i] /= sum;
        r->df[i] = 2.0 + exp(rng_range(g, log(1e-3), log(48.0)));
        r->scale[i] = pow(10.0, rng_range(g, lo_scale, hi_scale));
        r->loc[i] = rng_range(g, -2.0, 2.0) * pow(10.0, rng_range(g, lo_scale, hi_scale));
    }
    r->m = (mixture_t){k, r->w, r->df, r->loc, r->scale};
}

static double max_scale(const mixture_t *m) {
    double s = 0.0;
    for (int i = 0; i < m->k; i++)
        s = fmax(s, m->scale[i]);
    return s;
}

/* cdf(quantile(q)) = q to 1e-12, and quantile(q) is the root to 1e-12
 * relative: F moves across q within +-delta of it (up to F's rounding).
 * Where F is so steep (scale 1e-7 far from 0) that one ulp of x moves F by
 * more than 1e-12, the residual is instead judged at x's neighbours: the
 * result must be the crossing to within one representable step. */
static int check_inverse(const mixture_t *m, double q, double *worst, int *coarse) {
    double x = mixture_quantile(m, q);
    double resid = fabs(mixture_cdf(m, x) - q);
    double delta = 1e-12 * fabs(x) + 1e-13 * max_scale(m);
    int root = mixture_cdf(m, x - delta) <= q + 1e-15 && mixture_cdf(m, x + delta) >= q - 1e-15;
    int fine = resid < 1e-12;
    if (!fine) {
        fine = mixture_cdf(m, nextafter(x, -INFINITY)) <= q + 1e-12 &&
               mixture_cdf(m, nextafter(x, INFINITY)) >= q - 1e-12;
        *coarse += fine;
        if (!fine)
            tap_diag("q=%.17g x=%.17g resid %.3g", q, x, resid);
    } else {
        *worst = fmax(*worst, resid);
    }
    return isfinite(x) && fine && root;
}

static const double test_qs[] = {1e-6, 1e-5, 1e-3, 0.01, 0.05, 0.1,  0.2,   0.3,      0.4,     0.5,
                                 0.6,  0.7,  0.8,  0.9,  0.95, 0.99, 0.999, 1 - 1e-5, 1 - 1e-6};
#define N_TEST_QS ((int)(sizeof test_qs / sizeof test_qs[0]))

static void test_quantile_inverts(void) {
    const int ks[] = {1, 4, 24};
    const double scale_ranges[][2] = {{-1.0, 1.0}, {-7.0, 3.0}, {-6.0, -6.0}};
    rng_t g = {42};
    for (int ik = 0; ik < 3; ik++) {
        for (int is = 0; is < 3; is++) {
            int ok = 1, n = 0, coarse = 0;
            double worst = 0.0;
            for (int trial = 0; trial < 40; trial++) {
                rand_mix_t r;
                make_mixture(&r, ks[ik], scale_ranges[is][0], scale_ranges[is][1], &g);
                for (int i = 0; i < N_TEST_QS; i++, n++)
                    ok &= check_inverse(&r.m, test_qs[i], &worst, &coarse);
                for (int i = 0; i < 10; i++, n++)
                    ok &= check_inverse(&r.m, rng_unif(&g), &worst, &coarse);
            }
            tap_check(
                ok,
                "K=%d scales 1e%g..1e%g: %d quantiles invert the CDF (worst %.2g, %d ulp-limited)",
                ks[ik], scale_ranges[is][0], scale_ranges[is][1], n, worst, coarse);
        }
    }
}

static void check_special(const char *name, const mixture_t *m) {
    int ok = 1, coarse = 0;
    double worst = 0.0;
    for (int i = 0; i < N_TEST_QS; i++)
        ok &= check_inverse(m, test_qs[i], &worst, &coarse);
    tap_check(ok, "%s: quantiles invert the CDF (worst %.2g, %d ulp-limited)", name, worst, coarse);
}

static void test_quantile_special(void) {
    double w1[] = {1.0}, df1[] = {2.0001}, loc1[] = {3.0}, sc1[] = {1e-7};
    check_special("k=1, df 2.0001, scale 1e-7", &(mixture_t){1, w1, df1, loc1, sc1});

    double w2[] = {0.5, 0.5}, df2[] = {3.0, 2.5}, loc2[] = {5.0, 0.0}, sc2[] = {1e-6, 1e3};
    check_special("scales 1e-6 and 1e3", &(mixture_t){2, w2, df2, loc2, sc2});

    double w3[] = {1e-300, 1.0 - 1e-15, 1e-15}, df3[] = {2.001, 30.0, 4.0};
    double loc3[] = {1e6, -1.0, 1e9}, sc3[] = {1e3, 0.01, 1e-7};
    check_special("nearly-zero weights", &(mixture_t){3, w3, df3, loc3, sc3});

    double w4[] = {0.25, 0.25, 0.25, 0.25}, df4[] = {2.0001, 2.0001, 1e4, 1e6};
    double loc4[] = {-1e3, 1e3, 0.0, 1e-3}, sc4[] = {1e-3, 1e-3, 1.0, 1e-7};
    check_special("separated heavy and large-df components", &(mixture_t){4, w4, df4, loc4, sc4});

    /* k = 1 is the scaled t quantile: t_0.975(10) = 2.228138851986274. */
    double w5[] = {1.0}, df5[] = {10.0}, loc5[] = {1.0}, sc5[] = {2.0};
    mixture_t m5 = {1, w5, df5, loc5, sc5};
    double x = mixture_quantile(&m5, 0.975);
    tap_check(rel_err(x, 1.0 + 2.0 * 2.228138851986274) < 1e-13, "k=1 t_0.975(10) quantile %.17g",
              x);
    tap_check(isnan(mixture_quantile(&m5, 0.0)) && isnan(mixture_quantile(&m5, 1.0)) &&
                  isnan(mixture_quantile(&m5, -0.5)) && isnan(mixture_quantile(&m5, 2.0)) &&
                  isnan(mixture_quantile(&m5, NAN)),
              "q outside (0,1) gives NaN");
}

static void test_quantile_monotone(void) {
    rng_t g = {7};
    int ok = 1;
    for (int trial = 0; trial < 6; trial++) {
        rand_mix_t r;
        make_mixture(&r, trial < 3 ? 4 : 24, -6.0, 3.0, &g);
        double prev = -INFINITY;
        for (int i = 1; i < 2000; i++) {
            double x = mixture_quantile(&r.m, i / 2000.0);
            ok &= x >= prev;
            prev = x;
        }
        prev = -INFINITY; /* a fine grid around the median */
        for (int i = -50; i <= 50; i++) {
            double x = mixture_quantile(&r.m, 0.5 + i * 1e-9);
            ok &= x >= prev;
            prev = x;
        }
    }
    tap_check(ok, "quantiles are nondecreasing in q");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sample the mixture (component by weight, then loc + scale Z / sqrt(chi2/df))
 * and compare empirical quantiles: with 200000 draws their sampling error is
 * about 1e-3 of the central 90% range, well inside the 1e-2 tolerance. */
static void test_monte_carlo(void) {
    enum { N = 200000 };
    double w[] = {0.2, 0.3, 0.4, 0.1}, df[] = {2.5, 4.0, 12.0, 40.0};
    double loc[] = {-1.0, 0.5, 2.0, 0.0}, sc[] = {0.5, 1.0, 0.8, 3.0};
    mixture_t m = {4, w, df, loc, sc};
    double *xs = malloc(N * sizeof *xs);
    rng_t g = {2024};
    for (int i = 0; i < N; i++) {
        double u = rng_unif(&g), acc = 0.0;
        int k = 0;
        while (k < m.k - 1 && u > (acc += w[k]))
            k++;
        double chi2 = 2.0 * rng_gamma(&g, 0.5 * df[k]);
        xs[i] = loc[k] + sc[k] * rng_normal(&g) / sqrt(chi2 / df[k]);
    }
    qsort(xs, N, sizeof *xs, cmp_double);
    double range = mixture_quantile(&m, 0.95) - mixture_quantile(&m, 0.05), worst = 0.0;
    for (int j = 1; j <= 19; j++) {
        double q = 0.05 * j;
        worst = fmax(worst, fabs(xs[(int)(q * N)] - mixture_quantile(&m, q)) / range);
    }
    free(xs);
    tap_check(worst < 0.01, "Monte Carlo quantiles 0.05..0.95 agree (worst %.2g of range)", worst);
}

static void test_mean(void) {
    double w[] = {0.25, 0.75}, df[] = {3.0, 5.0}, loc[] = {-2.0, 4.0}, sc[] = {1.0, 2.0};
    mixture_t m = {2, w, df, loc, sc};
    tap_check(fabs(mixture_mean(&m) - 2.5) < 1e-15, "mean is sum w*loc");
}

int main(void) {
    test_cauchy();
    test_df2();
    test_normal_limit();
    test_symmetry();
    test_reference_values();
    test_cdf_monotone();
    test_quantile_inverts();
    test_quantile_special();
    test_quantile_monotone();
    test_monte_carlo();
    test_mean();
    return tap_done();
}
