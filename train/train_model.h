// train_model.h - the trainable parameters of a Toto checkpoint, kept in the
// checkpoint's own (upstream) layout and names, and turned into the model's
// inference Weights by differentiable operations, so that the network that is
// trained is the same code that later serves the checkpoint.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "internal.h"

namespace toto_train {

struct Params {
    // Names as in model.safetensors without the "model." prefix, in the order
    // the model uses them.
    std::vector<std::pair<std::string, torch::Tensor>> named;
    std::vector<torch::Tensor> decayed, not_decayed; // AdamW groups: matrices vs the rest
};

// Fresh parameters for cfg (requires_grad, float32, on device), seeded.
Params init_params(const toto_config &cfg, torch::Device device, uint64_t seed);

// The inference layout of weights.cc, computed from the parameters with
// autograd intact: QKV rows reordered head-major, queries prescaled by
// 1/sqrt(head dim).
toto::Weights to_weights(const Params &p, const toto_config &cfg);

// Writes dir/config.json and dir/model.safetensors (float32), creating dir.
// meta: extra safetensors metadata pairs (key, value). Returns false with a
// message in err.
bool write_checkpoint(const std::string &dir, const Params &p, const toto_config &cfg,
                      const std::vector<std::pair<std::string, std::string>> &meta,
                      std::string &err);

} // namespace toto_train
