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
double sorted_quantile(const std::vector<double> &sorted, double q) {
    double pos = q * double(sorted.size() - 1);
    size_t lo = size_t(std::floor(pos));
    size_t hi = std::min(lo + 1, sorted.size() - 1);
    return sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
}

// Step t (< P) of variate v: exact statistics of the head's mixture.
void fill_exact_step(const toto_request &r, const FirstPatch &fp, int64_t v, int64_t t,
                     bool exact_mean, toto_result *res) {
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
    std::sort(column.begin(), column.end());
    res->median[at] = sorted_quantile(column, 0.5);
    for (int l = 0; l < r.n_quantiles; l++)
        res->quantiles[l * V * h + at] = sorted_quantile(column, r.quantile_levels[l]);
}

} // namespace

void fill_result(const toto_request &r, const FirstPatch &fp, const double *paths,
                 int64_t num_samples, int64_t stride, toto_result *res) {
    const int64_t V = r.n_variates, h = r.prediction_length, N = num_samples;
    const int64_t exact_steps = std::min<int64_t>(h, fp.P);
    res->n_variates = int(V);
    res->prediction_length = int(h);
    res->num_samples = int(N);
    res->n_quantiles = r.n_quantiles;
    res->mean = alloc_values(V * h);
    if (N > 0 || h <= fp.P)
        res->median = alloc_values(V * h);
    if (r.n_quantiles > 0)
        res->quantiles = alloc_values(r.n_quantiles * V * h);
    if (r.return_samples && N > 0)
        res->samples = alloc_values(N * V * h);

    // Exact quantiles invert a mixture CDF (tens of microseconds each) and
    // sorting paths is N log N: spread the (variate, step) cells over the
    // intra-op threads. Each cell writes only its own entries.
    at::parallel_for(0, V * h, 1, [&](int64_t begin, int64_t end) {
        std::vector<double> column(size_t(std::max<int64_t>(N, 1)));
        for (int64_t cell = begin; cell < end; cell++) {
            const int64_t v = cell / h, t = cell % h;
            if (N == 0)
                res->mean[v * h + t] = paths[v * stride + t];
            if (t < exact_steps)
                fill_exact_step(r, fp, v, t, N > 0, res);
            else if (N > 0)
                fill_sampled_step(r, paths, N, stride, v, t, column, res);
        }
    });
    for (int64_t n = 0; res->samples && n < N; n++)
        for (int64_t v = 0; v < V; v++)
            for (int64_t t = 0; t < h; t++)
                res->samples[(n * V + v) * h + t] = paths[(n * V + v) * stride + t];
    res->status = TOTO_OK;
}

} // namespace toto
