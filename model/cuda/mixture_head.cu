// mixture_head.cu - the mixture head's nonlinearities (Network::head after
// the folded head's one product) in one kernel: softplus for the degrees of
// freedom and the scales, the softmax of the mixture weights, all written as
// float32. libtorch took eleven launches for this on a bfloat16 network
// (three ops per parameter and four conversions), in every decoding step.
//
// One warp per (row, patch step): its lanes hold the K components (K <= 32
// in one pass; larger K in several), the softmax's max and sum are warp
// reductions.
#include <algorithm>
#include <cfloat>

#include "common.cuh"

namespace toto_cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxBlocks = 1 << 20;
constexpr unsigned kFullMask = 0xffffffffu;

// libtorch's softplus with beta 1 and threshold 20.
__device__ __forceinline__ float softplus(float x) {
    return x > 20.0f ? x : log1pf(expf(x));
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o /= 2)
        v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
    return v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o /= 2)
        v += __shfl_xor_sync(kFullMask, v, o);
    return v;
}

// z [M, 4, P, K]: the four parameters' pre-activations of row m, step p at
// z + ((m * 4 + which) * P + p) * K.
template <typename T>
__global__ void mixture_head_kernel(float *__restrict__ df, float *__restrict__ loc,
                                    float *__restrict__ scale, float *__restrict__ probs,
                                    const T *__restrict__ z, int64_t M, int64_t P, int K,
                                    float eps) {
    const int lane = threadIdx.x % 32;
    const int64_t cells = M * P;
    for (int64_t c = (blockIdx.x * int64_t(kWarps)) + threadIdx.x / 32; c < cells;
         c += int64_t(gridDim.x) * kWarps) {
        const int64_t m = c / P, p = c % P;
        const T *zr = z + (m * 4 * P + p) * K; // parameter `which` at + which * P * K
        const int64_t PK = P * K;
        float *dfr = df + c * K, *locr = loc + c * K, *scr = scale + c * K, *pr = probs + c * K;
        float mx = -FLT_MAX;
        for (int k = lane; k < K; k += 32) {
            dfr[k] = 2.0f + fmaxf(softplus(to_f32(zr[k])), eps);
            locr[k] = to_f32(zr[PK + k]);
            scr[k] = fmaxf(softplus(to_f32(zr[2 * PK + k])), eps);
            mx = fmaxf(mx, to_f32(zr[3 * PK + k]));
        }
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int k = lane; k < K; k += 32)
            sum += expf(to_f32(zr[3 * PK + k]) - mx);
        sum = warp_sum(sum);
        for (int k = lane; k < K; k += 32)
            pr[k] = expf(to_f32(zr[3 * PK + k]) - mx) / sum;
    }
}

} // namespace
} // namespace toto_cuda

using namespace toto_cuda;

extern "C" int toto_k_mixture_head(float *df, float *loc, float *scale, float *probs, const void *z,
                                   toto_k_dtype z_dtype, int64_t M, int64_t P, int64_t K, float eps,
                                   void *stream) {
    if (!is_float_dtype(z_dtype) || M < 0 || P < 1 || K < 1 || K > 4096)
        return int(cudaErrorInvalidValue);
    if (M == 0)
        return 0;
    if (!df || !loc || !scale || !probs || !z)
        return int(cudaErrorInvalidValue);
    const int64_t blocks = std::min<int64_t>((M * P + kWarps - 1) / kWarps, kMaxBlocks);
    if (z_dtype == TOTO_K_BF16)
        mixture_head_kernel<<<unsigned(blocks), kThreads, 0, as_stream(stream)>>>(
            df, loc, scale, probs, static_cast<const __nv_bfloat16 *>(z), M, P, int(K), eps);
    else
        mixture_head_kernel<<<unsigned(blocks), kThreads, 0, as_stream(stream)>>>(
            df, loc, scale, probs, static_cast<const float *>(z), M, P, int(K), eps);
    return launch_status();
}
