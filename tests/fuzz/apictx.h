/*
 * The chat-api fixture shared by the REST and SCGI fuzz targets: settings,
 * and a database in a private temporary directory (removed at exit) that
 * holds one seeded room with history, a session and a ban, so requests
 * reach the handlers' found paths. chatd is absent: CONTROL_SOCKET names
 * a path that does not exist, so every control call fails at connect()
 * at once and handlers answer as they do without chatd.
 */
#ifndef CHAT_FUZZ_APICTX_H
#define CHAT_FUZZ_APICTX_H

#include "api.h"

/* The seeded room and the key the settings expect in X-Api-Key. */
#define FUZZ_ROOM "00000000-0000-4000-8000-000000000001"
#define FUZZ_API_KEY "k"

/* Returns the fixture, created on first use. */
struct api_ctx *fuzz_api_ctx(void);

/*
 * Called at the start of each input: the database is recreated every few
 * hundred inputs, so it stays small and fast whatever the fuzzer posts
 * (and never between the requests of one input).
 */
void fuzz_api_next_input(void);

/*
 * Dispatches req and checks what any request must get back: a known
 * status (never 500 on a healthy database), a UTF-8 JSON object body, the
 * error shape on errors and an Allow header exactly on 405.
 */
void fuzz_api_call(const struct api_request *req);

/* A body reader over memory, handing out at most chunk bytes a call. */
struct fuzz_body {
	const char *data;
	size_t len, off, chunk;
};
long fuzz_body_read(void *io, char *buf, size_t len);

#endif
