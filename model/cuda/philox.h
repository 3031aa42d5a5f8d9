// philox.h - Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC'11) and the conversions of its words to uniforms, for device
// and host code alike: the sampler uses it on the GPU and the tests replay it
// on the CPU. Checked against Random123's known-answer vectors
// (tests/cuda/test_sampler.cc).
#pragma once

#include <stdint.h>

#ifdef __CUDACC__
#define TOTO_HD __host__ __device__ __forceinline__
#else
#define TOTO_HD inline
#endif

namespace toto_cuda {

struct Philox4 {
    uint32_t v[4];
};

TOTO_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
#ifdef __CUDA_ARCH__
    *hi = __umulhi(a, b);
    *lo = a * b;
#else
    uint64_t p = uint64_t(a) * b;
    *hi = uint32_t(p >> 32);
    *lo = uint32_t(p);
#endif
}

// Ten rounds with the key bumped between them (Random123's philox4x32_10).
TOTO_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += W0;
            k1 += W1;
        }
        uint32_t hi0, lo0, hi1, lo1;
        philox_mulhilo(M0, ctr.v[0], &hi0, &lo0);
        philox_mulhilo(M1, ctr.v[2], &hi1, &lo1);
        Philox4 n = {{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
        ctr = n;
    }
    return ctr;
}

// Block j of draw (key, counter, p): the counter words are the 64-bit counter
// (low, high), the step p and the block index j.
TOTO_HD Philox4 philox_block(uint64_t key, uint64_t counter, uint32_t p, uint32_t j) {
    Philox4 c = {{uint32_t(counter), uint32_t(counter >> 32), p, j}};
    return philox4x32_10(c, uint32_t(key), uint32_t(key >> 32));
}

// In [0, 1), a multiple of 2^-24: exact in float32, so comparisons against
// it are the same on every device.
TOTO_HD float uniform_co(uint32_t w) {
    return float(w >> 8) * (1.0f / 16777216.0f);
}

// In (0, 1]: for logarithms. The low bits matter near 0 (the tails of a
// Box-Muller normal reach 6.7 sigma); near 1 float32 rounding is harmless.
TOTO_HD float uniform_oc(uint32_t w) {
    return (float(w) + 1.0f) * (1.0f / 4294967296.0f);
}

} // namespace toto_cuda
