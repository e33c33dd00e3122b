/*
 * SCGI request parsing (see scgi.h). No sockets, no global state.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "scgi.h"
#include "xmalloc.h"

int
scgi_read_headers(scgi_read_fn rd, void *io, char **hdr, size_t *hdr_len, const char **why)
{
	char comma[1], *buf;
	size_t len = 0, want = 0, got;
	long n;

	*hdr = NULL;
	*hdr_len = 0;
	/* the length prefix, one byte at a time: at most 6 digits */
	for (;;) {
		char ch;
		if (rd(io, &ch, 1) != 1) {
			*why = "connection closed in the header length";
			return -1;
		}
		if (ch == ':')
			break;
		if (ch < '0' || ch > '9' || ++len > 6) {
			*why = "bad netstring length";
			return -1;
		}
		want = want * 10 + (size_t)(ch - '0');
	}
	if (len == 0 || want == 0 || want > SCGI_HEADERS_MAX) {
		*why = "header block empty or too large";
		return -1;
	}
	buf = xmalloc(want + 1);
	for (got = 0; got < want; got += (size_t)n) {
		if ((n = rd(io, buf + got, want - got)) <= 0) {
			free(buf);
			*why = "connection closed in the headers";
			return -1;
		}
	}
	if (rd(io, comma, 1) != 1 || comma[0] != ',') {
		free(buf);
		*why = "netstring not terminated by ','";
		return -1;
	}
	buf[want] = '\0';
	*hdr = buf;
	*hdr_len = want;
	return 0;
}

const char *
scgi_param(const char *hdr, size_t hdr_len, const char *key)
{
	const char *p = hdr, *end = hdr + hdr_len;

	while (p < end) {
		size_t klen = strnlen(p, (size_t)(end - p));
		const char *v = p + klen + 1;
		if (v >= end)
			return NULL;
		if (strcmp(p, key) == 0)
			return v;
		p = v + strnlen(v, (size_t)(end - v)) + 1;
	}
	return NULL;
}

void
scgi_request_fill(const char *hdr, size_t hdr_len, struct api_request *req)
{
	const char *cl;

	req->method = scgi_param(hdr, hdr_len, "REQUEST_METHOD");
	if (req->method == NULL)
		req->method = "GET";
	req->uri = scgi_param(hdr, hdr_len, "REQUEST_URI");
	if (req->uri == NULL)
		req->uri = "/";
	req->content_type = scgi_param(hdr, hdr_len, "CONTENT_TYPE");
	req->api_key = scgi_param(hdr, hdr_len, "HTTP_X_API_KEY");
	req->authorization = scgi_param(hdr, hdr_len, "HTTP_AUTHORIZATION");
	cl = scgi_param(hdr, hdr_len, "CONTENT_LENGTH");
	req->content_length = cl != NULL && *cl != '\0' ? strtoll(cl, NULL, 10) : 0;
}
