/*
 * make_checkpoint.c - toto-make-checkpoint: writes a Toto 1.0 checkpoint
 * directory (config.json + model.safetensors) with random weights, for
 * tests and benchmarks of shapes no published checkpoint has.
 *
 * Weights are drawn like a freshly initialised transformer (scaled normal
 * linear weights, small biases, unit norm scales, zero head biases), so
 * forecasts stay finite and of ordinary size. The same seed always gives the
 * same bytes: the generator is a local splitmix64 with Box-Muller normals.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "safetensors.h"
#include "toto.h"

#define USAGE                                                                                      \
    "usage: toto-make-checkpoint --config FILE_OR_PRESET --out DIR [--seed N]\n"                   \
    "                            [--dtype F32|BF16] [--mlp-names plain|fused]\n"                   \
    "presets: published (the 151M Toto-Open-Base-1.0 shape), small\n"

/* Beyond this a random checkpoint is a mistake, not a test fixture (16 GiB in F32). */
#define MAX_PARAMS ((int64_t)1 << 32)

typedef struct options {
    const char *config; /* preset name or config.json path */
    const char *out_dir;
    uint64_t seed;
    safetensors_dtype dtype; /* F32 or BF16 */
    bool fused_mlp_names;
} options;

/* splitmix64 stream plus the spare normal Box-Muller makes in pairs. */
typedef struct rng {
    uint64_t state;
    bool has_spare;
    double spare;
} rng;

/* How a tensor's values are drawn. */
typedef enum init_kind {
    INIT_LINEAR_WEIGHT, /* N(0, 1) * 0.5 / sqrt(fan_in) */
    INIT_SMALL_BIAS,    /* N(0, 1) * 0.01 */
    INIT_ONES,
    INIT_ZEROS,
} init_kind;

/* The tensors being built; names and data are owned here. */
typedef struct tensor_list {
    safetensors_tensor *items;
    size_t count;
    size_t capacity;
    int64_t num_params;
} tensor_list;

/* ---- random numbers ----------------------------------------------------- */

static uint64_t rng_next(rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]: never 0, so log() below is finite. */
static double rng_uniform(rng *r) {
    return (double)((rng_next(r) >> 11) + 1) * 0x1.0p-53;
}

static double rng_normal(rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    double radius = sqrt(-2.0 * log(rng_uniform(r)));
    double angle = 2.0 * M_PI * rng_uniform(r);
    r->spare = radius * sin(angle);
    r->has_spare = true;
    return radius * cos(angle);
}

/* ---- encoding ----------------------------------------------------------- */

static uint32_t float_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

/* float -> bfloat16, rounding to nearest, ties to even; NaN stays a quiet NaN. */
static uint16_t float_to_bf16(float value) {
    uint32_t bits = float_bits(value);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
        return (uint16_t)((bits >> 16) | 0x0040u);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* Stores value at element index of a little-endian buffer of dtype (F32 or BF16). */
static void store_value(uint8_t *buffer, size_t index, safetensors_dtype dtype, float value) {
    if (dtype == SAFETENSORS_BF16) {
        uint16_t half = float_to_bf16(value);
        buffer[2 * index] = (uint8_t)half;
        buffer[2 * index + 1] = (uint8_t)(half >> 8);
        return;
    }
    uint32_t bits = float_bits(value);
    for (int i = 0; i < 4; i++)
        buffer[4 * index + (size_t)i] = (uint8_t)(bits >> (8 * i));
}

static float draw_value(rng *r, init_kind kind, int64_t fan_in) {
    switch (kind) {
    case INIT_LINEAR_WEIGHT:
        return (float)(rng_normal(r) * 0.5 / sqrt((double)fan_in));
    case INIT_SMALL_BIAS:
        return (float)(rng_normal(r) * 0.01);
    case INIT_ONES:
        return 1.0f;
    case INIT_ZEROS:
        break;
    }
    return 0.0f;
}

/* ---- the tensor list ---------------------------------------------------- */

static void tensor_list_free(tensor_list *list) {
    for (size_t i = 0; i < list->count; i++) {
        free((char *)list->items[i].name);
        free((void *)list->items[i].data);
    }
    free(list->items);
}

static int tensor_list_grow(tensor_list *list) {
    if (list->count < list->capacity)
        return 0;
    size_t capacity = list->capacity ? 2 * list->capacity : 64;
    safetensors_tensor *items = realloc(list->items, capacity * sizeof *items);
    if (items == NULL)
        return -1;
    list->items = items;
    list->capacity = capacity;
    return 0;
}

/*
 * Appends a [rows] (cols == 0) or [rows, cols] tensor named "model." + name,
 * filled by kind. fan_in for linear weights is cols.
 */
static int add_tensor(tensor_list *list, rng *r, safetensors_dtype dtype, const char *name,
                      int64_t rows, int64_t cols, init_kind kind) {
    int64_t numel = cols > 0 ? rows * cols : rows; /* bounded by the MAX_PARAMS check */
    char full_name[256];
    snprintf(full_name, sizeof full_name, "model.%s", name);
    uint8_t *data = malloc((size_t)numel * safetensors_dtype_size(dtype));
    char *owned_name = strdup(full_name);
    if (data == NULL || owned_name == NULL || tensor_list_grow(list) != 0) {
        free(data);
        free(owned_name);
        return -1;
    }
    for (int64_t i = 0; i < numel; i++)
        store_value(data, (size_t)i, dtype, draw_value(r, kind, cols));
    safetensors_tensor *tensor = &list->items[list->count++];
    memset(tensor, 0, sizeof *tensor);
    tensor->name = owned_name;
    tensor->dtype = dtype;
    tensor->ndim = cols > 0 ? 2 : 1;
    tensor->shape[0] = rows;
    tensor->shape[1] = cols;
    tensor->data = data;
    tensor->nbytes = (size_t)numel * safetensors_dtype_size(dtype);
    list->num_params += numel;
    return 0;
}

/* A Linear(in -> out) layer: weight [out, in] and bias [out]. */
static int add_linear(tensor_list *list, rng *r, safetensors_dtype dtype, const char *prefix,
                      int64_t out, int64_t in, init_kind bias_kind) {
    char name[200];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if (add_tensor(list, r, dtype, name, out, in, INIT_LINEAR_WEIGHT) != 0)
        return -1;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return add_tensor(list, r, dtype, name, out, 0, bias_kind);
}

static int add_layer(tensor_list *list, rng *r, const options *opts, const toto_config *cfg,
                     int layer) {
    int64_t d = cfg->embed_dim;
    int64_t h = cfg->mlp_hidden_dim;
    safetensors_dtype dt = opts->dtype;
    const char *mlp_in = opts->fused_mlp_names ? "mlp.0.w12" : "mlp.0";
    const char *mlp_out = opts->fused_mlp_names ? "mlp.0.w3" : "mlp.2";
    const char *parts[4] = {"norm1.scale", "norm2.scale", "attention.wQKV", "attention.wO"};
    char name[4][128];
    for (int i = 0; i < 4; i++)
        snprintf(name[i], sizeof name[i], "transformer.layers.%d.%s", layer, parts[i]);
    if (add_tensor(list, r, dt, name[0], d, 0, INIT_ONES) != 0 ||
        add_tensor(list, r, dt, name[1], d, 0, INIT_ONES) != 0 ||
        add_linear(list, r, dt, name[2], 3 * d, d, INIT_SMALL_BIAS) != 0 ||
        add_linear(list, r, dt, name[3], d, d, INIT_SMALL_BIAS) != 0)
        return -1;
    snprintf(name[0], sizeof name[0], "transformer.layers.%d.%s", layer, mlp_in);
    snprintf(name[1], sizeof name[1], "transformer.layers.%d.%s", layer, mlp_out);
    if (add_linear(list, r, dt, name[0], 2 * h, d, INIT_SMALL_BIAS) != 0 ||
        add_linear(list, r, dt, name[1], d, h, INIT_SMALL_BIAS) != 0)
        return -1;
    return 0;
}

/* Every tensor of TOTO.md's table, in the order the model uses them. */
static int build_tensors(tensor_list *list, const options *opts, const toto_config *cfg) {
    rng r = {.state = opts->seed};
    int64_t d = cfg->embed_dim;
    int64_t k = cfg->k_components;
    safetensors_dtype dt = opts->dtype;
    if (add_linear(list, &r, dt, "patch_embed.projection", d, cfg->patch_size, INIT_SMALL_BIAS))
        return -1;
    for (int layer = 0; layer < cfg->num_layers; layer++)
        if (add_layer(list, &r, opts, cfg, layer) != 0)
            return -1;
    if (add_linear(list, &r, dt, "unembed", d * cfg->patch_size, d, INIT_SMALL_BIAS) != 0)
        return -1;
    const char *heads[] = {"df", "loc_proj", "scale_proj", "mixture_weights"};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "output_distribution.%s", heads[i]);
        if (add_linear(list, &r, dt, name, k, d, INIT_ZEROS) != 0)
            return -1;
    }
    return 0;
}

/* Parameter count of a config, computed before allocating anything. */
static int64_t count_params(const toto_config *cfg) {
    int64_t p = cfg->patch_size, d = cfg->embed_dim, h = cfg->mlp_hidden_dim;
    int64_t per_layer =
        2 * d + (3 * d * d + 3 * d) + (d * d + d) + (2 * h * d + 2 * h) + (h * d + d);
    int64_t unembed = d * p * d + d * p;
    int64_t head = 4 * (cfg->k_components * d + cfg->k_components);
    return p * d + d + cfg->num_layers * per_layer + unembed + head;
}

/* ---- config.json -------------------------------------------------------- */

/* A double as Python's repr would write it: shortest round trip, always with a '.' or 'e'. */
static void format_python_float(char *buf, size_t len, double value) {
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(buf, len, "%.*g", precision, value);
        if (strtod(buf, NULL) == value)
            break;
    }
    if (strpbrk(buf, ".eEn") == NULL)
        strncat(buf, ".0", len - strlen(buf) - 1);
}

static int write_config_json(const char *path, const toto_config *cfg, char *err, size_t err_len) {
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        snprintf(err, err_len, "%s: cannot create: %s", path, strerror(errno));
        return -1;
    }
    char exponent[40];
    format_python_float(exponent, sizeof exponent, cfg->scale_factor_exponent);
    fprintf(out,
            "{\n  \"patch_size\": %d,\n  \"stride\": %d,\n  \"embed_dim\": %d,\n"
            "  \"num_layers\": %d,\n  \"num_heads\": %d,\n  \"mlp_hidden_dim\": %d,\n"
            "  \"dropout\": 0.1,\n  \"spacewise_every_n_layers\": %d,\n"
            "  \"spacewise_first\": %s,\n"
            "  \"scaler_cls\": \"<class 'model.scaler.CausalPatchStdMeanScaler'>\",\n"
            "  \"output_distribution_classes\": [\n"
            "    \"<class 'model.distribution.MixtureOfStudentTsOutput'>\"\n  ],\n"
            "  \"output_distribution_kwargs\": {\n    \"k_components\": %d\n  },\n"
            "  \"use_memory_efficient_attention\": true,\n  \"stabilize_with_global\": %s,\n"
            "  \"scale_factor_exponent\": %s\n}\n",
            cfg->patch_size, cfg->patch_size, cfg->embed_dim, cfg->num_layers, cfg->num_heads,
            cfg->mlp_hidden_dim, cfg->spacewise_every_n_layers,
            cfg->spacewise_first ? "true" : "false", cfg->k_components,
            cfg->stabilize_with_global ? "true" : "false", exponent);
    int write_failed = ferror(out);
    if (fclose(out) != 0 || write_failed) {
        snprintf(err, err_len, "%s: write failed: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- command line ------------------------------------------------------- */

static bool preset_config(const char *name, toto_config *cfg) {
    toto_config base = {
        .spacewise_first = true, .stabilize_with_global = true, .scale_factor_exponent = 10.0};
    if (strcmp(name, "published") == 0) {
        base.patch_size = 64, base.embed_dim = 768, base.num_layers = 12, base.num_heads = 12;
        base.mlp_hidden_dim = 3072, base.spacewise_every_n_layers = 12, base.k_components = 24;
    } else if (strcmp(name, "small") == 0) {
        base.patch_size = 16, base.embed_dim = 64, base.num_layers = 4, base.num_heads = 4;
        base.mlp_hidden_dim = 128, base.spacewise_every_n_layers = 2, base.k_components = 4;
    } else {
        return false;
    }
    *cfg = base;
    return true;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reports a command-line mistake; returns the usage exit status 2. */
static int usage_error(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "toto-make-checkpoint: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", USAGE);
    return 2;
}

static int parse_seed(const char *text, uint64_t *seed) {
    char *end;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-')
        return -1;
    *seed = value;
    return 0;
}

/* Handles one "--flag value" pair. Returns 0, or 2 after printing a usage error. */
static int parse_flag(options *opts, const char *flag, const char *value) {
    if (strcmp(flag, "--config") == 0) {
        opts->config = value;
    } else if (strcmp(flag, "--out") == 0) {
        opts->out_dir = value;
    } else if (strcmp(flag, "--seed") == 0) {
        if (parse_seed(value, &opts->seed) != 0)
            return usage_error("--seed must be a non-negative integer, got '%s'", value);
    } else if (strcmp(flag, "--dtype") == 0) {
        if (strcmp(value, "F32") != 0 && strcmp(value, "BF16") != 0)
            return usage_error("--dtype must be F32 or BF16, got '%s'", value);
        opts->dtype = strcmp(value, "F32") == 0 ? SAFETENSORS_F32 : SAFETENSORS_BF16;
    } else if (strcmp(flag, "--mlp-names") == 0) {
        if (strcmp(value, "plain") != 0 && strcmp(value, "fused") != 0)
            return usage_error("--mlp-names must be plain or fused, got '%s'", value);
        opts->fused_mlp_names = strcmp(value, "fused") == 0;
    } else {
        return usage_error("unknown option '%s'", flag);
    }
    return 0;
}

/* Returns 0 to run, 2 on a usage error, -1 after printing help. */
static int parse_args(int argc, char **argv, options *opts) {
    *opts = (options){.seed = 42, .dtype = SAFETENSORS_F32};
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            return -1;
        }
        if (i + 1 >= argc)
            return usage_error("option '%s' needs a value", argv[i]);
        int rc = parse_flag(opts, argv[i], argv[i + 1]);
        if (rc != 0)
            return rc;
    }
    if (opts->config == NULL || opts->out_dir == NULL)
        return usage_error("--config and --out are required");
    return 0;
}

/* ---- main --------------------------------------------------------------- */

static int resolve_config(const char *config, toto_config *cfg, char *err, size_t err_len) {
    if (preset_config(config, cfg))
        return 0;
    if (toto_config_load(config, cfg, err, err_len) != TOTO_OK)
        return -1;
    if (count_params(cfg) > MAX_PARAMS) {
        snprintf(err, err_len, "%s: %" PRId64 " parameters, more than the %" PRId64 " allowed",
                 config, count_params(cfg), MAX_PARAMS);
        return -1;
    }
    return 0;
}

static int write_weights(const char *path, const options *opts, const toto_config *cfg,
                         int64_t *num_params, char *err, size_t err_len) {
    tensor_list list = {0};
    int rc = -1;
    if (build_tensors(&list, opts, cfg) != 0) {
        snprintf(err, err_len, "%s: out of memory building the weights", path);
    } else {
        char seed_text[32];
        snprintf(seed_text, sizeof seed_text, "%" PRIu64, opts->seed);
        const char *meta[] = {"format", "pt",     "generator", "toto-make-checkpoint",
                              "seed",   seed_text};
        rc = safetensors_write(path, list.items, list.count, meta, 3, err, err_len);
        *num_params = list.num_params;
    }
    tensor_list_free(&list);
    return rc;
}

static int make_checkpoint(const options *opts, char *err, size_t err_len) {
    toto_config cfg;
    if (resolve_config(opts->config, &cfg, err, err_len) != 0)
        return -1;
    if (mkdir(opts->out_dir, 0777) != 0 && errno != EEXIST) {
        snprintf(err, err_len, "%s: cannot create directory: %s", opts->out_dir, strerror(errno));
        return -1;
    }
    size_t path_len = strlen(opts->out_dir) + sizeof "/model.safetensors";
    char *path = malloc(path_len);
    if (path == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    int64_t num_params = 0;
    snprintf(path, path_len, "%s/config.json", opts->out_dir);
    int rc = write_config_json(path, &cfg, err, err_len);
    snprintf(path, path_len, "%s/model.safetensors", opts->out_dir);
    if (rc == 0)
        rc = write_weights(path, opts, &cfg, &num_params, err, err_len);
    if (rc == 0)
        printf("toto-make-checkpoint: %" PRId64 " parameters (%s, seed %" PRIu64 ") -> %s\n",
               num_params, safetensors_dtype_name(opts->dtype), opts->seed, path);
    free(path);
    return rc;
}

int main(int argc, char **argv) {
    options opts;
    int rc = parse_args(argc, argv, &opts);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    char err[1024];
    if (make_checkpoint(&opts, err, sizeof err) != 0) {
        fprintf(stderr, "toto-make-checkpoint: %s\n", err);
        return 1;
    }
    return 0;
}
