/*
 * test_safetensors.c - the safetensors reader and writer: the reference
 * fixtures open with the expected tensors, a write/read round trip keeps
 * everything, every kind of malformed or truncated file is refused with a
 * message naming the file (and tensor), and toto-make-checkpoint's output
 * reads back as a valid checkpoint.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "safetensors.h"
#include "tap.h"
#include "toto.h"

/* ---- helpers ------------------------------------------------------------ */

/* dir/name into out; false if it did not fit (the temporary paths are short). */
static bool join_path(char *out, size_t len, const char *dir, const char *name) {
    int used = snprintf(out, len, "%s/%s", dir, name);
    return used >= 0 && (size_t)used < len;
}

/* Removes dir and everything below it (the test's own temporary files). */
static void remove_tree(const char *dir) {
    DIR *listing = opendir(dir);
    struct dirent *entry;
    while (listing != NULL && (entry = readdir(listing)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        char path[1024];
        struct stat st;
        join_path(path, sizeof path, dir, entry->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    if (listing != NULL)
        closedir(listing);
    rmdir(dir);
}

/* Writes bytes to path; false (and a diagnostic) on failure. */
static bool write_bytes(const char *path, const void *bytes, size_t len) {
    FILE *out = fopen(path, "wb");
    bool ok = out != NULL && fwrite(bytes, 1, len, out) == len;
    if (out != NULL && fclose(out) != 0)
        ok = false;
    if (!ok)
        tap_diag("cannot write %s: %s", path, strerror(errno));
    return ok;
}

/* Reads a whole file into a malloc'd buffer; NULL on failure. */
static uint8_t *read_bytes(const char *path, size_t *len) {
    FILE *in = fopen(path, "rb");
    if (in == NULL)
        return NULL;
    uint8_t *buffer = NULL;
    if (fseek(in, 0, SEEK_END) == 0) {
        long size = ftell(in);
        buffer = size >= 0 ? malloc((size_t)size + 1) : NULL;
        rewind(in);
        if (buffer != NULL && fread(buffer, 1, (size_t)size, in) != (size_t)size) {
            free(buffer);
            buffer = NULL;
        }
        *len = (size_t)size;
    }
    fclose(in);
    return buffer;
}

/* A file of: length field (as given), header text, then data_len zero bytes. */
static bool write_crafted(const char *path, uint64_t length_field, const char *header,
                          size_t data_len) {
    size_t header_len = strlen(header);
    size_t total = 8 + header_len + data_len;
    uint8_t *bytes = calloc(total, 1);
    if (bytes == NULL)
        return false;
    for (int i = 0; i < 8; i++)
        bytes[i] = (uint8_t)(length_field >> (8 * i));
    memcpy(bytes + 8, header, header_len);
    bool ok = write_bytes(path, bytes, total);
    free(bytes);
    return ok;
}

/* Opening path must fail with a message containing path and both fragments. */
static void expect_refusal(const char *path, const char *what, const char *fragment,
                           const char *fragment2) {
    char err[512] = "";
    safetensors_file *file = safetensors_open(path, err, sizeof err);
    bool ok = file == NULL && strstr(err, path) != NULL && strstr(err, fragment) != NULL &&
              (fragment2 == NULL || strstr(err, fragment2) != NULL);
    if (!tap_check(ok, "refuses %s", what))
        tap_diag("got %s, message \"%s\"", file ? "a file" : "NULL", err);
    safetensors_close(file);
}

/* A crafted header with data_len bytes of data must be refused. */
static void expect_header_refusal(const char *dir, const char *what, const char *header,
                                  size_t data_len, const char *fragment, const char *fragment2) {
    char path[512];
    join_path(path, sizeof path, dir, "crafted.safetensors");
    if (!write_crafted(path, strlen(header), header, data_len))
        tap_check(0, "refuses %s (could not write the file)", what);
    else
        expect_refusal(path, what, fragment, fragment2);
}

static bool shape_is(const safetensors_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim)
        return false;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i])
            return false;
    return true;
}

/* The tensor must exist with this dtype and 2-D (cols > 0) or 1-D shape. */
static void expect_tensor(const safetensors_file *file, const char *name, safetensors_dtype dtype,
                          int64_t rows, int64_t cols) {
    const safetensors_tensor *t = safetensors_find(file, name);
    int64_t shape[2] = {rows, cols};
    int ndim = cols > 0 ? 2 : 1;
    bool ok = t != NULL && t->dtype == dtype && shape_is(t, ndim, shape) &&
              t->nbytes == (size_t)(rows * (cols > 0 ? cols : 1)) * safetensors_dtype_size(dtype);
    char shape_text[64];
    if (cols > 0)
        snprintf(shape_text, sizeof shape_text, "[%lld, %lld]", (long long)rows, (long long)cols);
    else
        snprintf(shape_text, sizeof shape_text, "[%lld]", (long long)rows);
    tap_check(ok, "%s: %s is %s %s", safetensors_path(file), name, safetensors_dtype_name(dtype),
              shape_text);
}

static safetensors_file *open_fixture(const char *data_dir, const char *fixture, const char *name) {
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/fixtures/%s/%s", data_dir, fixture, name);
    safetensors_file *file = safetensors_open(path, err, sizeof err);
    if (!tap_check(file != NULL, "opens %s/%s", fixture, name))
        tap_diag("%s", err);
    return file;
}

/* ---- the fixtures ------------------------------------------------------- */

static void test_fixture_models(const char *data_dir) {
    safetensors_file *a = open_fixture(data_dir, "tiny-a", "model.safetensors");
    if (a != NULL) {
        tap_check(safetensors_count(a) == 52, "tiny-a model has 52 tensors (%zu)",
                  safetensors_count(a));
        expect_tensor(a, "model.transformer.layers.0.mlp.0.w12.weight", SAFETENSORS_F32, 256, 64);
        expect_tensor(a, "model.transformer.layers.3.mlp.0.w3.weight", SAFETENSORS_F32, 64, 128);
        expect_tensor(a, "model.unembed.weight", SAFETENSORS_F32, 1024, 64);
        expect_tensor(a, "model.output_distribution.df.bias", SAFETENSORS_F32, 4, 0);
        tap_check(safetensors_find(a, "model.nope") == NULL, "find of a missing name is NULL");
        tap_check(safetensors_at(a, safetensors_count(a)) == NULL, "at(count) is NULL");
        tap_check(safetensors_metadata(a, "format") == NULL, "no metadata gives NULL");
    }
    safetensors_close(a);
    safetensors_file *b = open_fixture(data_dir, "tiny-b", "model.safetensors");
    if (b != NULL) {
        tap_check(safetensors_count(b) == 42, "tiny-b model has 42 tensors (%zu)",
                  safetensors_count(b));
        expect_tensor(b, "model.transformer.layers.0.mlp.0.weight", SAFETENSORS_F32, 384, 96);
        expect_tensor(b, "model.transformer.layers.2.mlp.2.weight", SAFETENSORS_F32, 96, 192);
        expect_tensor(b, "model.patch_embed.projection.weight", SAFETENSORS_F32, 96, 64);
        tap_check(safetensors_find(b, "model.transformer.layers.0.mlp.0.w12.weight") == NULL,
                  "tiny-b has plain MLP names only");
    }
    safetensors_close(b);
}

static void test_fixture_case(const char *data_dir, const char *fixture, const char *horizon,
                              int64_t batch, int64_t variates, int64_t steps) {
    safetensors_file *file = open_fixture(data_dir, fixture, "case.safetensors");
    if (file == NULL)
        return;
    const char *length = safetensors_metadata(file, "prediction_length");
    tap_check(length != NULL && strcmp(length, horizon) == 0, "%s case: prediction_length %s",
              fixture, horizon);
    int64_t shape[3] = {batch, variates, steps};
    const safetensors_tensor *ids = safetensors_find(file, "id_mask");
    const safetensors_tensor *mask = safetensors_find(file, "padding_mask");
    const safetensors_tensor *series = safetensors_find(file, "series");
    tap_check(ids && ids->dtype == SAFETENSORS_I32 && shape_is(ids, 3, shape),
              "%s case: id_mask I32 [B,V,T]", fixture);
    tap_check(mask && mask->dtype == SAFETENSORS_U8 && shape_is(mask, 3, shape),
              "%s case: padding_mask U8 [B,V,T]", fixture);
    tap_check(series && series->dtype == SAFETENSORS_F64 &&
                  safetensors_numel(series) == batch * variates * steps,
              "%s case: series F64 with B*V*T elements", fixture);
    const safetensors_tensor *levels = safetensors_find(file, "sample_quantile_levels");
    double first = 0, last = 0;
    if (levels && levels->nbytes == 7 * sizeof(double)) {
        memcpy(&first, levels->data, sizeof first);
        memcpy(&last, (const uint8_t *)levels->data + 6 * sizeof last, sizeof last);
    }
    tap_check(first == 0.05 && last == 0.95, "%s case: quantile levels read 0.05 .. 0.95", fixture);
    safetensors_close(file);
}

/* ---- writing ------------------------------------------------------------ */

typedef struct round_trip_data {
    float weights[6];
    uint16_t halves[4];
    int64_t scalar;
    double deep;
} round_trip_data;

static void fill_round_trip(round_trip_data *d, safetensors_tensor *t) {
    *d = (round_trip_data){{1.5f, -2.0f, 3.25f, 0.0f, -0.5f, 1e-3f},
                           {0x3F80, 0xC000, 1, 0xFFFF},
                           -1234567890123LL,
                           3.141592653589793};
    memset(t, 0, 5 * sizeof *t);
    t[0] = (safetensors_tensor){"w", SAFETENSORS_F32, 2, {2, 3}, d->weights, sizeof d->weights};
    t[1] = (safetensors_tensor){"h", SAFETENSORS_BF16, 1, {4}, d->halves, sizeof d->halves};
    t[2] = (safetensors_tensor){"scalar", SAFETENSORS_I64, 0, {0}, &d->scalar, 8};
    t[3] = (safetensors_tensor){"empty", SAFETENSORS_U8, 2, {0, 5}, NULL, 0};
    t[4] = (safetensors_tensor){"deep", SAFETENSORS_F64, 8, {1, 1, 1, 1, 1, 1, 1, 1}, &d->deep, 8};
}

static bool same_tensor(const safetensors_tensor *a, const safetensors_tensor *b) {
    return a && b && strcmp(a->name, b->name) == 0 && a->dtype == b->dtype &&
           shape_is(a, b->ndim, b->shape) && a->nbytes == b->nbytes &&
           (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
}

static void check_round_trip_file(const char *path, const safetensors_tensor *written) {
    char err[512] = "";
    safetensors_file *file = safetensors_open(path, err, sizeof err);
    if (!tap_check(file != NULL, "round trip: the written file opens"))
        tap_diag("%s", err);
    if (file == NULL)
        return;
    bool all_same = safetensors_count(file) == 5;
    for (size_t i = 0; all_same && i < 5; i++)
        all_same = same_tensor(safetensors_at(file, i), &written[i]);
    tap_check(all_same, "round trip: names in order, dtypes, shapes and bytes kept");
    const char *a = safetensors_metadata(file, "alpha");
    const char *b = safetensors_metadata(file, "beta");
    tap_check(a && b && strcmp(a, "one") == 0 && strcmp(b, "two \"quoted\" é") == 0,
              "round trip: metadata kept");
    safetensors_close(file);
}

static void check_round_trip_layout(const char *path) {
    size_t len = 0;
    uint8_t *bytes = read_bytes(path, &len);
    uint64_t header_len = 0;
    for (int i = 7; bytes && len >= 8 && i >= 0; i--)
        header_len = (header_len << 8) | bytes[i];
    tap_check(bytes && header_len % 8 == 0 && len == 8 + header_len + 24 + 8 + 8 + 8 &&
                  memcmp(bytes + 8, "{\"__metadata__\"", 15) == 0,
              "round trip: header padded to 8 bytes, metadata first, data contiguous");
    free(bytes);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    tap_check(access(tmp, F_OK) != 0, "round trip: no temporary file left behind");
}

static void test_round_trip(const char *dir) {
    round_trip_data data;
    safetensors_tensor tensors[5];
    fill_round_trip(&data, tensors);
    const char *meta[] = {"alpha", "one", "beta", "two \"quoted\" é"};
    char path[512], err[512] = "";
    join_path(path, sizeof path, dir, "round.safetensors");
    for (int pass = 0; pass < 2; pass++) { /* the second pass overwrites */
        int rc = safetensors_write(path, tensors, 5, meta, 2, err, sizeof err);
        if (!tap_check(rc == 0, "round trip: write succeeds (pass %d)", pass + 1))
            tap_diag("%s", err);
    }
    check_round_trip_file(path, tensors);
    check_round_trip_layout(path);
}

static void expect_write_refusal(const char *path, const safetensors_tensor *tensors, size_t n,
                                 const char *what, const char *fragment) {
    char err[512] = "";
    int rc = safetensors_write(path, tensors, n, NULL, 0, err, sizeof err);
    bool ok = rc == -1 && strstr(err, path) != NULL && strstr(err, fragment) != NULL &&
              access(path, F_OK) != 0;
    if (!tap_check(ok, "write refuses %s", what))
        tap_diag("rc %d, message \"%s\"", rc, err);
}

static void test_write_refusals(const char *dir) {
    float values[4] = {0};
    safetensors_tensor t[2] = {
        {"a", SAFETENSORS_F32, 1, {4}, values, sizeof values},
        {"a", SAFETENSORS_F32, 1, {4}, values, sizeof values},
    };
    char path[512];
    join_path(path, sizeof path, dir, "refused.safetensors");
    expect_write_refusal(path, t, 2, "a repeated tensor name", "'a'");
    t[1].name = "__metadata__";
    expect_write_refusal(path, t, 2, "a tensor named __metadata__", "__metadata__");
    t[1].name = "b";
    t[1].nbytes = 12;
    expect_write_refusal(path, t, 2, "nbytes not matching the shape", "'b'");
    join_path(path, sizeof path, dir, "no-such-dir/x.safetensors");
    expect_write_refusal(path, t, 1, "a path in a missing directory", "cannot create");
}

/* ---- malformed files ---------------------------------------------------- */

static void test_truncation(const char *data_dir, const char *dir) {
    char source[512], path[512];
    snprintf(source, sizeof source, "%s/fixtures/tiny-a/model.safetensors", data_dir);
    join_path(path, sizeof path, dir, "truncated.safetensors");
    size_t len = 0;
    uint8_t *bytes = read_bytes(source, &len);
    if (!tap_check(bytes != NULL && len > 6000, "reads the tiny-a model for truncation"))
        return;
    const struct {
        size_t keep;
        const char *what;
        const char *fragment;
    } cuts[] = {
        {0, "an empty file", "too short"},
        {4, "a 4-byte file", "too short"},
        {8, "a file cut after the header length", "past the end of the file"},
        {8 + 2000, "a file cut mid-header", "past the end of the file"},
        {len / 2, "a file cut mid-data", "truncated?"},
        {len - 1, "a file missing its last byte", "'model.unembed.weight'"},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        if (write_bytes(path, bytes, cuts[i].keep))
            expect_refusal(path, cuts[i].what, cuts[i].fragment, NULL);
    }
    free(bytes);
}

static void test_bad_lengths(const char *dir) {
    char path[512];
    join_path(path, sizeof path, dir, "length.safetensors");
    const char *header = "{}";
    if (write_crafted(path, (uint64_t)200 << 20, header, 0))
        expect_refusal(path, "a header length over 100 MiB", "exceeds", NULL);
    if (write_crafted(path, UINT64_MAX, header, 0))
        expect_refusal(path, "a header length of 2^64-1", "exceeds", NULL);
    if (write_crafted(path, 1000, header, 0))
        expect_refusal(path, "a header length past the end of the file", "past the end", NULL);
}

static void test_bad_json(const char *dir) {
    expect_header_refusal(dir, "invalid JSON", "{\"w\": {\"dtype\": ", 0, "not valid JSON", NULL);
    expect_header_refusal(dir, "a header that is an array", "[1, 2]", 0, "JSON object", NULL);
    expect_header_refusal(dir, "a tensor entry that is not an object", "{\"w\": 3}", 0, "'w'",
                          "expected an object");
    expect_header_refusal(dir, "a repeated tensor name",
                          "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                          "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                          2, "not valid JSON", "w");
    expect_header_refusal(dir, "non-string metadata", "{\"__metadata__\": {\"k\": 1}}", 0, "'k'",
                          "must be a string");
    expect_header_refusal(dir, "metadata that is not an object", "{\"__metadata__\": []}", 0,
                          "__metadata__", "must be an object");
}

static void test_bad_fields(const char *dir) {
    expect_header_refusal(dir, "an unknown dtype",
                          "{\"w\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
                          "'w'", "unknown dtype 'F8'");
    expect_header_refusal(dir, "a missing dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,2]}}",
                          2, "'w'", "'dtype'");
    expect_header_refusal(dir, "a negative shape",
                          "{\"w\":{\"dtype\":\"U8\",\"shape\":[-2],\"data_offsets\":[0,0]}}", 0,
                          "'w'", "shape[0] is -2");
    expect_header_refusal(dir, "a non-integer shape",
                          "{\"w\":{\"dtype\":\"U8\",\"shape\":[2.0],\"data_offsets\":[0,2]}}", 2,
                          "'w'", "shape[0]");
    expect_header_refusal(
        dir, "more than 8 dimensions",
        "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "'w'",
        "9 dimensions");
    expect_header_refusal(dir, "a shape whose byte size overflows",
                          "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                          "\"data_offsets\":[0,4]}}",
                          4, "'w'", "overflows");
    expect_header_refusal(dir, "data_offsets that are not two integers",
                          "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0]}}", 2, "'w'",
                          "data_offsets");
}

static void test_bad_offsets(const char *dir) {
    expect_header_refusal(dir, "offsets not matching the shape's size",
                          "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20,
                          "'w'", "needs 24");
    expect_header_refusal(dir, "offsets past the end of the data",
                          "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
                          "'w'", "end past the data region (8 bytes)");
    expect_header_refusal(dir, "begin after end",
                          "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,2]}}", 4,
                          "'w'", "begin after end");
    expect_header_refusal(dir, "overlapping tensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                          12, "'a' [0, 8] and 'b' [4, 12]", "overlap");
    expect_header_refusal(dir, "a gap between tensors",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                          12, "'b'", "belong to no tensor");
    expect_header_refusal(dir, "bytes after the last tensor",
                          "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
                          "cover only 4", "belong to no tensor");
}

static void test_odd_but_valid(const char *dir) {
    char path[512], err[512] = "";
    join_path(path, sizeof path, dir, "empty.safetensors");
    safetensors_file *file = NULL;
    if (write_crafted(path, 8, "{}      ", 0))
        file = safetensors_open(path, err, sizeof err);
    tap_check(file != NULL && safetensors_count(file) == 0,
              "accepts an empty header padded with spaces (%s)", err);
    safetensors_close(file);
    join_path(path, sizeof path, dir, "missing.safetensors");
    expect_refusal(path, "a file that does not exist", "cannot open", NULL);
}

/* ---- toto-make-checkpoint ----------------------------------------------- */

/* Runs the tool with args (NULL-terminated, after argv[0]); returns its exit status. */
static int run_tool(const char *tool, const char *log_path, const char *const *args) {
    char *argv[16];
    int argc = 0;
    argv[argc++] = (char *)tool;
    for (; args[argc - 1] != NULL && argc < 15; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *log = freopen(log_path, "w", stdout);
        if (log == NULL || dup2(fileno(stdout), 2) < 0)
            _exit(127);
        execv(tool, argv);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void check_config_matches_small(const char *out_dir) {
    char path[512], err[512] = "";
    join_path(path, sizeof path, out_dir, "config.json");
    toto_config cfg;
    int rc = toto_config_load(path, &cfg, err, sizeof err);
    tap_check(rc == TOTO_OK && cfg.patch_size == 16 && cfg.embed_dim == 64 && cfg.num_layers == 4 &&
                  cfg.num_heads == 4 && cfg.mlp_hidden_dim == 128 &&
                  cfg.spacewise_every_n_layers == 2 && cfg.spacewise_first &&
                  cfg.k_components == 4 && cfg.stabilize_with_global &&
                  cfg.scale_factor_exponent == 10.0,
              "make-checkpoint: config.json loads as the small preset (%s)", err);
}

/* Sample standard deviation of an F32 tensor, to check the initialisation scale. */
static double f32_std(const safetensors_tensor *t) {
    size_t n = t->nbytes / 4;
    double sum = 0, sum_sq = 0;
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, (const uint8_t *)t->data + 4 * i, sizeof v);
        sum += v, sum_sq += (double)v * v;
    }
    double mean = sum / (double)n;
    return sqrt(sum_sq / (double)n - mean * mean);
}

static void check_small_fused_f32(const char *out_dir) {
    char path[512], err[512] = "";
    join_path(path, sizeof path, out_dir, "model.safetensors");
    safetensors_file *file = safetensors_open(path, err, sizeof err);
    if (!tap_check(file != NULL, "make-checkpoint: model.safetensors opens (%s)", err))
        return;
    tap_check(safetensors_count(file) == 52, "make-checkpoint: 52 tensors (%zu)",
              safetensors_count(file));
    expect_tensor(file, "model.transformer.layers.3.mlp.0.w12.weight", SAFETENSORS_F32, 256, 64);
    expect_tensor(file, "model.transformer.layers.3.mlp.0.w3.bias", SAFETENSORS_F32, 64, 0);
    expect_tensor(file, "model.transformer.layers.0.attention.wQKV.weight", SAFETENSORS_F32, 192,
                  64);
    expect_tensor(file, "model.unembed.weight", SAFETENSORS_F32, 1024, 64);
    expect_tensor(file, "model.output_distribution.mixture_weights.weight", SAFETENSORS_F32, 4, 64);
    const safetensors_tensor *scale =
        safetensors_find(file, "model.transformer.layers.1.norm2.scale");
    float first_scale = 0;
    if (scale != NULL)
        memcpy(&first_scale, scale->data, sizeof first_scale);
    tap_check(first_scale == 1.0f, "make-checkpoint: norm scales are 1");
    const safetensors_tensor *qkv =
        safetensors_find(file, "model.transformer.layers.0.attention.wQKV.weight");
    double std = qkv ? f32_std(qkv) : 0;
    tap_check(fabs(std - 0.0625) < 0.005, "make-checkpoint: wQKV std %.4f ~ 0.5/sqrt(64)", std);
    safetensors_close(file);
}

static void check_small_plain_bf16(const char *out_dir) {
    char path[512], err[512] = "";
    join_path(path, sizeof path, out_dir, "model.safetensors");
    safetensors_file *file = safetensors_open(path, err, sizeof err);
    if (!tap_check(file != NULL, "make-checkpoint BF16: opens (%s)", err))
        return;
    expect_tensor(file, "model.transformer.layers.0.mlp.0.weight", SAFETENSORS_BF16, 256, 64);
    expect_tensor(file, "model.transformer.layers.0.mlp.2.weight", SAFETENSORS_BF16, 64, 128);
    const safetensors_tensor *scale =
        safetensors_find(file, "model.transformer.layers.0.norm1.scale");
    uint16_t one = 0;
    if (scale != NULL)
        memcpy(&one, scale->data, sizeof one);
    tap_check(one == 0x3F80, "make-checkpoint BF16: norm scale 1.0 is 0x3F80 (0x%04X)", one);
    safetensors_close(file);
}

static bool same_file(const char *dir_a, const char *dir_b, const char *name) {
    char a[512], b[512];
    join_path(a, sizeof a, dir_a, name);
    join_path(b, sizeof b, dir_b, name);
    size_t len_a = 0, len_b = 0;
    uint8_t *bytes_a = read_bytes(a, &len_a);
    uint8_t *bytes_b = read_bytes(b, &len_b);
    bool same = bytes_a && bytes_b && len_a == len_b && memcmp(bytes_a, bytes_b, len_a) == 0;
    free(bytes_a);
    free(bytes_b);
    return same;
}

static void test_make_checkpoint(const char *dir) {
    const char *build_dir = getenv("TOTO_BUILD_DIR");
    char tool[512], log[512], out[4][512];
    snprintf(tool, sizeof tool, "%s/model/toto-make-checkpoint", build_dir ? build_dir : "");
    if (!tap_check(build_dir != NULL && access(tool, X_OK) == 0,
                   "toto-make-checkpoint is built (TOTO_BUILD_DIR/model/toto-make-checkpoint)"))
        return;
    join_path(log, sizeof log, dir, "tool.log");
    for (int i = 0; i < 4; i++)
        snprintf(out[i], sizeof out[i], "%s/ck%d", dir, i);
    const char *fused[] = {"--config", "small",       "--out", out[0], "--seed",
                           "7",        "--mlp-names", "fused", NULL};
    const char *again[] = {"--config", "small",       "--out", out[1], "--seed",
                           "7",        "--mlp-names", "fused", NULL};
    const char *other[] = {"--config", "small",       "--out", out[2], "--seed",
                           "8",        "--mlp-names", "fused", NULL};
    const char *bf16[] = {"--config", "small", "--out", out[3], "--dtype", "BF16", NULL};
    const char *bad[] = {"--config", "small", "--out", out[3], "--dtype", "F16", NULL};
    tap_check(run_tool(tool, log, fused) == 0, "make-checkpoint: small fused F32 runs");
    check_config_matches_small(out[0]);
    check_small_fused_f32(out[0]);
    tap_check(run_tool(tool, log, again) == 0 && same_file(out[0], out[1], "model.safetensors"),
              "make-checkpoint: the same seed gives the same bytes");
    tap_check(run_tool(tool, log, other) == 0 && !same_file(out[0], out[2], "model.safetensors"),
              "make-checkpoint: another seed gives other weights");
    tap_check(run_tool(tool, log, bf16) == 0, "make-checkpoint: small plain BF16 runs");
    check_small_plain_bf16(out[3]);
    tap_check(run_tool(tool, log, bad) == 2, "make-checkpoint: a bad --dtype exits 2");
}

int main(void) {
    const char *data_dir = getenv("TOTO_TEST_DATA");
    char dir[] = "/tmp/toto-test-safetensors-XXXXXX";
    if (!tap_check(data_dir != NULL, "TOTO_TEST_DATA is set") ||
        !tap_check(mkdtemp(dir) != NULL, "creates a temporary directory"))
        return tap_done();
    test_fixture_models(data_dir);
    test_fixture_case(data_dir, "tiny-a", "40", 2, 3, 150);
    test_fixture_case(data_dir, "tiny-b", "130", 1, 4, 300);
    test_round_trip(dir);
    test_write_refusals(dir);
    test_truncation(data_dir, dir);
    test_bad_lengths(dir);
    test_bad_json(dir);
    test_bad_fields(dir);
    test_bad_offsets(dir);
    test_odd_but_valid(dir);
    test_make_checkpoint(dir);
    remove_tree(dir);
    return tap_done();
}
