// train_data.h - training windows: real series from CSV files with the last
// fraction of every series held out, and synthetic series drawn on the fly.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "train_loss.h"

namespace toto_train {

// One variate of a CSV file: values in time order (NaN = missing) and where
// its held-out tail begins.
struct Series {
    std::string name;
    std::vector<double> values;
    size_t n_train = 0; // values[0, n_train) may be trained on
};

// spec: FILE:TIME_COLUMN:COL[,COL...]; one Series per column. The held-out
// tail is the last holdout fraction of the series' time span (the rows at
// or after first + (1 - holdout) * (last - first)), the same cut as
// scripts/backtest --holdout-fraction. Rows are sorted by time, duplicate
// times keep the first row, and gaps are not filled (a market's closed days
// are not missing data). Returns false with a message in err.
bool load_series(const std::string &spec, double holdout, std::vector<Series> &out,
                 std::string &err);

struct SamplerOptions {
    int64_t batch = 32;
    int64_t window = 512; // steps, a multiple of the patch size
    int64_t patch = 16;
    double synthetic_share = 0.5; // of each batch
    double short_share = 0.2;     // windows cut short (left-padded), like short contexts
};

class Sampler {
  public:
    Sampler(const std::vector<Series> &real, SamplerOptions opt, uint64_t seed);
    // A training batch on the CPU.
    Batch next();
    // Held-out windows: per series up to 8 windows ending in its held-out
    // tail, scored only on tail steps (empty if no series has a tail).
    Batch held_out() const;

  private:
    void real_window(double *x, double *w);
    const std::vector<Series> &real_;
    SamplerOptions opt_;
    std::mt19937_64 rng_;
    std::discrete_distribution<size_t> pick_; // series by trainable length
};

} // namespace toto_train
