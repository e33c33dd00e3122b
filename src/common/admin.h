/*
 * The operator actions chat-api and chatctl share: ban, unban and close a
 * room, each written to the database first and only then told to chatd
 * over the control socket. The database is the record chatd reloads when
 * it starts, so an action taken while chatd is down still holds and one
 * taken while it runs survives a restart; telling chatd only makes it act
 * at once. What to answer the operator stays with each program. Also the
 * live stats chat-api and chat-sync both ask chatd for.
 */
#ifndef CHAT_ADMIN_H
#define CHAT_ADMIN_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "ctl.h"
#include "db.h"

/* Where chatd listens and how long to wait for it. */
struct admin_chatd {
	const char *socket;
	int timeout_ms;
};

#define ADMIN_NOT_TOLD 1 /* outcome.told: the record failed, chatd was not asked */

/* What an action did; clear with admin_outcome_clear. */
struct admin_outcome {
	char *db_cause; /* the database's reason when the write returned DB_ERROR */
	int told; /* ctl_call's answer (CTL_OK, CTL_ERR_*) or ADMIN_NOT_TOLD */
	cJSON *result; /* CTL_OK: chatd's result */
	char *code, *cause; /* CTL_ERR_REMOTE: chatd's error; CTL_ERR_UNAVAILABLE: cause */
};
void admin_outcome_clear(struct admin_outcome *out);

/*
 * Each records the action in db, then tells chatd, and returns the
 * database's answer: DB_OK (chatd was then asked: see out->told),
 * DB_NOTFOUND (no such room; for unban, no ban in force), DB_CONFLICT
 * (close: already closed) or DB_ERROR (out->db_cause). db NULL records
 * nothing and only tells chatd (chatctl --no-db): DB_OK. Times are Unix
 * ms; expires_at 0 is a permanent ban; reason may be NULL but for close.
 */
int admin_ban(struct db *db, const struct admin_chatd *chatd, const char *room_id,
    const char *user_id, const char *reason, int64_t expires_at, int64_t now,
    struct admin_outcome *out);
int admin_unban(struct db *db, const struct admin_chatd *chatd, const char *room_id,
    const char *user_id, int64_t now, struct admin_outcome *out);
int admin_close_room(struct db *db, const struct admin_chatd *chatd, const char *room_id,
    const char *reason, int64_t now, struct admin_outcome *out);

/* Tells chatd of a change the caller has recorded (args consumed); fills
 * out afresh and returns out->told. */
int admin_tell(
    const struct admin_chatd *chatd, enum ctl_type type, cJSON *args, struct admin_outcome *out);

/* chatd's live stats of every room (CTL_ROOMS; caller deletes), or NULL
 * when it does not answer (logged at debug). */
cJSON *admin_live_rooms(const struct admin_chatd *chatd);

#endif
