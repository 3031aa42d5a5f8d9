/*
 * csv_time.c - timestamp text to epoch seconds and back. Calendar
 * arithmetic is Howard Hinnant's days_from_civil/civil_from_days, exact for
 * any proleptic Gregorian date, so neither timegm() nor TZ is involved.
 */
#include "csv_time.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECONDS_PER_DAY 86400

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Exactly n decimal digits at *p, advancing *p. */
static bool take_digits(const char **p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool take_char(const char **p, char c) {
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

/* "AM"/"PM" in any case; 12-AM is midnight, 12-PM noon. */
static bool take_am_pm(const char **p, int *hour) {
    char a = (char)toupper((unsigned char)(*p)[0]);
    char b = (char)toupper((unsigned char)(*p)[1]);
    if ((a != 'A' && a != 'P') || b != 'M' || *hour < 1 || *hour > 12)
        return false;
    *hour = *hour % 12 + (a == 'P' ? 12 : 0);
    *p += 2;
    return true;
}

/* Z, +hh, +hh:mm or +hhmm (or -): seconds east of UTC. */
static bool take_offset(const char **p, int *offset_s) {
    *offset_s = 0;
    if (take_char(p, 'Z') || take_char(p, 'z'))
        return true;
    char sign = **p;
    if (sign != '+' && sign != '-')
        return true;
    (*p)++;
    int hh, mm = 0;
    if (!take_digits(p, 2, &hh))
        return false;
    take_char(p, ':');
    if (isdigit((unsigned char)**p) && !take_digits(p, 2, &mm))
        return false;
    if (hh > 23 || mm > 59)
        return false;
    *offset_s = (sign == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
    return true;
}

/* After HH:MM: optional :SS and a fraction; returns the fraction too. */
static bool take_seconds(const char **p, int *sec, double *fraction) {
    *sec = 0;
    *fraction = 0;
    if (!take_char(p, ':'))
        return true;
    if (!take_digits(p, 2, sec) || *sec > 59)
        return false;
    if (**p != '.' && **p != ',')
        return true;
    const char *start = ++(*p);
    double scale = 0.1;
    while (isdigit((unsigned char)**p)) {
        *fraction += (**p - '0') * scale;
        scale /= 10;
        (*p)++;
    }
    return *p > start;
}

static int parse_iso(const char *p, const char *end, int64_t *t) {
    int year, month, day, hour = 0, min = 0, sec = 0, offset_s = 0;
    double fraction = 0;
    if (!take_digits(&p, 4, &year) || !take_char(&p, '-') || !take_digits(&p, 2, &month) ||
        !take_char(&p, '-') || !take_digits(&p, 2, &day))
        return -1;
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
        return -1;
    if (p < end) {
        if (!take_char(&p, 'T') && !take_char(&p, ' '))
            return -1;
        if (!take_digits(&p, 2, &hour))
            return -1;
        if ((*p == '-' || *p == ' ') && isalpha((unsigned char)p[1])) {
            p++;
            if (!take_am_pm(&p, &hour))
                return -1;
        } else if (!take_char(&p, ':') || !take_digits(&p, 2, &min) ||
                   !take_seconds(&p, &sec, &fraction)) {
            return -1;
        }
        if (hour > 23 || min > 59 || !take_offset(&p, &offset_s))
            return -1;
    }
    if (p != end)
        return -1;
    int64_t days = days_from_civil(year, month, day);
    *t = days * SECONDS_PER_DAY + hour * 3600 + min * 60 + sec - offset_s +
         (fraction >= 0.5 ? 1 : 0);
    return 0;
}

/* [-]digits[.digits], nothing else: strtod alone would also take hex,
 * exponents and "inf". */
static int parse_epoch(const char *p, const char *end, int64_t *t) {
    const char *s = p;
    if (*s == '-')
        s++;
    size_t int_digits = 0;
    while (s < end && isdigit((unsigned char)*s))
        s++, int_digits++;
    if (s < end && *s == '.')
        for (s++; s < end && isdigit((unsigned char)*s);)
            s++;
    if (s != end || int_digits == 0 || int_digits > 19)
        return -1;
    double v = strtod(p, NULL);
    double mag = fabs(v);
    if (mag > 1e17)
        v /= 1e9;
    else if (mag > 1e14)
        v /= 1e6;
    else if (mag > 1e11)
        v /= 1e3;
    *t = (int64_t)floor(v + 0.5);
    return 0;
}

int csv_time_parse(const char *text, int64_t *t) {
    while (*text == ' ' || *text == '\t')
        text++;
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == text)
        return -1;
    /* A date has '-' after four digits; an epoch never does. */
    if (end - text >= 5 && isdigit((unsigned char)text[0]) && text[4] == '-')
        return parse_iso(text, end, t);
    return parse_epoch(text, end, t);
}

int csv_time_format(int64_t t, bool date_only, char *buf, size_t buflen) {
    int64_t days = t >= 0 ? t / SECONDS_PER_DAY : -((-t + SECONDS_PER_DAY - 1) / SECONDS_PER_DAY);
    int64_t secs = t - days * SECONDS_PER_DAY;
    int64_t year;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    if (date_only)
        return snprintf(buf, buflen, "%04lld-%02d-%02d", (long long)year, month, day);
    return snprintf(buf, buflen, "%04lld-%02d-%02d %02d:%02d:%02d", (long long)year, month, day,
                    (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
}
