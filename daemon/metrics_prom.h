/*
 * metrics_prom.h - the daemon's metrics in the Prometheus text exposition
 * format (version 0.0.4), for GET /metrics.
 *
 * Rendered from the very objects the JSON-RPC metrics and health methods
 * return (methods.h), so the two views can never disagree. Names follow
 * Prometheus conventions: a totod_ prefix, snake_case, _total on counters,
 * base units (latencies in seconds, not the JSON's milliseconds). Pure: no
 * I/O, no libuv.
 */
#ifndef TOTOD_METRICS_PROM_H
#define TOTOD_METRICS_PROM_H

#include <stddef.h>

#include <jansson.h>

#define METRICS_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The exposition text (malloc'd, NUL-terminated, *len bytes), or NULL when out of memory. */
char *metrics_prom_render(const json_t *metrics, const json_t *health, size_t *len);

#endif
