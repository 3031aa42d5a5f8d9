// rmsnorm.cu - RMSNorm, alone or fused with the residual add before it.
//
// One block per row and one thread per 8 elements (dim / 8 threads, rounded
// up to a warp): each thread keeps its 8 values in registers between the
// sum of squares and the scaled store, so a row is read once and written once
// (the fused add also writes x back once).
#include "common.cuh"

namespace toto_cuda {
namespace {

constexpr int kMaxDim = 4096;
constexpr int kMaxThreads = kMaxDim / 8;

// Sum over the block; every thread gets the total.
__device__ float block_sum(float v) {
    __shared__ float partial[kMaxThreads / 32];
    __shared__ float total;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    if (lane == 0)
        partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? partial[lane] : 0.0f;
#pragma unroll
        for (int o = 8; o > 0; o >>= 1)
            v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0)
            total = v;
    }
    __syncthreads();
    return total;
}

// ADD: x += delta first (x rounded to its dtype and written back), then the
// norm of the rounded x. x and y may alias in the plain norm: each element
// is read and written by one thread, read first.
template <bool ADD, typename TX, typename TD, typename TY, typename TS>
__global__ void __launch_bounds__(kMaxThreads)
    rmsnorm_kernel(TX *x, const TD *__restrict__ delta, TY *y, const TS *__restrict__ scale,
                   int dim) {
    const int t = threadIdx.x;
    const bool active = t < dim / 8;
    const int64_t at = int64_t(blockIdx.x) * dim + 8 * t;
    float v[8];
    float ss = 0.0f;
    if (active) {
        if (ADD) {
            float d[8];
            load8_rw(x + at, v);
            load8(delta + at, d);
#pragma unroll
            for (int i = 0; i < 8; i++)
                v[i] = to_f32(from_f32<TX>(v[i] + d[i]));
            store8(x + at, v);
        } else {
            load8_rw(x + at, v);
        }
#pragma unroll
        for (int i = 0; i < 8; i++)
            ss += v[i] * v[i];
    }
    ss = block_sum(ss);
    const float inv = 1.0f / sqrtf(ss / float(dim) + 1e-8f);
    if (active) {
        float s[8];
        load8(scale + 8 * t, s);
#pragma unroll
        for (int i = 0; i < 8; i++)
            v[i] = v[i] * inv * s[i];
        store8(y + at, v);
    }
}

bool bad_args(const void *x, toto_k_dtype xt, const void *y, toto_k_dtype yt, const void *scale,
              toto_k_dtype st, int64_t rows, int64_t dim) {
    if (rows < 0 || rows > INT32_MAX || dim < 8 || dim > kMaxDim || dim % 8 != 0)
        return true;
    if (!is_float_dtype(xt) || !is_float_dtype(yt) || !is_float_dtype(st))
        return true;
    if (rows > 0 && (!x || !y || !scale))
        return true;
    return !aligned16(x) || !aligned16(y) || !aligned16(scale);
}

template <bool ADD>
int launch(void *x, toto_k_dtype xt, const void *delta, toto_k_dtype dt, void *y, toto_k_dtype yt,
           const void *scale, toto_k_dtype st, int64_t rows, int64_t dim, void *stream) {
    if (rows == 0)
        return 0;
    const int threads = int((dim / 8 + 31) / 32 * 32);
    auto go = [&](auto tx, auto td, auto ty, auto ts) {
        using TX = decltype(tx);
        using TD = decltype(td);
        using TY = decltype(ty);
        using TS = decltype(ts);
        rmsnorm_kernel<ADD><<<unsigned(rows), threads, 0, as_stream(stream)>>>(
            static_cast<TX *>(x), static_cast<const TD *>(delta), static_cast<TY *>(y),
            static_cast<const TS *>(scale), int(dim));
        return launch_status();
    };
    return with_float_type(xt, [&](auto tx) {
        auto rest = [&](auto td) {
            return with_float_type(yt, [&](auto ty) {
                return with_float_type(st, [&](auto ts) { return go(tx, td, ty, ts); });
            });
        };
        // Without the add, delta's type is unused: no instantiations for it.
        if constexpr (ADD)
            return with_float_type(dt, rest);
        else
            return rest(tx);
    });
}

} // namespace
} // namespace toto_cuda

using namespace toto_cuda;

extern "C" int toto_k_rmsnorm(void *y, toto_k_dtype y_dtype, const void *x, toto_k_dtype x_dtype,
                              const void *scale, toto_k_dtype scale_dtype, int64_t rows,
                              int64_t dim, void *stream) {
    if (bad_args(x, x_dtype, y, y_dtype, scale, scale_dtype, rows, dim))
        return int(cudaErrorInvalidValue);
    return launch<false>(const_cast<void *>(x), x_dtype, nullptr, x_dtype, y, y_dtype, scale,
                         scale_dtype, rows, dim, stream);
}

extern "C" int toto_k_add_rmsnorm(void *x, toto_k_dtype x_dtype, const void *delta,
                                  toto_k_dtype delta_dtype, void *y, toto_k_dtype y_dtype,
                                  const void *scale, toto_k_dtype scale_dtype, int64_t rows,
                                  int64_t dim, void *stream) {
    if (bad_args(x, x_dtype, y, y_dtype, scale, scale_dtype, rows, dim) ||
        !is_float_dtype(delta_dtype) || (rows > 0 && !delta) || !aligned16(delta) || x == y)
        return int(cudaErrorInvalidValue);
    return launch<true>(x, x_dtype, delta, delta_dtype, y, y_dtype, scale, scale_dtype, rows, dim,
                        stream);
}
