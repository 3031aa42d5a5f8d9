// cuda_test.h - what the CUDA kernel tests share: the skip without a device,
// checked CUDA calls, device buffers that free themselves, poisoning, host
// bfloat16, fresh random inputs and the relative error against a float64
// reference (METHOD.md: ||out - ref|| / ||ref||).
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "kernels.h"
#include "tap.h"

namespace ct {

// Prints the TAP skip plan and returns true when no device can run kernels;
// otherwise names device 0 in a diagnostic.
inline bool skip_without_device() {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        printf("1..0 # SKIP no CUDA device\n");
        return true;
    }
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
        printf("# device 0: %s, sm_%d%d\n", prop.name, prop.major, prop.minor);
    return false;
}

// A failed CUDA call is a failing check named after the call.
inline bool ok_call(int code, const char *what) {
    if (code == 0)
        return true;
    tap_check(0, "%s: %s (%d)", what, toto_cuda_error_string(code), code);
    return false;
}
#define CT_OK(call) ct::ok_call(int(call), #call)

// After a kernel function: its own return code, the runtime's last error,
// then whatever the kernel raised while running.
inline bool ok_launch(int rc, const char *what) {
    return ok_call(rc, what) && ok_call(int(cudaGetLastError()), "cudaGetLastError") &&
           ok_call(int(cudaDeviceSynchronize()), "cudaDeviceSynchronize");
}

struct DevBuf {
    void *p = nullptr;
    size_t bytes = 0;
    DevBuf() = default;
    DevBuf(const DevBuf &) = delete;
    DevBuf &operator=(const DevBuf &) = delete;
    ~DevBuf() {
        if (p)
            cudaFree(p);
    }
    bool alloc(size_t n) {
        bytes = n;
        return CT_OK(cudaMalloc(&p, n > 0 ? n : 1));
    }
    bool upload(const void *src, size_t n) {
        return alloc(n) && CT_OK(cudaMemcpy(p, src, n, cudaMemcpyHostToDevice));
    }
    template <typename T> bool upload(const std::vector<T> &v) {
        return upload(v.data(), v.size() * sizeof(T));
    }
    // All bytes 0xff: NaN in every float dtype, so an element the kernel
    // did not write shows.
    bool poison() {
        return CT_OK(cudaMemset(p, 0xff, bytes));
    }
    template <typename T> bool download(std::vector<T> &v) const {
        v.resize(bytes / sizeof(T));
        return CT_OK(cudaMemcpy(v.data(), p, bytes, cudaMemcpyDeviceToHost));
    }
};

// bfloat16 on the host: round to nearest even, as __float2bfloat16_rn.
inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return 0x7fc0;
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
}
inline float from_bf16(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

inline const char *dtype_name(toto_k_dtype t) {
    return t == TOTO_K_F32 ? "f32" : t == TOTO_K_BF16 ? "bf16" : "f64";
}
inline size_t dtype_size(toto_k_dtype t) {
    return t == TOTO_K_F32 ? 4 : t == TOTO_K_BF16 ? 2 : 8;
}

// Values in a dtype's host representation, and the exact values they hold.
struct Typed {
    toto_k_dtype dtype;
    std::vector<unsigned char> raw;
    std::vector<double> exact;
};

// n values from dist, stored in dtype; exact holds what was stored.
template <typename Dist> Typed make_typed(toto_k_dtype t, size_t n, std::mt19937_64 &rng, Dist d) {
    Typed out{t, std::vector<unsigned char>(n * dtype_size(t)), std::vector<double>(n)};
    for (size_t i = 0; i < n; i++) {
        const double v = d(rng);
        if (t == TOTO_K_F32) {
            float f = float(v);
            memcpy(&out.raw[i * 4], &f, 4);
            out.exact[i] = f;
        } else if (t == TOTO_K_BF16) {
            uint16_t h = to_bf16(float(v));
            memcpy(&out.raw[i * 2], &h, 2);
            out.exact[i] = from_bf16(h);
        } else {
            memcpy(&out.raw[i * 8], &v, 8);
            out.exact[i] = v;
        }
    }
    return out;
}

// Device bytes of dtype t back as doubles.
inline std::vector<double> to_doubles(toto_k_dtype t, const std::vector<unsigned char> &raw) {
    const size_t n = raw.size() / dtype_size(t);
    std::vector<double> out(n);
    for (size_t i = 0; i < n; i++) {
        if (t == TOTO_K_F32) {
            float f;
            memcpy(&f, &raw[i * 4], 4);
            out[i] = f;
        } else if (t == TOTO_K_BF16) {
            uint16_t h;
            memcpy(&h, &raw[i * 2], 2);
            out[i] = from_bf16(h);
        } else {
            memcpy(&out[i], &raw[i * 8], 8);
        }
    }
    return out;
}

// Number of NaN entries: elements still poisoned (or computed as NaN).
inline size_t count_nan(const std::vector<double> &v) {
    size_t n = 0;
    for (double x : v)
        n += std::isnan(x) ? 1 : 0;
    return n;
}

// ||out - ref|| / ||ref||; NaN anywhere makes it NaN (and fails any "<" test).
inline double rel_err(const std::vector<double> &out, const std::vector<double> &ref) {
    if (out.size() != ref.size())
        return NAN;
    double num = 0, den = 0;
    for (size_t i = 0; i < out.size(); i++) {
        num += (out[i] - ref[i]) * (out[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return std::sqrt(num) / std::sqrt(den);
}

// A fresh generator per check (a new seed each call, the same each run): no
// check reuses another's inputs, and a failure reproduces.
inline std::mt19937_64 fresh_rng() {
    static uint64_t calls = 0;
    return std::mt19937_64(0x9e3779b97f4a7c15ull * ++calls + 12345);
}

} // namespace ct
