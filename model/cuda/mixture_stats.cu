// mixture_stats.cu - the exact mean and quantiles of the head's Student-t
// mixture per (row, step), as model/result_stats.cc computes them on the
// host: the same code (model/mixture_impl.h), one warp per (cell, level),
// the sums over components split over the warp's lanes.
#include <algorithm>

#include "../mixture_impl.h"
#include "common.cuh"

namespace toto_cuda {
namespace {

constexpr int kMaxWarpsPerBlock = 4;
constexpr int64_t kMaxBlocks = INT32_MAX; // a grid's x dimension
// Each warp holds its cell's K components in shared memory, in float64:
// w, df, loc, scale and the lgamma ratio of df (5 arrays). Up to 48 KB per
// block needs no opt-in: at one warp per block K may reach 1228.
constexpr int kArrays = 5;
constexpr int kSharedBytes = 48 * 1024;
constexpr int64_t kMaxK = 1024;

int warps_per_block(int64_t K) {
    return int(std::clamp<int64_t>(kSharedBytes / (kArrays * 8 * K), 1, kMaxWarpsPerBlock));
}

// value = shift + sd * z, rounded twice as the host does (no fused
// multiply-add), so the only difference from the host is z's.
__device__ __forceinline__ double unscale(double shift, double sd, double z) {
    return __dadd_rn(shift, __dmul_rn(sd, z));
}

// The cell's components, converted to float64, into the warp's shared
// arrays, with each one's lgamma ratio: the CDF reads them at every step of
// the search.
template <typename T>
__device__ void stage_cell(mix_t *m, double *smem, const T *__restrict__ probs,
                           const T *__restrict__ df, const T *__restrict__ loc,
                           const T *__restrict__ scale, int64_t cell, int K, int lane) {
    double *w = smem, *nu = smem + K, *mu = smem + 2 * K, *sigma = smem + 3 * K,
           *lgh = smem + 4 * K;
    for (int k = lane; k < K; k += 32) {
        const int64_t at = cell * K + k;
        w[k] = double(__ldg(probs + at));
        nu[k] = double(__ldg(df + at));
        mu[k] = double(__ldg(loc + at));
        sigma[k] = double(__ldg(scale + at));
        lgh[k] = mix_lgh_of(nu[k]);
    }
    __syncwarp(); // lanes read other lanes' components (scale[0])
    *m = mix_t{K, w, nu, mu, sigma, lgh};
}

// Warp i of n_warps: level l = i / QP, cell i % QP. Level 0 also writes the
// mean; with no levels, warps are one per cell for the mean alone.
// The minimum of one block per SM matters: with the thread count alone,
// ptxas (CUDA 13) caps this kernel at 64 registers and spills.
template <typename T>
__global__ void __launch_bounds__(kMaxWarpsPerBlock * 32, 1)
    mixture_stats_kernel(double *__restrict__ mean_out, double *__restrict__ q_out,
                         const T *__restrict__ probs, const T *__restrict__ df,
                         const T *__restrict__ loc, const T *__restrict__ scale,
                         const double *__restrict__ shift, const double *__restrict__ sd,
                         const double *__restrict__ levels, int64_t QP, int P, int K,
                         int64_t n_levels, int64_t n_warps) {
    extern __shared__ double smem[];
    const int lane = int(threadIdx.x & 31u), warp = int(threadIdx.x >> 5);
    const int warps = int(blockDim.x >> 5);
    const int64_t i = int64_t(blockIdx.x) * warps + warp;
    if (i >= n_warps) // warp-uniform: whole warps leave
        return;
    const int64_t l = i / QP, cell = i - l * QP, q = cell / P;
    mix_t m;
    stage_cell(&m, smem + size_t(warp) * kArrays * size_t(K), probs, df, loc, scale, cell, K, lane);
    const double a = __ldg(shift + q), b = __ldg(sd + q);
    if (l == 0 && mean_out) {
        const double z = mix_mean(&m);
        if (lane == 0)
            mean_out[cell] = unscale(a, b, z);
    }
    if (l < n_levels) {
        const double z = mix_quantile(&m, __ldg(levels + l));
        if (lane == 0)
            q_out[l * QP + cell] = unscale(a, b, z);
    }
}

// Warps (one per cell and level, at least one per cell) and blocks of them.
struct Shape {
    int64_t QP, n_warps;
    int wpb;
    int64_t blocks;
};

bool make_shape(int64_t Q, int64_t P, int64_t K, int64_t n_levels, Shape *s) {
    if (Q < 0 || P < 0 || P > INT32_MAX || K < 1 || K > kMaxK || n_levels < 0)
        return false;
    if (P > 0 && Q > INT64_MAX / P / K)
        return false;
    s->QP = Q * P;
    const int64_t per_cell = std::max<int64_t>(n_levels, 1);
    if (s->QP > 0 && per_cell > INT64_MAX / s->QP)
        return false;
    s->n_warps = s->QP * per_cell;
    s->wpb = warps_per_block(K);
    s->blocks = (s->n_warps + s->wpb - 1) / s->wpb;
    return s->blocks <= kMaxBlocks;
}

template <typename T>
int launch(double *mean_out, double *q_out, const void *probs, const void *df, const void *loc,
           const void *scale, const double *shift, const double *sd, const double *levels,
           const Shape &s, int P, int K, int64_t n_levels, cudaStream_t stream) {
    const size_t shared = size_t(s.wpb) * kArrays * size_t(K) * sizeof(double);
    mixture_stats_kernel<T><<<unsigned(s.blocks), unsigned(s.wpb * 32), shared, stream>>>(
        mean_out, q_out, static_cast<const T *>(probs), static_cast<const T *>(df),
        static_cast<const T *>(loc), static_cast<const T *>(scale), shift, sd, levels, s.QP, P, K,
        n_levels, s.n_warps);
    return launch_status();
}

} // namespace
} // namespace toto_cuda

using namespace toto_cuda;

extern "C" int toto_k_mixture_stats(double *mean_out, double *q_out, const void *probs,
                                    const void *df, const void *loc, const void *scale,
                                    toto_k_dtype param_dtype, const double *shift, const double *sd,
                                    const double *levels, int64_t Q, int64_t P, int64_t K,
                                    int64_t n_levels, void *stream) {
    Shape s;
    if (!make_shape(Q, P, K, n_levels, &s) ||
        (param_dtype != TOTO_K_F32 && param_dtype != TOTO_K_F64))
        return int(cudaErrorInvalidValue);
    if (s.QP == 0 || (n_levels == 0 && !mean_out))
        return 0;
    if (!probs || !df || !loc || !scale || !shift || !sd || (n_levels > 0 && (!q_out || !levels)))
        return int(cudaErrorInvalidValue);
    auto *run = param_dtype == TOTO_K_F32 ? launch<float> : launch<double>;
    return run(mean_out, q_out, probs, df, loc, scale, shift, sd, levels, s, int(P), int(K),
               n_levels, as_stream(stream));
}
