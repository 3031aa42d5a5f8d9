// test_path_stage.cc - staging a sampled-path job (toto_k_stage_paths) and
// the batched strided copies of the context's keys and values
// (toto_k_copy_strided) against a CPU replay of kernels.h's definitions, bit
// for bit, destinations poisoned first so that a missed element shows, and
// what lies outside the copied rows checked untouched. Without a CUDA device
// it prints a TAP skip and passes.
#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda_test.h"

namespace {

using ct::DevBuf;

template <typename T> std::vector<T> random_values(size_t n, std::mt19937_64 &rng) {
    std::uniform_real_distribution<double> d(-5, 5);
    std::vector<T> v(n);
    for (T &x : v)
        x = T(d(rng));
    return v;
}

struct StageCase {
    int64_t N, Vb, V, PK, head_vstride, mean_stride, state_sj, state_sv, ids_stride;
    int64_t first_path;
};

// The CPU replay of kernels.h's toto_k_stage_paths for one case.
struct StageRef {
    std::vector<float> head[4];
    std::vector<double> mean, scale, state;
    std::vector<int64_t> ids, keys, rows;
};

StageRef replay_stage(const StageCase &c, const std::vector<float> *head_src,
                      const std::vector<double> &mean_src, const std::vector<double> &scale_src,
                      const std::vector<double> &state_src, const std::vector<int64_t> &ids_src,
                      int64_t key) {
    const int64_t Q = c.N * c.Vb;
    StageRef r;
    for (int k = 0; k < 4; k++)
        r.head[k].resize(size_t(Q * c.PK));
    r.mean.resize(size_t(Q));
    r.scale.resize(size_t(Q));
    r.state.resize(size_t(Q * 6));
    r.ids.resize(size_t(Q));
    r.keys.resize(size_t(Q));
    r.rows.resize(size_t(Q));
    for (int64_t q = 0; q < Q; q++) {
        const int64_t n = q / c.Vb, v = q % c.Vb, vi = v < c.V ? v : 0;
        for (int k = 0; k < 4; k++)
            for (int64_t e = 0; e < c.PK; e++)
                r.head[k][size_t(q * c.PK + e)] = head_src[k][size_t(vi * c.head_vstride + e)];
        r.mean[size_t(q)] = mean_src[size_t(vi * c.mean_stride)];
        r.scale[size_t(q)] = scale_src[size_t(vi * c.mean_stride)];
        for (int j = 0; j < 6; j++)
            r.state[size_t(q * 6 + j)] = state_src[size_t(j * c.state_sj + vi * c.state_sv)];
        r.ids[size_t(q)] = v < c.V ? ids_src[size_t(v * c.ids_stride)] : -v - (int64_t(1) << 40);
        r.keys[size_t(q)] = key;
        r.rows[size_t(q)] = (c.first_path + n) * c.V + v;
    }
    return r;
}

void check_stage(const StageCase &c) {
    auto rng = ct::fresh_rng();
    const int64_t Q = c.N * c.Vb, key = int64_t(0x8000000000000123ull);
    std::vector<float> head_src[4];
    DevBuf d_head_src[4], d_head_dst[4];
    toto_k_path_stage s{};
    bool ok = true;
    for (int k = 0; k < 4; k++) {
        head_src[k] = random_values<float>(size_t(c.V * c.head_vstride), rng);
        ok = ok && d_head_src[k].upload(head_src[k]) &&
             d_head_dst[k].alloc(size_t(Q * c.PK) * sizeof(float)) && d_head_dst[k].poison();
        s.head_src[k] = static_cast<const float *>(d_head_src[k].p);
        s.head_vstride[k] = c.head_vstride;
        s.head_dst[k] = static_cast<float *>(d_head_dst[k].p);
    }
    auto mean_src = random_values<double>(size_t(c.V * c.mean_stride), rng);
    auto scale_src = random_values<double>(size_t(c.V * c.mean_stride), rng);
    auto state_src = random_values<double>(size_t(6 * c.state_sj + c.V * c.state_sv), rng);
    auto ids_src = random_values<int64_t>(size_t(c.V * c.ids_stride), rng);
    DevBuf d_mean, d_scale, d_state, d_ids, o_mean, o_scale, o_state, o_ids, o_keys, o_rows, o_len,
        o_step, o_mean_only;
    ok = ok && d_mean.upload(mean_src) && d_scale.upload(scale_src) && d_state.upload(state_src) &&
         d_ids.upload(ids_src);
    for (DevBuf *o : {&o_mean, &o_scale, &o_ids, &o_keys, &o_rows})
        ok = ok && o->alloc(size_t(Q) * 8) && o->poison();
    ok = ok && o_state.alloc(size_t(Q) * 6 * 8) && o_state.poison() && o_len.alloc(8) &&
         o_len.poison() && o_step.alloc(8) && o_step.poison() && o_mean_only.alloc(8) &&
         o_mean_only.poison();
    if (!ok)
        return;
    s.PK = c.PK;
    s.mean_src = static_cast<const double *>(d_mean.p);
    s.scale_src = static_cast<const double *>(d_scale.p);
    s.state_src = static_cast<const double *>(d_state.p);
    s.mean_stride = s.scale_stride = c.mean_stride;
    s.state_sj = c.state_sj;
    s.state_sv = c.state_sv;
    s.ids_src = static_cast<const int64_t *>(d_ids.p);
    s.ids_stride = c.ids_stride;
    s.mean_dst = static_cast<double *>(o_mean.p);
    s.scale_dst = static_cast<double *>(o_scale.p);
    s.state_dst = static_cast<double *>(o_state.p);
    s.ids_dst = static_cast<int64_t *>(o_ids.p);
    s.keys_dst = static_cast<int64_t *>(o_keys.p);
    s.rows_dst = static_cast<int64_t *>(o_rows.p);
    s.prefix_len_dst = static_cast<int64_t *>(o_len.p);
    s.step_dst = static_cast<int64_t *>(o_step.p);
    s.mean_only_dst = static_cast<int64_t *>(o_mean_only.p);
    s.mean_only = c.first_path % 2; // either value, by case
    s.key = key;
    s.first_path = c.first_path;
    s.prefix_len = 37;
    s.N = c.N;
    s.Vb = c.Vb;
    s.V = c.V;
    if (!ct::ok_launch(toto_k_stage_paths(&s, nullptr), "toto_k_stage_paths"))
        return;
    StageRef want = replay_stage(c, head_src, mean_src, scale_src, state_src, ids_src, key);
    int wrong = 0;
    for (int k = 0; k < 4; k++) {
        std::vector<float> got;
        ok = ok && d_head_dst[k].download(got);
        wrong += ok && memcmp(got.data(), want.head[k].data(), got.size() * 4) != 0;
    }
    std::vector<double> mean, scale, state;
    std::vector<int64_t> ids, keys, rows, len, step, mean_only;
    ok = ok && o_mean.download(mean) && o_scale.download(scale) && o_state.download(state) &&
         o_ids.download(ids) && o_keys.download(keys) && o_rows.download(rows) &&
         o_len.download(len) && o_step.download(step) && o_mean_only.download(mean_only);
    if (ok) {
        wrong += mean != want.mean || scale != want.scale || state != want.state;
        wrong += ids != want.ids || keys != want.keys || rows != want.rows;
        wrong += len[0] != 37 || step[0] != 0 || mean_only[0] != c.first_path % 2;
    }
    tap_check(ok && wrong == 0,
              "stage_paths: N %lld, %lld of %lld variates, PK %lld, head stride %lld, first path "
              "%lld: every output as kernels.h defines (%d wrong)",
              (long long)c.N, (long long)c.V, (long long)c.Vb, (long long)c.PK,
              (long long)c.head_vstride, (long long)c.first_path, wrong);
}

void check_stage_refusals() {
    toto_k_path_stage s{};
    s.N = 1;
    s.Vb = 2;
    s.V = 3; // more real variates than the bucket holds
    s.PK = 4;
    const bool too_many = toto_k_stage_paths(&s, nullptr) == int(cudaErrorInvalidValue);
    s.V = 1; // now only the pointers are missing
    const bool null_ptr = toto_k_stage_paths(&s, nullptr) == int(cudaErrorInvalidValue);
    tap_check(too_many && null_ptr &&
                  toto_k_stage_paths(nullptr, nullptr) == int(cudaErrorInvalidValue),
              "stage_paths: V > Vb, NULL pointers and a NULL struct are refused");
}

// Copies of [A, B, S, d] rows (elements of es bytes) from buffers of S_src
// positions into buffers of S_dst positions; n copies in one launch.
void check_copies(int n, int64_t A, int64_t B, int64_t S, int64_t d, int64_t es, int64_t S_src,
                  int64_t S_dst) {
    auto rng = ct::fresh_rng();
    const int64_t row = S * d * es, src_sb = S_src * d * es, dst_sb = S_dst * d * es;
    const size_t src_bytes = size_t(A * B * src_sb), dst_bytes = size_t(A * B * dst_sb);
    std::vector<std::vector<unsigned char>> src(static_cast<size_t>(n));
    std::vector<DevBuf> d_src(static_cast<size_t>(n)), d_dst(static_cast<size_t>(n));
    toto_k_strided_copies c{};
    c.n = n;
    bool ok = true;
    for (int k = 0; k < n; k++) {
        src[size_t(k)].resize(src_bytes);
        for (auto &x : src[size_t(k)])
            x = (unsigned char)(rng() & 0xff);
        ok = ok && d_src[size_t(k)].upload(src[size_t(k)]) && d_dst[size_t(k)].alloc(dst_bytes) &&
             d_dst[size_t(k)].poison();
        c.src[k] = d_src[size_t(k)].p;
        c.dst[k] = d_dst[size_t(k)].p;
    }
    c.rows_a = A;
    c.rows_b = B;
    c.src_sa = B * src_sb;
    c.src_sb = src_sb;
    c.dst_sa = B * dst_sb;
    c.dst_sb = dst_sb;
    c.row_bytes = row;
    if (!ok || !ct::ok_launch(toto_k_copy_strided(&c, nullptr), "toto_k_copy_strided"))
        return;
    int wrong = 0;
    for (int k = 0; k < n && ok; k++) {
        std::vector<unsigned char> want(dst_bytes, 0xff), got;
        for (int64_t r = 0; r < A * B; r++)
            memcpy(&want[size_t(r * dst_sb)], &src[size_t(k)][size_t(r * src_sb)], size_t(row));
        ok = d_dst[size_t(k)].download(got);
        wrong += ok && got != want;
    }
    tap_check(ok && wrong == 0,
              "copy_strided: %d copies of [%lld, %lld] rows of %lld bytes (%lld of %lld "
              "positions): copied, the rest untouched (%d wrong)",
              n, (long long)A, (long long)B, (long long)row, (long long)S, (long long)S_dst, wrong);
}

void check_copy_refusals() {
    toto_k_strided_copies c{};
    c.n = TOTO_K_MAX_COPIES + 1;
    c.rows_a = c.rows_b = c.row_bytes = 1;
    const bool too_many = toto_k_copy_strided(&c, nullptr) == int(cudaErrorInvalidValue);
    c.n = 1; // src[0] and dst[0] NULL
    const bool null_ptr = toto_k_copy_strided(&c, nullptr) == int(cudaErrorInvalidValue);
    c.n = 0;
    const bool none = toto_k_copy_strided(&c, nullptr) == 0;
    tap_check(too_many && null_ptr && none,
              "copy_strided: more than %d copies and NULL pointers refused, none is a no-op",
              TOTO_K_MAX_COPIES);
}

} // namespace

int main() {
    if (ct::skip_without_device())
        return 0;
    // long's shape (256 paths, 1 variate, P*K = 64*24), float4 units.
    check_stage({256, 1, 1, 1536, 1536, 1, 1, 1, 1, 0});
    // Padded variates, strided sources, a later slice of the paths.
    check_stage({5, 4, 3, 24, 28, 2, 10, 1, 3, 256});
    check_stage({3, 8, 5, 24, 24, 1, 1, 6, 1, 1024});
    // PK not a multiple of 4: scalar units.
    check_stage({7, 2, 2, 6, 9, 1, 2, 1, 1, 3});
    check_stage_refusals();
    // The published shape's 22 TIME-layer copies of long's context (bf16,
    // 12 heads, 32 of 32 patches, d 64) into a bucket of 128 positions.
    check_copies(22, 1, 12, 32, 64, 2, 32, 128);
    check_copies(6, 3, 4, 5, 8, 2, 8, 12); // 80-byte rows: 16-byte units
    check_copies(4, 2, 3, 3, 3, 2, 4, 7);  // 18-byte rows: 2-byte units
    check_copies(2, 2, 2, 5, 3, 4, 5, 9);  // 60-byte rows: 4-byte units
    check_copies(64, 1, 2, 1, 1, 1, 3, 5); // single bytes, the most copies
    check_copy_refusals();
    return tap_done();
}
