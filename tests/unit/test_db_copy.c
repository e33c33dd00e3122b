/*
 * Unit tests for db_copy.c: a SQLite database filled through db.h (rooms
 * with admins, bans, messages and sessions across rooms, closed rooms,
 * sync requests, cursors mid-way with a batch in flight, dead letters one
 * of them discarded, nodes, rate marks; more than a page of several
 * tables) copied into a fresh database of a throwaway PostgreSQL server
 * (pgtmp.c), then read back through db.h on both sides: the same rooms,
 * pages, feeds, backlogs, cursors and letters, and new rows after the
 * copy continue the ids and sequences. Also: a target that is not empty
 * is refused, a copy that fails half-way leaves nothing behind, and a
 * comparison reports what differs.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <sqlite3.h>

#include "check_main.h"
#include "db.h"
#include "db_backend.h"
#include "db_copy.h"
#include "pgtmp.h"
#include "testdir.h"
#include "xmalloc.h"

#define T0 1700000000000LL /* a Unix time in ms for fixtures */
#define NOW (T0 + 3600000) /* "now" for bans and rate checks */
#define EXTRA_ROOMS 120 /* more than a page of rooms (100) */
#define RATE_USERS 150 /* more than a page of rate marks */
#define R1_MESSAGES 230 /* more than two pages of messages, and a short last one */

#define TEST_DIR_TEMPLATE "/tmp/chatd-test-copy.XXXXXX"
static char test_dir[] = TEST_DIR_TEMPLATE;
static struct pgtmp *server;
static char *server_error;
static int db_counter;
static char *src_path, *dst_url;
static struct db *src, *dst;

/* ---- a growing text ---- */

struct sbuf {
	char *s;
	size_t len;
};

static void sb_add(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
sb_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	char *piece;
	size_t n;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&piece, fmt, ap), 0);
	va_end(ap);
	n = strlen(piece);
	b->s = xrealloc(b->s, b->len + n + 1);
	memcpy(b->s + b->len, piece, n + 1);
	b->len += n;
	free(piece);
}

static const char *
nz(const char *s)
{
	return s != NULL ? s : "(null)";
}

/* ---- fixtures ---- */

static void
server_start(void)
{
	server = pgtmp_start(&server_error);
}

static void
server_stop(void)
{
	pgtmp_stop(server);
	server = NULL;
	free(server_error);
	server_error = NULL;
}

/* A new empty PostgreSQL database for this test; its URI. */
static char *
pg_database_new(void)
{
	struct db_bconn *c = NULL;
	char *cause = NULL, *name, *sql;

	name = xasprintf("copy_%d_%d", (int)getpid(), ++db_counter);
	ck_assert_msg(
	    db_pg_ops.open(pgtmp_conninfo(server), 1, &c, &cause) == DB_OK, "%s", nz(cause));
	sql = xasprintf("CREATE DATABASE %s", name);
	ck_assert_msg(db_pg_ops.exec_script(c, sql, "create", &cause) == DB_OK, "%s", nz(cause));
	free(sql);
	db_pg_ops.close(c);
	sql = xasprintf("postgres://postgres@127.0.0.1:%d/%s", pgtmp_port(server), name);
	free(name);
	return sql;
}

static void
setup(void)
{
	char *cause = NULL;

	ck_assert_msg(server != NULL, "%s", server_error != NULL ? server_error : "no server");
	memcpy(test_dir, TEST_DIR_TEMPLATE, sizeof test_dir);
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	src_path = xasprintf("%s/chat.db", test_dir);
	ck_assert_msg(db_open(src_path, &src, &cause) == DB_OK, "%s", nz(cause));
	dst_url = pg_database_new();
	ck_assert_msg(db_open(dst_url, &dst, &cause) == DB_OK, "%s", nz(cause));
}

static void
teardown(void)
{
	db_close(src);
	db_close(dst);
	src = dst = NULL;
	free(src_path);
	free(dst_url);
	src_path = dst_url = NULL;
	testdir_remove(test_dir);
}

/* ---- filling the source through db.h ---- */

static void
ok(int rc, char *cause, const char *what)
{
	ck_assert_msg(rc == DB_OK, "%s: rc %d: %s", what, rc, nz(cause));
	free(cause);
}

static int64_t
dead_add(struct db *db, const char *target, int64_t after, int64_t last, const char *id,
    const char *body, int64_t now)
{
	struct db_dead_letter d;
	char *cause = NULL;

	ok(db_cursor_batch(db, target, after, id, last, &cause), cause, "batch");
	cause = NULL;
	ok(db_cursor_fail(db, target, "HTTP 500: down", now, &cause), cause, "fail");
	memset(&d, 0, sizeof d);
	d.target = (char *)target;
	d.delivery_id = (char *)id;
	d.after_id = after;
	d.last_id = last;
	d.count = last - after;
	d.body = (char *)body;
	d.body_len = body != NULL ? strlen(body) : 0;
	d.attempts = 5;
	d.last_status = 500;
	d.last_error = (char *)"HTTP 500: down";
	d.first_attempt_at = now - 1000;
	d.last_attempt_at = now;
	cause = NULL;
	ok(db_dead_letter_add(db, &d, now, &cause), cause, "dead letter");
	return 0;
}

static void
fill(struct db *db)
{
	static const char *const r1_admins[] = { "zed", "amy", "moe" };
	static const char *const r2_admins[] = { "carol" };
	char *cause = NULL, id[32], text[64];
	int64_t sid[6], mid, seq;
	int i;

#define OK(call) \
	do { \
		cause = NULL; \
		ok((call), cause, #call); \
	} while (0)

	/* Same millisecond: the order is insertion order, not the id's. */
	OK(db_room_create(db, "r1", "Room one", r1_admins, 3, T0, &cause));
	OK(db_room_create(db, "b2", "Room two", r2_admins, 1, T0 + 1, &cause));
	OK(db_room_create(db, "a3", "Room three, 'quoted' \"text\" é", NULL, 0, T0 + 1, &cause));
	for (i = 0; i < EXTRA_ROOMS; i++) {
		snprintf(id, sizeof id, "x%03d", EXTRA_ROOMS - i);
		OK(db_room_create(db, id, "extra", r2_admins, 1, T0 + 2, &cause));
	}
	OK(db_ban_add(db, "r1", "mallory", "spam", 0, T0 + 10, &cause));
	OK(db_ban_add(db, "r1", "eve", NULL, NOW + 86400000, T0 + 11, &cause));
	OK(db_ban_add(db, "r1", "trent", "lifted later", 0, T0 + 12, &cause));
	OK(db_ban_lift(db, "r1", "trent", T0 + 13, &cause));
	OK(db_ban_add(db, "b2", "mallory", "again", 0, T0 + 14, &cause));

	for (i = 0; i < R1_MESSAGES; i++) {
		snprintf(text, sizeof text, "hello %d", i);
		OK(db_message_append(db, i % 7 == 0 ? "b2" : "r1", DB_MESSAGE_CHAT,
		    i % 2 ? "alice" : "bob", i % 2 ? "Alice" : "Bob", i % 5 == 0, text, NULL,
		    T0 + 1000 + i * 1000, &mid, &seq, &cause));
	}
	OK(db_message_append(db, "b2", DB_MESSAGE_CUSTOM, NULL, NULL, 0, "{\"amount\":100}", "tip",
	    T0 + 500000, &mid, &seq, &cause));
	OK(db_message_append(db, "a3", DB_MESSAGE_CHAT, "carol", "Carol", 1, "ünïcode ✓", NULL,
	    T0 + 500001, &mid, &seq, &cause));

	OK(db_session_open(
	    db, NULL, "r1", "alice", "Alice", 0, "10.0.0.1", T0 + 2000, &sid[0], &cause));
	OK(db_session_open(db, "node-a", "r1", "bob", "Bob", 1, NULL, T0 + 2001, &sid[1], &cause));
	OK(db_session_open(
	    db, NULL, "b2", "carol", "Carol", 1, "10.0.0.3", T0 + 2002, &sid[2], &cause));
	OK(db_session_open(db, NULL, "a3", "dave", "Dave", 0, NULL, T0 + 2003, &sid[3], &cause));
	OK(db_session_open(
	    db, "node-b", "r1", "erin", "Erin", 0, "::1", T0 + 2004, &sid[4], &cause));
	OK(db_session_close(db, sid[0], "left", T0 + 9000, &cause));
	OK(db_session_close(db, sid[2], "kicked", T0 + 9001, &cause));
	OK(db_session_close(db, sid[3], "room_closed", T0 + 9002, &cause));
	OK(db_session_open(
	    db, NULL, "r1", "alice", "Alice", 0, "10.0.0.1", T0 + 9500, &sid[5], &cause));
	OK(db_room_close(db, "a3", "done here", T0 + 9003, &cause));
	OK(db_room_peak_update(db, "r1", 42, &cause));
	OK(db_sync_request(db, "manual", NULL, T0 + 9100, NULL, &cause));
	OK(db_sync_request(db, "manual", "r1", T0 + 9101, NULL, &cause));
	OK(db_sync_requests_handled(db, 3, T0 + 9200, &cause));

	/* Cursors mid-way: delivered up to a point, one with a batch in flight. */
	OK(db_cursor_done(db, "room_events", 0, 5, T0 + 9300, &cause));
	OK(db_cursor_done(db, "chat_history", 0, 40, T0 + 9301, &cause));
	OK(db_cursor_batch(db, "chat_history", 40, "msg_batch_41", 60, &cause));
	OK(db_cursor_fail(db, "chat_history", "HTTP 503: busy", T0 + 9302, &cause));
	/* Two letters; the second discarded: SQLite never gives its id again. */
	dead_add(db, "session_history", 0, 2, "ses_dead_1", NULL, T0 + 9400);
	dead_add(db, "room_snapshot", 0, 3, "snap_dead_2", "{\"rooms\":[]}", T0 + 9401);
	dead_add(db, "room_snapshot", 3, 4, "snap_dead_3", "{\"rooms\":[1]}", T0 + 9402);
	OK(db_dead_letter_replay(db, 0, "room_snapshot", T0 + 9403, NULL, &cause));
	OK(db_dead_letter_discard(db, 3, &cause));

	OK(db_node_beat(db, "node-a", "inc-1", T0, T0 + 9500, 3, &cause));
	OK(db_node_beat(db, "node-b", "inc-2", T0, T0 + 9501, 1, &cause));
	OK(db_node_stop(db, "node-b", "inc-2", T0 + 9600, &cause));
	for (i = 0; i < RATE_USERS; i++) {
		snprintf(id, sizeof id, "user%03d", i);
		OK(db_rate_mark(db, i % 2 ? "r1" : "b2", id, NOW - i * 10, &cause));
	}
#undef OK
}

/* ---- reading everything back through db.h ---- */

struct dump {
	struct sbuf b;
	int collect; /* keep each room's id for the per-room reads */
	char **rooms;
	size_t n_rooms;
};

static int
dump_room(const struct db_room *r, void *arg)
{
	struct dump *d = arg;
	size_t i;

	sb_add(&d->b, "room %s|%s|%lld|%lld|%s|%lld|%lld|admins", r->id, r->name,
	    (long long)r->created_at, (long long)r->closed_at, nz(r->close_reason),
	    (long long)r->peak_users, (long long)r->last_seq);
	for (i = 0; i < r->n_admins; i++)
		sb_add(&d->b, " %s", r->admins[i]);
	sb_add(&d->b, "\n");
	if (!d->collect)
		return 0;
	d->rooms = xreallocarray(d->rooms, d->n_rooms + 1, sizeof *d->rooms);
	d->rooms[d->n_rooms++] = xstrdup(r->id);
	return 0;
}

static int
dump_message(const struct db_message *m, void *arg)
{
	sb_add(arg, " msg %lld|%s|%lld|%d|%s|%s|%d|%s|%s|%lld\n", (long long)m->id, m->room_id,
	    (long long)m->seq, m->kind, nz(m->user_id), nz(m->nickname), m->is_admin, m->content,
	    nz(m->event_type), (long long)m->created_at);
	return 0;
}

static int
dump_session(const struct db_session *s, void *arg)
{
	sb_add(arg, " ses %lld|%s|%lld|%s|%s|%d|%s|%lld|%lld|%s\n", (long long)s->id, s->room_id,
	    (long long)s->seq, s->user_id, s->nickname, s->is_admin, nz(s->address),
	    (long long)s->joined_at, (long long)s->left_at, nz(s->leave_reason));
	return 0;
}

static int
dump_feed_session(const struct db_session *s, int64_t event_id, void *arg)
{
	sb_add(arg, " left-event %lld", (long long)event_id);
	return dump_session(s, arg);
}

static int
dump_ban(const struct db_ban *b, void *arg)
{
	sb_add(arg, " ban %s|%s|%s|%lld|%lld\n", b->room_id, b->user_id, nz(b->reason),
	    (long long)b->created_at, (long long)b->expires_at);
	return 0;
}

static int
dump_event(const struct db_event *e, void *arg)
{
	sb_add(arg, " event %lld|%s|%s|%s|%s|%s|%lld|%s|%lld\n", (long long)e->id, e->kind,
	    e->room_id, nz(e->user_id), nz(e->nickname), nz(e->reason), (long long)e->session_id,
	    nz(e->data), (long long)e->created_at);
	return 0;
}

static int
dump_occupant(const struct db_occupant *o, void *arg)
{
	sb_add(arg, " occupant %lld|%s|%s|%d|%lld\n", (long long)o->session_id, o->user_id,
	    o->nickname, o->is_admin, (long long)o->joined_at);
	return 0;
}

static void
dump_letter_fields(struct sbuf *b, const struct db_dead_letter *l)
{
	sb_add(b, " letter %lld|%s|%s|%lld|%lld|%lld|%lld|%lld|%s|%lld|%lld|%lld|%lld|%s\n",
	    (long long)l->id, l->target, l->delivery_id, (long long)l->after_id,
	    (long long)l->last_id, (long long)l->count, (long long)l->attempts,
	    (long long)l->last_status, nz(l->last_error), (long long)l->first_attempt_at,
	    (long long)l->last_attempt_at, (long long)l->created_at,
	    (long long)l->replay_requested_at, nz(l->body));
}

static int
dump_letter(const struct db_dead_letter *l, void *arg)
{
	dump_letter_fields(arg, l);
	return 0;
}

static int
dump_node(const struct db_node *n, void *arg)
{
	sb_add(arg, " node %s|%s|%lld|%lld|%lld|%lld|%lld\n", n->id, n->incarnation,
	    (long long)n->started_at, (long long)n->seen_at, (long long)n->stopped_at,
	    (long long)n->connections, (long long)n->reaped_at);
	return 0;
}

static const char *const cursor_targets[] = { "room_events", "chat_history", "session_history",
	"room_snapshot" };
static const enum db_feed feeds[] = { DB_FEED_EVENTS, DB_FEED_MESSAGES, DB_FEED_SESSIONS,
	DB_FEED_SYNC_REQUESTS };

/* Everything db.h reads of a database, as text (heap): equal text, equal reads. */
static char *
dump(struct db *db)
{
	struct dump d = { { NULL, 0 }, 1, NULL, 0 };
	struct db_page_query q;
	struct db_page_info info;
	struct db_room_counts rc;
	struct db_health h;
	struct db_cursor c;
	struct db_backlog bl;
	struct db_dead_letter l;
	char *cause = NULL, user[32];
	int64_t v, w, last_seq;
	size_t i, j;

#define OK(call) \
	do { \
		cause = NULL; \
		ok((call), cause, #call); \
	} while (0)

	OK(db_room_list(db, 1, dump_room, &d, &cause));
	d.collect = 0;
	OK(db_room_list(db, 0, dump_room, &d, &cause));
	for (i = 0; i < d.n_rooms; i++) {
		const char *r = d.rooms[i];

		sb_add(&d.b, "in %s\n", r);
		memset(&q, 0, sizeof q);
		q.room_id = r;
		q.from_s = q.to_s = -1;
		q.page = 1;
		q.limit = 1000;
		OK(db_messages_page(db, &q, dump_message, &d.b, &info, &cause));
		sb_add(&d.b, " info %lld %lld %d\n", (long long)info.total,
		    (long long)info.first_seq, info.has_more);
		/* A deeper page of a window. */
		q.page = 3;
		q.limit = 7;
		q.from_s = T0 / 1000 + 20;
		q.to_s = T0 / 1000 + 200;
		OK(db_messages_page(db, &q, dump_message, &d.b, &info, &cause));
		sb_add(&d.b, " info %lld %lld %d\n", (long long)info.total,
		    (long long)info.first_seq, info.has_more);
		q.page = 1;
		q.limit = 1000;
		q.from_s = q.to_s = -1;
		OK(db_sessions_page(db, &q, dump_session, &d.b, &info, &cause));
		OK(db_messages_range(db, r, 3, 9, dump_message, &d.b, &cause));
		OK(db_ban_list(db, r, NOW, dump_ban, &d.b, &cause));
		OK(db_room_counts(db, r, &rc, &cause));
		sb_add(&d.b, " counts %lld %lld %lld %lld %lld\n", (long long)rc.message_count,
		    (long long)rc.last_message_id, (long long)rc.last_seq,
		    (long long)rc.session_count, (long long)rc.open_sessions);
		OK(db_room_last_seq(db, r, &last_seq, &cause));
		OK(db_room_occupants(db, r, 100, dump_occupant, &d.b, &cause));
		for (j = 0; j < 4; j++) {
			int closed, banned;
			static const char *const users[] = { "mallory", "eve", "trent", "alice" };

			OK(db_join_state(db, r, users[j], NOW, &closed, &banned, &cause));
			sb_add(&d.b, " join %s %d %d\n", users[j], closed, banned);
		}
		free(d.rooms[i]);
	}
	free(d.rooms);

	for (i = 0; i < sizeof cursor_targets / sizeof cursor_targets[0]; i++) {
		memset(&c, 0, sizeof c);
		OK(db_cursor_get(db, cursor_targets[i], &c, &cause));
		sb_add(&d.b, "cursor %s %lld|%s|%lld|%lld|%lld|%s|%lld\n", cursor_targets[i],
		    (long long)c.last_id, nz(c.delivery_id), (long long)c.batch_last_id,
		    (long long)c.attempts, (long long)c.failing_since, nz(c.last_error),
		    (long long)c.last_success_at);
		db_cursor_clear(&c);
	}
	/* Feeds after the cursors' positions and from the start, and their backlogs. */
	OK(db_feed_events(db, 5, INT64_MAX, 10000, dump_event, &d.b, &cause));
	OK(db_feed_messages(db, 40, INT64_MAX, 10000, dump_message, &d.b, &cause));
	OK(db_feed_sessions(db, 0, INT64_MAX, 10000, dump_feed_session, &d.b, &cause));
	for (i = 0; i < sizeof feeds / sizeof feeds[0]; i++) {
		OK(db_backlog(db, feeds[i], 5, 0, &bl, &cause));
		sb_add(&d.b, "backlog %zu %lld %lld %lld\n", i, (long long)bl.count,
		    (long long)bl.oldest_at, (long long)bl.last_id);
		OK(db_backlog(db, feeds[i], 0, 3, &bl, &cause));
		sb_add(&d.b, "backlog3 %zu %lld %lld %lld\n", i, (long long)bl.count,
		    (long long)bl.oldest_at, (long long)bl.last_id);
	}
	OK(db_dead_letter_list(db, NULL, 0, 0, dump_letter, &d.b, &cause));
	OK(db_dead_letter_counts(db, NULL, &v, &w, &cause));
	sb_add(&d.b, "letters %lld %lld\n", (long long)v, (long long)w);
	memset(&l, 0, sizeof l);
	OK(db_dead_letter_next_replay(db, "room_snapshot", &l, &cause));
	dump_letter_fields(&d.b, &l);
	db_dead_letter_clear(&l);
	OK(db_node_list(db, dump_node, &d.b, &cause));
	for (i = 0; i < RATE_USERS; i += 7) {
		snprintf(user, sizeof user, "user%03zu", i);
		OK(db_rate_check(db, i % 2 ? "r1" : "b2", user, NOW, 1000, &v, &cause));
		sb_add(&d.b, "rate %s %lld\n", user, (long long)v);
	}
	OK(db_health(db, &h, &cause));
	sb_add(&d.b, "health %lld %lld %lld %lld\n", (long long)h.rooms_open,
	    (long long)h.rooms_closed, (long long)h.pending_sync_requests,
	    (long long)h.outbox_events);
#undef OK
	return d.b.s;
}

/* Fails at the first line that differs, naming it. */
static void
same_text(const char *a, const char *b)
{
	size_t line = 1, i;

	for (i = 0; a[i] != '\0' && a[i] == b[i]; i++) {
		if (a[i] == '\n')
			line++;
	}
	if (a[i] != b[i]) {
		size_t start = i;

		while (start > 0 && a[start - 1] != '\n')
			start--;
		ck_abort_msg("differs at line %zu:\n  source: %.200s\n  target: %.200s", line,
		    a + start, b + start);
	}
}

static void
copy_ok(struct db_copy_report *rep)
{
	char *cause = NULL;
	int rc = db_copy_run(src, dst, NULL, NULL, rep, &cause);

	ck_assert_msg(rc == DB_OK, "copy: rc %d: %s", rc, nz(cause));
	ck_assert_msg(rep->mismatches_total == 0, "mismatches: %lld (first: %s %s)",
	    (long long)rep->mismatches_total, rep->n_mismatches > 0 ? rep->mismatches[0].table : "",
	    rep->n_mismatches > 0 ? rep->mismatches[0].what : "");
	ck_assert_int_eq(rep->committed, 1);
}

static const struct db_copy_count *
count_of(const struct db_copy_report *rep, const char *table)
{
	for (size_t i = 0; i < rep->n_tables; i++) {
		if (strcmp(rep->tables[i].table, table) == 0)
			return &rep->tables[i];
	}
	ck_abort_msg("no count for %s", table);
	return NULL;
}

/* A progress callback's record: calls per table, and the final figures. */
struct progress_log {
	int calls, done;
	int64_t messages_copied, messages_total;
};

static void
progress_note(void *arg, const char *table, int64_t copied, int64_t total, int done)
{
	struct progress_log *p = arg;

	p->calls++;
	p->done += done;
	ck_assert_int_le(copied, total);
	if (strcmp(table, "messages") == 0) {
		p->messages_copied = copied;
		p->messages_total = total;
	}
}

/* ---- tests ---- */

START_TEST(t_copy_reads_back_the_same)
{
	struct progress_log progress = { 0, 0, 0, 0 };
	struct db_copy_report rep;
	char *a, *b, *cause = NULL;
	int rc;

	fill(src);
	rc = db_copy_run(src, dst, progress_note, &progress, &rep, &cause);
	ck_assert_msg(rc == DB_OK, "copy: %s", nz(cause));
	ck_assert_int_eq(rep.mismatches_total, 0);
	ck_assert_int_eq(rep.committed, 1);
	ck_assert_int_eq(rep.n_tables, DB_COPY_TABLES);
	ck_assert_int_eq(rep.rooms_checked, 3 + EXTRA_ROOMS);
	ck_assert_int_eq(count_of(&rep, "rooms")->target_rows, 3 + EXTRA_ROOMS);
	ck_assert_int_eq(count_of(&rep, "messages")->target_rows, R1_MESSAGES + 2);
	ck_assert_int_eq(count_of(&rep, "rate_marks")->target_rows, RATE_USERS);
	ck_assert_int_eq(count_of(&rep, "dead_letters")->target_rows, 2);
	ck_assert_int_eq(progress.done, DB_COPY_TABLES);
	ck_assert_int_gt(progress.calls, DB_COPY_TABLES + 3); /* several pages of messages */
	ck_assert_int_eq(progress.messages_copied, R1_MESSAGES + 2);
	ck_assert_int_eq(progress.messages_total, R1_MESSAGES + 2);
	db_copy_report_clear(&rep);

	a = dump(src);
	b = dump(dst);
	same_text(a, b);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
}
END_TEST

/* New rows after the copy take ids and seqs where SQLite would have. */
START_TEST(t_new_rows_continue)
{
	static const char *const admins[] = { "new-admin" };
	struct db_copy_report rep;
	struct db *dbs[2] = { src, dst };
	struct db_dead_letter l;
	int64_t mid[2], seq[2], sid[2], req[2];
	char *cause = NULL, *a, *b;
	int k;

	fill(src);
	copy_ok(&rep);
	db_copy_report_clear(&rep);
	/* The same writes on both sides give the same ids and the same reads. */
	for (k = 0; k < 2; k++) {
		struct db *db = dbs[k];

		ck_assert_int_eq(db_message_append(db, "r1", DB_MESSAGE_CHAT, "amy", "Amy", 1,
				     "after the move", NULL, T0 + 600000, &mid[k], &seq[k], &cause),
		    DB_OK);
		ck_assert_int_eq(db_session_open(db, "node-c", "b2", "amy", "Amy", 0, NULL,
				     T0 + 600001, &sid[k], &cause),
		    DB_OK);
		/* Created in the same millisecond as the extra rooms: listed after them. */
		ck_assert_int_eq(db_room_create(db, "a0", "new", admins, 1, T0 + 2, &cause), DB_OK);
		ck_assert_int_eq(db_ban_add(db, "a0", "zoe", NULL, 0, T0 + 600002, &cause), DB_OK);
		ck_assert_int_eq(
		    db_sync_request(db, "manual", "a0", T0 + 600003, &req[k], &cause), DB_OK);
		dead_add(db, "room_events", 5, 9, "evt_dead_4", NULL, T0 + 600004);
	}
	ck_assert_int_eq(mid[1], mid[0]);
	ck_assert_int_eq(seq[1], seq[0]);
	ck_assert_int_eq(seq[1], R1_MESSAGES - (R1_MESSAGES + 6) / 7 + 1);
	ck_assert_int_eq(sid[1], sid[0]);
	ck_assert_int_eq(sid[1], 7);
	ck_assert_int_eq(req[1], req[0]);
	a = dump(src);
	b = dump(dst);
	same_text(a, b);
	free(a);
	free(b);
	/* The discarded letter's id (3) is not given again. */
	memset(&l, 0, sizeof l);
	ck_assert_int_eq(db_dead_letter_get(dst, 4, &l, &cause), DB_OK);
	ck_assert_str_eq(l.delivery_id, "evt_dead_4");
	db_dead_letter_clear(&l);
}
END_TEST

START_TEST(t_empty_source)
{
	struct db_copy_report rep;
	char *cause = NULL;
	int64_t id, seq;

	copy_ok(&rep);
	ck_assert_int_eq(rep.rooms_checked, 0);
	db_copy_report_clear(&rep);
	ck_assert_int_eq(db_room_create(dst, "r", "R", NULL, 0, T0, &cause), DB_OK);
	ck_assert_int_eq(db_message_append(dst, "r", DB_MESSAGE_CHAT, "u", "U", 0, "first", NULL,
			     T0, &id, &seq, &cause),
	    DB_OK);
	ck_assert_int_eq(id, 1);
	ck_assert_int_eq(seq, 1);
}
END_TEST

START_TEST(t_refuses_a_target_with_rows)
{
	struct db_copy_report rep;
	char *cause = NULL, *before;
	int rc;

	fill(src);
	copy_ok(&rep);
	db_copy_report_clear(&rep);
	before = dump(dst);
	rc = db_copy_run(src, dst, NULL, NULL, &rep, &cause);
	ck_assert_int_eq(rc, DB_CONFLICT);
	ck_assert_ptr_nonnull(strstr(cause, "not empty"));
	ck_assert_ptr_nonnull(strstr(cause, "rooms"));
	ck_assert_ptr_nonnull(strstr(cause, "messages"));
	ck_assert_int_eq(rep.committed, 0);
	free(cause);
	cause = NULL;
	{
		char *after = dump(dst);

		ck_assert_str_eq(before, after);
		free(after);
	}
	free(before);
	db_copy_report_clear(&rep);

	/* A lone cursor row is enough: chat-sync ran on the target already. */
	db_close(dst);
	free(dst_url);
	dst_url = pg_database_new();
	ck_assert_int_eq(db_open(dst_url, &dst, &cause), DB_OK);
	ck_assert_int_eq(db_cursor_done(dst, "room_events", 0, 0, T0, &cause), DB_OK);
	rc = db_copy_run(src, dst, NULL, NULL, &rep, &cause);
	ck_assert_int_eq(rc, DB_CONFLICT);
	ck_assert_ptr_nonnull(strstr(cause, "cursors"));
	ck_assert_ptr_null(strstr(cause, "rooms"));
	free(cause);
	db_copy_report_clear(&rep);
}
END_TEST

static const struct db_copy_mismatch *
mismatch_of(const struct db_copy_report *rep, const char *table, const char *room, const char *what)
{
	for (size_t i = 0; i < rep->n_mismatches; i++) {
		const struct db_copy_mismatch *m = &rep->mismatches[i];

		if (strcmp(m->table, table) == 0 && strcmp(m->what, what) == 0 &&
		    (room == NULL ? m->room_id == NULL
				  : m->room_id != NULL && strcmp(m->room_id, room) == 0))
			return m;
	}
	return NULL;
}

START_TEST(t_verify_reports_mismatches)
{
	struct db_copy_report rep;
	const struct db_copy_mismatch *m;
	char *cause = NULL;
	int64_t id, seq, sid;

	fill(src);
	copy_ok(&rep);
	db_copy_report_clear(&rep);
	ck_assert_int_eq(db_copy_verify(src, dst, &rep, &cause), DB_OK);
	ck_assert_int_eq(rep.mismatches_total, 0);
	ck_assert_int_eq(rep.rooms_checked, 3 + EXTRA_ROOMS);
	db_copy_report_clear(&rep);

	/* The target moves on: a message in r1, a session in b2, a new room. */
	ck_assert_int_eq(db_message_append(dst, "r1", DB_MESSAGE_CHAT, "u", "U", 0, "late", NULL,
			     T0 + 700000, &id, &seq, &cause),
	    DB_OK);
	ck_assert_int_eq(
	    db_session_open(dst, NULL, "b2", "u", "U", 0, NULL, T0 + 700001, &sid, &cause), DB_OK);
	ck_assert_int_eq(db_copy_verify(src, dst, &rep, &cause), DB_OK);
	ck_assert_int_gt(rep.mismatches_total, 0);
	ck_assert_int_eq(rep.committed, 0);
	ck_assert_ptr_nonnull(m = mismatch_of(&rep, "messages", NULL, "rows"));
	ck_assert_int_eq(m->target, m->source + 1);
	ck_assert_ptr_nonnull(mismatch_of(&rep, "messages", NULL, "max id"));
	ck_assert_ptr_nonnull(mismatch_of(&rep, "sessions", NULL, "rows"));
	ck_assert_ptr_nonnull(m = mismatch_of(&rep, "rooms", "r1", "messages"));
	ck_assert_int_eq(m->target, m->source + 1);
	ck_assert_ptr_nonnull(mismatch_of(&rep, "rooms", "r1", "last_seq"));
	ck_assert_ptr_nonnull(mismatch_of(&rep, "rooms", "r1", "last message seq"));
	ck_assert_ptr_nonnull(mismatch_of(&rep, "rooms", "b2", "sessions"));
	ck_assert_ptr_nonnull(mismatch_of(&rep, "rooms", "b2", "last_session_seq"));
	ck_assert_ptr_null(mismatch_of(&rep, "rooms", "a3", "messages"));
	db_copy_report_clear(&rep);

	/* The other way round a room the target lacks is named. */
	ck_assert_int_eq(db_room_create(dst, "only-here", "x", NULL, 0, T0, &cause), DB_OK);
	ck_assert_int_eq(db_copy_verify(dst, src, &rep, &cause), DB_OK);
	ck_assert_ptr_nonnull(mismatch_of(&rep, "rooms", "only-here", "room missing"));
	ck_assert_ptr_nonnull(mismatch_of(&rep, "rooms", NULL, "rows"));
	db_copy_report_clear(&rep);
}
END_TEST

static int
count_room(const struct db_room *r, void *arg)
{
	(void)r;
	(*(int *)arg)++;
	return 0;
}

/* Runs sql on the source file behind db.c's back. */
static void
source_sql(const char *sql)
{
	sqlite3 *raw;
	char *err = NULL;

	ck_assert_int_eq(sqlite3_open(src_path, &raw), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(raw, sql, NULL, NULL, &err) == SQLITE_OK, "%s", err);
	sqlite3_close(raw);
}

/*
 * A row PostgreSQL refuses half-way through (text that is not UTF-8,
 * which SQLite stores as it is given): nothing of the copy stays, and
 * the target is still empty for the next try.
 */
START_TEST(t_failure_leaves_the_target_empty)
{
	struct db_copy_report rep;
	char *cause = NULL;
	int rooms = 0, rc;

	fill(src);
	source_sql("UPDATE messages SET content = CAST(x'c328' AS TEXT) WHERE id = 150");
	rc = db_copy_run(src, dst, NULL, NULL, &rep, &cause);
	ck_assert_int_eq(rc, DB_ERROR);
	ck_assert_msg(strstr(cause, "copying messages") != NULL, "%s", cause);
	ck_assert_int_eq(rep.committed, 0);
	free(cause);
	cause = NULL;
	db_copy_report_clear(&rep);
	ck_assert_int_eq(db_room_list(dst, 1, count_room, &rooms, &cause), DB_OK);
	ck_assert_int_eq(rooms, 0);

	source_sql("UPDATE messages SET content = 'mended' WHERE id = 150");
	copy_ok(&rep);
	db_copy_report_clear(&rep);
	ck_assert_int_eq(db_room_list(dst, 1, count_room, &rooms, &cause), DB_OK);
	ck_assert_int_eq(rooms, 3 + EXTRA_ROOMS);
}
END_TEST

/* Only SQLite into PostgreSQL; anything else is refused before a write. */
START_TEST(t_refuses_other_directions)
{
	struct db_copy_report rep;
	char *cause = NULL;

	ck_assert_int_eq(db_copy_run(dst, src, NULL, NULL, &rep, &cause), DB_ERROR);
	ck_assert_ptr_nonnull(strstr(cause, "SQLite"));
	free(cause);
	db_copy_report_clear(&rep);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("db_copy");
	TCase *tc = tcase_create("db_copy");

	tcase_add_unchecked_fixture(tc, server_start, server_stop);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, t_copy_reads_back_the_same);
	tcase_add_test(tc, t_new_rows_continue);
	tcase_add_test(tc, t_empty_source);
	tcase_add_test(tc, t_refuses_a_target_with_rows);
	tcase_add_test(tc, t_verify_reports_mismatches);
	tcase_add_test(tc, t_refuses_other_directions);
	tcase_add_test(tc, t_failure_leaves_the_target_empty);
	suite_add_tcase(s, tc);
	return s;
}
