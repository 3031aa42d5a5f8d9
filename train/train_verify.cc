// train_verify.cc - the written checkpoint against the network it came from.
#include "train_verify.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "train_synth.h"

namespace toto_train {

bool verify_checkpoint(const std::string &dir, const Params &p, const toto_config &cfg,
                       int64_t window, std::string &err) {
    torch::NoGradGuard no_grad;
    const int64_t P = cfg.patch_size, T = window, S = T / P;
    std::mt19937_64 rng(12345);
    std::vector<double> x(static_cast<size_t>(T));
    synth_series(rng, x.data(), T);

    // The training side, on the CPU in float32.
    Params cpu;
    for (const auto &[n, t] : p.named)
        cpu.named.emplace_back(n, t.detach().to(torch::kCPU));
    toto::Network net(cfg, to_weights(cpu, cfg), torch::kCPU, torch::kFloat32);
    auto xt = torch::from_blob(x.data(), {1, T}, torch::kFloat64).clone();
    toto::Scaler scaler(cfg);
    auto [mean, scale] = scaler.init(xt, torch::ones_like(xt));
    auto patches = toto::scale_patches(xt, mean, scale, 1, P, torch::kFloat32);
    auto hidden = net.backbone(patches, torch::zeros({1, 1}, torch::kInt64), nullptr);
    toto::HeadOut h = net.head(hidden.select(2, S - 1)); // [1, 1, P, K]
    auto want = (mean[0][S - 1] + scale[0][S - 1] * (h.probs * h.loc).sum(-1).to(torch::kFloat64))
                    .flatten();

    // The serving side.
    toto_model_params mp = toto_model_default_params();
    mp.compile = false;
    char msg[1024] = "";
    toto_model *m = toto_model_open(dir.c_str(), &mp, msg, sizeof msg);
    if (!m) {
        err = std::string("reopening the checkpoint: ") + msg;
        return false;
    }
    toto_request req{};
    req.n_variates = 1;
    req.n_steps = int(T);
    req.values = x.data();
    req.prediction_length = int(P);
    toto_result res{};
    bool ok = toto_forecast(m, &req, &res, 1, msg, sizeof msg) == TOTO_OK && res.status == TOTO_OK;
    if (!ok)
        err = std::string("forecast on the checkpoint: ") + (res.error[0] ? res.error : msg);
    double spread = scale[0][S - 1].item<double>(), worst = 0;
    for (int64_t i = 0; ok && i < P; i++)
        worst = std::max(worst, std::fabs(res.mean[i] - want[i].item<double>()) / spread);
    if (ok && !(worst < 1e-3)) {
        char buf[256];
        std::snprintf(buf, sizeof buf,
                      "%s: the served first-patch mean differs from the trained network's by "
                      "%.3g of the scale",
                      dir.c_str(), worst);
        err = buf;
        ok = false;
    }
    toto_result_free(&res);
    toto_model_free(m);
    return ok;
}

} // namespace toto_train
