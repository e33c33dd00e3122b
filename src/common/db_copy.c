/*
 * chatctl copy-db's engine (db_copy.h): a SQLite database copied table by
 * table into an empty PostgreSQL one, and two databases compared. The
 * SQL is copy-specific and lives here, one descriptor per table; it runs
 * on the two connections through the backends' ops (db_backend.h), with
 * every value bound. db.c's operations are not used: they know one row
 * at a time and would give new ids, where a copy keeps the old ones.
 *
 * The source is read in key order, one page at a time after the last
 * key seen (never OFFSET, which rereads everything before it), and each
 * page goes to the target as one multi-row INSERT.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "db_backend.h"
#include "db_copy.h"
#include "xmalloc.h"

/*
 * Rows per page, and the bound on an INSERT's parameters (rows times
 * columns): the PostgreSQL backend numbers at most 999.
 */
#define COPY_PAGE_ROWS 100
#define COPY_PARAMS_MAX 900

/* How a table's pages follow each other. */
enum copy_key {
	COPY_KEY_INT, /* column 0, an integer: next binds (?1 key, ?2 rows) */
	COPY_KEY_TEXT, /* column 0, text: first binds (?1 rows), next (?1 key, ?2 rows) */
	COPY_KEY_TEXT2, /* columns 0 and 1, text: next binds (?1, ?2 rows, ?3) */
};

/*
 * One table. The source's SELECT lists the columns in the order of
 * columns (the target's names; rooms' and room_admins' rowid lands in
 * ord) with types, one letter each: i an integer, t text.
 */
struct copy_table {
	const char *name;
	const char *columns;
	const char *types;
	enum copy_key key;
	const char *first; /* the first page (text keys); NULL: next from the lowest key */
	const char *next; /* the page after a key */
	int autoincrement; /* SQLite's sqlite_sequence may hold a higher id than any row */
	const char *setval; /* the target's identity sequence set past ?1; NULL: none */
	const char *any; /* a row if the table has one */
	const char *count; /* count(*) and the highest id (0 without one); both engines */
	int has_id;
};

/* Text for both engines where a descriptor needs no dialect. */
#define COPY_ANY(t) "SELECT 1 FROM " t " LIMIT 1"
#define COPY_COUNT_ID(t) "SELECT count(*), coalesce(max(id), 0) FROM " t
#define COPY_COUNT(t) "SELECT count(*), 0 FROM " t
/* ?2 0: the sequence starts at 1 (the table is empty); else it goes on after ?1. */
#define COPY_SETVAL(t, c) \
	"SELECT setval(pg_get_serial_sequence('" t "', '" c "'), ?1," \
	" CAST(?2 AS INTEGER) <> 0)"
/* SQLite: an integer key's page. */
#define COPY_NEXT_INT(cols, t, k) \
	"SELECT " cols " FROM " t " WHERE " k " > ?1 ORDER BY " k " LIMIT ?2"

#define COPY_ROOM_COLS \
	"id, name, created_at, closed_at, close_reason, peak_users, last_seq, last_session_seq"
#define COPY_BAN_COLS "id, room_id, user_id, reason, created_at, expires_at, lifted_at"
#define COPY_MESSAGE_COLS \
	"id, room_id, seq, kind, user_id, nickname, is_admin, content, event_type, created_at"
#define COPY_SESSION_COLS \
	"id, room_id, seq, user_id, nickname, is_admin, address, joined_at, left_at," \
	" leave_reason, node_id"
#define COPY_OUTBOX_COLS \
	"id, kind, room_id, user_id, nickname, reason, session_id, data, created_at"
#define COPY_SYNC_COLS "id, reason, room_id, created_at, handled_at"
#define COPY_CURSOR_COLS \
	"target, last_id, delivery_id, batch_last_id, attempts, failing_since, last_error," \
	" last_success_at, lock_owner, lock_until"
#define COPY_DEAD_COLS \
	"id, target, delivery_id, after_id, last_id, row_count, body, attempts, last_status," \
	" last_error, first_attempt_at, last_attempt_at, created_at, replay_requested_at"
#define COPY_NODE_COLS "id, incarnation, started_at, seen_at, stopped_at, connections, reaped_at"

/*
 * Every table of the schema (DB_SCHEMA_VERSION 3), parents before the
 * rows that name them (outbox names sessions). PostgreSQL's own
 * chatd_schema is made by db_open(), not copied.
 */
static const struct copy_table copy_tables[DB_COPY_TABLES] = {
	{ "rooms", "ord, " COPY_ROOM_COLS, "ittiitiii", COPY_KEY_INT, NULL,
	    COPY_NEXT_INT("rowid, " COPY_ROOM_COLS, "rooms", "rowid"), 0,
	    COPY_SETVAL("rooms", "ord"), COPY_ANY("rooms"), COPY_COUNT("rooms"), 0 },
	{ "room_admins", "ord, room_id, user_id", "itt", COPY_KEY_INT, NULL,
	    COPY_NEXT_INT("rowid, room_id, user_id", "room_admins", "rowid"), 0,
	    COPY_SETVAL("room_admins", "ord"), COPY_ANY("room_admins"), COPY_COUNT("room_admins"),
	    0 },
	{ "bans", COPY_BAN_COLS, "itttiii", COPY_KEY_INT, NULL,
	    COPY_NEXT_INT(COPY_BAN_COLS, "bans", "id"), 0, COPY_SETVAL("bans", "id"),
	    COPY_ANY("bans"), COPY_COUNT_ID("bans"), 1 },
	{ "messages", COPY_MESSAGE_COLS, "itiittitti", COPY_KEY_INT, NULL,
	    COPY_NEXT_INT(COPY_MESSAGE_COLS, "messages", "id"), 1, COPY_SETVAL("messages", "id"),
	    COPY_ANY("messages"), COPY_COUNT_ID("messages"), 1 },
	{ "sessions", COPY_SESSION_COLS, "itittitiitt", COPY_KEY_INT, NULL,
	    COPY_NEXT_INT(COPY_SESSION_COLS, "sessions", "id"), 1, COPY_SETVAL("sessions", "id"),
	    COPY_ANY("sessions"), COPY_COUNT_ID("sessions"), 1 },
	{ "outbox", COPY_OUTBOX_COLS, "itttttiti", COPY_KEY_INT, NULL,
	    COPY_NEXT_INT(COPY_OUTBOX_COLS, "outbox", "id"), 1, COPY_SETVAL("outbox", "id"),
	    COPY_ANY("outbox"), COPY_COUNT_ID("outbox"), 1 },
	{ "sync_requests", COPY_SYNC_COLS, "ittii", COPY_KEY_INT, NULL,
	    COPY_NEXT_INT(COPY_SYNC_COLS, "sync_requests", "id"), 1,
	    COPY_SETVAL("sync_requests", "id"), COPY_ANY("sync_requests"),
	    COPY_COUNT_ID("sync_requests"), 1 },
	{ "cursors", COPY_CURSOR_COLS, "titiiititi", COPY_KEY_TEXT,
	    "SELECT " COPY_CURSOR_COLS " FROM cursors ORDER BY target LIMIT ?1",
	    "SELECT " COPY_CURSOR_COLS " FROM cursors WHERE target > ?1 ORDER BY target LIMIT ?2",
	    0, NULL, COPY_ANY("cursors"), COPY_COUNT("cursors"), 0 },
	{ "dead_letters", COPY_DEAD_COLS, "ittiiitiitiiii", COPY_KEY_INT, NULL,
	    COPY_NEXT_INT(COPY_DEAD_COLS, "dead_letters", "id"), 1,
	    COPY_SETVAL("dead_letters", "id"), COPY_ANY("dead_letters"),
	    COPY_COUNT_ID("dead_letters"), 1 },
	{ "nodes", COPY_NODE_COLS, "ttiiiii", COPY_KEY_TEXT,
	    "SELECT " COPY_NODE_COLS " FROM nodes ORDER BY id LIMIT ?1",
	    "SELECT " COPY_NODE_COLS " FROM nodes WHERE id > ?1 ORDER BY id LIMIT ?2", 0, NULL,
	    COPY_ANY("nodes"), COPY_COUNT("nodes"), 0 },
	/* A row value comparison keeps to the primary key's order and index. */
	{ "rate_marks", "room_id, user_id, at", "tti", COPY_KEY_TEXT2,
	    "SELECT room_id, user_id, at FROM rate_marks ORDER BY room_id, user_id LIMIT ?1",
	    "SELECT room_id, user_id, at FROM rate_marks WHERE (room_id, user_id) > (?1, ?3)"
	    " ORDER BY room_id, user_id LIMIT ?2",
	    0, NULL, COPY_ANY("rate_marks"), COPY_COUNT("rate_marks"), 0 },
};

/* A migration that adds a table or a column must add it here too. */
_Static_assert(DB_SCHEMA_VERSION == 3,
    "a new schema version: bring copy_tables (tables, columns, types) up to it");

/* The highest id SQLite has given in an AUTOINCREMENT table. */
#define COPY_SQLITE_SEQUENCE "SELECT seq FROM sqlite_sequence WHERE name = ?1"

/* A room's figures, both engines: rows 0..5 as struct copy_room. */
#define COPY_ROOM_FIGURES \
	"SELECT last_seq, last_session_seq," \
	" (SELECT count(*) FROM messages WHERE room_id = ?1)," \
	" (SELECT coalesce(max(seq), 0) FROM messages WHERE room_id = ?1)," \
	" (SELECT count(*) FROM sessions WHERE room_id = ?1)," \
	" (SELECT coalesce(max(seq), 0) FROM sessions WHERE room_id = ?1)" \
	" FROM rooms WHERE id = ?1"
#define COPY_ROOM_FIGURES_N 6
static const char *const copy_room_figure_names[COPY_ROOM_FIGURES_N] = {
	"last_seq",
	"last_session_seq",
	"messages",
	"last message seq",
	"sessions",
	"last session seq",
};
/* The rooms a comparison walks, in id order (either engine's own order). */
#define COPY_ROOMS_FIRST "SELECT id FROM rooms ORDER BY id LIMIT ?1"
#define COPY_ROOMS_NEXT "SELECT id FROM rooms WHERE id > ?1 ORDER BY id LIMIT ?2"

/* One side of a copy: a struct db's backend and connection. */
struct copy_side {
	const struct db_backend_ops *ops;
	struct db_bconn *c;
};

static struct copy_side
copy_side_of(struct db *db)
{
	struct copy_side s = { db_backend_ops_of(db), db_backend_conn_of(db) };

	return s;
}

/* Prefixes what failed with where: "copying messages: ...". */
static void
copy_cause_prefix(char **cause, const char *what, const char *table)
{
	char *old = *cause;

	*cause = xasprintf("%s %s: %s", what, table, old != NULL ? old : "failed");
	free(old);
}

/*
 * Runs sql with args and reads its first row's integer columns into
 * out[0..nout); DB_NOTFOUND (out untouched) when it has no row.
 */
static int
copy_query_ints(struct copy_side *s, const char *sql, const struct db_arg *args, size_t nargs,
    int64_t *out, int nout, char **cause)
{
	struct db_bstmt *st = NULL;
	int rc, i;

	if ((rc = s->ops->prepare(s->c, sql, &st, cause)) != DB_OK)
		return DB_ERROR;
	if (nargs > 0 && (rc = s->ops->bind(s->c, st, args, nargs, cause)) != DB_OK) {
		s->ops->finalize(st);
		return DB_ERROR;
	}
	rc = s->ops->step(s->c, st, cause);
	if (rc == DB_ROW) {
		for (i = 0; i < nout; i++)
			out[i] = s->ops->col_int64(st, i);
		rc = DB_OK;
	} else if (rc == DB_DONE)
		rc = DB_NOTFOUND;
	else if (rc != DB_ERROR) {
		*cause = xasprintf("unexpected result %d", rc);
		rc = DB_ERROR;
	}
	s->ops->reset(st);
	s->ops->finalize(st);
	return rc;
}

/* ---- the report ---- */

void
db_copy_report_clear(struct db_copy_report *rep)
{
	size_t i;

	for (i = 0; i < rep->n_mismatches; i++)
		free(rep->mismatches[i].room_id);
	free(rep->mismatches);
	memset(rep, 0, sizeof *rep);
}

static void
copy_mismatch(struct db_copy_report *rep, const char *table, const char *room_id, const char *what,
    int64_t source, int64_t target)
{
	struct db_copy_mismatch *m;

	rep->mismatches_total++;
	if (rep->n_mismatches >= DB_COPY_MISMATCHES_KEPT)
		return;
	if (rep->mismatches == NULL)
		rep->mismatches = xcalloc(DB_COPY_MISMATCHES_KEPT, sizeof *rep->mismatches);
	m = &rep->mismatches[rep->n_mismatches++];
	m->table = table;
	m->room_id = room_id != NULL ? xstrdup(room_id) : NULL;
	m->what = what;
	m->source = source;
	m->target = target;
}

/* ---- comparing ---- */

static int
copy_compare_tables(
    struct copy_side *a, struct copy_side *b, struct db_copy_report *rep, char **cause)
{
	const struct copy_table *t;
	struct db_copy_count *n;
	int64_t va[2], vb[2];
	size_t i;

	rep->n_tables = 0;
	for (i = 0; i < DB_COPY_TABLES; i++) {
		t = &copy_tables[i];
		if (copy_query_ints(a, t->count, NULL, 0, va, 2, cause) != DB_OK ||
		    copy_query_ints(b, t->count, NULL, 0, vb, 2, cause) != DB_OK) {
			copy_cause_prefix(cause, "counting", t->name);
			return DB_ERROR;
		}
		n = &rep->tables[rep->n_tables++];
		n->table = t->name;
		n->has_id = t->has_id;
		n->source_rows = va[0];
		n->target_rows = vb[0];
		n->source_max_id = va[1];
		n->target_max_id = vb[1];
		if (va[0] != vb[0])
			copy_mismatch(rep, t->name, NULL, "rows", va[0], vb[0]);
		if (t->has_id && va[1] != vb[1])
			copy_mismatch(rep, t->name, NULL, "max id", va[1], vb[1]);
	}
	return DB_OK;
}

/* One room's figures on both sides; a room target lacks is one mismatch. */
static int
copy_compare_room(struct copy_side *a, struct copy_side *b, struct db_bstmt *fa,
    struct db_bstmt *fb, const char *room_id, struct db_copy_report *rep, char **cause)
{
	const struct db_arg arg = { DB_ARG_TEXT, 0, room_id };
	struct copy_side *side[2] = { a, b };
	struct db_bstmt *st[2] = { fa, fb };
	int64_t v[2][COPY_ROOM_FIGURES_N];
	int found[2], rc, k, i;

	for (k = 0; k < 2; k++) {
		found[k] = 0;
		if (side[k]->ops->bind(side[k]->c, st[k], &arg, 1, cause) != DB_OK) {
			side[k]->ops->reset(st[k]);
			return DB_ERROR;
		}
		rc = side[k]->ops->step(side[k]->c, st[k], cause);
		if (rc == DB_ROW) {
			found[k] = 1;
			for (i = 0; i < COPY_ROOM_FIGURES_N; i++)
				v[k][i] = side[k]->ops->col_int64(st[k], i);
		}
		side[k]->ops->reset(st[k]);
		if (rc != DB_ROW && rc != DB_DONE) {
			if (rc != DB_ERROR)
				*cause = xasprintf("unexpected result %d", rc);
			return DB_ERROR;
		}
	}
	rep->rooms_checked++;
	if (!found[0]) /* gone from the source meanwhile: nothing to compare */
		return DB_OK;
	if (!found[1]) {
		copy_mismatch(rep, "rooms", room_id, "room missing", 1, 0);
		return DB_OK;
	}
	for (i = 0; i < COPY_ROOM_FIGURES_N; i++) {
		if (v[0][i] != v[1][i])
			copy_mismatch(
			    rep, "rooms", room_id, copy_room_figure_names[i], v[0][i], v[1][i]);
	}
	return DB_OK;
}

/* Walks a's rooms in pages of ids, comparing each with b's. */
static int
copy_compare_rooms(
    struct copy_side *a, struct copy_side *b, struct db_copy_report *rep, char **cause)
{
	struct db_bstmt *first = NULL, *next = NULL, *fa = NULL, *fb = NULL, *st;
	char *ids[COPY_PAGE_ROWS], *last = NULL;
	size_t n = 0, i;
	int rc = DB_ERROR, step;

	if (a->ops->prepare(a->c, COPY_ROOMS_FIRST, &first, cause) != DB_OK ||
	    a->ops->prepare(a->c, COPY_ROOMS_NEXT, &next, cause) != DB_OK ||
	    a->ops->prepare(a->c, COPY_ROOM_FIGURES, &fa, cause) != DB_OK ||
	    b->ops->prepare(b->c, COPY_ROOM_FIGURES, &fb, cause) != DB_OK)
		goto out;
	for (;;) {
		const struct db_arg args[2] = {
			{ DB_ARG_TEXT, 0, last },
			{ DB_ARG_INT, COPY_PAGE_ROWS, NULL },
		};

		st = last == NULL ? first : next;
		if (a->ops->bind(a->c, st, last == NULL ? &args[1] : args, last == NULL ? 1 : 2,
			cause) != DB_OK) {
			a->ops->reset(st);
			goto out;
		}
		n = 0;
		while ((step = a->ops->step(a->c, st, cause)) == DB_ROW) {
			const char *id = a->ops->col_text(st, 0);

			if (n < COPY_PAGE_ROWS)
				ids[n++] = xstrdup(id != NULL ? id : "");
		}
		a->ops->reset(st);
		if (step != DB_DONE) {
			if (step != DB_ERROR)
				*cause = xasprintf("unexpected result %d", step);
			goto out;
		}
		for (i = 0; i < n; i++) {
			if (copy_compare_room(a, b, fa, fb, ids[i], rep, cause) != DB_OK)
				goto out;
		}
		if (n < COPY_PAGE_ROWS)
			break;
		free(last);
		last = ids[n - 1];
		ids[n - 1] = NULL;
		for (i = 0; i + 1 < n; i++)
			free(ids[i]);
		n = 0;
	}
	rc = DB_OK;
out:
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(last);
	a->ops->finalize(first);
	a->ops->finalize(next);
	a->ops->finalize(fa);
	b->ops->finalize(fb);
	if (rc != DB_OK)
		copy_cause_prefix(cause, "comparing", "rooms");
	return rc;
}

static int
copy_compare(struct copy_side *a, struct copy_side *b, struct db_copy_report *rep, char **cause)
{
	if (copy_compare_tables(a, b, rep, cause) != DB_OK)
		return DB_ERROR;
	return copy_compare_rooms(a, b, rep, cause);
}

int
db_copy_verify(struct db *source, struct db *target, struct db_copy_report *rep, char **cause)
{
	struct copy_side a = copy_side_of(source), b = copy_side_of(target);
	int rc;

	memset(rep, 0, sizeof *rep);
	if (db_tx_begin(source, cause) != DB_OK)
		return DB_ERROR;
	if (db_tx_begin(target, cause) != DB_OK) {
		db_tx_rollback(source);
		return DB_ERROR;
	}
	rc = copy_compare(&a, &b, rep, cause);
	db_tx_rollback(target);
	db_tx_rollback(source);
	return rc;
}

/* ---- copying ---- */

/* One page of a table's rows, read from the source and bound whole. */
struct copy_page {
	size_t ncols, max_rows, rows;
	struct db_arg *args; /* max_rows * ncols */
	char **texts; /* owns args[i].s */
};

static void
copy_page_init(struct copy_page *p, const struct copy_table *t)
{
	p->ncols = strlen(t->types);
	p->max_rows = COPY_PARAMS_MAX / p->ncols;
	if (p->max_rows > COPY_PAGE_ROWS)
		p->max_rows = COPY_PAGE_ROWS;
	p->rows = 0;
	p->args = xcalloc(p->max_rows * p->ncols, sizeof *p->args);
	p->texts = xcalloc(p->max_rows * p->ncols, sizeof *p->texts);
}

static void
copy_page_empty(struct copy_page *p)
{
	size_t i;

	for (i = 0; i < p->rows * p->ncols; i++) {
		free(p->texts[i]);
		p->texts[i] = NULL;
	}
	p->rows = 0;
}

static void
copy_page_clear(struct copy_page *p)
{
	copy_page_empty(p);
	free(p->args);
	free(p->texts);
}

/* Takes the source row under st into the page, by the table's types. */
static void
copy_page_add(
    struct copy_page *p, const struct copy_table *t, struct copy_side *s, struct db_bstmt *st)
{
	size_t base = p->rows * p->ncols, i;
	struct db_arg *a;

	for (i = 0; i < p->ncols; i++) {
		a = &p->args[base + i];
		memset(a, 0, sizeof *a);
		if (s->ops->col_is_null(st, (int)i))
			a->type = DB_ARG_NULL;
		else if (t->types[i] == 'i') {
			a->type = DB_ARG_INT;
			a->i = s->ops->col_int64(st, (int)i);
		} else {
			a->type = DB_ARG_TEXT;
			p->texts[base + i] = xstrdup(s->ops->col_text(st, (int)i));
			a->s = p->texts[base + i];
		}
	}
	p->rows++;
}

/* "INSERT INTO t (cols) VALUES (?1, ?2), (?3, ?4)": rows rows of the table's columns. */
static char *
copy_insert_sql(const struct copy_table *t, size_t ncols, size_t rows)
{
	/* "?NNN, " per value, "(", ")" and ", " per row. */
	size_t len = strlen(t->name) + strlen(t->columns) + 40 + rows * (ncols * 6 + 4);
	char *sql = xmalloc(len);
	size_t off, r, c, n = 1;

	off = (size_t)snprintf(sql, len, "INSERT INTO %s (%s) VALUES ", t->name, t->columns);
	for (r = 0; r < rows; r++) {
		off += (size_t)snprintf(sql + off, len - off, "%s(", r > 0 ? ", " : "");
		for (c = 0; c < ncols; c++)
			off += (size_t)snprintf(
			    sql + off, len - off, "%s?%zu", c > 0 ? ", " : "", n++);
		off += (size_t)snprintf(sql + off, len - off, ")");
	}
	return sql;
}

/* Writes the page to the target as one INSERT. */
static int
copy_page_write(struct copy_side *d, const struct copy_table *t, struct copy_page *p,
    struct db_bstmt **full, char **cause)
{
	struct db_bstmt *st = NULL, *tail = NULL;
	char *sql;
	int rc;

	/* A full page reuses its statement; only a table's last page is shorter. */
	if (p->rows == p->max_rows && *full != NULL)
		st = *full;
	else {
		sql = copy_insert_sql(t, p->ncols, p->rows);
		rc = d->ops->prepare(d->c, sql, &st, cause);
		free(sql);
		if (rc != DB_OK)
			return DB_ERROR;
		if (p->rows == p->max_rows)
			*full = st;
		else
			tail = st;
	}
	rc = d->ops->bind(d->c, st, p->args, p->rows * p->ncols, cause);
	if (rc == DB_OK)
		rc = d->ops->step(d->c, st, cause);
	d->ops->reset(st);
	d->ops->finalize(tail);
	switch (rc) {
	case DB_DONE:
		return DB_OK;
	case DB_CONFLICT:
		*cause = xstrdup("a row's key is in the target already");
		return DB_ERROR;
	case DB_NOTFOUND:
		*cause = xstrdup("a row names a row the target does not have (foreign key)");
		return DB_ERROR;
	case DB_ERROR:
		return DB_ERROR;
	default:
		*cause = xasprintf("unexpected result %d", rc);
		return DB_ERROR;
	}
}

/* Where the next page starts: after the last row written. */
struct copy_cursor {
	int started; /* a page was written */
	int64_t last_int; /* COPY_KEY_INT */
	char *last_text[2]; /* COPY_KEY_TEXT (0), COPY_KEY_TEXT2 (0 and 1) */
};

/* Keeps the page's last key: bound to the next SELECT, it must outlive the page. */
static void
copy_cursor_take(struct copy_cursor *k, const struct copy_table *t, const struct copy_page *p)
{
	const struct db_arg *last = p->args + (p->rows - 1) * p->ncols;
	int i;

	k->started = 1;
	if (t->key == COPY_KEY_INT) {
		k->last_int = last[0].i;
		return;
	}
	for (i = 0; i < (t->key == COPY_KEY_TEXT2 ? 2 : 1); i++) {
		free(k->last_text[i]);
		k->last_text[i] = xstrdup(last[i].s != NULL ? last[i].s : "");
	}
}

static void
copy_cursor_clear(struct copy_cursor *k)
{
	free(k->last_text[0]);
	free(k->last_text[1]);
}

/* Binds the page after the cursor (or the first page) into *st. */
static int
copy_page_bind(struct copy_side *s, const struct copy_table *t, struct db_bstmt *first,
    struct db_bstmt *next, const struct copy_cursor *k, int64_t rows, struct db_bstmt **st,
    char **cause)
{
	struct db_arg args[3];
	size_t n;

	memset(args, 0, sizeof args);
	args[1].type = DB_ARG_INT;
	args[1].i = rows;
	if (t->key == COPY_KEY_INT) {
		*st = next;
		args[0].type = DB_ARG_INT;
		args[0].i = k->started ? k->last_int : INT64_MIN;
		n = 2;
	} else if (!k->started) {
		*st = first;
		args[0] = args[1];
		n = 1;
	} else {
		*st = next;
		args[0].type = args[2].type = DB_ARG_TEXT;
		args[0].s = k->last_text[0];
		args[2].s = k->last_text[1];
		n = t->key == COPY_KEY_TEXT2 ? 3 : 2;
	}
	if (s->ops->bind(s->c, *st, args, n, cause) != DB_OK) {
		s->ops->reset(*st);
		return DB_ERROR;
	}
	return DB_OK;
}

/*
 * Copies one table page by page; *max_key gets the highest integer key
 * copied (0 for none, or for a text key).
 */
static int
copy_table(struct copy_side *s, struct copy_side *d, const struct copy_table *t,
    db_copy_progress_fn progress, void *arg, int64_t *max_key, char **cause)
{
	struct db_bstmt *first = NULL, *next = NULL, *full = NULL, *st;
	struct copy_cursor k = { 0, 0, { NULL, NULL } };
	struct copy_page p;
	int64_t total = 0, copied = 0, counts[2];
	int rc = DB_ERROR, step;

	*max_key = 0;
	copy_page_init(&p, t);
	if (copy_query_ints(s, t->count, NULL, 0, counts, 2, cause) != DB_OK)
		goto out;
	total = counts[0];
	if ((t->first != NULL && s->ops->prepare(s->c, t->first, &first, cause) != DB_OK) ||
	    s->ops->prepare(s->c, t->next, &next, cause) != DB_OK)
		goto out;
	for (;;) {
		if (copy_page_bind(s, t, first, next, &k, (int64_t)p.max_rows, &st, cause) != DB_OK)
			goto out;
		step = DB_DONE;
		while (p.rows < p.max_rows && (step = s->ops->step(s->c, st, cause)) == DB_ROW)
			copy_page_add(&p, t, s, st);
		s->ops->reset(st);
		if (step != DB_ROW && step != DB_DONE) {
			if (step != DB_ERROR)
				*cause = xasprintf("unexpected result %d", step);
			goto out;
		}
		if (p.rows == 0)
			break;
		if (copy_page_write(d, t, &p, &full, cause) != DB_OK)
			goto out;
		copy_cursor_take(&k, t, &p);
		copied += (int64_t)p.rows;
		if (t->key == COPY_KEY_INT)
			*max_key = k.last_int;
		if (progress != NULL)
			progress(arg, t->name, copied, total, 0);
		if (p.rows < p.max_rows)
			break;
		copy_page_empty(&p);
	}
	if (progress != NULL)
		progress(arg, t->name, copied, total, 1);
	rc = DB_OK;
out:
	s->ops->finalize(first);
	s->ops->finalize(next);
	d->ops->finalize(full);
	copy_page_clear(&p);
	copy_cursor_clear(&k);
	if (rc != DB_OK)
		copy_cause_prefix(cause, "copying", t->name);
	return rc;
}

/*
 * Sets the target's identity sequence of t so that its next value comes
 * after both the highest key copied and the highest id SQLite ever gave
 * (an AUTOINCREMENT table's rows may have been deleted since: a dead
 * letter replayed or discarded).
 */
static int
copy_sequence(struct copy_side *s, struct copy_side *d, const struct copy_table *t, int64_t max_key,
    char **cause)
{
	const struct db_arg name = { DB_ARG_TEXT, 0, t->name };
	struct db_arg args[2];
	int64_t high = max_key, seq = 0, ignored;
	int rc;

	if (t->autoincrement) {
		rc = copy_query_ints(s, COPY_SQLITE_SEQUENCE, &name, 1, &seq, 1, cause);
		if (rc == DB_ERROR)
			return DB_ERROR;
		if (rc == DB_OK && seq > high)
			high = seq;
	}
	args[0] = (struct db_arg){ DB_ARG_INT, high > 0 ? high : 1, NULL };
	args[1] = (struct db_arg){ DB_ARG_INT, high > 0, NULL };
	if (copy_query_ints(d, t->setval, args, 2, &ignored, 1, cause) != DB_OK)
		return DB_ERROR;
	return DB_OK;
}

/* DB_CONFLICT with *cause naming the tables that hold rows, or DB_OK. */
static int
copy_target_empty(struct copy_side *d, char **cause)
{
	char *held = NULL, *more;
	int64_t one;
	size_t i;
	int rc;

	for (i = 0; i < DB_COPY_TABLES; i++) {
		rc = copy_query_ints(d, copy_tables[i].any, NULL, 0, &one, 1, cause);
		if (rc == DB_ERROR) {
			free(held);
			copy_cause_prefix(cause, "reading", copy_tables[i].name);
			return DB_ERROR;
		}
		if (rc == DB_NOTFOUND)
			continue;
		more = xasprintf("%s%s%s", held != NULL ? held : "", held != NULL ? ", " : "",
		    copy_tables[i].name);
		free(held);
		held = more;
	}
	if (held == NULL)
		return DB_OK;
	*cause = xasprintf("the target database is not empty: it has rows in %s; copy-db copies "
			   "into an empty database only",
	    held);
	free(held);
	return DB_CONFLICT;
}

static int
copy_all(
    struct copy_side *s, struct copy_side *d, db_copy_progress_fn progress, void *arg, char **cause)
{
	const struct copy_table *t;
	int64_t max_key;
	size_t i;

	for (i = 0; i < DB_COPY_TABLES; i++) {
		t = &copy_tables[i];
		if (copy_table(s, d, t, progress, arg, &max_key, cause) != DB_OK)
			return DB_ERROR;
		if (t->setval != NULL && copy_sequence(s, d, t, max_key, cause) != DB_OK) {
			copy_cause_prefix(cause, "moving the id sequence of", t->name);
			return DB_ERROR;
		}
	}
	return DB_OK;
}

int
db_copy_run(struct db *source, struct db *target, db_copy_progress_fn progress, void *arg,
    struct db_copy_report *rep, char **cause)
{
	struct copy_side s = copy_side_of(source), d = copy_side_of(target);
	int rc;

	memset(rep, 0, sizeof *rep);
	if (s.ops->dialect != DB_DIALECT_SQLITE || d.ops->dialect != DB_DIALECT_PG) {
		*cause = xstrdup("copy-db copies a SQLite database into a PostgreSQL one only");
		return DB_ERROR;
	}
	if (db_tx_begin(source, cause) != DB_OK)
		return DB_ERROR;
	if (db_tx_begin(target, cause) != DB_OK) {
		db_tx_rollback(source);
		return DB_ERROR;
	}
	if ((rc = copy_target_empty(&d, cause)) == DB_OK &&
	    (rc = copy_all(&s, &d, progress, arg, cause)) == DB_OK)
		rc = copy_compare(&s, &d, rep, cause);
	if (rc == DB_OK && rep->mismatches_total == 0) {
		rc = db_tx_commit(target, cause);
		rep->committed = rc == DB_OK;
	} else
		db_tx_rollback(target);
	/* Nothing was written to the source: the transaction only held its lock. */
	db_tx_rollback(source);
	return rc;
}
