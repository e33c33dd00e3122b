/*
 * The database module: the only file that writes SQL. It owns the schema
 * and its migrations, and turns each operation of db.h into prepared,
 * bound statements run inside write-locking transactions, so several
 * processes can share one database. Knows nothing about the programs.
 *
 * Nothing here calls an engine: the backend behind db_backend.h does
 * (db_sqlite.c, db_pg.c), and db_sql.c holds each engine's SQL text.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "db_backend.h"
#include "db_sql.h"
#include "dbaddr.h"
#include "jsonutil.h"
#include "log.h"
#include "page.h"
#include "xmalloc.h"

/* One connection; used by one thread at a time. */
struct db {
	const struct db_backend_ops *ops;
	struct db_bconn *conn;
	char *path; /* for messages: dbaddr_display(), no password */
	struct db_bstmt *stmt[DB_STMT_COUNT];
	/*
	 * A transaction this module began (BEGIN succeeded, no COMMIT or
	 * ROLLBACK yet) and, while one is open, whether the running operation
	 * nests in it under a savepoint (a db_tx_begin() batch). The engine
	 * may have ended the transaction by itself: see db_tx_live().
	 */
	int tx_open;
	int in_savepoint;
	int op_bare; /* the running operation nests in a batch without a savepoint */
	int busy_failed; /* the latest failure was a lock held past the busy timeout */
	int transient_failed; /* the latest failure may go away by itself */
};

/*
 * Call-site sugar for binding: the DB_ARGS() compound literal keeps each
 * call site to one line and lets the compiler check each value's type.
 */
#define DB_INT(v) ((struct db_arg){ DB_ARG_INT, (v), NULL })
#define DB_TEXT(v) ((struct db_arg){ DB_ARG_TEXT, 0, (v) })
/* 0 binds NULL: "no expiry", "no session". */
#define DB_INT_OR_NULL(v) ((struct db_arg){ (v) != 0 ? DB_ARG_INT : DB_ARG_NULL, (v), NULL })
#define DB_ARGS(...) \
	((const struct db_arg[]){ __VA_ARGS__ }), \
	    (sizeof((const struct db_arg[]){ __VA_ARGS__ }) / sizeof(struct db_arg))
#define DB_NOARGS NULL, 0

/* Column readers of the current row (db_backend.h). */
static inline int64_t
db_col_int64(struct db_bstmt *st, int col)
{
	return st->ops->col_int64(st, col);
}

static inline int
db_col_int(struct db_bstmt *st, int col)
{
	return st->ops->col_int(st, col);
}

/* Text of a column; NULL for SQL NULL. */
static inline const char *
db_col_text(struct db_bstmt *st, int col)
{
	return st->ops->col_text(st, col);
}

/* Length in bytes of the column's text. */
static inline size_t
db_col_bytes(struct db_bstmt *st, int col)
{
	return st->ops->col_bytes(st, col);
}

static inline int
db_col_is_null(struct db_bstmt *st, int col)
{
	return st->ops->col_is_null(st, col);
}

static char *
db_col_strdup(struct db_bstmt *st, int col)
{
	const char *t = db_col_text(st, col);

	return t == NULL ? NULL : xstrdup(t);
}

static inline int64_t
db_changes(struct db *db)
{
	return db->ops->changes(db->conn);
}

static inline int64_t
db_last_insert_id(struct db *db)
{
	return db->ops->last_insert_id(db->conn);
}

/* Takes the kind of the backend's latest failure (after a DB_ERROR). */
static void
db_failed(struct db *db)
{
	enum db_failure f = db->ops->failure(db->conn);

	db->busy_failed = f == DB_FAILURE_BUSY;
	db->transient_failed = f != DB_FAILURE_PERMANENT;
}

void
db_failure_reset(struct db *db)
{
	db->busy_failed = 0;
	db->transient_failed = 0;
}

int
db_failure_was_busy(const struct db *db)
{
	return db->busy_failed;
}

int
db_failure_transient(const struct db *db)
{
	return db->transient_failed;
}

static void
db_done(struct db *db, struct db_bstmt *st)
{
	db->ops->reset(st);
}

/* The cached statement for which, bound to args; NULL with *cause. */
static struct db_bstmt *
db_prepare(struct db *db, enum db_stmt which, char **cause, const struct db_arg *args, size_t n)
{
	struct db_bstmt *st;

	if ((st = db->stmt[which]) == NULL) {
		if (db->ops->prepare(db->conn, db_sql_text(db->ops->dialect, which),
			&db->stmt[which], cause) != DB_OK) {
			db_failed(db);
			return NULL;
		}
		st = db->stmt[which];
	}
	if (n > 0 && db->ops->bind(db->conn, st, args, n, cause) != DB_OK) {
		db_failed(db);
		db_done(db, st);
		return NULL;
	}
	return st;
}

/*
 * Steps once: DB_ROW, DB_DONE, DB_CONFLICT (unique or primary key),
 * DB_NOTFOUND (a foreign key names nothing) or DB_ERROR with *cause.
 */
static int
db_step(struct db *db, struct db_bstmt *st, char **cause)
{
	int rc = db->ops->step(db->conn, st, cause);

	if (rc == DB_ERROR)
		db_failed(db);
	return rc;
}

/* Runs a statement to completion, ignoring rows. */
static int
db_exec(struct db *db, enum db_stmt which, char **cause, const struct db_arg *args, size_t n)
{
	struct db_bstmt *st;
	int rc;

	if ((st = db_prepare(db, which, cause, args, n)) == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW)
		;
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

/*
 * Runs a statement to completion; *got says whether it gave a row, whose
 * column 0 is then in *out (a write with RETURNING, on engines whose text
 * has it: db_sql.c).
 */
static int
db_exec_first(struct db *db, enum db_stmt which, int64_t *out, int *got, char **cause,
    const struct db_arg *args, size_t n)
{
	struct db_bstmt *st;
	int rc;

	*got = 0;
	if ((st = db_prepare(db, which, cause, args, n)) == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		if (!*got)
			*out = db_col_int64(st, 0);
		*got = 1;
	}
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

/* An INSERT's new id: RETURNING's, else the backend's last_insert_id(). */
static int
db_insert(struct db *db, enum db_stmt which, int64_t *id, char **cause, const struct db_arg *args,
    size_t n)
{
	int64_t v = 0;
	int got, rc;

	if ((rc = db_exec_first(db, which, &v, &got, cause, args, n)) != DB_OK)
		return rc;
	if (id != NULL)
		*id = got ? v : db_last_insert_id(db);
	return DB_OK;
}

/* Runs a statement and returns column 0 of its first row; DB_NOTFOUND if none. */
static int
db_exec_int(struct db *db, enum db_stmt which, int64_t *out, char **cause,
    const struct db_arg *args, size_t n)
{
	struct db_bstmt *st;
	int rc, found = 0;

	if ((st = db_prepare(db, which, cause, args, n)) == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		if (!found)
			*out = db_col_int64(st, 0);
		found = 1;
	}
	db_done(db, st);
	if (rc != DB_DONE)
		return rc;
	return found ? DB_OK : DB_NOTFOUND;
}

/* Runs a transaction statement and keeps tx_open in step with it. */
static int
db_tx_run(struct db *db, enum db_tx_verb verb, char **cause)
{
	int rc = db->ops->tx(db->conn, verb, cause);

	if (rc == DB_ERROR)
		db_failed(db);
	else if (rc == DB_OK && verb == DB_TX_BEGIN)
		db->tx_open = 1;
	else if (rc == DB_OK && (verb == DB_TX_COMMIT || verb == DB_TX_ROLLBACK))
		db->tx_open = 0;
	return rc;
}

/*
 * Whether the transaction this module began is still open: after some
 * failures the engine rolls the whole transaction back by itself.
 */
static int
db_tx_live(const struct db *db)
{
	return db->tx_open && !db->ops->tx_ended(db->conn);
}

/*
 * Every write operation runs between db_op_begin() and db_op_commit(), in
 * a transaction that takes the write lock before reading (DB_TX_BEGIN),
 * which is what lets the busy timeout work across processes. Inside a
 * db_tx_begin() batch a savepoint gives the same all-or-nothing.
 */
static int
db_op_begin(struct db *db, char **cause)
{
	if (!db_tx_live(db)) {
		db->tx_open = 0;
		db->in_savepoint = 0;
		return db_tx_run(db, DB_TX_BEGIN, cause);
	}
	db->in_savepoint = 1;
	return db_tx_run(db, DB_TX_SAVEPOINT, cause);
}

/*
 * db_op_begin() for an operation of one statement whose values db.c has
 * checked against every constraint the statement could break (a chat
 * message: db_message_check()): inside a batch it takes no savepoint, so
 * only a failure of the database itself (a lost connection, a full disk)
 * can fail it, and then db_op_rollback() rolls the whole batch back,
 * which the writer handles as it handles an engine that did so by itself
 * (db_tx_open() false: what was applied is refused or tried again). Used
 * where a savepoint costs a round trip to a server and a subtransaction
 * in it (PostgreSQL); a batch's other failures still spoil only
 * themselves.
 */
static int
db_op_begin_bare(struct db *db, char **cause)
{
	if (!db_tx_live(db) || !db->ops->costly_savepoints)
		return db_op_begin(db, cause);
	db->in_savepoint = 0;
	db->op_bare = 1;
	return DB_OK;
}

static int
db_op_commit(struct db *db, char **cause)
{
	if (db->op_bare) {
		db->op_bare = 0;
		return DB_OK; /* the batch's COMMIT commits it */
	}
	return db_tx_run(db, db->in_savepoint ? DB_TX_RELEASE : DB_TX_COMMIT, cause);
}

static void
db_op_rollback(struct db *db)
{
	char *cause = NULL;
	int busy = db->busy_failed, transient = db->transient_failed;

	db->op_bare = 0; /* and so the batch's transaction ends below */
	/* The engine rolls the whole transaction back by itself after some errors. */
	if (!db_tx_live(db)) {
		db->tx_open = 0;
		return;
	}
	if (db->in_savepoint) {
		if (db_tx_run(db, DB_TX_ROLLBACK_TO, &cause) == DB_OK)
			(void)db_tx_run(db, DB_TX_RELEASE, &cause);
	} else
		(void)db_tx_run(db, DB_TX_ROLLBACK, &cause);
	if (cause != NULL) {
		log_warn("%s", cause);
		free(cause);
	}
	/* The caller reports the failure that made it roll back, not this one. */
	db->busy_failed = busy;
	db->transient_failed = transient;
}

/*
 * One statement as an operation of its own, begun by begin (db_op_begin:
 * a savepoint inside a batch, so a failed statement spoils only itself,
 * where PostgreSQL would otherwise abort the writer's whole batch with it;
 * or db_op_begin_bare). *changed (if not NULL) gets the rows it touched.
 */
static int
db_write_with(struct db *db, int (*begin)(struct db *, char **), enum db_stmt which,
    int64_t *changed, char **cause, const struct db_arg *args, size_t n)
{
	int rc;

	if ((rc = begin(db, cause)) != DB_OK)
		return rc;
	if ((rc = db_exec(db, which, cause, args, n)) != DB_OK)
		goto fail;
	if (changed != NULL)
		*changed = db_changes(db);
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
}

static int
db_write_one(struct db *db, enum db_stmt which, int64_t *changed, char **cause,
    const struct db_arg *args, size_t n)
{
	return db_write_with(db, db_op_begin, which, changed, cause, args, n);
}

/*
 * Refuses values that would break a constraint before the database sees
 * them (db_op_begin_bare()'s callers): DB_ERROR with *cause saying why
 * (heap, taken), a permanent failure, nothing touched.
 */
static int
db_refuse(struct db *db, char **cause, char *why)
{
	*cause = xasprintf("database %s: %s", db->path, why);
	free(why);
	db->busy_failed = 0;
	db->transient_failed = 0;
	return DB_ERROR;
}

/* Prints and frees a JSON object; the result is freed with cJSON_free(). */
static char *
db_json_print(cJSON *obj)
{
	char *s = json_ok(cJSON_PrintUnformatted(obj));

	cJSON_Delete(obj);
	return s;
}

static int
db_outbox_add(struct db *db, const char *kind, const char *room_id, const char *user_id,
    const char *nickname, const char *reason, int64_t session_id, const char *data, int64_t now,
    char **cause)
{
	return db_exec(db, DB_STMT_OUTBOX_INSERT, cause,
	    DB_ARGS(DB_TEXT(kind), DB_TEXT(room_id), DB_TEXT(user_id), DB_TEXT(nickname),
		DB_TEXT(reason), DB_INT_OR_NULL(session_id), DB_TEXT(data), DB_INT(now)));
}

static int
db_sync_add(
    struct db *db, const char *reason, const char *room_id, int64_t now, int64_t *id, char **cause)
{
	int rc;

	rc = db_insert(db, DB_STMT_SYNC_INSERT, id, cause,
	    DB_ARGS(DB_TEXT(reason), DB_TEXT(room_id), DB_INT(now)));
	return rc;
}

/*
 * Brings the schema to DB_SCHEMA_VERSION, one step per transaction, each
 * step and its version number together, so processes starting at the same
 * time cannot both apply a step and an interrupted step is applied again.
 */
static int
db_migrate(struct db *db, char **cause)
{
	char *what = NULL;
	int64_t version;
	int rc;

	if ((rc = db->ops->version_get(db->conn, &version, cause)) != DB_OK)
		goto fail;
	while (version < DB_SCHEMA_VERSION) {
		if ((rc = db_op_begin(db, cause)) != DB_OK)
			goto fail;
		/* Another process may have migrated while we waited for the lock. */
		if ((rc = db->ops->version_get(db->conn, &version, cause)) != DB_OK)
			goto fail;
		if (version >= DB_SCHEMA_VERSION) {
			if ((rc = db_op_commit(db, cause)) != DB_OK)
				goto fail;
			break;
		}
		what = xasprintf("migration to schema version %d", (int)version + 1);
		rc = db->ops->exec_script(
		    db->conn, db_sql_migration(db->ops->dialect, (int)version + 1), what, cause);
		if (rc != DB_OK)
			goto fail;
		if ((rc = db->ops->version_set(db->conn, (int)version + 1, cause)) != DB_OK)
			goto fail;
		if ((rc = db_op_commit(db, cause)) != DB_OK)
			goto fail;
		free(what);
		what = NULL;
		version++;
		log_info("database %s: migrated to schema version %d", db->path, (int)version);
	}
	if (version > DB_SCHEMA_VERSION) {
		*cause = xasprintf("database %s: schema version %d is newer than this build "
				   "understands (%d); upgrade chatd or use another database",
		    db->path, (int)version, DB_SCHEMA_VERSION);
		rc = DB_ERROR;
		goto fail;
	}
	return DB_OK;

fail:
	db_op_rollback(db);
	free(what);
	return DB_ERROR;
}

/* The backend for a database address, which reaches its open() whole. */
static const struct db_backend_ops *
db_backend_for(const char *target)
{
	return dbaddr_is_pg(target) ? &db_pg_ops : &db_sqlite_ops;
}

static int
db_open_mode(const char *path, int create, struct db **out, char **cause)
{
	const struct db_backend_ops *ops = db_backend_for(path);
	struct db_bconn *conn;
	struct db *db;
	int rc;

	*out = NULL;
	if ((rc = ops->open(path, create, &conn, cause)) != DB_OK)
		return rc;
	if (!create) {
		int64_t version;

		/* No tables yet: not there for a caller that must not make them. */
		if ((rc = ops->version_get(conn, &version, cause)) != DB_OK || version == 0) {
			ops->close(conn);
			return rc != DB_OK ? rc : DB_NOTFOUND;
		}
	}
	db = xcalloc(1, sizeof *db);
	db->ops = ops;
	db->conn = conn;
	db->path = dbaddr_display(path);
	if (db_migrate(db, cause) != DB_OK) {
		db_close(db);
		return DB_ERROR;
	}
	*out = db;
	return DB_OK;
}

int
db_open(const char *path, struct db **out, char **cause)
{
	return db_open_mode(path, 1, out, cause);
}

int
db_open_existing(const char *path, struct db **out, char **cause)
{
	return db_open_mode(path, 0, out, cause);
}

void
db_wal_hook(struct db *db, void (*hook)(void *arg, int wal_pages), void *arg)
{
	/* An engine without a write-ahead log of its own has no pages to report. */
	if (db->ops->wal_hook != NULL)
		db->ops->wal_hook(db->conn, hook, arg);
}

int
db_checkpoint(struct db *db, int *wal_pages, int *done_pages, char **cause)
{
	if (db->ops->checkpoint == NULL) {
		if (wal_pages != NULL)
			*wal_pages = 0;
		if (done_pages != NULL)
			*done_pages = 0;
		return DB_OK;
	}
	return db->ops->checkpoint(db->conn, wal_pages, done_pages, cause);
}

void
db_close(struct db *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < DB_STMT_COUNT; i++)
		db->ops->finalize(db->stmt[i]);
	/* Rolls back an open transaction. */
	db->ops->close(db->conn);
	free(db->path);
	free(db);
}

int
db_schema_version(struct db *db)
{
	int64_t version;
	char *cause = NULL;

	if (db->ops->version_get(db->conn, &version, &cause) != DB_OK) {
		free(cause);
		return -1;
	}
	return (int)version;
}

const struct db_backend_ops *
db_backend_ops_of(struct db *db)
{
	return db->ops;
}

struct db_bconn *
db_backend_conn_of(struct db *db)
{
	return db->conn;
}

const char *
db_backend_name(const struct db *db)
{
	return db->ops->name;
}

int
db_lock_try(struct db *db, const char *name, char **cause)
{
	return db->ops->lock_try(db->conn, name, cause);
}

void
db_lock_release(struct db *db, const char *name)
{
	db->ops->unlock(db->conn, name);
}

int
db_tx_begin(struct db *db, char **cause)
{
	if (db_tx_live(db)) {
		*cause = xasprintf("database %s: a transaction is already open", db->path);
		return DB_ERROR;
	}
	db->tx_open = 0;
	return db_tx_run(db, DB_TX_BEGIN, cause);
}

int
db_tx_commit(struct db *db, char **cause)
{
	/* PostgreSQL answers a COMMIT with nothing open by a warning, not an error. */
	if (!db->tx_open) {
		*cause = xasprintf("database %s: no transaction is open to commit", db->path);
		db->busy_failed = db->transient_failed = 0;
		return DB_ERROR;
	}
	if (db_tx_run(db, DB_TX_COMMIT, cause) != DB_OK) {
		db_tx_rollback(db);
		return DB_ERROR;
	}
	return DB_OK;
}

void
db_tx_rollback(struct db *db)
{
	db->in_savepoint = 0;
	db_op_rollback(db);
}

int
db_tx_open(const struct db *db)
{
	return db_tx_live(db);
}

/* ---- rooms ---- */

void
db_room_clear(struct db_room *room)
{
	size_t i;

	free(room->id);
	free(room->name);
	free(room->close_reason);
	for (i = 0; i < room->n_admins; i++)
		free(room->admins[i]);
	free(room->admins);
	memset(room, 0, sizeof *room);
}

/* Fills *room from a row laid out as DB_ROOM_COLUMNS, without admins. */
static void
db_room_fill(struct db_bstmt *st, struct db_room *room)
{
	memset(room, 0, sizeof *room);
	room->id = db_col_strdup(st, 0);
	room->name = db_col_strdup(st, 1);
	room->created_at = db_col_int64(st, 2);
	room->closed_at = db_col_int64(st, 3);
	room->close_reason = db_col_strdup(st, 4);
	room->peak_users = db_col_int64(st, 5);
	room->last_seq = db_col_int64(st, 6);
}

static void
db_room_add_admin(struct db_room *room, const char *user_id)
{
	room->admins = xreallocarray(room->admins, room->n_admins + 1, sizeof *room->admins);
	room->admins[room->n_admins++] = xstrdup(user_id);
}

/* Reads a room and its admins into *room; the caller holds any transaction. */
static int
db_room_read(struct db *db, const char *id, struct db_room *room, char **cause)
{
	struct db_bstmt *st;
	int rc;

	memset(room, 0, sizeof *room);
	if ((st = db_prepare(db, DB_STMT_ROOM_GET, cause, DB_ARGS(DB_TEXT(id)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW)
		db_room_fill(st, room);
	db_done(db, st);
	if (rc != DB_ROW)
		return rc == DB_DONE ? DB_NOTFOUND : rc;

	if ((st = db_prepare(db, DB_STMT_ADMIN_LIST, cause, DB_ARGS(DB_TEXT(id)))) == NULL)
		goto fail;
	while ((rc = db_step(db, st, cause)) == DB_ROW)
		db_room_add_admin(room, db_col_text(st, 0));
	db_done(db, st);
	if (rc != DB_DONE)
		goto fail;
	return DB_OK;

fail:
	db_room_clear(room);
	return DB_ERROR;
}

static char *
db_room_created_data(const struct db_room *room)
{
	cJSON *obj, *admins;
	size_t i;

	obj = json_ok(cJSON_CreateObject());
	json_ok(cJSON_AddStringToObject(obj, "room_name", room->name));
	admins = json_ok(cJSON_AddArrayToObject(obj, "admin_user_ids"));
	for (i = 0; i < room->n_admins; i++)
		json_append(admins, json_ok(cJSON_CreateString(room->admins[i])));
	return db_json_print(obj);
}

int
db_room_create(struct db *db, const char *id, const char *name, const char *const *admins,
    size_t n_admins, int64_t now, char **cause)
{
	struct db_room room;
	char *data = NULL;
	size_t i;
	int rc;

	memset(&room, 0, sizeof room);
	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_exec(
	    db, DB_STMT_ROOM_INSERT, cause, DB_ARGS(DB_TEXT(id), DB_TEXT(name), DB_INT(now)));
	if (rc != DB_OK)
		goto fail;
	for (i = 0; i < n_admins; i++) {
		rc = db_exec(
		    db, DB_STMT_ADMIN_INSERT, cause, DB_ARGS(DB_TEXT(id), DB_TEXT(admins[i])));
		if (rc != DB_OK)
			goto fail;
	}
	/* Read back: the event then carries exactly what was stored, deduplicated. */
	if ((rc = db_room_read(db, id, &room, cause)) != DB_OK)
		goto fail;
	data = db_room_created_data(&room);
	rc = db_outbox_add(db, "room_created", id, NULL, NULL, NULL, 0, data, now, cause);
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_sync_add(db, "room_created", id, now, NULL, cause)) != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	cJSON_free(data);
	db_room_clear(&room);
	return DB_OK;

fail:
	db_op_rollback(db);
	cJSON_free(data);
	db_room_clear(&room);
	return rc;
}

int
db_room_get(struct db *db, const char *id, struct db_room *room, char **cause)
{
	/* Two reads; committed rooms never lose admins, so no snapshot is needed. */
	return db_room_read(db, id, room, cause);
}

int
db_room_list(struct db *db, int include_closed, int (*each)(const struct db_room *room, void *arg),
    void *arg, char **cause)
{
	struct db_room room;
	struct db_bstmt *st;
	const char *id;
	int rc, have = 0, stop = 0;

	memset(&room, 0, sizeof room);
	st = db_prepare(db, DB_STMT_ROOM_LIST, cause, DB_ARGS(DB_INT(include_closed != 0)));
	if (st == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		id = db_col_text(st, 0);
		if (!have || strcmp(room.id, id) != 0) {
			if (have) {
				stop = each(&room, arg);
				db_room_clear(&room);
				have = 0;
				if (stop)
					break;
			}
			db_room_fill(st, &room);
			have = 1;
		}
		if (!db_col_is_null(st, 8))
			db_room_add_admin(&room, db_col_text(st, 8));
	}
	db_done(db, st);
	if (!stop && rc != DB_DONE) {
		db_room_clear(&room);
		return rc;
	}
	if (have)
		each(&room, arg);
	db_room_clear(&room);
	return DB_OK;
}

int
db_room_close(struct db *db, const char *id, const char *reason, int64_t now, char **cause)
{
	struct db_room room;
	cJSON *obj;
	char *data = NULL;
	int rc;

	memset(&room, 0, sizeof room);
	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	if ((rc = db_room_read(db, id, &room, cause)) != DB_OK)
		goto fail;
	if (room.closed_at != 0) {
		rc = DB_CONFLICT;
		goto fail;
	}
	rc = db_exec(
	    db, DB_STMT_ROOM_CLOSE, cause, DB_ARGS(DB_TEXT(id), DB_INT(now), DB_TEXT(reason)));
	if (rc != DB_OK)
		goto fail;
	obj = json_ok(cJSON_CreateObject());
	json_ok(cJSON_AddStringToObject(obj, "room_name", room.name));
	data = db_json_print(obj);
	rc = db_outbox_add(db, "room_closed", id, NULL, NULL, reason, 0, data, now, cause);
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_sync_add(db, "room_closed", id, now, NULL, cause)) != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	cJSON_free(data);
	db_room_clear(&room);
	return DB_OK;

fail:
	db_op_rollback(db);
	cJSON_free(data);
	db_room_clear(&room);
	return rc;
}

int
db_room_peak_update(struct db *db, const char *id, int64_t peak, char **cause)
{
	int64_t n = 0;
	int rc;

	rc = db_write_one(db, DB_STMT_ROOM_PEAK, &n, cause, DB_ARGS(DB_TEXT(id), DB_INT(peak)));
	return rc == DB_OK && n == 0 ? DB_NOTFOUND : rc;
}

/* ---- bans ---- */

void
db_ban_clear(struct db_ban *ban)
{
	free(ban->room_id);
	free(ban->user_id);
	free(ban->reason);
	memset(ban, 0, sizeof *ban);
}

static int
db_room_exists(struct db *db, const char *id, char **cause)
{
	int64_t one;

	return db_exec_int(db, DB_STMT_ROOM_EXISTS, &one, cause, DB_ARGS(DB_TEXT(id)));
}

int
db_ban_add(struct db *db, const char *room_id, const char *user_id, const char *reason,
    int64_t expires_at, int64_t now, char **cause)
{
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	if ((rc = db_room_exists(db, room_id, cause)) != DB_OK)
		goto fail;
	/* Lifting every unlifted row (expired ones too) keeps bans_active unique. */
	rc = db_exec(db, DB_STMT_BAN_LIFT_ALL, cause,
	    DB_ARGS(DB_TEXT(room_id), DB_TEXT(user_id), DB_INT(now)));
	if (rc != DB_OK)
		goto fail;
	rc = db_exec(db, DB_STMT_BAN_INSERT, cause,
	    DB_ARGS(DB_TEXT(room_id), DB_TEXT(user_id), DB_TEXT(reason), DB_INT(now),
		DB_INT_OR_NULL(expires_at)));
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
}

int
db_ban_lift(struct db *db, const char *room_id, const char *user_id, int64_t now, char **cause)
{
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_exec(
	    db, DB_STMT_BAN_LIFT, cause, DB_ARGS(DB_TEXT(room_id), DB_TEXT(user_id), DB_INT(now)));
	if (rc == DB_OK && db_changes(db) == 0)
		rc = DB_NOTFOUND;
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
}

static void
db_ban_fill(struct db_bstmt *st, struct db_ban *ban)
{
	ban->room_id = db_col_strdup(st, 0);
	ban->user_id = db_col_strdup(st, 1);
	ban->reason = db_col_strdup(st, 2);
	ban->created_at = db_col_int64(st, 3);
	ban->expires_at = db_col_int64(st, 4);
}

int
db_ban_list(struct db *db, const char *room_id, int64_t now,
    int (*each)(const struct db_ban *ban, void *arg), void *arg, char **cause)
{
	struct db_ban ban;
	struct db_bstmt *st;
	int rc;

	if ((rc = db_room_exists(db, room_id, cause)) != DB_OK)
		return rc;
	st = db_prepare(db, DB_STMT_BAN_LIST, cause, DB_ARGS(DB_TEXT(room_id), DB_INT(now)));
	if (st == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		db_ban_fill(st, &ban);
		rc = each(&ban, arg);
		db_ban_clear(&ban);
		if (rc != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

/* ---- sync requests ---- */

int
db_sync_request(struct db *db, const char *reason, const char *room_id, int64_t now,
    int64_t *request_id, char **cause)
{
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	if ((rc = db_sync_add(db, reason, room_id, now, request_id, cause)) != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
}

/* ---- history ---- */

/* How db_page_window() finds a history table's seq window. */
struct db_pager {
	enum db_stmt first; /* smallest seq at or after a time */
	enum db_stmt last; /* largest seq at or before a time */
	enum db_stmt range; /* the rows of a seq range, in seq order */
	int top_column; /* DB_ROOM_COLUMNS index of the room's highest seq */
};

static const struct db_pager db_message_pager = {
	.first = DB_STMT_MESSAGE_FIRST,
	.last = DB_STMT_MESSAGE_LAST,
	.range = DB_STMT_MESSAGE_RANGE,
	.top_column = 6, /* rooms.last_seq */
};
static const struct db_pager db_session_pager = {
	.first = DB_STMT_SESSION_FIRST,
	.last = DB_STMT_SESSION_LAST,
	.range = DB_STMT_SESSION_RANGE,
	.top_column = 7, /* rooms.last_session_seq */
};

/*
 * Maps the query's time window to a page's seq range with at most three
 * index probes. No snapshot transaction is needed: rows up to the room's
 * highest seq, read first, never change, and later rows are cut off.
 */
static int
db_page_window(struct db *db, const struct db_pager *pager, const struct db_page_query *q,
    struct page_window *w, char **cause)
{
	struct db_bstmt *st;
	int64_t top, lo, hi;
	int rc;

	if (q->page < 1 || q->limit < 1) {
		*cause = xasprintf("page and limit must be at least 1");
		return DB_ERROR;
	}
	if ((st = db_prepare(db, DB_STMT_ROOM_GET, cause, DB_ARGS(DB_TEXT(q->room_id)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	top = rc == DB_ROW ? db_col_int64(st, pager->top_column) : 0;
	db_done(db, st);
	if (rc != DB_ROW)
		return rc == DB_DONE ? DB_NOTFOUND : rc;

	lo = 1;
	hi = top;
	if (q->from_s >= 0) {
		if (q->from_s > INT64_MAX / 1000)
			lo = top + 1;
		else {
			rc = db_exec_int(db, pager->first, &lo, cause,
			    DB_ARGS(DB_TEXT(q->room_id), DB_INT(q->from_s * 1000)));
			if (rc == DB_NOTFOUND)
				lo = top + 1;
			else if (rc != DB_OK)
				return rc;
		}
	}
	/* A bound past what milliseconds can hold cuts nothing off. */
	if (q->to_s >= 0 && q->to_s <= (INT64_MAX - 999) / 1000) {
		rc = db_exec_int(db, pager->last, &hi, cause,
		    DB_ARGS(DB_TEXT(q->room_id), DB_INT(q->to_s * 1000 + 999)));
		if (rc == DB_NOTFOUND)
			hi = 0;
		else if (rc != DB_OK)
			return rc;
		if (hi > top)
			hi = top;
	}
	page_window_compute(lo, hi, q->page, q->limit, w);
	return DB_OK;
}

static void
db_page_info_set(struct db_page_info *info, const struct page_window *w)
{
	if (info == NULL)
		return;
	info->total = w->total;
	info->first_seq = w->end >= w->start ? w->start : 0;
	info->has_more = w->has_more;
}

/* Fills *m from DB_MESSAGE_COLUMNS starting at column c; valid until the next step. */
static void
db_row_message(struct db_bstmt *st, int c, struct db_message *m)
{
	m->id = db_col_int64(st, c);
	m->room_id = db_col_text(st, c + 1);
	m->seq = db_col_int64(st, c + 2);
	m->kind = db_col_int(st, c + 3);
	m->user_id = db_col_text(st, c + 4);
	m->nickname = db_col_text(st, c + 5);
	m->is_admin = db_col_int(st, c + 6);
	m->content = db_col_text(st, c + 7);
	m->event_type = db_col_text(st, c + 8);
	m->created_at = db_col_int64(st, c + 9);
}

/* Fills *s from DB_SESSION_COLUMNS starting at column c. */
static void
db_row_session(struct db_bstmt *st, int c, struct db_session *s)
{
	s->id = db_col_int64(st, c);
	s->room_id = db_col_text(st, c + 1);
	s->seq = db_col_int64(st, c + 2);
	s->user_id = db_col_text(st, c + 3);
	s->nickname = db_col_text(st, c + 4);
	s->is_admin = db_col_int(st, c + 5);
	s->address = db_col_text(st, c + 6);
	s->joined_at = db_col_int64(st, c + 7);
	s->left_at = db_col_int64(st, c + 8);
	s->leave_reason = db_col_text(st, c + 9);
}

/*
 * The one paging loop: finds the page's seq range, then hands each row of
 * it to emit (which reads the table's columns and calls the caller's typed
 * callback) until emit returns non-zero.
 */
static int
db_page_walk(struct db *db, const struct db_pager *pager, const struct db_page_query *q,
    int (*emit)(struct db_bstmt *st, void *ctx), void *ctx, struct db_page_info *info, char **cause)
{
	struct page_window w;
	struct db_bstmt *st;
	int rc;

	if ((rc = db_page_window(db, pager, q, &w, cause)) != DB_OK)
		return rc;
	db_page_info_set(info, &w);
	if (w.end < w.start)
		return DB_OK;
	st = db_prepare(
	    db, pager->range, cause, DB_ARGS(DB_TEXT(q->room_id), DB_INT(w.start), DB_INT(w.end)));
	if (st == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		if (emit(st, ctx) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

struct db_message_emit {
	int (*each)(const struct db_message *m, void *arg);
	void *arg;
};

static int
db_message_emit(struct db_bstmt *st, void *ctx)
{
	const struct db_message_emit *e = ctx;
	struct db_message m;

	db_row_message(st, 0, &m);
	return e->each(&m, e->arg);
}

int
db_messages_page(struct db *db, const struct db_page_query *q,
    int (*each)(const struct db_message *m, void *arg), void *arg, struct db_page_info *info,
    char **cause)
{
	struct db_message_emit e = { each, arg };

	return db_page_walk(db, &db_message_pager, q, db_message_emit, &e, info, cause);
}

int
db_messages_range(struct db *db, const char *room_id, int64_t from_seq, int64_t to_seq,
    int (*each)(const struct db_message *m, void *arg), void *arg, char **cause)
{
	struct db_message m;
	struct db_bstmt *st;
	int rc;

	st = db_prepare(db, DB_STMT_MESSAGE_RANGE, cause,
	    DB_ARGS(DB_TEXT(room_id), DB_INT(from_seq), DB_INT(to_seq)));
	if (st == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		db_row_message(st, 0, &m);
		if (each(&m, arg) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

struct db_session_emit {
	int (*each)(const struct db_session *s, void *arg);
	void *arg;
};

static int
db_session_emit(struct db_bstmt *st, void *ctx)
{
	const struct db_session_emit *e = ctx;
	struct db_session s;

	db_row_session(st, 0, &s);
	return e->each(&s, e->arg);
}

int
db_sessions_page(struct db *db, const struct db_page_query *q,
    int (*each)(const struct db_session *s, void *arg), void *arg, struct db_page_info *info,
    char **cause)
{
	struct db_session_emit e = { each, arg };

	return db_page_walk(db, &db_session_pager, q, db_session_emit, &e, info, cause);
}

/*
 * Takes the room's next seq from the counter named by bump and read; the
 * update also takes the room row, so seq allocation is serialised per room
 * by the write lock. DB_NOTFOUND if the room does not exist.
 */
static int
db_next_seq(struct db *db, enum db_stmt bump, enum db_stmt read, const char *room_id, int64_t *next,
    char **cause)
{
	int got, rc;

	if ((rc = db_exec_first(db, bump, next, &got, cause, DB_ARGS(DB_TEXT(room_id)))) != DB_OK)
		return rc;
	if (got)
		return DB_OK; /* RETURNING gave the new value */
	if (db_changes(db) == 0)
		return DB_NOTFOUND;
	return db_exec_int(db, read, next, cause, DB_ARGS(DB_TEXT(room_id)));
}

/*
 * The messages table's CHECK constraints, tested before the statement
 * runs (db_op_begin_bare() relies on it): DB_OK, or DB_ERROR with *cause
 * and a permanent failure, the database untouched.
 */
static int
db_message_check(struct db *db, const char *room_id, int kind, const char *user_id,
    const char *nickname, const char *content, const char *event_type, char **cause)
{
	const char *why = NULL;

	if (room_id == NULL || content == NULL)
		why = "a message needs a room and a content";
	else if (kind < 0)
		why = "a message kind is never negative";
	else if (kind == DB_MESSAGE_CHAT && (user_id == NULL || nickname == NULL))
		why = "a chat message needs a user id and a nickname";
	else if (kind == DB_MESSAGE_CUSTOM && event_type == NULL)
		why = "a custom event needs an event type";
	if (why == NULL)
		return DB_OK;
	return db_refuse(db, cause,
	    xasprintf("message in room %s: %s (CHECK constraint)",
		room_id != NULL ? room_id : "(none)", why));
}

/*
 * The engine's one-statement append (DB_STMT_MESSAGE_APPEND): a round trip
 * to a database server instead of two. DB_NOTFOUND: no such room.
 */
static int
db_message_append_one(struct db *db, const char *room_id, int kind, const char *user_id,
    const char *nickname, int is_admin, const char *content, const char *event_type,
    int64_t created_at, int64_t *id, int64_t *seq, char **cause)
{
	struct db_bstmt *st;
	int rc, found = 0;

	st = db_prepare(db, DB_STMT_MESSAGE_APPEND, cause,
	    DB_ARGS(DB_TEXT(room_id), DB_INT(kind), DB_TEXT(user_id), DB_TEXT(nickname),
		DB_INT(is_admin != 0), DB_TEXT(content), DB_TEXT(event_type), DB_INT(created_at)));
	if (st == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		if (!found) {
			if (id != NULL)
				*id = db_col_int64(st, 0);
			*seq = db_col_int64(st, 1);
		}
		found = 1;
	}
	db_done(db, st);
	if (rc != DB_DONE)
		return rc;
	return found ? DB_OK : DB_NOTFOUND;
}

int
db_message_append(struct db *db, const char *room_id, int kind, const char *user_id,
    const char *nickname, int is_admin, const char *content, const char *event_type,
    int64_t created_at, int64_t *id, int64_t *seq, char **cause)
{
	int64_t next;
	int rc;

	if (db_sql_text(db->ops->dialect, DB_STMT_MESSAGE_APPEND) != NULL) {
		rc = db_message_check(
		    db, room_id, kind, user_id, nickname, content, event_type, cause);
		if (rc != DB_OK)
			return rc;
		if ((rc = db_op_begin_bare(db, cause)) != DB_OK)
			return rc;
		rc = db_message_append_one(db, room_id, kind, user_id, nickname, is_admin, content,
		    event_type, created_at, id, &next, cause);
		if (rc == DB_NOTFOUND && db->op_bare) {
			db->op_bare = 0; /* no such room: nothing written, the batch goes on */
			return rc;
		}
		if (rc != DB_OK)
			goto fail;
		if ((rc = db_op_commit(db, cause)) != DB_OK)
			goto fail;
		if (seq != NULL)
			*seq = next;
		return DB_OK;
	}
	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_next_seq(db, DB_STMT_MESSAGE_SEQ, DB_STMT_MESSAGE_LAST_SEQ, room_id, &next, cause);
	if (rc != DB_OK)
		goto fail;
	rc = db_insert(db, DB_STMT_MESSAGE_INSERT, id, cause,
	    DB_ARGS(DB_TEXT(room_id), DB_INT(next), DB_INT(kind), DB_TEXT(user_id),
		DB_TEXT(nickname), DB_INT(is_admin != 0), DB_TEXT(content), DB_TEXT(event_type),
		DB_INT(created_at)));
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	if (seq != NULL)
		*seq = next;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
}

/* ---- sessions ---- */

static char *
db_session_data(int64_t session_id, int64_t seq, int is_admin)
{
	cJSON *obj;

	obj = json_ok(cJSON_CreateObject());
	json_ok(cJSON_AddNumberToObject(obj, "session_id", (double)session_id));
	json_ok(cJSON_AddNumberToObject(obj, "seq", (double)seq));
	json_ok(cJSON_AddBoolToObject(obj, "is_admin", is_admin));
	return db_json_print(obj);
}

int
db_session_open(struct db *db, const char *node_id, const char *room_id, const char *user_id,
    const char *nickname, int is_admin, const char *address, int64_t joined_at, int64_t *id,
    char **cause)
{
	int64_t seq, sid;
	char *data = NULL;
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_next_seq(db, DB_STMT_SESSION_SEQ, DB_STMT_SESSION_LAST_SEQ, room_id, &seq, cause);
	if (rc != DB_OK)
		goto fail;
	rc = db_insert(db, DB_STMT_SESSION_INSERT, &sid, cause,
	    DB_ARGS(DB_TEXT(room_id), DB_INT(seq), DB_TEXT(user_id), DB_TEXT(nickname),
		DB_INT(is_admin != 0), DB_TEXT(address), DB_INT(joined_at),
		DB_TEXT(node_id != NULL ? node_id : "")));
	if (rc != DB_OK)
		goto fail;
	data = db_session_data(sid, seq, is_admin != 0);
	rc = db_outbox_add(
	    db, "user_joined", room_id, user_id, nickname, NULL, sid, data, joined_at, cause);
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	cJSON_free(data);
	if (id != NULL)
		*id = sid;
	return DB_OK;

fail:
	db_op_rollback(db);
	cJSON_free(data);
	return rc;
}

int
db_session_reopen(struct db *db, int64_t id, int64_t now, int64_t *new_id, char **cause)
{
	struct db_bstmt *st;
	char *room = NULL, *user = NULL, *nick = NULL, *address = NULL, *node = NULL;
	int rc, is_admin = 0, closed = 0;

	*new_id = id;
	if ((st = db_prepare(db, DB_STMT_SESSION_CLOSED_GET, cause, DB_ARGS(DB_INT(id)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW) {
		room = db_col_strdup(st, 0);
		user = db_col_strdup(st, 1);
		nick = db_col_strdup(st, 2);
		is_admin = (int)db_col_int64(st, 3);
		address = db_col_strdup(st, 4);
		node = db_col_strdup(st, 5);
		closed = db_col_int64(st, 6) != 0;
	}
	db_done(db, st);
	if (rc == DB_ROW && closed)
		rc = db_session_open(
		    db, node, room, user, nick, is_admin, address, now, new_id, cause);
	else if (rc == DB_ROW || rc == DB_DONE)
		rc = rc == DB_ROW ? DB_OK : DB_NOTFOUND;
	free(room);
	free(user);
	free(nick);
	free(address);
	free(node);
	return rc;
}

int
db_node_was_reaped(
    struct db *db, const char *id, const char *incarnation, int *reaped, char **cause)
{
	struct db_bstmt *st;
	int rc;

	*reaped = 0;
	if ((st = db_prepare(db, DB_STMT_NODE_REAPED, cause,
		 DB_ARGS(DB_TEXT(id), DB_TEXT(incarnation)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	*reaped = rc == DB_ROW;
	db_done(db, st);
	return rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
}

/* Closes one session and records user_left; the caller holds the transaction. */
static int
db_session_close_one(struct db *db, int64_t id, const char *reason, int64_t left_at, char **cause)
{
	struct db_bstmt *st;
	char *room_id = NULL, *user_id = NULL, *nickname = NULL, *data = NULL;
	int64_t seq = 0;
	int rc, is_admin = 0;

	if ((st = db_prepare(db, DB_STMT_SESSION_OPEN_GET, cause, DB_ARGS(DB_INT(id)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW) {
		room_id = db_col_strdup(st, 0);
		user_id = db_col_strdup(st, 1);
		nickname = db_col_strdup(st, 2);
		is_admin = db_col_int(st, 3);
		seq = db_col_int64(st, 4);
		rc = DB_OK;
	} else if (rc == DB_DONE)
		rc = DB_NOTFOUND;
	db_done(db, st);
	if (rc == DB_OK) {
		rc = db_exec(db, DB_STMT_SESSION_CLOSE, cause,
		    DB_ARGS(DB_INT(id), DB_INT(left_at), DB_TEXT(reason)));
	}
	if (rc == DB_OK) {
		data = db_session_data(id, seq, is_admin);
		rc = db_outbox_add(
		    db, "user_left", room_id, user_id, nickname, reason, id, data, left_at, cause);
	}
	free(room_id);
	free(user_id);
	free(nickname);
	cJSON_free(data);
	return rc;
}

int
db_session_close(struct db *db, int64_t id, const char *reason, int64_t left_at, char **cause)
{
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	if ((rc = db_session_close_one(db, id, reason, left_at, cause)) != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
}

/*
 * Closes every session the statement which lists (ids of open sessions),
 * each with its user_left event; the caller holds the transaction.
 */
static int
db_sessions_close_listed(struct db *db, enum db_stmt which, const struct db_arg *args, size_t nargs,
    const char *reason, int64_t left_at, int64_t *closed, char **cause)
{
	struct db_bstmt *st;
	int64_t *ids = NULL;
	size_t n = 0, i;
	int rc;

	/* Collect first: closing a session changes the index being walked. */
	if ((st = db_prepare(db, which, cause, args, nargs)) == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		ids = xreallocarray(ids, n + 1, sizeof *ids);
		ids[n++] = db_col_int64(st, 0);
	}
	db_done(db, st);
	if (rc == DB_DONE)
		rc = DB_OK;
	for (i = 0; rc == DB_OK && i < n; i++)
		rc = db_session_close_one(db, ids[i], reason, left_at, cause);
	free(ids);
	if (rc == DB_OK && closed != NULL)
		*closed = (int64_t)n;
	return rc;
}

/* db_sessions_close_listed() in a transaction of its own. */
static int
db_sessions_close_op(struct db *db, enum db_stmt which, const struct db_arg *args, size_t nargs,
    const char *reason, int64_t left_at, int64_t *closed, char **cause)
{
	int64_t n;
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_sessions_close_listed(db, which, args, nargs, reason, left_at, &n, cause);
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	if (closed != NULL)
		*closed = n;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
}

int
db_sessions_close_all(
    struct db *db, const char *reason, int64_t left_at, int64_t *closed, char **cause)
{
	return db_sessions_close_op(
	    db, DB_STMT_SESSION_OPEN_IDS, DB_NOARGS, reason, left_at, closed, cause);
}

int
db_sessions_close_node(struct db *db, const char *node_id, const char *reason, int64_t left_at,
    int64_t *closed, char **cause)
{
	return db_sessions_close_op(db, DB_STMT_SESSION_NODE_OPEN_IDS,
	    DB_ARGS(DB_TEXT(node_id != NULL ? node_id : "")), reason, left_at, closed, cause);
}

/* ---- a join, as the record has it ---- */

int
db_join_state(struct db *db, const char *room_id, const char *user_id, int64_t now, int *closed,
    int *banned, char **cause)
{
	struct db_bstmt *st;
	int rc;

	*closed = *banned = 0;
	if ((st = db_prepare(db, DB_STMT_JOIN_CLOSED, cause, DB_ARGS(DB_TEXT(room_id)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW)
		*closed = db_col_int(st, 0) != 0;
	db_done(db, st);
	if (rc != DB_ROW)
		return rc == DB_DONE ? DB_NOTFOUND : rc;
	if ((st = db_prepare(db, DB_STMT_JOIN_BANNED, cause,
		 DB_ARGS(DB_TEXT(room_id), DB_TEXT(user_id), DB_INT(now)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	*banned = rc == DB_ROW;
	db_done(db, st);
	return rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
}

/* ---- the rate limit across nodes ---- */

int
db_rate_check(struct db *db, const char *room_id, const char *user_id, int64_t at,
    int64_t interval_ms, int64_t *wait_ms, char **cause)
{
	struct db_bstmt *st;
	int rc;

	*wait_ms = 0;
	if ((st = db_prepare(
		 db, DB_STMT_RATE_GET, cause, DB_ARGS(DB_TEXT(room_id), DB_TEXT(user_id)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW) {
		int64_t last = db_col_int64(st, 0);

		if (last + interval_ms > at)
			*wait_ms = last + interval_ms - at;
	}
	db_done(db, st);
	return rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
}

/*
 * An upsert whose only constraints are its NOT NULL keys, tested here: so
 * it runs bare in a batch (db_op_begin_bare()), one round trip and no
 * subtransaction a chat message on a database server.
 */
int
db_rate_mark(struct db *db, const char *room_id, const char *user_id, int64_t at, char **cause)
{
	if (room_id == NULL || user_id == NULL)
		return db_refuse(
		    db, cause, xstrdup("rate mark: a room and a user are needed (NOT NULL)"));
	return db_write_with(db, db_op_begin_bare, DB_STMT_RATE_SET, NULL, cause,
	    DB_ARGS(DB_TEXT(room_id), DB_TEXT(user_id), DB_INT(at)));
}

int
db_rate_prune(struct db *db, int64_t before, char **cause)
{
	return db_write_one(db, DB_STMT_RATE_PRUNE, NULL, cause, DB_ARGS(DB_INT(before)));
}

/* ---- counts ---- */

int
db_room_last_seq(struct db *db, const char *room_id, int64_t *last_seq, char **cause)
{
	struct db_bstmt *st;
	int rc;

	*last_seq = 0;
	if ((st = db_prepare(db, DB_STMT_MESSAGE_LAST_SEQ, cause, DB_ARGS(DB_TEXT(room_id)))) ==
	    NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW)
		*last_seq = db_col_int64(st, 0);
	db_done(db, st);
	if (rc != DB_ROW)
		return rc == DB_DONE ? DB_NOTFOUND : rc;
	return DB_OK;
}

int
db_room_counts(struct db *db, const char *room_id, struct db_room_counts *out, char **cause)
{
	struct db_bstmt *st;
	int rc;

	memset(out, 0, sizeof *out);
	if ((st = db_prepare(db, DB_STMT_ROOM_GET, cause, DB_ARGS(DB_TEXT(room_id)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW) {
		out->last_seq = db_col_int64(st, 6);
		out->session_count = db_col_int64(st, 7);
	}
	db_done(db, st);
	if (rc != DB_ROW)
		return rc == DB_DONE ? DB_NOTFOUND : rc;
	/* seq is gap-free from 1, so the count is the last seq (no table scan). */
	out->message_count = out->last_seq;
	if (out->last_seq > 0) {
		rc = db_exec_int(db, DB_STMT_MESSAGE_ID_AT, &out->last_message_id, cause,
		    DB_ARGS(DB_TEXT(room_id), DB_INT(out->last_seq)));
		if (rc != DB_OK && rc != DB_NOTFOUND)
			return rc;
	}
	rc = db_exec_int(
	    db, DB_STMT_SESSION_OPEN_COUNT, &out->open_sessions, cause, DB_ARGS(DB_TEXT(room_id)));
	return rc == DB_NOTFOUND ? DB_OK : rc;
}

int
db_room_occupants(struct db *db, const char *room_id, int64_t limit,
    int (*each)(const struct db_occupant *o, void *arg), void *arg, char **cause)
{
	struct db_occupant o;
	struct db_bstmt *st;
	int rc;

	st = db_prepare(
	    db, DB_STMT_SESSION_OCCUPANTS, cause, DB_ARGS(DB_TEXT(room_id), DB_INT(limit)));
	if (st == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		o.session_id = db_col_int64(st, 0);
		o.user_id = db_col_text(st, 1);
		o.nickname = db_col_text(st, 2);
		o.is_admin = db_col_int(st, 3);
		o.joined_at = db_col_int64(st, 4);
		if (each(&o, arg) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

int
db_health(struct db *db, struct db_health *out, char **cause)
{
	struct db_bstmt *st;
	int rc;

	memset(out, 0, sizeof *out);
	if ((st = db_prepare(db, DB_STMT_HEALTH, cause, DB_NOARGS)) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW) {
		out->rooms_open = db_col_int64(st, 0);
		out->rooms_closed = db_col_int64(st, 1);
		out->pending_sync_requests = db_col_int64(st, 2);
		out->outbox_events = db_col_int64(st, 3);
	}
	db_done(db, st);
	if (rc == DB_ROW)
		return DB_OK;
	if (rc == DB_DONE) {
		*cause = xasprintf("database %s: health query returned no row", db->path);
		rc = DB_ERROR;
	}
	return rc;
}

/* ---- chat-sync: cursors, feeds, backlog ---- */

void
db_cursor_clear(struct db_cursor *c)
{
	free(c->delivery_id);
	free(c->last_error);
	memset(c, 0, sizeof *c);
}

int
db_cursor_get(struct db *db, const char *target, struct db_cursor *c, char **cause)
{
	struct db_bstmt *st;
	int rc;

	memset(c, 0, sizeof *c);
	if ((st = db_prepare(db, DB_STMT_CURSOR_GET, cause, DB_ARGS(DB_TEXT(target)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW) {
		c->last_id = db_col_int64(st, 0);
		c->delivery_id = db_col_strdup(st, 1);
		c->batch_last_id = db_col_int64(st, 2);
		c->attempts = db_col_int64(st, 3);
		c->failing_since = db_col_int64(st, 4);
		c->last_error = db_col_strdup(st, 5);
		c->last_success_at = db_col_int64(st, 6);
	}
	db_done(db, st);
	if (rc == DB_ROW || rc == DB_DONE)
		return DB_OK; /* no row yet: nothing delivered, all zero */
	return rc;
}

/* Runs one cursor update in its own transaction; DB_CONFLICT if it changed nothing. */
static int
db_cursor_update(struct db *db, enum db_stmt which, const char *target, char **cause,
    const struct db_arg *args, size_t n)
{
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_exec(db, DB_STMT_CURSOR_ENSURE, cause, DB_ARGS(DB_TEXT(target)));
	if (rc != DB_OK)
		goto fail;
	rc = db_exec(db, which, cause, args, n);
	if (rc == DB_OK && db_changes(db) == 0)
		rc = DB_CONFLICT;
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
}

int
db_cursor_batch(struct db *db, const char *target, int64_t last_id, const char *delivery_id,
    int64_t batch_last_id, char **cause)
{
	return db_cursor_update(db, DB_STMT_CURSOR_BATCH, target, cause,
	    DB_ARGS(DB_TEXT(target), DB_INT(last_id), DB_TEXT(delivery_id),
		DB_INT_OR_NULL(batch_last_id)));
}

int
db_cursor_done(struct db *db, const char *target, int64_t last_id, int64_t new_last_id, int64_t now,
    char **cause)
{
	return db_cursor_update(db, DB_STMT_CURSOR_DONE, target, cause,
	    DB_ARGS(DB_TEXT(target), DB_INT(last_id), DB_INT(new_last_id), DB_INT(now),
		DB_TEXT(NULL), DB_INT_OR_NULL(0)));
}

int
db_cursor_done_next(struct db *db, const char *target, int64_t last_id, int64_t new_last_id,
    int64_t now, const char *next_delivery_id, int64_t next_batch_last_id, char **cause)
{
	if (next_delivery_id == NULL || next_batch_last_id <= new_last_id) {
		*cause = xasprintf(
		    "cursor %s: next batch must end after %lld", target, (long long)new_last_id);
		return DB_ERROR;
	}
	return db_cursor_update(db, DB_STMT_CURSOR_DONE, target, cause,
	    DB_ARGS(DB_TEXT(target), DB_INT(last_id), DB_INT(new_last_id), DB_INT(now),
		DB_TEXT(next_delivery_id), DB_INT(next_batch_last_id)));
}

int
db_cursor_fail(struct db *db, const char *target, const char *error, int64_t now, char **cause)
{
	return db_cursor_update(db, DB_STMT_CURSOR_FAIL, target, cause,
	    DB_ARGS(DB_TEXT(target), DB_INT(now), DB_TEXT(error)));
}

int
db_feed_events(struct db *db, int64_t after, int64_t upto, int64_t limit,
    int (*each)(const struct db_event *e, void *arg), void *arg, char **cause)
{
	struct db_event e;
	struct db_bstmt *st;
	int rc;

	st = db_prepare(
	    db, DB_STMT_FEED_OUTBOX, cause, DB_ARGS(DB_INT(after), DB_INT(upto), DB_INT(limit)));
	if (st == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		e.id = db_col_int64(st, 0);
		e.kind = db_col_text(st, 1);
		e.room_id = db_col_text(st, 2);
		e.user_id = db_col_text(st, 3);
		e.nickname = db_col_text(st, 4);
		e.reason = db_col_text(st, 5);
		e.session_id = db_col_int64(st, 6);
		e.data = db_col_text(st, 7);
		e.created_at = db_col_int64(st, 8);
		if (each(&e, arg) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

int
db_feed_messages(struct db *db, int64_t after, int64_t upto, int64_t limit,
    int (*each)(const struct db_message *m, void *arg), void *arg, char **cause)
{
	struct db_message m;
	struct db_bstmt *st;
	int rc;

	st = db_prepare(
	    db, DB_STMT_FEED_MESSAGES, cause, DB_ARGS(DB_INT(after), DB_INT(upto), DB_INT(limit)));
	if (st == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		db_row_message(st, 0, &m);
		if (each(&m, arg) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

int
db_feed_sessions(struct db *db, int64_t after, int64_t upto, int64_t limit,
    int (*each)(const struct db_session *s, int64_t event_id, void *arg), void *arg, char **cause)
{
	struct db_session s;
	struct db_bstmt *st;
	int64_t event_id;
	int rc;

	st = db_prepare(
	    db, DB_STMT_FEED_SESSIONS, cause, DB_ARGS(DB_INT(after), DB_INT(upto), DB_INT(limit)));
	if (st == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		event_id = db_col_int64(st, 0);
		db_row_session(st, 1, &s);
		if (each(&s, event_id, arg) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

int
db_backlog(struct db *db, enum db_feed feed, int64_t after, int64_t limit, struct db_backlog *out,
    char **cause)
{
	static const enum db_stmt which[] = {
		[DB_FEED_EVENTS] = DB_STMT_BACKLOG_OUTBOX,
		[DB_FEED_MESSAGES] = DB_STMT_BACKLOG_MESSAGES,
		[DB_FEED_SESSIONS] = DB_STMT_BACKLOG_SESSIONS,
		[DB_FEED_SYNC_REQUESTS] = DB_STMT_BACKLOG_SYNC,
	};
	struct db_bstmt *st;
	int rc;

	memset(out, 0, sizeof *out);
	if ((unsigned)feed >= sizeof which / sizeof which[0]) {
		*cause = xasprintf("unknown feed %d", (int)feed);
		return DB_ERROR;
	}
	st = db_prepare(
	    db, which[feed], cause, DB_ARGS(DB_INT(after), DB_INT(limit > 0 ? limit : INT64_MAX)));
	if (st == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW) {
		out->count = db_col_int64(st, 0);
		out->oldest_at = db_col_int64(st, 1);
		out->last_id = db_col_int64(st, 2);
	}
	db_done(db, st);
	if (rc == DB_ROW || rc == DB_DONE)
		return DB_OK;
	return rc;
}

int
db_sync_requests_handled(struct db *db, int64_t upto, int64_t now, char **cause)
{
	return db_write_one(
	    db, DB_STMT_SYNC_HANDLED, NULL, cause, DB_ARGS(DB_INT(upto), DB_INT(now)));
}

/* ---- chat-sync: dead letters ---- */

void
db_dead_letter_clear(struct db_dead_letter *d)
{
	free(d->target);
	free(d->delivery_id);
	free(d->last_error);
	free(d->body);
	memset(d, 0, sizeof *d);
}

/* Reads a DB_DEAD_COLUMNS row and the body column after it (owned by d). */
static void
db_row_dead_letter(struct db_bstmt *st, struct db_dead_letter *d)
{
	memset(d, 0, sizeof *d);
	d->id = db_col_int64(st, 0);
	d->target = db_col_strdup(st, 1);
	d->delivery_id = db_col_strdup(st, 2);
	d->after_id = db_col_int64(st, 3);
	d->last_id = db_col_int64(st, 4);
	d->count = db_col_int64(st, 5);
	d->attempts = db_col_int64(st, 6);
	d->last_status = db_col_int64(st, 7);
	d->last_error = db_col_strdup(st, 8);
	d->first_attempt_at = db_col_int64(st, 9);
	d->last_attempt_at = db_col_int64(st, 10);
	d->created_at = db_col_int64(st, 11);
	d->replay_requested_at = db_col_int64(st, 12);
	if (!db_col_is_null(st, 13)) {
		d->body = db_col_strdup(st, 13);
		d->body_len = (size_t)db_col_bytes(st, 13);
	}
}

int
db_dead_letter_add(struct db *db, const struct db_dead_letter *d, int64_t now, char **cause)
{
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_exec(db, DB_STMT_CURSOR_DEAD, cause,
	    DB_ARGS(DB_TEXT(d->target), DB_INT(d->after_id), DB_TEXT(d->delivery_id),
		DB_INT(d->last_id)));
	if (rc == DB_OK && db_changes(db) == 0)
		rc = DB_CONFLICT;
	if (rc != DB_OK)
		goto fail;
	rc = db_exec(db, DB_STMT_DEAD_INSERT, cause,
	    DB_ARGS(DB_TEXT(d->target), DB_TEXT(d->delivery_id), DB_INT(d->after_id),
		DB_INT(d->last_id), DB_INT(d->count), DB_TEXT(d->body), DB_INT(d->attempts),
		DB_INT_OR_NULL(d->last_status), DB_TEXT(d->last_error), DB_INT(d->first_attempt_at),
		DB_INT(d->last_attempt_at), DB_INT(now)));
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
}

int
db_dead_letter_list(struct db *db, const char *target, int64_t after, int64_t limit,
    int (*each)(const struct db_dead_letter *d, void *arg), void *arg, char **cause)
{
	struct db_dead_letter d;
	struct db_bstmt *st;
	int rc, stop;

	st = db_prepare(db, DB_STMT_DEAD_LIST, cause,
	    DB_ARGS(DB_TEXT(target), DB_INT(after), DB_INT(limit > 0 ? limit : INT64_MAX)));
	if (st == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		db_row_dead_letter(st, &d);
		stop = each(&d, arg);
		db_dead_letter_clear(&d);
		if (stop != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

/* The first row of a dead-letter query into *d; DB_NOTFOUND if none. */
static int
db_dead_letter_one(struct db *db, enum db_stmt which, struct db_dead_letter *d, char **cause,
    const struct db_arg *args, size_t n)
{
	struct db_bstmt *st;
	int rc;

	memset(d, 0, sizeof *d);
	if ((st = db_prepare(db, which, cause, args, n)) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW)
		db_row_dead_letter(st, d);
	db_done(db, st);
	if (rc == DB_ROW)
		return DB_OK;
	return rc == DB_DONE ? DB_NOTFOUND : rc;
}

int
db_dead_letter_get(struct db *db, int64_t id, struct db_dead_letter *d, char **cause)
{
	return db_dead_letter_one(db, DB_STMT_DEAD_GET, d, cause, DB_ARGS(DB_INT(id)));
}

int
db_dead_letter_next_replay(
    struct db *db, const char *target, struct db_dead_letter *d, char **cause)
{
	return db_dead_letter_one(db, DB_STMT_DEAD_NEXT_REPLAY, d, cause, DB_ARGS(DB_TEXT(target)));
}

int
db_dead_letter_replay(
    struct db *db, int64_t id, const char *target, int64_t now, int64_t *marked, char **cause)
{
	int64_t n = 0;
	int rc;

	if (id > 0)
		rc = db_write_one(
		    db, DB_STMT_DEAD_MARK_ONE, &n, cause, DB_ARGS(DB_INT(id), DB_INT(now)));
	else
		rc = db_write_one(
		    db, DB_STMT_DEAD_MARK_ALL, &n, cause, DB_ARGS(DB_TEXT(target), DB_INT(now)));
	if (marked != NULL)
		*marked = n;
	if (rc == DB_OK && id > 0 && n == 0)
		return DB_NOTFOUND;
	return rc;
}

int
db_dead_letter_discard(struct db *db, int64_t id, char **cause)
{
	int64_t n = 0;
	int rc;

	rc = db_write_one(db, DB_STMT_DEAD_DELETE, &n, cause, DB_ARGS(DB_INT(id)));
	if (rc == DB_OK && n == 0)
		return DB_NOTFOUND;
	return rc;
}

int
db_dead_letter_replay_fail(struct db *db, int64_t id, int64_t status, const char *error,
    int64_t now, int give_up, char **cause)
{
	int64_t n = 0;
	int rc;

	rc = db_write_one(db, DB_STMT_DEAD_REPLAY_FAIL, &n, cause,
	    DB_ARGS(DB_INT(id), DB_INT_OR_NULL(status), DB_TEXT(error), DB_INT(now),
		DB_INT(give_up != 0)));
	if (rc == DB_OK && n == 0)
		return DB_NOTFOUND;
	return rc;
}

int
db_dead_letter_counts(
    struct db *db, const char *target, int64_t *total, int64_t *replay, char **cause)
{
	struct db_bstmt *st;
	int rc;

	*total = *replay = 0;
	if ((st = db_prepare(db, DB_STMT_DEAD_COUNTS, cause, DB_ARGS(DB_TEXT(target)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW) {
		*total = db_col_int64(st, 0);
		*replay = db_col_int64(st, 1);
	}
	db_done(db, st);
	return rc == DB_ROW || rc == DB_DONE ? DB_OK : rc;
}

/* ---- nodes ---- */

/* Fills *n from DB_NODE_COLUMNS; strings valid until the next step. */
static void
db_row_node(struct db_bstmt *st, struct db_node *n)
{
	n->id = db_col_text(st, 0);
	n->incarnation = db_col_text(st, 1);
	n->started_at = db_col_int64(st, 2);
	n->seen_at = db_col_int64(st, 3);
	n->stopped_at = db_col_int64(st, 4);
	n->connections = db_col_int64(st, 5);
	n->reaped_at = db_col_int64(st, 6);
}

void
db_node_clear(struct db_node *n)
{
	/* db_node_get() filled the const fields with heap copies. */
	free((char *)n->id);
	free((char *)n->incarnation);
	memset(n, 0, sizeof *n);
}

int
db_node_beat(struct db *db, const char *id, const char *incarnation, int64_t started_at,
    int64_t now, int64_t connections, char **cause)
{
	return db_write_one(db, DB_STMT_NODE_BEAT, NULL, cause,
	    DB_ARGS(DB_TEXT(id), DB_TEXT(incarnation), DB_INT(started_at), DB_INT(now),
		DB_INT(connections)));
}

int
db_node_stop(struct db *db, const char *id, const char *incarnation, int64_t now, char **cause)
{
	int64_t n = 0;
	int rc;

	rc = db_write_one(db, DB_STMT_NODE_STOP, &n, cause,
	    DB_ARGS(DB_TEXT(id), DB_TEXT(incarnation), DB_INT(now)));
	return rc == DB_OK && n == 0 ? DB_NOTFOUND : rc;
}

int
db_node_list(
    struct db *db, int (*each)(const struct db_node *n, void *arg), void *arg, char **cause)
{
	struct db_node n;
	struct db_bstmt *st;
	int rc;

	if ((st = db_prepare(db, DB_STMT_NODE_LIST, cause, DB_NOARGS)) == NULL)
		return DB_ERROR;
	while ((rc = db_step(db, st, cause)) == DB_ROW) {
		db_row_node(st, &n);
		if (each(&n, arg) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_done(db, st);
	return rc == DB_DONE ? DB_OK : rc;
}

int
db_node_get(struct db *db, const char *id, struct db_node *out, char **cause)
{
	struct db_node n;
	struct db_bstmt *st;
	int rc;

	memset(out, 0, sizeof *out);
	if ((st = db_prepare(db, DB_STMT_NODE_GET, cause, DB_ARGS(DB_TEXT(id)))) == NULL)
		return DB_ERROR;
	rc = db_step(db, st, cause);
	if (rc == DB_ROW) {
		db_row_node(st, &n);
		*out = n;
		out->id = xstrdup(n.id);
		out->incarnation = xstrdup(n.incarnation);
	}
	db_done(db, st);
	if (rc != DB_ROW)
		return rc == DB_DONE ? DB_NOTFOUND : rc;
	return DB_OK;
}

int
db_node_reap(struct db *db, const char *id, int64_t stale_before, const char *reason, int64_t now,
    int64_t *closed, char **cause)
{
	int64_t n;
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_exec(
	    db, DB_STMT_NODE_REAP, cause, DB_ARGS(DB_TEXT(id), DB_INT(stale_before), DB_INT(now)));
	if (rc == DB_OK && db_changes(db) == 0)
		rc = DB_NOTFOUND; /* fresh, stopped, reaped already or unknown */
	if (rc != DB_OK)
		goto fail;
	rc = db_sessions_close_listed(
	    db, DB_STMT_SESSION_NODE_OPEN_IDS, DB_ARGS(DB_TEXT(id)), reason, now, &n, cause);
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	if (closed != NULL)
		*closed = n;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
}

const char *
db_node_state(const struct db_node *n, int64_t now, int64_t timeout_ms)
{
	/* A beat clears both marks, and a reap needs stopped_at unset: with both
	 * set, the clean stop came last. A reap before the node was last seen
	 * does not count (as for DB_STMT_NODE_REAP). */
	if (n->stopped_at != 0)
		return "stopped";
	if (n->reaped_at != 0 && n->reaped_at >= n->seen_at)
		return "lost";
	if (now - n->seen_at > timeout_ms)
		return "silent";
	return "alive";
}
