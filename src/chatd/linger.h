/*
 * Lingering closes: after lws closes a client's connection, chatd keeps
 * reading and dropping what the client still sends, for a bounded time,
 * so that closing with unread data does not reset the connection. A reset
 * reaches the client before the close frame chatd sent, and a proxy in
 * between drops the client at once without forwarding it. Service thread
 * only.
 */
#ifndef CHATD_LINGER_H
#define CHATD_LINGER_H

#include "chatd.h"

/* How long a lingering close reads before it gives up and closes. */
#define LINGER_MS 5000

/*
 * Takes over a duplicate of fd (a socket lws is about to close; call it
 * from LWS_CALLBACK_CLOSED) and reads it until end of file, an error or
 * LINGER_MS. Does nothing while chatd shuts down, or if it cannot (the
 * close then happens as lws does it).
 */
void linger_start(struct chatd *cd, int fd);
/* Closes every lingering socket now (exit). */
void linger_close_all(struct chatd *cd);

#endif
