// fused.cc - the compiled network's fused operations (see fused.h).
#include "fused.h"

#include <torch/version.h>

#include <cstdlib>
#include <cstring>

#include "internal.h"

#ifdef TOTO_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda/kernels.h"
#endif

namespace toto {
namespace fused {

#ifdef TOTO_CUDA_KERNELS

namespace {

toto_k_dtype kernel_dtype(const torch::Tensor &t) {
    return t.scalar_type() == torch::kBFloat16 ? TOTO_K_BF16 : TOTO_K_F32;
}

// The current stream: the capture stream while a graph is being captured.
void *stream() {
    return c10::cuda::getCurrentCUDAStream().stream();
}

void check(int rc, const char *what) {
    if (rc != 0)
        throw Error(TOTO_EMODEL,
                    std::string("compiled path: ") + what + ": " + toto_cuda_error_string(rc));
}

} // namespace

bool available_on(const torch::Device &device) {
    return device.is_cuda();
}

bool available(const torch::Tensor &x) {
    return x.is_cuda() &&
           (x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kFloat32);
}

torch::Tensor rms_norm(const torch::Tensor &x, const torch::Tensor &scale) {
    auto y = torch::empty_like(x);
    const int64_t dim = x.size(-1);
    check(toto_k_rmsnorm(y.data_ptr(), kernel_dtype(y), x.data_ptr(), kernel_dtype(x),
                         scale.data_ptr(), kernel_dtype(scale), x.numel() / dim, dim, stream()),
          "rmsnorm");
    return y;
}

torch::Tensor add_rms_norm(torch::Tensor &x, const torch::Tensor &delta,
                           const torch::Tensor &scale) {
    auto y = torch::empty_like(x);
    const int64_t dim = x.size(-1);
    auto d = delta.contiguous();
    check(toto_k_add_rmsnorm(x.data_ptr(), kernel_dtype(x), d.data_ptr(), kernel_dtype(d),
                             y.data_ptr(), kernel_dtype(y), scale.data_ptr(), kernel_dtype(scale),
                             x.numel() / dim, dim, stream()),
          "add_rmsnorm");
    return y;
}

torch::Tensor swiglu(const torch::Tensor &u) {
    auto sizes = u.sizes().vec();
    const int64_t H = sizes.back() / 2;
    sizes.back() = H;
    auto out = torch::empty(sizes, u.options());
    check(toto_k_swiglu(out.data_ptr(), kernel_dtype(out), u.data_ptr(), kernel_dtype(u),
                        u.numel() / (2 * H), H, stream()),
          "swiglu");
    return out;
}

ScaledPatches patch_scaler(const torch::Tensor &x, const torch::Tensor &w, torch::Tensor &state,
                           bool continuing, int64_t P, bool stabilize, double exponent,
                           torch::ScalarType z_dtype, const torch::Tensor &mean_into,
                           const torch::Tensor &scale_into) {
    const int64_t M = x.size(0), T = x.size(1);
    ScaledPatches out;
    out.z = torch::empty({M, T}, x.options().dtype(z_dtype));
    out.mean =
        mean_into.defined() ? mean_into.view({M, T / P}) : torch::empty({M, T / P}, x.options());
    out.scale =
        scale_into.defined() ? scale_into.view({M, T / P}) : torch::empty({M, T / P}, x.options());
    check(toto_k_patch_scaler(out.z.data_ptr(), kernel_dtype(out.z), out.mean.data_ptr<double>(),
                              out.scale.data_ptr<double>(), state.data_ptr<double>(),
                              x.data_ptr<double>(), w.defined() ? w.data_ptr<double>() : nullptr, M,
                              T, P, continuing, stabilize, exponent, stream()),
          "patch scaler");
    return out;
}

void mixture_head(const torch::Tensor &z, double eps, torch::Tensor &df, torch::Tensor &loc,
                  torch::Tensor &scale, torch::Tensor &probs) {
    const int64_t P = z.size(-2), K = z.size(-1), M = z.numel() / (4 * P * K);
    for (const torch::Tensor *t : {&df, &loc, &scale, &probs})
        TORCH_CHECK(t->scalar_type() == torch::kFloat32 && t->is_contiguous() &&
                        t->numel() == M * P * K,
                    "mixture head: outputs must be dense float32 [M, P, K]");
    TORCH_CHECK(z.is_contiguous() && z.size(-3) == 4, "mixture head: z must be dense [M, 4, P, K]");
    check(toto_k_mixture_head(df.data_ptr<float>(), loc.data_ptr<float>(), scale.data_ptr<float>(),
                              probs.data_ptr<float>(), z.data_ptr(), kernel_dtype(z), M, P, K,
                              float(eps), stream()),
          "mixture head");
}

bool has_decode_attention() {
    const char *v = std::getenv("TOTO_DECODE_ATTENTION");
    return !(v && !std::strcmp(v, "0"));
}

torch::Tensor decode_attention(const torch::Tensor &qkv, const torch::Tensor &cos_tab,
                               const torch::Tensor &sin_tab, const torch::Tensor &pos_index,
                               const torch::Tensor &prefix_k, const torch::Tensor &prefix_v,
                               const torch::Tensor &prefix_len, torch::Tensor &suffix_k,
                               torch::Tensor &suffix_v, const torch::Tensor &step, int64_t V) {
    const int64_t Q = qkv.size(0), H = prefix_k.size(1), S = prefix_k.size(2);
    const int64_t d = prefix_k.size(3), T = suffix_k.size(2);
    auto out = torch::empty({Q, H * d}, qkv.options());
    check(toto_k_decode_attention(
              out.data_ptr(), qkv.data_ptr(), kernel_dtype(qkv), cos_tab.data_ptr(),
              sin_tab.data_ptr(), pos_index.data_ptr<int64_t>(), prefix_k.data_ptr(),
              prefix_v.data_ptr(), prefix_len.data_ptr<int64_t>(), suffix_k.data_ptr(),
              suffix_v.data_ptr(), step.data_ptr<int64_t>(), Q, V, H, d, S, T, stream()),
          "decode attention");
    return out;
}

#else

bool has_decode_attention() {
    return false;
}

torch::Tensor decode_attention(const torch::Tensor &, const torch::Tensor &, const torch::Tensor &,
                               const torch::Tensor &, const torch::Tensor &, const torch::Tensor &,
                               const torch::Tensor &, torch::Tensor &, torch::Tensor &,
                               const torch::Tensor &, int64_t) {
    throw Error(TOTO_EMODEL, "compiled path: built without the CUDA kernels");
}

ScaledPatches patch_scaler(const torch::Tensor &, const torch::Tensor &, torch::Tensor &, bool,
                           int64_t, bool, double, torch::ScalarType, const torch::Tensor &,
                           const torch::Tensor &) {
    throw Error(TOTO_EMODEL, "compiled path: built without the CUDA kernels");
}

void mixture_head(const torch::Tensor &, double, torch::Tensor &, torch::Tensor &, torch::Tensor &,
                  torch::Tensor &) {
    throw Error(TOTO_EMODEL, "compiled path: built without the CUDA kernels");
}

bool available(const torch::Tensor &) {
    return false;
}

bool available_on(const torch::Device &) {
    return false;
}

torch::Tensor rms_norm(const torch::Tensor &, const torch::Tensor &) {
    throw Error(TOTO_EMODEL, "compiled path: built without the CUDA kernels");
}

torch::Tensor add_rms_norm(torch::Tensor &, const torch::Tensor &, const torch::Tensor &) {
    throw Error(TOTO_EMODEL, "compiled path: built without the CUDA kernels");
}

torch::Tensor swiglu(const torch::Tensor &) {
    throw Error(TOTO_EMODEL, "compiled path: built without the CUDA kernels");
}

#endif

// scaled_dot_product_attention and its scale argument came with libtorch 2.1.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)

bool has_attention() {
    return true;
}

torch::Tensor causal_attention(const torch::Tensor &q, const torch::Tensor &k,
                               const torch::Tensor &v) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, /*scale=*/1.0);
}

#else

bool has_attention() {
    return false;
}

torch::Tensor causal_attention(const torch::Tensor &, const torch::Tensor &,
                               const torch::Tensor &) {
    throw Error(TOTO_EMODEL, "fused attention needs libtorch 2.1 or later");
}

#endif

} // namespace fused
} // namespace toto
