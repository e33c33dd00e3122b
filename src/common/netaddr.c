/*
 * Trusted-proxy lists and the X-Forwarded-For walk (see netaddr.h).
 * Pure string functions: must not touch sockets or global state.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"
#include "xmalloc.h"

/* ::ffff:0:0/96, the prefix of IPv4-mapped IPv6 addresses. */
static const unsigned char netaddr_v4_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int
netaddr_parse(const char *s, unsigned char out[16])
{
	struct in_addr v4;

	if (inet_pton(AF_INET, s, &v4) == 1) {
		memcpy(out, netaddr_v4_prefix, 12);
		memcpy(out + 12, &v4, 4);
		return 0;
	}
	return inet_pton(AF_INET6, s, out) == 1 ? 0 : -1;
}

static int
netaddr_is_v4(const unsigned char a[16])
{
	return memcmp(a, netaddr_v4_prefix, 12) == 0;
}

/* One entry "ADDR" or "ADDR/BITS" (len bytes at s) into *r. */
static int
netaddr_range_parse(const char *s, size_t len, struct netaddr_range *r)
{
	char text[NETADDR_TEXT_MAX], *slash, *end;
	unsigned max;
	long bits;

	if (len == 0 || len >= sizeof text)
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	if ((slash = strchr(text, '/')) != NULL)
		*slash = '\0';
	if (netaddr_parse(text, r->addr) != 0)
		return -1;
	/* A prefix counts bits of the address as written: 0-32 for IPv4. */
	max = strchr(text, ':') == NULL ? 32 : 128;
	r->prefix = 128;
	if (slash == NULL)
		return 0;
	if (slash[1] < '0' || slash[1] > '9')
		return -1;
	errno = 0;
	bits = strtol(slash + 1, &end, 10);
	if (errno != 0 || *end != '\0' || bits < 0 || bits > (long)max)
		return -1;
	r->prefix = (unsigned)bits + (max == 32 ? 96 : 0);
	return 0;
}

static int
netaddr_range_match(const struct netaddr_range *r, const unsigned char a[16])
{
	unsigned whole = r->prefix / 8, rest = r->prefix % 8;
	unsigned char mask;

	if (memcmp(r->addr, a, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (r->addr[whole] & mask) == (a[whole] & mask);
}

static int
netaddr_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int
netaddr_list_parse(const char *spec, struct netaddr_list *out, char **cause)
{
	const char *p = spec, *s, *e;

	out->v = NULL;
	out->n = 0;
	if (spec[strspn(spec, " \t")] == '\0')
		return 0; /* no entry at all: nothing is trusted */
	for (;;) {
		e = p + strcspn(p, ",");
		s = p;
		while (s < e && netaddr_is_blank(*s))
			s++;
		while (e > s && netaddr_is_blank(e[-1]))
			e--;
		if (s == e) {
			*cause = xstrdup("empty entry between commas");
			goto fail;
		}
		out->v = xreallocarray(out->v, out->n + 1, sizeof *out->v);
		if (netaddr_range_parse(s, (size_t)(e - s), &out->v[out->n]) != 0) {
			*cause = xasprintf(
			    "%.*s: not an address or ADDRESS/BITS range", (int)(e - s), s);
			goto fail;
		}
		out->n++;
		p += strcspn(p, ",");
		if (*p == '\0')
			return 0;
		p++;
	}
fail:
	netaddr_list_clear(out);
	return -1;
}

void
netaddr_list_clear(struct netaddr_list *list)
{
	free(list->v);
	list->v = NULL;
	list->n = 0;
}

static int
netaddr_list_match_bin(const struct netaddr_list *list, const unsigned char a[16])
{
	for (size_t i = 0; i < list->n; i++) {
		if (netaddr_range_match(&list->v[i], a))
			return 1;
	}
	return 0;
}

int
netaddr_list_match(const struct netaddr_list *list, const char *addr)
{
	unsigned char a[16];

	return netaddr_parse(addr, a) == 0 && netaddr_list_match_bin(list, a);
}

/* The address in canonical text (IPv4-mapped as dotted IPv4). */
static int
netaddr_format(const unsigned char a[16], char *out, size_t len)
{
	if (netaddr_is_v4(a))
		return inet_ntop(AF_INET, a + 12, out, (socklen_t)len) != NULL ? 0 : -1;
	return inet_ntop(AF_INET6, a, out, (socklen_t)len) != NULL ? 0 : -1;
}

static int
netaddr_copy(const char *s, char *out, size_t len)
{
	size_t n = strlen(s);

	if (len == 0)
		return -1;
	if (n >= len) {
		memcpy(out, s, len - 1);
		out[len - 1] = '\0';
		return -1;
	}
	memcpy(out, s, n + 1);
	return 0;
}

int
netaddr_client(
    const struct netaddr_list *trusted, const char *peer, const char *xff, char *out, size_t len)
{
	unsigned char a[16], last[16];
	char text[NETADDR_TEXT_MAX];
	const char *end = xff + strlen(xff), *s, *e;
	int have = 0;

	while (end > xff) {
		/* The entry before end: from the previous comma to end. */
		s = end;
		while (s > xff && s[-1] != ',')
			s--;
		e = end;
		end = s > xff ? s - 1 : xff;
		while (s < e && netaddr_is_blank(*s))
			s++;
		while (e > s && netaddr_is_blank(e[-1]))
			e--;
		if (s == e)
			continue; /* "a, , b": nothing was said there */
		if ((size_t)(e - s) >= sizeof text)
			break;
		memcpy(text, s, (size_t)(e - s));
		text[e - s] = '\0';
		if (netaddr_parse(text, a) != 0)
			break;
		memcpy(last, a, sizeof last);
		have = 1;
		if (!netaddr_list_match_bin(trusted, a))
			break;
	}
	if (!have)
		return netaddr_copy(peer, out, len);
	if (netaddr_format(last, out, len) != 0)
		return netaddr_copy(peer, out, len);
	return 0;
}
