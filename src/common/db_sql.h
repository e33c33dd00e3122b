/*
 * The SQL db.c runs, for each engine: the migration steps and the text of
 * every statement. Only db.c includes this (through db_sql_text() and
 * db_sql_migration()), and its unit tests, which build old schemas and
 * look at query plans with it; no SQL is written anywhere else.
 *
 * Statement texts use ?N placeholders (?1 binds args[0]); the PostgreSQL
 * backend rewrites them to $N. Most texts serve both engines as they are;
 * where the dialects part (insertion order, DDL) db_sql.c has a text per
 * engine.
 */
#ifndef CHAT_DB_SQL_H
#define CHAT_DB_SQL_H

#include "db_backend.h"

/* Every statement this module runs, prepared once per connection. */
enum db_stmt {
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
	DB_STMT_MESSAGE_APPEND, /* seq and insert in one statement; NULL where the engine has none */
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

/* The text of a statement in the engine's dialect; NULL for one it does without. */
const char *db_sql_text(enum db_dialect dialect, enum db_stmt which);
/*
 * The migration step that brings the schema from version step - 1 to
 * step (1 <= step <= DB_SCHEMA_VERSION): one or more statements.
 */
const char *db_sql_migration(enum db_dialect dialect, int step);

#endif
