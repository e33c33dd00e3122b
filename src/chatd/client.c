/*
 * WebSocket clients (see client.h). A chat message goes: RECEIVE, here
 * (reassembled, parsed, rate-limited), to the writer; back from it after
 * the commit, here again, to room_deliver(), which queues it for every
 * member through conn.c. Service thread only; no SQL (the writer stores,
 * room.c reads) and no socket writes (conn.c's).
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "clock.h"
#include "conn.h"
#include "control.h"
#include "db.h"
#include "handshake.h"
#include "log.h"
#include "room.h"
#include "writer.h"
#include "wsproto.h"
#include "xmalloc.h"

/* ---------------------------------------------------------------- joining and leaving */

static int
client_established(struct chatd *cd, struct lws *wsi, struct conn *c)
{
	const struct config *cfg = cd->cfg;
	struct handshake hs;

	handshake_check(cd, wsi, &hs);
	if (hs.status != 0) {
		/* Only if the state changed since CONFIRM_UPGRADE. */
		log_info("refused %s after upgrade: %d %s", hs.address, hs.status, hs.reason);
		conn_refuse(c, wsi, cd, hs.status, hs.reason);
		return 0;
	}
	memset(c, 0, sizeof *c);
	c->wsi = wsi;
	c->cd = cd;
	c->serial = ++cd->next_serial;
	c->user_id = xstrdup(hs.user_id);
	c->nickname = xstrdup(hs.nickname);
	c->address = xstrdup(hs.address);
	/* Token mode: rights come from the token alone. */
	c->is_admin =
	    cd->cfg->token_secret != NULL ? hs.is_admin : room_is_admin(hs.room, hs.user_id);
	outq_init(&c->q, (uint32_t)cfg->queue_high_frames, (uint32_t)cfg->queue_low_frames);
	c->counted = 1;
	handshake_count(cd, c->address, 1);
	log_info("join %s: user %s%s room %s", c->address, c->user_id,
	    c->is_admin ? " (admin)" : "", hs.room->id);
	room_join(hs.room, c);
	if (hs.token_exp_ms > 0)
		lws_set_timer_usecs(wsi, (lws_usec_t)(hs.token_exp_ms - clock_wall_ms()) * 1000);
	return 0;
}

static void
client_closed(struct chatd *cd, struct conn *c)
{
	if (c->counted) {
		if (c->room != NULL)
			room_leave(c->room, c);
		log_info("left %s: user %s (%s)", c->address, c->user_id,
		    c->leave_reason != NULL ? c->leave_reason : "left");
		handshake_count(cd, c->address, -1);
	}
	conn_release(c);
}

/* ---------------------------------------------------------------- requests */

static void
client_submit_message(struct conn *c, int kind, char **text, char **event_type)
{
	struct room *r = c->room;
	struct writer_op *op;

	op = writer_op_create(WRITER_MESSAGE);
	op->room_id = xstrdup(r->id);
	op->kind = kind;
	op->user_id = xstrdup(c->user_id);
	op->nickname = xstrdup(c->nickname);
	op->is_admin = c->is_admin;
	op->text = *text;
	*text = NULL;
	if (event_type != NULL) {
		op->event_type = *event_type;
		*event_type = NULL;
	}
	op->ts_ms = clock_wall_ms();
	op->origin = c->serial;
	if (writer_submit(c->cd->writer, op) != 0)
		conn_error(c, "overloaded", "the server is overloaded; try again", 1000);
}

static void
client_request(struct chatd *cd, struct conn *c, struct wsproto_request *req)
{
	struct room *r = c->room;
	struct writer_op *op;
	int64_t wait, expires;

	if (req->type != WSPROTO_MESSAGE && !c->is_admin) {
		conn_error(c, "forbidden", "only a room admin may do that", -1);
		return;
	}
	switch (req->type) {
	case WSPROTO_MESSAGE:
		if (!c->is_admin &&
		    (wait = ratelimit_check(&r->rl, c->user_id, clock_mono_ms())) > 0) {
			conn_error(c, "rate_limited", "one message per interval: wait", wait);
			return;
		}
		client_submit_message(c, DB_MESSAGE_CHAT, &req->content, NULL);
		break;
	case WSPROTO_CUSTOM_EVENT:
		client_submit_message(c, DB_MESSAGE_CUSTOM, &req->payload_json, &req->event_type);
		break;
	case WSPROTO_BAN:
		expires =
		    req->duration_seconds > 0 ? clock_wall_ms() + req->duration_seconds * 1000 : 0;
		room_ban(r, req->user_id, req->reason, expires);
		/* The room's admin bans here: the record is chatd's to write. */
		op = writer_op_create(WRITER_BAN);
		op->room_id = xstrdup(r->id);
		op->user_id = xstrdup(req->user_id);
		op->reason = req->reason != NULL ? xstrdup(req->reason) : NULL;
		op->expires_at = expires;
		op->ts_ms = clock_wall_ms();
		writer_submit(cd->writer, op);
		log_info("room %s: %s banned %s", r->id, c->user_id, req->user_id);
		break;
	case WSPROTO_UNBAN:
		room_ban_remove(r, req->user_id);
		op = writer_op_create(WRITER_UNBAN);
		op->room_id = xstrdup(r->id);
		op->user_id = xstrdup(req->user_id);
		op->ts_ms = clock_wall_ms();
		writer_submit(cd->writer, op);
		log_info("room %s: %s unbanned %s", r->id, c->user_id, req->user_id);
		break;
	case WSPROTO_KICK:
		room_kick(r, req->user_id, req->reason);
		log_info("room %s: %s kicked %s", r->id, c->user_id, req->user_id);
		break;
	}
}

/* ---------------------------------------------------------------- reading */

/*
 * Between messages a connection holds no reassembly buffer: most
 * connections are idle most of the time, and a malloc per message costs
 * little next to parsing and storing it.
 */
static void
client_rx_reset(struct conn *c)
{
	c->rx_inmsg = 0;
	c->rx_len = 0;
	free(c->rx);
	c->rx = NULL;
	c->rx_cap = 0;
}

/*
 * A piece of an oversize message: dropped, and 1009 once the message ends.
 * Closing while the client is still sending it would close chatd's socket
 * with unread data, and a proxy in between (nginx, Apache) then fails its
 * write and drops the client without the close frame. A message that would
 * make chatd drop more than CLIENT_DISCARD_MAX is cut at once.
 */
static int
client_rx_discard(struct conn *c, struct lws *wsi, size_t len)
{
	size_t left = lws_remaining_packet_payload(wsi);

	c->rx_discard += len;
	if ((lws_is_final_fragment(wsi) && left == 0) || c->rx_discard + left > CLIENT_DISCARD_MAX)
		conn_close(c, CONN_CLOSE_TOO_BIG, "message too big");
	return 0;
}

static int
client_receive(struct chatd *cd, struct lws *wsi, struct conn *c, const void *in, size_t len)
{
	const struct config *cfg = cd->cfg;
	struct wsproto_request req;
	const char *code;
	char *message = NULL;
	size_t want;

	if (!c->counted || c->room == NULL || c->close_code != 0)
		return 0;
	if (c->rx_discard > 0)
		return client_rx_discard(c, wsi, len);
	if (!c->rx_inmsg) {
		c->rx_inmsg = 1;
		c->rx_len = 0;
		c->rx_binary = lws_frame_is_binary(wsi);
	}
	/* lws has no message size limit: enforce ours before buffering. */
	want = c->rx_len + len + lws_remaining_packet_payload(wsi);
	if (want > (size_t)cfg->max_frame_bytes) {
		log_info("closing %s (user %s): message over %lld bytes", c->address, c->user_id,
		    cfg->max_frame_bytes);
		client_rx_reset(c);
		c->rx_discard = 1;
		return client_rx_discard(c, wsi, len);
	}
	if (c->rx_cap < c->rx_len + len + 1) {
		/* Pieces are at most rx_buffer_size: grow by doubling, not per piece. */
		c->rx_cap = c->rx_cap < 1024 ? 1024 : c->rx_cap * 2;
		if (c->rx_cap < c->rx_len + len + 1)
			c->rx_cap = c->rx_len + len + 1;
		c->rx = xrealloc(c->rx, c->rx_cap);
	}
	memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
		return 0;

	c->rx[c->rx_len] = '\0';
	if (c->rx_binary)
		conn_error(c, "binary_not_supported", "send JSON text frames", -1);
	else if (wsproto_parse((const char *)c->rx, c->rx_len, (size_t)cfg->max_message_bytes, &req,
		     &code, &message) != 0) {
		conn_error(c, code, message != NULL ? message : code, -1);
		free(message);
	} else {
		client_request(cd, c, &req);
		wsproto_request_clear(&req);
	}
	client_rx_reset(c);
	return 0;
}

/* ---------------------------------------------------------------- writer results */

static struct conn *
client_find(struct room *r, uint64_t serial)
{
	struct conn *c;

	if (r == NULL)
		return NULL;
	TAILQ_FOREACH(c, &r->members, entry)
	{
		if (c->serial == serial)
			return c;
	}
	return NULL;
}

/* A message operation back from the writer, stored or failed. */
static void
client_writer_done(struct writer_op *op, void *arg)
{
	struct chatd *cd = arg;
	struct room *r = room_find(cd, op->room_id);
	unsigned recipients = 0;
	struct conn *c;

	if (op->failed) {
		c = op->from_ctl ? NULL : client_find(r, op->origin);
		if (c != NULL && op->failed == WRITER_MSG_LATER)
			/* Nothing wrong with the message: storage is full or held up. */
			conn_error(c, "overloaded",
			    "the message could not be stored now (the server's health says why); "
			    "try again",
			    1000);
		else if (c != NULL)
			conn_error(c, "internal_error", "the message could not be stored", -1);
	} else if (r != NULL)
		recipients = room_deliver(r, op);
	if (op->from_ctl)
		control_publish_done(cd, op, recipients);
}

/* ---------------------------------------------------------------- the protocol */

int
client_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct chatd *cd = ctx != NULL ? lws_context_user(ctx) : NULL;
	struct conn *c = user;

	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return handshake_confirm(cd, wsi, in);
	case LWS_CALLBACK_HTTP:
		/* Not an upgrade: chatd serves only WebSockets. */
		if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, "WebSocket endpoint") != 0)
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_ESTABLISHED:
		return client_established(cd, wsi, c);
	case LWS_CALLBACK_RECEIVE:
		return client_receive(cd, wsi, c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return conn_writeable(cd, wsi, c);
	case LWS_CALLBACK_TIMER:
		/* Token mode: the token ran out; its rights go with it. */
		if (c->counted)
			conn_close(c, CONN_CLOSE_TOKEN_EXPIRED, "token expired");
		return 0;
	case LWS_CALLBACK_CLOSED:
		client_closed(cd, c);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		/* Once per protocol per vhost, sometimes for nothing: idempotent. */
		if (cd != NULL && cd->writer != NULL)
			writer_drain(cd->writer, client_writer_done, cd);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}
