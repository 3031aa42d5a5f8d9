/*
 * json_kind.h - "a string", "an object"...: what a JSON value is, for error
 * messages that say what was found instead of what was expected. Shared by
 * the checkpoint readers (model/) and the protocol (protocol/).
 */
#ifndef TOTO_JSON_KIND_H
#define TOTO_JSON_KIND_H

#include <jansson.h>

static inline const char *json_kind(const json_t *value) {
    switch (json_typeof(value)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "an unknown JSON value";
}

#endif
