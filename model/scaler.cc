// scaler.cc - the causal patch scaler: running mean and Welford variance in
// float64, clamped around the global scale of the context, read at the last
// step of each patch.
#include <cmath>

#include "internal.h"

namespace toto {

namespace {

constexpr double kMinimumScale = 0.1;

// Inclusive running sum of x along time, continuing from start (per row).
torch::Tensor running_sum(const torch::Tensor &x, const torch::Tensor *start) {
    if (!start)
        return torch::cumsum(x, 1);
    // Prepending the carried sum keeps the order of additions identical to a
    // running sum over the whole series.
    return torch::cumsum(torch::cat({start->unsqueeze(1), x}, 1), 1).narrow(1, 1, x.size(1));
}

torch::Tensor last_of_each_patch(const torch::Tensor &t, int64_t P) {
    return t.unflatten(1, {t.size(1) / P, P}).select(2, P - 1);
}

} // namespace

// Global statistics over the context: they bound the causal scale to within
// 10^±e of the global one.
void Scaler::set_global(const torch::Tensor &x, const torch::Tensor &w) {
    auto count = w.sum(1).clamp_min(1.0);
    auto mean = torch::nan_to_num((w * x).sum(1) / count);
    auto var = ((x - mean.unsqueeze(1)) * w).pow(2).sum(1) / count;
    auto scale = torch::sqrt(var + kMinimumScale);
    lo_ = torch::clamp_min(scale * std::pow(10.0, -cfg_.scale_factor_exponent), kMinimumScale);
    hi_ = scale * std::pow(10.0, cfg_.scale_factor_exponent);
}

// Causal mean and scale at every step of x (weights w), continuing from the
// running state when continuing; updates the state to the last step.
std::pair<torch::Tensor, torch::Tensor> Scaler::causal(const torch::Tensor &x,
                                                       const torch::Tensor &w, bool continuing) {
    auto sum_w = running_sum(w, continuing ? &sum_w_ : nullptr);
    auto sum_wx = running_sum(w * x, continuing ? &sum_wx_ : nullptr);
    auto count = sum_w.clamp_min(1.0);
    auto mean = sum_wx / count;
    auto first_prev = continuing ? last_mean_.unsqueeze(1) : torch::zeros_like(x.narrow(1, 0, 1));
    auto prev_mean = torch::cat({first_prev, mean.narrow(1, 0, x.size(1) - 1)}, 1);
    auto increment = (x - prev_mean) * (x - mean) * w;
    auto m2 = running_sum(increment, continuing ? &m2_ : nullptr);
    auto scale = torch::sqrt(m2 / (count - 1.0).clamp_min(1.0) + kMinimumScale);
    if (cfg_.stabilize_with_global)
        scale = torch::min(torch::max(scale, lo_.unsqueeze(1)), hi_.unsqueeze(1));

    int64_t T = x.size(1);
    sum_w_ = sum_w.select(1, T - 1);
    sum_wx_ = sum_wx.select(1, T - 1);
    m2_ = m2.select(1, T - 1);
    last_mean_ = mean.select(1, T - 1);
    return {mean, scale};
}

std::pair<torch::Tensor, torch::Tensor> Scaler::init(const torch::Tensor &x,
                                                     const torch::Tensor &w) {
    set_global(x, w);
    auto [mean, scale] = causal(x, w, false);
    return {last_of_each_patch(mean, cfg_.patch_size), last_of_each_patch(scale, cfg_.patch_size)};
}

std::pair<torch::Tensor, torch::Tensor> Scaler::extend(const torch::Tensor &xn) {
    auto [mean, scale] = causal(xn, torch::ones_like(xn), true);
    int64_t last = xn.size(1) - 1;
    return {mean.select(1, last), scale.select(1, last)};
}

void Scaler::fork(const torch::Tensor &rows, int64_t groups) {
    for (torch::Tensor *t : {&sum_w_, &sum_wx_, &m2_, &last_mean_, &lo_, &hi_})
        *t = t->index_select(0, rows).repeat({groups});
}

std::pair<torch::Tensor, torch::Tensor> Scaler::recompute(const torch::Tensor &x,
                                                          const torch::Tensor &w, int64_t prefix) {
    set_global(x.narrow(1, 0, prefix), w.narrow(1, 0, prefix));
    auto [mean, scale] = causal(x, w, false);
    return {last_of_each_patch(mean, cfg_.patch_size), last_of_each_patch(scale, cfg_.patch_size)};
}

torch::Tensor Scaler::state() const {
    return torch::stack({sum_w_, sum_wx_, m2_, last_mean_, lo_, hi_});
}

Scaler::Scaler(const toto_config &cfg, const torch::Tensor &state) : cfg_(cfg) {
    torch::Tensor *members[] = {&sum_w_, &sum_wx_, &m2_, &last_mean_, &lo_, &hi_};
    for (int64_t i = 0; i < 6; i++)
        *members[i] = state[i];
}

torch::Tensor scale_patches(const torch::Tensor &x, const torch::Tensor &mean,
                            const torch::Tensor &scale, int64_t V, int64_t P,
                            torch::ScalarType dtype) {
    // Broadcast over the patch's steps: no host sync, so it can be captured.
    auto steps = x.view({x.size(0), x.size(1) / P, P});
    auto z = (steps - mean.unsqueeze(2)) / scale.unsqueeze(2);
    return z.to(dtype).view({x.size(0) / V, V, x.size(1) / P, P});
}

} // namespace toto
