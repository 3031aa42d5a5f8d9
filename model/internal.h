// internal.h - the C++ side of model/: weights, the network, the scaler and
// the decoder. Nothing here is visible through toto.h; exceptions thrown here
// are caught in toto.cc and turned into error strings.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "toto.h"

namespace toto {

// A failure that names what is wrong with a file or request; toto.cc maps it
// to the C error code carried here.
struct Error : std::runtime_error {
    int code;
    Error(int c, const std::string &msg) : std::runtime_error(msg), code(c) {}
};

// The smallest power of two >= n (bucket sizes).
inline int64_t next_pow2(int64_t n) {
    int64_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

struct LayerWeights {
    bool is_space; // SPACE layers attend across variates; TIME layers along patches
    torch::Tensor norm1, norm2;
    // Rows reordered head-major at load, (which, head, j), and the query rows
    // prescaled by 1/sqrt(head dim) so attention needs no separate scaling.
    torch::Tensor wqkv, bqkv;
    torch::Tensor wo, bo;
    torch::Tensor w12, b12; // D -> 2H (gate, value)
    torch::Tensor w3, b3;   // H -> D
};

struct Weights {
    torch::Tensor patch_w, patch_b;
    std::vector<LayerWeights> layers;
    torch::Tensor unembed_w, unembed_b;
    torch::Tensor df_w, df_b, loc_w, loc_b, scale_w, scale_b, mix_w, mix_b;
    int64_t num_params = 0;
};

// Reads dir/model.safetensors, checks every tensor against cfg, converts to
// dtype on device. Throws Error naming the file, tensor and expectation.
Weights load_weights(const std::string &path, const toto_config &cfg, torch::Device device,
                     torch::ScalarType dtype);

// Layer kinds from the config: true = SPACE.
std::vector<bool> layer_is_space(const toto_config &cfg);

// Keys and values of the TIME layers. The prefix holds the context pass
// ([R, heads, S, d]); the suffix holds decoded patches of G paths per prefix
// row ([G*R, heads, steps, d]). Paths share their prefix: exact, and the
// reason sampled forecasts cost one context pass.
struct KVCache {
    std::vector<torch::Tensor> prefix_k, prefix_v; // one per TIME layer
    std::vector<torch::Tensor> suffix_k, suffix_v;
    int64_t prefix_len = 0;
    int64_t suffix_len = 0;
    int64_t groups = 1; // G
};

// Rotary tables for the positions of one call (and its causal mask).
struct Positions {
    // [2, 1, 1, n, d] for queries and keys: cos * xPos scale, and sin * xPos
    // scale with the sign of rotate_half (negative on even features).
    torch::Tensor cos, sin;
    torch::Tensor future; // [n, n] true above the diagonal; n > 1 only
};

// Mixture head outputs, each [..., K].
struct HeadOut {
    torch::Tensor df, loc, scale, probs;
};

class Network {
  public:
    Network(const toto_config &cfg, Weights w, torch::Device device, torch::ScalarType dtype);

    // patches: scaled values [B, V, S, P] in the model dtype; ids: [B, V]
    // group ids (int64). With cache == nullptr attends over these S patches
    // only (positions 0..S-1). With a cache whose prefix is empty, fills the
    // prefix. Otherwise S must be 1 and the patch is decoded at position
    // prefix_len + suffix_len. layer_outs, when given, receives every layer's
    // output. Returns the last layer's output [B, V, S, D].
    torch::Tensor backbone(const torch::Tensor &patches, const torch::Tensor &ids, KVCache *cache,
                           std::vector<torch::Tensor> *layer_outs = nullptr) const;

    // The context pass on static shapes (the compiled path): positions come
    // from the caller (for S patches, centred as for the real length), and
    // each TIME layer's keys and values are copied into keys[i] / values[i]
    // ([B*V, heads, S, d] views of a pool) when given. No host sync, no
    // shape-dependent host logic: safe to capture in a CUDA graph.
    torch::Tensor backbone_static(const torch::Tensor &patches, const torch::Tensor &ids,
                                  const Positions &pos, const std::vector<torch::Tensor> *keys,
                                  const std::vector<torch::Tensor> *values) const;

    // One decoding step on static buffers (the compiled path's path graphs):
    // patches [N, V, 1, P] of N paths, pos the tables of its one position.
    // Every TIME layer writes this step's keys and values into its suffix
    // buffer [N*V, heads, T, d] at index step ([1] int64 on the device) and
    // attends over the prefix [V, heads, Smax, d] its N paths share, minus
    // prefix_blocked ([Smax] bool), and over the suffix minus suffix_blocked
    // ([T] bool). Returns [N, V, 1, D].
    struct StepBuffers {
        std::vector<torch::Tensor> prefix_k, prefix_v, suffix_k, suffix_v; // per TIME layer
        torch::Tensor prefix_blocked, suffix_blocked, step;
        // For the fused kernel: every position's tables [n_pos, 2, d], this
        // step's position and the real prefix length ([1] int64 each).
        torch::Tensor table_cos, table_sin, pos_index, prefix_len;
    };
    torch::Tensor decode_step_static(const torch::Tensor &patches, const torch::Tensor &ids,
                                     const Positions &pos, const StepBuffers &buf) const;

    // Rotary tables for positions offset..offset+n-1, with xPos centred as for
    // a call of centre_len positions (centre_len = n in the eager path).
    Positions positions(int64_t offset, int64_t n, int64_t centre_len) const;

    torch::Tensor embed(const torch::Tensor &patches) const;

    // hidden [..., D] -> the head for the next patch's P steps, each [..., P, K].
    HeadOut head(const torch::Tensor &hidden) const;
    // head() into out's tensors (dense float32 [..., P, K]): with the fused
    // kernels and a folded head, written there by toto_k_mixture_head in one
    // launch (computed in float32 throughout); otherwise head() copied in.
    void head_into(const torch::Tensor &hidden, HeadOut &out) const;
    // Folds the unembedding into the four output projections: every output
    // is linear in hidden before its nonlinearity, so W_o (U h + c) + b_o =
    // (W_o U) h + (W_o c + b_o), computed once in float64. The head then
    // reads 4 P K D weights instead of P D D + 4 K D (4.7 M instead of 38 M
    // on the published shape) in one matrix product.
    void fold_head();

    // An empty cache: the next backbone() call fills its prefix.
    KVCache make_cache() const;
    // Reuses the prefix of src for G paths each (rows R -> G*R suffix rows).
    KVCache fork_cache(const KVCache &src, const torch::Tensor &prefix_rows, int64_t groups,
                       int64_t max_steps) const;

    const toto_config &config() const {
        return cfg_;
    }
    torch::Device device() const {
        return device_;
    }
    torch::ScalarType dtype() const {
        return dtype_;
    }
    // The patch embedding's precision: the scaled inputs reach far outside
    // the unit range (left padding scales to -mean/scale), so a bfloat16
    // network embeds them in float32 (Weights::patch_w) and continues in its
    // own dtype.
    torch::ScalarType input_dtype() const {
        return w_.patch_w.scalar_type();
    }
    int64_t num_params() const {
        return w_.num_params;
    }
    // The compiled network on a GPU: backbone_static() through the fused
    // kernels (model/fused.h) where they exist.
    void use_fused_kernels(bool on) {
        fused_ = on;
    }

  private:
    torch::Tensor folded_head_product(const torch::Tensor &hidden) const;
    bool fused_head(const torch::Tensor &hidden) const;
    torch::Tensor attention_time(const LayerWeights &L, const torch::Tensor &x, size_t time_idx,
                                 const Positions &pos, KVCache *cache,
                                 const torch::Tensor *keys_out = nullptr,
                                 const torch::Tensor *values_out = nullptr) const;
    torch::Tensor attention_space(const LayerWeights &L, const torch::Tensor &x,
                                  const torch::Tensor &ids) const;
    torch::Tensor mlp(const LayerWeights &L, const torch::Tensor &x) const;
    torch::Tensor rms_norm(const torch::Tensor &x, const torch::Tensor &scale) const;
    torch::Tensor rotate(const torch::Tensor &qk, const Positions &pos) const;
    // The layers with fused kernels where they exist; attend(layer, normed
    // input, TIME layer index) gives each TIME layer's attention output.
    using TimeAttention =
        std::function<torch::Tensor(const LayerWeights &, const torch::Tensor &, size_t)>;
    torch::Tensor layers_fused(torch::Tensor x, const torch::Tensor &ids,
                               const TimeAttention &attend) const;
    torch::Tensor attention_step(const LayerWeights &L, const torch::Tensor &x, size_t time_idx,
                                 const Positions &pos, const StepBuffers &buf) const;

    toto_config cfg_;
    Weights w_;
    torch::Device device_;
    torch::ScalarType dtype_;
    int64_t head_dim_;
    torch::Tensor inv_freq_; // [d/2], evaluated in float32 like upstream
    torch::Tensor zeta_;     // [d/2], xPos bases, float32 then converted
    torch::Tensor rot_sign_; // [d]: -1, +1, -1, ...
    bool fused_ = false;
    torch::Tensor head_w_, head_b_; // fold_head(): [4 P K, D], [4 P K]; undefined: not folded
};

// The causal patch scaler (float64). init() scales a context; extend() takes
// one fully observed patch per row and returns its statistics, continuing the
// running sums, with the global clamp fixed from the context.
class Scaler {
  public:
    Scaler(const toto_config &cfg) : cfg_(cfg) {}
    // x, w: [M, T] float64 (T a multiple of P, w 0/1). Returns per-patch
    // (mean, scale), each [M, T/P].
    std::pair<torch::Tensor, torch::Tensor> init(const torch::Tensor &x, const torch::Tensor &w);
    // xn: [M, P] float64 -> (mean, scale) of that patch, each [M].
    std::pair<torch::Tensor, torch::Tensor> extend(const torch::Tensor &xn);
    // Keeps the state of rows only, repeated for G paths (R -> G*R rows,
    // path-major: row g*R + r continues row r).
    void fork(const torch::Tensor &rows, int64_t groups);
    // Full recomputation over x, w with global statistics over the first
    // prefix steps only (the no-cache reference path).
    std::pair<torch::Tensor, torch::Tensor> recompute(const torch::Tensor &x,
                                                      const torch::Tensor &w, int64_t prefix);
    // The running state at the last step, [6, M]: (sum w, sum wx, m2, last
    // mean, clamp low, clamp high). A scaler made from rows of it continues
    // those rows exactly.
    torch::Tensor state() const;
    Scaler(const toto_config &cfg, const torch::Tensor &state);

  private:
    std::pair<torch::Tensor, torch::Tensor> causal(const torch::Tensor &x, const torch::Tensor &w,
                                                   bool continuing);
    void set_global(const torch::Tensor &x, const torch::Tensor &w);

    toto_config cfg_;
    torch::Tensor sum_w_, sum_wx_, m2_, last_mean_; // running state at the last step, [M]
    torch::Tensor lo_, hi_;                         // clamp bounds from the global scale, [M]
};

// (x - mean) / scale per patch, computed in float64 and handed to the model
// in dtype: x [rows, S*P], mean and scale [rows, S] -> [rows / V, V, S, P].
torch::Tensor scale_patches(const torch::Tensor &x, const torch::Tensor &mean,
                            const torch::Tensor &scale, int64_t V, int64_t P,
                            torch::ScalarType dtype);

class CompiledContext; // compiled.h

struct DecodeOptions {
    bool use_kv_cache = true;
    // The compiled path: context passes through planned static buckets
    // (CUDA graphs on a GPU) on its own network in the compute dtype; decoding
    // steps run eagerly on that network. nullptr: the eager path.
    CompiledContext *compiled = nullptr;
};

// Runs a batch of validated requests. results are filled (arrays allocated
// with malloc); a request that fails alone gets its own error.
void forecast_batch(const Network &net, const DecodeOptions &opt, const toto_request *reqs,
                    toto_result *results, int n);

// Replaces NaN, +-inf and values at or above half the dtype's maximum by 0.
torch::Tensor replace_extreme(const torch::Tensor &t, torch::ScalarType model_dtype);

} // namespace toto
