// compiled.cc - the compiled path's planned, warmed context passes (see compiled.h).
#include "compiled.h"

#include <chrono>

#ifdef TOTO_TORCH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace toto {

namespace {

int64_t next_pow2(int64_t n) {
    int64_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

// Shorter contexts pad to this many patches: fewer buckets, little waste.
constexpr int64_t kMinPatches = 4;

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

struct CompiledContext::Bucket {
    int64_t V, B, S;
    torch::Tensor z, ids, sentinel_ids, last; // static inputs
    Positions pos;                            // static rotary tables; constant causal mask
    std::vector<torch::Tensor> keys, values;  // views of the pools, [B*V, heads, S, d]
    HeadOut head;                             // static outputs
#ifdef TOTO_TORCH_CUDA
    std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

struct CompiledContext::GraphState {
#ifdef TOTO_TORCH_CUDA
    explicit GraphState(c10::DeviceIndex device)
        : stream(c10::cuda::getStreamFromPool(false, device)), pool(at::cuda::graph_pool_handle()) {
    }
    c10::cuda::CUDAStream stream;
    at::cuda::MempoolId_t pool;
#endif
};

CompiledContext::CompiledContext(std::unique_ptr<Network> net, const CompiledOptions &opt)
    : net_(std::move(net)), opt_(opt) {
#ifndef TOTO_TORCH_CUDA
    opt_.graphs = false;
#endif
    if (!net_->device().is_cuda())
        opt_.graphs = false;
    if (opt_.graphs)
        plan_and_warm();
    warm_ = true;
}

CompiledContext::~CompiledContext() = default;

CompiledStats CompiledContext::stats() const {
    CompiledStats s = plan_;
    s.runs = runs_;
    s.split_runs = split_runs_;
    s.eager_fallbacks = eager_fallbacks_;
    s.captures_after_warmup = late_captures_;
    return s;
}

// A bucket's static inputs, and its keys and values as views of the pools.
std::unique_ptr<CompiledContext::Bucket> CompiledContext::make_bucket(int64_t V, int64_t B,
                                                                      int64_t S) {
    const toto_config &cfg = net_->config();
    const int64_t D = cfg.embed_dim, nh = cfg.num_heads, d = D / nh, P = cfg.patch_size;
    const auto dev = net_->device();
    const auto ids_opts = torch::TensorOptions().dtype(torch::kInt64).device(dev);
    auto b = std::make_unique<Bucket>();
    b->V = V;
    b->B = B;
    b->S = S;
    b->z =
        torch::zeros({B, V, S, P}, torch::TensorOptions().dtype(net_->input_dtype()).device(dev));
    // Padded variates each get a group of their own, out of reach of int32 ids.
    b->sentinel_ids =
        torch::arange(V, ids_opts).neg().sub(int64_t(1) << 40).unsqueeze(0).repeat({B, 1});
    b->ids = b->sentinel_ids.clone();
    b->last = torch::full({1}, S - 1, ids_opts);
    b->pos = net_->positions(0, S, S);
    for (size_t i = 0; i < pool_k_.size(); i++) {
        b->keys.push_back(pool_k_[i].narrow(0, 0, B * V * S * D).view({B * V, nh, S, d}));
        b->values.push_back(pool_v_[i].narrow(0, 0, B * V * S * D).view({B * V, nh, S, d}));
    }
    return b;
}

// The network on the bucket's static buffers (what its graph replays).
void CompiledContext::forward(Bucket &b) {
    auto hidden = net_->backbone_static(b.z, b.ids, b.pos, &b.keys, &b.values);
    b.head = net_->head(hidden.index_select(2, b.last).squeeze(2));
}

// Warms the bucket and captures it (on the graph stream, into the shared pool).
void CompiledContext::capture(Bucket &b) {
#ifdef TOTO_TORCH_CUDA
    forward(b); // warm: cuBLAS handles and workspaces exist before capture
    forward(b);
    graph_state_->stream.synchronize();
    late_captures_ += warm_; // captures belong to open; this counts any other
    b.graph = std::make_unique<at::cuda::CUDAGraph>();
    b.graph->capture_begin(graph_state_->pool);
    forward(b);
    b.graph->capture_end();
    b.graph->replay();
#else
    forward(b);
#endif
}

// Every (V, B, S) of powers of two (B of four) within the limits and budget.
void CompiledContext::plan_and_warm() {
    auto t0 = std::chrono::steady_clock::now();
    const toto_config &cfg = net_->config();
    const int64_t D = cfg.embed_dim;
    const auto opts = torch::TensorOptions().dtype(opt_.compute_dtype).device(net_->device());
    for (bool space : layer_is_space(cfg))
        if (!space) {
            pool_k_.push_back(torch::zeros({opt_.budget * D}, opts));
            pool_v_.push_back(torch::zeros({opt_.budget * D}, opts));
        }
    plan_.pool_bytes = 2 * int64_t(pool_k_.size()) * opt_.budget * D *
                       int64_t(torch::elementSize(opt_.compute_dtype));
    for (int64_t V = 1; V <= opt_.max_variates; V *= 2)
        for (int64_t S = kMinPatches; S <= std::max(opt_.max_patches, kMinPatches); S *= 2)
            for (int64_t B = 1; B <= opt_.max_batch && B * V * S <= opt_.budget; B *= 4)
                buckets_.push_back(make_bucket(V, B, S));
#ifdef TOTO_TORCH_CUDA
    // The buffers were filled on the current stream; the graph stream does
    // not wait for it by itself (pool streams do not block on it).
    if (cudaDeviceSynchronize() != cudaSuccess)
        throw Error(TOTO_EMODEL, "compiled path: the device failed while making the plan");
    graph_state_ = std::make_unique<GraphState>(net_->device().index());
    c10::cuda::CUDAStreamGuard guard(graph_state_->stream);
    const auto index = net_->device().index();
    const auto before =
        c10::cuda::CUDACachingAllocator::getDeviceStats(index).reserved_bytes[0].current;
#endif
    for (auto &b : buckets_)
        capture(*b);
#ifdef TOTO_TORCH_CUDA
    graph_state_->stream.synchronize();
    plan_.pool_bytes +=
        c10::cuda::CUDACachingAllocator::getDeviceStats(index).reserved_bytes[0].current - before;
#endif
    plan_.buckets = int64_t(buckets_.size());
    plan_.warmup_ms = ms_since(t0);
}

// The smallest bucket for (V, S) holding B rows, or the largest one (split).
CompiledContext::Bucket *CompiledContext::find(int64_t V, int64_t B, int64_t S) {
    const int64_t Vb = next_pow2(V), Sb = std::max(next_pow2(S), kMinPatches);
    Bucket *best = nullptr;
    for (auto &b : buckets_) {
        if (b->V != Vb || b->S != Sb)
            continue;
        if (b->B >= B)
            return b.get(); // buckets_ is in increasing B for each (V, S)
        best = b.get();
    }
    return best;
}

void CompiledContext::run_bucket(Bucket &b, const torch::Tensor &z, const torch::Tensor &ids,
                                 bool want_cache, ContextOut *out) {
    const int64_t B = z.size(0), V = z.size(1), S = z.size(2);
    b.z.zero_();
    b.z.narrow(0, 0, B).narrow(1, 0, V).narrow(2, 0, S).copy_(z);
    b.ids.copy_(b.sentinel_ids);
    b.ids.narrow(0, 0, B).narrow(1, 0, V).copy_(ids);
    // Centred on the real length: the cached keys are those of an unpadded pass.
    Positions pos = net_->positions(0, b.S, S);
    b.pos.cos.copy_(pos.cos);
    b.pos.sin.copy_(pos.sin);
    b.last.fill_(S - 1);
#ifdef TOTO_TORCH_CUDA
    b.graph->replay();
#endif
    auto real = [&](const torch::Tensor &t) { return t.narrow(0, 0, B).narrow(1, 0, V).clone(); };
    out->head = {real(b.head.df), real(b.head.loc), real(b.head.scale), real(b.head.probs)};
    out->prefix_k.clear();
    out->prefix_v.clear();
    if (!want_cache)
        return;
    auto rows = [&](const torch::Tensor &pool) {
        auto s = pool.sizes().vec(); // [Bb*Vb, nh, Sb, d]
        return pool.view({b.B, b.V, s[1], s[2], s[3]})
            .narrow(0, 0, B)
            .narrow(1, 0, V)
            .narrow(3, 0, S)
            .reshape({B * V, s[1], S, s[3]})
            .clone();
    };
    for (size_t i = 0; i < b.keys.size(); i++) {
        out->prefix_k.push_back(rows(b.keys[i]));
        out->prefix_v.push_back(rows(b.values[i]));
    }
}

// Without graphs nothing is gained by padding: the static code on exact shapes.
ContextOut CompiledContext::run_exact(const torch::Tensor &z, const torch::Tensor &ids,
                                      bool want_cache) {
    const int64_t B = z.size(0), V = z.size(1), S = z.size(2);
    const toto_config &cfg = net_->config();
    const int64_t nh = cfg.num_heads, d = cfg.embed_dim / nh;
    std::vector<torch::Tensor> keys, values;
    if (want_cache)
        for (bool space : layer_is_space(cfg))
            if (!space) {
                keys.push_back(
                    torch::empty({B * V, nh, S, d}, z.options().dtype(opt_.compute_dtype)));
                values.push_back(
                    torch::empty({B * V, nh, S, d}, z.options().dtype(opt_.compute_dtype)));
            }
    auto hidden =
        net_->backbone_static(z, ids, net_->positions(0, S, S), want_cache ? &keys : nullptr,
                              want_cache ? &values : nullptr);
    ContextOut out;
    out.head = net_->head(hidden.select(2, S - 1));
    out.prefix_k = std::move(keys);
    out.prefix_v = std::move(values);
    return out;
}

bool CompiledContext::run(const torch::Tensor &zin, const torch::Tensor &ids, bool want_cache,
                          ContextOut *out) {
    auto z = zin.to(net_->input_dtype());
    if (!opt_.graphs) {
        *out = run_exact(z, ids, want_cache);
        runs_++;
        return true;
    }
    const int64_t B = z.size(0), V = z.size(1), S = z.size(2);
    Bucket *b = find(V, B, S);
    if (!b) {
        eager_fallbacks_++;
        return false;
    }
    runs_++;
    if (b->B >= B) {
        run_bucket(*b, z, ids, want_cache, out);
        return true;
    }
    // Too many rows for any bucket: chunks through the largest, outputs joined.
    split_runs_++;
    std::vector<ContextOut> parts;
    for (int64_t r = 0; r < B; r += b->B) {
        int64_t n = std::min(b->B, B - r);
        parts.emplace_back();
        run_bucket(*b, z.narrow(0, r, n), ids.narrow(0, r, n), want_cache, &parts.back());
    }
    auto cat = [&](auto field) {
        std::vector<torch::Tensor> ts;
        for (auto &p : parts)
            ts.push_back(field(p));
        return torch::cat(ts, 0);
    };
    out->head = {cat([](ContextOut &p) { return p.head.df; }),
                 cat([](ContextOut &p) { return p.head.loc; }),
                 cat([](ContextOut &p) { return p.head.scale; }),
                 cat([](ContextOut &p) { return p.head.probs; })};
    out->prefix_k.clear();
    out->prefix_v.clear();
    for (size_t i = 0; want_cache && i < parts[0].prefix_k.size(); i++) {
        out->prefix_k.push_back(cat([i](ContextOut &p) { return p.prefix_k[i]; }));
        out->prefix_v.push_back(cat([i](ContextOut &p) { return p.prefix_v[i]; }));
    }
    return true;
}

} // namespace toto
