/*
 * json_same.h - structural equality of two jansson values that, unlike
 * json_equal(), tells -0.0 from 0.0 and compares reals bit for bit. Shared by
 * tests/unit/test_json_read.c and tests/fuzz/fuzz_json_read.c.
 */
#ifndef TOTO_TEST_JSON_SAME_H
#define TOTO_TEST_JSON_SAME_H

#include <stdbool.h>
#include <string.h>

#include <jansson.h>

static bool json_same(const json_t *a, const json_t *b) {
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof x) == 0;
    }
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_same(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *key;
        json_t *va;
        json_object_foreach((json_t *)a, key, va) {
            json_t *vb = json_object_get(b, key);
            if (!vb || !json_same(va, vb))
                return false;
        }
        return true;
    }
    default: /* true, false, null */
        return true;
    }
}

#endif
