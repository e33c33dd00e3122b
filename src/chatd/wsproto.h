/*
 * chatd's WebSocket message protocol (docs/websocket.md): parsing client
 * frames and encoding server frames. Frames are JSON text
 * {"type": T, "payload": {...}}. Parsing never trusts identity fields from
 * the client (from, nickname, is_admin are ignored); the encoders take them
 * from the connection. Pure functions; any thread.
 */
#ifndef CHATD_WSPROTO_H
#define CHATD_WSPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "coalesce.h"

enum wsproto_type {
	WSPROTO_MESSAGE = 1, /* payload.content */
	WSPROTO_CUSTOM_EVENT, /* payload.event_type, payload.payload (admin) */
	WSPROTO_BAN, /* payload.user_id, duration_seconds?, reason? (admin) */
	WSPROTO_UNBAN, /* payload.user_id (admin) */
	WSPROTO_KICK, /* payload.user_id, reason? (admin) */
};

struct wsproto_request {
	enum wsproto_type type;
	char *content; /* MESSAGE */
	char *event_type; /* CUSTOM_EVENT */
	char *payload_json; /* CUSTOM_EVENT: payload re-encoded compactly, <= frame length */
	char *user_id; /* BAN, UNBAN, KICK */
	char *reason; /* BAN, KICK; may be NULL */
	int64_t duration_seconds; /* BAN; 0 = permanent */
};

/*
 * Parses one client text frame. Returns 0 and fills *req (heap strings;
 * wsproto_request_clear frees them), or -1 with *code one of
 * "invalid_json", "unknown_type", "invalid_field", "empty_content",
 * "content_too_large", "invalid_utf8" (static) and a heap *message for the
 * Error frame (caller frees); *req then holds nothing. max_content bounds
 * MESSAGE content in bytes (MAX_MESSAGE_BYTES). Admin rights are not
 * checked here: the caller answers "forbidden".
 */
int wsproto_parse(const char *data, size_t len, size_t max_content, struct wsproto_request *req,
    const char **code, char **message);
void wsproto_request_clear(struct wsproto_request *req);

/* Encoders: each returns a heap JSON text (caller frees). */
char *wsproto_encode_message(int64_t id, int64_t seq, const char *room_id, const char *from,
    const char *nickname, int is_admin, const char *content, int64_t ts_ms);
char *wsproto_encode_custom_event(int64_t id, int64_t seq, const char *room_id, const char *from,
    const char *nickname, int is_admin, const char *event_type, const char *payload_json,
    int64_t ts_ms);
/* retry_after_ms < 0 and dropped == 0 leave those fields out. */
char *wsproto_encode_error(
    const char *code, const char *message, int64_t retry_after_ms, uint64_t dropped);
/* push may be NULL (plain stats, e.g. the welcome). */
char *wsproto_encode_room_stats(const char *room_id, int64_t current_users, int64_t peak_users,
    const struct coalesce_push *push);
/* Sent to a connection right after it joins: who it is and where. */
char *wsproto_encode_user_joined(const char *room_id, const char *user_id, const char *nickname,
    int is_admin, int64_t current_users, int64_t peak_users, int64_t last_seq);
/* Sent to a connection the server removes, just before the close frame. */
char *wsproto_encode_user_left(
    const char *room_id, const char *user_id, const char *nickname, const char *reason);

#endif
