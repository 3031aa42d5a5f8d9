// train_synth.h - synthetic series for training: trends, daily and weekly
// seasonalities, level shifts, spikes, noise and random walks, mixed at
// random so that the model sees every kind of structure it should forecast.
#pragma once

#include <cstdint>
#include <random>

namespace toto_train {

// Fills x[0, n) with one synthetic series.
void synth_series(std::mt19937_64 &rng, double *x, int64_t n);

} // namespace toto_train
