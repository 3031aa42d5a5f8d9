// quantiles.cu - quantiles and mean of each column of sampled paths, with
// the CPU's definition (model/result_stats.cc: linear interpolation between
// order statistics, as torch.quantile).
//
// Values sort as unsigned keys (sign-flipped bits: the integer order is the
// numeric order, NaN after +inf). Columns that fit in shared memory are
// bitonic-sorted there, a tile of adjacent columns per block (a row of the
// tile is contiguous in memory: reading one column alone would fetch a
// 32-byte sector for each 4- or 8-byte value). A longer column is not
// sorted: one block finds just the order statistics it needs by radix
// selection, reading the column from global memory once per 8-bit digit for
// up to 32 ranks at once.
#include <algorithm>

#include "common.cuh"

namespace toto_cuda {
namespace {

constexpr int kSortThreads = 512;
// Blocks a multiprocessor should hold: registers capped at 40 for float32
// keys (1536 threads); float64 keys need 45 (1024 threads), 40 would spill.
template <typename T> constexpr int kSortBlocksPerSM = sizeof(T) == 8 ? 2 : 3;
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

// Sum over one warp; every lane gets the total.
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Where key i of a column lives: the low 3 bits XORed with bits S..S+2,
// S = log2(128 / key size), so that the threads of a warp reading element e
// of 8 consecutive keys each (the sort's steps below) hit different banks. A
// bijection on [0, n2) for every power of two n2.
template <typename K> __device__ __forceinline__ int swz(int i) {
    constexpr int S = sizeof(K) == 8 ? 4 : 5;
    return i ^ ((i >> S) & 7);
}

// Bitonic sort of C columns of n2 = 2^log_n2 keys in shared memory, columns
// stride keys apart, by the whole block. The stages of one merge (j = k/2
// down to 1) go up to max_nb at a time: a thread loads the 2^max_nb keys
// that differ only in those index bits, runs the stages in registers and
// stores them back. With 3, a sort of 8192 keys makes 35 passes over shared
// memory instead of 91 (large sorts are bound by shared-memory traffic), but
// a quarter as many threads work: small sorts, bound by latency, take 1.
template <typename K>
__device__ void bitonic_sort_columns(K *keys, int stride, int log_n2, int log_c, int max_nb) {
    for (int l = 1; l <= log_n2; l++) { // merging runs of 2^l
        for (int hi = l - 1; hi >= 0;) {
            const int nb = min(max_nb, hi + 1), lo = hi - nb + 1, ne = 1 << nb;
            const int groups_log = log_n2 - nb;
            for (int gi = threadIdx.x; gi < (1 << (groups_log + log_c)); gi += blockDim.x) {
                const int c = gi >> groups_log, g = gi & ((1 << groups_log) - 1);
                // g with nb zero bits inserted at bit lo: the group's first key.
                const int base = ((g >> lo) << (lo + nb)) | (g & ((1 << lo) - 1));
                const bool up = ((base >> l) & 1) == 0;
                K *col = keys + c * stride;
                K v[8];
#pragma unroll
                for (int e = 0; e < 8; e++)
                    if (e < ne)
                        v[e] = col[swz<K>(base + (e << lo))];
#pragma unroll
                for (int sbit = 2; sbit >= 0; sbit--) {
                    if (sbit >= nb)
                        continue;
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        const int f = e | (1 << sbit);
                        if (f < ne && !(e & (1 << sbit)) && ((v[e] > v[f]) == up)) {
                            const K t = v[e];
                            v[e] = v[f];
                            v[f] = t;
                        }
                    }
                }
#pragma unroll
                for (int e = 0; e < 8; e++)
                    if (e < ne)
                        col[swz<K>(base + (e << lo))] = v[e];
            }
            __syncthreads();
            hi -= nb;
        }
    }
}

// One block per tile of C = 2^log_c adjacent columns: the tile's n rows are
// read row by row (C contiguous values: whole sectors, not one value of
// each), keys padded with the largest key to n2 = 2^log_n2 per column in
// dynamic shared memory, each column sorted, then the levels. Columns lie
// n2 + 1 keys apart, so that the C columns of one row fall in different
// banks.
template <typename T>
__global__ void __launch_bounds__(kSortThreads, kSortBlocksPerSM<T>)
    quantile_sort_kernel(T *__restrict__ q_out, T *__restrict__ mean_out,
                         const T *__restrict__ samples, int64_t n, int64_t m, int64_t ld,
                         const double *__restrict__ levels, int L, int log_n2, int log_c,
                         int max_nb) {
    using K = typename KeyOf<T>::type;
    extern __shared__ unsigned char smem_raw[];
    K *keys = reinterpret_cast<K *>(smem_raw);
    const int C = 1 << log_c, n2 = 1 << log_n2, stride = n2 + 1;
    const int64_t col0 = int64_t(blockIdx.x) << log_c;
    const int cols = int(min(int64_t(C), m - col0));
    for (int i = threadIdx.x; i < (n2 << log_c); i += blockDim.x) {
        const int row = i >> log_c, c = i & (C - 1);
        K key = ~K(0);
        if (row < n && c < cols)
            key = to_key(__ldg(samples + row * ld + col0 + c));
        keys[c * stride + swz<K>(row)] = key;
    }
    __syncthreads();
    // The mean of each column, one warp per column, before the sort moves
    // the values (the keys hold them exactly).
    if (mean_out) {
        const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
        for (int c = warp; c < cols; c += blockDim.x / 32) {
            double sum = 0.0;
            for (int row = lane; row < n; row += 32)
                sum += from_key(keys[c * stride + swz<K>(row)]);
            sum = warp_sum(sum);
            if (lane == 0)
                mean_out[col0 + c] = T(sum / double(n));
        }
    }
    __syncthreads();
    bitonic_sort_columns(keys, stride, log_n2, log_c, max_nb);
    for (int i = threadIdx.x; i < L * cols; i += blockDim.x) {
        const int l = i / cols, c = i - l * cols;
        const K *col = keys + c * stride;
        const double q =
            interpolate(levels[l], n, [&](int64_t r) { return from_key(col[swz<K>(int(r))]); });
        q_out[int64_t(l) * m + col0 + c] = T(q);
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

// What the tiling needs to know of the current device: the shared memory a
// block may opt in to, and the number of multiprocessors.
struct DeviceLimits {
    int smem = 48 * 1024, sms = 132;
};
DeviceLimits device_limits() {
    DeviceLimits d;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&d.smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) !=
            cudaSuccess ||
        cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
        cudaGetLastError(); // not this call's failure to report: use the defaults
        d = DeviceLimits();
    }
    return d;
}

template <typename T>
int launch(void *q_out, void *mean_out, const void *samples, int64_t n, int64_t m, int64_t ld,
           const void *levels, int64_t L, cudaStream_t stream) {
    using K = typename KeyOf<T>::type;
    auto *q = static_cast<T *>(q_out);
    auto *mean = static_cast<T *>(mean_out);
    auto *x = static_cast<const T *>(samples);
    auto *lv = static_cast<const double *>(levels);
    const DeviceLimits dev = device_limits();
    int log_n2 = 0;
    while ((int64_t(1) << log_n2) < n)
        log_n2++;
    const int64_t n2 = int64_t(1) << log_n2;
    auto tile_bytes = [&](int log_c) { return (n2 + 1) * int64_t(sizeof(K)) << log_c; };
    if (n2 > (int64_t(1) << 24) || tile_bytes(0) > dev.smem) {
        quantile_select_kernel<T>
            <<<unsigned(m), kSelectThreads, 0, stream>>>(q, mean, x, n, m, ld, lv, int(L));
        return launch_status();
    }
    // Columns per block: up to a 128-byte row (whole sectors), while two
    // blocks still fit a multiprocessor's shared memory and the tiles still
    // give each multiprocessor one.
    int log_c = 0;
    while ((int64_t(sizeof(T)) << (log_c + 1)) <= 128 &&
           tile_bytes(log_c + 1) <= std::min(dev.smem / 2, 112 * 1024) &&
           (m >> (log_c + 1)) >= dev.sms)
        log_c++;
    const int64_t bytes = tile_bytes(log_c);
    if (bytes > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(
            quantile_sort_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
        if (e != cudaSuccess)
            return int(e);
    }
    // Keys per thread in a pass: 8 while that leaves enough threads to fill
    // the device, else fewer (a thread per group of 2^max_nb keys).
    const int64_t fill = int64_t(dev.sms) * 2048;
    int max_nb = 3;
    while (max_nb > 1 && ((m * n2) >> max_nb) < fill)
        max_nb--;
    const int threads =
        int(std::min<int64_t>(kSortThreads, std::max<int64_t>(32, (n2 >> max_nb) << log_c)));
    const unsigned tiles = unsigned((m + (int64_t(1) << log_c) - 1) >> log_c);
    quantile_sort_kernel<T><<<tiles, threads, size_t(bytes), stream>>>(
        q, mean, x, n, m, ld, lv, int(L), log_n2, log_c, max_nb);
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
