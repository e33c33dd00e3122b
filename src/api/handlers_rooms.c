/*
 * Room routes: create, list, get, close, bans, custom events. The database
 * is the record; chatd is told afterwards (best effort) so it acts on the
 * change at once, and it re-reads the database when it starts, so nothing
 * recorded here is lost while it is down.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "admin.h"
#include "clock.h"
#include "config.h"
#include "ctl.h"
#include "db.h"
#include "encode.h"
#include "handlers.h"
#include "jsonutil.h"
#include "log.h"
#include "model.h"
#include "xmalloc.h"

/* A random (version 4) UUID: 122 bits from the kernel, unguessable. */
static int
rooms_new_id(char out[ROOM_ID_LEN + 1], char **cause)
{
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof b) {
		ssize_t n = getrandom(b + got, sizeof b - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			*cause = xasprintf("getrandom: %s", strerror(errno));
			return -1;
		}
		got += (size_t)n;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, ROOM_ID_LEN + 1,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
	    b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
	    b[15]);
	return 0;
}

/*
 * Whether chatd acted on a recorded change at once (the replies' "live").
 * Never fails the request: chatd reads the database when it starts.
 * Clears out.
 */
static int
rooms_live(struct admin_outcome *out, enum ctl_type type)
{
	int live = out->told == CTL_OK;

	if (!live)
		log_debug("chatd not told of %s (it reads the database at start): %s",
		    ctl_type_name(type), out->cause ? out->cause : "unknown");
	admin_outcome_clear(out);
	return live;
}

/* Loads the room named in the path; answers 404 itself when absent. */
static int
rooms_load(struct api_call *call, struct db_room *room)
{
	char *cause = NULL;
	int rc;

	memset(room, 0, sizeof *room);
	rc = db_room_get(call->ctx->db, call->params[0], room, &cause);
	if (rc == DB_NOTFOUND) {
		api_error(call, 404, "room_not_found", "no room with id %.64s", call->params[0]);
		return -1;
	}
	if (rc != DB_OK) {
		api_internal_error(call, "db_room_get", cause);
		return -1;
	}
	return 0;
}

void
handlers_rooms_create(struct api_call *call)
{
	static const char *const keys[] = { "room_name", "admin_user_ids", NULL };
	const cJSON *admins_json, *a;
	const char **admins = NULL;
	const char *name;
	char *cause = NULL, id[ROOM_ID_LEN + 1];
	size_t n_admins = 0;
	struct db_room room;
	struct jsonw w;
	int rc;

	if (json_check_keys(call->body, keys, &cause) != 0 ||
	    json_get_string(call->body, "room_name", 1, 1, ROOM_NAME_MAX_BYTES, TEXT_NO_CONTROL,
		&name, &cause) != 0) {
		api_error(call, 400, "invalid_field", "%s", cause);
		goto done;
	}
	admins_json = cJSON_GetObjectItemCaseSensitive(call->body, "admin_user_ids");
	if (admins_json != NULL && !cJSON_IsNull(admins_json)) {
		if (!cJSON_IsArray(admins_json)) {
			api_error(call, 400, "invalid_field",
			    "field \"admin_user_ids\" must be an array of strings");
			goto done;
		}
		if (cJSON_GetArraySize(admins_json) > ROOM_ADMINS_MAX) {
			api_error(call, 400, "invalid_field",
			    "field \"admin_user_ids\" has more than %d entries", ROOM_ADMINS_MAX);
			goto done;
		}
		admins = xcalloc((size_t)cJSON_GetArraySize(admins_json) + 1, sizeof *admins);
		cJSON_ArrayForEach(a, admins_json)
		{
			const char *why;
			if (!cJSON_IsString(a) ||
			    text_check(
				a->valuestring, 1, USER_ID_MAX_BYTES, TEXT_NO_CONTROL, &why) != 0) {
				api_error(call, 400, "invalid_field",
				    "field \"admin_user_ids\" must hold user ids of 1 to %d bytes "
				    "of "
				    "UTF-8 without control characters",
				    USER_ID_MAX_BYTES);
				goto done;
			}
			admins[n_admins++] = a->valuestring;
		}
	}
	if (rooms_new_id(id, &cause) != 0) {
		api_internal_error(call, "room id", cause);
		cause = NULL;
		goto done;
	}
	rc = db_room_create(call->ctx->db, id, name, admins, n_admins, clock_wall_ms(), &cause);
	if (rc != DB_OK) {
		api_internal_error(call, "db_room_create", cause);
		cause = NULL;
		goto done;
	}
	if (db_room_get(call->ctx->db, id, &room, &cause) != DB_OK) {
		api_internal_error(call, "db_room_get", cause);
		cause = NULL;
		goto done;
	}
	{
		struct admin_chatd chatd = handlers_misc_chatd(call);
		struct admin_outcome out;
		cJSON *args = json_object(), *none = NULL;
		json_add_string(args, "room_id", id);
		admin_tell(&chatd, CTL_ROOM_OPENED, args, &out);
		/* chatd acknowledged the new room: it is live and empty */
		if (rooms_live(&out, CTL_ROOM_OPENED))
			none = json_ok(cJSON_Parse("{\"rooms\":[]}"));
		jsonw_init(&w);
		encode_room(&w, &room, none, 1);
		jsonw_kv_bool(&w, "live", none != NULL);
		cJSON_Delete(none);
	}
	jsonw_object_end(&w);
	api_reply(call, 201, &w);
	db_room_clear(&room);
done:
	free(admins);
	free(cause);
}

void
handlers_rooms_list(struct api_call *call)
{
	const char *ic = uri_query_get(call->uri, "include_closed");
	int include_closed = 0;

	if (ic != NULL && (include_closed = uri_parse_bool(ic)) < 0) {
		api_error(call, 400, "invalid_query",
		    "include_closed must be true or false (also 1/0, yes/no, on/off)");
		return;
	}
	handlers_misc_rooms_reply(call, include_closed, 1, 0);
}

void
handlers_rooms_get(struct api_call *call)
{
	struct db_room room;
	struct db_room_counts counts;
	struct admin_chatd chatd = handlers_misc_chatd(call);
	struct jsonw w;
	cJSON *live;
	char *cause = NULL;

	if (rooms_load(call, &room) != 0)
		return;
	if (db_room_counts(call->ctx->db, room.id, &counts, &cause) != DB_OK) {
		db_room_clear(&room);
		api_internal_error(call, "db_room_counts", cause);
		return;
	}
	live = admin_live_rooms(&chatd);
	jsonw_init(&w);
	encode_room(&w, &room, live, 1);
	jsonw_kv_int(&w, "message_count", counts.message_count);
	jsonw_kv_int(&w, "last_seq", counts.last_seq);
	jsonw_kv_int(&w, "session_count", counts.session_count);
	jsonw_kv_int(&w, "open_sessions", counts.open_sessions);
	jsonw_kv_bool(&w, "live", live != NULL);
	jsonw_object_end(&w);
	cJSON_Delete(live);
	db_room_clear(&room);
	api_reply(call, 200, &w);
}

void
handlers_rooms_close(struct api_call *call)
{
	const char *reason = uri_query_get(call->uri, "reason"), *why;
	long long now = clock_wall_ms();
	struct admin_chatd chatd = handlers_misc_chatd(call);
	struct admin_outcome out;
	struct jsonw w;
	int rc, live;

	if (reason == NULL || *reason == '\0')
		reason = ROOM_CLOSE_REASON_DEFAULT;
	if (text_check(reason, 1, REASON_MAX_BYTES, TEXT_NO_CONTROL, &why) != 0) {
		api_error(call, 400, "invalid_query", "reason %s (at most %d bytes)", why,
		    REASON_MAX_BYTES);
		return;
	}
	rc = admin_close_room(call->ctx->db, &chatd, call->params[0], reason, now, &out);
	if (rc == DB_NOTFOUND)
		api_error(call, 404, "room_not_found", "no room with id %.64s", call->params[0]);
	else if (rc == DB_CONFLICT)
		api_error(
		    call, 409, "room_closed", "room %.64s is already closed", call->params[0]);
	else if (rc != DB_OK) {
		api_internal_error(call, "db_room_close", out.db_cause);
		out.db_cause = NULL;
	}
	if (rc != DB_OK) {
		admin_outcome_clear(&out);
		return;
	}
	live = rooms_live(&out, CTL_ROOM_CLOSED);

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "room_id", call->params[0]);
	jsonw_kv_bool(&w, "closed", 1);
	jsonw_kv_int(&w, "closed_at", now / 1000);
	jsonw_kv_string(&w, "reason", reason);
	jsonw_kv_bool(&w, "live", live);
	jsonw_object_end(&w);
	api_reply(call, 200, &w);
}

/* Writes a ban's members into an open object. */
static void
rooms_ban_json(struct jsonw *w, const struct db_ban *ban)
{
	jsonw_kv_string(w, "room_id", ban->room_id);
	jsonw_kv_string(w, "user_id", ban->user_id);
	jsonw_kv_string(w, "reason", ban->reason);
	jsonw_kv_int(w, "created_at", ban->created_at / 1000);
	if (ban->expires_at != 0)
		jsonw_kv_int(w, "expires_at", ban->expires_at / 1000);
	else
		jsonw_kv_null(w, "expires_at");
}

void
handlers_rooms_ban(struct api_call *call)
{
	static const char *const keys[] = { "user_id", "duration_seconds", "reason", NULL };
	const char *user_id, *reason;
	long long duration = 0, now = clock_wall_ms();
	struct admin_chatd chatd = handlers_misc_chatd(call);
	struct admin_outcome out;
	struct db_ban ban;
	struct jsonw w;
	char *cause = NULL;
	int present, rc, live;

	if (json_check_keys(call->body, keys, &cause) != 0 ||
	    json_get_string(call->body, "user_id", 1, 1, USER_ID_MAX_BYTES, TEXT_NO_CONTROL,
		&user_id, &cause) != 0 ||
	    json_get_int(call->body, "duration_seconds", 0, 1, BAN_DURATION_MAX_SECONDS, &duration,
		&present, &cause) != 0 ||
	    json_get_string(call->body, "reason", 0, 0, REASON_MAX_BYTES, TEXT_NO_CONTROL, &reason,
		&cause) != 0) {
		api_error(call, 400, "invalid_field", "%s", cause);
		free(cause);
		return;
	}
	memset(&ban, 0, sizeof ban);
	ban.room_id = (char *)call->params[0];
	ban.user_id = (char *)user_id;
	ban.reason = (char *)reason;
	ban.created_at = now;
	ban.expires_at = present ? now + duration * 1000 : 0;
	rc = admin_ban(
	    call->ctx->db, &chatd, ban.room_id, user_id, reason, ban.expires_at, now, &out);
	if (rc == DB_NOTFOUND)
		api_error(call, 404, "room_not_found", "no room with id %.64s", call->params[0]);
	else if (rc != DB_OK) {
		api_internal_error(call, "db_ban_add", out.db_cause);
		out.db_cause = NULL;
	}
	if (rc != DB_OK) {
		admin_outcome_clear(&out);
		return;
	}
	live = rooms_live(&out, CTL_BAN);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	rooms_ban_json(&w, &ban);
	jsonw_kv_bool(&w, "live", live);
	jsonw_object_end(&w);
	api_reply(call, 201, &w);
}

struct rooms_bans_arg {
	struct jsonw *w;
	long long count;
};

static int
rooms_bans_each(const struct db_ban *ban, void *arg)
{
	struct rooms_bans_arg *ba = arg;

	jsonw_object_begin(ba->w);
	rooms_ban_json(ba->w, ban);
	jsonw_object_end(ba->w);
	ba->count++;
	return 0;
}

void
handlers_rooms_bans(struct api_call *call)
{
	struct db_room room;
	struct rooms_bans_arg ba;
	struct jsonw w;
	char *cause = NULL;

	if (rooms_load(call, &room) != 0)
		return;
	db_room_clear(&room);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "room_id", call->params[0]);
	jsonw_key(&w, "bans");
	jsonw_array_begin(&w);
	ba.w = &w;
	ba.count = 0;
	if (db_ban_list(call->ctx->db, call->params[0], clock_wall_ms(), rooms_bans_each, &ba,
		&cause) != DB_OK) {
		jsonw_clear(&w);
		api_internal_error(call, "db_ban_list", cause);
		return;
	}
	jsonw_array_end(&w);
	jsonw_kv_int(&w, "count", ba.count);
	jsonw_object_end(&w);
	api_reply(call, 200, &w);
}

void
handlers_rooms_unban(struct api_call *call)
{
	struct admin_chatd chatd = handlers_misc_chatd(call);
	struct admin_outcome out;
	struct db_room room;
	struct jsonw w;
	int rc, live;

	if (rooms_load(call, &room) != 0)
		return;
	db_room_clear(&room);
	rc = admin_unban(
	    call->ctx->db, &chatd, call->params[0], call->params[1], clock_wall_ms(), &out);
	if (rc == DB_NOTFOUND)
		api_error(call, 404, "ban_not_found", "user %.128s is not banned in this room",
		    call->params[1]);
	else if (rc != DB_OK) {
		api_internal_error(call, "db_ban_lift", out.db_cause);
		out.db_cause = NULL;
	}
	if (rc != DB_OK) {
		admin_outcome_clear(&out);
		return;
	}
	live = rooms_live(&out, CTL_UNBAN);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "room_id", call->params[0]);
	jsonw_kv_string(&w, "user_id", call->params[1]);
	jsonw_kv_bool(&w, "unbanned", 1);
	jsonw_kv_bool(&w, "live", live);
	jsonw_object_end(&w);
	api_reply(call, 200, &w);
}

void
handlers_rooms_event(struct api_call *call)
{
	static const char *const keys[] = { "event_type", "payload", NULL };
	const struct config *cfg = call->ctx->cfg;
	const char *event_type;
	const cJSON *payload;
	struct db_room room;
	char *cause = NULL, *code = NULL;
	cJSON *args, *result = NULL;
	int rc;

	if (json_check_keys(call->body, keys, &cause) != 0 ||
	    json_get_string(call->body, "event_type", 1, 1, EVENT_TYPE_MAX_BYTES, TEXT_NO_CONTROL,
		&event_type, &cause) != 0) {
		api_error(call, 400, "invalid_field", "%s", cause);
		free(cause);
		return;
	}
	if (!model_event_type_ok(event_type)) {
		api_error(call, 400, "invalid_field",
		    "field \"event_type\" must be " MODEL_EVENT_TYPE_RULE);
		return;
	}
	payload = cJSON_GetObjectItemCaseSensitive(call->body, "payload");
	if (rooms_load(call, &room) != 0)
		return;
	if (room.closed_at != 0) {
		db_room_clear(&room);
		api_error(call, 409, "room_closed", "room %.64s is closed", call->params[0]);
		return;
	}
	db_room_clear(&room);

	args = json_object();
	json_add_string(args, "room_id", call->params[0]);
	json_add_string(args, "event_type", event_type);
	if (payload != NULL)
		json_add(args, "payload", json_ok(cJSON_Duplicate(payload, 1)));
	else
		json_add(args, "payload", json_object());
	rc = ctl_call(cfg->control_socket, (int)cfg->control_timeout_ms, CTL_PUBLISH, args, &result,
	    &code, &cause);
	cJSON_Delete(args);
	if (rc == CTL_ERR_UNAVAILABLE)
		api_error(call, 503, "chatd_unavailable", "%s", cause);
	else if (rc == CTL_ERR_REMOTE) {
		if (code != NULL && strcmp(code, "room_not_found") == 0)
			api_error(call, 404, "room_not_found", "%s", cause);
		else if (code != NULL && strcmp(code, "room_closed") == 0)
			api_error(call, 409, "room_closed", "%s", cause);
		else if (code != NULL && strcmp(code, "too_large") == 0)
			api_error(call, 413, "payload_too_large", "%s", cause);
		else
			api_internal_error(call, "chatd publish", xasprintf("%s: %s", code, cause));
	} else {
		/* chatd's answer (message id, seq, deliveries) plus what was sent */
		struct jsonw w;
		const cJSON *item, *obj = cJSON_IsObject(result) ? result : NULL;

		jsonw_init(&w);
		jsonw_object_begin(&w);
		jsonw_kv_string(&w, "room_id", call->params[0]);
		jsonw_kv_string(&w, "event_type", event_type);
		cJSON_ArrayForEach(item, obj)
		{
			char *text;
			if (strcmp(item->string, "room_id") == 0 ||
			    strcmp(item->string, "event_type") == 0)
				continue;
			text = json_print(item);
			jsonw_key(&w, item->string);
			jsonw_raw(&w, text, strlen(text));
			free(text);
		}
		jsonw_object_end(&w);
		api_reply(call, 200, &w);
	}
	cJSON_Delete(result);
	free(code);
	free(cause);
}
