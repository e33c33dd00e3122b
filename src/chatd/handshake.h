/*
 * The WebSocket handshake: who the client is (its address: from a trusted
 * proxy, TRUSTED_PROXIES or the Unix-socket listener, the X-Forwarded-For
 * client; else the peer), what it asks for (path, user_id,
 * nickname, token) and whether it may join (capacity, per-address limit,
 * room open, user not banned); and the connection counts those limits
 * read. Service thread only.
 */
#ifndef CHATD_HANDSHAKE_H
#define CHATD_HANDSHAKE_H

#include <stdint.h>

#include "chatd.h"

/* The WebSocket protocol name (lws vhost protocol, Sec-WebSocket-Protocol). */
#define HANDSHAKE_PROTOCOL "chatd"
#define HANDSHAKE_PROTOCOL_LEN (sizeof HANDSHAKE_PROTOCOL - 1)

/* Longest query argument read (user_id, nickname), decoded. */
#define HANDSHAKE_ARG_MAX 1024

/* What a handshake asks for, and the verdict. */
struct handshake {
	char uri[256];
	const char *room_id;
	char user_id[HANDSHAKE_ARG_MAX];
	char nickname[HANDSHAKE_ARG_MAX];
	char address[128];
	int is_admin; /* token mode: the token's admin claim */
	int64_t token_exp_ms; /* token mode: when the token expires */
	struct room *room;
	int status; /* 0: accepted, else the HTTP status */
	const char *code; /* the error code of a refusal (docs/websocket.md) */
	const char *reason;
};

/*
 * Decides whether a WebSocket upgrade on wsi may join, into hs. Returns 0
 * to accept (hs->room is the room), -1 with hs->status and hs->reason set.
 */
int handshake_check(struct chatd *cd, struct lws *wsi, struct handshake *hs);
/*
 * HTTP_CONFIRM_UPGRADE (upgrade: the header's value): accepts, or answers
 * a refusal with its real HTTP status. Returns what the lws callback
 * returns.
 */
int handshake_confirm(struct chatd *cd, struct lws *wsi, const char *upgrade);
/*
 * Answers an HTTP request on wsi with status and the JSON error body
 * {"error": {"code": code, "message": message}}. 0 if it was written.
 */
int handshake_answer(struct lws *wsi, int status, const char *code, const char *message);
/*
 * Counts an established connection from address in (delta 1) or out
 * (delta -1): the totals the capacity checks read.
 */
void handshake_count(struct chatd *cd, const char *address, int delta);
/* Counts a refused handshake (hs->status != 0) by status and code, for the metrics. */
void handshake_counted(struct chatd *cd, const struct handshake *hs);

#endif
