// train_data.cc - real series from CSV (through the toto CLI's reader) with
// their held-out tails, and batches of training windows.
#include "train_data.h"

#include <cmath>
#include <cstring>

extern "C" { // client/'s reader is C, its header has no C++ guard
#include "csv_series.h"
}
#include "train_synth.h"

namespace toto_train {

namespace {

std::vector<std::string> split(const std::string &s, char sep) {
    std::vector<std::string> parts;
    size_t start = 0, at;
    while ((at = s.find(sep, start)) != std::string::npos) {
        parts.push_back(s.substr(start, at - start));
        start = at + 1;
    }
    parts.push_back(s.substr(start));
    return parts;
}

} // namespace

bool load_series(const std::string &spec, double holdout, std::vector<Series> &out,
                 std::string &err) {
    // FILE may hold ':' only before the last two fields.
    size_t c2 = spec.rfind(':'), c1 = c2 == std::string::npos ? c2 : spec.rfind(':', c2 - 1);
    if (c1 == std::string::npos || c1 == 0) {
        err = "--series '" + spec + "': expected FILE:TIME_COLUMN:COL[,COL...]";
        return false;
    }
    const std::string file = spec.substr(0, c1), time_col = spec.substr(c1 + 1, c2 - c1 - 1);
    std::vector<std::string> cols = split(spec.substr(c2 + 1), ',');
    std::vector<const char *> col_ptrs;
    for (const auto &c : cols)
        col_ptrs.push_back(c.c_str());
    csv_series_options opt;
    std::memset(&opt, 0, sizeof opt);
    opt.time_column = time_col.c_str();
    opt.value_columns = col_ptrs.data();
    opt.n_value_columns = col_ptrs.size();
    opt.keep_gaps = true;
    opt.skip_malformed = true; // e.g. Binance's "2017-08-17 05-AM" rows: their twins parse
    opt.duplicates = CSV_DUPLICATES_FIRST;
    csv_series s;
    char msg[1024] = "";
    if (csv_series_read_file(file.c_str(), &opt, &s, msg, sizeof msg) != 0) {
        err = msg;
        csv_series_free(&s);
        return false;
    }
    if (s.length < 2 || !s.times) {
        err = file + ": fewer than 2 timed rows";
        csv_series_free(&s);
        return false;
    }
    const double t0 = double(s.times[0]), t1 = double(s.times[s.length - 1]);
    const double cut = t0 + (1.0 - holdout) * (t1 - t0);
    size_t n_train = 0;
    while (n_train < s.length && double(s.times[n_train]) < cut)
        n_train++;
    for (size_t v = 0; v < s.n_variates; v++) {
        Series one;
        one.name = file.substr(file.rfind('/') + 1) + ":" + cols[v];
        one.values.assign(s.values + v * s.length, s.values + (v + 1) * s.length);
        one.n_train = n_train;
        out.push_back(std::move(one));
    }
    csv_series_free(&s);
    return true;
}

Sampler::Sampler(const std::vector<Series> &real, SamplerOptions opt, uint64_t seed)
    : real_(real), opt_(opt), rng_(seed) {
    // Longer series weigh more, but only as the square root: ETTh1's seven
    // columns must not drown the daily stocks.
    std::vector<double> weights;
    for (const Series &s : real_)
        weights.push_back(std::sqrt(double(s.n_train)));
    if (!weights.empty())
        pick_ = std::discrete_distribution<size_t>(weights.begin(), weights.end());
}

// x, w: one window of opt_.window steps, the real values at its end.
void Sampler::real_window(double *x, double *w) {
    const Series &s = real_[pick_(rng_)];
    const int64_t T = opt_.window, n = int64_t(s.n_train);
    int64_t len = std::min(T, n);
    if (std::uniform_real_distribution<double>(0, 1)(rng_) < opt_.short_share)
        len = std::min(len, std::uniform_int_distribution<int64_t>(2 * opt_.patch, T)(rng_));
    const int64_t start = std::uniform_int_distribution<int64_t>(0, n - len)(rng_);
    for (int64_t t = 0; t < T; t++) {
        int64_t i = start + t - (T - len);
        double v = i >= start ? s.values[size_t(i)] : NAN;
        w[t] = std::isfinite(v) ? 1.0 : 0.0;
        x[t] = std::isfinite(v) ? v : 0.0;
    }
}

Batch Sampler::next() {
    const int64_t B = opt_.batch, T = opt_.window;
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    Batch b{torch::zeros({B, T}, f64), torch::zeros({B, T}, f64), torch::Tensor()};
    double *x = b.x.data_ptr<double>(), *w = b.w.data_ptr<double>();
    std::uniform_real_distribution<double> u(0, 1);
    for (int64_t r = 0; r < B; r++) {
        double *xr = x + r * T, *wr = w + r * T;
        if (real_.empty() || u(rng_) < opt_.synthetic_share) {
            int64_t len = T;
            if (u(rng_) < opt_.short_share)
                len = std::uniform_int_distribution<int64_t>(2 * opt_.patch, T)(rng_);
            synth_series(rng_, xr + (T - len), len);
            for (int64_t t = T - len; t < T; t++)
                wr[t] = 1.0;
        } else {
            real_window(xr, wr);
        }
    }
    b.target = b.w.clone();
    return b;
}

Batch Sampler::held_out() const {
    // Windows ending every `window` steps back from the end, while they still
    // reach into the held-out tail (at most 8 a series); only tail steps count.
    const int64_t T = opt_.window;
    std::vector<std::pair<const Series *, int64_t>> ends;
    for (const Series &s : real_)
        for (int64_t e = int64_t(s.values.size()), k = 0;
             k < 8 && e > int64_t(s.n_train) + opt_.patch; e -= T, k++)
            ends.emplace_back(&s, e);
    auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    const int64_t B = int64_t(ends.size());
    Batch b{torch::zeros({B, T}, f64), torch::zeros({B, T}, f64), torch::zeros({B, T}, f64)};
    double *x = b.x.data_ptr<double>(), *w = b.w.data_ptr<double>();
    double *target = b.target.data_ptr<double>();
    for (int64_t r = 0; r < B; r++) {
        const Series &s = *ends[size_t(r)].first;
        for (int64_t t = 0; t < T; t++) {
            int64_t i = ends[size_t(r)].second - T + t;
            double v = i >= 0 ? s.values[size_t(i)] : NAN;
            bool ok = std::isfinite(v);
            x[r * T + t] = ok ? v : 0.0;
            w[r * T + t] = ok ? 1.0 : 0.0;
            target[r * T + t] = ok && i >= int64_t(s.n_train) ? 1.0 : 0.0;
        }
    }
    return b;
}

} // namespace toto_train
