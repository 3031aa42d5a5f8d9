// fused.h - the compiled network's fused operations: model/cuda's kernels
// (RMSNorm, residual add + RMSNorm, SwiGLU) and libtorch's fused attention,
// for tensors on a GPU. Callers ask available() first and otherwise compose
// the same operations from plain libtorch ones (Network does).
#pragma once

#include <torch/torch.h>

namespace toto {
namespace fused {

// True when the kernels were built (a CUDA libtorch and nvcc) and x is on a
// GPU in float32 or bfloat16.
bool available(const torch::Tensor &x);
// True when the kernels were built and device is a GPU.
bool available_on(const torch::Device &device);

// x / sqrt(mean(x^2) + 1e-8) * scale over the last dimension; x contiguous.
torch::Tensor rms_norm(const torch::Tensor &x, const torch::Tensor &scale);

// x += delta (in place, rounded to x's dtype), then rms_norm(x): one pass.
torch::Tensor add_rms_norm(torch::Tensor &x, const torch::Tensor &delta,
                           const torch::Tensor &scale);

// u [..., 2H] (gate, value) -> silu(gate) * value [..., H].
torch::Tensor swiglu(const torch::Tensor &u);

// The causal patch scaler in one kernel (Scaler::init when state is
// [M, 6] output, Scaler::extend with w undefined and state [M, 6] updated in
// place): x, w [M, T] float64 -> z [M, T] in z_dtype and the last step's
// (mean, scale) of each patch, each [M, T/P] float64.
struct ScaledPatches {
    torch::Tensor z, mean, scale;
};
ScaledPatches patch_scaler(const torch::Tensor &x, const torch::Tensor &w, torch::Tensor &state,
                           bool continuing, int64_t P, bool stabilize, double exponent,
                           torch::ScalarType z_dtype);

// True when causal_attention() has a fused kernel (libtorch 2.1 or later).
bool has_attention();

// softmax(q k^T + causal mask) v over [rows, heads, n, d]; q is already
// scaled by 1/sqrt(d) (the weights carry it).
torch::Tensor causal_attention(const torch::Tensor &q, const torch::Tensor &k,
                               const torch::Tensor &v);

} // namespace fused
} // namespace toto
