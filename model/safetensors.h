/*
 * safetensors.h - read (memory-mapped, fully validated) and write
 * safetensors files: an 8-byte little-endian header length, a JSON header
 * {"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}, then
 * the raw little-endian data.
 */
#ifndef TOTO_SAFETENSORS_H
#define TOTO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SAFETENSORS_MAX_DIMS 8

typedef enum safetensors_dtype {
    SAFETENSORS_F64,
    SAFETENSORS_F32,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
    SAFETENSORS_I64,
    SAFETENSORS_I32,
    SAFETENSORS_I16,
    SAFETENSORS_I8,
    SAFETENSORS_U8,
    SAFETENSORS_BOOL,
} safetensors_dtype;

typedef struct safetensors_tensor {
    const char *name;
    safetensors_dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    const void *data; /* into the mapping; may be unaligned: memcpy before typed access */
    size_t nbytes;
} safetensors_tensor;

typedef struct safetensors_file safetensors_file;

/*
 * Maps path and validates the whole header before returning: header length,
 * JSON syntax, known dtypes, shapes, offsets inside the data and matching the
 * shape's byte size, no overlapping tensors, data fully covered. On failure
 * returns NULL and writes a message naming the file (and tensor) into err.
 */
safetensors_file *safetensors_open(const char *path, char *err, size_t err_len);
void safetensors_close(safetensors_file *file);

const char *safetensors_path(const safetensors_file *file);
size_t safetensors_count(const safetensors_file *file);
const safetensors_tensor *safetensors_at(const safetensors_file *file, size_t index);
const safetensors_tensor *safetensors_find(const safetensors_file *file, const char *name);
/* A string from "__metadata__", or NULL. */
const char *safetensors_metadata(const safetensors_file *file, const char *key);

size_t safetensors_dtype_size(safetensors_dtype dtype);
const char *safetensors_dtype_name(safetensors_dtype dtype); /* "F32", ... */
int64_t safetensors_numel(const safetensors_tensor *tensor);

/*
 * Writes n tensors (name, dtype, ndim, shape, data; nbytes must match) and
 * optional metadata pairs meta[2*i] = key, meta[2*i+1] = value.
 * Returns 0, or -1 with a message in err.
 */
int safetensors_write(const char *path, const safetensors_tensor *tensors, size_t n,
                      const char *const *meta, size_t n_meta, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
