// mixture_sample.cu - one Student-t mixture draw per (row, step), with
// Philox4x32-10 so that a draw depends only on its key, counter and step.
// The scheme (which Philox word feeds what) is documented in kernels.h and
// replayed on the CPU by tests/cuda/test_sampler.cc: change both together.
#include <algorithm>
#include <cfloat>

#include "common.cuh"
#include "philox.h"

namespace toto_cuda {
namespace {

constexpr int kThreads = 128;
constexpr int64_t kMaxBlocks = 1 << 20;
constexpr int kGammaBlocks = 4; // Philox blocks 1..4: two Marsaglia-Tsang attempts each

// N(0, 1) from two words by Box-Muller: r * cos and r * sin of one angle.
__device__ __forceinline__ void box_muller(uint32_t w_radius, uint32_t w_angle, float *c,
                                           float *s) {
    const float r = sqrtf(-2.0f * logf(uniform_oc(w_radius)));
    float sn, cs;
    sincospif(2.0f * uniform_co(w_angle), &sn, &cs);
    *c = r * cs;
    *s = r * sn;
}

// Marsaglia-Tsang acceptance of the proposal x for Gamma(d + 1/3, 1), with
// c = 1 / sqrt(9 d); on acceptance *g = d * v.
__device__ __forceinline__ bool mt_accept(float x, uint32_t w_u, float d, float c, float *g,
                                          float *last) {
    const float t = 1.0f + c * x;
    const float v = t * t * t;
    *last = d * fmaxf(v, FLT_MIN);
    if (t <= 0.0f)
        return false;
    const float u = uniform_oc(w_u);
    const float x2 = x * x;
    if (u < 1.0f - 0.0331f * x2 * x2 || logf(u) < 0.5f * x2 + d * (1.0f - v + logf(v))) {
        *g = d * v;
        return true;
    }
    return false;
}

// Gamma(alpha, 1) from Philox blocks 1..4 of the draw, and the boost uniform
// word of block 0 when alpha < 1.
__device__ float gamma_draw(float alpha, uint64_t key, uint64_t counter, uint32_t p,
                            uint32_t w_boost) {
    const bool boost = alpha < 1.0f;
    const float a = boost ? alpha + 1.0f : alpha;
    const float d = a - 1.0f / 3.0f;
    const float c = 1.0f / sqrtf(9.0f * d);
    float g = 0.0f, last = 0.0f;
    bool done = false;
    for (uint32_t j = 1; j <= kGammaBlocks && !done; j++) {
        const Philox4 b = philox_block(key, counter, p, j);
        float x0, x1;
        box_muller(b.v[0], b.v[1], &x0, &x1);
        done = mt_accept(x0, b.v[2], d, c, &g, &last) || mt_accept(x1, b.v[3], d, c, &g, &last);
    }
    if (!done)
        g = last;
    if (boost)
        g *= powf(uniform_oc(w_boost), 1.0f / alpha);
    return g;
}

// The component: the first k whose running weight sum exceeds u * total;
// if rounding leaves none, the last one with positive weight; -1 if none
// has (the draw is then NaN). VEC4: 16-byte loads (K % 4 == 0, aligned).
template <bool VEC4> __device__ int pick_component(const float *__restrict__ w, int K, float u) {
    float total = 0.0f;
    if (VEC4) {
        for (int k = 0; k < K; k += 4) {
            const float4 q = __ldg(reinterpret_cast<const float4 *>(w + k));
            total = (((total + q.x) + q.y) + q.z) + q.w;
        }
    } else {
        for (int k = 0; k < K; k++)
            total += __ldg(w + k);
    }
    const float target = u * total;
    float cum = 0.0f;
    int last = -1;
    for (int k = 0; k < K; k++) {
        const float wk = __ldg(w + k);
        cum += wk;
        if (wk > 0.0f) {
            last = k;
            if (target < cum)
                return k;
        }
    }
    return last;
}

// Draw i = (row q, step p) of the mixture; NaN when no component has weight.
template <bool VEC4>
__device__ __forceinline__ float
draw_one(int64_t i, int64_t q, uint32_t p, const float *__restrict__ probs,
         const float *__restrict__ df, const float *__restrict__ loc,
         const float *__restrict__ scale, uint64_t key, uint64_t counter, int K) {
    const Philox4 b0 = philox_block(key, counter, p, 0);
    const int k = pick_component<VEC4>(probs + i * K, K, uniform_co(b0.v[0]));
    if (k < 0)
        return __int_as_float(0x7fc00000); // NaN
    const int64_t at = i * K + k;
    const float nu = __ldg(df + at), mu = __ldg(loc + at), sigma = __ldg(scale + at);
    float z, unused;
    box_muller(b0.v[1], b0.v[2], &z, &unused);
    const float alpha = 0.5f * nu;
    const float g = gamma_draw(alpha, key, counter, p, b0.v[3]);
    return mu + sigma * (z * rsqrtf(g / alpha));
}

template <bool VEC4>
__global__ void __launch_bounds__(kThreads)
    mixture_sample_kernel(float *__restrict__ draws, const float *__restrict__ probs,
                          const float *__restrict__ df, const float *__restrict__ loc,
                          const float *__restrict__ scale, const uint64_t *__restrict__ keys,
                          const uint64_t *__restrict__ counters, int64_t n, int P, int K) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t q = i / P;
        const uint32_t p = uint32_t(i - q * P);
        draws[i] =
            draw_one<VEC4>(i, q, p, probs, df, loc, scale, __ldg(keys + q), __ldg(counters + q), K);
    }
}

// The mixture's mean at one cell: float32 products summed in order of k
// (no fused multiply-add, as libtorch's (probs * loc).sum(-1) rounds them).
__device__ __forceinline__ float mixture_mean(const float *__restrict__ w,
                                              const float *__restrict__ mu, int K) {
    float s = 0.0f;
    for (int k = 0; k < K; k++)
        s = __fadd_rn(s, __fmul_rn(__ldg(w + k), __ldg(mu + k)));
    return s;
}

// The same draw (or the mean), then in original units into the paths (see
// kernels.h).
template <bool VEC4>
__global__ void __launch_bounds__(kThreads)
    mixture_sample_paths_kernel(double *__restrict__ paths, double *__restrict__ last,
                                const int64_t *__restrict__ step, const double *__restrict__ shift,
                                const double *__restrict__ sd, double half_max,
                                const float *__restrict__ probs, const float *__restrict__ df,
                                const float *__restrict__ loc, const float *__restrict__ scale,
                                const uint64_t *__restrict__ keys,
                                const uint64_t *__restrict__ rows, int64_t n, int P, int K,
                                int64_t T, const int64_t *__restrict__ mean_only) {
    const int64_t t = __ldg(step);
    const bool mean = mean_only && __ldg(mean_only) != 0;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t q = i / P;
        const uint32_t p = uint32_t(i - q * P);
        const uint64_t counter = __ldg(rows + q) + (uint64_t(t) << 32);
        const float d =
            mean ? mixture_mean(probs + i * K, loc + i * K, K)
                 : draw_one<VEC4>(i, q, p, probs, df, loc, scale, __ldg(keys + q), counter, K);
        // shift + sd * d rounded twice, as two separate libtorch operations would.
        double x = __dadd_rn(__ldg(shift + q), __dmul_rn(__ldg(sd + q), double(d)));
        if (!(fabs(x) < half_max)) // NaN, infinities and the extremes become 0
            x = 0.0;
        paths[(q * T + t) * P + p] = x;
        if (last)
            last[i] = x;
    }
}

} // namespace
} // namespace toto_cuda

using namespace toto_cuda;

extern "C" int toto_k_mixture_sample(void *draws, const void *probs, const void *df,
                                     const void *loc, const void *scale, const void *keys,
                                     const void *counters, int64_t Q, int64_t P, int64_t K,
                                     void *stream) {
    if (Q < 0 || P < 1 || P > INT32_MAX || K < 1 || K > INT32_MAX || Q > INT64_MAX / P / K)
        return int(cudaErrorInvalidValue);
    if (Q == 0)
        return 0;
    if (!draws || !probs || !df || !loc || !scale || !keys || !counters)
        return int(cudaErrorInvalidValue);
    const int64_t n = Q * P;
    const unsigned grid = unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
    const bool vec4 = K % 4 == 0 && aligned16(probs);
    auto *out = static_cast<float *>(draws);
    auto *w = static_cast<const float *>(probs);
    auto *nu = static_cast<const float *>(df);
    auto *mu = static_cast<const float *>(loc);
    auto *sigma = static_cast<const float *>(scale);
    auto *k = static_cast<const uint64_t *>(keys);
    auto *c = static_cast<const uint64_t *>(counters);
    if (vec4)
        mixture_sample_kernel<true><<<grid, kThreads, 0, as_stream(stream)>>>(
            out, w, nu, mu, sigma, k, c, n, int(P), int(K));
    else
        mixture_sample_kernel<false><<<grid, kThreads, 0, as_stream(stream)>>>(
            out, w, nu, mu, sigma, k, c, n, int(P), int(K));
    return launch_status();
}

extern "C" int toto_k_mixture_sample_paths(double *paths, double *last, const int64_t *step,
                                           int64_t T, const double *shift, const double *sd,
                                           double half_max, const void *probs, const void *df,
                                           const void *loc, const void *scale, const void *keys,
                                           const void *rows, int64_t Q, int64_t P, int64_t K,
                                           const int64_t *mean_only, void *stream) {
    if (Q < 0 || P < 1 || P > INT32_MAX || K < 1 || K > INT32_MAX || T < 1 ||
        Q > INT64_MAX / P / K || Q > INT64_MAX / P / T)
        return int(cudaErrorInvalidValue);
    if (Q == 0)
        return 0;
    if (!paths || !step || !shift || !sd || !probs || !df || !loc || !scale || !keys || !rows)
        return int(cudaErrorInvalidValue);
    const int64_t n = Q * P;
    const unsigned grid = unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
    const bool vec4 = K % 4 == 0 && aligned16(probs);
    auto *w = static_cast<const float *>(probs);
    auto *nu = static_cast<const float *>(df);
    auto *mu = static_cast<const float *>(loc);
    auto *sigma = static_cast<const float *>(scale);
    auto *k = static_cast<const uint64_t *>(keys);
    auto *r = static_cast<const uint64_t *>(rows);
    if (vec4)
        mixture_sample_paths_kernel<true><<<grid, kThreads, 0, as_stream(stream)>>>(
            paths, last, step, shift, sd, half_max, w, nu, mu, sigma, k, r, n, int(P), int(K), T,
            mean_only);
    else
        mixture_sample_paths_kernel<false><<<grid, kThreads, 0, as_stream(stream)>>>(
            paths, last, step, shift, sd, half_max, w, nu, mu, sigma, k, r, n, int(P), int(K), T,
            mean_only);
    return launch_status();
}
