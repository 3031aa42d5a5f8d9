// path_graphs.h - sampled paths decoded by CUDA graphs (the compiled path).
//
// A sampled forecast beyond its first patch decodes N paths patch by patch:
// each step draws a patch from the mixture head of every path (model/cuda's
// counter-based sampler), appends it, rescales and runs the network on that
// one patch against the shared context keys and the path's own earlier
// patches. Here one step is one graph replay on static buffers: a plan of
// (variates, paths) buckets, padded, captured at open into the context
// buckets' pool. A device-side step counter selects the rotary tables, the
// keys' slot and the draws' counters, so the same graph serves every step.
//
// Draws use the key = the request's seed and the counter = (row, patch)
// with row = path * V + variate: a request's paths are the same bits
// whatever shares its batch or how its paths are split over replays.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "internal.h"

namespace toto {

struct PathGraphOptions {
    int64_t max_rows = 2048;  // paths x variates of the largest bucket
    int64_t max_steps = 16;   // patches decoded per request (1024 steps at P = 64)
    int64_t max_prefix = 128; // context patches
    int64_t max_variates = 8;
};

// One request's context row, on the device.
struct PathJob {
    HeadOut head;              // each [1, V, P, K] float32: the first patch's mixture
    torch::Tensor mean, scale; // [V] float64: the last context patch's statistics
    torch::Tensor state;       // [6, V] float64: Scaler::state()
    torch::Tensor ids;         // [1, V] int64
    std::vector<torch::Tensor> prefix_k, prefix_v; // per TIME layer, [V, heads, S, d]
    uint64_t seed = 0;
    int64_t paths = 0, steps = 0;
    // A mean forecast: each patch is the mixture's mean, fed back (one path,
    // no seed). Its "variates" may be several requests' (their group ids
    // apart), decoded in one replay.
    bool mean_only = false;
};

class PathGraphs {
  public:
    PathGraphs(const Network &net, const PathGraphOptions &opt);
    ~PathGraphs();

    // Warms and captures every bucket; the caller holds the capture stream
    // and passes the graph memory pool (at::cuda::MempoolId_t).
    void capture_all(std::pair<unsigned long long, unsigned long long> pool);

    // Static buffers, in bytes.
    int64_t bytes() const {
        return bytes_;
    }
    int64_t buckets() const;

    // The decoded values of job, [paths * V, steps * P] float64 on the host,
    // path-major. With levels (sorted, 0.5 among them) also *stats: the mean
    // and the quantiles at levels of every step of every variate over all
    // paths, computed on the GPU (toto_k_quantiles: the host's bits but for
    // the mean's order of summation), [V, 1 + levels, steps * P] float64 on
    // the host; the values then come back only when want_values. False when
    // the job fits no bucket (the caller decodes it eagerly).
    bool run(const PathJob &job, torch::Tensor *values, const std::vector<double> *levels = nullptr,
             torch::Tensor *stats = nullptr, bool want_values = true);

  private:
    struct Bucket;
    Bucket *find(int64_t V, int64_t N);
    void stage(Bucket &b, const PathJob &job, int64_t first_path);
    bool stage_kernels(Bucket &b, const PathJob &job, int64_t first_path);
    void stage_aten(Bucket &b, const PathJob &job, int64_t first_path);
    void sample(Bucket &b);
    void step(Bucket &b);
    void capture(Bucket &b, std::pair<unsigned long long, unsigned long long> pool);
    torch::Tensor path_stats(const torch::Tensor &all, int64_t V, const torch::Tensor &levels);

    const Network &net_;
    PathGraphOptions opt_;
    std::vector<std::unique_ptr<Bucket>> buckets_;
    Network::StepBuffers pools_;           // prefix and suffix keys and values
    torch::Tensor table_cos_, table_sin_;  // [max_prefix + max_steps, 2, 1, 1, 1, d]
    torch::Tensor head_pool_, stats_pool_; // shared static head and statistics
    torch::Tensor state_pool_;             // [max_rows, 6] scaler state
    torch::Tensor paths_pool_;             // [max_rows * max_steps * P] float64
    torch::Tensor last_pool_;              // [max_rows * P] float64: the last drawn patch
    int64_t bytes_ = 0;
    bool fused_attention_ = false; // toto_k_decode_attention instead of libtorch's operations
    bool stage_kernels_ = false;   // toto_k_stage_paths (TOTO_STAGE_KERNELS=0: libtorch's)
};

} // namespace toto
