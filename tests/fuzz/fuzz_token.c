/*
 * Fuzz target for join tokens (token.c) under a fixed secret and clock.
 * The first byte picks what the rest is:
 *   0  a token string, verified as chatd would at the handshake
 *   1  "HEADER\0PAYLOAD" JSON texts (HEADER optional: no NUL means the
 *      standard header), encoded and signed here with the right secret,
 *      so the claim checks behind the MAC are reached
 *   2  claims "ROOM\0USER\0NICK" (NICK optional), issued by token_issue:
 *      when the ids are what chat-api lets through, the token must verify
 *      to the same claims, and fail once any byte of it changes
 *   3  base64url text: decoding and re-encoding must give it back
 * Verification results must follow token.h: a documented reason and
 * zeroed claims on failure, complete claims in date on success.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "jsonutil.h"
#include "token.h"
#include "xmalloc.h"

#define FUZZ_SECRET "fuzz-secret"
#define FUZZ_NOW 1700000000LL

/* Verifies and checks the result's shape; returns token_verify's result. */
static int
fuzz_verify(const char *secret, const char *token, struct token_claims *c)
{
	static const char *const reasons[] = { "malformed", "unsupported_alg", "bad_signature",
		"expired", "not_yet_valid" };
	const char *why = NULL, *w;
	size_t i;
	int rc, known = 0;

	rc = token_verify(secret, token, FUZZ_NOW, c, &why);
	if (rc != 0) {
		FUZZ_CHECK(rc == -1 && why != NULL);
		for (i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
			known |= strcmp(why, reasons[i]) == 0;
		FUZZ_CHECK(known);
		FUZZ_CHECK(c->sub == NULL && c->room == NULL && c->nick == NULL);
		return rc;
	}
	FUZZ_CHECK(strlen(token) <= TOKEN_MAX_LEN);
	FUZZ_CHECK(
	    c->sub != NULL && text_check(c->sub, 1, TOKEN_MAX_LEN, TEXT_NO_CONTROL, &w) == 0);
	FUZZ_CHECK(
	    c->room != NULL && text_check(c->room, 1, TOKEN_MAX_LEN, TEXT_NO_CONTROL, &w) == 0);
	FUZZ_CHECK(
	    c->nick == NULL || text_check(c->nick, 0, TOKEN_MAX_LEN, TEXT_NO_CONTROL, &w) == 0);
	FUZZ_CHECK(c->exp > FUZZ_NOW && c->iat <= FUZZ_NOW + TOKEN_LEEWAY_S);
	FUZZ_CHECK(c->admin == 0 || c->admin == 1);
	return 0;
}

/* A token over arbitrary header and payload texts with a valid MAC. */
static void
fuzz_signed(const char *header, size_t hlen, const char *payload, size_t plen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	struct token_claims c;
	char *h, *p, *signing, *sig, *token;

	h = token_b64_encode((const unsigned char *)header, hlen);
	p = token_b64_encode((const unsigned char *)payload, plen);
	signing = xasprintf("%s.%s", h, p);
	FUZZ_CHECK(HMAC(EVP_sha256(), FUZZ_SECRET, (int)strlen(FUZZ_SECRET),
		       (const unsigned char *)signing, strlen(signing), mac, &mlen) != NULL);
	sig = token_b64_encode(mac, mlen);
	token = xasprintf("%s.%s", signing, sig);
	if (fuzz_verify(FUZZ_SECRET, token, &c) == 0)
		token_claims_clear(&c);
	/* The same token under another secret never verifies. */
	FUZZ_CHECK(fuzz_verify("other-secret", token, &c) != 0);
	free(token);
	free(sig);
	free(signing);
	free(p);
	free(h);
}

static int
fuzz_id_ok(const char *s, size_t min)
{
	const char *why;

	return text_check(s, min, TOKEN_MAX_LEN, TEXT_NO_CONTROL, &why) == 0;
}

static void
fuzz_round_trip(const char *room, const char *user, const char *nick, int admin)
{
	struct token_claims c;
	char *token;
	size_t i, len;

	token = token_issue(FUZZ_SECRET, room, user, nick, admin, FUZZ_NOW, 3600);
	if (token == NULL) {
		/* Refused only for the documented reasons (here: too long or empty ids). */
		FUZZ_CHECK(*room == '\0' || *user == '\0' ||
		    strlen(room) + strlen(user) + (nick ? strlen(nick) : 0) > TOKEN_MAX_LEN / 10);
		return;
	}
	FUZZ_CHECK(strlen(token) <= TOKEN_MAX_LEN);
	if (!fuzz_id_ok(room, 1) || !fuzz_id_ok(user, 1) ||
	    (nick != NULL && !fuzz_id_ok(nick, 0))) {
		/* chat-api never issues these; chatd must refuse them anyway. */
		FUZZ_CHECK(fuzz_verify(FUZZ_SECRET, token, &c) != 0);
		free(token);
		return;
	}
	FUZZ_CHECK(fuzz_verify(FUZZ_SECRET, token, &c) == 0);
	FUZZ_CHECK(strcmp(c.room, room) == 0 && strcmp(c.sub, user) == 0);
	FUZZ_CHECK(nick == NULL ? c.nick == NULL : c.nick != NULL && strcmp(c.nick, nick) == 0);
	FUZZ_CHECK(c.admin == (admin != 0) && c.iat == FUZZ_NOW && c.exp == FUZZ_NOW + 3600);
	token_claims_clear(&c);
	/* Tampering anywhere is caught (a changed character decodes differently). */
	len = strlen(token);
	i = (strlen(room) * 31 + strlen(user)) % len;
	token[i] = token[i] == 'A' ? 'B' : 'A';
	FUZZ_CHECK(fuzz_verify(FUZZ_SECRET, token, &c) != 0);
	free(token);
}

static void
fuzz_b64(const char *text, size_t len)
{
	unsigned char *out;
	size_t outlen;
	char *again;

	if (token_b64_decode(text, len, &out, &outlen) != 0) {
		FUZZ_CHECK(out == NULL);
		return;
	}
	FUZZ_CHECK(out[outlen] == '\0');
	again = token_b64_encode(out, outlen);
	FUZZ_CHECK(strlen(again) == len && memcmp(again, text, len) == 0);
	free(again);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct token_claims c;
	char *text, *f2, *f3;
	size_t len;
	int mode;

	if (size == 0 || size > 3 * TOKEN_MAX_LEN)
		return 0;
	mode = data[0] & 3;
	len = size - 1;
	text = xmalloc(len + 2);
	memcpy(text, data + 1, len);
	text[len] = text[len + 1] = '\0';
	switch (mode) {
	case 0:
		if (fuzz_verify(FUZZ_SECRET, text, &c) == 0)
			token_claims_clear(&c);
		break;
	case 1:
		f2 = memchr(text, '\0', len);
		if (f2 == NULL)
			fuzz_signed("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27, text, len);
		else
			fuzz_signed(
			    text, (size_t)(f2 - text), f2 + 1, len - (size_t)(f2 + 1 - text));
		break;
	case 2:
		/* text[len + 1] is a second NUL, so f2 and f3 are always strings. */
		f2 = text + strlen(text) + 1;
		f3 = f2 <= text + len ? f2 + strlen(f2) + 1 : NULL;
		if (f2 > text + len)
			f2 = text + len;
		fuzz_round_trip(text, f2, f3 != NULL && f3 <= text + len ? f3 : NULL, data[0] & 4);
		break;
	case 3:
		fuzz_b64(text, len);
		break;
	}
	free(text);
	return 0;
}
