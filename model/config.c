/*
 * config.c - toto_config_load(): reads a Hugging Face config.json for Toto
 * 1.0 and checks it thoroughly, because every later allocation is sized from
 * it. Bounds are generous for real models but keep a hostile file from
 * asking for absurd amounts of memory.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_kind.h"
#include "toto.h"

#define MAX_CONFIG_BYTES (1024 * 1024) /* a config.json is a few hundred bytes */
#define MAX_DIM          65536
#define MAX_LAYERS       1024
#define MAX_COMPONENTS   1024
#define MAX_EXPONENT     300.0 /* 10^e must stay finite in double */

/* The file being read and where its error goes. */
typedef struct config_reader {
    const char *path;
    char *err;
    size_t err_len;
} config_reader;

static int fail(const config_reader *reader, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes "path: message" into the reader's error buffer; returns TOTO_EFORMAT. */
static int fail(const config_reader *reader, const char *fmt, ...) {
    if (reader->err == NULL || reader->err_len == 0)
        return TOTO_EFORMAT;
    int used = snprintf(reader->err, reader->err_len, "%s: ", reader->path);
    if (used < 0 || (size_t)used >= reader->err_len)
        return TOTO_EFORMAT;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reader->err + used, reader->err_len - (size_t)used, fmt, ap);
    va_end(ap);
    return TOTO_EFORMAT;
}

/* Reads the whole file (bounded) and parses it. Returns TOTO_EIO if it can't be read. */
static int load_json(const config_reader *reader, json_t **out) {
    FILE *in = fopen(reader->path, "rb");
    if (in == NULL) {
        fail(reader, "cannot open: %s", strerror(errno));
        return TOTO_EIO;
    }
    char *text = malloc(MAX_CONFIG_BYTES + 1);
    if (text == NULL) {
        fclose(in);
        return fail(reader, "out of memory");
    }
    size_t len = fread(text, 1, MAX_CONFIG_BYTES + 1, in);
    int read_failed = ferror(in);
    fclose(in);
    int rc = TOTO_OK;
    if (read_failed) {
        fail(reader, "read failed");
        rc = TOTO_EIO;
    } else if (len > MAX_CONFIG_BYTES) {
        rc = fail(reader, "file is larger than %d bytes; not a config.json", MAX_CONFIG_BYTES);
    } else {
        json_error_t jerr;
        *out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (*out == NULL)
            rc = fail(reader, "not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                      jerr.column);
    }
    free(text);
    return rc;
}

/*
 * Reads object[key] as an integer in [min, max]. When absent, a required
 * field is an error and an optional one keeps *out. label names the field in
 * messages (it differs from key for nested fields).
 */
static int read_int(const config_reader *reader, const json_t *object, const char *key,
                    const char *label, bool required, long long min, long long max, int *out) {
    const json_t *value = json_object_get(object, key);
    if (value == NULL) {
        if (required)
            return fail(reader, "field '%s' is missing (expected an integer)", label);
        return TOTO_OK;
    }
    if (!json_is_integer(value))
        return fail(reader, "field '%s' must be an integer, found %s", label, json_kind(value));
    long long number = json_integer_value(value);
    if (number < min || number > max)
        return fail(reader, "field '%s' is %lld, expected %lld..%lld", label, number, min, max);
    *out = (int)number;
    return TOTO_OK;
}

/* Reads an optional boolean; *out keeps its default when absent. */
static int read_bool(const config_reader *reader, const json_t *root, const char *key, bool *out) {
    const json_t *value = json_object_get(root, key);
    if (value == NULL)
        return TOTO_OK;
    if (!json_is_boolean(value))
        return fail(reader, "field '%s' must be a boolean, found %s", key, json_kind(value));
    *out = json_is_true(value);
    return TOTO_OK;
}

static int read_exponent(const config_reader *reader, const json_t *root, double *out) {
    const char *key = "scale_factor_exponent";
    const json_t *value = json_object_get(root, key);
    if (value == NULL)
        return TOTO_OK;
    if (!json_is_number(value))
        return fail(reader, "field '%s' must be a number, found %s", key, json_kind(value));
    double number = json_number_value(value);
    if (!(number >= 0.0 && number <= MAX_EXPONENT))
        return fail(reader, "field '%s' is %g, expected 0..%g", key, number, MAX_EXPONENT);
    *out = number;
    return TOTO_OK;
}

/* The integer dimensions; stride defaults to patch_size and must equal it. */
static int read_dimensions(const config_reader *reader, const json_t *root, toto_config *cfg) {
    int rc;
    if ((rc = read_int(reader, root, "patch_size", "patch_size", true, 1, MAX_DIM,
                       &cfg->patch_size)) ||
        (rc =
             read_int(reader, root, "embed_dim", "embed_dim", true, 1, MAX_DIM, &cfg->embed_dim)) ||
        (rc = read_int(reader, root, "num_layers", "num_layers", true, 1, MAX_LAYERS,
                       &cfg->num_layers)) ||
        (rc =
             read_int(reader, root, "num_heads", "num_heads", true, 1, MAX_DIM, &cfg->num_heads)) ||
        (rc = read_int(reader, root, "mlp_hidden_dim", "mlp_hidden_dim", true, 1, MAX_DIM,
                       &cfg->mlp_hidden_dim)) ||
        (rc = read_int(reader, root, "spacewise_every_n_layers", "spacewise_every_n_layers", true,
                       -1, MAX_LAYERS, &cfg->spacewise_every_n_layers)))
        return rc;
    int stride = cfg->patch_size;
    if ((rc = read_int(reader, root, "stride", "stride", false, 1, MAX_DIM, &stride)))
        return rc;
    if (stride != cfg->patch_size)
        return fail(reader, "field 'stride' (%d) must equal 'patch_size' (%d)", stride,
                    cfg->patch_size);
    return TOTO_OK;
}

static int read_components(const config_reader *reader, const json_t *root, toto_config *cfg) {
    const char *key = "output_distribution_kwargs";
    const json_t *kwargs = json_object_get(root, key);
    if (kwargs == NULL)
        return fail(reader, "field '%s' is missing (expected an object with 'k_components')", key);
    if (!json_is_object(kwargs))
        return fail(reader, "field '%s' must be an object, found %s", key, json_kind(kwargs));
    return read_int(reader, kwargs, "k_components", "output_distribution_kwargs.k_components", true,
                    1, MAX_COMPONENTS, &cfg->k_components);
}

/* Upstream writes Python class reprs; only the class name matters. */
static int check_string_names(const config_reader *reader, const char *label, const json_t *value,
                              const char *class_name) {
    if (!json_is_string(value))
        return fail(reader, "field '%s' must be a string naming %s, found %s", label, class_name,
                    json_kind(value));
    if (strstr(json_string_value(value), class_name) == NULL)
        return fail(reader, "field '%s' is \"%s\", expected %s (the only one supported)", label,
                    json_string_value(value), class_name);
    return TOTO_OK;
}

static int check_classes(const config_reader *reader, const json_t *root) {
    const json_t *scaler = json_object_get(root, "scaler_cls");
    if (scaler != NULL) {
        int rc = check_string_names(reader, "scaler_cls", scaler, "CausalPatchStdMeanScaler");
        if (rc)
            return rc;
    }
    const char *key = "output_distribution_classes";
    const json_t *classes = json_object_get(root, key);
    if (classes == NULL)
        return TOTO_OK;
    if (!json_is_array(classes) || json_array_size(classes) != 1)
        return fail(reader, "field '%s' must be a one-element array, found %s", key,
                    json_is_array(classes) ? "an array of another size" : json_kind(classes));
    return check_string_names(reader, "output_distribution_classes[0]", json_array_get(classes, 0),
                              "MixtureOfStudentTsOutput");
}

/* Relations between fields: head split, rotary pairs, layer pattern. */
static int check_consistency(const config_reader *reader, const toto_config *cfg) {
    if (cfg->embed_dim % cfg->num_heads != 0)
        return fail(reader, "field 'num_heads' must divide 'embed_dim' (%d %% %d != 0)",
                    cfg->embed_dim, cfg->num_heads);
    int head_dim = cfg->embed_dim / cfg->num_heads;
    if (head_dim % 2 != 0)
        return fail(reader,
                    "head dim 'embed_dim' / 'num_heads' must be even for the rotary "
                    "embedding (%d / %d = %d)",
                    cfg->embed_dim, cfg->num_heads, head_dim);
    int n = cfg->spacewise_every_n_layers;
    if (n == 0 || (n > 0 && cfg->num_layers % n != 0))
        return fail(reader,
                    "field 'spacewise_every_n_layers' must be -1 or a positive divisor of "
                    "'num_layers' (%d), found %d",
                    cfg->num_layers, n);
    return TOTO_OK;
}

static int read_config(const config_reader *reader, const json_t *root, toto_config *cfg) {
    if (!json_is_object(root))
        return fail(reader, "must hold a JSON object, found %s", json_kind(root));
    int rc;
    if ((rc = read_dimensions(reader, root, cfg)) || (rc = read_components(reader, root, cfg)) ||
        (rc = read_bool(reader, root, "spacewise_first", &cfg->spacewise_first)) ||
        (rc = read_bool(reader, root, "stabilize_with_global", &cfg->stabilize_with_global)) ||
        (rc = read_exponent(reader, root, &cfg->scale_factor_exponent)) ||
        (rc = check_classes(reader, root)))
        return rc;
    return check_consistency(reader, cfg);
}

int toto_config_load(const char *path, toto_config *cfg, char *err, size_t err_len) {
    config_reader reader = {path, err, err_len};
    json_t *root = NULL;
    int rc = load_json(&reader, &root);
    if (rc != TOTO_OK)
        return rc;
    toto_config loaded = {
        .spacewise_first = true,
        .stabilize_with_global = true,
        .scale_factor_exponent = 10.0,
    };
    rc = read_config(&reader, root, &loaded);
    json_decref(root);
    if (rc == TOTO_OK)
        *cfg = loaded; /* the caller's struct changes only on success */
    return rc;
}
