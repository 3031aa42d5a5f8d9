/*
 * methods.h - the results of health, info and metrics, built from the
 * server's state. The HTTP endpoints (to come) serve the same objects.
 */
#ifndef TOTOD_METHODS_H
#define TOTOD_METHODS_H

#include <jansson.h>

#include "server.h"

/* "ok", "degraded" or "starting"; see protocol/PROTOCOL.md. */
const char *methods_health_status(server *s);
json_t *methods_health(server *s);
json_t *methods_info(server *s);
json_t *methods_metrics(server *s);

#endif
