// patch_scaler.cu - the causal patch scaler (TOTO.md step 2, model/scaler.cc)
// fused into one kernel: running mean and Welford variance in float64, the
// (mean, scale) at the end of each patch, and the scaled series.
//
// One block per row. The row goes through in tiles of whole patches (at most
// kMaxTile steps), each thread holding kItems consecutive steps in registers
// (all of its loads issued at once: one memory latency per tile).
// Per tile, a block-wide scan of (w, w x) gives the running mean at every
// step; the Welford increment of a step needs the mean of the step before, so
// a second scan sums the increments. The running sums carry from tile to
// tile, and from the state when continuing. A patch's last step publishes its
// statistics in shared memory, from where every step of the patch reads them:
// a tile holds whole patches, so x is read once. Init's global statistics
// read a row of one tile from the same registers, a longer one twice more.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "common.cuh"

namespace toto_cuda {
namespace {

// 4 steps a thread, not 8: 95 registers a thread instead of 155, so that a
// decoding step's 1792 blocks (one warp each) fit an H100 in one wave.
constexpr int kItems = 4; // consecutive steps per thread
constexpr int kMaxThreads = 512;
constexpr int kMaxWarps = kMaxThreads / 32;
constexpr int kMaxTile = kItems * kMaxThreads; // steps per tile; also the largest P
constexpr double kMinimumScale = 0.1;
constexpr unsigned kFullMask = 0xffffffffu;

// The state's columns: Scaler's members in this order.
enum { kSumW, kSumWX, kM2, kLastMean, kLo, kHi, kStateWidth };

struct Params {
    const double *x, *w;          // [M, T]; w NULL: every step observed
    double *mean_out, *scale_out; // [M, T / P] or NULL
    double *state;                // [M, kStateWidth]
    int64_t T;
    int P;
    int tile; // steps per tile: whole patches, at most kMaxTile
    bool continuing, stabilize;
    double up, down; // 10^e and 10^-e, from the host's pow like Scaler's
};

// The running sums at the last step seen, and that step's mean.
struct Carry {
    double sum_w, sum_wx, m2, mean;
};

// A thread's steps of one tile. Steps past the tile weigh 0: they leave every
// sum as it is.
struct Steps {
    double x[kItems], w[kItems];
};

// Steps [start, start + n) of the row: this thread's kItems of them.
__device__ void load_steps(const Params &p, int64_t row, int64_t start, int n, Steps &s) {
    const double *x = p.x + row * p.T + start;
    const double *w = p.w ? p.w + row * p.T + start : nullptr;
    const int first = threadIdx.x * kItems;
#pragma unroll
    for (int i = 0; i < kItems; i++) {
        const int j = first + i;
        s.x[i] = j < n ? __ldg(x + j) : 0.0;
        s.w[i] = j < n ? (w ? __ldg(w + j) : 1.0) : 0.0;
    }
}

// Sums over the row of f(x, w) per step, N of them, into v (per thread):
// from `steps` when the row is one tile, else loaded tile by tile.
template <int N, typename F>
__device__ void row_sums(const Params &p, int64_t row, bool one_tile, const Steps &steps,
                         double (&v)[N], F f) {
    if (one_tile) {
#pragma unroll
        for (int i = 0; i < kItems; i++)
            f(steps.x[i], steps.w[i], v);
        return;
    }
    for (int64_t start = 0; start < p.T; start += p.tile) {
        Steps s;
        load_steps(p, row, start, int(min(int64_t(p.tile), p.T - start)), s);
#pragma unroll
        for (int i = 0; i < kItems; i++)
            f(s.x[i], s.w[i], v);
    }
}

// Sums over the block of N values per thread; every thread gets the same
// totals (each adds the warp partials in the same order).
template <int N> __device__ void block_sum_all(double (&v)[N]) {
    __shared__ double partial[N][kMaxWarps];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            v[i] += __shfl_xor_sync(kFullMask, v[i], o);
    __syncthreads(); // partial may still be read by an earlier call
    if (lane == 0)
#pragma unroll
        for (int i = 0; i < N; i++)
            partial[i][warp] = v[i];
    __syncthreads();
#pragma unroll
    for (int i = 0; i < N; i++) {
        v[i] = 0.0;
        for (int k = 0; k < warps; k++)
            v[i] += partial[i][k];
    }
}

// Exclusive prefix sums over the block, threads in order, of N values per
// thread: v becomes the sum of the values of the threads before.
template <int N> __device__ void block_exclusive_sum(double (&v)[N]) {
    __shared__ double warp_total[N][kMaxWarps];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    double incl[N];
#pragma unroll
    for (int i = 0; i < N; i++) {
        incl[i] = v[i];
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const double u = __shfl_up_sync(kFullMask, incl[i], o);
            if (lane >= o)
                incl[i] += u;
        }
    }
    __syncthreads(); // warp_total may still be read by an earlier call
    if (lane == 31)
#pragma unroll
        for (int i = 0; i < N; i++)
            warp_total[i][warp] = incl[i];
    __syncthreads();
#pragma unroll
    for (int i = 0; i < N; i++) {
        double before = 0.0;
        for (int k = 0; k < warp; k++)
            before += warp_total[i][k];
        const double excl = __shfl_up_sync(kFullMask, incl[i], 1);
        v[i] = lane == 0 ? before : before + excl;
    }
}

// v of the thread before this one; thread 0 gets first. The mean before a
// thread's first step is then exactly the mean its neighbour computed.
__device__ double from_previous_thread(double v, double first) {
    __shared__ double last_of_warp[kMaxWarps];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const double u = __shfl_up_sync(kFullMask, v, 1);
    __syncthreads(); // last_of_warp may still be read by an earlier call
    if (lane == 31)
        last_of_warp[warp] = v;
    __syncthreads();
    if (lane > 0)
        return u;
    return warp == 0 ? first : last_of_warp[warp - 1];
}

// torch.nan_to_num: NaN -> 0, +-inf -> the largest finite double.
__device__ double nan_to_num(double v) {
    if (isnan(v))
        return 0.0;
    return isinf(v) ? copysign(DBL_MAX, v) : v;
}

// Comparisons rather than fmax/fmin: a NaN scale stays NaN, as with torch's
// clamp_min, maximum and minimum.
__device__ double at_least(double v, double lo) {
    return v < lo ? lo : v;
}
__device__ double at_most(double v, double hi) {
    return v > hi ? hi : v;
}

// Scaler::set_global over the whole row: the clamp bounds lo, hi. one_tile:
// the row is one tile, already in steps.
__device__ void global_bounds(const Params &p, int64_t row, bool one_tile, const Steps &steps,
                              double &lo, double &hi) {
    double s[2] = {0.0, 0.0};
    row_sums(p, row, one_tile, steps, s, [](double x, double w, double(&v)[2]) {
        v[0] += w;
        v[1] += __dmul_rn(w, x);
    });
    block_sum_all(s);
    const double count = fmax(s[0], 1.0);
    const double mean = nan_to_num(s[1] / count);
    // Two passes, as the reference: the squares of deviations from the mean.
    double ss[1] = {0.0};
    row_sums(p, row, one_tile, steps, ss, [mean](double x, double w, double(&v)[1]) {
        const double d = __dmul_rn(x - mean, w);
        v[0] += __dmul_rn(d, d);
    });
    block_sum_all(ss);
    const double g = sqrt(__dadd_rn(ss[0] / count, kMinimumScale));
    lo = at_least(__dmul_rn(g, p.down), kMinimumScale);
    hi = __dmul_rn(g, p.up);
}

// sqrt(m2 / max(count - 1, 1) + c), clamped to [lo, hi] when stabilizing.
__device__ double scale_at(double m2, double sum_w, double lo, double hi, bool stabilize) {
    const double count = fmax(sum_w, 1.0);
    const double s = sqrt(__dadd_rn(m2 / fmax(count - 1.0, 1.0), kMinimumScale));
    return stabilize ? at_most(at_least(s, lo), hi) : s;
}

template <typename TZ> __device__ TZ from_f64(double v);
template <> __device__ float from_f64<float>(double v) {
    return __double2float_rn(v);
}
template <> __device__ __nv_bfloat16 from_f64<__nv_bfloat16>(double v) {
    return __double2bfloat16(v); // sm_90: one rounding (cvt.rn.bf16.f64)
}

// Steps [start, start + n) of a row (n whole patches, start a multiple of P).
// c holds the running sums before start and gets those at the tile's end.
// patch_stats: shared, mean then scale of each patch of the tile.
template <typename TZ>
__device__ void scale_tile(const Params &p, int64_t row, int64_t start, int n, const Steps &st,
                           Carry &c, double lo, double hi, TZ *z, double *patch_stats) {
    __shared__ Carry next;
    const int first = threadIdx.x * kItems;
    const double(&xv)[kItems] = st.x, (&wv)[kItems] = st.w;
    double sum_w[kItems], sum_wx[kItems], mean[kItems], m2[kItems];
    double tot[2] = {0.0, 0.0};
#pragma unroll
    for (int i = 0; i < kItems; i++) {
        tot[0] += wv[i];
        tot[1] += __dmul_rn(wv[i], xv[i]);
        sum_w[i] = tot[0];
        sum_wx[i] = tot[1];
    }
    block_exclusive_sum(tot);
    const double off_w = c.sum_w + tot[0], off_wx = c.sum_wx + tot[1];
#pragma unroll
    for (int i = 0; i < kItems; i++) {
        sum_w[i] = off_w + sum_w[i];
        sum_wx[i] = off_wx + sum_wx[i];
        mean[i] = sum_wx[i] / fmax(sum_w[i], 1.0);
    }
    // Welford: (x_t - mean_{t-1}) (x_t - mean_t) w_t, each product rounded.
    double prev = from_previous_thread(mean[kItems - 1], c.mean);
    double inc[1] = {0.0};
#pragma unroll
    for (int i = 0; i < kItems; i++) {
        inc[0] += __dmul_rn(__dmul_rn(xv[i] - prev, xv[i] - mean[i]), wv[i]);
        m2[i] = inc[0];
        prev = mean[i];
    }
    block_exclusive_sum(inc);
    const double off_m2 = c.m2 + inc[0];
    const int patches = p.tile / p.P;
    const int64_t S = p.T / p.P;
#pragma unroll
    for (int i = 0; i < kItems; i++) {
        const int j = first + i;
        if (j >= n)
            continue;
        m2[i] = off_m2 + m2[i];
        if ((j + 1) % p.P == 0) {
            const double s = scale_at(m2[i], sum_w[i], lo, hi, p.stabilize);
            const int q = j / p.P;
            patch_stats[q] = mean[i];
            patch_stats[patches + q] = s;
            const int64_t at = row * S + (start + j) / p.P;
            if (p.mean_out)
                p.mean_out[at] = mean[i];
            if (p.scale_out)
                p.scale_out[at] = s;
        }
        if (j == n - 1)
            next = {sum_w[i], sum_wx[i], m2[i], mean[i]};
    }
    __syncthreads();
    if (z) {
        TZ *zr = z + row * p.T + start;
#pragma unroll
        for (int i = 0; i < kItems; i++) {
            const int j = first + i;
            if (j >= n)
                continue;
            const int q = j / p.P;
            zr[j] = from_f64<TZ>((xv[i] - patch_stats[q]) / patch_stats[patches + q]);
        }
    }
    // next and patch_stats are written again only after the next tile's
    // scans, whose barriers every thread passes after these reads.
    c = next;
}

template <typename TZ>
__global__ void __launch_bounds__(kMaxThreads) patch_scaler_kernel(Params p, TZ *z) {
    extern __shared__ double patch_stats[]; // [2][tile / P]
    const int64_t row = blockIdx.x;
    double *state = p.state + row * kStateWidth;
    // A row of one tile is loaded once, for init's global statistics too.
    const bool one_tile = p.T == p.tile;
    Steps steps;
    if (one_tile)
        load_steps(p, row, 0, p.tile, steps);
    Carry c = {0.0, 0.0, 0.0, 0.0};
    double lo, hi;
    if (p.continuing) {
        c = {state[kSumW], state[kSumWX], state[kM2], state[kLastMean]};
        lo = state[kLo];
        hi = state[kHi];
    } else {
        global_bounds(p, row, one_tile, steps, lo, hi);
    }
    // Every thread has read the state before thread 0 writes it: each tile
    // has barriers in between.
    for (int64_t start = 0; start < p.T; start += p.tile) {
        const int n = int(min(int64_t(p.tile), p.T - start));
        if (!one_tile)
            load_steps(p, row, start, n, steps);
        scale_tile(p, row, start, n, steps, c, lo, hi, z, patch_stats);
    }
    if (threadIdx.x == 0) {
        state[kSumW] = c.sum_w;
        state[kSumWX] = c.sum_wx;
        state[kM2] = c.m2;
        state[kLastMean] = c.mean;
        if (!p.continuing) {
            state[kLo] = lo;
            state[kHi] = hi;
        }
    }
}

bool aligned(const void *ptr, size_t bytes) {
    return reinterpret_cast<uintptr_t>(ptr) % bytes == 0;
}

bool bad_args(const void *z, toto_k_dtype zt, const double *mean_out, const double *scale_out,
              const double *state, const double *x, const double *w, int64_t M, int64_t T,
              int64_t P) {
    if (M < 0 || M > INT32_MAX || P < 1 || P > kMaxTile || T < P || T % P != 0 ||
        !is_float_dtype(zt))
        return true;
    if (M > 0 && (!x || !state))
        return true;
    for (const void *d : {(const void *)mean_out, (const void *)scale_out, (const void *)state,
                          (const void *)x, (const void *)w})
        if (!aligned(d, sizeof(double)))
            return true;
    return !aligned(z, zt == TOTO_K_F32 ? sizeof(float) : sizeof(__nv_bfloat16));
}

template <typename TZ> int launch(TZ *z, const Params &p, int64_t M, cudaStream_t stream) {
    const int threads = (p.tile + 32 * kItems - 1) / (32 * kItems) * 32;
    const size_t shared = 2 * size_t(p.tile / p.P) * sizeof(double);
    patch_scaler_kernel<TZ><<<unsigned(M), threads, shared, stream>>>(p, z);
    return launch_status();
}

} // namespace
} // namespace toto_cuda

using namespace toto_cuda;

extern "C" int toto_k_patch_scaler(void *z_out, toto_k_dtype z_dtype, double *mean_out,
                                   double *scale_out, double *state, const double *x,
                                   const double *w, int64_t M, int64_t T, int64_t P, int continuing,
                                   int stabilize, double exponent, void *stream) {
    if (bad_args(z_out, z_dtype, mean_out, scale_out, state, x, w, M, T, P))
        return int(cudaErrorInvalidValue);
    if (M == 0)
        return 0;
    Params p;
    p.x = x;
    p.w = w;
    p.mean_out = mean_out;
    p.scale_out = scale_out;
    p.state = state;
    p.T = T;
    p.P = int(P);
    // Whole patches per tile, as many as fit (a short row: all of it).
    p.tile = int(std::min<int64_t>(T, P * (kMaxTile / P)));
    p.continuing = continuing != 0;
    p.stabilize = stabilize != 0;
    p.up = std::pow(10.0, exponent);
    p.down = std::pow(10.0, -exponent);
    if (z_dtype == TOTO_K_F32 || !z_out)
        return launch(static_cast<float *>(z_out), p, M, as_stream(stream));
    return launch(static_cast<__nv_bfloat16 *>(z_out), p, M, as_stream(stream));
}
