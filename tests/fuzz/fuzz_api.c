/*
 * Fuzz target for chat-api's REST dispatcher and every handler behind it
 * (api_dispatch): method, URI with its query, the headers chat-api reads
 * and the body, against a real SQLite database (apictx.h). An input is
 * one or more HTTP-like requests separated by a line "%%":
 *
 *   POST /management/rooms/ROOM/bans?x=1
 *   X-Api-Key: k
 *   Content-Type: application/json
 *   Content-Length: 17            (absent: -1, as FastCGI gives it)
 *   X-Fuzz-Chunk: 3               (body read at most 3 bytes a call)
 *
 *   {"user_id":"u9"}
 *
 * Header names are matched without case; a header line without ": " is
 * ignored. Lines end in "\n" or "\r\n".
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "apictx.h"
#include "fuzz.h"
#include "xmalloc.h"

/* Cuts the line at *p (NUL-terminated in place) and advances *p past it. */
static char *
fuzz_line(char **p, char *end)
{
	char *line = *p, *nl = memchr(line, '\n', (size_t)(end - line));

	if (nl == NULL) {
		*p = end;
		return line;
	}
	*nl = '\0';
	if (nl > line && nl[-1] == '\r')
		nl[-1] = '\0';
	*p = nl + 1;
	return line;
}

/* One request from text[0..len) (text[len] is a NUL the caller owns). */
static void
fuzz_request(char *text, size_t len)
{
	struct api_request req;
	struct fuzz_body body;
	char *p = text, *end = text + len, *line, *sp, *v;

	memset(&req, 0, sizeof req);
	memset(&body, 0, sizeof body);
	req.content_length = -1;
	line = fuzz_line(&p, end);
	sp = strchr(line, ' ');
	if (sp != NULL) {
		*sp = '\0';
		req.uri = sp + 1;
	} else
		req.uri = "";
	req.method = line;
	while (p < end) {
		line = fuzz_line(&p, end);
		if (*line == '\0')
			break;
		if ((v = strstr(line, ": ")) == NULL)
			continue;
		*v = '\0';
		v += 2;
		if (strcasecmp(line, "X-Api-Key") == 0)
			req.api_key = v;
		else if (strcasecmp(line, "Content-Type") == 0)
			req.content_type = v;
		else if (strcasecmp(line, "Content-Length") == 0)
			req.content_length = strtoll(v, NULL, 10);
		else if (strcasecmp(line, "X-Fuzz-Chunk") == 0)
			body.chunk = (size_t)strtoul(v, NULL, 10);
	}
	body.data = p;
	body.len = (size_t)(end - p);
	req.read_body = fuzz_body_read;
	req.io = &body;
	fuzz_api_call(&req);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xmalloc(size + 1), *p, *end, *sep;

	fuzz_api_next_input();
	memcpy(text, data, size);
	text[size] = '\0';
	end = text + size;
	for (p = text; p <= end; p = sep + 4) {
		sep = memmem(p, (size_t)(end - p), "\n%%\n", 4);
		if (sep == NULL)
			sep = end;
		*sep = '\0';
		fuzz_request(p, (size_t)(sep - p));
		if (sep == end)
			break;
	}
	free(text);
	return 0;
}
