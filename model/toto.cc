// toto.cc - the C API of model/toto.h over the C++ model. Every entry point
// catches everything: no exception crosses into C.
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <c10/core/DeviceGuard.h>

#include "compiled.h"
#include "internal.h"

struct toto_model {
    std::unique_ptr<toto::Network> net;
    std::unique_ptr<toto::CompiledContext> compiled; // null when compile is off
    std::atomic<bool> use_compiled{false};
    toto::DecodeOptions decode;
    toto_model_params params;
    toto_model_info info;
};

namespace {

void set_error(char *err, size_t err_len, const char *fmt, ...) {
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

// "cpu", "cuda" or "cuda:N" -> a device that exists here.
torch::Device parse_device(const std::string &name) {
    if (name == "cpu")
        return torch::Device(torch::kCPU);
    if (name.rfind("cuda", 0) != 0)
        throw toto::Error(TOTO_EINVAL, "device '" + name + "': expected cpu, cuda or cuda:N");
    int index = 0;
    if (name.size() > 4) {
        char *end = nullptr;
        long v = name[4] == ':' ? std::strtol(name.c_str() + 5, &end, 10) : -1;
        if (v < 0 || !end || *end || end == name.c_str() + 5)
            throw toto::Error(TOTO_EINVAL, "device '" + name + "': expected cpu, cuda or cuda:N");
        index = int(v);
    }
    if (!torch::cuda::is_available())
        throw toto::Error(TOTO_EINVAL, "device '" + name +
                                           "': CUDA is not available (no GPU, or a libtorch "
                                           "built without CUDA)");
    int count = int(torch::cuda::device_count());
    if (index >= count)
        throw toto::Error(TOTO_EINVAL, "device '" + name + "': only " + std::to_string(count) +
                                           " CUDA device(s) present");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

torch::ScalarType parse_dtype(const std::string &name) {
    if (name == "float32")
        return torch::kFloat32;
    if (name == "float64")
        return torch::kFloat64;
    throw toto::Error(TOTO_EINVAL, "dtype '" + name + "': expected float32 or float64");
}

// compute_dtype: "" picks bfloat16 on CUDA and the model's dtype on the CPU.
torch::ScalarType parse_compute_dtype(const char *name, torch::Device device,
                                      torch::ScalarType model) {
    std::string s = name ? name : "";
    if (s.empty())
        return device.is_cuda() ? torch::kBFloat16 : model;
    if (s == "bfloat16")
        return torch::kBFloat16;
    if (s == "float32")
        return torch::kFloat32;
    if (s == "float64")
        return torch::kFloat64;
    throw toto::Error(TOTO_EINVAL,
                      "compute_dtype '" + s + "': expected bfloat16, float32 or float64");
}

const char *dtype_name(torch::ScalarType t) {
    return t == torch::kBFloat16 ? "bfloat16" : t == torch::kFloat64 ? "float64" : "float32";
}

// reduce-overhead and max-autotune capture graphs; default does not.
bool mode_uses_graphs(const std::string &mode) {
    if (mode == "reduce-overhead" || mode == "max-autotune")
        return true;
    if (mode == "default")
        return false;
    throw toto::Error(TOTO_EINVAL, "compile_mode '" + mode +
                                       "': expected default, reduce-overhead or max-autotune");
}

// The compiled network shares the eager one's weights when the dtypes agree.
std::unique_ptr<toto::CompiledContext>
open_compiled(const std::string &file, const toto_config &cfg, const toto_model_params &p,
              const toto::Weights &eager_w, torch::Device device, torch::ScalarType dtype) {
    torch::ScalarType cdt = parse_compute_dtype(p.compute_dtype, device, dtype);
    toto::CompiledOptions o;
    o.compute_dtype = cdt;
    const std::string mode = p.compile_mode ? p.compile_mode : "reduce-overhead";
    o.graphs = mode_uses_graphs(mode);
    o.autotune = mode == "max-autotune";
    o.progress = p.warm_progress;
    o.progress_ctx = p.warm_progress_ctx;
    if (p.compile_max_batch > 0)
        o.max_batch = p.compile_max_batch;
    if (p.compile_max_patches > 0)
        o.max_patches = p.compile_max_patches;
    if (p.compile_max_variates > 0)
        o.max_variates = p.compile_max_variates;
    if (p.compile_budget > 0)
        o.budget = p.compile_budget;
    toto::Weights w = cdt == dtype ? eager_w : toto::load_weights(file, cfg, device, cdt);
    if (cdt == torch::kBFloat16) { // see Network::input_dtype()
        w.patch_w = eager_w.patch_w.to(torch::kFloat32);
        w.patch_b = eager_w.patch_b.to(torch::kFloat32);
    }
    auto net = std::make_unique<toto::Network>(cfg, std::move(w), device, cdt);
    return std::make_unique<toto::CompiledContext>(std::move(net), o);
}

void fill_compile_stats(const toto_model *m, toto_compile_stats *cs) {
    std::memset(cs, 0, sizeof *cs);
    if (!m->compiled)
        return;
    const toto::CompiledStats s = m->compiled->stats();
    const toto::CompiledOptions &o = m->compiled->options();
    cs->available = true;
    cs->graphs = o.graphs;
    cs->autotuned = s.autotuned;
    snprintf(cs->gemm_backend, sizeof cs->gemm_backend, "%s", s.gemm_backend);
    cs->gemm_ms[0] = s.gemm_ms[0];
    cs->gemm_ms[1] = s.gemm_ms[1];
    snprintf(cs->mode, sizeof cs->mode, "%s",
             m->params.compile_mode ? m->params.compile_mode : "reduce-overhead");
    snprintf(cs->compute_dtype, sizeof cs->compute_dtype, "%s", dtype_name(o.compute_dtype));
    cs->buckets = s.buckets;
    cs->warmup_ms = s.warmup_ms;
    cs->pool_bytes = s.pool_bytes;
    cs->captures_after_warmup = s.captures_after_warmup;
    cs->runs = s.runs;
    cs->split_runs = s.split_runs;
    cs->eager_fallbacks = s.eager_fallbacks;
    cs->path_buckets = s.path_buckets;
    cs->path_runs = s.path_runs;
}

void fill_info(toto_model *m, const char *dir, const toto_config &cfg) {
    toto_model_info &info = m->info;
    std::memset(&info, 0, sizeof info);
    info.config = cfg;
    info.num_params = m->net->num_params();
    snprintf(info.device, sizeof info.device, "%s", m->net->device().str().c_str());
    snprintf(info.dtype, sizeof info.dtype, "%s", m->params.dtype);
    snprintf(info.path, sizeof info.path, "%s", m->compiled ? "compiled" : "eager");
    snprintf(info.name, sizeof info.name, "%s", dir);
}

toto_model *open_model(const char *dir, const toto_model_params &params, char *err,
                       size_t err_len) {
    toto_config cfg;
    std::string base(dir);
    if (toto_config_load((base + "/config.json").c_str(), &cfg, err, err_len) != TOTO_OK)
        return nullptr;
    torch::Device device = parse_device(params.device);
    // CUDA's current device is per thread and 0 by default: the raw CUDA
    // calls (kernels, events, graphs) of a model on cuda:1 must see cuda:1.
    c10::OptionalDeviceGuard guard;
    if (device.is_cuda())
        guard.reset_device(device);
    torch::ScalarType dtype = parse_dtype(params.dtype);
    if (params.cpu_threads > 0)
        at::set_num_threads(params.cpu_threads);
    const std::string file = base + "/model.safetensors";
    toto::Weights w = toto::load_weights(file, cfg, device, dtype);
    auto m = std::make_unique<toto_model>();
    m->params = params;
    m->decode.use_kv_cache = params.use_kv_cache;
    if (params.compile)
        m->compiled = open_compiled(file, cfg, params, w, device, dtype);
    m->use_compiled = m->compiled != nullptr;
    m->net = std::make_unique<toto::Network>(cfg, std::move(w), device, dtype);
    fill_info(m.get(), dir, cfg);
    // The strings in params belong to the caller; keep our own copies.
    m->params.device = m->info.device;
    m->params.dtype = m->info.dtype;
    fill_compile_stats(m.get(), &m->info.compile);
    m->params.compile_mode = m->info.compile.mode;
    m->params.compute_dtype = m->info.compile.compute_dtype;
    return m.release();
}

int validate_series(const toto_request *r, const toto_model_params &p, char *err, size_t len) {
    if (r->n_variates < 1 || r->n_steps < 1 || !r->values) {
        set_error(err, len, "series: no values");
        return TOTO_EINVAL;
    }
    if (r->n_variates > p.max_variates) {
        set_error(err, len, "series: %d variates, the limit is %d", r->n_variates, p.max_variates);
        return TOTO_EINVAL;
    }
    if (r->n_steps > p.max_context_length) {
        set_error(err, len, "series: %d steps, the limit is %d (max_context_length)", r->n_steps,
                  p.max_context_length);
        return TOTO_EINVAL;
    }
    return TOTO_OK;
}

// toto_values_check(): what of a request needs no model.
int check_values(const toto_request *r, char *err, size_t len) {
    if (r->n_variates < 1 || r->n_steps < 1 || !r->values)
        return TOTO_OK; // no values: the series' own check says so
    bool any_observed = false;
    for (int64_t i = 0; i < int64_t(r->n_variates) * r->n_steps; i++) {
        if (std::isinf(r->values[i])) {
            set_error(err, len, "series[%lld][%lld]: infinite value", (long long)(i / r->n_steps),
                      (long long)(i % r->n_steps));
            return TOTO_EINVAL;
        }
        any_observed |= !std::isnan(r->values[i]);
    }
    if (!any_observed) {
        set_error(err, len, "series: no observed value (every value is missing)");
        return TOTO_EINVAL;
    }
    return TOTO_OK;
}

int validate_outputs(const toto_request *r, const toto_model_params &p, int patch, char *err,
                     size_t len) {
    if (r->prediction_length < 1 || r->prediction_length > p.max_prediction_length) {
        set_error(err, len, "prediction_length: %d is outside 1..%d", r->prediction_length,
                  p.max_prediction_length);
        return TOTO_EINVAL;
    }
    if (r->num_samples < 0 || r->num_samples > p.max_num_samples) {
        set_error(err, len, "num_samples: %d is outside 0..%d", r->num_samples, p.max_num_samples);
        return TOTO_EINVAL;
    }
    if (r->n_quantiles < 0 || (r->n_quantiles > 0 && !r->quantile_levels)) {
        set_error(err, len, "quantiles: missing levels");
        return TOTO_EINVAL;
    }
    for (int i = 0; i < r->n_quantiles; i++) {
        double q = r->quantile_levels[i];
        if (!(q > 0.0 && q < 1.0)) {
            set_error(err, len, "quantiles[%d]: %g is outside the open interval (0, 1)", i, q);
            return TOTO_EINVAL;
        }
    }
    if (r->n_quantiles > 0 && r->num_samples == 0 && r->prediction_length > patch) {
        set_error(err, len,
                  "quantiles: with num_samples 0 only the first %d steps (one patch) have exact "
                  "quantiles; prediction_length %d needs num_samples > 0 for quantiles",
                  patch, r->prediction_length);
        return TOTO_EINVAL;
    }
    if (r->return_samples && r->num_samples == 0) {
        set_error(err, len, "return_samples: needs num_samples > 0");
        return TOTO_EINVAL;
    }
    return TOTO_OK;
}

} // namespace

extern "C" {

toto_model_params toto_model_default_params(void) {
    toto_model_params p;
    p.device = "cpu";
    p.dtype = "float32";
    p.cpu_threads = 0;
    p.max_prediction_length = 4096;
    p.max_num_samples = 8192;
    p.max_context_length = 16384;
    p.max_variates = 512;
    p.use_kv_cache = true;
    p.compile = true;
    p.compile_mode = "reduce-overhead";
    p.compute_dtype = nullptr;
    p.compile_max_batch = 0;
    p.compile_max_patches = 0;
    p.compile_max_variates = 0;
    p.compile_budget = 0;
    p.warm_progress = nullptr;
    p.warm_progress_ctx = nullptr;
    return p;
}

int toto_model_params_from_env(toto_model_params *p, char *err, size_t err_len) {
    toto_model_params q = *p;
    const char *compile = std::getenv("TOTO_COMPILE");
    const char *mode = std::getenv("TOTO_COMPILE_MODE");
    const char *disable = std::getenv("TOTO_DISABLE_COMPILE");
    auto is = [](const char *v, const char *a, const char *b) {
        return !std::strcmp(v, a) || !std::strcmp(v, b);
    };
    if (compile && *compile) {
        if (!is(compile, "0", "1")) {
            set_error(err, err_len, "TOTO_COMPILE='%s': expected 0 or 1", compile);
            return TOTO_EINVAL;
        }
        q.compile = compile[0] == '1';
    }
    if (mode && *mode) {
        if (!is(mode, "default", "reduce-overhead") && std::strcmp(mode, "max-autotune")) {
            set_error(err, err_len,
                      "TOTO_COMPILE_MODE='%s': expected default, reduce-overhead or max-autotune",
                      mode);
            return TOTO_EINVAL;
        }
        q.compile_mode = mode;
    }
    if (disable && *disable) {
        if (!is(disable, "0", "1")) {
            set_error(err, err_len, "TOTO_DISABLE_COMPILE='%s': expected 0 or 1", disable);
            return TOTO_EINVAL;
        }
        if (disable[0] == '1')
            q.compile = false;
    }
    *p = q;
    return TOTO_OK;
}

toto_model *toto_model_open(const char *dir, const toto_model_params *params, char *err,
                            size_t err_len) {
    toto_model_params p = params ? *params : toto_model_default_params();
    if (!dir || !p.device || !p.dtype) {
        set_error(err, err_len, "toto_model_open: model directory, device and dtype are required");
        return nullptr;
    }
    try {
        return open_model(dir, p, err, err_len);
    } catch (const toto::Error &e) {
        set_error(err, err_len, "%s", e.what());
    } catch (const c10::Error &e) {
        set_error(err, err_len, "%s: %s", dir, e.what_without_backtrace());
    } catch (const std::exception &e) {
        set_error(err, err_len, "%s: %s", dir, e.what());
    }
    return nullptr;
}

int toto_cuda_device_count(void) {
    try {
        return int(torch::cuda::device_count());
    } catch (...) {
        return 0;
    }
}

void toto_model_free(toto_model *model) {
    if (!model)
        return;
    c10::OptionalDeviceGuard guard; // graphs and events are freed on their device
    if (model->net->device().is_cuda())
        guard.reset_device(model->net->device());
    delete model;
}

void toto_model_get_info(const toto_model *model, toto_model_info *info) {
    *info = model->info;
    snprintf(info->path, sizeof info->path, "%s", model->use_compiled ? "compiled" : "eager");
    fill_compile_stats(model, &info->compile);
}

int toto_model_set_path(toto_model *model, const char *path, char *err, size_t err_len) {
    const char *p = path ? path : "";
    if (!std::strcmp(p, "eager")) {
        model->use_compiled = false;
        return TOTO_OK;
    }
    if (std::strcmp(p, "compiled")) {
        set_error(err, err_len, "path '%s': expected compiled or eager", p);
        return TOTO_EINVAL;
    }
    if (!model->compiled) {
        set_error(err, err_len, "path compiled: the model was opened with compile off");
        return TOTO_EINVAL;
    }
    model->use_compiled = true;
    return TOTO_OK;
}

int toto_values_check(const toto_request *req, char *err, size_t err_len) {
    return check_values(req, err, err_len);
}

int toto_request_validate(const toto_model *model, const toto_request *req, char *err,
                          size_t err_len) {
    int rc = validate_series(req, model->params, err, err_len);
    if (rc == TOTO_OK)
        rc = check_values(req, err, err_len);
    if (rc == TOTO_OK)
        rc = validate_outputs(req, model->params, model->info.config.patch_size, err, err_len);
    return rc;
}

int toto_request_validate_checked(const toto_model *model, const toto_request *req, int values_rc,
                                  const char *values_err, char *err, size_t err_len) {
    int rc = validate_series(req, model->params, err, err_len);
    if (rc == TOTO_OK && values_rc != TOTO_OK) {
        set_error(err, err_len, "%s", values_err ? values_err : "series: invalid values");
        rc = values_rc;
    }
    if (rc == TOTO_OK)
        rc = validate_outputs(req, model->params, model->info.config.patch_size, err, err_len);
    return rc;
}

int toto_forecast(toto_model *model, const toto_request *reqs, toto_result *results, int n,
                  char *err, size_t err_len) {
    return toto_forecast_on(model, nullptr, reqs, results, n, err, err_len);
}

int toto_forecast_on(toto_model *model, const char *path, const toto_request *reqs,
                     toto_result *results, int n, char *err, size_t err_len) {
    bool compiled = model->use_compiled;
    if (path && std::strcmp(path, "eager") == 0)
        compiled = false;
    else if (path && std::strcmp(path, "compiled") == 0 && model->compiled)
        compiled = true;
    else if (path) {
        set_error(err, err_len, "path '%s': expected compiled or eager%s", path,
                  std::strcmp(path, "compiled") == 0 ? " (this model has no compiled path)" : "");
        return TOTO_EINVAL;
    }
    std::vector<toto_request> valid;
    std::vector<int> where;
    for (int i = 0; i < n; i++) {
        std::memset(&results[i], 0, sizeof results[i]);
        results[i].status =
            toto_request_validate(model, &reqs[i], results[i].error, sizeof results[i].error);
        if (results[i].status == TOTO_OK) {
            valid.push_back(reqs[i]);
            where.push_back(i);
        }
    }
    try {
        std::vector<toto_result> out(valid.size());
        for (toto_result &r : out)
            std::memset(&r, 0, sizeof r);
        // Any thread may call (the daemon's workers): make the model's device current.
        c10::OptionalDeviceGuard guard;
        if (model->net->device().is_cuda())
            guard.reset_device(model->net->device());
        toto::DecodeOptions opt = model->decode;
        opt.compiled = compiled ? model->compiled.get() : nullptr;
        toto::forecast_batch(*model->net, opt, valid.data(), out.data(), int(valid.size()));
        for (size_t k = 0; k < valid.size(); k++)
            results[where[k]] = out[k];
    } catch (const std::exception &e) {
        // Only allocation of the bookkeeping above can land here.
        set_error(err, err_len, "toto_forecast: %s", e.what());
        for (int i : where) {
            results[i].status = TOTO_ENOMEM;
            snprintf(results[i].error, sizeof results[i].error, "toto_forecast: %s", e.what());
        }
        return TOTO_ENOMEM;
    }
    return TOTO_OK;
}

void toto_result_free(toto_result *result) {
    if (!result)
        return;
    std::free(result->mean);
    std::free(result->median);
    std::free(result->quantiles);
    std::free(result->samples);
    result->mean = result->median = result->quantiles = result->samples = nullptr;
}

} // extern "C"
