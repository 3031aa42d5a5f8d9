/*
 * methods.h - the results of health, info and metrics, built from the
 * server's state. The HTTP endpoints (to come) serve the same objects.
 */
#ifndef TOTOD_METHODS_H
#define TOTOD_METHODS_H

#include <jansson.h>

#include "server.h"

json_t *methods_health(server *s);
/* What /health shows without the token when one is configured (access.h):
 * status, shutting_down, uptime_s and version; no reasons, model or names. */
json_t *methods_health_public(server *s);
json_t *methods_info(server *s);
json_t *methods_metrics(server *s);

/* The method use_compiled: every worker back on the compiled path after a
 * fallback. The result, or NULL with err (the model has no compiled path). */
json_t *methods_use_compiled(server *s, char *err, size_t err_len);

#endif
