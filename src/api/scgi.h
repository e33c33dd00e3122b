/*
 * SCGI request parsing, apart from the sockets so it can be tested and
 * fuzzed on memory: the netstring header block "<len>:<pairs>," and the
 * mapping of its NUL-separated pairs onto a struct api_request. The body
 * follows the block in the stream and is read by the front end.
 */
#ifndef CHAT_SCGI_H
#define CHAT_SCGI_H

#include <stddef.h>

#include "api.h"

/* Largest header block accepted from the web server. */
#define SCGI_HEADERS_MAX (64 * 1024)

/* Reads up to len bytes: >0 read, 0 end of stream, -1 error (as read(2)). */
typedef long (*scgi_read_fn)(void *io, char *buf, size_t len);

/*
 * Reads "<len>:<headers>," through rd, never past the ',' (the body stays
 * in the stream). On success *hdr (heap, NUL-terminated after hdr_len
 * bytes) holds the block; -1 with a static reason in *why and *hdr NULL.
 */
int scgi_read_headers(scgi_read_fn rd, void *io, char **hdr, size_t *hdr_len, const char **why);

/* The value of key in the block, or NULL; points into hdr. */
const char *scgi_param(const char *hdr, size_t hdr_len, const char *key);

/*
 * Fills req's method (GET if absent), uri ("/" if absent), content type,
 * API key and content length (0 if absent) from the block; strings point
 * into hdr. read_body and io are left to the caller.
 */
void scgi_request_fill(const char *hdr, size_t hdr_len, struct api_request *req);

#endif
