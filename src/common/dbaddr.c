/*
 * Database addresses (dbaddr.h). The URI scanning here is only what
 * finding a password needs; libpq parses the address for real.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "dbaddr.h"
#include "xmalloc.h"

static const char *const dbaddr_pg_schemes[] = { "postgres://", "postgresql://" };

int
dbaddr_is_pg(const char *address)
{
	size_t i;

	if (address == NULL)
		return 0;
	for (i = 0; i < sizeof dbaddr_pg_schemes / sizeof dbaddr_pg_schemes[0]; i++)
		if (strncasecmp(address, dbaddr_pg_schemes[i], strlen(dbaddr_pg_schemes[i])) == 0)
			return 1;
	return 0;
}

/* Appends s[0..n) to the heap string *out. */
static void
dbaddr_append(char **out, const char *s, size_t n)
{
	char *t = xasprintf("%s%.*s", *out, (int)n, s);

	free(*out);
	*out = t;
}

/*
 * The authority (user:password@host:port) runs from after "://" to the
 * first '/', '?' or '#'; the user part ends at its last '@' (a password
 * may hold an unescaped '@' that libpq would refuse anyway).
 */
char *
dbaddr_display(const char *address)
{
	const char *auth, *end, *at, *colon, *q, *p, *amp;
	char *out;

	/* Any URI (a mistyped scheme too) may hold a password; a file path has none. */
	if (address == NULL || (auth = strstr(address, "://")) == NULL)
		return xstrdup(address != NULL ? address : "");
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	out = xstrdup("");
	at = NULL;
	for (p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (colon != NULL) {
		dbaddr_append(&out, address, (size_t)(colon + 1 - address));
		dbaddr_append(&out, "***", 3);
		p = at;
	} else
		p = address;
	/* Up to the options, then each option; password=... loses its value. */
	q = strchr(end, '?');
	if (q == NULL) {
		dbaddr_append(&out, p, strlen(p));
		return out;
	}
	dbaddr_append(&out, p, (size_t)(q + 1 - p));
	for (p = q + 1; *p != '\0'; p = *amp == '&' ? amp + 1 : amp) {
		amp = p + strcspn(p, "&#");
		if (strncasecmp(p, "password=", 9) == 0)
			dbaddr_append(&out, "password=***", 12);
		else
			dbaddr_append(&out, p, (size_t)(amp - p));
		if (*amp == '&')
			dbaddr_append(&out, "&", 1);
		else if (*amp == '#') {
			dbaddr_append(&out, amp, strlen(amp));
			break;
		}
	}
	return out;
}

int
dbaddr_check_pg(const char *address, char **cause)
{
	PQconninfoOption *opts;
	char *err = NULL, *shown;
	int has_password;

	if ((opts = PQconninfoParse(address, &err)) != NULL) {
		PQconninfoFree(opts);
		return 0;
	}
	/* libpq quotes the part it could not read, which may be the password. */
	shown = dbaddr_display(address);
	has_password = strcmp(shown, address) != 0;
	if (err == NULL)
		*cause = xasprintf("%s: out of memory reading it", shown);
	else if (has_password)
		*cause = xasprintf("%s: not a valid PostgreSQL URI (libpq's details left out: "
				   "they may quote the password)",
		    shown);
	else {
		size_t len = strlen(err);

		while (len > 0 && (err[len - 1] == '\n' || err[len - 1] == ' '))
			len--;
		*cause = xasprintf("%s: not a valid PostgreSQL URI: %.*s", shown, (int)len, err);
	}
	PQfreemem(err);
	free(shown);
	return -1;
}
