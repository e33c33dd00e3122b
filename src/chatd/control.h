/*
 * The control socket's request handlers (docs/control-protocol.md): line
 * framing and request decoding come from src/common/ctl.c; this file
 * answers each type from the live state. Service thread only.
 */
#ifndef CHATD_CONTROL_H
#define CHATD_CONTROL_H

#include <stddef.h>

#include "chatd.h"

struct writer_op;

/* Most request lines held while a publish waits for its commit. */
#define CONTROL_PENDING_MAX 64

/* Feeds bytes read from cc; -1 means drop the connection. */
int control_feed(struct ctlconn *cc, const char *data, size_t len);
/* The writer finished cc's publish (op): reply, then run held lines. */
void control_publish_done(struct ctlconn *cc, const struct writer_op *op, unsigned recipients);
/* Frees what cc holds (RAW_CLOSE). */
void control_conn_clear(struct ctlconn *cc);

#endif
