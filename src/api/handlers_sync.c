/*
 * The seed's sync routes: the legacy sync body, sync requests, room info
 * and the two paginated history routes. History pages are addressed by
 * per-room sequence number in db.c, so a deep page costs what the first
 * one does.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "db.h"
#include "encode.h"
#include "handlers.h"
#include "jsonutil.h"
#include "xmalloc.h"

#define HISTORY_LIMIT_DEFAULT 100
#define HISTORY_LIMIT_MAX 1000
#define HISTORY_PAGE_MAX 1000000000000LL
#define HISTORY_TIME_MAX 253402300799LL /* 9999-12-31 */

void
handlers_sync_get(struct api_call *call)
{
	handlers_misc_rooms_reply(call, 0, 1, 1);
}

void
handlers_sync_rooms(struct api_call *call)
{
	handlers_misc_rooms_reply(call, 1, 0, 0);
}

void
handlers_sync_request(struct api_call *call)
{
	static const char *const keys[] = { NULL };
	int64_t id = 0;
	char *cause = NULL;
	struct jsonw w;

	if (call->body != NULL && json_check_keys(call->body, keys, &cause) != 0) {
		api_error(call, 400, "invalid_field", "%s", cause);
		free(cause);
		return;
	}
	if (db_sync_request(call->ctx->db, "manual", NULL, clock_wall_ms(), &id, &cause) != DB_OK) {
		api_internal_error(call, "db_sync_request", cause);
		return;
	}
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "status", "accepted");
	jsonw_kv_int(&w, "sync_request_id", id);
	jsonw_object_end(&w);
	api_reply(call, 202, &w);
}

/* Parses page/limit/from/to; answers 400 itself and returns -1 on bad input. */
static int
sync_page_query(struct api_call *call, struct db_page_query *q)
{
	long long page = 1, limit = HISTORY_LIMIT_DEFAULT, from = -1, to = -1;

	if (api_query_int(call, "page", 1, HISTORY_PAGE_MAX, &page) < 0 ||
	    api_query_int(call, "limit", 1, HISTORY_PAGE_MAX, &limit) < 0 ||
	    api_query_int(call, "from", 0, HISTORY_TIME_MAX, &from) < 0 ||
	    api_query_int(call, "to", 0, HISTORY_TIME_MAX, &to) < 0)
		return -1;
	if (from >= 0 && to >= 0 && from > to) {
		api_error(call, 400, "invalid_query", "from (%lld) is after to (%lld)", from, to);
		return -1;
	}
	q->room_id = call->params[0];
	q->page = page;
	q->limit = limit > HISTORY_LIMIT_MAX ? HISTORY_LIMIT_MAX : limit;
	q->from_s = from;
	q->to_s = to;
	return 0;
}

/* Writes the page's members (the row array follows under rows_key). */
static void
sync_page_head(struct jsonw *w, const struct db_page_query *q, const struct db_page_info *info)
{
	jsonw_kv_string(w, "room_id", q->room_id);
	jsonw_kv_int(w, "page", q->page);
	jsonw_kv_int(w, "limit", q->limit);
	jsonw_kv_int(w, "total", info->total);
	jsonw_kv_int(w, "total_pages", info->total == 0 ? 0 : (info->total - 1) / q->limit + 1);
	jsonw_kv_bool(w, "has_more", info->has_more);
	if (q->from_s >= 0)
		jsonw_kv_int(w, "from", q->from_s);
	else
		jsonw_kv_null(w, "from");
	if (q->to_s >= 0)
		jsonw_kv_int(w, "to", q->to_s);
	else
		jsonw_kv_null(w, "to");
}

static int
sync_message_each(const struct db_message *m, void *arg)
{
	encode_message(arg, m, ENCODE_HISTORY);
	return 0;
}

static int
sync_session_each(const struct db_session *s, void *arg)
{
	encode_session(arg, s, 0, ENCODE_HISTORY);
	return 0;
}

/*
 * One history page. The page header needs the totals, which only the query
 * knows, so rows are written into their own buffer first and spliced in.
 */
static void
sync_history(struct api_call *call, int sessions)
{
	struct db_page_query q;
	struct db_page_info info;
	struct jsonw rows, w;
	char *cause = NULL;
	int rc;

	if (sync_page_query(call, &q) != 0)
		return;
	jsonw_init(&rows);
	jsonw_array_begin(&rows);
	if (sessions)
		rc = db_sessions_page(call->ctx->db, &q, sync_session_each, &rows, &info, &cause);
	else
		rc = db_messages_page(call->ctx->db, &q, sync_message_each, &rows, &info, &cause);
	if (rc != DB_OK) {
		jsonw_clear(&rows);
		if (rc == DB_NOTFOUND) {
			free(cause);
			api_error(call, 404, "room_not_found", "no room with id %.64s", q.room_id);
		} else
			api_internal_error(
			    call, sessions ? "db_sessions_page" : "db_messages_page", cause);
		return;
	}
	jsonw_array_end(&rows);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	sync_page_head(&w, &q, &info);
	jsonw_key(&w, sessions ? "sessions" : "messages");
	jsonw_raw(&w, rows.buf, rows.len);
	jsonw_object_end(&w);
	jsonw_clear(&rows);
	api_reply(call, 200, &w);
}

void
handlers_sync_chat_history(struct api_call *call)
{
	sync_history(call, 0);
}

void
handlers_sync_session_history(struct api_call *call)
{
	sync_history(call, 1);
}
