/*
 * fuzz_json_read.c - libFuzzer harness: protocol/json_read.c against
 * jansson's json_loadb() on arbitrary bytes. scripts/fuzz builds and runs it
 * (tests/fuzz/meson.build); by hand, from the repository root:
 *
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -D_DEFAULT_SOURCE \
 *       -Iprotocol -Itests tests/fuzz/fuzz_json_read.c protocol/json_read.c \
 *       -ljansson -lm -o /tmp/fuzz_json_read
 *   mkdir -p /tmp/fuzz_json_corpus
 *   /tmp/fuzz_json_read -max_total_time=60 -max_len=4096 /tmp/fuzz_json_corpus
 *
 * It aborts when one parser accepts what the other rejects, or when both
 * accept and the values differ (reals compared bit for bit). Input with a NUL
 * byte must be rejected (jansson stops reading at a NUL and may accept it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_read.h"
#include "json_same.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_error_t e1, e2;
    json_t *ours = proto_json_read((const char *)data, size, &e1);
    if (memchr(data, 0, size)) {
        if (ours)
            abort();
        return 0;
    }
    json_t *theirs = json_loadb((const char *)data, size, JSON_DECODE_ANY, &e2);
    if (!ours != !theirs || (ours && !json_same(ours, theirs)))
        abort();
    json_decref(ours);
    json_decref(theirs);
    return 0;
}
