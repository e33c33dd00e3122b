#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "encode.h"

const cJSON *
encode_live_find(const cJSON *live, const char *room_id)
{
	const cJSON *rooms, *r, *id;

	if (live == NULL)
		return NULL;
	rooms = cJSON_GetObjectItemCaseSensitive(live, "rooms");
	cJSON_ArrayForEach(r, rooms)
	{
		id = cJSON_GetObjectItemCaseSensitive(r, "room_id");
		if (cJSON_IsString(id) && strcmp(id->valuestring, room_id) == 0)
			return r;
	}
	return NULL;
}

void
encode_room(struct jsonw *w, const struct db_room *room, const cJSON *live, int with_live)
{
	const cJSON *mine = encode_live_find(live, room->id), *cur = NULL, *peak = NULL;

	jsonw_object_begin(w);
	jsonw_kv_string(w, "room_id", room->id);
	jsonw_kv_string(w, "room_name", room->name);
	jsonw_key(w, "admin_user_ids");
	jsonw_array_begin(w);
	for (size_t i = 0; i < room->n_admins; i++)
		jsonw_string(w, room->admins[i]);
	jsonw_array_end(w);
	jsonw_kv_int(w, "created_at", room->created_at / 1000);
	jsonw_kv_bool(w, "closed", room->closed_at != 0);
	if (room->closed_at != 0)
		jsonw_kv_int(w, "closed_at", room->closed_at / 1000);
	else
		jsonw_kv_null(w, "closed_at");
	jsonw_kv_string(w, "close_reason", room->close_reason);
	if (!with_live)
		return;
	if (mine != NULL) {
		cur = cJSON_GetObjectItemCaseSensitive(mine, "current_users");
		peak = cJSON_GetObjectItemCaseSensitive(mine, "peak_users");
	}
	if (cJSON_IsNumber(cur))
		jsonw_kv_int(w, "current_users", (long long)cur->valuedouble);
	else if (live != NULL && room->closed_at == 0)
		jsonw_kv_int(w, "current_users", 0); /* chatd answered: nobody is in it */
	else
		jsonw_kv_null(w, "current_users");
	/* chatd's live peak may be ahead of the last one it stored */
	if (cJSON_IsNumber(peak) && (long long)peak->valuedouble > room->peak_users)
		jsonw_kv_int(w, "peak_users", (long long)peak->valuedouble);
	else
		jsonw_kv_int(w, "peak_users", room->peak_users);
}

void
encode_message(struct jsonw *w, const struct db_message *m, enum encode_form form)
{
	int custom = m->kind == DB_MESSAGE_CUSTOM;

	jsonw_object_begin(w);
	jsonw_kv_int(w, "id", m->id);
	if (form == ENCODE_CALLBACK)
		jsonw_kv_string(w, "room_id", m->room_id);
	jsonw_kv_int(w, "seq", m->seq);
	jsonw_kv_string(w, "type", custom ? "CustomEvent" : "Message");
	if (form == ENCODE_CALLBACK)
		jsonw_kv_bool(w, "is_custom_event", custom);
	jsonw_kv_string(w, "from", m->user_id);
	jsonw_kv_string(w, "nickname", m->nickname);
	jsonw_kv_bool(w, "is_admin", m->is_admin);
	if (custom) {
		jsonw_kv_string(w, "event_type", m->event_type);
		/* chatd stores the payload as validated JSON text: embed it as is */
		jsonw_key(w, "payload");
		if (m->content != NULL)
			jsonw_raw(w, m->content, strlen(m->content));
		else
			jsonw_null(w);
	} else
		jsonw_kv_string(w, "content", m->content);
	jsonw_kv_int(w, "timestamp", m->created_at / 1000);
	jsonw_kv_int(w, "timestamp_ms", m->created_at);
	jsonw_object_end(w);
}

void
encode_session(struct jsonw *w, const struct db_session *s, int64_t feed_id, enum encode_form form)
{
	int callback = form == ENCODE_CALLBACK;

	jsonw_object_begin(w);
	if (callback)
		jsonw_kv_int(w, "id", feed_id);
	jsonw_kv_int(w, "session_id", s->id);
	if (callback)
		jsonw_kv_string(w, "room_id", s->room_id);
	jsonw_kv_int(w, "seq", s->seq);
	jsonw_kv_string(w, "user_id", s->user_id);
	jsonw_kv_string(w, "nickname", s->nickname);
	jsonw_kv_bool(w, "is_admin", s->is_admin);
	jsonw_kv_int(w, "joined_at", s->joined_at / 1000);
	jsonw_kv_int(w, "joined_at_ms", s->joined_at);
	if (s->left_at != 0 || callback) {
		jsonw_kv_int(w, "left_at", s->left_at / 1000);
		jsonw_kv_int(w, "left_at_ms", s->left_at);
		jsonw_kv_int(w, "duration_seconds", (s->left_at - s->joined_at) / 1000);
		if (callback)
			jsonw_kv_int(w, "duration_ms", s->left_at - s->joined_at);
	} else {
		jsonw_kv_null(w, "left_at");
		jsonw_kv_null(w, "left_at_ms");
		jsonw_kv_null(w, "duration_seconds");
	}
	jsonw_kv_string(w, "reason", s->leave_reason);
	jsonw_object_end(w);
}

/* A Unix-ms time as key (seconds) and key_ms, or two nulls for 0. */
static void
encode_time_pair(struct jsonw *w, const char *key, int64_t ms)
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

void
encode_dead_letter(struct jsonw *w, const struct db_dead_letter *d)
{
	jsonw_object_begin(w);
	jsonw_kv_int(w, "id", d->id);
	jsonw_kv_string(w, "target", d->target);
	jsonw_kv_string(w, "delivery_id", d->delivery_id);
	jsonw_kv_int(w, "after_id", d->after_id);
	jsonw_kv_int(w, "last_id", d->last_id);
	jsonw_kv_int(w, "count", d->count);
	jsonw_kv_int(w, "attempts", d->attempts);
	if (d->last_status != 0)
		jsonw_kv_int(w, "last_status", d->last_status);
	else
		jsonw_kv_null(w, "last_status");
	jsonw_kv_string(w, "last_error", d->last_error);
	encode_time_pair(w, "first_attempt_at", d->first_attempt_at);
	encode_time_pair(w, "last_attempt_at", d->last_attempt_at);
	encode_time_pair(w, "dead_at", d->created_at);
	encode_time_pair(w, "replay_requested_at", d->replay_requested_at);
	jsonw_object_end(w);
}
