// test_mixture_stats.cc - the exact mixture statistics on the GPU
// (toto_k_mixture_stats) against model/mixture.h on the host, on the same
// float64 parameters: random mixtures over df 2+1e-6..1e4, rows of
// magnitude 1e-6..1e6 (some with scales over 1e-4..1e4 of it), weights
// summing to 1 only up to float32 rounding; float32 and float64
// parameters; poisoned outputs, out-of-range levels, a CUDA graph replay
// and argument errors. Without a CUDA device it prints a TAP skip.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda_test.h"
#include "mixture.h"

namespace {

using ct::DevBuf;
using ct::Typed;

// The brief's bound on a quantile: relative 1e-10, or absolute 1e-12 of the
// row's sd (a quantile near 0).
constexpr double kRelTol = 1e-10, kAbsTol = 1e-12;
// The mean is a sum of K terms with cancellation, added in another order
// than on the host: each order is within K eps of the exact sum, relative
// to the sum of |terms| (|shift| + sd * sum |w loc|).
double mean_tolerance(int64_t K) {
    return 2.0 * double(K + 1) * DBL_EPSILON;
}

std::vector<double> standard_levels() {
    return {0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999};
}

// Q rows of P steps of K components, and the scaler's shift and sd per row.
struct Batch {
    int64_t Q, P, K;
    Typed w, df, loc, scale;
    std::vector<double> shift, sd;
};

double uniform(std::mt19937_64 &rng, double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng);
}

// df log-uniform on [2 + 1e-6, 1e4], the ends themselves now and then:
// both the continued fraction (df < 500) and the large-df series run.
double random_df(std::mt19937_64 &rng) {
    const double lo = 2.0 + 1e-6, hi = 1e4, u = uniform(rng, 0.0, 1.0);
    if (u < 0.03)
        return lo;
    if (u > 0.97)
        return hi;
    return std::exp(uniform(rng, std::log(lo), std::log(hi)));
}

// One cell: weights normalized in float64 then rounded to float32 (so they
// sum to 1 only up to that rounding; one in eight cells of K > 1 has a zero
// weight),
// locations and scales around the row's magnitude f; a wide row spreads
// its component scales over 1e-4..1e4 of f (spikes on a broad base).
void random_cell(std::mt19937_64 &rng, int64_t K, double f, bool wide, double *w, double *df,
                 double *loc, double *scale) {
    double sum = 0;
    for (int64_t k = 0; k < K; k++) {
        w[k] = uniform(rng, 0.02, 1.0);
        sum += w[k];
    }
    const bool zero = K > 1 && uniform(rng, 0.0, 1.0) < 0.125;
    for (int64_t k = 0; k < K; k++) {
        w[k] = zero && k == K / 2 ? 0.0 : double(float(w[k] / sum));
        df[k] = random_df(rng);
        loc[k] = f * std::normal_distribution<double>(0.0, 1.0)(rng);
        scale[k] = f * std::exp(uniform(rng, wide ? -9.2 : -1.5, wide ? 9.2 : 1.5));
    }
}

Typed to_typed(toto_k_dtype t, const std::vector<double> &v, std::mt19937_64 &rng) {
    size_t i = 0;
    return ct::make_typed(t, v.size(), rng, [&v, &i](std::mt19937_64 &) { return v[i++]; });
}

// Row magnitudes log-uniform over 1e-6..1e6; every fourth row wide.
Batch random_batch(toto_k_dtype t, int64_t Q, int64_t P, int64_t K, std::mt19937_64 &rng) {
    const size_t n = size_t(Q * P * K);
    std::vector<double> w(n), df(n), loc(n), scale(n);
    Batch b{
        Q, P, K, {}, {}, {}, {}, std::vector<double>(size_t(Q)), std::vector<double>(size_t(Q))};
    for (int64_t q = 0; q < Q; q++) {
        const double f = std::pow(10.0, uniform(rng, -6.0, 6.0));
        for (int64_t p = 0; p < P; p++) {
            const size_t at = size_t((q * P + p) * K);
            random_cell(rng, K, f, q % 4 == 3, &w[at], &df[at], &loc[at], &scale[at]);
        }
        b.sd[size_t(q)] = std::pow(10.0, uniform(rng, -3.0, 3.0));
        b.shift[size_t(q)] = b.sd[size_t(q)] * f * uniform(rng, -2.0, 2.0);
    }
    b.w = to_typed(t, w, rng);
    b.df = to_typed(t, df, rng);
    b.loc = to_typed(t, loc, rng);
    b.scale = to_typed(t, scale, rng);
    return b;
}

mixture_t cell_mixture(const Batch &b, int64_t cell) {
    const size_t at = size_t(cell * b.K);
    return {int(b.K), &b.w.exact[at], &b.df.exact[at], &b.loc.exact[at], &b.scale.exact[at]};
}

// The batch's parameters, shift, sd and levels on the device.
struct DevBatch {
    DevBuf w, df, loc, scale, shift, sd, levels;
    bool upload(const Batch &b, const std::vector<double> &lv) {
        return w.upload(b.w.raw) && df.upload(b.df.raw) && loc.upload(b.loc.raw) &&
               scale.upload(b.scale.raw) && shift.upload(b.shift) && sd.upload(b.sd) &&
               levels.upload(lv);
    }
    int run(const Batch &b, double *mean, double *q, int64_t n_levels, void *stream) const {
        return toto_k_mixture_stats(
            mean, q, w.p, df.p, loc.p, scale.p, b.w.dtype, static_cast<const double *>(shift.p),
            static_cast<const double *>(sd.p), static_cast<const double *>(levels.p), b.Q, b.P, b.K,
            n_levels, stream);
    }
};

// Outputs with kPad poisoned elements past the end, which must stay NaN.
constexpr size_t kPad = 8;

bool alloc_poisoned(DevBuf &d, size_t n) {
    return d.alloc((n + kPad) * sizeof(double)) && d.poison();
}

bool pad_untouched(const std::vector<double> &v, size_t n) {
    for (size_t i = n; i < v.size(); i++)
        if (!std::isnan(v[i]))
            return false;
    return true;
}

// Worst differences against the host, and how many entries broke the bound.
struct Tally {
    double max_rel = 0, max_abs_sd = 0;
    size_t wrong = 0, by_abs = 0, nan = 0;
};

void compare_quantile(Tally &t, double got, double want, double sd, int64_t cell, double level) {
    const double d = std::fabs(got - want);
    if (std::isnan(got) || std::isnan(want)) {
        if (t.nan++ < 3)
            tap_diag("cell %lld level %g: got %.17g want %.17g", (long long)cell, level, got, want);
        return;
    }
    const double rel = d / std::fabs(want);
    t.max_abs_sd = std::max(t.max_abs_sd, d / sd);
    if (rel <= kRelTol) {
        t.max_rel = std::max(t.max_rel, rel);
    } else if (d <= kAbsTol * sd) {
        t.by_abs++;
    } else if (t.wrong++ < 3) {
        tap_diag("cell %lld level %g: got %.17g want %.17g (rel %.2e)", (long long)cell, level, got,
                 want, rel);
    }
}

// Quantiles and means of a random batch against the host's.
void check_batch(toto_k_dtype t, int64_t Q, int64_t P, int64_t K) {
    auto rng = ct::fresh_rng();
    std::vector<double> lv = standard_levels();
    for (int i = 0; i < 3; i++)
        lv.push_back(uniform(rng, 0.0, 1.0));
    const int64_t L = int64_t(lv.size()), QP = Q * P;
    Batch b = random_batch(t, Q, P, K, rng);
    DevBatch d;
    DevBuf dm, dq;
    if (!d.upload(b, lv) || !alloc_poisoned(dm, size_t(QP)) || !alloc_poisoned(dq, size_t(L * QP)))
        return;
    if (!ct::ok_launch(
            d.run(b, static_cast<double *>(dm.p), static_cast<double *>(dq.p), L, nullptr),
            "toto_k_mixture_stats"))
        return;
    std::vector<double> mean, q;
    if (!dm.download(mean) || !dq.download(q))
        return;
    Tally tq;
    size_t mean_wrong = 0;
    double mean_err = 0;
    for (int64_t cell = 0; cell < QP; cell++) {
        const mixture_t m = cell_mixture(b, cell);
        const double shift = b.shift[size_t(cell / P)], sd = b.sd[size_t(cell / P)];
        for (int64_t l = 0; l < L; l++) {
            const double want = shift + sd * mixture_quantile(&m, lv[size_t(l)]);
            compare_quantile(tq, q[size_t(l * QP + cell)], want, sd, cell, lv[size_t(l)]);
        }
        double mag = 0;
        for (int k = 0; k < m.k; k++)
            mag += std::fabs(m.w[k] * m.loc[k]);
        const double want = shift + sd * mixture_mean(&m);
        const double e = std::fabs(mean[size_t(cell)] - want) / (std::fabs(shift) + sd * mag);
        mean_err = std::max(mean_err, e);
        mean_wrong += e <= mean_tolerance(K) ? 0 : 1;
    }
    tap_check(tq.wrong == 0 && tq.nan == 0 && mean_wrong == 0 && pad_untouched(mean, size_t(QP)) &&
                  pad_untouched(q, size_t(L * QP)),
              "mixture_stats %s Q %lld P %lld K %lld, %lld levels: quantiles max rel diff %.2e "
              "(%zu within 1e-12 sd only; max |diff| %.2e sd), mean %.2e of sum |terms|; all "
              "written, nothing past the end",
              ct::dtype_name(t), (long long)Q, (long long)P, (long long)K, (long long)L, tq.max_rel,
              tq.by_abs, tq.max_abs_sd, mean_err);
}

// The first n entries of a and b have the same bits, and what follows in
// both (the padding) is still poisoned.
bool same_bits(const std::vector<double> &a, const std::vector<double> &b, size_t n) {
    return a.size() == n + kPad && b.size() == n + kPad &&
           memcmp(a.data(), b.data(), n * sizeof(double)) == 0 && pad_untouched(a, n) &&
           pad_untouched(b, n);
}

// The same values as F32 and as F64 parameters give the same bits, and the
// mean alone (no levels, q_out NULL) and the quantiles alone (mean_out NULL)
// give the bits of the call that does both.
void check_dtypes_and_parts() {
    auto rng = ct::fresh_rng();
    const int64_t Q = 3, P = 16, K = 24, QP = Q * P;
    const std::vector<double> lv = {0.5, 0.05, 0.95};
    const int64_t L = int64_t(lv.size());
    Batch b32 = random_batch(TOTO_K_F32, Q, P, K, rng);
    Batch b64 = b32;
    b64.w = to_typed(TOTO_K_F64, b32.w.exact, rng);
    b64.df = to_typed(TOTO_K_F64, b32.df.exact, rng);
    b64.loc = to_typed(TOTO_K_F64, b32.loc.exact, rng);
    b64.scale = to_typed(TOTO_K_F64, b32.scale.exact, rng);
    DevBatch d32, d64;
    DevBuf m1, q1, m2, q2;
    if (!d32.upload(b32, lv) || !d64.upload(b64, lv) || !alloc_poisoned(m1, size_t(QP)) ||
        !alloc_poisoned(q1, size_t(L * QP)) || !alloc_poisoned(m2, size_t(QP)) ||
        !alloc_poisoned(q2, size_t(L * QP)))
        return;
    auto *pm1 = static_cast<double *>(m1.p), *pq1 = static_cast<double *>(q1.p);
    if (!ct::ok_launch(d32.run(b32, pm1, pq1, L, nullptr), "f32 mean and quantiles") ||
        !ct::ok_launch(d64.run(b64, nullptr, static_cast<double *>(q2.p), L, nullptr),
                       "f64 quantiles alone") ||
        !ct::ok_launch(d64.run(b64, static_cast<double *>(m2.p), nullptr, 0, nullptr),
                       "f64 mean alone"))
        return;
    std::vector<double> mean1, q_1, mean2, q_2;
    if (!m1.download(mean1) || !q1.download(q_1) || !m2.download(mean2) || !q2.download(q_2))
        return;
    tap_check(same_bits(mean1, mean2, size_t(QP)) && same_bits(q_1, q_2, size_t(L * QP)),
              "f64 parameters give the f32 call's bits, for the mean alone (n_levels 0, q_out "
              "NULL) and the quantiles alone (mean_out NULL) too");
}

// Levels 0, 1, outside [0, 1] and NaN write NaN (over a finite sentinel);
// 0.5 in the same call is still the host's.
void check_bad_levels() {
    auto rng = ct::fresh_rng();
    const std::vector<double> lv = {0.0, 1.0, -0.25, 1.5, NAN, 0.5};
    const int64_t L = int64_t(lv.size()), Q = 2, P = 5, K = 7, QP = Q * P;
    Batch b = random_batch(TOTO_K_F64, Q, P, K, rng);
    DevBatch d;
    DevBuf dq;
    const std::vector<double> sentinel(size_t(L * QP), 7.0);
    if (!d.upload(b, lv) || !dq.upload(sentinel))
        return;
    if (!ct::ok_launch(d.run(b, nullptr, static_cast<double *>(dq.p), L, nullptr),
                       "toto_k_mixture_stats"))
        return;
    std::vector<double> q;
    if (!dq.download(q))
        return;
    Tally t;
    size_t not_nan = 0;
    for (int64_t cell = 0; cell < QP; cell++) {
        for (int64_t l = 0; l + 1 < L; l++)
            not_nan += std::isnan(q[size_t(l * QP + cell)]) ? 0 : 1;
        const mixture_t m = cell_mixture(b, cell);
        const double sd = b.sd[size_t(cell / P)];
        compare_quantile(t, q[size_t((L - 1) * QP + cell)],
                         b.shift[size_t(cell / P)] + sd * mixture_quantile(&m, 0.5), sd, cell, 0.5);
    }
    tap_check(not_nan == 0 && t.wrong == 0 && t.nan == 0,
              "levels 0, 1, -0.25, 1.5 and NaN give NaN (%zu not), 0.5 beside them the host's",
              not_nan);
}

// Captured into a CUDA graph on a stream, replayed: the direct call's bits.
void check_graph() {
    auto rng = ct::fresh_rng();
    const std::vector<double> lv = {0.1, 0.5, 0.9};
    const int64_t L = 3, Q = 2, P = 8, K = 24, QP = Q * P;
    Batch b = random_batch(TOTO_K_F32, Q, P, K, rng);
    DevBatch d;
    DevBuf m1, q1, m2, q2;
    if (!d.upload(b, lv) || !alloc_poisoned(m1, size_t(QP)) ||
        !alloc_poisoned(q1, size_t(L * QP)) || !alloc_poisoned(m2, size_t(QP)) ||
        !alloc_poisoned(q2, size_t(L * QP)))
        return;
    if (!ct::ok_launch(
            d.run(b, static_cast<double *>(m1.p), static_cast<double *>(q1.p), L, nullptr),
            "direct call"))
        return;
    cudaStream_t s;
    if (!CT_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)))
        return;
    cudaGraph_t g = nullptr;
    cudaGraphExec_t ge = nullptr;
    bool ok = CT_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    if (ok) {
        const int rc = d.run(b, static_cast<double *>(m2.p), static_cast<double *>(q2.p), L,
                             static_cast<void *>(s));
        ok = CT_OK(cudaStreamEndCapture(s, &g)) && ct::ok_call(rc, "captured call");
    }
    ok = ok && CT_OK(cudaGraphInstantiate(&ge, g, 0)) && CT_OK(cudaGraphLaunch(ge, s)) &&
         CT_OK(cudaStreamSynchronize(s));
    std::vector<double> a, c, e, f;
    ok = ok && m1.download(a) && q1.download(c) && m2.download(e) && q2.download(f);
    if (ge)
        cudaGraphExecDestroy(ge);
    if (g)
        cudaGraphDestroy(g);
    cudaStreamDestroy(s);
    if (ok)
        tap_check(same_bits(a, e, size_t(QP)) && same_bits(c, f, size_t(L * QP)),
                  "captured into a CUDA graph and replayed on a stream: the direct call's bits");
}

void check_arguments() {
    DevBuf a, s;
    if (!a.alloc(1 << 16) || !s.alloc(1 << 12))
        return;
    const int bad = int(cudaErrorInvalidValue);
    auto *o = static_cast<double *>(a.p);
    auto *v = static_cast<const double *>(s.p);
    const void *p = a.p;
    struct Case {
        const char *what;
        int rc;
    } cases[] = {
        {"K 0", toto_k_mixture_stats(o, o, p, p, p, p, TOTO_K_F32, v, v, v, 2, 2, 0, 1, nullptr)},
        {"K 1025",
         toto_k_mixture_stats(o, o, p, p, p, p, TOTO_K_F32, v, v, v, 1, 1, 1025, 1, nullptr)},
        {"Q -1", toto_k_mixture_stats(o, o, p, p, p, p, TOTO_K_F32, v, v, v, -1, 2, 4, 1, nullptr)},
        {"n_levels -1",
         toto_k_mixture_stats(o, o, p, p, p, p, TOTO_K_F32, v, v, v, 2, 2, 4, -1, nullptr)},
        {"bf16", toto_k_mixture_stats(o, o, p, p, p, p, TOTO_K_BF16, v, v, v, 2, 2, 4, 1, nullptr)},
        {"levels NULL",
         toto_k_mixture_stats(o, o, p, p, p, p, TOTO_K_F64, v, v, nullptr, 2, 2, 4, 1, nullptr)},
        {"q_out NULL with levels",
         toto_k_mixture_stats(o, nullptr, p, p, p, p, TOTO_K_F64, v, v, v, 2, 2, 4, 1, nullptr)},
        {"probs NULL",
         toto_k_mixture_stats(o, o, nullptr, p, p, p, TOTO_K_F32, v, v, v, 2, 2, 4, 1, nullptr)},
        {"sd NULL",
         toto_k_mixture_stats(o, o, p, p, p, p, TOTO_K_F32, v, nullptr, v, 2, 2, 4, 0, nullptr)},
        {"Q * P * K overflows", toto_k_mixture_stats(o, o, p, p, p, p, TOTO_K_F32, v, v, v,
                                                     int64_t(1) << 40, 1 << 20, 1024, 1, nullptr)},
    };
    int wrong = 0;
    for (const Case &c : cases)
        if (c.rc != bad) {
            tap_diag("%s: returned %d", c.what, c.rc);
            wrong++;
        }
    tap_check(wrong == 0 && cudaGetLastError() == cudaSuccess,
              "%zu bad calls return cudaErrorInvalidValue and launch nothing",
              sizeof cases / sizeof cases[0]);
    tap_check(
        toto_k_mixture_stats(o, o, p, p, p, p, TOTO_K_F32, v, v, v, 0, 4, 4, 1, nullptr) == 0 &&
            toto_k_mixture_stats(o, o, p, p, p, p, TOTO_K_F32, v, v, v, 4, 0, 4, 1, nullptr) == 0 &&
            toto_k_mixture_stats(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, TOTO_K_F32,
                                 nullptr, nullptr, nullptr, 4, 4, 4, 0, nullptr) == 0 &&
            cudaDeviceSynchronize() == cudaSuccess,
        "empty shapes, and nothing asked (no levels, mean_out NULL), return 0");
}

} // namespace

int main() {
    if (ct::skip_without_device())
        return 0;
    for (toto_k_dtype t : {TOTO_K_F32, TOTO_K_F64}) {
        check_batch(t, 8, 64, 24); // the head's K
        check_batch(t, 4, 32, 5);
        check_batch(t, 4, 32, 33); // lanes with two components
        check_batch(t, 2, 7, 1);
        check_batch(t, 1, 3, 100);
        check_batch(t, 1, 2, 1024); // the largest K: one warp per block
    }
    check_dtypes_and_parts();
    check_bad_levels();
    check_graph();
    check_arguments();
    return tap_done();
}
