/*
 * chatd's metrics in the Prometheus text format (control request
 * "metrics", docs/operations.md lists them). Service thread.
 */
#ifndef CHATD_METRICS_TEXT_H
#define CHATD_METRICS_TEXT_H

#include "chatd.h"

/* The exposition (heap, caller frees). */
char *metrics_text(struct chatd *cd);

#endif
