/*
 * Moving a database from SQLite to PostgreSQL (chatctl copy-db,
 * docs/copy-db.md): every table of the schema copied into an empty
 * PostgreSQL database in one transaction, ids and insertion order kept,
 * then the two compared table by table and room by room. Part of the
 * database module: it runs SQL of its own (db_copy.c) on the two
 * connections through db_backend.h, never through another program.
 *
 * Reads the source in pages in key order (nothing is loaded whole), so
 * a database of any size copies in bounded memory. One thread; both
 * connections are the caller's and stay open.
 */
#ifndef CHAT_DB_COPY_H
#define CHAT_DB_COPY_H

#include <stdint.h>

#include "db.h"

/* The tables db_copy_run copies and db_copy_verify counts, in copy order. */
#define DB_COPY_TABLES 11
/* Mismatches a report lists; beyond that they are only counted. */
#define DB_COPY_MISMATCHES_KEPT 100

/* One table on both sides. */
struct db_copy_count {
	const char *table; /* static */
	int64_t source_rows, target_rows;
	int has_id; /* an integer id or order column, whose highest values follow */
	int64_t source_max_id, target_max_id;
};

/* One difference found by the comparison. */
struct db_copy_mismatch {
	const char *table; /* static: the table, or "rooms" for a room's figures */
	char *room_id; /* heap: the room of a per-room figure; NULL for a table's */
	const char *what; /* static: "rows", "max id", "messages", "last_seq", ... */
	int64_t source, target;
};

/* What a copy or a comparison found. db_copy_report_clear() frees it. */
struct db_copy_report {
	struct db_copy_count tables[DB_COPY_TABLES];
	size_t n_tables;
	int64_t rooms_checked;
	struct db_copy_mismatch *mismatches; /* the first DB_COPY_MISMATCHES_KEPT */
	size_t n_mismatches;
	int64_t mismatches_total;
	int committed; /* db_copy_run: the copy matched and was committed */
};
void db_copy_report_clear(struct db_copy_report *rep);

/*
 * Told after every page a table's copy writes (done 0) and once when the
 * table is complete (done 1): rows copied so far of total.
 */
typedef void (*db_copy_progress_fn)(
    void *arg, const char *table, int64_t copied, int64_t total, int done);

/*
 * Copies source (a SQLite database) into target (a PostgreSQL database
 * at the current schema, with no row in any table), then compares them
 * as db_copy_verify does, and commits only if nothing differs: all or
 * nothing. Ids are kept; rooms and room admins keep SQLite's insertion
 * order (rowid, as PostgreSQL's ord); every identity sequence of the
 * target is moved past the copied ids (and past ids SQLite gave to rows
 * since deleted, dead letters), so new rows continue where SQLite left
 * off. Holds source's write lock throughout, so nothing written to it
 * meanwhile can be missed (a writer waits, then fails as busy).
 *
 * DB_OK: copied and compared, *rep filled (rep->committed: it matched;
 * otherwise rep lists what differs and the target is left as it was).
 * DB_CONFLICT: the target is not empty; *cause says which tables hold
 * rows (nothing written). DB_ERROR with *cause (nothing committed).
 */
int db_copy_run(struct db *source, struct db *target, db_copy_progress_fn progress, void *arg,
    struct db_copy_report *rep, char **cause);

/*
 * Compares two databases of either engine without changing them: rows
 * (and the highest id) of every table, and for each room of source its
 * message count, highest message seq, session count, highest session
 * seq, last_seq and last_session_seq, against target's. Reads both inside
 * their write-locking transactions (a consistent view: writers wait), and
 * rolls them back. DB_OK with *rep filled (rep->mismatches_total 0: they
 * match), or DB_ERROR with *cause.
 */
int db_copy_verify(struct db *source, struct db *target, struct db_copy_report *rep, char **cause);

#endif
