// train_model.cc - parameter initialisation, the differentiable path to the
// model's Weights, and checkpoint writing.
#include "train_model.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sys/stat.h>

#include "safetensors.h"

namespace toto_train {

namespace {

// Pre-norm residual stacks stay stable when each residual branch's output
// projection starts small (GPT-2's 1/sqrt(2 L) scaling).
struct Init {
    Params &p;
    torch::TensorOptions opts;

    void add(const std::string &name, torch::Tensor t, bool decay) {
        t = t.to(opts).set_requires_grad(true);
        p.named.emplace_back(name, t);
        (decay ? p.decayed : p.not_decayed).push_back(t);
    }
    void linear(const std::string &name, int64_t out, int64_t in, double std) {
        add(name + ".weight", torch::randn({out, in}) * std, true);
        add(name + ".bias", torch::zeros({out}), false);
    }
};

} // namespace

Params init_params(const toto_config &cfg, torch::Device device, uint64_t seed) {
    torch::manual_seed(seed);
    Params p;
    Init in{p, torch::TensorOptions().dtype(torch::kFloat32).device(device)};
    const int64_t D = cfg.embed_dim, H = cfg.mlp_hidden_dim, P = cfg.patch_size;
    const int64_t K = cfg.k_components;
    const double base = 0.02, resid = base / std::sqrt(2.0 * cfg.num_layers);
    // Scaled inputs are of unit size: a 1/sqrt(P) embedding keeps tokens so.
    in.linear("patch_embed.projection", D, P, 1.0 / std::sqrt(double(P)));
    for (int i = 0; i < cfg.num_layers; i++) {
        const std::string l = "transformer.layers." + std::to_string(i) + ".";
        in.add(l + "norm1.scale", torch::ones({D}), false);
        in.add(l + "norm2.scale", torch::ones({D}), false);
        in.linear(l + "attention.wQKV", 3 * D, D, base);
        in.linear(l + "attention.wO", D, D, resid);
        in.linear(l + "mlp.0", 2 * H, D, base);
        in.linear(l + "mlp.2", D, H, resid);
    }
    // No final norm in Toto: the unembedding reads the residual stream as is.
    in.linear("unembed", D * P, D, 1.0 / std::sqrt(double(D)));
    for (const char *h : {"df", "loc_proj", "scale_proj", "mixture_weights"})
        in.linear(std::string("output_distribution.") + h, K, D, base);
    return p;
}

toto::Weights to_weights(const Params &p, const toto_config &cfg) {
    auto get = [&](const std::string &name) -> const torch::Tensor & {
        for (const auto &[n, t] : p.named)
            if (n == name)
                return t;
        throw std::runtime_error("no parameter " + name);
    };
    const int64_t D = cfg.embed_dim, nh = cfg.num_heads, d = D / nh;
    // Queries (the first D rows) times 1/sqrt(d), keys and values unchanged.
    auto row_scale = torch::ones({3 * D}, get("unembed.weight").options());
    row_scale.narrow(0, 0, D).fill_(1.0 / std::sqrt(double(d)));
    toto::Weights w;
    w.patch_w = get("patch_embed.projection.weight");
    w.patch_b = get("patch_embed.projection.bias");
    std::vector<bool> kinds = toto::layer_is_space(cfg);
    for (int i = 0; i < cfg.num_layers; i++) {
        const std::string l = "transformer.layers." + std::to_string(i) + ".";
        toto::LayerWeights L;
        L.is_space = kinds[i];
        L.norm1 = get(l + "norm1.scale");
        L.norm2 = get(l + "norm2.scale");
        // (which, j, head) -> (which, head, j), as reorder_qkv_head_major in weights.cc.
        L.wqkv = get(l + "attention.wQKV.weight").view({3, d, nh, D}).permute({0, 2, 1, 3});
        L.wqkv = L.wqkv.reshape({3 * D, D}) * row_scale.unsqueeze(1);
        L.bqkv = get(l + "attention.wQKV.bias").view({3, d, nh}).permute({0, 2, 1});
        L.bqkv = L.bqkv.reshape({3 * D}) * row_scale;
        L.wo = get(l + "attention.wO.weight");
        L.bo = get(l + "attention.wO.bias");
        L.w12 = get(l + "mlp.0.weight");
        L.b12 = get(l + "mlp.0.bias");
        L.w3 = get(l + "mlp.2.weight");
        L.b3 = get(l + "mlp.2.bias");
        w.layers.push_back(L);
    }
    w.unembed_w = get("unembed.weight");
    w.unembed_b = get("unembed.bias");
    const std::string h = "output_distribution.";
    w.df_w = get(h + "df.weight");
    w.df_b = get(h + "df.bias");
    w.loc_w = get(h + "loc_proj.weight");
    w.loc_b = get(h + "loc_proj.bias");
    w.scale_w = get(h + "scale_proj.weight");
    w.scale_b = get(h + "scale_proj.bias");
    w.mix_w = get(h + "mixture_weights.weight");
    w.mix_b = get(h + "mixture_weights.bias");
    for (const auto &[n, t] : p.named)
        w.num_params += t.numel();
    return w;
}

namespace {

// The same text toto-make-checkpoint writes, which model/config.c reads.
bool write_config(const std::string &path, const toto_config &cfg, std::string &err) {
    FILE *out = std::fopen(path.c_str(), "w");
    if (!out) {
        err = path + ": cannot create: " + std::strerror(errno);
        return false;
    }
    std::fprintf(out,
                 "{\n  \"patch_size\": %d,\n  \"stride\": %d,\n  \"embed_dim\": %d,\n"
                 "  \"num_layers\": %d,\n  \"num_heads\": %d,\n  \"mlp_hidden_dim\": %d,\n"
                 "  \"dropout\": 0.0,\n  \"spacewise_every_n_layers\": %d,\n"
                 "  \"spacewise_first\": %s,\n"
                 "  \"scaler_cls\": \"<class 'model.scaler.CausalPatchStdMeanScaler'>\",\n"
                 "  \"output_distribution_classes\": [\n"
                 "    \"<class 'model.distribution.MixtureOfStudentTsOutput'>\"\n  ],\n"
                 "  \"output_distribution_kwargs\": {\n    \"k_components\": %d\n  },\n"
                 "  \"use_memory_efficient_attention\": true,\n"
                 "  \"stabilize_with_global\": %s,\n  \"scale_factor_exponent\": %.17g\n}\n",
                 cfg.patch_size, cfg.patch_size, cfg.embed_dim, cfg.num_layers, cfg.num_heads,
                 cfg.mlp_hidden_dim, cfg.spacewise_every_n_layers,
                 cfg.spacewise_first ? "true" : "false", cfg.k_components,
                 cfg.stabilize_with_global ? "true" : "false", cfg.scale_factor_exponent);
    bool failed = std::ferror(out);
    if (std::fclose(out) != 0 || failed) {
        err = path + ": write failed: " + std::strerror(errno);
        return false;
    }
    return true;
}

} // namespace

bool write_checkpoint(const std::string &dir, const Params &p, const toto_config &cfg,
                      const std::vector<std::pair<std::string, std::string>> &meta,
                      std::string &err) {
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
        err = dir + ": cannot create: " + std::strerror(errno);
        return false;
    }
    std::vector<torch::Tensor> host; // keeps the data alive while writing
    std::vector<std::string> names;
    std::vector<safetensors_tensor> tensors;
    for (const auto &[n, t] : p.named) {
        host.push_back(t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
        names.push_back("model." + n);
    }
    for (size_t i = 0; i < host.size(); i++) {
        safetensors_tensor st{};
        st.name = names[i].c_str();
        st.dtype = SAFETENSORS_F32;
        st.ndim = int(host[i].dim());
        for (int k = 0; k < st.ndim; k++)
            st.shape[k] = host[i].size(k);
        st.data = host[i].data_ptr();
        st.nbytes = size_t(host[i].numel()) * sizeof(float);
        tensors.push_back(st);
    }
    std::vector<const char *> kv = {"format", "pt"};
    for (const auto &[k, v] : meta) {
        kv.push_back(k.c_str());
        kv.push_back(v.c_str());
    }
    char msg[1024] = "";
    const std::string weights = dir + "/model.safetensors";
    if (safetensors_write(weights.c_str(), tensors.data(), tensors.size(), kv.data(), kv.size() / 2,
                          msg, sizeof msg) != 0) {
        err = msg;
        return false;
    }
    return write_config(dir + "/config.json", cfg, err);
}

} // namespace toto_train
