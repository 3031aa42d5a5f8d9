// toto_train.cc - toto-train: trains a Toto 1.0 checkpoint with the model's
// own network code (libtorch autograd, AdamW with warm-up and a cosine decay)
// on real series with held-out tails plus synthetic series, and writes it in
// the checkpoint format totod loads. docs/training.md is the user's view.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "train_data.h"
#include "train_loss.h"
#include "train_model.h"
#include "train_verify.h"

namespace {

struct Options {
    std::string config, out, device = "cpu";
    std::vector<std::string> series;
    double holdout = 0.1, lr = 1e-3, min_lr_frac = 0.1, weight_decay = 0.05, minutes = 0;
    int64_t steps = 1000, warmup = 100, log_every = 50, eval_every = 0, threads = 0;
    uint64_t seed = 1;
    bool verify = false;
    toto_train::SamplerOptions sampler;
};

const char *kUsage =
    "usage: toto-train --config CONFIG.json --out DIR [options]\n"
    "  --series FILE:TIME_COL:COL[,COL...]  real series (repeatable); the last --holdout\n"
    "                                       of each is never trained on\n"
    "  --holdout F          held-out fraction of every series' time span (0.1)\n"
    "  --device cpu|cuda    (cpu)\n"
    "  --steps N            optimizer steps at most (1000)\n"
    "  --minutes M          wall-clock limit of the training loop; 0: none (0)\n"
    "  --batch B            windows per step (32)\n"
    "  --window T           steps per window, a multiple of the patch size (512)\n"
    "  --synthetic-share F  share of synthetic windows (0.5)\n"
    "  --lr LR              peak learning rate (1e-3); --warmup N steps (100)\n"
    "  --min-lr-frac F      the cosine decays to F * LR (0.1)\n"
    "  --weight-decay W     AdamW decay of the matrices (0.05)\n"
    "  --seed S             parameters and data (1)\n"
    "  --threads N          CPU threads for libtorch (0: its default)\n"
    "  --log-every N        loss line every N steps (50); --eval-every N held-out loss (0: end)\n"
    "  --verify             reopen the checkpoint through model/toto.h and check its forecast\n";

bool parse(int argc, char **argv, Options &o) {
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "--verify") {
            o.verify = true;
            continue;
        }
        if (a == "-h" || a == "--help") {
            std::fputs(kUsage, stdout);
            std::exit(0);
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "toto-train: %s needs a value\n%s", a.c_str(), kUsage);
            return false;
        }
        const char *v = argv[++i];
        char *end = nullptr;
        auto num = [&](double &d) { d = std::strtod(v, &end); };
        auto integer = [&](int64_t &n) { n = std::strtoll(v, &end, 10); };
        // Text takes any value: point end at its terminator, as a full parse would.
        auto text = [&](std::string &t) {
            t = v;
            end = const_cast<char *>(v) + std::strlen(v);
        };
        double d = 0;
        std::string series;
        if (a == "--config")
            text(o.config);
        else if (a == "--out")
            text(o.out);
        else if (a == "--device")
            text(o.device);
        else if (a == "--series")
            text(series), o.series.push_back(series);
        else if (a == "--holdout")
            num(o.holdout);
        else if (a == "--lr")
            num(o.lr);
        else if (a == "--min-lr-frac")
            num(o.min_lr_frac);
        else if (a == "--weight-decay")
            num(o.weight_decay);
        else if (a == "--minutes")
            num(o.minutes);
        else if (a == "--synthetic-share")
            num(o.sampler.synthetic_share);
        else if (a == "--steps")
            integer(o.steps);
        else if (a == "--warmup")
            integer(o.warmup);
        else if (a == "--log-every")
            integer(o.log_every);
        else if (a == "--eval-every")
            integer(o.eval_every);
        else if (a == "--threads")
            integer(o.threads);
        else if (a == "--batch")
            integer(o.sampler.batch);
        else if (a == "--window")
            integer(o.sampler.window);
        else if (a == "--seed")
            num(d), o.seed = uint64_t(d);
        else {
            std::fprintf(stderr, "toto-train: unknown option %s\n%s", a.c_str(), kUsage);
            return false;
        }
        if (!end || *end) {
            std::fprintf(stderr, "toto-train: %s: not a number: '%s'\n", a.c_str(), v);
            return false;
        }
    }
    if (o.config.empty() || o.out.empty()) {
        std::fprintf(stderr, "toto-train: --config and --out are required\n%s", kUsage);
        return false;
    }
    if (!(o.holdout >= 0 && o.holdout < 1) || o.steps < 1 || o.sampler.batch < 1 ||
        o.log_every < 1) {
        std::fprintf(stderr, "toto-train: --holdout must be in [0, 1), --steps, --batch and "
                             "--log-every at least 1\n");
        return false;
    }
    return true;
}

// Linear warm-up, then a cosine from lr to min_lr_frac * lr over whichever
// budget (steps or wall clock) runs out first.
double learning_rate(const Options &o, int64_t step, double progress) {
    if (step < o.warmup)
        return o.lr * double(step + 1) / double(o.warmup);
    double floor = o.lr * o.min_lr_frac;
    return floor + (o.lr - floor) * 0.5 * (1 + std::cos(M_PI * std::min(progress, 1.0)));
}

toto_train::Batch to_device(const toto_train::Batch &b, torch::Device dev) {
    return {b.x.to(dev), b.w.to(dev), b.target.to(dev)};
}

double held_out_nll(const toto_train::Params &p, const toto_config &cfg, const toto_train::Batch &b,
                    torch::Device dev) {
    if (b.x.size(0) == 0)
        return NAN;
    torch::NoGradGuard no_grad;
    toto::Network net(cfg, toto_train::to_weights(p, cfg), dev, torch::kFloat32);
    double sum = 0, n = 0;
    for (int64_t r = 0; r < b.x.size(0); r += 64) { // chunks bound the memory
        int64_t k = std::min<int64_t>(64, b.x.size(0) - r);
        toto_train::Batch part{b.x.narrow(0, r, k), b.w.narrow(0, r, k), b.target.narrow(0, r, k)};
        auto out = toto_train::next_patch_nll(net, part);
        sum += out.nll.sum().item<double>();
        n += out.scored.sum().item<double>();
    }
    return sum / std::max(n, 1.0);
}

int run(const Options &o) {
    toto_config cfg;
    char msg[1024] = "";
    if (toto_config_load(o.config.c_str(), &cfg, msg, sizeof msg) != TOTO_OK) {
        std::fprintf(stderr, "toto-train: %s\n", msg);
        return 2;
    }
    if (o.sampler.window % cfg.patch_size != 0 || o.sampler.window < 2 * cfg.patch_size) {
        std::fprintf(stderr,
                     "toto-train: --window %lld must be a multiple of patch_size %d, "
                     "at least two patches\n",
                     (long long)o.sampler.window, cfg.patch_size);
        return 2;
    }
    if (o.threads > 0)
        torch::set_num_threads(int(o.threads));
    torch::Device dev(o.device);
    std::vector<toto_train::Series> real;
    for (const auto &spec : o.series) {
        std::string err;
        if (!toto_train::load_series(spec, o.holdout, real, err)) {
            std::fprintf(stderr, "toto-train: %s\n", err.c_str());
            return 2;
        }
    }
    size_t n_train = 0, n_tail = 0;
    for (const auto &s : real) {
        n_train += s.n_train;
        n_tail += s.values.size() - s.n_train;
        if (s.n_train < size_t(2 * cfg.patch_size)) {
            std::fprintf(stderr, "toto-train: %s: %zu trainable steps, fewer than two patches\n",
                         s.name.c_str(), s.n_train);
            return 2;
        }
    }
    std::printf("data: %zu real series, %zu steps trained on, %zu held out (last %.0f%% of each); "
                "synthetic share %.2f\n",
                real.size(), n_train, n_tail, 100 * o.holdout, o.sampler.synthetic_share);

    toto_train::SamplerOptions so = o.sampler;
    so.patch = cfg.patch_size;
    toto_train::Sampler sampler(real, so, o.seed * 7919 + 1);
    const toto_train::Batch held = to_device(sampler.held_out(), dev);
    toto_train::Params params = toto_train::init_params(cfg, dev, o.seed);
    int64_t n_params = 0;
    for (const auto &[n, t] : params.named)
        n_params += t.numel();
    std::printf("model: patch %d, embed %d, %d layers, %d heads, mlp %d, K %d: %lld parameters "
                "(%.2f MB float32); device %s\n",
                cfg.patch_size, cfg.embed_dim, cfg.num_layers, cfg.num_heads, cfg.mlp_hidden_dim,
                cfg.k_components, (long long)n_params, n_params * 4 / 1e6, o.device.c_str());

    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(
        params.decayed,
        std::make_unique<torch::optim::AdamWOptions>(
            torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(o.weight_decay)));
    groups.emplace_back(params.not_decayed,
                        std::make_unique<torch::optim::AdamWOptions>(
                            torch::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(0)));
    torch::optim::AdamW opt(groups);
    std::vector<torch::Tensor> all = params.decayed;
    all.insert(all.end(), params.not_decayed.begin(), params.not_decayed.end());

    const double held_start = held_out_nll(params, cfg, held, dev);
    std::printf("held-out NLL at start: %.4f\n", held_start);
    std::vector<double> curve; // mean training loss of each log interval
    FILE *tsv = nullptr;
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    const double limit_s = o.minutes * 60;
    double sum = 0, last_held = held_start;
    int64_t in_sum = 0, skipped = 0, step = 0;
    std::vector<std::string> lines;
    for (; step < o.steps && (limit_s <= 0 || elapsed() < limit_s); step++) {
        double progress = double(step) / double(o.steps);
        if (limit_s > 0)
            progress = std::max(progress, elapsed() / limit_s);
        const double lr = learning_rate(o, step, progress);
        for (auto &g : opt.param_groups())
            static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);
        toto::Network net(cfg, toto_train::to_weights(params, cfg), dev, torch::kFloat32);
        auto out = toto_train::next_patch_nll(net, to_device(sampler.next(), dev));
        const double loss = out.loss.item<double>();
        if (!std::isfinite(loss)) { // a pathological window: skip, do not poison Adam's moments
            skipped++;
            continue;
        }
        opt.zero_grad();
        out.loss.backward();
        torch::nn::utils::clip_grad_norm_(all, 1.0);
        opt.step();
        sum += loss;
        in_sum++;
        if ((step + 1) % o.log_every == 0) {
            curve.push_back(sum / double(in_sum));
            char line[256];
            std::snprintf(line, sizeof line, "step %6lld  loss %8.4f  lr %.2e  %7.1f s",
                          (long long)step + 1, curve.back(), lr, elapsed());
            std::string l = line;
            if (o.eval_every > 0 && (step + 1) % o.eval_every == 0) {
                last_held = held_out_nll(params, cfg, held, dev);
                std::snprintf(line, sizeof line, "  held-out %.4f", last_held);
                l += line;
            }
            std::printf("%s\n", l.c_str());
            std::fflush(stdout);
            lines.push_back(l);
            sum = 0;
            in_sum = 0;
        }
    }
    const double seconds = elapsed();
    if (in_sum > 0)
        curve.push_back(sum / double(in_sum));
    last_held = held_out_nll(params, cfg, held, dev);
    std::printf("held-out NLL at end: %.4f\n", last_held);

    char buf[64];
    std::vector<std::pair<std::string, std::string>> meta;
    meta.emplace_back("totod_train_steps", std::to_string(step));
    std::snprintf(buf, sizeof buf, "%.1f", seconds);
    meta.emplace_back("totod_train_seconds", buf);
    meta.emplace_back("totod_train_device", o.device);
    std::snprintf(buf, sizeof buf, "%.4f", last_held);
    meta.emplace_back("totod_train_held_out_nll", buf);
    std::string err;
    if (!toto_train::write_checkpoint(o.out, params, cfg, meta, err)) {
        std::fprintf(stderr, "toto-train: %s\n", err.c_str());
        return 1;
    }
    tsv = std::fopen((o.out + "/train-log.txt").c_str(), "w");
    if (tsv) {
        for (const auto &l : lines)
            std::fprintf(tsv, "%s\n", l.c_str());
        std::fclose(tsv);
    }
    // The curve in ten segments, each the mean of its log intervals.
    std::printf("loss curve (mean training NLL per tenth of the run):");
    const size_t n = curve.size();
    for (size_t k = 0; k < 10 && n > 0; k++) {
        size_t a = k * n / 10, b = std::max(a + 1, (k + 1) * n / 10);
        double s = 0;
        for (size_t i = a; i < b && i < n; i++)
            s += curve[i];
        std::printf(" %.3f", s / double(std::min(b, n) - a));
    }
    std::printf("\n");
    std::printf("SUMMARY steps=%lld seconds=%.1f skipped=%lld loss_first=%.4f loss_last=%.4f "
                "held_out_start=%.4f held_out_end=%.4f out=%s\n",
                (long long)step, seconds, (long long)skipped, n ? curve.front() : NAN,
                n ? curve.back() : NAN, held_start, last_held, o.out.c_str());
    if (o.verify) {
        if (!toto_train::verify_checkpoint(o.out, params, cfg, o.sampler.window, err)) {
            std::fprintf(stderr, "toto-train: verify: %s\n", err.c_str());
            return 1;
        }
        std::printf("verify: %s reopened through model/toto.h forecasts what was trained\n",
                    o.out.c_str());
    }
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    Options o;
    if (!parse(argc, argv, o))
        return 2;
    try {
        return run(o);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "toto-train: %s\n", e.what());
        return 1;
    }
}
