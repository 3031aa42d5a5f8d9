// decode_attention.cu - one decoding step's attention of a TIME layer in one
// kernel: rotary (xPos) of this step's query and key, the key and value
// written into the suffix cache, and softmax attention over the prefix (the
// context, shared by the N paths of a variate) and the suffix (this path's
// earlier steps and this one), in float32.
//
// Fast path (d == 64, 16-byte aligned pointers): decode64w_kernel, one warp
// per (row, head), eight positions at a time, 4 lanes to a position's score
// (see there). On the H100 it takes long's step (256 paths, 32 context
// patches) in 10.4 µs against 16.4 for the block kernel below, which it
// replaced; that one stays selectable (TOTO_DECODE_KERNEL=block) for
// comparisons, as does the generic kernel (TOTO_DECODE_KERNEL=any).
//
// Block kernel: a block serves one (variate v, head h) and 32 paths of it,
// one lane per path (row q = n * V + v). Each lane keeps its rotated query
// and its output accumulator (64 + 64 floats) in registers and runs an
// online softmax. Warp 0 first writes this step's key and value; then the W
// warps (4, or 8 for small grids) split this lane's suffix positions, then
// the prefix, which the block stages in shared memory 32 positions at a
// time, and merge their states in a tree through shared memory. 225
// registers a thread and its barriers keep one block on an SM.
// Other d (even, up to 256) or alignments: one warp per (row, head), lanes
// over pairs of elements, a warp-wide butterfly sum per position.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

namespace toto_cuda {
namespace {

constexpr int kFastD = 64;
constexpr int kMaxD = 256;
constexpr int kMaxWarps = 8;
constexpr int kChunk = 4;    // positions scored before one rescale
constexpr int kAnyWarps = 4; // warps per block, generic kernel
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

// One row of 64 elements as loaded (bf16: 8 x 16 bytes, f32: 16 x 16 bytes),
// widened 8 at a time on use.
template <typename T> struct Row64;
template <> struct Row64<__nv_bfloat16> {
    uint4 r[8];
    __device__ __forceinline__ void load(const __nv_bfloat16 *p) {
#pragma unroll
        for (int i = 0; i < 8; i++)
            r[i] = reinterpret_cast<const uint4 *>(p)[i];
    }
    __device__ __forceinline__ void get8(int c, float v[8]) const {
        unpack8(r[c], v);
    }
};
template <> struct Row64<float> {
    float4 r[16];
    __device__ __forceinline__ void load(const float *p) {
#pragma unroll
        for (int i = 0; i < 16; i++)
            r[i] = reinterpret_cast<const float4 *>(p)[i];
    }
    __device__ __forceinline__ void get8(int c, float v[8]) const {
        const float4 a = r[2 * c], b = r[2 * c + 1];
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
        v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    }
};

template <typename T> __device__ __forceinline__ float dot64(const float *q, const Row64<T> &k) {
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma unroll
    for (int c = 0; c < 8; c++) {
        float x[8];
        k.get8(c, x);
        a0 += q[8 * c] * x[0] + q[8 * c + 4] * x[4];
        a1 += q[8 * c + 1] * x[1] + q[8 * c + 5] * x[5];
        a2 += q[8 * c + 2] * x[2] + q[8 * c + 6] * x[6];
        a3 += q[8 * c + 3] * x[3] + q[8 * c + 7] * x[7];
    }
    return (a0 + a1) + (a2 + a3);
}

// One position of the online softmax: score s, value row vr.
template <typename T>
__device__ __forceinline__ void update64(float s, const Row64<T> &vr, float &m, float &l,
                                         float *acc) {
    const float mn = fmaxf(m, s), c = rescale(m, mn), p = expf(s - mn);
    l = l * c + p;
    m = mn;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        float x[8];
        vr.get8(i, x);
#pragma unroll
        for (int t = 0; t < 8; t++)
            acc[8 * i + t] = acc[8 * i + t] * c + p * x[t];
    }
}

// Positions of this lane's own suffix rows (global memory, a row per lane):
// n rows from kb, vb (stride 64). bf16 loads the key and the value of a
// position together; float32 (twice the registers) one after the other.
template <typename T>
__device__ __forceinline__ void attend_suffix(const T *kb, const T *vb, int64_t n, const float *q,
                                              float &m, float &l, float *acc) {
#pragma unroll 1
    for (int64_t j = 0; j < n; j++) {
        Row64<T> k;
        k.load(kb + j * kFastD);
        if constexpr (sizeof(T) == 2) {
            Row64<T> v;
            v.load(vb + j * kFastD);
            update64(dot64(q, k), v, m, l, acc);
        } else {
            const float s = dot64(q, k);
            Row64<T> v;
            v.load(vb + j * kFastD);
            update64(s, v, m, l, acc);
        }
    }
}

// Positions [a, b) of a prefix tile in shared memory (rows of 64, every row
// of the tile valid: padding rows repeat a real one), kChunk at a time: the
// rows are read by every lane alike (broadcast).
template <typename T>
__device__ __forceinline__ void attend_tile(const T *sk, const T *sv, int a, int b, const float *q,
                                            float &m, float &l, float *acc) {
#pragma unroll 1
    for (int j0 = a; j0 < b; j0 += kChunk) {
        float s[kChunk];
#pragma unroll
        for (int c = 0; c < kChunk; c++) {
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            const T *k = sk + (j0 + c) * kFastD;
#pragma unroll
            for (int i = 0; i < kFastD; i += 8) {
                float x[8];
                load8_rw(k + i, x);
                a0 += q[i] * x[0] + q[i + 4] * x[4];
                a1 += q[i + 1] * x[1] + q[i + 5] * x[5];
                a2 += q[i + 2] * x[2] + q[i + 6] * x[6];
                a3 += q[i + 3] * x[3] + q[i + 7] * x[7];
            }
            s[c] = j0 + c < b ? (a0 + a1) + (a2 + a3) : -INFINITY;
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
            p[c] = expf(s[c] - mn); // past b: exp(-inf) = 0
            ps += p[c];
        }
        l = l * sc + ps;
        m = mn;
#pragma unroll
        for (int i = 0; i < kFastD; i++)
            acc[i] *= sc;
#pragma unroll
        for (int c = 0; c < kChunk; c++) {
            const T *vr = sv + (j0 + c) * kFastD;
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

constexpr int kTile = 32; // prefix positions staged in shared memory at a time
constexpr int kMergeBytes = kMaxWarps / 2 * (kFastD + 2) * 32 * 4;
constexpr int kSmemBytes =
    kMergeBytes > 2 * kTile *kFastD * 4 ? kMergeBytes : 2 * kTile *kFastD * 4;
static_assert(kTile / kMaxWarps % kChunk == 0, "a warp's share of a tile is whole chunks");

// One block: (32 paths, variate v, head h); blockDim (32, W), W 4 or 8.
template <typename T> __global__ void __launch_bounds__(32 * kMaxWarps) decode64_kernel(Args<T> a) {
    constexpr int D = kFastD;
    __shared__ __align__(16) unsigned char smem[kSmemBytes];
    const int lane = threadIdx.x, warp = threadIdx.y, W = blockDim.y;
    const int tid = warp * 32 + lane, nthreads = 32 * W;
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
    const int64_t slot = (q * a.H + h) * a.T_;

    // This step's key (rotated, rounded as stored) and value to the suffix,
    // by warp 0; the __syncthreads below makes them visible to the block.
    if (warp == 0) {
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
    }

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
    __syncthreads();

    // The suffix, positions [0, st]: this lane's own rows, read from global
    // memory, split between the warps.
    {
        const int64_t per = (st + 1 + W - 1) / W, lo = min(st + 1, warp * per);
        const int64_t hi = min(st + 1, lo + per);
        attend_suffix(a.suffix_k + (slot + lo) * D, a.suffix_v + (slot + lo) * D, hi - lo, qf, m, l,
                      acc);
    }

    // The prefix, a tile of kTile positions at a time staged in shared
    // memory by the whole block (rows past the end repeat the last one);
    // each warp takes kTile / W of them.
    T *tk = reinterpret_cast<T *>(smem), *tv = tk + kTile * D;
    const T *pk = a.prefix_k + (v * a.H + h) * a.S * D, *pv = a.prefix_v + (v * a.H + h) * a.S * D;
    constexpr int kVec = 16 / sizeof(T);      // elements per 16 bytes
    constexpr int kChunks = kTile * D / kVec; // 16-byte pieces of one tile
#pragma unroll 1
    for (int64_t t0 = 0; t0 < L; t0 += kTile) {
        const int cnt = int(min(int64_t(kTile), L - t0));
        __syncthreads(); // the previous tile is consumed
#pragma unroll 4
        for (int c = tid; c < 2 * kChunks; c += nthreads) {
            const int which = c / kChunks, r = c % kChunks / (D / kVec), e = c % (D / kVec) * kVec;
            const int64_t src = (t0 + min(r, cnt - 1)) * D + e;
            const uint4 x = __ldg(reinterpret_cast<const uint4 *>((which ? pv : pk) + src));
            *reinterpret_cast<uint4 *>((which ? tv : tk) + r * D + e) = x;
        }
        __syncthreads();
        const int per = kTile / W, lo = min(cnt, warp * per), hi = min(cnt, lo + per);
        attend_tile(tk, tv, lo, hi, qf, m, l, acc);
    }

    // Tree merge: warps [half, 2 half) hand their states to [0, half).
    float(*merge)[D + 2][32] = reinterpret_cast<float(*)[D + 2][32]>(smem);
    __syncthreads(); // the last tile is consumed
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
template <typename T>
__global__ void __launch_bounds__(32 * kAnyWarps) decode_any_kernel(Args<T> a) {
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

// d == 64, aligned: one warp per (row, head), in chunks of 8 positions.
// For the scores, lane 4g + r holds query elements [16r, 16r + 16) and
// scores position g of the chunk: 16 products and two shuffles, so a chunk
// costs a warp what one position cost before. For the weighted values, lane
// j holds output elements 2j, 2j + 1 and reads each position's pair (the
// warp reads a row coalesced); the 8 weights come by shuffles. No shared
// memory, no barriers, ~60 registers: every (row, head) of a decoding step
// is resident at once.
constexpr int kChunk8 = 8;

template <typename T> __device__ __forceinline__ void load16(const T *p, float v[16]) {
    load8_rw(p, v);
    load8_rw(p + 8, v + 8);
}

__device__ __forceinline__ float2 load2(const float *p) {
    return *reinterpret_cast<const float2 *>(p);
}
__device__ __forceinline__ float2 load2(const __nv_bfloat16 *p) {
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(p));
}

struct Softmax2 { // one warp's online softmax; each lane's two output elements
    float m = -INFINITY, l = 0.0f, a0 = 0.0f, a1 = 0.0f;
};

// Positions [0, n) of rows kb, vb (stride 64) against this lane's query slice qs.
template <typename T>
__device__ __forceinline__ void attend64(const T *kb, const T *vb, int n, int lane, const float *qs,
                                         Softmax2 &sm) {
    const int g = lane >> 2, r = lane & 3;
#pragma unroll 1
    for (int j0 = 0; j0 < n; j0 += kChunk8) {
        const bool valid = j0 + g < n;
        float k[16];
        load16(kb + (valid ? j0 + g : j0) * kFastD + 16 * r, k);
        float2 v[kChunk8];
#pragma unroll
        for (int c = 0; c < kChunk8; c++) // rows past n: a real row, weighted 0
            v[c] = load2(vb + min(j0 + c, n - 1) * kFastD + 2 * lane);
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < 16; i++)
            s += qs[i] * k[i];
        s += __shfl_xor_sync(0xffffffffu, s, 1);
        s += __shfl_xor_sync(0xffffffffu, s, 2);
        s = valid ? s : -INFINITY;
        float mc = s;
#pragma unroll
        for (int o = 4; o < 32; o <<= 1)
            mc = fmaxf(mc, __shfl_xor_sync(0xffffffffu, mc, o));
        const float mn = fmaxf(sm.m, mc), sc = rescale(sm.m, mn);
        const float p = valid ? expf(s - mn) : 0.0f;
        float ps = p; // one lane of each group of 4 counts
#pragma unroll
        for (int o = 4; o < 32; o <<= 1)
            ps += __shfl_xor_sync(0xffffffffu, ps, o);
        sm.l = sm.l * sc + ps;
        sm.m = mn;
        sm.a0 *= sc;
        sm.a1 *= sc;
#pragma unroll
        for (int c = 0; c < kChunk8; c++) {
            const float pc = __shfl_sync(0xffffffffu, p, 4 * c);
            sm.a0 += pc * v[c].x;
            sm.a1 += pc * v[c].y;
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(32 * kAnyWarps) decode64w_kernel(Args<T> a) {
    constexpr int D = kFastD;
    const int lane = threadIdx.x % 32, r = lane & 3;
    const int64_t wi = int64_t(blockIdx.x) * kAnyWarps + threadIdx.x / 32;
    if (wi >= a.Q * a.H)
        return;
    const int64_t q = wi / a.H, h = wi % a.H, v = q % a.V, HD = a.H * D;
    const int64_t pos = *a.pos_index;
    const int L = int(clamp64(*a.prefix_len, 0, a.S));
    const int st = int(clamp64(*a.step, 0, a.T_ - 1));
    const T *row = a.qkv + q * 3 * HD + h * D;
    const T *cq = a.cos_tab + pos * 2 * D, *sq = a.sin_tab + pos * 2 * D;
    const int64_t slot = (q * a.H + h) * a.T_;

    // This lane's slices [16r, 16r + 16) of the rotated query and key (the
    // key rounded as stored); lanes 0..3 write the key and the value.
    float qs[16], ks[16];
    {
        float x[16], c[16], sn[16];
        load16(row + 16 * r, x);
        load16(cq + 16 * r, c);
        load16(sq + 16 * r, sn);
#pragma unroll
        for (int i = 0; i < 16; i++)
            qs[i] = x[i] * c[i] + x[i ^ 1] * sn[i];
        load16(row + HD + 16 * r, x);
        load16(cq + D + 16 * r, c);
        load16(sq + D + 16 * r, sn);
#pragma unroll
        for (int i = 0; i < 16; i++)
            ks[i] = to_f32(from_f32<T>(x[i] * c[i] + x[i ^ 1] * sn[i]));
        if (lane < 4) {
            T *dk = a.suffix_k + (slot + st) * D + 16 * r,
              *dv = a.suffix_v + (slot + st) * D + 16 * r;
            store8(dk, ks);
            store8(dk + 8, ks + 8);
            load16(row + 2 * HD + 16 * r, x);
            store8(dv, x);
            store8(dv + 8, x + 8);
        }
    }

    // The prefix (this variate's context), the suffix's earlier steps, this step.
    Softmax2 sm;
    const int64_t pre = (v * a.H + h) * a.S * D;
    attend64(a.prefix_k + pre, a.prefix_v + pre, L, lane, qs, sm);
    attend64(a.suffix_k + slot * D, a.suffix_v + slot * D, st, lane, qs, sm);
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 16; i++)
        s += qs[i] * ks[i];
    s += __shfl_xor_sync(0xffffffffu, s, 1);
    s += __shfl_xor_sync(0xffffffffu, s, 2);
    const float2 val = load2(row + 2 * HD + 2 * lane);
    const float mn = fmaxf(sm.m, s), sc = rescale(sm.m, mn), p = expf(s - mn);
    const float l = sm.l * sc + p;
    T *o = a.out + q * HD + h * D + 2 * lane;
    o[0] = from_f32<T>((sm.a0 * sc + p * val.x) / l);
    o[1] = from_f32<T>((sm.a1 * sc + p * val.y) / l);
}

template <typename T> int launch(const Args<T> &a, bool fast, cudaStream_t stream) {
    // TOTO_DECODE_KERNEL=block|any picks another kernel (comparisons only).
    const char *which = getenv("TOTO_DECODE_KERNEL");
    const unsigned warp_blocks = unsigned((a.Q * a.H + kAnyWarps - 1) / kAnyWarps);
    if (fast && !which) {
        decode64w_kernel<T><<<warp_blocks, 32 * kAnyWarps, 0, stream>>>(a);
    } else if (fast && strcmp(which, "block") == 0) {
        const int64_t blocks = (a.Q / a.V + 31) / 32 * a.V * a.H;
        const int W = blocks * 4 < kTargetWarps ? 8 : 4;
        decode64_kernel<T><<<unsigned(blocks), dim3(32, unsigned(W)), 0, stream>>>(a);
    } else {
        decode_any_kernel<T><<<warp_blocks, 32 * kAnyWarps, 0, stream>>>(a);
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
