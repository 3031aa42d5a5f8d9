// first_patch.h - the exact statistics of the first predicted patch of every
// request of a context pass: computed on the GPU by the mixture kernel when
// the model runs there (model/cuda), else left to the host (result_stats.cc)
// with the head's parameters copied over once.
#pragma once

#include <vector>

#include "internal.h"
#include "result_stats.h"

namespace toto {

class FirstPatches {
  public:
    // head: each [B, V, P, K]; mean, scale: [B*V] scaler statistics of the
    // last context patch; reqs: the B requests (their quantile levels).
    FirstPatches(const HeadOut &head, const torch::Tensor &mean, const torch::Tensor &scale,
                 const std::vector<const toto_request *> &reqs);

    // Request b's first patch (it points into this object: keep it alive).
    FirstPatch of(int64_t b) const;

  private:
    bool on_device(const HeadOut &head, const torch::Tensor &mean, const torch::Tensor &scale,
                   const std::vector<const toto_request *> &reqs);

    int64_t B_ = 0, V_ = 0, P_ = 0, K_ = 0;
    torch::Tensor params_;       // host path: [4, B, V, P, K] weights, df, loc, scale
    torch::Tensor stats_;        // host path: [2, B*V] scaler mean and scale
    torch::Tensor exact_;        // device path, on the host: mean [B*V, P] | quantiles [L, B*V, P]
    std::vector<double> levels_; // device path: the L levels computed
    torch::Tensor levels_pinned_;
    mutable bool pending_ = false; // exact_ is still being copied
    void wait() const;
};

} // namespace toto
