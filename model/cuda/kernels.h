/*
 * kernels.h - fused CUDA kernels of the compiled path, behind a plain C API.
 *
 * Usable from C and C++ without CUDA headers: device pointers are void *, a
 * stream is a cudaStream_t passed as void * (NULL: the legacy default
 * stream), and every function returns 0 or a cudaError_t code (argument
 * errors are cudaErrorInvalidValue, 1). Nothing here allocates, copies to or
 * from the host, or synchronizes: each call only enqueues kernels on the
 * stream, so every function may be captured into a CUDA graph. Nothing throws.
 *
 * Tensors are dense and row-major unless a leading dimension (ld) is given.
 * Vectorized paths need 16-byte aligned pointers (any cudaMalloc'd or
 * libtorch tensor start is); other alignments take a slower scalar path.
 *
 * Built for sm_90 (H100/H200). See model/cuda/README.md for the numerics.
 */
#ifndef TOTO_CUDA_KERNELS_H
#define TOTO_CUDA_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum toto_k_dtype {
    TOTO_K_F32 = 0,
    TOTO_K_BF16 = 1,
    TOTO_K_F64 = 2, /* toto_k_quantiles and toto_k_mixture_stats only */
} toto_k_dtype;

/* cudaGetErrorString() of a code returned here ("no error" for 0). */
const char *toto_cuda_error_string(int code);

/*
 * RMSNorm over the last dimension, as Network::rms_norm:
 *     y = x / sqrt(mean(x * x) + 1e-8) * scale
 * x [rows, dim], y [rows, dim], scale [dim]; each F32 or BF16, independently.
 * dim a multiple of 8, 8..4096. Accumulates in float32; y is rounded once.
 * y may alias x when both have the same dtype.
 */
int toto_k_rmsnorm(void *y, toto_k_dtype y_dtype, const void *x, toto_k_dtype x_dtype,
                   const void *scale, toto_k_dtype scale_dtype, int64_t rows, int64_t dim,
                   void *stream);

/*
 * The pre-norm residual step fused: x += delta (rounded to x's dtype), then
 * y = rmsnorm(x) of the rounded x, so the result equals the two steps done
 * apart. x is read and written in place. Same dtypes and limits as above.
 */
int toto_k_add_rmsnorm(void *x, toto_k_dtype x_dtype, const void *delta, toto_k_dtype delta_dtype,
                       void *y, toto_k_dtype y_dtype, const void *scale, toto_k_dtype scale_dtype,
                       int64_t rows, int64_t dim, void *stream);

/*
 * SwiGLU, as Network::mlp: u [rows, 2 * hidden] holds the gate (first half of
 * each row) then the value; out [rows, hidden] = silu(gate) * value, computed
 * in float32 and rounded once. u and out each F32 or BF16. Any hidden >= 1;
 * a multiple of 8 with aligned pointers takes the vectorized path.
 */
int toto_k_swiglu(void *out, toto_k_dtype out_dtype, const void *u, toto_k_dtype u_dtype,
                  int64_t rows, int64_t hidden, void *stream);

/*
 * One draw per (row q, step p) from a Student-t mixture, in the head's units:
 * probs, df, loc, scale are float32 [Q, P, K]; keys and counters are uint64
 * [Q]; draws float32 [Q, P]:
 *     c ~ Categorical(probs[q, p, :])    (weights need not sum to 1)
 *     draws[q, p] = loc_c + scale_c * Z * rsqrt(chi2 / df_c),
 *     Z ~ N(0, 1), chi2 = 2 * Gamma(df_c / 2, 1)
 *
 * Randomness is Philox4x32-10 (model/cuda/philox.h), counter-based: draw
 * (q, p) uses the key keys[q] and the 128-bit counters
 *     (counters[q] low 32 bits, counters[q] high 32 bits, p, j), j = 0..4,
 * and nothing else, so a row gives the same bits whatever else is in the
 * batch, wherever it sits. The caller makes (key, counter) unique per draw
 * site: e.g. key = request seed, counter = (path, variate, decoding step).
 *
 * Per draw, at most 5 Philox blocks (20 words), in a fixed layout:
 *   block j=0: w0 -> the component (24-bit uniform in [0,1) times the sum of
 *              the weights, against their running sum);
 *              w1, w2 -> Box-Muller: Z (cosine branch);
 *              w3 -> the uniform U of the alpha < 1 boost below.
 *   block j=1..4: attempts 2j-2 and 2j-1 of Marsaglia-Tsang for
 *              Gamma(a, 1), a = max(alpha, alpha + 1 when alpha < 1):
 *              w0, w1 -> Box-Muller: the normals x of both attempts
 *              (cosine, sine); w2, w3 -> their acceptance uniforms.
 *   The first accepted of the 8 attempts is taken; if none is (below 1e-10
 *   for a >= 1), the last proposal d * max(v, tiny). alpha = df / 2 < 1
 *   multiplies by U^(1 / alpha) (Marsaglia-Tsang's boost).
 * Blocks are generated only as the draw needs them: most draws use two.
 */
int toto_k_mixture_sample(void *draws, const void *probs, const void *df, const void *loc,
                          const void *scale, const void *keys, const void *counters, int64_t Q,
                          int64_t P, int64_t K, void *stream);

/*
 * The same draws for decoding step *step (read on the device, so a captured
 * graph replays every step), written in original units into the paths:
 *     x = shift[q] + sd[q] * draw(q, p), counter = rows[q] + (*step << 32)
 *     paths[q, *step, p] = x, and last[q, p] = x when last is not NULL
 * with x rounded as two separate float64 operations (no fused multiply-add)
 * and NaN, infinities and |x| >= half_max replaced by 0. paths [Q, T, P]
 * and last [Q, P] float64; shift, sd [Q] float64; rows [Q] and *step int64;
 * the rest as above. One launch instead of a dozen libtorch operations.
 * When mean_only is not NULL and *mean_only != 0 (read on the device, so
 * one captured graph serves both), draw(q, p) is the mixture's mean instead,
 *     sum over k of probs[q, p, k] * loc[q, p, k]
 * (float32 products summed in order of k, weights taken as they are): a
 * mean forecast feeds it back as the next patch.
 */
int toto_k_mixture_sample_paths(double *paths, double *last, const int64_t *step, int64_t T,
                                const double *shift, const double *sd, double half_max,
                                const void *probs, const void *df, const void *loc,
                                const void *scale, const void *keys, const void *rows, int64_t Q,
                                int64_t P, int64_t K, const int64_t *mean_only, void *stream);

/*
 * The exact mean and quantiles of the same mixture per (row q, step p), as
 * model/result_stats.cc computes them on the host with model/mixture.h (the
 * same code: model/mixture_impl.h). All on the device: probs, df, loc, scale
 * [Q, P, K], all param_dtype (F32 or F64); shift, sd [Q] float64, row q's
 * value being shift[q] + sd[q] * z for z in the head's units; levels
 * [n_levels] float64.
 *     mean_out [Q, P] = shift + sd * sum_k w_k loc_k         (may be NULL)
 *     q_out [n_levels, Q, P] = shift + sd * mixture_quantile(level)
 *                              (may be NULL when n_levels == 0)
 * The quantile inverts the CDF normalized by the sum of the weights, so they
 * need sum to 1 only up to rounding; a level outside (0, 1), or NaN
 * parameters, give NaN. Results agree with the host's to ~1e-11 relative
 * (the sums over components run in another order, the device's libm differs
 * by ulps); shift + sd * z is rounded as on the host (no fused multiply-add).
 * 1 <= K <= 1024; Q == 0 or P == 0 does nothing. One warp per (cell, level),
 * its lanes splitting the components: a quantile takes ~8 CDF evaluations,
 * a few percent 30-70, and the slowest warp sets the time.
 */
int toto_k_mixture_stats(double *mean_out, double *q_out, const void *probs, const void *df,
                         const void *loc, const void *scale, toto_k_dtype param_dtype,
                         const double *shift, const double *sd, const double *levels, int64_t Q,
                         int64_t P, int64_t K, int64_t n_levels, void *stream);

/*
 * Quantiles and mean of sampled paths, per column, as model/result_stats.cc:
 * samples [n, m] with row stride ld >= m (F32 or F64), levels [n_levels]
 * float64 on the device (clamped to [0, 1]); q_out [n_levels, m] and mean_out
 * [m] (may be NULL) in the samples' dtype.
 *     sorted = the column sorted ascending; pos = level * (n - 1);
 *     lo = floor(pos); hi = min(lo + 1, n - 1);
 *     q = sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo])   (float64,
 *         no fused multiply-add, so float64 input gives the CPU's bits)
 *     mean = sum / n, summed in float64 (in a different order than the CPU).
 * Columns sort in shared memory while they fit (n up to 16384 for F64, 32768
 * for F32 on an H100); longer ones use a radix select in global memory.
 * NaN sorts after +inf. n >= 1.
 */
int toto_k_quantiles(void *q_out, void *mean_out, const void *samples, toto_k_dtype dtype,
                     int64_t n, int64_t m, int64_t ld, const void *levels, int64_t n_levels,
                     void *stream);

/*
 * The causal patch scaler (TOTO.md step 2, model/scaler.cc's Scaler) in one
 * kernel, in float64. x [M, T] float64, T a positive multiple of P,
 * 1 <= P <= 2048; w [M, T] float64 0/1 weights, or NULL: every step observed.
 * state [M, 6] float64, in and out: (sum_w, sum_wx, m2, last_mean, lo, hi)
 * at the last step seen, Scaler's sum_w_, sum_wx_, m2_, last_mean_, lo_, hi_.
 *   continuing == 0 (Scaler::init): lo, hi from the global statistics of
 *     this x, w over all T steps:
 *       count = max(sum w, 1); mean = nan_to_num(sum(w x) / count);
 *       var = sum(((x - mean) w)^2) / count; g = sqrt(var + 0.1);
 *       lo = max(g 10^-exponent, 0.1); hi = g 10^exponent
 *     (computed and stored whatever stabilize); running sums start at 0,
 *     the mean before the first step is 0.
 *   continuing != 0 (Scaler::extend): running sums and the mean before the
 *     first step from state; lo, hi read from state, left as they are.
 * Per step t: sum_w, sum_wx running sums; count = max(sum_w, 1);
 *   mean_t = sum_wx / count; m2 += (x_t - mean_{t-1}) (x_t - mean_t) w_t;
 *   scale_t = sqrt(m2 / max(count - 1, 1) + 0.1), clamped to [lo, hi] when
 *   stabilize. state is left at the last step.
 * mean_out, scale_out [M, T/P] float64 (each may be NULL): (mean, scale) at
 * the last step of each patch. z_out [M, T] (F32 or BF16; may be NULL):
 * (x - mean_p) / scale_p with the statistics of the step's patch p (padded
 * and missing steps too), in float64, rounded once. z_dtype must be F32 or
 * BF16 even when z_out is NULL. M == 0 does nothing.
 * Sums run in another order than torch.cumsum: equal to rounding (~1e-13 of
 * max |x| in float64).
 */
int toto_k_patch_scaler(void *z_out, toto_k_dtype z_dtype, double *mean_out, double *scale_out,
                        double *state, const double *x, const double *w, int64_t M, int64_t T,
                        int64_t P, int continuing, int stabilize, double exponent, void *stream);

/*
 * One decoding step's attention of a TIME layer (Network::attention_step
 * after the projection), in one kernel. Every tensor is dtype (F32 or BF16);
 * pos_index, prefix_len and step are int64 scalars on the device, so the
 * call can be captured once in a CUDA graph and replayed every step.
 *   qkv [Q, 3*H*d]: row q = n * V + v (path n, variate v); feature
 *     which*H*d + h*d + j is element j of head h of the query (which 0),
 *     key (1), value (2).
 *   cos_tab, sin_tab [n_pos, 2, d], read at p = *pos_index (< n_pos): entry
 *     [p][0] rotates the query, [p][1] the key (xPos scales included):
 *     rot(x)_i = x_i cos_i + x_(i xor 1) sin_i (sin carries the sign). The
 *     query is not scaled again (the weights carry 1/sqrt(d)).
 *   prefix_k, prefix_v [V, H, S, d]: the context's rotated keys and values,
 *     shared by the paths of variate v = q % V; positions < *prefix_len count
 *     (clamped to [0, S]).
 *   suffix_k, suffix_v [Q, H, T, d]: this step writes its rotated key
 *     (rounded to dtype) and its value at index *step (clamped to [0, T-1]),
 *     and nothing else; positions <= *step count, this step's key as stored.
 *   out [Q, H*d] (h*d + j): softmax over the counted positions of
 *     (rotated q) . key, times the values, summed; scores, softmax and the
 *     sum in float32, the output rounded once. out must not overlap inputs.
 * d even, 2..256; H, V, S, T >= 1; Q % V == 0 (Q == 0 does nothing). d == 64
 * with 16-byte aligned tensors takes the fast path (a lane per path, the
 * prefix read once per 32 paths); other shapes one warp per (row, head).
 */
int toto_k_decode_attention(void *out, const void *qkv, toto_k_dtype dtype, const void *cos_tab,
                            const void *sin_tab, const int64_t *pos_index, const void *prefix_k,
                            const void *prefix_v, const int64_t *prefix_len, void *suffix_k,
                            void *suffix_v, const int64_t *step, int64_t Q, int64_t V, int64_t H,
                            int64_t d, int64_t S, int64_t T, void *stream);

/*
 * The mixture head's nonlinearities (Network::head after its product), in
 * float32: z [M, 4, P, K] (F32 or BF16) holds, for row m and step p, the
 * pre-activations of the degrees of freedom, locations, scales and mixture
 * logits (z[m][which][p][k]); outputs are float32 [M, P, K]:
 *     df = 2 + max(softplus(z0), eps)    loc = z1
 *     scale = max(softplus(z2), eps)     probs = softmax over k of z3
 * softplus(x) = x > 20 ? x : log1p(exp(x)), libtorch's with beta 1. Nothing
 * is rounded to bfloat16 on the way (libtorch on a bfloat16 network rounds
 * after each operation). 1 <= K <= 4096; M == 0 does nothing.
 */
int toto_k_mixture_head(float *df, float *loc, float *scale, float *probs, const void *z,
                        toto_k_dtype z_dtype, int64_t M, int64_t P, int64_t K, float eps,
                        void *stream);

/*
 * Stages a sampled-path job into a path bucket (model/path_graphs.cc) in one
 * launch: N paths of Vb variates, rows q = n * Vb + v, of which the job has
 * V <= Vb real variates; vi = v < V ? v : 0 (padded variates copy variate 0,
 * finite values, but get group ids of their own):
 *   head_dst[k] + q * PK      <- PK float32 at head_src[k] + vi * head_vstride[k]
 *   mean_dst[q], scale_dst[q] <- mean_src[vi * mean_stride], scale_src[...]
 *   state_dst[q * 6 + j]      <- state_src[j * state_sj + vi * state_sv]
 *   ids_dst[q]   <- v < V ? ids_src[v * ids_stride] : -v - 2^40
 *   keys_dst[q]  <- key;   rows_dst[q] <- (first_path + n) * V + v
 *   *prefix_len_dst <- prefix_len;   *step_dst <- 0;   *mean_only_dst <- mean_only
 * Strides count elements. Every destination is dense; no source may overlap
 * a destination. float4 copies when PK, the head strides and pointers allow.
 * N == 0 writes nothing.
 */
typedef struct toto_k_path_stage {
    const float *head_src[4];
    int64_t head_vstride[4];
    float *head_dst[4];
    int64_t PK;
    const double *mean_src, *scale_src, *state_src;
    int64_t mean_stride, scale_stride, state_sj, state_sv;
    const int64_t *ids_src;
    int64_t ids_stride;
    double *mean_dst, *scale_dst, *state_dst;
    int64_t *ids_dst, *keys_dst, *rows_dst, *prefix_len_dst, *step_dst, *mean_only_dst;
    int64_t key, first_path, prefix_len, mean_only, N, Vb, V;
} toto_k_path_stage;

int toto_k_stage_paths(const toto_k_path_stage *s, void *stream);

/*
 * Up to TOTO_K_MAX_COPIES copies of the same geometry in one launch: for
 * each copy k and every a < rows_a, b < rows_b, row_bytes bytes from
 *     src[k] + a * src_sa + b * src_sb   to   dst[k] + a * dst_sa + b * dst_sb
 * (strides in bytes; regions must not overlap). In 16-byte units when every
 * pointer, stride and row_bytes allows, else the widest unit that divides
 * them all. The path graphs copy each TIME layer's context keys and values
 * [V, heads, S, d] into their bucket with it.
 */
#define TOTO_K_MAX_COPIES 64
typedef struct toto_k_strided_copies {
    int n;
    const void *src[TOTO_K_MAX_COPIES];
    void *dst[TOTO_K_MAX_COPIES];
    int64_t rows_a, rows_b;
    int64_t src_sa, src_sb, dst_sa, dst_sb, row_bytes;
} toto_k_strided_copies;

int toto_k_copy_strided(const toto_k_strided_copies *c, void *stream);

#ifdef __cplusplus
}
#endif

#endif
