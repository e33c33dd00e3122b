/*
 * Standard Webhooks signatures for chat-sync: the key from
 * CALLBACK_SIGNING_SECRET and the webhook-signature header value. Pure
 * computation over libcrypto; no I/O, no logging (the key is secret).
 */
#ifndef CHAT_SYNC_SIGN_H
#define CHAT_SYNC_SIGN_H

#include <stddef.h>

/*
 * Turns the configured secret into key bytes (heap, caller frees): a
 * secret starting with "whsec_" is the base64 of the key (as Standard
 * Webhooks libraries expect), anything else is used as raw bytes. -1 with
 * *cause when the whsec_ form is not valid base64 or empty.
 */
int sign_key_load(const char *secret, unsigned char **key, size_t *len, char **cause);

/*
 * "v1,<base64 HMAC-SHA256 of id.timestamp.body>" (heap, caller frees), or
 * NULL if libcrypto fails.
 */
char *sign_header(const unsigned char *key, size_t klen, const char *id, long long timestamp,
    const char *body, size_t len);

/* n random bytes as 2n lowercase hex digits (heap); NULL if the kernel fails. */
char *sign_random_hex(size_t n);

#endif
