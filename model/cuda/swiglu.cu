// swiglu.cu - out = silu(gate) * value, the middle of the MLP: one pass over
// u [rows, 2H] (read once) and out [rows, H] (written once), with no
// intermediate silu tensor.
#include <algorithm>

#include "common.cuh"

namespace toto_cuda {
namespace {

constexpr int kThreads = 128;            // H = 3072: 384 vectors of 8, three blocks a row
constexpr int64_t kMaxRowBlocks = 65535; // grid.y; rows beyond are strided

// silu(g) * v in float32, rounded once by the caller's store. A correctly
// rounded reciprocal and a product, not a division: IEEE division calls a
// slow-path subroutine whose saved registers spill.
__device__ __forceinline__ float swiglu1(float g, float v) {
    return g * __frcp_rn(1.0f + expf(-g)) * v;
}

// The grid is (column blocks, row blocks): no 64-bit division per element.
// VEC: 8 outputs per thread per step (one or two 16-byte loads of the gate,
// as many of the value and of the output); else one, any alignment.
template <bool VEC, typename TU, typename TO>
__global__ void __launch_bounds__(kThreads)
    swiglu_kernel(TO *__restrict__ out, const TU *__restrict__ u, int64_t rows, int64_t hidden) {
    const int64_t width = VEC ? hidden / 8 : hidden;
    for (int64_t row = blockIdx.y; row < rows; row += gridDim.y) {
        const TU *g = u + row * 2 * hidden;
        TO *o = out + row * hidden;
        for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < width;
             c += int64_t(gridDim.x) * blockDim.x) {
            if (VEC) {
                float gv[8], vv[8];
                load8(g + 8 * c, gv);
                load8(g + hidden + 8 * c, vv);
#pragma unroll
                for (int k = 0; k < 8; k++)
                    gv[k] = swiglu1(gv[k], vv[k]);
                store8(o + 8 * c, gv);
            } else {
                o[c] = from_f32<TO>(swiglu1(to_f32(g[c]), to_f32(g[hidden + c])));
            }
        }
    }
}

} // namespace
} // namespace toto_cuda

using namespace toto_cuda;

extern "C" int toto_k_swiglu(void *out, toto_k_dtype out_dtype, const void *u, toto_k_dtype u_dtype,
                             int64_t rows, int64_t hidden, void *stream) {
    if (rows < 0 || hidden < 1 || !is_float_dtype(out_dtype) || !is_float_dtype(u_dtype) ||
        (rows > 0 && (!out || !u)) || rows > INT64_MAX / 2 / hidden)
        return int(cudaErrorInvalidValue);
    if (rows == 0)
        return 0;
    const bool vec = hidden % 8 == 0 && aligned16(out) && aligned16(u);
    const int64_t width = vec ? hidden / 8 : hidden;
    const dim3 grid(unsigned(std::min<int64_t>((width + kThreads - 1) / kThreads, 65535)),
                    unsigned(std::min(rows, kMaxRowBlocks)));
    return with_float_type(u_dtype, [&](auto tu) {
        using TU = decltype(tu);
        return with_float_type(out_dtype, [&](auto to) {
            using TO = decltype(to);
            auto *o = static_cast<TO *>(out);
            auto *x = static_cast<const TU *>(u);
            if (vec)
                swiglu_kernel<true><<<grid, kThreads, 0, as_stream(stream)>>>(o, x, rows, hidden);
            else
                swiglu_kernel<false><<<grid, kThreads, 0, as_stream(stream)>>>(o, x, rows, hidden);
            return launch_status();
        });
    });
}
