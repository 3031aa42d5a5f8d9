// test_kernels.cc - RMSNorm (alone and fused with the residual add), SwiGLU
// and sampled quantiles on the GPU against float64 references on the CPU.
// Without a CUDA device it prints a TAP skip and passes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda_test.h"

namespace {

using ct::DevBuf;
using ct::Typed;

const toto_k_dtype kFloatTypes[] = {TOTO_K_F32, TOTO_K_BF16};

double tolerance(std::initializer_list<toto_k_dtype> types) {
    for (toto_k_dtype t : types)
        if (t == TOTO_K_BF16)
            return 1e-2;
    return 1e-5;
}

auto normal_values(double sd) {
    return [sd](std::mt19937_64 &rng) { return std::normal_distribution<double>(0.0, sd)(rng); };
}

// --- RMSNorm -----------------------------------------------------------------

// y = x / sqrt(mean(x^2) + 1e-8) * scale, per row, in float64.
std::vector<double> rmsnorm_ref(const std::vector<double> &x, const std::vector<double> &scale,
                                int64_t rows, int64_t dim) {
    std::vector<double> y(x.size());
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t i = 0; i < dim; i++)
            ss += x[r * dim + i] * x[r * dim + i];
        const double inv = 1.0 / std::sqrt(ss / double(dim) + 1e-8);
        for (int64_t i = 0; i < dim; i++)
            y[r * dim + i] = x[r * dim + i] * inv * scale[i];
    }
    return y;
}

void check_rmsnorm(int64_t rows, int64_t dim, toto_k_dtype xt, toto_k_dtype yt, toto_k_dtype st) {
    auto rng = ct::fresh_rng();
    // Rows of different magnitudes, so the norm matters.
    Typed x = ct::make_typed(xt, size_t(rows * dim), rng, normal_values(3.0));
    Typed s = ct::make_typed(st, size_t(dim), rng, [](std::mt19937_64 &g) {
        return std::uniform_real_distribution<double>(0.5, 1.5)(g);
    });
    DevBuf dx, dy, ds;
    if (!dx.upload(x.raw) || !ds.upload(s.raw) ||
        !dy.alloc(size_t(rows * dim) * ct::dtype_size(yt)) || !dy.poison())
        return;
    if (!ct::ok_launch(toto_k_rmsnorm(dy.p, yt, dx.p, xt, ds.p, st, rows, dim, nullptr),
                       "toto_k_rmsnorm"))
        return;
    std::vector<unsigned char> raw;
    if (!dy.download(raw))
        return;
    std::vector<double> y = ct::to_doubles(yt, raw);
    const double err = ct::rel_err(y, rmsnorm_ref(x.exact, s.exact, rows, dim));
    const double tol = tolerance({xt, yt, st});
    tap_check(ct::count_nan(y) == 0 && err < tol,
              "rmsnorm rows %lld dim %lld x %s y %s scale %s: rel err %.2e < %.0e, all written",
              (long long)rows, (long long)dim, ct::dtype_name(xt), ct::dtype_name(yt),
              ct::dtype_name(st), err, tol);
}

// x += delta; y = rmsnorm(x): x against x + delta, y against the float64
// norm of x + delta, and y bit-identical to toto_k_rmsnorm of the stored x.
void check_add_rmsnorm(int64_t rows, int64_t dim, toto_k_dtype xt, toto_k_dtype dt,
                       toto_k_dtype yt) {
    auto rng = ct::fresh_rng();
    const toto_k_dtype st = xt;
    Typed x = ct::make_typed(xt, size_t(rows * dim), rng, normal_values(2.0));
    Typed d = ct::make_typed(dt, size_t(rows * dim), rng, normal_values(0.5));
    Typed s = ct::make_typed(st, size_t(dim), rng, [](std::mt19937_64 &g) {
        return std::uniform_real_distribution<double>(0.5, 1.5)(g);
    });
    const size_t ybytes = size_t(rows * dim) * ct::dtype_size(yt);
    DevBuf dx, dd, ds, dy, dy2;
    if (!dx.upload(x.raw) || !dd.upload(d.raw) || !ds.upload(s.raw) || !dy.alloc(ybytes) ||
        !dy.poison() || !dy2.alloc(ybytes) || !dy2.poison())
        return;
    if (!ct::ok_launch(
            toto_k_add_rmsnorm(dx.p, xt, dd.p, dt, dy.p, yt, ds.p, st, rows, dim, nullptr),
            "toto_k_add_rmsnorm"))
        return;
    if (!ct::ok_launch(toto_k_rmsnorm(dy2.p, yt, dx.p, xt, ds.p, st, rows, dim, nullptr),
                       "toto_k_rmsnorm"))
        return;
    std::vector<unsigned char> xraw, yraw, y2raw;
    if (!dx.download(xraw) || !dy.download(yraw) || !dy2.download(y2raw))
        return;
    std::vector<double> sum(x.exact.size());
    for (size_t i = 0; i < sum.size(); i++)
        sum[i] = x.exact[i] + d.exact[i];
    std::vector<double> xo = ct::to_doubles(xt, xraw), y = ct::to_doubles(yt, yraw);
    const double ex = ct::rel_err(xo, sum);
    const double ey = ct::rel_err(y, rmsnorm_ref(sum, s.exact, rows, dim));
    const double tol = tolerance({xt, dt, yt});
    tap_check(ct::count_nan(y) == 0 && ct::count_nan(xo) == 0 && ex < tol && ey < tol &&
                  yraw == y2raw,
              "add_rmsnorm rows %lld dim %lld x %s delta %s y %s: x rel err %.2e, y %.2e < %.0e, "
              "same bits as add then rmsnorm",
              (long long)rows, (long long)dim, ct::dtype_name(xt), ct::dtype_name(dt),
              ct::dtype_name(yt), ex, ey, tol);
}

// --- SwiGLU ------------------------------------------------------------------

// offset: elements by which both u and out start past an aligned address
// (a misaligned start takes the scalar path).
void check_swiglu(int64_t rows, int64_t hidden, toto_k_dtype ut, toto_k_dtype ot, int offset) {
    auto rng = ct::fresh_rng();
    const size_t nu = size_t(rows * 2 * hidden), no = size_t(rows * hidden);
    Typed u = ct::make_typed(ut, nu + size_t(offset), rng, normal_values(2.5));
    DevBuf du, dout;
    const size_t osz = ct::dtype_size(ot);
    if (!du.upload(u.raw) || !dout.alloc((no + size_t(offset)) * osz) || !dout.poison())
        return;
    auto *ubase = static_cast<unsigned char *>(du.p) + size_t(offset) * ct::dtype_size(ut);
    auto *obase = static_cast<unsigned char *>(dout.p) + size_t(offset) * osz;
    if (!ct::ok_launch(toto_k_swiglu(obase, ot, ubase, ut, rows, hidden, nullptr), "toto_k_swiglu"))
        return;
    std::vector<unsigned char> raw;
    if (!dout.download(raw))
        return;
    std::vector<double> all = ct::to_doubles(ot, raw);
    std::vector<double> out(all.begin() + offset, all.end()), ref(no);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < hidden; c++) {
            const double g = u.exact[size_t(offset + r * 2 * hidden + c)];
            const double v = u.exact[size_t(offset + r * 2 * hidden + hidden + c)];
            ref[size_t(r * hidden + c)] = g / (1.0 + std::exp(-g)) * v;
        }
    // The elements before the output start must stay poisoned.
    bool untouched = true;
    for (int i = 0; i < offset; i++)
        untouched = untouched && std::isnan(all[size_t(i)]);
    const double err = ct::rel_err(out, ref);
    const double tol = tolerance({ut, ot});
    tap_check(ct::count_nan(out) == 0 && untouched && err < tol,
              "swiglu rows %lld hidden %lld u %s out %s offset %d: rel err %.2e < %.0e, all "
              "written, nothing outside",
              (long long)rows, (long long)hidden, ct::dtype_name(ut), ct::dtype_name(ot), offset,
              err, tol);
}

// --- quantiles -----------------------------------------------------------------

// model/result_stats.cc's sorted_quantile, verbatim.
double sorted_quantile(const double *sorted, size_t n, double q) {
    double pos = q * double(n - 1);
    size_t lo = size_t(std::floor(pos));
    size_t hi = std::min(lo + 1, n - 1);
    return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

// samples [n, m] with row stride ld. ties: values rounded to a grid, so that
// columns hold repeated values.
void check_quantiles(int64_t n, int64_t m, int64_t ld, toto_k_dtype t, bool ties) {
    auto rng = ct::fresh_rng();
    std::vector<double> levels = {0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0};
    for (int i = 0; i < 9; i++) // 20 levels: two rounds of the selection path
        levels.push_back(std::uniform_real_distribution<double>(0.0, 1.0)(rng));
    const int64_t L = int64_t(levels.size());
    Typed x = ct::make_typed(t, size_t(n * ld), rng, [ties](std::mt19937_64 &g) {
        // Never zero (no sign-of-zero ties): a shifted, wide distribution.
        double v = std::normal_distribution<double>(0.0, 40.0)(g);
        if (ties)
            v = std::round(v / 8.0) * 8.0;
        return std::fabs(v) < 0.5 ? std::copysign(0.5 + std::fabs(v), v) : v;
    });
    DevBuf dx, dl, dq, dm;
    const size_t sz = ct::dtype_size(t);
    if (!dx.upload(x.raw) || !dl.upload(levels) || !dq.alloc(size_t(L * m) * sz) || !dq.poison() ||
        !dm.alloc(size_t(m) * sz) || !dm.poison())
        return;
    if (!ct::ok_launch(toto_k_quantiles(dq.p, dm.p, dx.p, t, n, m, ld, dl.p, L, nullptr),
                       "toto_k_quantiles"))
        return;
    std::vector<unsigned char> qraw, mraw;
    if (!dq.download(qraw) || !dm.download(mraw))
        return;
    std::vector<double> q = ct::to_doubles(t, qraw), mean = ct::to_doubles(t, mraw);
    // The CPU's way: sort a copy of each column, interpolate in float64, then
    // round to the samples' dtype; the mean summed in order.
    size_t q_wrong = 0, mean_wrong = 0;
    double mean_err = 0;
    std::vector<double> col(static_cast<size_t>(n));
    for (int64_t c = 0; c < m; c++) {
        double sum = 0;
        for (int64_t i = 0; i < n; i++) {
            col[size_t(i)] = x.exact[size_t(i * ld + c)];
            sum += col[size_t(i)];
        }
        std::sort(col.begin(), col.end());
        for (int64_t l = 0; l < L; l++) {
            double want = sorted_quantile(col.data(), size_t(n), levels[size_t(l)]);
            if (t == TOTO_K_F32)
                want = double(float(want));
            const double got = q[size_t(l * m + c)];
            if (!(got == want)) {
                if (q_wrong++ < 3)
                    tap_diag("column %lld level %g: got %.17g want %.17g", (long long)c,
                             levels[size_t(l)], got, want);
            }
        }
        double abs_mean = 0;
        for (double v : col)
            abs_mean += std::fabs(v) / double(n);
        // Relative to the mean magnitude: a mean near 0 is all cancellation.
        // float64 sums in another order: to rounding; float32: rounded once.
        const double want = sum / double(n), got = mean[size_t(c)];
        const double e = std::fabs(got - want) / abs_mean;
        mean_err = std::max(mean_err, e);
        const double tol = t == TOTO_K_F64 ? 1e-14 : 1.2e-7;
        mean_wrong += (e <= tol) ? 0 : 1;
    }
    tap_check(q_wrong == 0 && mean_wrong == 0,
              "quantiles n %lld m %lld ld %lld %s%s: %lld levels equal the CPU's exactly "
              "(%zu differ), mean within %.1e of mean |x|",
              (long long)n, (long long)m, (long long)ld, ct::dtype_name(t),
              ties ? " with ties" : "", (long long)L, q_wrong, mean_err);
}

// --- arguments ------------------------------------------------------------------

void check_arguments() {
    DevBuf a, b, s;
    if (!a.alloc(1 << 16) || !b.alloc(1 << 16) || !s.alloc(1 << 14))
        return;
    const int bad = int(cudaErrorInvalidValue);
    auto *a1 = static_cast<char *>(a.p) + 4;
    struct Case {
        const char *what;
        int rc;
    } cases[] = {
        {"rmsnorm dim 12 (not a multiple of 8)",
         toto_k_rmsnorm(b.p, TOTO_K_F32, a.p, TOTO_K_F32, s.p, TOTO_K_F32, 4, 12, nullptr)},
        {"rmsnorm dim 4104 (over 4096)",
         toto_k_rmsnorm(b.p, TOTO_K_F32, a.p, TOTO_K_F32, s.p, TOTO_K_F32, 1, 4104, nullptr)},
        {"rmsnorm misaligned x",
         toto_k_rmsnorm(b.p, TOTO_K_F32, a1, TOTO_K_F32, s.p, TOTO_K_F32, 4, 16, nullptr)},
        {"rmsnorm f64",
         toto_k_rmsnorm(b.p, TOTO_K_F64, a.p, TOTO_K_F32, s.p, TOTO_K_F32, 4, 16, nullptr)},
        {"rmsnorm NULL x",
         toto_k_rmsnorm(b.p, TOTO_K_F32, nullptr, TOTO_K_F32, s.p, TOTO_K_F32, 4, 16, nullptr)},
        {"add_rmsnorm y == x", toto_k_add_rmsnorm(a.p, TOTO_K_F32, b.p, TOTO_K_F32, a.p, TOTO_K_F32,
                                                  s.p, TOTO_K_F32, 4, 16, nullptr)},
        {"swiglu hidden 0", toto_k_swiglu(b.p, TOTO_K_F32, a.p, TOTO_K_F32, 4, 0, nullptr)},
        {"swiglu negative rows", toto_k_swiglu(b.p, TOTO_K_F32, a.p, TOTO_K_F32, -1, 8, nullptr)},
        {"mixture_sample K 0",
         toto_k_mixture_sample(b.p, a.p, a.p, a.p, a.p, s.p, s.p, 4, 4, 0, nullptr)},
        {"quantiles n 0",
         toto_k_quantiles(b.p, nullptr, a.p, TOTO_K_F64, 0, 4, 4, s.p, 1, nullptr)},
        {"quantiles ld < m",
         toto_k_quantiles(b.p, nullptr, a.p, TOTO_K_F64, 4, 8, 4, s.p, 1, nullptr)},
        {"quantiles bf16",
         toto_k_quantiles(b.p, nullptr, a.p, TOTO_K_BF16, 4, 4, 4, s.p, 1, nullptr)},
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
    const char *msg = toto_cuda_error_string(bad);
    tap_check(msg && strlen(msg) > 0 && strcmp(toto_cuda_error_string(0), msg) != 0,
              "toto_cuda_error_string(%d) = \"%s\"", bad, msg ? msg : "(null)");
    tap_check(toto_k_rmsnorm(b.p, TOTO_K_F32, a.p, TOTO_K_F32, s.p, TOTO_K_F32, 0, 16, nullptr) ==
                      0 &&
                  toto_k_swiglu(b.p, TOTO_K_F32, a.p, TOTO_K_F32, 0, 8, nullptr) == 0 &&
                  toto_k_quantiles(b.p, nullptr, a.p, TOTO_K_F64, 4, 0, 0, s.p, 1, nullptr) == 0,
              "empty shapes return 0");
}

} // namespace

int main() {
    if (ct::skip_without_device())
        return 0;

    for (int64_t dim : {768, 8, 1000, 4096})
        for (toto_k_dtype xt : kFloatTypes)
            for (toto_k_dtype yt : kFloatTypes)
                for (toto_k_dtype st : kFloatTypes)
                    check_rmsnorm(dim == 768 ? 1027 : 37, dim, xt, yt, st);
    check_rmsnorm(1, 768, TOTO_K_F32, TOTO_K_F32, TOTO_K_F32);
    for (toto_k_dtype xt : kFloatTypes)
        for (toto_k_dtype dt : kFloatTypes)
            for (toto_k_dtype yt : kFloatTypes)
                check_add_rmsnorm(513, 768, xt, dt, yt);
    check_add_rmsnorm(7, 4096, TOTO_K_F32, TOTO_K_BF16, TOTO_K_BF16);

    for (toto_k_dtype ut : kFloatTypes)
        for (toto_k_dtype ot : kFloatTypes) {
            check_swiglu(257, 3072, ut, ot, 0);
            check_swiglu(33, 13, ut, ot, 0);
            check_swiglu(9, 3072, ut, ot, 1);
        }
    check_swiglu(70000, 8, TOTO_K_BF16, TOTO_K_BF16, 0); // rows past one grid row block

    for (toto_k_dtype t : {TOTO_K_F64, TOTO_K_F32}) {
        for (int64_t n : {1, 2, 3, 100, 1024, 1025, 8192})
            check_quantiles(n, 37, 40, t, false);
        check_quantiles(8192, 5, 5, t, true);
        check_quantiles(257, 3, 3, t, true);
        // Many columns (more blocks than a wave), with and without ties.
        check_quantiles(100, 2001, 2003, t, false);
        check_quantiles(512, 3000, 3001, t, false);
        check_quantiles(1000, 4100, 4100, t, true);
        check_quantiles(1, 3000, 3000, t, false);
    }
    // Beyond shared memory (n2 * key size > 227 KB on an H100): radix selection.
    check_quantiles(20000, 6, 7, TOTO_K_F32, false); // shared memory over 48 KB
    check_quantiles(20000, 6, 7, TOTO_K_F64, false);
    check_quantiles(20000, 3, 3, TOTO_K_F64, true);
    check_quantiles(70000, 4, 4, TOTO_K_F32, false);
    check_quantiles(70000, 2, 2, TOTO_K_F32, true);

    check_arguments();
    return tap_done();
}
