// test_parity.cc - the model against upstream's outputs in tests/data/fixtures
// (tolerances from tests/data/fixtures/README.md, in units of the scaler's
// scale at the last context patch). Runs on $TOTO_TEST_DEVICE (default cpu).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "internal.h"
#include "safetensors.h"

extern "C" {
#include "tap.h"
}

namespace {

struct Case {
    std::string dir;
    toto_config cfg;
    safetensors_file *file = nullptr;
    int h = 0;
    torch::Tensor get(const char *name) const {
        const safetensors_tensor *t = safetensors_find(file, name);
        if (!t) {
            tap_diag("missing %s", name);
            return torch::Tensor();
        }
        torch::ScalarType type = t->dtype == SAFETENSORS_F64   ? torch::kFloat64
                                 : t->dtype == SAFETENSORS_F32 ? torch::kFloat32
                                 : t->dtype == SAFETENSORS_I32 ? torch::kInt32
                                                               : torch::kUInt8;
        auto out = torch::empty(std::vector<int64_t>(t->shape, t->shape + t->ndim), type);
        std::memcpy(out.data_ptr(), t->data, t->nbytes);
        return out;
    }
};

const char *device_name() {
    const char *d = getenv("TOTO_TEST_DEVICE");
    return d && *d ? d : "cpu";
}

// max |a - b| / (1 + max |b|) over all elements.
double rel_err(const torch::Tensor &a, const torch::Tensor &b) {
    auto x = a.to(torch::kCPU, torch::kFloat64), y = b.to(torch::kCPU, torch::kFloat64);
    return ((x - y).abs().max() / (1.0 + y.abs().max())).item<double>();
}

// max |a - b| / sigma over [B,V,h], sigma = scaler scale at the last context step.
double sigma_err(const torch::Tensor &a, const torch::Tensor &ref, const torch::Tensor &sigma) {
    auto d = (a.to(torch::kCPU, torch::kFloat64) - ref).abs() / sigma.unsqueeze(-1);
    return d.max().item<double>();
}

// compute: nullptr = the eager path only; else the compiled path in that
// compute dtype ("" = its default: bfloat16 on CUDA, dtype on the CPU).
toto_model *open_fixture(const Case &c, const char *dtype, bool kv, const char *compute = nullptr) {
    toto_model_params p = toto_model_default_params();
    p.device = device_name();
    p.dtype = dtype;
    p.use_kv_cache = kv;
    p.compile = compute != nullptr;
    p.compute_dtype = compute && *compute ? compute : nullptr;
    char err[512];
    toto_model *m = toto_model_open(c.dir.c_str(), &p, err, sizeof err);
    if (!m)
        tap_diag("open %s: %s", c.dir.c_str(), err);
    return m;
}

// Runs the case's context through the C API: one request per batch row,
// all in one batch. Returns [B, V, h] means, or samples' quantiles.
struct Run {
    torch::Tensor mean;      // [B, V, h]
    torch::Tensor quantiles; // [L, B, V, h]
    bool ok = false;
    bool compiled = true; // every result says it took the compiled path
};

Run forecast_case(const Case &c, toto_model *m, int num_samples, const torch::Tensor &levels) {
    auto series = c.get("series"), mask = c.get("padding_mask"), ids = c.get("id_mask");
    const int64_t B = series.size(0), V = series.size(1), T = series.size(2);
    auto values = torch::where(mask.to(torch::kBool), series, torch::full_like(series, NAN));
    auto groups = ids.select(2, 0).contiguous();
    std::vector<toto_request> reqs(size_t(B), toto_request{});
    std::vector<toto_result> res(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; b++) {
        toto_request &r = reqs[size_t(b)];
        r.n_variates = int(V);
        r.n_steps = int(T);
        r.values = values.data_ptr<double>() + b * V * T;
        r.groups = groups.data_ptr<int32_t>() + b * V;
        r.prediction_length = c.h;
        r.num_samples = num_samples;
        r.n_quantiles = levels.defined() ? int(levels.numel()) : 0;
        r.quantile_levels = levels.defined() ? levels.data_ptr<double>() : nullptr;
        r.seed = 1234 + uint64_t(b);
    }
    char err[512] = "";
    Run run;
    if (toto_forecast(m, reqs.data(), res.data(), int(B), err, sizeof err) != TOTO_OK) {
        tap_diag("toto_forecast: %s", err);
        return run;
    }
    run.mean = torch::empty({B, V, c.h}, torch::kFloat64);
    int64_t L = reqs[0].n_quantiles;
    run.quantiles = torch::empty({L, B, V, c.h}, torch::kFloat64);
    run.ok = true;
    for (int64_t b = 0; b < B; b++) {
        toto_result &r = res[size_t(b)];
        if (r.status != TOTO_OK) {
            tap_diag("request %lld: %s", (long long)b, r.error);
            run.ok = false;
            continue;
        }
        run.compiled &= std::strcmp(r.path, "compiled") == 0;
        std::memcpy(run.mean[b].data_ptr<double>(), r.mean, sizeof(double) * V * c.h);
        for (int64_t l = 0; l < L; l++)
            std::memcpy(run.quantiles[l][b].data_ptr<double>(), r.quantiles + l * V * c.h,
                        sizeof(double) * V * c.h);
        toto_result_free(&r);
    }
    return run;
}

// Scaler, embedding, every layer and the head on one pass over the padded context.
void check_layers(const Case &c, const char *dtype_name, torch::ScalarType dtype, double tol) {
    torch::Device dev(device_name());
    c10::InferenceMode guard;
    toto::Weights w = toto::load_weights(c.dir + "/model.safetensors", c.cfg, dev, dtype);
    toto::Network net(c.cfg, std::move(w), dev, dtype);
    auto x = c.get("padded_series"), m = c.get("padded_padding_mask").to(torch::kFloat64);
    auto ids = c.get("padded_id_mask").select(2, 0).to(torch::kInt64).to(dev);
    const int64_t B = x.size(0), V = x.size(1), Tp = x.size(2), P = c.cfg.patch_size;
    toto::Scaler scaler(c.cfg);
    auto [mean, scale] = scaler.init(x.view({B * V, Tp}).to(dev), m.view({B * V, Tp}).to(dev));
    auto full_mean = mean.repeat_interleave(P, 1).view({B, V, Tp});
    auto full_scale = scale.repeat_interleave(P, 1).view({B, V, Tp});
    const char *n = c.dir.c_str();
    tap_check(rel_err(full_mean, c.get("scaler_loc")) < 1e-12, "%s %s: scaler loc", n, dtype_name);
    tap_check(rel_err(full_scale, c.get("scaler_scale")) < 1e-12, "%s %s: scaler scale", n,
              dtype_name);

    auto z = ((x.to(dev) - full_mean) / full_scale).to(dtype).view({B, V, Tp / P, P});
    tap_check(rel_err(net.embed(z), c.get("patch_embed_out")) < tol, "%s %s: patch embedding", n,
              dtype_name);
    std::vector<torch::Tensor> outs;
    auto hidden = net.backbone(z, ids, nullptr, &outs);
    for (size_t i = 0; i < outs.size(); i++) {
        std::string name = "layer" + std::to_string(i) + "_out";
        double e = rel_err(outs[i], c.get(name.c_str()));
        tap_check(e < tol, "%s %s: %s (err %.2e)", n, dtype_name, name.c_str(), e);
    }
    toto::HeadOut head = net.head(hidden);
    const int64_t K = c.cfg.k_components;
    auto flat = [&](const torch::Tensor &t) { return t.reshape({B, V, Tp, K}); };
    tap_check(rel_err(flat(head.df), c.get("mix_df")) < tol, "%s %s: head df", n, dtype_name);
    tap_check(rel_err(flat(head.loc), c.get("mix_loc")) < tol, "%s %s: head loc", n, dtype_name);
    tap_check(rel_err(flat(head.scale), c.get("mix_scale")) < tol, "%s %s: head scale", n,
              dtype_name);
    tap_check(rel_err(flat(head.probs), c.get("mix_probs")) < tol, "%s %s: head mixture weights", n,
              dtype_name);
    auto mean_scaled = (head.probs * head.loc).sum(-1).reshape({B, V, Tp});
    tap_check(rel_err(mean_scaled, c.get("head_mean_scaled")) < tol, "%s %s: head mean", n,
              dtype_name);
}

// The compiled path against the float64 reference (fixtures README): on the
// CPU it computes in the model's dtype; on a GPU in bfloat16 (2e-2) or
// float32 with TF32 products (1e-3). The answer must say it took that path.
void check_compiled_means(const Case &c, const torch::Tensor &sigma) {
    const bool gpu = std::strncmp(device_name(), "cuda", 4) == 0;
    struct Variant {
        const char *dtype, *compute;
        double tol;
    } cpu[] = {{"float64", "", 1e-9}, {"float32", "", 1e-4}},
      cuda[] = {{"float32", "bfloat16", 2e-2},
                {"float32", "float32", 1e-3},
                {"float64", "bfloat16", 2e-2}};
    const Variant *vs = gpu ? cuda : cpu;
    const size_t n = gpu ? sizeof cuda / sizeof *cuda : sizeof cpu / sizeof *cpu;
    for (size_t i = 0; i < n; i++) {
        const Variant &v = vs[i];
        toto_model *m = open_fixture(c, v.dtype, true, v.compute);
        toto_model_info info;
        if (m)
            toto_model_get_info(m, &info);
        Run run = m ? forecast_case(c, m, 0, torch::Tensor()) : Run{};
        double e = run.ok ? sigma_err(run.mean, c.get("mean_kv_f64"), sigma) : INFINITY;
        tap_check(e < v.tol && run.compiled,
                  "%s compiled (%s, compute %s): mean forecast vs mean_kv_f64 (err %.2e sigma, "
                  "tol %.0e)",
                  c.dir.c_str(), v.dtype, m ? info.compile.compute_dtype : "-", e, v.tol);
        if (m) {
            toto_model_get_info(m, &info);
            tap_check(info.compile.captures_after_warmup == 0 && info.compile.eager_fallbacks == 0,
                      "%s compiled: no capture after warm-up, no eager fallback (%lld buckets)",
                      c.dir.c_str(), (long long)info.compile.buckets);
        }
        toto_model_free(m);
    }
}

void check_means(const Case &c) {
    auto sigma = c.get("scaler_scale").select(2, -1);
    struct Variant {
        const char *dtype;
        bool kv;
        const char *ref;
        double tol;
    } variants[] = {
        {"float64", true, "mean_kv_f64", 1e-9}, {"float64", false, "mean_nokv_f64", 1e-9},
        {"float32", true, "mean_kv_f64", 1e-4}, {"float32", false, "mean_nokv_f64", 1e-4},
        {"float32", true, "mean_kv_f32", 1e-4}, {"float32", false, "mean_nokv_f32", 1e-4}};
    for (const Variant &v : variants) {
        toto_model *m = open_fixture(c, v.dtype, v.kv);
        Run run = m ? forecast_case(c, m, 0, torch::Tensor()) : Run{};
        double e = run.ok ? sigma_err(run.mean, c.get(v.ref), sigma) : INFINITY;
        tap_check(e < v.tol, "%s %s %s: mean forecast vs %s (err %.2e sigma, tol %.0e)",
                  c.dir.c_str(), v.dtype, v.kv ? "kv-cache" : "no-cache", v.ref, e, v.ref, v.tol);
        toto_model_free(m);
    }
    check_compiled_means(c, sigma);
}

// Sampled quantiles: each within 0.1 (q95 - q05) of upstream's for >= 95%.
// compute as in open_fixture: nullptr eager, "" the compiled path's default.
void check_sampled(const Case &c, const char *compute) {
    auto levels = c.get("sample_quantile_levels").contiguous();
    auto ref = c.get("sample_quantiles"); // [7, B, V, h]
    toto_model *m = open_fixture(c, "float64", true, compute);
    Run run = m ? forecast_case(c, m, 2048, levels) : Run{};
    toto_model_free(m);
    const char *path = compute ? "compiled" : "eager";
    if (!tap_check(run.ok && run.compiled == (compute != nullptr),
                   "%s %s: sampled forecast with 2048 paths ran", c.dir.c_str(), path))
        return;
    int64_t L = levels.numel();
    auto spread = (ref[L - 1] - ref[0]).unsqueeze(0);
    auto within = ((run.quantiles - ref).abs() <= 0.1 * spread).to(torch::kFloat64);
    double share = within.mean().item<double>();
    tap_check(share >= 0.95, "%s %s: sampled quantiles within 0.1 (q95-q05): %.1f%% of entries",
              c.dir.c_str(), path, 100 * share);
    auto mean_ref = c.get("sample_mean");
    auto mean_ok = ((run.mean - mean_ref).abs() <= 0.1 * spread.squeeze(0)).to(torch::kFloat64);
    tap_check(mean_ok.mean().item<double>() >= 0.95, "%s %s: sampled mean within 0.1 (q95-q05)",
              c.dir.c_str(), path);
}

bool load_case(Case &c, const std::string &dir) {
    char err[512];
    c.dir = dir;
    if (toto_config_load((dir + "/config.json").c_str(), &c.cfg, err, sizeof err) != TOTO_OK) {
        tap_diag("%s", err);
        return false;
    }
    c.file = safetensors_open((dir + "/case.safetensors").c_str(), err, sizeof err);
    if (!c.file) {
        tap_diag("%s", err);
        return false;
    }
    const char *h = safetensors_metadata(c.file, "prediction_length");
    c.h = h ? atoi(h) : 0;
    return c.h > 0;
}

} // namespace

int main() {
    const char *data = getenv("TOTO_TEST_DATA");
    std::string root = std::string(data ? data : "tests/data") + "/fixtures/";
    tap_diag("device %s", device_name());
    for (const char *name : {"tiny-a", "tiny-b"}) {
        Case c;
        if (!tap_check(load_case(c, root + name), "%s: fixture loads", name))
            continue;
        try {
            check_layers(c, "float64", torch::kFloat64, 1e-9);
            check_layers(c, "float32", torch::kFloat32, 1e-4);
            check_means(c);
            check_sampled(c, nullptr);
            check_sampled(c, "");
        } catch (const std::exception &e) {
            tap_check(false, "%s: no exception (%s)", name, e.what());
        }
        safetensors_close(c.file);
    }
    return tap_done();
}
