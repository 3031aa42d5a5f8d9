/*
 * fuzz_config.c - libFuzzer harness for toto_config_load() (model/config.c).
 * The input is a whole config.json, read from a private temp folder.
 *
 * Every later allocation of the model is sized from this config, so for an
 * accepted file it aborts unless every field is inside the bounds config.c
 * promises (dimensions 1..65536, layers and components 1..1024, the exponent
 * in 0..300), the relations hold (num_heads divides embed_dim into an even
 * head dim; spacewise_every_n_layers is -1 or divides num_layers), and the
 * values are the file's own (read again here with jansson). A refused file
 * must leave the caller's struct untouched, answer TOTO_EFORMAT and name the
 * file in its message. Reading the same file twice must give the same.
 */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "fuzz_tmp.h"
#include "toto.h"

/* object[key] as an int when it is an integer; else fallback. */
static long long int_or(const json_t *object, const char *key, long long fallback) {
    const json_t *v = json_object_get(object, key);
    return json_is_integer(v) ? json_integer_value(v) : fallback;
}

static void check_accepted(const toto_config *c, const uint8_t *data, size_t size) {
    CHECK(c->patch_size >= 1 && c->patch_size <= 65536);
    CHECK(c->embed_dim >= 1 && c->embed_dim <= 65536);
    CHECK(c->num_layers >= 1 && c->num_layers <= 1024);
    CHECK(c->num_heads >= 1 && c->num_heads <= 65536);
    CHECK(c->mlp_hidden_dim >= 1 && c->mlp_hidden_dim <= 65536);
    CHECK(c->k_components >= 1 && c->k_components <= 1024);
    CHECK(c->embed_dim % c->num_heads == 0 && (c->embed_dim / c->num_heads) % 2 == 0);
    int n = c->spacewise_every_n_layers;
    CHECK(n == -1 || (n >= 1 && c->num_layers % n == 0));
    CHECK(isfinite(c->scale_factor_exponent) && c->scale_factor_exponent >= 0 &&
          c->scale_factor_exponent <= 300);

    json_t *root = json_loadb((const char *)data, size, 0, NULL);
    CHECK(json_is_object(root));
    CHECK(int_or(root, "patch_size", -2) == c->patch_size);
    CHECK(int_or(root, "stride", c->patch_size) == c->patch_size);
    CHECK(int_or(root, "embed_dim", -2) == c->embed_dim);
    CHECK(int_or(root, "num_layers", -2) == c->num_layers);
    CHECK(int_or(root, "num_heads", -2) == c->num_heads);
    CHECK(int_or(root, "mlp_hidden_dim", -2) == c->mlp_hidden_dim);
    CHECK(int_or(root, "spacewise_every_n_layers", -2) == n);
    CHECK(int_or(json_object_get(root, "output_distribution_kwargs"), "k_components", -2) ==
          c->k_components);
    const json_t *first = json_object_get(root, "spacewise_first");
    CHECK(c->spacewise_first == (first ? json_is_true(first) : true));
    const json_t *global = json_object_get(root, "stabilize_with_global");
    CHECK(c->stabilize_with_global == (global ? json_is_true(global) : true));
    const json_t *e = json_object_get(root, "scale_factor_exponent");
    CHECK(c->scale_factor_exponent == (e ? json_number_value(e) : 10.0));
    json_decref(root);
}

/* Field by field: the structs' padding bytes are not part of the result. */
static bool same_config(const toto_config *a, const toto_config *b) {
    return a->patch_size == b->patch_size && a->embed_dim == b->embed_dim &&
           a->num_layers == b->num_layers && a->num_heads == b->num_heads &&
           a->mlp_hidden_dim == b->mlp_hidden_dim &&
           a->spacewise_every_n_layers == b->spacewise_every_n_layers &&
           a->spacewise_first == b->spacewise_first && a->k_components == b->k_components &&
           a->stabilize_with_global == b->stabilize_with_global &&
           a->scale_factor_exponent == b->scale_factor_exponent;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512], err[512] = "";
    fuzz_tmp_write("config.json", data, size, path, sizeof path);
    toto_config cfg, before;
    memset(&cfg, 0xa5, sizeof cfg);
    memcpy(&before, &cfg, sizeof cfg);
    int rc = toto_config_load(path, &cfg, err, sizeof err);
    if (rc != TOTO_OK) {
        CHECK(rc == TOTO_EFORMAT);
        CHECK(memcmp(&cfg, &before, sizeof cfg) == 0); /* untouched on failure */
        CHECK(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
        return 0;
    }
    check_accepted(&cfg, data, size);
    toto_config again;
    CHECK(toto_config_load(path, &again, err, sizeof err) == TOTO_OK);
    CHECK(same_config(&cfg, &again));
    return 0;
}
