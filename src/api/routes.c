/*
 * The route table and its matcher. Adding a route means adding one line
 * here and a handler; the dispatcher does every generic check.
 */
#include "autoconf.h"

#include <string.h>

#include "handlers.h"
#include "routes.h"

const struct api_route routes_table[] = {
	{ "POST", "/management/rooms", handlers_rooms_create, ROUTE_BODY },
	{ "GET", "/management/rooms", handlers_rooms_list, 0 },
	{ "GET", "/management/rooms/{room_id}", handlers_rooms_get, 0 },
	{ "DELETE", "/management/rooms/{room_id}", handlers_rooms_close, 0 },
	{ "POST", "/management/rooms/{room_id}/bans", handlers_rooms_ban, ROUTE_BODY },
	{ "GET", "/management/rooms/{room_id}/bans", handlers_rooms_bans, 0 },
	{ "DELETE", "/management/rooms/{room_id}/bans/{user_id}", handlers_rooms_unban, 0 },
	{ "POST", "/management/rooms/{room_id}/events", handlers_rooms_event, ROUTE_BODY },
	{ "POST", "/management/rooms/{room_id}/tokens", handlers_tokens_create, ROUTE_BODY },
	{ "GET", "/management/health", handlers_misc_health, 0 },
	{ "GET", "/management/health/live", handlers_misc_live, ROUTE_PUBLIC },
	{ "GET", "/management/metrics", handlers_metrics, 0 },
	{ "GET", "/management/sync", handlers_sync_get, 0 },
	{ "POST", "/management/sync", handlers_sync_request, ROUTE_BODY | ROUTE_BODY_OPTIONAL },
	{ "GET", "/management/sync/rooms", handlers_sync_rooms, 0 },
	{ "GET", "/management/sync/chat-history/{room_id}", handlers_sync_chat_history, 0 },
	{ "GET", "/management/sync/session-history/{room_id}", handlers_sync_session_history, 0 },
	{ "GET", "/management/callbacks/dead-letters", handlers_callbacks_dead_letters, 0 },
	{ "POST", "/management/callbacks/dead-letters/replay", handlers_callbacks_replay_all,
	    ROUTE_BODY | ROUTE_BODY_OPTIONAL },
	{ "POST", "/management/callbacks/dead-letters/{id}/replay", handlers_callbacks_replay,
	    ROUTE_BODY | ROUTE_BODY_OPTIONAL },
	{ "DELETE", "/management/callbacks/dead-letters/{id}", handlers_callbacks_discard, 0 },
};
const size_t routes_count = sizeof routes_table / sizeof routes_table[0];

/* Matches a pattern against decoded segments, collecting placeholders. */
static int
routes_match_path(const char *pattern, const struct uri *u, const char **params, size_t *nparams)
{
	const char *p = pattern + 1;
	size_t i = 0;

	*nparams = 0;
	while (*p != '\0') {
		size_t len = strcspn(p, "/");

		if (i == u->nsegs)
			return 0;
		if (p[0] == '{') {
			if (u->segs[i][0] == '\0' || *nparams == API_MAX_PARAMS)
				return 0;
			params[(*nparams)++] = u->segs[i];
		} else if (strlen(u->segs[i]) != len || strncmp(u->segs[i], p, len) != 0)
			return 0;
		i++;
		p += len;
		if (*p == '/')
			p++;
	}
	return i == u->nsegs;
}

const struct api_route *
routes_match(const char *method, const struct uri *u, const char **params, size_t *nparams,
    int *path_known, char *allow, size_t allow_len)
{
	const char *scratch[API_MAX_PARAMS];
	size_t nscratch;

	*path_known = 0;
	allow[0] = '\0';
	for (size_t i = 0; i < routes_count; i++) {
		const struct api_route *r = &routes_table[i];

		if (!routes_match_path(r->pattern, u, scratch, &nscratch))
			continue;
		if (strcmp(r->method, method) == 0) {
			memcpy(params, scratch, sizeof scratch);
			*nparams = nscratch;
			return r;
		}
		if (*path_known)
			strncat(allow, ", ", allow_len - strlen(allow) - 1);
		strncat(allow, r->method, allow_len - strlen(allow) - 1);
		if (strcmp(r->method, "GET") == 0) /* the dispatcher answers HEAD as GET */
			strncat(allow, ", HEAD", allow_len - strlen(allow) - 1);
		*path_known = 1;
	}
	return NULL;
}
