// result_stats.cc - mean, median, quantiles and samples of one result (host
// side; uses only ATen's thread pool).
#include "result_stats.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>

#include "mixture.h"

namespace toto {

namespace {

double *alloc_values(int64_t n) {
    auto *p = static_cast<double *>(std::malloc(size_t(std::max<int64_t>(n, 1)) * sizeof(double)));
    if (!p)
        throw std::bad_alloc();
    return p;
}

// Linear interpolation between order statistics, as torch.quantile does.
double sorted_quantile(const double *sorted, size_t n, double q) {
    double pos = q * double(n - 1);
    size_t lo = size_t(std::floor(pos));
    size_t hi = std::min(lo + 1, n - 1);
    return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

// Level q of step t of variate v, computed before (on the GPU).
double precomputed_quantile(const FirstPatch &fp, int64_t v, int64_t t, double q) {
    const std::vector<double> &levels = *fp.pre_levels;
    size_t l = size_t(std::lower_bound(levels.begin(), levels.end(), q) - levels.begin());
    return fp.pre_q[int64_t(l) * fp.pre_q_stride + v * fp.P + t];
}

// Step t (< P) of variate v from the statistics computed on the GPU.
void fill_precomputed_step(const toto_request &r, const FirstPatch &fp, int64_t v, int64_t t,
                           bool exact_mean, toto_result *res) {
    const int64_t h = r.prediction_length, at = v * h + t;
    if (exact_mean)
        res->mean[at] = fp.pre_mean[v * fp.P + t];
    if (res->median)
        res->median[at] = precomputed_quantile(fp, v, t, 0.5);
    for (int l = 0; l < r.n_quantiles; l++)
        res->quantiles[l * r.n_variates * h + at] =
            precomputed_quantile(fp, v, t, r.quantile_levels[l]);
}

// Step t (< P) of variate v: exact statistics of the head's mixture.
void fill_exact_step(const toto_request &r, const FirstPatch &fp, int64_t v, int64_t t,
                     bool exact_mean, toto_result *res) {
    if (fp.pre_mean) {
        fill_precomputed_step(r, fp, v, t, exact_mean, res);
        return;
    }
    const int64_t h = r.prediction_length, at = v * h + t, k0 = (v * fp.P + t) * fp.K;
    mixture_t m = {int(fp.K), &fp.w[k0], &fp.df[k0], &fp.loc[k0], &fp.scale[k0]};
    auto unscale = [&](double z) { return fp.mean[v] + fp.sd[v] * z; };
    if (exact_mean)
        res->mean[at] = unscale(mixture_mean(&m));
    if (res->median)
        res->median[at] = unscale(mixture_quantile(&m, 0.5));
    for (int l = 0; l < r.n_quantiles; l++)
        res->quantiles[l * r.n_variates * h + at] =
            unscale(mixture_quantile(&m, r.quantile_levels[l]));
}

// Step t of variate v over N sampled paths.
void fill_sampled_step(const toto_request &r, const double *paths, int64_t N, int64_t stride,
                       int64_t v, int64_t t, std::vector<double> &column, toto_result *res) {
    const int64_t V = r.n_variates, h = r.prediction_length, at = v * h + t;
    double sum = 0;
    for (int64_t n = 0; n < N; n++) {
        column[size_t(n)] = paths[(n * V + v) * stride + t];
        sum += column[size_t(n)];
    }
    res->mean[at] = sum / double(N);
    // column may be longer than N (it is shared by jobs of other sizes).
    std::sort(column.begin(), column.begin() + N);
    res->median[at] = sorted_quantile(column.data(), size_t(N), 0.5);
    for (int l = 0; l < r.n_quantiles; l++)
        res->quantiles[l * V * h + at] =
            sorted_quantile(column.data(), size_t(N), r.quantile_levels[l]);
}

// Step t of variate v from the paths' statistics computed on the GPU.
void fill_sampled_stats_step(const toto_request &r, const SampledStats &st, int64_t v, int64_t t,
                             toto_result *res) {
    const std::vector<double> &levels = *st.levels;
    const int64_t h = r.prediction_length, at = v * h + t, L = int64_t(levels.size());
    const double *var = st.base + v * (1 + L) * st.row;
    auto level = [&](double q) {
        size_t l = size_t(std::lower_bound(levels.begin(), levels.end(), q) - levels.begin());
        return var[(1 + int64_t(l)) * st.row + t];
    };
    res->mean[at] = var[t];
    res->median[at] = level(0.5);
    for (int l = 0; l < r.n_quantiles; l++)
        res->quantiles[l * r.n_variates * h + at] = level(r.quantile_levels[l]);
}

// The arrays of one result, sized from its request.
void allocate_result(const ResultJob &job) {
    const toto_request &r = *job.req;
    toto_result *res = job.res;
    const int64_t V = r.n_variates, h = r.prediction_length, N = job.num_samples;
    res->n_variates = int(V);
    res->prediction_length = int(h);
    res->num_samples = int(N);
    res->n_quantiles = r.n_quantiles;
    res->mean = alloc_values(V * h);
    if (N > 0 || h <= job.fp.P)
        res->median = alloc_values(V * h);
    if (r.n_quantiles > 0)
        res->quantiles = alloc_values(r.n_quantiles * V * h);
    if (r.return_samples && N > 0)
        res->samples = alloc_values(N * V * h);
}

void fill_cell(const ResultJob &job, int64_t cell, std::vector<double> &column) {
    const toto_request &r = *job.req;
    const int64_t h = r.prediction_length, v = cell / h, t = cell % h, N = job.num_samples;
    if (N == 0)
        job.res->mean[v * h + t] = job.paths[v * job.stride + t];
    if (t < std::min<int64_t>(h, job.fp.P))
        fill_exact_step(r, job.fp, v, t, N > 0, job.res);
    else if (N > 0 && job.sampled.base)
        fill_sampled_stats_step(r, job.sampled, v, t, job.res);
    else if (N > 0)
        fill_sampled_step(r, job.paths, N, job.stride, v, t, column, job.res);
}

void copy_samples(const ResultJob &job) {
    const int64_t V = job.req->n_variates, h = job.req->prediction_length;
    for (int64_t row = 0; job.res->samples && row < job.num_samples * V; row++)
        for (int64_t t = 0; t < h; t++)
            job.res->samples[row * h + t] = job.paths[row * job.stride + t];
}

} // namespace

void fill_results(const std::vector<ResultJob> &jobs) {
    std::vector<int64_t> first_cell{0}; // prefix sums of cells per job
    int64_t max_samples = 1;
    for (const ResultJob &job : jobs) {
        allocate_result(job);
        first_cell.push_back(first_cell.back() +
                             int64_t(job.req->n_variates) * job.req->prediction_length);
        max_samples = std::max(max_samples, job.num_samples);
    }
    // Exact quantiles invert a mixture CDF (tens of microseconds each) and
    // sorting paths is N log N: spread every cell over the intra-op threads.
    // Each cell writes only its own entries.
    at::parallel_for(0, first_cell.back(), 1, [&](int64_t begin, int64_t end) {
        std::vector<double> column(static_cast<size_t>(max_samples));
        for (int64_t cell = begin; cell < end; cell++) {
            size_t j = size_t(std::upper_bound(first_cell.begin(), first_cell.end(), cell) -
                              first_cell.begin() - 1);
            fill_cell(jobs[j], cell - first_cell[j], column);
        }
    });
    for (const ResultJob &job : jobs) {
        copy_samples(job);
        job.res->status = TOTO_OK;
    }
}

} // namespace toto
