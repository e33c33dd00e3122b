/*
 * The seam between db.c and a database engine. db.c owns everything that
 * is the same whatever the engine: the statement table, the migrations,
 * the paging loop and every db_* operation. A backend owns one engine's
 * calls: it opens a connection, prepares the table's SQL text, binds
 * struct db_arg values, steps, reads columns and runs transactions.
 *
 * Included only by db.c, the backends (db_sqlite.c, db_pg.c) and their
 * unit tests; nothing else outside src/common/db*.c sees it.
 *
 * SQL text keeps SQLite's ?N placeholders (?1 is args[0]); a backend
 * whose engine numbers them otherwise ($N) rewrites them in prepare().
 * Text handed to prepare() or exec_script() is constant: values are only
 * ever bound.
 *
 * Return values: DB_OK, DB_ERROR (with *cause, heap), DB_NOTFOUND and
 * DB_CONFLICT as in db.h, and from step() also DB_ROW and DB_DONE.
 *
 * Each backend is one struct db_backend_ops in a file of its own;
 * db_open() picks the ops from the database address it is given
 * (dbaddr.h). Both engines' SQL text lives in db_sql.c.
 */
#ifndef CHAT_DB_BACKEND_H
#define CHAT_DB_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

/* step() results besides the db.h codes. */
#define DB_ROW 100
#define DB_DONE 101

/* A bound parameter: args[i] binds ?(i + 1). */
enum db_arg_type { DB_ARG_NULL, DB_ARG_INT, DB_ARG_TEXT };
struct db_arg {
	enum db_arg_type type;
	int64_t i;
	const char *s; /* NULL binds SQL NULL; must outlive the statement's use */
};

/*
 * What the latest failed prepare(), bind(), step() or tx() on a
 * connection was (db_failure_was_busy(), db_failure_transient()).
 */
enum db_failure {
	DB_FAILURE_PERMANENT, /* fails the same way every time: constraint, schema, value */
	DB_FAILURE_TRANSIENT, /* may go away by itself: full disk, I/O error, read-only */
	DB_FAILURE_BUSY, /* another process held a lock past the busy timeout (transient too) */
};

/*
 * The transaction statements db.c runs. BEGIN takes the write lock at
 * once (SQLite: BEGIN IMMEDIATE), so that a transaction that reads before
 * it writes waits for other writers instead of failing. The savepoint
 * has one name (db.c nests at most one operation in a batch).
 */
enum db_tx_verb {
	DB_TX_BEGIN,
	DB_TX_COMMIT,
	DB_TX_ROLLBACK,
	DB_TX_SAVEPOINT,
	DB_TX_RELEASE, /* the savepoint */
	DB_TX_ROLLBACK_TO, /* the savepoint (which stays; RELEASE it after) */
	DB_TX_VERBS
};

/* Whose SQL text db_sql.c hands the backend. */
enum db_dialect { DB_DIALECT_SQLITE, DB_DIALECT_PG };

/* A backend's connection; only the backend knows what is inside. */
struct db_bconn;

/*
 * A backend's prepared statement. Each backend's statement type has this
 * as its first member, so that db.c's row readers, which see only the
 * statement, reach the column functions.
 */
struct db_bstmt {
	const struct db_backend_ops *ops;
};

struct db_backend_ops {
	const char *name;
	enum db_dialect dialect;
	/*
	 * Whether a savepoint costs a round trip to a server (and a
	 * subtransaction there): db.c then runs the operations it has checked
	 * beforehand without one inside a batch (db_op_begin_bare()).
	 */
	int costly_savepoints;

	/*
	 * Opens a connection to target (SQLite: a file path) with the busy
	 * timeout DB_BUSY_TIMEOUT_MS and the engine's settings applied,
	 * creating the database if create. With create 0 and no database at
	 * target: DB_NOTFOUND, without *cause. (PostgreSQL: a database is
	 * never created and a missing one is DB_ERROR; see db_pg.c.)
	 */
	int (*open)(const char *target, int create, struct db_bconn **out, char **cause);
	/* NULL is allowed. An open transaction is rolled back. */
	void (*close)(struct db_bconn *c);

	/* Prepares one statement, kept for the connection's lifetime. */
	int (*prepare)(struct db_bconn *c, const char *sql, struct db_bstmt **out, char **cause);
	/* Binds args[0..n) to ?1..?n. On DB_ERROR the caller resets. */
	int (*bind)(struct db_bconn *c, struct db_bstmt *st, const struct db_arg *args, size_t n,
	    char **cause);
	/*
	 * DB_ROW, DB_DONE, DB_CONFLICT (a unique or primary key), DB_NOTFOUND
	 * (a foreign key names nothing) or DB_ERROR with *cause. Aborts the
	 * program when the engine is out of memory mid-statement.
	 */
	int (*step)(struct db_bconn *c, struct db_bstmt *st, char **cause);
	/* Ready to bind and step again; drops the bindings. */
	void (*reset)(struct db_bstmt *st);
	/* NULL is allowed. */
	void (*finalize)(struct db_bstmt *st);

	/* Columns of the current row, from 0. SQL NULL reads as 0. */
	int64_t (*col_int64)(struct db_bstmt *st, int col);
	int (*col_int)(struct db_bstmt *st, int col);
	/* NULL for SQL NULL; valid until the next step or reset. */
	const char *(*col_text)(struct db_bstmt *st, int col);
	/* Length of col_text()'s text in bytes. */
	size_t (*col_bytes)(struct db_bstmt *st, int col);
	int (*col_is_null)(struct db_bstmt *st, int col);

	/* Rows inserted, updated or deleted by the latest statement. */
	int64_t (*changes)(struct db_bconn *c);
	/* The id (INTEGER PRIMARY KEY) the latest INSERT gave its row. */
	int64_t (*last_insert_id)(struct db_bconn *c);

	/*
	 * Runs constant SQL text of one or more statements (a migration
	 * step); what names it in *cause. Does not touch failure().
	 */
	int (*exec_script)(struct db_bconn *c, const char *sql, const char *what, char **cause);

	/* Runs one transaction statement; results as step() gives them, DB_OK for done. */
	int (*tx)(struct db_bconn *c, enum db_tx_verb verb, char **cause);
	/*
	 * Whether the engine has no transaction open. db.c tracks its own
	 * and asks this only while it has one: some engines roll back by
	 * themselves after some failures (SQLite after SQLITE_FULL or
	 * SQLITE_IOERR while a statement spills to disk).
	 */
	int (*tx_ended)(struct db_bconn *c);
	/* The latest failure's kind. */
	enum db_failure (*failure)(struct db_bconn *c);

	/*
	 * The schema version (0 for a database without chatd's tables) and
	 * setting it inside the migration's transaction; v is db.c's own
	 * number. Where the engine keeps it is the backend's business.
	 */
	int (*version_get)(struct db_bconn *c, int64_t *v, char **cause);
	int (*version_set)(struct db_bconn *c, int v, char **cause);

	/*
	 * A named lock without waiting, held until unlock or the connection
	 * (or the process) ends, among every process on every machine that
	 * shares the database: DB_OK taken (or already held here),
	 * DB_CONFLICT held by another, DB_ERROR with *cause. name is a few
	 * characters of [A-Za-z0-9_.-].
	 */
	int (*lock_try)(struct db_bconn *c, const char *name, char **cause);
	void (*unlock)(struct db_bconn *c, const char *name);

	/*
	 * Engine extras. A backend without them leaves them NULL: db.c then
	 * installs no hook (none ever runs) and a checkpoint has nothing to
	 * do (DB_OK, 0 pages).
	 *
	 * wal_hook: hook(arg, wal_pages) after each commit, in place of the
	 * engine's automatic checkpoints. checkpoint: a passive one; a
	 * checkpoint already under way elsewhere is DB_OK.
	 */
	void (*wal_hook)(struct db_bconn *c, void (*hook)(void *arg, int wal_pages), void *arg);
	int (*checkpoint)(struct db_bconn *c, int *wal_pages, int *done_pages, char **cause);
};

/*
 * A struct db's backend and connection, for code of the database module
 * that works table by table across engines (db_copy.c). Not for anything
 * outside src/common/db*.c.
 */
const struct db_backend_ops *db_backend_ops_of(struct db *db);
struct db_bconn *db_backend_conn_of(struct db *db);

/* db_sqlite.c: one SQLite file in WAL mode, shared by every program. */
extern const struct db_backend_ops db_sqlite_ops;
/* db_pg.c: a PostgreSQL server over libpq (target: a libpq connection string or URI). */
extern const struct db_backend_ops db_pg_ops;

#endif
