/*
 * fuzz_tmp.h - the file-based readers (safetensors_open, toto_config_load)
 * take a path, so the harnesses write each input into one private folder made
 * once per process under $TMPDIR and removed at exit. A crash leaves the
 * folder behind; libFuzzer has saved the input anyway.
 */
#ifndef TOTO_FUZZ_TMP_H
#define TOTO_FUZZ_TMP_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_check.h"

static char fuzz_tmp_dir[256];

static void fuzz_tmp_cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", fuzz_tmp_dir);
}

/* path of name inside the private folder (made on first use). */
static void fuzz_tmp_path(const char *name, char *path, size_t len) {
    if (fuzz_tmp_dir[0] == '\0') {
        const char *tmp = getenv("TMPDIR");
        snprintf(fuzz_tmp_dir, sizeof fuzz_tmp_dir, "%s/totofuzz.XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        CHECK(mkdtemp(fuzz_tmp_dir) != NULL);
        atexit(fuzz_tmp_cleanup);
    }
    snprintf(path, len, "%s/%s", fuzz_tmp_dir, name);
}

/* Writes data[0..size) to name in the private folder; fills path. */
static void fuzz_tmp_write(const char *name, const uint8_t *data, size_t size, char *path,
                           size_t len) {
    fuzz_tmp_path(name, path, len);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);
}

#endif
