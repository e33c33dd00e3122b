/*
 * Splits a raw REQUEST_URI into percent-decoded path segments and query
 * parameters. Decoding segment by segment keeps an encoded "/" (%2F) inside
 * its segment, so a user id may contain one.
 */
#ifndef CHAT_URI_H
#define CHAT_URI_H

#include <stddef.h>

#define URI_MAX_SEGMENTS 12
#define URI_MAX_PARAMS 32
#define URI_MAX_LEN 8192

struct uri {
	char *segs[URI_MAX_SEGMENTS];
	size_t nsegs;
	char *keys[URI_MAX_PARAMS];
	char *values[URI_MAX_PARAMS];
	size_t nparams;
};

/*
 * Parses raw ("/management/rooms/x?page=2"). A single trailing slash is
 * ignored. Returns 0, or -1 with a static reason in *why (bad percent
 * escape, invalid UTF-8 or NUL after decoding, too long, too many parts).
 * uri_clear() must be called in both cases.
 */
int uri_parse(const char *raw, struct uri *u, const char **why);
void uri_clear(struct uri *u);
/* The last value given for key, or NULL. */
const char *uri_query_get(const struct uri *u, const char *key);
/*
 * A boolean query value as people spell it: true/false, 1/0, yes/no,
 * on/off in any case, and an empty value (a bare "?flag") as true. 1 or 0;
 * -1 for anything else, which the caller refuses rather than guess.
 */
int uri_parse_bool(const char *v);

#endif
