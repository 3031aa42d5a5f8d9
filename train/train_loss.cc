// train_loss.cc - the mixture-of-Student-t negative log-likelihood of the
// next patch, teacher-forced over whole windows.
#include "train_loss.h"

#include <cmath>

namespace toto_train {

torch::Tensor mixture_log_prob(const toto::HeadOut &h, const torch::Tensor &z) {
    auto df = h.df, u = (z.unsqueeze(-1) - h.loc) / h.scale;
    auto log_t = torch::lgamma((df + 1) / 2) - torch::lgamma(df / 2) - 0.5 * torch::log(df * M_PI) -
                 torch::log(h.scale) - (df + 1) / 2 * torch::log1p(u * u / df);
    // The head hands out probabilities (what sampling uses); their log is
    // clamped so that a component the softmax rounds to 0 cannot give -inf.
    return torch::logsumexp(torch::log(h.probs.clamp_min(1e-30)) + log_t, -1);
}

LossOut next_patch_nll(const toto::Network &net, const Batch &b) {
    const toto_config &cfg = net.config();
    const int64_t P = cfg.patch_size, B = b.x.size(0), S = b.x.size(1) / P;
    toto::Scaler scaler(cfg);
    auto [mean, scale] = scaler.init(b.x, b.w); // [B, S] each, float64
    auto patches = toto::scale_patches(b.x, mean, scale, 1, P, net.input_dtype());
    auto ids =
        torch::zeros({B, 1}, torch::TensorOptions().dtype(torch::kInt64).device(b.x.device()));
    auto hidden = net.backbone(patches, ids, nullptr).squeeze(1); // [B, S, D]
    toto::HeadOut h = net.head(hidden.narrow(1, 0, S - 1));       // [B, S-1, P, K]

    // Patch s + 1 in the units of patch s's statistics.
    auto next = b.x.view({B, S, P}).narrow(1, 1, S - 1);
    auto mu = mean.narrow(1, 0, S - 1).unsqueeze(2), sigma = scale.narrow(1, 0, S - 1).unsqueeze(2);
    auto z = ((next - mu) / sigma).to(h.loc.scalar_type());
    auto scored = b.target.view({B, S, P}).narrow(1, 1, S - 1).to(z.scalar_type());

    LossOut out;
    out.nll = -mixture_log_prob(h, z) * scored;
    out.loss = out.nll.sum() / scored.sum().clamp_min(1.0);
    out.scored = scored;
    auto mix_mean = (h.probs * h.loc).sum(-1).to(torch::kFloat64);
    out.mean = (mu + sigma * mix_mean).detach();
    return out;
}

} // namespace toto_train
