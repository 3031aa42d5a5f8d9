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
// mean_into, scale_into: when defined, dense float64 tensors of M * T/P
// elements that receive the statistics (returned as views of them).
ScaledPatches patch_scaler(const torch::Tensor &x, const torch::Tensor &w, torch::Tensor &state,
                           bool continuing, int64_t P, bool stabilize, double exponent,
                           torch::ScalarType z_dtype, const torch::Tensor &mean_into = {},
                           const torch::Tensor &scale_into = {});

// The mixture head's nonlinearities (toto_k_mixture_head): z [M, 4, P, K]
// contiguous, F32 or BF16, into df, loc, scale, probs: dense float32
// tensors of M * P * K elements each.
void mixture_head(const torch::Tensor &z, double eps, torch::Tensor &df, torch::Tensor &loc,
                  torch::Tensor &scale, torch::Tensor &probs);

// Whether decode_attention() was built (TOTO_DECODE_ATTENTION=0 turns it
// off, to compare with libtorch's operations).
bool has_decode_attention();

// One decoding step's attention (toto_k_decode_attention): qkv [Q, 3*H*d]
// of rows q = path * V + variate; rotary tables [n_pos, 2, d] read at
// pos_index; prefix keys/values [V, H, S, d] up to prefix_len; suffix
// [Q, H, T, d], this step's key and value written at step. Returns [Q, H*d].
torch::Tensor decode_attention(const torch::Tensor &qkv, const torch::Tensor &cos_tab,
                               const torch::Tensor &sin_tab, const torch::Tensor &pos_index,
                               const torch::Tensor &prefix_k, const torch::Tensor &prefix_v,
                               const torch::Tensor &prefix_len, torch::Tensor &suffix_k,
                               torch::Tensor &suffix_v, const torch::Tensor &step, int64_t V);

// True when causal_attention() has a fused kernel (libtorch 2.1 or later).
bool has_attention();

// softmax(q k^T + causal mask) v over [rows, heads, n, d]; q is already
// scaled by 1/sqrt(d) (the weights carry it).
torch::Tensor causal_attention(const torch::Tensor &q, const torch::Tensor &k,
                               const torch::Tensor &v);

} // namespace fused
} // namespace toto
