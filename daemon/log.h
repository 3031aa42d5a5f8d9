/*
 * log.h - one line per event on stderr, prefixed with a journald priority
 * (<3> error, <4> warning, <6> info, <7> debug) so systemd files each line at
 * the right level. Safe from any thread: each line is one write(2).
 * Never pass series values here: requests are described by size and
 * series_id only.
 */
#ifndef TOTOD_LOG_H
#define TOTOD_LOG_H

enum { TLOG_ERR = 3, TLOG_WARNING = 4, TLOG_INFO = 6, TLOG_DEBUG = 7 };

void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...)   log_msg(TLOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(TLOG_WARNING, __VA_ARGS__)
#define log_info(...)    log_msg(TLOG_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(TLOG_DEBUG, __VA_ARGS__)

#endif
