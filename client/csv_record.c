/*
 * csv_record.c - the CSV tokenizer. Fields are copied (unquoted) into one
 * growing buffer and handed out as C strings, so the caller can use
 * strtod and friends on them directly.
 */
#include "csv_record.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void csv_reader_init(csv_reader *r, const char *data, size_t len, char delimiter) {
    memset(r, 0, sizeof *r);
    r->data = data;
    r->len = len;
    r->line = 1;
    r->delimiter = delimiter;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        r->pos = 3; /* Excel's byte order mark would otherwise join the first name */
}

void csv_reader_free(csv_reader *r) {
    free(r->text);
    free(r->offsets);
    free(r->fields);
    memset(r, 0, sizeof *r);
}

static int put_char(csv_reader *r, char c) {
    if (r->text_len == r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap * 2 : 256;
        char *text = realloc(r->text, cap);
        if (!text)
            return -1;
        r->text = text;
        r->text_cap = cap;
    }
    r->text[r->text_len++] = c;
    return 0;
}

static int start_field(csv_reader *r) {
    if (r->n_fields == r->fields_cap) {
        size_t cap = r->fields_cap ? r->fields_cap * 2 : 16;
        size_t *offsets = realloc(r->offsets, cap * sizeof *offsets);
        if (!offsets)
            return -1;
        r->offsets = offsets;
        char **fields = realloc(r->fields, cap * sizeof *fields);
        if (!fields)
            return -1;
        r->fields = fields;
        r->fields_cap = cap;
    }
    r->offsets[r->n_fields++] = r->text_len;
    return 0;
}

/* Consumes a line end (LF, CRLF or a lone CR) at pos, if there is one. */
static bool take_line_end(csv_reader *r) {
    if (r->pos >= r->len)
        return false;
    char c = r->data[r->pos];
    if (c != '\n' && c != '\r')
        return false;
    r->pos++;
    if (c == '\r' && r->pos < r->len && r->data[r->pos] == '\n')
        r->pos++;
    r->line++;
    return true;
}

/* A quoted field from just after its opening quote to just after the
 * closing one. */
static int read_quoted(csv_reader *r, size_t start_line, char *err, size_t errlen) {
    for (;;) {
        if (r->pos >= r->len) {
            snprintf(err, errlen, "line %zu: quoted field not closed before the end of input",
                     start_line);
            return -1;
        }
        char c = r->data[r->pos];
        if (c == '"') {
            r->pos++;
            if (r->pos < r->len && r->data[r->pos] == '"') {
                r->pos++;
                if (put_char(r, '"'))
                    goto oom;
                continue;
            }
            return 0;
        }
        if (c == '\n' || (c == '\r' && !(r->pos + 1 < r->len && r->data[r->pos + 1] == '\n')))
            r->line++;
        r->pos++;
        if (put_char(r, c))
            goto oom;
    }
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static bool is_blank_record(const csv_reader *r, bool quoted) {
    if (quoted || r->n_fields != 1)
        return false;
    for (const char *p = r->text; *p; p++)
        if (*p != ' ' && *p != '\t')
            return false;
    return true;
}

static int read_record(csv_reader *r, size_t *line, bool *blank, char *err, size_t errlen) {
    bool any_quoted = false;
    r->text_len = 0;
    r->n_fields = 0;
    *line = r->line;
    if (start_field(r))
        goto oom;
    for (;;) {
        if (r->pos >= r->len || take_line_end(r))
            break;
        char c = r->data[r->pos];
        if (c == r->delimiter) {
            r->pos++;
            if (put_char(r, '\0') || start_field(r))
                goto oom;
        } else if (c == '"' && r->text_len == r->offsets[r->n_fields - 1]) {
            size_t start_line = r->line;
            r->pos++;
            any_quoted = true;
            if (read_quoted(r, start_line, err, errlen))
                return -1;
            if (r->pos < r->len && r->data[r->pos] != r->delimiter && r->data[r->pos] != '\n' &&
                r->data[r->pos] != '\r') {
                snprintf(err, errlen, "line %zu: unexpected '%c' after a closing quote", r->line,
                         r->data[r->pos]);
                return -1;
            }
        } else {
            r->pos++;
            if (put_char(r, c))
                goto oom;
        }
    }
    if (put_char(r, '\0'))
        goto oom;
    for (size_t i = 0; i < r->n_fields; i++)
        r->fields[i] = r->text + r->offsets[i];
    *blank = is_blank_record(r, any_quoted);
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

int csv_reader_next(csv_reader *r, size_t *line, char *err, size_t errlen) {
    while (r->pos < r->len) {
        bool blank;
        if (read_record(r, line, &blank, err, errlen))
            return -1;
        if (!blank)
            return 1;
    }
    return 0;
}
