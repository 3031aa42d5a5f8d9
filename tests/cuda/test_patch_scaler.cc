// test_patch_scaler.cc - toto_k_patch_scaler against a float64 reference on
// the CPU: the causal patch scaler of TOTO.md step 2, written step by step in
// the order of model/scaler.cc's libtorch ops (running sums left to right,
// continuing from the state as its prepended cumsum does). Without a CUDA
// device it prints a TAP skip and passes.
//
// The kernel sums in another order (a block-wide scan), so results agree to
// rounding, and rounding in a running mean is relative to the values summed:
// with x = 1e6 + noise, the mean carries errors of ~1e-10 that the deviations
// x - mean (of size noise) inherit. Errors are therefore measured against the
// magnitude of the row, mag = max(max |x|, 0.3):
//   mean: |d mean| / mag;  scale: |d scale| / max(mag, scale);
//   z: (|d z| - u |z|) / ((1 + |z|) mag / scale), u the output dtype's unit
//      roundoff (one rounding allowed);
//   state: sum_w exactly; sum_wx / sum |w x|; m2 / (count mag scale_raw);
//      lo, hi relative.
// For series near 0 these are relative errors; each must be below 1e-12.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda_test.h"

namespace {

using ct::DevBuf;

constexpr double kMinimumScale = 0.1;
constexpr double kTol = 1e-12;
constexpr int kStateWidth = 6;

// One row of the state, in the kernel's column order (Scaler's members).
struct RowState {
    double sum_w, sum_wx, m2, last_mean, lo, hi;
};

double nan_to_num(double v) {
    if (std::isnan(v))
        return 0.0;
    return std::isinf(v) ? std::copysign(DBL_MAX, v) : v;
}

// Scaler::set_global for one row: the clamp bounds, and running sums reset
// (init starts them from zero with the mean before the first step 0).
RowState ref_init(const double *x, const double *w, int64_t T, double e) {
    double sw = 0, swx = 0;
    for (int64_t t = 0; t < T; t++) {
        sw += w[t];
        swx += w[t] * x[t];
    }
    const double count = std::max(sw, 1.0);
    const double mean = nan_to_num(swx / count);
    double ss = 0;
    for (int64_t t = 0; t < T; t++) {
        const double d = (x[t] - mean) * w[t];
        ss += d * d;
    }
    const double g = std::sqrt(ss / count + kMinimumScale);
    return {0, 0, 0, 0, std::max(g * std::pow(10.0, -e), kMinimumScale), g * std::pow(10.0, e)};
}

// Scaler::causal for one row: mean and scale at every step, continuing from
// s, which is left at the last step. clamped counts the patch ends (x starts
// at one) where the clamp moves the scale, or would without stabilize.
void ref_causal(const double *x, const double *w, int64_t T, int64_t P, bool stabilize, RowState &s,
                double *mean, double *scale, int64_t &clamped) {
    for (int64_t t = 0; t < T; t++) {
        s.sum_w += w[t];
        s.sum_wx += w[t] * x[t];
        const double count = std::max(s.sum_w, 1.0);
        const double m = s.sum_wx / count;
        s.m2 += (x[t] - s.last_mean) * (x[t] - m) * w[t];
        double sc = std::sqrt(s.m2 / std::max(count - 1.0, 1.0) + kMinimumScale);
        const double c = std::min(std::max(sc, s.lo), s.hi);
        clamped += (t + 1) % P == 0 && c != sc;
        if (stabilize)
            sc = c;
        s.last_mean = m;
        mean[t] = m;
        scale[t] = sc;
    }
}

// --- series ---------------------------------------------------------------------

enum class Kind { Random, Constant, Offset, AllMissing };
const char *kind_name(Kind k) {
    return k == Kind::Random     ? "random"
           : k == Kind::Constant ? "constant"
           : k == Kind::Offset   ? "1e6 + noise"
                                 : "all missing";
}

// M rows of T steps, x and 0/1 weights; a missing step holds x = 0.
struct Series {
    int64_t M = 0, T = 0;
    std::vector<double> x, w;
    std::vector<Kind> kinds;
};

// Leading padding, runs of missing steps, then values of the row's kind.
void fill_row(Kind kind, std::mt19937_64 &rng, int64_t T, int64_t P, double *x, double *w) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::normal_distribution<double> n(0.0, 1.0);
    const int64_t pad = kind == Kind::AllMissing ? T : int64_t(u(rng) * double(std::min(T, 2 * P)));
    const double level = kind == Kind::Offset ? 1e6 : (u(rng) - 0.5) * 20.0;
    const double sd = kind == Kind::Constant ? 0.0
                      : kind == Kind::Offset ? (u(rng) < 0.5 ? 0.01 : 1.0)
                                             : 0.1 + 10.0 * u(rng);
    int64_t missing_left = 0;
    double walk = 0;
    for (int64_t t = 0; t < T; t++) {
        if (t >= pad && missing_left == 0 && u(rng) < 0.02)
            missing_left = 1 + int64_t(u(rng) * 40.0);
        const bool observed = t >= pad && missing_left == 0;
        missing_left -= missing_left > 0;
        walk += 0.05 * sd * n(rng); // a slow drift, so the running mean moves
        w[t] = observed ? 1.0 : 0.0;
        // Random rows jump by 5 sd halfway: the global scale then exceeds
        // the early causal ones by more than 10^0.25, so the clamp acts.
        const double jump = kind == Kind::Random && t >= T / 2 ? 5.0 * sd : 0.0;
        x[t] = observed ? level + jump + walk + sd * n(rng) : 0.0;
    }
}

Series make_series(const std::vector<Kind> &kinds, int64_t M, int64_t T, int64_t P,
                   std::mt19937_64 &rng) {
    Series s{M, T, std::vector<double>(size_t(M * T)), std::vector<double>(size_t(M * T)), {}};
    for (int64_t r = 0; r < M; r++) {
        s.kinds.push_back(kinds[size_t(r) % kinds.size()]);
        fill_row(s.kinds.back(), rng, T, P, &s.x[size_t(r * T)], &s.w[size_t(r * T)]);
    }
    return s;
}

// Columns [t0, t0 + T) of a [M, full] array.
std::vector<double> columns(const std::vector<double> &a, int64_t M, int64_t full, int64_t t0,
                            int64_t T) {
    std::vector<double> out(size_t(M * T));
    for (int64_t r = 0; r < M; r++)
        std::copy_n(a.begin() + r * full + t0, T, out.begin() + r * T);
    return out;
}

// --- one call, and its errors ----------------------------------------------------

struct Outputs {
    std::vector<double> z, mean, scale, state;
};

struct CallSpec {
    int64_t M, T, P;
    bool continuing, stabilize, null_w;
    double e;
    toto_k_dtype zt;
};

// One toto_k_patch_scaler call on fresh buffers (outputs poisoned) with the
// state on the device; the outputs and the state come back.
bool run_kernel(const CallSpec &c, const std::vector<double> &x, const std::vector<double> &w,
                DevBuf &state, Outputs &out) {
    const int64_t S = c.T / c.P;
    DevBuf dx, dw, dz, dm, ds;
    if (!dx.upload(x) || (!c.null_w && !dw.upload(w)) ||
        !dz.alloc(size_t(c.M * c.T) * ct::dtype_size(c.zt)) || !dz.poison() ||
        !dm.alloc(size_t(c.M * S) * 8) || !dm.poison() || !ds.alloc(size_t(c.M * S) * 8) ||
        !ds.poison())
        return false;
    const int rc =
        toto_k_patch_scaler(dz.p, c.zt, static_cast<double *>(dm.p), static_cast<double *>(ds.p),
                            static_cast<double *>(state.p), static_cast<const double *>(dx.p),
                            c.null_w ? nullptr : static_cast<const double *>(dw.p), c.M, c.T, c.P,
                            c.continuing, c.stabilize, c.e, nullptr);
    if (!ct::ok_launch(rc, "toto_k_patch_scaler"))
        return false;
    std::vector<unsigned char> zraw;
    if (!dz.download(zraw) || !dm.download(out.mean) || !ds.download(out.scale) ||
        !state.download(out.state))
        return false;
    out.z = ct::to_doubles(c.zt, zraw);
    return true;
}

struct Errors {
    double mean = 0, scale = 0, z = 0, state = 0; // normalized, see the top
    double rel_mean = 0, rel_scale = 0;           // plain |d| / |ref|, for the record
    size_t nan = 0;                               // elements left poisoned (or NaN)
    int64_t clamped = 0;                          // patch ends the reference clamped
    bool sum_w_exact = true;

    void merge(const Errors &o) {
        mean = std::max(mean, o.mean);
        scale = std::max(scale, o.scale);
        z = std::max(z, o.z);
        state = std::max(state, o.state);
        rel_mean = std::max(rel_mean, o.rel_mean);
        rel_scale = std::max(rel_scale, o.rel_scale);
        nan += o.nan;
        clamped += o.clamped;
        sum_w_exact = sum_w_exact && o.sum_w_exact;
    }
    bool ok() const {
        return nan == 0 && sum_w_exact && mean < kTol && scale < kTol && z < kTol && state < kTol;
    }
};

double rel(double got, double want) {
    return want == 0 ? std::fabs(got) : std::fabs(got - want) / std::fabs(want);
}

// The kernel's outputs of one call against the reference's steps (mean,
// scale [M, T] at every step) and states; mag [M] per row.
Errors compare(const CallSpec &c, const Outputs &o, const std::vector<double> &x,
               const std::vector<double> &mean, const std::vector<double> &scale,
               const std::vector<RowState> &ref_state, const std::vector<double> &mag) {
    Errors e;
    const int64_t S = c.T / c.P;
    const double u = c.zt == TOTO_K_F32 ? 0x1p-24 : 0x1p-8;
    e.nan = ct::count_nan(o.z) + ct::count_nan(o.mean) + ct::count_nan(o.scale) +
            ct::count_nan(o.state);
    for (int64_t r = 0; r < c.M; r++) {
        const double m = mag[size_t(r)];
        for (int64_t p = 0; p < S; p++) {
            const size_t end = size_t(r * c.T + (p + 1) * c.P - 1), at = size_t(r * S + p);
            const double dm = std::fabs(o.mean[at] - mean[end]);
            const double ds = std::fabs(o.scale[at] - scale[end]);
            e.mean = std::max(e.mean, dm / m);
            e.scale = std::max(e.scale, ds / std::max(m, scale[end]));
            e.rel_mean = std::max(e.rel_mean, rel(o.mean[at], mean[end]));
            e.rel_scale = std::max(e.rel_scale, rel(o.scale[at], scale[end]));
            for (int64_t j = 0; j < c.P; j++) {
                const size_t t = size_t(r * c.T + p * c.P + j);
                const double zr = (x[t] - mean[end]) / scale[end];
                const double dz = std::max(0.0, std::fabs(o.z[t] - zr) - u * std::fabs(zr));
                e.z = std::max(e.z, dz / ((1.0 + std::fabs(zr)) * m / scale[end]));
            }
        }
        const RowState &s = ref_state[size_t(r)];
        const double *g = &o.state[size_t(r * kStateWidth)];
        const double count = std::max(s.sum_w, 1.0);
        const double raw = std::sqrt(s.m2 / std::max(count - 1.0, 1.0) + kMinimumScale);
        e.sum_w_exact = e.sum_w_exact && g[0] == s.sum_w;
        // sum |w x| <= count * mag
        const double errs[] = {std::fabs(g[1] - s.sum_wx) / (count * m),
                               std::fabs(g[2] - s.m2) / (count * m * raw),
                               std::fabs(g[3] - s.last_mean) / m, rel(g[4], s.lo), rel(g[5], s.hi)};
        for (double v : errs)
            e.state = std::max(e.state, v);
    }
    return e;
}

// --- init then extends, against the reference over the whole series --------------

struct Chunk {
    int64_t T;
    bool null_w; // decoding: every step observed, w passed as NULL
};

// chunks[0] is init's; the later ones continue. Each call is compared with
// the reference over the whole series, global statistics over chunk 0.
void check_chain(const char *what, const std::vector<Kind> &kinds, int64_t M, int64_t P,
                 const std::vector<Chunk> &chunks, bool stabilize, double e, toto_k_dtype zt) {
    auto rng = ct::fresh_rng();
    int64_t full = 0;
    for (const Chunk &ch : chunks)
        full += ch.T;
    Series s = make_series(kinds, M, full, P, rng);
    // Steps passed without w count as observed.
    int64_t t0 = 0;
    for (const Chunk &ch : chunks) {
        for (int64_t r = 0; ch.null_w && r < M; r++)
            std::fill_n(s.w.begin() + r * full + t0, ch.T, 1.0);
        t0 += ch.T;
    }
    std::vector<double> mag(static_cast<size_t>(M));
    for (int64_t r = 0; r < M; r++) {
        double mx = 0.3;
        for (int64_t t = 0; t < full; t++)
            mx = std::max(mx, std::fabs(s.x[size_t(r * full + t)]));
        mag[size_t(r)] = mx;
    }

    DevBuf state;
    if (!state.alloc(size_t(M * kStateWidth) * 8) || !state.poison())
        return;
    std::vector<RowState> ref(static_cast<size_t>(M));
    Errors total;
    t0 = 0;
    for (size_t k = 0; k < chunks.size(); k++) {
        const Chunk &ch = chunks[k];
        const CallSpec c{M, ch.T, P, k > 0, stabilize, ch.null_w, e, zt};
        const std::vector<double> x = columns(s.x, M, full, t0, ch.T);
        const std::vector<double> w = columns(s.w, M, full, t0, ch.T);
        std::vector<double> mean(x.size()), scale(x.size());
        int64_t clamped = 0;
        for (int64_t r = 0; r < M; r++) {
            const size_t at = size_t(r * ch.T);
            if (k == 0)
                ref[size_t(r)] = ref_init(&x[at], &w[at], ch.T, e);
            ref_causal(&x[at], &w[at], ch.T, P, stabilize, ref[size_t(r)], &mean[at], &scale[at],
                       clamped);
        }
        Outputs o;
        if (!run_kernel(c, x, w, state, o))
            return;
        Errors err = compare(c, o, x, mean, scale, ref, mag);
        err.clamped = clamped;
        if (!err.ok())
            tap_diag("call %zu (T %lld%s): mean %.2e scale %.2e z %.2e state %.2e, %zu NaN%s", k,
                     (long long)ch.T, k == 0 ? ", init" : "", err.mean, err.scale, err.z, err.state,
                     err.nan, err.sum_w_exact ? "" : ", sum_w differs");
        total.merge(err);
        t0 += ch.T;
    }
    std::string kn;
    bool random = false;
    for (Kind k : kinds) {
        kn += std::string(kn.empty() ? "" : ", ") + kind_name(k);
        random = random || k == Kind::Random;
    }
    // With e = 0.25 the bounds are within a factor 1.8 of the global scale:
    // some patch end of a random row of 4 patches or more falls outside, so
    // the clamp (or its absence without stabilize) is tested.
    const bool clamp_tested = !(random && e < 1 && full >= 4 * P) || total.clamped > 0;
    tap_check(total.ok() && clamp_tested,
              "%s: M %lld P %lld, %zu call(s) over T %lld, %s, stabilize %d (e %g, %lld patch ends "
              "outside the bounds), "
              "z %s: mean %.1e scale %.1e z %.1e state %.1e < %.0e (relative: mean %.1e, "
              "scale %.1e), all written",
              what, (long long)M, (long long)P, chunks.size(), (long long)full, kn.c_str(),
              int(stabilize), e, (long long)total.clamped, ct::dtype_name(zt), total.mean,
              total.scale, total.z, total.state, kTol, total.rel_mean, total.rel_scale);
}

void check_init(const std::vector<Kind> &kinds, int64_t M, int64_t T, int64_t P, bool stabilize,
                toto_k_dtype zt, bool null_w = false) {
    check_chain("init", kinds, M, P, {{T, null_w}}, stabilize, 0.25, zt);
}

// The optional outputs: with none of them, or only some, the state is the
// same bits; mean_out alone equals mean_out with everything.
void check_optional_outputs() {
    auto rng = ct::fresh_rng();
    const int64_t M = 7, T = 512, P = 64, S = T / P;
    Series s = make_series({Kind::Random, Kind::Offset}, M, T, P, rng);
    DevBuf dx, dw, dz, dm, ds, st_all, st_none, st_mean;
    if (!dx.upload(s.x) || !dw.upload(s.w) || !dz.alloc(size_t(M * T) * 4) ||
        !dm.alloc(size_t(M * S) * 8) || !ds.alloc(size_t(M * S) * 8))
        return;
    for (DevBuf *b : {&st_all, &st_none, &st_mean})
        if (!b->alloc(size_t(M * kStateWidth) * 8) || !b->poison())
            return;
    const auto *x = static_cast<const double *>(dx.p), *w = static_cast<const double *>(dw.p);
    auto *mean = static_cast<double *>(dm.p), *scale = static_cast<double *>(ds.p);
    std::vector<double> mean_all, mean_only, a, b, c;
    if (!ct::ok_launch(toto_k_patch_scaler(dz.p, TOTO_K_F32, mean, scale,
                                           static_cast<double *>(st_all.p), x, w, M, T, P, 0, 1,
                                           10.0, nullptr),
                       "all outputs") ||
        !dm.download(mean_all) || !dm.poison() ||
        !ct::ok_launch(toto_k_patch_scaler(nullptr, TOTO_K_BF16, nullptr, nullptr,
                                           static_cast<double *>(st_none.p), x, w, M, T, P, 0, 1,
                                           10.0, nullptr),
                       "no outputs") ||
        !ct::ok_launch(toto_k_patch_scaler(nullptr, TOTO_K_F32, mean, nullptr,
                                           static_cast<double *>(st_mean.p), x, w, M, T, P, 0, 1,
                                           10.0, nullptr),
                       "mean only") ||
        !dm.download(mean_only) || !st_all.download(a) || !st_none.download(b) ||
        !st_mean.download(c))
        return;
    tap_check(ct::count_nan(a) == 0 && a == b && a == c && mean_all == mean_only,
              "NULL z, mean_out, scale_out: the same state and means as with all outputs");
}

void check_arguments() {
    DevBuf a, st;
    if (!a.alloc(1 << 16) || !st.alloc(1 << 12))
        return;
    const int bad = int(cudaErrorInvalidValue);
    auto *x = static_cast<double *>(a.p);
    auto *s = static_cast<double *>(st.p);
    auto *x4 = reinterpret_cast<double *>(static_cast<char *>(a.p) + 4);
    auto call = [&](toto_k_dtype zt, const double *xx, double *ss, int64_t M, int64_t T,
                    int64_t P) {
        return toto_k_patch_scaler(nullptr, zt, nullptr, nullptr, ss, xx, nullptr, M, T, P, 0, 1,
                                   10.0, nullptr);
    };
    struct Case {
        const char *what;
        int rc;
    } cases[] = {
        {"P 0", call(TOTO_K_F32, x, s, 1, 64, 0)},
        {"T not a multiple of P", call(TOTO_K_F32, x, s, 1, 100, 64)},
        {"T 0", call(TOTO_K_F32, x, s, 1, 0, 64)},
        {"P 4096 (over 2048)", call(TOTO_K_F32, x, s, 1, 4096, 4096)},
        {"M negative", call(TOTO_K_F32, x, s, -1, 64, 64)},
        {"z dtype f64", call(TOTO_K_F64, x, s, 1, 64, 64)},
        {"x NULL", call(TOTO_K_F32, nullptr, s, 1, 64, 64)},
        {"state NULL", call(TOTO_K_F32, x, nullptr, 1, 64, 64)},
        {"x misaligned", call(TOTO_K_F32, x4, s, 1, 64, 64)},
    };
    int wrong = 0;
    for (const Case &c : cases)
        if (c.rc != bad) {
            tap_diag("%s: returned %d", c.what, c.rc);
            wrong++;
        }
    tap_check(wrong == 0 && cudaGetLastError() == cudaSuccess,
              "%zu bad calls return cudaErrorInvalidValue and launch nothing",
              sizeof cases / sizeof cases[0]);
    tap_check(call(TOTO_K_F32, nullptr, nullptr, 0, 64, 64) == 0, "M 0 returns 0");
}

} // namespace

int main() {
    if (ct::skip_without_device())
        return 0;

    const std::vector<Kind> mixed = {Kind::Random, Kind::Constant, Kind::Offset, Kind::AllMissing};
    const std::vector<Kind> random = {Kind::Random};
    // init: T from one patch to several tiles (a tile is at most 2048 steps
    // of whole patches), stabilize on and off, both z dtypes.
    for (bool stab : {true, false}) {
        check_init(random, 1, 64, 64, stab, TOTO_K_F32);
        check_init(random, 1, 4096, 64, stab, TOTO_K_BF16);
        check_init(mixed, 7, 512, 64, stab, TOTO_K_F32);
        check_init(mixed, 300, 1024, 64, stab, TOTO_K_BF16);
        check_init(mixed, 300, 4096, 64, stab, TOTO_K_F32);
    }
    check_init({Kind::Constant}, 7, 640, 64, true, TOTO_K_F32);
    check_init({Kind::Offset}, 7, 4096, 64, true, TOTO_K_F32);
    check_init({Kind::Offset}, 7, 4096, 64, false, TOTO_K_BF16);
    check_init(random, 1, 8192, 64, true, TOTO_K_F32, true); // w NULL, 4 tiles
    check_init(mixed, 7, 2400, 48, true, TOTO_K_F32);        // tiles of 2016 steps
    check_init(mixed, 5, 2100, 7, true, TOTO_K_BF16);        // tiles of 2044 steps
    check_init(random, 3, 4096, 2048, true, TOTO_K_F32);     // the largest P
    check_init(random, 2, 4096, 1, true, TOTO_K_F32);        // 2048 patches a tile
    check_init(random, 4, 96, 16, false, TOTO_K_BF16);

    // init then extends: decoding steps (w NULL), a chunk with missing steps,
    // a long multi-tile continuation.
    const std::vector<Chunk> decode = {{512, false}, {64, true}, {64, true},   {64, true},
                                       {64, true},   {64, true}, {256, false}, {4096, true}};
    for (bool stab : {true, false}) {
        check_chain("init + 7 extends", mixed, 7, 64, decode, stab, 0.25, TOTO_K_F32);
        check_chain("init + 7 extends", mixed, 300, 64, decode, stab, 0.25, TOTO_K_BF16);
    }
    check_chain("init + 4 extends", random, 1, 64,
                {{64, false}, {64, true}, {64, true}, {128, true}, {64, false}}, true, 10.0,
                TOTO_K_F32);
    check_chain("init + 3 extends", {Kind::Offset}, 7, 64,
                {{1024, false}, {64, true}, {64, true}, {2048, true}}, true, 0.25, TOTO_K_F32);

    check_optional_outputs();
    check_arguments();
    return tap_done();
}
