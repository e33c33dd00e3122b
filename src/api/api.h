/*
 * chat-api's request model, shared by the front ends (FastCGI, SCGI), the
 * dispatcher and the handlers. Front ends fill a struct api_request from
 * their protocol and write out the struct api_response; nothing below the
 * front ends knows which protocol carried the request.
 */
#ifndef CHAT_API_H
#define CHAT_API_H

#include <stddef.h>

#include <cjson/cJSON.h>

struct config;
struct db;

/* A request as the web server handed it over. Strings are borrowed. */
struct api_request {
	const char *method; /* REQUEST_METHOD */
	const char *uri; /* REQUEST_URI: raw path and query, the same on every server */
	const char *content_type; /* CONTENT_TYPE or NULL */
	const char *api_key; /* HTTP_X_API_KEY or NULL */
	const char *authorization; /* HTTP_AUTHORIZATION or NULL ("Bearer <key>" works too) */
	long long content_length; /* CONTENT_LENGTH, -1 if absent */
	/* Reads up to len body bytes: >0 read, 0 end, -1 error. */
	long (*read_body)(void *io, char *buf, size_t len);
	void *io;
};

/* A response: status, an optional Allow header, and a body (owned), JSON unless said otherwise. */
struct api_response {
	int status;
	const char *content_type; /* static; NULL: application/json */
	char allow[48]; /* Allow header value for 405, else empty */
	int retry_after; /* seconds for a Retry-After header, 0: none */
	int head_only; /* a HEAD request: the head as for GET, no body */
	char *body; /* heap, NUL-terminated JSON */
};

/* Per worker thread: one database connection and the shared settings. */
struct api_ctx {
	const struct config *cfg;
	struct db *db; /* owned by the worker thread */
};

/* Writes the CGI-style response head ("Status: ...\r\n...\r\n\r\n") into a
 * heap string; the body follows it unchanged. */
char *api_response_head(const struct api_response *resp);
/* What follows the head: the body, or nothing for HEAD. */
const char *api_response_body(const struct api_response *resp);
void api_response_clear(struct api_response *resp);

#endif
