/*
 * test_config.c - toto_config_load(): both fixture configs load with their
 * values, defaults apply to optional fields, and every malformed config is
 * refused with TOTO_EFORMAT (TOTO_EIO for an unreadable file) and a message
 * naming the file and the field.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "toto.h"

/* A temporary directory and the fixture config that variants start from. */
typedef struct config_env {
    char dir[64];
    char path[128]; /* where variants are written */
    char base_path[512];
} config_env;

/* The fixture config with key set to value (NULL removes it); returns a new reference. */
static json_t *variant(const config_env *env, const char *key, json_t *value) {
    json_error_t jerr;
    json_t *root = json_load_file(env->base_path, 0, &jerr);
    if (root == NULL) {
        tap_diag("cannot load %s: %s", env->base_path, jerr.text);
        json_decref(value);
        return NULL;
    }
    if (value == NULL)
        json_object_del(root, key);
    else
        json_object_set_new(root, key, value);
    return root;
}

static bool write_json(const config_env *env, json_t *root) {
    bool ok = root != NULL && json_dump_file(root, env->path, JSON_INDENT(2)) == 0;
    json_decref(root);
    return ok;
}

static bool write_text(const config_env *env, const char *text) {
    FILE *out = fopen(env->path, "w");
    bool ok = out != NULL && fputs(text, out) >= 0;
    if (out != NULL && fclose(out) != 0)
        ok = false;
    return ok;
}

/* Loading path must fail with code and a message naming path and fragment. */
static void expect_refusal_at(const char *path, int code, const char *what, const char *fragment) {
    char err[512] = "";
    toto_config cfg = {.patch_size = -7};
    int rc = toto_config_load(path, &cfg, err, sizeof err);
    bool ok = rc == code && strstr(err, path) != NULL && strstr(err, fragment) != NULL &&
              cfg.patch_size == -7; /* untouched on failure */
    if (!tap_check(ok, "refuses %s", what))
        tap_diag("rc %d, message \"%s\"", rc, err);
}

/* The fixture config with key set to value must be refused naming fragment. */
static void expect_variant_refusal(const config_env *env, const char *what, const char *key,
                                   json_t *value, const char *fragment) {
    if (!write_json(env, variant(env, key, value)))
        tap_check(0, "refuses %s (could not write the variant)", what);
    else
        expect_refusal_at(env->path, TOTO_EFORMAT, what, fragment);
}

static bool load_ok(const char *path, toto_config *cfg) {
    char err[512] = "";
    int rc = toto_config_load(path, cfg, err, sizeof err);
    if (rc != TOTO_OK)
        tap_diag("%s", err);
    return rc == TOTO_OK;
}

/* ---- accepted configs --------------------------------------------------- */

static void test_fixtures(const char *data_dir) {
    char path[512];
    toto_config cfg;
    snprintf(path, sizeof path, "%s/fixtures/tiny-a/config.json", data_dir);
    bool ok = load_ok(path, &cfg);
    tap_check(ok && cfg.patch_size == 16 && cfg.embed_dim == 64 && cfg.num_layers == 4 &&
                  cfg.num_heads == 4 && cfg.mlp_hidden_dim == 128 &&
                  cfg.spacewise_every_n_layers == 2 && cfg.spacewise_first &&
                  cfg.k_components == 4 && cfg.stabilize_with_global &&
                  cfg.scale_factor_exponent == 10.0,
              "tiny-a config: P=16 D=64 4 layers 4 heads H=128 n=2 first K=4");
    snprintf(path, sizeof path, "%s/fixtures/tiny-b/config.json", data_dir);
    ok = load_ok(path, &cfg);
    tap_check(ok && cfg.patch_size == 64 && cfg.embed_dim == 96 && cfg.num_layers == 3 &&
                  cfg.num_heads == 6 && cfg.mlp_hidden_dim == 192 &&
                  cfg.spacewise_every_n_layers == 3 && !cfg.spacewise_first &&
                  cfg.k_components == 8 && cfg.stabilize_with_global &&
                  cfg.scale_factor_exponent == 10.0,
              "tiny-b config: P=64 D=96 3 layers 6 heads H=192 n=3 not first K=8");
}

static void test_defaults(const config_env *env) {
    json_t *root = variant(env, "stride", NULL);
    json_object_del(root, "spacewise_first");
    json_object_del(root, "stabilize_with_global");
    json_object_del(root, "scale_factor_exponent");
    json_object_del(root, "scaler_cls");
    json_object_del(root, "output_distribution_classes");
    json_object_set_new(root, "some_future_field", json_string("ignored"));
    toto_config cfg;
    bool ok = write_json(env, root) && load_ok(env->path, &cfg);
    tap_check(ok && cfg.patch_size == 16 && cfg.spacewise_first && cfg.stabilize_with_global &&
                  cfg.scale_factor_exponent == 10.0,
              "optional fields default (stride = patch_size, true, true, 10.0); extras ignored");
    ok = write_json(env, variant(env, "spacewise_every_n_layers", json_integer(-1))) &&
         load_ok(env->path, &cfg);
    tap_check(ok && cfg.spacewise_every_n_layers == -1, "spacewise_every_n_layers -1 accepted");
    ok = write_json(env, variant(env, "scale_factor_exponent", json_integer(8))) &&
         load_ok(env->path, &cfg);
    tap_check(ok && cfg.scale_factor_exponent == 8.0, "an integer scale_factor_exponent accepted");
}

/* ---- refusals ----------------------------------------------------------- */

static void test_missing_and_types(const config_env *env) {
    expect_variant_refusal(env, "a missing embed_dim", "embed_dim", NULL,
                           "field 'embed_dim' is missing");
    expect_variant_refusal(env, "a missing output_distribution_kwargs",
                           "output_distribution_kwargs", NULL, "'output_distribution_kwargs'");
    expect_variant_refusal(env, "a missing k_components", "output_distribution_kwargs",
                           json_object(), "'output_distribution_kwargs.k_components' is missing");
    expect_variant_refusal(env, "num_heads as a string", "num_heads", json_string("4"),
                           "field 'num_heads' must be an integer, found a string");
    expect_variant_refusal(env, "patch_size as a real", "patch_size", json_real(16.0),
                           "field 'patch_size' must be an integer");
    expect_variant_refusal(env, "spacewise_first as a number", "spacewise_first", json_integer(1),
                           "field 'spacewise_first' must be a boolean");
    expect_variant_refusal(env, "scale_factor_exponent as a string", "scale_factor_exponent",
                           json_string("10"), "field 'scale_factor_exponent' must be a number");
    expect_variant_refusal(env, "k_components 0", "output_distribution_kwargs",
                           json_pack("{s:i}", "k_components", 0),
                           "'output_distribution_kwargs.k_components' is 0");
}

static void test_bounds_and_relations(const config_env *env) {
    json_t *root = variant(env, "embed_dim", json_integer(96));
    json_object_set_new(root, "num_heads", json_integer(5));
    if (write_json(env, root))
        expect_refusal_at(env->path, TOTO_EFORMAT, "heads not dividing embed_dim",
                          "field 'num_heads' must divide 'embed_dim' (96 % 5 != 0)");
    expect_variant_refusal(env, "an odd head dim", "num_heads", json_integer(64), "must be even");
    expect_variant_refusal(env, "stride != patch_size", "stride", json_integer(8),
                           "field 'stride' (8) must equal 'patch_size' (16)");
    expect_variant_refusal(env, "spacewise_every_n_layers not dividing num_layers",
                           "spacewise_every_n_layers", json_integer(3),
                           "'spacewise_every_n_layers' must be -1 or a positive divisor");
    expect_variant_refusal(env, "spacewise_every_n_layers 0", "spacewise_every_n_layers",
                           json_integer(0), "'spacewise_every_n_layers'");
    expect_variant_refusal(env, "spacewise_every_n_layers -2", "spacewise_every_n_layers",
                           json_integer(-2), "'spacewise_every_n_layers' is -2");
    expect_variant_refusal(env, "a huge embed_dim", "embed_dim", json_integer(1 << 24),
                           "field 'embed_dim' is 16777216, expected 1..65536");
    expect_variant_refusal(env, "a huge num_layers", "num_layers", json_integer(100000),
                           "field 'num_layers'");
    expect_variant_refusal(env, "a negative patch_size", "patch_size", json_integer(-16),
                           "field 'patch_size' is -16");
    expect_variant_refusal(env, "a scale_factor_exponent beyond double range",
                           "scale_factor_exponent", json_real(400.0), "'scale_factor_exponent'");
}

static void test_classes(const config_env *env) {
    expect_variant_refusal(env, "another scaler class", "scaler_cls",
                           json_string("<class 'model.scaler.StdMeanScaler'>"),
                           "field 'scaler_cls' is \"<class 'model.scaler.StdMeanScaler'>\"");
    expect_variant_refusal(env, "two output distribution classes", "output_distribution_classes",
                           json_pack("[ss]", "MixtureOfStudentTsOutput", "Other"),
                           "'output_distribution_classes' must be a one-element array");
    expect_variant_refusal(env, "another output distribution class", "output_distribution_classes",
                           json_pack("[s]", "<class 'model.distribution.NormalOutput'>"),
                           "'output_distribution_classes[0]'");
}

static void test_files(const config_env *env) {
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no-such-config.json", env->dir);
    expect_refusal_at(missing, TOTO_EIO, "a nonexistent file (TOTO_EIO)", "cannot open");
    if (write_text(env, "{\"patch_size\": 16,"))
        expect_refusal_at(env->path, TOTO_EFORMAT, "invalid JSON", "not valid JSON");
    if (write_text(env, "[16, 64]"))
        expect_refusal_at(env->path, TOTO_EFORMAT, "a JSON array", "JSON object");
    if (write_text(env, "{\"patch_size\": 16, \"patch_size\": 32}"))
        expect_refusal_at(env->path, TOTO_EFORMAT, "a repeated field", "duplicate");
    toto_config cfg;
    char tiny[8];
    int rc = toto_config_load(missing, &cfg, tiny, sizeof tiny);
    tap_check(rc == TOTO_EIO && strlen(tiny) == sizeof tiny - 1,
              "a short error buffer is filled and terminated");
    tap_check(toto_config_load(missing, &cfg, NULL, 0) == TOTO_EIO, "a NULL error buffer is fine");
}

int main(void) {
    const char *data_dir = getenv("TOTO_TEST_DATA");
    config_env env;
    snprintf(env.dir, sizeof env.dir, "/tmp/toto-test-config-XXXXXX");
    if (!tap_check(data_dir != NULL, "TOTO_TEST_DATA is set") ||
        !tap_check(mkdtemp(env.dir) != NULL, "creates a temporary directory"))
        return tap_done();
    snprintf(env.path, sizeof env.path, "%s/config.json", env.dir);
    snprintf(env.base_path, sizeof env.base_path, "%s/fixtures/tiny-a/config.json", data_dir);
    test_fixtures(data_dir);
    test_defaults(&env);
    test_missing_and_types(&env);
    test_bounds_and_relations(&env);
    test_classes(&env);
    test_files(&env);
    unlink(env.path);
    rmdir(env.dir);
    return tap_done();
}
