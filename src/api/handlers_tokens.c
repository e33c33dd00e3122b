/*
 * POST /management/rooms/{room_id}/tokens: issues a signed join token
 * (src/common/token.h) for one user in one open room. The token is what
 * chatd checks at the WebSocket handshake when TOKEN_SECRET is set; admin
 * rights in token mode come from here alone. Reads the room from the
 * database, writes nothing, and never talks to chatd: a token is valid
 * whether or not chatd is running. Neither the secret nor tokens are
 * logged.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "db.h"
#include "handlers.h"
#include "jsonutil.h"
#include "token.h"
#include "xmalloc.h"

#define TOKENS_TTL_DEFAULT 3600
#define TOKENS_TTL_MAX (30LL * 24 * 3600) /* 30 days */

/* Appends s percent-encoded for a URL path segment or query value: all
 * but RFC 3986's unreserved characters become %XX. */
static void
tokens_url_append(char **buf, size_t *len, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), o = *len;

	*buf = xrealloc(*buf, o + n * 3 + 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			(*buf)[o++] = (char)c;
		else {
			(*buf)[o++] = '%';
			(*buf)[o++] = hex[c >> 4];
			(*buf)[o++] = hex[c & 15];
		}
	}
	(*buf)[o] = '\0';
	*len = o;
}

/* Appends a literal piece of the URL. */
static void
tokens_url_literal(char **buf, size_t *len, const char *s)
{
	size_t n = strlen(s);

	*buf = xrealloc(*buf, *len + n + 1);
	memcpy(*buf + *len, s, n + 1);
	*len += n;
}

/* The WebSocket path a client connects to with this token (relative to
 * the public address, as the web server proxies /ws/ to chatd). */
static char *
tokens_ws_url(const char *room_id, const char *user_id, const char *nickname, const char *token)
{
	char *url = NULL;
	size_t len = 0;

	tokens_url_literal(&url, &len, "/ws/rooms/");
	tokens_url_append(&url, &len, room_id);
	tokens_url_literal(&url, &len, "?user_id=");
	tokens_url_append(&url, &len, user_id);
	if (nickname != NULL) {
		tokens_url_literal(&url, &len, "&nickname=");
		tokens_url_append(&url, &len, nickname);
	}
	tokens_url_literal(&url, &len, "&token=");
	tokens_url_append(&url, &len, token);
	return url;
}

void
handlers_tokens_create(struct api_call *call)
{
	static const char *const keys[] = { "user_id", "nickname", "admin", "ttl_seconds", NULL };
	const struct config *cfg = call->ctx->cfg;
	const char *user_id, *nickname;
	const cJSON *admin_json;
	long long ttl = TOKENS_TTL_DEFAULT, now_s;
	char *cause = NULL, *token = NULL, *url = NULL;
	struct db_room room;
	struct jsonw w;
	int admin = 0, present, rc;

	/* Without a secret chatd trusts user_id and checks no token: issuing
	 * one would suggest a protection that is not there. */
	if (cfg->token_secret == NULL) {
		api_error(call, 503, "tokens_disabled",
		    "TOKEN_SECRET is not set: chatd trusts the user_id in the WebSocket URL and "
		    "checks no tokens; set TOKEN_SECRET for chat-api and chatd to use tokens");
		return;
	}
	if (json_check_keys(call->body, keys, &cause) != 0 ||
	    json_get_string(call->body, "user_id", 1, 1, USER_ID_MAX_BYTES, TEXT_NO_CONTROL,
		&user_id, &cause) != 0 ||
	    json_get_string(call->body, "nickname", 0, 0, NICKNAME_MAX_BYTES, TEXT_NO_CONTROL,
		&nickname, &cause) != 0 ||
	    json_get_int(call->body, "ttl_seconds", 0, 1, TOKENS_TTL_MAX, &ttl, &present, &cause) !=
		0) {
		api_error(call, 400, "invalid_field", "%s", cause);
		goto done;
	}
	if (!present)
		ttl = TOKENS_TTL_DEFAULT;
	admin_json = cJSON_GetObjectItemCaseSensitive(call->body, "admin");
	if (admin_json != NULL && !cJSON_IsNull(admin_json)) {
		if (!cJSON_IsBool(admin_json)) {
			api_error(
			    call, 400, "invalid_field", "field \"admin\" must be true or false");
			goto done;
		}
		admin = cJSON_IsTrue(admin_json);
	}

	memset(&room, 0, sizeof room);
	rc = db_room_get(call->ctx->db, call->params[0], &room, &cause);
	if (rc == DB_NOTFOUND) {
		api_error(call, 404, "room_not_found", "no room with id %.64s", call->params[0]);
		goto done;
	}
	if (rc != DB_OK) {
		api_internal_error(call, "db_room_get", cause);
		cause = NULL;
		goto done;
	}
	if (room.closed_at != 0) {
		db_room_clear(&room);
		api_error(call, 409, "room_closed", "room %.64s is closed", call->params[0]);
		goto done;
	}
	db_room_clear(&room);

	now_s = clock_wall_ms() / 1000;
	token =
	    token_issue(cfg->token_secret, call->params[0], user_id, nickname, admin, now_s, ttl);
	if (token == NULL) {
		/* Inputs are checked above, so only libcrypto can fail here. */
		api_internal_error(call, "token_issue", xstrdup("HMAC-SHA256 failed"));
		goto done;
	}
	url = tokens_ws_url(call->params[0], user_id, nickname, token);

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "token", token);
	jsonw_kv_string(&w, "room_id", call->params[0]);
	jsonw_kv_string(&w, "user_id", user_id);
	jsonw_kv_string(&w, "nickname", nickname);
	jsonw_kv_bool(&w, "admin", admin);
	jsonw_kv_int(&w, "issued_at", now_s);
	jsonw_kv_int(&w, "expires_at", now_s + ttl);
	jsonw_kv_string(&w, "ws_url", url);
	jsonw_object_end(&w);
	api_reply(call, 201, &w);
done:
	free(url);
	free(token);
	free(cause);
}
