/*
 * Payloads of every callback target, built with the streaming JSON writer
 * straight from db.c's row callbacks. The legacy DATA_CALLBACK_URL body is
 * the GET /management/sync body (docs/api.md); rooms, messages and
 * sessions are written by src/common/encode.c, as chat-api's are. Must
 * not talk HTTP or write to the database.
 */
#include "autoconf.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "admin.h"
#include "encode.h"
#include "targets.h"

const struct targets_def targets_table[] = {
	{ "room_events", TARGETS_FEED, DB_FEED_EVENTS },
	{ "chat_history", TARGETS_FEED, DB_FEED_MESSAGES },
	{ "session_history", TARGETS_FEED, DB_FEED_SESSIONS },
	{ "periodic_sync", TARGETS_SNAPSHOT, DB_FEED_SYNC_REQUESTS },
	{ "data", TARGETS_SNAPSHOT, DB_FEED_SYNC_REQUESTS },
};
const size_t targets_count = sizeof targets_table / sizeof targets_table[0];

const char *
targets_url(const struct targets_def *def, const struct config *cfg)
{
	if (strcmp(def->name, "room_events") == 0)
		return cfg->room_event_callback_url;
	if (strcmp(def->name, "chat_history") == 0)
		return cfg->chat_history_callback_url;
	if (strcmp(def->name, "session_history") == 0)
		return cfg->session_history_callback_url;
	if (strcmp(def->name, "periodic_sync") == 0)
		return cfg->periodic_sync_callback_url;
	return cfg->data_callback_url;
}

int64_t
targets_batch_size(const struct targets_def *def, const struct config *cfg)
{
	if (def->feed == DB_FEED_MESSAGES)
		return cfg->chat_history_batch_size;
	if (def->feed == DB_FEED_SESSIONS)
		return cfg->session_history_batch_size;
	return TARGETS_EVENT_BATCH_MAX;
}

int64_t
targets_interval_s(const struct targets_def *def, const struct config *cfg)
{
	if (def->feed == DB_FEED_MESSAGES)
		return cfg->chat_history_batch_interval_seconds;
	if (def->feed == DB_FEED_SESSIONS)
		return cfg->session_history_batch_interval_seconds;
	if (def->kind == TARGETS_SNAPSHOT)
		return cfg->sync_interval_seconds;
	return 0; /* room events: as soon as they exist */
}

struct targets_rows {
	struct jsonw *w;
	int64_t count;
	int64_t last_id;
};

/* Writes member key as the JSON text of a stored column, or null. */
static void
targets_kv_raw(struct jsonw *w, const char *key, const char *json)
{
	jsonw_key(w, key);
	if (json != NULL)
		jsonw_raw(w, json, strlen(json));
	else
		jsonw_null(w);
}

static int
targets_event_each(const struct db_event *e, void *arg)
{
	struct targets_rows *r = arg;
	struct jsonw *w = r->w;

	jsonw_object_begin(w);
	jsonw_kv_int(w, "id", e->id);
	jsonw_kv_string(w, "type", e->kind);
	jsonw_kv_string(w, "room_id", e->room_id);
	jsonw_kv_string(w, "user_id", e->user_id);
	jsonw_kv_string(w, "nickname", e->nickname);
	jsonw_kv_string(w, "reason", e->reason);
	if (e->session_id != 0)
		jsonw_kv_int(w, "session_id", e->session_id);
	else
		jsonw_kv_null(w, "session_id");
	jsonw_kv_int(w, "timestamp", e->created_at / 1000);
	jsonw_kv_int(w, "timestamp_ms", e->created_at);
	/* db.c writes data as a JSON object itself */
	targets_kv_raw(w, "data", e->data);
	jsonw_object_end(w);
	r->count++;
	r->last_id = e->id;
	return 0;
}

static int
targets_message_each(const struct db_message *m, void *arg)
{
	struct targets_rows *r = arg;

	encode_message(r->w, m, ENCODE_CALLBACK);
	r->count++;
	r->last_id = m->id;
	return 0;
}

static int
targets_session_each(const struct db_session *s, int64_t event_id, void *arg)
{
	struct targets_rows *r = arg;

	encode_session(r->w, s, event_id, ENCODE_CALLBACK);
	r->count++;
	r->last_id = event_id;
	return 0;
}

int
targets_build_feed(const struct targets_def *def, struct db *db, int64_t after, int64_t upto,
    int64_t limit, struct jsonw *w, int64_t *count, int64_t *last_id, char **cause)
{
	struct targets_rows r = { w, 0, 0 };
	struct jsonw rows;
	int rc;

	*count = *last_id = 0;
	if (def->feed == DB_FEED_EVENTS) {
		/* One event alone is sent as an object, several as an array. */
		jsonw_array_begin(w);
		rc = db_feed_events(db, after, upto, limit, targets_event_each, &r, cause);
		if (rc != DB_OK)
			return -1;
		jsonw_array_end(w);
		if (r.count == 1) {
			memmove(w->buf, w->buf + 1, w->len - 2);
			w->len -= 2;
			w->buf[w->len] = '\0';
		}
		*count = r.count;
		*last_id = r.last_id;
		return 0;
	}
	/* The head carries the count, known only after the rows: write them apart. */
	jsonw_init(&rows);
	r.w = &rows;
	jsonw_array_begin(&rows);
	if (def->feed == DB_FEED_MESSAGES)
		rc = db_feed_messages(db, after, upto, limit, targets_message_each, &r, cause);
	else
		rc = db_feed_sessions(db, after, upto, limit, targets_session_each, &r, cause);
	if (rc != DB_OK) {
		jsonw_clear(&rows);
		return -1;
	}
	jsonw_array_end(&rows);
	jsonw_object_begin(w);
	jsonw_kv_string(
	    w, "type", def->feed == DB_FEED_MESSAGES ? "chat_history" : "session_history");
	jsonw_kv_int(w, "count", r.count);
	jsonw_kv_int(w, "first_id", r.count > 0 ? after + 1 : 0);
	jsonw_kv_int(w, "last_id", r.last_id);
	jsonw_key(w, def->feed == DB_FEED_MESSAGES ? "messages" : "sessions");
	jsonw_raw(w, rows.buf, rows.len);
	jsonw_object_end(w);
	jsonw_clear(&rows);
	*count = r.count;
	*last_id = r.last_id;
	return 0;
}

struct targets_snap {
	struct jsonw *w;
	struct db *db;
	const cJSON *live;
	int consistency; /* periodic sync: add the consistency block */
	int64_t count;
	int failed;
	char *cause;
};

/* Occupants listed per room in the periodic sync; the count covers all. */
#define TARGETS_OCCUPANTS_MAX 1000

static int
targets_occupant_each(const struct db_occupant *o, void *arg)
{
	struct jsonw *w = arg;

	jsonw_object_begin(w);
	jsonw_kv_int(w, "session_id", o->session_id);
	jsonw_kv_string(w, "user_id", o->user_id);
	jsonw_kv_string(w, "nickname", o->nickname);
	jsonw_kv_bool(w, "is_admin", o->is_admin);
	jsonw_kv_int(w, "joined_at", o->joined_at / 1000);
	jsonw_object_end(w);
	return 0;
}

static int
targets_snap_each(const struct db_room *room, void *arg)
{
	struct targets_snap *s = arg;
	struct db_room_counts c;

	/* the room object of GET /management/sync */
	encode_room(s->w, room, s->live, 1);
	if (s->consistency) {
		if (db_room_counts(s->db, room->id, &c, &s->cause) != DB_OK) {
			s->failed = 1;
			return 1;
		}
		jsonw_key(s->w, "consistency");
		jsonw_object_begin(s->w);
		jsonw_kv_int(s->w, "message_count", c.message_count);
		jsonw_kv_int(s->w, "last_message_id", c.last_message_id);
		jsonw_kv_int(s->w, "last_seq", c.last_seq);
		jsonw_kv_int(s->w, "session_count", c.session_count);
		jsonw_kv_int(s->w, "current_occupants", c.open_sessions);
		/* Who is in the room, so a receiver that missed a user_left
		 * event can heal it; bounded, with the count above complete. */
		jsonw_key(s->w, "occupants");
		jsonw_array_begin(s->w);
		if (db_room_occupants(s->db, room->id, TARGETS_OCCUPANTS_MAX, targets_occupant_each,
			s->w, &s->cause) != DB_OK) {
			s->failed = 1;
			return 1;
		}
		jsonw_array_end(s->w);
		jsonw_kv_bool(s->w, "occupants_truncated", c.open_sessions > TARGETS_OCCUPANTS_MAX);
		jsonw_object_end(s->w);
	}
	jsonw_object_end(s->w);
	s->count++;
	return 0;
}

int
targets_build_snapshot(const struct targets_def *def, struct db *db, const struct config *cfg,
    const char *trigger, int64_t now_ms, struct jsonw *w, char **cause)
{
	struct admin_chatd chatd = { cfg->control_socket, (int)cfg->control_timeout_ms };
	struct targets_snap s;
	cJSON *live;
	int periodic = strcmp(def->name, "periodic_sync") == 0, rc, have_live;

	memset(&s, 0, sizeof s);
	live = admin_live_rooms(&chatd);
	have_live = live != NULL;
	s.w = w;
	s.db = db;
	s.live = live;
	s.consistency = periodic;
	jsonw_object_begin(w);
	if (periodic) {
		jsonw_kv_string(w, "type", "periodic_sync");
		jsonw_kv_string(w, "trigger", trigger);
	}
	jsonw_key(w, "rooms");
	jsonw_array_begin(w);
	/* The legacy body lists open rooms only, as GET /management/sync does. */
	rc = db_room_list(db, periodic, targets_snap_each, &s, cause);
	cJSON_Delete(live);
	if (rc != DB_OK)
		return -1;
	if (s.failed) {
		*cause = s.cause;
		return -1;
	}
	jsonw_array_end(w);
	jsonw_kv_int(w, "count", s.count);
	jsonw_kv_int(w, "timestamp", now_ms / 1000);
	jsonw_kv_bool(w, "live", have_live);
	jsonw_object_end(w);
	return 0;
}
