// decode_attention.cu - one decoding step's attention of a TIME layer in one
// kernel: rotary (xPos) of this step's query and key, the key and value
// written into the suffix cache, and softmax attention over the prefix (the
// context, shared by the N paths of a variate) and the suffix (this path's
// earlier steps and this one), in float32.
//
// Fast path (d == 64, 16-byte aligned pointers): a block serves one (variate
// v, head h) and 32 paths of it, one lane per path (row q = n * V + v), so
// the lanes of a warp read the same prefix key and value: a broadcast load,
// 8 multiply-adds per 16 bytes. Each lane keeps its rotated query and its
// output accumulator (64 + 64 floats) in registers and runs an online
// softmax over chunks of 4 positions. The W warps of a block (1..8, more for
// small grids) split the positions (prefix then suffix) and merge their
// (max, sum, accumulator) states through shared memory in a tree; the last
// warp, which has the fewest positions, also takes this step's key.
// Other d (even, up to 256) or alignments: one warp per (row, head), lanes
// over pairs of elements, a warp-wide butterfly sum per position.
#include <math.h>

#include "common.cuh"

namespace toto_cuda {
namespace {

constexpr int kFastD = 64;
constexpr int kMaxD = 256;
constexpr int kMaxWarps = 8;
constexpr int kChunk = 4;       // positions scored before one rescale
constexpr int kAnyWarps = 4;    // warps per block, generic kernel
constexpr int kTargetWarps = 1024;

template <typename T> struct Args {
    T *out;
    const T *qkv, *cos_tab, *sin_tab, *prefix_k, *prefix_v;
    T *suffix_k, *suffix_v;
    const int64_t *pos_index, *prefix_len, *step;
    int64_t Q, V, H, d, S, T_;
};

__device__ __forceinline__ int64_t clamp64(int64_t x, int64_t lo, int64_t hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

// exp(m - mn), 0 for a state that has seen nothing (m = -inf).
__device__ __forceinline__ float rescale(float m, float mn) {
    return m == -INFINITY ? 0.0f : expf(m - mn);
}

// Online softmax over n rows of 64 (keys at kb, values at vb, row stride 64).
// Plain loads: the suffix is written by this kernel.
template <typename T>
__device__ __forceinline__ void attend64(const T *kb, const T *vb, int64_t n, const float *q,
                                         float &m, float &l, float *acc) {
#pragma unroll 1
    for (int64_t j0 = 0; j0 < n; j0 += kChunk) {
        float s[kChunk];
#pragma unroll
        for (int c = 0; c < kChunk; c++) {
            s[c] = -INFINITY;
            if (j0 + c < n) {
                const T *k = kb + (j0 + c) * kFastD;
                float a0 = 0.0f, a1 = 0.0f;
#pragma unroll
                for (int i = 0; i < kFastD; i += 8) {
                    float x[8];
                    load8_rw(k + i, x);
#pragma unroll
                    for (int t = 0; t < 8; t += 2) {
                        a0 += q[i + t] * x[t];
                        a1 += q[i + t + 1] * x[t + 1];
                    }
                }
                s[c] = a0 + a1;
            }
        }
        float mc = s[0];
#pragma unroll
        for (int c = 1; c < kChunk; c++)
            mc = fmaxf(mc, s[c]);
        const float mn = fmaxf(m, mc);
        const float sc = rescale(m, mn);
        float p[kChunk], ps = 0.0f;
#pragma unroll
        for (int c = 0; c < kChunk; c++) {
            p[c] = expf(s[c] - mn); // padding: exp(-inf) = 0
            ps += p[c];
        }
        l = l * sc + ps;
        m = mn;
#pragma unroll
        for (int i = 0; i < kFastD; i++)
            acc[i] *= sc;
#pragma unroll
        for (int c = 0; c < kChunk; c++) {
            if (j0 + c < n) {
                const T *vr = vb + (j0 + c) * kFastD;
#pragma unroll
                for (int i = 0; i < kFastD; i += 8) {
                    float x[8];
                    load8_rw(vr + i, x);
#pragma unroll
                    for (int t = 0; t < 8; t++)
                        acc[i + t] += p[c] * x[t];
                }
            }
        }
    }
}

// One block: (32 paths, variate v, head h); blockDim (32, W), W a power of 2.
template <typename T> __global__ void __launch_bounds__(32 * kMaxWarps) decode64_kernel(Args<T> a) {
    constexpr int D = kFastD;
    __shared__ float merge[kMaxWarps / 2][D + 2][32];
    const int lane = threadIdx.x, warp = threadIdx.y, W = blockDim.y;
    const int64_t N = a.Q / a.V;
    int64_t b = blockIdx.x;
    const int64_t h = b % a.H;
    b /= a.H;
    const int64_t v = b % a.V, n = b / a.V * 32 + lane;
    const bool active = n < N;
    const int64_t q = (active ? n : N - 1) * a.V + v; // idle lanes compute, never store
    const int64_t pos = *a.pos_index;
    const int64_t L = clamp64(*a.prefix_len, 0, a.S);
    const int64_t st = clamp64(*a.step, 0, a.T_ - 1);
    const int64_t HD = a.H * D;
    const T *row = a.qkv + q * 3 * HD + h * D;
    const T *cq = a.cos_tab + pos * 2 * D, *sq = a.sin_tab + pos * 2 * D;

    float qf[D], acc[D];
#pragma unroll
    for (int i = 0; i < D; i += 8) {
        float x[8], c[8], s[8];
        load8(row + i, x);
        load8(cq + i, c);
        load8(sq + i, s);
#pragma unroll
        for (int t = 0; t < 8; t++) {
            qf[i + t] = x[t] * c[t] + x[t ^ 1] * s[t];
            acc[i + t] = 0.0f;
        }
    }
    float m = -INFINITY, l = 0.0f;

    // This step's key and value go to the suffix first (the key rotated and
    // rounded as stored), by the warp whose share holds the last position:
    // each lane reads back its own row's writes. Positions: prefix [0, L),
    // then suffix [0, st]; this warp's share is [lo, hi).
    const int64_t M = L + st + 1, per = (M + W - 1) / W;
    const int64_t lo = min(M, warp * per), hi = min(M, lo + per);
    const int64_t slot = (q * a.H + h) * a.T_;
    if (warp == (M - 1) / per) {
        const T *ck = cq + D, *sk = sq + D;
        T *dk = a.suffix_k + (slot + st) * D, *dv = a.suffix_v + (slot + st) * D;
#pragma unroll
        for (int i = 0; i < D; i += 8) {
            float x[8], c[8], s[8], k[8];
            load8(row + HD + i, x);
            load8(ck + i, c);
            load8(sk + i, s);
#pragma unroll
            for (int t = 0; t < 8; t++)
                k[t] = x[t] * c[t] + x[t ^ 1] * s[t];
            load8(row + 2 * HD + i, x);
            if (active) {
                store8(dk + i, k);
                store8(dv + i, x);
            }
        }
        __syncwarp();
    }
#pragma unroll 1
    for (int seg = 0; seg < 2; seg++) {
        const int64_t from = seg == 0 ? lo : max(lo, L), to = seg == 0 ? min(hi, L) : hi;
        if (from < to) {
            const int64_t at = seg == 0 ? ((v * a.H + h) * a.S + from) * D : (slot + from - L) * D;
            const T *kb = (seg == 0 ? a.prefix_k : a.suffix_k) + at;
            const T *vb = (seg == 0 ? a.prefix_v : a.suffix_v) + at;
            attend64(kb, vb, to - from, qf, m, l, acc);
        }
    }

    // Tree merge: warps [half, 2 half) hand their states to [0, half).
    for (int half = W / 2; half >= 1; half /= 2) {
        if (warp >= half && warp < 2 * half) {
            float(*mb)[32] = merge[warp - half];
#pragma unroll
            for (int i = 0; i < D; i++)
                mb[i][lane] = acc[i];
            mb[D][lane] = m;
            mb[D + 1][lane] = l;
        }
        __syncthreads();
        if (warp < half) {
            float(*mb)[32] = merge[warp];
            const float m2 = mb[D][lane], l2 = mb[D + 1][lane], mn = fmaxf(m, m2);
            const float c1 = rescale(m, mn), c2 = rescale(m2, mn);
            l = l * c1 + l2 * c2;
            m = mn;
#pragma unroll
            for (int i = 0; i < D; i++)
                acc[i] = acc[i] * c1 + mb[i][lane] * c2;
        }
        __syncthreads();
    }
    if (warp == 0 && active) {
        T *o = a.out + q * HD + h * D;
#pragma unroll
        for (int i = 0; i < D; i += 8) {
            float y[8];
#pragma unroll
            for (int t = 0; t < 8; t++)
                y[t] = acc[i + t] / l;
            store8(o + i, y);
        }
    }
}

// Any even d <= 256, any alignment: one warp per (row, head); lane j holds
// the pairs j, j + 32, j + 64, j + 96.
template <typename T> __global__ void __launch_bounds__(32 * kAnyWarps) decode_any_kernel(Args<T> a) {
    constexpr int KP = kMaxD / 64;
    const int lane = threadIdx.x % 32;
    const int64_t wi = int64_t(blockIdx.x) * kAnyWarps + threadIdx.x / 32;
    if (wi >= a.Q * a.H)
        return;
    const int64_t q = wi / a.H, h = wi % a.H, v = q % a.V, D = a.d, HD = a.H * D;
    const int64_t pos = *a.pos_index;
    const int64_t L = clamp64(*a.prefix_len, 0, a.S);
    const int64_t st = clamp64(*a.step, 0, a.T_ - 1);
    const T *row = a.qkv + q * 3 * HD + h * D;
    const T *cq = a.cos_tab + pos * 2 * D, *sq = a.sin_tab + pos * 2 * D;
    float qf[2 * KP], acc[2 * KP];
#pragma unroll
    for (int k = 0; k < KP; k++) {
        const int64_t i = 2 * (lane + 32 * k);
        qf[2 * k] = qf[2 * k + 1] = acc[2 * k] = acc[2 * k + 1] = 0.0f;
        if (i < D) {
            const float x0 = to_f32(row[i]), x1 = to_f32(row[i + 1]);
            qf[2 * k] = x0 * to_f32(cq[i]) + x1 * to_f32(sq[i]);
            qf[2 * k + 1] = x1 * to_f32(cq[i + 1]) + x0 * to_f32(sq[i + 1]);
        }
    }
    float m = -INFINITY, l = 0.0f;
    // q . key for the key at kr (every lane gets the same sum), then the
    // online update with the value at vr.
    auto score = [&](const T *kr) {
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < KP; k++) {
            const int64_t i = 2 * (lane + 32 * k);
            if (i < D)
                s += qf[2 * k] * to_f32(kr[i]) + qf[2 * k + 1] * to_f32(kr[i + 1]);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            s += __shfl_xor_sync(0xffffffffu, s, o);
        return s;
    };
    auto update = [&](float s, const T *vr) {
        const float mn = fmaxf(m, s), c = rescale(m, mn), p = expf(s - mn);
        l = l * c + p;
        m = mn;
#pragma unroll
        for (int k = 0; k < KP; k++) {
            const int64_t i = 2 * (lane + 32 * k);
            if (i < D) {
                acc[2 * k] = acc[2 * k] * c + p * to_f32(vr[i]);
                acc[2 * k + 1] = acc[2 * k + 1] * c + p * to_f32(vr[i + 1]);
            }
        }
    };
    const int64_t pre = (v * a.H + h) * a.S * D;
    for (int64_t j = 0; j < L; j++)
        update(score(a.prefix_k + pre + j * D), a.prefix_v + pre + j * D);
    const int64_t slot = (q * a.H + h) * a.T_;
    for (int64_t j = 0; j < st; j++)
        update(score(a.suffix_k + (slot + j) * D), a.suffix_v + (slot + j) * D);

    // This step's key, rotated and rounded as stored; its value.
    const T *ck = cq + D, *sk = sq + D;
    T *dk = a.suffix_k + (slot + st) * D, *dv = a.suffix_v + (slot + st) * D;
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < KP; k++) {
        const int64_t i = 2 * (lane + 32 * k);
        if (i < D) {
            const float x0 = to_f32(row[HD + i]), x1 = to_f32(row[HD + i + 1]);
            const T k0 = from_f32<T>(x0 * to_f32(ck[i]) + x1 * to_f32(sk[i]));
            const T k1 = from_f32<T>(x1 * to_f32(ck[i + 1]) + x0 * to_f32(sk[i + 1]));
            dk[i] = k0;
            dk[i + 1] = k1;
            dv[i] = row[2 * HD + i];
            dv[i + 1] = row[2 * HD + i + 1];
            s += qf[2 * k] * to_f32(k0) + qf[2 * k + 1] * to_f32(k1);
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    update(s, row + 2 * HD);

    T *o = a.out + q * HD + h * D;
#pragma unroll
    for (int k = 0; k < KP; k++) {
        const int64_t i = 2 * (lane + 32 * k);
        if (i < D) {
            o[i] = from_f32<T>(acc[2 * k] / l);
            o[i + 1] = from_f32<T>(acc[2 * k + 1] / l);
        }
    }
}

template <typename T> int launch(const Args<T> &a, bool fast, cudaStream_t stream) {
    if (fast) {
        const int64_t blocks = (a.Q / a.V + 31) / 32 * a.V * a.H;
        int W = 1;
        while (W < kMaxWarps && blocks * W < kTargetWarps)
            W *= 2;
        decode64_kernel<T><<<unsigned(blocks), dim3(32, unsigned(W)), 0, stream>>>(a);
    } else {
        const int64_t blocks = (a.Q * a.H + kAnyWarps - 1) / kAnyWarps;
        decode_any_kernel<T><<<unsigned(blocks), 32 * kAnyWarps, 0, stream>>>(a);
    }
    return launch_status();
}

} // namespace
} // namespace toto_cuda

using namespace toto_cuda;

extern "C" int toto_k_decode_attention(void *out, const void *qkv, toto_k_dtype dtype,
                                       const void *cos_tab, const void *sin_tab,
                                       const int64_t *pos_index, const void *prefix_k,
                                       const void *prefix_v, const int64_t *prefix_len,
                                       void *suffix_k, void *suffix_v, const int64_t *step,
                                       int64_t Q, int64_t V, int64_t H, int64_t d, int64_t S,
                                       int64_t T, void *stream) {
    if (!is_float_dtype(dtype) || d < 2 || d > kMaxD || d % 2 != 0 || H < 1 || V < 1 || Q < 0 ||
        Q % V != 0 || S < 1 || T < 1)
        return int(cudaErrorInvalidValue);
    // Grid sizes: at most 2^31 - 1 blocks either way.
    if (Q > INT32_MAX || H > INT32_MAX / 4 || Q * H > int64_t(INT32_MAX) * kAnyWarps / 2 ||
        S > INT32_MAX || T > INT32_MAX)
        return int(cudaErrorInvalidValue);
    if (Q == 0)
        return 0;
    if (!out || !qkv || !cos_tab || !sin_tab || !pos_index || !prefix_k || !prefix_v ||
        !prefix_len || !suffix_k || !suffix_v || !step)
        return int(cudaErrorInvalidValue);
    const bool fast = d == kFastD && aligned16(out) && aligned16(qkv) && aligned16(cos_tab) &&
                      aligned16(sin_tab) && aligned16(prefix_k) && aligned16(prefix_v) &&
                      aligned16(suffix_k) && aligned16(suffix_v);
    return with_float_type(dtype, [&](auto t) {
        using E = decltype(t);
        Args<E> a{static_cast<E *>(out),
                  static_cast<const E *>(qkv),
                  static_cast<const E *>(cos_tab),
                  static_cast<const E *>(sin_tab),
                  static_cast<const E *>(prefix_k),
                  static_cast<const E *>(prefix_v),
                  static_cast<E *>(suffix_k),
                  static_cast<E *>(suffix_v),
                  pos_index,
                  prefix_len,
                  step,
                  Q,
                  V,
                  H,
                  d,
                  S,
                  T};
        return launch(a, fast, as_stream(stream));
    });
}
