/*
 * Unit tests for signed join tokens (src/common/token.c): base64url,
 * issue/verify round trips, every refusal reason, and known answers
 * computed independently with Python's hmac/hashlib/base64 (the commands
 * are quoted next to the expected strings). Crafted tokens are signed here
 * with libcrypto directly, not through token.c, so a bug in token_mac
 * cannot hide itself. Touches no files.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "check_main.h"
#include "token.h"
#include "xmalloc.h"

#define SECRET "chatd-test-secret"
#define ROOM "9f1c2a7e-4b3d-4c55-9a61-0e2f7b8c9d10"
#define NOW 1764366000LL
#define HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* ---- helpers ---- */

/* b64(header).b64(payload).b64(HMAC-SHA256(secret, first two)) */
static char *
sign_raw(const char *secret, const char *header, const char *payload)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	char *h, *p, *s, *signing, *tok;

	h = token_b64_encode((const unsigned char *)header, strlen(header));
	p = token_b64_encode((const unsigned char *)payload, strlen(payload));
	signing = xasprintf("%s.%s", h, p);
	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), secret, (int)strlen(secret),
	    (const unsigned char *)signing, strlen(signing), mac, &mlen));
	ck_assert_uint_eq(mlen, 32);
	s = token_b64_encode(mac, mlen);
	tok = xasprintf("%s.%s", signing, s);
	free(h);
	free(p);
	free(s);
	free(signing);
	return tok;
}

/* Verifies at NOW; returns the reason ("ok" on success), claims cleared. */
static const char *
verify_at(const char *secret, const char *token, long long now)
{
	struct token_claims c;
	const char *why = "unset";
	int rc;

	rc = token_verify(secret, token, now, &c, &why);
	if (rc == 0) {
		ck_assert_ptr_nonnull(c.sub);
		ck_assert_ptr_nonnull(c.room);
		token_claims_clear(&c);
		return "ok";
	}
	ck_assert_int_eq(rc, -1);
	ck_assert_ptr_nonnull(why);
	/* nothing is handed out on failure */
	ck_assert_ptr_null(c.sub);
	ck_assert_ptr_null(c.room);
	ck_assert_ptr_null(c.nick);
	ck_assert_int_eq(c.admin, 0);
	return why;
}

static const char *
verify(const char *token)
{
	return verify_at(SECRET, token, NOW);
}

/* Signs payload with the standard header and returns verify()'s reason. */
static const char *
verify_payload(const char *payload)
{
	char *tok = sign_raw(SECRET, HDR, payload);
	const char *why = verify(tok);

	free(tok);
	return why;
}

static const char *
verify_header(const char *header)
{
	char *tok = sign_raw(SECRET, header,
	    "{\"sub\":\"u1\",\"room\":\"r1\",\"exp\":1764369600,\"iat\":1764366000}");
	const char *why = verify(tok);

	free(tok);
	return why;
}

/* ---- base64url ---- */

START_TEST(test_b64_vectors)
{
	/* RFC 4648 section 10, in the URL alphabet without padding */
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const enc[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE",
		"Zm9vYmFy" };
	static const unsigned char url[] = { 0xfb, 0xff, 0xbf };
	unsigned char *out;
	size_t outlen;
	char *s;

	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
		s = token_b64_encode((const unsigned char *)plain[i], strlen(plain[i]));
		ck_assert_str_eq(s, enc[i]);
		free(s);
		ck_assert_int_eq(token_b64_decode(enc[i], strlen(enc[i]), &out, &outlen), 0);
		ck_assert_uint_eq(outlen, strlen(plain[i]));
		ck_assert_int_eq(memcmp(out, plain[i], outlen), 0);
		ck_assert_int_eq(out[outlen], '\0');
		free(out);
	}
	/* "+/" in standard base64 are "-_" here */
	s = token_b64_encode(url, sizeof url);
	ck_assert_str_eq(s, "-_-_");
	free(s);
	ck_assert_int_eq(token_b64_decode("-_-_", 4, &out, &outlen), 0);
	ck_assert_uint_eq(outlen, 3);
	ck_assert_int_eq(memcmp(out, url, 3), 0);
	free(out);

	/* every byte value survives a round trip */
	{
		unsigned char all[256];
		for (int i = 0; i < 256; i++)
			all[i] = (unsigned char)i;
		s = token_b64_encode(all, sizeof all);
		ck_assert_int_eq(token_b64_decode(s, strlen(s), &out, &outlen), 0);
		ck_assert_uint_eq(outlen, 256);
		ck_assert_int_eq(memcmp(out, all, 256), 0);
		free(out);
		free(s);
	}
}
END_TEST

START_TEST(test_b64_rejects)
{
	static const char *const bad[] = {
		"Zg==", /* padding */
		"Zg=",
		"Zm9vYg==",
		"=",
		"Z", /* a lone 6 bits is never a byte */
		"Zm9vY",
		"Zh", /* non-zero trailing bits: "Zg" is the one encoding of "f" */
		"Zm9", /* ... of "fo" is "Zm8" */
		"+/8", /* standard alphabet */
		"Zm 9v",
		"Zm9v\n",
		"Zm9*",
		"Zm.v",
	};
	unsigned char *out = (unsigned char *)"x";
	size_t outlen = 7;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(token_b64_decode(bad[i], strlen(bad[i]), &out, &outlen) == -1,
		    "accepted %s", bad[i]);
		ck_assert_ptr_null(out);
		ck_assert_uint_eq(outlen, 0);
	}
	/* an embedded NUL is outside the alphabet too */
	ck_assert_int_eq(token_b64_decode("Zm\0v", 4, &out, &outlen), -1);
}
END_TEST

/* ---- issue and verify ---- */

START_TEST(test_round_trip)
{
	struct token_claims c;
	const char *why = NULL;
	char *tok;

	tok = token_issue(SECRET, ROOM, "user \"1\"/\\", "张三 🎉", 1, NOW, 600);
	ck_assert_ptr_nonnull(tok);
	ck_assert_uint_le(strlen(tok), TOKEN_MAX_LEN);
	ck_assert_int_eq(token_verify(SECRET, tok, NOW, &c, &why), 0);
	ck_assert_ptr_null(why);
	ck_assert_str_eq(c.sub, "user \"1\"/\\");
	ck_assert_str_eq(c.room, ROOM);
	ck_assert_str_eq(c.nick, "张三 🎉");
	ck_assert_int_eq(c.admin, 1);
	ck_assert_int_eq(c.exp, NOW + 600);
	ck_assert_int_eq(c.iat, NOW);
	token_claims_clear(&c);
	ck_assert_ptr_null(c.sub);
	token_claims_clear(&c); /* twice is harmless */
	/* still valid one second before the end */
	ck_assert_str_eq(verify_at(SECRET, tok, NOW + 599), "ok");
	free(tok);

	/* no nickname, not admin */
	tok = token_issue(SECRET, ROOM, "u2", NULL, 0, NOW, 1);
	ck_assert_ptr_nonnull(tok);
	ck_assert_int_eq(token_verify(SECRET, tok, NOW, &c, &why), 0);
	ck_assert_str_eq(c.sub, "u2");
	ck_assert_ptr_null(c.nick);
	ck_assert_int_eq(c.admin, 0);
	ck_assert_int_eq(c.exp, NOW + 1);
	token_claims_clear(&c);
	free(tok);

	/* an empty nickname is kept as given */
	tok = token_issue(SECRET, ROOM, "u3", "", 0, NOW, 60);
	ck_assert_int_eq(token_verify(SECRET, tok, NOW, &c, &why), 0);
	ck_assert_str_eq(c.nick, "");
	token_claims_clear(&c);
	free(tok);
}
END_TEST

START_TEST(test_issue_refuses)
{
	char big[3500];

	ck_assert_ptr_null(token_issue(NULL, ROOM, "u", NULL, 0, NOW, 60));
	ck_assert_ptr_null(token_issue("", ROOM, "u", NULL, 0, NOW, 60));
	ck_assert_ptr_null(token_issue(SECRET, NULL, "u", NULL, 0, NOW, 60));
	ck_assert_ptr_null(token_issue(SECRET, "", "u", NULL, 0, NOW, 60));
	ck_assert_ptr_null(token_issue(SECRET, ROOM, NULL, NULL, 0, NOW, 60));
	ck_assert_ptr_null(token_issue(SECRET, ROOM, "", NULL, 0, NOW, 60));
	ck_assert_ptr_null(token_issue(SECRET, ROOM, "u", NULL, 0, NOW, 0));
	ck_assert_ptr_null(token_issue(SECRET, ROOM, "u", NULL, 0, NOW, -5));
	ck_assert_ptr_null(token_issue(SECRET, ROOM, "u", NULL, 0, -1, 60));
	ck_assert_ptr_null(token_issue(SECRET, ROOM, "u", NULL, 0, 9007199254740990LL, 2));
	/* would exceed TOKEN_MAX_LEN, which chatd refuses */
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ck_assert_ptr_null(token_issue(SECRET, ROOM, big, NULL, 0, NOW, 60));
}
END_TEST

START_TEST(test_expired)
{
	char *tok = token_issue(SECRET, ROOM, "u1", NULL, 0, NOW, 3600);

	ck_assert_str_eq(verify_at(SECRET, tok, NOW + 3599), "ok");
	ck_assert_str_eq(verify_at(SECRET, tok, NOW + 3600), "expired"); /* now == exp */
	ck_assert_str_eq(verify_at(SECRET, tok, NOW + 3601), "expired");
	ck_assert_str_eq(verify_at(SECRET, tok, NOW + 86400 * 365), "expired");
	/* a bad signature is reported before expiry: expiry means nothing unsigned */
	ck_assert_str_eq(verify_at("other", tok, NOW + 3600), "bad_signature");
	free(tok);
	ck_assert_str_eq(verify_payload("{\"sub\":\"u\",\"room\":\"r\",\"exp\":0}"), "expired");
}
END_TEST

START_TEST(test_wrong_secret)
{
	char *tok = token_issue(SECRET, ROOM, "u1", NULL, 1, NOW, 3600);

	ck_assert_str_eq(verify_at("chatd-test-secreT", tok, NOW), "bad_signature");
	ck_assert_str_eq(verify_at("chatd-test-secret ", tok, NOW), "bad_signature");
	ck_assert_str_eq(verify_at("", tok, NOW), "bad_signature");
	ck_assert_str_eq(verify_at(NULL, tok, NOW), "bad_signature");
	free(tok);
}
END_TEST

/* Replaces tok[i] with another alphabet character whose value differs in
 * its high bits, so the decoding stays canonical wherever i is. */
static void
flip(char *tok, size_t i)
{
	tok[i] = tok[i] == 'A' ? 'g' : 'A';
}

START_TEST(test_tampered)
{
	char *tok = token_issue(SECRET, ROOM, "u1", "nick", 0, NOW, 3600), *copy, *other;
	size_t len = strlen(tok), d1, d2;

	d1 = (size_t)(strchr(tok, '.') - tok);
	d2 = (size_t)(strrchr(tok, '.') - tok);

	/* one character in the middle of the payload or the signature */
	copy = xstrdup(tok);
	flip(copy, (d1 + d2) / 2);
	ck_assert_str_eq(verify(copy), "bad_signature");
	free(copy);
	copy = xstrdup(tok);
	flip(copy, (d2 + len) / 2);
	ck_assert_str_eq(verify(copy), "bad_signature");
	free(copy);
	/* a header that still says HS256 but is not the one signed */
	other = sign_raw(SECRET, "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"x\"}", "{}");
	copy = xasprintf("%.*s%s", (int)(strchr(other, '.') - other), other, tok + d1);
	ck_assert_str_eq(verify(copy), "bad_signature");
	free(copy);
	free(other);
	/* the signature's last character carries two unused bits: setting
	 * one is a second spelling of the same bytes, refused */
	copy = xstrdup(tok);
	{
		static const char abc[] =
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		size_t v = (size_t)(strchr(abc, copy[len - 1]) - abc);
		ck_assert_uint_eq(v & 3, 0);
		copy[len - 1] = abc[v | 1];
	}
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);

	/* no single changed character anywhere passes */
	for (size_t i = 0; i < len; i++) {
		copy = xstrdup(tok);
		if (copy[i] == '.')
			copy[i] = 'A';
		else
			flip(copy, i);
		ck_assert_msg(strcmp(verify(copy), "ok") != 0, "accepted a change at %zu", i);
		free(copy);
	}
	/* nor a signature from another token */
	other = token_issue(SECRET, ROOM, "u2", "nick", 0, NOW, 3600);
	copy = xasprintf("%.*s%s", (int)d2, tok, strrchr(other, '.'));
	ck_assert_str_eq(verify(copy), "bad_signature");
	free(copy);
	free(other);
	/* nor a truncated signature (30 bytes, a canonical length) */
	copy = xstrndup(tok, len - 3);
	ck_assert_str_eq(verify(copy), "bad_signature");
	free(copy);
	free(tok);
}
END_TEST

START_TEST(test_alg)
{
	const char *payload = "{\"sub\":\"u1\",\"room\":\"r1\",\"admin\":true,\"exp\":1764369600}";
	char *h, *p, *tok;

	/* "none" with the empty signature such tokens carry */
	h = token_b64_encode((const unsigned char *)"{\"alg\":\"none\",\"typ\":\"JWT\"}",
	    strlen("{\"alg\":\"none\",\"typ\":\"JWT\"}"));
	p = token_b64_encode((const unsigned char *)payload, strlen(payload));
	tok = xasprintf("%s.%s.", h, p);
	ck_assert_str_eq(verify(tok), "unsupported_alg");
	free(tok);
	tok = xasprintf("%s.%s", h, p);
	ck_assert_str_eq(verify(tok), "malformed");
	free(tok);
	free(h);
	free(p);
	/* "none" even with a valid HMAC over it */
	tok = sign_raw(SECRET, "{\"alg\":\"none\",\"typ\":\"JWT\"}", payload);
	ck_assert_str_eq(verify(tok), "unsupported_alg");
	free(tok);

	ck_assert_str_eq(verify_header("{\"alg\":\"HS512\",\"typ\":\"JWT\"}"), "unsupported_alg");
	ck_assert_str_eq(verify_header("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"), "unsupported_alg");
	ck_assert_str_eq(verify_header("{\"alg\":\"hs256\",\"typ\":\"JWT\"}"), "unsupported_alg");
	ck_assert_str_eq(verify_header("{\"alg\":\"HS256 \",\"typ\":\"JWT\"}"), "unsupported_alg");
	ck_assert_str_eq(verify_header("{\"alg\":\"\"}"), "unsupported_alg");
	ck_assert_str_eq(verify_header("{\"typ\":\"JWT\"}"), "malformed");
	ck_assert_str_eq(verify_header("{\"alg\":256}"), "malformed");
	ck_assert_str_eq(verify_header("{\"alg\":null}"), "malformed");
	ck_assert_str_eq(verify_header("{\"alg\":\"HS256\",\"alg\":\"none\"}"), "malformed");
	ck_assert_str_eq(verify_header("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}"), "malformed");
	ck_assert_str_eq(verify_header("{\"alg\":\"HS256\",\"typ\":\"JWE\"}"), "malformed");
	ck_assert_str_eq(verify_header("[\"HS256\"]"), "malformed");
	ck_assert_str_eq(verify_header("HS256"), "malformed");
	/* what other issuers write is fine */
	ck_assert_str_eq(verify_header("{\"alg\":\"HS256\"}"), "ok");
	ck_assert_str_eq(verify_header("{ \"typ\" : \"jwt\", \"alg\" : \"HS256\" }"), "ok");
	ck_assert_str_eq(verify_header("{\"alg\":\"HS256\",\"kid\":\"k1\"}"), "ok");
}
END_TEST

START_TEST(test_malformed_shape)
{
	char *tok = token_issue(SECRET, ROOM, "u1", NULL, 0, NOW, 3600), *copy;
	const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');

	ck_assert_str_eq(verify(tok), "ok");
	ck_assert_str_eq(verify(NULL), "malformed");
	ck_assert_str_eq(verify(""), "malformed");
	ck_assert_str_eq(verify("."), "malformed");
	ck_assert_str_eq(verify(".."), "malformed");
	ck_assert_str_eq(verify("..."), "malformed");
	ck_assert_str_eq(verify("abc"), "malformed");
	/* two parts */
	copy = xstrndup(tok, (size_t)(d2 - tok));
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	/* four parts */
	copy = xasprintf("%s.%s", tok, d2 + 1);
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	copy = xasprintf("%s.", tok);
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	/* empty header or payload */
	copy = xasprintf("%s", d1);
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	copy = xasprintf("%.*s.%s", (int)(d1 - tok), tok, d2);
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	/* padding, standard alphabet, stray characters, whitespace */
	copy = xasprintf("%s=", tok);
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	copy = xasprintf("%.*s==%s", (int)(d1 - tok), tok, d1);
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	copy = xasprintf("%.*s=%s", (int)(d2 - tok), tok, d2);
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	copy = xstrdup(tok);
	copy[(d1 - tok + d2 - tok) / 2] = '+';
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	copy = xstrdup(tok);
	copy[strlen(copy) - 5] = '/';
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	copy = xstrdup(tok);
	copy[3] = '%';
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	copy = xasprintf(" %s", tok);
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	copy = xasprintf("%s\n", tok);
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	/* header is not base64url of JSON */
	copy = xasprintf("bm90IGpzb24%s", d1);
	ck_assert_str_eq(verify(copy), "malformed");
	free(copy);
	free(tok);
}
END_TEST

START_TEST(test_malformed_claims)
{
	static const char *const bad[] = {
		"not json",
		"",
		"[]",
		"\"sub\"",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600} x",
		/* exp missing or not an integer */
		"{\"sub\":\"u\",\"room\":\"r\"}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":\"1764369600\"}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600.5}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":null}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":true}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":-1}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1e300}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":9007199254740993}",
		/* sub and room */
		"{\"room\":\"r\",\"exp\":1764369600}",
		"{\"sub\":\"\",\"room\":\"r\",\"exp\":1764369600}",
		"{\"sub\":5,\"room\":\"r\",\"exp\":1764369600}",
		"{\"sub\":null,\"room\":\"r\",\"exp\":1764369600}",
		"{\"sub\":\"a\\nb\",\"room\":\"r\",\"exp\":1764369600}",
		"{\"sub\":\"a\\u0000b\",\"room\":\"r\",\"exp\":1764369600}",
		"{\"sub\":\"\xff\",\"room\":\"r\",\"exp\":1764369600}",
		"{\"sub\":\"u\",\"exp\":1764369600}",
		"{\"sub\":\"u\",\"room\":[],\"exp\":1764369600}",
		/* optional claims of the wrong kind */
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,\"admin\":\"true\"}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,\"admin\":1}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,\"admin\":null}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,\"nick\":5}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,\"iat\":\"now\"}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,\"nbf\":1.5}",
		/* a claim given twice */
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,\"sub\":\"admin\"}",
		"{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,\"admin\":false,\"admin\":true}",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(strcmp(verify_payload(bad[i]), "malformed") == 0, "%s: %s", bad[i],
		    verify_payload(bad[i]));
	/* unknown claims are ignored (RFC 7519 4) */
	ck_assert_str_eq(verify_payload("{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,"
					"\"jti\":\"x\",\"aud\":[1,{}]}"),
	    "ok");
}
END_TEST

START_TEST(test_not_yet_valid)
{
	ck_assert_str_eq(verify_payload("{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,"
					"\"iat\":1764366060}"),
	    "ok"); /* within the leeway */
	ck_assert_str_eq(verify_payload("{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,"
					"\"iat\":1764366061}"),
	    "not_yet_valid");
	ck_assert_str_eq(verify_payload("{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,"
					"\"nbf\":1764366060}"),
	    "ok");
	ck_assert_str_eq(verify_payload("{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,"
					"\"nbf\":1764366061}"),
	    "not_yet_valid");
	ck_assert_str_eq(verify_payload("{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,"
					"\"iat\":0,\"nbf\":0}"),
	    "ok");
}
END_TEST

START_TEST(test_overlong)
{
	char *tok, *prev = NULL, *payload, *pad;
	size_t n;

	/* grow a signed token one byte of claim at a time across the bound */
	for (n = 2800;; n++) {
		pad = xmalloc(n + 1);
		memset(pad, 'p', n);
		pad[n] = '\0';
		payload = xasprintf(
		    "{\"sub\":\"u\",\"room\":\"r\",\"exp\":1764369600,\"pad\":\"%s\"}", pad);
		tok = sign_raw(SECRET, HDR, payload);
		free(pad);
		free(payload);
		if (strlen(tok) > TOKEN_MAX_LEN)
			break;
		free(prev);
		prev = tok;
	}
	ck_assert_ptr_nonnull(prev);
	ck_assert_uint_ge(strlen(prev), TOKEN_MAX_LEN - 1);
	ck_assert_str_eq(verify(prev), "ok");
	ck_assert_str_eq(verify(tok), "malformed");
	free(prev);
	free(tok);

	/* the bound holds before anything is decoded, even without a NUL
	 * within reach of a careless strlen */
	tok = xmalloc(1024 * 1024 + 1);
	memset(tok, 'A', 1024 * 1024);
	tok[1024 * 1024] = '\0';
	ck_assert_str_eq(verify(tok), "malformed");
	free(tok);
}
END_TEST

/*
 * Known answers. Computed with:
 *
 * /usr/bin/python3 -c '
 * import hmac, hashlib, base64
 * b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
 * h = b"{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
 * p = (b"{\"sub\":\"user1\",\"room\":\"9f1c2a7e-4b3d-4c55-9a61-0e2f7b8c9d10\","
 *      b"\"nick\":\"Alice\",\"admin\":true,\"iat\":1764366000,\"exp\":1764369600}")
 * s = b64(h) + "." + b64(p)
 * print(s + "." + b64(hmac.new(b"chatd-test-secret", s.encode(), hashlib.sha256).digest()))'
 */
#define KAT_ISSUED \
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." \
	"eyJzdWIiOiJ1c2VyMSIsInJvb20iOiI5ZjFjMmE3ZS00YjNkLTRjNTUtOWE2MS0wZTJmN2I4YzlkMTAiLCJuaWNr" \
	"IjoiQWxpY2UiLCJhZG1pbiI6dHJ1ZSwiaWF0IjoxNzY0MzY2MDAwLCJleHAiOjE3NjQzNjk2MDB9." \
	"9Til6tXZodil8VqFGCpbxyQGoFjd1FznzxyIoar3r8I"

/*
 * A token as another issuer (PyJWT-like json.dumps) writes it: spaces,
 * another member order, an escaped non-ASCII nickname, an unknown claim:
 *
 * h = json.dumps({"typ": "JWT", "alg": "HS256"}).encode()
 * p = json.dumps({"exp": 1764369600, "room": "r-42", "admin": False,
 *     "sub": "u/2 x", "nick": "张三", "iat": 1764366000, "jti": "abc"}).encode()
 * (signed as above)
 */
#define KAT_FOREIGN \
	"eyJ0eXAiOiAiSldUIiwgImFsZyI6ICJIUzI1NiJ9." \
	"eyJleHAiOiAxNzY0MzY5NjAwLCAicm9vbSI6ICJyLTQyIiwgImFkbWluIjogZmFsc2UsICJzdWIiOiAidS8yIHgi" \
	"LCAibmljayI6ICJcdTVmMjBcdTRlMDkiLCAiaWF0IjogMTc2NDM2NjAwMCwgImp0aSI6ICJhYmMifQ." \
	"CfJtgf4GPJ3D6QkL8fpHwIAqEVsVnjktQrkjrBM1B6A"

START_TEST(test_known_answer)
{
	struct token_claims c;
	const char *why;
	char *tok;

	tok = token_issue(SECRET, ROOM, "user1", "Alice", 1, NOW, 3600);
	ck_assert_str_eq(tok, KAT_ISSUED);
	free(tok);
	ck_assert_int_eq(token_verify(SECRET, KAT_ISSUED, NOW, &c, &why), 0);
	ck_assert_str_eq(c.sub, "user1");
	ck_assert_str_eq(c.nick, "Alice");
	ck_assert_int_eq(c.admin, 1);
	token_claims_clear(&c);

	ck_assert_int_eq(token_verify(SECRET, KAT_FOREIGN, NOW + 10, &c, &why), 0);
	ck_assert_str_eq(c.sub, "u/2 x");
	ck_assert_str_eq(c.room, "r-42");
	ck_assert_str_eq(c.nick, "张三");
	ck_assert_int_eq(c.admin, 0);
	ck_assert_int_eq(c.exp, 1764369600);
	ck_assert_int_eq(c.iat, 1764366000);
	token_claims_clear(&c);
	ck_assert_str_eq(verify_at("chatd-test-secret2", KAT_FOREIGN, NOW), "bad_signature");
	ck_assert_str_eq(verify_at(SECRET, KAT_FOREIGN, 1764369600), "expired");
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("token");
	TCase *tc = tcase_create("base64url");

	tcase_add_test(tc, test_b64_vectors);
	tcase_add_test(tc, test_b64_rejects);
	suite_add_tcase(s, tc);

	tc = tcase_create("jwt");
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_issue_refuses);
	tcase_add_test(tc, test_expired);
	tcase_add_test(tc, test_wrong_secret);
	tcase_add_test(tc, test_tampered);
	tcase_add_test(tc, test_alg);
	tcase_add_test(tc, test_malformed_shape);
	tcase_add_test(tc, test_malformed_claims);
	tcase_add_test(tc, test_not_yet_valid);
	tcase_add_test(tc, test_overlong);
	tcase_add_test(tc, test_known_answer);
	suite_add_tcase(s, tc);
	return s;
}
