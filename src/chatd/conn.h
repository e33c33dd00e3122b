/*
 * A WebSocket connection's output and end: queueing frames on its two
 * lanes, writing them in batches (at the end of each loop turn, or in
 * WRITEABLE), and closing it with a close code and reason once what must
 * precede the close frame has gone. Rooms, clients and the loop call down
 * into it; it calls nothing of chatd above the frame queue and the
 * protocol encoder. Service thread only.
 */
#ifndef CHATD_CONN_H
#define CHATD_CONN_H

#include <stdint.h>

#include "chatd.h"

/* Bytes of queued frames written per WRITEABLE (one lws_write). */
#define CONN_SEND_BATCH (64 * 1024)
/* Seconds a closing connection gets to take its close frame. */
#define CONN_CLOSE_GRACE_S 3

/*
 * The WebSocket close codes chatd sends (docs/websocket.md), each with
 * the leave reason its session row records (docs/storage.md) and whether
 * a UserLeft frame carrying that reason goes out before the close frame.
 */
#define CONN_CLOSE_CODES(X) \
	/* name, code, leave reason, UserLeft first */ \
	X(CONN_CLOSE_SHUTDOWN, 1001, "server_shutdown", 0) \
	X(CONN_CLOSE_PROTOCOL_ERROR, 1002, "left", 0) \
	X(CONN_CLOSE_INVALID_DATA, 1007, "left", 0) \
	X(CONN_CLOSE_TOO_BIG, 1009, "left", 0) \
	X(CONN_CLOSE_TOKEN_EXPIRED, 4401, "token_expired", 1) \
	X(CONN_CLOSE_BANNED, 4403, "banned", 1) \
	X(CONN_CLOSE_ROOM_CLOSED, 4404, "room_closed", 1) \
	X(CONN_CLOSE_TOO_SLOW, 4408, "too_slow", 0) \
	X(CONN_CLOSE_KICKED, 4409, "kicked", 1)

enum conn_close_code {
#define CONN_CLOSE_ENUM(name, code, leave_reason, user_left) name = code,
	CONN_CLOSE_CODES(CONN_CLOSE_ENUM)
#undef CONN_CLOSE_ENUM
	/* A handshake refused after the upgrade closes with this plus its
	 * HTTP status (4404, 4503, ...); it never joined, so no session. */
	CONN_CLOSE_REFUSED = 4000,
};

/*
 * Queues f (a new reference is taken) on c's high or low lane; the frame
 * leaves at the end of the loop turn. A full high lane closes c with
 * CONN_CLOSE_TOO_SLOW. Ignored once c closes.
 */
void conn_push(struct conn *c, struct frame *f, int high);
/* Queues an Error frame for c (high lane). retry_after_ms < 0: none. */
void conn_error(struct conn *c, const char *code, const char *message, int64_t retry_after_ms);
/*
 * Counts n low-priority messages c will never get (shed from its room's
 * backlog, or past its queue in a gap read from the database); c hears of
 * them at its next write, as of its own queue's drops.
 */
void conn_missed(struct conn *c, uint64_t n);
/*
 * Closes c with code and reason (a copy is kept), dropping whatever is
 * queued; the code's leave reason goes to the session row, after a
 * UserLeft frame if the code wants one. Returns 1 if c was open, 0 if it
 * was already closing.
 */
int conn_close(struct conn *c, enum conn_close_code code, const char *reason);
/*
 * A handshake that passed in CONFIRM_UPGRADE and failed in ESTABLISHED
 * (c never joined): closes it with CONN_CLOSE_REFUSED + status.
 */
void conn_refuse(struct conn *c, struct lws *wsi, struct chatd *cd, int status, const char *reason);
/*
 * WRITEABLE for c (on wsi, c's own): writes a batch of its queue, or once
 * it is closing and drained, has its close frame sent. -1: drop c.
 */
int conn_writeable(struct chatd *cd, struct lws *wsi, struct conn *c);
/* Writes every queue that went non-empty since the last flush (loop hooks). */
void conn_flush(struct chatd *cd);
/*
 * CLOSED: takes c off the flush and close lists and frees what it holds
 * (counts and room membership are the caller's to undo first); c is zeroed.
 */
void conn_release(struct conn *c);

#endif
