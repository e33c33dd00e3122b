/*
 * A connection's output and end (see conn.h). Frames are queued by
 * conn_push() and leave from conn_flush() at the end of each loop turn,
 * or from WRITEABLE when lws still holds an earlier batch; closes are
 * marked here and handed to lws from conn_flush() too, outside any
 * connection's callback. Service thread only; no SQL, no room logic.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "rxguard.h"
#include "wsproto.h"
#include "xmalloc.h"

/* The leave reason and the UserLeft wish of each close code (conn.h). */
static const char *
conn_leave_reason(enum conn_close_code code, int *user_left)
{
	switch (code) {
#define CONN_CLOSE_CASE(name, number, leave_reason, left) \
	case name: \
		*user_left = left; \
		return leave_reason;
		CONN_CLOSE_CODES(CONN_CLOSE_CASE)
#undef CONN_CLOSE_CASE
	case CONN_CLOSE_REFUSED:
		break;
	}
	*user_left = 0;
	return "left";
}

int
conn_close(struct conn *c, enum conn_close_code code, const char *reason)
{
	const struct config *cfg = c->cd->cfg;
	struct frame *f;
	int user_left;
	char *json;

	if (c->close_code != 0 || c->wsi == NULL)
		return 0;
	c->close_code = (int)code;
	c->close_reason = xstrdup(reason);
	c->leave_reason = conn_leave_reason(code, &user_left);
	if (code == CONN_CLOSE_TOO_SLOW)
		c->cd->counters.slow_closes++;
	/* Nothing queued matters any more; the client learns why instead. */
	outq_clear(&c->q);
	outq_init(&c->q, (uint32_t)cfg->queue_high_frames, (uint32_t)cfg->queue_low_frames);
	if (user_left && c->room != NULL) {
		json =
		    wsproto_encode_user_left(c->room->id, c->user_id, c->nickname, c->leave_reason);
		f = frame_create_text(json, strlen(json));
		free(json);
		outq_push(&c->q, f, 1);
		frame_unref(f);
	}
	log_info("closing %s (user %s, room %s): %d %s", c->address, c->user_id,
	    c->room != NULL ? c->room->id : "-", (int)code, reason);
	/* A client that reads nothing never gets WRITEABLE: cut it anyway. */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, CONN_CLOSE_GRACE_S);
	c->cd->lws_rearm = 1;
	lws_callback_on_writable(c->wsi);
	return 1;
}

void
conn_push(struct conn *c, struct frame *f, int high)
{
	int idle;

	if (c->close_code != 0)
		return;
	idle = outq_empty(&c->q);
	if (outq_push(&c->q, f, high) != 0) {
		conn_close(c, CONN_CLOSE_TOO_SLOW, "too slow: high-priority queue full");
		return;
	}
	/* A queue that held frames is on its way out already (conn_flush,
	 * or WRITEABLE, which asks again while frames remain). */
	if (idle && !c->flush_pending) {
		c->flush_pending = 1;
		TAILQ_INSERT_TAIL(&c->cd->flush, c, flush_entry);
	}
}

void
conn_error(struct conn *c, const char *code, const char *message, int64_t retry_after_ms)
{
	struct frame *f;
	char *json;

	json = wsproto_encode_error(code, message, retry_after_ms, 0);
	f = frame_create_text(json, strlen(json));
	free(json);
	conn_push(c, f, 1);
	frame_unref(f);
}

void
conn_missed(struct conn *c, uint64_t n)
{
	if (c->close_code != 0)
		return;
	c->q.dropped += n;
	lws_callback_on_writable(c->wsi);
}

/*
 * Queues a connection whose close frame (close_code, close_reason) should
 * go now. lws is asked from conn_flush(), outside the connection's own
 * callback: Debian's lws 4.1.6 is a _DEBUG build, and with libuv its
 * close-after-callback path (a callback returning -1) closes a second
 * time at once, "uv repeat test", dropping the close frame the first one
 * had queued. A close asked with LWS_TO_KILL_SYNC takes the normal path:
 * close frame with our code and reason, then the client's answer.
 */
static void
conn_close_soon(struct conn *c)
{
	/*
	 * Once handed over, never again: a second close in lws's
	 * AWAITING_CLOSE_ACK cuts the socket at once, with the rest of an
	 * oversize message unread, and the reset that follows makes a proxy
	 * drop the client before it forwards the close frame.
	 */
	if (c->kill_pending || c->lws_closing)
		return;
	c->kill_pending = 1;
	TAILQ_INSERT_TAIL(&c->cd->kill, c, kill_entry);
}

void
conn_refuse(struct conn *c, struct lws *wsi, struct chatd *cd, int status, const char *reason)
{
	c->wsi = wsi;
	c->cd = cd;
	c->close_code = CONN_CLOSE_REFUSED + status;
	c->close_reason = xstrdup(reason);
	conn_close_soon(c);
}

static void
conn_kill(struct chatd *cd)
{
	struct conn *c;
	struct lws *wsi;

	while ((c = TAILQ_FIRST(&cd->kill)) != NULL) {
		TAILQ_REMOVE(&cd->kill, c, kill_entry);
		c->kill_pending = 0;
		c->lws_closing = 1;
		wsi = c->wsi;
		lws_close_reason(wsi, (enum lws_close_status)c->close_code,
		    (unsigned char *)c->close_reason, frame_close_reason_len(c->close_reason));
		/* May run CLOSED (conn_release) for c right here: c is off the list. */
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
		cd->lws_rearm = 1; /* the close-ack timeout lws just set */
	}
}

/*
 * Writes the queues that went non-empty since the last call: libuv runs it
 * after each round of socket events (check) and before the loop blocks
 * (prepare, which covers frames queued by timers). Waiting for lws's
 * WRITEABLE instead would cost one more loop turn and two epoll_ctl calls
 * per connection per message; frames queued in the same turn still leave
 * in one write. A connection with a write still buffered in lws, or
 * closing, goes through WRITEABLE, so lws never holds more than one unsent
 * batch for a client and close frames go where lws expects them.
 */
void
conn_flush(struct chatd *cd)
{
	struct conn *c;

	/* Clients caught sending unmasked frames (rxguard.h). */
	while ((c = rxguard_take()) != NULL)
		conn_close(c, CONN_CLOSE_PROTOCOL_ERROR, "unmasked frame from the client");
	while ((c = TAILQ_FIRST(&cd->flush)) != NULL) {
		TAILQ_REMOVE(&cd->flush, c, flush_entry);
		c->flush_pending = 0;
		if (c->close_code != 0 || lws_partial_buffered(c->wsi)) {
			lws_callback_on_writable(c->wsi);
			continue;
		}
		if (conn_writeable(cd, c->wsi, c) < 0) {
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			cd->lws_rearm = 1;
		}
	}
	conn_kill(cd);
	/*
	 * lws 4.1.6 re-arms its libuv timer only after a socket event, so a
	 * timeout set from chatd's own handles (this flush, libuv timers, the
	 * main loop) would wait for unrelated traffic. A wake through lws's
	 * event pipe is such an event.
	 */
	if (cd->lws_rearm && cd->ctx != NULL) {
		cd->lws_rearm = 0;
		lws_cancel_service(cd->ctx);
	}
}

int
conn_writeable(struct chatd *cd, struct lws *wsi, struct conn *c)
{
	struct frame *first;
	uint64_t dropped;
	uint32_t queued;
	size_t need, n;
	char *json, *msg;
	struct frame *f;

	if (!c->counted || c->lws_closing)
		return 0;
	if ((dropped = outq_take_dropped(&c->q)) > 0 && c->close_code == 0) {
		if (c->room != NULL)
			c->room->dropped_low += dropped;
		cd->dropped_low += dropped;
		msg = xasprintf("%" PRIu64 " chat messages were dropped: read faster", dropped);
		json = wsproto_encode_error("messages_dropped", msg, -1, dropped);
		free(msg);
		f = frame_create_text(json, strlen(json));
		free(json);
		conn_push(c, f, 1);
		frame_unref(f);
	}
	if (outq_empty(&c->q)) {
		if (c->close_code != 0)
			conn_close_soon(c);
		return 0;
	}
	first = c->q.high.len > 0 ? c->q.high.slots[c->q.high.head] : c->q.low.slots[c->q.low.head];
	need = first->len > CONN_SEND_BATCH ? first->len : CONN_SEND_BATCH;
	if (cd->sendbuf_cap < LWS_PRE + need) {
		free(cd->sendbuf);
		cd->sendbuf_cap = LWS_PRE + need;
		cd->sendbuf = xmalloc(cd->sendbuf_cap);
	}
	/*
	 * Whole frames, high lane first, into one write: one system call for
	 * several messages. lws sends whatever the socket did not take before
	 * anything else, so order and framing hold across partial writes.
	 */
	queued = c->q.high.len + c->q.low.len;
	n = outq_fill(&c->q, cd->sendbuf + LWS_PRE, CONN_SEND_BATCH);
	cd->frames_sent += queued - (c->q.high.len + c->q.low.len);
	if (n > 0) {
		cd->frame_writes++;
		metrics_hist_observe(&cd->counters.frames_per_write,
		    (double)(queued - (c->q.high.len + c->q.low.len)));
	}
	if (n > 0 && lws_write(wsi, cd->sendbuf + LWS_PRE, n, LWS_WRITE_RAW) < 0)
		return -1;
	if (!outq_empty(&c->q) || c->close_code != 0)
		lws_callback_on_writable(wsi);
	return 0;
}

void
conn_release(struct conn *c)
{
	struct chatd *cd = c->cd;

	if (c->flush_pending)
		TAILQ_REMOVE(&cd->flush, c, flush_entry);
	if (c->kill_pending)
		TAILQ_REMOVE(&cd->kill, c, kill_entry);
	outq_clear(&c->q);
	free(c->user_id);
	free(c->nickname);
	free(c->address);
	free(c->close_reason);
	free(c->rx);
	memset(c, 0, sizeof *c);
}
