// train_loss.h - teacher-forced forward pass over whole windows and the
// negative log-likelihood of the next patch under the Student-t mixture the
// forecast code samples from.
#pragma once

#include "internal.h"

namespace toto_train {

// A batch of univariate windows: x [B, T] float64 (missing and padding = 0),
// w [B, T] float64 observed weights (0/1), target [B, T] float64: 1 where a
// step counts in the loss (observed and not held out). T a multiple of P.
struct Batch {
    torch::Tensor x, w, target;
};

struct LossOut {
    torch::Tensor loss;   // scalar: mean NLL per scored step (scaled units)
    torch::Tensor nll;    // [B, S-1, P] per-step NLL (0 where not scored)
    torch::Tensor mean;   // [B, S-1, P] the mixture mean in original units
    torch::Tensor scored; // [B, S-1, P] the target weights
};

// Runs net over every window (the causal patch scaler, then the TIME/SPACE
// stack), and scores patch s + 1 under the head of patch s: the head's
// mixture is over (x - mean_s) / scale_s with the scaler's statistics at the
// last step of patch s, exactly what decoding samples and maps back by
// mean_s + scale_s * Z (TOTO.md, step 7). The Jacobian of that map does not
// depend on the weights, so the NLL in scaled units has the same gradient.
LossOut next_patch_nll(const toto::Network &net, const Batch &b);

// log of the Student-t mixture density at z, all [..., K] but z [...].
torch::Tensor mixture_log_prob(const toto::HeadOut &h, const torch::Tensor &z);

} // namespace toto_train
