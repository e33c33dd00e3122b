/*
 * Health and the helpers every handler shares: the room object, live
 * stats from chatd, and the clock. Live stats are best effort: when chatd
 * is unreachable the caller gets NULL and reports "live": false.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "clock.h"
#include "config.h"
#include "ctl.h"
#include "db.h"
#include "dbfile.h"
#include "encode.h"
#include "handlers.h"
#include "jsonutil.h"
#include "log.h"
#include "xmalloc.h"

struct admin_chatd
handlers_misc_chatd(const struct api_call *call)
{
	const struct config *cfg = call->ctx->cfg;

	return (struct admin_chatd){ cfg->control_socket, (int)cfg->control_timeout_ms };
}

struct misc_rooms_arg {
	struct jsonw *w;
	const cJSON *live;
	int with_live;
	long long count;
};

static int
misc_rooms_each(const struct db_room *room, void *arg)
{
	struct misc_rooms_arg *ra = arg;

	encode_room(ra->w, room, ra->live, ra->with_live);
	jsonw_object_end(ra->w);
	ra->count++;
	return 0;
}

void
handlers_misc_rooms_reply(
    struct api_call *call, int include_closed, int with_live, int with_timestamp)
{
	struct misc_rooms_arg ra;
	struct jsonw w;
	cJSON *live = NULL;
	char *cause = NULL;

	if (with_live) {
		struct admin_chatd chatd = handlers_misc_chatd(call);
		live = admin_live_rooms(&chatd);
	}
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key(&w, "rooms");
	jsonw_array_begin(&w);
	ra.w = &w;
	ra.live = live;
	ra.with_live = with_live;
	ra.count = 0;
	if (db_room_list(call->ctx->db, include_closed, misc_rooms_each, &ra, &cause) != DB_OK) {
		jsonw_clear(&w);
		cJSON_Delete(live);
		api_internal_error(call, "db_room_list", cause);
		return;
	}
	jsonw_array_end(&w);
	jsonw_kv_int(&w, "count", ra.count);
	if (with_timestamp)
		jsonw_kv_int(&w, "timestamp", clock_wall_ms() / 1000);
	if (with_live)
		jsonw_kv_bool(&w, "live", live != NULL);
	jsonw_object_end(&w);
	cJSON_Delete(live);
	api_reply(call, 200, &w);
}

/*
 * chat-sync's targets as its cursors name them (src/sync/targets.c), with
 * the rows each one delivers, for the backlog in the health reply.
 */
static const struct {
	const char *name;
	size_t url; /* offset of the URL in struct config */
	enum db_feed feed;
} misc_callbacks[] = {
	{ "room_events", offsetof(struct config, room_event_callback_url), DB_FEED_EVENTS },
	{ "chat_history", offsetof(struct config, chat_history_callback_url), DB_FEED_MESSAGES },
	{ "session_history", offsetof(struct config, session_history_callback_url),
	    DB_FEED_SESSIONS },
	{ "periodic_sync", offsetof(struct config, periodic_sync_callback_url),
	    DB_FEED_SYNC_REQUESTS },
	{ "data", offsetof(struct config, data_callback_url), DB_FEED_SYNC_REQUESTS },
};

int
handlers_misc_target_known(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof misc_callbacks / sizeof misc_callbacks[0]; i++) {
		if (strcmp(misc_callbacks[i].name, name) == 0)
			return 1;
	}
	return 0;
}

int
handlers_misc_each_target(
    struct api_call *call, void (*fn)(const struct misc_target *t, void *arg), void *arg)
{
	const struct config *cfg = call->ctx->cfg;
	struct misc_target t;
	char *cause = NULL;
	size_t i;
	int n = 0;

	for (i = 0; i < sizeof misc_callbacks / sizeof misc_callbacks[0]; i++) {
		memset(&t, 0, sizeof t);
		t.url = *(char *const *)((const char *)cfg + misc_callbacks[i].url);
		if (t.url == NULL || *t.url == '\0')
			continue;
		t.name = misc_callbacks[i].name;
		n++;
		if (db_cursor_get(call->ctx->db, t.name, &t.cursor, &cause) != DB_OK ||
		    db_backlog(call->ctx->db, misc_callbacks[i].feed, t.cursor.last_id, 0,
			&t.backlog, &cause) != DB_OK ||
		    db_dead_letter_counts(call->ctx->db, t.name, &t.dead, &t.replay, &cause) !=
			DB_OK) {
			log_error("callbacks %s: %s", t.name, cause);
			free(cause);
			cause = NULL;
			t.failed = 1;
		}
		fn(&t, arg);
		db_cursor_clear(&t.cursor);
	}
	return n;
}

static void
misc_health_target(const struct misc_target *t, void *arg)
{
	struct jsonw *w = arg;
	long long now = clock_wall_ms();

	jsonw_key(w, t->name);
	jsonw_object_begin(w);
	if (t->failed) {
		jsonw_kv_string(w, "error", "database query failed; see the chat-api log");
		jsonw_object_end(w);
		return;
	}
	jsonw_kv_int(w, "pending", t->backlog.count);
	if (t->backlog.count > 0)
		jsonw_kv_int(w, "oldest_pending_age_s",
		    now > t->backlog.oldest_at ? (now - t->backlog.oldest_at) / 1000 : 0);
	else
		jsonw_kv_null(w, "oldest_pending_age_s");
	jsonw_kv_int(w, "last_id", t->cursor.last_id);
	jsonw_kv_int(w, "attempts", t->cursor.attempts);
	if (t->cursor.failing_since != 0)
		jsonw_kv_int(w, "failing_since", t->cursor.failing_since / 1000);
	else
		jsonw_kv_null(w, "failing_since");
	jsonw_kv_string(w, "last_error", t->cursor.last_error);
	if (t->cursor.last_success_at != 0)
		jsonw_kv_int(w, "last_success_at", t->cursor.last_success_at / 1000);
	else
		jsonw_kv_null(w, "last_success_at");
	jsonw_kv_int(w, "dead_letters", t->dead);
	jsonw_kv_int(w, "dead_letters_replay_pending", t->replay);
	jsonw_object_end(w);
}

/* Per enabled target: backlog, its age, the failure state and the dead letters. */
static void
misc_health_callbacks(struct api_call *call, struct jsonw *w)
{
	jsonw_key(w, "callbacks");
	jsonw_object_begin(w);
	handlers_misc_each_target(call, misc_health_target, w);
	jsonw_object_end(w);
}

void
handlers_misc_live(struct api_call *call)
{
	struct jsonw w;
	int ok = db_schema_version(call->ctx->db) > 0;

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "status", ok ? "ok" : "unavailable");
	jsonw_object_end(&w);
	api_reply(call, ok ? 200 : 503, &w);
}

/*
 * The causes a cluster node adds (cluster: its health's "cluster" object,
 * NULL on a single chatd): its bus is down, so it neither hears nor tells
 * the other nodes, or it has not yet taken in a node's snapshot, so that
 * node's users are missing from its presence and counts. Returns how many.
 */
static int
misc_health_cluster_causes(struct jsonw *w, const cJSON *cluster)
{
	const cJSON *bus = cJSON_GetObjectItemCaseSensitive(cluster, "bus");
	const cJSON *self = cJSON_GetObjectItemCaseSensitive(cluster, "node_id");
	const cJSON *node, *id;
	char *text;
	int n = 0;

	if (!cJSON_IsObject(cluster))
		return 0;
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(bus, "connected"))) {
		text = xasprintf(
		    "chatd's cluster bus is down: this node (%s) serves its own members only; "
		    "messages posted on other nodes reach them when the bus is back (read from "
		    "the database), and presence and head counts leave the other nodes' users "
		    "out until then; check nats-server and CLUSTER_NATS_URL",
		    cJSON_IsString(self) ? self->valuestring : "?");
		jsonw_string(w, text);
		free(text);
		n++;
	}
	cJSON_ArrayForEach(node, cJSON_GetObjectItemCaseSensitive(cluster, "nodes"))
	{
		if (!cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(node, "synced")))
			continue;
		id = cJSON_GetObjectItemCaseSensitive(node, "node_id");
		text = xasprintf("chatd (node %s) has not synced with cluster node %s: that "
				 "node's users are missing from this node's presence and head "
				 "counts until its snapshot arrives over the bus",
		    cJSON_IsString(self) ? self->valuestring : "?",
		    cJSON_IsString(id) ? id->valuestring : "?");
		jsonw_string(w, text);
		free(text);
		n++;
	}
	return n;
}

/*
 * Why the status is "degraded", as a JSON array of sentences into w:
 * chat-api cannot read the database, chatd cannot be reached, or chatd's writes to the database fail (a full
 * disk), when it refuses messages and keeps session records until they
 * can be written; on a cluster node, the bus or a peer not synced.
 * Returns how many.
 */
static int
misc_health_causes(
    struct jsonw *w, int db_ok, int chatd_ok, const char *chatd_cause, const cJSON *chatd)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(chatd, "database");
	const cJSON *since = cJSON_GetObjectItemCaseSensitive(d, "failing_since");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(d, "last_error");
	char *text;
	int n = 0;

	jsonw_array_begin(w);
	if (!db_ok) {
		jsonw_string(w, "chat-api cannot query the database; see its log");
		n++;
	}
	if (!chatd_ok) {
		text = xasprintf("chatd is unreachable: %s", chatd_cause ? chatd_cause : "?");
		jsonw_string(w, text);
		free(text);
		n++;
	} else if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(d, "writable"))) {
		text = xasprintf("chatd cannot write to the database since %lld (Unix time): %s; "
				 "messages are refused and session records wait",
		    cJSON_IsNumber(since) ? (long long)since->valuedouble : 0LL,
		    cJSON_IsString(err) ? err->valuestring : "?");
		jsonw_string(w, text);
		free(text);
		n++;
	}
	if (chatd_ok && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(chatd, "wal_at_bound"))) {
		jsonw_string(w,
		    "chatd's WAL is at its bound while another reader holds the database "
		    "open in one transaction: chat messages are refused until it ends");
		n++;
	}
	if (chatd_ok)
		n += misc_health_cluster_causes(
		    w, cJSON_GetObjectItemCaseSensitive(chatd, "cluster"));
	jsonw_array_end(w);
	return n;
}

struct misc_nodes_arg {
	struct jsonw *w;
	int64_t now, timeout_ms;
	long long count;
};

/* A Unix-ms time as key (seconds) and key_ms, or two nulls for 0. */
static void
misc_time_pair(struct jsonw *w, const char *key, int64_t ms)
{
	char key_ms[64];

	snprintf(key_ms, sizeof key_ms, "%s_ms", key);
	if (ms == 0) {
		jsonw_kv_null(w, key);
		jsonw_kv_null(w, key_ms);
		return;
	}
	jsonw_kv_int(w, key, ms / 1000);
	jsonw_kv_int(w, key_ms, ms);
}

/* One row of the nodes table; chatctl nodes --json writes the same members. */
static int
misc_nodes_each(const struct db_node *n, void *arg)
{
	struct misc_nodes_arg *na = arg;
	struct jsonw *w = na->w;

	jsonw_object_begin(w);
	jsonw_kv_string(w, "node_id", n->id);
	jsonw_kv_string(w, "incarnation", n->incarnation);
	jsonw_kv_string(w, "state", db_node_state(n, na->now, na->timeout_ms));
	jsonw_kv_int(w, "connections", n->connections);
	misc_time_pair(w, "started_at", n->started_at);
	misc_time_pair(w, "seen_at", n->seen_at);
	jsonw_kv_int(w, "seen_age_s", na->now > n->seen_at ? (na->now - n->seen_at) / 1000 : 0);
	misc_time_pair(w, "stopped_at", n->stopped_at);
	misc_time_pair(w, "reaped_at", n->reaped_at);
	jsonw_object_end(w);
	na->count++;
	return 0;
}

/*
 * The database's nodes table as a JSON array into w (the cluster's nodes
 * as their heartbeats left them; none for a single chatd). Returns how
 * many rows, or -1 with *cause.
 */
static long long
misc_health_nodes(struct api_call *call, struct jsonw *w, char **cause)
{
	struct misc_nodes_arg na = { w, clock_wall_ms(), call->ctx->cfg->cluster_node_timeout_ms,
		0 };

	jsonw_array_begin(w);
	if (db_node_list(call->ctx->db, misc_nodes_each, &na, cause) != DB_OK)
		return -1;
	jsonw_array_end(w);
	return na.count;
}

void
handlers_misc_health(struct api_call *call)
{
	const struct config *cfg = call->ctx->cfg;
	cJSON *result = NULL;
	struct db_health h;
	struct jsonw w, causes, nodes;
	char *cause = NULL, *code = NULL, *text;
	int64_t dead_total = 0, dead_replay = 0;
	long long nnodes = 0;
	int db_ok, chatd_ok, degraded;

	/* Dead letters of every target, enabled or not: none may go unseen. */
	jsonw_init(&nodes);
	db_ok = db_health(call->ctx->db, &h, &cause) == DB_OK &&
	    db_dead_letter_counts(call->ctx->db, NULL, &dead_total, &dead_replay, &cause) ==
		DB_OK &&
	    (nnodes = misc_health_nodes(call, &nodes, &cause)) >= 0;
	if (!db_ok)
		log_error("health: database: %s", cause);
	free(cause);
	cause = NULL;
	chatd_ok = ctl_call(cfg->control_socket, (int)cfg->control_timeout_ms, CTL_HEALTH, NULL,
		       &result, &code, &cause) == CTL_OK;

	/* Written aside first: the status at the top depends on them. */
	jsonw_init(&causes);
	degraded = misc_health_causes(&causes, db_ok, chatd_ok, cause, result) > 0;

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "status", db_ok && !degraded ? "ok" : "degraded");
	jsonw_key(&w, "causes");
	jsonw_raw(&w, causes.buf, causes.len);
	jsonw_clear(&causes);
	jsonw_kv_string(&w, "version", PACKAGE_VERSION);
	jsonw_key(&w, "database");
	jsonw_object_begin(&w);
	jsonw_kv_bool(&w, "ok", db_ok);
	if (db_ok) {
		jsonw_kv_int(&w, "schema_version", db_schema_version(call->ctx->db));
		jsonw_kv_int(&w, "rooms_open", h.rooms_open);
		jsonw_kv_int(&w, "rooms_closed", h.rooms_closed);
		jsonw_kv_int(&w, "pending_sync_requests", h.pending_sync_requests);
		jsonw_kv_int(&w, "outbox_events", h.outbox_events);
		jsonw_kv_int(&w, "dead_letters", dead_total);
		jsonw_kv_int(&w, "wal_bytes", dbfile_wal_bytes(cfg->database_path));
		if (nnodes > 0) {
			jsonw_key(&w, "nodes");
			jsonw_raw(&w, nodes.buf, nodes.len);
		}
	} else
		jsonw_kv_string(&w, "error", "database query failed; see the chat-api log");
	jsonw_object_end(&w);
	jsonw_clear(&nodes);
	if (db_ok)
		misc_health_callbacks(call, &w);
	jsonw_key(&w, "chatd");
	jsonw_object_begin(&w);
	jsonw_kv_bool(&w, "reachable", chatd_ok);
	if (chatd_ok) {
		text = json_print(result);
		jsonw_key(&w, "health");
		jsonw_raw(&w, text, strlen(text));
		free(text);
	} else
		jsonw_kv_string(&w, "error", cause);
	jsonw_object_end(&w);
	jsonw_object_end(&w);
	cJSON_Delete(result);
	free(code);
	free(cause);
	api_reply(call, db_ok ? 200 : 503, &w);
}
