/*
 * WebSocket clients (see client.h). A chat message goes: RECEIVE, here
 * (reassembled, parsed, rate-limited), to the writer; back from it after
 * the commit, here again: published to the other nodes (cluster.c) and
 * offered to sequence.c, which delivers the room's messages in seq order
 * through room.c and conn.c. A client's first connection to a room on
 * this node, and its last, are told to the other nodes from here too. Service thread only; no SQL (the writer stores,
 * room.c reads) and no socket writes (conn.c's).
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "clock.h"
#include "cluster.h"
#include "conn.h"
#include "control.h"
#include "db.h"
#include "handshake.h"
#include "jsonutil.h"
#include "linger.h"
#include "log.h"
#include "room.h"
#include "rxguard.h"
#include "sequence.h"
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
		handshake_counted(cd, &hs);
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
	cd->counters.connections++;
	handshake_count(cd, c->address, 1);
	log_info("join %s: user %s%s room %s", c->address, c->user_id,
	    c->is_admin ? " (admin)" : "", hs.room->id);
	/* While nobody was here, the room's messages were not followed
	 * closely: the welcome's last_seq must be the room's. */
	if (hs.room->nconns == 0 && cd->cluster != NULL)
		(void)sequence_refresh(hs.room);
	if (room_join(hs.room, c))
		cluster_presence(cd, hs.room, c->user_id, c->nickname, 1);
	c->valid_ms = clock_mono_ms();
	rxguard_bind(lws_get_socket_fd(wsi), c);
	if (hs.token_exp_ms > 0)
		lws_set_timer_usecs(wsi, (lws_usec_t)(hs.token_exp_ms - clock_wall_ms()) * 1000);
	return 0;
}

static void
client_closed(struct chatd *cd, struct conn *c)
{
	if (c->wsi != NULL)
		rxguard_forget(lws_get_socket_fd(c->wsi));
	if (c->linger)
		linger_start(cd, lws_get_socket_fd(c->wsi));
	if (c->counted) {
		struct room *r = c->room;

		if (r != NULL && room_leave(r, c))
			cluster_presence(cd, r, c->user_id, c->nickname, 0);
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
	/* In a cluster the user may post through other nodes too: the database decides. */
	if (c->cd->cluster != NULL && kind == DB_MESSAGE_CHAT && !c->is_admin)
		op->rate_interval_ms = r->rl.interval_ms;
	if (writer_submit(c->cd->writer, op) != 0) {
		c->cd->counters.overloaded++;
		conn_error(c, "overloaded", "the server is overloaded; try again", 1000);
	} else if (kind == DB_MESSAGE_CHAT)
		c->cd->counters.messages_chat++;
	else
		c->cd->counters.messages_custom++;
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
			cd->counters.rate_limited++;
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
		cluster_admin(cd, CLUSTER_BAN, r->id, req->user_id, req->reason, expires);
		log_info("room %s: %s banned %s", r->id, c->user_id, req->user_id);
		break;
	case WSPROTO_UNBAN:
		room_ban_remove(r, req->user_id);
		op = writer_op_create(WRITER_UNBAN);
		op->room_id = xstrdup(r->id);
		op->user_id = xstrdup(req->user_id);
		op->ts_ms = clock_wall_ms();
		writer_submit(cd->writer, op);
		cluster_admin(cd, CLUSTER_UNBAN, r->id, req->user_id, NULL, 0);
		log_info("room %s: %s unbanned %s", r->id, c->user_id, req->user_id);
		break;
	case WSPROTO_KICK:
		room_kick(r, req->user_id, req->reason);
		cluster_admin(cd, CLUSTER_KICK, r->id, req->user_id, req->reason, 0);
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
 * A piece of an oversize message: dropped, and 1009 once the message ends,
 * so that the client's answer to the close comes right behind it. A
 * message that would make chatd drop more than CLIENT_DISCARD_MAX gets its
 * 1009 at once; lws then reads and drops the rest while it waits for the
 * answer, for at most its close-ack timeout (5 s), and cuts the connection
 * after that (a lingering close).
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
	if ((code = rxguard_violation(lws_get_socket_fd(wsi))) != NULL) {
		/* Not a word of it is acted on (RFC 6455 5.1). */
		conn_close(c, CONN_CLOSE_PROTOCOL_ERROR, code);
		return 0;
	}
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

/* ---------------------------------------------------------------- protocol errors */

/*
 * The client's close frame, before lws echoes it. lws 4.1.6 answers an
 * invalid close code with 1002 itself but echoes any reason bytes; a
 * reason that is not UTF-8 gets 1007 here, and a one-byte body (a code
 * cut short) 1002, as does a client caught sending unmasked frames.
 * lws_close_reason() plus -1 is lws's documented way to refuse with a
 * code: it sends that close frame instead of the echo.
 */
static int
client_peer_close(struct lws *wsi, struct conn *c, const unsigned char *in, size_t len)
{
	static const char bad_reason[] = "close reason is not UTF-8";
	static const char bad_code[] = "close frame with a one-byte body";
	const char *why = rxguard_violation(lws_get_socket_fd(wsi));
	enum conn_close_code code = CONN_CLOSE_PROTOCOL_ERROR;

	if (why != NULL)
		; /* the close frame itself may be the unmasked frame */
	else if (len >= 2 && !utf8_valid((const char *)in + 2, len - 2)) {
		code = CONN_CLOSE_INVALID_DATA;
		why = bad_reason;
	} else if (len == 1)
		why = bad_code;
	else {
		/* A good close: lws echoes it and closes. */
		c->lws_closing = 1;
		return 0;
	}
	lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why, strlen(why));
	if (c->counted)
		log_info("closing %s (user %s): %d %s", c->address, c->user_id, (int)code, why);
	c->lws_closing = 1;
	return -1;
}

/*
 * lws is closing the connection (its protocol is being dropped) and chatd
 * did not ask. lws 4.1.6 drops a connection without a close frame on two
 * protocol errors: a control frame announcing more than 125 bytes, and a
 * 64-bit length with its top bit set (lib/roles/ws/ops-ws.c,
 * "illegal_ctl_length", "b63 of length"); on the others (fragmented
 * control frame, unknown opcode, RSV bits, a continuation out of place)
 * it closes with a 1002 of its own, which this keeps. lws only sends the
 * close frame if a close reason is set when it gets here.
 *
 * It also gets here when the client went (end of file, reset) -- the
 * socket then reads as such and nobody would read a close frame -- and
 * for its keepalive hangup, WS_IDLE_TIMEOUT_SECONDS after the last pong:
 * a client that answers no ping is not listening either. Both go as
 * before, without a close frame.
 */
static void
client_dropped(struct chatd *cd, struct lws *wsi, struct conn *c)
{
	static const char reason[] = "protocol error";
	int64_t idle_ms = clock_mono_ms() - c->valid_ms;
	unsigned char byte;
	ssize_t n;
	int fd;

	if (!c->counted || c->close_code != 0 || c->lws_closing)
		return;
	c->lws_closing = 1;
	if (idle_ms >= cd->cfg->ws_idle_timeout_seconds * 1000 - CLIENT_HANGUP_SLACK_MS)
		return;
	if ((fd = lws_get_socket_fd(wsi)) < 0)
		return;
	n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
		return;
	/* The rest of the bad frame may still be on its way. */
	c->linger = 1;
	/* lws's own 1002 (lws_get_close_length is its pending close reason). */
	if (lws_get_close_length(wsi) > 0)
		return;
	log_info("closing %s (user %s): %d %s", c->address, c->user_id,
	    (int)CONN_CLOSE_PROTOCOL_ERROR, reason);
	lws_close_reason(wsi, (enum lws_close_status)CONN_CLOSE_PROTOCOL_ERROR,
	    (unsigned char *)reason, sizeof reason - 1);
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

/*
 * A message this node's writer stored (a chat message on the low lane, a
 * CustomEvent on the high one): published to the other nodes, and to
 * every member here in seq order, unless r closed or chatd is shutting
 * down. Returns the members here it is for.
 */
static unsigned
client_deliver(struct chatd *cd, struct room *r, const struct writer_op *op)
{
	unsigned recipients = r->closed || cd->shutting_down ? 0 : r->nconns;
	char *json;

	if (op->kind == DB_MESSAGE_CHAT)
		json = wsproto_encode_message(op->id, op->seq, r->id, op->user_id, op->nickname,
		    op->is_admin, op->text, op->ts_ms);
	else
		json = wsproto_encode_custom_event(op->id, op->seq, r->id, op->user_id,
		    op->nickname, op->is_admin, op->event_type, op->text, op->ts_ms);
	cluster_message(cd, r, op->seq, op->kind, op->user_id, json);
	sequence_offer(r, op->seq, op->kind, op->user_id, json, 0);
	free(json);
	return recipients;
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
		if (c != NULL && op->failed == WRITER_MSG_RATE_LIMITED) {
			cd->counters.rate_limited++;
			conn_error(c, "rate_limited", "one message per interval: wait",
			    op->retry_after_ms);
		} else if (c != NULL && op->failed == WRITER_MSG_LATER)
			/* Nothing wrong with the message: storage is full or held up. */
			conn_error(c, "overloaded",
			    "the message could not be stored now (the server's health says why); "
			    "try again",
			    1000);
		else if (c != NULL)
			conn_error(c, "internal_error", "the message could not be stored", -1);
	} else if (r != NULL)
		recipients = client_deliver(cd, r, op);
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
	int rc;

	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
		/* in: the socket just accepted. */
		rxguard_watch((int)(intptr_t)in);
		return 0;
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		rc = handshake_confirm(cd, wsi, in);
		/* Refused with a status: the next request starts over. */
		if (rc > 0)
			rxguard_watch(lws_get_socket_fd(wsi));
		return rc;
	case LWS_CALLBACK_CLOSED_HTTP:
		rxguard_forget(lws_get_socket_fd(wsi));
		break;
	case LWS_CALLBACK_HTTP:
		/* Not an upgrade: chatd serves only WebSockets. */
		rxguard_watch(lws_get_socket_fd(wsi));
		if (handshake_answer(wsi, HTTP_STATUS_NOT_FOUND, "not_found",
			"a WebSocket endpoint: ask for an upgrade") != 0)
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_ESTABLISHED:
		return client_established(cd, wsi, c);
	case LWS_CALLBACK_RECEIVE:
		return client_receive(cd, wsi, c, in, len);
	case LWS_CALLBACK_RECEIVE_PONG:
		/* What lws counts as a sign of life (client_dropped). */
		c->valid_ms = clock_mono_ms();
		return 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		return client_peer_close(wsi, c, in, len);
	case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
		client_dropped(cd, wsi, c);
		return 0;
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
