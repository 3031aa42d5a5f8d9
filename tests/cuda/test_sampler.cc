// test_sampler.cc - the Student-t mixture sampler (toto_k_mixture_sample):
// Philox4x32-10 against Random123's known answers, the GPU's draws against a
// CPU replay of the documented scheme (kernels.h), determinism and batch
// independence, and the distribution of 2^20 draws against the exact one.
// Without a CUDA device it prints a TAP skip and passes.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda_test.h"
#include "mixture.h"
#include "philox.h"

namespace {

using ct::DevBuf;
using toto_cuda::Philox4;

// --- Philox4x32-10 -----------------------------------------------------------------

// Random123 tests/kat_vectors, the three "philox4x32 10" lines: ctr[4] key[2]
// -> result[4].
void check_philox_kat() {
    struct Kat {
        uint32_t ctr[4], key[2], want[4];
    } kats[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    int wrong = 0;
    for (const Kat &k : kats) {
        Philox4 c = {{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}};
        Philox4 r = toto_cuda::philox4x32_10(c, k.key[0], k.key[1]);
        for (int i = 0; i < 4; i++)
            wrong += r.v[i] != k.want[i];
    }
    tap_check(wrong == 0, "philox4x32_10 matches Random123's 3 known-answer vectors");
}

// --- the CPU replay of kernels.h's scheme ------------------------------------------------

// The component exactly as the kernel picks it (float32 sums, same order).
int replay_component(const float *w, int K, uint32_t word) {
    float total = 0.0f;
    for (int k = 0; k < K; k++)
        total += w[k];
    const float target = toto_cuda::uniform_co(word) * total;
    float cum = 0.0f;
    int last = -1;
    for (int k = 0; k < K; k++) {
        cum += w[k];
        if (w[k] > 0.0f) {
            last = k;
            if (target < cum)
                return k;
        }
    }
    return last;
}

void box_muller(uint32_t wr, uint32_t wa, double *c, double *s) {
    const double r = std::sqrt(-2.0 * std::log(double(toto_cuda::uniform_oc(wr))));
    const double kPi = 3.14159265358979323846;
    const double a = kPi * double(2.0f * toto_cuda::uniform_co(wa));
    *c = r * std::cos(a);
    *s = r * std::sin(a);
}

bool mt_accept(double x, uint32_t wu, double d, double c, double *g, double *last) {
    const double t = 1.0 + c * x, v = t * t * t;
    *last = d * std::max(v, double(FLT_MIN));
    if (t <= 0.0)
        return false;
    const double u = toto_cuda::uniform_oc(wu), x2 = x * x;
    if (u < 1.0 - 0.0331 * x2 * x2 || std::log(u) < 0.5 * x2 + d * (1.0 - v + std::log(v))) {
        *g = d * v;
        return true;
    }
    return false;
}

// One draw in float64 from the same Philox words; *comp gets the component.
double replay_draw(uint64_t key, uint64_t counter, uint32_t p, const float *w, const float *df,
                   const float *loc, const float *scale, int K, int *comp) {
    const Philox4 b0 = toto_cuda::philox_block(key, counter, p, 0);
    const int k = replay_component(w, K, b0.v[0]);
    *comp = k;
    if (k < 0)
        return NAN;
    double z, unused;
    box_muller(b0.v[1], b0.v[2], &z, &unused);
    const double alpha = 0.5 * df[k];
    const bool boost = alpha < 1.0;
    const double a = boost ? alpha + 1.0 : alpha, d = a - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    double g = 0, last = 0;
    bool done = false;
    for (uint32_t j = 1; j <= 4 && !done; j++) {
        const Philox4 b = toto_cuda::philox_block(key, counter, p, j);
        double x0, x1;
        box_muller(b.v[0], b.v[1], &x0, &x1);
        done = mt_accept(x0, b.v[2], d, c, &g, &last) || mt_accept(x1, b.v[3], d, c, &g, &last);
    }
    if (!done)
        g = last;
    if (boost)
        g *= std::pow(double(toto_cuda::uniform_oc(b0.v[3])), 1.0 / alpha);
    return loc[k] + scale[k] * z / std::sqrt(g / alpha);
}

// --- a batch on the host and on the device ---------------------------------------------

struct Batch {
    int64_t Q = 0, P = 0, K = 0;
    std::vector<float> probs, df, loc, scale; // [Q, P, K]
    std::vector<uint64_t> keys, counters;     // [Q]

    Batch(int64_t q, int64_t p, int64_t k)
        : Q(q), P(p), K(k), probs(size_t(q * p * k)), df(probs.size()), loc(probs.size()),
          scale(probs.size()), keys(size_t(q)), counters(size_t(q)) {}
    size_t at(int64_t q, int64_t p) const {
        return size_t((q * P + p) * K);
    }
};

// Every (row, step) the same mixture.
void fill_same(Batch &b, const std::vector<double> &w, const std::vector<double> &df,
               const std::vector<double> &loc, const std::vector<double> &scale) {
    for (int64_t i = 0; i < b.Q * b.P; i++)
        for (int64_t k = 0; k < b.K; k++) {
            b.probs[size_t(i * b.K + k)] = float(w[size_t(k)]);
            b.df[size_t(i * b.K + k)] = float(df[size_t(k)]);
            b.loc[size_t(i * b.K + k)] = float(loc[size_t(k)]);
            b.scale[size_t(i * b.K + k)] = float(scale[size_t(k)]);
        }
}

// Random mixtures per (row, step) in the head's ranges: softmax-like weights,
// df from df_lo up, loc around 0, scale 0.1..2.
void fill_random(Batch &b, std::mt19937_64 &rng, double df_lo) {
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    std::normal_distribution<double> n01(0.0, 1.0);
    for (size_t i = 0; i < b.probs.size(); i++) {
        b.probs[i] = float(std::exp(2.0 * n01(rng)));
        b.df[i] = float(df_lo + 30.0 * u01(rng) * u01(rng));
        b.loc[i] = float(n01(rng));
        b.scale[i] = float(0.1 + 1.9 * u01(rng));
    }
}

// Keys from a request seed; counters (path, variate, step) as the engine
// would encode them.
void fill_keys(Batch &b, uint64_t seed0) {
    for (int64_t q = 0; q < b.Q; q++) {
        b.keys[size_t(q)] = seed0 + uint64_t(q % 3) * 0x100000001ull;
        b.counters[size_t(q)] = (uint64_t(q) << 32) | (uint64_t(q % 7) << 16) | 5u;
    }
}

// Draws [Q, P] from the GPU, or an empty vector after a failed check.
std::vector<float> gpu_draws(const Batch &b) {
    DevBuf w, nu, mu, sg, k, c, out;
    std::vector<float> draws;
    if (!w.upload(b.probs) || !nu.upload(b.df) || !mu.upload(b.loc) || !sg.upload(b.scale) ||
        !k.upload(b.keys) || !c.upload(b.counters) || !out.alloc(size_t(b.Q * b.P) * 4) ||
        !out.poison())
        return draws;
    if (!ct::ok_launch(
            toto_k_mixture_sample(out.p, w.p, nu.p, mu.p, sg.p, k.p, c.p, b.Q, b.P, b.K, nullptr),
            "toto_k_mixture_sample"))
        return draws;
    out.download(draws);
    return draws;
}

size_t count_nan(const std::vector<float> &v) {
    size_t n = 0;
    for (float x : v)
        n += std::isnan(x) ? 1 : 0;
    return n;
}

// --- checks ---------------------------------------------------------------------------

// With scale ~0 a draw is its component's loc (k + 1): the GPU's component
// must be the replayed one, bit for bit, for every draw (this reads Philox
// word 0 of block 0 on the device). K not a multiple of 4: the scalar loads.
void check_components(int64_t K) {
    auto rng = ct::fresh_rng();
    Batch b(96, 64, K);
    fill_random(b, rng, 2.0);
    for (size_t i = 0; i < b.loc.size(); i++) {
        b.loc[i] = float(i % size_t(K) + 1);
        b.scale[i] = 1e-30f;
    }
    fill_keys(b, 0xC0FFEE);
    std::vector<float> d = gpu_draws(b);
    if (d.empty())
        return;
    size_t wrong = 0;
    for (int64_t q = 0; q < b.Q; q++)
        for (int64_t p = 0; p < b.P; p++) {
            const int k = replay_component(
                &b.probs[b.at(q, p)], int(K),
                toto_cuda::philox_block(b.keys[size_t(q)], b.counters[size_t(q)], uint32_t(p), 0)
                    .v[0]);
            wrong += d[size_t(q * b.P + p)] != float(k + 1);
        }
    tap_check(wrong == 0,
              "K %lld: the component of each of %lld draws is the replayed one (%zu differ)",
              (long long)K, (long long)(b.Q * b.P), wrong);
}

// Every draw against the float64 replay: equal up to float32 rounding, but
// for the rare draw where rounding flips an acceptance test.
void check_replay(double df_lo, const char *what) {
    auto rng = ct::fresh_rng();
    Batch b(1024, 64, 24);
    fill_random(b, rng, df_lo);
    fill_keys(b, 0x5EED0000u + uint64_t(df_lo * 100));
    std::vector<float> d = gpu_draws(b);
    if (d.empty())
        return;
    size_t off = 0;
    double worst = 0;
    for (int64_t q = 0; q < b.Q; q++)
        for (int64_t p = 0; p < b.P; p++) {
            int comp;
            const size_t a = b.at(q, p);
            const double want =
                replay_draw(b.keys[size_t(q)], b.counters[size_t(q)], uint32_t(p), &b.probs[a],
                            &b.df[a], &b.loc[a], &b.scale[a], int(b.K), &comp);
            if (comp < 0) { // every weight is positive: cannot happen
                off++;
                continue;
            }
            const double e = std::fabs(double(d[size_t(q * b.P + p)]) - want) /
                             (std::fabs(want) + b.scale[a + size_t(comp)]);
            if (!(e < 1e-4))
                off++;
            else
                worst = std::max(worst, e);
        }
    const double n = double(b.Q * b.P);
    tap_check(count_nan(d) == 0 && double(off) <= 1e-4 * n,
              "%s: %.0f draws equal the float64 replay to %.1e (relative to |x| + scale), %zu "
              "off (<= 1e-4 of them)",
              what, n, worst, off);
}

// Same key and counter, same bits: twice, and with the rows reversed and
// other rows between them.
void check_determinism() {
    auto rng = ct::fresh_rng();
    Batch a(300, 64, 24);
    fill_random(a, rng, 2.0);
    fill_keys(a, 77);
    std::vector<float> d1 = gpu_draws(a), d2 = gpu_draws(a);
    tap_check(!d1.empty() && d1 == d2, "the same batch twice gives the same bits");

    // a's rows in reverse order, with 100 other rows at every fourth place.
    Batch b(400, 64, 24);
    fill_random(b, rng, 2.0);
    std::vector<int64_t> from(size_t(b.Q), -1);
    int64_t next = a.Q - 1;
    for (int64_t q = 0; q < b.Q; q++) {
        if (next >= 0 && (q % 4 != 1)) {
            from[size_t(q)] = next;
            std::copy_n(&a.probs[a.at(next, 0)], a.P * a.K, &b.probs[b.at(q, 0)]);
            std::copy_n(&a.df[a.at(next, 0)], a.P * a.K, &b.df[b.at(q, 0)]);
            std::copy_n(&a.loc[a.at(next, 0)], a.P * a.K, &b.loc[b.at(q, 0)]);
            std::copy_n(&a.scale[a.at(next, 0)], a.P * a.K, &b.scale[b.at(q, 0)]);
            b.keys[size_t(q)] = a.keys[size_t(next)];
            b.counters[size_t(q)] = a.counters[size_t(next)];
            next--;
        } else {
            b.keys[size_t(q)] = 1000 + uint64_t(q);
            b.counters[size_t(q)] = uint64_t(q) * 31;
        }
    }
    std::vector<float> db = gpu_draws(b);
    size_t same = 0, rows = 0;
    for (int64_t q = 0; q < b.Q && !db.empty() && !d1.empty(); q++) {
        if (from[size_t(q)] < 0)
            continue;
        rows++;
        const float *got = db.data() + q * b.P, *want = d1.data() + from[size_t(q)] * a.P;
        same += std::equal(got, got + b.P, want);
    }
    tap_check(rows == size_t(a.Q) && same == rows,
              "%zu of %zu rows give the same bits in another batch layout", same, rows);

    // A different counter gives different draws.
    Batch c = a;
    for (auto &x : c.counters)
        x ^= 1ull << 40;
    std::vector<float> dc = gpu_draws(c);
    size_t equal = 0;
    for (size_t i = 0; i < dc.size() && i < d1.size(); i++)
        equal += dc[i] == d1[i];
    tap_check(!dc.empty() && equal < dc.size() / 1000,
              "another counter gives other draws (%zu of %zu equal)", equal, dc.size());
}

// toto_k_mixture_sample_paths: at step t, every draw equals the plain
// sampler's with counter rows[q] + (t << 32), turned into shift + sd * draw
// (two float64 roundings) in paths[q, t, :] and last, extremes as 0; other
// steps of the paths untouched.
void check_sample_paths() {
    auto rng = ct::fresh_rng();
    const int64_t Q = 200, P = 16, K = 24, T = 5, t = 3;
    Batch b(Q, P, K);
    fill_random(b, rng, 2.0);
    std::vector<uint64_t> rows(static_cast<size_t>(Q));
    std::vector<double> shift(static_cast<size_t>(Q)), sd(static_cast<size_t>(Q));
    for (int64_t q = 0; q < Q; q++) {
        b.keys[size_t(q)] = 0xABCDull + uint64_t(q % 5);
        rows[size_t(q)] = uint64_t(q) * 3 + 1;
        b.counters[size_t(q)] = rows[size_t(q)] + (uint64_t(t) << 32);
        shift[size_t(q)] = 100.0 * std::normal_distribution<double>(0, 1)(rng);
        sd[size_t(q)] = 0.5 + std::exp(std::normal_distribution<double>(0, 1)(rng));
    }
    shift[7] = 1e300; // beyond half_max: 0
    for (int64_t k = 0; k < P * K; k++)
        b.probs[b.at(9, 0) + size_t(k)] = 0.0f; // no weight: NaN, then 0
    const double half_max = double(FLT_MAX / 2.0f);
    std::vector<float> plain = gpu_draws(b);
    DevBuf w, nu, mu, sg, k, r, sh, s, st, paths, last;
    std::vector<int64_t> step = {t};
    if (plain.empty() || !w.upload(b.probs) || !nu.upload(b.df) || !mu.upload(b.loc) ||
        !sg.upload(b.scale) || !k.upload(b.keys) || !r.upload(rows) || !sh.upload(shift) ||
        !s.upload(sd) || !st.upload(step) || !paths.alloc(size_t(Q * T * P) * 8) ||
        !paths.poison() || !last.alloc(size_t(Q * P) * 8) || !last.poison())
        return;
    if (!ct::ok_launch(toto_k_mixture_sample_paths(
                           static_cast<double *>(paths.p), static_cast<double *>(last.p),
                           static_cast<const int64_t *>(st.p), T, static_cast<const double *>(sh.p),
                           static_cast<const double *>(s.p), half_max, w.p, nu.p, mu.p, sg.p, k.p,
                           r.p, Q, P, K, nullptr, nullptr),
                       "toto_k_mixture_sample_paths"))
        return;
    std::vector<double> got, got_last;
    paths.download(got);
    last.download(got_last);
    size_t wrong = 0, touched = 0, zeros = 0;
    for (int64_t q = 0; q < Q; q++)
        for (int64_t i = 0; i < T; i++)
            for (int64_t p = 0; p < P; p++) {
                const double g = got[size_t((q * T + i) * P + p)];
                if (i != t) {
                    touched += !std::isnan(g); // poisoned: still NaN
                    continue;
                }
                volatile double prod = sd[size_t(q)] * double(plain[size_t(q * P + p)]);
                double want = shift[size_t(q)] + prod;
                if (!(std::fabs(want) < half_max))
                    want = 0.0;
                zeros += want == 0.0;
                wrong += g != want || got_last[size_t(q * P + p)] != want;
            }
    tap_check(wrong == 0 && touched == 0 && zeros >= size_t(2 * P),
              "sample_paths: %lld draws equal the plain sampler's in original units, bit for bit "
              "(%zu differ), extremes and NaN as 0 (%zu), other steps untouched (%zu written)",
              (long long)(Q * P), wrong, zeros, touched);
}

// The same kernel with *mean_only set: the mixture's mean (float32 products
// summed in order of k) in original units, bit for bit; with it 0, draws.
void check_sample_paths_mean() {
    auto rng = ct::fresh_rng();
    const int64_t Q = 37, P = 16, K = 24, T = 4, t = 2;
    Batch b(Q, P, K);
    fill_random(b, rng, 2.0);
    std::vector<uint64_t> rows(static_cast<size_t>(Q), 5);
    std::vector<double> shift(static_cast<size_t>(Q)), sd(static_cast<size_t>(Q));
    for (int64_t q = 0; q < Q; q++) {
        shift[size_t(q)] = 10.0 * std::normal_distribution<double>(0, 1)(rng);
        sd[size_t(q)] = 0.5 + std::exp(std::normal_distribution<double>(0, 1)(rng));
    }
    const double half_max = double(FLT_MAX / 2.0f);
    DevBuf w, nu, mu, sg, k, r, sh, s, st, flag, paths;
    std::vector<int64_t> step = {t}, on = {1};
    if (!w.upload(b.probs) || !nu.upload(b.df) || !mu.upload(b.loc) || !sg.upload(b.scale) ||
        !k.upload(b.keys) || !r.upload(rows) || !sh.upload(shift) || !s.upload(sd) ||
        !st.upload(step) || !flag.upload(on) || !paths.alloc(size_t(Q * T * P) * 8) ||
        !paths.poison())
        return;
    auto launch = [&]() {
        return ct::ok_launch(
            toto_k_mixture_sample_paths(
                static_cast<double *>(paths.p), nullptr, static_cast<const int64_t *>(st.p), T,
                static_cast<const double *>(sh.p), static_cast<const double *>(s.p), half_max, w.p,
                nu.p, mu.p, sg.p, k.p, r.p, Q, P, K, static_cast<const int64_t *>(flag.p), nullptr),
            "toto_k_mixture_sample_paths (mean)");
    };
    if (!launch())
        return;
    std::vector<double> got;
    paths.download(got);
    size_t wrong = 0;
    for (int64_t q = 0; q < Q; q++)
        for (int64_t p = 0; p < P; p++) {
            float m = 0.0f;
            for (int64_t c = 0; c < K; c++) {
                volatile float prod =
                    b.probs[b.at(q, p) + size_t(c)] * b.loc[b.at(q, p) + size_t(c)];
                m += prod;
            }
            volatile double scaled = sd[size_t(q)] * double(m);
            wrong += got[size_t((q * T + t) * P + p)] != shift[size_t(q)] + scaled;
        }
    on[0] = 0; // the same graph's next replay, sampling again
    bool sampled = CT_OK(cudaMemcpy(flag.p, on.data(), 8, cudaMemcpyHostToDevice)) && launch();
    std::vector<double> drawn;
    sampled = sampled && paths.download(drawn);
    size_t same = 0;
    for (int64_t i = 0; sampled && i < Q * P; i++) {
        const int64_t q = i / P, p = i % P;
        same += drawn[size_t((q * T + t) * P + p)] == got[size_t((q * T + t) * P + p)];
    }
    tap_check(wrong == 0 && sampled && same < size_t(Q * P / 100),
              "sample_paths with mean_only: %lld means in original units bit for bit (%zu "
              "differ); with it 0, draws again (%zu of %lld equal the means)",
              (long long)(Q * P), wrong, same, (long long)(Q * P));
}

// 2^20 draws of one mixture (the same at every row and step, a new counter
// per row). Returns them sorted, or empty.
std::vector<float> many_draws(const std::vector<double> &w, const std::vector<double> &df,
                              const std::vector<double> &loc, const std::vector<double> &scale,
                              uint64_t key) {
    Batch b(65536, 16, int64_t(w.size()));
    fill_same(b, w, df, loc, scale);
    for (int64_t q = 0; q < b.Q; q++) {
        b.keys[size_t(q)] = key;
        b.counters[size_t(q)] = uint64_t(q) * 0x10001ull;
    }
    std::vector<float> d = gpu_draws(b);
    if (count_nan(d) != 0) {
        tap_check(0, "2^20 draws: %zu NaN", count_nan(d));
        return {};
    }
    return d;
}

// Student-t, df > 4: mean and variance of 2^20 draws within 5 standard errors.
void check_student_moments(double df, double loc, double scale) {
    std::vector<float> d = many_draws({1.0}, {df}, {loc}, {scale}, 4242);
    if (d.empty())
        return;
    const double n = double(d.size());
    double s1 = 0, s2 = 0;
    for (float x : d)
        s1 += x;
    const double mean = s1 / n;
    for (float x : d)
        s2 += (x - mean) * (x - mean);
    const double var = s2 / (n - 1);
    const double var_t = scale * scale * df / (df - 2);
    const double mu4 = var_t * var_t * (3.0 + 6.0 / (df - 4));
    const double se_mean = std::sqrt(var_t / n), se_var = std::sqrt((mu4 - var_t * var_t) / n);
    tap_check(std::fabs(mean - loc) < 5 * se_mean && std::fabs(var - var_t) < 5 * se_var,
              "t(df %.2f, loc %.2f, scale %.2f), 2^20 draws: mean %.5f (%.5f +- %.5f), var "
              "%.5f (%.5f +- %.5f)",
              df, loc, scale, mean, loc, 5 * se_mean, var, var_t, 5 * se_var);
}

// Weights that do not sum to 1, components told apart by loc (scale ~0):
// counts against n * w by chi-square, K - 1 degrees of freedom, p = 1e-4.
void check_component_frequencies() {
    auto rng = ct::fresh_rng();
    const int K = 24;
    std::vector<double> w(K), df(K, 5.0), loc(K), scale(K, 1e-30);
    for (int k = 0; k < K; k++) {
        w[size_t(k)] = 3.7 * std::exp(1.5 * std::normal_distribution<double>(0, 1)(rng));
        loc[size_t(k)] = k + 1;
    }
    double total;
    w[3] = 0.0; // never drawn
    total = 0;
    for (double x : w)
        total += double(float(x)); // the weights the kernel sees
    std::vector<float> d = many_draws(w, df, loc, scale, 99);
    if (d.empty())
        return;
    std::vector<double> count(K, 0.0);
    size_t stray = 0;
    for (float x : d) {
        const int k = int(x) - 1;
        if (k < 0 || k >= K || float(k + 1) != x)
            stray++;
        else
            count[size_t(k)] += 1;
    }
    const double n = double(d.size());
    double chi2 = 0;
    int dof = -1;
    for (int k = 0; k < K; k++) {
        const double e = n * double(float(w[size_t(k)])) / total;
        if (e > 0) {
            chi2 += (count[size_t(k)] - e) * (count[size_t(k)] - e) / e;
            dof++;
        }
    }
    // Wilson-Hilferty: the chi-square quantile at 1 - 1e-4 (z = 3.719).
    const double h = 2.0 / (9.0 * dof);
    const double crit = dof * std::pow(1.0 - h + 3.719 * std::sqrt(h), 3.0);
    tap_check(stray == 0 && count[3] == 0 && chi2 < crit,
              "component frequencies of 2^20 draws, K %d, unnormalized weights: chi2 %.1f < %.1f "
              "(%d dof), zero weight never drawn",
              K, chi2, crit, dof);
}

// The largest gap between the empirical CDF of 2^20 draws and the mixture's
// exact CDF (model/mixture.c) over 2000 of the draws' quantiles, against
// Kolmogorov-Smirnov's critical value at p = 0.001 (1.95 / sqrt(n)).
void check_cdf(const std::vector<double> &w, const std::vector<double> &df,
               const std::vector<double> &loc, const std::vector<double> &scale, uint64_t key,
               const char *what) {
    std::vector<float> d = many_draws(w, df, loc, scale, key);
    if (d.empty())
        return;
    std::sort(d.begin(), d.end());
    std::vector<double> wn(w);
    double total = 0;
    for (double x : w)
        total += x;
    for (double &x : wn)
        x /= total;
    mixture_t m = {int(w.size()), wn.data(), df.data(), loc.data(), scale.data()};
    const double n = double(d.size());
    double gap = 0;
    for (int i = 0; i < 2000; i++) {
        const double x = d[size_t((i + 0.5) / 2000 * n)];
        const double below = double(std::upper_bound(d.begin(), d.end(), float(x)) - d.begin());
        gap = std::max(gap, std::fabs(below / n - mixture_cdf(&m, x)));
    }
    const double crit = 1.95 / std::sqrt(n);
    tap_check(gap < crit, "%s: CDF of 2^20 draws within %.5f of the exact one (< %.5f)", what, gap,
              crit);
}

void check_distributions() {
    check_student_moments(9.5, 0.3, 1.7);
    check_student_moments(5.25, -2.0, 0.4);
    check_component_frequencies();

    auto rng = ct::fresh_rng();
    const int K = 24;
    std::vector<double> w(K), df(K), loc(K), scale(K);
    for (int k = 0; k < K; k++) {
        w[size_t(k)] = std::exp(std::normal_distribution<double>(0, 1)(rng));
        df[size_t(k)] = 2.0 + 20.0 * std::uniform_real_distribution<double>(0, 1)(rng);
        loc[size_t(k)] = 2.0 * std::normal_distribution<double>(0, 1)(rng);
        scale[size_t(k)] = 0.1 + std::uniform_real_distribution<double>(0, 1)(rng);
    }
    // The head's df are exact float32 values: give the CDF the same ones.
    auto as_float = [](std::vector<double> v) {
        for (double &x : v)
            x = double(float(x));
        return v;
    };
    check_cdf(as_float(w), as_float(df), as_float(loc), as_float(scale), 7,
              "mixture of 24, df 2..22");
    check_cdf({0.5, 0.3, 0.2}, {0.8, 1.5, 3.3}, {0.0, 1.0, -3.0}, {1.0, 0.5, 2.0}, 8,
              "mixture of 3, df 0.8, 1.5, 3.3 (alpha < 1 boost)");
    check_cdf({1.0}, {2.0}, {0.0}, {1.0}, 9, "t(df 2), alpha = 1 exactly");
}

} // namespace

int main() {
    if (ct::skip_without_device())
        return 0;
    check_philox_kat();
    check_components(24);
    check_components(7);
    check_replay(2.0, "df 2..32 (the head's range)");
    check_replay(0.3, "df 0.3..30.3 (alpha < 1 boost)");
    check_determinism();
    check_sample_paths();
    check_sample_paths_mean();
    check_distributions();
    return tap_done();
}
