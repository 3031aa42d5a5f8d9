/*
 * toto.h - Toto 1.0 time-series forecasting behind a C API.
 *
 * The model lives in C++ (libtorch) behind this header; nothing here throws,
 * prints or exits. Every call that can fail returns an error code and writes
 * a message into a caller-provided buffer (err, err_len).
 *
 * Lifetime: toto_model_open() -> toto_forecast()* -> toto_model_free().
 * toto_forecast() may run on one thread at a time per handle.
 * toto_model_get_info() and toto_request_validate() only read what
 * toto_model_open() fixed: any thread may call them at any time, also while
 * another thread is inside toto_forecast() (the daemon validates on its I/O
 * thread while the worker computes).
 */
#ifndef TOTO_H
#define TOTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TOTO_VERSION "0.1.0"

/* Architecture read from a checkpoint's config.json. */
typedef struct toto_config {
    int patch_size; /* P (equals stride) */
    int embed_dim;  /* D */
    int num_layers;
    int num_heads;                /* head dim = D / num_heads */
    int mlp_hidden_dim;           /* H */
    int spacewise_every_n_layers; /* -1: every layer attends over time */
    bool spacewise_first;
    int k_components; /* Student-t mixture components K */
    bool stabilize_with_global;
    double scale_factor_exponent;
} toto_config;

/* Options for toto_model_open(); start from toto_model_default_params(). */
typedef struct toto_model_params {
    const char *device;        /* "cpu", "cuda" or "cuda:N" */
    const char *dtype;         /* "float32" or "float64" */
    int cpu_threads;           /* intra-op threads on CPU; 0 keeps libtorch's default */
    int max_prediction_length; /* requests above this are refused */
    int max_num_samples;       /* requests above this are refused */
    int max_context_length;    /* series longer than this are refused */
    int max_variates;          /* series with more variates are refused */
    bool use_kv_cache;         /* false recomputes the whole sequence each step (reference only) */
    /*
     * The compiled path (model/compiled.h): on at open unless compile is
     * false. compile_mode: "reduce-overhead" (the default: static shape
     * buckets captured as CUDA graphs on a GPU), "default" (no graphs) or
     * "max-autotune" (reduce-overhead, and the matrix products' library,
     * cuBLAS or cuBLASLt, chosen by timing both at warm-up where libtorch
     * allows it: CUDA libtorch 2.x; else as reduce-overhead). compute_dtype: the compiled
     * network's precision, "bfloat16" or "float32" (float32 accumulation
     * either way); NULL or "" picks bfloat16 on CUDA and dtype on the CPU.
     * The bucket plan is sized by the four limits below (0: defaults 64
     * rows, 128 patches, 8 variates, 4096 patch rows per bucket).
     */
    bool compile;
    const char *compile_mode;
    const char *compute_dtype;
    int compile_max_batch;
    int compile_max_patches;
    int compile_max_variates;
    int compile_budget;
    /* Called as the compiled path's buckets warm (done of total, from the
     * opening thread), e.g. to tell systemd; NULL: not called. */
    void (*warm_progress)(void *ctx, int done, int total);
    void *warm_progress_ctx;
} toto_model_params;

typedef struct toto_model toto_model;

/* The compiled path's plan and counters (all zero when it is off). */
typedef struct toto_compile_stats {
    bool available;                /* the compiled path was built at open */
    bool graphs;                   /* CUDA graphs captured */
    bool autotuned;                /* max-autotune timed the matrix products at warm-up */
    char gemm_backend[16];         /* its choice: "cublas" or "cublaslt"; "" without it */
    double gemm_ms[2];             /* its probe timings: cuBLAS, cuBLASLt (ms) */
    char mode[24];                 /* compile_mode in effect */
    char compute_dtype[16];        /* "bfloat16", "float32", "float64" */
    int64_t buckets;               /* planned context buckets */
    double warmup_ms;              /* warming and capturing them */
    int64_t pool_bytes;            /* device memory of their buffers and graphs */
    int64_t captures_after_warmup; /* stays 0: nothing is captured after open */
    int64_t runs;                  /* context passes through the compiled path */
    int64_t split_runs;            /* of those, split over several replays */
    int64_t eager_fallbacks;       /* passes outside the plan: eager code, compiled network */
    int64_t path_buckets;          /* planned decoding buckets of sampled paths (graphs) */
    int64_t path_runs;             /* sampled requests whose paths those decoded */
} toto_compile_stats;

/* What an open model is and runs on. */
typedef struct toto_model_info {
    toto_config config;
    int64_t num_params;
    char device[32]; /* e.g. "cpu", "cuda:0" */
    char dtype[16];  /* "float32", "float64": inputs, the scaler, eager path, results */
    char path[16];   /* the path forecasts take now: "compiled" or "eager" */
    char name[256];  /* checkpoint directory as opened */
    toto_compile_stats compile;
} toto_model_info;

/*
 * One forecast request. values is row-major [n_variates][n_steps]; NaN marks
 * a missing observation. groups (optional, [n_variates]) gives each variate's
 * group id: variates attend to each other only within a group.
 */
typedef struct toto_request {
    int n_variates;
    int n_steps;
    const double *values;
    const int32_t *groups; /* NULL: all variates in group 0 */
    int prediction_length;
    int num_samples; /* 0: mean forecast; N: N sampled paths */
    int n_quantiles;
    const double *quantile_levels; /* each in (0,1) */
    uint64_t seed;
    bool return_samples;
} toto_request;

/*
 * One forecast result, filled by toto_forecast(). Arrays are owned by the
 * result: release them with toto_result_free(). On a per-request failure,
 * status is non-zero, error says why and every array is NULL.
 *
 * median is NULL when it cannot be computed exactly or from samples (a mean
 * forecast whose horizon reaches past the first predicted patch).
 */
typedef struct toto_result {
    int status; /* 0 ok, else a TOTO_E* code */
    char error[512];
    char path[16]; /* "compiled" (the compiled network computed it) or "eager" */
    int n_variates;
    int prediction_length;
    int num_samples;
    int n_quantiles;
    double *mean;      /* [n_variates][prediction_length] */
    double *median;    /* [n_variates][prediction_length] or NULL */
    double *quantiles; /* [n_quantiles][n_variates][prediction_length] or NULL */
    double *samples;   /* [num_samples][n_variates][prediction_length] or NULL */
} toto_result;

enum {
    TOTO_OK = 0,
    TOTO_EINVAL = 1,  /* the request is invalid; error names the field */
    TOTO_EMODEL = 2,  /* the model failed while computing (see error) */
    TOTO_ENOMEM = 3,  /* out of host or device memory */
    TOTO_EIO = 4,     /* a file could not be read */
    TOTO_EFORMAT = 5, /* a checkpoint file is malformed or does not match */
};

toto_model_params toto_model_default_params(void);

/*
 * The environment variables of the Python setup this replaces, applied to p:
 * TOTO_COMPILE=0|1 (compile), TOTO_COMPILE_MODE (compile_mode), and
 * TOTO_DISABLE_COMPILE=1, which wins over both. TOTO_EINVAL (err says which
 * variable) for a value it does not know; p is then unchanged.
 */
int toto_model_params_from_env(toto_model_params *p, char *err, size_t err_len);

/* Opens dir/config.json and dir/model.safetensors. NULL on failure. */
toto_model *toto_model_open(const char *dir, const toto_model_params *params, char *err,
                            size_t err_len);
void toto_model_free(toto_model *model);

/* The CUDA devices this build can use: 0 without a CUDA libtorch or a GPU. */
int toto_cuda_device_count(void);

void toto_model_get_info(const toto_model *model, toto_model_info *info);

/*
 * Switches the path later forecasts take: "compiled" or "eager". Safe while
 * another thread runs toto_forecast (the switch applies from its next call).
 * TOTO_EINVAL when the path is unknown or the compiled path was not built.
 */
int toto_model_set_path(toto_model *model, const char *path, char *err, size_t err_len);

/* Checks one request against the model and its limits without running it. */
int toto_request_validate(const toto_model *model, const toto_request *req, char *err,
                          size_t err_len);

/*
 * The checks of a request's values that need no model: no infinite value,
 * at least one observed (not NaN) one. TOTO_OK, or TOTO_EINVAL with the
 * message toto_request_validate() would give. Reads only req: safe on any
 * thread without a model (totod runs it where it parses the request).
 */
int toto_values_check(const toto_request *req, char *err, size_t err_len);

/*
 * toto_request_validate() for a request whose values toto_values_check()
 * has judged already (values_rc, values_err: its result), without reading
 * them again: the same checks in the same order, that result reported
 * where toto_request_validate() reports its own (after the series' limits,
 * before the outputs').
 */
int toto_request_validate_checked(const toto_model *model, const toto_request *req, int values_rc,
                                  const char *values_err, char *err, size_t err_len);

/*
 * Runs n requests as one batch and fills results[0..n). Each result is the
 * same as the request would get alone: in float64 to 1e-12 (relative); in
 * float32 up to the last bits of matrix products, where the BLAS picks its
 * kernels by batch size (MKL, cuBLAS). Returns TOTO_OK when every request was
 * attempted (check each result's status); another code when the batch as a
 * whole could not run (err says why, and results hold that error too).
 */
int toto_forecast(toto_model *model, const toto_request *reqs, toto_result *results, int n,
                  char *err, size_t err_len);
/*
 * The same on a given path for this call only ("compiled" or "eager"; NULL:
 * the model's current one), leaving the model's path as it is: shadow checks
 * compare the two. TOTO_EINVAL (err says why) for an unknown path or a
 * compiled path the model does not have.
 */
int toto_forecast_on(toto_model *model, const char *path, const toto_request *reqs,
                     toto_result *results, int n, char *err, size_t err_len);

void toto_result_free(toto_result *result);

/* Reads and checks a config.json. Returns TOTO_OK or TOTO_EIO / TOTO_EFORMAT. */
int toto_config_load(const char *path, toto_config *cfg, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* TOTO_H */
