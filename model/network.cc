// network.cc - the Toto transformer in libtorch: patch embedding, TIME and
// SPACE layers, rotary embedding with xPos, unembedding and the mixture head.
#include <cmath>
#include <limits>

#include "fused.h"
#include "internal.h"

namespace toto {

namespace {

// Adjacent pairs swapped: (x0, x1) -> (x1, x0). With the sign folded into
// the sine table this is upstream's rotate_half in one kernel.
torch::Tensor swap_pairs(const torch::Tensor &x) {
    return x.unflatten(-1, {x.size(-1) / 2, 2}).flip(-1).flatten(-2);
}

// torch.finfo(dtype).eps, as upstream clamps with.
double dtype_eps(torch::ScalarType t) {
    switch (t) {
    case torch::kFloat64:
        return std::numeric_limits<double>::epsilon();
    case torch::kBFloat16:
        return 0.0078125; // 2^-7
    case torch::kFloat16:
        return 0.0009765625; // 2^-10
    default:
        return std::numeric_limits<float>::epsilon();
    }
}

// Rotary tables are computed in float32 at least: bfloat16 cannot even count
// positions past 256.
torch::ScalarType table_dtype(torch::ScalarType model) {
    return model == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

// Softmax over the last axis after masking; rows are never fully masked
// (a token always sees itself).
torch::Tensor masked_softmax(torch::Tensor scores, const torch::Tensor &blocked) {
    if (blocked.defined())
        scores = scores.masked_fill(blocked, -std::numeric_limits<double>::infinity());
    return torch::softmax(scores, -1);
}

} // namespace

Network::Network(const toto_config &cfg, Weights w, torch::Device device, torch::ScalarType dtype)
    : cfg_(cfg), w_(std::move(w)), device_(device), dtype_(dtype),
      head_dim_(cfg.embed_dim / cfg.num_heads) {
    // Upstream computes both tables in float32 and converts them with the
    // model: doing the same keeps float64 runs within 1e-12 of it.
    auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    auto j2 = torch::arange(0, head_dim_, 2, f32);
    const auto tdt = table_dtype(dtype_);
    inv_freq_ =
        (1.0 / torch::pow(torch::tensor(10000.0f), j2 / float(head_dim_))).to(tdt).to(device_);
    zeta_ = ((j2 + 0.4f * float(head_dim_)) / (1.4f * float(head_dim_))).to(tdt).to(device_);
    // rot(x)_2j = -x_2j+1: the sign of the swapped pair goes into the sine table.
    rot_sign_ = torch::tensor({-1.0, 1.0}).repeat({head_dim_ / 2}).to(tdt).to(device_);
}

torch::Tensor Network::rms_norm(const torch::Tensor &x, const torch::Tensor &scale) const {
    return x / torch::sqrt(torch::mean(x * x, -1, true) + 1e-8) * scale;
}

torch::Tensor Network::mlp(const LayerWeights &L, const torch::Tensor &x) const {
    auto u = torch::linear(x, L.w12, L.b12);
    int64_t H = cfg_.mlp_hidden_dim;
    auto gated = torch::silu(u.narrow(-1, 0, H)) * u.narrow(-1, H, H);
    return torch::linear(gated, L.w3, L.b3);
}

torch::Tensor Network::embed(const torch::Tensor &patches) const {
    return torch::linear(patches, w_.patch_w, w_.patch_b).to(dtype_);
}

// Rotary tables for positions offset..offset+n-1, shared by every TIME layer
// of one call. xPos centres its scale on floor(last position / 2) of this
// call, so cached keys keep the centre of the call that made them (as
// upstream does).
Positions Network::positions(int64_t offset, int64_t n, int64_t centre_len) const {
    auto opts = torch::TensorOptions().dtype(table_dtype(dtype_)).device(device_);
    auto t = torch::arange(offset, offset + n, opts);
    double centre = std::floor(double(offset + centre_len - 1) / 2.0);
    auto power = (t - centre) / 512.0;
    auto scale = torch::pow(zeta_.unsqueeze(0), power.unsqueeze(1)); // [n, d/2]
    scale = torch::cat({scale, scale}, -1);
    auto scales = torch::stack({scale, scale.pow(-1)}); // queries, keys: [2, n, d]
    auto angles = torch::repeat_interleave(t.unsqueeze(1) * inv_freq_.unsqueeze(0), 2, 1);
    Positions pos;
    pos.cos = (angles.cos() * scales).to(dtype_).view({2, 1, 1, n, head_dim_});
    pos.sin = (angles.sin() * rot_sign_ * scales).to(dtype_).view({2, 1, 1, n, head_dim_});
    if (n > 1)
        pos.future = torch::ones({n, n}, opts.dtype(torch::kBool)).triu(1);
    return pos;
}

// qk: queries and keys stacked, [2, rows, heads, n, d]; xPos scales queries
// up and keys down.
torch::Tensor Network::rotate(const torch::Tensor &qk, const Positions &pos) const {
    return qk * pos.cos + swap_pairs(qk) * pos.sin;
}

torch::Tensor Network::attention_time(const LayerWeights &L, const torch::Tensor &x,
                                      size_t time_idx, const Positions &pos, KVCache *cache,
                                      const torch::Tensor *keys_out,
                                      const torch::Tensor *values_out) const {
    const int64_t B = x.size(0), V = x.size(1), S = x.size(2), nh = cfg_.num_heads;
    const int64_t d = head_dim_;
    // [B, V, S, 3, nh, d] -> three [B*V, nh, S, d]; q and k rotate together.
    auto qkv = torch::linear(x, L.wqkv, L.bqkv).view({B * V, S, 3, nh, d}).permute({2, 0, 3, 1, 4});
    auto qk = rotate(qkv.narrow(0, 0, 2), pos);
    auto q = qk[0], k = qk[1], v = qkv[2];
    torch::Tensor out;

    bool decoding = cache && cache->prefix_len > 0;
    if (!decoding) {
        if (cache) {
            cache->prefix_k[time_idx] = k.contiguous();
            cache->prefix_v[time_idx] = v.contiguous();
        }
        if (keys_out) {
            const_cast<torch::Tensor &>(*keys_out).copy_(k);
            const_cast<torch::Tensor &>(*values_out).copy_(v);
        }
        if (fused_ && fused::has_attention() && q.is_cuda()) {
            out = fused::causal_attention(q, k, v);
        } else {
            auto scores = torch::matmul(q, k.transpose(-1, -2));
            out = torch::matmul(masked_softmax(scores, pos.future), v);
        }
    } else {
        TORCH_CHECK(S == 1, "decoding takes one patch at a time");
        const int64_t G = cache->groups, R = B * V / G;
        int64_t len = cache->suffix_len + 1;
        auto &sk = cache->suffix_k[time_idx], &sv = cache->suffix_v[time_idx];
        sk.select(2, len - 1).copy_(k.select(2, 0));
        sv.select(2, len - 1).copy_(v.select(2, 0));
        auto keys = sk.narrow(2, 0, len), values = sv.narrow(2, 0, len);
        const auto &pk = cache->prefix_k[time_idx], &pv = cache->prefix_v[time_idx];
        const int64_t P0 = pk.size(2);
        // All G paths of a prefix row query its keys as one [G, d] block.
        auto qg = q.reshape({G, R, nh, d}).permute({1, 2, 0, 3}); // [R, nh, G, d]
        auto s_pre = torch::matmul(qg, pk.transpose(-1, -2));     // [R, nh, G, P0]
        s_pre = s_pre.permute({2, 0, 1, 3}).reshape({G * R, nh, 1, P0});
        auto s_suf = torch::matmul(q, keys.transpose(-1, -2)); // [GR, nh, 1, len]
        auto p = torch::softmax(torch::cat({s_pre, s_suf}, -1), -1);
        auto p_pre = p.narrow(-1, 0, P0).reshape({G, R, nh, P0}).permute({1, 2, 0, 3});
        auto o_pre = torch::matmul(p_pre, pv).permute({2, 0, 1, 3}).reshape({G * R, nh, 1, d});
        out = o_pre + torch::matmul(p.narrow(-1, P0, len), values);
    }
    // [B*V, nh, S, d] -> [B, V, S, nh*d] (head-major), then wO.
    out = out.view({B, V, nh, S, d}).permute({0, 1, 3, 2, 4}).reshape({B, V, S, nh * d});
    return torch::linear(out, L.wo, L.bo);
}

torch::Tensor Network::attention_space(const LayerWeights &L, const torch::Tensor &x,
                                       const torch::Tensor &ids) const {
    const int64_t B = x.size(0), V = x.size(1), S = x.size(2), nh = cfg_.num_heads;
    const int64_t d = head_dim_;
    // [B, V, S, 3, nh, d] -> three [B, S, nh, V, d]
    auto qkv =
        torch::linear(x, L.wqkv, L.bqkv).view({B, V, S, 3, nh, d}).permute({3, 0, 2, 4, 1, 5});
    auto q = qkv[0], k = qkv[1], v = qkv[2];
    auto scores = torch::matmul(q, k.transpose(-1, -2));
    auto blocked = (ids.unsqueeze(2) != ids.unsqueeze(1)).view({B, 1, 1, V, V});
    auto out = torch::matmul(masked_softmax(scores, blocked), v); // [B, S, nh, V, d]
    out = out.permute({0, 3, 1, 2, 4}).reshape({B, V, S, nh * d});
    return torch::linear(out, L.wo, L.bo);
}

torch::Tensor Network::backbone(const torch::Tensor &patches, const torch::Tensor &ids,
                                KVCache *cache, std::vector<torch::Tensor> *layer_outs) const {
    auto x = embed(patches);
    const bool decoding = cache && cache->prefix_len > 0;
    const int64_t n = patches.size(2);
    const Positions pos = positions(decoding ? cache->prefix_len + cache->suffix_len : 0, n, n);
    size_t time_idx = 0;
    for (const LayerWeights &L : w_.layers) {
        auto h = rms_norm(x, L.norm1);
        x = x + (L.is_space ? attention_space(L, h, ids)
                            : attention_time(L, h, time_idx++, pos, cache));
        x = x + mlp(L, rms_norm(x, L.norm2));
        if (layer_outs)
            layer_outs->push_back(x);
    }
    if (cache) {
        if (cache->prefix_len == 0)
            cache->prefix_len = patches.size(2);
        else
            cache->suffix_len += 1;
    }
    return x;
}

torch::Tensor Network::backbone_static(const torch::Tensor &patches, const torch::Tensor &ids,
                                       const Positions &pos, const std::vector<torch::Tensor> *keys,
                                       const std::vector<torch::Tensor> *values) const {
    auto x = embed(patches);
    if (fused_ && fused::available(x))
        return layers_fused(
            x.contiguous(), ids, [&](const LayerWeights &L, const torch::Tensor &h, size_t i) {
                return attention_time(L, h, i, pos, nullptr, keys ? &(*keys)[i] : nullptr,
                                      values ? &(*values)[i] : nullptr);
            });
    size_t time_idx = 0;
    for (const LayerWeights &L : w_.layers) {
        auto h = rms_norm(x, L.norm1);
        if (L.is_space) {
            x = x + attention_space(L, h, ids);
        } else {
            const torch::Tensor *ko = keys ? &(*keys)[time_idx] : nullptr;
            const torch::Tensor *vo = values ? &(*values)[time_idx] : nullptr;
            x = x + attention_time(L, h, time_idx, pos, nullptr, ko, vo);
            time_idx++;
        }
        x = x + mlp(L, rms_norm(x, L.norm2));
    }
    return x;
}

// The layers with each residual add fused into the next norm and the MLP's
// gate into one kernel (the same arithmetic in fewer launches) when the
// kernels exist, else the plain operations.
torch::Tensor Network::layers_fused(torch::Tensor x, const torch::Tensor &ids,
                                    const TimeAttention &attend) const {
    const std::vector<LayerWeights> &layers = w_.layers;
    const bool fz = fused_ && fused::available(x);
    auto add_norm = [&](const torch::Tensor &delta, const torch::Tensor &scale) {
        if (fz)
            return fused::add_rms_norm(x, delta, scale);
        x = x + delta;
        return rms_norm(x, scale);
    };
    auto h = fz ? fused::rms_norm(x, layers[0].norm1) : rms_norm(x, layers[0].norm1);
    size_t time_idx = 0;
    for (size_t i = 0; i < layers.size(); i++) {
        const LayerWeights &L = layers[i];
        auto delta = L.is_space ? attention_space(L, h, ids) : attend(L, h, time_idx++);
        h = add_norm(delta, L.norm2);
        delta = fz ? torch::linear(fused::swiglu(torch::linear(h, L.w12, L.b12)), L.w3, L.b3)
                   : mlp(L, h);
        if (i + 1 < layers.size())
            h = add_norm(delta, layers[i + 1].norm1);
        else
            x = x + delta;
    }
    return x;
}

// One query patch per path against the shared prefix and its own suffix.
torch::Tensor Network::attention_step(const LayerWeights &L, const torch::Tensor &x,
                                      size_t time_idx, const Positions &pos,
                                      const StepBuffers &buf) const {
    const int64_t N = x.size(0), V = x.size(1), nh = cfg_.num_heads, d = head_dim_;
    const double inf = std::numeric_limits<double>::infinity();
    auto projected = torch::linear(x, L.wqkv, L.bqkv);
    if (fused_ && buf.table_cos.defined() && fused::available(projected)) {
        auto sk = buf.suffix_k[time_idx], sv = buf.suffix_v[time_idx];
        auto out = fused::decode_attention(
            projected.view({N * V, 3 * nh * d}), buf.table_cos, buf.table_sin, buf.pos_index,
            buf.prefix_k[time_idx], buf.prefix_v[time_idx], buf.prefix_len, sk, sv, buf.step, V);
        return torch::linear(out.view({N, V, 1, nh * d}), L.wo, L.bo);
    }
    // [N, V, 1, 3, nh, d] -> three [N*V, nh, 1, d]
    auto qkv = projected.view({N * V, 1, 3, nh, d}).permute({2, 0, 3, 1, 4});
    auto qk = rotate(qkv.narrow(0, 0, 2), pos);
    auto q = qk[0], k = qk[1], v = qkv[2];
    auto sk = buf.suffix_k[time_idx], sv = buf.suffix_v[time_idx];
    sk.index_copy_(2, buf.step, k);
    sv.index_copy_(2, buf.step, v);
    const auto &pk = buf.prefix_k[time_idx], &pv = buf.prefix_v[time_idx];
    const int64_t S = pk.size(2), T = sk.size(2);
    // All N paths of a variate query its prefix as one [N, d] block.
    auto qg = q.reshape({N, V, nh, d}).permute({1, 2, 0, 3}); // [V, nh, N, d]
    auto s_pre = torch::matmul(qg, pk.transpose(-1, -2)).masked_fill(buf.prefix_blocked, -inf);
    s_pre = s_pre.permute({2, 0, 1, 3}).reshape({N * V, nh, 1, S});
    auto s_suf = torch::matmul(q, sk.transpose(-1, -2)).masked_fill(buf.suffix_blocked, -inf);
    auto p = torch::softmax(torch::cat({s_pre, s_suf}, -1), -1);
    auto p_pre = p.narrow(-1, 0, S).reshape({N, V, nh, S}).permute({1, 2, 0, 3});
    auto o_pre = torch::matmul(p_pre, pv).permute({2, 0, 1, 3}).reshape({N * V, nh, 1, d});
    auto out = o_pre + torch::matmul(p.narrow(-1, S, T), sv);
    out = out.view({N, V, nh, 1, d}).permute({0, 1, 3, 2, 4}).reshape({N, V, 1, nh * d});
    return torch::linear(out, L.wo, L.bo);
}

torch::Tensor Network::decode_step_static(const torch::Tensor &patches, const torch::Tensor &ids,
                                          const Positions &pos, const StepBuffers &buf) const {
    return layers_fused(embed(patches).contiguous(), ids,
                        [&](const LayerWeights &L, const torch::Tensor &h, size_t i) {
                            return attention_step(L, h, i, pos, buf);
                        });
}

void Network::fold_head() {
    const int64_t D = cfg_.embed_dim, P = cfg_.patch_size, K = w_.df_w.size(0);
    auto f64 = [](const torch::Tensor &t) { return t.to(torch::kFloat64); };
    auto U = f64(w_.unembed_w).view({P, D, D}); // [p, unembedded, hidden]
    auto c = f64(w_.unembed_b).view({P, D});
    std::vector<torch::Tensor> ws, bs;
    for (const auto &[W, b] : {std::pair(w_.df_w, w_.df_b), std::pair(w_.loc_w, w_.loc_b),
                               std::pair(w_.scale_w, w_.scale_b), std::pair(w_.mix_w, w_.mix_b)}) {
        auto Wd = f64(W);                                                    // [K, unembedded]
        ws.push_back(torch::matmul(Wd.unsqueeze(0), U).reshape({P * K, D})); // [p, k, hidden]
        bs.push_back((torch::matmul(c, Wd.t()) + f64(b)).reshape({P * K}));
    }
    head_w_ = torch::cat(ws).to(w_.unembed_w.scalar_type()).contiguous();
    head_b_ = torch::cat(bs).to(w_.unembed_b.scalar_type()).contiguous();
}

// The folded head's product, [..., 4, P, K]: the pre-activations of the
// degrees of freedom, locations, scales and mixture logits.
torch::Tensor Network::folded_head_product(const torch::Tensor &hidden) const {
    auto sizes = hidden.sizes().vec();
    sizes.back() = 4;
    sizes.insert(sizes.end(), {cfg_.patch_size, w_.df_w.size(0)});
    return torch::linear(hidden, head_w_, head_b_).view(sizes);
}

bool Network::fused_head(const torch::Tensor &hidden) const {
    return fused_ && head_w_.defined() && fused::available(hidden);
}

void Network::head_into(const torch::Tensor &hidden, HeadOut &out) const {
    if (fused_head(hidden)) {
        fused::mixture_head(folded_head_product(hidden).contiguous(), dtype_eps(dtype_), out.df,
                            out.loc, out.scale, out.probs);
        return;
    }
    HeadOut h = head(hidden);
    out.df.copy_(h.df);
    out.loc.copy_(h.loc);
    out.scale.copy_(h.scale);
    out.probs.copy_(h.probs);
}

HeadOut Network::head(const torch::Tensor &hidden) const {
    const int64_t D = cfg_.embed_dim, P = cfg_.patch_size, K = w_.df_w.size(0);
    const double eps = dtype_eps(dtype_);
    if (fused_head(hidden)) {
        auto sizes = hidden.sizes().vec();
        sizes.back() = P;
        sizes.push_back(K);
        auto f32 = hidden.options().dtype(torch::kFloat32);
        HeadOut h{torch::empty(sizes, f32), torch::empty(sizes, f32), torch::empty(sizes, f32),
                  torch::empty(sizes, f32)};
        head_into(hidden, h);
        return h;
    }
    torch::Tensor df, loc, scale, mix; // [..., P, K] before their nonlinearities
    if (head_w_.defined()) {
        auto z = folded_head_product(hidden); // [..., 4, P, K]
        df = z.select(-3, 0);
        loc = z.select(-3, 1).contiguous();
        scale = z.select(-3, 2);
        mix = z.select(-3, 3);
    } else {
        auto sizes = hidden.sizes().vec();
        sizes.back() = P;
        sizes.push_back(D);
        auto y = torch::linear(hidden, w_.unembed_w, w_.unembed_b).view(sizes); // [..., P, D]
        df = torch::linear(y, w_.df_w, w_.df_b);
        loc = torch::linear(y, w_.loc_w, w_.loc_b);
        scale = torch::linear(y, w_.scale_w, w_.scale_b);
        mix = torch::linear(y, w_.mix_w, w_.mix_b);
    }
    HeadOut h;
    h.df = 2.0 + torch::softplus(df).clamp_min(eps);
    h.loc = loc;
    h.scale = torch::softplus(scale).clamp_min(eps);
    h.probs = torch::softmax(mix, -1);
    if (dtype_ == torch::kBFloat16 || dtype_ == torch::kFloat16) {
        // Sampling and the statistics want at least float32 parameters.
        h.df = h.df.to(torch::kFloat32);
        h.loc = h.loc.to(torch::kFloat32);
        h.scale = h.scale.to(torch::kFloat32);
        h.probs = h.probs.to(torch::kFloat32);
    }
    return h;
}

KVCache Network::make_cache() const {
    KVCache c;
    size_t n_time = 0;
    for (const LayerWeights &L : w_.layers)
        n_time += !L.is_space;
    c.prefix_k.resize(n_time);
    c.prefix_v.resize(n_time);
    return c;
}

KVCache Network::fork_cache(const KVCache &src, const torch::Tensor &prefix_rows, int64_t groups,
                            int64_t max_steps) const {
    KVCache c;
    c.groups = groups;
    c.prefix_len = src.prefix_len;
    const int64_t R = prefix_rows.size(0);
    for (size_t i = 0; i < src.prefix_k.size(); i++) {
        c.prefix_k.push_back(src.prefix_k[i].index_select(0, prefix_rows));
        c.prefix_v.push_back(src.prefix_v[i].index_select(0, prefix_rows));
        auto shape = c.prefix_k.back().sizes().vec(); // [R, nh, S, d]
        shape[0] = groups * R;
        shape[2] = std::max<int64_t>(max_steps, 1);
        auto opts = torch::TensorOptions().dtype(dtype_).device(device_);
        c.suffix_k.push_back(torch::empty(shape, opts));
        c.suffix_v.push_back(torch::empty(shape, opts));
    }
    return c;
}

torch::Tensor replace_extreme(const torch::Tensor &t, torch::ScalarType model_dtype) {
    double half_max = model_dtype == torch::kFloat64 ? std::numeric_limits<double>::max() / 2
                                                     : std::numeric_limits<float>::max() / 2.0;
    auto bad = torch::isnan(t) | torch::isinf(t) | (t.abs() >= half_max);
    return torch::where(bad, torch::zeros_like(t), t);
}

} // namespace toto
