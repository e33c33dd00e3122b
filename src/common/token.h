/*
 * Signed join tokens: JSON Web Tokens (RFC 7519) in the JWS compact form
 * (RFC 7515) with HS256 (HMAC-SHA256, RFC 7518) only. chat-api issues them
 * (POST /management/rooms/{room_id}/tokens) and chatd verifies them at the
 * WebSocket handshake when TOKEN_SECRET is set. docs/websocket.md
 * ("Identity") is the contract for clients.
 *
 *   header  {"alg":"HS256","typ":"JWT"}
 *   payload {"sub":USER_ID,"room":ROOM_ID,"nick":NICKNAME?,"admin":BOOL,
 *            "iat":UNIX_S,"exp":UNIX_S}
 *
 * Pure functions over strings: no I/O, no global state, safe from any
 * thread. Tokens and secrets are never logged, here or by callers.
 */
#ifndef CHAT_TOKEN_H
#define CHAT_TOKEN_H

#include <stddef.h>
#include <stdint.h>

/* Longest token accepted or issued, in bytes. Checked before anything
 * else, so a hostile query string costs no decoding. */
#define TOKEN_MAX_LEN 4096
/* Clock skew allowed for "iat" and "nbf" in the future, in seconds. */
#define TOKEN_LEEWAY_S 60

/*
 * The claims of a verified token. Strings are heap copies owned by the
 * struct (token_claims_clear frees them). Embedded in its owner.
 */
struct token_claims {
	char *sub; /* user id, never NULL after success */
	char *room; /* room id, never NULL after success */
	char *nick; /* nickname, NULL when the token carries none */
	int admin; /* the "admin" claim; 0 when absent */
	int64_t exp; /* Unix seconds; the token is expired from this second on */
	int64_t iat; /* Unix seconds; 0 when absent */
};

/*
 * Issues a token for user_id in room_id, valid from now_s for ttl_s
 * seconds (exp = now_s + ttl_s). nickname may be NULL (no "nick" claim).
 * Returns the token (heap, caller frees), or NULL if the arguments are
 * unusable (empty secret or ids, ttl_s < 1, times beyond 2^53, a token
 * longer than TOKEN_MAX_LEN) or libcrypto's HMAC failed. Callers check
 * the lengths and encoding of the ids beforehand (chat-api does).
 */
char *token_issue(const char *secret, const char *room_id, const char *user_id,
    const char *nickname, int admin, int64_t now_s, int64_t ttl_s);

/*
 * Verifies token against secret at time now_s (Unix seconds). Returns 0
 * and fills *out (caller clears), or -1 with *why set to a static reason
 * and *out zeroed:
 *   "malformed"       not three base64url parts (no padding, canonical),
 *                     longer than TOKEN_MAX_LEN, header or payload not a
 *                     JSON object, a duplicate member, "crit" in the
 *                     header, or a claim missing or of the wrong type
 *                     ("exp" an integer, "sub" and "room" non-empty
 *                     strings without control characters, "admin" a
 *                     boolean, "nick" a string, "iat"/"nbf" integers)
 *   "unsupported_alg" the header's "alg" is anything but "HS256" ("none"
 *                     included): checked before the signature
 *   "bad_signature"   the MAC does not match (compared in constant time),
 *                     or secret is NULL or empty
 *   "expired"         now_s >= exp
 *   "not_yet_valid"   "nbf" or "iat" more than TOKEN_LEEWAY_S ahead of now_s
 * The payload is parsed only after its signature is verified.
 *
 * This proves only that chat-api issued the token and that it is in date.
 * The caller must still check that out->sub equals the connection's
 * user_id and out->room equals the room being joined, and take admin
 * rights from out->admin alone.
 */
int token_verify(const char *secret, const char *token, int64_t now_s, struct token_claims *out,
    const char **why);

/* Frees the claims' strings and zeroes *c. Safe on a zeroed struct. */
void token_claims_clear(struct token_claims *c);

/*
 * base64url without padding (RFC 4648 section 5), as JWS uses it; exported
 * for tests. token_b64_encode returns a heap string. token_b64_decode
 * decodes len characters into a heap buffer (*out, NUL-terminated for
 * convenience, *outlen bytes); -1 on a character outside the alphabet,
 * "=" padding, an impossible length, or non-zero trailing bits (so every
 * byte string has exactly one accepted encoding).
 */
char *token_b64_encode(const unsigned char *data, size_t len);
int token_b64_decode(const char *s, size_t len, unsigned char **out, size_t *outlen);

#endif
