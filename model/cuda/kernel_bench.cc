// kernel_bench.cc - times each kernel of model/cuda/kernels.h on the
// published model's shapes and prints a markdown table: median time per call
// (CUDA events), the bytes it must move (each input read once, each output
// written once) and the bandwidth that makes, against the device-to-device
// copy ceiling measured first in the same run (bytes read plus written).
// Not a test: it checks every call but not the results (tests/cuda does).
//
// Usage: toto-kernel-bench [--quick] [--only NAME]
//   --quick      5 timings per shape instead of 21
//   --only NAME  only the kernels whose name contains NAME (e.g. for ncu)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels.h"

namespace {

bool g_failed = false;

bool ok(int code, const char *what) {
    if (code != 0 && !g_failed) {
        fprintf(stderr, "toto-kernel-bench: %s: %s\n", what, toto_cuda_error_string(code));
        g_failed = true;
    }
    return code == 0;
}

// Device memory freed at exit of scope.
struct Buf {
    void *p = nullptr;
    explicit Buf(size_t bytes) {
        ok(int(cudaMalloc(&p, std::max<size_t>(bytes, 1))), "cudaMalloc");
    }
    Buf(const Buf &) = delete;
    Buf &operator=(const Buf &) = delete;
    ~Buf() {
        if (p)
            cudaFree(p);
    }
};

// Uniform random values in [lo, hi) stored as dtype t (never zeros:
// METHOD.md). bf16 rounds to nearest even, as the device does.
void fill(void *dev, size_t n, toto_k_dtype t, double lo, double hi, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(lo, hi);
    std::vector<unsigned char> h(n * (t == TOTO_K_BF16 ? 2 : t == TOTO_K_F32 ? 4 : 8));
    for (size_t i = 0; i < n; i++) {
        const double v = u(rng);
        if (t == TOTO_K_F64) {
            memcpy(&h[8 * i], &v, 8);
            continue;
        }
        const float f = float(v);
        uint32_t b;
        memcpy(&b, &f, 4);
        if (t == TOTO_K_F32) {
            memcpy(&h[4 * i], &b, 4);
        } else {
            const uint16_t bf = uint16_t((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
            memcpy(&h[2 * i], &bf, 2);
        }
    }
    ok(int(cudaMemcpy(dev, h.data(), h.size(), cudaMemcpyHostToDevice)), "cudaMemcpy");
}

using Bufs = std::vector<std::unique_ptr<Buf>>;

// A new buffer of n elements of t, filled, at the end of v.
void *add_buf(Bufs &v, size_t n, toto_k_dtype t, double lo, double hi, uint64_t seed) {
    v.push_back(std::make_unique<Buf>(n * (t == TOTO_K_BF16 ? 2 : t == TOTO_K_F32 ? 4 : 8)));
    if (!g_failed)
        fill(v.back()->p, n, t, lo, hi, seed);
    return v.back()->p;
}

// Median milliseconds per call of launch(set), rotating over `sets` input
// sets so that repeated calls do not just read L2 (50 MB on an H100).
double time_ms(int sets, const std::function<int(int)> &launch, bool quick) {
    const int warm = 3, inner = 20, outer = quick ? 5 : 21;
    cudaEvent_t a, b;
    if (!ok(int(cudaEventCreate(&a)), "cudaEventCreate"))
        return -1;
    if (!ok(int(cudaEventCreate(&b)), "cudaEventCreate")) {
        cudaEventDestroy(a);
        return -1;
    }
    int call = 0;
    for (int i = 0; i < warm && !g_failed; i++)
        ok(launch(call++ % sets), "kernel (warm-up)");
    std::vector<double> ms;
    for (int o = 0; o < outer && !g_failed; o++) {
        ok(int(cudaEventRecord(a)), "cudaEventRecord");
        for (int i = 0; i < inner; i++)
            ok(launch(call++ % sets), "kernel");
        ok(int(cudaEventRecord(b)), "cudaEventRecord");
        ok(int(cudaEventSynchronize(b)), "cudaEventSynchronize");
        float t = 0;
        ok(int(cudaEventElapsedTime(&t, a, b)), "cudaEventElapsedTime");
        ms.push_back(double(t) / inner);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    if (g_failed || ms.empty())
        return -1;
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

// Enough input sets to cover 256 MB (5x L2), at most 64.
int sets_for(size_t bytes) {
    return int(std::clamp<size_t>((256u << 20) / std::max<size_t>(bytes, 1) + 1, 1, 64));
}

struct Row {
    std::string kernel, shape, dtype;
    double bytes, ms;
};

double g_copy_gbs = 0;

void print_row(const Row &r) {
    const double gbs = r.bytes / (r.ms * 1e-3) / 1e9;
    printf("| %s | %s | %s | %.2f | %.1f | %.0f | %.0f%% |\n", r.kernel.c_str(), r.shape.c_str(),
           r.dtype.c_str(), r.bytes / 1e6, r.ms * 1e3, gbs, 100.0 * gbs / g_copy_gbs);
    fflush(stdout);
}

// A large device-to-device copy: the bandwidth ceiling, bytes read + written.
void bench_copy(bool quick) {
    const size_t bytes = size_t(1) << 30;
    Buf a(bytes), b(bytes);
    if (g_failed)
        return;
    // Nonzero bytes (a copy does not look at them; a host fill of 1 GiB
    // would take seconds).
    ok(int(cudaMemset(a.p, 0x3c, bytes)), "cudaMemset");
    const double ms = time_ms(
        1, [&](int) { return int(cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice)); },
        quick);
    if (ms <= 0)
        return;
    g_copy_gbs = 2.0 * double(bytes) / (ms * 1e-3) / 1e9;
    printf("Copy ceiling: cudaMemcpyAsync device to device, 1 GiB: %.3f ms, %.0f GB/s (read + "
           "write)\n\n",
           ms, g_copy_gbs);
}

size_t dsize(toto_k_dtype t) {
    return t == TOTO_K_BF16 ? 2 : t == TOTO_K_F32 ? 4 : 8;
}
const char *dname(toto_k_dtype t) {
    return t == TOTO_K_BF16 ? "bf16" : t == TOTO_K_F32 ? "f32" : "f64";
}

void bench_rmsnorm(int64_t rows, int64_t D, toto_k_dtype t, bool add, bool quick) {
    const size_t n = size_t(rows * D);
    // Bytes that must move: x read (and written back when fused), delta
    // read, y written; scale (D elements) is negligible.
    const double bytes = double(n * dsize(t)) * (add ? 4 : 2);
    const int sets = sets_for(size_t(bytes));
    Bufs x, d, y, s;
    void *scale = add_buf(s, size_t(D), t, 0.5, 1.5, 2);
    for (int i = 0; i < sets && !g_failed; i++) {
        add_buf(x, n, t, -2.0, 2.0, 10 + uint64_t(i));
        add_buf(y, n, t, -2.0, 2.0, 20 + uint64_t(i));
        if (add)
            add_buf(d, n, t, -0.5, 0.5, 100 + uint64_t(i));
    }
    const double ms = g_failed
                          ? -1
                          : time_ms(
                                sets,
                                [&](int i) {
                                    const size_t k = size_t(i);
                                    return add ? toto_k_add_rmsnorm(x[k]->p, t, d[k]->p, t, y[k]->p,
                                                                    t, scale, t, rows, D, nullptr)
                                               : toto_k_rmsnorm(y[k]->p, t, x[k]->p, t, scale, t,
                                                                rows, D, nullptr);
                                },
                                quick);
    if (ms > 0)
        print_row({add ? "add_rmsnorm" : "rmsnorm",
                   std::to_string(rows) + " x " + std::to_string(D), dname(t), bytes, ms});
}

void bench_swiglu(int64_t rows, int64_t H, toto_k_dtype t, bool quick) {
    const size_t nu = size_t(rows * 2 * H), no = size_t(rows * H);
    const double bytes = double((nu + no) * dsize(t));
    const int sets = sets_for(size_t(bytes));
    Bufs u, o;
    for (int i = 0; i < sets && !g_failed; i++) {
        add_buf(u, nu, t, -4.0, 4.0, 200 + uint64_t(i));
        add_buf(o, no, t, -1.0, 1.0, 250 + uint64_t(i));
    }
    const double ms = g_failed ? -1
                               : time_ms(
                                     sets,
                                     [&](int i) {
                                         return toto_k_swiglu(o[size_t(i)]->p, t, u[size_t(i)]->p,
                                                              t, rows, H, nullptr);
                                     },
                                     quick);
    if (ms > 0)
        print_row(
            {"swiglu", std::to_string(rows) + " x " + std::to_string(H), dname(t), bytes, ms});
}

void bench_sampler(int64_t Q, int64_t P, int64_t K, bool quick) {
    const size_t n = size_t(Q * P * K);
    // All weights, one df, loc and scale per draw (the chosen component's),
    // keys and counters, and the draws.
    const double bytes = double(n * 4 + size_t(Q * P) * 16 + size_t(Q) * 16);
    const int sets = sets_for(4 * n * 4);
    Bufs params, rest;
    // weights, df (2..30, the head's range), loc, scale
    const double lo[] = {0.05, 2.0, -1.0, 0.1}, hi[] = {1.0, 30.0, 1.0, 2.0};
    for (int i = 0; i < sets && !g_failed; i++)
        for (int j = 0; j < 4; j++)
            add_buf(params, n, TOTO_K_F32, lo[j], hi[j], 300 + uint64_t(4 * i + j));
    // Keys and counters are any bits: doubles in [1, 2^40) will do.
    void *keys = add_buf(rest, size_t(Q), TOTO_K_F64, 1.0, 1099511627776.0, 5);
    void *ctrs = add_buf(rest, size_t(Q), TOTO_K_F64, 1.0, 1099511627776.0, 6);
    void *out = add_buf(rest, size_t(Q * P), TOTO_K_F32, -1.0, 1.0, 7);
    const double ms = g_failed ? -1
                               : time_ms(
                                     sets,
                                     [&](int i) {
                                         const size_t b = size_t(4 * i);
                                         return toto_k_mixture_sample(
                                             out, params[b]->p, params[b + 1]->p, params[b + 2]->p,
                                             params[b + 3]->p, keys, ctrs, Q, P, K, nullptr);
                                     },
                                     quick);
    if (ms > 0)
        print_row({"mixture_sample",
                   std::to_string(Q) + " x " + std::to_string(P) + " x " + std::to_string(K), "f32",
                   bytes, ms});
}

void bench_quantiles(int64_t N, int64_t M, toto_k_dtype t, bool quick) {
    const std::vector<double> levels = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
    const int64_t L = int64_t(levels.size());
    const size_t n = size_t(N * M);
    const double bytes = double((n + size_t((L + 1) * M)) * dsize(t));
    const int sets = sets_for(size_t(bytes));
    Bufs x, rest;
    for (int i = 0; i < sets && !g_failed; i++)
        add_buf(x, n, t, -3.0, 3.0, 400 + uint64_t(i));
    void *lv = add_buf(rest, size_t(L), TOTO_K_F64, 0.0, 1.0, 8);
    void *q = add_buf(rest, size_t(L * M), t, -1.0, 1.0, 9);
    void *mean = add_buf(rest, size_t(M), t, -1.0, 1.0, 10);
    if (!g_failed)
        ok(int(cudaMemcpy(lv, levels.data(), size_t(L) * 8, cudaMemcpyHostToDevice)), "cudaMemcpy");
    const double ms = g_failed ? -1
                               : time_ms(
                                     sets,
                                     [&](int i) {
                                         return toto_k_quantiles(q, mean, x[size_t(i)]->p, t, N, M,
                                                                 M, lv, L, nullptr);
                                     },
                                     quick);
    if (ms > 0)
        print_row({"quantiles (9 levels + mean)", std::to_string(N) + " x " + std::to_string(M),
                   dname(t), bytes, ms});
}

// The causal patch scaler: x (and w, init only) read, z in f32 written, the
// per-patch mean and scale written, the state read and written. (Init reads
// rows longer than 2048 steps twice more, for the global statistics.)
void bench_patch_scaler(int64_t M, int64_t T, int64_t P, bool continuing, bool quick) {
    const size_t n = size_t(M * T), S = size_t(M * (T / P));
    const double bytes = double(n * (continuing ? 8 : 16) + n * 4 + S * 16 + size_t(M) * 96);
    const int sets = sets_for(size_t(bytes));
    Bufs x, w, st, out;
    for (int i = 0; i < sets && !g_failed; i++) {
        add_buf(x, n, TOTO_K_F64, -3.0, 3.0, 600 + uint64_t(i));
        if (!continuing) // weights 1: every step observed
            add_buf(w, n, TOTO_K_F64, 1.0, 1.0, 700 + uint64_t(i));
        add_buf(st, size_t(M) * 6, TOTO_K_F64, 1.0, 2.0, 800 + uint64_t(i));
    }
    void *z = add_buf(out, n, TOTO_K_F32, 0.0, 1.0, 16);
    auto *mean = static_cast<double *>(add_buf(out, S, TOTO_K_F64, 0.0, 1.0, 17));
    auto *scale = static_cast<double *>(add_buf(out, S, TOTO_K_F64, 0.0, 1.0, 18));
    const double ms = g_failed
                          ? -1
                          : time_ms(
                                sets,
                                [&](int i) {
                                    const size_t k = size_t(i);
                                    return toto_k_patch_scaler(
                                        z, TOTO_K_F32, mean, scale, static_cast<double *>(st[k]->p),
                                        static_cast<const double *>(x[k]->p),
                                        continuing ? nullptr : static_cast<const double *>(w[k]->p),
                                        M, T, P, continuing, 1, 10.0, nullptr);
                                },
                                quick);
    if (ms > 0)
        print_row({continuing ? "patch_scaler (continuing, w NULL)" : "patch_scaler (init)",
                   std::to_string(M) + " x " + std::to_string(T) + ", P " + std::to_string(P),
                   "f64 -> f32", bytes, ms});
}

// Exact mixture statistics (compute-bound: bytes are just the parameters
// read and the outputs written).
void bench_mixture_stats(int64_t Q, int64_t P, int64_t K, int64_t n_levels, bool quick) {
    const size_t n = size_t(Q * P * K);
    const double bytes = double(n * 4 * 4 + size_t(Q) * 16 + size_t((n_levels + 1) * Q * P) * 8);
    const int sets = sets_for(4 * n * 4);
    Bufs params, rest;
    // weights, df (2..30, the head's range), loc, scale
    const double lo[] = {0.05, 2.0, -1.0, 0.1}, hi[] = {1.0, 30.0, 1.0, 2.0};
    for (int i = 0; i < sets && !g_failed; i++)
        for (int j = 0; j < 4; j++)
            add_buf(params, n, TOTO_K_F32, lo[j], hi[j], 500 + uint64_t(4 * i + j));
    auto *shift = static_cast<double *>(add_buf(rest, size_t(Q), TOTO_K_F64, -1.0, 1.0, 11));
    auto *sd = static_cast<double *>(add_buf(rest, size_t(Q), TOTO_K_F64, 0.5, 2.0, 12));
    // Evenly spaced: the median alone, or the nine deciles.
    std::vector<double> levels(static_cast<size_t>(n_levels));
    for (size_t i = 0; i < levels.size(); i++)
        levels[i] = double(i + 1) / double(n_levels + 1);
    auto *lv = static_cast<double *>(add_buf(rest, levels.size(), TOTO_K_F64, 0.0, 1.0, 13));
    if (!g_failed)
        ok(int(cudaMemcpy(lv, levels.data(), levels.size() * 8, cudaMemcpyHostToDevice)),
           "cudaMemcpy");
    auto *mean = static_cast<double *>(add_buf(rest, size_t(Q * P), TOTO_K_F64, 0.0, 1.0, 14));
    auto *q = static_cast<double *>(add_buf(rest, size_t(n_levels * Q * P), TOTO_K_F64, 0, 1, 15));
    const double ms =
        g_failed
            ? -1
            : time_ms(
                  sets,
                  [&](int i) {
                      const size_t b = size_t(4 * i);
                      return toto_k_mixture_stats(mean, q, params[b]->p, params[b + 1]->p,
                                                  params[b + 2]->p, params[b + 3]->p, TOTO_K_F32,
                                                  shift, sd, lv, Q, P, K, n_levels, nullptr);
                  },
                  quick);
    if (ms > 0)
        print_row({"mixture_stats (" + std::to_string(n_levels) + " levels + mean)",
                   std::to_string(Q) + " x " + std::to_string(P) + " x " + std::to_string(K), "f32",
                   bytes, ms});
}

// One decoding step's attention (a TIME layer): qkv read, out written, this
// step's key and value written; the prefix read once (per variate, shared by
// its paths: L2 serves the repeats) and the suffix's earlier steps read.
void bench_decode_attention(int64_t Q, int64_t V, int64_t L, int64_t step, toto_k_dtype t,
                            bool quick) {
    const int64_t H = 12, d = 64, S = 128, T = 16, HD = H * d;
    const size_t e = dsize(t);
    const double bytes =
        double(e) * double(Q * HD * (3 + 1 + 2) + 2 * V * HD * L + 2 * Q * HD * step);
    const int sets = sets_for(size_t(bytes));
    Bufs in, pre, suf, rest;
    for (int i = 0; i < sets && !g_failed; i++) {
        add_buf(in, size_t(Q * 3 * HD), t, -1.0, 1.0, 900 + uint64_t(i));
        add_buf(suf, size_t(Q * HD * T), t, -0.5, 0.5, 1000 + uint64_t(2 * i));
        add_buf(suf, size_t(Q * HD * T), t, -1.0, 1.0, 1001 + uint64_t(2 * i));
    }
    void *pk = add_buf(pre, size_t(V * HD * S), t, -0.5, 0.5, 19);
    void *pv = add_buf(pre, size_t(V * HD * S), t, -1.0, 1.0, 20);
    void *ct = add_buf(rest, size_t(64 * 2 * d), t, -1.0, 1.0, 21);
    void *st = add_buf(rest, size_t(64 * 2 * d), t, -1.0, 1.0, 22);
    void *out = add_buf(rest, size_t(Q * HD), t, -1.0, 1.0, 23);
    auto *scalars = static_cast<int64_t *>(add_buf(rest, 3, TOTO_K_F64, 0, 1, 24));
    const int64_t host[3] = {40, L, step}; // pos_index, prefix_len, step
    if (!g_failed)
        ok(int(cudaMemcpy(scalars, host, sizeof host, cudaMemcpyHostToDevice)), "cudaMemcpy");
    const double ms =
        g_failed
            ? -1
            : time_ms(
                  sets,
                  [&](int i) {
                      const size_t k = size_t(i);
                      return toto_k_decode_attention(out, in[k]->p, t, ct, st, scalars, pk, pv,
                                                     scalars + 1, suf[2 * k]->p, suf[2 * k + 1]->p,
                                                     scalars + 2, Q, V, H, d, S, T, nullptr);
                  },
                  quick);
    if (ms > 0)
        print_row({"decode_attention (H 12, d 64, S 128, T 16)",
                   "Q " + std::to_string(Q) + ", V " + std::to_string(V) + ", prefix " +
                       std::to_string(L) + ", step " + std::to_string(step),
                   dname(t), bytes, ms});
}

} // namespace

int main(int argc, char **argv) {
    bool quick = false;
    const char *only = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr, "usage: toto-kernel-bench [--quick] [--only NAME]\n");
            return 2;
        }
    }
    auto want = [&](const char *name) { return strstr(name, only) != nullptr; };
    cudaDeviceProp prop;
    if (!ok(int(cudaGetDeviceProperties(&prop, 0)), "cudaGetDeviceProperties"))
        return 1;
    int driver = 0;
    cudaDriverGetVersion(&driver);
    char date[64];
    time_t now = time(nullptr);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%MZ", gmtime(&now));
    printf("# toto-kernel-bench\n\n%s (sm_%d%d, %d SMs, %d MB L2), CUDA driver %d.%d, %s.\n"
           "Median of %d timings of 20 back-to-back calls each, inputs rotated over up to 64 "
           "sets (>= 256 MB) so that L2 does not serve repeats.\n\n",
           prop.name, prop.major, prop.minor, prop.multiProcessorCount, prop.l2CacheSize >> 20,
           driver / 1000, driver % 1000 / 10, date, quick ? 5 : 21);
    bench_copy(quick);
    if (g_failed)
        return 1;
    printf("| kernel | shape | dtype | MB moved | us | GB/s | of copy |\n"
           "| --- | --- | --- | --- | --- | --- | --- |\n");
    const int64_t rows[] = {32, 1024, 8192, 65536};
    for (toto_k_dtype t : {TOTO_K_BF16, TOTO_K_F32})
        for (int64_t r : rows)
            if (want("rmsnorm"))
                bench_rmsnorm(r, 768, t, false, quick);
    for (int64_t r : rows)
        if (want("add_rmsnorm"))
            bench_rmsnorm(r, 768, TOTO_K_BF16, true, quick);
    for (toto_k_dtype t : {TOTO_K_BF16, TOTO_K_F32})
        for (int64_t r : rows)
            if (want("swiglu"))
                bench_swiglu(r, 3072, t, quick);
    if (want("mixture_sample")) {
        for (int64_t q : rows)
            bench_sampler(q, 16, 24, quick);
        bench_sampler(1024, 64, 24, quick); // one decoding step of 1024 paths, patch 64
    }
    for (toto_k_dtype t : {TOTO_K_F64, TOTO_K_F32}) {
        if (!want("quantiles"))
            break;
        bench_quantiles(256, 672, t, quick);   // ett: 256 paths, 7 variates x 96 steps
        bench_quantiles(1024, 4096, t, quick); // 1024 paths, 64 series x 64 steps
        bench_quantiles(8192, 336, t, quick);  // the most paths, 336 steps
    }
    if (want("patch_scaler")) {
        bench_patch_scaler(1, 512, 64, false, quick);    // one series' context
        bench_patch_scaler(448, 2048, 64, false, quick); // 64 series x 7 variates, context 2048
        bench_patch_scaler(1792, 64, 64, true, quick);   // a decoding step: 256 paths x 7 variates
    }
    if (want("mixture_stats")) {
        bench_mixture_stats(64, 64, 24, 1, quick); // the median of a batch of 64 series
        bench_mixture_stats(1, 64, 24, 9, quick);  // 9 levels of one series
    }
    if (want("decode_attention")) {
        for (toto_k_dtype t : {TOTO_K_BF16, TOTO_K_F32}) {
            bench_decode_attention(256, 1, 128, 15, t, quick);  // 256 paths, one series
            bench_decode_attention(2048, 8, 128, 15, t, quick); // 256 paths x 8 variates
            bench_decode_attention(2048, 8, 16, 3, t, quick);   // a short context, early step
            bench_decode_attention(256, 1, 32, 4, t, quick);    // long: 256 paths, 32 patches
            bench_decode_attention(2048, 8, 32, 0, t, quick);   // ett: 7 (8) variates x 256
        }
    }
    return g_failed ? 1 : 0;
}
