/*
 * safetensors.c - see safetensors.h.
 *
 * The reader maps the file read-only and checks the whole header before it
 * hands anything out, so callers can trust every tensor's shape, dtype and
 * data pointer without re-checking bounds. Names and metadata are copied out
 * of jansson so the JSON tree can be freed as soon as the header is parsed.
 */
#include "safetensors.h"

#include "json_kind.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header longer than this is refused: real checkpoints need well under 1 MiB. */
#define MAX_HEADER_BYTES ((uint64_t)100 * 1024 * 1024)
#define METADATA_KEY     "__metadata__"

struct safetensors_file {
    char *path;
    void *map;
    size_t map_len;
    const uint8_t *data; /* start of the data region, right after the header */
    size_t data_len;
    safetensors_tensor *tensors;
    size_t count;
    char **meta; /* meta[2*i] = key, meta[2*i+1] = value */
    size_t n_meta;
};

/* Where one tensor's bytes lie inside the data region, for the overlap check. */
typedef struct byte_range {
    uint64_t begin;
    uint64_t end;
    const char *name;
} byte_range;

static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {
    [SAFETENSORS_F64] = {"F64", 8}, [SAFETENSORS_F32] = {"F32", 4},
    [SAFETENSORS_F16] = {"F16", 2}, [SAFETENSORS_BF16] = {"BF16", 2},
    [SAFETENSORS_I64] = {"I64", 8}, [SAFETENSORS_I32] = {"I32", 4},
    [SAFETENSORS_I16] = {"I16", 2}, [SAFETENSORS_I8] = {"I8", 1},
    [SAFETENSORS_U8] = {"U8", 1},   [SAFETENSORS_BOOL] = {"BOOL", 1},
};
#define DTYPE_COUNT (sizeof dtype_table / sizeof dtype_table[0])

static void set_error(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(char *err, size_t err_len, const char *fmt, ...) {
    if (err == NULL || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static bool dtype_is_valid(safetensors_dtype dtype) {
    return (unsigned)dtype < DTYPE_COUNT;
}

size_t safetensors_dtype_size(safetensors_dtype dtype) {
    return dtype_is_valid(dtype) ? dtype_table[dtype].size : 0;
}

const char *safetensors_dtype_name(safetensors_dtype dtype) {
    return dtype_is_valid(dtype) ? dtype_table[dtype].name : "?";
}

int64_t safetensors_numel(const safetensors_tensor *tensor) {
    /* A zero dimension first: the reader accepts [2^62, 2, 0] (0 bytes), whose
     * other dimensions overflow int64 when multiplied. Without a zero, the
     * count times the dtype size is the tensor's byte size, so it fits. */
    for (int i = 0; i < tensor->ndim; i++)
        if (tensor->shape[i] == 0)
            return 0;
    int64_t numel = 1;
    for (int i = 0; i < tensor->ndim; i++)
        numel *= tensor->shape[i];
    return numel;
}

/* Writes "[a, b, c]" into buf; shapes are short, so truncation only loses text. */
static void format_shape(char *buf, size_t len, const int64_t *shape, int ndim) {
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used +=
            (size_t)snprintf(buf + used, len - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
}

/* Byte size of a shape and dtype; false when it does not fit in 64 bits. */
static bool shape_byte_size(const int64_t *shape, int ndim, safetensors_dtype dtype,
                            uint64_t *out) {
    uint64_t bytes = safetensors_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        uint64_t dim = (uint64_t)shape[i];
        if (dim != 0 && bytes > UINT64_MAX / dim)
            return false;
        bytes *= dim;
    }
    *out = bytes;
    return true;
}

/* ---- reading ------------------------------------------------------------ */

void safetensors_close(safetensors_file *file) {
    if (file == NULL)
        return;
    for (size_t i = 0; i < file->count; i++)
        free((char *)file->tensors[i].name);
    free(file->tensors);
    for (size_t i = 0; i < 2 * file->n_meta; i++)
        free(file->meta[i]);
    free(file->meta);
    if (file->map != NULL)
        munmap(file->map, file->map_len);
    free(file->path);
    free(file);
}

/* Opens and maps the whole file; it must hold at least the 8-byte length. */
static int map_file(safetensors_file *file, char *err, size_t err_len) {
    int fd = open(file->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_error(err, err_len, "%s: cannot open: %s", file->path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set_error(err, err_len, "%s: cannot stat: %s", file->path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        set_error(err, err_len, "%s: not a regular file", file->path);
        close(fd);
        return -1;
    }
    if (st.st_size < 8) {
        set_error(err, err_len,
                  "%s: file is %lld bytes, too short for the 8-byte header length; "
                  "file truncated?",
                  file->path, (long long)st.st_size);
        close(fd);
        return -1;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd); /* the mapping keeps the file alive */
    if (map == MAP_FAILED) {
        set_error(err, err_len, "%s: cannot map: %s", file->path, strerror(map_errno));
        return -1;
    }
    file->map = map;
    file->map_len = (size_t)st.st_size;
    return 0;
}

/* Reads the little-endian header length and locates the data region. */
static int locate_regions(safetensors_file *file, uint64_t *header_len, char *err, size_t err_len) {
    const uint8_t *bytes = file->map;
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--)
        len = (len << 8) | bytes[i];
    uint64_t available = (uint64_t)file->map_len - 8;
    if (len > MAX_HEADER_BYTES) {
        set_error(err, err_len, "%s: header length %llu exceeds the %llu-byte limit", file->path,
                  (unsigned long long)len, (unsigned long long)MAX_HEADER_BYTES);
        return -1;
    }
    if (len > available) {
        set_error(err, err_len,
                  "%s: header length %llu is past the end of the file (%llu bytes after the "
                  "length); file truncated?",
                  file->path, (unsigned long long)len, (unsigned long long)available);
        return -1;
    }
    *header_len = len;
    file->data = bytes + 8 + len;
    file->data_len = (size_t)(available - len);
    return 0;
}

static int parse_dtype(const safetensors_file *file, const char *name, const json_t *entry,
                       safetensors_dtype *out, char *err, size_t err_len) {
    const json_t *value = json_object_get(entry, "dtype");
    if (!json_is_string(value)) {
        set_error(err, err_len, "%s: tensor '%s': field 'dtype' must be a string, found %s",
                  file->path, name, value ? json_kind(value) : "none");
        return -1;
    }
    const char *text = json_string_value(value);
    for (size_t i = 0; i < DTYPE_COUNT; i++) {
        if (strcmp(text, dtype_table[i].name) == 0) {
            *out = (safetensors_dtype)i;
            return 0;
        }
    }
    set_error(err, err_len,
              "%s: tensor '%s': unknown dtype '%s' (expected one of F64 F32 F16 BF16 I64 I32 "
              "I16 I8 U8 BOOL)",
              file->path, name, text);
    return -1;
}

static int parse_shape(const safetensors_file *file, const char *name, const json_t *entry,
                       safetensors_tensor *tensor, char *err, size_t err_len) {
    const json_t *value = json_object_get(entry, "shape");
    if (!json_is_array(value)) {
        set_error(err, err_len, "%s: tensor '%s': field 'shape' must be an array, found %s",
                  file->path, name, value ? json_kind(value) : "none");
        return -1;
    }
    size_t ndim = json_array_size(value);
    if (ndim > SAFETENSORS_MAX_DIMS) {
        set_error(err, err_len, "%s: tensor '%s': shape has %zu dimensions, at most %d allowed",
                  file->path, name, ndim, SAFETENSORS_MAX_DIMS);
        return -1;
    }
    for (size_t i = 0; i < ndim; i++) {
        const json_t *dim = json_array_get(value, i);
        if (!json_is_integer(dim)) {
            set_error(err, err_len,
                      "%s: tensor '%s': shape[%zu] must be a non-negative integer, found %s",
                      file->path, name, i, json_kind(dim));
            return -1;
        }
        if (json_integer_value(dim) < 0) {
            set_error(err, err_len,
                      "%s: tensor '%s': shape[%zu] is %lld, expected a non-negative integer",
                      file->path, name, i, (long long)json_integer_value(dim));
            return -1;
        }
        tensor->shape[i] = (int64_t)json_integer_value(dim);
    }
    tensor->ndim = (int)ndim;
    return 0;
}

/* Reads data_offsets as [begin, end] with 0 <= begin <= end. */
static int parse_offsets(const safetensors_file *file, const char *name, const json_t *entry,
                         byte_range *range, char *err, size_t err_len) {
    const json_t *value = json_object_get(entry, "data_offsets");
    const json_t *begin = json_array_get(value, 0);
    const json_t *end = json_array_get(value, 1);
    if (!json_is_array(value) || json_array_size(value) != 2 || !json_is_integer(begin) ||
        !json_is_integer(end) || json_integer_value(begin) < 0 || json_integer_value(end) < 0) {
        set_error(err, err_len,
                  "%s: tensor '%s': field 'data_offsets' must be [begin, end] with two "
                  "non-negative integers",
                  file->path, name);
        return -1;
    }
    range->begin = (uint64_t)json_integer_value(begin);
    range->end = (uint64_t)json_integer_value(end);
    range->name = name;
    if (range->begin > range->end) {
        set_error(err, err_len, "%s: tensor '%s': data_offsets [%llu, %llu] begin after end",
                  file->path, name, (unsigned long long)range->begin,
                  (unsigned long long)range->end);
        return -1;
    }
    return 0;
}

/* The offsets must lie inside the data region and hold exactly the shape's bytes. */
static int check_extent(const safetensors_file *file, const safetensors_tensor *tensor,
                        const byte_range *range, char *err, size_t err_len) {
    char shape[160];
    format_shape(shape, sizeof shape, tensor->shape, tensor->ndim);
    if (range->end > file->data_len) {
        set_error(err, err_len,
                  "%s: tensor '%s': data_offsets [%llu, %llu] end past the data region (%zu "
                  "bytes); file truncated?",
                  file->path, tensor->name, (unsigned long long)range->begin,
                  (unsigned long long)range->end, file->data_len);
        return -1;
    }
    uint64_t expected;
    if (!shape_byte_size(tensor->shape, tensor->ndim, tensor->dtype, &expected)) {
        set_error(err, err_len, "%s: tensor '%s': shape %s of %s overflows 64 bits", file->path,
                  tensor->name, shape, safetensors_dtype_name(tensor->dtype));
        return -1;
    }
    if (range->end - range->begin != expected) {
        set_error(err, err_len,
                  "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but shape %s of "
                  "%s needs %llu",
                  file->path, tensor->name, (unsigned long long)range->begin,
                  (unsigned long long)range->end, (unsigned long long)(range->end - range->begin),
                  shape, safetensors_dtype_name(tensor->dtype), (unsigned long long)expected);
        return -1;
    }
    return 0;
}

/* Fills tensor from one header entry; tensor->name is already set and owned. */
static int parse_tensor(const safetensors_file *file, const json_t *entry,
                        safetensors_tensor *tensor, byte_range *range, char *err, size_t err_len) {
    if (!json_is_object(entry)) {
        set_error(err, err_len, "%s: tensor '%s': expected an object, found %s", file->path,
                  tensor->name, json_kind(entry));
        return -1;
    }
    if (parse_dtype(file, tensor->name, entry, &tensor->dtype, err, err_len) != 0 ||
        parse_shape(file, tensor->name, entry, tensor, err, err_len) != 0 ||
        parse_offsets(file, tensor->name, entry, range, err, err_len) != 0 ||
        check_extent(file, tensor, range, err, err_len) != 0)
        return -1;
    tensor->data = file->data + range->begin;
    tensor->nbytes = (size_t)(range->end - range->begin);
    return 0;
}

/* Copies "__metadata__" (an object of strings) into file->meta. */
static int parse_metadata(safetensors_file *file, const json_t *meta, char *err, size_t err_len) {
    if (!json_is_object(meta)) {
        set_error(err, err_len, "%s: '%s' must be an object, found %s", file->path, METADATA_KEY,
                  json_kind(meta));
        return -1;
    }
    file->meta = calloc(2 * json_object_size(meta) + 1, sizeof *file->meta);
    if (file->meta == NULL) {
        set_error(err, err_len, "%s: out of memory", file->path);
        return -1;
    }
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        if (!json_is_string(value)) {
            set_error(err, err_len, "%s: '%s' entry '%s' must be a string, found %s", file->path,
                      METADATA_KEY, key, json_kind(value));
            return -1;
        }
        char *key_copy = strdup(key);
        char *value_copy = strdup(json_string_value(value));
        file->meta[2 * file->n_meta] = key_copy;
        file->meta[2 * file->n_meta + 1] = value_copy;
        file->n_meta++; /* counted even on failure so close() frees the half */
        if (key_copy == NULL || value_copy == NULL) {
            set_error(err, err_len, "%s: out of memory", file->path);
            return -1;
        }
    }
    return 0;
}

static int compare_ranges(const void *a, const void *b) {
    const byte_range *x = a;
    const byte_range *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

/* Tensors must tile the data region: no overlap, no gap, nothing left over. */
static int check_layout(const safetensors_file *file, byte_range *ranges, size_t n, char *err,
                        size_t err_len) {
    qsort(ranges, n, sizeof *ranges, compare_ranges);
    const byte_range *last = NULL; /* the range that reaches furthest so far */
    for (size_t i = 0; i < n; i++) {
        uint64_t covered = last ? last->end : 0;
        if (ranges[i].begin < covered) {
            set_error(err, err_len, "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap",
                      file->path, last->name, (unsigned long long)last->begin,
                      (unsigned long long)last->end, ranges[i].name,
                      (unsigned long long)ranges[i].begin, (unsigned long long)ranges[i].end);
            return -1;
        }
        if (ranges[i].begin > covered) {
            set_error(err, err_len,
                      "%s: bytes [%llu, %llu) of the data region belong to no tensor (gap "
                      "before tensor '%s')",
                      file->path, (unsigned long long)covered, (unsigned long long)ranges[i].begin,
                      ranges[i].name);
            return -1;
        }
        if (ranges[i].end > covered || last == NULL)
            last = &ranges[i];
    }
    uint64_t covered = last ? last->end : 0;
    if (covered != file->data_len) {
        set_error(err, err_len,
                  "%s: data region has %zu bytes but the tensors cover only %llu; %llu bytes "
                  "belong to no tensor",
                  file->path, file->data_len, (unsigned long long)covered,
                  (unsigned long long)(file->data_len - covered));
        return -1;
    }
    return 0;
}

/* Reads every entry of the header object into file; ranges has one slot per entry. */
static int parse_entries(safetensors_file *file, const json_t *header, byte_range *ranges,
                         char *err, size_t err_len) {
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)header, key, value) {
        if (strcmp(key, METADATA_KEY) == 0) {
            if (parse_metadata(file, value, err, err_len) != 0)
                return -1;
            continue;
        }
        safetensors_tensor *tensor = &file->tensors[file->count];
        memset(tensor, 0, sizeof *tensor);
        tensor->name = strdup(key);
        if (tensor->name == NULL) {
            set_error(err, err_len, "%s: out of memory", file->path);
            return -1;
        }
        file->count++; /* owned from here on, freed by close() */
        if (parse_tensor(file, value, tensor, &ranges[file->count - 1], err, err_len) != 0)
            return -1;
    }
    return check_layout(file, ranges, file->count, err, err_len);
}

static int parse_header(safetensors_file *file, uint64_t header_len, char *err, size_t err_len) {
    json_error_t jerr;
    json_t *header =
        json_loadb((const char *)file->map + 8, (size_t)header_len, JSON_REJECT_DUPLICATES, &jerr);
    if (header == NULL) {
        set_error(err, err_len, "%s: header is not valid JSON: %s (line %d, column %d)", file->path,
                  jerr.text, jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(header)) {
        set_error(err, err_len, "%s: header must be a JSON object, found %s", file->path,
                  json_kind(header));
        json_decref(header);
        return -1;
    }
    size_t entries = json_object_size(header);
    file->tensors = calloc(entries + 1, sizeof *file->tensors);
    byte_range *ranges = calloc(entries + 1, sizeof *ranges);
    int rc = -1;
    if (file->tensors == NULL || ranges == NULL)
        set_error(err, err_len, "%s: out of memory", file->path);
    else
        rc = parse_entries(file, header, ranges, err, err_len);
    free(ranges);
    json_decref(header);
    return rc;
}

safetensors_file *safetensors_open(const char *path, char *err, size_t err_len) {
    safetensors_file *file = calloc(1, sizeof *file);
    if (file == NULL || (file->path = strdup(path)) == NULL) {
        set_error(err, err_len, "%s: out of memory", path);
        free(file);
        return NULL;
    }
    uint64_t header_len;
    if (map_file(file, err, err_len) != 0 || locate_regions(file, &header_len, err, err_len) != 0 ||
        parse_header(file, header_len, err, err_len) != 0) {
        safetensors_close(file);
        return NULL;
    }
    return file;
}

const char *safetensors_path(const safetensors_file *file) {
    return file->path;
}

size_t safetensors_count(const safetensors_file *file) {
    return file->count;
}

const safetensors_tensor *safetensors_at(const safetensors_file *file, size_t index) {
    return index < file->count ? &file->tensors[index] : NULL;
}

const safetensors_tensor *safetensors_find(const safetensors_file *file, const char *name) {
    for (size_t i = 0; i < file->count; i++)
        if (strcmp(file->tensors[i].name, name) == 0)
            return &file->tensors[i];
    return NULL;
}

const char *safetensors_metadata(const safetensors_file *file, const char *key) {
    for (size_t i = 0; i < file->n_meta; i++)
        if (strcmp(file->meta[2 * i], key) == 0)
            return file->meta[2 * i + 1];
    return NULL;
}

/* ---- writing ------------------------------------------------------------ */

/* A tensor handed to safetensors_write must describe its own bytes exactly. */
static int check_write_tensor(const char *path, const safetensors_tensor *tensor, char *err,
                              size_t err_len) {
    const char *name = tensor->name ? tensor->name : "(null)";
    if (tensor->name == NULL || strcmp(tensor->name, METADATA_KEY) == 0) {
        set_error(err, err_len, "%s: tensor name '%s' is not allowed", path, name);
        return -1;
    }
    if (!dtype_is_valid(tensor->dtype) || tensor->ndim < 0 || tensor->ndim > SAFETENSORS_MAX_DIMS) {
        set_error(err, err_len, "%s: tensor '%s': invalid dtype (%d) or ndim (%d)", path, name,
                  (int)tensor->dtype, tensor->ndim);
        return -1;
    }
    for (int i = 0; i < tensor->ndim; i++) {
        if (tensor->shape[i] < 0) {
            set_error(err, err_len, "%s: tensor '%s': shape[%d] is %lld, expected >= 0", path, name,
                      i, (long long)tensor->shape[i]);
            return -1;
        }
    }
    uint64_t expected;
    if (!shape_byte_size(tensor->shape, tensor->ndim, tensor->dtype, &expected) ||
        expected != tensor->nbytes || (tensor->nbytes > 0 && tensor->data == NULL)) {
        set_error(err, err_len, "%s: tensor '%s': nbytes %zu does not match its shape and dtype",
                  path, name, tensor->nbytes);
        return -1;
    }
    return 0;
}

static json_t *shape_json(const safetensors_tensor *tensor) {
    json_t *shape = json_array();
    for (int i = 0; shape != NULL && i < tensor->ndim; i++) {
        if (json_array_append_new(shape, json_integer(tensor->shape[i])) != 0) {
            json_decref(shape);
            return NULL;
        }
    }
    return shape;
}

static json_t *tensor_entry_json(const safetensors_tensor *tensor, uint64_t begin) {
    json_int_t first = (json_int_t)begin;
    json_int_t last = (json_int_t)(begin + tensor->nbytes);
    json_t *entry = json_object();
    /* Each value is built inside its call: json_object_set_new takes it even on failure. */
    if (entry == NULL ||
        json_object_set_new(entry, "dtype", json_string(safetensors_dtype_name(tensor->dtype))) ||
        json_object_set_new(entry, "shape", shape_json(tensor)) ||
        json_object_set_new(entry, "data_offsets", json_pack("[II]", first, last))) {
        json_decref(entry);
        return NULL;
    }
    return entry;
}

static json_t *metadata_json(const char *path, const char *const *meta, size_t n_meta, char *err,
                             size_t err_len) {
    json_t *object = json_object();
    for (size_t i = 0; object != NULL && i < n_meta; i++) {
        const char *key = meta[2 * i];
        const char *value = meta[2 * i + 1];
        if (key == NULL || value == NULL || json_object_get(object, key) != NULL ||
            json_object_set_new(object, key, json_string(value)) != 0) {
            set_error(err, err_len,
                      "%s: metadata entry %zu ('%s') is missing, repeated or not "
                      "UTF-8",
                      path, i, key ? key : "(null)");
            json_decref(object);
            return NULL;
        }
    }
    if (object == NULL)
        set_error(err, err_len, "%s: out of memory", path);
    return object;
}

/* The JSON header as compact text: "__metadata__" first, then tensors in order. */
static char *header_text(const char *path, const safetensors_tensor *tensors, size_t n,
                         const char *const *meta, size_t n_meta, char *err, size_t err_len) {
    json_t *root = json_object();
    if (root == NULL) {
        set_error(err, err_len, "%s: out of memory", path);
        return NULL;
    }
    if (n_meta > 0) {
        json_t *meta_object = metadata_json(path, meta, n_meta, err, err_len);
        if (meta_object == NULL || json_object_set_new(root, METADATA_KEY, meta_object) != 0) {
            json_decref(root);
            return NULL;
        }
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        if (check_write_tensor(path, &tensors[i], err, err_len) != 0) {
            json_decref(root);
            return NULL;
        }
        if (json_object_get(root, tensors[i].name) != NULL ||
            json_object_set_new(root, tensors[i].name, tensor_entry_json(&tensors[i], offset))) {
            set_error(err, err_len, "%s: tensor '%s' is repeated, not UTF-8 or out of memory", path,
                      tensors[i].name);
            json_decref(root);
            return NULL;
        }
        offset += tensors[i].nbytes;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text == NULL)
        set_error(err, err_len, "%s: cannot encode the header", path);
    return text;
}

/* Length prefix, header padded with spaces to a multiple of 8, then the data. */
static int write_contents(FILE *out, const char *header, const safetensors_tensor *tensors,
                          size_t n) {
    size_t text_len = strlen(header);
    size_t padded_len = (text_len + 7) / 8 * 8;
    uint8_t prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (uint8_t)((uint64_t)padded_len >> (8 * i));
    if (fwrite(prefix, 1, 8, out) != 8 || fwrite(header, 1, text_len, out) != text_len)
        return -1;
    for (size_t i = text_len; i < padded_len; i++)
        if (fputc(' ', out) == EOF)
            return -1;
    for (size_t i = 0; i < n; i++)
        if (tensors[i].nbytes > 0 &&
            fwrite(tensors[i].data, 1, tensors[i].nbytes, out) != tensors[i].nbytes)
            return -1;
    return 0;
}

int safetensors_write(const char *path, const safetensors_tensor *tensors, size_t n,
                      const char *const *meta, size_t n_meta, char *err, size_t err_len) {
    char *header = header_text(path, tensors, n, meta, n_meta, err, err_len);
    if (header == NULL)
        return -1;
    size_t tmp_len = strlen(path) + sizeof ".tmp";
    char *tmp_path = malloc(tmp_len);
    if (tmp_path == NULL) {
        set_error(err, err_len, "%s: out of memory", path);
        free(header);
        return -1;
    }
    snprintf(tmp_path, tmp_len, "%s.tmp", path);
    int rc = -1;
    FILE *out = fopen(tmp_path, "wb");
    if (out == NULL) {
        set_error(err, err_len, "%s: cannot create: %s", tmp_path, strerror(errno));
    } else {
        int write_rc = write_contents(out, header, tensors, n);
        int write_errno = errno;
        if (fclose(out) != 0 && write_rc == 0) {
            write_rc = -1;
            write_errno = errno;
        }
        if (write_rc != 0)
            set_error(err, err_len, "%s: write failed: %s", tmp_path, strerror(write_errno));
        else if (rename(tmp_path, path) != 0)
            set_error(err, err_len, "%s: cannot rename to %s: %s", tmp_path, path, strerror(errno));
        else
            rc = 0;
        if (rc != 0)
            unlink(tmp_path);
    }
    free(tmp_path);
    free(header);
    return rc;
}
