// compiled.cc - the compiled path's planned, warmed context passes (see compiled.h).
#include "compiled.h"

#include "fused.h"

#include <chrono>
#include <cstdlib>
#include <cstring>

#ifdef TOTO_TORCH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#ifdef TOTO_HAVE_BLAS_BACKEND
#include <ATen/Context.h>
#endif
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace toto {

namespace {

// Shorter contexts pad to this many patches: fewer buckets, little waste.
constexpr int64_t kMinPatches = 4;

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

// Rotary tables of a bucket of S patches for every real length s + 1 <= S
// (xPos is centred on the real length), so a replay picks its own with the
// staged index instead of a host-side computation.
struct CompiledContext::PosTable {
    int64_t S;
    torch::Tensor cos, sin; // [S, 2, 1, 1, S, d]
    torch::Tensor future;   // [S, S] causal mask (undefined for S = 1)
};

struct CompiledContext::Bucket {
    int64_t V, B, S;
    // The static input, staged from the host in one copy (float64 throughout:
    // group ids and the last patch's index are exact in it):
    // x [B*V, S*P] | w [B*V, S*P] | ids [B, V] | last [1].
    torch::Tensor staging; // pinned host memory (graphs only)
    torch::Tensor in;
    torch::Tensor x, w, ids, last; // views of in
    const PosTable *table = nullptr;
    std::vector<torch::Tensor> keys, values; // views of the pools, [B*V, heads, S, d]
    ContextOut out;                          // static outputs, padded shapes
#ifdef TOTO_TORCH_CUDA
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    cudaEvent_t staged = nullptr; // the last copy out of staging
    ~Bucket() {
        if (staged)
            cudaEventDestroy(staged);
    }
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
    net_->use_fused_kernels(net_->device().is_cuda());
    // The head's unembedding is most of a decoding step's weight traffic
    // (38 M of 151 M parameters): fold it into the output projections
    // (4.7 M). TOTO_FOLD_HEAD=0 keeps the unfolded head (for comparisons).
    const char *fold = std::getenv("TOTO_FOLD_HEAD");
    if (!(fold && std::strcmp(fold, "0") == 0))
        net_->fold_head();
    if (opt_.graphs)
        plan_and_warm();
    warm_ = true;
}

// max-autotune: libtorch's matrix products go through cuBLAS or cuBLASLt,
// whose heuristics pick different kernels for the same shape. Capture the
// plan's smallest and largest context buckets with each, time 20 replays of
// both, and keep the faster library for every capture and for the eager
// path (the probes are captured again with it). libtorch's TunableOp was
// tried first: it picked the same kernels as the heuristics and, on 2.11,
// left the eager path's batched products failing.
bool CompiledContext::choose_gemm_backend() {
#if defined(TOTO_TORCH_CUDA) && defined(TOTO_HAVE_BLAS_BACKEND)
    if (buckets_.empty())
        return false;
    Bucket *probes[2] = {buckets_.front().get(), buckets_.back().get()};
    const at::BlasBackend candidates[2] = {at::BlasBackend::Cublas, at::BlasBackend::Cublaslt};
    int best = 0;
    for (int c = 0; c < 2; c++) {
        at::globalContext().setBlasPreferredBackend(candidates[c]);
        for (Bucket *b : probes)
            capture(*b);
        graph_state_->stream.synchronize();
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 20; i++)
            for (Bucket *b : probes)
                b->graph->replay();
        graph_state_->stream.synchronize();
        plan_.gemm_ms[c] = ms_since(t0) / 20;
        if (plan_.gemm_ms[c] < plan_.gemm_ms[best])
            best = c;
    }
    at::globalContext().setBlasPreferredBackend(candidates[best]);
    plan_.gemm_backend = best == 0 ? "cublas" : "cublaslt";
    return true;
#else
    return false;
#endif
}

CompiledContext::~CompiledContext() = default;

CompiledStats CompiledContext::stats() const {
    CompiledStats s = plan_;
    s.runs = runs_;
    s.split_runs = split_runs_;
    s.eager_fallbacks = eager_fallbacks_;
    s.captures_after_warmup = late_captures_;
    s.path_runs = path_runs_;
    return s;
}

// Rotary tables for every real length of a bucket of S patches.
const CompiledContext::PosTable &CompiledContext::table_for(int64_t S) {
    for (auto &t : tables_)
        if (t->S == S)
            return *t;
    std::vector<torch::Tensor> cos, sin;
    for (int64_t s = 1; s <= S; s++) {
        Positions pos = net_->positions(0, S, s);
        cos.push_back(pos.cos);
        sin.push_back(pos.sin);
    }
    auto t = std::make_unique<PosTable>();
    t->S = S;
    t->cos = torch::stack(cos);
    t->sin = torch::stack(sin);
    t->future = net_->positions(0, S, S).future;
    tables_.push_back(std::move(t));
    return *tables_.back();
}

namespace {

// The views of a flat float64 input: x, w [rows, T], ids [B, V], last [1].
void split_input(const torch::Tensor &in, int64_t B, int64_t V, int64_t T, torch::Tensor *x,
                 torch::Tensor *w, torch::Tensor *ids, torch::Tensor *last) {
    const int64_t n = B * V * T;
    *x = in.narrow(0, 0, n).view({B * V, T});
    *w = in.narrow(0, n, n).view({B * V, T});
    *ids = in.narrow(0, 2 * n, B * V).view({B, V});
    *last = in.narrow(0, 2 * n + B * V, 1);
}

int64_t input_size(int64_t B, int64_t V, int64_t T) {
    return 2 * B * V * T + B * V + 1;
}

} // namespace

// A bucket's static input and staging, and its keys and values as views of
// the pools.
std::unique_ptr<CompiledContext::Bucket> CompiledContext::make_bucket(int64_t V, int64_t B,
                                                                      int64_t S) {
    const toto_config &cfg = net_->config();
    const int64_t D = cfg.embed_dim, nh = cfg.num_heads, d = D / nh, P = cfg.patch_size;
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    auto b = std::make_unique<Bucket>();
    b->V = V;
    b->B = B;
    b->S = S;
    const int64_t n = input_size(B, V, S * P);
    b->staging = torch::zeros({n}, f64.pinned_memory(true));
    b->in = torch::zeros({n}, f64.device(net_->device()));
    split_input(b->in, B, V, S * P, &b->x, &b->w, &b->ids, &b->last);
    b->table = &table_for(S);
    for (size_t i = 0; i < pool_k_.size(); i++) {
        b->keys.push_back(pool_k_[i].narrow(0, 0, B * V * S * D).view({B * V, nh, S, d}));
        b->values.push_back(pool_v_[i].narrow(0, 0, B * V * S * D).view({B * V, nh, S, d}));
    }
#ifdef TOTO_TORCH_CUDA
    if (cudaEventCreateWithFlags(&b->staged, cudaEventDisableTiming) != cudaSuccess)
        throw Error(TOTO_EMODEL, "compiled path: cannot create a CUDA event");
#endif
    return b;
}

// The whole context pass on the bucket's static buffers, what its graph
// replays: scaler, scaled patches, network, head and the mean of the next
// patch. No host sync and no shape-dependent host logic.
void CompiledContext::forward(Bucket &b) {
    const toto_config &cfg = net_->config();
    ContextOut &o = b.out;
    auto last = b.last.to(torch::kInt64);
    o.ids = b.ids.to(torch::kInt64);
    torch::Tensor mean, scale, z;
    if (fused::available_on(b.x.device())) {
        auto state = torch::empty({b.x.size(0), 6}, b.x.options());
        auto s =
            fused::patch_scaler(b.x, b.w, state, false, cfg.patch_size, cfg.stabilize_with_global,
                                cfg.scale_factor_exponent, net_->input_dtype());
        mean = s.mean;
        scale = s.scale;
        z = s.z.view({b.B, b.V, -1, cfg.patch_size});
        o.scaler_state = state.t();
    } else {
        Scaler scaler(cfg);
        std::tie(mean, scale) = scaler.init(b.x, b.w);
        z = scale_patches(b.x, mean, scale, b.V, cfg.patch_size, net_->input_dtype());
        o.scaler_state = scaler.state();
    }
    Positions pos;
    pos.cos = b.table->cos.index_select(0, last).squeeze(0);
    pos.sin = b.table->sin.index_select(0, last).squeeze(0);
    pos.future = b.table->future;
    const bool keep = !b.keys.empty(); // empty: no later patch needs them
    auto hidden =
        net_->backbone_static(z, o.ids, pos, keep ? &b.keys : nullptr, keep ? &b.values : nullptr);
    o.head = net_->head(hidden.index_select(2, last).squeeze(2));
    o.mean = mean.index_select(1, last).squeeze(1);
    o.scale = scale.index_select(1, last).squeeze(1);
    auto scaled = (o.head.probs * o.head.loc).sum(-1).to(torch::kFloat64).flatten(0, 1);
    o.mean_patch =
        replace_extreme(o.mean.unsqueeze(1) + o.scale.unsqueeze(1) * scaled, net_->dtype());
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

// The batch sizes of the plan: 1, 4, 16, then every power of two. Small
// passes cost their kernel launches whatever their size, so coarse steps
// lose nothing there; from 16 rows up the work counts, and a batch of 32 in
// a bucket of 64 would cost as much as 64 (a daemon under load runs such
// batches all the time).
static int64_t next_batch_bucket(int64_t B) {
    return B < 16 ? B * 4 : B * 2;
}

// Every (V, B, S): V and S powers of two, B as above, within the limits and budget.
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
            for (int64_t B = 1; B <= opt_.max_batch && B * V * S <= opt_.budget;
                 B = next_batch_bucket(B))
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
    if (opt_.autotune)
        plan_.autotuned = choose_gemm_backend();
    const int total = int(buckets_.size()), every = std::max(1, total / 10);
    for (size_t i = 0; i < buckets_.size(); i++) {
        capture(*buckets_[i]);
        if (opt_.progress && (int(i + 1) % every == 0 || int(i + 1) == total))
            opt_.progress(opt_.progress_ctx, int(i + 1), total);
    }
#ifdef TOTO_TORCH_CUDA
    PathGraphOptions po;
    po.max_prefix = std::max(opt_.max_patches, kMinPatches);
    po.max_variates = opt_.max_variates;
    paths_ = std::make_unique<PathGraphs>(*net_, po);
    paths_->capture_all(graph_state_->pool);
    plan_.path_buckets = paths_->buckets();
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

// Copies requests row0..row0+rows of in into the bucket's staging, padded:
// extra steps on the right unobserved (the causal scaler and attention keep
// the real steps blind to them, and the global statistics count only
// observed steps), extra variates and rows in groups of their own. Then one
// asynchronous copy to the device.
void CompiledContext::stage(Bucket &b, const ContextIn &in, int64_t row0, int64_t rows) {
    const int64_t V = in.ids.size(1), T = in.x.size(1), Tb = b.x.size(1);
#ifdef TOTO_TORCH_CUDA
    // The previous copy out of staging must be done before it is rewritten.
    if (cudaEventSynchronize(b.staged) != cudaSuccess)
        throw Error(TOTO_EMODEL, "compiled path: the device failed");
#endif
    torch::Tensor x, w, ids, last;
    split_input(b.staging, b.B, b.V, Tb, &x, &w, &ids, &last);
    x.zero_();
    w.zero_();
    // Padded variates each get a group of their own, out of reach of int32 ids.
    double *id = ids.data_ptr<double>();
    for (int64_t i = 0; i < b.B * b.V; i++)
        id[i] = -double(int64_t(1) << 40) - double(i % b.V);
    const double *xs = in.x.data_ptr<double>(), *ws = in.w.data_ptr<double>();
    const int64_t *is = in.ids.data_ptr<int64_t>();
    double *xd = x.data_ptr<double>(), *wd = w.data_ptr<double>();
    for (int64_t r = 0; r < rows; r++)
        for (int64_t v = 0; v < V; v++) {
            const int64_t src = (row0 + r) * V + v, dst = r * b.V + v;
            std::memcpy(xd + dst * Tb, xs + src * T, size_t(T) * sizeof(double));
            std::memcpy(wd + dst * Tb, ws + src * T, size_t(T) * sizeof(double));
            id[dst] = double(is[src]);
        }
    last.fill_(double(T / net_->config().patch_size - 1));
    b.in.copy_(b.staging, /*non_blocking=*/true);
#ifdef TOTO_TORCH_CUDA
    cudaEventRecord(b.staged, c10::cuda::getCurrentCUDAStream().stream());
#endif
}

// Replays the bucket on requests row0..row0+rows of in; out gets views of
// the real rows.
void CompiledContext::run_bucket(Bucket &b, const ContextIn &in, int64_t row0, int64_t rows,
                                 bool want_cache, ContextOut *out) {
    const int64_t V = in.ids.size(1), S = in.x.size(1) / net_->config().patch_size;
    stage(b, in, row0, rows);
#ifdef TOTO_TORCH_CUDA
    b.graph->replay();
#endif
    const ContextOut &o = b.out;
    auto real = [&](const torch::Tensor &t) { return t.narrow(0, 0, rows).narrow(1, 0, V); };
    // [B*V, ...] outputs -> real rows, [rows*V, ...]
    auto real_rows = [&](const torch::Tensor &t, int64_t dim) {
        auto s = t.sizes().vec();
        s[size_t(dim)] = b.B;
        s.insert(s.begin() + dim + 1, b.V);
        auto r = t.view(s).narrow(dim, 0, rows).narrow(dim + 1, 0, V);
        return r.flatten(dim, dim + 1);
    };
    out->head = {real(o.head.df), real(o.head.loc), real(o.head.scale), real(o.head.probs)};
    out->ids = real(o.ids);
    out->mean = real_rows(o.mean, 0);
    out->scale = real_rows(o.scale, 0);
    out->mean_patch = real_rows(o.mean_patch, 0);
    out->scaler_state = real_rows(o.scaler_state, 1);
    out->prefix_k.clear();
    out->prefix_v.clear();
    if (!want_cache)
        return;
    // Views, not copies: the path graphs copy them into their own buffers
    // in one kernel, the eager decoder gathers them (fork_cache). One view
    // operation each where the real rows are evenly spaced (one request, or
    // no padded variates): the host has ~20 layers of them to make while the
    // context pass runs, and a slow host otherwise makes the GPU wait.
    const bool even = rows == 1 || V == b.V;
    auto cached = [&](const torch::Tensor &pool) { // [Bb*Vb, nh, Sb, d] -> real rows, S patches
        if (even)
            return pool.as_strided({rows * V, pool.size(1), S, pool.size(3)}, pool.strides(),
                                   pool.storage_offset());
        return real_rows(pool, 0).narrow(2, 0, S);
    };
    for (size_t i = 0; i < b.keys.size(); i++) {
        out->prefix_k.push_back(cached(b.keys[i]));
        out->prefix_v.push_back(cached(b.values[i]));
    }
}

// Without graphs nothing is gained by padding: the same pass on exact shapes.
ContextOut CompiledContext::run_exact(const ContextIn &in, bool want_cache) {
    const int64_t B = in.ids.size(0), V = in.ids.size(1), T = in.x.size(1);
    const toto_config &cfg = net_->config();
    const int64_t nh = cfg.num_heads, d = cfg.embed_dim / nh, S = T / cfg.patch_size;
    const auto dev = net_->device();
    Bucket b;
    b.V = V;
    b.B = B;
    b.S = S;
    b.x = in.x.to(dev);
    b.w = in.w.to(dev);
    b.ids = in.ids.to(dev, torch::kFloat64);
    b.last = torch::full({1}, double(S - 1), b.x.options());
    // Only the real length's tables, broadcast to every index.
    PosTable table;
    Positions pos = net_->positions(0, S, S);
    table.S = S;
    table.cos = pos.cos.unsqueeze(0).expand({S, 2, 1, 1, S, d});
    table.sin = pos.sin.unsqueeze(0).expand({S, 2, 1, 1, S, d});
    table.future = pos.future;
    b.table = &table;
    if (want_cache)
        for (bool space : layer_is_space(cfg))
            if (!space) {
                auto opts = torch::TensorOptions().dtype(opt_.compute_dtype).device(dev);
                b.keys.push_back(torch::empty({B * V, nh, S, d}, opts));
                b.values.push_back(torch::empty({B * V, nh, S, d}, opts));
            }
    forward(b);
    b.out.prefix_k = b.keys;
    b.out.prefix_v = b.values;
    return b.out;
}

bool CompiledContext::run_paths(const PathJob &job, torch::Tensor *values,
                                const std::vector<double> *levels, torch::Tensor *stats,
                                bool want_values) {
    if (!paths_ || !paths_->run(job, values, levels, stats, want_values))
        return false;
    path_runs_++;
    return true;
}

bool CompiledContext::run(const ContextIn &in, bool want_cache, ContextOut *out) {
    if (!opt_.graphs) {
        *out = run_exact(in, want_cache);
        runs_++;
        return true;
    }
    const int64_t B = in.ids.size(0), V = in.ids.size(1);
    const int64_t S = in.x.size(1) / net_->config().patch_size;
    Bucket *b = find(V, B, S);
    if (!b) {
        eager_fallbacks_++;
        return false;
    }
    runs_++;
    if (b->B >= B) {
        run_bucket(*b, in, 0, B, want_cache, out);
        return true;
    }
    // Too many rows for any bucket: chunks through the largest, outputs
    // copied out and joined.
    split_runs_++;
    std::vector<ContextOut> parts;
    for (int64_t r = 0; r < B; r += b->B) {
        parts.emplace_back();
        run_bucket(*b, in, r, std::min(b->B, B - r), want_cache, &parts.back());
        ContextOut &p = parts.back();
        for (torch::Tensor *t : {&p.head.df, &p.head.loc, &p.head.scale, &p.head.probs, &p.ids,
                                 &p.mean, &p.scale, &p.mean_patch, &p.scaler_state})
            *t = t->clone();
        for (auto *kv : {&p.prefix_k, &p.prefix_v}) // views of the shared pool
            for (torch::Tensor &t : *kv)
                t = t.clone();
    }
    auto cat = [&](auto field, int64_t dim = 0) {
        std::vector<torch::Tensor> ts;
        for (auto &p : parts)
            ts.push_back(field(p));
        return torch::cat(ts, dim);
    };
    out->head = {cat([](ContextOut &p) { return p.head.df; }),
                 cat([](ContextOut &p) { return p.head.loc; }),
                 cat([](ContextOut &p) { return p.head.scale; }),
                 cat([](ContextOut &p) { return p.head.probs; })};
    out->ids = cat([](ContextOut &p) { return p.ids; });
    out->mean = cat([](ContextOut &p) { return p.mean; });
    out->scale = cat([](ContextOut &p) { return p.scale; });
    out->mean_patch = cat([](ContextOut &p) { return p.mean_patch; });
    out->scaler_state = cat([](ContextOut &p) { return p.scaler_state; }, 1);
    out->prefix_k.clear();
    out->prefix_v.clear();
    for (size_t i = 0; want_cache && i < parts[0].prefix_k.size(); i++) {
        out->prefix_k.push_back(cat([i](ContextOut &p) { return p.prefix_k[i]; }));
        out->prefix_v.push_back(cat([i](ContextOut &p) { return p.prefix_v[i]; }));
    }
    return true;
}

} // namespace toto
