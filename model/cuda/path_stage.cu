// path_stage.cu - staging a sampled-path job into a path bucket: the job's
// mixture, statistics, ids and counters (toto_k_stage_paths), and the
// context's keys and values (toto_k_copy_strided). Two launches where
// libtorch took ~60 operations, each launched by the host in turn, between
// the context pass and the first decoding step.
#include <algorithm>

#include "common.cuh"

namespace toto_cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 20;
constexpr int kStateWidth = 6;

// One thread per (row q, unit u of the row's P*K head values); the thread of
// unit 0 also writes the row's scalars, the first thread the step counters.
template <typename U> __global__ void stage_paths_kernel(toto_k_path_stage s, int64_t units) {
    const int64_t total = s.N * s.Vb * units;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t q = i / units, u = i % units;
        const int64_t n = q / s.Vb, v = q % s.Vb;
        const bool real = v < s.V;
        const int64_t vi = real ? v : 0; // padded variates copy variate 0
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const U *src = reinterpret_cast<const U *>(s.head_src[k] + vi * s.head_vstride[k]);
            reinterpret_cast<U *>(s.head_dst[k] + q * s.PK)[u] = src[u];
        }
        if (u != 0)
            continue;
        s.mean_dst[q] = s.mean_src[vi * s.mean_stride];
        s.scale_dst[q] = s.scale_src[vi * s.scale_stride];
        for (int j = 0; j < kStateWidth; j++)
            s.state_dst[q * kStateWidth + j] = s.state_src[j * s.state_sj + vi * s.state_sv];
        // Padded variates: groups of their own, out of reach of int32 ids.
        s.ids_dst[q] = real ? s.ids_src[v * s.ids_stride] : -v - (int64_t(1) << 40);
        s.keys_dst[q] = s.key;
        s.rows_dst[q] = (s.first_path + n) * s.V + v;
        if (q == 0) {
            *s.prefix_len_dst = s.prefix_len;
            *s.step_dst = 0;
            *s.mean_only_dst = s.mean_only;
        }
    }
}

// Block (row, copy): row r = a * rows_b + b of copy c, in units of U.
template <typename U> __global__ void strided_copies_kernel(toto_k_strided_copies c) {
    const int64_t r = blockIdx.x, a = r / c.rows_b, b = r % c.rows_b;
    const int k = blockIdx.y;
    const U *src = reinterpret_cast<const U *>(static_cast<const char *>(c.src[k]) + a * c.src_sa +
                                               b * c.src_sb);
    U *dst = reinterpret_cast<U *>(static_cast<char *>(c.dst[k]) + a * c.dst_sa + b * c.dst_sb);
    const int64_t n = c.row_bytes / int64_t(sizeof(U));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        dst[i] = src[i];
}

bool aligned_to(uintptr_t x, uintptr_t unit) {
    return x % unit == 0;
}

// The widest unit (16, 8, 4, 2 or 1 bytes) dividing every value.
int widest_unit(const uintptr_t *values, int n) {
    for (int unit = 16; unit > 1; unit /= 2) {
        bool ok = true;
        for (int i = 0; i < n && ok; i++)
            ok = aligned_to(values[i], uintptr_t(unit));
        if (ok)
            return unit;
    }
    return 1;
}

int64_t blocks_for(int64_t total) {
    return std::min<int64_t>(std::max<int64_t>((total + kThreads - 1) / kThreads, 1), kMaxBlocks);
}

} // namespace
} // namespace toto_cuda

using namespace toto_cuda;

extern "C" int toto_k_stage_paths(const toto_k_path_stage *s, void *stream) {
    if (!s || s->N < 0 || s->Vb < 1 || s->V < 1 || s->V > s->Vb || s->PK < 1)
        return int(cudaErrorInvalidValue);
    for (int k = 0; k < 4; k++)
        if (!s->head_src[k] || !s->head_dst[k])
            return int(cudaErrorInvalidValue);
    if (!s->mean_src || !s->scale_src || !s->state_src || !s->ids_src || !s->mean_dst ||
        !s->scale_dst || !s->state_dst || !s->ids_dst || !s->keys_dst || !s->rows_dst ||
        !s->prefix_len_dst || !s->step_dst || !s->mean_only_dst)
        return int(cudaErrorInvalidValue);
    if (s->N == 0)
        return 0;
    // float4 units when every row of P*K starts 16-byte aligned.
    bool vec4 = s->PK % 4 == 0;
    for (int k = 0; k < 4 && vec4; k++)
        vec4 =
            aligned16(s->head_src[k]) && aligned16(s->head_dst[k]) && s->head_vstride[k] % 4 == 0;
    const int64_t units = vec4 ? s->PK / 4 : s->PK;
    const int64_t blocks = blocks_for(s->N * s->Vb * units);
    if (vec4)
        stage_paths_kernel<float4><<<unsigned(blocks), kThreads, 0, as_stream(stream)>>>(*s, units);
    else
        stage_paths_kernel<float><<<unsigned(blocks), kThreads, 0, as_stream(stream)>>>(*s, units);
    return launch_status();
}

extern "C" int toto_k_copy_strided(const toto_k_strided_copies *c, void *stream) {
    if (!c || c->n < 0 || c->n > TOTO_K_MAX_COPIES || c->rows_a < 0 || c->rows_b < 0 ||
        c->row_bytes < 0)
        return int(cudaErrorInvalidValue);
    const int64_t rows = c->rows_a * c->rows_b;
    if (c->n == 0 || rows == 0 || c->row_bytes == 0)
        return 0;
    if (rows > 0x7fffffff)
        return int(cudaErrorInvalidValue);
    uintptr_t v[2 * TOTO_K_MAX_COPIES + 5];
    int m = 0;
    for (int k = 0; k < c->n; k++) {
        if (!c->src[k] || !c->dst[k])
            return int(cudaErrorInvalidValue);
        v[m++] = reinterpret_cast<uintptr_t>(c->src[k]);
        v[m++] = reinterpret_cast<uintptr_t>(c->dst[k]);
    }
    for (int64_t x : {c->src_sa, c->src_sb, c->dst_sa, c->dst_sb, c->row_bytes})
        v[m++] = uintptr_t(x);
    const dim3 grid(unsigned(rows), unsigned(c->n));
    const int threads = 128;
    cudaStream_t st = as_stream(stream);
    switch (widest_unit(v, m)) {
    case 16:
        strided_copies_kernel<uint4><<<grid, threads, 0, st>>>(*c);
        break;
    case 8:
        strided_copies_kernel<uint2><<<grid, threads, 0, st>>>(*c);
        break;
    case 4:
        strided_copies_kernel<uint32_t><<<grid, threads, 0, st>>>(*c);
        break;
    case 2:
        strided_copies_kernel<uint16_t><<<grid, threads, 0, st>>>(*c);
        break;
    default:
        strided_copies_kernel<uint8_t><<<grid, threads, 0, st>>>(*c);
        break;
    }
    return launch_status();
}
