/*
 * The database module: the only file that writes SQL. It owns the schema
 * and its migrations, and turns each operation of db.h into prepared,
 * bound statements run inside write-locking transactions, so several
 * processes can share one database. Knows nothing about the programs.
 *
 * Nothing here calls an engine: the backend behind db_backend.h does
 * (db_sqlite.c). The SQL text is SQLite's for now; "DIALECT:" marks
 * every place a second engine's dialect needs its own text.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "db_backend.h"
#include "jsonutil.h"
#include "log.h"
#include "page.h"
#include "xmalloc.h"

/*
 * Migrations: step i (at index i - 1) brings user_version i - 1 to i. Never
 * edit a released step; append one and bump DB_SCHEMA_VERSION.
 *
 * No CHECK lists the allowed kinds: adding one later would mean
 * rebuilding a large table, so db.c is what keeps them known.
 *
 * DIALECT: SQLite's DDL: STRICT and WITHOUT ROWID tables, INTEGER
 * PRIMARY KEY AUTOINCREMENT ids (rowid aliases), INTEGER as 64 bits,
 * several statements in one text. Another engine needs its own steps
 * (BIGINT, identity columns), numbered alike.
 */
static const char *const db_migrations[] = {
	/* 1: the initial schema. */
	"CREATE TABLE rooms ("
	" id TEXT NOT NULL PRIMARY KEY,"
	" name TEXT NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" closed_at INTEGER,"
	" close_reason TEXT,"
	" peak_users INTEGER NOT NULL DEFAULT 0,"
	" last_seq INTEGER NOT NULL DEFAULT 0,"
	" last_session_seq INTEGER NOT NULL DEFAULT 0"
	") STRICT;"
	"CREATE TABLE room_admins ("
	" room_id TEXT NOT NULL REFERENCES rooms (id),"
	" user_id TEXT NOT NULL,"
	" PRIMARY KEY (room_id, user_id)"
	") STRICT;"
	"CREATE TABLE bans ("
	" id INTEGER PRIMARY KEY,"
	" room_id TEXT NOT NULL REFERENCES rooms (id),"
	" user_id TEXT NOT NULL,"
	" reason TEXT,"
	" created_at INTEGER NOT NULL,"
	" expires_at INTEGER,"
	" lifted_at INTEGER"
	") STRICT;"
	/* At most one unlifted ban per user and room; db_ban_add lifts first. */
	"CREATE UNIQUE INDEX bans_active ON bans (room_id, user_id)"
	" WHERE lifted_at IS NULL;"
	/* AUTOINCREMENT: delivery cursors rely on ids never being reused. */
	"CREATE TABLE messages ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" room_id TEXT NOT NULL REFERENCES rooms (id),"
	" seq INTEGER NOT NULL CHECK (seq > 0),"
	" kind INTEGER NOT NULL CHECK (kind >= 0),"
	" user_id TEXT,"
	" nickname TEXT,"
	" is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),"
	" content TEXT NOT NULL,"
	" event_type TEXT,"
	" created_at INTEGER NOT NULL,"
	" CHECK (kind <> 0 OR (user_id IS NOT NULL AND nickname IS NOT NULL)),"
	" CHECK (kind <> 1 OR event_type IS NOT NULL),"
	" UNIQUE (room_id, seq)"
	") STRICT;"
	"CREATE INDEX messages_time ON messages (room_id, created_at, seq);"
	"CREATE TABLE sessions ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" room_id TEXT NOT NULL REFERENCES rooms (id),"
	" seq INTEGER NOT NULL CHECK (seq > 0),"
	" user_id TEXT NOT NULL,"
	" nickname TEXT NOT NULL,"
	" is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),"
	" address TEXT,"
	" joined_at INTEGER NOT NULL,"
	" left_at INTEGER,"
	" leave_reason TEXT,"
	" UNIQUE (room_id, seq)"
	") STRICT;"
	"CREATE INDEX sessions_time ON sessions (room_id, joined_at, seq);"
	"CREATE INDEX sessions_open ON sessions (room_id) WHERE left_at IS NULL;"
	"CREATE TABLE outbox ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" kind TEXT NOT NULL,"
	" room_id TEXT NOT NULL REFERENCES rooms (id),"
	" user_id TEXT,"
	" nickname TEXT,"
	" reason TEXT,"
	" session_id INTEGER REFERENCES sessions (id),"
	" data TEXT,"
	" created_at INTEGER NOT NULL"
	") STRICT;"
	"CREATE TABLE sync_requests ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" reason TEXT NOT NULL,"
	" room_id TEXT REFERENCES rooms (id),"
	" created_at INTEGER NOT NULL,"
	" handled_at INTEGER"
	") STRICT;"
	"CREATE INDEX sync_requests_pending ON sync_requests (id)"
	" WHERE handled_at IS NULL;"
	"CREATE TABLE cursors ("
	" target TEXT NOT NULL PRIMARY KEY,"
	" last_id INTEGER NOT NULL DEFAULT 0,"
	" delivery_id TEXT,"
	" batch_last_id INTEGER,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" failing_since INTEGER,"
	" last_error TEXT,"
	" last_success_at INTEGER,"
	" lock_owner TEXT,"
	" lock_until INTEGER"
	") STRICT;",
	/*
	 * 2: dead letters, batches chat-sync set aside after too many failed
	 * attempts. A feed's letter names its rows by id range (rows are never
	 * deleted); a snapshot's keeps the exact body sent.
	 */
	"CREATE TABLE dead_letters ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" target TEXT NOT NULL,"
	" delivery_id TEXT NOT NULL UNIQUE,"
	" after_id INTEGER NOT NULL,"
	" last_id INTEGER NOT NULL,"
	" row_count INTEGER NOT NULL,"
	" body TEXT,"
	" attempts INTEGER NOT NULL,"
	" last_status INTEGER,"
	" last_error TEXT,"
	" first_attempt_at INTEGER NOT NULL,"
	" last_attempt_at INTEGER NOT NULL,"
	" created_at INTEGER NOT NULL,"
	" replay_requested_at INTEGER"
	") STRICT;"
	"CREATE INDEX dead_letters_target ON dead_letters (target, id);"
	"CREATE INDEX dead_letters_replay ON dead_letters (target, id)"
	" WHERE replay_requested_at IS NOT NULL;",
	/*
	 * 3: several chatd processes (nodes) on one file. A session names the
	 * node holding its connection ('' for a lone chatd), so a node's open
	 * sessions can be closed without touching the others'; nodes holds
	 * each node's liveness as the database sees it, which is what lets a
	 * survivor tell a lost node from a live one and reap it only once.
	 * rate_marks holds each user's last accepted chat message per room,
	 * so that the per-user rate limit holds across nodes exactly: the
	 * writers' transactions take turns, whichever node a post came to.
	 */
	"ALTER TABLE sessions ADD COLUMN node_id TEXT NOT NULL DEFAULT '';"
	"CREATE INDEX sessions_node_open ON sessions (node_id) WHERE left_at IS NULL;"
	"CREATE TABLE nodes ("
	" id TEXT PRIMARY KEY,"
	" incarnation TEXT NOT NULL,"
	" started_at INTEGER NOT NULL,"
	" seen_at INTEGER NOT NULL,"
	" stopped_at INTEGER,"
	" connections INTEGER NOT NULL DEFAULT 0,"
	" reaped_at INTEGER"
	") STRICT;"
	"CREATE TABLE rate_marks ("
	" room_id TEXT NOT NULL,"
	" user_id TEXT NOT NULL,"
	" at INTEGER NOT NULL,"
	" PRIMARY KEY (room_id, user_id)"
	") STRICT, WITHOUT ROWID;",
};
_Static_assert(sizeof db_migrations / sizeof db_migrations[0] == DB_SCHEMA_VERSION,
    "DB_SCHEMA_VERSION must equal the number of migration steps");

/* Every statement this module runs, prepared once per connection. */
enum db_stmt {
	DB_STMT_USER_VERSION,
	DB_STMT_ROOM_INSERT,
	DB_STMT_ROOM_EXISTS,
	DB_STMT_ROOM_GET,
	DB_STMT_ROOM_LIST,
	DB_STMT_ROOM_CLOSE,
	DB_STMT_ROOM_PEAK,
	DB_STMT_ADMIN_INSERT,
	DB_STMT_ADMIN_LIST,
	DB_STMT_OUTBOX_INSERT,
	DB_STMT_SYNC_INSERT,
	DB_STMT_BAN_LIFT_ALL,
	DB_STMT_BAN_INSERT,
	DB_STMT_BAN_LIFT,
	DB_STMT_BAN_LIST,
	DB_STMT_MESSAGE_SEQ,
	DB_STMT_MESSAGE_LAST_SEQ,
	DB_STMT_MESSAGE_INSERT,
	DB_STMT_MESSAGE_FIRST,
	DB_STMT_MESSAGE_LAST,
	DB_STMT_MESSAGE_RANGE,
	DB_STMT_MESSAGE_ID_AT,
	DB_STMT_SESSION_SEQ,
	DB_STMT_SESSION_LAST_SEQ,
	DB_STMT_SESSION_OPEN_GET,
	DB_STMT_SESSION_CLOSED_GET,
	DB_STMT_NODE_REAPED,
	DB_STMT_SESSION_INSERT,
	DB_STMT_SESSION_CLOSE,
	DB_STMT_SESSION_OPEN_IDS,
	DB_STMT_SESSION_NODE_OPEN_IDS,
	DB_STMT_SESSION_OPEN_COUNT,
	DB_STMT_SESSION_OCCUPANTS,
	DB_STMT_SESSION_FIRST,
	DB_STMT_SESSION_LAST,
	DB_STMT_SESSION_RANGE,
	DB_STMT_HEALTH,
	DB_STMT_CURSOR_ENSURE,
	DB_STMT_CURSOR_GET,
	DB_STMT_CURSOR_BATCH,
	DB_STMT_CURSOR_DONE,
	DB_STMT_CURSOR_FAIL,
	DB_STMT_FEED_OUTBOX,
	DB_STMT_FEED_MESSAGES,
	DB_STMT_FEED_SESSIONS,
	DB_STMT_BACKLOG_OUTBOX,
	DB_STMT_BACKLOG_MESSAGES,
	DB_STMT_BACKLOG_SESSIONS,
	DB_STMT_BACKLOG_SYNC,
	DB_STMT_SYNC_HANDLED,
	DB_STMT_CURSOR_DEAD,
	DB_STMT_DEAD_INSERT,
	DB_STMT_DEAD_LIST,
	DB_STMT_DEAD_GET,
	DB_STMT_DEAD_NEXT_REPLAY,
	DB_STMT_DEAD_MARK_ONE,
	DB_STMT_DEAD_MARK_ALL,
	DB_STMT_DEAD_DELETE,
	DB_STMT_DEAD_REPLAY_FAIL,
	DB_STMT_DEAD_COUNTS,
	DB_STMT_NODE_BEAT,
	DB_STMT_NODE_STOP,
	DB_STMT_NODE_LIST,
	DB_STMT_NODE_GET,
	DB_STMT_NODE_REAP,
	DB_STMT_JOIN_CLOSED,
	DB_STMT_JOIN_BANNED,
	DB_STMT_RATE_GET,
	DB_STMT_RATE_SET,
	DB_STMT_RATE_PRUNE,
	DB_STMT_COUNT
};

/* Room columns in the order db_room_fill() reads them. */
#define DB_ROOM_COLUMNS \
	"r.id, r.name, r.created_at, r.closed_at, r.close_reason, r.peak_users, r.last_seq, " \
	"r.last_session_seq"

/* One column order per row type, read by db_row_message/db_row_session. */
#define DB_MESSAGE_COLUMNS \
	"id, room_id, seq, kind, user_id, nickname, is_admin, content, event_type, created_at"
#define DB_SESSION_COLUMNS \
	"id, room_id, seq, user_id, nickname, is_admin, address, joined_at, left_at, leave_reason"
#define DB_SESSION_COLUMNS_S \
	"s.id, s.room_id, s.seq, s.user_id, s.nickname, s.is_admin, s.address, s.joined_at," \
	" s.left_at, s.leave_reason"

/* Node columns in the order db_row_node() reads them. */
#define DB_NODE_COLUMNS "id, incarnation, started_at, seen_at, stopped_at, connections, reaped_at"

/* Dead-letter columns in the order db_row_dead_letter() reads them (the body follows). */
#define DB_DEAD_COLUMNS \
	"id, target, delivery_id, after_id, last_id, row_count, attempts, last_status," \
	" last_error, first_attempt_at, last_attempt_at, created_at, replay_requested_at"

static const char *const db_sql[DB_STMT_COUNT] = {
	/* DIALECT: the schema version lives in SQLite's header (see db_migrate()). */
	[DB_STMT_USER_VERSION] = "PRAGMA user_version",

	[DB_STMT_ROOM_INSERT] = "INSERT INTO rooms (id, name, created_at) VALUES (?1, ?2, ?3)",
	[DB_STMT_ROOM_EXISTS] = "SELECT 1 FROM rooms WHERE id = ?1",
	[DB_STMT_ROOM_GET] = "SELECT " DB_ROOM_COLUMNS " FROM rooms r WHERE r.id = ?1",
	/*
	 * One query for rooms and admins: rows of a room are adjacent.
	 * DIALECT: rowid (insertion order) and ?1 bound as an integer used
	 * as a truth value.
	 */
	[DB_STMT_ROOM_LIST] = "SELECT " DB_ROOM_COLUMNS ", a.user_id FROM rooms r"
			      " LEFT JOIN room_admins a ON a.room_id = r.id"
			      " WHERE ?1 OR r.closed_at IS NULL"
			      " ORDER BY r.created_at, r.rowid, a.rowid",
	[DB_STMT_ROOM_CLOSE] = "UPDATE rooms SET closed_at = ?2, close_reason = ?3"
			       " WHERE id = ?1 AND closed_at IS NULL",
	/* DIALECT: two-argument max() (elsewhere GREATEST). */
	[DB_STMT_ROOM_PEAK] = "UPDATE rooms SET peak_users = max(peak_users, ?2) WHERE id = ?1",
	/* Drops duplicate admins (the first keeps its place); unlike OR IGNORE,
	 * still refuses a NULL. */
	[DB_STMT_ADMIN_INSERT] = "INSERT INTO room_admins (room_id, user_id) VALUES (?1, ?2)"
				 " ON CONFLICT DO NOTHING",
	/* DIALECT: rowid, the admins' insertion order. */
	[DB_STMT_ADMIN_LIST] = "SELECT user_id FROM room_admins WHERE room_id = ?1 ORDER BY rowid",
	[DB_STMT_OUTBOX_INSERT] = "INSERT INTO outbox (kind, room_id, user_id, nickname, reason,"
				  " session_id, data, created_at)"
				  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[DB_STMT_SYNC_INSERT] = "INSERT INTO sync_requests (reason, room_id, created_at)"
				" VALUES (?1, ?2, ?3)",

	[DB_STMT_BAN_LIFT_ALL] = "UPDATE bans SET lifted_at = ?3"
				 " WHERE room_id = ?1 AND user_id = ?2 AND lifted_at IS NULL",
	[DB_STMT_BAN_INSERT] = "INSERT INTO bans (room_id, user_id, reason, created_at, expires_at)"
			       " VALUES (?1, ?2, ?3, ?4, ?5)",
	[DB_STMT_BAN_LIFT] = "UPDATE bans SET lifted_at = ?3"
			     " WHERE room_id = ?1 AND user_id = ?2 AND lifted_at IS NULL"
			     " AND (expires_at IS NULL OR expires_at > ?3)",
	[DB_STMT_BAN_LIST] = "SELECT room_id, user_id, reason, created_at, expires_at FROM bans"
			     " WHERE room_id = ?1 AND lifted_at IS NULL"
			     " AND (expires_at IS NULL OR expires_at > ?2)"
			     " ORDER BY created_at, id",

	/*
	 * DIALECT: new ids come from the backend's last_insert_id().
	 * No RETURNING here or below: SQLite buffers its rows in an ephemeral
	 * table whose set-up and tear-down halved append throughput.
	 */
	[DB_STMT_MESSAGE_SEQ] = "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?1",
	[DB_STMT_MESSAGE_LAST_SEQ] = "SELECT last_seq FROM rooms WHERE id = ?1",
	[DB_STMT_MESSAGE_INSERT] = "INSERT INTO messages (room_id, seq, kind, user_id, nickname,"
				   " is_admin, content, event_type, created_at)"
				   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[DB_STMT_MESSAGE_FIRST] = "SELECT seq FROM messages WHERE room_id = ?1 AND created_at >= ?2"
				  " ORDER BY created_at, seq LIMIT 1",
	[DB_STMT_MESSAGE_LAST] = "SELECT seq FROM messages WHERE room_id = ?1 AND created_at <= ?2"
				 " ORDER BY created_at DESC, seq DESC LIMIT 1",
	[DB_STMT_MESSAGE_RANGE] = "SELECT " DB_MESSAGE_COLUMNS " FROM messages"
				  " WHERE room_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
	[DB_STMT_MESSAGE_ID_AT] = "SELECT id FROM messages WHERE room_id = ?1 AND seq = ?2",

	[DB_STMT_SESSION_SEQ] = "UPDATE rooms SET last_session_seq = last_session_seq + 1"
				" WHERE id = ?1",
	[DB_STMT_SESSION_LAST_SEQ] = "SELECT last_session_seq FROM rooms WHERE id = ?1",
	[DB_STMT_SESSION_OPEN_GET] =
	    "SELECT room_id, user_id, nickname, is_admin, seq FROM sessions"
	    " WHERE id = ?1 AND left_at IS NULL",
	[DB_STMT_SESSION_CLOSED_GET] =
	    "SELECT room_id, user_id, nickname, is_admin, address, node_id, left_at IS NOT NULL"
	    " FROM sessions WHERE id = ?1",
	[DB_STMT_NODE_REAPED] = "SELECT 1 FROM nodes WHERE id = ?1 AND incarnation = ?2"
				" AND reaped_at IS NOT NULL",
	[DB_STMT_SESSION_INSERT] =
	    "INSERT INTO sessions (room_id, seq, user_id, nickname, is_admin,"
	    " address, joined_at, node_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[DB_STMT_SESSION_CLOSE] = "UPDATE sessions SET left_at = ?2, leave_reason = ?3"
				  " WHERE id = ?1",
	[DB_STMT_SESSION_OPEN_IDS] = "SELECT id FROM sessions WHERE left_at IS NULL ORDER BY id",
	/* The partial index sessions_node_open: proportional to the node's open sessions. */
	[DB_STMT_SESSION_NODE_OPEN_IDS] = "SELECT id FROM sessions"
					  " WHERE node_id = ?1 AND left_at IS NULL ORDER BY id",
	/* The partial index sessions_open makes this proportional to the occupants. */
	[DB_STMT_SESSION_OCCUPANTS] =
	    "SELECT id, user_id, nickname, is_admin, joined_at FROM sessions"
	    " WHERE room_id = ?1 AND left_at IS NULL ORDER BY id LIMIT ?2",
	[DB_STMT_SESSION_OPEN_COUNT] = "SELECT count(*) FROM sessions"
				       " WHERE room_id = ?1 AND left_at IS NULL",
	[DB_STMT_SESSION_FIRST] = "SELECT seq FROM sessions WHERE room_id = ?1 AND joined_at >= ?2"
				  " ORDER BY joined_at, seq LIMIT 1",
	[DB_STMT_SESSION_LAST] = "SELECT seq FROM sessions WHERE room_id = ?1 AND joined_at <= ?2"
				 " ORDER BY joined_at DESC, seq DESC LIMIT 1",
	[DB_STMT_SESSION_RANGE] = "SELECT " DB_SESSION_COLUMNS " FROM sessions"
				  " WHERE room_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",

	/* No outbox row is ever deleted, so max(id) counts outbox events in O(1). */
	[DB_STMT_HEALTH] = "SELECT (SELECT count(*) FROM rooms WHERE closed_at IS NULL),"
			   " (SELECT count(*) FROM rooms WHERE closed_at IS NOT NULL),"
			   " (SELECT count(*) FROM sync_requests WHERE handled_at IS NULL),"
			   " (SELECT coalesce(max(id), 0) FROM outbox)",

	/* chat-sync: one cursor row per callback target. */
	[DB_STMT_CURSOR_ENSURE] = "INSERT INTO cursors (target) VALUES (?1) ON CONFLICT DO NOTHING",
	[DB_STMT_CURSOR_GET] =
	    "SELECT last_id, delivery_id, batch_last_id, attempts, failing_since,"
	    " last_error, last_success_at FROM cursors WHERE target = ?1",
	/* Only from the position the caller read: another process may have moved it. */
	/*
	 * A batch recorded in place of one never answered with a 2xx (a fresh
	 * snapshot replacing a stale one) inherits its failed attempts, as it
	 * already inherits failing_since: the dead-letter limits count the
	 * target's failure, not one snapshot's.
	 */
	[DB_STMT_CURSOR_BATCH] =
	    "UPDATE cursors SET delivery_id = ?3, batch_last_id = ?4,"
	    " attempts = CASE WHEN delivery_id IS NULL THEN 0 ELSE attempts END"
	    " WHERE target = ?1 AND last_id = ?2",
	/* With ?5/?6 the next batch is recorded in the same write (NULL: none). */
	[DB_STMT_CURSOR_DONE] = "UPDATE cursors SET last_id = ?3, delivery_id = ?5,"
				" batch_last_id = ?6, attempts = 0, failing_since = NULL,"
				" last_error = NULL, last_success_at = ?4"
				" WHERE target = ?1 AND last_id = ?2",
	[DB_STMT_CURSOR_FAIL] = "UPDATE cursors SET attempts = attempts + 1,"
				" failing_since = coalesce(failing_since, ?2), last_error = ?3"
				" WHERE target = ?1",
	/* Feeds: rows after a cursor in id order, the primary key's order. */
	[DB_STMT_FEED_OUTBOX] = "SELECT id, kind, room_id, user_id, nickname, reason, session_id,"
				" data, created_at FROM outbox WHERE id > ?1 AND id <= ?2"
				" ORDER BY id LIMIT ?3",
	[DB_STMT_FEED_MESSAGES] = "SELECT " DB_MESSAGE_COLUMNS " FROM messages"
				  " WHERE id > ?1 AND id <= ?2 ORDER BY id LIMIT ?3",
	/* A user_left event's id orders sessions by completion. */
	[DB_STMT_FEED_SESSIONS] = "SELECT o.id, " DB_SESSION_COLUMNS_S
				  " FROM outbox o JOIN sessions s ON s.id = o.session_id"
				  " WHERE o.id > ?1 AND o.id <= ?2 AND o.kind = 'user_left'"
				  " ORDER BY o.id LIMIT ?3",
	/* DIALECT: the backlog counts read subqueries without an alias. */
	[DB_STMT_BACKLOG_OUTBOX] = "SELECT count(*), min(created_at), max(id) FROM"
				   " (SELECT id, created_at FROM outbox WHERE id > ?1"
				   " ORDER BY id LIMIT ?2)",
	/*
	 * Counting only rowids spares SQLite decoding every pending row, which
	 * the batch builder reads right after anyway; created_at grows with id
	 * (chatd stamps messages as it commits them in order), so the oldest
	 * pending row is the first one.
	 */
	[DB_STMT_BACKLOG_MESSAGES] =
	    "SELECT count(*),"
	    " (SELECT created_at FROM messages WHERE id > ?1 ORDER BY id LIMIT 1),"
	    " max(id) FROM (SELECT id FROM messages WHERE id > ?1"
	    " ORDER BY id LIMIT ?2)",
	[DB_STMT_BACKLOG_SESSIONS] = "SELECT count(*), min(created_at), max(id) FROM"
				     " (SELECT id, created_at FROM outbox WHERE id > ?1"
				     " AND kind = 'user_left' ORDER BY id LIMIT ?2)",
	[DB_STMT_BACKLOG_SYNC] = "SELECT count(*), min(created_at), max(id) FROM"
				 " (SELECT id, created_at FROM sync_requests WHERE id > ?1"
				 " ORDER BY id LIMIT ?2)",
	[DB_STMT_SYNC_HANDLED] = "UPDATE sync_requests SET handled_at = ?2"
				 " WHERE id <= ?1 AND handled_at IS NULL",

	/* Dead letters. The cursor moves past the letter's batch only if it still holds it. */
	[DB_STMT_CURSOR_DEAD] = "UPDATE cursors SET last_id = ?4, delivery_id = NULL,"
				" batch_last_id = NULL, attempts = 0, failing_since = NULL,"
				" last_error = NULL"
				" WHERE target = ?1 AND last_id = ?2 AND delivery_id = ?3",
	[DB_STMT_DEAD_INSERT] = "INSERT INTO dead_letters (target, delivery_id, after_id, last_id,"
				" row_count, body, attempts, last_status, last_error,"
				" first_attempt_at, last_attempt_at, created_at)"
				" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	/* Listing leaves the body out: a snapshot's can be large. */
	[DB_STMT_DEAD_LIST] = "SELECT " DB_DEAD_COLUMNS ", NULL FROM dead_letters"
			      " WHERE (?1 IS NULL OR target = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
	[DB_STMT_DEAD_GET] = "SELECT " DB_DEAD_COLUMNS ", NULL FROM dead_letters WHERE id = ?1",
	[DB_STMT_DEAD_NEXT_REPLAY] = "SELECT " DB_DEAD_COLUMNS ", body FROM dead_letters"
				     " WHERE target = ?1 AND replay_requested_at IS NOT NULL"
				     " ORDER BY id LIMIT 1",
	[DB_STMT_DEAD_MARK_ONE] = "UPDATE dead_letters SET replay_requested_at ="
				  " coalesce(replay_requested_at, ?2) WHERE id = ?1",
	[DB_STMT_DEAD_MARK_ALL] = "UPDATE dead_letters SET replay_requested_at = ?2"
				  " WHERE (?1 IS NULL OR target = ?1)"
				  " AND replay_requested_at IS NULL",
	[DB_STMT_DEAD_DELETE] = "DELETE FROM dead_letters WHERE id = ?1",
	/* DIALECT: CASE WHEN on an integer parameter. */
	[DB_STMT_DEAD_REPLAY_FAIL] =
	    "UPDATE dead_letters SET attempts = attempts + 1, last_status = ?2,"
	    " last_error = ?3, last_attempt_at = ?4,"
	    " replay_requested_at = CASE WHEN ?5 THEN NULL ELSE replay_requested_at END"
	    " WHERE id = ?1",
	[DB_STMT_DEAD_COUNTS] = "SELECT count(*), count(replay_requested_at) FROM dead_letters"
				" WHERE ?1 IS NULL OR target = ?1",

	/* Nodes. A beat is a new life as far as stopping and reaping go. */
	[DB_STMT_NODE_BEAT] =
	    "INSERT INTO nodes (id, incarnation, started_at, seen_at, connections)"
	    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET"
	    " incarnation = excluded.incarnation,"
	    " started_at = excluded.started_at, seen_at = excluded.seen_at,"
	    " stopped_at = NULL, connections = excluded.connections,"
	    " reaped_at = NULL",
	/* Only this incarnation: a restarted node's row is not the old process's to stop. */
	[DB_STMT_NODE_STOP] = "UPDATE nodes SET stopped_at = ?3 WHERE id = ?1 AND incarnation = ?2",
	[DB_STMT_NODE_LIST] = "SELECT " DB_NODE_COLUMNS " FROM nodes ORDER BY id",
	[DB_STMT_NODE_GET] = "SELECT " DB_NODE_COLUMNS " FROM nodes WHERE id = ?1",
	/*
	 * The test and the mark in one statement under the write lock: of
	 * several survivors reaping at once, the first changes the row and the
	 * others find it reaped.
	 */
	[DB_STMT_NODE_REAP] = "UPDATE nodes SET reaped_at = ?3"
			      " WHERE id = ?1 AND seen_at < ?2 AND stopped_at IS NULL"
			      " AND (reaped_at IS NULL OR reaped_at < seen_at)",
	/* DIALECT: a truth value read as an integer column. */
	[DB_STMT_JOIN_CLOSED] = "SELECT closed_at IS NOT NULL FROM rooms WHERE id = ?1",
	[DB_STMT_JOIN_BANNED] = "SELECT 1 FROM bans WHERE room_id = ?1 AND user_id = ?2"
				" AND lifted_at IS NULL AND (expires_at IS NULL OR expires_at > ?3)"
				" LIMIT 1",
	[DB_STMT_RATE_GET] = "SELECT at FROM rate_marks WHERE room_id = ?1 AND user_id = ?2",
	[DB_STMT_RATE_SET] = "INSERT INTO rate_marks (room_id, user_id, at) VALUES (?1, ?2, ?3)"
			     " ON CONFLICT (room_id, user_id) DO UPDATE SET at = excluded.at"
			     " WHERE excluded.at > rate_marks.at",
	[DB_STMT_RATE_PRUNE] = "DELETE FROM rate_marks WHERE at < ?1",
};

/* One connection; used by one thread at a time. */
struct db {
	const struct db_backend_ops *ops;
	struct db_bconn *conn;
	char *path;
	struct db_bstmt *stmt[DB_STMT_COUNT];
	/*
	 * A transaction this module began (BEGIN succeeded, no COMMIT or
	 * ROLLBACK yet) and, while one is open, whether the running operation
	 * nests in it under a savepoint (a db_tx_begin() batch). The engine
	 * may have ended the transaction by itself: see db_tx_live().
	 */
	int tx_open;
	int in_savepoint;
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
		if (db->ops->prepare(db->conn, db_sql[which], &db->stmt[which], cause) != DB_OK) {
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

static int
db_op_commit(struct db *db, char **cause)
{
	return db_tx_run(db, db->in_savepoint ? DB_TX_RELEASE : DB_TX_COMMIT, cause);
}

static void
db_op_rollback(struct db *db)
{
	char *cause = NULL;
	int busy = db->busy_failed, transient = db->transient_failed;

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

	rc = db_exec(db, DB_STMT_SYNC_INSERT, cause,
	    DB_ARGS(DB_TEXT(reason), DB_TEXT(room_id), DB_INT(now)));
	if (rc == DB_OK && id != NULL)
		*id = db_last_insert_id(db);
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
	char *sql = NULL, *what = NULL;
	int64_t version;
	int rc;

	if ((rc = db_exec_int(db, DB_STMT_USER_VERSION, &version, cause, DB_NOARGS)) != DB_OK)
		goto fail;
	while (version < DB_SCHEMA_VERSION) {
		if ((rc = db_op_begin(db, cause)) != DB_OK)
			goto fail;
		/* Another process may have migrated while we waited for the lock. */
		rc = db_exec_int(db, DB_STMT_USER_VERSION, &version, cause, DB_NOARGS);
		if (rc != DB_OK)
			goto fail;
		if (version >= DB_SCHEMA_VERSION) {
			if ((rc = db_op_commit(db, cause)) != DB_OK)
				goto fail;
			break;
		}
		what = xasprintf("migration to schema version %d", (int)version + 1);
		/*
		 * DIALECT: the schema version's home is SQLite's PRAGMA
		 * user_version, which takes no parameters; the value is our own
		 * integer.
		 */
		sql = xasprintf("PRAGMA user_version = %d", (int)version + 1);
		rc = db->ops->exec_script(db->conn, db_migrations[version], what, cause);
		if (rc != DB_OK)
			goto fail;
		if ((rc = db->ops->exec_script(db->conn, sql, what, cause)) != DB_OK)
			goto fail;
		if ((rc = db_op_commit(db, cause)) != DB_OK)
			goto fail;
		free(what);
		free(sql);
		what = sql = NULL;
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
	free(sql);
	return DB_ERROR;
}

/*
 * The backend for a database address. Only SQLite for now, whose address
 * is a file path; a second engine is picked here by its address (say
 * postgres://...), which then reaches its open() whole.
 */
static const struct db_backend_ops *
db_backend_for(const char *target)
{
	(void)target;
	return &db_sqlite_ops;
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
	db = xcalloc(1, sizeof *db);
	db->ops = ops;
	db->conn = conn;
	db->path = xstrdup(path);
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

	if (db_exec_int(db, DB_STMT_USER_VERSION, &version, &cause, DB_NOARGS) != DB_OK) {
		free(cause);
		return -1;
	}
	return (int)version;
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
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_exec(db, DB_STMT_ROOM_PEAK, cause, DB_ARGS(DB_TEXT(id), DB_INT(peak)));
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
	int rc;

	if ((rc = db_exec(db, bump, cause, DB_ARGS(DB_TEXT(room_id)))) != DB_OK)
		return rc;
	if (db_changes(db) == 0)
		return DB_NOTFOUND;
	return db_exec_int(db, read, next, cause, DB_ARGS(DB_TEXT(room_id)));
}

int
db_message_append(struct db *db, const char *room_id, int kind, const char *user_id,
    const char *nickname, int is_admin, const char *content, const char *event_type,
    int64_t created_at, int64_t *id, int64_t *seq, char **cause)
{
	int64_t next;
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_next_seq(db, DB_STMT_MESSAGE_SEQ, DB_STMT_MESSAGE_LAST_SEQ, room_id, &next, cause);
	if (rc != DB_OK)
		goto fail;
	rc = db_exec(db, DB_STMT_MESSAGE_INSERT, cause,
	    DB_ARGS(DB_TEXT(room_id), DB_INT(next), DB_INT(kind), DB_TEXT(user_id),
		DB_TEXT(nickname), DB_INT(is_admin != 0), DB_TEXT(content), DB_TEXT(event_type),
		DB_INT(created_at)));
	if (rc != DB_OK)
		goto fail;
	if (id != NULL)
		*id = db_last_insert_id(db);
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
	rc = db_exec(db, DB_STMT_SESSION_INSERT, cause,
	    DB_ARGS(DB_TEXT(room_id), DB_INT(seq), DB_TEXT(user_id), DB_TEXT(nickname),
		DB_INT(is_admin != 0), DB_TEXT(address), DB_INT(joined_at),
		DB_TEXT(node_id != NULL ? node_id : "")));
	if (rc != DB_OK)
		goto fail;
	sid = db_last_insert_id(db);
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

int
db_rate_mark(struct db *db, const char *room_id, const char *user_id, int64_t at, char **cause)
{
	return db_exec(
	    db, DB_STMT_RATE_SET, cause, DB_ARGS(DB_TEXT(room_id), DB_TEXT(user_id), DB_INT(at)));
}

int
db_rate_prune(struct db *db, int64_t before, char **cause)
{
	return db_exec(db, DB_STMT_RATE_PRUNE, cause, DB_ARGS(DB_INT(before)));
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
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_exec(db, DB_STMT_SYNC_HANDLED, cause, DB_ARGS(DB_INT(upto), DB_INT(now)));
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_op_commit(db, cause)) != DB_OK)
		goto fail;
	return DB_OK;

fail:
	db_op_rollback(db);
	return rc;
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

/* Runs one dead-letter write in its own transaction; *changed gets the rows it touched. */
static int
db_dead_letter_write(struct db *db, enum db_stmt which, int64_t *changed, char **cause,
    const struct db_arg *args, size_t n)
{
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
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

int
db_dead_letter_replay(
    struct db *db, int64_t id, const char *target, int64_t now, int64_t *marked, char **cause)
{
	int64_t n = 0;
	int rc;

	if (id > 0)
		rc = db_dead_letter_write(
		    db, DB_STMT_DEAD_MARK_ONE, &n, cause, DB_ARGS(DB_INT(id), DB_INT(now)));
	else
		rc = db_dead_letter_write(
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

	rc = db_dead_letter_write(db, DB_STMT_DEAD_DELETE, &n, cause, DB_ARGS(DB_INT(id)));
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

	rc = db_dead_letter_write(db, DB_STMT_DEAD_REPLAY_FAIL, &n, cause,
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
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_exec(db, DB_STMT_NODE_BEAT, cause,
	    DB_ARGS(DB_TEXT(id), DB_TEXT(incarnation), DB_INT(started_at), DB_INT(now),
		DB_INT(connections)));
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
db_node_stop(struct db *db, const char *id, const char *incarnation, int64_t now, char **cause)
{
	int rc;

	if ((rc = db_op_begin(db, cause)) != DB_OK)
		return rc;
	rc = db_exec(
	    db, DB_STMT_NODE_STOP, cause, DB_ARGS(DB_TEXT(id), DB_TEXT(incarnation), DB_INT(now)));
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
