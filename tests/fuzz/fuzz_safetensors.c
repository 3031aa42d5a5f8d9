/*
 * fuzz_safetensors.c - libFuzzer harness for model/safetensors.c. The input
 * is a whole file; safetensors_open() reads it from a private temp folder.
 *
 * safetensors.h promises that once the file is open, "callers can trust every
 * tensor's shape, dtype and data pointer without re-checking bounds". So for
 * an accepted file it aborts unless
 *   - the tensors are exactly the header's entries other than __metadata__,
 *     each found by name, with a known dtype, 0..8 dimensions >= 0, and
 *     nbytes == safetensors_numel() * the dtype's size (computed here in
 *     signed 64 bits, as callers do: an element count that overflows it is a
 *     contract violation UBSan reports);
 *   - the tensors tile the data region (no overlap, no gap, nothing left) and
 *     each data pointer holds exactly the file's bytes at its offset;
 *   - every __metadata__ string is returned by safetensors_metadata();
 *   - safetensors_write() of the same tensors and metadata gives a file that
 *     reads back the same.
 * A refused file must come with a message that names the file.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "fuzz_tmp.h"
#include "safetensors.h"

typedef struct span {
    size_t begin, end;
} span;

static int by_begin(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The header as the file has it (it was accepted, so it is a JSON object). */
static json_t *header_of(const uint8_t *data, size_t *data_start) {
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--)
        len = (len << 8) | data[i];
    *data_start = 8 + (size_t)len;
    json_t *header = json_loadb((const char *)data + 8, (size_t)len, 0, NULL);
    CHECK(json_is_object(header));
    return header;
}

static void check_tensor(const safetensors_file *f, const safetensors_tensor *t) {
    CHECK(t->name != NULL && safetensors_find(f, t->name) == t);
    size_t size = safetensors_dtype_size(t->dtype);
    CHECK(size > 0 && strcmp(safetensors_dtype_name(t->dtype), "?") != 0);
    CHECK(t->ndim >= 0 && t->ndim <= SAFETENSORS_MAX_DIMS);
    for (int d = 0; d < t->ndim; d++)
        CHECK(t->shape[d] >= 0);
    int64_t numel = safetensors_numel(t);
    CHECK(numel >= 0 && (uint64_t)numel * size == t->nbytes);
    CHECK(t->data != NULL || t->nbytes == 0);
}

/* The tensors tile data[start..size) and point at the file's own bytes. */
static void check_layout(const safetensors_file *f, const uint8_t *data, size_t size,
                         size_t start) {
    size_t n = safetensors_count(f);
    if (n == 0) {
        CHECK(start == size);
        return;
    }
    const uint8_t *base = NULL; /* the data region: the lowest data pointer (offset 0) */
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = safetensors_at(f, i)->data;
        base = !base || p < base ? p : base;
    }
    span *spans = calloc(n, sizeof *spans);
    CHECK(spans != NULL);
    for (size_t i = 0; i < n; i++) {
        const safetensors_tensor *t = safetensors_at(f, i);
        size_t off = (size_t)((const uint8_t *)t->data - base);
        CHECK(off <= size - start && t->nbytes <= size - start - off);
        CHECK(t->nbytes == 0 || memcmp(t->data, data + start + off, t->nbytes) == 0);
        spans[i] = (span){off, off + t->nbytes};
    }
    qsort(spans, n, sizeof *spans, by_begin);
    size_t covered = 0;
    for (size_t i = 0; i < n; i++) {
        if (spans[i].begin == spans[i].end) /* empty tensors cover nothing */
            continue;
        CHECK(spans[i].begin == covered);
        covered = spans[i].end;
    }
    CHECK(covered == size - start);
    free(spans);
}

/* Writes f's tensors and meta, reads them back, compares. */
static void check_round_trip(const safetensors_file *f, const char *const *meta, size_t n_meta) {
    size_t n = safetensors_count(f);
    safetensors_tensor *tensors = calloc(n + 1, sizeof *tensors);
    CHECK(tensors != NULL);
    for (size_t i = 0; i < n; i++)
        tensors[i] = *safetensors_at(f, i);
    char path[512], err[512] = "";
    fuzz_tmp_path("copy.safetensors", path, sizeof path);
    int rc = safetensors_write(path, tensors, n, meta, n_meta, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "write refused what was read: %s\n", err);
    CHECK(rc == 0);
    safetensors_file *g = safetensors_open(path, err, sizeof err);
    if (!g)
        fprintf(stderr, "could not read what was written: %s\n", err);
    CHECK(g != NULL && safetensors_count(g) == n);
    for (size_t i = 0; i < n; i++) {
        const safetensors_tensor *a = &tensors[i], *b = safetensors_find(g, a->name);
        CHECK(b != NULL && a->dtype == b->dtype && a->ndim == b->ndim && a->nbytes == b->nbytes);
        CHECK(memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0);
        CHECK(a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0);
    }
    for (size_t i = 0; i < n_meta; i++) {
        const char *v = safetensors_metadata(g, meta[2 * i]);
        CHECK(v != NULL && strcmp(v, meta[2 * i + 1]) == 0);
    }
    safetensors_close(g);
    free(tensors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512], err[512] = "";
    fuzz_tmp_write("in.safetensors", data, size, path, sizeof path);
    safetensors_file *f = safetensors_open(path, err, sizeof err);
    if (!f) {
        CHECK(strncmp(err, path, strlen(path)) == 0); /* the message names the file */
        return 0;
    }
    CHECK(strcmp(safetensors_path(f), path) == 0);
    CHECK(safetensors_at(f, safetensors_count(f)) == NULL);
    size_t start;
    json_t *header = header_of(data, &start);
    const json_t *meta_object = json_object_get(header, "__metadata__");
    CHECK(safetensors_count(f) == json_object_size(header) - (meta_object ? 1 : 0));
    for (size_t i = 0; i < safetensors_count(f); i++) {
        const safetensors_tensor *t = safetensors_at(f, i);
        CHECK(json_object_get(header, t->name) != NULL && strcmp(t->name, "__metadata__") != 0);
        check_tensor(f, t);
    }
    check_layout(f, data, size, start);

    size_t n_meta = json_object_size(meta_object);
    const char **meta = calloc(2 * n_meta + 1, sizeof *meta);
    CHECK(meta != NULL);
    const char *key;
    json_t *value;
    size_t i = 0;
    json_object_foreach((json_t *)meta_object, key, value) {
        const char *got = safetensors_metadata(f, key);
        CHECK(got != NULL && strcmp(got, json_string_value(value)) == 0);
        meta[2 * i] = key;
        meta[2 * i + 1] = got;
        i++;
    }
    check_round_trip(f, meta, n_meta);
    free(meta);
    json_decref(header);
    safetensors_close(f);
    return 0;
}
