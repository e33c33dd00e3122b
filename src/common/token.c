/*
 * Signed join tokens (JWT, HS256 only): issue and verify, plus the
 * base64url codec they need. Uses libcrypto for HMAC-SHA256 and nothing
 * else of OpenSSL. Touches no files, sockets or global state, and never
 * logs: a token in a log is a credential in a log.
 *
 * Verification order matters: size bound, shape, header (alg pinned to
 * HS256 before any MAC work, so "none" or an HS/RS confusion can never
 * reach the key), MAC in constant time, and only then the payload's JSON
 * and claims, so nothing unauthenticated beyond the small header is ever
 * parsed.
 */
#include "autoconf.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "jsonutil.h"
#include "jsonw.h"
#include "token.h"
#include "xmalloc.h"

#define TOKEN_MAC_LEN 32 /* SHA-256 */
/* Largest time accepted in a claim: JSON numbers are doubles to most
 * peers, exact only up to 2^53. */
#define TOKEN_TIME_MAX 9007199254740991LL

/* The only header we issue; verification accepts any equivalent JSON. */
static const char token_header_json[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static const char token_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *
token_b64_encode(const unsigned char *data, size_t len)
{
	char *out = xmalloc(len / 3 * 4 + 4 + 1), *o = out;
	size_t i;

	for (i = 0; i + 3 <= len; i += 3) {
		unsigned long v =
		    (unsigned long)data[i] << 16 | (unsigned long)data[i + 1] << 8 | data[i + 2];
		*o++ = token_b64_alphabet[(v >> 18) & 63];
		*o++ = token_b64_alphabet[(v >> 12) & 63];
		*o++ = token_b64_alphabet[(v >> 6) & 63];
		*o++ = token_b64_alphabet[v & 63];
	}
	if (len - i == 1) {
		unsigned long v = (unsigned long)data[i] << 16;
		*o++ = token_b64_alphabet[(v >> 18) & 63];
		*o++ = token_b64_alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		unsigned long v = (unsigned long)data[i] << 16 | (unsigned long)data[i + 1] << 8;
		*o++ = token_b64_alphabet[(v >> 18) & 63];
		*o++ = token_b64_alphabet[(v >> 12) & 63];
		*o++ = token_b64_alphabet[(v >> 6) & 63];
	}
	*o = '\0';
	return out;
}

/* The 6-bit value of a base64url character, or -1. */
static int
token_b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int
token_b64_decode(const char *s, size_t len, unsigned char **out, size_t *outlen)
{
	unsigned char *buf;
	unsigned long acc = 0;
	size_t i, n = 0;
	int bits = 0;

	*out = NULL;
	*outlen = 0;
	/* One leftover character carries only 6 bits: never a whole byte. */
	if (len % 4 == 1)
		return -1;
	buf = xmalloc(len / 4 * 3 + 3 + 1);
	for (i = 0; i < len; i++) {
		int v = token_b64_value(s[i]);
		if (v < 0)
			goto fail;
		acc = (acc << 6 | (unsigned long)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (unsigned char)(acc >> bits);
		}
	}
	/* Leftover bits must be zero, or two encodings would decode alike and
	 * a "different" token could carry the same signature. */
	if ((acc & ((1UL << bits) - 1)) != 0)
		goto fail;
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
fail:
	free(buf);
	return -1;
}

/* HMAC-SHA256 of data under secret into mac; -1 if libcrypto fails. */
static int
token_mac(const char *secret, const char *data, size_t len, unsigned char mac[TOKEN_MAC_LEN])
{
	size_t klen = strlen(secret);
	unsigned int mlen = 0;

	if (klen > INT_MAX)
		return -1;
	if (HMAC(EVP_sha256(), secret, (int)klen, (const unsigned char *)data, len, mac, &mlen) ==
	    NULL)
		return -1;
	return mlen == TOKEN_MAC_LEN ? 0 : -1;
}

char *
token_issue(const char *secret, const char *room_id, const char *user_id, const char *nickname,
    int admin, int64_t now_s, int64_t ttl_s)
{
	unsigned char mac[TOKEN_MAC_LEN];
	char *header = NULL, *payload = NULL, *sig = NULL, *signing = NULL, *token = NULL;
	char *json;
	struct jsonw w;

	if (secret == NULL || *secret == '\0' || room_id == NULL || *room_id == '\0' ||
	    user_id == NULL || *user_id == '\0')
		return NULL;
	if (now_s < 0 || now_s > TOKEN_TIME_MAX || ttl_s < 1 || ttl_s > TOKEN_TIME_MAX - now_s)
		return NULL;

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "sub", user_id);
	jsonw_kv_string(&w, "room", room_id);
	if (nickname != NULL)
		jsonw_kv_string(&w, "nick", nickname);
	jsonw_kv_bool(&w, "admin", admin != 0);
	jsonw_kv_int(&w, "iat", now_s);
	jsonw_kv_int(&w, "exp", now_s + ttl_s);
	jsonw_object_end(&w);
	json = jsonw_take(&w);
	payload = token_b64_encode((const unsigned char *)json, strlen(json));
	free(json);
	header = token_b64_encode(
	    (const unsigned char *)token_header_json, sizeof token_header_json - 1);

	signing = xasprintf("%s.%s", header, payload);
	if (token_mac(secret, signing, strlen(signing), mac) != 0)
		goto fail;
	sig = token_b64_encode(mac, sizeof mac);
	token = xasprintf("%s.%s", signing, sig);
	/* chatd would refuse it; better to fail here, where the caller can say why. */
	if (strlen(token) > TOKEN_MAX_LEN) {
		free(token);
		token = NULL;
	}
fail:
	OPENSSL_cleanse(mac, sizeof mac);
	free(header);
	free(payload);
	free(signing);
	free(sig);
	return token;
}

/* 1 if two members of obj share a name (RFC 7515/7519: reject or take the
 * last; we reject, so no two parsers can read one token differently). */
static int
token_has_duplicates(const cJSON *obj)
{
	const cJSON *a, *b;

	for (a = obj->child; a != NULL; a = a->next) {
		for (b = a->next; b != NULL; b = b->next) {
			if (strcmp(a->string, b->string) == 0)
				return 1;
		}
	}
	return 0;
}

/* Reads a NumericDate claim that must be a whole number in [0, 2^53).
 * 0 with *present 0 when absent; -1 when present but not such a number. */
static int
token_get_time(const cJSON *obj, const char *key, int64_t *out, int *present)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	double d;

	*out = 0;
	*present = 0;
	if (item == NULL)
		return 0;
	if (!cJSON_IsNumber(item))
		return -1;
	d = item->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < 0 || d > (double)TOKEN_TIME_MAX)
		return -1;
	*out = (int64_t)d;
	*present = 1;
	return 0;
}

/* Reads a string claim (borrowed). Absent: *out NULL and 0 unless
 * required. Control characters are refused: ids end up in logs and
 * frames. */
static int
token_get_string(const cJSON *obj, const char *key, int required, const char **out)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	const char *why;

	*out = NULL;
	if (item == NULL)
		return required ? -1 : 0;
	if (!cJSON_IsString(item) ||
	    text_check(item->valuestring, required ? 1 : 0, TOKEN_MAX_LEN, TEXT_NO_CONTROL, &why) !=
		0)
		return -1;
	*out = item->valuestring;
	return 0;
}

/* Checks the decoded header: a JSON object whose "alg" is exactly HS256. */
static int
token_check_header(const unsigned char *text, size_t len, const char **why)
{
	const cJSON *alg, *typ;
	char *cause = NULL;
	cJSON *hdr;
	int rc = -1;

	hdr = json_parse_object((const char *)text, len, &cause);
	if (hdr == NULL) {
		free(cause);
		*why = "malformed";
		return -1;
	}
	*why = "malformed";
	if (token_has_duplicates(hdr))
		goto fail;
	alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
	if (!cJSON_IsString(alg))
		goto fail;
	if (strcmp(alg->valuestring, "HS256") != 0) {
		*why = "unsupported_alg";
		goto fail;
	}
	/* "typ" is advisory (RFC 7519 5.1) but, when given, must say JWT. */
	typ = cJSON_GetObjectItemCaseSensitive(hdr, "typ");
	if (typ != NULL && (!cJSON_IsString(typ) || strcasecmp(typ->valuestring, "JWT") != 0))
		goto fail;
	/* We understand no extensions, so any "crit" must be refused (RFC 7515 4.1.11). */
	if (cJSON_GetObjectItemCaseSensitive(hdr, "crit") != NULL)
		goto fail;
	rc = 0;
fail:
	cJSON_Delete(hdr);
	return rc;
}

/* Parses the verified payload into *out. */
static int
token_read_claims(const unsigned char *text, size_t len, int64_t now_s, struct token_claims *out,
    const char **why)
{
	const char *sub, *room, *nick;
	const cJSON *admin;
	int64_t exp, iat, nbf;
	int has_exp, has_iat, has_nbf, rc = -1;
	char *cause = NULL;
	cJSON *claims;

	*why = "malformed";
	claims = json_parse_object((const char *)text, len, &cause);
	if (claims == NULL) {
		free(cause);
		return -1;
	}
	if (token_has_duplicates(claims) || token_get_time(claims, "exp", &exp, &has_exp) != 0 ||
	    !has_exp || token_get_time(claims, "iat", &iat, &has_iat) != 0 ||
	    token_get_time(claims, "nbf", &nbf, &has_nbf) != 0 ||
	    token_get_string(claims, "sub", 1, &sub) != 0 ||
	    token_get_string(claims, "room", 1, &room) != 0 ||
	    token_get_string(claims, "nick", 0, &nick) != 0)
		goto fail;
	admin = cJSON_GetObjectItemCaseSensitive(claims, "admin");
	if (admin != NULL && !cJSON_IsBool(admin))
		goto fail;
	if (now_s >= exp) {
		*why = "expired";
		goto fail;
	}
	/* Issued (or valid from) later than our clock allows: a token from a
	 * skewed or forged future. */
	if ((has_iat && iat > now_s + TOKEN_LEEWAY_S) ||
	    (has_nbf && nbf > now_s + TOKEN_LEEWAY_S)) {
		*why = "not_yet_valid";
		goto fail;
	}
	out->sub = xstrdup(sub);
	out->room = xstrdup(room);
	out->nick = nick != NULL ? xstrdup(nick) : NULL;
	out->admin = cJSON_IsTrue(admin);
	out->exp = exp;
	out->iat = iat;
	*why = NULL;
	rc = 0;
fail:
	cJSON_Delete(claims);
	return rc;
}

int
token_verify(const char *secret, const char *token, int64_t now_s, struct token_claims *out,
    const char **why)
{
	unsigned char mac[TOKEN_MAC_LEN], *hdr = NULL, *payload = NULL, *sig = NULL;
	const char *dot1, *dot2;
	size_t len, hdrlen, paylen, siglen;
	int rc = -1;

	memset(out, 0, sizeof *out);
	*why = "malformed";
	if (token == NULL)
		return -1;
	len = strnlen(token, TOKEN_MAX_LEN + 1);
	if (len > TOKEN_MAX_LEN)
		return -1;
	/* Exactly three parts: header.payload.signature. */
	dot1 = memchr(token, '.', len);
	if (dot1 == NULL)
		return -1;
	dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
		return -1;
	if (dot1 == token || dot2 == dot1 + 1)
		return -1;

	if (token_b64_decode(token, (size_t)(dot1 - token), &hdr, &hdrlen) != 0)
		goto fail;
	if (token_check_header(hdr, hdrlen, why) != 0)
		goto fail;
	*why = "malformed";
	if (token_b64_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &payload, &paylen) != 0 ||
	    token_b64_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig, &siglen) != 0)
		goto fail;

	*why = "bad_signature";
	if (secret == NULL || *secret == '\0' || siglen != TOKEN_MAC_LEN)
		goto fail;
	if (token_mac(secret, token, (size_t)(dot2 - token), mac) != 0)
		goto fail;
	if (CRYPTO_memcmp(mac, sig, TOKEN_MAC_LEN) != 0)
		goto fail;

	rc = token_read_claims(payload, paylen, now_s, out, why);
fail:
	OPENSSL_cleanse(mac, sizeof mac);
	free(hdr);
	free(payload);
	free(sig);
	return rc;
}

void
token_claims_clear(struct token_claims *c)
{
	free(c->sub);
	free(c->room);
	free(c->nick);
	memset(c, 0, sizeof *c);
}
