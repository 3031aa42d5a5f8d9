/*
 * dispatch.h - JSON-RPC on a connection: a line in, answers out. Answers
 * health, info, metrics and every error at once; turns each valid forecast
 * into a job on the queue and answers it when the job comes back.
 */
#ifndef TOTOD_DISPATCH_H
#define TOTOD_DISPATCH_H

#include <stddef.h>

#include "conn.h"
#include "job.h"
#include "server.h"

/* One line read from c (a request or a batch array). */
void dispatch_line(server *s, conn *c, const char *line, size_t len);
/* The answer to a line over max_line_bytes (the connection then closes). */
void dispatch_line_too_long(server *s, conn *c);
/* A job is answered (by a worker, or on shutdown): deliver it and free it. */
void dispatch_complete(server *s, job *j);

#endif
