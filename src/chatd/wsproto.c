/*
 * chatd's WebSocket message protocol; see wsproto.h and docs/websocket.md.
 * Client frames are checked here, completely, before the server acts on
 * them: a frame that parses is safe to store and broadcast as it stands.
 * Server frames are written with jsonw, one field list per type, exactly
 * the fields docs/websocket.md names. No connection or room state, no
 * libwebsockets, no I/O.
 */
#include "autoconf.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "jsonutil.h"
#include "jsonw.h"
#include "wsproto.h"
#include "xmalloc.h"

/* Longest timed ban: one year, as the REST API's ban route. */

/* Arguments: the payload object, max_content, the frame's length, then as wsproto_parse. */
typedef int wsproto_parse_fn(
    const cJSON *, size_t, size_t, struct wsproto_request *, const char **, char **);

static wsproto_parse_fn wsproto_parse_message;
static wsproto_parse_fn wsproto_parse_custom_event;
static wsproto_parse_fn wsproto_parse_ban;
static wsproto_parse_fn wsproto_parse_unban;
static wsproto_parse_fn wsproto_parse_kick;

/* Client types: names are matched exactly, case and all. */
static const struct {
	const char *name;
	enum wsproto_type type;
	wsproto_parse_fn *parse;
} wsproto_types[] = {
	{ "Message", WSPROTO_MESSAGE, wsproto_parse_message },
	{ "CustomEvent", WSPROTO_CUSTOM_EVENT, wsproto_parse_custom_event },
	{ "Ban", WSPROTO_BAN, wsproto_parse_ban },
	{ "Unban", WSPROTO_UNBAN, wsproto_parse_unban },
	{ "Kick", WSPROTO_KICK, wsproto_parse_kick },
};

static int
wsproto_fail(const char **code, char **message, const char *c, char *m)
{
	*code = c;
	*message = m;
	return -1;
}

/*
 * Chat text may span lines and hold tabs; other C0 controls and DEL could
 * drive a terminal or confuse a log reader, so they are refused.
 */
static int
wsproto_content_has_control(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p < 0x20 && *p != '\n' && *p != '\r' && *p != '\t') || *p == 0x7f)
			return 1;
	}
	return 0;
}

/*
 * from, nickname, is_admin and any other member of the payload are not
 * read at all: identity comes from the connection, never from the client.
 */
static int
wsproto_parse_message(const cJSON *p, size_t max_content, size_t frame_len,
    struct wsproto_request *req, const char **code, char **message)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(p, "content");
	size_t len;

	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return wsproto_fail(code, message, "invalid_field",
		    xstrdup("field \"content\" is required and must be a string"));
	len = strlen(item->valuestring);
	if (len == 0)
		return wsproto_fail(
		    code, message, "empty_content", xstrdup("field \"content\" must not be empty"));
	if (len > max_content)
		return wsproto_fail(code, message, "content_too_large",
		    xasprintf("field \"content\" is longer than %zu bytes", max_content));
	/* json_parse_object checked the frame; cJSON's unescaping is checked here. */
	if (!utf8_valid(item->valuestring, len))
		return wsproto_fail(
		    code, message, "invalid_utf8", xstrdup("field \"content\" is not valid UTF-8"));
	if (wsproto_content_has_control(item->valuestring))
		return wsproto_fail(code, message, "invalid_field",
		    xstrdup("field \"content\" contains control characters "
			    "(only tab, CR and LF are allowed)"));
	req->content = xstrdup(item->valuestring);
	return 0;
}

/*
 * The event's own payload is any JSON value, passed on as the admin sent
 * it (re-encoded compactly; a literal null stays null); absent means {}.
 * Re-encoding can grow odd spellings (5e-324 prints as 23 characters, a
 * raw control byte as \u0001), so the result is held to the frame's own
 * length: the outgoing frame stays within the frame cap plus its fixed
 * fields.
 */
static int
wsproto_parse_custom_event(const cJSON *p, size_t max_content, size_t frame_len,
    struct wsproto_request *req, const char **code, char **message)
{
	const cJSON *item;
	const char *event_type;
	char *cause = NULL;

	if (json_get_string(p, "event_type", 1, 1, EVENT_TYPE_MAX_BYTES, TEXT_NO_CONTROL,
		&event_type, &cause) != 0)
		return wsproto_fail(code, message, "invalid_field", cause);
	if (!model_event_type_ok(event_type))
		return wsproto_fail(code, message, "invalid_field",
		    xstrdup("field \"event_type\" must be " MODEL_EVENT_TYPE_RULE));
	item = cJSON_GetObjectItemCaseSensitive(p, "payload");
	req->payload_json = item != NULL ? json_print(item) : xstrdup("{}");
	if (strlen(req->payload_json) > frame_len)
		return wsproto_fail(code, message, "invalid_field",
		    xstrdup("field \"payload\" grows too large when re-encoded"));
	req->event_type = xstrdup(event_type);
	return 0;
}

/* Reads user_id (required) and, if want_reason, reason (optional). */
static int
wsproto_parse_target(
    const cJSON *p, int want_reason, struct wsproto_request *req, const char **code, char **message)
{
	const char *user_id, *reason = NULL;
	char *cause = NULL;

	if (json_get_string(
		p, "user_id", 1, 1, USER_ID_MAX_BYTES, TEXT_NO_CONTROL, &user_id, &cause) != 0)
		return wsproto_fail(code, message, "invalid_field", cause);
	if (want_reason &&
	    json_get_string(
		p, "reason", 0, 0, REASON_MAX_BYTES, TEXT_NO_CONTROL, &reason, &cause) != 0)
		return wsproto_fail(code, message, "invalid_field", cause);
	req->user_id = xstrdup(user_id);
	req->reason = reason != NULL ? xstrdup(reason) : NULL;
	return 0;
}

/* The same field rules as POST /management/rooms/{id}/bans. */
static int
wsproto_parse_ban(const cJSON *p, size_t max_content, size_t frame_len, struct wsproto_request *req,
    const char **code, char **message)
{
	long long duration = 0;
	char *cause = NULL;
	int present;

	/* On failure the caller clears what wsproto_parse_target filled in. */
	if (wsproto_parse_target(p, 1, req, code, message) != 0)
		return -1;
	if (json_get_int(p, "duration_seconds", 0, 1, BAN_DURATION_MAX_SECONDS, &duration, &present,
		&cause) != 0)
		return wsproto_fail(code, message, "invalid_field", cause);
	req->duration_seconds = present ? duration : 0;
	return 0;
}

static int
wsproto_parse_unban(const cJSON *p, size_t max_content, size_t frame_len,
    struct wsproto_request *req, const char **code, char **message)
{
	return wsproto_parse_target(p, 0, req, code, message);
}

static int
wsproto_parse_kick(const cJSON *p, size_t max_content, size_t frame_len,
    struct wsproto_request *req, const char **code, char **message)
{
	return wsproto_parse_target(p, 1, req, code, message);
}

/*
 * On success *code and *message are NULL. On failure *req holds nothing
 * (wsproto_request_clear is still safe on it) and *message is the
 * caller's to free. Unknown top-level members are ignored, so a client
 * may send fields a later server understands.
 */
int
wsproto_parse(const char *data, size_t len, size_t max_content, struct wsproto_request *req,
    const char **code, char **message)
{
	const cJSON *type, *payload;
	cJSON *root;
	char *cause = NULL, *text;
	size_t i;
	int rc;

	memset(req, 0, sizeof *req);
	*code = NULL;
	*message = NULL;

	/* Checked apart from parsing so the client learns which rule it broke. */
	if (!utf8_valid(data, len))
		return wsproto_fail(
		    code, message, "invalid_utf8", xstrdup("frame is not valid UTF-8"));
	/*
	 * json_parse_object() looks for trailing space with strspn(), which
	 * reads up to a NUL past len; a frame from libwebsockets has none. The
	 * copy costs less than cJSON's own allocations.
	 */
	text = xmalloc(len + 1);
	if (len != 0)
		memcpy(text, data, len);
	text[len] = '\0';
	root = json_parse_object(text, len, &cause);
	free(text);
	if (root == NULL)
		return wsproto_fail(code, message, "invalid_json", cause);

	type = cJSON_GetObjectItemCaseSensitive(root, "type");
	payload = cJSON_GetObjectItemCaseSensitive(root, "payload");
	if (!cJSON_IsString(type) || type->valuestring == NULL) {
		rc = wsproto_fail(code, message, "invalid_json",
		    xstrdup("field \"type\" is required and must be a string"));
		goto out;
	}
	if (!cJSON_IsObject(payload)) {
		rc = wsproto_fail(code, message, "invalid_json",
		    xstrdup("field \"payload\" is required and must be an object"));
		goto out;
	}
	for (i = 0; i < sizeof wsproto_types / sizeof wsproto_types[0]; i++) {
		if (strcmp(type->valuestring, wsproto_types[i].name) == 0)
			break;
	}
	if (i == sizeof wsproto_types / sizeof wsproto_types[0]) {
		/* The client's string is not echoed: it could be long or cut mid-character. */
		rc = wsproto_fail(code, message, "unknown_type",
		    xstrdup(
			"field \"type\" must be one of Message, CustomEvent, Ban, Unban, Kick"));
		goto out;
	}
	req->type = wsproto_types[i].type;
	rc = wsproto_types[i].parse(payload, max_content, len, req, code, message);
	if (rc != 0)
		wsproto_request_clear(req);
out:
	cJSON_Delete(root);
	return rc;
}

void
wsproto_request_clear(struct wsproto_request *req)
{
	free(req->content);
	free(req->event_type);
	free(req->payload_json);
	free(req->user_id);
	free(req->reason);
	memset(req, 0, sizeof *req);
}

/* Opens {"type":T,"payload":{ ; the encoder adds members, then wsproto_end. */
static void
wsproto_begin(struct jsonw *w, const char *type)
{
	jsonw_init(w);
	jsonw_object_begin(w);
	jsonw_kv_string(w, "type", type);
	jsonw_key(w, "payload");
	jsonw_object_begin(w);
}

static char *
wsproto_end(struct jsonw *w)
{
	jsonw_object_end(w);
	jsonw_object_end(w);
	return jsonw_take(w);
}

/* The seed's timestamp is in seconds; timestamp_ms keeps the precision. */
static void
wsproto_timestamps(struct jsonw *w, int64_t ts_ms)
{
	jsonw_kv_int(w, "timestamp", ts_ms / 1000);
	jsonw_kv_int(w, "timestamp_ms", ts_ms);
}

char *
wsproto_encode_message(int64_t id, int64_t seq, const char *room_id, const char *from,
    const char *nickname, int is_admin, const char *content, int64_t ts_ms)
{
	struct jsonw w;

	wsproto_begin(&w, "Message");
	jsonw_kv_string(&w, "from", from);
	jsonw_kv_string(&w, "nickname", nickname);
	jsonw_kv_string(&w, "content", content);
	jsonw_kv_bool(&w, "is_admin", is_admin);
	jsonw_kv_int(&w, "id", id);
	jsonw_kv_int(&w, "seq", seq);
	jsonw_kv_string(&w, "room_id", room_id);
	wsproto_timestamps(&w, ts_ms);
	return wsproto_end(&w);
}

/* payload_json must be one valid JSON value (as wsproto_parse makes it); NULL writes {}. */
char *
wsproto_encode_custom_event(int64_t id, int64_t seq, const char *room_id, const char *from,
    const char *nickname, int is_admin, const char *event_type, const char *payload_json,
    int64_t ts_ms)
{
	struct jsonw w;

	if (payload_json == NULL)
		payload_json = "{}";
	wsproto_begin(&w, "CustomEvent");
	jsonw_kv_string(&w, "event_type", event_type);
	jsonw_key(&w, "payload");
	jsonw_raw(&w, payload_json, strlen(payload_json));
	jsonw_kv_int(&w, "id", id);
	jsonw_kv_int(&w, "seq", seq);
	jsonw_kv_string(&w, "room_id", room_id);
	jsonw_kv_string(&w, "from", from);
	jsonw_kv_string(&w, "nickname", nickname);
	jsonw_kv_bool(&w, "is_admin", is_admin);
	wsproto_timestamps(&w, ts_ms);
	return wsproto_end(&w);
}

char *
wsproto_encode_error(
    const char *code, const char *message, int64_t retry_after_ms, uint64_t dropped)
{
	struct jsonw w;

	wsproto_begin(&w, "Error");
	jsonw_kv_string(&w, "code", code);
	jsonw_kv_string(&w, "message", message);
	if (retry_after_ms >= 0)
		jsonw_kv_int(&w, "retry_after_ms", retry_after_ms);
	if (dropped != 0)
		jsonw_kv_int(
		    &w, "dropped", dropped > (uint64_t)LLONG_MAX ? LLONG_MAX : (long long)dropped);
	return wsproto_end(&w);
}

static void
wsproto_users(struct jsonw *w, const char *key, const struct coalesce_user *users, unsigned n)
{
	unsigned i;

	jsonw_key(w, key);
	jsonw_array_begin(w);
	for (i = 0; i < n; i++) {
		jsonw_object_begin(w);
		jsonw_kv_string(w, "user_id", users[i].user_id);
		jsonw_kv_string(w, "nickname", users[i].nickname);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
}

char *
wsproto_encode_room_stats(const char *room_id, int64_t current_users, int64_t peak_users,
    const struct coalesce_push *push)
{
	struct jsonw w;

	wsproto_begin(&w, "RoomStats");
	jsonw_kv_int(&w, "current_users", current_users);
	jsonw_kv_int(&w, "peak_users", peak_users);
	jsonw_kv_string(&w, "room_id", room_id);
	if (push != NULL) {
		wsproto_users(&w, "joined", push->joined, push->n_joined_listed);
		wsproto_users(&w, "left", push->left, push->n_left_listed);
		jsonw_kv_int(&w, "joined_count", push->joined_count);
		jsonw_kv_int(&w, "left_count", push->left_count);
	}
	return wsproto_end(&w);
}

char *
wsproto_encode_user_joined(const char *room_id, const char *user_id, const char *nickname,
    int is_admin, int64_t current_users, int64_t peak_users, int64_t last_seq)
{
	struct jsonw w;

	wsproto_begin(&w, "UserJoined");
	jsonw_kv_string(&w, "user_id", user_id);
	jsonw_kv_string(&w, "nickname", nickname);
	jsonw_kv_bool(&w, "is_admin", is_admin);
	jsonw_kv_string(&w, "room_id", room_id);
	jsonw_kv_int(&w, "current_users", current_users);
	jsonw_kv_int(&w, "peak_users", peak_users);
	jsonw_kv_int(&w, "last_seq", last_seq);
	return wsproto_end(&w);
}

/* reason NULL writes null. */
char *
wsproto_encode_user_left(
    const char *room_id, const char *user_id, const char *nickname, const char *reason)
{
	struct jsonw w;

	wsproto_begin(&w, "UserLeft");
	jsonw_kv_string(&w, "user_id", user_id);
	jsonw_kv_string(&w, "nickname", nickname);
	jsonw_kv_string(&w, "room_id", room_id);
	jsonw_kv_string(&w, "reason", reason);
	return wsproto_end(&w);
}
