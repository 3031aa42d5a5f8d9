// result_stats.h - a result's arrays from decoded paths and the exact
// distribution of the first predicted patch (CPU, float64, no libtorch).
#pragma once

#include <cstdint>
#include <vector>

#include "toto.h"

namespace toto {

// The head's mixture for the first predicted patch of one request, in scaled
// units, and the scaler statistics that map it back: value = mean + scale * z.
struct FirstPatch {
    int64_t V = 0, P = 0, K = 0;
    std::vector<double> w, df, loc, scale; // [V][P][K]
    std::vector<double> mean, sd;          // [V]
    // Or already computed (on the GPU): the exact mean [V][P] and quantiles,
    // level l's [V][P] at pre_q + l * pre_q_stride, for the levels in
    // pre_levels (every level the request asks for, and 0.5).
    const double *pre_mean = nullptr, *pre_q = nullptr;
    int64_t pre_q_stride = 0;
    const std::vector<double> *pre_levels = nullptr;
};

// The statistics of N sampled paths, computed on the GPU: for variate v and
// step t, the mean at base[v * (1 + L) * row + t] and the quantile at
// level l at base[(v * (1 + L) + 1 + l) * row + t], for the L sorted levels
// (every level the request asks for, and 0.5).
struct SampledStats {
    const double *base = nullptr;
    int64_t row = 0;
    const std::vector<double> *levels = nullptr;
};

// One result to fill. paths holds, row-major with row length stride, the
// decoded values: [V] rows for a mean forecast (num_samples 0) or [N*V] rows
// (path-major) for N sampled paths; it may be NULL when sampled.base holds
// their statistics and the request does not return them.
struct ResultJob {
    const toto_request *req;
    FirstPatch fp;
    const double *paths;
    int64_t num_samples;
    int64_t stride;
    toto_result *res;
    SampledStats sampled = {};
};

// Fills every job's result: steps of the first patch get exact mean, median
// and quantiles from fp, later steps come from the paths. All (variate, step)
// cells of all jobs share one parallel pass. Throws std::bad_alloc.
void fill_results(const std::vector<ResultJob> &jobs);

} // namespace toto
