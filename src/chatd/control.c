/*
 * The control socket (see control.h): its connections' reads and writes,
 * and a handler per request type. Framing, request validation and reply
 * encoding are ctl.c's; this file turns each request into room operations
 * and a reply. The database is chat-api's record here: ban, unban and
 * room_closed only change chatd's live state (chat-api has written the
 * row first); publish goes through the writer, and its reply waits for
 * the commit; metrics with "cluster" waits for the other nodes' texts
 * (cluster_metrics). While a reply waits, the connection's later lines
 * wait behind it (control_resume). Service thread only.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cluster.h"
#include "control.h"
#include "db.h"
#include "dbfile.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics_text.h"
#include "model.h"
#include "room.h"
#include "writer.h"
#include "xmalloc.h"

static int control_line(struct ctlconn *cc, char *line);
static void control_arm(struct ctlconn *cc, int resume);

/* ---------------------------------------------------------------- replies */

static struct ctlconn *
control_conn_find(struct chatd *cd, uint64_t serial)
{
	struct ctlconn *cc;

	TAILQ_FOREACH(cc, &cd->ctlconns, entry)
	{
		if (cc->serial == serial)
			return cc;
	}
	return NULL;
}

static void
control_send(struct ctlconn *cc, const char *line)
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

static void
control_ok(struct ctlconn *cc, unsigned long id, cJSON *result)
{
	char *line = ctl_reply_encode_ok(id, result);

	control_send(cc, line);
	free(line);
	cJSON_Delete(result);
}

static void __attribute__((format(printf, 4, 5)))
control_error(struct ctlconn *cc, unsigned long id, const char *code, const char *fmt, ...)
{
	va_list ap;
	char *message, *line;

	va_start(ap, fmt);
	if (vasprintf(&message, fmt, ap) < 0)
		message = NULL;
	va_end(ap);
	line = ctl_reply_encode_error(id, code, message != NULL ? message : code);
	control_send(cc, line);
	free(line);
	free(message);
}

static cJSON *
control_room_stats(const struct room *r)
{
	cJSON *o = json_object();
	uint64_t low, high;

	room_queued(r, &low, &high);
	json_add_string(o, "room_id", r->id);
	json_add_int(o, "current_users", r->current_users);
	json_add_int(o, "peak_users", r->peak_users);
	json_add_int(o, "connections", r->nconns);
	json_add_int(o, "queued_low", (long long)low);
	json_add_int(o, "queued_high", (long long)high);
	json_add_int(o, "dropped_low", (long long)r->dropped_low);
	json_add_int(o, "fanout_pending", r->fanout_len);
	json_add_int(o, "fanout_shed", (long long)r->fanout_shed);
	json_add_int(o, "last_seq", r->last_seq);
	json_add_bool(o, "closed", r->closed);
	return o;
}

static cJSON *
control_rooms(struct chatd *cd)
{
	cJSON *o = json_object(), *a = json_array();
	struct room *r;

	/* Live: members here or on another node of the cluster. */
	TAILQ_FOREACH(r, &cd->room_list, entry)
	{
		if (r->nconns > 0 || r->current_users > 0)
			json_append(a, control_room_stats(r));
	}
	json_add(o, "rooms", a);
	return o;
}

/* Reads a required room_id and finds the room; replies itself on failure. */
static struct room *
control_room_arg(struct ctlconn *cc, unsigned long id, const cJSON *args)
{
	const char *room_id;
	char *cause = NULL;
	struct room *r;
	int status = 0;

	if (json_get_string(args, "room_id", 1, 1, 64, TEXT_NO_CONTROL, &room_id, &cause) != 0) {
		control_error(cc, id, "bad_request", "%s", cause ? cause : "room_id is required");
		free(cause);
		return NULL;
	}
	if ((r = room_lookup(cc->cd, room_id, &status)) == NULL) {
		if (status == 404)
			control_error(cc, id, "room_not_found", "no room with id %s", room_id);
		else
			control_error(cc, id, "internal_error", "could not load room %s", room_id);
	}
	return r;
}

static int
control_user_args(struct ctlconn *cc, unsigned long id, const cJSON *args, const char **user_id,
    const char **reason)
{
	char *cause = NULL;

	if (json_get_string(
		args, "user_id", 1, 1, USER_ID_MAX_BYTES, TEXT_NO_CONTROL, user_id, &cause) != 0 ||
	    json_get_string(
		args, "reason", 0, 0, REASON_MAX_BYTES, TEXT_NO_CONTROL, reason, &cause) != 0) {
		control_error(cc, id, "bad_request", "%s", cause ? cause : "user_id is required");
		free(cause);
		return -1;
	}
	return 0;
}

static cJSON *
control_disconnected(unsigned n)
{
	cJSON *o = json_object();

	json_add_int(o, "disconnected", n);
	return o;
}

static void
control_health(struct ctlconn *cc, unsigned long id)
{
	struct chatd *cd = cc->cd;
	cJSON *o = json_object(), *d = json_object();
	struct writer_health wh;
	struct room *r;
	unsigned live = 0;
	int wal_pages, wal_blocked;

	TAILQ_FOREACH(r, &cd->room_list, entry)
	{
		if (r->nconns > 0 || r->current_users > 0)
			live++;
	}
	json_add_string(o, "status", cd->shutting_down ? "shutting_down" : "ok");
	json_add_string(o, "version", PACKAGE_VERSION);
	json_add_int(o, "uptime_s", (clock_wall_ms() - cd->started_ms) / 1000);
	json_add_int(o, "connections", (long long)cd->nconns);
	json_add_int(o, "rooms", live);
	json_add_int(o, "writer_backlog", writer_backlog(cd->writer));
	/* A reader holding checkpoints back grows the WAL: the operator must see it. */
	writer_wal_state(cd->writer, &wal_pages, &wal_blocked);
	json_add_int(o, "wal_bytes", dbfile_wal_bytes(cd->cfg->database_path));
	json_add_bool(o, "wal_blocked", wal_blocked);
	json_add_bool(o, "wal_at_bound", writer_wal_at_bound(cd->writer));
	/* A full disk or a failing device: messages are refused, sessions wait. */
	writer_health(cd->writer, &wh);
	json_add_bool(d, "writable", wh.failing_since == 0);
	if (wh.failing_since != 0) {
		json_add_int(d, "failing_since", wh.failing_since / 1000);
		json_add_string(d, "last_error", wh.last_error);
	} else {
		json_add(d, "failing_since", json_ok(cJSON_CreateNull()));
		json_add_string(d, "last_error", NULL);
	}
	json_add_int(d, "retry_sessions", wh.retry_sessions);
	json_add_int(d, "dropped_sessions", (long long)wh.dropped_sessions);
	json_add(o, "database", d);
	json_add_int(o, "dropped_low", (long long)cd->dropped_low);
	json_add_int(o, "frames_sent", (long long)cd->frames_sent);
	json_add_int(o, "frame_writes", (long long)cd->frame_writes);
	cluster_health(cd, o);
	control_ok(cc, id, o);
}

/*
 * A reply that waited (publish, cluster metrics) went out: the lines
 * held meanwhile run now, until one waits again.
 */
static void
control_resume(struct ctlconn *cc)
{
	struct ctl_pending *p;

	cc->waiting = 0;
	while (!cc->waiting && !cc->drop && (p = STAILQ_FIRST(&cc->pending)) != NULL) {
		STAILQ_REMOVE_HEAD(&cc->pending, entry);
		cc->npending--;
		if (control_line(cc, p->line) != 0)
			cc->drop = 1;
		free(p->line);
		free(p);
	}
	if (cc->drop)
		lws_callback_on_writable(cc->wsi);
	control_arm(cc, 1);
	cc->cd->lws_rearm = 1; /* set outside a socket event: see conn_flush() */
}

/* Every node answered, or the bound passed (cluster_metrics). */
static void
control_metrics_done(struct chatd *cd, uint64_t origin, unsigned long ctl_id, cJSON *result)
{
	struct ctlconn *cc = control_conn_find(cd, origin);

	if (cc == NULL) {
		cJSON_Delete(result); /* the client left meanwhile */
		return;
	}
	control_ok(cc, ctl_id, result);
	control_resume(cc);
}

/*
 * This node's text; with {"cluster": true} on a cluster node, every
 * node's, labelled by node, possibly later (control_metrics_done).
 */
static void
control_metrics(struct ctlconn *cc, unsigned long id, const cJSON *args)
{
	const cJSON *all = cJSON_GetObjectItemCaseSensitive(args, "cluster");
	cJSON *o = NULL;
	char *text;
	int rc = -1;

	if (all != NULL && !cJSON_IsBool(all)) {
		control_error(cc, id, "bad_request", "cluster must be true or false");
		return;
	}
	if (cJSON_IsTrue(all))
		rc = cluster_metrics(cc->cd, cc->serial, id, control_metrics_done, &o);
	if (rc == 0) {
		cc->waiting = 1; /* the reply comes from control_metrics_done */
		return;
	}
	if (rc < 0) {
		o = json_object();
		text = metrics_text(cc->cd);
		json_add_string(o, "text", text);
		free(text);
	}
	control_ok(cc, id, o);
}

static void
control_reload(struct ctlconn *cc, unsigned long id, const cJSON *args)
{
	const char *room_id;
	char *cause = NULL;
	int rc;

	if (json_get_string(args, "room_id", 1, 1, 64, TEXT_NO_CONTROL, &room_id, &cause) != 0) {
		control_error(cc, id, "bad_request", "%s", cause ? cause : "room_id is required");
		free(cause);
		return;
	}
	rc = room_reload(cc->cd, room_id, NULL, &cause);
	if (rc == 1)
		control_error(cc, id, "room_not_found", "no room with id %s", room_id);
	else if (rc < 0) {
		log_error("reloading room %s: %s", room_id, cause);
		free(cause);
		control_error(cc, id, "internal_error", "could not load room %s", room_id);
	} else {
		cluster_admin(cc->cd, CLUSTER_RELOAD, room_id, NULL, NULL, 0);
		control_ok(cc, id, NULL);
	}
}

static void
control_publish(struct ctlconn *cc, unsigned long id, const cJSON *args)
{
	const char *event_type;
	const cJSON *payload;
	struct writer_op *op;
	char *cause = NULL;
	struct room *r;

	if ((r = control_room_arg(cc, id, args)) == NULL)
		return;
	if (json_get_string(args, "event_type", 1, 1, EVENT_TYPE_MAX_BYTES, TEXT_NO_CONTROL,
		&event_type, &cause) != 0) {
		control_error(
		    cc, id, "bad_request", "%s", cause ? cause : "event_type is required");
		free(cause);
		return;
	}
	if (!model_event_type_ok(event_type)) {
		control_error(cc, id, "bad_request",
		    "event_type must be 1 to %d characters of A-Z a-z 0-9 _ . -",
		    EVENT_TYPE_MAX_BYTES);
		return;
	}
	if (r->closed) {
		control_error(cc, id, "room_closed", "room %s is closed", r->id);
		return;
	}
	payload = cJSON_GetObjectItemCaseSensitive(args, "payload");
	op = writer_op_create(WRITER_MESSAGE);
	op->room_id = xstrdup(r->id);
	op->kind = DB_MESSAGE_CUSTOM;
	op->is_admin = 1; /* the operator, through chat-api or chatctl: no user */
	op->text = payload != NULL ? json_print(payload) : xstrdup("{}");
	op->event_type = xstrdup(event_type);
	op->ts_ms = clock_wall_ms();
	op->from_ctl = 1;
	op->origin = cc->serial;
	op->ctl_id = id;
	if (writer_submit(cc->cd->writer, op) != 0) {
		control_error(cc, id, "internal_error", "chatd is overloaded; try again");
		return;
	}
	/* The reply comes after the commit (control_publish_done). */
	cc->waiting = 1;
}

void
control_publish_done(struct chatd *cd, const struct writer_op *op, unsigned recipients)
{
	struct ctlconn *cc = control_conn_find(cd, op->origin);
	cJSON *o;

	if (cc == NULL)
		return; /* the client left before the commit */
	if (op->failed)
		control_error(cc, op->ctl_id, "internal_error", "the event could not be stored");
	else {
		o = json_object();
		json_add_int(o, "id", op->id);
		json_add_int(o, "seq", op->seq);
		json_add_int(o, "recipients", recipients);
		control_ok(cc, op->ctl_id, o);
	}
	control_resume(cc);
}

/* Handles one request line; 0, or -1 to drop the connection. */
static int
control_line(struct ctlconn *cc, char *line)
{
	struct chatd *cd = cc->cd;
	const cJSON *args;
	cJSON *root = NULL, *empty = NULL;
	const char *code, *message, *user_id, *reason;
	enum ctl_type type;
	unsigned long id = 0;
	long long expires_at = 0;
	struct room *r;
	char *cause = NULL;
	int present;
	unsigned n;

	if (ctl_request_decode(line, &root, &type, &id, &args, &code, &message) != 0) {
		control_error(cc, id, code, "%s", message);
		return 0;
	}
	if (args == NULL)
		args = empty = json_object();
	log_debug("control: %s (id %lu)", ctl_type_name(type), id);

	switch (type) {
	case CTL_HEALTH:
		control_health(cc, id);
		break;
	case CTL_STATS:
		if (cJSON_GetObjectItemCaseSensitive(args, "room_id") == NULL)
			control_ok(cc, id, control_rooms(cd));
		else if ((r = control_room_arg(cc, id, args)) != NULL)
			control_ok(cc, id, control_room_stats(r));
		break;
	case CTL_ROOMS:
		control_ok(cc, id, control_rooms(cd));
		break;
	case CTL_METRICS:
		control_metrics(cc, id, args);
		break;
	case CTL_ROOM_OPENED:
	case CTL_ROOM_RELOAD:
		control_reload(cc, id, args);
		break;
	case CTL_ROOM_CLOSED:
		if (json_get_string(args, "reason", 0, 0, REASON_MAX_BYTES, TEXT_NO_CONTROL,
			&reason, &cause) != 0) {
			control_error(cc, id, "bad_request", "%s", cause);
			break;
		}
		if ((r = control_room_arg(cc, id, args)) == NULL)
			break;
		n = room_close(r, reason);
		cluster_admin(cd, CLUSTER_CLOSE, r->id, NULL, reason, 0);
		log_info("room %s closed: %u connections closed", r->id, n);
		control_ok(cc, id, control_disconnected(n));
		break;
	case CTL_BAN:
		if (control_user_args(cc, id, args, &user_id, &reason) != 0)
			break;
		if (json_get_int(args, "expires_at", 0, 0, INT64_MAX / 2, &expires_at, &present,
			&cause) != 0) {
			control_error(cc, id, "bad_request", "%s", cause);
			break;
		}
		if ((r = control_room_arg(cc, id, args)) == NULL)
			break;
		n = room_ban(r, user_id, reason, expires_at);
		cluster_admin(cd, CLUSTER_BAN, r->id, user_id, reason, expires_at);
		log_info("room %s: %s banned (control), %u connections closed", r->id, user_id, n);
		control_ok(cc, id, control_disconnected(n));
		break;
	case CTL_UNBAN:
		if (control_user_args(cc, id, args, &user_id, &reason) != 0)
			break;
		if ((r = control_room_arg(cc, id, args)) == NULL)
			break;
		room_ban_remove(r, user_id);
		cluster_admin(cd, CLUSTER_UNBAN, r->id, user_id, NULL, 0);
		log_info("room %s: %s unbanned (control)", r->id, user_id);
		control_ok(cc, id, NULL);
		break;
	case CTL_KICK:
		if (control_user_args(cc, id, args, &user_id, &reason) != 0)
			break;
		if ((r = control_room_arg(cc, id, args)) == NULL)
			break;
		n = room_kick(r, user_id, reason);
		cluster_admin(cd, CLUSTER_KICK, r->id, user_id, reason, 0);
		log_info("room %s: %s kicked (control), %u connections closed", r->id, user_id, n);
		control_ok(cc, id, control_disconnected(n));
		break;
	case CTL_PUBLISH:
		control_publish(cc, id, args);
		break;
	default:
		control_error(
		    cc, id, "bad_type", "request type %s is not served", ctl_type_name(type));
		break;
	}
	free(cause);
	cJSON_Delete(empty);
	cJSON_Delete(root);
	return 0;
}

/* ---------------------------------------------------------------- connections */

static int
control_feed_line(char *line, size_t len, void *arg)
{
	struct ctlconn *cc = arg;
	struct ctl_pending *p;

	(void)len;
	cc->line_ms = 0; /* a line ended: the next one starts its own deadline */
	if (cc->drop)
		return 1;
	if (!cc->waiting)
		return control_line(cc, line) != 0;
	/* Replies keep request order: hold lines behind a reply that waits. */
	if (cc->npending >= CONTROL_PENDING_MAX)
		return 1;
	p = xmalloc(sizeof *p);
	p->line = xstrdup(line);
	STAILQ_INSERT_TAIL(&cc->pending, p, entry);
	cc->npending++;
	return 0;
}

static int
control_feed(struct ctlconn *cc, const char *data, size_t len)
{
	return ctl_linebuf_feed(&cc->lb, data, len, control_feed_line, cc);
}

/*
 * (Re)arms cc's lws timeout, CONTROL_IDLE_TIMEOUT_SECONDS, after what it
 * sent: counted from its last complete line, or for an unfinished line
 * from that line's first byte (more bytes leave the deadline alone, so a
 * peer cannot hold a connection by trickling). None while a reply waits
 * (a publish for the writer, cluster metrics for the other nodes): then
 * the client waits for chatd, not the other way round; resume says that
 * wait just ended. lws closes the connection when
 * the time runs out.
 */
static void
control_arm(struct ctlconn *cc, int resume)
{
	int64_t limit_ms = cc->cd->cfg->control_idle_timeout_seconds * 1000;
	int64_t now = clock_mono_ms(), left_ms = limit_ms;

	if (cc->waiting) {
		lws_set_timeout(cc->wsi, NO_PENDING_TIMEOUT, 0);
		return;
	}
	if (cc->lb.len == 0)
		cc->line_ms = 0;
	else if (cc->line_ms == 0)
		cc->line_ms = now;
	else if (!resume)
		return; /* the unfinished line's deadline stands */
	else
		left_ms = limit_ms - (now - cc->line_ms);
	/* lws counts whole seconds: round up, at least one. */
	lws_set_timeout(
	    cc->wsi, PENDING_TIMEOUT_USER_OK, left_ms > 0 ? (int)((left_ms + 999) / 1000) : 1);
}

/* RAW_CLOSE: frees what cc holds; cc is zeroed. */
static void
control_conn_clear(struct ctlconn *cc)
{
	struct ctl_pending *p;

	while ((p = STAILQ_FIRST(&cc->pending)) != NULL) {
		STAILQ_REMOVE_HEAD(&cc->pending, entry);
		free(p->line);
		free(p);
	}
	ctl_linebuf_clear(&cc->lb);
	free(cc->out);
	memset(cc, 0, sizeof *cc);
}

/* Sends what is queued for a control client; -1 if the socket failed. */
static int
control_flush(struct ctlconn *cc)
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

int
control_callback(
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
		control_arm(cc, 0);
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
		control_arm(cc, 0);
		/*
		 * Answer at once rather than at the next WRITEABLE: a client
		 * such as `echo ... | socat - UNIX-CONNECT:...` half-closes
		 * right after its request, and lws closes the connection on
		 * that EOF before a later WRITEABLE. Control traffic is small;
		 * lws buffers a partial write. (Replies that wait for the
		 * writer, such as publish, still need the client to stay.)
		 */
		return control_flush(cc);
	case LWS_CALLBACK_RAW_WRITEABLE:
		if (!cc->live)
			return 0;
		if (cc->out_len > 0) {
			if (control_flush(cc) != 0)
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
		return 0;
	default:
		break;
	}
	return 0;
}
