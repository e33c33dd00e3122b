/*
 * Dead letters of chat-sync (docs/callbacks.md): list them, mark them for
 * replay, discard them. chat-api only records: chat-sync, which holds each
 * target's lock, resends a marked letter itself, so a target never has two
 * senders. Every write is one statement of db.c.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "db.h"
#include "encode.h"
#include "handlers.h"
#include "jsonutil.h"
#include "xmalloc.h"

#define DEAD_LIMIT_DEFAULT 100
#define DEAD_LIMIT_MAX 1000

/* ?target=, checked against chat-sync's target names; -1 after a 400. */
static int
callbacks_target(struct api_call *call, const char **target)
{
	*target = uri_query_get(call->uri, "target");
	if (*target != NULL && !handlers_misc_target_known(*target)) {
		api_error(call, 400, "invalid_query",
		    "target must be room_events, chat_history, session_history, periodic_sync or "
		    "data");
		return -1;
	}
	return 0;
}

/* A replay takes no fields: an empty object body is allowed, as POST /management/sync does. */
static int
callbacks_no_fields(struct api_call *call)
{
	static const char *const keys[] = { NULL };
	char *cause = NULL;

	if (call->body != NULL && json_check_keys(call->body, keys, &cause) != 0) {
		api_error(call, 400, "invalid_field", "%s", cause);
		free(cause);
		return -1;
	}
	return 0;
}

/* The {id} placeholder; 0 after a 404 when it names no letter. */
static int64_t
callbacks_id(struct api_call *call)
{
	const char *v = call->params[0];
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0' || v[0] < '1' || v[0] > '9' || n <= 0) {
		api_error(call, 404, "dead_letter_not_found", "no dead letter with id %.32s", v);
		return 0;
	}
	return n;
}

struct callbacks_page {
	struct jsonw *w;
	int64_t n, limit;
	int more;
};

static int
callbacks_each(const struct db_dead_letter *d, void *arg)
{
	struct callbacks_page *p = arg;

	if (p->n == p->limit) {
		p->more = 1; /* the one row asked past the page */
		return 1;
	}
	encode_dead_letter(p->w, d);
	p->n++;
	return 0;
}

void
handlers_callbacks_dead_letters(struct api_call *call)
{
	struct callbacks_page p = { 0 };
	struct jsonw rows, w;
	const char *target;
	long long after = 0, limit = DEAD_LIMIT_DEFAULT;
	char *cause = NULL;

	if (callbacks_target(call, &target) != 0 ||
	    api_query_int(call, "after", 0, INT64_MAX, &after) < 0 ||
	    api_query_int(call, "limit", 1, DEAD_LIMIT_MAX, &limit) < 0)
		return;
	jsonw_init(&rows);
	jsonw_array_begin(&rows);
	p.w = &rows;
	p.limit = limit;
	if (db_dead_letter_list(
		call->ctx->db, target, after, limit + 1, callbacks_each, &p, &cause) != DB_OK) {
		jsonw_clear(&rows);
		api_internal_error(call, "db_dead_letter_list", cause);
		return;
	}
	jsonw_array_end(&rows);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key(&w, "dead_letters");
	jsonw_raw(&w, rows.buf, rows.len);
	jsonw_kv_int(&w, "count", p.n);
	jsonw_kv_bool(&w, "has_more", p.more);
	jsonw_object_end(&w);
	jsonw_clear(&rows);
	api_reply(call, 200, &w);
}

void
handlers_callbacks_replay(struct api_call *call)
{
	struct jsonw w;
	int64_t id, now = clock_wall_ms();
	char *cause = NULL;
	int rc;

	if (callbacks_no_fields(call) != 0 || (id = callbacks_id(call)) == 0)
		return;
	rc = db_dead_letter_replay(call->ctx->db, id, NULL, now, NULL, &cause);
	if (rc == DB_NOTFOUND) {
		api_error(call, 404, "dead_letter_not_found", "no dead letter with id %lld",
		    (long long)id);
		return;
	}
	if (rc != DB_OK) {
		api_internal_error(call, "db_dead_letter_replay", cause);
		return;
	}
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "status", "accepted");
	jsonw_kv_int(&w, "id", id);
	jsonw_object_end(&w);
	api_reply(call, 202, &w);
}

void
handlers_callbacks_replay_all(struct api_call *call)
{
	struct jsonw w;
	const char *target;
	int64_t marked = 0;
	char *cause = NULL;

	if (callbacks_no_fields(call) != 0 || callbacks_target(call, &target) != 0)
		return;
	if (db_dead_letter_replay(call->ctx->db, 0, target, clock_wall_ms(), &marked, &cause) !=
	    DB_OK) {
		api_internal_error(call, "db_dead_letter_replay", cause);
		return;
	}
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "status", "accepted");
	jsonw_kv_int(&w, "marked", marked);
	jsonw_object_end(&w);
	api_reply(call, 202, &w);
}

void
handlers_callbacks_discard(struct api_call *call)
{
	struct jsonw w;
	int64_t id;
	char *cause = NULL;
	int rc;

	if ((id = callbacks_id(call)) == 0)
		return;
	rc = db_dead_letter_discard(call->ctx->db, id, &cause);
	if (rc == DB_NOTFOUND) {
		api_error(call, 404, "dead_letter_not_found", "no dead letter with id %lld",
		    (long long)id);
		return;
	}
	if (rc != DB_OK) {
		api_internal_error(call, "db_dead_letter_discard", cause);
		return;
	}
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "status", "discarded");
	jsonw_kv_int(&w, "id", id);
	jsonw_object_end(&w);
	api_reply(call, 200, &w);
}
