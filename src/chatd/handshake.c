/*
 * The WebSocket handshake and the connection counts it checks (see
 * handshake.h). Runs in HTTP_CONFIRM_UPGRADE and again in ESTABLISHED;
 * reads rooms (room_lookup may load one from the database) but changes
 * nothing but the counts. Service thread only.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "handshake.h"
#include "jsonutil.h"
#include "db.h"
#include "log.h"
#include "model.h"
#include "room.h"
#include "token.h"
#include "xmalloc.h"

/* Connections counted per client address (MAX_CONNECTIONS_PER_ADDRESS). */
struct handshake_addr {
	unsigned n;
};

/*
 * The client address. X-Forwarded-For is believed only from a trusted
 * proxy (TRUSTED_PROXIES, or any peer of the Unix-socket listener, which
 * only the web server can open); anyone else could claim any address in
 * it and dodge the per-address limit. Behind trusted proxies the client is
 * the right-most entry that is not itself one (netaddr_client).
 */
static void
handshake_address(struct chatd *cd, struct lws *wsi, char *out, size_t len)
{
	char peer[NETADDR_TEXT_MAX], *xff;
	int n;

	peer[0] = '\0';
	if (cd->listen_unix)
		strcpy(peer, "local");
	else
		lws_get_peer_simple(wsi, peer, sizeof peer);
	if (peer[0] == '\0')
		strcpy(peer, "unknown");
	(void)snprintf(out, len, "%s", peer);
	if (!cd->listen_unix && !netaddr_list_match(&cd->trusted, peer))
		return;
	/* lws keeps headers within its header buffer: this is bounded. */
	n = lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR);
	if (n <= 0)
		return;
	xff = xmalloc((size_t)n + 1);
	if (lws_hdr_copy(wsi, xff, n + 1, WSI_TOKEN_X_FORWARDED_FOR) > 0)
		(void)netaddr_client(&cd->trusted, peer, xff, out, len);
	free(xff);
}

static unsigned
handshake_addr_count(struct chatd *cd, const char *address)
{
	struct handshake_addr *ac = strmap_get(&cd->addresses, address);

	return ac != NULL ? ac->n : 0;
}

void
handshake_count(struct chatd *cd, const char *address, int delta)
{
	struct handshake_addr *ac = strmap_get(&cd->addresses, address);

	if (delta > 0) {
		cd->nconns++;
		if (ac == NULL) {
			ac = xcalloc(1, sizeof *ac);
			strmap_set(&cd->addresses, address, ac);
		}
		ac->n++;
		return;
	}
	cd->nconns--;
	if (ac != NULL && --ac->n == 0)
		free(strmap_remove(&cd->addresses, address));
}

static int
handshake_refuse(struct handshake *hs, int status, const char *code, const char *reason)
{
	hs->status = status;
	hs->code = code;
	hs->reason = reason;
	return -1;
}

void
handshake_counted(struct chatd *cd, const struct handshake *hs)
{
	struct chatd_counters *k = &cd->counters;

	for (size_t i = 0; i < CHATD_REFUSAL_KINDS; i++) {
		struct chatd_refusal *r = &k->refusals[i];

		if (r->code == NULL) {
			r->code = hs->code;
			r->status = hs->status;
		}
		if (r->status == hs->status && strcmp(r->code, hs->code) == 0) {
			r->n++;
			return;
		}
	}
	k->refusals_other++;
}

/* Capacity, path, user_id and nickname. buf holds query arguments. */
static int
handshake_request(struct chatd *cd, struct lws *wsi, struct handshake *hs, char *buf, size_t buflen)
{
	const struct config *cfg = cd->cfg;
	const char *why, *uid, *nick, *p;

	handshake_address(cd, wsi, hs->address, sizeof hs->address);

	if (cd->shutting_down)
		return handshake_refuse(hs, 503, "shutting_down", "server shutting down");
	if ((long long)cd->nconns >= cfg->max_connections)
		return handshake_refuse(
		    hs, 503, "too_many_connections", "too many connections (MAX_CONNECTIONS)");
	if (cfg->max_connections_per_address > 0 &&
	    (long long)handshake_addr_count(cd, hs->address) >= cfg->max_connections_per_address)
		return handshake_refuse(hs, 429, "too_many_connections_from_address",
		    "too many connections from this address");

	if (lws_hdr_copy(wsi, hs->uri, sizeof hs->uri, WSI_TOKEN_GET_URI) <= 0 ||
	    strncmp(hs->uri, "/ws/rooms/", 10) != 0)
		return handshake_refuse(hs, 404, "not_found", "unknown path");
	hs->room_id = hs->uri + 10;
	for (p = hs->room_id; *p != '\0'; p++) {
		if (*p == '/' || (unsigned char)*p < 0x20)
			return handshake_refuse(hs, 404, "not_found", "unknown path");
	}
	if (*hs->room_id == '\0' || strlen(hs->room_id) > 64)
		return handshake_refuse(hs, 404, "room_not_found", "unknown room");

	uid = lws_get_urlarg_by_name(wsi, "user_id=", buf, (int)buflen);
	if (uid == NULL || *uid == '\0')
		return handshake_refuse(hs, 400, "invalid_query", "missing user_id");
	if (text_check(uid, 1, USER_ID_MAX_BYTES, TEXT_NO_CONTROL, &why) != 0)
		return handshake_refuse(hs, 400, "invalid_query", "invalid user_id");
	strcpy(hs->user_id, uid);
	nick = lws_get_urlarg_by_name(wsi, "nickname=", buf, (int)buflen);
	if (nick == NULL || *nick == '\0')
		nick = hs->user_id;
	else if (text_check(nick, 0, NICKNAME_MAX_BYTES, TEXT_NO_CONTROL, &why) != 0)
		return handshake_refuse(hs, 400, "invalid_query", "invalid nickname");
	memmove(hs->nickname, nick, strlen(nick) + 1);

	return 0;
}

/* Token mode: a valid token for this user and room (401 otherwise). */
static int
handshake_token(struct chatd *cd, struct lws *wsi, struct handshake *hs, char *buf, size_t buflen)
{
	struct token_claims claims;
	const char *token, *why;
	int rc = 0;

	token = lws_get_urlarg_by_name(wsi, "token=", buf, (int)buflen);
	if (token == NULL || *token == '\0')
		return handshake_refuse(hs, 401, "unauthorized", "token required");
	if (token_verify(cd->cfg->token_secret, token, clock_wall_ms() / 1000, &claims, &why) != 0)
		return handshake_refuse(hs, 401, "unauthorized",
		    strcmp(why, "expired") == 0 ? "token expired" : "invalid token");
	if (strcmp(claims.sub, hs->user_id) != 0)
		rc = handshake_refuse(hs, 401, "unauthorized", "token is for another user");
	else if (strcmp(claims.room, hs->room_id) != 0)
		rc = handshake_refuse(hs, 401, "unauthorized", "token is for another room");
	else {
		/* The token is the identity: its nickname and admin claim win. */
		if (claims.nick != NULL && strlen(claims.nick) < sizeof hs->nickname)
			memcpy(hs->nickname, claims.nick, strlen(claims.nick) + 1);
		hs->is_admin = claims.admin;
		hs->token_exp_ms = claims.exp * 1000;
	}
	token_claims_clear(&claims);
	return rc;
}

/*
 * In a cluster, a room close or a ban taken through another node (or
 * chat-api) reaches this node over the bus a moment after it is recorded:
 * a join in that moment is checked against the record, so that once the
 * close or the ban is acknowledged no node lets the user in. A database
 * that cannot answer leaves the decision to what this node knows.
 */
static int
handshake_record(struct chatd *cd, struct handshake *hs)
{
	char *cause = NULL;
	int closed = 0, banned = 0;

	if (cd->cluster == NULL)
		return 0;
	if (db_join_state(cd->db, hs->room->id, hs->user_id, clock_wall_ms(), &closed, &banned,
		&cause) != DB_OK) {
		log_debug("join check of room %s: %s", hs->room->id, cause);
		free(cause);
		return 0;
	}
	if (closed)
		return handshake_refuse(hs, 404, "room_closed", "room closed");
	if (banned)
		return handshake_refuse(hs, 403, "banned", "banned from this room");
	return 0;
}

/* The room: exists, open, user not banned. */
static int
handshake_room(struct chatd *cd, struct handshake *hs)
{
	int status = 0;

	hs->room = room_lookup(cd, hs->room_id, &status);
	if (hs->room == NULL) {
		if (status == 404)
			return handshake_refuse(hs, 404, "room_not_found", "unknown room");
		if (status == 503)
			return handshake_refuse(hs, 503, "database_unavailable",
			    "the database cannot be reached now; try again shortly");
		return handshake_refuse(hs, status, "internal_error", "internal error");
	}
	if (hs->room->closed)
		return handshake_refuse(hs, 404, "room_closed", "room closed");
	if (room_ban_find(hs->room, hs->user_id, clock_wall_ms()) != NULL)
		return handshake_refuse(hs, 403, "banned", "banned from this room");
	return handshake_record(cd, hs);
}

/*
 * Runs twice: in HTTP_CONFIRM_UPGRADE, where a refusal is a real HTTP
 * status, and again in ESTABLISHED, which is where the connection is
 * counted (nothing can change in between: both run in the same loop
 * iteration, but checking again costs little and keeps ESTABLISHED
 * honest).
 */
int
handshake_check(struct chatd *cd, struct lws *wsi, struct handshake *hs)
{
	char buf[HANDSHAKE_ARG_MAX + 16], *tbuf;
	int rc;

	memset(hs, 0, sizeof *hs);
	if (handshake_request(cd, wsi, hs, buf, sizeof buf) != 0)
		return -1;
	if (cd->cfg->token_secret != NULL) {
		tbuf = xmalloc(TOKEN_MAX_LEN + 16); /* "token=" and a whole token */
		rc = handshake_token(cd, wsi, hs, tbuf, TOKEN_MAX_LEN + 16);
		free(tbuf);
		if (rc != 0)
			return -1;
	}
	return handshake_room(cd, hs);
}

/*
 * The Sec-WebSocket-Protocol list, if the client sent one: 0 if it offers
 * "chatd" in a form lws takes. lws 4.1.6 upgrades only a connection whose
 * list names one of the vhost's protocols, walking it in order and
 * stopping at the first it knows; a list without one, too long (over 127
 * bytes), or malformed before that name, makes it drop the connection with
 * no HTTP answer at all (lws_process_ws_upgrade, lib/roles/ws/
 * server-ws.c), which a proxy turns into 502. It has no way to accept
 * without selecting one, so chatd refuses those here with a real status.
 * This is stricter than lws before "chatd" (every earlier entry must be an
 * RFC 7230 token, not all digits), never looser.
 */
static int
handshake_subprotocol(struct lws *wsi)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	char list[128], *p, *tok;
	size_t toklen;
	int n, digits;

	if (lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) <= 0)
		return 0;
	n = lws_hdr_copy(wsi, list, sizeof list, WSI_TOKEN_PROTOCOL);
	if (n <= 0 || n >= (int)sizeof list - 1)
		return -1;
	p = list;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		tok = p;
		digits = 1;
		while (*p != '\0' &&
		    (((unsigned char)*p < 0x80 && isalnum((unsigned char)*p)) ||
			strchr(tchar, *p) != NULL)) {
			if (!isdigit((unsigned char)*p))
				digits = 0;
			p++;
		}
		toklen = (size_t)(p - tok);
		if (toklen == 0 || toklen >= 64 || digits)
			return -1;
		if (toklen == HANDSHAKE_PROTOCOL_LEN &&
		    memcmp(tok, HANDSHAKE_PROTOCOL, toklen) == 0)
			return 0;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != ',')
			return -1;
		p++;
	}
}

int
handshake_answer(struct lws *wsi, int status, const char *code, const char *message)
{
	unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start;
	unsigned char *end = buf + sizeof buf;
	cJSON *root, *err;
	char *body;
	size_t len;
	int rc = -1;

	root = json_object();
	err = json_object();
	json_add_string(err, "code", code);
	json_add_string(err, "message", message);
	json_add(root, "error", err);
	body = json_print(root);
	cJSON_Delete(root);
	len = strlen(body);
	if (lws_add_http_header_status(wsi, (unsigned)status, &p, end) == 0 &&
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
		(const unsigned char *)"application/json", 16, &p, end) == 0 &&
	    lws_add_http_header_content_length(wsi, len, &p, end) == 0 &&
	    lws_finalize_http_header(wsi, &p, end) == 0 && len <= (size_t)(end - p)) {
		memcpy(p, body, len);
		p += len;
		if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP) == (int)(p - start))
			rc = 0;
	}
	free(body);
	return rc;
}

int
handshake_confirm(struct chatd *cd, struct lws *wsi, const char *upgrade)
{
	struct handshake hs;

	if (upgrade == NULL || strcasecmp(upgrade, "websocket") != 0)
		return -1;
	if (handshake_subprotocol(wsi) != 0) {
		memset(&hs, 0, sizeof hs);
		handshake_address(cd, wsi, hs.address, sizeof hs.address);
		handshake_refuse(&hs, 400, "unsupported_subprotocol",
		    "Sec-WebSocket-Protocol must offer chatd, or be left out");
	} else
		handshake_check(cd, wsi, &hs);
	if (hs.status == 0)
		return 0;
	log_info("refused %s: %d %s (%s)", hs.address, hs.status, hs.reason, hs.uri);
	handshake_counted(cd, &hs);
	/* An answer before the upgrade: a real HTTP status. */
	if (handshake_answer(wsi, hs.status, hs.code, hs.reason) != 0)
		return -1;
	return 1;
}
