/*
 * The SQL text of db.c's migrations and statements (db_sql.h), SQLite's
 * and PostgreSQL's. Where one text serves both it is written once, in the
 * subset both engines read alike: CASE instead of SQLite's two-argument
 * max(), an alias on every subquery in FROM, a cast on a parameter whose
 * type nothing else in the statement tells PostgreSQL.
 */
#include "autoconf.h"

#include <stddef.h>

#include "db_sql.h"

/* A parameter bound as an integer, read as a truth value. */
#define DB_SQL_TRUE(p) "CAST(" p " AS INTEGER) <> 0"
/* Whether a text parameter is NULL ("any target"). */
#define DB_SQL_NULL_TEXT(p) "CAST(" p " AS TEXT) IS NULL"

/*
 * Migrations: step i (at index i - 1) brings user_version i - 1 to i. Never
 * edit a released step; append one and bump DB_SCHEMA_VERSION.
 *
 * No CHECK lists the allowed kinds: adding one later would mean
 * rebuilding a large table, so db.c is what keeps them known.
 *
 * SQLite's DDL: STRICT and WITHOUT ROWID tables, INTEGER PRIMARY KEY
 * AUTOINCREMENT ids (rowid aliases), INTEGER as 64 bits. PostgreSQL's
 * steps (db_migrations_pg) make the same tables, numbered alike.
 */
static const char *const db_migrations_sqlite[] = {
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
_Static_assert(sizeof db_migrations_sqlite / sizeof db_migrations_sqlite[0] == DB_SCHEMA_VERSION,
    "DB_SCHEMA_VERSION must equal the number of migration steps");

/*
 * PostgreSQL's steps: the same tables, columns and constraints as
 * SQLite's, numbered alike. BIGINT for every integer (ids, millisecond
 * times); identity columns for the ids SQLite's rowids give
 * (BY DEFAULT, so that a copy from SQLite keeps its ids: chatctl
 * copy-db moves each sequence past the copied ids afterwards); an `ord`
 * identity where SQLite's rowid orders rows that have no id of their own
 * (rooms made in the same millisecond, a room's admins). chatd_schema
 * holds the version (SQLite keeps it in its header as user_version).
 */
static const char *const db_migrations_pg[] = {
	/* 1: the initial schema. */
	"CREATE TABLE chatd_schema (version INTEGER NOT NULL);"
	"INSERT INTO chatd_schema (version) VALUES (0);"
	"CREATE TABLE rooms ("
	" id TEXT NOT NULL PRIMARY KEY,"
	" name TEXT NOT NULL,"
	" created_at BIGINT NOT NULL,"
	" closed_at BIGINT,"
	" close_reason TEXT,"
	" peak_users BIGINT NOT NULL DEFAULT 0,"
	" last_seq BIGINT NOT NULL DEFAULT 0,"
	" last_session_seq BIGINT NOT NULL DEFAULT 0,"
	" ord BIGINT GENERATED BY DEFAULT AS IDENTITY"
	");"
	"CREATE TABLE room_admins ("
	" room_id TEXT NOT NULL REFERENCES rooms (id),"
	" user_id TEXT NOT NULL,"
	" ord BIGINT GENERATED BY DEFAULT AS IDENTITY,"
	" PRIMARY KEY (room_id, user_id)"
	");"
	"CREATE TABLE bans ("
	" id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	" room_id TEXT NOT NULL REFERENCES rooms (id),"
	" user_id TEXT NOT NULL,"
	" reason TEXT,"
	" created_at BIGINT NOT NULL,"
	" expires_at BIGINT,"
	" lifted_at BIGINT"
	");"
	"CREATE UNIQUE INDEX bans_active ON bans (room_id, user_id)"
	" WHERE lifted_at IS NULL;"
	"CREATE TABLE messages ("
	" id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	" room_id TEXT NOT NULL REFERENCES rooms (id),"
	" seq BIGINT NOT NULL CHECK (seq > 0),"
	" kind BIGINT NOT NULL CHECK (kind >= 0),"
	" user_id TEXT,"
	" nickname TEXT,"
	" is_admin BIGINT NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),"
	" content TEXT NOT NULL,"
	" event_type TEXT,"
	" created_at BIGINT NOT NULL,"
	" CHECK (kind <> 0 OR (user_id IS NOT NULL AND nickname IS NOT NULL)),"
	" CHECK (kind <> 1 OR event_type IS NOT NULL),"
	" UNIQUE (room_id, seq)"
	");"
	"CREATE INDEX messages_time ON messages (room_id, created_at, seq);"
	"CREATE TABLE sessions ("
	" id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	" room_id TEXT NOT NULL REFERENCES rooms (id),"
	" seq BIGINT NOT NULL CHECK (seq > 0),"
	" user_id TEXT NOT NULL,"
	" nickname TEXT NOT NULL,"
	" is_admin BIGINT NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),"
	" address TEXT,"
	" joined_at BIGINT NOT NULL,"
	" left_at BIGINT,"
	" leave_reason TEXT,"
	" UNIQUE (room_id, seq)"
	");"
	"CREATE INDEX sessions_time ON sessions (room_id, joined_at, seq);"
	"CREATE INDEX sessions_open ON sessions (room_id) WHERE left_at IS NULL;"
	"CREATE TABLE outbox ("
	" id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	" kind TEXT NOT NULL,"
	" room_id TEXT NOT NULL REFERENCES rooms (id),"
	" user_id TEXT,"
	" nickname TEXT,"
	" reason TEXT,"
	" session_id BIGINT REFERENCES sessions (id),"
	" data TEXT,"
	" created_at BIGINT NOT NULL"
	");"
	"CREATE TABLE sync_requests ("
	" id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	" reason TEXT NOT NULL,"
	" room_id TEXT REFERENCES rooms (id),"
	" created_at BIGINT NOT NULL,"
	" handled_at BIGINT"
	");"
	"CREATE INDEX sync_requests_pending ON sync_requests (id)"
	" WHERE handled_at IS NULL;"
	"CREATE TABLE cursors ("
	" target TEXT NOT NULL PRIMARY KEY,"
	" last_id BIGINT NOT NULL DEFAULT 0,"
	" delivery_id TEXT,"
	" batch_last_id BIGINT,"
	" attempts BIGINT NOT NULL DEFAULT 0,"
	" failing_since BIGINT,"
	" last_error TEXT,"
	" last_success_at BIGINT,"
	" lock_owner TEXT,"
	" lock_until BIGINT"
	");",
	/* 2: dead letters (see db_migrations_sqlite). */
	"CREATE TABLE dead_letters ("
	" id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	" target TEXT NOT NULL,"
	" delivery_id TEXT NOT NULL UNIQUE,"
	" after_id BIGINT NOT NULL,"
	" last_id BIGINT NOT NULL,"
	" row_count BIGINT NOT NULL,"
	" body TEXT,"
	" attempts BIGINT NOT NULL,"
	" last_status BIGINT,"
	" last_error TEXT,"
	" first_attempt_at BIGINT NOT NULL,"
	" last_attempt_at BIGINT NOT NULL,"
	" created_at BIGINT NOT NULL,"
	" replay_requested_at BIGINT"
	");"
	"CREATE INDEX dead_letters_target ON dead_letters (target, id);"
	"CREATE INDEX dead_letters_replay ON dead_letters (target, id)"
	" WHERE replay_requested_at IS NOT NULL;",
	/* 3: several chatd nodes on one database (see db_migrations_sqlite). */
	"ALTER TABLE sessions ADD COLUMN node_id TEXT NOT NULL DEFAULT '';"
	"CREATE INDEX sessions_node_open ON sessions (node_id) WHERE left_at IS NULL;"
	"CREATE TABLE nodes ("
	" id TEXT PRIMARY KEY,"
	" incarnation TEXT NOT NULL,"
	" started_at BIGINT NOT NULL,"
	" seen_at BIGINT NOT NULL,"
	" stopped_at BIGINT,"
	" connections BIGINT NOT NULL DEFAULT 0,"
	" reaped_at BIGINT"
	");"
	"CREATE TABLE rate_marks ("
	" room_id TEXT NOT NULL,"
	" user_id TEXT NOT NULL,"
	" at BIGINT NOT NULL,"
	" PRIMARY KEY (room_id, user_id)"
	");",
};
_Static_assert(sizeof db_migrations_pg / sizeof db_migrations_pg[0] == DB_SCHEMA_VERSION,
    "PostgreSQL needs a step for every schema version");

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

/*
 * The statements that give a new id or a bumped counter: SQLite runs them
 * as they are, PostgreSQL with RETURNING (db.c takes a returned row when
 * there is one: db_exec_first()).
 */
#define DB_SQL_SYNC_INSERT \
	"INSERT INTO sync_requests (reason, room_id, created_at) VALUES (?1, ?2, ?3)"
#define DB_SQL_MESSAGE_SEQ "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?1"
#define DB_SQL_MESSAGE_INSERT \
	"INSERT INTO messages (room_id, seq, kind, user_id, nickname, is_admin, content," \
	" event_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
#define DB_SQL_SESSION_SEQ "UPDATE rooms SET last_session_seq = last_session_seq + 1 WHERE id = ?1"
#define DB_SQL_SESSION_INSERT \
	"INSERT INTO sessions (room_id, seq, user_id, nickname, is_admin, address, joined_at," \
	" node_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"

static const char *const db_sql_sqlite[DB_STMT_COUNT] = {
	[DB_STMT_ROOM_INSERT] = "INSERT INTO rooms (id, name, created_at) VALUES (?1, ?2, ?3)",
	[DB_STMT_ROOM_EXISTS] = "SELECT 1 FROM rooms WHERE id = ?1",
	[DB_STMT_ROOM_GET] = "SELECT " DB_ROOM_COLUMNS " FROM rooms r WHERE r.id = ?1",
	/*
	 * One query for rooms and admins: rows of a room are adjacent; rooms
	 * made in the same millisecond and a room's admins keep the order
	 * they were inserted in (SQLite's rowid; see db_sql_pg).
	 */
	[DB_STMT_ROOM_LIST] =
	    "SELECT " DB_ROOM_COLUMNS ", a.user_id FROM rooms r"
	    " LEFT JOIN room_admins a ON a.room_id = r.id"
	    " WHERE " DB_SQL_TRUE("?1") " OR r.closed_at IS NULL"
					" ORDER BY r.created_at, r.rowid, a.rowid",
	[DB_STMT_ROOM_CLOSE] = "UPDATE rooms SET closed_at = ?2, close_reason = ?3"
			       " WHERE id = ?1 AND closed_at IS NULL",
	/* Not max(a, b), which is SQLite's alone (PostgreSQL says GREATEST). */
	[DB_STMT_ROOM_PEAK] =
	    "UPDATE rooms SET peak_users ="
	    " CASE WHEN peak_users < ?2 THEN ?2 ELSE peak_users END WHERE id = ?1",
	/* Drops duplicate admins (the first keeps its place); unlike OR IGNORE,
	 * still refuses a NULL. */
	[DB_STMT_ADMIN_INSERT] = "INSERT INTO room_admins (room_id, user_id) VALUES (?1, ?2)"
				 " ON CONFLICT DO NOTHING",
	/* rowid: the admins' insertion order. */
	[DB_STMT_ADMIN_LIST] = "SELECT user_id FROM room_admins WHERE room_id = ?1 ORDER BY rowid",
	[DB_STMT_OUTBOX_INSERT] = "INSERT INTO outbox (kind, room_id, user_id, nickname, reason,"
				  " session_id, data, created_at)"
				  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[DB_STMT_SYNC_INSERT] = DB_SQL_SYNC_INSERT,

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
	 * New ids come from the backend's last_insert_id(), and a bumped
	 * counter is read back by the *_LAST_SEQ statement. No RETURNING here
	 * or below on SQLite: it buffers the rows in an ephemeral table whose
	 * set-up and tear-down halved append throughput. (PostgreSQL's texts
	 * have it: each saves a round trip; see db_sql_pg.)
	 */
	[DB_STMT_MESSAGE_SEQ] = DB_SQL_MESSAGE_SEQ,
	[DB_STMT_MESSAGE_LAST_SEQ] = "SELECT last_seq FROM rooms WHERE id = ?1",
	[DB_STMT_MESSAGE_INSERT] = DB_SQL_MESSAGE_INSERT,
	[DB_STMT_MESSAGE_FIRST] = "SELECT seq FROM messages WHERE room_id = ?1 AND created_at >= ?2"
				  " ORDER BY created_at, seq LIMIT 1",
	[DB_STMT_MESSAGE_LAST] = "SELECT seq FROM messages WHERE room_id = ?1 AND created_at <= ?2"
				 " ORDER BY created_at DESC, seq DESC LIMIT 1",
	[DB_STMT_MESSAGE_RANGE] = "SELECT " DB_MESSAGE_COLUMNS " FROM messages"
				  " WHERE room_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
	[DB_STMT_MESSAGE_ID_AT] = "SELECT id FROM messages WHERE room_id = ?1 AND seq = ?2",

	[DB_STMT_SESSION_SEQ] = DB_SQL_SESSION_SEQ,
	[DB_STMT_SESSION_LAST_SEQ] = "SELECT last_session_seq FROM rooms WHERE id = ?1",
	[DB_STMT_SESSION_OPEN_GET] =
	    "SELECT room_id, user_id, nickname, is_admin, seq FROM sessions"
	    " WHERE id = ?1 AND left_at IS NULL",
	[DB_STMT_SESSION_CLOSED_GET] =
	    "SELECT room_id, user_id, nickname, is_admin, address, node_id, left_at IS NOT NULL"
	    " FROM sessions WHERE id = ?1",
	[DB_STMT_NODE_REAPED] = "SELECT 1 FROM nodes WHERE id = ?1 AND incarnation = ?2"
				" AND reaped_at IS NOT NULL",
	[DB_STMT_SESSION_INSERT] = DB_SQL_SESSION_INSERT,
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
	/* The backlog counts: the subqueries' aliases are PostgreSQL's requirement. */
	[DB_STMT_BACKLOG_OUTBOX] = "SELECT count(*), min(created_at), max(id) FROM"
				   " (SELECT id, created_at FROM outbox WHERE id > ?1"
				   " ORDER BY id LIMIT ?2) AS t",
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
	    " ORDER BY id LIMIT ?2) AS t",
	[DB_STMT_BACKLOG_SESSIONS] = "SELECT count(*), min(created_at), max(id) FROM"
				     " (SELECT id, created_at FROM outbox WHERE id > ?1"
				     " AND kind = 'user_left' ORDER BY id LIMIT ?2) AS t",
	[DB_STMT_BACKLOG_SYNC] = "SELECT count(*), min(created_at), max(id) FROM"
				 " (SELECT id, created_at FROM sync_requests WHERE id > ?1"
				 " ORDER BY id LIMIT ?2) AS t",
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
	[DB_STMT_DEAD_LIST] =
	    "SELECT " DB_DEAD_COLUMNS ", NULL FROM dead_letters"
	    " WHERE (" DB_SQL_NULL_TEXT("?1") " OR target = ?1) AND id > ?2 ORDER BY id LIMIT ?3",
	[DB_STMT_DEAD_GET] = "SELECT " DB_DEAD_COLUMNS ", NULL FROM dead_letters WHERE id = ?1",
	[DB_STMT_DEAD_NEXT_REPLAY] = "SELECT " DB_DEAD_COLUMNS ", body FROM dead_letters"
				     " WHERE target = ?1 AND replay_requested_at IS NOT NULL"
				     " ORDER BY id LIMIT 1",
	[DB_STMT_DEAD_MARK_ONE] = "UPDATE dead_letters SET replay_requested_at ="
				  " coalesce(replay_requested_at, ?2) WHERE id = ?1",
	[DB_STMT_DEAD_MARK_ALL] =
	    "UPDATE dead_letters SET replay_requested_at = ?2"
	    " WHERE (" DB_SQL_NULL_TEXT("?1") " OR target = ?1)"
					      " AND replay_requested_at IS NULL",
	[DB_STMT_DEAD_DELETE] = "DELETE FROM dead_letters WHERE id = ?1",
	[DB_STMT_DEAD_REPLAY_FAIL] =
	    "UPDATE dead_letters SET attempts = attempts + 1, last_status = ?2,"
	    " last_error = ?3, last_attempt_at = ?4,"
	    " replay_requested_at = CASE WHEN " DB_SQL_TRUE("?5") " THEN NULL"
								  " ELSE replay_requested_at END"
								  " WHERE id = ?1",
	[DB_STMT_DEAD_COUNTS] = "SELECT count(*), count(replay_requested_at) FROM dead_letters"
				" WHERE " DB_SQL_NULL_TEXT("?1") " OR target = ?1",

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
	/* A truth value: SQLite's is an integer, PostgreSQL's a boolean; both read as 0 or 1. */
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

/* PostgreSQL's text where it differs; NULL: db_sql_sqlite's serves. */
static const char *const db_sql_pg[DB_STMT_COUNT] = {
	/* ord: PostgreSQL has no rowid; db_migrations_pg gives these tables one. */
	[DB_STMT_ROOM_LIST] = "SELECT " DB_ROOM_COLUMNS ", a.user_id FROM rooms r"
			      " LEFT JOIN room_admins a ON a.room_id = r.id"
			      " WHERE " DB_SQL_TRUE("?1") " OR r.closed_at IS NULL"
							  " ORDER BY r.created_at, r.ord, a.ord",
	[DB_STMT_ADMIN_LIST] = "SELECT user_id FROM room_admins WHERE room_id = ?1 ORDER BY ord",
	/*
	 * RETURNING: the new id or counter comes back with the write, where
	 * SQLite's texts need a second statement (a round trip to the server:
	 * lastval(), the *_LAST_SEQ read).
	 */
	[DB_STMT_SYNC_INSERT] = DB_SQL_SYNC_INSERT " RETURNING id",
	[DB_STMT_MESSAGE_SEQ] = DB_SQL_MESSAGE_SEQ " RETURNING last_seq",
	[DB_STMT_MESSAGE_INSERT] = DB_SQL_MESSAGE_INSERT " RETURNING id",
	[DB_STMT_SESSION_SEQ] = DB_SQL_SESSION_SEQ " RETURNING last_session_seq",
	[DB_STMT_SESSION_INSERT] = DB_SQL_SESSION_INSERT " RETURNING id",
	/*
	 * A chat message in one statement: the room's counter and the row
	 * together (SQLite runs MESSAGE_SEQ and MESSAGE_INSERT, which cost it
	 * nothing extra in-process). No row: no such room. The casts: values
	 * in an INSERT's SELECT list take no type from the target columns.
	 */
	[DB_STMT_MESSAGE_APPEND] =
	    "WITH r AS (UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq)"
	    " INSERT INTO messages (room_id, seq, kind, user_id, nickname, is_admin, content,"
	    " event_type, created_at) SELECT ?1, r.last_seq, CAST(?2 AS BIGINT),"
	    " CAST(?3 AS TEXT), CAST(?4 AS TEXT), CAST(?5 AS BIGINT), CAST(?6 AS TEXT),"
	    " CAST(?7 AS TEXT), CAST(?8 AS BIGINT) FROM r RETURNING id, seq",
};

const char *
db_sql_text(enum db_dialect dialect, enum db_stmt which)
{
	if (dialect == DB_DIALECT_PG && db_sql_pg[which] != NULL)
		return db_sql_pg[which];
	return db_sql_sqlite[which];
}

const char *
db_sql_migration(enum db_dialect dialect, int step)
{
	if (step < 1 || step > DB_SCHEMA_VERSION)
		return NULL;
	return dialect == DB_DIALECT_PG ? db_migrations_pg[step - 1]
					: db_migrations_sqlite[step - 1];
}
