/*
 * Standard Webhooks signing (https://www.standardwebhooks.com/): HMAC-SHA256
 * over "id.timestamp.body", base64, prefixed "v1,". Holds no state; never
 * logs the key or anything derived from it.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sign.h"
#include "xmalloc.h"

#define SIGN_PREFIX "whsec_"

int
sign_key_load(const char *secret, unsigned char **key, size_t *len, char **cause)
{
	const char *b64;
	unsigned char *out;
	size_t n, pad = 0;
	int got;

	*key = NULL;
	*len = 0;
	if (strncmp(secret, SIGN_PREFIX, strlen(SIGN_PREFIX)) != 0) {
		*len = strlen(secret);
		*key = (unsigned char *)xstrndup(secret, *len);
		return 0;
	}
	b64 = secret + strlen(SIGN_PREFIX);
	n = strlen(b64);
	/* EVP_DecodeBlock wants whole quads and counts padding as zero bytes. */
	if (n == 0 || n % 4 != 0 || n > 4096) {
		*cause = xasprintf("CALLBACK_SIGNING_SECRET: the part after whsec_ is not base64");
		return -1;
	}
	if (b64[n - 1] == '=')
		pad++;
	if (b64[n - 2] == '=')
		pad++;
	out = xmalloc(n / 4 * 3 + 1);
	got = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
	if (got < 0 || (size_t)got < pad || (size_t)got - pad == 0) {
		free(out);
		*cause = xasprintf("CALLBACK_SIGNING_SECRET: the part after whsec_ is not base64");
		return -1;
	}
	*key = out;
	*len = (size_t)got - pad;
	return 0;
}

char *
sign_header(const unsigned char *key, size_t klen, const char *id, long long timestamp,
    const char *body, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	char *prefix, *msg, *out;
	size_t plen;
	int n;

	prefix = xasprintf("%s.%lld.", id, timestamp);
	plen = strlen(prefix);
	msg = xmalloc(plen + len);
	memcpy(msg, prefix, plen);
	memcpy(msg + plen, body, len);
	free(prefix);
	if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, plen + len, mac,
		&mlen) == NULL) {
		free(msg);
		return NULL;
	}
	free(msg);
	out = xmalloc(3 + 4 * ((mlen + 2) / 3) + 1);
	memcpy(out, "v1,", 3);
	n = EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mlen);
	OPENSSL_cleanse(mac, sizeof mac);
	if (n < 0) {
		free(out);
		return NULL;
	}
	out[3 + n] = '\0';
	return out;
}

char *
sign_random_hex(size_t n)
{
	unsigned char buf[64];
	char *out;
	size_t i;
	ssize_t got;

	if (n > sizeof buf)
		n = sizeof buf;
	do
		got = getrandom(buf, n, 0);
	while (got < 0 && errno == EINTR);
	if (got < 0 || (size_t)got != n)
		return NULL;
	out = xmalloc(2 * n + 1);
	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", buf[i]);
	return out;
}
