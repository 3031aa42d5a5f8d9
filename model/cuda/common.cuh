// common.cuh - what the kernel files share: loads and stores of 8 elements in
// either dtype as float32, alignment tests, and the launch check.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "kernels.h"

namespace toto_cuda {

inline bool is_float_dtype(toto_k_dtype t) {
    return t == TOTO_K_F32 || t == TOTO_K_BF16;
}

inline bool aligned16(const void *p) {
    return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

inline cudaStream_t as_stream(void *s) {
    return static_cast<cudaStream_t>(s);
}

// The launch's own error (configuration, missing image for this GPU), not a
// later asynchronous one: those surface at the caller's next synchronization.
inline int launch_status() {
    return int(cudaGetLastError());
}

__device__ __forceinline__ float to_f32(float x) {
    return x;
}
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) {
    return __bfloat162float(x);
}

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) {
    return x;
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    return __float2bfloat16_rn(x);
}

// Eight consecutive elements at p (16-byte aligned: one 16-byte access for
// bf16, two for float) as float32.
__device__ __forceinline__ void load8(const float *p, float v[8]) {
    float4 a = __ldg(reinterpret_cast<const float4 *>(p));
    float4 b = __ldg(reinterpret_cast<const float4 *>(p) + 1);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
    v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
// Eight bfloat16 values, loaded as 16 bytes, widened to float.
__device__ __forceinline__ void unpack8(uint4 raw, float v[8]) {
    const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&raw);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 f = __bfloat1622float2(h[i]);
        v[2 * i] = f.x;
        v[2 * i + 1] = f.y;
    }
}
__device__ __forceinline__ void load8(const __nv_bfloat16 *p, float v[8]) {
    unpack8(__ldg(reinterpret_cast<const uint4 *>(p)), v);
}

// Plain (not read-only cache) loads, for data this kernel also writes.
__device__ __forceinline__ void load8_rw(const float *p, float v[8]) {
    float4 a = reinterpret_cast<const float4 *>(p)[0];
    float4 b = reinterpret_cast<const float4 *>(p)[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
    v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}
__device__ __forceinline__ void load8_rw(const __nv_bfloat16 *p, float v[8]) {
    unpack8(reinterpret_cast<const uint4 *>(p)[0], v);
}

__device__ __forceinline__ void store8(float *p, const float v[8]) {
    reinterpret_cast<float4 *>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4 *>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
}
__device__ __forceinline__ void store8(__nv_bfloat16 *p, const float v[8]) {
    uint4 raw;
    __nv_bfloat162 *h = reinterpret_cast<__nv_bfloat162 *>(&raw);
#pragma unroll
    for (int i = 0; i < 4; i++)
        h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    *reinterpret_cast<uint4 *>(p) = raw;
}

// Calls f(T()) with T the C++ type of a float dtype: a generic lambda then
// instantiates its body for float and for bfloat16.
template <typename F> int with_float_type(toto_k_dtype t, F &&f) {
    if (t == TOTO_K_F32)
        return f(float());
    return f(__nv_bfloat16());
}

} // namespace toto_cuda
