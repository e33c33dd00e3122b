/*
 * The PostgreSQL backend (db_backend.h) over libpq, chosen by a
 * postgres:// or postgresql:// DATABASE_URL.
 *
 * One connection per struct db_bconn, used by one thread. Statements are
 * prepared on the server under a name of their own (chat_1, chat_2, ...)
 * once per connection; db.c keeps them, as it keeps SQLite's. A step runs
 * the statement on the first call and walks the rows of the whole result
 * after that: db.c's queries are paged, so a result is never large.
 * Values travel in text format; the server infers each parameter's type
 * from where it stands, so a parameter with no such context (a bare
 * SELECT ?1, ?1 IS NULL) needs a cast in the SQL text.
 *
 * Messages name the database by host, port, database and user, never by
 * the address as given: a password in it must not reach a log.
 *
 * One writer at a time, as with SQLite: BEGIN takes a transaction-scoped
 * advisory lock that every chatd process on every machine asks for
 * (DB_PG_WRITE_LOCK). Without it, ids from a sequence could commit out of
 * order (chat-sync's cursors read rows after the last id they delivered,
 * so a row committed late below that id would never be sent), two
 * writers could take rooms' row locks in opposite orders and deadlock,
 * and db.c's read-then-write checks (the rate limit, a ban's lift) would
 * race. Readers take no lock. Group commit keeps the lock's cost to one
 * wait per batch.
 *
 * A lost connection (the server restarted) is opened again by the next
 * statement outside a transaction or the next BEGIN, and the statements
 * are prepared again on the new session. Inside a transaction nothing is
 * retried: the transaction is gone, the failure is transient, and db.c's
 * callers start over (chatd's writer retries its batch).
 */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "db.h"
#include "db_backend.h"
#include "log.h"
#include "xmalloc.h"

/* Deferred savepoint statements, sent in this order. */
#define DB_PG_PEND_RELEASE 0x1
#define DB_PG_PEND_SAVEPOINT 0x2

/* Enough for the longest int64 in decimal, its sign and the NUL. */
#define DB_PG_INT_CHARS 24
/* More ?N than any statement of db.c has; a typo like ?10000 is refused. */
#define DB_PG_MAX_PARAMS 999
/* How long open() waits for the server unless the address says otherwise. */
#define DB_PG_CONNECT_TIMEOUT "10"
/*
 * Advisory lock keys (the two-int form): the write lock, and the class of
 * db_lock_try()'s named locks (the second key is hashtext(name)). 'chat'
 * and 'chau' in ASCII, unlikely to meet another application's keys.
 */
#define DB_PG_WRITE_LOCK "1667785076, 0"
#define DB_PG_NAMED_LOCKS "1667785077"

struct db_pg_stmt {
	struct db_bstmt base; /* first: db.c sees only this */
	struct db_bconn *c;
	char *name; /* the server's name for it */
	char *text; /* the text in PostgreSQL's form, to prepare again after a reconnect */
	unsigned generation; /* of the session it was prepared on (db_bconn's) */
	int nparams; /* the highest ?N of its text */
	const char **values; /* the bound values, NULL for SQL NULL */
	char (*ints)[DB_PG_INT_CHARS]; /* the text of bound integers */
	PGresult *res; /* of the run under way, NULL before the first step */
	int row, rows; /* the current row; rows of res */
};

/* A named lock this session holds (db_lock_try). */
struct db_pg_lock {
	struct db_pg_lock *next;
	char *name;
};

struct db_bconn {
	PGconn *pg;
	char *where; /* host, port, database, user: for messages */
	unsigned next_name;
	unsigned generation; /* counts sessions: a reconnect starts a new one */
	int in_tx; /* a BEGIN of ours succeeded and no COMMIT or ROLLBACK yet */
	/*
	 * Savepoint statements not sent yet (DB_PG_PEND_*): db.c wraps each
	 * operation of a batch in SAVEPOINT ... RELEASE, two round trips an
	 * operation that carry nothing the caller waits for. They go to the
	 * server with whatever is sent next, one round trip for both (see
	 * db_pg_tx()).
	 */
	unsigned pending;
	struct db_pg_lock *locks;
	int64_t changes;
	enum db_failure failure; /* of the latest failed prepare, bind, step or tx */
};

/*
 * PostgreSQL's transaction statements, with the savepoint name the
 * SQLite side uses. BEGIN takes the write lock at once, as SQLite's
 * BEGIN IMMEDIATE does (see the top of this file); lock_timeout bounds
 * the wait (55P03: busy). Under that lock a room's seq is gap-free: the
 * increment and the message commit together or not at all.
 */
static const char *const db_pg_tx_sql[DB_TX_VERBS] = {
	[DB_TX_BEGIN] = "BEGIN; SELECT pg_advisory_xact_lock(" DB_PG_WRITE_LOCK ")",
	[DB_TX_COMMIT] = "COMMIT",
	[DB_TX_ROLLBACK] = "ROLLBACK",
	[DB_TX_SAVEPOINT] = "SAVEPOINT db_op",
	[DB_TX_RELEASE] = "RELEASE db_op",
	[DB_TX_ROLLBACK_TO] = "ROLLBACK TO db_op",
};

static struct db_pg_stmt *
db_pg_st(struct db_bstmt *st)
{
	return (struct db_pg_stmt *)st;
}

/* libpq's messages end in a newline and may span lines: one line for a log. */
static char *
db_pg_oneline(const char *msg)
{
	char *s = xstrdup(msg != NULL && msg[0] != '\0' ? msg : "unknown error"), *p;
	size_t len;

	for (p = s; *p != '\0'; p++)
		if (*p == '\n' || *p == '\t' || *p == '\r')
			*p = ' ';
	len = strlen(s);
	while (len > 0 && s[len - 1] == ' ')
		s[--len] = '\0';
	return s;
}

/* Replaces every copy of secret in *msg with "***" (no-op for NULL or ""). */
static void
db_pg_redact(char **msg, const char *secret)
{
	size_t slen;
	char *hit, *out;

	if (secret == NULL || (slen = strlen(secret)) == 0)
		return;
	while ((hit = strstr(*msg, secret)) != NULL) {
		out = xasprintf("%.*s***%s", (int)(hit - *msg), *msg, hit + slen);
		free(*msg);
		*msg = out;
	}
}

/*
 * The address as host, port, database and user (what libpq parsed out of
 * it), leaving out the password and everything else.
 */
static char *
db_pg_describe(PQconninfoOption *opts)
{
	static const char *const keys[] = { "host", "hostaddr", "port", "dbname", "user" };
	PQconninfoOption *o;
	char *s = xstrdup(""), *t;
	size_t i;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
		for (o = opts; o->keyword != NULL; o++)
			if (strcmp(o->keyword, keys[i]) == 0 && o->val != NULL &&
			    o->val[0] != '\0') {
				t = xasprintf(
				    "%s%s%s=%s", s, s[0] != '\0' ? " " : "", keys[i], o->val);
				free(s);
				s = t;
			}
	if (s[0] == '\0') {
		free(s);
		s = xstrdup("(libpq's defaults)");
	}
	return s;
}

/* The password the address holds, or NULL. */
static const char *
db_pg_password(PQconninfoOption *opts)
{
	PQconninfoOption *o;

	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "password") == 0)
			return o->val;
	return NULL;
}

/* How the SQLSTATE of a failure (NULL: none, libpq's own) should be retried. */
static enum db_failure
db_pg_classify(PGconn *pg, const char *state)
{
	if (PQstatus(pg) == CONNECTION_BAD)
		return DB_FAILURE_TRANSIENT;
	if (state == NULL)
		return DB_FAILURE_PERMANENT;
	if (strcmp(state, "40001") == 0 /* serialization_failure */ ||
	    strcmp(state, "40P01") == 0 /* deadlock_detected */ ||
	    strcmp(state, "55P03") == 0 /* lock_not_available: lock_timeout, NOWAIT */)
		return DB_FAILURE_BUSY;
	if (strncmp(state, "08", 2) == 0 /* connection exception */ ||
	    strncmp(state, "53", 2) == 0 /* insufficient resources: disk full, memory */ ||
	    strncmp(state, "57P0", 4) == 0 /* shutting down, cannot connect now */)
		return DB_FAILURE_TRANSIENT;
	return DB_FAILURE_PERMANENT;
}

/*
 * Records a failed result (NULL: libpq could not even send) as the
 * connection's failure, with its message in *cause.
 */
static void
db_pg_fail(struct db_bconn *c, const PGresult *res, const char *what, char **cause)
{
	const char *state = NULL, *msg;
	char *line;

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		if (msg == NULL)
			msg = PQresultErrorMessage(res);
	} else
		msg = PQerrorMessage(c->pg);
	c->failure = db_pg_classify(c->pg, state);
	line = db_pg_oneline(msg);
	/* As SQLite says it: what an operator looks for when writes stall. */
	if (state != NULL && strcmp(state, "55P03") == 0)
		*cause = xasprintf("database %s: %s: locked by another writer past the busy "
				   "timeout: %s (SQLSTATE %s)",
		    c->where, what, line, state);
	else if (state != NULL)
		*cause =
		    xasprintf("database %s: %s: %s (SQLSTATE %s)", c->where, what, line, state);
	else
		*cause = xasprintf("database %s: %s: %s", c->where, what, line);
	free(line);
}

/* A notice ("relation already exists, skipping") is not an error: debug log only. */
static void
db_pg_notice(void *arg, const char *message)
{
	char *line = db_pg_oneline(message);

	(void)arg;
	log_debug("database: %s", line);
	free(line);
}

/* Runs a statement without parameters that returns no rows. */
static int
db_pg_command(struct db_bconn *c, const char *sql, char **cause)
{
	PGresult *res = PQexec(c->pg, sql);

	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_pg_fail(c, res, sql, cause);
		PQclear(res);
		return DB_ERROR;
	}
	PQclear(res);
	return DB_OK;
}

static void db_pg_close(struct db_bconn *c);
static int db_pg_result(struct db_bconn *c, PGresult *res, const char *what, char **cause);

/* What every session needs, on open and after a reconnect. */
static int
db_pg_session_init(struct db_bconn *c, char **cause)
{
	char *sql;
	int rc;

	/* The busy timeout: how long BEGIN waits for the write lock (or a row lock). */
	sql = xasprintf("SET lock_timeout = %d", DB_BUSY_TIMEOUT_MS);
	rc = db_pg_command(c, sql, cause);
	free(sql);
	return rc;
}

/* Drops the record of held named locks (the session that held them is gone). */
static void
db_pg_locks_forget(struct db_bconn *c)
{
	struct db_pg_lock *l;

	if (c->locks != NULL)
		log_warn("database %s: a new session holds none of the old one's locks", c->where);
	while ((l = c->locks) != NULL) {
		c->locks = l->next;
		free(l->name);
		free(l);
	}
}

/*
 * target is a libpq connection string or URI. create is not used: a
 * PostgreSQL database is made by its administrator (CREATE DATABASE needs
 * a privilege a service should not hold), so a missing one is an error
 * like any other, with a cause, never DB_NOTFOUND. db.c's migrations make
 * the tables, which is what creating the SQLite file stands for.
 */
static int
db_pg_open(const char *target, int create, struct db_bconn **out, char **cause)
{
	/* Ours first, the address last: what the address says wins. */
	const char *keys[] = { "connect_timeout", "client_encoding", "dbname", NULL };
	const char *vals[] = { DB_PG_CONNECT_TIMEOUT, "UTF8", target, NULL };
	PQconninfoOption *opts;
	struct db_bconn *c;
	char *err = NULL;

	(void)create;
	*out = NULL;
	if ((opts = PQconninfoParse(target, &err)) == NULL) {
		/*
		 * libpq quotes the part it could not parse, which may be a
		 * password: its message only when the address has none.
		 */
		if (err != NULL && strcasestr(target, "password") == NULL &&
		    (strstr(target, "://") == NULL || strchr(target, '@') == NULL)) {
			char *line = db_pg_oneline(err);

			*cause = xasprintf("database address: %s", line);
			free(line);
		} else
			*cause =
			    xstrdup(err != NULL ? "database address: not a valid libpq connection "
						  "string or URI (details left out: it may hold a "
						  "password)"
						: "database address: out of memory parsing it");
		PQfreemem(err);
		return DB_ERROR;
	}
	c = xcalloc(1, sizeof *c);
	c->where = db_pg_describe(opts);
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (c->pg == NULL) {
		PQconninfoFree(opts);
		*cause = xasprintf("database %s: out of memory connecting", c->where);
		db_pg_close(c);
		return DB_ERROR;
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		err = db_pg_oneline(PQerrorMessage(c->pg));
		*cause = xasprintf("database %s: %s", c->where, err);
		free(err);
		/* Whatever quotes it (a user name that is the password, the server). */
		db_pg_redact(cause, db_pg_password(opts));
		PQconninfoFree(opts);
		db_pg_close(c);
		return DB_ERROR;
	}
	PQconninfoFree(opts);
	/* Now what the server and libpq's defaults made of it. */
	free(c->where);
	c->where = xasprintf("host=%s port=%s dbname=%s user=%s", PQhost(c->pg), PQport(c->pg),
	    PQdb(c->pg), PQuser(c->pg));
	(void)PQsetNoticeProcessor(c->pg, db_pg_notice, NULL);
	if (db_pg_session_init(c, cause) != DB_OK) {
		db_pg_close(c);
		return DB_ERROR;
	}
	*out = c;
	return DB_OK;
}

/*
 * Makes sure the session is there before a statement outside a
 * transaction or a BEGIN: a lost one is opened again (PQreset keeps the
 * address and the notice processor). Inside a transaction a lost session
 * is a transient failure: the transaction went with it.
 */
static int
db_pg_ready(struct db_bconn *c, char **cause)
{
	char *err;

	if (PQstatus(c->pg) == CONNECTION_OK)
		return DB_OK;
	c->failure = DB_FAILURE_TRANSIENT;
	if (c->in_tx) {
		*cause = xasprintf("database %s: the connection was lost inside a transaction "
				   "(rolled back)",
		    c->where);
		return DB_ERROR;
	}
	PQreset(c->pg);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		err = db_pg_oneline(PQerrorMessage(c->pg));
		*cause = xasprintf("database %s: reconnecting: %s", c->where, err);
		free(err);
		return DB_ERROR;
	}
	/* Prepared statements and advisory locks went with the old session. */
	c->generation++;
	db_pg_locks_forget(c);
	if (db_pg_session_init(c, cause) != DB_OK) {
		c->failure = DB_FAILURE_TRANSIENT;
		return DB_ERROR;
	}
	log_info("database %s: connected again", c->where);
	return DB_OK;
}

/*
 * db_pg_ready(), then the deferred savepoint statements, before anything
 * else reaches the server inside the transaction: in one round trip, and
 * in the order db.c asked for them.
 */
static int
db_pg_ready_flush(struct db_bconn *c, char **cause)
{
	const char *sql;
	PGresult *res;
	int rc;

	if (db_pg_ready(c, cause) != DB_OK)
		return DB_ERROR;
	if (c->pending == 0)
		return DB_OK;
	sql = c->pending == (DB_PG_PEND_RELEASE | DB_PG_PEND_SAVEPOINT)
	    ? "RELEASE db_op; SAVEPOINT db_op"
	    : c->pending == DB_PG_PEND_RELEASE ? "RELEASE db_op"
					       : "SAVEPOINT db_op";
	c->pending = 0;
	res = PQexec(c->pg, sql);
	rc = db_pg_result(c, res, sql, cause);
	PQclear(res);
	return rc;
}

/* PQfinish() closes the session, which rolls back an open transaction. */
static void
db_pg_close(struct db_bconn *c)
{
	struct db_pg_lock *l;

	if (c == NULL)
		return;
	while ((l = c->locks) != NULL) {
		c->locks = l->next;
		free(l->name);
		free(l);
	}
	PQfinish(c->pg);
	free(c->where);
	free(c);
}

/*
 * DIALECT: SQLite's ?N placeholders become $N outside string literals,
 * quoted names and comments. A bare ? (SQLite's next number) is refused:
 * db.c numbers every placeholder. Not understood (db.c has neither): a
 * backslash-escaped quote in an E'' string, dollar-quoted text. Returns
 * NULL with *cause on an error; *nparams is the highest N.
 */
static char *
db_pg_rewrite(const char *sql, int *nparams, char **cause)
{
	char *out = xmalloc(strlen(sql) + 1), *o = out, *end;
	const char *p = sql;
	long n;

	*nparams = 0;
	while (*p != '\0') {
		if (*p == '\'' || *p == '"') {
			char q = *p;

			/* A doubled quote inside is one quote: the scan goes on. */
			*o++ = *p++;
			while (*p != '\0' && *p != q)
				*o++ = *p++;
			if (*p != '\0')
				*o++ = *p++;
		} else if (p[0] == '-' && p[1] == '-') {
			while (*p != '\0' && *p != '\n')
				*o++ = *p++;
		} else if (p[0] == '/' && p[1] == '*') {
			*o++ = *p++;
			*o++ = *p++;
			while (*p != '\0' && !(p[0] == '*' && p[1] == '/'))
				*o++ = *p++;
			if (*p != '\0') {
				*o++ = *p++;
				*o++ = *p++;
			}
		} else if (*p == '?') {
			if (p[1] < '1' || p[1] > '9') {
				*cause = xasprintf("statement %s: a ? without a number", sql);
				free(out);
				return NULL;
			}
			errno = 0;
			n = strtol(p + 1, &end, 10);
			if (errno != 0 || n > DB_PG_MAX_PARAMS) {
				*cause =
				    xasprintf("statement %s: placeholder number out of range", sql);
				free(out);
				return NULL;
			}
			if (n > *nparams)
				*nparams = (int)n;
			/* $N is as long as ?N: the buffer is large enough. */
			*o++ = '$';
			p++;
			while (p < end)
				*o++ = *p++;
		} else
			*o++ = *p++;
	}
	*o = '\0';
	return out;
}

static int
db_pg_prepare(struct db_bconn *c, const char *sql, struct db_bstmt **out, char **cause)
{
	struct db_pg_stmt *s;
	PGresult *res;
	char *text, *name;
	int nparams;

	*out = NULL;
	if ((text = db_pg_rewrite(sql, &nparams, cause)) == NULL) {
		c->failure = DB_FAILURE_PERMANENT;
		return DB_ERROR;
	}
	if (db_pg_ready_flush(c, cause) != DB_OK) {
		free(text);
		return DB_ERROR;
	}
	name = xasprintf("chat_%u", ++c->next_name);
	res = PQprepare(c->pg, name, text, nparams, NULL);
	/* A session found lost outside a transaction: once more on a new one (as db_pg_run). */
	if ((res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) && !c->in_tx &&
	    PQstatus(c->pg) == CONNECTION_BAD) {
		PQclear(res);
		res = NULL;
		if (db_pg_ready(c, cause) != DB_OK) {
			free(name);
			free(text);
			return DB_ERROR;
		}
		res = PQprepare(c->pg, name, text, nparams, NULL);
	}
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_pg_fail(c, res, sql, cause);
		PQclear(res);
		free(name);
		free(text);
		return DB_ERROR;
	}
	PQclear(res);
	s = xcalloc(1, sizeof *s);
	s->base.ops = &db_pg_ops;
	s->c = c;
	s->name = name;
	s->text = text;
	s->generation = c->generation;
	s->nparams = nparams;
	if (nparams > 0) {
		s->values = xcalloc((size_t)nparams, sizeof *s->values);
		s->ints = xcalloc((size_t)nparams, sizeof *s->ints);
	}
	*out = &s->base;
	return DB_OK;
}

static int
db_pg_bind(
    struct db_bconn *c, struct db_bstmt *stmt, const struct db_arg *args, size_t n, char **cause)
{
	struct db_pg_stmt *s = db_pg_st(stmt);
	size_t i;

	if (n > (size_t)s->nparams) {
		c->failure = DB_FAILURE_PERMANENT;
		*cause = xasprintf("database %s: %zu values for a statement with %d parameters",
		    c->where, n, s->nparams);
		return DB_ERROR;
	}
	for (i = 0; i < n; i++) {
		switch (args[i].type) {
		case DB_ARG_INT:
			(void)snprintf(s->ints[i], sizeof s->ints[i], "%" PRId64, args[i].i);
			s->values[i] = s->ints[i];
			break;
		case DB_ARG_TEXT:
			s->values[i] = args[i].s;
			break;
		default:
			s->values[i] = NULL;
			break;
		}
	}
	return DB_OK;
}

/* Whether a command tag reports rows changed (SQLite's changes() counts only those). */
static int
db_pg_changes_rows(const char *tag)
{
	return strncmp(tag, "INSERT ", 7) == 0 || strncmp(tag, "UPDATE ", 7) == 0 ||
	    strncmp(tag, "DELETE ", 7) == 0 || strncmp(tag, "MERGE ", 6) == 0;
}

/*
 * A finished result as step() reports it: DB_OK for done (the caller
 * keeps rows), DB_CONFLICT, DB_NOTFOUND or DB_ERROR with *cause.
 */
static int
db_pg_result(struct db_bconn *c, PGresult *res, const char *what, char **cause)
{
	ExecStatusType status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	const char *state;

	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
		if (db_pg_changes_rows(PQcmdStatus(res)))
			c->changes = strtoll(PQcmdTuples(res), NULL, 10);
		return DB_OK;
	}
	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (state != NULL && strcmp(state, "23505") == 0) /* unique_violation */
		return DB_CONFLICT;
	if (state != NULL && strcmp(state, "23503") == 0) /* foreign_key_violation */
		return DB_NOTFOUND;
	db_pg_fail(c, res, what, cause);
	return DB_ERROR;
}

/* Prepares s again on a session that does not have it (after a reconnect). */
static int
db_pg_reprepare(struct db_bconn *c, struct db_pg_stmt *s, char **cause)
{
	PGresult *res;

	if (s->generation == c->generation)
		return DB_OK;
	res = PQprepare(c->pg, s->name, s->text, s->nparams, NULL);
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_pg_fail(c, res, s->text, cause);
		PQclear(res);
		return DB_ERROR;
	}
	PQclear(res);
	s->generation = c->generation;
	return DB_OK;
}

/*
 * Runs s into s->res. Outside a transaction a statement that finds the
 * session lost is run once more on a new one: it changed nothing (every
 * write of db.c runs inside a transaction), and a reader then sees no
 * failure for a server restart that is already over.
 */
static int
db_pg_run(struct db_bconn *c, struct db_pg_stmt *s, char **cause)
{
	int rc, attempt;

	for (attempt = 0;; attempt++) {
		if (db_pg_ready_flush(c, cause) != DB_OK)
			return DB_ERROR;
		if (db_pg_reprepare(c, s, cause) != DB_OK) {
			if (attempt == 0 && !c->in_tx && PQstatus(c->pg) == CONNECTION_BAD) {
				free(*cause);
				*cause = NULL;
				continue;
			}
			return DB_ERROR;
		}
		s->res = PQexecPrepared(c->pg, s->name, s->nparams, s->values, NULL, NULL, 0);
		if ((rc = db_pg_result(c, s->res, "execute", cause)) == DB_OK)
			return DB_OK;
		PQclear(s->res);
		s->res = NULL;
		if (rc != DB_ERROR || attempt > 0 || c->in_tx || PQstatus(c->pg) != CONNECTION_BAD)
			return rc;
		free(*cause);
		*cause = NULL;
	}
}

static int
db_pg_step(struct db_bconn *c, struct db_bstmt *stmt, char **cause)
{
	struct db_pg_stmt *s = db_pg_st(stmt);
	int rc;

	if (s->res == NULL) {
		if ((rc = db_pg_run(c, s, cause)) != DB_OK)
			return rc;
		s->rows = PQresultStatus(s->res) == PGRES_TUPLES_OK ? PQntuples(s->res) : 0;
		s->row = -1;
	}
	if (s->row < s->rows)
		s->row++;
	return s->row < s->rows ? DB_ROW : DB_DONE;
}

static void
db_pg_reset(struct db_bstmt *stmt)
{
	struct db_pg_stmt *s = db_pg_st(stmt);

	PQclear(s->res);
	s->res = NULL;
	s->row = s->rows = 0;
	if (s->nparams > 0)
		memset(s->values, 0, (size_t)s->nparams * sizeof *s->values);
}

/*
 * Drops the server's copy too when no transaction is open (a failed
 * DEALLOCATE inside one would abort it); otherwise the session's end does.
 */
static void
db_pg_finalize(struct db_bstmt *stmt)
{
	struct db_pg_stmt *s;
	char *sql;

	if (stmt == NULL)
		return;
	s = db_pg_st(stmt);
	PQclear(s->res);
	if (s->generation == s->c->generation && PQtransactionStatus(s->c->pg) == PQTRANS_IDLE) {
		sql = xasprintf("DEALLOCATE %s", s->name);
		PQclear(PQexec(s->c->pg, sql));
		free(sql);
	}
	free(s->name);
	free(s->text);
	free(s->values);
	free(s->ints);
	free(s);
}

/* The current row's value, or NULL for SQL NULL or no such row or column. */
static const char *
db_pg_value(struct db_bstmt *stmt, int col)
{
	struct db_pg_stmt *s = db_pg_st(stmt);

	if (s->res == NULL || s->row < 0 || s->row >= s->rows || col < 0 ||
	    col >= PQnfields(s->res) || PQgetisnull(s->res, s->row, col))
		return NULL;
	return PQgetvalue(s->res, s->row, col);
}

/* DIALECT: a boolean column reads as 1 or 0, as SQLite's truth values do. */
static int64_t
db_pg_col_int64(struct db_bstmt *st, int col)
{
	const char *v = db_pg_value(st, col);

	if (v == NULL)
		return 0;
	if (strcmp(v, "t") == 0)
		return 1;
	return strtoll(v, NULL, 10);
}

static int
db_pg_col_int(struct db_bstmt *st, int col)
{
	return (int)db_pg_col_int64(st, col);
}

static const char *
db_pg_col_text(struct db_bstmt *st, int col)
{
	return db_pg_value(st, col);
}

static size_t
db_pg_col_bytes(struct db_bstmt *stmt, int col)
{
	struct db_pg_stmt *s = db_pg_st(stmt);

	if (db_pg_value(stmt, col) == NULL)
		return 0;
	return (size_t)PQgetlength(s->res, s->row, col);
}

static int
db_pg_col_is_null(struct db_bstmt *st, int col)
{
	return db_pg_value(st, col) == NULL;
}

static int64_t
db_pg_changes(struct db_bconn *c)
{
	return c->changes;
}

/*
 * lastval(): the value the latest nextval() of this session gave, which
 * is the new row's id after an INSERT into a table whose id is a serial
 * or identity column (db.c calls this only after such INSERTs). Before any
 * nextval() it fails, and inside a transaction that failure aborts the
 * transaction: 0 then, with a warning.
 */
static int64_t
db_pg_last_insert_id(struct db_bconn *c)
{
	enum db_failure failure = c->failure;
	PGresult *res = PQexec(c->pg, "SELECT lastval()");
	int64_t id = 0;
	char *cause = NULL;

	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    !PQgetisnull(res, 0, 0))
		id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	else {
		db_pg_fail(c, res, "lastval()", &cause);
		c->failure = failure; /* not a failure of prepare, bind, step or tx */
		log_warn("%s", cause);
		free(cause);
	}
	PQclear(res);
	return id;
}

/*
 * PQexec runs text of several statements as one transaction unless the
 * text has its own BEGIN and COMMIT.
 */
static int
db_pg_exec_script(struct db_bconn *c, const char *sql, const char *what, char **cause)
{
	enum db_failure failure = c->failure;
	PGresult *res;
	ExecStatusType status;

	if (db_pg_ready_flush(c, cause) != DB_OK) {
		c->failure = failure;
		return DB_ERROR;
	}
	res = PQexec(c->pg, sql);
	status = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		db_pg_fail(c, res, what, cause);
		c->failure = failure; /* exec_script leaves failure() alone */
		PQclear(res);
		return DB_ERROR;
	}
	PQclear(res);
	return DB_OK;
}

static int
db_pg_tx(struct db_bconn *c, enum db_tx_verb verb, char **cause)
{
	PGresult *res;
	int rc;

	/*
	 * Savepoints wait for the next statement (db_pg_ready_flush): one
	 * that nothing ran under needs neither a RELEASE nor a ROLLBACK TO,
	 * and COMMIT releases every savepoint itself.
	 */
	switch (c->in_tx || verb == DB_TX_BEGIN ? verb : DB_TX_VERBS) { /* outside: as they come */
	case DB_TX_SAVEPOINT:
		if (c->pending & DB_PG_PEND_SAVEPOINT &&
		    db_pg_ready_flush(c, cause) != DB_OK) /* not db.c's way: kept exact */
			return DB_ERROR;
		c->pending |= DB_PG_PEND_SAVEPOINT;
		return DB_OK;
	case DB_TX_RELEASE:
		if (c->pending & DB_PG_PEND_SAVEPOINT)
			c->pending &= ~DB_PG_PEND_SAVEPOINT;
		else
			c->pending |= DB_PG_PEND_RELEASE;
		return DB_OK;
	case DB_TX_ROLLBACK_TO:
		if (c->pending & DB_PG_PEND_SAVEPOINT) {
			/* Nothing ran since the savepoint; it stays (RELEASE follows). */
			return DB_OK;
		}
		if (db_pg_ready_flush(c, cause) != DB_OK)
			return DB_ERROR;
		break;
	case DB_TX_COMMIT:
	case DB_TX_ROLLBACK:
		c->pending = 0;
		break;
	case DB_TX_BEGIN:
		c->pending = 0;
		c->in_tx = 0;
		if (db_pg_ready(c, cause) != DB_OK)
			return DB_ERROR;
		break;
	default:
		break;
	}
	res = PQexec(c->pg, db_pg_tx_sql[verb]);
	rc = db_pg_result(c, res, db_pg_tx_sql[verb], cause);
	/* A BEGIN that found the session lost did nothing: once more on a new one. */
	if (verb == DB_TX_BEGIN && rc == DB_ERROR && PQstatus(c->pg) == CONNECTION_BAD) {
		PQclear(res);
		res = NULL;
		free(*cause);
		*cause = NULL;
		if (db_pg_ready(c, cause) != DB_OK)
			return DB_ERROR;
		res = PQexec(c->pg, db_pg_tx_sql[verb]);
		rc = db_pg_result(c, res, db_pg_tx_sql[verb], cause);
	}
	if (verb == DB_TX_BEGIN && rc == DB_OK)
		c->in_tx = 1;
	else if (verb == DB_TX_BEGIN) {
		/* BEGIN went through and the lock did not (busy): end what began. */
		if (PQtransactionStatus(c->pg) != PQTRANS_IDLE && PQstatus(c->pg) == CONNECTION_OK)
			PQclear(PQexec(c->pg, "ROLLBACK"));
	} else if (verb == DB_TX_COMMIT || verb == DB_TX_ROLLBACK)
		c->in_tx = 0;

	/*
	 * COMMIT of a transaction a failed statement aborted succeeds as a
	 * ROLLBACK: that is no commit.
	 */
	if (rc == DB_OK && verb == DB_TX_COMMIT && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
		c->failure = DB_FAILURE_PERMANENT;
		*cause = xasprintf("database %s: COMMIT: a statement had failed, the transaction "
				   "was rolled back",
		    c->where);
		rc = DB_ERROR;
	}
	PQclear(res);
	return rc;
}

/*
 * A transaction a statement failed in is still open (PQTRANS_INERROR):
 * it takes a ROLLBACK, or a ROLLBACK TO its savepoint, to go on. A lost
 * connection has none left.
 */
static int
db_pg_tx_ended(struct db_bconn *c)
{
	PGTransactionStatusType t = PQtransactionStatus(c->pg);

	if (t == PQTRANS_IDLE || t == PQTRANS_UNKNOWN) {
		c->in_tx = 0;
		c->pending = 0;
		return 1;
	}
	return 0;
}

/*
 * Runs a one-row, one-column query without parameters (outside the
 * statement cache: these run once or rarely); *out is its text (heap, or
 * NULL for SQL NULL).
 */
static int
db_pg_query_value(struct db_bconn *c, const char *sql, char **out, char **cause)
{
	PGresult *res;

	*out = NULL;
	if (db_pg_ready_flush(c, cause) != DB_OK)
		return DB_ERROR;
	res = PQexec(c->pg, sql);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
	    PQnfields(res) != 1) {
		if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK)
			*cause = xasprintf("database %s: %s: not one value", c->where, sql);
		else
			db_pg_fail(c, res, sql, cause);
		PQclear(res);
		return DB_ERROR;
	}
	if (!PQgetisnull(res, 0, 0))
		*out = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return DB_OK;
}

/*
 * The version lives in chatd_schema, which migration step 1 makes. Whether
 * the table is there is read from pg_class with the statement's snapshot:
 * to_regclass() looks in the session's catalog cache, which does not see
 * a table another session made while this one waited for the write lock
 * (only taking a lock on a table refreshes it, and BEGIN takes none), so
 * two programs starting at once both ran step 1.
 */
static int
db_pg_version_get(struct db_bconn *c, int64_t *v, char **cause)
{
	char *val;

	/*
	 * A scan of pg_class, not to_regclass(): that one reads the session's
	 * catalog cache, which may still say "no such table" after another
	 * process's migration committed while we waited for the write lock
	 * (db.c reads the version again under it), and the migration then
	 * fails on CREATE TABLE. The scan sees what the statement's snapshot
	 * sees.
	 */
	if (db_pg_query_value(c,
		"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
		" ON n.oid = c.relnamespace WHERE c.relname = 'chatd_schema'"
		" AND n.nspname = current_schema())",
		&val, cause) != DB_OK)
		return DB_ERROR;
	if (val == NULL || strcmp(val, "t") != 0) {
		free(val);
		*v = 0;
		return DB_OK;
	}
	free(val);
	if (db_pg_query_value(c, "SELECT max(version) FROM chatd_schema", &val, cause) != DB_OK)
		return DB_ERROR;
	*v = val != NULL ? strtoll(val, NULL, 10) : 0;
	free(val);
	return DB_OK;
}

/* v is db.c's own integer, not outside input. */
static int
db_pg_version_set(struct db_bconn *c, int v, char **cause)
{
	char *sql = xasprintf("UPDATE chatd_schema SET version = %d", v);
	int rc = db_pg_command(c, sql, cause);

	free(sql);
	return rc;
}

/*
 * A session-level advisory lock: the server drops it when the session
 * ends, however the process ended. name is bound, never pasted.
 */
static int
db_pg_lock_try(struct db_bconn *c, const char *name, char **cause)
{
	const char *values[1] = { name };
	struct db_pg_lock *l;
	PGresult *res;
	int got;

	/*
	 * A lock held here is only held while the session lives: a round trip
	 * finds out, and a lost session is replaced (forgetting its locks).
	 */
	if (!c->in_tx && PQstatus(c->pg) == CONNECTION_OK)
		PQclear(PQexec(c->pg, "SELECT 1"));
	if (db_pg_ready(c, cause) != DB_OK)
		return DB_ERROR;
	for (l = c->locks; l != NULL; l = l->next)
		if (strcmp(l->name, name) == 0)
			return DB_OK;
	res =
	    PQexecParams(c->pg, "SELECT pg_try_advisory_lock(" DB_PG_NAMED_LOCKS ", hashtext($1))",
		1, NULL, values, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		db_pg_fail(c, res, "pg_try_advisory_lock", cause);
		PQclear(res);
		return DB_ERROR;
	}
	got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!got)
		return DB_CONFLICT;
	l = xcalloc(1, sizeof *l);
	l->name = xstrdup(name);
	l->next = c->locks;
	c->locks = l;
	return DB_OK;
}

static void
db_pg_unlock(struct db_bconn *c, const char *name)
{
	const char *values[1] = { name };
	struct db_pg_lock **p, *l;
	PGresult *res;

	for (p = &c->locks; (l = *p) != NULL; p = &l->next)
		if (strcmp(l->name, name) == 0)
			break;
	if (l == NULL)
		return;
	*p = l->next;
	free(l->name);
	free(l);
	if (PQstatus(c->pg) != CONNECTION_OK)
		return; /* gone with the session */
	res = PQexecParams(c->pg, "SELECT pg_advisory_unlock(" DB_PG_NAMED_LOCKS ", hashtext($1))",
	    1, NULL, values, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		log_warn("database %s: pg_advisory_unlock(%s): %s", c->where, name,
		    PQerrorMessage(c->pg));
	PQclear(res);
}

static enum db_failure
db_pg_failure(struct db_bconn *c)
{
	return c->failure;
}

/* No WAL hook and no checkpoint: the server checkpoints by itself. */
const struct db_backend_ops db_pg_ops = {
	.name = "postgresql",
	.dialect = DB_DIALECT_PG,
	.costly_savepoints = 1,
	.open = db_pg_open,
	.close = db_pg_close,
	.prepare = db_pg_prepare,
	.bind = db_pg_bind,
	.step = db_pg_step,
	.reset = db_pg_reset,
	.finalize = db_pg_finalize,
	.col_int64 = db_pg_col_int64,
	.col_int = db_pg_col_int,
	.col_text = db_pg_col_text,
	.col_bytes = db_pg_col_bytes,
	.col_is_null = db_pg_col_is_null,
	.changes = db_pg_changes,
	.last_insert_id = db_pg_last_insert_id,
	.exec_script = db_pg_exec_script,
	.tx = db_pg_tx,
	.tx_ended = db_pg_tx_ended,
	.failure = db_pg_failure,
	.version_get = db_pg_version_get,
	.version_set = db_pg_version_set,
	.lock_try = db_pg_lock_try,
	.unlock = db_pg_unlock,
	.wal_hook = NULL,
	.checkpoint = NULL,
};
