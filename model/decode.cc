// decode.cc - a batch of requests through the network: the context pass,
// autoregressive decoding of mean or sampled paths, and the statistics of
// each result.
#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <tuple>

#include <ATen/CPUGeneratorImpl.h>
#ifdef TOTO_TORCH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

#include "compiled.h"
#include "first_patch.h"
#include "internal.h"
#include "result_stats.h"

namespace toto {

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

int64_t ceil_div(int64_t a, int64_t b) {
    return (a + b - 1) / b;
}

// The contexts of requests sharing V and padded length, left-padded to Tp
// steps, in one set of CPU tensors (one allocation each, whatever the batch:
// per-request tensors and a cat cost more than the copying itself).
ContextIn pad_batch(const std::vector<const toto_request *> &reqs, int64_t P) {
    const int64_t B = int64_t(reqs.size()), V = reqs[0]->n_variates;
    const int64_t Tp = ceil_div(reqs[0]->n_steps, P) * P;
    ContextIn in{torch::empty({B * V, Tp}, kF64), torch::empty({B * V, Tp}, kF64),
                 torch::empty({B, V}, torch::kInt64)};
    double *x = in.x.data_ptr<double>(), *w = in.w.data_ptr<double>();
    int64_t *ids = in.ids.data_ptr<int64_t>();
    for (int64_t b = 0; b < B; b++) {
        const toto_request &r = *reqs[size_t(b)];
        const int64_t T = r.n_steps, pad = Tp - T;
        for (int64_t v = 0; v < V; v++) {
            double *xr = x + (b * V + v) * Tp, *wr = w + (b * V + v) * Tp;
            ids[b * V + v] = r.groups ? r.groups[v] : 0;
            std::fill(xr, xr + pad, 0.0); // missing and padded steps: x = 0, w = 0
            std::fill(wr, wr + pad, 0.0);
            for (int64_t t = 0; t < T; t++) {
                const double value = r.values[v * T + t];
                const bool seen = !std::isnan(value);
                xr[pad + t] = seen ? value : 0.0;
                wr[pad + t] = seen ? 1.0 : 0.0;
            }
        }
    }
    return in;
}

// Decoding state of Q = G*R rows: G paths for each of R context rows.
struct Paths {
    Paths(int64_t variates, torch::Tensor group_ids, Scaler s, int64_t context_len)
        : V(variates), ids(std::move(group_ids)), scaler(std::move(s)), prefix(context_len) {}

    int64_t V;
    torch::Tensor ids;         // [Q / V, V]
    torch::Tensor mean, scale; // [Q] float64: scaler statistics of the last patch
    torch::Tensor mean_patch;  // [Q, P] float64: the context pass's mean of the next patch
    HeadOut head;              // for the next patch, each [Q / V, V, P, K]
    KVCache cache;
    Scaler scaler;
    torch::Tensor hist_x, hist_w; // whole series, for the no-cache reference path
    int64_t prefix;               // context length (global statistics window)
    bool compiled = false;        // the compiled network computed it
};

// Next patch in original units: [Q, P] float64.
torch::Tensor unscale(const Paths &p, const torch::Tensor &scaled, torch::ScalarType dtype) {
    auto y = p.mean.unsqueeze(1) + p.scale.unsqueeze(1) * scaled.to(torch::kFloat64).flatten(0, 1);
    return replace_extreme(y, dtype);
}

torch::Tensor mixture_mean_patch(const Paths &p, torch::ScalarType dtype) {
    return unscale(p, (p.head.probs * p.head.loc).sum(-1), dtype);
}

// The context pass for requests sharing V and padded length. Keys and values
// are kept only when a later patch will be decoded.
Paths run_context(const Network &net, const DecodeOptions &opt, const ContextIn &in,
                  bool will_decode) {
    const toto_config &cfg = net.config();
    const int64_t V = in.ids.size(1), P = cfg.patch_size;
    // The compiled network computes the whole request either way; a context
    // pass outside the plan runs its eager code (counted as a fallback).
    const bool compiled = opt.compiled != nullptr;
    if (compiled && !opt.use_kv_cache)
        opt.compiled->note_fallback();
    ContextOut out;
    if (compiled && opt.use_kv_cache && opt.compiled->run(in, will_decode, &out)) {
        Paths c(V, out.ids, Scaler(cfg, out.scaler_state), in.x.size(1));
        c.compiled = true;
        c.head = out.head;
        c.mean = out.mean;
        c.scale = out.scale;
        c.mean_patch = out.mean_patch;
        c.cache = net.make_cache();
        if (will_decode) {
            c.cache.prefix_k = std::move(out.prefix_k);
            c.cache.prefix_v = std::move(out.prefix_v);
            c.cache.prefix_len = in.x.size(1) / P;
        }
        return c;
    }
    Paths c(V, in.ids.to(net.device()), Scaler(cfg), in.x.size(1));
    c.compiled = compiled;
    c.hist_x = in.x.to(net.device());
    c.hist_w = in.w.to(net.device());
    auto [mean, scale] = c.scaler.init(c.hist_x, c.hist_w);
    auto z = scale_patches(c.hist_x, mean, scale, V, P, net.input_dtype());
    c.cache = net.make_cache();
    auto hidden = net.backbone(z, c.ids, opt.use_kv_cache && will_decode ? &c.cache : nullptr);
    c.head = net.head(hidden.select(2, z.size(2) - 1));
    c.mean = mean.select(1, mean.size(1) - 1);
    c.scale = scale.select(1, scale.size(1) - 1);
    c.mean_patch = mixture_mean_patch(c, net.dtype());
    return c;
}

HeadOut select_head(const HeadOut &h, const torch::Tensor &batch_idx, int64_t groups) {
    auto pick = [&](const torch::Tensor &t) {
        auto s = t.index_select(0, batch_idx);
        return groups == 1 ? s : s.repeat({groups, 1, 1, 1});
    };
    return {pick(h.df), pick(h.loc), pick(h.scale), pick(h.probs)};
}

// The paths of the requests batch_idx of a context pass, G per context row.
Paths fork_paths(const Network &net, const DecodeOptions &opt, const Paths &c,
                 const std::vector<int64_t> &batch_idx, int64_t groups, int64_t steps) {
    auto dev = net.device();
    auto bidx = torch::tensor(batch_idx, torch::kInt64).to(dev);
    auto rows =
        (bidx.unsqueeze(1) * c.V + torch::arange(c.V, bidx.options()).unsqueeze(0)).flatten();
    Paths p(c.V, c.ids.index_select(0, bidx).repeat({groups, 1}), c.scaler, c.prefix);
    p.mean = c.mean.index_select(0, rows).repeat({groups});
    p.scale = c.scale.index_select(0, rows).repeat({groups});
    p.head = select_head(c.head, bidx, groups);
    if (steps <= 1) // the first patch needs nothing more
        return p;
    p.scaler.fork(rows, groups);
    if (opt.use_kv_cache)
        p.cache = net.fork_cache(c.cache, rows, groups, steps);
    else {
        p.hist_x = c.hist_x.index_select(0, rows).repeat({groups, 1});
        p.hist_w = c.hist_w.index_select(0, rows).repeat({groups, 1});
    }
    return p;
}

// Appends one decoded patch xn [Q, P] (observed) to every path and runs the
// model on it, leaving the head for the patch after.
void advance(const Network &net, const DecodeOptions &opt, Paths &p, const torch::Tensor &xn) {
    const int64_t P = net.config().patch_size;
    torch::Tensor z, mean, scale;
    if (opt.use_kv_cache) {
        std::tie(mean, scale) = p.scaler.extend(xn);
        z = scale_patches(xn, mean.unsqueeze(1), scale.unsqueeze(1), p.V, P, net.input_dtype());
        auto hidden = net.backbone(z, p.ids, &p.cache);
        p.head = net.head(hidden.select(2, 0));
    } else {
        p.hist_x = torch::cat({p.hist_x, xn}, 1);
        p.hist_w = torch::cat({p.hist_w, torch::ones_like(xn)}, 1);
        std::tie(mean, scale) = p.scaler.recompute(p.hist_x, p.hist_w, p.prefix);
        z = scale_patches(p.hist_x, mean, scale, p.V, P, net.input_dtype());
        auto hidden = net.backbone(z, p.ids, nullptr);
        p.head = net.head(hidden.select(2, z.size(2) - 1));
        mean = mean.select(1, mean.size(1) - 1);
        scale = scale.select(1, scale.size(1) - 1);
    }
    p.mean = mean;
    p.scale = scale;
}

// One draw per path and step: a component by weight, then a Student-t draw.
torch::Tensor sample_patch(const Paths &p, torch::ScalarType dtype, at::Generator &gen) {
    const int64_t K = p.head.probs.size(-1);
    auto comp = torch::multinomial(p.head.probs.reshape({-1, K}), 1, true, gen);
    auto pick = [&](const torch::Tensor &t) {
        return t.reshape({-1, K}).gather(1, comp).squeeze(1);
    };
    auto df = pick(p.head.df), loc = pick(p.head.loc), scale = pick(p.head.scale);
    auto normal = at::normal(0.0, 1.0, {df.size(0)}, gen, df.options());
    auto chi2 = 2.0 * at::_standard_gamma(0.5 * df, gen);
    auto draw = loc + scale * normal * torch::rsqrt(chi2 / df);
    return unscale(p, draw.view(p.head.df.sizes().slice(0, 3)), dtype);
}

// A private generator per request: its draws do not depend on whatever else
// shares the batch. (Cloning the default generator leaks in libtorch 1.13.)
at::Generator seeded_generator(torch::Device device, uint64_t seed) {
#ifdef TOTO_TORCH_CUDA
    if (device.is_cuda()) {
        at::Generator gen = at::cuda::detail::createCUDAGenerator(device.index());
        gen.set_current_seed(seed);
        return gen;
    }
#endif
    TORCH_CHECK(device.is_cpu(), "no generator for device ", device.str());
    return at::detail::createCPUGenerator(seed);
}

// Rows first..first+n of every TIME layer's context keys and values into
// job: one view operation each (they are evenly spaced in their first
// dimension), since the host makes them while the context pass runs.
void add_prefix_rows(const Paths &ctx, int64_t first, int64_t n, PathJob *job) {
    auto rows = [&](const torch::Tensor &t) {
        auto sizes = t.sizes().vec();
        sizes[0] = n;
        return t.as_strided(sizes, t.strides(), t.storage_offset() + first * t.stride(0));
    };
    for (size_t i = 0; i < ctx.cache.prefix_k.size() && ctx.cache.prefix_len > 0; i++) {
        job->prefix_k.push_back(rows(ctx.cache.prefix_k[i]));
        job->prefix_v.push_back(rows(ctx.cache.prefix_v[i]));
    }
}

// Context rows b0..b0+n of ctx as one mean-forecast job of n * V variates
// for the path graphs: the rows are consecutive in every tensor, and each
// request's group ids move to a range of their own, so that the space-wise
// layers keep the requests apart.
PathJob mean_job(const Paths &ctx, int64_t b0, int64_t n, int64_t steps) {
    const int64_t V = ctx.V, Vn = n * V;
    PathJob job;
    auto rows = [&](const torch::Tensor &t) { // [B, V, P, K] -> [1, n*V, P, K]
        return t.narrow(0, b0, n).reshape({1, Vn, t.size(2), t.size(3)});
    };
    job.head = {rows(ctx.head.df), rows(ctx.head.loc), rows(ctx.head.scale), rows(ctx.head.probs)};
    job.mean = ctx.mean.narrow(0, b0 * V, Vn);
    job.scale = ctx.scale.narrow(0, b0 * V, Vn);
    job.state = ctx.scaler.state().narrow(1, b0 * V, Vn);
    auto apart = torch::arange(n, ctx.ids.options()).mul_(int64_t(1) << 32).unsqueeze(1);
    job.ids = (ctx.ids.narrow(0, b0, n) + apart).reshape({1, Vn});
    add_prefix_rows(ctx, b0 * V, Vn, &job);
    job.paths = 1;
    job.steps = steps;
    job.mean_only = true;
    return job;
}

// The mean forecasts of ctx's B requests by the compiled path's graphs, as
// many requests a replay as the widest variate bucket holds: [B*V,
// steps*P] on the host, or undefined when they do not fit (eager then).
torch::Tensor mean_by_graphs(const DecodeOptions &opt, const Paths &ctx, int64_t B, int64_t steps) {
    if (!ctx.compiled || !opt.compiled || ctx.cache.prefix_len == 0)
        return {};
    const int64_t V = ctx.V, per = std::max<int64_t>(1, opt.compiled->options().max_variates / V);
    torch::Tensor all;
    for (int64_t b0 = 0; b0 < B; b0 += per) {
        const int64_t n = std::min(per, B - b0);
        torch::Tensor part;
        if (!opt.compiled->run_paths(mean_job(ctx, b0, n, steps), &part))
            return {};
        if (!all.defined())
            all = torch::empty({B * V, part.size(1)}, part.options());
        all.narrow(0, b0 * V, n * V).copy_(part);
    }
    return all;
}

// Mean forecasts of several requests, decoded together: by the path graphs
// where they fit, else eagerly.
void run_mean_requests(const Network &net, const DecodeOptions &opt, const Paths &ctx,
                       const std::vector<const toto_request *> &reqs,
                       std::vector<toto_result *> &results) {
    const int64_t P = net.config().patch_size;
    int64_t steps = 0;
    std::vector<int64_t> idx;
    for (size_t i = 0; i < reqs.size(); i++) {
        steps = std::max<int64_t>(steps, ceil_div(reqs[i]->prediction_length, P));
        idx.push_back(int64_t(i));
    }
    const FirstPatches first(ctx.head, ctx.mean, ctx.scale, reqs);
    torch::Tensor values; // [B*V, steps*P] on the host
    if (steps > 1)
        values = mean_by_graphs(opt, ctx, int64_t(reqs.size()), steps);
    if (!values.defined()) {
        std::vector<torch::Tensor> patches{ctx.mean_patch};
        if (steps > 1) {
            Paths p = fork_paths(net, opt, ctx, idx, 1, steps);
            for (int64_t s = 1; s < steps; s++) {
                advance(net, opt, p, patches.back());
                patches.push_back(mixture_mean_patch(p, net.dtype()));
            }
        }
        values = torch::cat(patches, 1).to(torch::kCPU).contiguous();
    }
    std::vector<ResultJob> jobs;
    for (size_t i = 0; i < reqs.size(); i++)
        jobs.push_back({reqs[i], first.of(int64_t(i)),
                        values.data_ptr<double>() + int64_t(i) * ctx.V * steps * P, 0, steps * P,
                        results[i]});
    fill_results(jobs);
}

// A sampled forecast: N paths sharing one context pass. Returns the decoded
// values, [N*V, steps*P] on the host.
torch::Tensor run_sampled_request(const Network &net, const DecodeOptions &opt, const Paths &ctx,
                                  int64_t b, const toto_request &r) {
    const int64_t P = net.config().patch_size, steps = ceil_div(r.prediction_length, P);
    at::Generator gen = seeded_generator(net.device(), r.seed);
    Paths p = fork_paths(net, opt, ctx, {b}, r.num_samples, steps);
    std::vector<torch::Tensor> patches;
    for (int64_t s = 0; s < steps; s++) {
        if (s > 0)
            advance(net, opt, p, patches.back());
        patches.push_back(sample_patch(p, net.dtype(), gen));
    }
    return torch::cat(patches, 1).to(torch::kCPU).contiguous();
}

// The context row b's part of ctx for the path graphs.
PathJob path_job(const Paths &ctx, int64_t b, const toto_request &r, int64_t P) {
    const int64_t V = ctx.V;
    PathJob job;
    auto row = [&](const torch::Tensor &t) { return t.narrow(0, b, 1); };
    job.head = {row(ctx.head.df), row(ctx.head.loc), row(ctx.head.scale), row(ctx.head.probs)};
    job.mean = ctx.mean.narrow(0, b * V, V);
    job.scale = ctx.scale.narrow(0, b * V, V);
    job.state = ctx.scaler.state().narrow(1, b * V, V);
    job.ids = ctx.ids.narrow(0, b, 1);
    add_prefix_rows(ctx, b * V, V, &job);
    job.seed = r.seed;
    job.paths = r.num_samples;
    job.steps = ceil_div(r.prediction_length, P);
    return job;
}

// Request b's sampled paths, [N*V, steps*P] on the host: by the compiled
// path's graphs where they fit, which also compute the paths' statistics on
// the GPU (stats; the values then come back only when returned), else
// decoded eagerly.
struct SampledPaths {
    torch::Tensor values, stats; // either may be undefined (not both)
    std::vector<double> levels;  // of stats: the request's, and 0.5, sorted
};

SampledPaths sampled_paths(const Network &net, const DecodeOptions &opt, const Paths &ctx,
                           int64_t b, const toto_request &r) {
    SampledPaths out;
    out.levels.assign(r.quantile_levels, r.quantile_levels + r.n_quantiles);
    out.levels.push_back(0.5);
    std::sort(out.levels.begin(), out.levels.end());
    out.levels.erase(std::unique(out.levels.begin(), out.levels.end()), out.levels.end());
    if (ctx.compiled && opt.compiled &&
        opt.compiled->run_paths(path_job(ctx, b, r, net.config().patch_size), &out.values,
                                &out.levels, &out.stats, r.return_samples))
        return out;
    out.values = run_sampled_request(net, opt, ctx, b, r);
    out.stats = torch::Tensor();
    return out;
}

// The job filling request b's result from its paths.
ResultJob sampled_job(const toto_request &r, const FirstPatch &fp, const SampledPaths &sp,
                      toto_result *res) {
    ResultJob job{&r, fp, nullptr, r.num_samples, 0, res};
    if (sp.values.defined()) {
        job.paths = sp.values.data_ptr<double>();
        job.stride = sp.values.size(1);
    }
    if (sp.stats.defined())
        job.sampled = {sp.stats.data_ptr<double>(), sp.stats.size(2), &sp.levels};
    return job;
}

void fail_result(toto_result *res, int code, const std::string &msg) {
    toto_result_free(res);
    res->status = code;
    snprintf(res->error, sizeof res->error, "%s", msg.c_str());
}

// Runs requests that share variate count, padded length and kind (mean or
// sampled): one context pass for all of them.
void run_group(const Network &net, const DecodeOptions &opt, const std::vector<int> &members,
               const toto_request *reqs, toto_result *results) {
    const int64_t P = net.config().patch_size;
    std::vector<const toto_request *> group_reqs;
    std::vector<toto_result *> group_results;
    bool will_decode = false;
    for (int i : members) {
        group_reqs.push_back(&reqs[i]);
        group_results.push_back(&results[i]);
        will_decode |= reqs[i].prediction_length > P;
    }
    Paths ctx = run_context(net, opt, pad_batch(group_reqs, P), will_decode);
    for (toto_result *r : group_results)
        snprintf(r->path, sizeof r->path, "%s", ctx.compiled ? "compiled" : "eager");
    if (reqs[members[0]].num_samples == 0) {
        run_mean_requests(net, opt, ctx, group_reqs, group_results);
        return;
    }
    const FirstPatches first(ctx.head, ctx.mean, ctx.scale, group_reqs);
    std::deque<SampledPaths> paths; // kept alive (and in place) until the results are filled
    std::vector<ResultJob> jobs;
    for (size_t b = 0; b < members.size(); b++) {
        const toto_request &r = *group_reqs[b];
        // Inside the first patch every statistic is exact: the paths matter
        // only when returned.
        if (r.prediction_length <= P && !r.return_samples) {
            jobs.push_back({&r, first.of(int64_t(b)), nullptr, r.num_samples, 0, group_results[b]});
            continue;
        }
        paths.push_back(sampled_paths(net, opt, ctx, int64_t(b), r));
        jobs.push_back(sampled_job(r, first.of(int64_t(b)), paths.back(), group_results[b]));
    }
    fill_results(jobs);
}

std::string message_of(const c10::Error &e) {
    return e.what_without_backtrace();
}

} // namespace

void forecast_batch(const Network &eager_net, const DecodeOptions &opt, const toto_request *reqs,
                    toto_result *results, int n) {
    c10::InferenceMode inference;
    // The compiled path decodes on its own network, in the compute dtype.
    const Network &net = opt.compiled ? opt.compiled->net() : eager_net;
    const int64_t P = net.config().patch_size;
    std::map<std::tuple<int, int64_t, bool>, std::vector<int>> groups;
    for (int i = 0; i < n; i++)
        groups[{reqs[i].n_variates, ceil_div(reqs[i].n_steps, P), reqs[i].num_samples > 0}]
            .push_back(i);
    for (auto &entry : groups) {
        const std::vector<int> &members = entry.second;
        try {
            run_group(net, opt, members, reqs, results);
        } catch (const c10::Error &e) {
            std::string msg = message_of(e);
            int code = msg.find("out of memory") != std::string::npos ? TOTO_ENOMEM : TOTO_EMODEL;
            for (int i : members)
                fail_result(&results[i], code, "model: " + msg);
        } catch (const std::bad_alloc &) {
            for (int i : members)
                fail_result(&results[i], TOTO_ENOMEM, "model: out of host memory");
        } catch (const std::exception &e) {
            for (int i : members)
                fail_result(&results[i], TOTO_EMODEL, std::string("model: ") + e.what());
        }
    }
}

} // namespace toto
