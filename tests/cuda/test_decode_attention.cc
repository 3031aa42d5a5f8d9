// test_decode_attention.cc - toto_k_decode_attention (one decoding step's
// attention of a TIME layer) against a float64 reference on the CPU that
// follows kernels.h: rotate the query and key with the tables at pos_index,
// store the key (rounded to the dtype) and value at suffix slot `step`, then
// softmax over the prefix positions < prefix_len and the suffix positions
// <= step. Checks the output (poisoned first), the slot written, that nothing
// else in the suffix changed, a CUDA graph replayed over all steps, and the
// argument errors. Without a CUDA device it prints a TAP skip and passes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cuda_test.h"

namespace {

using ct::DevBuf;
using ct::Typed;

struct Shape {
    int64_t Q, V, H, d, S, T;
    int64_t L, step, pos; // prefix_len, step, pos_index (device scalars)
    int offset;           // elements by which qkv starts past an aligned address
};
constexpr int64_t kPositions = 37; // rows of the rotary tables

double tolerance(toto_k_dtype t) {
    return t == TOTO_K_BF16 ? 2e-2 : 1e-5;
}

// A value as the dtype stores it.
double round_to(toto_k_dtype t, double x) {
    return t == TOTO_K_F32 ? double(float(x)) : double(ct::from_bf16(ct::to_bf16(float(x))));
}

struct Inputs {
    Typed qkv, cos_tab, sin_tab, pk, pv, sk, sv;
};

Inputs make_inputs(const Shape &s, toto_k_dtype t, std::mt19937_64 &rng) {
    // Scores of order 1 whatever d.
    const double sd = 1.2 / std::pow(double(s.d), 0.25);
    auto normal = [](double sdev) {
        return
            [sdev](std::mt19937_64 &g) { return std::normal_distribution<double>(0.0, sdev)(g); };
    };
    auto table = [](std::mt19937_64 &g) {
        return std::uniform_real_distribution<double>(-1.3, 1.3)(g);
    };
    const size_t HD = size_t(s.H * s.d);
    Inputs in;
    in.qkv = ct::make_typed(t, size_t(s.Q) * 3 * HD + size_t(s.offset), rng, normal(sd));
    in.cos_tab = ct::make_typed(t, size_t(kPositions * 2 * s.d), rng, table);
    in.sin_tab = ct::make_typed(t, size_t(kPositions * 2 * s.d), rng, table);
    in.pk = ct::make_typed(t, size_t(s.V * s.S) * HD, rng, normal(sd));
    in.pv = ct::make_typed(t, size_t(s.V * s.S) * HD, rng, normal(1.0));
    in.sk = ct::make_typed(t, size_t(s.Q * s.T) * HD, rng, normal(sd));
    in.sv = ct::make_typed(t, size_t(s.Q * s.T) * HD, rng, normal(1.0));
    return in;
}

// The reference: out [Q, H*d]; key [Q, H, d], this step's rotated key as
// stored (rounded to t). sk, sv: the suffix before the call (slot step is
// replaced by this step's key and value).
void reference(const Shape &s, toto_k_dtype t, const Inputs &in, const std::vector<double> &sk,
               const std::vector<double> &sv, std::vector<double> &out, std::vector<double> &key) {
    const int64_t d = s.d, HD = s.H * d;
    const double *qkv = in.qkv.exact.data() + s.offset;
    const double *cq = in.cos_tab.exact.data() + s.pos * 2 * d,
                 *sq = in.sin_tab.exact.data() + s.pos * 2 * d;
    out.assign(size_t(s.Q * HD), 0.0);
    key.assign(size_t(s.Q * HD), 0.0);
    std::vector<double> qr(static_cast<size_t>(d)), scores;
    for (int64_t q = 0; q < s.Q; q++)
        for (int64_t h = 0; h < s.H; h++) {
            const double *x = qkv + q * 3 * HD + h * d, *k = x + HD, *v = x + 2 * HD;
            double *kr = &key[size_t(q * HD + h * d)];
            for (int64_t i = 0; i < d; i++) {
                qr[size_t(i)] = x[i] * cq[i] + x[i ^ 1] * sq[i];
                kr[i] = round_to(t, k[i] * cq[d + i] + k[i ^ 1] * sq[d + i]);
            }
            auto dot = [&](const double *kk) {
                double a = 0;
                for (int64_t i = 0; i < d; i++)
                    a += qr[size_t(i)] * kk[i];
                return a;
            };
            const int64_t vv = q % s.V;
            const double *pk = in.pk.exact.data() + (vv * s.H + h) * s.S * d;
            const double *pv = in.pv.exact.data() + (vv * s.H + h) * s.S * d;
            const double *skr = sk.data() + (q * s.H + h) * s.T * d;
            const double *svr = sv.data() + (q * s.H + h) * s.T * d;
            std::vector<const double *> vals;
            scores.clear();
            for (int64_t j = 0; j < s.L; j++) {
                scores.push_back(dot(pk + j * d));
                vals.push_back(pv + j * d);
            }
            for (int64_t j = 0; j < s.step; j++) {
                scores.push_back(dot(skr + j * d));
                vals.push_back(svr + j * d);
            }
            scores.push_back(dot(kr));
            vals.push_back(v);
            const double mx = *std::max_element(scores.begin(), scores.end());
            double sum = 0;
            for (double &e : scores) {
                e = std::exp(e - mx);
                sum += e;
            }
            double *o = &out[size_t(q * HD + h * d)];
            for (size_t j = 0; j < scores.size(); j++)
                for (int64_t i = 0; i < d; i++)
                    o[i] += scores[j] / sum * vals[j][i];
        }
}

double max_rel(const std::vector<double> &got, const std::vector<double> &want) {
    if (got.size() != want.size())
        return NAN;
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); i++) {
        const double e = std::fabs(got[i] - want[i]);
        num = std::isnan(e) || e > num ? e : num; // NaN sticks
        den = std::max(den, std::fabs(want[i]));
    }
    return num / den;
}

struct Device {
    DevBuf qkv, cos_tab, sin_tab, pk, pv, sk, sv, out, pos, len, step;
    char *qkv_at() const {
        return static_cast<char *>(qkv.p);
    }
};

bool upload(Device &dv, const Shape &s, toto_k_dtype t, const Inputs &in) {
    const size_t esz = ct::dtype_size(t);
    const std::vector<int64_t> pos = {s.pos}, len = {s.L}, step = {s.step};
    return dv.qkv.upload(in.qkv.raw) && dv.cos_tab.upload(in.cos_tab.raw) &&
           dv.sin_tab.upload(in.sin_tab.raw) && dv.pk.upload(in.pk.raw) &&
           dv.pv.upload(in.pv.raw) && dv.sk.upload(in.sk.raw) && dv.sv.upload(in.sv.raw) &&
           dv.out.alloc(size_t(s.Q * s.H * s.d) * esz) && dv.out.poison() && dv.pos.upload(pos) &&
           dv.len.upload(len) && dv.step.upload(step);
}

int call(Device &dv, const Shape &s, toto_k_dtype t, void *stream = nullptr) {
    return toto_k_decode_attention(
        dv.out.p, dv.qkv_at() + size_t(s.offset) * ct::dtype_size(t), t, dv.cos_tab.p, dv.sin_tab.p,
        static_cast<int64_t *>(dv.pos.p), dv.pk.p, dv.pv.p, static_cast<int64_t *>(dv.len.p),
        dv.sk.p, dv.sv.p, static_cast<int64_t *>(dv.step.p), s.Q, s.V, s.H, s.d, s.S, s.T, stream);
}

void check(const Shape &s, toto_k_dtype t) {
    auto rng = ct::fresh_rng();
    const Inputs in = make_inputs(s, t, rng);
    Device dv;
    if (!upload(dv, s, t, in) || !ct::ok_launch(call(dv, s, t), "toto_k_decode_attention"))
        return;
    std::vector<unsigned char> oraw, kraw, vraw;
    if (!dv.out.download(oraw) || !dv.sk.download(kraw) || !dv.sv.download(vraw))
        return;
    std::vector<double> ref, key;
    reference(s, t, in, in.sk.exact, in.sv.exact, ref, key);
    const std::vector<double> out = ct::to_doubles(t, oraw);
    const double err = max_rel(out, ref), tol = tolerance(t);

    // The suffix: slot `step` of every (row, head) holds the key and the
    // value (the value's bits); every other slot its old bits.
    const size_t esz = ct::dtype_size(t), d = size_t(s.d), HD = size_t(s.H) * d;
    const std::vector<double> sk = ct::to_doubles(t, kraw);
    std::vector<double> kgot(key.size());
    size_t changed = 0, value_wrong = 0;
    for (int64_t q = 0; q < s.Q; q++)
        for (int64_t h = 0; h < s.H; h++)
            for (int64_t j = 0; j < s.T; j++) {
                const size_t at = (size_t((q * s.H + h) * s.T + j)) * d;
                if (j != s.step) {
                    changed += memcmp(&kraw[at * esz], &in.sk.raw[at * esz], d * esz) != 0;
                    changed += memcmp(&vraw[at * esz], &in.sv.raw[at * esz], d * esz) != 0;
                    continue;
                }
                const size_t src = size_t(s.offset) + size_t(q) * 3 * HD + 2 * HD + size_t(h) * d;
                value_wrong += memcmp(&vraw[at * esz], &in.qkv.raw[src * esz], d * esz) != 0;
                std::copy(sk.begin() + long(at), sk.begin() + long(at + d),
                          kgot.begin() + long(size_t(q) * HD + size_t(h) * d));
            }
    const double kerr = max_rel(kgot, key);
    tap_check(ct::count_nan(out) == 0 && err < tol && kerr < tol && changed == 0 &&
                  value_wrong == 0,
              "decode_attention %s Q %lld V %lld H %lld d %lld S %lld T %lld prefix_len %lld step "
              "%lld pos %lld%s: max err %.2e of max |out| < %.0e, key slot %.2e, value slot exact "
              "(%zu wrong), other slots untouched (%zu changed), all written",
              ct::dtype_name(t), (long long)s.Q, (long long)s.V, (long long)s.H, (long long)s.d,
              (long long)s.S, (long long)s.T, (long long)s.L, (long long)s.step, (long long)s.pos,
              s.offset ? " misaligned qkv" : "", err, tol, kerr, value_wrong, changed);
}

// One call captured in a CUDA graph and replayed for steps 0..T-1, the step
// changed on the device between replays: at the end every suffix slot holds
// this qkv's key and value, and the output is the reference's over them.
void check_graph(toto_k_dtype t) {
    const Shape s = {96, 3, 4, 64, 24, 5, 11, 0, 5, 0};
    auto rng = ct::fresh_rng();
    const Inputs in = make_inputs(s, t, rng);
    Device dv;
    if (!upload(dv, s, t, in))
        return;
    cudaStream_t stream;
    if (!CT_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)))
        return;
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    bool ok = CT_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    if (ok) {
        const int rc = call(dv, s, t, stream);
        ok = CT_OK(cudaStreamEndCapture(stream, &graph)) && CT_OK(rc) &&
             CT_OK(cudaGraphInstantiate(&exec, graph, 0));
    }
    for (int64_t j = 0; ok && j < s.T; j++)
        ok = CT_OK(cudaMemcpy(dv.step.p, &j, 8, cudaMemcpyHostToDevice)) &&
             CT_OK(cudaGraphLaunch(exec, stream)) && CT_OK(cudaStreamSynchronize(stream));
    std::vector<unsigned char> oraw;
    ok = ok && dv.out.download(oraw);
    if (exec)
        cudaGraphExecDestroy(exec);
    if (graph)
        cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
    if (!ok)
        return;
    // The key as stored, and the values, in every slot; then the last step.
    std::vector<double> ref, key, sk(in.sk.exact.size()), sv(in.sv.exact.size());
    reference(s, t, in, in.sk.exact, in.sv.exact, ref, key);
    const size_t d = size_t(s.d), HD = size_t(s.H) * d;
    for (size_t q = 0; q < size_t(s.Q); q++)
        for (size_t h = 0; h < size_t(s.H); h++)
            for (size_t j = 0; j < size_t(s.T); j++)
                for (size_t i = 0; i < d; i++) {
                    const size_t at = ((q * size_t(s.H) + h) * size_t(s.T) + j) * d + i;
                    sk[at] = key[q * HD + h * d + i];
                    sv[at] = in.qkv.exact[q * 3 * HD + 2 * HD + h * d + i];
                }
    Shape last = s;
    last.step = s.T - 1;
    reference(last, t, in, sk, sv, ref, key);
    const std::vector<double> out = ct::to_doubles(t, oraw);
    const double err = max_rel(out, ref);
    tap_check(ct::count_nan(out) == 0 && err < tolerance(t),
              "decode_attention %s in a CUDA graph replayed for steps 0..%lld (step on the "
              "device): max err %.2e < %.0e",
              ct::dtype_name(t), (long long)(s.T - 1), err, tolerance(t));
}

void check_arguments() {
    DevBuf a, i64;
    const std::vector<int64_t> zero = {0, 0, 0, 0};
    if (!a.alloc(1 << 20) || !i64.upload(zero))
        return;
    void *p = a.p;
    auto *n = static_cast<int64_t *>(i64.p);
    const int bad = int(cudaErrorInvalidValue);
    auto run = [&](toto_k_dtype t, int64_t Q, int64_t V, int64_t H, int64_t d, int64_t S,
                   int64_t T) {
        return toto_k_decode_attention(p, p, t, p, p, n, p, p, n, p, p, n, Q, V, H, d, S, T,
                                       nullptr);
    };
    struct Case {
        const char *what;
        int rc;
    } cases[] = {
        {"d odd", run(TOTO_K_F32, 4, 1, 2, 63, 8, 4)},
        {"d 0", run(TOTO_K_F32, 4, 1, 2, 0, 8, 4)},
        {"d 258", run(TOTO_K_F32, 4, 1, 2, 258, 8, 4)},
        {"S 0", run(TOTO_K_F32, 4, 1, 2, 64, 0, 4)},
        {"T 0", run(TOTO_K_F32, 4, 1, 2, 64, 8, 0)},
        {"Q % V != 0", run(TOTO_K_F32, 10, 4, 2, 64, 8, 4)},
        {"V 0", run(TOTO_K_F32, 4, 0, 2, 64, 8, 4)},
        {"H 0", run(TOTO_K_F32, 4, 1, 0, 64, 8, 4)},
        {"Q -1", run(TOTO_K_F32, -1, 1, 2, 64, 8, 4)},
        {"f64", run(TOTO_K_F64, 4, 1, 2, 64, 8, 4)},
        {"step NULL", toto_k_decode_attention(p, p, TOTO_K_BF16, p, p, n, p, p, n, p, p, nullptr, 4,
                                              1, 2, 64, 8, 4, nullptr)},
        {"out NULL", toto_k_decode_attention(nullptr, p, TOTO_K_BF16, p, p, n, p, p, n, p, p, n, 4,
                                             1, 2, 64, 8, 4, nullptr)},
    };
    for (const Case &c : cases)
        tap_check(c.rc == bad, "decode_attention rejects %s (rc %d)", c.what, c.rc);
    tap_check(run(TOTO_K_F32, 0, 3, 2, 64, 8, 4) == 0 && cudaDeviceSynchronize() == cudaSuccess,
              "decode_attention with Q 0 does nothing");
}

} // namespace

int main() {
    if (ct::skip_without_device())
        return 0;

    // {Q, V, H, d, S, T, prefix_len, step, pos_index, qkv offset}
    const Shape shapes[] = {
        {8, 1, 2, 64, 16, 4, 1, 0, 3, 0},          // prefix_len 1, step 0
        {256, 1, 12, 64, 128, 16, 128, 15, 36, 0}, // the published shape, full
        {256, 1, 12, 64, 128, 16, 5, 7, 0, 0},
        {56, 7, 3, 64, 20, 5, 13, 2, 9, 0},        // V 7: 8 paths a variate
        {320, 8, 2, 64, 128, 16, 77, 15, 20, 0},   // 40 paths: a partial group
        {1024, 8, 12, 64, 128, 16, 100, 9, 30, 0}, // 4 warps a block
        {4096, 4, 12, 64, 16, 4, 9, 3, 1, 0},      // one warp a block
        {12, 4, 3, 64, 9, 3, 9, 2, 4, 1},          // misaligned: the generic kernel
        {6, 3, 1, 2, 1, 1, 1, 0, 2, 0},            // d 2, S 1, T 1
        {21, 7, 2, 6, 5, 2, 3, 1, 11, 0},
        {16, 2, 3, 128, 33, 9, 33, 8, 17, 0},
        {8, 1, 2, 256, 40, 3, 21, 2, 6, 0},
        {10, 1, 2, 66, 7, 6, 1, 5, 8, 0},
    };
    // The default kernels, then the others TOTO_DECODE_KERNEL can pick (the
    // shared-memory block kernel and the generic warp kernel for d == 64).
    for (const char *kernel : {"", "block", "any"}) {
        if (*kernel) {
            setenv("TOTO_DECODE_KERNEL", kernel, 1);
            tap_diag("TOTO_DECODE_KERNEL=%s", kernel);
        }
        for (toto_k_dtype t : {TOTO_K_F32, TOTO_K_BF16}) {
            for (const Shape &s : shapes)
                check(s, t);
            check_graph(t);
        }
    }
    unsetenv("TOTO_DECODE_KERNEL");
    check_arguments();
    return tap_done();
}
