// toto_profile.cc - where a forecast's GPU time goes: runs one workload
// through model/toto.h under libtorch's Kineto profiler (CUPTI) and saves a
// Chrome trace, whose kernels (those replayed inside CUDA graphs included)
// scripts/profile-model sums by name. A developer's tool, built only with a
// CUDA libtorch; not a test.
//
//   toto-profile --model DIR --trace OUT.json [--device cuda] [--batch B]
//                [--variates V] [--context T] [--horizon H] [--samples N]
//                [--repeat R] [--path compiled|eager]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include "bench_series.h"
#include "toto.h"

namespace {

struct Options {
    std::string model, trace, device = "cuda", path = "compiled";
    int batch = 1, variates = 1, context = 512, horizon = 8, samples = 1024, repeat = 10;
};

int usage() {
    std::fprintf(stderr, "usage: toto-profile --model DIR --trace OUT.json [--device cuda] "
                         "[--batch B] [--variates V] [--context T] [--horizon H] [--samples N] "
                         "[--repeat R] [--path compiled|eager]\n");
    return 2;
}

bool parse(int argc, char **argv, Options &o) {
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (i + 1 >= argc)
            return false;
        const char *v = argv[++i];
        if (a == "--model")
            o.model = v;
        else if (a == "--trace")
            o.trace = v;
        else if (a == "--device")
            o.device = v;
        else if (a == "--path")
            o.path = v;
        else if (a == "--batch")
            o.batch = std::atoi(v);
        else if (a == "--variates")
            o.variates = std::atoi(v);
        else if (a == "--context")
            o.context = std::atoi(v);
        else if (a == "--horizon")
            o.horizon = std::atoi(v);
        else if (a == "--samples")
            o.samples = std::atoi(v);
        else if (a == "--repeat")
            o.repeat = std::atoi(v);
        else
            return false;
    }
    return !o.model.empty() && !o.trace.empty() && o.batch > 0 && o.variates > 0 && o.context > 0 &&
           o.horizon > 0 && o.samples >= 0 && o.repeat > 0;
}

// The series toto-bench forecasts (bench_series.h).
std::vector<double> make_values(int variates, int context) {
    std::vector<double> v(size_t(variates) * size_t(context));
    bench_series_fill(v.data(), variates, context, 1);
    return v;
}

// One toto_forecast() of the batch; false with a message on failure.
bool forecast(toto_model *m, std::vector<toto_request> &reqs) {
    std::vector<toto_result> res(reqs.size());
    char err[512] = "";
    int rc = toto_forecast(m, reqs.data(), res.data(), int(reqs.size()), err, sizeof err);
    for (auto &r : res) {
        if (rc == TOTO_OK && r.status != TOTO_OK)
            rc = r.status, std::snprintf(err, sizeof err, "%s", r.error);
        toto_result_free(&r);
    }
    if (rc != TOTO_OK)
        std::fprintf(stderr, "toto-profile: %s\n", err);
    return rc == TOTO_OK;
}

} // namespace

int main(int argc, char **argv) {
    Options o;
    if (!parse(argc, argv, o))
        return usage();
    toto_model_params p = toto_model_default_params();
    p.device = o.device.c_str();
    char err[512];
    toto_model *m = toto_model_open(o.model.c_str(), &p, err, sizeof err);
    if (!m) {
        std::fprintf(stderr, "toto-profile: %s\n", err);
        return 1;
    }
    if (toto_model_set_path(m, o.path.c_str(), err, sizeof err) != TOTO_OK) {
        std::fprintf(stderr, "toto-profile: %s\n", err);
        toto_model_free(m);
        return 1;
    }
    const std::vector<double> values = make_values(o.variates, o.context);
    std::vector<toto_request> reqs(size_t(o.batch));
    for (int b = 0; b < o.batch; b++)
        reqs[size_t(b)] = toto_request{o.variates, o.context, values.data(), nullptr,     o.horizon,
                                       o.samples,  0,         nullptr,       uint64_t(b), false};
    bool ok = forecast(m, reqs) && forecast(m, reqs); // warm: first-call allocations stay out
    if (ok) {
        namespace prof = torch::autograd::profiler;
        namespace impl = torch::profiler::impl;
        const impl::ProfilerConfig config(impl::ProfilerState::KINETO);
        const std::set<impl::ActivityType> activities{impl::ActivityType::CPU,
                                                      impl::ActivityType::CUDA};
        prof::prepareProfiler(config, activities);
        prof::enableProfiler(config, activities);
        for (int i = 0; ok && i < o.repeat; i++) {
            RECORD_USER_SCOPE("toto_forecast"); // the call's bounds in the trace
            ok = forecast(m, reqs);
        }
        auto result = prof::disableProfiler();
        if (ok)
            result->save(o.trace);
    }
    toto_model_free(m);
    if (ok)
        std::printf("toto-profile: %d calls of %d x %d, context %d, horizon %d, samples %d on %s "
                    "(%s path) -> %s\n",
                    o.repeat, o.batch, o.variates, o.context, o.horizon, o.samples,
                    o.device.c_str(), o.path.c_str(), o.trace.c_str());
    return ok ? 0 : 1;
}
