/*
 * Unit tests for the PostgreSQL backend's ops (db_pg.c) on their own,
 * against a throwaway server (pgtmp.c) started once for the whole suite:
 * connecting (and what a failure says: never the password), scripts,
 * ?N placeholders, binding, rows and columns, changes and ids,
 * transactions and savepoints, and how failures are classified.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_main.h"
#include "db_backend.h"
#include "pgtmp.h"
#include "xmalloc.h"

#define OPS (&db_pg_ops)

static struct pgtmp *server;
static char *server_error;
static struct db_bconn *conn;

/* ---- fixtures ---- */

/* Once per run, in the parent process (or the only one with CK_FORK=no). */
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

static struct db_bconn *
connect_ok(void)
{
	struct db_bconn *c = NULL;
	char *cause = NULL;
	int rc = OPS->open(pgtmp_conninfo(server), 1, &c, &cause);

	ck_assert_msg(rc == DB_OK, "open: %s", cause != NULL ? cause : "?");
	ck_assert_ptr_nonnull(c);
	return c;
}

/* Per test: a server that did not start fails every test, loudly. */
static void
conn_open(void)
{
	ck_assert_msg(server != NULL, "%s", server_error != NULL ? server_error : "no server");
	conn = connect_ok();
}

static void
conn_close(void)
{
	OPS->close(conn);
	conn = NULL;
}

/* ---- helpers ---- */

static void
script(struct db_bconn *c, const char *sql)
{
	char *cause = NULL;

	ck_assert_msg(OPS->exec_script(c, sql, "test script", &cause) == DB_OK, "%s: %s", sql,
	    cause != NULL ? cause : "?");
}

static struct db_bstmt *
prep(struct db_bconn *c, const char *sql)
{
	struct db_bstmt *st = NULL;
	char *cause = NULL;

	ck_assert_msg(OPS->prepare(c, sql, &st, &cause) == DB_OK, "prepare %s: %s", sql,
	    cause != NULL ? cause : "?");
	ck_assert_ptr_eq(st->ops, OPS);
	return st;
}

/* Runs sql with args to the end; the step result (DB_OK for done), *cause freed. */
static int
run(struct db_bconn *c, const char *sql, const struct db_arg *args, size_t n)
{
	struct db_bstmt *st = prep(c, sql);
	char *cause = NULL;
	int rc;

	ck_assert_int_eq(OPS->bind(c, st, args, n, &cause), DB_OK);
	while ((rc = OPS->step(c, st, &cause)) == DB_ROW)
		;
	OPS->reset(st);
	OPS->finalize(st);
	free(cause);
	return rc == DB_DONE ? DB_OK : rc;
}

/* Column 0 of the only row of sql (without parameters). */
static int64_t
value(struct db_bconn *c, const char *sql)
{
	struct db_bstmt *st = prep(c, sql);
	char *cause = NULL;
	int64_t v;

	ck_assert_msg(OPS->step(c, st, &cause) == DB_ROW, "%s: %s", sql, cause ? cause : "no row");
	v = OPS->col_int64(st, 0);
	ck_assert_int_eq(OPS->step(c, st, &cause), DB_DONE);
	OPS->finalize(st);
	return v;
}

static void
tx_ok(struct db_bconn *c, enum db_tx_verb verb)
{
	char *cause = NULL;

	ck_assert_msg(
	    OPS->tx(c, verb, &cause) == DB_OK, "tx %d: %s", (int)verb, cause != NULL ? cause : "?");
}

#define A_INT(v) ((struct db_arg){ DB_ARG_INT, (v), NULL })
#define A_TEXT(v) ((struct db_arg){ DB_ARG_TEXT, 0, (v) })
#define A_NULL ((struct db_arg){ DB_ARG_NULL, 0, NULL })
#define ARGS(...) \
	((const struct db_arg[]){ __VA_ARGS__ }), \
	    (sizeof((const struct db_arg[]){ __VA_ARGS__ }) / sizeof(struct db_arg))

/* ---- tests ---- */

START_TEST(t_open_close)
{
	struct db_bconn *c = NULL;
	char *uri, *cause = NULL;

	ck_assert_ptr_null(OPS->wal_hook);
	ck_assert_ptr_null(OPS->checkpoint);
	OPS->close(NULL);
	ck_assert_int_eq(value(conn, "SELECT 1"), 1);

	/* A URI over TCP. */
	uri = xasprintf("postgresql://postgres@127.0.0.1:%d/postgres", pgtmp_port(server));
	ck_assert_msg(OPS->open(uri, 0, &c, &cause) == DB_OK, "%s", cause ? cause : "?");
	ck_assert_int_eq(value(c, "SELECT 2"), 2);
	OPS->close(c);
	free(uri);

	/* Nobody listens on port 1: the cause names the host, never the password. */
	c = NULL;
	ck_assert_int_eq(
	    OPS->open("postgresql://chat:s3cretpw@127.0.0.1:1/chat", 1, &c, &cause), DB_ERROR);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(cause, "127.0.0.1") != NULL && strstr(cause, "s3cretpw") == NULL &&
		strchr(cause, '\n') == NULL,
	    "%s", cause);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(OPS->open("host=127.0.0.1 port=1 user=chat password=s3cretpw "
				   "dbname=chat connect_timeout=5",
			     1, &c, &cause),
	    DB_ERROR);
	ck_assert_msg(
	    strstr(cause, "port=1") != NULL && strstr(cause, "s3cretpw") == NULL, "%s", cause);
	free(cause);
	cause = NULL;

	/* Wherever the password shows up in a message, it is blanked out. */
	uri = xasprintf(
	    "host=127.0.0.1 port=%d dbname=postgres user=zz9pw password=zz9pw", pgtmp_port(server));
	ck_assert_int_eq(OPS->open(uri, 1, &c, &cause), DB_ERROR);
	ck_assert_msg(strstr(cause, "zz9pw") == NULL && strstr(cause, "***") != NULL, "%s", cause);
	free(cause);
	cause = NULL;
	free(uri);

	/* An address libpq cannot parse: what it quotes may be the password. */
	ck_assert_int_eq(OPS->open("host=127.0.0.1 password=s3cret pw", 1, &c, &cause), DB_ERROR);
	ck_assert_msg(strstr(cause, "s3cret") == NULL && strstr(cause, "pw") == NULL, "%s", cause);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(OPS->open("host=127.0.0.1 bogus_option=1", 1, &c, &cause), DB_ERROR);
	ck_assert_msg(strstr(cause, "bogus_option") != NULL, "%s", cause);
	free(cause);
	cause = NULL;

	/* A missing database is an error, even with create: never DB_NOTFOUND. */
	uri = xasprintf("postgresql://postgres@127.0.0.1:%d/no_such_db", pgtmp_port(server));
	ck_assert_int_eq(OPS->open(uri, 1, &c, &cause), DB_ERROR);
	ck_assert_msg(strstr(cause, "no_such_db") != NULL, "%s", cause);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(OPS->open(uri, 0, &c, &cause), DB_ERROR);
	free(cause);
	free(uri);
}
END_TEST

START_TEST(t_exec_script)
{
	char *cause = NULL;

	script(conn,
	    "CREATE TABLE s1 (id bigserial PRIMARY KEY, name text);"
	    "INSERT INTO s1 (name) VALUES ('a'), ('b');"
	    "CREATE TABLE IF NOT EXISTS s1 (id bigint)");
	ck_assert_int_eq(value(conn, "SELECT count(*) FROM s1"), 2);

	/* A failed script names what it was; failure() is left alone. */
	ck_assert_int_eq(
	    OPS->exec_script(conn, "CREATE TABLE s1 (x int)", "step 7", &cause), DB_ERROR);
	ck_assert_msg(
	    strstr(cause, "step 7") != NULL && strstr(cause, "42P07") != NULL, "%s", cause);
	ck_assert_int_eq(OPS->failure(conn), DB_FAILURE_PERMANENT);
	free(cause);
	cause = NULL;
	/* One implicit transaction: a failing statement takes the earlier ones with it. */
	ck_assert_int_eq(OPS->exec_script(conn, "INSERT INTO s1 (name) VALUES ('c'); SELECT 1/0",
			     "step 8", &cause),
	    DB_ERROR);
	free(cause);
	ck_assert_int_eq(value(conn, "SELECT count(*) FROM s1"), 2);
	ck_assert_int_eq(OPS->tx_ended(conn), 1);
}
END_TEST

START_TEST(t_placeholders)
{
	struct db_bstmt *st;
	char *cause = NULL;
	int rc;

	script(conn, "CREATE TABLE p1 (id bigserial PRIMARY KEY, name text, note text, n bigint)");
	ck_assert_int_eq(run(conn, "INSERT INTO p1 (name, note, n) VALUES (?1, ?2, ?3)",
			     ARGS(A_TEXT("x"), A_NULL, A_INT(INT64_MAX))),
	    DB_OK);
	ck_assert_int_eq(run(conn, "INSERT INTO p1 (name, note, n) VALUES (?1, ?2, ?3)",
			     ARGS(A_TEXT("y"), A_TEXT("x"), A_INT(INT64_MIN))),
	    DB_OK);
	ck_assert_int_eq(run(conn, "INSERT INTO p1 (name, note, n) VALUES (?1, ?2, ?3)",
			     ARGS(A_TEXT("z"), A_TEXT("it's ?1"), A_INT(-7))),
	    DB_OK);

	/* The same ?1 twice; a ? inside literals, a quoted name and comments stays. */
	st = prep(conn,
	    "SELECT id, name, note, n, '?1 it''s ?' AS \"q?1\", ?2 AS two -- ?9\n"
	    "FROM p1 /* ?8 */ WHERE name = ?1 OR note = ?1 ORDER BY id");
	ck_assert_int_eq(OPS->bind(conn, st, ARGS(A_TEXT("x"), A_INT(2)), &cause), DB_OK);
	ck_assert_int_eq(OPS->step(conn, st, &cause), DB_ROW);
	ck_assert_int_eq(OPS->col_int64(st, 0), 1);
	ck_assert_str_eq(OPS->col_text(st, 1), "x");
	ck_assert_ptr_null(OPS->col_text(st, 2));
	ck_assert_int_eq(OPS->col_is_null(st, 2), 1);
	ck_assert_int_eq(OPS->col_int64(st, 2), 0);
	ck_assert_uint_eq(OPS->col_bytes(st, 2), 0);
	ck_assert_int_eq(OPS->col_int64(st, 3), INT64_MAX);
	ck_assert_str_eq(OPS->col_text(st, 4), "?1 it's ?");
	ck_assert_uint_eq(OPS->col_bytes(st, 4), strlen("?1 it's ?"));
	ck_assert_int_eq(OPS->col_is_null(st, 4), 0);
	ck_assert_str_eq(OPS->col_text(st, 5), "2");
	ck_assert_int_eq(OPS->step(conn, st, &cause), DB_ROW);
	ck_assert_str_eq(OPS->col_text(st, 1), "y");
	ck_assert_int_eq(OPS->col_int64(st, 3), INT64_MIN);
	ck_assert_int_eq(OPS->col_int(st, 0), 2);
	ck_assert_int_eq(OPS->step(conn, st, &cause), DB_DONE);
	ck_assert_int_eq(OPS->step(conn, st, &cause), DB_DONE);
	/* No row any more: NULL, not a crash. */
	ck_assert_ptr_null(OPS->col_text(st, 1));

	/* Again with other values; a reset drops the bindings (NULL matches nothing). */
	OPS->reset(st);
	ck_assert_int_eq(OPS->bind(conn, st, ARGS(A_TEXT("it's ?1")), &cause), DB_OK);
	ck_assert_int_eq(OPS->step(conn, st, &cause), DB_ROW);
	ck_assert_str_eq(OPS->col_text(st, 1), "z");
	ck_assert_int_eq(OPS->col_int(st, 3), -7);
	ck_assert_int_eq(OPS->step(conn, st, &cause), DB_DONE);
	OPS->reset(st);
	ck_assert_int_eq(OPS->step(conn, st, &cause), DB_DONE);

	/* More values than parameters. */
	OPS->reset(st);
	ck_assert_int_eq(OPS->bind(conn, st, ARGS(A_INT(1), A_INT(2), A_INT(3)), &cause), DB_ERROR);
	ck_assert_int_eq(OPS->failure(conn), DB_FAILURE_PERMANENT);
	free(cause);
	cause = NULL;
	OPS->reset(st);
	OPS->finalize(st);
	OPS->finalize(NULL);

	/* Booleans read as SQLite's truth values. */
	st = prep(conn, "SELECT true, false, NULL::boolean");
	ck_assert_int_eq(OPS->step(conn, st, &cause), DB_ROW);
	ck_assert_int_eq(OPS->col_int(st, 0), 1);
	ck_assert_int_eq(OPS->col_int(st, 1), 0);
	ck_assert_int_eq(OPS->col_is_null(st, 2), 1);
	OPS->finalize(st);

	/* A bare ? or ?0 is refused; so is SQL the server rejects. */
	st = NULL;
	ck_assert_int_eq(OPS->prepare(conn, "SELECT ? FROM p1", &st, &cause), DB_ERROR);
	ck_assert_ptr_null(st);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(OPS->prepare(conn, "SELECT ?0", &st, &cause), DB_ERROR);
	free(cause);
	cause = NULL;
	ck_assert_int_eq(OPS->prepare(conn, "SELEC 1", &st, &cause), DB_ERROR);
	ck_assert_msg(
	    strstr(cause, "42601") != NULL && strstr(cause, "SELEC 1") != NULL, "%s", cause);
	ck_assert_int_eq(OPS->failure(conn), DB_FAILURE_PERMANENT);
	free(cause);
	cause = NULL;

	/* A run that fails: DB_ERROR with the server's message, then reset and go on. */
	st = prep(conn, "SELECT 10 / ?1::int");
	ck_assert_int_eq(OPS->bind(conn, st, ARGS(A_INT(0)), &cause), DB_OK);
	rc = OPS->step(conn, st, &cause);
	ck_assert_int_eq(rc, DB_ERROR);
	ck_assert_msg(strstr(cause, "22012") != NULL, "%s", cause);
	free(cause);
	cause = NULL;
	OPS->reset(st);
	ck_assert_int_eq(OPS->bind(conn, st, ARGS(A_INT(5)), &cause), DB_OK);
	ck_assert_int_eq(OPS->step(conn, st, &cause), DB_ROW);
	ck_assert_int_eq(OPS->col_int(st, 0), 2);
	OPS->finalize(st);
}
END_TEST

START_TEST(t_changes_and_ids)
{
	struct db_bconn *other;

	/* No sequence used yet in this session: 0. */
	ck_assert_int_eq(OPS->last_insert_id(conn), 0);
	script(conn, "CREATE TABLE c1 (id bigserial PRIMARY KEY, name text)");
	ck_assert_int_eq(run(conn, "INSERT INTO c1 (name) VALUES (?1)", ARGS(A_TEXT("a"))), DB_OK);
	ck_assert_int_eq(OPS->changes(conn), 1);
	ck_assert_int_eq(OPS->last_insert_id(conn), 1);
	ck_assert_int_eq(run(conn, "INSERT INTO c1 (name) VALUES (?1)", ARGS(A_TEXT("b"))), DB_OK);
	ck_assert_int_eq(OPS->last_insert_id(conn), 2);

	/* Another session's INSERT does not change this session's id. */
	other = connect_ok();
	ck_assert_int_eq(run(other, "INSERT INTO c1 (name) VALUES (?1)", ARGS(A_TEXT("c"))), DB_OK);
	ck_assert_int_eq(OPS->last_insert_id(other), 3);
	OPS->close(other);
	ck_assert_int_eq(OPS->last_insert_id(conn), 2);

	ck_assert_int_eq(run(conn, "UPDATE c1 SET name = name || ?1", ARGS(A_TEXT("!"))), DB_OK);
	ck_assert_int_eq(OPS->changes(conn), 3);
	/* A SELECT leaves changes() as it was, as in SQLite. */
	ck_assert_int_eq(value(conn, "SELECT count(*) FROM c1"), 3);
	ck_assert_int_eq(OPS->changes(conn), 3);
	ck_assert_int_eq(run(conn, "DELETE FROM c1 WHERE id = ?1", ARGS(A_INT(99))), DB_OK);
	ck_assert_int_eq(OPS->changes(conn), 0);
	ck_assert_int_eq(run(conn, "DELETE FROM c1 WHERE id <= ?1", ARGS(A_INT(2))), DB_OK);
	ck_assert_int_eq(OPS->changes(conn), 2);
}
END_TEST

START_TEST(t_transactions)
{
	char *cause = NULL;

	script(conn, "CREATE TABLE x1 (id bigint PRIMARY KEY)");
	ck_assert_int_eq(OPS->tx_ended(conn), 1);

	/* A savepoint rolled back keeps what came before it. */
	tx_ok(conn, DB_TX_BEGIN);
	ck_assert_int_eq(OPS->tx_ended(conn), 0);
	ck_assert_int_eq(run(conn, "INSERT INTO x1 VALUES (?1)", ARGS(A_INT(1))), DB_OK);
	tx_ok(conn, DB_TX_SAVEPOINT);
	ck_assert_int_eq(run(conn, "INSERT INTO x1 VALUES (?1)", ARGS(A_INT(2))), DB_OK);
	tx_ok(conn, DB_TX_ROLLBACK_TO);
	tx_ok(conn, DB_TX_RELEASE);
	/* A failure under a savepoint: rolled back to it, the transaction goes on. */
	tx_ok(conn, DB_TX_SAVEPOINT);
	ck_assert_int_eq(run(conn, "INSERT INTO x1 VALUES (?1)", ARGS(A_INT(1))), DB_CONFLICT);
	ck_assert_int_eq(OPS->tx_ended(conn), 0);
	tx_ok(conn, DB_TX_ROLLBACK_TO);
	tx_ok(conn, DB_TX_RELEASE);
	tx_ok(conn, DB_TX_SAVEPOINT);
	ck_assert_int_eq(run(conn, "INSERT INTO x1 VALUES (?1)", ARGS(A_INT(3))), DB_OK);
	tx_ok(conn, DB_TX_RELEASE);
	/*
	 * Savepoints are sent with the next statement: one nothing ran under,
	 * rolled back, leaves the operation before it (whose RELEASE is still
	 * to be sent) as it was; the next one's failure undoes only itself.
	 */
	tx_ok(conn, DB_TX_SAVEPOINT);
	tx_ok(conn, DB_TX_ROLLBACK_TO);
	tx_ok(conn, DB_TX_RELEASE);
	tx_ok(conn, DB_TX_SAVEPOINT);
	ck_assert_int_eq(run(conn, "INSERT INTO x1 VALUES (?1)", ARGS(A_INT(3))), DB_CONFLICT);
	tx_ok(conn, DB_TX_ROLLBACK_TO);
	tx_ok(conn, DB_TX_RELEASE);
	ck_assert_int_eq(OPS->tx_ended(conn), 0);
	tx_ok(conn, DB_TX_COMMIT);
	ck_assert_int_eq(OPS->tx_ended(conn), 1);
	ck_assert_int_eq(value(conn, "SELECT count(*) FROM x1"), 2);
	ck_assert_int_eq(value(conn, "SELECT sum(id) FROM x1"), 4);

	/* ROLLBACK undoes. */
	tx_ok(conn, DB_TX_BEGIN);
	ck_assert_int_eq(run(conn, "DELETE FROM x1", NULL, 0), DB_OK);
	tx_ok(conn, DB_TX_ROLLBACK);
	ck_assert_int_eq(value(conn, "SELECT count(*) FROM x1"), 2);

	/* A verb out of place is an error like a statement's. */
	ck_assert_int_eq(OPS->tx(conn, DB_TX_RELEASE, &cause), DB_ERROR);
	ck_assert_ptr_nonnull(cause);
	free(cause);
}
END_TEST

START_TEST(t_error_in_transaction)
{
	struct db_bstmt *st, *late = NULL;
	char *cause = NULL;

	script(conn, "CREATE TABLE e1 (id bigint PRIMARY KEY)");
	st = prep(conn, "INSERT INTO e1 VALUES (?1)");
	tx_ok(conn, DB_TX_BEGIN);
	ck_assert_int_eq(run(conn, "INSERT INTO e1 VALUES (?1)", ARGS(A_INT(1))), DB_OK);
	ck_assert_int_eq(run(conn, "SELECT 1 / ?1::int", ARGS(A_INT(0))), DB_ERROR);
	ck_assert_int_eq(OPS->failure(conn), DB_FAILURE_PERMANENT);
	/* Still open, but every statement fails until a ROLLBACK, a prepare too. */
	ck_assert_int_eq(OPS->tx_ended(conn), 0);
	ck_assert_int_eq(OPS->bind(conn, st, ARGS(A_INT(2)), &cause), DB_OK);
	ck_assert_int_eq(OPS->step(conn, st, &cause), DB_ERROR);
	ck_assert_msg(strstr(cause, "25P02") != NULL, "%s", cause);
	free(cause);
	cause = NULL;
	OPS->reset(st);
	ck_assert_int_eq(OPS->prepare(conn, "SELECT 1", &late, &cause), DB_ERROR);
	ck_assert_ptr_null(late);
	free(cause);
	cause = NULL;
	/* COMMIT of it rolls back: that is reported as a failure. */
	ck_assert_int_eq(OPS->tx(conn, DB_TX_COMMIT, &cause), DB_ERROR);
	ck_assert_msg(strstr(cause, "rolled back") != NULL, "%s", cause);
	free(cause);
	ck_assert_int_eq(OPS->tx_ended(conn), 1);
	ck_assert_int_eq(value(conn, "SELECT count(*) FROM e1"), 0);
	OPS->finalize(st);
}
END_TEST

START_TEST(t_conflicts)
{
	script(conn,
	    "CREATE TABLE u1 (id bigint PRIMARY KEY, name text UNIQUE);"
	    "CREATE TABLE u2 (u1 bigint REFERENCES u1 (id))");
	ck_assert_int_eq(
	    run(conn, "INSERT INTO u1 VALUES (?1, ?2)", ARGS(A_INT(1), A_TEXT("a"))), DB_OK);
	ck_assert_int_eq(
	    run(conn, "INSERT INTO u1 VALUES (?1, ?2)", ARGS(A_INT(1), A_TEXT("b"))), DB_CONFLICT);
	ck_assert_int_eq(
	    run(conn, "INSERT INTO u1 VALUES (?1, ?2)", ARGS(A_INT(2), A_TEXT("a"))), DB_CONFLICT);
	ck_assert_int_eq(run(conn, "INSERT INTO u2 VALUES (?1)", ARGS(A_INT(9))), DB_NOTFOUND);
	ck_assert_int_eq(run(conn, "INSERT INTO u2 VALUES (?1)", ARGS(A_INT(1))), DB_OK);
	/* Another constraint (NOT NULL, 23502) is a plain permanent error. */
	ck_assert_int_eq(
	    run(conn, "INSERT INTO u1 VALUES (?1, ?2)", ARGS(A_NULL, A_TEXT("c"))), DB_ERROR);
	ck_assert_int_eq(OPS->failure(conn), DB_FAILURE_PERMANENT);
}
END_TEST

START_TEST(t_busy_and_transient)
{
	struct db_bconn *other = connect_ok();
	struct db_bstmt *st;
	char *cause = NULL;
	int64_t pid;

	script(conn, "CREATE TABLE b1 (id bigint PRIMARY KEY); INSERT INTO b1 VALUES (1)");
	tx_ok(conn, DB_TX_BEGIN);
	ck_assert_int_eq(
	    run(conn, "SELECT id FROM b1 WHERE id = ?1 FOR UPDATE", ARGS(A_INT(1))), DB_OK);
	/* The row is locked by the other session: 55P03 is busy. */
	st = prep(other, "SELECT id FROM b1 WHERE id = ?1 FOR UPDATE NOWAIT");
	ck_assert_int_eq(OPS->bind(other, st, ARGS(A_INT(1)), &cause), DB_OK);
	ck_assert_int_eq(OPS->step(other, st, &cause), DB_ERROR);
	ck_assert_msg(strstr(cause, "55P03") != NULL, "%s", cause);
	ck_assert_int_eq(OPS->failure(other), DB_FAILURE_BUSY);
	free(cause);
	cause = NULL;
	tx_ok(conn, DB_TX_COMMIT);
	OPS->reset(st);
	ck_assert_int_eq(OPS->bind(other, st, ARGS(A_INT(1)), &cause), DB_OK);
	ck_assert_int_eq(OPS->step(other, st, &cause), DB_ROW);
	OPS->reset(st);

	/*
	 * pg_terminate_backend(pid, timeout) waits until the session is gone,
	 * so what follows never races its end.
	 *
	 * A session the server ends inside a transaction: transient, the
	 * transaction is gone, and nothing of it runs on a new session.
	 */
	tx_ok(other, DB_TX_BEGIN);
	pid = value(other, "SELECT pg_backend_pid()");
	ck_assert_int_eq(
	    run(conn, "SELECT pg_terminate_backend(?1::int, 10000)", ARGS(A_INT(pid))), DB_OK);
	ck_assert_int_eq(OPS->bind(other, st, ARGS(A_INT(1)), &cause), DB_OK);
	ck_assert_int_eq(OPS->step(other, st, &cause), DB_ERROR);
	ck_assert_int_eq(OPS->failure(other), DB_FAILURE_TRANSIENT);
	free(cause);
	cause = NULL;
	OPS->reset(st);
	ck_assert_int_eq(OPS->bind(other, st, ARGS(A_INT(1)), &cause), DB_OK);
	ck_assert_int_eq(OPS->step(other, st, &cause), DB_ERROR);
	ck_assert_msg(strstr(cause, "inside a transaction") != NULL, "%s", cause);
	free(cause);
	cause = NULL;
	OPS->reset(st);
	ck_assert_int_eq(OPS->tx_ended(other), 1);
	OPS->finalize(st);
	OPS->close(other);
}
END_TEST

/*
 * Outside a transaction a lost session is opened again by the next
 * statement, which runs (prepared again on the new session) as if
 * nothing happened; so does the next BEGIN.
 */
START_TEST(t_reconnect)
{
	struct db_bconn *other = connect_ok();
	struct db_bstmt *st = prep(other, "SELECT ?1::bigint + 1");
	char *cause = NULL;
	int64_t pid, pid2;

	pid = value(other, "SELECT pg_backend_pid()");
	ck_assert_int_eq(
	    run(conn, "SELECT pg_terminate_backend(?1::int, 10000)", ARGS(A_INT(pid))), DB_OK);
	ck_assert_int_eq(OPS->bind(other, st, ARGS(A_INT(41)), &cause), DB_OK);
	ck_assert_msg(OPS->step(other, st, &cause) == DB_ROW, "%s", cause ? cause : "?");
	ck_assert_int_eq(OPS->col_int64(st, 0), 42);
	OPS->reset(st);
	pid2 = value(other, "SELECT pg_backend_pid()");
	ck_assert_int_ne(pid, pid2);
	/* The lock timeout is set on the new session too. */
	ck_assert_int_eq(value(other,
			     "SELECT setting::bigint FROM pg_settings"
			     " WHERE name = 'lock_timeout'"),
	    DB_BUSY_TIMEOUT_MS);
	ck_assert_int_eq(
	    run(conn, "SELECT pg_terminate_backend(?1::int, 10000)", ARGS(A_INT(pid2))), DB_OK);
	tx_ok(other, DB_TX_BEGIN);
	ck_assert_int_eq(OPS->bind(other, st, ARGS(A_INT(1)), &cause), DB_OK);
	ck_assert_int_eq(OPS->step(other, st, &cause), DB_ROW);
	ck_assert_int_eq(OPS->col_int64(st, 0), 2);
	OPS->reset(st);
	tx_ok(other, DB_TX_COMMIT);
	OPS->finalize(st);
	OPS->close(other);
}
END_TEST

/*
 * BEGIN takes the one write lock: a second BEGIN waits for it, past the
 * busy timeout it is busy (55P03), and the failed BEGIN leaves no
 * transaction behind.
 */
START_TEST(t_begin_takes_the_write_lock)
{
	struct db_bconn *other = connect_ok();
	char *cause = NULL;

	tx_ok(conn, DB_TX_BEGIN);
	script(other, "SET lock_timeout = 200");
	ck_assert_int_eq(OPS->tx(other, DB_TX_BEGIN, &cause), DB_ERROR);
	ck_assert_msg(strstr(cause, "55P03") != NULL, "%s", cause);
	ck_assert_int_eq(OPS->failure(other), DB_FAILURE_BUSY);
	ck_assert_int_eq(OPS->tx_ended(other), 1);
	free(cause);
	cause = NULL;
	tx_ok(conn, DB_TX_COMMIT);
	tx_ok(other, DB_TX_BEGIN);
	tx_ok(other, DB_TX_COMMIT);
	OPS->close(other);
}
END_TEST

/* Named locks: one holder across sessions, gone with the holder's session. */
START_TEST(t_named_locks)
{
	struct db_bconn *other = connect_ok();
	char *cause = NULL;
	int64_t pid;

	ck_assert_int_eq(OPS->lock_try(conn, "sync-chat", &cause), DB_OK);
	ck_assert_int_eq(OPS->lock_try(conn, "sync-chat", &cause), DB_OK); /* held here */
	ck_assert_int_eq(OPS->lock_try(other, "sync-chat", &cause), DB_CONFLICT);
	ck_assert_int_eq(OPS->lock_try(other, "sync-room", &cause), DB_OK);
	OPS->unlock(conn, "sync-chat");
	ck_assert_int_eq(OPS->lock_try(other, "sync-chat", &cause), DB_OK);
	ck_assert_int_eq(OPS->lock_try(conn, "sync-chat", &cause), DB_CONFLICT);
	/* The holder's session ends (kill -9 of its process, say): the lock is free. */
	pid = value(other, "SELECT pg_backend_pid()");
	ck_assert_int_eq(
	    run(conn, "SELECT pg_terminate_backend(?1::int, 10000)", ARGS(A_INT(pid))), DB_OK);
	ck_assert_int_eq(OPS->lock_try(conn, "sync-chat", &cause), DB_OK);
	/* The other's next try finds the lock taken, and knows it lost its own. */
	ck_assert_int_eq(OPS->lock_try(other, "sync-chat", &cause), DB_CONFLICT);
	ck_assert_ptr_null(cause);
	OPS->close(other);
}
END_TEST

/* The schema version: 0 without chatd's table, then what was set. */
START_TEST(t_schema_version)
{
	char *cause = NULL;
	int64_t v = -1;

	script(conn, "DROP TABLE IF EXISTS chatd_schema");
	ck_assert_int_eq(OPS->version_get(conn, &v, &cause), DB_OK);
	ck_assert_int_eq(v, 0);
	script(conn,
	    "CREATE TABLE chatd_schema (version INTEGER NOT NULL);"
	    " INSERT INTO chatd_schema VALUES (0)");
	ck_assert_int_eq(OPS->version_set(conn, 7, &cause), DB_OK);
	ck_assert_int_eq(OPS->version_get(conn, &v, &cause), DB_OK);
	ck_assert_int_eq(v, 7);
	script(conn, "DROP TABLE chatd_schema");
}
END_TEST

START_TEST(t_finalize_deallocates)
{
	struct db_bstmt *a, *b;
	int64_t before = value(conn, "SELECT count(*) FROM pg_prepared_statements");

	a = prep(conn, "SELECT 1");
	b = prep(conn, "SELECT 2");
	ck_assert_int_eq(value(conn, "SELECT count(*) FROM pg_prepared_statements"), before + 2);
	OPS->finalize(a);
	OPS->finalize(b);
	ck_assert_int_eq(value(conn, "SELECT count(*) FROM pg_prepared_statements"), before);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("db_pg");
	TCase *tc = tcase_create("db_pg");

	tcase_add_unchecked_fixture(tc, server_start, server_stop);
	tcase_add_checked_fixture(tc, conn_open, conn_close);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, t_open_close);
	tcase_add_test(tc, t_exec_script);
	tcase_add_test(tc, t_placeholders);
	tcase_add_test(tc, t_changes_and_ids);
	tcase_add_test(tc, t_transactions);
	tcase_add_test(tc, t_error_in_transaction);
	tcase_add_test(tc, t_conflicts);
	tcase_add_test(tc, t_busy_and_transient);
	tcase_add_test(tc, t_reconnect);
	tcase_add_test(tc, t_begin_takes_the_write_lock);
	tcase_add_test(tc, t_named_locks);
	tcase_add_test(tc, t_schema_version);
	tcase_add_test(tc, t_finalize_deallocates);
	suite_add_tcase(s, tc);
	return s;
}
