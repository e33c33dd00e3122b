/*
 * Unit tests for db.c: schema and migrations, every operation's success
 * and error paths, history paging (deep pages included), and several
 * connections writing at once. A raw connection of the engine's own
 * inspects what db.c wrote.
 *
 * One source, two programs. test_db runs against SQLite files in a
 * private temporary directory; test_db_on_pg (built with TEST_DB_ON_PG)
 * against one throwaway PostgreSQL server (pgtmp.c) for the whole run,
 * each test on a database of its own, made empty for it. Tests about
 * SQLite itself (its files, journal mode, the pages it reads) form the
 * "sqlite" case, which only test_db runs.
 */
#include "autoconf.h"

#include <sys/wait.h>

#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>
#ifdef TEST_DB_ON_PG
#include <libpq-fe.h>
#else
#include <sqlite3.h>
#endif

#include "clock.h"
#include "check_main.h"
#include "db.h"
#include "db_sql.h"
#include "log.h"
#include "xmalloc.h"
#ifdef TEST_DB_ON_PG
#include "pgtmp.h"
#else
#include "testdir.h"
#endif

#define T0 1700000000 /* a Unix time in seconds for fixtures */

/* SQL for the raw connection: SQLite's text, or PostgreSQL's. */
#ifdef TEST_DB_ON_PG
#define RAW_SQL(sqlite, pg) pg
#else
#define RAW_SQL(sqlite, pg) sqlite
#endif

/* Where each engine keeps the schema version. */
#define RAW_VERSION RAW_SQL("PRAGMA user_version", "SELECT max(version) FROM chatd_schema")
/*
 * Begins a transaction holding the write lock every writer of db.c takes:
 * SQLite's, or the advisory lock db_pg.c's BEGIN takes (its keys).
 */
#define RAW_BEGIN_WRITE \
	RAW_SQL("BEGIN IMMEDIATE", "BEGIN; SELECT pg_advisory_xact_lock(1667785076, 0)")

/* How many tables, or indexes, of the schema bear the name ?1. */
#define RAW_TABLE_COUNT \
	RAW_SQL("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", \
	    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ?1")
#define RAW_INDEX_COUNT \
	RAW_SQL("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?1", \
	    "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname = ?1")

static int test_counter;
static char *dbpath;
static struct db *db;

/* ---- fixtures ---- */

#ifdef TEST_DB_ON_PG

static struct pgtmp *server;
static char *server_error;
static pid_t server_owner;

/* At exit of the process that started the server (not of a test's fork). */
static void
server_stop(void)
{
	if (getpid() != server_owner)
		return;
	pgtmp_stop(server);
	server = NULL;
	free(server_error);
	server_error = NULL;
}

/*
 * Before each test case, in the process that forks the tests: the one
 * server of the run, started by the first case (about a second), stopped
 * when the run ends. A server that did not start fails every test.
 */
static void
fixture_start(void)
{
	if (server != NULL || server_error != NULL)
		return;
	server = pgtmp_start(&server_error);
	server_owner = getpid();
	if (atexit(server_stop) != 0)
		abort();
}

static void
fixture_end(void)
{
}

/* Runs sql on the server's postgres database, as the superuser. */
static void
pg_admin(const char *sql)
{
	PGconn *c;
	PGresult *r;
	char *err;

	ck_assert_msg(server != NULL, "%s", server_error != NULL ? server_error : "no server");
	c = PQconnectdb(pgtmp_conninfo(server));
	if (PQstatus(c) != CONNECTION_OK) {
		err = xstrdup(PQerrorMessage(c));
		PQfinish(c);
		ck_abort_msg("connecting to the test server: %s", err);
	}
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		err = xstrdup(PQresultErrorMessage(r));
		PQclear(r);
		PQfinish(c);
		ck_abort_msg("%s: %s", sql, err);
	}
	PQclear(r);
	PQfinish(c);
}

/* A new empty database on the server; its address. */
static char *
new_path(void)
{
	char *name = xasprintf("t%ld_%d", (long)getpid(), test_counter++);
	char *sql = xasprintf("CREATE DATABASE %s", name);
	char *uri;

	pg_admin(sql);
	uri = xasprintf("postgres://postgres@127.0.0.1:%d/%s", pgtmp_port(server), name);
	free(sql);
	free(name);
	return uri;
}

/* Drops the database at path, whoever is still connected to it. */
static void
db_drop(const char *path)
{
	char *sql = xasprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", strrchr(path, '/') + 1);

	pg_admin(sql);
	free(sql);
}

static PGconn *raw;

static void raw_exec(const char *sql);

static void
raw_close(void)
{
	if (raw != NULL)
		PQfinish(raw);
	raw = NULL;
}

static PGconn *
raw_db(void)
{
	if (raw == NULL) {
		raw = PQconnectdb(dbpath);
		ck_assert_msg(
		    PQstatus(raw) == CONNECTION_OK, "raw connection: %s", PQerrorMessage(raw));
		/* Quiet: no notices of what a DROP ... CASCADE took along. */
		raw_exec("SET client_min_messages = warning");
	}
	return raw;
}

/* Runs one query with an optional ?1 (the tests' placeholder: $1 here). */
static PGresult *
raw_query(const char *sql, const char *param)
{
	char *text = xstrdup(sql), *p, *err;
	PGresult *r;

	for (p = text; (p = strchr(p, '?')) != NULL; p++)
		*p = '$';
	r = PQexecParams(raw_db(), text, param != NULL ? 1 : 0, NULL, &param, NULL, NULL, 0);
	free(text);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		err = xstrdup(PQresultErrorMessage(r));
		PQclear(r);
		ck_abort_msg("query %s: %s", sql, err);
	}
	return r;
}

/* The integer in the first column of the first row (NULL reads 0); -1 if no row. */
static int64_t
raw_int(const char *sql, const char *param)
{
	PGresult *r = raw_query(sql, param);
	int64_t v = -1;

	if (PQntuples(r) > 0)
		v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return v;
}

/* The text in the first column of the first row (caller frees); NULL if none. */
static char *
raw_text(const char *sql, const char *param)
{
	PGresult *r = raw_query(sql, param);
	char *v = NULL;

	if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = xstrdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

/* Runs sql (statements without parameters); 0 if every one succeeded. */
static int
raw_try(const char *sql)
{
	PGresult *r = PQexec(raw_db(), sql);
	ExecStatusType st = PQresultStatus(r);

	PQclear(r);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
}

static void
raw_exec(const char *sql)
{
	ck_assert_msg(raw_try(sql) == 0, "exec %s: %s", sql, PQerrorMessage(raw));
}

#else /* SQLite */

#define TEST_DIR_TEMPLATE "/tmp/chatd-test-db.XXXXXX"
static char test_dir[] = TEST_DIR_TEMPLATE;

static void
fixture_start(void)
{
	memcpy(test_dir, TEST_DIR_TEMPLATE, sizeof test_dir);
	if (mkdtemp(test_dir) == NULL) {
		perror("mkdtemp");
		abort();
	}
}

/* Runs in the parent after every test, so a crashed test leaves nothing. */
static void
fixture_end(void)
{
	testdir_remove(test_dir);
}

/* Removes the database file at path and the files SQLite keeps beside it. */
static void
db_drop(const char *path)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
	char *p;

	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		p = xasprintf("%s%s", path, suffixes[i]);
		unlink(p);
		free(p);
	}
}

/* A path for a new database file (no file yet). */
static char *
new_path(void)
{
	return xasprintf("%s/t%ld-%d.db", test_dir, (long)getpid(), test_counter++);
}

static sqlite3 *raw;

static void
raw_close(void)
{
	if (raw != NULL)
		sqlite3_close(raw);
	raw = NULL;
}

static sqlite3 *
raw_db(void)
{
	if (raw == NULL) {
		ck_assert_int_eq(
		    sqlite3_open_v2(dbpath, &raw, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
		sqlite3_busy_timeout(raw, 5000);
	}
	return raw;
}

static sqlite3_stmt *
raw_prepare(const char *sql, const char *param)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(raw_db(), sql, -1, &st, NULL) != SQLITE_OK)
		ck_abort_msg("prepare %s: %s", sql, sqlite3_errmsg(raw));
	if (param != NULL)
		ck_assert_int_eq(sqlite3_bind_text(st, 1, param, -1, SQLITE_STATIC), SQLITE_OK);
	return st;
}

/* The integer in the first column of the first row; -1 if no row. */
static int64_t
raw_int(const char *sql, const char *param)
{
	sqlite3_stmt *st = raw_prepare(sql, param);
	int64_t v = -1;
	int rc;

	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		ck_abort_msg("step %s: %s", sql, sqlite3_errmsg(raw));
	sqlite3_finalize(st);
	return v;
}

/* The text in the first column of the first row (caller frees); NULL if none. */
static char *
raw_text(const char *sql, const char *param)
{
	sqlite3_stmt *st = raw_prepare(sql, param);
	char *v = NULL;

	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

/* Runs sql (statements without parameters); 0 if every one succeeded. */
static int
raw_try(const char *sql)
{
	return sqlite3_exec(raw_db(), sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static void
raw_exec(const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(raw_db(), sql, NULL, NULL, &err) != SQLITE_OK)
		ck_abort_msg("exec %s: %s", sql, err);
}

#endif

static void
setup(void)
{
	char *cause = NULL;

	dbpath = new_path();
	if (db_open(dbpath, &db, &cause) != DB_OK)
		ck_abort_msg("db_open: %s", cause);
}

static void
teardown(void)
{
	raw_close();
	db_close(db);
	db = NULL;
	db_drop(dbpath);
	free(dbpath);
	dbpath = NULL;
}

static void
reopen(void)
{
	char *cause = NULL;

	db_close(db);
	db = NULL;
	if (db_open(dbpath, &db, &cause) != DB_OK)
		ck_abort_msg("db_open: %s", cause);
}

/* ---- operation helpers that fail the test on error ---- */

static void
room_create(const char *id, const char *name, const char *const *admins, size_t n, int64_t now)
{
	char *cause = NULL;

	if (db_room_create(db, id, name, admins, n, now, &cause) != DB_OK)
		ck_abort_msg("db_room_create %s: %s", id, cause ? cause : "not DB_OK");
}

static int64_t
message_add(
    const char *room, const char *user, const char *content, int64_t created_at, int64_t *seq)
{
	char *cause = NULL;
	int64_t id = 0;

	if (db_message_append(db, room, DB_MESSAGE_CHAT, user, user, 0, content, NULL, created_at,
		&id, seq, &cause) != DB_OK)
		ck_abort_msg("db_message_append: %s", cause ? cause : "not DB_OK");
	return id;
}

/* A session of node ("": a chatd on its own). */
static int64_t
session_add_node(const char *node, const char *room, const char *user, int64_t joined_at)
{
	char *cause = NULL;
	int64_t id = 0;

	if (db_session_open(db, node, room, user, user, 0, "192.0.2.1", joined_at, &id, &cause) !=
	    DB_OK)
		ck_abort_msg("db_session_open: %s", cause ? cause : "not DB_OK");
	return id;
}

static int64_t
session_add(const char *room, const char *user, int64_t joined_at)
{
	return session_add_node("", room, user, joined_at);
}

/* ---- collecting callback rows ---- */

static char *
dup_or_null(const char *s)
{
	return s == NULL ? NULL : xstrdup(s);
}

#define GOT_MAX 256

struct got_row {
	int64_t id, seq, t1, t2; /* t1 created_at/joined_at, t2 left_at */
	int kind, is_admin;
	char *room_id, *user_id, *nickname, *text, *extra; /* text: content/address */
};

struct got {
	size_t n;
	size_t stop_after; /* 0: never stop */
	struct got_row r[GOT_MAX];
};

static void
got_clear(struct got *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->r[i].room_id);
		free(g->r[i].user_id);
		free(g->r[i].nickname);
		free(g->r[i].text);
		free(g->r[i].extra);
	}
	memset(g, 0, sizeof *g);
}

static int
got_message(const struct db_message *m, void *arg)
{
	struct got *g = arg;
	struct got_row *r;

	ck_assert_uint_lt(g->n, GOT_MAX);
	r = &g->r[g->n++];
	r->id = m->id;
	r->seq = m->seq;
	r->t1 = m->created_at;
	r->kind = m->kind;
	r->is_admin = m->is_admin;
	r->room_id = dup_or_null(m->room_id);
	r->user_id = dup_or_null(m->user_id);
	r->nickname = dup_or_null(m->nickname);
	r->text = dup_or_null(m->content);
	r->extra = dup_or_null(m->event_type);
	return g->stop_after != 0 && g->n >= g->stop_after;
}

static int
got_session(const struct db_session *s, void *arg)
{
	struct got *g = arg;
	struct got_row *r;

	ck_assert_uint_lt(g->n, GOT_MAX);
	r = &g->r[g->n++];
	r->id = s->id;
	r->seq = s->seq;
	r->t1 = s->joined_at;
	r->t2 = s->left_at;
	r->is_admin = s->is_admin;
	r->room_id = dup_or_null(s->room_id);
	r->user_id = dup_or_null(s->user_id);
	r->nickname = dup_or_null(s->nickname);
	r->text = dup_or_null(s->address);
	r->extra = dup_or_null(s->leave_reason);
	return g->stop_after != 0 && g->n >= g->stop_after;
}

static int
page_messages(const char *room, int64_t from_s, int64_t to_s, int64_t page, int64_t limit,
    struct got *g, struct db_page_info *info)
{
	struct db_page_query q = { room, from_s, to_s, page, limit };
	char *cause = NULL;
	int rc;

	got_clear(g);
	memset(info, 0xff, sizeof *info);
	rc = db_messages_page(db, &q, got_message, g, info, &cause);
	if (rc == DB_ERROR)
		ck_assert_ptr_nonnull(cause);
	free(cause);
	return rc;
}

static int
page_sessions(const char *room, int64_t from_s, int64_t to_s, int64_t page, int64_t limit,
    struct got *g, struct db_page_info *info)
{
	struct db_page_query q = { room, from_s, to_s, page, limit };
	char *cause = NULL;
	int rc;

	got_clear(g);
	memset(info, 0xff, sizeof *info);
	rc = db_sessions_page(db, &q, got_session, g, info, &cause);
	if (rc == DB_ERROR)
		ck_assert_ptr_nonnull(cause);
	free(cause);
	return rc;
}

/* Asserts a page holds exactly seqs first..last and the page info. */
static void
assert_seqs(const struct got *g, const struct db_page_info *info, int64_t first, int64_t last,
    int64_t total, int has_more)
{
	int64_t n = last >= first ? last - first + 1 : 0;

	ck_assert_int_eq((int64_t)g->n, n);
	for (int64_t i = 0; i < n; i++)
		ck_assert_int_eq(g->r[i].seq, first + i);
	ck_assert_int_eq(info->total, total);
	ck_assert_int_eq(info->first_seq, n > 0 ? first : 0);
	ck_assert_int_eq(info->has_more, has_more);
}

/* ---- schema and opening ---- */

START_TEST(test_open_fresh_schema)
{
	static const char *const tables[] = { "rooms", "room_admins", "bans", "messages",
		"sessions", "outbox", "sync_requests", "cursors", "dead_letters", "nodes" };
	static const char *const indexes[] = { "bans_active", "messages_time", "sessions_time",
		"sessions_open", "sync_requests_pending", "dead_letters_target",
		"dead_letters_replay", "sessions_node_open" };
	/* The columns later programs are written against. */
	static const char *const columns[] = {
		"SELECT id, name, created_at, closed_at, close_reason, peak_users, last_seq,"
		" last_session_seq FROM rooms",
		"SELECT room_id, user_id FROM room_admins",
		"SELECT id, room_id, user_id, reason, created_at, expires_at, lifted_at FROM bans",
		"SELECT id, room_id, seq, kind, user_id, nickname, is_admin, content, event_type,"
		" created_at FROM messages",
		"SELECT id, room_id, seq, user_id, nickname, is_admin, address, joined_at, left_at,"
		" leave_reason, node_id FROM sessions",
		"SELECT id, kind, room_id, user_id, nickname, reason, session_id, data, created_at"
		" FROM outbox",
		"SELECT id, reason, room_id, created_at, handled_at FROM sync_requests",
		"SELECT target, last_id, delivery_id, batch_last_id, attempts, failing_since,"
		" last_error, last_success_at, lock_owner, lock_until FROM cursors",
		"SELECT id, target, delivery_id, after_id, last_id, row_count, body, attempts,"
		" last_status, last_error, first_attempt_at, last_attempt_at, created_at,"
		" replay_requested_at FROM dead_letters",
		"SELECT id, incarnation, started_at, seen_at, stopped_at, connections, reaped_at"
		" FROM nodes",
	};
	size_t i;

	ck_assert_int_eq(db_schema_version(db), DB_SCHEMA_VERSION);
	ck_assert_int_eq(raw_int(RAW_VERSION, NULL), DB_SCHEMA_VERSION);
	for (i = 0; i < sizeof tables / sizeof tables[0]; i++)
		ck_assert_msg(
		    raw_int(RAW_TABLE_COUNT, tables[i]) == 1, "table %s missing", tables[i]);
	for (i = 0; i < sizeof indexes / sizeof indexes[0]; i++)
		ck_assert_msg(
		    raw_int(RAW_INDEX_COUNT, indexes[i]) == 1, "index %s missing", indexes[i]);
	for (i = 0; i < sizeof columns / sizeof columns[0]; i++)
		ck_assert_int_eq(raw_int(columns[i], NULL), -1); /* prepares, no rows */
	/* Typed columns (SQLite's STRICT tables): text in an integer column is refused. */
	ck_assert_int_ne(
	    raw_try("INSERT INTO rooms (id, name, created_at) VALUES ('x', 'x', 'soon')"), 0);
}
END_TEST

START_TEST(test_open_foreign_keys_on)
{
	char *cause = NULL;
	int64_t id = 0;

	/* Our connection enforces foreign keys: a request for no room is refused. */
	ck_assert_int_eq(
	    db_sync_request(db, "manual", "no-such-room", 5, &id, &cause), DB_NOTFOUND);
	ck_assert_ptr_null(cause);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sync_requests", NULL), 0);
	ck_assert_int_eq(db_sync_request(db, "manual", NULL, 5, &id, &cause), DB_OK);
	ck_assert_int_gt(id, 0);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sync_requests WHERE room_id IS NULL"
				 " AND reason = 'manual' AND created_at = 5 AND handled_at IS NULL",
			     NULL),
	    1);
}
END_TEST

START_TEST(test_open_reopen_keeps_data_without_migration)
{
	const char *admins[] = { "a1" };
	struct db_room room;
	char *cause = NULL;
	int64_t ms;

	room_create("r1", "kept", admins, 1, 10);
	message_add("r1", "u", "hello", 20, NULL);
	db_close(db);
	db = NULL;

	/*
	 * Hold the write lock: a reopen that tried to migrate would wait out
	 * the whole busy timeout and fail. Returning well before that timeout
	 * shows it never waited on the lock.
	 */
	raw_exec(RAW_BEGIN_WRITE);
	raw_exec("INSERT INTO sync_requests (reason, created_at) VALUES ('held', 1)");
	ms = clock_mono_ms();
	ck_assert_int_eq(db_open(dbpath, &db, &cause), DB_OK);
	ms = clock_mono_ms() - ms;
	ck_assert_int_lt(ms, DB_BUSY_TIMEOUT_MS / 2);
	ck_assert_int_eq(db_schema_version(db), DB_SCHEMA_VERSION);
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_str_eq(room.name, "kept");
	ck_assert_int_eq(room.last_seq, 1);
	ck_assert_uint_eq(room.n_admins, 1);
	ck_assert_str_eq(room.admins[0], "a1");
	db_room_clear(&room);
	raw_exec("ROLLBACK");
}
END_TEST

START_TEST(test_open_newer_version_refused)
{
	struct db *other = (struct db *)1;
	char *cause = NULL;

	db_close(db);
	db = NULL;
	raw_exec(RAW_SQL("PRAGMA user_version = 1000", "UPDATE chatd_schema SET version = 1000"));
	raw_close();
	ck_assert_int_eq(db_open(dbpath, &other, &cause), DB_ERROR);
	ck_assert_ptr_null(other);
	ck_assert_ptr_nonnull(cause);
	ck_assert_ptr_nonnull(strstr(cause, "newer"));
	ck_assert_ptr_nonnull(strstr(cause, "1000"));
	free(cause);
	/* Nothing was touched. */
	ck_assert_int_eq(raw_int(RAW_VERSION, NULL), 1000);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM rooms", NULL), 0);
}
END_TEST

/*
 * A version-2 database (the schema before nodes, then rows written the
 * way version 2 wrote them) opens as version 3 with its rows, its
 * sessions belonging to the lone chatd (""). SQLite's file has step 3
 * taken back out; PostgreSQL's is made afresh by steps 1 and 2.
 */
START_TEST(test_migrate_from_v2)
{
	struct db_node node;
	char *cause = NULL, *text;
	int64_t n = -1, sid;

	db_close(db);
	db = NULL;
#ifdef TEST_DB_ON_PG
	raw_exec("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
	for (int step = 1; step <= 2; step++)
		raw_exec(db_sql_migration(DB_DIALECT_PG, step));
	raw_exec("UPDATE chatd_schema SET version = 2");
	ck_assert_int_eq(raw_int("SELECT count(*) FROM information_schema.columns"
				 " WHERE table_schema = 'public' AND table_name = 'sessions'"
				 " AND column_name = 'node_id'",
			     NULL),
	    0);
	ck_assert_int_eq(raw_int(RAW_TABLE_COUNT, "nodes"), 0);
#else
	raw_exec("DROP INDEX sessions_node_open;"
		 "DROP TABLE nodes;"
		 "DROP TABLE rate_marks;"
		 "ALTER TABLE sessions DROP COLUMN node_id;"
		 "PRAGMA user_version = 2;");
	ck_assert_int_eq(raw_int("SELECT count(*) FROM pragma_table_info('sessions')"
				 " WHERE name = 'node_id'",
			     NULL),
	    0);
#endif
	ck_assert_int_eq(raw_int(RAW_VERSION, NULL), 2);
	raw_exec("INSERT INTO rooms (id, name, created_at, last_session_seq)"
		 " VALUES ('r1', 'old', 1, 2);"
		 "INSERT INTO sessions (room_id, seq, user_id, nickname, is_admin, address,"
		 " joined_at, left_at, leave_reason)"
		 " VALUES ('r1', 1, 'u1', 'Ann', 0, '192.0.2.1', 10, 20, 'left');"
		 "INSERT INTO sessions (room_id, seq, user_id, nickname, is_admin, address,"
		 " joined_at) VALUES ('r1', 2, 'u2', 'Bob', 1, NULL, 11);");
	raw_close();

	reopen();
	ck_assert_int_eq(db_schema_version(db), 3);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE node_id = ''", NULL), 2);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE room_id = 'r1' AND seq = 1"
				 " AND user_id = 'u1' AND nickname = 'Ann' AND is_admin = 0"
				 " AND address = '192.0.2.1' AND joined_at = 10 AND left_at = 20"
				 " AND leave_reason = 'left'",
			     NULL),
	    1);
	text = raw_text("SELECT name FROM rooms WHERE id = 'r1'", NULL);
	ck_assert_str_eq(text, "old");
	free(text);
	ck_assert_int_eq(raw_int(RAW_INDEX_COUNT, "sessions_node_open"), 1);
	ck_assert_int_eq(raw_int(RAW_TABLE_COUNT, "rate_marks"), 1);
	ck_assert_int_eq(db_node_get(db, "n1", &node, &cause), DB_NOTFOUND);

	/* The old open session is the lone chatd's; new rows carry on the seqs. */
	ck_assert_int_eq(db_sessions_close_node(db, "n1", "x", 30, &n, &cause), DB_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(db_sessions_close_node(db, "", "restart", 30, &n, &cause), DB_OK);
	ck_assert_int_eq(n, 1);
	sid = session_add_node("n1", "r1", "u3", 40);
	ck_assert_int_eq(raw_int("SELECT max(id) FROM sessions WHERE seq = 3 AND node_id = 'n1'"
				 " AND left_at IS NULL",
			     NULL),
	    sid);
	ck_assert_int_eq(db_node_beat(db, "n1", "i1", 1, 2, 0, &cause), DB_OK);
	ck_assert_ptr_null(cause);
}
END_TEST

#ifdef TEST_DB_ON_PG
/* No such database, no server: an error with a cause, no handle. */
START_TEST(test_open_errors_pg)
{
	struct db *other = (struct db *)1;
	char *cause = NULL, *path;

	path = xasprintf("postgres://postgres@127.0.0.1:%d/no_such_db", pgtmp_port(server));
	ck_assert_int_eq(db_open(path, &other, &cause), DB_ERROR);
	ck_assert_ptr_null(other);
	ck_assert_msg(strstr(cause, "no_such_db") != NULL, "%s", cause);
	free(cause);
	cause = NULL;
	free(path);

	/* Nobody listens on port 1. */
	other = (struct db *)1;
	ck_assert_int_eq(db_open("postgres://postgres@127.0.0.1:1/x", &other, &cause), DB_ERROR);
	ck_assert_ptr_null(other);
	ck_assert_ptr_nonnull(cause);
	free(cause);

	db_close(NULL);
}
END_TEST
#else
/* The database file: its journal mode lets readers run beside a writer. */
START_TEST(test_sqlite_wal_mode)
{
	char *mode = raw_text("PRAGMA journal_mode", NULL);

	ck_assert_str_eq(mode, "wal");
	free(mode);
}
END_TEST

START_TEST(test_open_errors)
{
	struct db *other;
	char *cause = NULL, *path;
	FILE *f;

	path = xasprintf("%s/no/such/dir/x.db", test_dir);
	ck_assert_int_eq(db_open(path, &other, &cause), DB_ERROR);
	ck_assert_ptr_null(other);
	ck_assert_ptr_nonnull(strstr(cause, path));
	free(cause);
	cause = NULL;
	free(path);

	path = new_path();
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	for (int i = 0; i < 512; i++)
		fputs("this is not a database\n", f);
	fclose(f);
	ck_assert_int_eq(db_open(path, &other, &cause), DB_ERROR);
	ck_assert_ptr_null(other);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	db_drop(path);
	free(path);

	db_close(NULL);
}
END_TEST
#endif

/*
 * Several programs start at once on a fresh file: all must open it. The
 * race (switching to WAL) is lost only now and then, hence the rounds.
 */
START_TEST(test_open_concurrent_processes)
{
	enum { N = 8, ROUNDS = 10 };
	static char *path; /* static: still reachable when a child exits */
	pid_t pids[N];
	int gate[2], status, i;
	char buf;

	/* A child must not inherit an open connection (nor leak it). */
	db_close(db);
	db = NULL;
	for (int round = 0; round < ROUNDS; round++) {
		path = new_path();
		ck_assert_int_eq(pipe(gate), 0);
		for (i = 0; i < N; i++) {
			ck_assert_int_ge(pids[i] = fork(), 0);
			if (pids[i] == 0) {
				struct db *d;
				char *cause = NULL, id[16];

				close(gate[1]);
				if (read(gate[0], &buf, 1) != 0)
					_exit(2);
				snprintf(id, sizeof id, "room%d", i);
				if (db_open(path, &d, &cause) != DB_OK ||
				    db_room_create(d, id, id, NULL, 0, i, &cause) != DB_OK) {
					fprintf(stderr, "child %d: %s\n", i, cause ? cause : "?");
					_exit(1);
				}
				db_close(d);
				_exit(0);
			}
		}
		close(gate[0]);
		close(gate[1]); /* releases every child at once */
		for (i = 0; i < N; i++) {
			ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
			ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			    "round %d: child %d failed: wait status 0x%x", round, i, status);
		}
		db_drop(dbpath);
		free(dbpath);
		dbpath = path;
		reopen();
		ck_assert_int_eq(db_schema_version(db), DB_SCHEMA_VERSION);
		ck_assert_int_eq(raw_int("SELECT count(*) FROM rooms", NULL), N);
		ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox", NULL), N);
		raw_close();
		db_close(db);
		db = NULL;
	}
}
END_TEST

/* ---- rooms ---- */

START_TEST(test_room_create_get)
{
	const char *admins[] = { "a1", "a2", "a1", "a3", "a2" };
	struct db_room room;
	struct db_health h;
	cJSON *data, *list;
	char *cause = NULL, *text;

	room_create("r1", "Room one", admins, 5, 1234);
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_str_eq(room.id, "r1");
	ck_assert_str_eq(room.name, "Room one");
	ck_assert_int_eq(room.created_at, 1234);
	ck_assert_int_eq(room.closed_at, 0);
	ck_assert_ptr_null(room.close_reason);
	ck_assert_int_eq(room.peak_users, 0);
	ck_assert_int_eq(room.last_seq, 0);
	/* Duplicates dropped, first occurrences in order. */
	ck_assert_uint_eq(room.n_admins, 3);
	ck_assert_str_eq(room.admins[0], "a1");
	ck_assert_str_eq(room.admins[1], "a2");
	ck_assert_str_eq(room.admins[2], "a3");
	db_room_clear(&room);
	ck_assert_ptr_null(room.id);
	ck_assert_uint_eq(room.n_admins, 0);

	/* The event and the sync request came with it. */
	ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox WHERE kind = 'room_created'"
				 " AND room_id = 'r1' AND created_at = 1234 AND user_id IS NULL",
			     NULL),
	    1);
	text = raw_text("SELECT data FROM outbox WHERE room_id = 'r1'", NULL);
	ck_assert_ptr_nonnull(data = cJSON_Parse(text));
	ck_assert_str_eq(cJSON_GetObjectItem(data, "room_name")->valuestring, "Room one");
	list = cJSON_GetObjectItem(data, "admin_user_ids");
	ck_assert_int_eq(cJSON_GetArraySize(list), 3);
	ck_assert_str_eq(cJSON_GetArrayItem(list, 0)->valuestring, "a1");
	ck_assert_str_eq(cJSON_GetArrayItem(list, 2)->valuestring, "a3");
	cJSON_Delete(data);
	free(text);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sync_requests WHERE reason = 'room_created'"
				 " AND room_id = 'r1' AND handled_at IS NULL AND created_at = 1234",
			     NULL),
	    1);
	ck_assert_int_eq(db_health(db, &h, &cause), DB_OK);
	ck_assert_int_eq(h.rooms_open, 1);
	ck_assert_int_eq(h.rooms_closed, 0);
	ck_assert_int_eq(h.pending_sync_requests, 1);
	ck_assert_int_eq(h.outbox_events, 1);

	/* No admins at all. */
	room_create("r2", "Room two", NULL, 0, 1235);
	ck_assert_int_eq(db_room_get(db, "r2", &room, &cause), DB_OK);
	ck_assert_uint_eq(room.n_admins, 0);
	ck_assert_ptr_null(room.admins);
	db_room_clear(&room);
	text = raw_text("SELECT data FROM outbox WHERE room_id = 'r2'", NULL);
	ck_assert_str_eq(text, "{\"room_name\":\"Room two\",\"admin_user_ids\":[]}");
	free(text);
}
END_TEST

START_TEST(test_room_create_conflict)
{
	const char *admins[] = { "a1" };
	const char *others[] = { "intruder" };
	struct db_room room;
	char *cause = NULL;

	room_create("r1", "first", admins, 1, 10);
	ck_assert_int_eq(db_room_create(db, "r1", "second", others, 1, 20, &cause), DB_CONFLICT);
	ck_assert_ptr_null(cause);
	/* The failed attempt left nothing behind. */
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_str_eq(room.name, "first");
	ck_assert_int_eq(room.created_at, 10);
	ck_assert_uint_eq(room.n_admins, 1);
	ck_assert_str_eq(room.admins[0], "a1");
	db_room_clear(&room);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox", NULL), 1);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sync_requests", NULL), 1);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM room_admins", NULL), 1);
}
END_TEST

START_TEST(test_room_create_error_rolls_back)
{
	const char *admins[] = { "a1", NULL };
	char *cause = NULL;

	/* A NULL admin violates NOT NULL after the room row went in. */
	ck_assert_int_eq(db_room_create(db, "r1", "x", admins, 2, 10, &cause), DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM rooms", NULL), 0);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM room_admins", NULL), 0);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox", NULL), 0);
	/* The connection is usable afterwards. */
	room_create("r1", "x", admins, 1, 10);
}
END_TEST

START_TEST(test_room_get_notfound)
{
	struct db_room room;
	char *cause = NULL;

	ck_assert_int_eq(db_room_get(db, "nope", &room, &cause), DB_NOTFOUND);
	ck_assert_ptr_null(cause);
	ck_assert_ptr_null(room.id);
	db_room_clear(&room);
}
END_TEST

struct listed {
	int n, stop_after;
	char ids[8][16];
	size_t n_admins[8];
	char first_admin[8][16];
	int64_t closed_at[8];
	int64_t message_count[8];
};

static int
list_each(const struct db_room *room, void *arg)
{
	struct listed *l = arg;
	struct db_room_counts c;
	char *cause = NULL;

	ck_assert_int_lt(l->n, 8);
	snprintf(l->ids[l->n], sizeof l->ids[0], "%s", room->id);
	l->n_admins[l->n] = room->n_admins;
	snprintf(l->first_admin[l->n], sizeof l->first_admin[0], "%s",
	    room->n_admins > 0 ? room->admins[0] : "");
	l->closed_at[l->n] = room->closed_at;
	/* Other calls on the same connection are allowed from the callback. */
	ck_assert_int_eq(db_room_counts(db, room->id, &c, &cause), DB_OK);
	l->message_count[l->n] = c.message_count;
	l->n++;
	return l->stop_after != 0 && l->n >= l->stop_after;
}

START_TEST(test_room_list)
{
	const char *a_admins[] = { "x", "y" };
	const char *c_admins[] = { "z" };
	struct listed l;
	char *cause = NULL;

	memset(&l, 0, sizeof l);
	ck_assert_int_eq(db_room_list(db, 1, list_each, &l, &cause), DB_OK);
	ck_assert_int_eq(l.n, 0);

	room_create("rA", "A", a_admins, 2, 100);
	room_create("rB", "B", NULL, 0, 200);
	room_create("rC", "C", c_admins, 1, 300);
	message_add("rC", "u", "m", 400, NULL);
	message_add("rC", "u", "m", 401, NULL);
	ck_assert_int_eq(db_room_close(db, "rB", "done", 500, &cause), DB_OK);

	memset(&l, 0, sizeof l);
	ck_assert_int_eq(db_room_list(db, 0, list_each, &l, &cause), DB_OK);
	ck_assert_int_eq(l.n, 2);
	ck_assert_str_eq(l.ids[0], "rA");
	ck_assert_uint_eq(l.n_admins[0], 2);
	ck_assert_str_eq(l.first_admin[0], "x");
	ck_assert_str_eq(l.ids[1], "rC");
	ck_assert_uint_eq(l.n_admins[1], 1);
	ck_assert_str_eq(l.first_admin[1], "z");
	ck_assert_int_eq(l.message_count[1], 2);

	memset(&l, 0, sizeof l);
	ck_assert_int_eq(db_room_list(db, 1, list_each, &l, &cause), DB_OK);
	ck_assert_int_eq(l.n, 3);
	ck_assert_str_eq(l.ids[0], "rA");
	ck_assert_str_eq(l.ids[1], "rB");
	ck_assert_uint_eq(l.n_admins[1], 0);
	ck_assert_int_eq(l.closed_at[1], 500);
	ck_assert_str_eq(l.ids[2], "rC");

	/* each() returning non-zero stops the walk. */
	memset(&l, 0, sizeof l);
	l.stop_after = 1;
	ck_assert_int_eq(db_room_list(db, 1, list_each, &l, &cause), DB_OK);
	ck_assert_int_eq(l.n, 1);
	ck_assert_str_eq(l.ids[0], "rA");
	memset(&l, 0, sizeof l);
	l.stop_after = 2;
	ck_assert_int_eq(db_room_list(db, 1, list_each, &l, &cause), DB_OK);
	ck_assert_int_eq(l.n, 2);
	ck_assert_ptr_null(cause);
}
END_TEST

START_TEST(test_room_close)
{
	struct db_room room;
	struct db_health h;
	struct db_page_info info;
	struct got g = { 0 };
	char *cause = NULL, *text;

	room_create("r1", "Lobby", NULL, 0, 10);
	message_add("r1", "u", "before close", 15, NULL);
	ck_assert_int_eq(db_room_close(db, "r1", "maintenance", 20, &cause), DB_OK);
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_int_eq(room.closed_at, 20);
	ck_assert_str_eq(room.close_reason, "maintenance");
	db_room_clear(&room);

	ck_assert_int_eq(db_room_close(db, "r1", "again", 30, &cause), DB_CONFLICT);
	ck_assert_int_eq(db_room_close(db, "nope", "x", 30, &cause), DB_NOTFOUND);
	ck_assert_ptr_null(cause);
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_int_eq(room.closed_at, 20);
	ck_assert_str_eq(room.close_reason, "maintenance");
	db_room_clear(&room);

	ck_assert_int_eq(
	    raw_int("SELECT count(*) FROM outbox WHERE kind = 'room_closed'"
		    " AND room_id = 'r1' AND reason = 'maintenance' AND created_at = 20",
		NULL),
	    1);
	text = raw_text("SELECT data FROM outbox WHERE kind = 'room_closed'", NULL);
	ck_assert_str_eq(text, "{\"room_name\":\"Lobby\"}");
	free(text);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sync_requests WHERE reason = 'room_closed'"
				 " AND room_id = 'r1'",
			     NULL),
	    1);
	ck_assert_int_eq(db_health(db, &h, &cause), DB_OK);
	ck_assert_int_eq(h.rooms_open, 0);
	ck_assert_int_eq(h.rooms_closed, 1);
	ck_assert_int_eq(h.pending_sync_requests, 2);
	ck_assert_int_eq(h.outbox_events, 2);

	/* A closed room keeps its history. */
	ck_assert_int_eq(page_messages("r1", -1, -1, 1, 10, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 1, 1, 0);
	ck_assert_str_eq(g.r[0].text, "before close");
	got_clear(&g);
}
END_TEST

START_TEST(test_room_peak_update)
{
	struct db_room room;
	char *cause = NULL;

	room_create("r1", "x", NULL, 0, 10);
	ck_assert_int_eq(db_room_peak_update(db, "r1", 5, &cause), DB_OK);
	ck_assert_int_eq(db_room_peak_update(db, "r1", 3, &cause), DB_OK);
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_int_eq(room.peak_users, 5);
	db_room_clear(&room);
	ck_assert_int_eq(db_room_peak_update(db, "r1", 9, &cause), DB_OK);
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_int_eq(room.peak_users, 9);
	db_room_clear(&room);
	ck_assert_int_eq(db_room_peak_update(db, "nope", 9, &cause), DB_NOTFOUND);
	ck_assert_ptr_null(cause);
}
END_TEST

/* ---- bans ---- */

struct bans_seen {
	int n;
	char users[8][16];
	char reasons[8][16];
	int64_t created_at[8];
	int64_t expires_at[8];
};

static int
ban_each(const struct db_ban *ban, void *arg)
{
	struct bans_seen *b = arg;

	ck_assert_int_lt(b->n, 8);
	ck_assert_str_eq(ban->room_id, "r1");
	snprintf(b->users[b->n], sizeof b->users[0], "%s", ban->user_id);
	snprintf(b->reasons[b->n], sizeof b->reasons[0], "%s",
	    ban->reason != NULL ? ban->reason : "(null)");
	b->created_at[b->n] = ban->created_at;
	b->expires_at[b->n] = ban->expires_at;
	b->n++;
	return 0;
}

static int
list_bans(int64_t now, struct bans_seen *b)
{
	char *cause = NULL;
	int rc;

	memset(b, 0, sizeof *b);
	rc = db_ban_list(db, "r1", now, ban_each, b, &cause);
	free(cause);
	return rc;
}

START_TEST(test_ban_add_list_lift)
{
	struct bans_seen b;
	char *cause = NULL;

	room_create("r1", "x", NULL, 0, 1);
	ck_assert_int_eq(list_bans(50, &b), DB_OK);
	ck_assert_int_eq(b.n, 0);
	ck_assert_int_eq(db_ban_add(db, "r1", "u1", "spam", 0, 100, &cause), DB_OK);
	ck_assert_int_eq(db_ban_add(db, "r1", "u2", NULL, 5000, 200, &cause), DB_OK);
	ck_assert_int_eq(list_bans(300, &b), DB_OK);
	ck_assert_int_eq(b.n, 2);
	ck_assert_str_eq(b.users[0], "u1");
	ck_assert_str_eq(b.reasons[0], "spam");
	ck_assert_int_eq(b.created_at[0], 100);
	ck_assert_int_eq(b.expires_at[0], 0);
	ck_assert_str_eq(b.users[1], "u2");
	ck_assert_str_eq(b.reasons[1], "(null)");
	ck_assert_int_eq(b.expires_at[1], 5000);

	ck_assert_int_eq(db_ban_lift(db, "r1", "u1", 400, &cause), DB_OK);
	ck_assert_int_eq(db_ban_lift(db, "r1", "u1", 401, &cause), DB_NOTFOUND);
	ck_assert_int_eq(list_bans(402, &b), DB_OK);
	ck_assert_int_eq(b.n, 1);
	ck_assert_str_eq(b.users[0], "u2");
	ck_assert_int_eq(raw_int("SELECT lifted_at FROM bans WHERE user_id = 'u1'", NULL), 400);

	/* Unknown room or user. */
	ck_assert_int_eq(db_ban_add(db, "nope", "u1", NULL, 0, 500, &cause), DB_NOTFOUND);
	ck_assert_int_eq(db_ban_lift(db, "nope", "u1", 500, &cause), DB_NOTFOUND);
	ck_assert_int_eq(db_ban_lift(db, "r1", "never", 500, &cause), DB_NOTFOUND);
	ck_assert_int_eq(db_ban_list(db, "nope", 500, ban_each, &b, &cause), DB_NOTFOUND);
	ck_assert_ptr_null(cause);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM bans", NULL), 2);
}
END_TEST

START_TEST(test_ban_replace_active)
{
	struct bans_seen b;
	char *cause = NULL;

	room_create("r1", "x", NULL, 0, 1);
	ck_assert_int_eq(db_ban_add(db, "r1", "u1", "first", 0, 10, &cause), DB_OK);
	ck_assert_int_eq(db_ban_add(db, "r1", "u1", "second", 5000, 20, &cause), DB_OK);
	ck_assert_int_eq(list_bans(30, &b), DB_OK);
	ck_assert_int_eq(b.n, 1);
	ck_assert_str_eq(b.reasons[0], "second");
	ck_assert_int_eq(b.created_at[0], 20);
	ck_assert_int_eq(b.expires_at[0], 5000);
	/* The old ban is kept, lifted when replaced. */
	ck_assert_int_eq(raw_int("SELECT count(*) FROM bans WHERE user_id = 'u1'", NULL), 2);
	ck_assert_int_eq(raw_int("SELECT lifted_at FROM bans WHERE reason = 'first'", NULL), 20);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM bans WHERE reason = 'second'"
				 " AND lifted_at IS NULL",
			     NULL),
	    1);
	/* A lift ends the replacement too. */
	ck_assert_int_eq(db_ban_lift(db, "r1", "u1", 40, &cause), DB_OK);
	ck_assert_int_eq(list_bans(50, &b), DB_OK);
	ck_assert_int_eq(b.n, 0);
}
END_TEST

START_TEST(test_ban_expiry)
{
	struct bans_seen b;
	char *cause = NULL;

	room_create("r1", "x", NULL, 0, 1);
	ck_assert_int_eq(db_ban_add(db, "r1", "u1", "cool off", 1000, 500, &cause), DB_OK);
	ck_assert_int_eq(list_bans(999, &b), DB_OK);
	ck_assert_int_eq(b.n, 1);
	/* In force up to, not including, expires_at. */
	ck_assert_int_eq(list_bans(1000, &b), DB_OK);
	ck_assert_int_eq(b.n, 0);
	ck_assert_int_eq(db_ban_lift(db, "r1", "u1", 1500, &cause), DB_NOTFOUND);
	/* An expired ban does not block a new one. */
	ck_assert_int_eq(db_ban_add(db, "r1", "u1", "again", 0, 1500, &cause), DB_OK);
	ck_assert_int_eq(list_bans(1600, &b), DB_OK);
	ck_assert_int_eq(b.n, 1);
	ck_assert_str_eq(b.reasons[0], "again");
	ck_assert_int_eq(b.created_at[0], 1500);
	ck_assert_int_eq(b.expires_at[0], 0);
	ck_assert_int_eq(
	    raw_int("SELECT lifted_at FROM bans WHERE reason = 'cool off'", NULL), 1500);
}
END_TEST

/* ---- text stored verbatim ---- */

START_TEST(test_verbatim_strings)
{
	const char *id = "r'; DROP TABLE rooms; --";
	const char *name = "测试房间 😀 \"quoted\" ' OR '1'='1 -- %_\\";
	const char *admins[] = { "管理员", "admin'--", "😀" };
	const char *content = "Robert'); DROP TABLE messages;-- 你好 🎉 \\x00 %s %n";
	const char *nick = "张三 🐼";
	struct db_room room;
	struct db_page_info info;
	struct got g = { 0 };
	struct bans_seen b;
	char *cause = NULL, *text;
	int64_t sid;

	room_create(id, name, admins, 3, 10);
	ck_assert_int_eq(db_room_get(db, id, &room, &cause), DB_OK);
	ck_assert_str_eq(room.id, id);
	ck_assert_str_eq(room.name, name);
	ck_assert_uint_eq(room.n_admins, 3);
	ck_assert_str_eq(room.admins[0], "管理员");
	ck_assert_str_eq(room.admins[1], "admin'--");
	ck_assert_str_eq(room.admins[2], "😀");
	db_room_clear(&room);

	ck_assert_int_eq(db_message_append(db, id, DB_MESSAGE_CHAT, "用户'1", nick, 0, content,
			     NULL, 20, NULL, NULL, &cause),
	    DB_OK);
	ck_assert_int_eq(page_messages(id, -1, -1, 1, 10, &g, &info), DB_OK);
	ck_assert_uint_eq(g.n, 1);
	ck_assert_str_eq(g.r[0].room_id, id);
	ck_assert_str_eq(g.r[0].user_id, "用户'1");
	ck_assert_str_eq(g.r[0].nickname, nick);
	ck_assert_str_eq(g.r[0].text, content);
	got_clear(&g);

	ck_assert_int_eq(
	    db_session_open(db, "", id, "u'", nick, 0, "2001:db8::1", 30, &sid, &cause), DB_OK);
	ck_assert_int_eq(db_session_close(db, sid, "bye 👋 '); --", 40, &cause), DB_OK);
	ck_assert_int_eq(page_sessions(id, -1, -1, 1, 10, &g, &info), DB_OK);
	ck_assert_uint_eq(g.n, 1);
	ck_assert_str_eq(g.r[0].nickname, nick);
	ck_assert_str_eq(g.r[0].extra, "bye 👋 '); --");
	got_clear(&g);

	/* ban_each insists on room "r1", so use a room of that name for bans. */
	room_create("r1", "x", NULL, 0, 1);
	ck_assert_int_eq(db_ban_add(db, "r1", "u' OR 1=1", "原因", 0, 50, &cause), DB_OK);
	ck_assert_int_eq(list_bans(60, &b), DB_OK);
	ck_assert_int_eq(b.n, 1);
	ck_assert_str_eq(b.users[0], "u' OR 1=1");
	ck_assert_str_eq(b.reasons[0], "原因");

	/* The room name reached the event JSON intact. */
	text = raw_text(
	    RAW_SQL("SELECT json_extract(data, '$.room_name') FROM outbox WHERE room_id = ?1",
		"SELECT CAST(data AS json) ->> 'room_name' FROM outbox WHERE room_id = ?1"),
	    id);
	ck_assert_str_eq(text, name);
	free(text);
	ck_assert_int_eq(raw_int(RAW_TABLE_COUNT, "rooms"), 1);
	ck_assert_int_eq(raw_int(RAW_TABLE_COUNT, "messages"), 1);
}
END_TEST

/* ---- messages ---- */

START_TEST(test_message_append)
{
	struct db_room room;
	struct db_page_info info;
	struct got g = { 0 };
	char *cause = NULL;
	int64_t id1, id2, id3, idb, seq, id;

	room_create("r1", "one", NULL, 0, 1);
	room_create("r2", "two", NULL, 0, 1);
	id1 = message_add("r1", "u1", "a", 100, &seq);
	ck_assert_int_eq(seq, 1);
	idb = message_add("r2", "u1", "b", 101, &seq);
	ck_assert_int_eq(seq, 1);
	id2 = message_add("r1", "u2", "c", 102, &seq);
	ck_assert_int_eq(seq, 2);
	ck_assert_int_eq(db_message_append(db, "r1", DB_MESSAGE_CUSTOM, "admin", "Boss", 1,
			     "{\"amount\":100}", "lucky_money", 103, &id3, &seq, &cause),
	    DB_OK);
	ck_assert_int_eq(seq, 3);
	ck_assert_int_gt(idb, id1);
	ck_assert_int_gt(id2, idb);
	ck_assert_int_gt(id3, id2);
	/* A custom event published by the system has no user. */
	ck_assert_int_eq(db_message_append(db, "r1", DB_MESSAGE_CUSTOM, NULL, NULL, 0, "{}",
			     "announcement", 104, NULL, NULL, &cause),
	    DB_OK);
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_int_eq(room.last_seq, 4);
	db_room_clear(&room);

	ck_assert_int_eq(page_messages("r1", -1, -1, 1, 10, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 4, 4, 0);
	ck_assert_int_eq(g.r[0].id, id1);
	ck_assert_str_eq(g.r[0].room_id, "r1");
	ck_assert_int_eq(g.r[0].kind, DB_MESSAGE_CHAT);
	ck_assert_str_eq(g.r[0].user_id, "u1");
	ck_assert_str_eq(g.r[0].nickname, "u1");
	ck_assert_int_eq(g.r[0].is_admin, 0);
	ck_assert_str_eq(g.r[0].text, "a");
	ck_assert_ptr_null(g.r[0].extra);
	ck_assert_int_eq(g.r[0].t1, 100);
	ck_assert_int_eq(g.r[2].id, id3);
	ck_assert_int_eq(g.r[2].kind, DB_MESSAGE_CUSTOM);
	ck_assert_int_eq(g.r[2].is_admin, 1);
	ck_assert_str_eq(g.r[2].nickname, "Boss");
	ck_assert_str_eq(g.r[2].text, "{\"amount\":100}");
	ck_assert_str_eq(g.r[2].extra, "lucky_money");
	ck_assert_ptr_null(g.r[3].user_id);
	got_clear(&g);

	/* Errors: no room; a chat line without a user; an event without a type. */
	id = -7;
	ck_assert_int_eq(db_message_append(db, "nope", DB_MESSAGE_CHAT, "u", "u", 0, "x", NULL, 1,
			     &id, &seq, &cause),
	    DB_NOTFOUND);
	ck_assert_ptr_null(cause);
	ck_assert_int_eq(id, -7);
	ck_assert_int_eq(db_message_append(db, "r1", DB_MESSAGE_CHAT, NULL, NULL, 0, "x", NULL, 1,
			     NULL, NULL, &cause),
	    DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(db_message_append(db, "r1", DB_MESSAGE_CUSTOM, "u", "u", 1, "{}", NULL, 1,
			     NULL, NULL, &cause),
	    DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;
	/* The failed appends did not use up a seq. */
	id = message_add("r1", "u1", "after errors", 105, &seq);
	ck_assert_int_eq(seq, 5);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages WHERE room_id = 'r1'", NULL), 5);

	/* A closed room still records what chatd had in flight. */
	ck_assert_int_eq(db_room_close(db, "r2", "end", 200, &cause), DB_OK);
	message_add("r2", "u1", "late", 201, &seq);
	ck_assert_int_eq(seq, 2);
}
END_TEST

static int
range_messages(const char *room, int64_t from_seq, int64_t to_seq, struct got *g)
{
	char *cause = NULL;
	int rc;

	got_clear(g);
	rc = db_messages_range(db, room, from_seq, to_seq, got_message, g, &cause);
	if (rc == DB_ERROR)
		ck_abort_msg("db_messages_range: %s", cause);
	return rc;
}

/* A join checked against the record: the room's closed state and the user's ban in force. */
START_TEST(test_join_state)
{
	char *cause = NULL;
	int closed = -1, banned = -1;

	room_create("r1", "one", NULL, 0, 1);
	ck_assert_int_eq(db_join_state(db, "r1", "u", 1000, &closed, &banned, &cause), DB_OK);
	ck_assert_int_eq(closed, 0);
	ck_assert_int_eq(banned, 0);
	ck_assert_int_eq(db_ban_add(db, "r1", "u", "spam", 5000, 1000, &cause), DB_OK);
	ck_assert_int_eq(db_join_state(db, "r1", "u", 2000, &closed, &banned, &cause), DB_OK);
	ck_assert_int_eq(banned, 1);
	ck_assert_int_eq(db_join_state(db, "r1", "other", 2000, &closed, &banned, &cause), DB_OK);
	ck_assert_int_eq(banned, 0);
	/* The ban ran out. */
	ck_assert_int_eq(db_join_state(db, "r1", "u", 5000, &closed, &banned, &cause), DB_OK);
	ck_assert_int_eq(banned, 0);
	ck_assert_int_eq(db_room_close(db, "r1", "done", 6000, &cause), DB_OK);
	ck_assert_int_eq(db_join_state(db, "r1", "u", 7000, &closed, &banned, &cause), DB_OK);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(
	    db_join_state(db, "nope", "u", 7000, &closed, &banned, &cause), DB_NOTFOUND);
	free(cause);
}
END_TEST

/* The rate limit across nodes: a check, a mark, and marks no interval reaches pruned. */
START_TEST(test_rate_marks)
{
	char *cause = NULL;
	int64_t wait = -1, n = -1;

	room_create("r1", "one", NULL, 0, 1);
	/* Nobody posted yet: free to post. */
	ck_assert_int_eq(db_rate_check(db, "r1", "u", 10000, 3000, &wait, &cause), DB_OK);
	ck_assert_int_eq(wait, 0);
	ck_assert_int_eq(db_rate_mark(db, "r1", "u", 10000, &cause), DB_OK);
	ck_assert_int_eq(db_rate_check(db, "r1", "u", 11000, 3000, &wait, &cause), DB_OK);
	ck_assert_int_eq(wait, 2000);
	ck_assert_int_eq(db_rate_check(db, "r1", "u", 13000, 3000, &wait, &cause), DB_OK);
	ck_assert_int_eq(wait, 0);
	/* Other users and rooms have their own marks. */
	ck_assert_int_eq(db_rate_check(db, "r1", "v", 11000, 3000, &wait, &cause), DB_OK);
	ck_assert_int_eq(wait, 0);
	ck_assert_int_eq(db_rate_check(db, "r2", "u", 11000, 3000, &wait, &cause), DB_OK);
	ck_assert_int_eq(wait, 0);
	/* A mark never moves back (a node with a slower clock). */
	ck_assert_int_eq(db_rate_mark(db, "r1", "u", 9000, &cause), DB_OK);
	ck_assert_int_eq(db_rate_check(db, "r1", "u", 11000, 3000, &wait, &cause), DB_OK);
	ck_assert_int_eq(wait, 2000);
	ck_assert_int_eq(db_rate_mark(db, "r1", "u", 20000, &cause), DB_OK);
	ck_assert_int_eq(db_rate_check(db, "r1", "u", 21000, 3000, &wait, &cause), DB_OK);
	ck_assert_int_eq(wait, 2000);
	/* Pruning forgets marks before the bound only. */
	ck_assert_int_eq(db_rate_mark(db, "r1", "old", 5000, &cause), DB_OK);
	ck_assert_int_eq(db_rate_prune(db, 15000, &cause), DB_OK);
	n = raw_int("SELECT count(*) FROM rate_marks WHERE user_id = 'old'", NULL);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(raw_int("SELECT at FROM rate_marks WHERE user_id = ?1", "u"), 20000);

	/* Inside a writer's batch a failed mark spoils only itself. */
	ck_assert_int_eq(db_tx_begin(db, &cause), DB_OK);
	ck_assert_int_eq(db_rate_mark(db, "r1", NULL, 30000, &cause), DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(db_tx_open(db), 1);
	ck_assert_int_eq(db_rate_mark(db, "r1", "w", 30000, &cause), DB_OK);
	ck_assert_int_eq(db_rate_prune(db, 1000, &cause), DB_OK);
	message_add("r1", "w", "kept", 30000, NULL);
	ck_assert_int_eq(db_tx_commit(db, &cause), DB_OK);
	ck_assert_int_eq(raw_int("SELECT at FROM rate_marks WHERE user_id = ?1", "w"), 30000);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages WHERE content = 'kept'", NULL), 1);
	ck_assert_ptr_null(cause);
}
END_TEST

START_TEST(test_messages_range)
{
	struct db_page_info info;
	struct got all = { 0 }, g = { 0 };
	char *cause = NULL, text[32];
	int64_t i;

	room_create("r1", "one", NULL, 0, 1);
	room_create("r2", "two", NULL, 0, 1);
	/* Every third message an event, interleaved with another room's. */
	for (i = 1; i <= 10; i++) {
		snprintf(
		    text, sizeof text, i % 3 == 0 ? "{\"n\":%lld}" : "line %lld", (long long)i);
		if (i % 3 == 0)
			ck_assert_int_eq(db_message_append(db, "r1", DB_MESSAGE_CUSTOM, "adm",
					     "Boss", 1, text, "poll", 100 + i, NULL, NULL, &cause),
			    DB_OK);
		else
			message_add("r1", "u1", text, 100 + i, NULL);
		message_add("r2", "u2", "other", 100 + i, NULL);
	}
	ck_assert_int_eq(page_messages("r1", -1, -1, 1, 100, &all, &info), DB_OK);
	ck_assert_uint_eq(all.n, 10);

	/* The window asked for, in seq order, each row as paging reads it. */
	ck_assert_int_eq(range_messages("r1", 3, 7, &g), DB_OK);
	ck_assert_uint_eq(g.n, 5);
	for (i = 0; i < 5; i++) {
		const struct got_row *a = &g.r[i], *b = &all.r[i + 2];

		ck_assert_int_eq(a->seq, 3 + i);
		ck_assert_int_eq(a->id, b->id);
		ck_assert_int_eq(a->t1, b->t1);
		ck_assert_int_eq(a->kind, b->kind);
		ck_assert_int_eq(a->is_admin, b->is_admin);
		ck_assert_str_eq(a->room_id, "r1");
		ck_assert_str_eq(a->user_id, b->user_id);
		ck_assert_str_eq(a->nickname, b->nickname);
		ck_assert_str_eq(a->text, b->text);
		if (b->extra == NULL)
			ck_assert_ptr_null(a->extra);
		else
			ck_assert_str_eq(a->extra, b->extra);
	}
	ck_assert_int_eq(g.r[0].kind, DB_MESSAGE_CUSTOM);
	ck_assert_str_eq(g.r[0].extra, "poll");
	ck_assert_str_eq(g.r[0].text, "{\"n\":3}");
	ck_assert_int_eq(g.r[1].kind, DB_MESSAGE_CHAT);
	ck_assert_ptr_null(g.r[1].extra);
	ck_assert_str_eq(g.r[1].text, "line 4");
	ck_assert_int_eq(g.r[3].kind, DB_MESSAGE_CUSTOM);

	/* Bounds past either end, a single seq, an empty window. */
	ck_assert_int_eq(range_messages("r1", 8, 20, &g), DB_OK);
	ck_assert_uint_eq(g.n, 3);
	ck_assert_int_eq(g.r[0].seq, 8);
	ck_assert_int_eq(g.r[2].seq, 10);
	ck_assert_int_eq(range_messages("r1", 0, 2, &g), DB_OK);
	ck_assert_uint_eq(g.n, 2);
	ck_assert_int_eq(g.r[1].seq, 2);
	ck_assert_int_eq(range_messages("r1", 6, 6, &g), DB_OK);
	ck_assert_uint_eq(g.n, 1);
	ck_assert_int_eq(g.r[0].seq, 6);
	ck_assert_int_eq(range_messages("r1", 5, 4, &g), DB_OK);
	ck_assert_uint_eq(g.n, 0);
	ck_assert_int_eq(range_messages("r1", 11, 20, &g), DB_OK);
	ck_assert_uint_eq(g.n, 0);
	ck_assert_int_eq(range_messages("nope", 1, 10, &g), DB_OK);
	ck_assert_uint_eq(g.n, 0);

	/* each() stops the walk. */
	got_clear(&g);
	g.stop_after = 2;
	ck_assert_int_eq(db_messages_range(db, "r1", 1, 10, got_message, &g, &cause), DB_OK);
	ck_assert_uint_eq(g.n, 2);
	ck_assert_int_eq(g.r[1].seq, 2);
	got_clear(&g);
	got_clear(&all);
	ck_assert_ptr_null(cause);
}
END_TEST

START_TEST(test_tx_batch)
{
	struct db_room room;
	char *cause = NULL;
	int64_t seq;
	int i;

	room_create("r1", "x", NULL, 0, 1);
	ck_assert_int_eq(db_tx_begin(db, &cause), DB_OK);
	ck_assert_int_eq(db_tx_begin(db, &cause), DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;
	for (i = 1; i <= 1000; i++) {
		message_add("r1", "u", "m", i, &seq);
		ck_assert_int_eq(seq, i);
		if (i == 500) {
			/* Failures inside the batch spoil only themselves. */
			ck_assert_int_eq(db_message_append(db, "nope", DB_MESSAGE_CHAT, "u", "u", 0,
					     "x", NULL, 1, NULL, NULL, &cause),
			    DB_NOTFOUND);
			ck_assert_int_eq(db_message_append(db, "r1", DB_MESSAGE_CHAT, NULL, "u", 0,
					     "x", NULL, 1, NULL, NULL, &cause),
			    DB_ERROR);
			free(cause);
			cause = NULL;
			ck_assert_int_eq(
			    db_room_create(db, "r1", "dup", NULL, 0, 1, &cause), DB_CONFLICT);
		}
	}
	/* Another connection sees nothing before the commit. */
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages", NULL), 0);
	ck_assert_int_eq(db_tx_commit(db, &cause), DB_OK);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages", NULL), 1000);
	ck_assert_int_eq(raw_int("SELECT max(seq) FROM messages", NULL), 1000);
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_int_eq(room.last_seq, 1000);
	db_room_clear(&room);

	/* Rollback discards the whole batch. */
	ck_assert_int_eq(db_tx_begin(db, &cause), DB_OK);
	for (i = 0; i < 5; i++)
		message_add("r1", "u", "gone", 2000, NULL);
	db_tx_rollback(db);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages", NULL), 1000);
	message_add("r1", "u", "next", 3000, &seq);
	ck_assert_int_eq(seq, 1001);

	/* Closing with a batch open drops it too. */
	ck_assert_int_eq(db_tx_begin(db, &cause), DB_OK);
	message_add("r1", "u", "lost", 4000, NULL);
	reopen();
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages", NULL), 1001);
	ck_assert_ptr_null(cause);
}
END_TEST

/*
 * The transaction state db.c keeps itself (the backend is asked only
 * whether the engine ended a transaction) and the failure kinds the
 * backend reports: a batch, a commit with nothing open, a rollback, a
 * permanent failure inside a batch, a BEGIN that waits out the lock.
 */
START_TEST(test_tx_state)
{
	char *cause = NULL;
	int64_t seq;

	room_create("r1", "x", NULL, 0, 1);
	ck_assert_int_eq(db_tx_open(db), 0);
	ck_assert_int_eq(db_tx_begin(db, &cause), DB_OK);
	ck_assert_int_eq(db_tx_open(db), 1);
	message_add("r1", "u", "a", 1, &seq);
	ck_assert_int_eq(db_tx_open(db), 1);
	/* No such room: nothing written, and the batch goes on. */
	ck_assert_int_eq(db_message_append(db, "nope", DB_MESSAGE_CHAT, "u", "u", 0, "x", NULL, 1,
			     NULL, NULL, &cause),
	    DB_NOTFOUND);
	ck_assert_int_eq(db_tx_open(db), 1);
	/* A CHECK constraint fails the same way every time. */
	ck_assert_int_eq(db_message_append(db, "r1", DB_MESSAGE_CHAT, NULL, "u", 0, "x", NULL, 1,
			     NULL, NULL, &cause),
	    DB_ERROR);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(db_failure_transient(db), 0);
	ck_assert_int_eq(db_failure_was_busy(db), 0);
	ck_assert_int_eq(db_tx_open(db), 1);
	ck_assert_int_eq(db_tx_commit(db, &cause), DB_OK);
	ck_assert_int_eq(db_tx_open(db), 0);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages", NULL), 1);

	/* Nothing to commit: an error, and the next write still begins its own. */
	ck_assert_int_eq(db_tx_commit(db, &cause), DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(db_tx_open(db), 0);
	message_add("r1", "u", "b", 2, &seq);
	ck_assert_int_eq(seq, 2);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages", NULL), 2);

	ck_assert_int_eq(db_tx_begin(db, &cause), DB_OK);
	message_add("r1", "u", "gone", 3, NULL);
	db_tx_rollback(db);
	ck_assert_int_eq(db_tx_open(db), 0);
	db_tx_rollback(db);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages", NULL), 2);

	/* Another process holds the write lock past the busy timeout. */
	raw_exec(RAW_BEGIN_WRITE);
	ck_assert_int_eq(db_tx_begin(db, &cause), DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(db_tx_open(db), 0);
	ck_assert_int_eq(db_failure_was_busy(db), 1);
	ck_assert_int_eq(db_failure_transient(db), 1);
	db_failure_reset(db);
	ck_assert_int_eq(db_failure_was_busy(db), 0);
	ck_assert_int_eq(db_failure_transient(db), 0);
	raw_exec("ROLLBACK");
	ck_assert_int_eq(db_tx_begin(db, &cause), DB_OK);
	message_add("r1", "u", "c", 4, &seq);
	ck_assert_int_eq(db_tx_commit(db, &cause), DB_OK);
	ck_assert_int_eq(seq, 3);
	ck_assert_ptr_null(cause);
}
END_TEST

#ifdef TEST_DB_ON_PG
/*
 * A chat message in a batch runs without a savepoint on PostgreSQL
 * (db_op_begin_bare()): when the database itself fails under it (here
 * the server ends the session) the whole batch is gone, db_tx_open() says
 * so, the failure may go away, and the next write starts afresh on a new
 * session with the batch's seqs unused.
 */
START_TEST(test_pg_batch_lost_session)
{
	char *cause = NULL;
	int64_t seq;

	room_create("r1", "x", NULL, 0, 1);
	ck_assert_int_eq(db_tx_begin(db, &cause), DB_OK);
	message_add("r1", "u", "a", 1, &seq);
	message_add("r1", "u", "b", 2, &seq);
	ck_assert_int_eq(seq, 2);
	/* Every other session on this database, with a wait for its end. */
	raw_exec("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
		 " WHERE datname = current_database() AND pid <> pg_backend_pid()");
	ck_assert_int_eq(db_message_append(db, "r1", DB_MESSAGE_CHAT, "u", "u", 0, "c", NULL, 3,
			     NULL, &seq, &cause),
	    DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(db_failure_transient(db), 1);
	ck_assert_int_eq(db_tx_open(db), 0);
	message_add("r1", "u", "d", 4, &seq);
	ck_assert_int_eq(seq, 1);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages", NULL), 1);
}
END_TEST
#endif

/* Ten messages in r1, one per second from T0+1, at half past each second. */
static void
ten_messages(void)
{
	char text[16];

	room_create("r1", "x", NULL, 0, 1);
	room_create("other", "x", NULL, 0, 1);
	for (int i = 1; i <= 10; i++) {
		snprintf(text, sizeof text, "m%d", i);
		message_add("r1", "u", text, (T0 + i) * 1000LL + 500, NULL);
		message_add("other", "u", "noise", (T0 + i) * 1000LL + 500, NULL);
	}
}

START_TEST(test_messages_page_no_window)
{
	struct db_page_info info;
	struct got g = { 0 };

	ten_messages();
	ck_assert_int_eq(page_messages("r1", -1, -1, 1, 3, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 3, 10, 1);
	ck_assert_str_eq(g.r[0].text, "m1");
	ck_assert_str_eq(g.r[2].text, "m3");
	ck_assert_int_eq(g.r[0].t1, (T0 + 1) * 1000LL + 500);
	ck_assert_int_eq(page_messages("r1", -1, -1, 2, 3, &g, &info), DB_OK);
	assert_seqs(&g, &info, 4, 6, 10, 1);
	ck_assert_int_eq(page_messages("r1", -1, -1, 4, 3, &g, &info), DB_OK);
	assert_seqs(&g, &info, 10, 10, 10, 0);
	ck_assert_str_eq(g.r[0].text, "m10");
	/* Past the end. */
	ck_assert_int_eq(page_messages("r1", -1, -1, 5, 3, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 10, 0);
	ck_assert_int_eq(page_messages("r1", -1, -1, INT64_MAX, 3, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 10, 0);
	/* Limit beyond the total; exact multiples. */
	ck_assert_int_eq(page_messages("r1", -1, -1, 1, 1000, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 10, 10, 0);
	ck_assert_int_eq(page_messages("r1", -1, -1, 1, INT64_MAX, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 10, 10, 0);
	ck_assert_int_eq(page_messages("r1", -1, -1, 1, 10, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 10, 10, 0);
	ck_assert_int_eq(page_messages("r1", -1, -1, 2, 5, &g, &info), DB_OK);
	assert_seqs(&g, &info, 6, 10, 10, 0);
	ck_assert_int_eq(page_messages("r1", -1, -1, 1, 5, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 5, 10, 1);
	for (size_t i = 0; i < g.n; i++)
		ck_assert_str_eq(g.r[i].room_id, "r1");
	got_clear(&g);
}
END_TEST

START_TEST(test_messages_page_window)
{
	struct db_page_info info;
	struct got g = { 0 };

	ten_messages();
	ck_assert_int_eq(page_messages("r1", T0 + 3, T0 + 6, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 3, 6, 4, 0);
	ck_assert_str_eq(g.r[0].text, "m3");
	ck_assert_int_eq(page_messages("r1", T0 + 3, T0 + 6, 1, 3, &g, &info), DB_OK);
	assert_seqs(&g, &info, 3, 5, 4, 1);
	ck_assert_int_eq(page_messages("r1", T0 + 3, T0 + 6, 2, 3, &g, &info), DB_OK);
	assert_seqs(&g, &info, 6, 6, 4, 0);
	ck_assert_int_eq(page_messages("r1", T0 + 3, T0 + 6, 3, 3, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 4, 0);
	/* One bound only. */
	ck_assert_int_eq(page_messages("r1", T0 + 8, -1, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 8, 10, 3, 0);
	ck_assert_int_eq(page_messages("r1", -1, T0 + 2, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 2, 2, 0);
	ck_assert_int_eq(page_messages("r1", T0, T0 + 100000, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 10, 10, 0);
	ck_assert_int_eq(page_messages("r1", T0 + 5, T0 + 5, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 5, 5, 1, 0);
	ck_assert_str_eq(g.r[0].text, "m5");
	/* Empty windows: after the last, before the first, inverted. */
	ck_assert_int_eq(page_messages("r1", T0 + 11, -1, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 0, 0);
	ck_assert_int_eq(page_messages("r1", -1, T0, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 0, 0);
	ck_assert_int_eq(page_messages("r1", T0 + 6, T0 + 3, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 0, 0);
	ck_assert_int_eq(page_messages("r1", 0, 0, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 0, 0);
	/* Bounds beyond what milliseconds hold neither overflow nor cut wrongly. */
	ck_assert_int_eq(page_messages("r1", INT64_MAX, -1, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 0, 0);
	ck_assert_int_eq(page_messages("r1", -1, INT64_MAX, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 10, 10, 0);
	ck_assert_int_eq(
	    page_messages("r1", INT64_MAX / 1000, INT64_MAX / 1000, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 0, 0);
	/* Any negative bound means none. */
	ck_assert_int_eq(page_messages("r1", -5, INT64_MIN, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 10, 10, 0);
	got_clear(&g);
}
END_TEST

START_TEST(test_messages_page_same_millisecond)
{
	struct db_page_info info;
	struct got g = { 0 };

	room_create("r1", "x", NULL, 0, 1);
	message_add("r1", "u", "before", (T0 + 19) * 1000LL + 999, NULL);
	message_add("r1", "u", "a", (T0 + 20) * 1000LL, NULL);
	message_add("r1", "u", "b", (T0 + 20) * 1000LL, NULL);
	message_add("r1", "u", "c", (T0 + 20) * 1000LL, NULL);
	message_add("r1", "u", "d", (T0 + 20) * 1000LL + 999, NULL);
	message_add("r1", "u", "after", (T0 + 21) * 1000LL, NULL);
	/* Both ends of the second are inclusive, to the millisecond. */
	ck_assert_int_eq(page_messages("r1", T0 + 20, T0 + 20, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 2, 5, 4, 0);
	ck_assert_str_eq(g.r[0].text, "a");
	ck_assert_str_eq(g.r[3].text, "d");
	ck_assert_int_eq(page_messages("r1", T0 + 20, T0 + 20, 2, 2, &g, &info), DB_OK);
	assert_seqs(&g, &info, 4, 5, 4, 0);
	got_clear(&g);
}
END_TEST

START_TEST(test_messages_page_errors)
{
	struct db_page_info info;
	struct got g = { 0 };

	ck_assert_int_eq(page_messages("nope", -1, -1, 1, 10, &g, &info), DB_NOTFOUND);
	ck_assert_int_eq(page_sessions("nope", -1, -1, 1, 10, &g, &info), DB_NOTFOUND);
	room_create("r1", "x", NULL, 0, 1);
	/* An empty room is an empty page, not an error. */
	ck_assert_int_eq(page_messages("r1", -1, -1, 1, 10, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 0, 0);
	ck_assert_int_eq(page_messages("r1", T0, T0 + 10, 1, 10, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 0, 0);
	ck_assert_int_eq(page_messages("r1", -1, -1, 0, 10, &g, &info), DB_ERROR);
	ck_assert_int_eq(page_messages("r1", -1, -1, 1, 0, &g, &info), DB_ERROR);
	ck_assert_int_eq(page_messages("r1", -1, -1, -3, 10, &g, &info), DB_ERROR);
	ck_assert_int_eq(page_sessions("r1", -1, -1, 1, -1, &g, &info), DB_ERROR);
	ck_assert_uint_eq(g.n, 0);
}
END_TEST

START_TEST(test_messages_page_stop_early)
{
	struct db_page_query q = { "r1", -1, -1, 1, 5 };
	struct db_page_info info;
	struct got g = { 0 };
	char *cause = NULL;

	ten_messages();
	g.stop_after = 2;
	ck_assert_int_eq(db_messages_page(db, &q, got_message, &g, &info, &cause), DB_OK);
	ck_assert_uint_eq(g.n, 2);
	ck_assert_int_eq(info.total, 10);
	ck_assert_int_eq(info.has_more, 1);
	got_clear(&g);
	/* info may be NULL, and the statement was left reusable. */
	ck_assert_int_eq(db_messages_page(db, &q, got_message, &g, NULL, &cause), DB_OK);
	ck_assert_uint_eq(g.n, 5);
	ck_assert_int_eq(g.r[4].seq, 5);
	got_clear(&g);
}
END_TEST

#define DEEP_N 200000

/* Room "deep": DEEP_N messages, ten a second from T0 s, inserted in one statement. */
static void
deep_room_fill(void)
{
	room_create("deep", "deep", NULL, 0, 1);
	raw_exec(RAW_SQL("BEGIN IMMEDIATE;"
			 "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
			 " WHERE x < 200000)"
			 " INSERT INTO messages (room_id, seq, kind, user_id, nickname, is_admin,"
			 " content, created_at) SELECT 'deep', x, 0, 'u', 'n', 0, 'm' || x,"
			 " 1700000000000 + x * 100 FROM c;",
	    "BEGIN;"
	    " INSERT INTO messages (room_id, seq, kind, user_id, nickname, is_admin,"
	    " content, created_at) SELECT 'deep', x, 0, 'u', 'n', 0, 'm' || x,"
	    " 1700000000000 + x * 100 FROM generate_series(1, 200000) AS c(x);") "UPDATE rooms SET "
										 "last_seq = "
										 "200000 WHERE id "
										 "= 'deep';"
										 "COMMIT");
}

#ifdef TEST_DB_ON_PG
/*
 * The buffers (pages) PostgreSQL touches running statement which of
 * db.c with the given text values, from EXPLAIN (ANALYZE, BUFFERS): what
 * a query reads, measured without a clock.
 */
static long long
pg_buffers(enum db_stmt which, const char *a1, const char *a2, const char *a3)
{
	const char *vals[3] = { a1, a2, a3 };
	char *sql = xasprintf(
		 "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) %s", db_sql_text(DB_DIALECT_PG, which)),
	     *p, *err;
	cJSON *doc, *plan, *hit, *read;
	PGresult *r;
	long long n;

	for (p = sql; (p = strchr(p, '?')) != NULL; p++)
		*p = '$';
	r = PQexecParams(raw_db(), sql, a3 != NULL ? 3 : 2, NULL, vals, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		err = xstrdup(PQresultErrorMessage(r));
		PQclear(r);
		ck_abort_msg("%s: %s", sql, err);
	}
	ck_assert_ptr_nonnull(doc = cJSON_Parse(PQgetvalue(r, 0, 0)));
	plan = cJSON_GetObjectItem(cJSON_GetArrayItem(doc, 0), "Plan");
	ck_assert_ptr_nonnull(hit = cJSON_GetObjectItem(plan, "Shared Hit Blocks"));
	ck_assert_ptr_nonnull(read = cJSON_GetObjectItem(plan, "Shared Read Blocks"));
	n = (long long)(hit->valuedouble + read->valuedouble);
	cJSON_Delete(doc);
	PQclear(r);
	free(sql);
	return n;
}

/* What one page of room reads: its seq range [lo, hi] and the window's probes. */
static long long
pg_page_buffers(const char *room, int64_t lo, int64_t hi, int64_t from_ms, int64_t to_ms)
{
	char l[24], h[24], f[24], t[24];
	long long n;

	snprintf(l, sizeof l, "%lld", (long long)lo);
	snprintf(h, sizeof h, "%lld", (long long)hi);
	snprintf(f, sizeof f, "%lld", (long long)from_ms);
	snprintf(t, sizeof t, "%lld", (long long)to_ms);
	n = pg_buffers(DB_STMT_MESSAGE_RANGE, room, l, h);
	if (from_ms >= 0)
		n += pg_buffers(DB_STMT_MESSAGE_FIRST, room, f, NULL) +
		    pg_buffers(DB_STMT_MESSAGE_LAST, room, t, NULL);
	return n;
}

/*
 * Pages a deep room's page may touch beyond a 100-row room's: the extra
 * B-tree levels and heap pages; a scan to the page touches thousands.
 */
#define PG_DEEP_EXTRA_BUFFERS 30
#endif

START_TEST(test_messages_page_deep)
{
	enum { N = DEEP_N };
	struct db_room_counts c;
	struct db_page_info info;
	struct got g = { 0 };
	char *cause = NULL, want[16];
	int64_t seq, id;

	deep_room_fill();
	ck_assert_int_eq(page_messages("deep", -1, -1, 1999, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 199801, 199900, N, 1);
	for (size_t i = 0; i < g.n; i++) {
		snprintf(want, sizeof want, "m%lld", (long long)g.r[i].seq);
		ck_assert_str_eq(g.r[i].text, want);
		ck_assert_int_eq(g.r[i].t1, 1700000000000LL + g.r[i].seq * 100);
	}
	ck_assert_int_eq(page_messages("deep", -1, -1, 2000, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 199901, 200000, N, 0);
	ck_assert_int_eq(page_messages("deep", -1, -1, 2001, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, N, 0);

	/* [T0 + 10000 s, T0 + 15000 s] holds seq 100000..150009. */
	ck_assert_int_eq(page_messages("deep", T0 + 10000, T0 + 15000, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 100000, 100099, 50010, 1);
	ck_assert_int_eq(page_messages("deep", T0 + 10000, T0 + 15000, 500, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 149900, 149999, 50010, 1);
	ck_assert_int_eq(page_messages("deep", T0 + 10000, T0 + 15000, 501, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 150000, 150009, 50010, 0);
	ck_assert_str_eq(g.r[9].text, "m150009");
	got_clear(&g);

#ifdef TEST_DB_ON_PG
	{
		/*
		 * Any page of it touches about as many pages as the only page of
		 * a 100-message room: index probes, never OFFSET or a scan.
		 */
		long long small, small_window, first, deep, deep_window;

		room_create("small", "small", NULL, 0, 1);
		for (int i = 1; i <= 100; i++)
			message_add("small", "u", "m", i, NULL);
		small = pg_page_buffers("small", 1, 100, -1, -1);
		small_window = pg_page_buffers("small", 1, 100, 0, 1999);
		first = pg_page_buffers("deep", 1, 100, -1, -1);
		deep = pg_page_buffers("deep", 199801, 199900, -1, -1);
		deep_window = pg_page_buffers(
		    "deep", 149900, 149999, (T0 + 10000) * 1000LL, (T0 + 15000) * 1000LL + 999);
		ck_assert_msg(first <= small + PG_DEEP_EXTRA_BUFFERS &&
			deep <= small + PG_DEEP_EXTRA_BUFFERS &&
			deep_window <= small_window + PG_DEEP_EXTRA_BUFFERS,
		    "buffers: 100-row room %lld (window %lld); 200k-row room page 1: %lld, "
		    "page 1999: %lld, page 500 of a window: %lld",
		    small, small_window, first, deep, deep_window);
	}
#endif

	/* The room's counters agree with the bulk rows. */
	id = message_add("deep", "u", "tail", 1700000000000LL + (N + 1) * 100LL, &seq);
	ck_assert_int_eq(seq, N + 1);
	ck_assert_int_eq(db_room_counts(db, "deep", &c, &cause), DB_OK);
	ck_assert_int_eq(c.message_count, N + 1);
	ck_assert_int_eq(c.last_seq, N + 1);
	ck_assert_int_eq(c.last_message_id, id);
}
END_TEST

#ifndef TEST_DB_ON_PG
/*
 * Pages SQLite reads from the files (database and WAL), counted by a VFS
 * that is the default one with xRead wrapped: what a query touches,
 * measured without a clock. A file opened through it keeps the default
 * VFS's own file object and methods, but for xRead; kinds of files with
 * other methods (database, WAL, temporary) each get their own copy.
 */
enum { COUNTING_KINDS = 8 };
static sqlite3_vfs counting_vfs;
static sqlite3_io_methods counting_io[COUNTING_KINDS];
static const sqlite3_io_methods *default_io[COUNTING_KINDS];
static long long pages_read;

static int
counting_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	size_t k = (size_t)(f->pMethods - counting_io);

	pages_read++;
	return default_io[k]->xRead(f, buf, amt, off);
}

static int
counting_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags, int *out)
{
	sqlite3_vfs *base = vfs->pAppData;
	int rc = base->xOpen(base, name, f, flags, out);
	size_t k;

	if (rc != SQLITE_OK || f->pMethods == NULL)
		return rc;
	for (k = 0; k < COUNTING_KINDS && default_io[k] != NULL; k++)
		if (default_io[k] == f->pMethods)
			break;
	ck_assert_uint_lt(k, COUNTING_KINDS);
	if (default_io[k] == NULL) {
		default_io[k] = f->pMethods;
		counting_io[k] = *f->pMethods;
		counting_io[k].xRead = counting_read;
	}
	f->pMethods = &counting_io[k];
	return rc;
}

/* Makes the counting VFS the default for connections opened from now on. */
static void
counting_vfs_register(void)
{
	sqlite3_vfs *base = sqlite3_vfs_find(NULL);

	ck_assert_ptr_nonnull(base);
	counting_vfs = *base;
	counting_vfs.zName = "test-counting";
	counting_vfs.pAppData = base;
	counting_vfs.xOpen = counting_open;
	ck_assert_int_eq(sqlite3_vfs_register(&counting_vfs, 1), SQLITE_OK);
}

static void
counting_vfs_unregister(void)
{
	ck_assert_int_eq(sqlite3_vfs_unregister(&counting_vfs), SQLITE_OK);
}

/* Pages read for one page of 100 on a fresh connection (cold cache). */
static long long
pages_for_page(const char *path, const char *room, int64_t from_s, int64_t to_s, int64_t page)
{
	struct db_page_query q = { room, from_s, to_s, page, 100 };
	struct db_page_info info;
	struct got g = { 0 };
	char *cause = NULL;
	struct db *d;
	long long before;

	ck_assert_int_eq(db_open(path, &d, &cause), DB_OK);
	before = pages_read;
	ck_assert_int_eq(db_messages_page(d, &q, got_message, &g, &info, &cause), DB_OK);
	before = pages_read - before;
	ck_assert_uint_eq(g.n, 100);
	got_clear(&g);
	db_close(d);
	return before;
}

/*
 * Pages a deep room may read beyond the small one: its B-trees' extra
 * levels (about 10 in all here); a scan to the page reads thousands.
 */
#define DEEP_EXTRA_PAGES 30

/*
 * Any page of a 200,000-message room reads about as many pages as the
 * only page of a 100-message room (a few more B-tree levels); OFFSET or a
 * scan would read thousands. Counted pages, not times.
 */
START_TEST(test_sqlite_page_reads)
{
	char *cause = NULL;
	struct db *small_db;
	char *small_path;
	long long small, small_window, first, deep, deep_window;

	deep_room_fill();
	small_path = new_path();
	ck_assert_int_eq(db_open(small_path, &small_db, &cause), DB_OK);
	ck_assert_int_eq(db_room_create(small_db, "small", "small", NULL, 0, 1, &cause), DB_OK);
	ck_assert_int_eq(db_tx_begin(small_db, &cause), DB_OK);
	for (int i = 1; i <= 100; i++)
		ck_assert_int_eq(db_message_append(small_db, "small", DB_MESSAGE_CHAT, "u", "n", 0,
				     "m", NULL, i, NULL, NULL, &cause),
		    DB_OK);
	ck_assert_int_eq(db_tx_commit(small_db, &cause), DB_OK);
	db_close(small_db);
	counting_vfs_register();
	small = pages_for_page(small_path, "small", -1, -1, 1);
	small_window = pages_for_page(small_path, "small", 0, 1, 1);
	first = pages_for_page(dbpath, "deep", -1, -1, 1);
	deep = pages_for_page(dbpath, "deep", -1, -1, 1999);
	deep_window = pages_for_page(dbpath, "deep", T0 + 10000, T0 + 15000, 500);
	counting_vfs_unregister();
	db_drop(small_path);
	free(small_path);
	ck_assert_msg(small > 0 && small_window > 0, "the counting VFS saw no reads");
	ck_assert_msg(first <= small + DEEP_EXTRA_PAGES && deep <= small + DEEP_EXTRA_PAGES,
	    "pages read: 100-row room %lld; 200k-row room page 1: %lld, page 1999: %lld", small,
	    first, deep);
	ck_assert_msg(deep_window <= small_window + DEEP_EXTRA_PAGES,
	    "pages read: 100-row room with window %lld; 200k-row room page 500 of a window: %lld",
	    small_window, deep_window);
}
END_TEST
#endif

/* ---- sessions ---- */

START_TEST(test_session_open_close)
{
	struct db_room_counts c;
	struct db_page_info info;
	struct got g = { 0 };
	cJSON *data;
	char *cause = NULL, *text;
	int64_t s1, s2, id = -7;

	room_create("r1", "x", NULL, 0, 1);
	ck_assert_int_eq(
	    db_session_open(db, "", "r1", "u1", "Ann", 0, "192.0.2.1", 1000, &s1, &cause), DB_OK);
	ck_assert_int_eq(
	    db_session_open(db, NULL, "r1", "u2", "Bob", 1, NULL, 2000, &s2, &cause), DB_OK);
	ck_assert_int_gt(s2, s1);
	ck_assert_int_eq(
	    db_session_open(db, "n1", "nope", "u3", "C", 0, NULL, 3000, &id, &cause), DB_NOTFOUND);
	ck_assert_int_eq(id, -7);
	/* "" and NULL both mean the lone chatd. */
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE node_id = ''", NULL), 2);

	ck_assert_int_eq(
	    raw_int("SELECT count(*) FROM outbox WHERE kind = 'user_joined'", NULL), 2);
	text =
	    raw_text("SELECT data FROM outbox WHERE kind = 'user_joined' AND user_id = 'u2'", NULL);
	ck_assert_ptr_nonnull(data = cJSON_Parse(text));
	ck_assert_int_eq((int64_t)cJSON_GetObjectItem(data, "session_id")->valuedouble, s2);
	ck_assert_int_eq(cJSON_GetObjectItem(data, "seq")->valueint, 2);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(data, "is_admin")));
	cJSON_Delete(data);
	free(text);
	ck_assert_int_eq(raw_int("SELECT session_id FROM outbox WHERE kind = 'user_joined'"
				 " AND user_id = 'u1' AND nickname = 'Ann' AND created_at = 1000",
			     NULL),
	    s1);

	ck_assert_int_eq(db_session_close(db, s1, "kicked", 1500, &cause), DB_OK);
	ck_assert_int_eq(db_session_close(db, s1, "again", 1600, &cause), DB_NOTFOUND);
	ck_assert_int_eq(db_session_close(db, 99999, "x", 1600, &cause), DB_NOTFOUND);
	ck_assert_ptr_null(cause);
	ck_assert_int_eq(raw_int("SELECT session_id FROM outbox WHERE kind = 'user_left'"
				 " AND user_id = 'u1' AND nickname = 'Ann' AND reason = 'kicked'"
				 " AND room_id = 'r1' AND created_at = 1500",
			     NULL),
	    s1);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox WHERE kind = 'user_left'", NULL), 1);
	/* The outbox holds events in the order they happened. */
	text = raw_text(
	    RAW_SQL("SELECT group_concat(kind, ',') FROM (SELECT kind FROM outbox ORDER BY id)",
		"SELECT string_agg(kind, ',' ORDER BY id) FROM outbox"),
	    NULL);
	ck_assert_str_eq(text, "room_created,user_joined,user_joined,user_left");
	free(text);

	ck_assert_int_eq(page_sessions("r1", -1, -1, 1, 10, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 2, 2, 0);
	ck_assert_int_eq(g.r[0].id, s1);
	ck_assert_str_eq(g.r[0].room_id, "r1");
	ck_assert_str_eq(g.r[0].user_id, "u1");
	ck_assert_str_eq(g.r[0].nickname, "Ann");
	ck_assert_int_eq(g.r[0].is_admin, 0);
	ck_assert_str_eq(g.r[0].text, "192.0.2.1");
	ck_assert_int_eq(g.r[0].t1, 1000);
	ck_assert_int_eq(g.r[0].t2, 1500);
	ck_assert_str_eq(g.r[0].extra, "kicked");
	ck_assert_int_eq(g.r[1].id, s2);
	ck_assert_int_eq(g.r[1].is_admin, 1);
	ck_assert_ptr_null(g.r[1].text);
	ck_assert_int_eq(g.r[1].t2, 0);
	ck_assert_ptr_null(g.r[1].extra);
	got_clear(&g);

	ck_assert_int_eq(db_room_counts(db, "r1", &c, &cause), DB_OK);
	ck_assert_int_eq(c.session_count, 2);
	ck_assert_int_eq(c.open_sessions, 1);
}
END_TEST

START_TEST(test_sessions_close_all)
{
	struct db_room_counts c;
	char *cause = NULL;
	int64_t n = -1, s;

	room_create("rA", "x", NULL, 0, 1);
	room_create("rB", "x", NULL, 0, 1);
	ck_assert_int_eq(db_sessions_close_all(db, "restart", 5, &n, &cause), DB_OK);
	ck_assert_int_eq(n, 0);
	session_add("rA", "u1", 10);
	s = session_add("rA", "u2", 11);
	session_add("rB", "u1", 12);
	session_add("rB", "u3", 13);
	ck_assert_int_eq(db_session_close(db, s, "bye", 20, &cause), DB_OK);
	ck_assert_int_eq(db_sessions_close_all(db, "restart", 30, &n, &cause), DB_OK);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE left_at = 30"
				 " AND leave_reason = 'restart'",
			     NULL),
	    3);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox WHERE kind = 'user_left'"
				 " AND reason = 'restart' AND created_at = 30",
			     NULL),
	    3);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE left_at = 20"
				 " AND leave_reason = 'bye'",
			     NULL),
	    1);
	ck_assert_int_eq(db_room_counts(db, "rA", &c, &cause), DB_OK);
	ck_assert_int_eq(c.open_sessions, 0);
	ck_assert_int_eq(c.session_count, 2);
	ck_assert_int_eq(db_sessions_close_all(db, "restart", 40, NULL, &cause), DB_OK);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox WHERE kind = 'user_left'", NULL), 4);
	ck_assert_ptr_null(cause);
}
END_TEST

/* The user_left events of reason: "session_id user_id nickname room created_at seq", by id. */
static char *
user_left_rows(const char *reason)
{
	return raw_text(
	    RAW_SQL("SELECT group_concat(r, ';') FROM (SELECT o.session_id || ' ' ||"
		    " o.user_id || ' ' || o.nickname || ' ' || o.room_id || ' ' ||"
		    " o.created_at || ' ' || json_extract(o.data, '$.seq') || ' ' ||"
		    " json_extract(o.data, '$.session_id') AS r FROM outbox o"
		    " WHERE o.kind = 'user_left' AND o.reason = ?1 ORDER BY o.id)",
		"SELECT string_agg(o.session_id || ' ' || o.user_id || ' ' || o.nickname ||"
		" ' ' || o.room_id || ' ' || o.created_at || ' ' ||"
		" (CAST(o.data AS json) ->> 'seq') || ' ' ||"
		" (CAST(o.data AS json) ->> 'session_id'), ';' ORDER BY o.id) FROM outbox o"
		" WHERE o.kind = 'user_left' AND o.reason = ?1"),
	    reason);
}

START_TEST(test_sessions_close_node)
{
	char *cause = NULL, *text, *want;
	int64_t n = -1, a1, a2, a3, b1, l1;

	room_create("rA", "x", NULL, 0, 1);
	room_create("rB", "x", NULL, 0, 1);
	a1 = session_add_node("na", "rA", "u1", 10);
	b1 = session_add_node("nb", "rA", "u2", 11);
	a2 = session_add_node("na", "rB", "u3", 12);
	l1 = session_add_node("", "rB", "u4", 13);
	a3 = session_add_node("na", "rA", "u5", 14);
	ck_assert_int_eq(db_session_close(db, a2, "bye", 20, &cause), DB_OK);

	ck_assert_int_eq(db_sessions_close_node(db, "na", "node_lost", 30, &n, &cause), DB_OK);
	ck_assert_int_eq(n, 2);
	/* Each closed with its own user_left event, as one close would write it. */
	text = user_left_rows("node_lost");
	want = xasprintf("%lld u1 u1 rA 30 1 %lld;%lld u5 u5 rA 30 3 %lld", (long long)a1,
	    (long long)a1, (long long)a3, (long long)a3);
	ck_assert_str_eq(text, want);
	free(text);
	free(want);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE node_id = 'na'"
				 " AND left_at = 30 AND leave_reason = 'node_lost'",
			     NULL),
	    2);
	/* The one closed before keeps its close; other nodes' sessions stay open. */
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE left_at = 20"
				 " AND leave_reason = 'bye'",
			     NULL),
	    1);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE left_at IS NULL", NULL), 2);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE left_at IS NULL"
				 " AND node_id IN ('nb', '')",
			     NULL),
	    2);

	ck_assert_int_eq(db_sessions_close_node(db, "na", "again", 40, &n, &cause), DB_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(db_sessions_close_node(db, "nz", "none", 40, NULL, &cause), DB_OK);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox WHERE kind = 'user_left'", NULL), 3);

	/* NULL is the lone chatd (""). */
	ck_assert_int_eq(db_sessions_close_node(db, NULL, "restart", 50, &n, &cause), DB_OK);
	ck_assert_int_eq(n, 1);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox WHERE kind = 'user_left'"
				 " AND reason = 'restart' AND created_at = 50",
			     NULL),
	    1);
	ck_assert_int_eq(
	    raw_int("SELECT id FROM sessions WHERE leave_reason = 'restart'", NULL), l1);
	ck_assert_int_eq(raw_int("SELECT id FROM sessions WHERE left_at IS NULL", NULL), b1);
	ck_assert_ptr_null(cause);
}
END_TEST

START_TEST(test_sessions_page)
{
	struct db_page_info info;
	struct got g = { 0 };
	char *cause = NULL;
	char user[16];
	int64_t ids[10];

	room_create("r1", "x", NULL, 0, 1);
	room_create("r2", "x", NULL, 0, 1);
	for (int i = 1; i <= 10; i++) {
		snprintf(user, sizeof user, "u%d", i);
		ids[i - 1] = session_add("r1", user, (T0 + i * 10) * 1000LL);
		session_add("r2", user, (T0 + i * 10) * 1000LL);
	}
	ck_assert_int_eq(
	    db_session_close(db, ids[3], "timeout", (T0 + 45) * 1000LL, &cause), DB_OK);
	ck_assert_int_eq(page_sessions("r1", -1, -1, 1, 4, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 4, 10, 1);
	ck_assert_str_eq(g.r[3].user_id, "u4");
	ck_assert_int_eq(g.r[3].t2, (T0 + 45) * 1000LL);
	ck_assert_str_eq(g.r[3].extra, "timeout");
	ck_assert_int_eq(page_sessions("r1", -1, -1, 3, 4, &g, &info), DB_OK);
	assert_seqs(&g, &info, 9, 10, 10, 0);
	ck_assert_int_eq(page_sessions("r1", -1, -1, 4, 4, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 10, 0);
	/* The window is on joined_at: sessions joined at T0+30..T0+70. */
	ck_assert_int_eq(page_sessions("r1", T0 + 25, T0 + 70, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 3, 7, 5, 0);
	ck_assert_int_eq(page_sessions("r1", T0 + 25, T0 + 70, 2, 3, &g, &info), DB_OK);
	assert_seqs(&g, &info, 6, 7, 5, 0);
	ck_assert_int_eq(page_sessions("r1", T0 + 41, T0 + 49, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 0, 0);
	ck_assert_int_eq(page_sessions("r1", -1, T0 + 9, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 0, 0, 0);
	ck_assert_int_eq(page_sessions("r1", T0 + 100, -1, 1, 100, &g, &info), DB_OK);
	assert_seqs(&g, &info, 10, 10, 1, 0);
	got_clear(&g);
}
END_TEST

/* ---- counts and health ---- */

START_TEST(test_room_counts)
{
	struct db_room_counts c;
	char *cause = NULL;
	int64_t last, s;

	memset(&c, 0xff, sizeof c);
	ck_assert_int_eq(db_room_counts(db, "nope", &c, &cause), DB_NOTFOUND);
	ck_assert_ptr_null(cause);
	room_create("r1", "x", NULL, 0, 1);
	room_create("r2", "x", NULL, 0, 1);
	ck_assert_int_eq(db_room_counts(db, "r1", &c, &cause), DB_OK);
	ck_assert_int_eq(c.message_count, 0);
	ck_assert_int_eq(c.last_message_id, 0);
	ck_assert_int_eq(c.last_seq, 0);
	ck_assert_int_eq(c.session_count, 0);
	ck_assert_int_eq(c.open_sessions, 0);

	message_add("r1", "u", "a", 1, NULL);
	message_add("r1", "u", "b", 2, NULL);
	last = message_add("r1", "u", "c", 3, NULL);
	message_add("r2", "u", "other room", 4, NULL);
	s = session_add("r1", "u", 5);
	session_add("r1", "v", 6);
	session_add("r2", "w", 7);
	ck_assert_int_eq(db_session_close(db, s, "bye", 8, &cause), DB_OK);
	ck_assert_int_eq(db_room_counts(db, "r1", &c, &cause), DB_OK);
	ck_assert_int_eq(c.message_count, 3);
	ck_assert_int_eq(c.last_message_id, last);
	ck_assert_int_eq(c.last_seq, 3);
	ck_assert_int_eq(c.session_count, 2);
	ck_assert_int_eq(c.open_sessions, 1);
	/* The invariant the count relies on: seq runs 1..last_seq without gaps. */
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages WHERE room_id = 'r1'", NULL), 3);
}
END_TEST

struct occ_seen {
	int n;
	int64_t ids[8];
	char users[8][16];
};

static int
occ_each(const struct db_occupant *o, void *arg)
{
	struct occ_seen *seen = arg;

	seen->ids[seen->n] = o->session_id;
	snprintf(seen->users[seen->n], sizeof seen->users[0], "%s", o->user_id);
	seen->n++;
	return 0;
}

START_TEST(test_room_occupants)
{
	struct occ_seen seen;
	char *cause = NULL;
	int64_t a, b, c;

	room_create("r1", "x", NULL, 0, 1);
	room_create("r2", "x", NULL, 0, 1);
	a = session_add("r1", "ann", 5);
	b = session_add("r1", "bob", 6);
	c = session_add("r1", "cat", 7);
	session_add("r2", "other", 8);
	ck_assert_int_eq(db_session_close(db, b, "left", 9, &cause), DB_OK);

	memset(&seen, 0, sizeof seen);
	ck_assert_int_eq(db_room_occupants(db, "r1", 100, occ_each, &seen, &cause), DB_OK);
	/* open sessions only, this room only, in join order */
	ck_assert_int_eq(seen.n, 2);
	ck_assert_int_eq(seen.ids[0], a);
	ck_assert_str_eq(seen.users[0], "ann");
	ck_assert_int_eq(seen.ids[1], c);
	ck_assert_str_eq(seen.users[1], "cat");

	memset(&seen, 0, sizeof seen);
	ck_assert_int_eq(db_room_occupants(db, "r1", 1, occ_each, &seen, &cause), DB_OK);
	ck_assert_int_eq(seen.n, 1);
	memset(&seen, 0, sizeof seen);
	ck_assert_int_eq(db_room_occupants(db, "nope", 100, occ_each, &seen, &cause), DB_OK);
	ck_assert_int_eq(seen.n, 0);
}
END_TEST

START_TEST(test_health)
{
	struct db_health h;
	char *cause = NULL;

	memset(&h, 0xff, sizeof h);
	ck_assert_int_eq(db_health(db, &h, &cause), DB_OK);
	ck_assert_int_eq(h.rooms_open, 0);
	ck_assert_int_eq(h.rooms_closed, 0);
	ck_assert_int_eq(h.pending_sync_requests, 0);
	ck_assert_int_eq(h.outbox_events, 0);
	room_create("r1", "x", NULL, 0, 1);
	room_create("r2", "x", NULL, 0, 1);
	room_create("r3", "x", NULL, 0, 1);
	ck_assert_int_eq(db_room_close(db, "r3", "x", 2, &cause), DB_OK);
	session_add("r1", "u", 3);
	ck_assert_int_eq(db_sync_request(db, "manual", NULL, 4, NULL, &cause), DB_OK);
	raw_exec("UPDATE sync_requests SET handled_at = 9 WHERE reason = 'room_created'");
	ck_assert_int_eq(db_health(db, &h, &cause), DB_OK);
	ck_assert_int_eq(h.rooms_open, 2);
	ck_assert_int_eq(h.rooms_closed, 1);
	ck_assert_int_eq(h.pending_sync_requests, 2); /* room_closed and manual */
	ck_assert_int_eq(h.outbox_events, 5);
}
END_TEST

/* ---- chat-sync cursors ---- */

/* Reads target's cursor; fails the test on error. Caller clears. */
static void
cursor_get(const char *target, struct db_cursor *c)
{
	char *cause = NULL;

	if (db_cursor_get(db, target, c, &cause) != DB_OK)
		ck_abort_msg("db_cursor_get: %s", cause);
}

START_TEST(test_cursor_batch_done_fail)
{
	struct db_cursor c;
	char *cause = NULL;

	cursor_get("chat_history", &c); /* never delivered: all zero, no row */
	ck_assert_int_eq(c.last_id, 0);
	ck_assert_ptr_null(c.delivery_id);
	ck_assert_int_eq(c.last_success_at, 0);
	db_cursor_clear(&c);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM cursors", NULL), 0);

	ck_assert_int_eq(db_cursor_batch(db, "chat_history", 0, "d1", 10, &cause), DB_OK);
	ck_assert_int_eq(db_cursor_fail(db, "chat_history", "HTTP 500", 7, &cause), DB_OK);
	ck_assert_int_eq(db_cursor_fail(db, "chat_history", "HTTP 503", 8, &cause), DB_OK);
	cursor_get("chat_history", &c);
	ck_assert_int_eq(c.last_id, 0);
	ck_assert_str_eq(c.delivery_id, "d1");
	ck_assert_int_eq(c.batch_last_id, 10);
	ck_assert_int_eq(c.attempts, 2);
	ck_assert_int_eq(c.failing_since, 7); /* the first failure */
	ck_assert_str_eq(c.last_error, "HTTP 503");
	db_cursor_clear(&c);

	/* From a position the cursor is no longer at: nothing changes. */
	ck_assert_int_eq(db_cursor_batch(db, "chat_history", 5, "dx", 20, &cause), DB_CONFLICT);
	ck_assert_int_eq(db_cursor_done(db, "chat_history", 5, 10, 9, &cause), DB_CONFLICT);
	ck_assert_int_eq(db_cursor_done(db, "chat_history", 0, 10, 9, &cause), DB_OK);
	cursor_get("chat_history", &c);
	ck_assert_int_eq(c.last_id, 10);
	ck_assert_ptr_null(c.delivery_id);
	ck_assert_int_eq(c.batch_last_id, 0);
	ck_assert_int_eq(c.attempts, 0);
	ck_assert_int_eq(c.failing_since, 0);
	ck_assert_ptr_null(c.last_error);
	ck_assert_int_eq(c.last_success_at, 9);
	db_cursor_clear(&c);
	/* Another target is untouched. */
	cursor_get("session_history", &c);
	ck_assert_int_eq(c.last_id, 0);
	db_cursor_clear(&c);
}
END_TEST

/* ---- chat-sync dead letters ---- */

static int
dead_collect(const struct db_dead_letter *d, void *arg)
{
	char *ids = arg;
	size_t len = strlen(ids);

	snprintf(ids + len, 256 - len, "%s%lld:%s", len > 0 ? "," : "", (long long)d->id,
	    d->delivery_id);
	ck_assert_ptr_null(d->body); /* listings leave the body out */
	return 0;
}

/* The ids of target's letters (NULL: all) as "id:delivery_id,...". */
static void
dead_ids(const char *target, char *out)
{
	char *cause = NULL;

	out[0] = '\0';
	if (db_dead_letter_list(db, target, 0, 0, dead_collect, out, &cause) != DB_OK)
		ck_abort_msg("db_dead_letter_list: %s", cause);
}

/* Records a failing batch of target and sets it aside; returns its letter id. */
static int64_t
dead_make(const char *target, int64_t after, int64_t last, const char *id, const char *body)
{
	struct db_dead_letter d;
	char *cause = NULL;

	ck_assert_int_eq(db_cursor_batch(db, target, after, id, last, &cause), DB_OK);
	ck_assert_int_eq(db_cursor_fail(db, target, "HTTP 400: no", 100, &cause), DB_OK);
	memset(&d, 0, sizeof d);
	d.target = (char *)target;
	d.delivery_id = (char *)id;
	d.after_id = after;
	d.last_id = last;
	d.count = last - after;
	d.body = (char *)body;
	d.attempts = 3;
	d.last_status = 400;
	d.last_error = (char *)"HTTP 400: no";
	d.first_attempt_at = 100;
	d.last_attempt_at = 200;
	ck_assert_int_eq(db_dead_letter_add(db, &d, 300, &cause), DB_OK);
	return raw_int("SELECT max(id) FROM dead_letters", NULL);
}

START_TEST(test_dead_letter_add)
{
	struct db_dead_letter d, g;
	struct db_cursor c;
	char ids[256], *cause = NULL;
	int64_t id, total, replay;

	id = dead_make("chat_history", 0, 10, "d1", NULL);
	/* The cursor moved past the batch; its failure state went with it. */
	cursor_get("chat_history", &c);
	ck_assert_int_eq(c.last_id, 10);
	ck_assert_ptr_null(c.delivery_id);
	ck_assert_int_eq(c.batch_last_id, 0);
	ck_assert_int_eq(c.attempts, 0);
	ck_assert_int_eq(c.failing_since, 0);
	ck_assert_ptr_null(c.last_error);
	ck_assert_int_eq(c.last_success_at, 0);
	db_cursor_clear(&c);

	ck_assert_int_eq(db_dead_letter_get(db, id, &g, &cause), DB_OK);
	ck_assert_str_eq(g.target, "chat_history");
	ck_assert_str_eq(g.delivery_id, "d1");
	ck_assert_int_eq(g.after_id, 0);
	ck_assert_int_eq(g.last_id, 10);
	ck_assert_int_eq(g.count, 10);
	ck_assert_ptr_null(g.body);
	ck_assert_int_eq(g.attempts, 3);
	ck_assert_int_eq(g.last_status, 400);
	ck_assert_str_eq(g.last_error, "HTTP 400: no");
	ck_assert_int_eq(g.first_attempt_at, 100);
	ck_assert_int_eq(g.last_attempt_at, 200);
	ck_assert_int_eq(g.created_at, 300);
	ck_assert_int_eq(g.replay_requested_at, 0);
	db_dead_letter_clear(&g);
	ck_assert_int_eq(db_dead_letter_get(db, id + 1, &g, &cause), DB_NOTFOUND);

	/* The cursor no longer holds that batch: DB_CONFLICT, nothing written. */
	memset(&d, 0, sizeof d);
	d.target = (char *)"chat_history";
	d.delivery_id = (char *)"d1";
	d.after_id = 0;
	d.last_id = 10;
	ck_assert_int_eq(db_dead_letter_add(db, &d, 400, &cause), DB_CONFLICT);
	ck_assert_int_eq(db_cursor_batch(db, "chat_history", 10, "d2", 20, &cause), DB_OK);
	d.delivery_id = (char *)"other";
	d.after_id = 10;
	d.last_id = 20;
	ck_assert_int_eq(db_dead_letter_add(db, &d, 400, &cause), DB_CONFLICT);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM dead_letters", NULL), 1);
	ck_assert_int_eq(
	    raw_int("SELECT last_id FROM cursors WHERE target = 'chat_history'", NULL), 10);

	dead_make("data", 0, 0, "s1", "{\"rooms\":[]}");
	dead_ids(NULL, ids);
	ck_assert_str_eq(ids, "1:d1,2:s1");
	dead_ids("data", ids);
	ck_assert_str_eq(ids, "2:s1");
	ck_assert_int_eq(db_dead_letter_counts(db, NULL, &total, &replay, &cause), DB_OK);
	ck_assert_int_eq(total, 2);
	ck_assert_int_eq(replay, 0);
	ck_assert_int_eq(db_dead_letter_counts(db, "room_events", &total, &replay, &cause), DB_OK);
	ck_assert_int_eq(total, 0);
}
END_TEST

START_TEST(test_dead_letter_replay_discard)
{
	struct db_dead_letter d;
	char ids[256], *cause = NULL;
	int64_t a, b, s, marked, total, replay;

	a = dead_make("chat_history", 0, 10, "d1", NULL);
	b = dead_make("chat_history", 10, 20, "d2", NULL);
	s = dead_make("periodic_sync", 0, 3, "s1", "{\"type\":\"periodic_sync\"}");
	ck_assert_int_eq(db_dead_letter_next_replay(db, "chat_history", &d, &cause), DB_NOTFOUND);

	/* One, then all of a target; marking twice keeps the first time. */
	ck_assert_int_eq(db_dead_letter_replay(db, b, NULL, 500, &marked, &cause), DB_OK);
	ck_assert_int_eq(marked, 1);
	ck_assert_int_eq(db_dead_letter_replay(db, b, NULL, 600, &marked, &cause), DB_OK);
	ck_assert_int_eq(
	    raw_int("SELECT replay_requested_at FROM dead_letters WHERE id = 2", NULL), 500);
	ck_assert_int_eq(db_dead_letter_replay(db, 99, NULL, 600, &marked, &cause), DB_NOTFOUND);
	ck_assert_int_eq(db_dead_letter_replay(db, 0, "chat_history", 700, &marked, &cause), DB_OK);
	ck_assert_int_eq(marked, 1); /* a, b was marked already */
	ck_assert_int_eq(db_dead_letter_counts(db, NULL, &total, &replay, &cause), DB_OK);
	ck_assert_int_eq(total, 3);
	ck_assert_int_eq(replay, 2);

	/* The oldest marked goes first. */
	ck_assert_int_eq(db_dead_letter_next_replay(db, "chat_history", &d, &cause), DB_OK);
	ck_assert_int_eq(d.id, a);
	ck_assert_str_eq(d.delivery_id, "d1");
	ck_assert_ptr_null(d.body);
	db_dead_letter_clear(&d);

	/* A failed replay counts; giving up unmarks it and keeps it listed. */
	ck_assert_int_eq(db_dead_letter_replay_fail(db, a, 0, "refused", 800, 0, &cause), DB_OK);
	ck_assert_int_eq(db_dead_letter_replay_fail(db, a, 503, "HTTP 503", 900, 1, &cause), DB_OK);
	ck_assert_int_eq(db_dead_letter_get(db, a, &d, &cause), DB_OK);
	ck_assert_int_eq(d.attempts, 5);
	ck_assert_int_eq(d.last_status, 503);
	ck_assert_str_eq(d.last_error, "HTTP 503");
	ck_assert_int_eq(d.last_attempt_at, 900);
	ck_assert_int_eq(d.replay_requested_at, 0);
	db_dead_letter_clear(&d);
	ck_assert_int_eq(db_dead_letter_next_replay(db, "chat_history", &d, &cause), DB_OK);
	ck_assert_int_eq(d.id, b);
	db_dead_letter_clear(&d);

	/* A snapshot's letter gives its exact body back. */
	ck_assert_int_eq(db_dead_letter_replay(db, 0, NULL, 1000, &marked, &cause), DB_OK);
	ck_assert_int_eq(marked, 2);
	ck_assert_int_eq(db_dead_letter_next_replay(db, "periodic_sync", &d, &cause), DB_OK);
	ck_assert_int_eq(d.id, s);
	ck_assert_str_eq(d.body, "{\"type\":\"periodic_sync\"}");
	ck_assert_int_eq((int64_t)d.body_len, (int64_t)strlen(d.body));
	db_dead_letter_clear(&d);

	/* Discard (or a replay's 2xx) deletes it; the rows it named are not touched. */
	ck_assert_int_eq(db_dead_letter_discard(db, a, &cause), DB_OK);
	ck_assert_int_eq(db_dead_letter_discard(db, a, &cause), DB_NOTFOUND);
	ck_assert_int_eq(db_dead_letter_replay_fail(db, a, 0, "x", 1, 1, &cause), DB_NOTFOUND);
	dead_ids(NULL, ids);
	ck_assert_str_eq(ids, "2:d2,3:s1");
}
END_TEST

START_TEST(test_cursor_batch_inherits_attempts)
{
	struct db_cursor c;
	char *cause = NULL;

	/* A snapshot recorded over one never answered keeps the failures. */
	ck_assert_int_eq(db_cursor_batch(db, "data", 0, "s1", 0, &cause), DB_OK);
	ck_assert_int_eq(db_cursor_fail(db, "data", "HTTP 500", 7, &cause), DB_OK);
	ck_assert_int_eq(db_cursor_fail(db, "data", "HTTP 500", 8, &cause), DB_OK);
	ck_assert_int_eq(db_cursor_batch(db, "data", 0, "s2", 0, &cause), DB_OK);
	cursor_get("data", &c);
	ck_assert_str_eq(c.delivery_id, "s2");
	ck_assert_int_eq(c.attempts, 2);
	ck_assert_int_eq(c.failing_since, 7);
	db_cursor_clear(&c);
	/* After a delivery the next batch starts from zero. */
	ck_assert_int_eq(db_cursor_done(db, "data", 0, 0, 9, &cause), DB_OK);
	ck_assert_int_eq(db_cursor_batch(db, "data", 0, "s3", 0, &cause), DB_OK);
	cursor_get("data", &c);
	ck_assert_int_eq(c.attempts, 0);
	db_cursor_clear(&c);
}
END_TEST

START_TEST(test_cursor_done_next)
{
	struct db_cursor c;
	char *cause = NULL;

	ck_assert_int_eq(db_cursor_batch(db, "chat_history", 0, "d1", 1000, &cause), DB_OK);
	ck_assert_int_eq(db_cursor_fail(db, "chat_history", "HTTP 500", 7, &cause), DB_OK);
	/* N done and N+1 recorded at once; the failure state of N goes. */
	ck_assert_int_eq(
	    db_cursor_done_next(db, "chat_history", 0, 1000, 11, "d2", 2000, &cause), DB_OK);
	cursor_get("chat_history", &c);
	ck_assert_int_eq(c.last_id, 1000);
	ck_assert_str_eq(c.delivery_id, "d2");
	ck_assert_int_eq(c.batch_last_id, 2000);
	ck_assert_int_eq(c.attempts, 0);
	ck_assert_int_eq(c.failing_since, 0);
	ck_assert_ptr_null(c.last_error);
	ck_assert_int_eq(c.last_success_at, 11);
	db_cursor_clear(&c);

	/* Moved by someone else since N started: DB_CONFLICT, nothing written. */
	ck_assert_int_eq(db_cursor_fail(db, "chat_history", "HTTP 502", 12, &cause), DB_OK);
	ck_assert_int_eq(
	    db_cursor_done_next(db, "chat_history", 0, 1000, 13, "d3", 3000, &cause), DB_CONFLICT);
	ck_assert_int_eq(
	    db_cursor_done_next(db, "chat_history", 1500, 2000, 13, "d3", 3000, &cause),
	    DB_CONFLICT);
	cursor_get("chat_history", &c);
	ck_assert_int_eq(c.last_id, 1000);
	ck_assert_str_eq(c.delivery_id, "d2");
	ck_assert_int_eq(c.batch_last_id, 2000);
	ck_assert_int_eq(c.attempts, 1);
	ck_assert_int_eq(c.failing_since, 12);
	ck_assert_str_eq(c.last_error, "HTTP 502");
	ck_assert_int_eq(c.last_success_at, 11);
	db_cursor_clear(&c);

	/* The next batch must lie after the one done. */
	ck_assert_int_eq(
	    db_cursor_done_next(db, "chat_history", 1000, 2000, 13, "d3", 2000, &cause), DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(
	    db_cursor_done_next(db, "chat_history", 1000, 2000, 13, NULL, 3000, &cause), DB_ERROR);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(
	    raw_int("SELECT last_id FROM cursors WHERE target = 'chat_history'", NULL), 1000);

	/* A database error (write lock held elsewhere) writes nothing either. */
	raw_exec(RAW_BEGIN_WRITE);
	ck_assert_int_eq(
	    db_cursor_done_next(db, "chat_history", 1000, 2000, 14, "d3", 3000, &cause), DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;
	raw_exec("ROLLBACK");
	cursor_get("chat_history", &c);
	ck_assert_int_eq(c.last_id, 1000);
	ck_assert_str_eq(c.delivery_id, "d2");
	db_cursor_clear(&c);

	/* Inside a db_tx_begin() batch it runs as a savepoint, rolled back alone on conflict. */
	ck_assert_int_eq(db_tx_begin(db, &cause), DB_OK);
	ck_assert_int_eq(
	    db_cursor_done_next(db, "chat_history", 1, 2, 15, "dz", 3, &cause), DB_CONFLICT);
	ck_assert_int_eq(
	    db_cursor_done_next(db, "chat_history", 1000, 2000, 15, "d3", 3000, &cause), DB_OK);
	ck_assert_int_eq(db_tx_commit(db, &cause), DB_OK);
	cursor_get("chat_history", &c);
	ck_assert_int_eq(c.last_id, 2000);
	ck_assert_str_eq(c.delivery_id, "d3");
	ck_assert_int_eq(c.batch_last_id, 3000);
	ck_assert_int_eq(c.last_success_at, 15);
	db_cursor_clear(&c);

	/* The last batch: the plain done clears what done_next recorded. */
	ck_assert_int_eq(db_cursor_done(db, "chat_history", 2000, 3000, 16, &cause), DB_OK);
	cursor_get("chat_history", &c);
	ck_assert_int_eq(c.last_id, 3000);
	ck_assert_ptr_null(c.delivery_id);
	db_cursor_clear(&c);
}
END_TEST

/* ---- nodes ---- */

static void
node_beat(
    const char *id, const char *incarnation, int64_t started_at, int64_t now, int64_t connections)
{
	char *cause = NULL;

	if (db_node_beat(db, id, incarnation, started_at, now, connections, &cause) != DB_OK)
		ck_abort_msg("db_node_beat %s: %s", id, cause ? cause : "not DB_OK");
}

/* A node's row, which must exist (caller clears). */
static void
node_get(const char *id, struct db_node *n)
{
	char *cause = NULL;

	if (db_node_get(db, id, n, &cause) != DB_OK)
		ck_abort_msg("db_node_get %s: %s", id, cause ? cause : "not DB_OK");
}

struct got_nodes {
	size_t n, stop_after;
	char text[256]; /* "id incarnation started seen stopped connections reaped;" each */
};

static int
got_node(const struct db_node *n, void *arg)
{
	struct got_nodes *g = arg;
	size_t len = strlen(g->text);

	snprintf(g->text + len, sizeof g->text - len, "%s %s %lld %lld %lld %lld %lld;", n->id,
	    n->incarnation, (long long)n->started_at, (long long)n->seen_at,
	    (long long)n->stopped_at, (long long)n->connections, (long long)n->reaped_at);
	g->n++;
	return g->stop_after != 0 && g->n >= g->stop_after;
}

START_TEST(test_node_beat_get_list_stop)
{
	struct got_nodes g = { 0 };
	struct db_node n;
	char *cause = NULL;

	memset(&n, 0x55, sizeof n);
	ck_assert_int_eq(db_node_get(db, "n2", &n, &cause), DB_NOTFOUND);
	ck_assert_ptr_null(n.id);
	ck_assert_int_eq(n.seen_at, 0);
	ck_assert_int_eq(db_node_list(db, got_node, &g, &cause), DB_OK);
	ck_assert_uint_eq(g.n, 0);

	node_beat("n2", "inc1", 100, 150, 3);
	node_beat("n1", "incA", 90, 160, 0);
	node_get("n2", &n);
	ck_assert_str_eq(n.id, "n2");
	ck_assert_str_eq(n.incarnation, "inc1");
	ck_assert_int_eq(n.started_at, 100);
	ck_assert_int_eq(n.seen_at, 150);
	ck_assert_int_eq(n.stopped_at, 0);
	ck_assert_int_eq(n.connections, 3);
	ck_assert_int_eq(n.reaped_at, 0);
	db_node_clear(&n);
	ck_assert_ptr_null(n.id);
	db_node_clear(&n); /* a cleared row clears again */

	/* Ordered by id; each() stops the walk. */
	ck_assert_int_eq(db_node_list(db, got_node, &g, &cause), DB_OK);
	ck_assert_str_eq(g.text, "n1 incA 90 160 0 0 0;n2 inc1 100 150 0 3 0;");
	memset(&g, 0, sizeof g);
	g.stop_after = 1;
	ck_assert_int_eq(db_node_list(db, got_node, &g, &cause), DB_OK);
	ck_assert_str_eq(g.text, "n1 incA 90 160 0 0 0;");

	/* The next beat of the same run. */
	node_beat("n2", "inc1", 100, 170, 4);
	node_get("n2", &n);
	ck_assert_int_eq(n.seen_at, 170);
	ck_assert_int_eq(n.connections, 4);
	db_node_clear(&n);

	/* Only the run that owns the row stops it. */
	ck_assert_int_eq(db_node_stop(db, "n2", "inc0", 200, &cause), DB_NOTFOUND);
	ck_assert_int_eq(db_node_stop(db, "n9", "inc1", 200, &cause), DB_NOTFOUND);
	ck_assert_int_eq(
	    raw_int("SELECT count(*) FROM nodes WHERE stopped_at IS NOT NULL", NULL), 0);
	ck_assert_int_eq(db_node_stop(db, "n2", "inc1", 200, &cause), DB_OK);
	node_get("n2", &n);
	ck_assert_int_eq(n.stopped_at, 200);
	ck_assert_int_eq(n.seen_at, 170);
	db_node_clear(&n);

	/* A new run: its beat replaces the row and clears the stop. */
	node_beat("n2", "inc2", 300, 310, 5);
	node_get("n2", &n);
	ck_assert_str_eq(n.incarnation, "inc2");
	ck_assert_int_eq(n.started_at, 300);
	ck_assert_int_eq(n.seen_at, 310);
	ck_assert_int_eq(n.stopped_at, 0);
	ck_assert_int_eq(n.connections, 5);
	db_node_clear(&n);
	ck_assert_int_eq(db_node_stop(db, "n2", "inc1", 400, &cause), DB_NOTFOUND);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM nodes", NULL), 2);
	ck_assert_ptr_null(cause);
}
END_TEST

START_TEST(test_node_reap)
{
	struct db_node n;
	char *cause = NULL, *text;
	int64_t closed = -1, s3;

	room_create("rA", "x", NULL, 0, 1);
	node_beat("n1", "i1", 0, 1000, 2);
	session_add_node("n1", "rA", "u1", 900);
	session_add_node("n1", "rA", "u2", 901);
	session_add_node("n2", "rA", "u3", 902);
	session_add("rA", "u4", 903);

	/* Fresh: seen at 1000 is not before 1000. */
	ck_assert_int_eq(
	    db_node_reap(db, "n1", 1000, "node_lost", 5000, &closed, &cause), DB_NOTFOUND);
	ck_assert_int_eq(closed, -1);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE left_at IS NULL", NULL), 4);
	node_get("n1", &n);
	ck_assert_int_eq(n.reaped_at, 0);
	db_node_clear(&n);

	/* Stale: reaped once, its sessions closed, the others' left alone. */
	ck_assert_int_eq(db_node_reap(db, "n1", 1001, "node_lost", 5000, &closed, &cause), DB_OK);
	ck_assert_int_eq(closed, 2);
	node_get("n1", &n);
	ck_assert_int_eq(n.reaped_at, 5000);
	ck_assert_int_eq(n.seen_at, 1000);
	db_node_clear(&n);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE node_id = 'n1'"
				 " AND left_at = 5000 AND leave_reason = 'node_lost'",
			     NULL),
	    2);
	text = raw_text(
	    RAW_SQL("SELECT group_concat(user_id, ',') FROM (SELECT user_id FROM outbox"
		    " WHERE kind = 'user_left' AND reason = 'node_lost' AND created_at = 5000"
		    " ORDER BY id)",
		"SELECT string_agg(user_id, ',' ORDER BY id) FROM outbox"
		" WHERE kind = 'user_left' AND reason = 'node_lost' AND created_at = 5000"),
	    NULL);
	ck_assert_str_eq(text, "u1,u2");
	free(text);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE left_at IS NULL", NULL), 2);

	/* Once only; an unknown node is not reaped either. */
	closed = -1;
	ck_assert_int_eq(
	    db_node_reap(db, "n1", 9000, "node_lost", 9500, &closed, &cause), DB_NOTFOUND);
	ck_assert_int_eq(closed, -1);
	ck_assert_int_eq(
	    db_node_reap(db, "n9", 9000, "node_lost", 9500, NULL, &cause), DB_NOTFOUND);
	node_get("n1", &n);
	ck_assert_int_eq(n.reaped_at, 5000);
	db_node_clear(&n);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox WHERE kind = 'user_left'", NULL), 2);

	/* A node that stopped cleanly is not lost. */
	node_beat("n3", "i3", 0, 1000, 1);
	session_add_node("n3", "rA", "u5", 950);
	ck_assert_int_eq(db_node_stop(db, "n3", "i3", 1100, &cause), DB_OK);
	ck_assert_int_eq(
	    db_node_reap(db, "n3", 9000, "node_lost", 9500, NULL, &cause), DB_NOTFOUND);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE node_id = 'n3'"
				 " AND left_at IS NULL",
			     NULL),
	    1);

	/* Back after a reap: fresh again, then reapable once it goes quiet. */
	node_beat("n1", "i2", 6000, 6000, 1);
	node_get("n1", &n);
	ck_assert_int_eq(n.reaped_at, 0);
	db_node_clear(&n);
	s3 = session_add_node("n1", "rA", "u6", 6001);
	ck_assert_int_eq(
	    db_node_reap(db, "n1", 6000, "node_lost", 6500, NULL, &cause), DB_NOTFOUND);
	ck_assert_int_eq(db_node_reap(db, "n1", 7000, "lost_again", 8000, &closed, &cause), DB_OK);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(raw_int("SELECT session_id FROM outbox WHERE kind = 'user_left'"
				 " AND reason = 'lost_again' AND created_at = 8000",
			     NULL),
	    s3);

	/* A reap older than the last time seen does not count. */
	raw_exec("UPDATE nodes SET reaped_at = seen_at WHERE id = 'n1'");
	ck_assert_int_eq(db_node_reap(db, "n1", 9000, "x", 9500, NULL, &cause), DB_NOTFOUND);
	raw_exec("UPDATE nodes SET reaped_at = seen_at - 1 WHERE id = 'n1'");
	ck_assert_int_eq(db_node_reap(db, "n1", 9000, "x", 9500, &closed, &cause), DB_OK);
	ck_assert_int_eq(closed, 0);
	ck_assert_ptr_null(cause);
}
END_TEST

START_TEST(test_node_state)
{
	struct db_node n = { "n1", "i1", 100, 10000, 0, 2, 0 };

	/* Heard within the timeout, to the millisecond. */
	ck_assert_str_eq(db_node_state(&n, 15000, 5000), "alive");
	ck_assert_str_eq(db_node_state(&n, 15001, 5000), "silent");
	n.reaped_at = 16000;
	ck_assert_str_eq(db_node_state(&n, 17000, 5000), "lost");
	/* A reap older than the last beat is not the latest word. */
	n.reaped_at = 9999;
	ck_assert_str_eq(db_node_state(&n, 12000, 5000), "alive");
	n.reaped_at = 10000;
	ck_assert_str_eq(db_node_state(&n, 12000, 5000), "lost");
	/* Stopped (after a reap, too): a clean stop, whatever the age. */
	n.stopped_at = 18000;
	ck_assert_str_eq(db_node_state(&n, 99000, 5000), "stopped");
	n.reaped_at = 0;
	ck_assert_str_eq(db_node_state(&n, 12000, 5000), "stopped");
}
END_TEST

/* ---- concurrency and lock errors ---- */

#define WRITER_ROUNDS 500

struct writer {
	const char *path;
	const char *user;
	int failures;
	char *cause;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct db_page_query q = { "r1", -1, -1, 1, 50 };
	struct db_page_info info;
	struct got g = { 0 };
	struct db *d;
	int64_t sid;

	if (db_open(w->path, &d, &w->cause) != DB_OK) {
		w->failures++;
		return NULL;
	}
	for (int i = 0; i < WRITER_ROUNDS && w->failures == 0; i++) {
		if (db_message_append(d, "r1", DB_MESSAGE_CHAT, w->user, w->user, 0, "hi", NULL, i,
			NULL, NULL, &w->cause) != DB_OK)
			w->failures++;
		else if (i % 3 == 0 &&
		    db_ban_add(d, "r1", w->user, "flood", i + 1000, i, &w->cause) != DB_OK)
			w->failures++; /* reads, then writes: needs BEGIN IMMEDIATE */
		else if (i % 10 == 0 &&
		    (db_session_open(d, w->user, "r1", w->user, w->user, 0, NULL, i, &sid,
			 &w->cause) != DB_OK ||
			db_session_close(d, sid, "bye", i, &w->cause) != DB_OK))
			w->failures++;
		else if (i % 25 == 0) {
			q.page = i / 25 + 1;
			if (db_messages_page(d, &q, got_message, &g, &info, &w->cause) != DB_OK)
				w->failures++;
			got_clear(&g);
		}
	}
	db_close(d);
	return NULL;
}

START_TEST(test_concurrent_writers)
{
	struct writer w[2] = { { dbpath, "alice", 0, NULL }, { dbpath, "bob", 0, NULL } };
	pthread_t t[2];
	struct db_room room;
	char *cause = NULL;

	room_create("r1", "x", NULL, 0, 1);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_msg(w[i].failures == 0, "writer %d: %s", i, w[i].cause);
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_int_eq(room.last_seq, 2 * WRITER_ROUNDS);
	db_room_clear(&room);
	/* Every seq used once, none skipped. */
	ck_assert_int_eq(
	    raw_int("SELECT count(DISTINCT seq) FROM messages", NULL), 2 * WRITER_ROUNDS);
	ck_assert_int_eq(raw_int("SELECT max(seq) FROM messages", NULL), 2 * WRITER_ROUNDS);
	ck_assert_int_eq(
	    raw_int("SELECT count(*) FROM messages WHERE user_id = 'alice'", NULL), WRITER_ROUNDS);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions", NULL), 2 * WRITER_ROUNDS / 10);
	ck_assert_int_eq(
	    raw_int("SELECT count(DISTINCT seq) FROM sessions", NULL), 2 * WRITER_ROUNDS / 10);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM bans WHERE lifted_at IS NULL", NULL), 2);
}
END_TEST

#define REAP_ROUNDS 20
#define REAP_SESSIONS 3

struct reaper {
	struct db *d;
	pthread_barrier_t *gate;
	const char *node;
	int rc;
	int64_t closed;
	char *cause;
};

static void *
reaper_main(void *arg)
{
	struct reaper *r = arg;

	pthread_barrier_wait(r->gate);
	r->rc = db_node_reap(r->d, r->node, 2000, "node_lost", 3000, &r->closed, &r->cause);
	return NULL;
}

/* Survivors on their own connections reap the same lost node at once: one does. */
/* A stalled node taken for lost sees it was reaped and reopens its live sessions. */
START_TEST(test_node_reaped_reopen)
{
	char *cause = NULL;
	int64_t sid, nid = 0, closed = 0;
	int reaped = -1;

	room_create("r1", "one", NULL, 0, 1);
	node_beat("n1", "run1", 100, 1000, 1);
	sid = session_add_node("n1", "r1", "u", 1000);
	ck_assert_int_eq(db_node_was_reaped(db, "n1", "run1", &reaped, &cause), DB_OK);
	ck_assert_int_eq(reaped, 0);
	/* Still open: nothing to do, the same id. */
	ck_assert_int_eq(db_session_reopen(db, sid, 1500, &nid, &cause), DB_OK);
	ck_assert_int_eq(nid, sid);
	ck_assert_int_eq(db_node_reap(db, "n1", 5000, "node_lost", 6000, &closed, &cause), DB_OK);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(db_node_was_reaped(db, "n1", "run1", &reaped, &cause), DB_OK);
	ck_assert_int_eq(reaped, 1);
	/* Another run of the node was not reaped: the row is its predecessor's. */
	ck_assert_int_eq(db_node_was_reaped(db, "n1", "run2", &reaped, &cause), DB_OK);
	ck_assert_int_eq(reaped, 0);
	ck_assert_int_eq(db_session_reopen(db, sid, 7000, &nid, &cause), DB_OK);
	ck_assert_int_ne(nid, sid);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE left_at IS NULL", NULL), 1);
	ck_assert_int_eq(
	    raw_int("SELECT joined_at FROM sessions WHERE left_at IS NULL", NULL), 7000);
	ck_assert_int_eq(
	    raw_int("SELECT count(*) FROM sessions WHERE node_id = 'n1' AND user_id = 'u'", NULL),
	    2);
	ck_assert_int_eq(
	    raw_int("SELECT count(*) FROM outbox WHERE kind = 'user_joined'", NULL), 2);
	/* The next beat clears the mark. */
	node_beat("n1", "run1", 100, 8000, 1);
	ck_assert_int_eq(db_node_was_reaped(db, "n1", "run1", &reaped, &cause), DB_OK);
	ck_assert_int_eq(reaped, 0);
	ck_assert_int_eq(db_session_reopen(db, 999999, 9000, &nid, &cause), DB_NOTFOUND);
	free(cause);
}
END_TEST

START_TEST(test_node_reap_race)
{
	struct reaper r[2];
	pthread_barrier_t gate;
	pthread_t t[2];
	char *cause = NULL, node[16], user[16];
	int round, i, ok;

	room_create("r1", "x", NULL, 0, 1);
	memset(r, 0, sizeof r);
	for (i = 0; i < 2; i++)
		if (db_open(dbpath, &r[i].d, &cause) != DB_OK)
			ck_abort_msg("db_open: %s", cause);
	for (round = 0; round < REAP_ROUNDS; round++) {
		snprintf(node, sizeof node, "lost%d", round);
		node_beat(node, "i", 0, 1000, REAP_SESSIONS);
		for (i = 0; i < REAP_SESSIONS; i++) {
			snprintf(user, sizeof user, "u%d.%d", round, i);
			session_add_node(node, "r1", user, 1000 + i);
		}
		ck_assert_int_eq(pthread_barrier_init(&gate, NULL, 2), 0);
		for (i = 0; i < 2; i++) {
			r[i].gate = &gate;
			r[i].node = node;
			r[i].closed = -1;
			ck_assert_int_eq(pthread_create(&t[i], NULL, reaper_main, &r[i]), 0);
		}
		for (i = 0; i < 2; i++)
			ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		pthread_barrier_destroy(&gate);
		for (i = 0, ok = 0; i < 2; i++) {
			ck_assert_msg(r[i].rc == DB_OK || r[i].rc == DB_NOTFOUND,
			    "round %d: reaper %d: %d %s", round, i, r[i].rc,
			    r[i].cause ? r[i].cause : "");
			if (r[i].rc == DB_OK) {
				ok++;
				ck_assert_int_eq(r[i].closed, REAP_SESSIONS);
			} else
				ck_assert_int_eq(r[i].closed, -1);
		}
		ck_assert_msg(ok == 1, "round %d: %d reapers reaped", round, ok);
		ck_assert_int_eq(raw_int("SELECT count(*) FROM outbox o JOIN sessions s"
					 " ON s.id = o.session_id WHERE o.kind = 'user_left'"
					 " AND s.node_id = ?1",
				     node),
		    REAP_SESSIONS);
	}
	for (i = 0; i < 2; i++)
		db_close(r[i].d);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sessions WHERE left_at IS NULL", NULL), 0);
}
END_TEST

/*
 * Two writers append into one room at once, each in batches as chatd's
 * writer makes them: a line in a room of its own, one in the shared room,
 * one more in its own. A third connection follows the messages the way
 * chat-sync's cursor does, reading rows after the last id it delivered.
 * Seqs must come out unique and gap-free in every room, and ids must
 * commit in increasing order: a row committed after the follower moved
 * past its id would never be delivered. (On PostgreSQL ids come from a
 * sequence when the row is inserted; only the one write lock that BEGIN
 * takes keeps a batch holding a lower id from committing after one
 * holding a higher id.)
 */
#define ORDER_BATCHES 150

struct appender {
	const char *path, *own_room;
	pthread_barrier_t *gate;
	int failures;
	char *cause;
};

static void *
appender_main(void *arg)
{
	struct appender *a = arg;
	struct db *d = NULL;

	if (db_open(a->path, &d, &a->cause) != DB_OK)
		a->failures++;
	pthread_barrier_wait(a->gate);
	for (int i = 0; i < ORDER_BATCHES && a->failures == 0; i++) {
		if (db_tx_begin(d, &a->cause) != DB_OK ||
		    db_message_append(d, a->own_room, DB_MESSAGE_CHAT, "u", "u", 0, "mine", NULL, i,
			NULL, NULL, &a->cause) != DB_OK ||
		    db_message_append(d, "shared", DB_MESSAGE_CHAT, "u", "u", 0, "ours", NULL, i,
			NULL, NULL, &a->cause) != DB_OK ||
		    db_message_append(d, a->own_room, DB_MESSAGE_CHAT, "u", "u", 0, "mine", NULL, i,
			NULL, NULL, &a->cause) != DB_OK ||
		    db_tx_commit(d, &a->cause) != DB_OK)
			a->failures++;
	}
	db_close(d);
	return NULL;
}

struct follower {
	const char *path;
	pthread_barrier_t *gate;
	int writers_done; /* set (atomically) once both writers returned */
	int64_t last_id, delivered, out_of_order;
	int failures;
	char *cause;
};

static int
follow_each(const struct db_message *m, void *arg)
{
	struct follower *f = arg;

	if (m->id <= f->last_id)
		f->out_of_order++;
	f->last_id = m->id;
	f->delivered++;
	return 0;
}

static void *
follower_main(void *arg)
{
	struct follower *f = arg;
	struct db *d = NULL;
	int64_t before;
	int done;

	if (db_open(f->path, &d, &f->cause) != DB_OK)
		f->failures++;
	pthread_barrier_wait(f->gate);
	while (f->failures == 0) {
		/* After the writers: one more pass, until a pass finds nothing. */
		done = __atomic_load_n(&f->writers_done, __ATOMIC_ACQUIRE);
		before = f->delivered;
		if (db_feed_messages(d, f->last_id, INT64_MAX, 100, follow_each, f, &f->cause) !=
		    DB_OK)
			f->failures++;
		else if (done && f->delivered == before)
			break;
		else if (f->delivered == before) {
			/*
			 * Nothing new: let the writers run. A reader that never
			 * sleeps starves them under valgrind, whose thread lock
			 * is not fair.
			 */
			struct timespec ts = { 0, 200000 };

			nanosleep(&ts, NULL);
		}
	}
	db_close(d);
	return NULL;
}

START_TEST(test_concurrent_appends_commit_in_id_order)
{
	struct appender a[2] = { { dbpath, "a", NULL, 0, NULL }, { dbpath, "b", NULL, 0, NULL } };
	struct follower f = { dbpath, NULL, 0, 0, 0, 0, 0, NULL };
	pthread_barrier_t gate;
	pthread_t t[3];
	static const char *const rooms[] = { "shared", "a", "b" };
	int i;

	for (i = 0; i < 3; i++)
		room_create(rooms[i], rooms[i], NULL, 0, 1);
	ck_assert_int_eq(pthread_barrier_init(&gate, NULL, 3), 0);
	f.gate = a[0].gate = a[1].gate = &gate;
	ck_assert_int_eq(pthread_create(&t[2], NULL, follower_main, &f), 0);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, appender_main, &a[i]), 0);
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	__atomic_store_n(&f.writers_done, 1, __ATOMIC_RELEASE);
	ck_assert_int_eq(pthread_join(t[2], NULL), 0);
	pthread_barrier_destroy(&gate);
	for (i = 0; i < 2; i++)
		ck_assert_msg(a[i].failures == 0, "writer %d: %s", i, a[i].cause);
	ck_assert_msg(f.failures == 0, "follower: %s", f.cause);

	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(
		    raw_int("SELECT count(*) FROM messages WHERE room_id = ?1", rooms[i]),
		    2 * ORDER_BATCHES);
		ck_assert_int_eq(
		    raw_int(
			"SELECT count(DISTINCT seq) FROM messages WHERE room_id = ?1", rooms[i]),
		    2 * ORDER_BATCHES);
		ck_assert_int_eq(
		    raw_int("SELECT max(seq) FROM messages WHERE room_id = ?1", rooms[i]),
		    2 * ORDER_BATCHES);
	}
	/* In each room a later seq has a higher id. */
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages x JOIN messages y"
				 " ON y.room_id = x.room_id AND y.seq > x.seq AND y.id < x.id",
			     NULL),
	    0);
	/* The follower saw every row, each once, in id order. */
	ck_assert_int_eq(f.out_of_order, 0);
	ck_assert_msg(f.delivered == 6 * ORDER_BATCHES,
	    "the follower delivered %lld of %d rows: some committed below its cursor",
	    (long long)f.delivered, 6 * ORDER_BATCHES);
}
END_TEST

START_TEST(test_busy_lock_held)
{
	struct db_page_info info;
	struct got g = { 0 };
	char *cause = NULL;

	room_create("r1", "x", NULL, 0, 1);
	message_add("r1", "u", "a", 1, NULL);
	raw_exec(RAW_BEGIN_WRITE);
	ck_assert_int_eq(db_room_create(db, "r2", "x", NULL, 0, 2, &cause), DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	ck_assert_ptr_nonnull(strstr(cause, "locked"));
	free(cause);
	cause = NULL;
	ck_assert_int_eq(db_message_append(db, "r1", DB_MESSAGE_CHAT, "u", "u", 0, "b", NULL, 2,
			     NULL, NULL, &cause),
	    DB_ERROR);
	free(cause);
	cause = NULL;
	/* Readers are not blocked by a writer in WAL mode. */
	ck_assert_int_eq(page_messages("r1", -1, -1, 1, 10, &g, &info), DB_OK);
	assert_seqs(&g, &info, 1, 1, 1, 0);
	got_clear(&g);
	raw_exec("ROLLBACK");
	/* The failed writes left nothing, and writing works again. */
	ck_assert_int_eq(raw_int("SELECT count(*) FROM rooms", NULL), 1);
	room_create("r2", "x", NULL, 0, 2);
	ck_assert_int_eq(message_add("r1", "u", "b", 2, NULL) > 0, 1);
	ck_assert_int_eq(raw_int("SELECT max(seq) FROM messages", NULL), 2);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create(RAW_SQL("db", "db_on_pg"));
	TCase *tc;

	log_init("test_db", LOG_LEVEL_WARN);

	tc = tcase_create("open");
	tcase_add_unchecked_fixture(tc, fixture_start, fixture_end);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_open_fresh_schema);
	tcase_add_test(tc, test_open_foreign_keys_on);
	tcase_add_test(tc, test_open_reopen_keeps_data_without_migration);
	tcase_add_test(tc, test_open_newer_version_refused);
	tcase_add_test(tc, test_migrate_from_v2);
	tcase_add_test(tc, test_open_concurrent_processes);
#ifdef TEST_DB_ON_PG
	tcase_add_test(tc, test_open_errors_pg);
#endif
	suite_add_tcase(s, tc);

#ifndef TEST_DB_ON_PG
	/* SQLite itself: its files, its journal mode, the pages it reads. */
	tc = tcase_create("sqlite");
	tcase_add_unchecked_fixture(tc, fixture_start, fixture_end);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_open_errors);
	tcase_add_test(tc, test_sqlite_wal_mode);
	tcase_add_test(tc, test_sqlite_page_reads);
	suite_add_tcase(s, tc);
#endif

	tc = tcase_create("rooms");
	tcase_add_unchecked_fixture(tc, fixture_start, fixture_end);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_room_create_get);
	tcase_add_test(tc, test_room_create_conflict);
	tcase_add_test(tc, test_room_create_error_rolls_back);
	tcase_add_test(tc, test_room_get_notfound);
	tcase_add_test(tc, test_room_list);
	tcase_add_test(tc, test_room_close);
	tcase_add_test(tc, test_room_peak_update);
	tcase_add_test(tc, test_verbatim_strings);
	tcase_add_test(tc, test_room_counts);
	tcase_add_test(tc, test_room_occupants);
	tcase_add_test(tc, test_health);
	suite_add_tcase(s, tc);

	tc = tcase_create("bans");
	tcase_add_unchecked_fixture(tc, fixture_start, fixture_end);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_ban_add_list_lift);
	tcase_add_test(tc, test_ban_replace_active);
	tcase_add_test(tc, test_ban_expiry);
	suite_add_tcase(s, tc);

	tc = tcase_create("history");
	tcase_add_unchecked_fixture(tc, fixture_start, fixture_end);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_message_append);
	tcase_add_test(tc, test_tx_batch);
	tcase_add_test(tc, test_tx_state);
#ifdef TEST_DB_ON_PG
	tcase_add_test(tc, test_pg_batch_lost_session);
#endif
	tcase_add_test(tc, test_messages_range);
	tcase_add_test(tc, test_rate_marks);
	tcase_add_test(tc, test_join_state);
	tcase_add_test(tc, test_node_reaped_reopen);
	tcase_add_test(tc, test_messages_page_no_window);
	tcase_add_test(tc, test_messages_page_window);
	tcase_add_test(tc, test_messages_page_same_millisecond);
	tcase_add_test(tc, test_messages_page_errors);
	tcase_add_test(tc, test_messages_page_stop_early);
	tcase_add_test(tc, test_messages_page_deep);
	tcase_add_test(tc, test_session_open_close);
	tcase_add_test(tc, test_sessions_close_all);
	tcase_add_test(tc, test_sessions_close_node);
	tcase_add_test(tc, test_sessions_page);
	suite_add_tcase(s, tc);

	tc = tcase_create("cursors");
	tcase_add_unchecked_fixture(tc, fixture_start, fixture_end);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_cursor_batch_done_fail);
	tcase_add_test(tc, test_cursor_done_next);
	tcase_add_test(tc, test_cursor_batch_inherits_attempts);
	tcase_add_test(tc, test_dead_letter_add);
	tcase_add_test(tc, test_dead_letter_replay_discard);
	suite_add_tcase(s, tc);

	tc = tcase_create("nodes");
	tcase_add_unchecked_fixture(tc, fixture_start, fixture_end);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_node_beat_get_list_stop);
	tcase_add_test(tc, test_node_reap);
	tcase_add_test(tc, test_node_state);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrency");
	tcase_add_unchecked_fixture(tc, fixture_start, fixture_end);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_concurrent_writers);
	tcase_add_test(tc, test_busy_lock_held);
	tcase_add_test(tc, test_concurrent_appends_commit_in_id_order);
	tcase_add_test(tc, test_node_reap_race);
	suite_add_tcase(s, tc);

	return s;
}
