/*
 * Fuzz target for what a control-socket peer can send: bytes arrive in
 * chunks through ctl_linebuf, and every line goes through
 * ctl_request_decode (chatd's side) and ctl_reply_decode (the client's
 * side). Accepted requests must re-encode to a stable line; refusals must
 * still yield a valid error reply. No sockets, no global state.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fuzz.h"
#include "xmalloc.h"

/* Small, so short inputs reach the limit paths. */
#define FUZZ_LINE_MAX 4096

/* Re-encodes a decoded request; the same line must come out every time. */
static char *
fuzz_reencode(enum ctl_type type, unsigned long id, const cJSON *args)
{
	char *line = ctl_request_encode(type, id, args);
	size_t len = strlen(line);

	FUZZ_CHECK(len > 0 && line[len - 1] == '\n');
	FUZZ_CHECK(strchr(line, '\n') == line + len - 1);
	line[len - 1] = '\0';
	return line;
}

static void
fuzz_request(const char *line)
{
	cJSON *root, *root2, *check;
	const cJSON *args, *args2;
	enum ctl_type type, type2;
	unsigned long id, id2;
	const char *code, *message;
	char *once, *twice, *reply;

	if (ctl_request_decode(line, &root, &type, &id, &args, &code, &message) != 0) {
		FUZZ_CHECK(root == NULL && args == NULL && type == CTL_UNKNOWN);
		FUZZ_CHECK(code != NULL && message != NULL);
		/* chatd answers a refusal with this; it must be a valid line. */
		reply = ctl_reply_encode_error(id, code, message);
		check = cJSON_Parse(reply);
		FUZZ_CHECK(check != NULL);
		cJSON_Delete(check);
		free(reply);
		return;
	}
	FUZZ_CHECK(root != NULL);
	FUZZ_CHECK(type > CTL_UNKNOWN && type < CTL_TYPE_MAX);
	FUZZ_CHECK(args == NULL || cJSON_IsObject(args));

	/*
	 * cJSON normalises on the way through (1e400 prints as null, long
	 * doubles lose digits), so compare the second trip with the first.
	 */
	once = fuzz_reencode(type, id, args);
	FUZZ_CHECK(ctl_request_decode(once, &root2, &type2, &id2, &args2, &code, &message) == 0);
	FUZZ_CHECK(type2 == type && id2 == id);
	FUZZ_CHECK((args == NULL) == (args2 == NULL));
	twice = fuzz_reencode(type2, id2, args2);
	FUZZ_CHECK(strcmp(once, twice) == 0);

	reply = ctl_reply_encode_ok(id, args);
	check = cJSON_Parse(reply);
	FUZZ_CHECK(check != NULL);
	cJSON_Delete(check);
	free(reply);
	free(twice);
	free(once);
	cJSON_Delete(root2);
	cJSON_Delete(root);
}

static void
fuzz_reply(const char *line)
{
	cJSON *result = NULL;
	char *code = NULL, *cause = NULL;
	int rc;

	rc = ctl_reply_decode(line, 1, &result, &code, &cause);
	FUZZ_CHECK(rc == CTL_OK || rc == CTL_ERR_REMOTE || rc == CTL_ERR_UNAVAILABLE);
	FUZZ_CHECK((rc == CTL_OK) == (result != NULL));
	FUZZ_CHECK((rc == CTL_ERR_REMOTE) == (code != NULL));
	FUZZ_CHECK((rc == CTL_OK) == (cause == NULL));
	FUZZ_CHECK(result == NULL || cJSON_IsObject(result));
	cJSON_Delete(result);
	free(code);
	free(cause);
}

static int
fuzz_line(char *line, size_t len, void *arg)
{
	int *lines = arg;

	FUZZ_CHECK(strlen(line) == len);
	FUZZ_CHECK(len < FUZZ_LINE_MAX);
	fuzz_request(line);
	fuzz_reply(line);
	(*lines)++;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_linebuf lb;
	size_t chunk, off, n;
	int lines = 0;
	char *text;

	if (size == 0)
		return 0;
	/* The first byte picks the chunk size, as a peer's writes would. */
	chunk = (size_t)data[0] % 64 + 1;
	data++;
	size--;

	ctl_linebuf_init(&lb, FUZZ_LINE_MAX);
	for (off = 0; off < size; off += n) {
		n = size - off < chunk ? size - off : chunk;
		if (ctl_linebuf_feed(&lb, (const char *)data + off, n, fuzz_line, &lines) != 0)
			break;
		FUZZ_CHECK(lb.len < FUZZ_LINE_MAX && lb.cap <= FUZZ_LINE_MAX);
	}
	ctl_linebuf_clear(&lb);

	/* The whole input as one line too, past the line buffer's limit. */
	if (memchr(data, '\0', size) == NULL) {
		text = xstrndup((const char *)data, size);
		fuzz_request(text);
		fuzz_reply(text);
		free(text);
	}
	return 0;
}
