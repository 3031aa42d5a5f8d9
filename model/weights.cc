// weights.cc - checkpoint tensors -> libtorch, every tensor checked against
// the config before any is used.
#include <cmath>
#include <cstring>
#include <memory>
#include <set>

#include "internal.h"
#include "safetensors.h"

namespace toto {

namespace {

using FilePtr = std::unique_ptr<safetensors_file, decltype(&safetensors_close)>;

std::string shape_str(const std::vector<int64_t> &shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); i++)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

torch::ScalarType torch_type(const safetensors_tensor *t) {
    switch (t->dtype) {
    case SAFETENSORS_F64:
        return torch::kFloat64;
    case SAFETENSORS_F32:
        return torch::kFloat32;
    case SAFETENSORS_F16:
        return torch::kFloat16;
    case SAFETENSORS_BF16:
        return torch::kBFloat16;
    default:
        return torch::kByte; // refused by the caller
    }
}

// Looks up names in a checkpoint and records which ones were used, so that
// anything left over can be refused too.
class TensorReader {
  public:
    TensorReader(safetensors_file *f, torch::Device dev, torch::ScalarType dt)
        : file_(f), device_(dev), dtype_(dt) {}

    const safetensors_tensor *find(const std::string &name) {
        const safetensors_tensor *t = safetensors_find(file_, ("model." + name).c_str());
        if (t)
            used_.insert(t->name);
        return t;
    }

    torch::Tensor get(const std::string &name, const std::vector<int64_t> &shape) {
        const safetensors_tensor *t = find(name);
        if (!t)
            throw Error(TOTO_EFORMAT, where() + ": missing tensor 'model." + name + "' (expected " +
                                          shape_str(shape) + ")");
        return convert(t, shape);
    }

    // Either of two names (the MLP's plain and fused layouts).
    torch::Tensor get_either(const std::string &a, const std::string &b,
                             const std::vector<int64_t> &shape) {
        const safetensors_tensor *t = find(a);
        if (!t)
            t = find(b);
        if (!t)
            throw Error(TOTO_EFORMAT, where() + ": missing tensor 'model." + a + "' (or 'model." +
                                          b + "'), expected " + shape_str(shape));
        return convert(t, shape);
    }

    void refuse_unused(const toto_config &cfg) const {
        for (size_t i = 0; i < safetensors_count(file_); i++) {
            const char *name = safetensors_at(file_, i)->name;
            if (used_.count(name) || !strcmp(name, "model.transformer.rotary_emb.freqs"))
                continue;
            throw Error(TOTO_EFORMAT, where() + ": unexpected tensor '" + name +
                                          "' for a config of " + std::to_string(cfg.num_layers) +
                                          " layers (config.json and weights do not match)");
        }
    }

    int64_t num_params = 0;

  private:
    std::string where() const {
        return safetensors_path(file_);
    }

    torch::Tensor convert(const safetensors_tensor *t, const std::vector<int64_t> &shape) {
        std::vector<int64_t> got(t->shape, t->shape + t->ndim);
        if (got != shape)
            throw Error(TOTO_EFORMAT, where() + ": tensor '" + t->name + "' has shape " +
                                          shape_str(got) + ", expected " + shape_str(shape) +
                                          " from config.json");
        torch::ScalarType src = torch_type(t);
        if (src == torch::kByte)
            throw Error(TOTO_EFORMAT, where() + ": tensor '" + t->name + "' has dtype " +
                                          safetensors_dtype_name(t->dtype) +
                                          ", expected a float type (F32, F64, BF16, F16)");
        // The mapping may be unaligned for the element type: copy, then convert.
        torch::Tensor host = torch::empty(shape, torch::TensorOptions().dtype(src));
        std::memcpy(host.data_ptr(), t->data, t->nbytes);
        torch::Tensor out = host.to(dtype_).to(device_);
        if (!torch::isfinite(out).all().item<bool>())
            throw Error(TOTO_EFORMAT, where() + ": tensor '" + t->name +
                                          "' holds NaN or infinite values (or overflows " +
                                          c10::toString(dtype_) + ")");
        num_params += out.numel();
        return out;
    }

    safetensors_file *file_;
    torch::Device device_;
    torch::ScalarType dtype_;
    std::set<std::string> used_;
};

// Upstream orders QKV features (which, j, head); reordering the rows once to
// (which, head, j) lets every head be a contiguous slice afterwards. The
// softmax's 1/sqrt(d) is folded into the queries: rotation is linear, so
// (q/sqrt(d)).k equals (q.k)/sqrt(d).
void reorder_qkv_head_major(LayerWeights &L, int64_t D, int64_t heads) {
    int64_t d = D / heads;
    L.wqkv = L.wqkv.view({3, d, heads, D}).permute({0, 2, 1, 3}).reshape({3 * D, D}).contiguous();
    L.bqkv = L.bqkv.view({3, d, heads}).permute({0, 2, 1}).reshape({3 * D}).contiguous();
    const double inv_sqrt_d = 1.0 / std::sqrt(double(d));
    L.wqkv.narrow(0, 0, D).mul_(inv_sqrt_d);
    L.bqkv.narrow(0, 0, D).mul_(inv_sqrt_d);
}

LayerWeights load_layer(TensorReader &r, const toto_config &cfg, int i, bool is_space) {
    const int64_t D = cfg.embed_dim, H = cfg.mlp_hidden_dim;
    const std::string p = "transformer.layers." + std::to_string(i) + ".";
    LayerWeights L;
    L.is_space = is_space;
    L.norm1 = r.get(p + "norm1.scale", {D});
    L.norm2 = r.get(p + "norm2.scale", {D});
    L.wqkv = r.get(p + "attention.wQKV.weight", {3 * D, D});
    L.bqkv = r.get(p + "attention.wQKV.bias", {3 * D});
    L.wo = r.get(p + "attention.wO.weight", {D, D});
    L.bo = r.get(p + "attention.wO.bias", {D});
    L.w12 = r.get_either(p + "mlp.0.weight", p + "mlp.0.w12.weight", {2 * H, D});
    L.b12 = r.get_either(p + "mlp.0.bias", p + "mlp.0.w12.bias", {2 * H});
    L.w3 = r.get_either(p + "mlp.2.weight", p + "mlp.0.w3.weight", {D, H});
    L.b3 = r.get_either(p + "mlp.2.bias", p + "mlp.0.w3.bias", {D});
    reorder_qkv_head_major(L, D, cfg.num_heads);
    return L;
}

} // namespace

std::vector<bool> layer_is_space(const toto_config &cfg) {
    std::vector<bool> kinds;
    int n = cfg.spacewise_every_n_layers;
    for (int i = 0; i < cfg.num_layers; i++) {
        if (n <= 0) {
            kinds.push_back(false);
            continue;
        }
        int pos = i % n;
        kinds.push_back(cfg.spacewise_first ? pos == 0 : pos == n - 1);
    }
    return kinds;
}

Weights load_weights(const std::string &path, const toto_config &cfg, torch::Device device,
                     torch::ScalarType dtype) {
    char err[1024] = "";
    FilePtr file(safetensors_open(path.c_str(), err, sizeof err), safetensors_close);
    if (!file)
        throw Error(TOTO_EFORMAT, err);
    TensorReader r(file.get(), device, dtype);
    const int64_t D = cfg.embed_dim, P = cfg.patch_size, K = cfg.k_components;

    Weights w;
    w.patch_w = r.get("patch_embed.projection.weight", {D, P});
    w.patch_b = r.get("patch_embed.projection.bias", {D});
    std::vector<bool> kinds = layer_is_space(cfg);
    for (int i = 0; i < cfg.num_layers; i++)
        w.layers.push_back(load_layer(r, cfg, i, kinds[i]));
    w.unembed_w = r.get("unembed.weight", {D * P, D});
    w.unembed_b = r.get("unembed.bias", {D * P});
    const std::string h = "output_distribution.";
    w.df_w = r.get(h + "df.weight", {K, D});
    w.df_b = r.get(h + "df.bias", {K});
    w.loc_w = r.get(h + "loc_proj.weight", {K, D});
    w.loc_b = r.get(h + "loc_proj.bias", {K});
    w.scale_w = r.get(h + "scale_proj.weight", {K, D});
    w.scale_b = r.get(h + "scale_proj.bias", {K});
    w.mix_w = r.get(h + "mixture_weights.weight", {K, D});
    w.mix_b = r.get(h + "mixture_weights.bias", {K});
    r.refuse_unused(cfg);
    w.num_params = r.num_params;
    return w;
}

} // namespace toto
