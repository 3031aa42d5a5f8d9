/*
 * csv_record.h - splits CSV text into records of fields (RFC 4180 and the
 * usual deviations): quoted fields with "" escapes and embedded delimiters
 * or newlines, LF, CRLF or CR line ends, a UTF-8 byte order mark at the
 * start. Works on a buffer in memory; knows nothing of columns or types.
 */
#ifndef TOTO_CSV_RECORD_H
#define TOTO_CSV_RECORD_H

#include <stddef.h>

typedef struct csv_reader {
    const char *data;
    size_t len, pos;
    size_t line; /* physical line of the next character, 1-based */
    char delimiter;
    char *text; /* the current record's fields, each NUL-terminated */
    size_t text_len, text_cap;
    size_t *offsets; /* where each field starts in text */
    char **fields;   /* valid until the next csv_reader_next */
    size_t n_fields, fields_cap;
} csv_reader;

void csv_reader_init(csv_reader *r, const char *data, size_t len, char delimiter);
void csv_reader_free(csv_reader *r);

/* Reads the next record, skipping blank lines (nothing but blanks).
 * Returns 1 with r->fields, r->n_fields and *line (where the record
 * starts), 0 at the end, -1 with a message in err (an unterminated quote,
 * text after a closing quote, no memory). */
int csv_reader_next(csv_reader *r, size_t *line, char *err, size_t errlen);

#endif
