/*
 * observe.h - forecast error drift in the daemon (drift.h): a forecast with
 * series_id, start and interval is remembered once answered, and its
 * context scores the earlier forecasts of that series; the method observe
 * brings actual values in directly. Loop thread only.
 */
#ifndef TOTOD_OBSERVE_H
#define TOTOD_OBSERVE_H

#include <jansson.h>

#include "forecast_codec.h"
#include "job.h"

typedef struct server server;

/* The time axis of a parsed forecast's params into j: start and interval
 * (both or neither), or timestamps (one per context step, increasing; the
 * predicted steps follow the last at its last interval). 0, or -1 (err
 * names the field). */
int observe_parse_time_axis(const json_t *params, job *j, proto_error *err);
/* j was accepted: its context scores earlier forecasts; it keeps its scale
 * to be remembered once answered. */
void observe_forecast_accepted(server *s, job *j);
/* j was answered: remember its mean. */
void observe_forecast_answered(server *s, job *j);
/* The method observe: {"scored": N}, or NULL with err. */
json_t *observe_method(server *s, const json_t *params, proto_error *err);
/* The drift scores in DIR/drift.json (--state-dir; $STATE_DIRECTORY under
 * systemd): read at start, written atomically (a temporary file renamed over
 * it) every minute when they changed, and at shutdown. No directory: none. */
void observe_load_state(server *s);
void observe_save_state(server *s);
/* How often the state is written: every minute (test builds: TOTO_FAULT_STATE_EVERY_MS). */
uint64_t observe_state_every_ms(void);

/* health's reason while forecasts drift (false when they do not); logs each
 * episode's start and end once. */
bool observe_drift_reason(server *s, char *why, size_t len);

#endif
