#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "jsonutil.h"
#include "log.h"

static void
admin_start(struct admin_outcome *out)
{
	memset(out, 0, sizeof *out);
	out->told = ADMIN_NOT_TOLD;
}

void
admin_outcome_clear(struct admin_outcome *out)
{
	free(out->db_cause);
	cJSON_Delete(out->result);
	free(out->code);
	free(out->cause);
	admin_start(out);
}

/* Sends the request into an outcome already started; consumes args. */
static void
admin_send(
    const struct admin_chatd *chatd, enum ctl_type type, cJSON *args, struct admin_outcome *out)
{
	out->told = ctl_call(
	    chatd->socket, chatd->timeout_ms, type, args, &out->result, &out->code, &out->cause);
	cJSON_Delete(args);
}

int
admin_tell(
    const struct admin_chatd *chatd, enum ctl_type type, cJSON *args, struct admin_outcome *out)
{
	admin_start(out);
	admin_send(chatd, type, args, out);
	return out->told;
}

int
admin_ban(struct db *db, const struct admin_chatd *chatd, const char *room_id, const char *user_id,
    const char *reason, int64_t expires_at, int64_t now, struct admin_outcome *out)
{
	cJSON *args;
	int rc;

	admin_start(out);
	if (db != NULL &&
	    (rc = db_ban_add(db, room_id, user_id, reason, expires_at, now, &out->db_cause)) !=
		DB_OK)
		return rc;
	args = json_object();
	json_add_string(args, "room_id", room_id);
	json_add_string(args, "user_id", user_id);
	if (reason != NULL)
		json_add_string(args, "reason", reason);
	json_add_int(args, "expires_at", expires_at);
	admin_send(chatd, CTL_BAN, args, out);
	return DB_OK;
}

int
admin_unban(struct db *db, const struct admin_chatd *chatd, const char *room_id,
    const char *user_id, int64_t now, struct admin_outcome *out)
{
	cJSON *args;
	int rc;

	admin_start(out);
	if (db != NULL && (rc = db_ban_lift(db, room_id, user_id, now, &out->db_cause)) != DB_OK)
		return rc;
	args = json_object();
	json_add_string(args, "room_id", room_id);
	json_add_string(args, "user_id", user_id);
	admin_send(chatd, CTL_UNBAN, args, out);
	return DB_OK;
}

int
admin_close_room(struct db *db, const struct admin_chatd *chatd, const char *room_id,
    const char *reason, int64_t now, struct admin_outcome *out)
{
	cJSON *args;
	int rc;

	admin_start(out);
	if (db != NULL && (rc = db_room_close(db, room_id, reason, now, &out->db_cause)) != DB_OK)
		return rc;
	args = json_object();
	json_add_string(args, "room_id", room_id);
	json_add_string(args, "reason", reason);
	admin_send(chatd, CTL_ROOM_CLOSED, args, out);
	return DB_OK;
}

cJSON *
admin_live_rooms(const struct admin_chatd *chatd)
{
	struct admin_outcome out;
	cJSON *live;

	if (admin_tell(chatd, CTL_ROOMS, NULL, &out) != CTL_OK) {
		log_debug("live stats unavailable: %s", out.cause != NULL ? out.cause : "unknown");
		admin_outcome_clear(&out);
		return NULL;
	}
	live = out.result;
	out.result = NULL;
	admin_outcome_clear(&out);
	return live;
}
