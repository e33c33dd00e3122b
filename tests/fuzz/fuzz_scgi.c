/*
 * Fuzz target for chat-api's SCGI front end without a socket: the input is
 * the byte stream a web server sends ("<len>:<NUL-separated pairs>," then
 * the body). scgi_read_headers() reads the netstring as the front end
 * does, scgi_request_fill() maps the pairs, and the request goes through
 * the real dispatcher and handlers (apictx.h), the body read from what
 * follows the netstring, bounded by CONTENT_LENGTH as on the socket.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "apictx.h"
#include "fuzz.h"
#include "scgi.h"

struct fuzz_stream {
	const uint8_t *data;
	size_t size, off;
	long long body_left;
};

/* The socket: hands out what is left, a few bytes at a time as a peer may. */
static long
fuzz_stream_read(void *io, char *buf, size_t len)
{
	struct fuzz_stream *s = io;
	size_t n = s->size - s->off;

	if (n > len)
		n = len;
	if (n > 1000)
		n = 1000;
	memcpy(buf, s->data + s->off, n);
	s->off += n;
	return (long)n;
}

/* The front end's body reader: no further than CONTENT_LENGTH, short is an error. */
static long
fuzz_body_left_read(void *io, char *buf, size_t len)
{
	struct fuzz_stream *s = io;
	long n;

	if (s->body_left <= 0)
		return 0;
	if ((long long)len > s->body_left)
		len = (size_t)s->body_left;
	if ((n = fuzz_stream_read(s, buf, len)) <= 0)
		return -1;
	s->body_left -= n;
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_stream s = { data, size, 0, 0 };
	struct api_request req;
	const char *why = NULL;
	char *hdr;
	size_t hdr_len;

	fuzz_api_next_input();
	if (scgi_read_headers(fuzz_stream_read, &s, &hdr, &hdr_len, &why) != 0) {
		FUZZ_CHECK(hdr == NULL && why != NULL);
		return 0;
	}
	FUZZ_CHECK(hdr_len > 0 && hdr_len <= SCGI_HEADERS_MAX && hdr[hdr_len] == '\0');
	/* Nothing past the ',' is taken: the body must still be in the stream. */
	FUZZ_CHECK(
	    s.off >= hdr_len + 3 && data[s.off - 1] == ',' && data[s.off - hdr_len - 2] == ':');
	memset(&req, 0, sizeof req);
	scgi_request_fill(hdr, hdr_len, &req);
	FUZZ_CHECK(req.method != NULL && req.uri != NULL);
	FUZZ_CHECK(req.content_length == 0 || scgi_param(hdr, hdr_len, "CONTENT_LENGTH") != NULL);
	s.body_left = req.content_length;
	req.read_body = fuzz_body_left_read;
	req.io = &s;
	fuzz_api_call(&req);
	free(hdr);
	return 0;
}
