/*
 * chat-api's request counters: requests by route and status, and a
 * latency histogram per route, shared by the worker threads (one mutex).
 * Counted since the process started; rendered by GET /management/metrics.
 */
#ifndef CHAT_REQMETRICS_H
#define CHAT_REQMETRICS_H

#include "metrics.h"
#include "routes.h"

/* Counts one answered request; route NULL: answered before any route's handler. Any thread. */
void reqmetrics_note(const struct api_route *route, int status, double seconds);
/* Writes chatd_api_requests_total and chatd_api_request_duration_seconds. Any thread. */
void reqmetrics_write(struct metrics_buf *b);

#endif
