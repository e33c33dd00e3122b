/*
 * Route handlers. Each validates its own fields and answers through
 * api_reply()/api_error(); the dispatcher has done every generic check.
 */
#ifndef CHAT_HANDLERS_H
#define CHAT_HANDLERS_H

#include "admin.h"
#include "db.h"
#include "dispatch.h"

/* handlers_rooms.c */
void handlers_rooms_create(struct api_call *call);
void handlers_rooms_list(struct api_call *call);
void handlers_rooms_get(struct api_call *call);
void handlers_rooms_close(struct api_call *call);
void handlers_rooms_ban(struct api_call *call);
void handlers_rooms_bans(struct api_call *call);
void handlers_rooms_unban(struct api_call *call);
void handlers_rooms_event(struct api_call *call);

/* handlers_tokens.c */
void handlers_tokens_create(struct api_call *call);

/* handlers_sync.c */
void handlers_sync_get(struct api_call *call);
void handlers_sync_request(struct api_call *call);
void handlers_sync_rooms(struct api_call *call);
void handlers_sync_chat_history(struct api_call *call);
void handlers_sync_session_history(struct api_call *call);

/* handlers_callbacks.c: chat-sync's dead letters */
void handlers_callbacks_dead_letters(struct api_call *call);
void handlers_callbacks_replay(struct api_call *call);
void handlers_callbacks_replay_all(struct api_call *call);
void handlers_callbacks_discard(struct api_call *call);

/* handlers_misc.c */
void handlers_misc_health(struct api_call *call);
/* Liveness for load balancers, without the key: ok or unavailable, nothing more. */
void handlers_misc_live(struct api_call *call);
/* Shared by the handlers: room listings and the way to chatd. */
/* Answers a room listing {"rooms":[...],"count":N}; with_live adds live
 * figures and "live", with_timestamp adds "timestamp" (legacy sync body). */
void handlers_misc_rooms_reply(
    struct api_call *call, int include_closed, int with_live, int with_timestamp);
/* 1 if name is one of chat-sync's targets (room_events, chat_history, ...). */
int handlers_misc_target_known(const char *name);
/* One enabled chat-sync target as the database shows it (health, metrics). */
struct misc_target {
	const char *name; /* "room_events", ... */
	const char *url;
	int failed; /* the queries failed (logged); the rest is zero */
	struct db_cursor cursor;
	struct db_backlog backlog;
	int64_t dead, replay; /* dead letters, and those of them waiting for a replay */
};
/* Calls fn for every enabled target, in a fixed order; returns how many. */
int handlers_misc_each_target(
    struct api_call *call, void (*fn)(const struct misc_target *t, void *arg), void *arg);
/* handlers_metrics.c */
void handlers_metrics(struct api_call *call);
/* Where chatd listens and how long to wait for it (the configuration's). */
struct admin_chatd handlers_misc_chatd(const struct api_call *call);

#endif
