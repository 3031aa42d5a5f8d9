// train_verify.h - checks that a written checkpoint, opened through the C API
// (model/toto.h) like totod opens it, forecasts what the trained network
// predicts: the mean of the first forecast patch, from the same context.
#pragma once

#include <string>

#include "train_model.h"

namespace toto_train {

// Returns false with a message in err when the two differ by more than
// float32 rounding (relative 1e-3 of the context's spread).
bool verify_checkpoint(const std::string &dir, const Params &p, const toto_config &cfg,
                       int64_t window, std::string &err);

} // namespace toto_train
