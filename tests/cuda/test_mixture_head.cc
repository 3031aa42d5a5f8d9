// test_mixture_head.cc - the mixture head's nonlinearities in one kernel
// (toto_k_mixture_head) against a float64 replay of kernels.h's formulas:
// both input dtypes, K below, at and above a warp, logits far apart (the
// softmax's max shift), softplus on both sides of its threshold; outputs
// poisoned first so that a missed element shows. Without a CUDA device it
// prints a TAP skip and passes.
#include <cmath>
#include <vector>

#include "cuda_test.h"

namespace {

using ct::DevBuf;

struct HeadRef {
    std::vector<double> df, loc, scale, probs;
};

double softplus(double x) {
    return x > 20.0 ? x : std::log1p(std::exp(x));
}

// z [M, 4, P, K] as stored -> the four [M, P, K] outputs in float64.
HeadRef replay_head(const std::vector<double> &z, int64_t M, int64_t P, int64_t K, double eps) {
    HeadRef r;
    const size_t n = size_t(M * P * K);
    r.df.resize(n);
    r.loc.resize(n);
    r.scale.resize(n);
    r.probs.resize(n);
    for (int64_t m = 0; m < M; m++)
        for (int64_t p = 0; p < P; p++) {
            auto at = [&](int which, int64_t k) {
                return z[size_t(((m * 4 + which) * P + p) * K + k)];
            };
            const size_t o = size_t((m * P + p) * K);
            double mx = -INFINITY, sum = 0;
            for (int64_t k = 0; k < K; k++)
                mx = std::fmax(mx, at(3, k));
            for (int64_t k = 0; k < K; k++)
                sum += std::exp(at(3, k) - mx);
            for (int64_t k = 0; k < K; k++) {
                r.df[o + size_t(k)] = 2.0 + std::fmax(softplus(at(0, k)), eps);
                r.loc[o + size_t(k)] = at(1, k);
                r.scale[o + size_t(k)] = std::fmax(softplus(at(2, k)), eps);
                r.probs[o + size_t(k)] = std::exp(at(3, k) - mx) / sum;
            }
        }
    return r;
}

void check_head(toto_k_dtype dt, int64_t M, int64_t P, int64_t K, double spread) {
    auto rng = ct::fresh_rng();
    const double eps = 1.0 / 128; // bfloat16's, as Network::head uses on a bfloat16 network
    const size_t n = size_t(M * P * K);
    ct::Typed z =
        ct::make_typed(dt, 4 * n, rng, std::uniform_real_distribution<double>(-spread, spread));
    DevBuf d_z, out[4];
    bool ok = d_z.upload(z.raw);
    for (DevBuf &o : out)
        ok = ok && o.alloc(n * sizeof(float)) && o.poison();
    if (!ok || !ct::ok_launch(toto_k_mixture_head(
                                  static_cast<float *>(out[0].p), static_cast<float *>(out[1].p),
                                  static_cast<float *>(out[2].p), static_cast<float *>(out[3].p),
                                  d_z.p, dt, M, P, K, float(eps), nullptr),
                              "toto_k_mixture_head"))
        return;
    HeadRef want = replay_head(z.exact, M, P, K, eps);
    const std::vector<double> *ref[4] = {&want.df, &want.loc, &want.scale, &want.probs};
    double worst = 0, worst_sum = 0;
    size_t nans = 0;
    for (int i = 0; i < 4; i++) {
        std::vector<unsigned char> raw;
        if (!out[i].download(raw))
            return;
        std::vector<double> got = ct::to_doubles(TOTO_K_F32, raw);
        nans += ct::count_nan(got);
        worst = std::fmax(worst, ct::rel_err(got, *ref[i]));
        if (i == 3)
            for (int64_t c = 0; c < M * P; c++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += got[size_t(c * K + k)];
                worst_sum = std::fmax(worst_sum, std::fabs(s - 1.0));
            }
    }
    tap_check(nans == 0 && worst < 1e-6 && worst_sum < 1e-5,
              "mixture_head %s: M %lld, P %lld, K %lld, logits within +-%.0f: rel err %.2e (tol "
              "1e-6), weights sum to 1 within %.1e, %zu unwritten",
              ct::dtype_name(dt), (long long)M, (long long)P, (long long)K, spread, worst,
              worst_sum, nans);
}

void check_refusals() {
    float f[4];
    const bool k0 = toto_k_mixture_head(f, f, f, f, f, TOTO_K_F32, 1, 1, 0, 0.0f, nullptr) ==
                    int(cudaErrorInvalidValue);
    const bool f64 = toto_k_mixture_head(f, f, f, f, f, TOTO_K_F64, 1, 1, 1, 0.0f, nullptr) ==
                     int(cudaErrorInvalidValue);
    const bool null_out = toto_k_mixture_head(nullptr, f, f, f, f, TOTO_K_F32, 1, 1, 1, 0.0f,
                                              nullptr) == int(cudaErrorInvalidValue);
    const bool none = toto_k_mixture_head(nullptr, nullptr, nullptr, nullptr, nullptr, TOTO_K_F32,
                                          0, 1, 1, 0.0f, nullptr) == 0;
    tap_check(k0 && f64 && null_out && none,
              "mixture_head: K 0, float64 input and NULL outputs refused; M 0 does nothing");
}

} // namespace

int main() {
    if (ct::skip_without_device())
        return 0;
    for (toto_k_dtype dt : {TOTO_K_BF16, TOTO_K_F32}) {
        check_head(dt, 256, 64, 24, 4); // a decoding step of long's 256 paths
        check_head(dt, 3, 7, 1, 4);     // one component
        check_head(dt, 5, 3, 33, 30);   // a warp and one more; softplus past 20
        check_head(dt, 2, 2, 100, 60);  // several passes; logits far apart
    }
    check_refusals();
    return tap_done();
}
