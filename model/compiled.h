// compiled.h - the compiled path's context passes.
//
// At open, a plan of static shape buckets is made from the configured limits:
// (variates V, batch rows B, patches S), each a power of two, with B*V*S at
// most a budget of patch rows. Every bucket runs once to warm it and, on a
// GPU in a graph mode, is captured as a CUDA graph sharing one memory pool.
// A context pass is packed into the smallest bucket that fits: batch rows and
// variates padded (padded variates get group ids of their own, so attention
// across variates never mixes them in), patches padded on the right (causal
// attention keeps the real patches blind to them; xPos is centred on the real
// length, so cached keys are exactly those of an unpadded pass). A batch too
// large for any bucket is split; a pass that fits no bucket at all runs
// eagerly and is counted. Nothing is captured after warm-up.
//
// On the CPU the same code runs on exact shapes without padding or graphs:
// padding would cost real arithmetic there.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "internal.h"
#include "path_graphs.h"

namespace toto {

struct CompiledOptions {
    torch::ScalarType compute_dtype = torch::kFloat32;
    bool graphs = false;   // capture CUDA graphs (compile modes reduce-overhead, max-autotune)
    bool autotune = false; // max-autotune: time matrix-product algorithms at warm-up
    void (*progress)(void *ctx, int done, int total) = nullptr; // as buckets warm
    void *progress_ctx = nullptr;
    int64_t max_batch = 64;    // largest batch bucket
    int64_t max_patches = 128; // largest patch bucket
    int64_t max_variates = 8;  // largest variate bucket
    int64_t budget = 4096;     // largest B*V*S of a bucket
};

struct CompiledStats {
    int64_t buckets = 0;
    bool autotuned = false;            // max-autotune timed the matrix products at warm-up
    const char *gemm_backend = "";     // its choice: "cublas" or "cublaslt"
    double gemm_ms[2] = {0, 0};        // its timings of the probe passes: cuBLAS, cuBLASLt
    double warmup_ms = 0;              // warming and capturing every bucket
    int64_t pool_bytes = 0;            // static buffers and the graphs' memory
    int64_t captures_after_warmup = 0; // must stay 0
    int64_t runs = 0;                  // context passes served by a bucket
    int64_t split_runs = 0;            // of those, passes split over several replays
    int64_t eager_fallbacks = 0;       // passes that fit no bucket
    int64_t path_buckets = 0;          // decoding buckets of sampled paths
    int64_t path_runs = 0;             // sampled requests decoded by them
};

// A context pass's input: B requests of V variates, each left-padded to the
// same S whole patches, on the host.
struct ContextIn {
    torch::Tensor x, w; // [B*V, S*P] float64; w is 1 where observed
    torch::Tensor ids;  // [B, V] int64 group ids
};

// A context pass's results on the model's device. They may be views of a
// bucket's static outputs: valid until the next run().
struct ContextOut {
    HeadOut head;                                  // each [B, V, P, K], float32 or wider
    torch::Tensor ids;                             // [B, V] int64
    torch::Tensor mean, scale;                     // [B*V] float64: the last patch's statistics
    torch::Tensor mean_patch;                      // [B*V, P] float64: the next patch's mean
    torch::Tensor scaler_state;                    // [6, B*V] float64 (Scaler::state)
    std::vector<torch::Tensor> prefix_k, prefix_v; // [B*V, heads, S, d]; empty unless asked
};

class CompiledContext {
  public:
    // net runs in opt.compute_dtype on the model's device.
    CompiledContext(std::unique_ptr<Network> net, const CompiledOptions &opt);
    ~CompiledContext();

    const Network &net() const {
        return *net_;
    }
    const CompiledOptions &options() const {
        return opt_;
    }
    // Safe from any thread while another runs forecasts.
    CompiledStats stats() const;
    // Sampled paths by graphs (GPU graph modes only): false when there are
    // none or job fits none (the caller decodes eagerly).
    // With levels, *stats as PathGraphs::run (values only when want_values).
    bool run_paths(const PathJob &job, torch::Tensor *values,
                   const std::vector<double> *levels = nullptr, torch::Tensor *stats = nullptr,
                   bool want_values = true);

    // A context pass the caller ran with the eager code instead (counted).
    void note_fallback() {
        eager_fallbacks_++;
    }

    // The context pass of in, scaler included. False when no bucket fits
    // (counted; the caller runs eagerly).
    bool run(const ContextIn &in, bool want_cache, ContextOut *out);

  private:
    struct Bucket;
    struct PosTable;
    Bucket *find(int64_t V, int64_t B, int64_t S);
    const PosTable &table_for(int64_t S);
    std::unique_ptr<Bucket> make_bucket(int64_t V, int64_t B, int64_t S);
    void forward(Bucket &b);
    void capture(Bucket &b);
    void plan_and_warm();
    void stage(Bucket &b, const ContextIn &in, int64_t row0, int64_t rows);
    void run_bucket(Bucket &b, const ContextIn &in, int64_t row0, int64_t rows, bool want_cache,
                    ContextOut *out);
    ContextOut run_exact(const ContextIn &in, bool want_cache);

    std::unique_ptr<Network> net_;
    CompiledOptions opt_;
    bool choose_gemm_backend();
    CompiledStats plan_; // buckets, warm-up time, memory: fixed at open
    std::atomic<int64_t> runs_{0}, split_runs_{0}, eager_fallbacks_{0}, late_captures_{0};
    std::atomic<int64_t> path_runs_{0};
    std::unique_ptr<PathGraphs> paths_;
    std::vector<std::unique_ptr<Bucket>> buckets_;
    std::vector<torch::Tensor> pool_k_, pool_v_;    // per TIME layer, flat [budget * D]
    std::vector<std::unique_ptr<PosTable>> tables_; // one per bucket length
    bool warm_ = false;
    struct GraphState;
    std::unique_ptr<GraphState> graph_state_;
};

} // namespace toto
