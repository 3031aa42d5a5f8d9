// path_graphs.cc - sampled paths decoded by CUDA graphs (see path_graphs.h).
#include "path_graphs.h"

#include "fused.h"

#include <cstdlib>
#include <cstring>
#include <limits>

#ifdef TOTO_TORCH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>
#endif
#ifdef TOTO_CUDA_KERNELS
#include "cuda/kernels.h"
#endif

namespace toto {

// Static buffers of N paths of V variates (Q = N * V rows), views of the
// shared pools: only one bucket runs at a time.
struct PathGraphs::Bucket {
    int64_t V, N;
    HeadOut head;              // each [N, V, P, K] float32
    torch::Tensor mean, scale; // [Q] float64
    torch::Tensor state;       // [Q, 6] float64 (the scaler kernel's layout)
    torch::Tensor ids;         // [N, V] int64
    torch::Tensor keys, rows;  // [Q] int64: the seed, and path * V_real + variate
    torch::Tensor step;        // [1] int64: the patch being drawn
    torch::Tensor prefix_len;  // [1] int64: real context patches
    torch::Tensor mean_only;   // [1] int64: 1 feeds back the mixture's mean, not draws
    torch::Tensor paths;       // [Q, max_steps, P] float64
    torch::Tensor last;        // [Q, P] float64: the patch just drawn
    Network::StepBuffers buf;  // views of the pools for this bucket
#ifdef TOTO_TORCH_CUDA
    std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

PathGraphs::PathGraphs(const Network &net, const PathGraphOptions &opt) : net_(net), opt_(opt) {
    const toto_config &cfg = net.config();
    fused_attention_ = fused::has_decode_attention() && fused::available_on(net.device());
    const char *stage = std::getenv("TOTO_STAGE_KERNELS");
    stage_kernels_ = fused::available_on(net.device()) && !(stage && std::strcmp(stage, "0") == 0);
    const int64_t D = cfg.embed_dim, nh = cfg.num_heads, d = D / nh, P = cfg.patch_size;
    const int64_t K = cfg.k_components, R = opt.max_rows, T = opt.max_steps;
    const auto dev = net.device();
    const auto cdt = torch::TensorOptions().dtype(net.dtype()).device(dev);
    const auto f32 = cdt.dtype(torch::kFloat32), f64 = cdt.dtype(torch::kFloat64);
    for (bool space : layer_is_space(cfg))
        if (!space) {
            pools_.prefix_k.push_back(torch::zeros({opt.max_variates, nh, opt.max_prefix, d}, cdt));
            pools_.prefix_v.push_back(torch::zeros({opt.max_variates, nh, opt.max_prefix, d}, cdt));
            pools_.suffix_k.push_back(torch::zeros({R * T * D}, cdt));
            pools_.suffix_v.push_back(torch::zeros({R * T * D}, cdt));
        }
    // A benign mixture until a job is staged (warm-up and capture draw from it).
    head_pool_ = torch::ones({4, R * P * K}, f32).mul_(3.0);
    stats_pool_ = torch::zeros({8, R}, f64);
    state_pool_ = torch::zeros({R, 6}, f64);
    paths_pool_ = torch::zeros({R * T * P}, f64);
    last_pool_ = torch::zeros({R * P}, f64);
    // Positions of every decoded patch: offset t, centred on floor(t / 2).
    std::vector<torch::Tensor> cos, sin;
    for (int64_t t = 0; t < opt.max_prefix + T; t++) {
        Positions pos = net.positions(t, 1, 1);
        cos.push_back(pos.cos);
        sin.push_back(pos.sin);
    }
    table_cos_ = torch::stack(cos);
    table_sin_ = torch::stack(sin);
    const int64_t esize = int64_t(torch::elementSize(net.dtype()));
    bytes_ = int64_t(pools_.prefix_k.size()) * 2 * (opt.max_variates * opt.max_prefix + R * T) * D *
                 esize +
             (4 * R * P * K) * 4 + (14 * R + R * T * P + R * P) * 8;
    for (int64_t V = 1; V <= opt.max_variates; V *= 2)
        for (int64_t N = 1; N * V <= R; N *= 4) {
            auto b = std::make_unique<Bucket>();
            b->V = V;
            b->N = N;
            const int64_t Q = N * V;
            auto head = [&](int i) {
                return head_pool_[i].narrow(0, 0, Q * P * K).view({N, V, P, K});
            };
            b->head = {head(1), head(2), head(3), head(0)}; // df, loc, scale, probs
            b->head.probs.fill_(1.0 / double(K));
            b->mean = stats_pool_[6].narrow(0, 0, Q);
            b->scale = stats_pool_[7].narrow(0, 0, Q);
            b->state = state_pool_.narrow(0, 0, Q);
            auto i64 = f64.dtype(torch::kInt64);
            b->ids = torch::zeros({N, V}, i64);
            b->keys = torch::zeros({Q}, i64);
            b->rows = torch::arange(Q, i64);
            b->step = torch::zeros({1}, i64);
            b->prefix_len = torch::ones({1}, i64);
            b->mean_only = torch::zeros({1}, i64);
            b->paths = paths_pool_.narrow(0, 0, Q * T * P).view({Q, T, P});
            b->last = last_pool_.narrow(0, 0, Q * P).view({Q, P});
            for (size_t i = 0; i < pools_.prefix_k.size(); i++) {
                b->buf.prefix_k.push_back(pools_.prefix_k[i].narrow(0, 0, V));
                b->buf.prefix_v.push_back(pools_.prefix_v[i].narrow(0, 0, V));
                b->buf.suffix_k.push_back(
                    pools_.suffix_k[i].narrow(0, 0, Q * T * D).view({Q, nh, T, d}));
                b->buf.suffix_v.push_back(
                    pools_.suffix_v[i].narrow(0, 0, Q * T * D).view({Q, nh, T, d}));
            }
            b->buf.step = b->step;
            buckets_.push_back(std::move(b));
        }
}

PathGraphs::~PathGraphs() = default;

int64_t PathGraphs::buckets() const {
    return int64_t(buckets_.size());
}

// Draws patch `step` of every row from the bucket's head into its paths
// and `last`, in original units (extremes zeroed); the draws' counters are
// (row, step). One kernel (toto_k_mixture_sample_paths), which writes the
// mixture's mean instead for a mean forecast (the bucket's mean_only flag).
void PathGraphs::sample(Bucket &b) {
#ifdef TOTO_CUDA_KERNELS
    const int64_t Q = b.N * b.V, P = b.head.df.size(2), K = b.head.df.size(3);
    const double half_max = net_.dtype() == torch::kFloat64
                                ? std::numeric_limits<double>::max() / 2
                                : double(std::numeric_limits<float>::max() / 2.0f);
    int rc = toto_k_mixture_sample_paths(
        b.paths.data_ptr<double>(), b.last.data_ptr<double>(), b.step.data_ptr<int64_t>(),
        b.paths.size(1), b.mean.data_ptr<double>(), b.scale.data_ptr<double>(), half_max,
        b.head.probs.data_ptr(), b.head.df.data_ptr(), b.head.loc.data_ptr(),
        b.head.scale.data_ptr(), b.keys.data_ptr(), b.rows.data_ptr(), Q, P, K,
        b.mean_only.data_ptr<int64_t>(), c10::cuda::getCurrentCUDAStream().stream());
    if (rc != 0)
        throw Error(TOTO_EMODEL,
                    std::string("path graphs: sampler: ") + toto_cuda_error_string(rc));
#else
    (void)b;
    throw Error(TOTO_EMODEL, "path graphs: built without the CUDA kernels");
#endif
}

// One replay: draw patch `step`, append it, and compute the head of the next.
// With the fused kernels the scaler and the head write straight into the
// bucket (the sampler of this step has read them already).
void PathGraphs::step(Bucket &b) {
    const toto_config &cfg = net_.config();
    const int64_t P = cfg.patch_size, S = b.buf.prefix_k[0].size(2);
    const int64_t T = b.paths.size(1);
    sample(b);
    const torch::Tensor &xn = b.last; // [Q, P]
    torch::Tensor mean, scale, z;
    const bool kernels = fused::available_on(xn.device());
    if (kernels) { // updates b.state, b.mean and b.scale in place
        auto s =
            fused::patch_scaler(xn, {}, b.state, true, P, cfg.stabilize_with_global,
                                cfg.scale_factor_exponent, net_.input_dtype(), b.mean, b.scale);
        z = s.z.view({b.N, b.V, 1, P});
    } else {
        Scaler scaler(cfg, b.state.t());
        std::tie(mean, scale) = scaler.extend(xn);
        z = scale_patches(xn, mean.unsqueeze(1), scale.unsqueeze(1), b.V, P, net_.input_dtype());
        b.state.t().copy_(scaler.state());
    }
    auto t = b.prefix_len + b.step; // this patch's position
    Positions pos;
    auto i64 = b.step.options();
    if (fused_attention_) { // the kernel masks and rotates by itself
        b.buf.table_cos = table_cos_.view({table_cos_.size(0), 2, -1});
        b.buf.table_sin = table_sin_.view({table_sin_.size(0), 2, -1});
        b.buf.pos_index = t;
        b.buf.prefix_len = b.prefix_len;
    } else {
        pos.cos = table_cos_.index_select(0, t).squeeze(0);
        pos.sin = table_sin_.index_select(0, t).squeeze(0);
        b.buf.prefix_blocked = torch::arange(S, i64) >= b.prefix_len;
        b.buf.suffix_blocked = torch::arange(T, i64) > b.step;
    }
    auto hidden = net_.decode_step_static(z, b.ids, pos, b.buf);
    net_.head_into(hidden.select(2, 0), b.head);
    if (!kernels) {
        b.mean.copy_(mean);
        b.scale.copy_(scale);
    }
    b.step.add_(1);
}

void PathGraphs::capture(Bucket &b, std::pair<unsigned long long, unsigned long long> pool) {
#ifdef TOTO_TORCH_CUDA
    for (int i = 0; i < 2; i++) { // warm: cuBLAS handles and workspaces exist before capture
        b.step.zero_();
        step(b);
    }
    c10::cuda::getCurrentCUDAStream().synchronize();
    b.step.zero_();
    b.graph = std::make_unique<at::cuda::CUDAGraph>();
    b.graph->capture_begin(pool);
    step(b);
    b.graph->capture_end();
    b.step.zero_();
    b.graph->replay();
#else
    (void)b;
    (void)pool;
#endif
}

void PathGraphs::capture_all(std::pair<unsigned long long, unsigned long long> pool) {
    for (auto &b : buckets_)
        capture(*b, pool);
}

// The smallest bucket of V variates holding N paths, or the largest (split).
PathGraphs::Bucket *PathGraphs::find(int64_t V, int64_t N) {
    Bucket *best = nullptr;
    for (auto &b : buckets_) {
        if (b->V != V)
            continue;
        best = b.get();
        if (b->N >= N)
            break;
    }
    return best;
}

// Paths first_path.. of job into the bucket: every path starts from the
// context row's head and statistics; padded variates copy variate 0 (finite
// values; their own group ids keep them apart). Two kernels where the
// layouts allow (stage_kernels), else libtorch's operations.
void PathGraphs::stage(Bucket &b, const PathJob &job, int64_t first_path) {
    if (stage_kernels_ && stage_kernels(b, job, first_path))
        return;
    stage_aten(b, job, first_path);
}

#ifdef TOTO_CUDA_KERNELS
namespace {

// t's elements [..., P, K] dense per leading index, float32.
bool dense_rows_f32(const torch::Tensor &t) {
    return t.scalar_type() == torch::kFloat32 && t.dim() == 4 && t.stride(3) == 1 &&
           t.stride(2) == t.size(3);
}

// Every layer's [V, H, S, d] keys and values, rows of S * d dense, all of one
// geometry, into the bucket's [V', H, S', d]: one toto_k_copy_strided.
bool copy_prefixes(const std::vector<torch::Tensor> &src_k, const std::vector<torch::Tensor> &src_v,
                   const std::vector<torch::Tensor> &dst_k, const std::vector<torch::Tensor> &dst_v,
                   void *stream) {
    toto_k_strided_copies c{};
    if (src_k.empty())
        return true;
    if (2 * src_k.size() > TOTO_K_MAX_COPIES)
        return false;
    const torch::Tensor &s0 = src_k[0], &d0 = dst_k[0];
    const int64_t V = s0.size(0), H = s0.size(1), S = s0.size(2), d = s0.size(3);
    const int64_t es = int64_t(s0.element_size());
    auto same = [&](const torch::Tensor &t, const torch::Tensor &like) {
        return t.scalar_type() == s0.scalar_type() && t.sizes()[1] == H && t.sizes()[3] == d &&
               t.stride(0) == like.stride(0) && t.stride(1) == like.stride(1) && t.stride(2) == d &&
               t.stride(3) == 1;
    };
    for (size_t i = 0; i < src_k.size(); i++) {
        for (const torch::Tensor *t : {&src_k[i], &src_v[i]})
            if (!same(*t, s0) || t->size(0) != V || t->size(2) != S)
                return false;
        for (const torch::Tensor *t : {&dst_k[i], &dst_v[i]})
            if (!same(*t, d0) || t->size(0) < V || t->size(2) < S)
                return false;
        c.src[c.n] = src_k[i].data_ptr();
        c.dst[c.n++] = dst_k[i].data_ptr();
        c.src[c.n] = src_v[i].data_ptr();
        c.dst[c.n++] = dst_v[i].data_ptr();
    }
    c.rows_a = V;
    c.rows_b = H;
    c.src_sa = s0.stride(0) * es;
    c.src_sb = s0.stride(1) * es;
    c.dst_sa = d0.stride(0) * es;
    c.dst_sb = d0.stride(1) * es;
    c.row_bytes = S * d * es;
    return toto_k_copy_strided(&c, stream) == 0;
}

} // namespace
#endif

bool PathGraphs::stage_kernels(Bucket &b, const PathJob &job, int64_t first_path) {
#ifdef TOTO_CUDA_KERNELS
    const HeadOut &h = job.head;
    const int64_t V = job.ids.size(1), S = job.prefix_k.empty() ? 0 : job.prefix_k[0].size(2);
    const torch::Tensor *src[4] = {&h.df, &h.loc, &h.scale, &h.probs};
    const torch::Tensor *dst[4] = {&b.head.df, &b.head.loc, &b.head.scale, &b.head.probs};
    toto_k_path_stage s{};
    for (int k = 0; k < 4; k++) {
        if (!dense_rows_f32(*src[k]) || src[k]->size(1) != V)
            return false;
        s.head_src[k] = src[k]->data_ptr<float>();
        s.head_vstride[k] = src[k]->stride(1);
        s.head_dst[k] = dst[k]->data_ptr<float>();
    }
    if (job.mean.scalar_type() != torch::kFloat64 || job.scale.scalar_type() != torch::kFloat64 ||
        job.state.scalar_type() != torch::kFloat64 || job.ids.scalar_type() != torch::kInt64)
        return false;
    s.PK = b.head.df.size(2) * b.head.df.size(3);
    s.mean_src = job.mean.data_ptr<double>();
    s.mean_stride = job.mean.stride(0);
    s.scale_src = job.scale.data_ptr<double>();
    s.scale_stride = job.scale.stride(0);
    s.state_src = job.state.data_ptr<double>();
    s.state_sj = job.state.stride(0);
    s.state_sv = job.state.stride(1);
    s.ids_src = job.ids.data_ptr<int64_t>();
    s.ids_stride = job.ids.stride(1);
    s.mean_dst = b.mean.data_ptr<double>();
    s.scale_dst = b.scale.data_ptr<double>();
    s.state_dst = b.state.data_ptr<double>();
    s.ids_dst = b.ids.data_ptr<int64_t>();
    s.keys_dst = b.keys.data_ptr<int64_t>();
    s.rows_dst = b.rows.data_ptr<int64_t>();
    s.prefix_len_dst = b.prefix_len.data_ptr<int64_t>();
    s.step_dst = b.step.data_ptr<int64_t>();
    s.mean_only_dst = b.mean_only.data_ptr<int64_t>();
    s.mean_only = job.mean_only ? 1 : 0;
    std::memcpy(&s.key, &job.seed, sizeof s.key);
    s.first_path = first_path;
    s.prefix_len = S;
    s.N = b.N;
    s.Vb = b.V;
    s.V = V;
    void *stream = c10::cuda::getCurrentCUDAStream().stream();
    // The prefixes first: if their layout does not fit, nothing is written yet.
    if (!copy_prefixes(job.prefix_k, job.prefix_v, b.buf.prefix_k, b.buf.prefix_v, stream))
        return false;
    int rc = toto_k_stage_paths(&s, stream);
    if (rc != 0)
        throw Error(TOTO_EMODEL,
                    std::string("path graphs: staging: ") + toto_cuda_error_string(rc));
    return true;
#else
    (void)b, (void)job, (void)first_path;
    return false;
#endif
}

// The same staging in libtorch's operations (built on the device: staging
// never waits for the context pass to end).
void PathGraphs::stage_aten(Bucket &b, const PathJob &job, int64_t first_path) {
    const int64_t V = job.ids.size(1), S = job.prefix_k.empty() ? 0 : job.prefix_k[0].size(2);
    auto i64 = b.ids.options();
    auto v = torch::arange(b.V, i64), real = v < V;
    auto vi = v * real;                      // padded -> variate 0
    auto sentinel = -v - (int64_t(1) << 40); // groups of their own
    auto ids = torch::where(real, job.ids.index_select(1, vi).squeeze(0), sentinel);
    auto fill = [&](torch::Tensor &dst, const torch::Tensor &src) { // [1, V, P, K] -> [N, V', P, K]
        dst.copy_(src.index_select(1, vi).expand(dst.sizes()));
    };
    fill(b.head.df, job.head.df);
    fill(b.head.loc, job.head.loc);
    fill(b.head.scale, job.head.scale);
    fill(b.head.probs, job.head.probs);
    b.mean.view({b.N, b.V}).copy_(job.mean.index_select(0, vi).unsqueeze(0).expand({b.N, b.V}));
    b.scale.view({b.N, b.V}).copy_(job.scale.index_select(0, vi).unsqueeze(0).expand({b.N, b.V}));
    b.state.view({b.N, b.V, 6})
        .copy_(job.state.t().index_select(0, vi).unsqueeze(0).expand({b.N, b.V, 6}));
    b.ids.copy_(ids.unsqueeze(0).expand({b.N, b.V}));
    int64_t key;
    std::memcpy(&key, &job.seed, sizeof key);
    b.keys.fill_(key);
    // row = path * V + variate, the path counted over the whole request
    auto path = torch::arange(first_path, first_path + b.N, b.rows.options()).unsqueeze(1);
    b.rows.view({b.N, b.V}).copy_(path * V + torch::arange(b.V, b.rows.options()).unsqueeze(0));
    b.prefix_len.fill_(S);
    b.step.zero_();
    b.mean_only.fill_(job.mean_only ? 1 : 0);
    for (size_t i = 0; i < job.prefix_k.size(); i++) {
        b.buf.prefix_k[i].narrow(0, 0, V).narrow(2, 0, S).copy_(job.prefix_k[i]);
        b.buf.prefix_v[i].narrow(0, 0, V).narrow(2, 0, S).copy_(job.prefix_v[i]);
    }
}

// Mean and quantiles of every column of all [N * V, C] (device, float64,
// path-major), per variate, at levels (on the device): [V, 1 + L, C] on the host.
torch::Tensor PathGraphs::path_stats(const torch::Tensor &all, int64_t V,
                                     const torch::Tensor &levels) {
#ifdef TOTO_CUDA_KERNELS
    const int64_t N = all.size(0) / V, C = all.size(1), L = levels.size(0);
    auto out = torch::empty({V, 1 + L, C}, all.options());
    auto stream = c10::cuda::getCurrentCUDAStream().stream();
    for (int64_t v = 0; v < V; v++) {
        int rc = toto_k_quantiles(out[v].narrow(0, 1, L).data_ptr(), out[v][0].data_ptr(),
                                  all.data_ptr<double>() + v * C, TOTO_K_F64, N, C, V * C,
                                  levels.data_ptr(), L, stream);
        if (rc != 0)
            throw Error(TOTO_EMODEL,
                        std::string("path graphs: quantiles: ") + toto_cuda_error_string(rc));
    }
    return out.to(torch::kCPU);
#else
    (void)all, (void)V, (void)levels;
    throw Error(TOTO_EMODEL, "path graphs: built without the CUDA kernels");
#endif
}

// values on device, through pinned memory: a copy from pageable memory
// would wait for everything queued before it (here, the context pass).
static torch::Tensor upload(const std::vector<double> &values, const torch::Device &device) {
    auto host = torch::empty({int64_t(values.size())},
                             torch::TensorOptions().dtype(torch::kFloat64).pinned_memory(true));
    std::memcpy(host.data_ptr<double>(), values.data(), values.size() * sizeof(double));
    return host.to(device, /*non_blocking=*/true);
}

bool PathGraphs::run(const PathJob &job, torch::Tensor *values, const std::vector<double> *levels,
                     torch::Tensor *stats, bool want_values) {
    const int64_t V = job.ids.size(1), S = job.prefix_k.empty() ? 0 : job.prefix_k[0].size(2);
    const int64_t P = net_.config().patch_size, N = job.paths, steps = job.steps;
#ifndef TOTO_CUDA_KERNELS
    return false;
#endif
    if ((steps > 1 && job.prefix_k.empty()) || V > opt_.max_variates || S > opt_.max_prefix ||
        steps > opt_.max_steps || steps < 1)
        return false;
    Bucket *b = find(next_pow2(V), N);
    if (!b)
        return false;
    const bool on_gpu = levels && stats;
    want_values = want_values || !on_gpu;
    torch::Tensor all, lv; // every path on the device, and the levels, for the statistics
    if (on_gpu) {
        all = torch::empty({N * V, steps * P}, b->paths.options());
        lv = upload(*levels, b->paths.device());
    }
    if (want_values)
        *values = torch::empty({N * V, steps * P}, torch::kFloat64);
    for (int64_t first = 0; first < N; first += b->N) {
        const int64_t n = std::min(b->N, N - first);
        stage(*b, job, first);
        for (int64_t s = 0; s + 1 < steps; s++) {
#ifdef TOTO_TORCH_CUDA
            b->graph->replay();
#endif
        }
        sample(*b); // the last patch needs no step after it
        auto real = b->paths.view({b->N, b->V, b->paths.size(1), P})
                        .narrow(0, 0, n)
                        .narrow(1, 0, V)
                        .narrow(2, 0, steps)
                        .reshape({n * V, steps * P});
        if (on_gpu)
            all.narrow(0, first * V, n * V).copy_(real);
        if (want_values)
            values->narrow(0, first * V, n * V).copy_(real);
    }
    if (on_gpu)
        *stats = path_stats(all, V, lv);
    return true;
}

} // namespace toto
