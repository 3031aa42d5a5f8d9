/*
 * csv_time.h - the timestamps of time-series CSV files: parsed to whole
 * seconds since the Unix epoch (UTC) and formatted back as ISO 8601.
 * No time zone database and no locale: offsets written in the text are
 * applied, a time without one is taken as UTC.
 */
#ifndef TOTO_CSV_TIME_H
#define TOTO_CSV_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses one timestamp (leading and trailing blanks ignored):
 *   2018-03-27                         a date, midnight UTC
 *   2016-07-01 00:00[:00[.fff]]        a datetime ('T' or ' ' between)
 *   ...Z, ...+05:30, ...-0400          an offset, converted to UTC
 *   2017-08-17 05-AM, 12-PM            an hour with AM/PM (exchange exports)
 *   1502946000, 1502946000.0           a Unix epoch in seconds; above 1e11 in
 *                                      milliseconds, 1e14 microseconds, 1e17 ns
 * Fractions of a second are rounded to the nearest second. Returns 0 and
 * sets *t, or -1 when the text is not one of these. */
int csv_time_parse(const char *text, int64_t *t);

/* Writes t as "YYYY-MM-DD" when date_only, else "YYYY-MM-DD HH:MM:SS"
 * (UTC). Returns the length snprintf would have written. */
int csv_time_format(int64_t t, bool date_only, char *buf, size_t buflen);

#endif
