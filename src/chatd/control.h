/*
 * The control socket (docs/control-protocol.md): the "chatd-control" raw
 * protocol on CONTROL_SOCKET, one JSON request per line, one reply line
 * each, in request order. Line framing and request decoding come from
 * src/common/ctl.c; this module reads and writes the connections and
 * answers each request type from the live state. Service thread only.
 */
#ifndef CHATD_CONTROL_H
#define CHATD_CONTROL_H

#include <stddef.h>

#include "chatd.h"

struct writer_op;

/* Most request lines held while a reply waits (publish, cluster metrics). */
#define CONTROL_PENDING_MAX 64

/* The lws callback of the "chatd-control" protocol (struct ctlconn). */
int control_callback(
    struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len);
/*
 * The writer finished a publish (op, sent by control connection
 * op->origin): replies if that connection is still there, then runs the
 * lines it held meanwhile.
 */
void control_publish_done(struct chatd *cd, const struct writer_op *op, unsigned recipients);

#endif
