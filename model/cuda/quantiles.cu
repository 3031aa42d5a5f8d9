// quantiles.cu - quantiles and mean of each column of sampled paths, with
// the CPU's definition (model/result_stats.cc: linear interpolation between
// order statistics, as torch.quantile).
//
// Values sort as unsigned keys (sign-flipped bits: the integer order is the
// numeric order, NaN after +inf). A column that fits in shared memory is
// bitonic-sorted there by one block. A longer one is not sorted: one block
// finds just the order statistics it needs by radix selection, reading the
// column from global memory once per 8-bit digit for up to 32 ranks at once.
//
// Two variants measured slower on an H100 (docs/results/2026-11-27-kernels-
// h100.md): tiles of adjacent columns per block (whole sectors per row), and
// three bitonic stages per shared-memory pass with 8 keys per thread.
#include <algorithm>

#include "common.cuh"

namespace toto_cuda {
namespace {

constexpr int kSelectThreads = 256;
constexpr int kSelectRanks = 32; // order statistics per selection round
constexpr int kSelectLevels = kSelectRanks / 2;

template <typename T> struct KeyOf;
template <> struct KeyOf<float> { using type = uint32_t; };
template <> struct KeyOf<double> { using type = uint64_t; };

__device__ __forceinline__ uint32_t to_key(float v) {
    if (v != v)
        return 0xffc00000u; // every NaN as the canonical positive one
    const uint32_t b = __float_as_uint(v);
    return (b & 0x80000000u) ? ~b : b | 0x80000000u;
}
__device__ __forceinline__ uint64_t to_key(double v) {
    if (v != v)
        return 0xfff8000000000000ull;
    const uint64_t b = uint64_t(__double_as_longlong(v));
    return (b & 0x8000000000000000ull) ? ~b : b | 0x8000000000000000ull;
}
__device__ __forceinline__ double from_key(uint32_t k) {
    return double(__uint_as_float((k & 0x80000000u) ? k ^ 0x80000000u : ~k));
}
__device__ __forceinline__ double from_key(uint64_t k) {
    return __longlong_as_double(
        (long long)((k & 0x8000000000000000ull) ? k ^ 0x8000000000000000ull : ~k));
}

// Sum over the block (any size up to 1024); thread 0 gets the total.
__device__ double block_sum(double v) {
    __shared__ double partial[32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int warps = (blockDim.x + 31) / 32;
    __syncthreads(); // partial may still be read by an earlier call
    if (lane == 0)
        partial[warp] = v;
    __syncthreads();
    v = 0.0;
    if (warp == 0) {
        v = lane < warps ? partial[lane] : 0.0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            v += __shfl_xor_sync(0xffffffffu, v, o);
    }
    return v;
}

// The CPU's formula, step by step with round-to-nearest intrinsics so that
// the compiler cannot fuse a multiply-add: float64 inputs give its bits.
// at(i) returns order statistic i.
template <typename At> __device__ double interpolate(double level, int64_t n, At at) {
    level = fmin(fmax(level, 0.0), 1.0);
    const double pos = __dmul_rn(level, double(n - 1));
    const int64_t lo = int64_t(floor(pos));
    const int64_t hi = lo + 1 < n ? lo + 1 : n - 1;
    const double a = at(lo), b = at(hi);
    return __dadd_rn(a, __dmul_rn(__dsub_rn(pos, double(lo)), __dsub_rn(b, a)));
}

template <typename T> __device__ void write_mean(T *mean_out, int64_t col, double sum, int64_t n) {
    if (mean_out && threadIdx.x == 0)
        mean_out[col] = T(sum / double(n));
}

// One block per column: n values padded with the largest key to n2 (a power
// of two) in dynamic shared memory, bitonic sort, then the levels.
template <typename T>
__global__ void __launch_bounds__(1024)
    quantile_sort_kernel(T *__restrict__ q_out, T *__restrict__ mean_out,
                         const T *__restrict__ samples, int64_t n, int64_t m, int64_t ld,
                         const double *__restrict__ levels, int L, int n2) {
    using K = typename KeyOf<T>::type;
    extern __shared__ unsigned char smem_raw[];
    K *keys = reinterpret_cast<K *>(smem_raw);
    const int64_t col = blockIdx.x;
    double sum = 0.0;
    for (int i = threadIdx.x; i < n2; i += blockDim.x) {
        K key = ~K(0);
        if (i < n) {
            const T v = __ldg(samples + i * ld + col);
            sum += double(v);
            key = to_key(v);
        }
        keys[i] = key;
    }
    sum = block_sum(sum); // its barriers also publish keys
    write_mean(mean_out, col, sum, n);
    for (int k = 2; k <= n2; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = threadIdx.x; i < n2 / 2; i += blockDim.x) {
                const int lo = ((i & ~(j - 1)) << 1) | (i & (j - 1));
                const int hi = lo + j;
                const K a = keys[lo], b = keys[hi];
                if ((a > b) == ((lo & k) == 0)) {
                    keys[lo] = b;
                    keys[hi] = a;
                }
            }
            __syncthreads();
        }
    }
    for (int l = threadIdx.x; l < L; l += blockDim.x) {
        const double q = interpolate(levels[l], n, [&](int64_t i) { return from_key(keys[i]); });
        q_out[int64_t(l) * m + col] = T(q);
    }
}

// One block per column, for columns too long to sort in shared memory:
// for each round of up to 16 levels, the 32 order statistics they need
// (lo and hi of each), found digit by digit from the top: count the
// column's keys that match a rank's prefix so far into its 256-bin
// histogram, then follow the bin that holds the rank.
template <typename T>
__global__ void __launch_bounds__(kSelectThreads)
    quantile_select_kernel(T *__restrict__ q_out, T *__restrict__ mean_out,
                           const T *__restrict__ samples, int64_t n, int64_t m, int64_t ld,
                           const double *__restrict__ levels, int L) {
    using K = typename KeyOf<T>::type;
    constexpr int kDigits = int(sizeof(K));
    __shared__ unsigned hist[kSelectRanks][256];
    __shared__ K prefix[kSelectRanks];
    __shared__ int64_t rank_left[kSelectRanks];
    __shared__ int64_t rank_of[kSelectRanks];
    const int64_t col = blockIdx.x;
    const T *column = samples + col;

    double sum = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        sum += double(__ldg(column + i * ld));
    sum = block_sum(sum);
    write_mean(mean_out, col, sum, n);

    for (int l0 = 0; l0 < L; l0 += kSelectLevels) {
        const int levels_now = min(kSelectLevels, L - l0), R = 2 * levels_now;
        if (threadIdx.x < R) {
            // The same lo and hi as interpolate() computes.
            const int r = threadIdx.x;
            const double level = fmin(fmax(levels[l0 + r / 2], 0.0), 1.0);
            const int64_t lo = int64_t(floor(__dmul_rn(level, double(n - 1))));
            const int64_t rank = (r % 2 == 0) ? lo : (lo + 1 < n ? lo + 1 : n - 1);
            rank_of[r] = rank;
            rank_left[r] = rank;
            prefix[r] = 0;
        }
        K mask = 0;
        for (int digit = kDigits - 1; digit >= 0; digit--) {
            const int shift = 8 * digit;
            for (int i = threadIdx.x; i < R * 256; i += blockDim.x)
                hist[i / 256][i % 256] = 0;
            __syncthreads();
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
                const K key = to_key(__ldg(column + i * ld));
                const unsigned bin = unsigned(key >> shift) & 255u;
                for (int r = 0; r < R; r++)
                    if ((key & mask) == prefix[r])
                        atomicAdd(&hist[r][bin], 1u);
            }
            __syncthreads();
            if (threadIdx.x < R) {
                const int r = threadIdx.x;
                int64_t below = 0;
                int bin = 0;
                for (; bin < 255; bin++) {
                    if (rank_left[r] < below + hist[r][bin])
                        break;
                    below += hist[r][bin];
                }
                rank_left[r] -= below;
                prefix[r] |= K(bin) << shift;
            }
            mask |= K(255) << shift;
            __syncthreads();
        }
        if (threadIdx.x < levels_now) {
            const int l = threadIdx.x;
            const double q = interpolate(levels[l0 + l], n, [&](int64_t i) {
                return from_key(i == rank_of[2 * l] ? prefix[2 * l] : prefix[2 * l + 1]);
            });
            q_out[int64_t(l0 + l) * m + col] = T(q);
        }
        __syncthreads(); // before the next round resets the ranks
    }
}

// The shared memory a block of the current device may opt in to. Asked at
// every call (a host query of about a microsecond): a cache would be mutable
// global state.
int max_shared_bytes() {
    int dev = 0, bytes = 48 * 1024;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) !=
            cudaSuccess) {
        cudaGetLastError(); // not this call's failure to report: use the default
        return 48 * 1024;
    }
    return bytes;
}

template <typename T>
int launch(void *q_out, void *mean_out, const void *samples, int64_t n, int64_t m, int64_t ld,
           const void *levels, int64_t L, cudaStream_t stream) {
    using K = typename KeyOf<T>::type;
    auto *q = static_cast<T *>(q_out);
    auto *mean = static_cast<T *>(mean_out);
    auto *x = static_cast<const T *>(samples);
    auto *lv = static_cast<const double *>(levels);
    int64_t n2 = 1;
    while (n2 < n)
        n2 <<= 1;
    const int64_t bytes = n2 * int64_t(sizeof(K));
    if (n2 <= (int64_t(1) << 30) && bytes <= max_shared_bytes()) {
        if (bytes > 48 * 1024) {
            cudaError_t e = cudaFuncSetAttribute(
                quantile_sort_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
            if (e != cudaSuccess)
                return int(e);
        }
        const int threads = int(std::min<int64_t>(1024, std::max<int64_t>(32, n2 / 2)));
        quantile_sort_kernel<T><<<unsigned(m), threads, size_t(bytes), stream>>>(
            q, mean, x, n, m, ld, lv, int(L), int(n2));
    } else {
        quantile_select_kernel<T>
            <<<unsigned(m), kSelectThreads, 0, stream>>>(q, mean, x, n, m, ld, lv, int(L));
    }
    return launch_status();
}

} // namespace
} // namespace toto_cuda

using namespace toto_cuda;

extern "C" int toto_k_quantiles(void *q_out, void *mean_out, const void *samples,
                                toto_k_dtype dtype, int64_t n, int64_t m, int64_t ld,
                                const void *levels, int64_t n_levels, void *stream) {
    if (n < 1 || m < 0 || m > INT32_MAX || ld < m || n_levels < 0 || n_levels > INT32_MAX ||
        (dtype != TOTO_K_F32 && dtype != TOTO_K_F64))
        return int(cudaErrorInvalidValue);
    if (m == 0 || (n_levels == 0 && !mean_out))
        return 0;
    if (!samples || (n_levels > 0 && (!q_out || !levels)))
        return int(cudaErrorInvalidValue);
    if (dtype == TOTO_K_F32)
        return launch<float>(q_out, mean_out, samples, n, m, ld, levels, n_levels,
                             as_stream(stream));
    return launch<double>(q_out, mean_out, samples, n, m, ld, levels, n_levels, as_stream(stream));
}
