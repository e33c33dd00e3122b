/*
 * chatd's event loop (see server.h): a libuv loop that libwebsockets runs
 * on as a foreign loop, the "chatd" WebSocket protocol (handshake checks,
 * reading and reassembling client messages, batched raw writes of queued
 * frames), the "chatd-control" raw protocol on the Unix control socket,
 * the sliced fan-out, writer results and graceful shutdown. Service thread
 * only; the signal handler only sets a flag and calls lws_cancel_service().
 * Never writes SQL (the writer does, room.c reads).
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "db.h"
#include "jsonutil.h"
#include "log.h"
#include "room.h"
#include "server.h"
#include "token.h"
#include "writer.h"
#include "wsproto.h"
#include "xmalloc.h"

#define SERVER_TICK_MS 10000
/* Longest query argument we read (user_id, nickname, token), decoded. */
#define SERVER_ARG_MAX 1024

static volatile sig_atomic_t server_signalled;
static struct lws_context *server_ctx; /* for server_signal() */

/* What a handshake asks for, and the verdict. */
struct server_hs {
	char uri[256];
	const char *room_id;
	char user_id[SERVER_ARG_MAX];
	char nickname[SERVER_ARG_MAX];
	char address[128];
	int is_admin; /* token mode: the token's admin claim */
	int64_t token_exp_ms; /* token mode: when the token expires */
	struct room *room;
	int status; /* 0: accepted, else the HTTP status */
	const char *reason;
};

int64_t
server_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
server_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
server_signal(void)
{
	server_signalled = 1;
	if (server_ctx != NULL)
		lws_cancel_service(server_ctx);
}

static void
server_lws_log(int level, const char *line)
{
	size_t len = strlen(line);

	/* lws ends its lines with a newline; ours adds one. */
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (level & LLL_ERR)
		log_error("lws: %.*s", (int)len, line);
	else if (level & LLL_WARN)
		log_warn("lws: %.*s", (int)len, line);
	else
		log_debug("lws: %.*s", (int)len, line);
}

/* ---------------------------------------------------------------- addresses */

static int
server_is_loopback(const char *a)
{
	return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 ||
	    strncmp(a, "::ffff:127.", 11) == 0;
}

/*
 * The client address: the peer, or behind a local proxy the last
 * X-Forwarded-For entry (the one the proxy appended; earlier ones are
 * whatever the client claimed).
 */
static void
server_client_address(struct lws *wsi, char *out, size_t len)
{
	char xff[2048], *last, *end;
	int n;

	out[0] = '\0';
	lws_get_peer_simple(wsi, out, len);
	if (out[0] == '\0')
		strncpy(out, "unknown", len - 1);
	if (!server_is_loopback(out) || lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) <= 0)
		return;
	n = lws_hdr_copy(wsi, xff, sizeof xff, WSI_TOKEN_X_FORWARDED_FOR);
	if (n <= 0)
		return;
	last = strrchr(xff, ',');
	last = last != NULL ? last + 1 : xff;
	while (*last == ' ' || *last == '\t')
		last++;
	end = last + strlen(last);
	while (end > last && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (*last != '\0' && strlen(last) < len)
		memcpy(out, last, strlen(last) + 1);
}

static unsigned
server_addr_count(struct chatd *cd, const char *address)
{
	struct addr_count *ac = strmap_get(&cd->addresses, address);

	return ac != NULL ? ac->n : 0;
}

static void
server_addr_add(struct chatd *cd, const char *address, int delta)
{
	struct addr_count *ac = strmap_get(&cd->addresses, address);

	if (ac == NULL) {
		if (delta < 0)
			return;
		ac = xcalloc(1, sizeof *ac);
		strmap_set(&cd->addresses, address, ac);
	}
	if (delta > 0)
		ac->n++;
	else if (--ac->n == 0)
		free(strmap_remove(&cd->addresses, address));
}

/* ---------------------------------------------------------------- handshake */

static int
server_refuse(struct server_hs *hs, int status, const char *reason)
{
	hs->status = status;
	hs->reason = reason;
	return -1;
}

/* Capacity, path, user_id and nickname. buf holds query arguments. */
static int
server_handshake_checks(
    struct chatd *cd, struct lws *wsi, struct server_hs *hs, char *buf, size_t buflen)
{
	const struct config *cfg = cd->cfg;
	const char *why, *uid, *nick, *p;

	server_client_address(wsi, hs->address, sizeof hs->address);

	if (cd->shutting_down)
		return server_refuse(hs, 503, "server shutting down");
	if ((long long)cd->nconns >= cfg->max_connections)
		return server_refuse(hs, 503, "too many connections (MAX_CONNECTIONS)");
	if (cfg->max_connections_per_address > 0 &&
	    (long long)server_addr_count(cd, hs->address) >= cfg->max_connections_per_address)
		return server_refuse(hs, 429, "too many connections from this address");

	if (lws_hdr_copy(wsi, hs->uri, sizeof hs->uri, WSI_TOKEN_GET_URI) <= 0 ||
	    strncmp(hs->uri, "/ws/rooms/", 10) != 0)
		return server_refuse(hs, 404, "unknown path");
	hs->room_id = hs->uri + 10;
	for (p = hs->room_id; *p != '\0'; p++) {
		if (*p == '/' || (unsigned char)*p < 0x20)
			return server_refuse(hs, 404, "unknown path");
	}
	if (*hs->room_id == '\0' || strlen(hs->room_id) > 64)
		return server_refuse(hs, 404, "unknown room");

	uid = lws_get_urlarg_by_name(wsi, "user_id=", buf, (int)buflen);
	if (uid == NULL || *uid == '\0')
		return server_refuse(hs, 400, "missing user_id");
	if (text_check(uid, 1, USER_ID_MAX_BYTES, TEXT_NO_CONTROL, &why) != 0)
		return server_refuse(hs, 400, "invalid user_id");
	strcpy(hs->user_id, uid);
	nick = lws_get_urlarg_by_name(wsi, "nickname=", buf, (int)buflen);
	if (nick == NULL || *nick == '\0')
		nick = hs->user_id;
	else if (text_check(nick, 0, NICKNAME_MAX_BYTES, TEXT_NO_CONTROL, &why) != 0)
		return server_refuse(hs, 400, "invalid nickname");
	memmove(hs->nickname, nick, strlen(nick) + 1);

	return 0;
}

/* Token mode: a valid token for this user and room (401 otherwise). */
static int
server_token_check(
    struct chatd *cd, struct lws *wsi, struct server_hs *hs, char *buf, size_t buflen)
{
	struct token_claims claims;
	const char *token, *why;
	int rc = 0;

	token = lws_get_urlarg_by_name(wsi, "token=", buf, (int)buflen);
	if (token == NULL || *token == '\0')
		return server_refuse(hs, 401, "token required");
	if (token_verify(cd->cfg->token_secret, token, server_now_ms() / 1000, &claims, &why) != 0)
		return server_refuse(
		    hs, 401, strcmp(why, "expired") == 0 ? "token expired" : "invalid token");
	if (strcmp(claims.sub, hs->user_id) != 0)
		rc = server_refuse(hs, 401, "token is for another user");
	else if (strcmp(claims.room, hs->room_id) != 0)
		rc = server_refuse(hs, 401, "token is for another room");
	else {
		/* The token is the identity: its nickname and admin claim win. */
		if (claims.nick != NULL && strlen(claims.nick) < sizeof hs->nickname)
			memcpy(hs->nickname, claims.nick, strlen(claims.nick) + 1);
		hs->is_admin = claims.admin;
		hs->token_exp_ms = claims.exp * 1000;
	}
	token_claims_clear(&claims);
	return rc;
}

/* The room: exists, open, user not banned. */
static int
server_handshake_room(struct chatd *cd, struct server_hs *hs)
{
	int status = 0;

	hs->room = room_lookup(cd, hs->room_id, &status);
	if (hs->room == NULL)
		return server_refuse(hs, status, status == 404 ? "unknown room" : "internal error");
	if (hs->room->closed)
		return server_refuse(hs, 404, "room closed");
	if (room_ban_find(hs->room, hs->user_id, server_now_ms()) != NULL)
		return server_refuse(hs, 403, "banned from this room");
	return 0;
}

/*
 * Decides whether a WebSocket upgrade may join. Runs twice: in
 * HTTP_CONFIRM_UPGRADE, where a refusal is a real HTTP status, and again in
 * ESTABLISHED, which is where the connection is counted (nothing can change
 * in between: both run in the same loop iteration, but checking again
 * costs little and keeps ESTABLISHED honest). Returns 0 to accept, -1
 * with hs->status and hs->reason set.
 */
static int
server_handshake(struct chatd *cd, struct lws *wsi, struct server_hs *hs)
{
	char buf[SERVER_ARG_MAX + 16], *tbuf;
	int rc;

	memset(hs, 0, sizeof *hs);
	if (server_handshake_checks(cd, wsi, hs, buf, sizeof buf) != 0)
		return -1;
	if (cd->cfg->token_secret != NULL) {
		tbuf = xmalloc(TOKEN_MAX_LEN + 16); /* "token=" and a whole token */
		rc = server_token_check(cd, wsi, hs, tbuf, TOKEN_MAX_LEN + 16);
		free(tbuf);
		if (rc != 0)
			return -1;
	}
	return server_handshake_room(cd, hs);
}

/* ---------------------------------------------------------------- connections */

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static size_t
server_utf8_cut(const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len <= max)
		return len;
	len = max;
	while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
		len--;
	return len;
}

int
server_conn_close(
    struct conn *c, int code, const char *reason, const char *leave_reason, int user_left)
{
	const struct config *cfg = c->cd->cfg;
	struct frame *f;
	char *json;

	if (c->close_code != 0 || c->wsi == NULL)
		return 0;
	c->close_code = code;
	c->close_reason = xstrdup(reason);
	c->leave_reason = leave_reason;
	/* Nothing queued matters any more; the client learns why instead. */
	outq_clear(&c->q);
	outq_init(&c->q, (uint32_t)cfg->queue_high_frames, (uint32_t)cfg->queue_low_frames);
	if (user_left && c->room != NULL) {
		json = wsproto_encode_user_left(c->room->id, c->user_id, c->nickname, leave_reason);
		f = frame_create_text(json, strlen(json));
		free(json);
		outq_push(&c->q, f, 1);
		frame_unref(f);
	}
	log_info("closing %s (user %s, room %s): %d %s", c->address, c->user_id,
	    c->room != NULL ? c->room->id : "-", code, reason);
	/* A client that reads nothing never gets WRITEABLE: cut it anyway. */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, SERVER_CLOSE_GRACE_S);
	c->cd->lws_rearm = 1;
	lws_callback_on_writable(c->wsi);
	return 1;
}

void
server_conn_push(struct conn *c, struct frame *f, int high)
{
	int idle;

	if (c->close_code != 0)
		return;
	idle = outq_empty(&c->q);
	if (outq_push(&c->q, f, high) != 0) {
		server_conn_close(c, 4408, "too slow: high-priority queue full", "too_slow", 0);
		return;
	}
	/* A queue that held frames is on its way out already (server_flush,
	 * or WRITEABLE, which asks again while frames remain). */
	if (idle && !c->flush_pending) {
		c->flush_pending = 1;
		TAILQ_INSERT_TAIL(&c->cd->flush, c, flush_entry);
	}
}

static int server_writeable(struct chatd *cd, struct lws *wsi, struct conn *c);

/*
 * Queues a connection whose close frame (close_code, close_reason) should
 * go now. lws is asked from server_flush(), outside the connection's own
 * callback: Debian's lws 4.1.6 is a _DEBUG build, and with libuv its
 * close-after-callback path (a callback returning -1) closes a second
 * time at once, "uv repeat test", dropping the close frame the first one
 * had queued. A close asked with LWS_TO_KILL_SYNC takes the normal path:
 * close frame with our code and reason, then the client's answer.
 */
static void
server_close_soon(struct conn *c)
{
	if (c->kill_pending)
		return;
	c->kill_pending = 1;
	TAILQ_INSERT_TAIL(&c->cd->kill, c, kill_entry);
}

static void
server_kill(struct chatd *cd)
{
	struct conn *c;
	struct lws *wsi;
	int len;

	while ((c = TAILQ_FIRST(&cd->kill)) != NULL) {
		TAILQ_REMOVE(&cd->kill, c, kill_entry);
		c->kill_pending = 0;
		wsi = c->wsi;
		len = (int)server_utf8_cut(c->close_reason, 120);
		lws_close_reason(wsi, (enum lws_close_status)c->close_code,
		    (unsigned char *)c->close_reason, (size_t)len);
		/* May run CLOSED (server_closed) for c right here: c is off the list. */
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
server_flush(struct chatd *cd)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&cd->flush)) != NULL) {
		TAILQ_REMOVE(&cd->flush, c, flush_entry);
		c->flush_pending = 0;
		if (c->close_code != 0 || lws_partial_buffered(c->wsi)) {
			lws_callback_on_writable(c->wsi);
			continue;
		}
		if (server_writeable(cd, c->wsi, c) < 0) {
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
			cd->lws_rearm = 1;
		}
	}
	server_kill(cd);
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

static void
server_flush_check(uv_check_t *h)
{
	server_flush(h->data);
}

static void
server_flush_prepare(uv_prepare_t *h)
{
	server_flush(h->data);
}

void
server_conn_error(struct conn *c, const char *code, const char *message, int64_t retry_after_ms)
{
	struct frame *f;
	char *json;

	json = wsproto_encode_error(code, message, retry_after_ms, 0);
	f = frame_create_text(json, strlen(json));
	free(json);
	server_conn_push(c, f, 1);
	frame_unref(f);
}

static struct conn *
server_conn_find(struct room *r, uint64_t serial)
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

static int
server_established(struct chatd *cd, struct lws *wsi, struct conn *c)
{
	const struct config *cfg = cd->cfg;
	struct server_hs hs;
	char reason[160];

	server_handshake(cd, wsi, &hs);
	if (hs.status != 0) {
		/* Only if the state changed since CONFIRM_UPGRADE. */
		log_info("refused %s after upgrade: %d %s", hs.address, hs.status, hs.reason);
		(void)snprintf(reason, sizeof reason, "%s", hs.reason);
		c->wsi = wsi;
		c->cd = cd;
		c->close_code = 4000 + hs.status;
		c->close_reason = xstrdup(reason);
		server_close_soon(c);
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
	cd->nconns++;
	server_addr_add(cd, c->address, 1);
	log_info("join %s: user %s%s room %s", c->address, c->user_id,
	    c->is_admin ? " (admin)" : "", hs.room->id);
	room_join(hs.room, c);
	if (hs.token_exp_ms > 0)
		lws_set_timer_usecs(wsi, (lws_usec_t)(hs.token_exp_ms - server_now_ms()) * 1000);
	return 0;
}

static void
server_closed(struct chatd *cd, struct conn *c)
{
	if (c->flush_pending)
		TAILQ_REMOVE(&cd->flush, c, flush_entry);
	if (c->kill_pending)
		TAILQ_REMOVE(&cd->kill, c, kill_entry);
	if (!c->counted) {
		/* Refused before it joined: at most a close reason to free. */
		free(c->close_reason);
		memset(c, 0, sizeof *c);
		return;
	}
	if (c->room != NULL)
		room_leave(c->room, c);
	log_info("left %s: user %s (%s)", c->address, c->user_id,
	    c->leave_reason != NULL ? c->leave_reason : "left");
	server_addr_add(cd, c->address, -1);
	cd->nconns--;
	outq_clear(&c->q);
	free(c->user_id);
	free(c->nickname);
	free(c->address);
	free(c->close_reason);
	free(c->rx);
	memset(c, 0, sizeof *c);
}

static int
server_writeable(struct chatd *cd, struct lws *wsi, struct conn *c)
{
	struct frame *first;
	uint64_t dropped;
	uint32_t queued;
	size_t need, n;
	char *json, *msg;
	struct frame *f;

	if (!c->counted)
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
		server_conn_push(c, f, 1);
		frame_unref(f);
	}
	if (outq_empty(&c->q)) {
		if (c->close_code != 0)
			server_close_soon(c);
		return 0;
	}
	first = c->q.high.len > 0 ? c->q.high.slots[c->q.high.head] : c->q.low.slots[c->q.low.head];
	need = first->len > SERVER_SEND_BATCH ? first->len : SERVER_SEND_BATCH;
	if (cd->sendbuf_cap < LWS_PRE + need) {
		free(cd->sendbuf);
		cd->sendbuf_cap = LWS_PRE + need;
		cd->sendbuf = xmalloc(cd->sendbuf_cap);
	}
	/* Whole frames, high lane first, into one write: one system call for
	 * several messages (FACTS: lws keeps order across partial writes). */
	queued = c->q.high.len + c->q.low.len;
	n = outq_fill(&c->q, cd->sendbuf + LWS_PRE, SERVER_SEND_BATCH);
	cd->frames_sent += queued - (c->q.high.len + c->q.low.len);
	if (n > 0)
		cd->frame_writes++;
	if (n > 0 && lws_write(wsi, cd->sendbuf + LWS_PRE, n, LWS_WRITE_RAW) < 0)
		return -1;
	if (!outq_empty(&c->q) || c->close_code != 0)
		lws_callback_on_writable(wsi);
	return 0;
}

/* ---------------------------------------------------------------- client messages */

static void
server_submit_message(struct conn *c, int kind, char **text, char **event_type)
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
	op->ts_ms = server_now_ms();
	op->origin = c->serial;
	if (writer_submit(c->cd->writer, op) != 0)
		server_conn_error(c, "overloaded", "the server is overloaded; try again", 1000);
}

static void
server_request(struct chatd *cd, struct conn *c, struct wsproto_request *req)
{
	struct room *r = c->room;
	struct writer_op *op;
	int64_t wait, expires;
	char *why;

	if (req->type != WSPROTO_MESSAGE && !c->is_admin) {
		server_conn_error(c, "forbidden", "only a room admin may do that", -1);
		return;
	}
	switch (req->type) {
	case WSPROTO_MESSAGE:
		if (!c->is_admin &&
		    (wait = ratelimit_check(&r->rl, c->user_id, server_mono_ms())) > 0) {
			server_conn_error(
			    c, "rate_limited", "one message per interval: wait", wait);
			return;
		}
		server_submit_message(c, DB_MESSAGE_CHAT, &req->content, NULL);
		break;
	case WSPROTO_CUSTOM_EVENT:
		server_submit_message(c, DB_MESSAGE_CUSTOM, &req->payload_json, &req->event_type);
		break;
	case WSPROTO_BAN:
		expires =
		    req->duration_seconds > 0 ? server_now_ms() + req->duration_seconds * 1000 : 0;
		room_ban_set(r, req->user_id, req->reason, expires);
		op = writer_op_create(WRITER_BAN);
		op->room_id = xstrdup(r->id);
		op->user_id = xstrdup(req->user_id);
		op->reason = req->reason != NULL ? xstrdup(req->reason) : NULL;
		op->expires_at = expires;
		op->ts_ms = server_now_ms();
		writer_submit(cd->writer, op);
		why =
		    req->reason != NULL ? xasprintf("banned: %s", req->reason) : xstrdup("banned");
		room_disconnect_user(r, req->user_id, 4403, why, "banned");
		free(why);
		log_info("room %s: %s banned %s", r->id, c->user_id, req->user_id);
		break;
	case WSPROTO_UNBAN:
		room_ban_remove(r, req->user_id);
		op = writer_op_create(WRITER_UNBAN);
		op->room_id = xstrdup(r->id);
		op->user_id = xstrdup(req->user_id);
		op->ts_ms = server_now_ms();
		writer_submit(cd->writer, op);
		log_info("room %s: %s unbanned %s", r->id, c->user_id, req->user_id);
		break;
	case WSPROTO_KICK:
		why =
		    req->reason != NULL ? xasprintf("kicked: %s", req->reason) : xstrdup("kicked");
		room_disconnect_user(r, req->user_id, 4409, why, "kicked");
		free(why);
		log_info("room %s: %s kicked %s", r->id, c->user_id, req->user_id);
		break;
	}
}

/*
 * Between messages a connection holds no reassembly buffer: most
 * connections are idle most of the time, and a malloc per message costs
 * little next to parsing and storing it.
 */
static void
server_rx_reset(struct conn *c)
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
 * make chatd drop more than SERVER_DISCARD_MAX is cut at once.
 */
static int
server_rx_discard(struct conn *c, struct lws *wsi, size_t len)
{
	size_t left = lws_remaining_packet_payload(wsi);

	c->rx_discard += len;
	if ((lws_is_final_fragment(wsi) && left == 0) || c->rx_discard + left > SERVER_DISCARD_MAX)
		server_conn_close(
		    c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big", "left", 0);
	return 0;
}

static int
server_receive(struct chatd *cd, struct lws *wsi, struct conn *c, const void *in, size_t len)
{
	const struct config *cfg = cd->cfg;
	struct wsproto_request req;
	const char *code;
	char *message = NULL;
	size_t want;

	if (!c->counted || c->room == NULL || c->close_code != 0)
		return 0;
	if (c->rx_discard > 0)
		return server_rx_discard(c, wsi, len);
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
		server_rx_reset(c);
		c->rx_discard = 1;
		return server_rx_discard(c, wsi, len);
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
		server_conn_error(c, "binary_not_supported", "send JSON text frames", -1);
	else if (wsproto_parse((const char *)c->rx, c->rx_len, (size_t)cfg->max_message_bytes, &req,
		     &code, &message) != 0) {
		server_conn_error(c, code, message != NULL ? message : code, -1);
		free(message);
	} else {
		server_request(cd, c, &req);
		wsproto_request_clear(&req);
	}
	server_rx_reset(c);
	return 0;
}

/* ---------------------------------------------------------------- writer results */

static void
server_writer_done(struct writer_op *op, void *arg)
{
	struct chatd *cd = arg;
	struct room *r = room_find(cd, op->room_id);
	struct ctlconn *cc = op->from_ctl ? server_ctlconn_find(cd, op->origin) : NULL;
	struct conn *c;
	unsigned recipients = 0;
	char *json;

	if (op->failed) {
		if (!op->from_ctl && (c = server_conn_find(r, op->origin)) != NULL)
			server_conn_error(
			    c, "internal_error", "the message could not be stored", -1);
		if (cc != NULL)
			control_publish_done(cc, op, 0);
		return;
	}
	if (r != NULL) {
		if (op->seq > r->last_seq)
			r->last_seq = op->seq;
		if (!r->closed && !cd->shutting_down) {
			if (op->kind == DB_MESSAGE_CHAT)
				json = wsproto_encode_message(op->id, op->seq, r->id, op->user_id,
				    op->nickname, op->is_admin, op->text, op->ts_ms);
			else
				json = wsproto_encode_custom_event(op->id, op->seq, r->id,
				    op->user_id, op->nickname, op->is_admin, op->event_type,
				    op->text, op->ts_ms);
			recipients = room_broadcast(r, json, op->kind != DB_MESSAGE_CHAT);
			free(json);
		}
	}
	if (cc != NULL)
		control_publish_done(cc, op, recipients);
}

/* ---------------------------------------------------------------- timers */

static void
server_fanout_run(uv_idle_t *h)
{
	struct chatd *cd = h->data;
	struct room *r, *next;

	TAILQ_FOREACH_SAFE(r, &cd->busy, busy_entry, next)
	{
		room_fanout_run(r, SERVER_FANOUT_SLICE);
		if (STAILQ_EMPTY(&r->fanout)) {
			TAILQ_REMOVE(&cd->busy, r, busy_entry);
			r->busy = 0;
		}
	}
	if (TAILQ_EMPTY(&cd->busy))
		(void)uv_idle_stop(&cd->fanout_idle);
}

void
server_fanout_schedule(struct chatd *cd)
{
	/* An active idle handle runs once per loop iteration, before the
	 * loop polls (without blocking): one slice per room per iteration,
	 * socket events in between. */
	if (!uv_is_active((uv_handle_t *)&cd->fanout_idle))
		(void)uv_idle_start(&cd->fanout_idle, server_fanout_run);
}

static void
server_tick(uv_timer_t *t)
{
	struct chatd *cd = t->data;
	struct room *r;
	int64_t now = server_mono_ms();

	TAILQ_FOREACH(r, &cd->room_list, entry)
	ratelimit_expire(&r->rl, now);
}

static void
server_shutdown_wake(uv_timer_t *t)
{
	(void)t; /* only wakes the loop so that it sees the deadline */
}

static void
server_shutdown_begin(struct chatd *cd)
{
	struct room *r;
	struct conn *c, *next;

	cd->shutting_down = 1;
	cd->shutdown_deadline = server_mono_ms() + SERVER_SHUTDOWN_GRACE_MS;
	log_info("shutting down: closing %lu connections", cd->nconns);
	TAILQ_FOREACH(r, &cd->room_list, entry)
	{
		TAILQ_FOREACH_SAFE(c, &r->members, entry, next)
		server_conn_close(c, 1001, "server shutdown", "server_shutdown", 0);
	}
	(void)uv_timer_start(
	    &cd->shutdown_timer, server_shutdown_wake, SERVER_SHUTDOWN_GRACE_MS + 10, 0);
}

/* ---------------------------------------------------------------- protocols */

static int
server_ws_callback(
    struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct chatd *cd = ctx != NULL ? lws_context_user(ctx) : NULL;
	struct conn *c = user;
	struct server_hs hs;

	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		if (in == NULL || strcasecmp(in, "websocket") != 0)
			return -1;
		server_handshake(cd, wsi, &hs);
		if (hs.status == 0)
			return 0;
		log_info("refused %s: %d %s (%s)", hs.address, hs.status, hs.reason, hs.uri);
		/* An answer before the upgrade: a real HTTP status. */
		if (lws_return_http_status(wsi, (unsigned)hs.status, hs.reason) != 0)
			return -1;
		return 1;
	case LWS_CALLBACK_HTTP:
		/* Not an upgrade: chatd serves only WebSockets. */
		if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, "WebSocket endpoint") != 0)
			return -1;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_ESTABLISHED:
		return server_established(cd, wsi, c);
	case LWS_CALLBACK_RECEIVE:
		return server_receive(cd, wsi, c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return server_writeable(cd, wsi, c);
	case LWS_CALLBACK_TIMER:
		/* Token mode: the token ran out; its rights go with it. */
		if (c->counted)
			server_conn_close(c, 4401, "token expired", "token_expired", 1);
		return 0;
	case LWS_CALLBACK_CLOSED:
		server_closed(cd, c);
		return 0;
	case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
		/* Once per protocol per vhost, sometimes for nothing: idempotent. */
		if (cd != NULL && cd->writer != NULL)
			writer_drain(cd->writer, server_writer_done, cd);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

struct ctlconn *
server_ctlconn_find(struct chatd *cd, uint64_t serial)
{
	struct ctlconn *cc;

	TAILQ_FOREACH(cc, &cd->ctlconns, entry)
	{
		if (cc->serial == serial)
			return cc;
	}
	return NULL;
}

void
server_ctl_send(struct ctlconn *cc, const char *line)
{
	size_t len = strlen(line);

	/* ctl_reply_encode_* end their line already: one newline per reply. */
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (cc->drop)
		return;
	if (cc->out_len + len + 1 > 4 * (size_t)CTL_LINE_MAX) {
		/* A client that sends requests and never reads replies. */
		cc->drop = 1;
		lws_callback_on_writable(cc->wsi);
		return;
	}
	if (cc->out_cap < LWS_PRE + cc->out_len + len + 1) {
		cc->out_cap = LWS_PRE + cc->out_len + len + 1 + 1024;
		cc->out = xrealloc(cc->out, cc->out_cap);
	}
	memcpy(cc->out + LWS_PRE + cc->out_len, line, len);
	cc->out[LWS_PRE + cc->out_len + len] = '\n';
	cc->out_len += len + 1;
	lws_callback_on_writable(cc->wsi);
}

/* Sends what is queued for a control client; -1 if the socket failed. */
static int
server_ctl_flush(struct ctlconn *cc)
{
	if (cc->out_len == 0)
		return 0;
	if (lws_write(cc->wsi, cc->out + LWS_PRE, cc->out_len, LWS_WRITE_RAW) < 0)
		return -1;
	cc->out_len = 0;
	if (cc->out_cap > LWS_PRE + 65536) {
		free(cc->out);
		cc->out = NULL;
		cc->out_cap = 0;
	}
	return 0;
}

static int
server_ctl_callback(
    struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct lws_context *ctx = lws_get_context(wsi);
	struct chatd *cd = ctx != NULL ? lws_context_user(ctx) : NULL;
	struct ctlconn *cc = user;

	switch (reason) {
	case LWS_CALLBACK_RAW_ADOPT:
		memset(cc, 0, sizeof *cc);
		cc->wsi = wsi;
		cc->cd = cd;
		cc->serial = ++cd->next_serial;
		cc->live = 1;
		ctl_linebuf_init(&cc->lb, CTL_LINE_MAX);
		STAILQ_INIT(&cc->pending);
		TAILQ_INSERT_TAIL(&cd->ctlconns, cc, entry);
		return 0;
	case LWS_CALLBACK_RAW_RX:
		if (!cc->live || cc->drop)
			return 0;
		if (control_feed(cc, in, len) != 0) {
			/* Framing lost (over-long line, NUL): flush, then drop. */
			cc->drop = 1;
			lws_callback_on_writable(wsi);
			return 0;
		}
		/*
		 * Answer at once rather than at the next WRITEABLE: a client
		 * such as `echo ... | socat - UNIX-CONNECT:...` half-closes
		 * right after its request, and lws closes the connection on
		 * that EOF before a later WRITEABLE. Control traffic is small;
		 * lws buffers a partial write. (Replies that wait for the
		 * writer, such as publish, still need the client to stay.)
		 */
		return server_ctl_flush(cc);
	case LWS_CALLBACK_RAW_WRITEABLE:
		if (!cc->live)
			return 0;
		if (cc->out_len > 0) {
			if (server_ctl_flush(cc) != 0)
				return -1;
			if (cc->drop)
				lws_callback_on_writable(wsi); /* after lws flushed it */
			return 0;
		}
		return cc->drop ? -1 : 0;
	case LWS_CALLBACK_RAW_CLOSE:
		if (!cc->live)
			return 0;
		TAILQ_REMOVE(&cd->ctlconns, cc, entry);
		control_conn_clear(cc);
		ctl_linebuf_clear(&cc->lb);
		free(cc->out);
		memset(cc, 0, sizeof *cc);
		return 0;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols server_ws_protocols[] = {
	{
	    .name = "chatd",
	    .callback = server_ws_callback,
	    .per_session_data_size = sizeof(struct conn),
	    /*
	     * lws gives every connection an rx buffer of this size: 512 keeps
	     * an idle connection under 3 KiB (4096 cost ~5.9 KiB). Messages
	     * arrive in pieces and server_receive() reassembles them. FACTS
	     * saw a 1009 wait 5 s with small buffers; here it stays prompt
	     * (single and fragmented, tested) because server_receive() refuses
	     * on the announced frame length, without reading the message.
	     */
	    .rx_buffer_size = 512,
	    /* A raw send is capped at this: fit a whole batch. */
	    .tx_packet_size = SERVER_SEND_BATCH,
	},
	{ .name = NULL },
};

static const struct lws_protocols server_ctl_protocols[] = {
	{
	    .name = "chatd-control",
	    .callback = server_ctl_callback,
	    .per_session_data_size = sizeof(struct ctlconn),
	    .rx_buffer_size = 65536,
	    .tx_packet_size = 65536,
	},
	{ .name = NULL },
};

/* ---------------------------------------------------------------- start and stop */

/* Refuses to take over the socket of a running chatd; removes a stale one. */
static int
server_ctl_socket_check(const char *path, char **cause)
{
	struct sockaddr_un sun;
	int fd;

	if (strlen(path) >= sizeof sun.sun_path) {
		*cause = xasprintf(
		    "CONTROL_SOCKET %s: longer than %zu bytes", path, sizeof sun.sun_path - 1);
		return -1;
	}
	if (access(path, F_OK) != 0)
		return 0;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0) {
		*cause = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
		close(fd);
		*cause = xasprintf("CONTROL_SOCKET %s: another chatd is listening there", path);
		return -1;
	}
	close(fd);
	if (unlink(path) != 0) {
		*cause = xasprintf("unlink %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
server_split_listen(const char *spec, char *host, size_t hostlen, int *port, char **cause)
{
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	size_t hl;
	char *end;
	long p;

	if (colon == NULL)
		goto fail;
	hl = (size_t)(colon - spec);
	if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen)
		goto fail;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
		goto fail;
	*port = (int)p;
	return 0;

fail:
	*cause = xasprintf("CHATD_LISTEN %s: expected HOST:PORT", spec);
	return -1;
}

/*
 * Exit: closes chatd's own handles, starts lws's soft close of every
 * connection, and runs the loop until everything has closed. With a
 * foreign loop lws finishes destroying its context from the close
 * callbacks (and clears cd->ctx); a second call finishes what is left.
 */
static void
server_loop_finish(struct chatd *cd)
{
	uv_handle_t *mine[] = { (uv_handle_t *)&cd->flush_prepare, (uv_handle_t *)&cd->flush_check,
		(uv_handle_t *)&cd->fanout_idle, (uv_handle_t *)&cd->shutdown_timer,
		(uv_handle_t *)&cd->tick_timer };
	size_t i;

	for (i = 0; cd->handles_ready && i < sizeof mine / sizeof mine[0]; i++)
		uv_close(mine[i], NULL);
	room_close_timers(cd);
	if (cd->ctx != NULL)
		lws_context_destroy(cd->ctx);
	(void)uv_run(&cd->loop, UV_RUN_DEFAULT);
	if (cd->ctx != NULL)
		lws_context_destroy(cd->ctx);
	/* CLOSED callbacks ran in there: nothing is marked any more. */
	TAILQ_INIT(&cd->flush);
	TAILQ_INIT(&cd->kill);
}

int
server_run(const struct config *cfg)
{
	struct lws_context_creation_info info;
	void *foreign[1], *plugin;
	lws_retry_bo_t retry;
	struct chatd *cd;
	char host[256], *cause = NULL;
	int64_t closed = 0;
	int port, status = 1;

	cd = xcalloc(1, sizeof *cd);
	cd->cfg = cfg;
	cd->started_ms = server_now_ms();
	strmap_init(&cd->rooms);
	strmap_init(&cd->addresses);
	TAILQ_INIT(&cd->room_list);
	TAILQ_INIT(&cd->busy);
	TAILQ_INIT(&cd->flush);
	TAILQ_INIT(&cd->kill);
	TAILQ_INIT(&cd->ctlconns);

	if (server_split_listen(cfg->chatd_listen, host, sizeof host, &port, &cause) != 0 ||
	    server_ctl_socket_check(cfg->control_socket, &cause) != 0)
		goto fail;
	if (db_open(cfg->database_path, &cd->db, &cause) != DB_OK)
		goto fail;
	/* No connection survives a restart: close what a crash left open. */
	if (db_sessions_close_all(cd->db, "server_restart", server_now_ms(), &closed, &cause) !=
	    DB_OK)
		goto fail;
	if (closed > 0)
		log_info("closed %" PRId64 " sessions left open (server_restart)", closed);
	if (uv_loop_init(&cd->loop) != 0) {
		cause = xstrdup("uv_loop_init failed");
		goto fail;
	}
	cd->loop_ready = 1;
	if (uv_prepare_init(&cd->loop, &cd->flush_prepare) != 0 ||
	    uv_check_init(&cd->loop, &cd->flush_check) != 0 ||
	    uv_idle_init(&cd->loop, &cd->fanout_idle) != 0 ||
	    uv_timer_init(&cd->loop, &cd->shutdown_timer) != 0 ||
	    uv_timer_init(&cd->loop, &cd->tick_timer) != 0) {
		cause = xstrdup("libuv handle init failed");
		goto fail;
	}
	cd->handles_ready = 1;
	cd->flush_prepare.data = cd->flush_check.data = cd->fanout_idle.data = cd;
	cd->tick_timer.data = cd;
	if (room_load_all(cd, &cause) != 0)
		goto fail;

	lws_set_log_level(LLL_ERR | LLL_WARN, server_lws_log);
	memset(&info, 0, sizeof info);
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6 |
	    LWS_SERVER_OPTION_LIBUV;
	info.user = cd;
	/* Frames queued by timers (which libuv runs before polling and, once
	 * more, after) leave before the loop blocks; frames queued by socket
	 * events leave right after them. */
	(void)uv_prepare_start(&cd->flush_prepare, server_flush_prepare);
	(void)uv_check_start(&cd->flush_check, server_flush_check);
	foreign[0] = &cd->loop;
	info.foreign_loops = foreign;
	info.pcontext = &cd->ctx;
	info.timeout_secs = (unsigned)cfg->handshake_timeout_seconds;
	info.fd_limit_per_thread = 0;
	if ((cd->ctx = lws_create_context(&info)) == NULL) {
		cause = xstrdup("lws_create_context failed (with libuv: is the Debian package "
				"libwebsockets-evlib-uv installed?)");
		goto fail;
	}
	/* Without its libuv plugin lws quietly serves on a poll() loop of its
	 * own, which chatd never runs: every socket would hang. Refuse. */
	if ((plugin = dlopen(LWS_EVLIB_UV, RTLD_NOW | RTLD_NOLOAD)) == NULL) {
		cause = xasprintf("libwebsockets did not load its libuv plugin %s: install the "
				  "Debian package libwebsockets-evlib-uv",
		    LWS_EVLIB_UV);
		goto fail;
	}
	(void)dlclose(plugin); /* the reference RTLD_NOLOAD took; lws keeps its own */
	server_ctx = cd->ctx;

	memset(&retry, 0, sizeof retry);
	retry.secs_since_valid_ping = (uint16_t)cfg->ws_ping_interval_seconds;
	retry.secs_since_valid_hangup = (uint16_t)cfg->ws_idle_timeout_seconds;

	memset(&info, 0, sizeof info);
	info.vhost_name = "chatd";
	info.iface = host;
	info.port = port;
	info.protocols = server_ws_protocols;
	info.retry_and_idle_policy = &retry;
	info.timeout_secs_ah_idle = (int)cfg->handshake_timeout_seconds;
	info.keepalive_timeout = (int)cfg->handshake_timeout_seconds;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	if (strchr(host, ':') != NULL)
		info.options = 0;
	if ((cd->ws_vhost = lws_create_vhost(cd->ctx, &info)) == NULL) {
		cause = xasprintf("cannot listen on %s", cfg->chatd_listen);
		goto fail;
	}

	memset(&info, 0, sizeof info);
	info.vhost_name = "chatd-control";
	info.iface = cfg->control_socket;
	info.port = 0;
	info.protocols = server_ctl_protocols;
	info.options =
	    LWS_SERVER_OPTION_UNIX_SOCK | LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
	info.listen_accept_role = "raw-skt";
	info.listen_accept_protocol = "chatd-control";
	if ((cd->ctl_vhost = lws_create_vhost(cd->ctx, &info)) == NULL) {
		cause = xasprintf("cannot listen on control socket %s", cfg->control_socket);
		goto fail;
	}
	/* lws ignores unix_socket_perms for root (FACTS): set the mode here. */
	if (chmod(cfg->control_socket, 0660) != 0) {
		cause = xasprintf("chmod %s: %s", cfg->control_socket, strerror(errno));
		goto fail;
	}

	if (writer_create(cfg->database_path, cd->ctx, &cd->writer, &cause) != 0)
		goto fail;
	(void)uv_timer_start(&cd->tick_timer, server_tick, SERVER_TICK_MS, SERVER_TICK_MS);

	log_info(
	    "listening on %s (WebSocket) and %s (control)", cfg->chatd_listen, cfg->control_socket);
	while (!cd->shutting_down || (cd->nconns > 0 && server_mono_ms() < cd->shutdown_deadline)) {
		(void)uv_run(&cd->loop, UV_RUN_ONCE);
		if (server_signalled && !cd->shutting_down)
			server_shutdown_begin(cd);
	}
	status = 0;
	goto out;

fail:
	log_error("%s", cause);
	free(cause);
out:
	/* Destroying the context closes what is left (sessions closed through
	 * the writer), so the writer goes after it. */
	if (cd->ctx != NULL)
		writer_detach(cd->writer);
	server_ctx = NULL;
	if (cd->loop_ready)
		server_loop_finish(cd);
	if (cd->ctl_vhost != NULL && unlink(cfg->control_socket) != 0 && errno != ENOENT)
		log_warn("unlink %s: %s", cfg->control_socket, strerror(errno));
	if (cd->writer != NULL) {
		log_info("committing %u pending writes", writer_backlog(cd->writer));
		writer_destroy(cd->writer);
	}
	if (cd->loop_ready && uv_loop_close(&cd->loop) != 0)
		log_warn("the event loop still had handles at exit");
	room_free_all(cd);
	strmap_clear(&cd->addresses, free);
	db_close(cd->db);
	free(cd->sendbuf);
	free(cd);
	if (status == 0)
		log_info("stopped");
	return status;
}
