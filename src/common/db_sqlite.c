/*
 * The SQLite backend (db_backend.h): every sqlite3_* call of the database
 * module. One file in WAL mode shared by every program, each connection
 * used by one thread (SQLITE_OPEN_NOMUTEX).
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db.h"
#include "db_backend.h"
#include "dbfile.h"
#include "log.h"
#include "xmalloc.h"

/* STRICT tables. */
#define DB_SQLITE_MIN 3037000
/* What the WAL file is cut back to when it starts over: about the most
 * chatd's checkpoints let it grow (4,000 pages), so only a WAL that a
 * reader held back leaves a larger file, and not for long. */
#define DB_JOURNAL_SIZE_LIMIT "16777216"
#define DB_WAL_RETRY_MS 10

struct db_sqlite_stmt {
	struct db_bstmt base; /* first: db.c sees only this */
	sqlite3_stmt *st;
};

/* A named lock (db_lock_try): flock on <database>.<name>.lock. */
struct db_sqlite_lock {
	struct db_sqlite_lock *next;
	char *name;
	char *path;
	int fd;
	int held;
};

struct db_bconn {
	sqlite3 *sq;
	char *path;
	struct db_sqlite_lock *locks;
	struct db_sqlite_stmt *tx[DB_TX_VERBS];
	enum db_failure failure; /* of the latest failed prepare, bind or step */
	void (*wal_hook)(void *arg, int wal_pages); /* db_wal_hook() */
	void *wal_hook_arg;
};

/*
 * DIALECT: SQLite's transaction statements. IMMEDIATE takes the write
 * lock before reading, which is what lets the busy timeout work across
 * processes (a deferred transaction that reads then writes fails with
 * SQLITE_BUSY instead of waiting).
 */
static const char *const db_sqlite_tx_sql[DB_TX_VERBS] = {
	[DB_TX_BEGIN] = "BEGIN IMMEDIATE",
	[DB_TX_COMMIT] = "COMMIT",
	[DB_TX_ROLLBACK] = "ROLLBACK",
	[DB_TX_SAVEPOINT] = "SAVEPOINT db_op",
	[DB_TX_RELEASE] = "RELEASE db_op",
	[DB_TX_ROLLBACK_TO] = "ROLLBACK TO db_op",
};

static __attribute__((noreturn)) void
db_oom(void)
{
	log_error("out of memory in SQLite");
	abort();
}

static sqlite3_stmt *
db_sqlite_st(struct db_bstmt *st)
{
	return ((struct db_sqlite_stmt *)st)->st;
}

/*
 * SQLite's message, with the system's reason when a file could not be
 * opened, read or written: "unable to open database file" alone does not
 * say that a folder is not writable (the -wal and -shm files go there).
 */
static char *
db_sqlite_cause(const char *path, sqlite3 *sq)
{
	int code = sqlite3_errcode(sq) & 0xff, err = sqlite3_system_errno(sq);

	if (sqlite3_extended_errcode(sq) == SQLITE_READONLY_DIRECTORY ||
	    (code == SQLITE_READONLY && err == 0 && access(path, W_OK) == 0))
		return xasprintf("database %s: %s: its folder is not writable (the -wal and -shm "
				 "files go there)",
		    path, sqlite3_errmsg(sq));
	if (err != 0 &&
	    (code == SQLITE_CANTOPEN || code == SQLITE_IOERR || code == SQLITE_READONLY))
		return xasprintf("database %s: %s: %s", path, sqlite3_errmsg(sq), strerror(err));
	return xasprintf("database %s: %s", path, sqlite3_errmsg(sq));
}

static enum db_failure
db_sqlite_classify(int code)
{
	switch (code) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return DB_FAILURE_BUSY;
	case SQLITE_FULL:
	case SQLITE_NOMEM: /* where it is not fatal (db_oom): a prepare, a bind */
	case SQLITE_IOERR:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
	case SQLITE_ABORT: /* a statement cut short by the rollback of its transaction */
		return DB_FAILURE_TRANSIENT;
	}
	return DB_FAILURE_PERMANENT;
}

/* Records the connection's latest error as the failure, with its message in *cause. */
static void
db_sqlite_fail(struct db_bconn *c, char **cause)
{
	c->failure = db_sqlite_classify(sqlite3_errcode(c->sq) & 0xff);
	*cause = db_sqlite_cause(c->path, c->sq);
}

static int
db_sqlite_prepare(struct db_bconn *c, const char *sql, struct db_bstmt **out, char **cause)
{
	struct db_sqlite_stmt *s;
	sqlite3_stmt *st;

	*out = NULL;
	if (sqlite3_prepare_v3(c->sq, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		db_sqlite_fail(c, cause);
		return DB_ERROR;
	}
	s = xmalloc(sizeof *s);
	s->base.ops = &db_sqlite_ops;
	s->st = st;
	*out = &s->base;
	return DB_OK;
}

static int
db_sqlite_bind(
    struct db_bconn *c, struct db_bstmt *stmt, const struct db_arg *args, size_t n, char **cause)
{
	sqlite3_stmt *st = db_sqlite_st(stmt);
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		switch (args[i].type) {
		case DB_ARG_INT:
			rc = sqlite3_bind_int64(st, (int)i + 1, args[i].i);
			break;
		case DB_ARG_TEXT:
			rc = sqlite3_bind_text(st, (int)i + 1, args[i].s, -1, SQLITE_STATIC);
			break;
		default:
			rc = sqlite3_bind_null(st, (int)i + 1);
			break;
		}
		if (rc != SQLITE_OK) {
			db_sqlite_fail(c, cause);
			return DB_ERROR;
		}
	}
	return DB_OK;
}

static int
db_sqlite_step(struct db_bconn *c, struct db_bstmt *stmt, char **cause)
{
	switch (sqlite3_step(db_sqlite_st(stmt))) {
	case SQLITE_ROW:
		return DB_ROW;
	case SQLITE_DONE:
		return DB_DONE;
	case SQLITE_CONSTRAINT_PRIMARYKEY:
	case SQLITE_CONSTRAINT_UNIQUE:
		return DB_CONFLICT;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return DB_NOTFOUND;
	case SQLITE_NOMEM:
		db_oom();
	}
	db_sqlite_fail(c, cause);
	return DB_ERROR;
}

static void
db_sqlite_reset(struct db_bstmt *stmt)
{
	sqlite3_stmt *st = db_sqlite_st(stmt);

	/* reset repeats the last step's error, already reported. */
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

static void
db_sqlite_finalize(struct db_bstmt *stmt)
{
	if (stmt == NULL)
		return;
	sqlite3_finalize(db_sqlite_st(stmt));
	free(stmt);
}

static int64_t
db_sqlite_col_int64(struct db_bstmt *st, int col)
{
	return sqlite3_column_int64(db_sqlite_st(st), col);
}

static int
db_sqlite_col_int(struct db_bstmt *st, int col)
{
	return sqlite3_column_int(db_sqlite_st(st), col);
}

static int
db_sqlite_col_is_null(struct db_bstmt *st, int col)
{
	return sqlite3_column_type(db_sqlite_st(st), col) == SQLITE_NULL;
}

static const char *
db_sqlite_col_text(struct db_bstmt *stmt, int col)
{
	sqlite3_stmt *st = db_sqlite_st(stmt);
	const unsigned char *t;

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	if ((t = sqlite3_column_text(st, col)) == NULL)
		db_oom();
	return (const char *)t;
}

static size_t
db_sqlite_col_bytes(struct db_bstmt *st, int col)
{
	return (size_t)sqlite3_column_bytes(db_sqlite_st(st), col);
}

static int64_t
db_sqlite_changes(struct db_bconn *c)
{
	return sqlite3_changes64(c->sq);
}

/*
 * Not RETURNING id: SQLite buffers RETURNING rows in an ephemeral table
 * whose set-up and tear-down halved message append throughput.
 */
static int64_t
db_sqlite_last_insert_id(struct db_bconn *c)
{
	return sqlite3_last_insert_rowid(c->sq);
}

static int
db_sqlite_exec_script(struct db_bconn *c, const char *sql, const char *what, char **cause)
{
	char *errmsg = NULL;

	if (sqlite3_exec(c->sq, sql, NULL, NULL, &errmsg) != SQLITE_OK) {
		*cause = xasprintf("database %s: %s: %s", c->path, what,
		    errmsg != NULL ? errmsg : sqlite3_errmsg(c->sq));
		sqlite3_free(errmsg);
		return DB_ERROR;
	}
	return DB_OK;
}

static int
db_sqlite_tx(struct db_bconn *c, enum db_tx_verb verb, char **cause)
{
	struct db_bstmt *st;
	int rc;

	if (c->tx[verb] == NULL) {
		if (db_sqlite_prepare(c, db_sqlite_tx_sql[verb], &st, cause) != DB_OK)
			return DB_ERROR;
		c->tx[verb] = (struct db_sqlite_stmt *)st;
	}
	st = &c->tx[verb]->base;
	while ((rc = db_sqlite_step(c, st, cause)) == DB_ROW)
		;
	db_sqlite_reset(st);
	return rc == DB_DONE ? DB_OK : rc;
}

/* The schema version lives in the file's header: PRAGMA user_version. */
static int
db_sqlite_version_get(struct db_bconn *c, int64_t *v, char **cause)
{
	struct db_bstmt *st;
	int rc;

	if (db_sqlite_prepare(c, "PRAGMA user_version", &st, cause) != DB_OK)
		return DB_ERROR;
	rc = db_sqlite_step(c, st, cause);
	if (rc == DB_ROW) {
		*v = sqlite3_column_int64(db_sqlite_st(st), 0);
		rc = DB_OK;
	} else if (rc == DB_DONE) {
		*cause = xasprintf("database %s: PRAGMA user_version gave no row", c->path);
		rc = DB_ERROR;
	}
	db_sqlite_finalize(st);
	return rc;
}

/* The PRAGMA takes no parameter; v is db.c's own integer. */
static int
db_sqlite_version_set(struct db_bconn *c, int v, char **cause)
{
	char *sql = xasprintf("PRAGMA user_version = %d", v);
	int rc = db_sqlite_exec_script(c, sql, "setting the schema version", cause);

	free(sql);
	return rc;
}

/*
 * The lock file <database>.<name>.lock, as chat-sync's per-target locks
 * have always been named. The kernel drops a flock when its holder dies,
 * so kill -9 leaves no stale lock.
 */
static int
db_sqlite_lock_try(struct db_bconn *c, const char *name, char **cause)
{
	struct db_sqlite_lock *l;

	for (l = c->locks; l != NULL && strcmp(l->name, name) != 0; l = l->next)
		;
	if (l == NULL) {
		l = xcalloc(1, sizeof *l);
		l->name = xstrdup(name);
		l->path = xasprintf("%s.%s.lock", c->path, name);
		l->fd = -1;
		l->next = c->locks;
		c->locks = l;
	}
	if (l->held)
		return DB_OK;
	/* Owner-only (a shared group's), like the database, whatever the umask. */
	if (l->fd < 0 && (l->fd = dbfile_open_lock(l->path, cause)) < 0)
		return DB_ERROR;
	if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			return DB_CONFLICT;
		*cause = xasprintf("flock %s: %s", l->path, strerror(errno));
		return DB_ERROR;
	}
	l->held = 1;
	return DB_OK;
}

static void
db_sqlite_unlock(struct db_bconn *c, const char *name)
{
	struct db_sqlite_lock *l;

	for (l = c->locks; l != NULL; l = l->next)
		if (l->held && strcmp(l->name, name) == 0) {
			if (flock(l->fd, LOCK_UN) != 0)
				log_warn("unlock %s: %s", l->path, strerror(errno));
			l->held = 0;
		}
}

static int
db_sqlite_tx_ended(struct db_bconn *c)
{
	return sqlite3_get_autocommit(c->sq);
}

static enum db_failure
db_sqlite_failure(struct db_bconn *c)
{
	return c->failure;
}

static int
db_sqlite_wal_committed(void *arg, sqlite3 *sq, const char *schema, int pages)
{
	struct db_bconn *c = arg;

	(void)sq;
	(void)schema;
	c->wal_hook(c->wal_hook_arg, pages);
	return SQLITE_OK;
}

static void
db_sqlite_wal_hook(struct db_bconn *c, void (*hook)(void *arg, int wal_pages), void *arg)
{
	c->wal_hook = hook;
	c->wal_hook_arg = arg;
	/* Also what sqlite3_wal_autocheckpoint(db, 0) does: one hook per connection. */
	sqlite3_wal_hook(c->sq, db_sqlite_wal_committed, c);
}

static int
db_sqlite_checkpoint(struct db_bconn *c, int *wal_pages, int *done_pages, char **cause)
{
	int log = 0, ckpt = 0, rc;

	rc = sqlite3_wal_checkpoint_v2(c->sq, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &ckpt);
	if (wal_pages != NULL)
		*wal_pages = log;
	if (done_pages != NULL)
		*done_pages = ckpt;
	if (rc == SQLITE_BUSY)
		return DB_OK; /* another checkpoint under way: it does the work */
	if (rc != SQLITE_OK) {
		*cause = xasprintf("database %s: checkpoint: %s", c->path, sqlite3_errmsg(c->sq));
		return DB_ERROR;
	}
	return DB_OK;
}

/*
 * Switches the file to WAL (a no-op once it is). The switch needs an
 * exclusive lock, and SQLite does not call the busy handler for it (waiting
 * could deadlock), so programs starting together on a fresh file would fail
 * at once with SQLITE_BUSY: retry for as long as the busy timeout.
 */
static int
db_sqlite_use_wal(struct db_bconn *c, char **cause)
{
	const struct timespec pause = { 0, DB_WAL_RETRY_MS * 1000000L };
	struct db_bstmt *st;
	const char *mode;
	int rc, waited;

	if (db_sqlite_prepare(c, "PRAGMA journal_mode = WAL", &st, cause) != DB_OK)
		return DB_ERROR;
	for (waited = 0;; waited += DB_WAL_RETRY_MS) {
		rc = db_sqlite_step(c, st, cause);
		if (rc != DB_ERROR || (sqlite3_errcode(c->sq) & 0xff) != SQLITE_BUSY ||
		    waited >= DB_BUSY_TIMEOUT_MS)
			break;
		db_sqlite_reset(st);
		free(*cause);
		*cause = NULL;
		nanosleep(&pause, NULL);
	}
	if (rc != DB_ROW) {
		if (rc != DB_ERROR)
			*cause = xasprintf("database %s: cannot set the journal mode", c->path);
		db_sqlite_finalize(st);
		return DB_ERROR;
	}
	mode = db_sqlite_col_text(st, 0);
	/* ":memory:" (one connection, nothing to share) cannot do WAL. */
	if (mode == NULL || (strcasecmp(mode, "wal") != 0 && strcasecmp(mode, "memory") != 0)) {
		*cause = xasprintf("database %s: cannot use WAL journal mode (got %s)", c->path,
		    mode != NULL ? mode : "nothing");
		db_sqlite_finalize(st);
		return DB_ERROR;
	}
	db_sqlite_finalize(st);
	return DB_OK;
}

static void db_sqlite_close(struct db_bconn *c);

static int
db_sqlite_open(const char *path, int create, struct db_bconn **out, char **cause)
{
	struct db_bconn *c;
	struct stat sb;
	char *memdir;
	size_t len;
	int rc, private_dir;

	*out = NULL;
	if (!create && stat(path, &sb) != 0) {
		if (errno == ENOENT)
			return DB_NOTFOUND;
		*cause = xasprintf("database %s: %s", path, strerror(errno));
		return DB_ERROR;
	}
	if (sqlite3_libversion_number() < DB_SQLITE_MIN) {
		*cause = xasprintf(
		    "SQLite %s is too old: 3.37 or later is needed", sqlite3_libversion());
		return DB_ERROR;
	}
	/* Inside the default's private folder, that folder is made and checked too. */
	memdir = dbfile_memory_dir();
	len = strlen(memdir);
	private_dir = strncmp(path, memdir, len) == 0 && path[len] == '/' &&
	    strchr(path + len + 1, '/') == NULL;
	free(memdir);
	if (dbfile_prepare(path, private_dir, cause) != 0)
		return DB_ERROR;
	c = xcalloc(1, sizeof *c);
	c->path = xstrdup(path);
	rc = sqlite3_open_v2(path, &c->sq,
	    SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		*cause = c->sq != NULL ? db_sqlite_cause(path, c->sq)
				       : xasprintf("database %s: %s", path, sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(c->sq, 1);
	/* First: every step below may have to wait for other openers. */
	sqlite3_busy_timeout(c->sq, DB_BUSY_TIMEOUT_MS);

	if (db_sqlite_use_wal(c, cause) != DB_OK)
		goto fail;

	/*
	 * Per connection. NORMAL survives a crash of the program in WAL mode
	 * (only a power loss may drop the last commits) and is about 15x
	 * faster than Debian's default FULL. The size limit truncates the WAL
	 * after checkpoints, which bursts with active readers let grow.
	 */
	if (db_sqlite_exec_script(c,
		"PRAGMA synchronous = NORMAL;"
		"PRAGMA foreign_keys = ON;"
		"PRAGMA journal_size_limit = " DB_JOURNAL_SIZE_LIMIT ";",
		"settings", cause) != DB_OK)
		goto fail;
	*out = c;
	return DB_OK;

fail:
	db_sqlite_close(c);
	return DB_ERROR;
}

static void
db_sqlite_close(struct db_bconn *c)
{
	size_t i;

	struct db_sqlite_lock *l;

	if (c == NULL)
		return;
	while ((l = c->locks) != NULL) {
		c->locks = l->next;
		if (l->fd >= 0)
			(void)close(l->fd); /* releases the lock */
		free(l->name);
		free(l->path);
		free(l);
	}
	for (i = 0; i < DB_TX_VERBS; i++)
		db_sqlite_finalize(c->tx[i] != NULL ? &c->tx[i]->base : NULL);
	/* Rolls back an open transaction; nothing is left to keep it busy. */
	if (sqlite3_close(c->sq) != SQLITE_OK)
		log_warn("database %s: close: %s", c->path, sqlite3_errmsg(c->sq));
	free(c->path);
	free(c);
}

const struct db_backend_ops db_sqlite_ops = {
	.name = "sqlite",
	.dialect = DB_DIALECT_SQLITE,
	.open = db_sqlite_open,
	.close = db_sqlite_close,
	.prepare = db_sqlite_prepare,
	.bind = db_sqlite_bind,
	.step = db_sqlite_step,
	.reset = db_sqlite_reset,
	.finalize = db_sqlite_finalize,
	.col_int64 = db_sqlite_col_int64,
	.col_int = db_sqlite_col_int,
	.col_text = db_sqlite_col_text,
	.col_bytes = db_sqlite_col_bytes,
	.col_is_null = db_sqlite_col_is_null,
	.changes = db_sqlite_changes,
	.last_insert_id = db_sqlite_last_insert_id,
	.exec_script = db_sqlite_exec_script,
	.tx = db_sqlite_tx,
	.tx_ended = db_sqlite_tx_ended,
	.failure = db_sqlite_failure,
	.version_get = db_sqlite_version_get,
	.version_set = db_sqlite_version_set,
	.lock_try = db_sqlite_lock_try,
	.unlock = db_sqlite_unlock,
	.wal_hook = db_sqlite_wal_hook,
	.checkpoint = db_sqlite_checkpoint,
};
