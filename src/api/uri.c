/*
 * REQUEST_URI parsing; see uri.h. The raw URI is the only routing input
 * that lighttpd, Apache (mod_proxy_fcgi) and nginx all pass the same way:
 * raw, still percent-encoded, query included (the split path variables
 * differ from one server to the next), so all decoding
 * happens here, once.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "jsonutil.h"
#include "uri.h"
#include "xmalloc.h"

static int
uri_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..len) into a new string; plus_space for query parts. */
static char *
uri_decode(const char *s, size_t len, int plus_space, const char **why)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi, lo;
			if (i + 2 >= len || (hi = uri_hex((unsigned char)s[i + 1])) < 0 ||
			    (lo = uri_hex((unsigned char)s[i + 2])) < 0) {
				*why = "bad percent escape";
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (plus_space && s[i] == '+')
			out[o++] = ' ';
		else
			out[o++] = s[i];
	}
	out[o] = '\0';
	if (memchr(out, '\0', o) != NULL || !utf8_valid(out, o)) {
		*why = "invalid UTF-8 or NUL in the URI";
		free(out);
		return NULL;
	}
	return out;
}

int
uri_parse(const char *raw, struct uri *u, const char **why)
{
	const char *q, *p, *end;
	size_t len = strlen(raw);

	memset(u, 0, sizeof *u);
	if (len > URI_MAX_LEN) {
		*why = "URI too long";
		return -1;
	}
	q = strchr(raw, '?');
	end = q != NULL ? q : raw + len;
	/* Fragments never reach a server, but be strict if one does. */
	if (memchr(raw, '#', (size_t)(end - raw)) != NULL) {
		*why = "unexpected '#' in the path";
		return -1;
	}
	if (*raw != '/') {
		*why = "path must start with /";
		return -1;
	}
	p = raw + 1;
	if (end > p && end[-1] == '/')
		end--;
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *seg_end = slash != NULL ? slash : end;

		if (u->nsegs == URI_MAX_SEGMENTS) {
			*why = "too many path segments";
			return -1;
		}
		if ((u->segs[u->nsegs] = uri_decode(p, (size_t)(seg_end - p), 0, why)) == NULL)
			return -1;
		u->nsegs++;
		if (slash == NULL)
			break;
		p = slash + 1;
		if (p == end) {
			/* "a//" after trimming one slash: keep the empty segment */
			if (u->nsegs == URI_MAX_SEGMENTS) {
				*why = "too many path segments";
				return -1;
			}
			u->segs[u->nsegs++] = xstrdup("");
		}
	}
	if (q == NULL)
		return 0;
	for (p = q + 1; *p != '\0';) {
		size_t plen = strcspn(p, "&;");
		const char *eq = memchr(p, '=', plen);

		if (plen > 0) {
			size_t klen = eq != NULL ? (size_t)(eq - p) : plen;
			if (u->nparams == URI_MAX_PARAMS) {
				*why = "too many query parameters";
				return -1;
			}
			if ((u->keys[u->nparams] = uri_decode(p, klen, 1, why)) == NULL)
				return -1;
			u->values[u->nparams] =
			    eq != NULL ? uri_decode(eq + 1, plen - klen - 1, 1, why) : xstrdup("");
			if (u->values[u->nparams] == NULL) {
				free(u->keys[u->nparams]);
				u->keys[u->nparams] = NULL;
				return -1;
			}
			u->nparams++;
		}
		p += plen;
		if (*p != '\0')
			p++;
	}
	return 0;
}

void
uri_clear(struct uri *u)
{
	for (size_t i = 0; i < u->nsegs; i++)
		free(u->segs[i]);
	for (size_t i = 0; i < u->nparams; i++) {
		free(u->keys[i]);
		free(u->values[i]);
	}
	memset(u, 0, sizeof *u);
}

const char *
uri_query_get(const struct uri *u, const char *key)
{
	for (size_t i = u->nparams; i > 0; i--) {
		if (strcmp(u->keys[i - 1], key) == 0)
			return u->values[i - 1];
	}
	return NULL;
}

int
uri_parse_bool(const char *v)
{
	static const char *const yes[] = { "", "true", "1", "yes", "on" };
	static const char *const no[] = { "false", "0", "no", "off" };

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return 1;
	}
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		if (strcasecmp(v, no[i]) == 0)
			return 0;
	}
	return -1;
}
