/*
 * The room, message and session objects that chat-api's replies
 * (docs/api.md) and chat-sync's callbacks (docs/callbacks.md) both carry,
 * written in one place so the two cannot drift. Member order is part of
 * both contracts. The two forms differ only where the documents do:
 * callback rows come from many rooms and a feed, so they also name their
 * room and feed id; history rows belong to the page's room.
 */
#ifndef CHAT_ENCODE_H
#define CHAT_ENCODE_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "jsonw.h"

enum encode_form {
	ENCODE_HISTORY, /* a REST history page (one room) */
	ENCODE_CALLBACK, /* a chat_history / session_history callback batch */
};

/* The live stats object of one room in chatd's CTL_ROOMS result, or NULL. */
const cJSON *encode_live_find(const cJSON *live, const char *room_id);

/*
 * Opens a room object and writes its members. live: chatd's CTL_ROOMS
 * result, or NULL when chatd did not answer (live figures null); a room
 * chatd does not list has nobody in it. with_live 0 leaves the live
 * figures out. The object is left open for the caller's own members;
 * close it with jsonw_object_end.
 */
void encode_room(struct jsonw *w, const struct db_room *room, const cJSON *live, int with_live);

/* A message object. ENCODE_CALLBACK adds room_id and is_custom_event. */
void encode_message(struct jsonw *w, const struct db_message *m, enum encode_form form);

/*
 * A session object. ENCODE_HISTORY writes an open session's end as nulls.
 * ENCODE_CALLBACK is for the feed of completed sessions: it leads with
 * feed_id (the session's user_left event) and adds room_id and
 * duration_ms; feed_id is ignored otherwise.
 */
void encode_session(
    struct jsonw *w, const struct db_session *s, int64_t feed_id, enum encode_form form);

/*
 * A dead letter object (GET /management/callbacks/dead-letters, chatctl
 * dead-letters --json). Times as Unix seconds with _ms twins; null where
 * there is nothing (no HTTP answer, not marked for replay).
 */
void encode_dead_letter(struct jsonw *w, const struct db_dead_letter *d);

#endif
