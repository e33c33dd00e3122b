/*
 * The route table: every management route with its method, path pattern,
 * handler and flags, in one place (a unit test walks it).
 */
#ifndef CHAT_ROUTES_H
#define CHAT_ROUTES_H

#include <stddef.h>

#include "dispatch.h"

struct api_route {
	const char *method;
	const char *pattern; /* "/management/rooms/{room_id}"; {x} matches one segment */
	void (*handler)(struct api_call *call);
	int flags;
#define ROUTE_BODY 0x1 /* takes a JSON object body */
#define ROUTE_BODY_OPTIONAL 0x2 /* ... which may be absent */
#define ROUTE_PUBLIC 0x4 /* needs no API key: answers nothing worth hiding */
};

extern const struct api_route routes_table[];
extern const size_t routes_count;

/*
 * Finds the route for method and path. NULL if none: then *path_known says
 * whether the path exists under other methods, whose names are written to
 * allow (", "-separated) for the 405's Allow header.
 */
const struct api_route *routes_match(const char *method, const struct uri *u, const char **params,
    size_t *nparams, int *path_known, char *allow, size_t allow_len);

#endif
