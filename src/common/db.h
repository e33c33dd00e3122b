/*
 * The one module that writes SQL. Opens the shared SQLite file (WAL, busy
 * timeout, foreign keys, synchronous=NORMAL), owns the whole schema and its
 * migrations (PRAGMA user_version), and offers typed operations to every
 * program. All SQL uses prepared statements with bound parameters.
 *
 * A struct db is one connection: use it from one thread at a time.
 * Times are milliseconds since the Unix epoch unless a name says _s.
 *
 * Return convention: DB_OK (0), DB_NOTFOUND, DB_CONFLICT, or DB_ERROR (-1)
 * with a heap-allocated message in *cause (caller frees). *cause is set
 * only for DB_ERROR.
 *
 * Callbacks (each()) run while a statement is stepping: they may call other
 * db_ functions on the same connection, but not the one that called them,
 * and a page callback must not start a transaction of its own.
 *
 * See docs/storage.md for the tables and the rules they keep.
 */
#ifndef CHAT_DB_H
#define CHAT_DB_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define DB_OK 0
#define DB_ERROR (-1)
#define DB_NOTFOUND 1
#define DB_CONFLICT 2

/* Bump with every migration added in db_sql.c (one step per engine). */
#define DB_SCHEMA_VERSION 3

struct db;

/*
 * Opens the database at path and brings its schema to DB_SCHEMA_VERSION.
 * path is a SQLite file (created if missing; its folder must be writable
 * for the -wal and -shm files) or a PostgreSQL URI (dbaddr.h; the
 * database must exist, its tables are made here).
 */
int db_open(const char *path, struct db **out, char **cause);
/*
 * db_open() of a database that must exist already (chatctl, which must
 * not leave an empty database where the operator's is not): DB_NOTFOUND,
 * without *cause, when there is no SQLite file at path or the database
 * has none of our tables yet (schema version 0: a PostgreSQL database made
 * for chatd that no program has used); its schema is not made here. (A
 * PostgreSQL database is never created: one that is missing is DB_ERROR.)
 */
int db_open_existing(const char *path, struct db **out, char **cause);
/* NULL is allowed. An open db_tx_begin() transaction is rolled back. */
void db_close(struct db *db);
/* The database's schema version, or -1. */
int db_schema_version(struct db *db);
/* "sqlite" or "postgresql". */
const char *db_backend_name(const struct db *db);

/*
 * A named lock, taken without waiting, that one process at a time holds
 * among all the processes on all the machines sharing the database
 * (SQLite: flock on a file next to the database; PostgreSQL: an advisory
 * lock). It ends with db_lock_release(), db_close() or the process, so a
 * killed holder leaves nothing stale. DB_OK taken (or already held by
 * this connection), DB_CONFLICT held by another, DB_ERROR with *cause.
 * name: up to 64 characters of [A-Za-z0-9_.-].
 */
int db_lock_try(struct db *db, const char *name, char **cause);
/* Releases a lock this connection holds; anything else is a no-op. */
void db_lock_release(struct db *db, const char *name);

/* How long a writer waits for the write lock before DB_ERROR. */
#define DB_BUSY_TIMEOUT_MS 5000
/*
 * Whether a failure since the last db_failure_reset() was another process
 * holding the database locked for longer than the busy timeout: worth a
 * retry later (chat-api answers 503 with Retry-After), unlike a broken
 * database. The reset clears db_failure_transient() too.
 */
void db_failure_reset(struct db *db);
int db_failure_was_busy(const struct db *db);
/*
 * Whether the latest failure may go away by itself: a full disk, an I/O
 * error, a lock held too long, a read-only remount. Then the same write may
 * succeed later (chatd's writer retries session records). A constraint, a
 * missing table or a bad value fails the same way every time.
 */
int db_failure_transient(const struct db *db);

/*
 * Takes this connection's WAL checkpoints out of its commits: SQLite's
 * automatic checkpoint (which runs inside the commit that crosses 1,000
 * WAL pages, fsyncs included) is turned off, and hook(arg, wal_pages)
 * runs on the committing thread after each commit instead, so that the
 * owner can have db_checkpoint() run on a connection of its own. chatd's
 * writer does this: a checkpoint's fsyncs took up to 17 ms on a VM, all
 * of it between a message and its broadcast.
 */
void db_wal_hook(struct db *db, void (*hook)(void *arg, int wal_pages), void *arg);
/*
 * A passive checkpoint: copies what it can from the WAL into the database
 * without waiting for readers or the writer. *wal_pages is the WAL's size
 * and *done_pages how much of it is now in the database (equal when
 * complete); either may be NULL.
 */
int db_checkpoint(struct db *db, int *wal_pages, int *done_pages, char **cause);

/*
 * Groups the writes that follow into one BEGIN IMMEDIATE transaction, one
 * commit (chatd's group commit, bulk loads). Each write function keeps its
 * own all-or-nothing behaviour inside it (a savepoint), so one failed
 * operation does not spoil the rest of the batch. DB_ERROR if a
 * transaction is already open.
 */
int db_tx_begin(struct db *db, char **cause);
/* On failure the whole transaction is rolled back. */
int db_tx_commit(struct db *db, char **cause);
void db_tx_rollback(struct db *db);
/*
 * Whether a db_tx_begin() transaction is still open. After some failures
 * (SQLITE_FULL, SQLITE_IOERR while a statement spills to disk) SQLite
 * rolls the whole transaction back by itself, and every write of the batch
 * before the failure is gone with it.
 */
int db_tx_open(const struct db *db);

/* ---- rooms ---- */

/* The limits of ids, names and reasons live in model.h. */

struct db_room {
	char *id;
	char *name;
	int64_t created_at;
	int64_t closed_at; /* 0 while open */
	char *close_reason; /* NULL while open */
	int64_t peak_users;
	int64_t last_seq; /* highest message sequence number, 0 if none */
	char **admins;
	size_t n_admins;
};
void db_room_clear(struct db_room *room);

/*
 * Creates a room with its admins, a room_created outbox event and a sync
 * request, in one transaction. DB_CONFLICT if the id exists.
 */
int db_room_create(struct db *db, const char *id, const char *name, const char *const *admins,
    size_t n_admins, int64_t now, char **cause);
/* Fills *room (caller clears). DB_NOTFOUND if no such room. */
int db_room_get(struct db *db, const char *id, struct db_room *room, char **cause);
/*
 * Calls each() for every room in creation order (closed ones only when
 * include_closed). each() returning non-zero stops the walk. The room is
 * only valid during the call.
 */
int db_room_list(struct db *db, int include_closed,
    int (*each)(const struct db_room *room, void *arg), void *arg, char **cause);
/*
 * Marks a room closed with a reason, records a room_closed outbox event
 * and a sync request. DB_NOTFOUND if absent, DB_CONFLICT if already closed.
 */
int db_room_close(struct db *db, const char *id, const char *reason, int64_t now, char **cause);
/* Raises rooms.peak_users to peak if it is higher. DB_NOTFOUND if absent. */
int db_room_peak_update(struct db *db, const char *id, int64_t peak, char **cause);

/* ---- bans ---- */

struct db_ban {
	char *room_id;
	char *user_id;
	char *reason; /* may be NULL */
	int64_t created_at;
	int64_t expires_at; /* 0: permanent */
};
void db_ban_clear(struct db_ban *ban);

/*
 * Bans a user from a room (replacing an active ban of that user).
 * expires_at 0 means permanent. DB_NOTFOUND if the room does not exist.
 */
int db_ban_add(struct db *db, const char *room_id, const char *user_id, const char *reason,
    int64_t expires_at, int64_t now, char **cause);
/* Lifts the active ban. DB_NOTFOUND if the user has none in force. */
int db_ban_lift(struct db *db, const char *room_id, const char *user_id, int64_t now, char **cause);
/* Calls each() for every ban in force at now (not lifted, not expired), in
 * creation order. DB_NOTFOUND if the room does not exist. */
int db_ban_list(struct db *db, const char *room_id, int64_t now,
    int (*each)(const struct db_ban *ban, void *arg), void *arg, char **cause);

/* ---- sync requests (picked up by chat-sync) ---- */

/* Records a sync request (room_id may be NULL) and returns its id in
 * *request_id (may be NULL). DB_NOTFOUND if room_id names no room. */
int db_sync_request(struct db *db, const char *reason, const char *room_id, int64_t now,
    int64_t *request_id, char **cause);

/* ---- history ---- */

/*
 * Pages are addressed by per-room sequence numbers, which chatd assigns
 * without gaps (messages.seq and sessions.seq both start at 1). A time
 * window maps to a contiguous seq range found with two index probes, so
 * any page costs the same as the first, however deep.
 */
struct db_page_query {
	const char *room_id;
	int64_t from_s; /* inclusive lower bound, Unix seconds; -1: none */
	int64_t to_s; /* inclusive upper bound, Unix seconds; -1: none */
	int64_t page; /* from 1 */
	int64_t limit; /* rows per page, > 0 */
};

struct db_page_info {
	int64_t total; /* rows in the window */
	int64_t first_seq; /* seq of the first row on this page, 0 if empty */
	int has_more; /* a later page exists */
};

#define DB_MESSAGE_CHAT 0
#define DB_MESSAGE_CUSTOM 1

struct db_message {
	int64_t id;
	const char *room_id;
	int64_t seq;
	int kind; /* DB_MESSAGE_CHAT or DB_MESSAGE_CUSTOM */
	const char *user_id;
	const char *nickname;
	int is_admin;
	const char *content; /* chat text, or the CustomEvent payload as JSON text */
	const char *event_type; /* CustomEvent only, else NULL */
	int64_t created_at;
};

struct db_session {
	int64_t id;
	const char *room_id;
	int64_t seq;
	const char *user_id;
	const char *nickname;
	int is_admin;
	const char *address; /* may be NULL */
	int64_t joined_at;
	int64_t left_at; /* 0 while open */
	const char *leave_reason; /* NULL while open */
};

/*
 * The room must exist (DB_NOTFOUND otherwise; closed rooms keep their
 * history). A negative from_s or to_s means no bound; page and limit below
 * 1 are DB_ERROR. Rows are valid only during each(); each() returning
 * non-zero stops the walk (still DB_OK). info may be NULL. The window
 * assumes created_at (joined_at) grows with seq, as chatd writes them.
 */
int db_messages_page(struct db *db, const struct db_page_query *q,
    int (*each)(const struct db_message *m, void *arg), void *arg, struct db_page_info *info,
    char **cause);
int db_sessions_page(struct db *db, const struct db_page_query *q,
    int (*each)(const struct db_session *s, void *arg), void *arg, struct db_page_info *info,
    char **cause);

/*
 * Calls each() for the room's messages with from_seq <= seq <= to_seq in
 * seq order, chat and custom alike (a node reading what it missed on the
 * bus). A room that does not exist has no messages (DB_OK, no call). Rows
 * are valid only during each(); each() returning non-zero stops the walk
 * (still DB_OK).
 */
int db_messages_range(struct db *db, const char *room_id, int64_t from_seq, int64_t to_seq,
    int (*each)(const struct db_message *m, void *arg), void *arg, char **cause);

/*
 * Appends one message with the room's next seq (also used by tests and the
 * benchmark to load history). chatd batches many into one transaction
 * through the writer API added with it.
 */
int db_message_append(struct db *db, const char *room_id, int kind, const char *user_id,
    const char *nickname, int is_admin, const char *content, const char *event_type,
    int64_t created_at, int64_t *id, int64_t *seq, char **cause);

/* ---- sessions (one row per WebSocket join) ---- */

/*
 * Opens a session with the room's next session seq and records a
 * user_joined outbox event, in one transaction. node_id names the chatd
 * node holding the connection (NULL or "": a chatd on its own).
 */
int db_session_open(struct db *db, const char *node_id, const char *room_id, const char *user_id,
    const char *nickname, int is_admin, const char *address, int64_t joined_at, int64_t *id,
    char **cause);
/* Closes an open session with a reason and records user_left.
 * DB_NOTFOUND if no open session has that id. */
int db_session_close(struct db *db, int64_t id, const char *reason, int64_t left_at, char **cause);
/*
 * A session a lost-node reap closed while its connection lived on (the
 * node only stalled): a new open session for the same room, user, node
 * and address from now (user_joined recorded), its id in *new_id. A
 * session still open keeps its id. DB_NOTFOUND if there is no such row.
 */
int db_session_reopen(struct db *db, int64_t id, int64_t now, int64_t *new_id, char **cause);
/* Whether this run (incarnation) of node id was reaped since its last beat. */
int db_node_was_reaped(
    struct db *db, const char *id, const char *incarnation, int *reaped, char **cause);
/*
 * Closes every open session (with user_left events), in one transaction:
 * chatd calls it at start, since sessions left open by a crash have no
 * connection behind them. *closed (may be NULL) gets how many.
 */
int db_sessions_close_all(
    struct db *db, const char *reason, int64_t left_at, int64_t *closed, char **cause);
/*
 * db_sessions_close_all() for the open sessions of one node only (NULL:
 * ""): a node starting again closes what its previous run left open
 * while the other nodes' sessions stay.
 */
int db_sessions_close_node(struct db *db, const char *node_id, const char *reason, int64_t left_at,
    int64_t *closed, char **cause);

/* Per-room counts for consistency checks and the health route. */
struct db_room_counts {
	int64_t message_count;
	int64_t last_message_id;
	int64_t last_seq;
	int64_t session_count;
	int64_t open_sessions;
};
int db_room_counts(struct db *db, const char *room_id, struct db_room_counts *out, char **cause);
/*
 * Whether room_id is closed and user_id banned from it at now (Unix ms),
 * as the database has it: a chatd node checks a join against the record,
 * which another node or chat-api may have changed a moment ago.
 * DB_NOTFOUND if no such room.
 */
int db_join_state(struct db *db, const char *room_id, const char *user_id, int64_t now, int *closed,
    int *banned, char **cause);

/*
 * The per-user rate limit across chatd nodes, inside a writer's
 * transaction (so the nodes' checks take turns): db_rate_check gives how
 * long until user_id may post in room_id at `at` (0: now) given their
 * last recorded post; db_rate_mark records a post at `at` (never moving
 * the mark back). db_rate_prune forgets marks older than before, which
 * no check can hit any more. Times are Unix ms. A mark or prune is an
 * operation of its own (a savepoint inside a batch): one that fails
 * leaves the batch usable.
 */
int db_rate_check(struct db *db, const char *room_id, const char *user_id, int64_t at,
    int64_t interval_ms, int64_t *wait_ms, char **cause);
int db_rate_mark(struct db *db, const char *room_id, const char *user_id, int64_t at, char **cause);
int db_rate_prune(struct db *db, int64_t before, char **cause);

/*
 * The room's highest message seq (0 if none): one indexed read, for a
 * chatd node catching up on what other nodes committed. DB_NOTFOUND if no
 * such room.
 */
int db_room_last_seq(struct db *db, const char *room_id, int64_t *last_seq, char **cause);

/* One open session: who is in a room now, as the database knows it. */
struct db_occupant {
	int64_t session_id;
	const char *user_id;
	const char *nickname;
	int is_admin;
	int64_t joined_at;
};
/*
 * Calls each() for the room's open sessions in join order, at most limit
 * of them (the periodic sync's occupant snapshot). Rows are valid only
 * during each(); each() returning non-zero stops the walk (DB_OK).
 */
int db_room_occupants(struct db *db, const char *room_id, int64_t limit,
    int (*each)(const struct db_occupant *o, void *arg), void *arg, char **cause);

/* Database-wide figures for GET /management/health. */
struct db_health {
	int64_t rooms_open;
	int64_t rooms_closed;
	int64_t pending_sync_requests;
	int64_t outbox_events;
};
int db_health(struct db *db, struct db_health *out, char **cause);

/* ---- chat-sync: delivery cursors, feeds and backlog ---- */

/*
 * One callback target's cursor (cursors table). Everything up to last_id
 * was answered with a 2xx. A batch in flight has its delivery id and last
 * source id stored before its first attempt, so a retry, even by the next
 * process after a crash, resends the same rows under the same id.
 */
struct db_cursor {
	int64_t last_id;
	char *delivery_id; /* NULL: no batch in flight */
	int64_t batch_last_id; /* 0 with delivery_id NULL */
	int64_t attempts; /* failed attempts of the batch in flight */
	int64_t failing_since; /* 0: not failing */
	char *last_error;
	int64_t last_success_at; /* 0: never */
};
void db_cursor_clear(struct db_cursor *c);
/* Fills *c (caller clears); a target never delivered reads as all zero. */
int db_cursor_get(struct db *db, const char *target, struct db_cursor *c, char **cause);
/*
 * Records the batch about to be sent. DB_CONFLICT when the cursor is no
 * longer at last_id (another process delivered meanwhile).
 */
int db_cursor_batch(struct db *db, const char *target, int64_t last_id, const char *delivery_id,
    int64_t batch_last_id, char **cause);
/* After a 2xx: moves the cursor from last_id to new_last_id, clears the
 * batch and the failure state. DB_CONFLICT if it is no longer at last_id. */
int db_cursor_done(struct db *db, const char *target, int64_t last_id, int64_t new_last_id,
    int64_t now, char **cause);
/*
 * db_cursor_done() and db_cursor_batch() for the next batch in one write
 * transaction: after a 2xx for the batch from last_id to new_last_id,
 * moves the cursor to new_last_id and records the batch about to be sent
 * after it (next_delivery_id, rows up to next_batch_last_id, which must
 * be above new_last_id). All or nothing: DB_CONFLICT, with nothing
 * changed, if the cursor is no longer at last_id.
 */
int db_cursor_done_next(struct db *db, const char *target, int64_t last_id, int64_t new_last_id,
    int64_t now, const char *next_delivery_id, int64_t next_batch_last_id, char **cause);
/* Counts a failed attempt (failing_since keeps the first). */
int db_cursor_fail(struct db *db, const char *target, const char *error, int64_t now, char **cause);

/* An outbox row (room event); strings are valid only during each(). */
struct db_event {
	int64_t id;
	const char *kind; /* room_created, room_closed, user_joined, user_left */
	const char *room_id;
	const char *user_id; /* user events, else NULL */
	const char *nickname;
	const char *reason; /* room_closed, user_left, else NULL */
	int64_t session_id; /* user events, else 0 */
	const char *data; /* JSON object text (docs/storage.md), may be NULL */
	int64_t created_at;
};

/*
 * Stream at most limit rows with after < id <= upto in id order, one row
 * at a time (nothing is loaded ahead): room events, messages (any room),
 * and completed sessions in completion order (the id given to each() is
 * that of the session's user_left event, the sessions feed's cursor).
 * each() returning non-zero stops the walk (still DB_OK).
 */
int db_feed_events(struct db *db, int64_t after, int64_t upto, int64_t limit,
    int (*each)(const struct db_event *e, void *arg), void *arg, char **cause);
int db_feed_messages(struct db *db, int64_t after, int64_t upto, int64_t limit,
    int (*each)(const struct db_message *m, void *arg), void *arg, char **cause);
int db_feed_sessions(struct db *db, int64_t after, int64_t upto, int64_t limit,
    int (*each)(const struct db_session *s, int64_t event_id, void *arg), void *arg, char **cause);

enum db_feed {
	DB_FEED_EVENTS, /* outbox ids */
	DB_FEED_MESSAGES, /* messages ids */
	DB_FEED_SESSIONS, /* outbox ids of user_left events */
	DB_FEED_SYNC_REQUESTS, /* sync_requests ids */
};
struct db_backlog {
	int64_t count; /* rows after the cursor (at most the limit asked) */
	int64_t oldest_at; /* created_at of the oldest of them, 0 if none */
	int64_t last_id; /* highest id among them, 0 if none */
};
/* Rows of a feed after id after, counting at most limit (<= 0: all). */
int db_backlog(struct db *db, enum db_feed feed, int64_t after, int64_t limit,
    struct db_backlog *out, char **cause);
/* Marks every sync request up to id upto handled at now. */
int db_sync_requests_handled(struct db *db, int64_t upto, int64_t now, char **cause);

/* ---- chat-sync: dead letters (docs/callbacks.md) ---- */

/*
 * A batch set aside after too many failed attempts, so that delivery of
 * its target goes on. It covers the rows with after_id < id <= last_id of
 * its target's feed (sync request ids for the snapshot targets); a
 * snapshot's letter also keeps the exact body, since the state it showed
 * is gone. The rows stay in the database (none is ever deleted).
 */
struct db_dead_letter {
	int64_t id;
	char *target; /* a cursor name: room_events, chat_history, ... */
	char *delivery_id; /* the batch's webhook-id, reused by a replay */
	int64_t after_id;
	int64_t last_id;
	int64_t count; /* rows (sync requests for a snapshot) */
	char *body; /* snapshot targets' body; NULL for feeds and in listings */
	size_t body_len;
	int64_t attempts; /* failed attempts, replays included */
	int64_t last_status; /* HTTP status of the last attempt; 0: no answer */
	char *last_error;
	int64_t first_attempt_at; /* Unix ms: the first failure */
	int64_t last_attempt_at;
	int64_t created_at; /* set aside at */
	int64_t replay_requested_at; /* 0: not marked for replay */
};
void db_dead_letter_clear(struct db_dead_letter *d);
/*
 * Sets the batch in flight aside: records d (its id and created_at are
 * ignored; now is used) and moves the target's cursor from d->after_id to
 * d->last_id, clearing the batch and its failure state, in one
 * transaction. DB_CONFLICT, with nothing written, if the cursor no longer
 * holds that batch (d->after_id, d->delivery_id).
 */
int db_dead_letter_add(struct db *db, const struct db_dead_letter *d, int64_t now, char **cause);
/* Streams the letters of target (NULL: all) with id > after in id order,
 * at most limit (<= 0: all), without bodies. each() returning non-zero
 * stops the walk (DB_OK); *d is freed after each() returns. */
int db_dead_letter_list(struct db *db, const char *target, int64_t after, int64_t limit,
    int (*each)(const struct db_dead_letter *d, void *arg), void *arg, char **cause);
/* Fills *d without the body (caller clears). DB_NOTFOUND if no such id. */
int db_dead_letter_get(struct db *db, int64_t id, struct db_dead_letter *d, char **cause);
/* The oldest letter of target marked for replay, with its body (caller
 * clears). DB_NOTFOUND if none is marked. */
int db_dead_letter_next_replay(
    struct db *db, const char *target, struct db_dead_letter *d, char **cause);
/*
 * Marks for replay (chat-sync resends it): letter id, or with id 0 every
 * unmarked letter of target (NULL: all). *marked (may be NULL) gets how
 * many were newly marked. DB_NOTFOUND if id names no letter; marking a
 * marked letter again changes nothing and is DB_OK.
 */
int db_dead_letter_replay(
    struct db *db, int64_t id, const char *target, int64_t now, int64_t *marked, char **cause);
/* Deletes a letter: after its replay got a 2xx, or an operator's discard.
 * DB_NOTFOUND if no such id. */
int db_dead_letter_discard(struct db *db, int64_t id, char **cause);
/* Counts a failed replay attempt (status 0: no HTTP answer); give_up
 * clears the replay mark. DB_NOTFOUND if the letter is gone. */
int db_dead_letter_replay_fail(struct db *db, int64_t id, int64_t status, const char *error,
    int64_t now, int give_up, char **cause);
/* Letters of target (NULL: all), and how many of them are marked for replay. */
int db_dead_letter_counts(
    struct db *db, const char *target, int64_t *total, int64_t *replay, char **cause);

/* ---- nodes (chatd processes sharing the database) ---- */

/*
 * One row per node id: its liveness as the database sees it. Each node
 * refreshes seen_at every heartbeat; the incarnation tells one run of a
 * node from the next under the same id. Ids are not NULL.
 */
struct db_node {
	const char *id;
	const char *incarnation;
	int64_t started_at, seen_at; /* Unix ms */
	int64_t stopped_at; /* 0: not stopped cleanly */
	int64_t connections;
	int64_t reaped_at; /* 0: not reaped */
};
/*
 * Upserts the node's row: incarnation, started_at, seen_at = now,
 * connections; clears stopped_at and reaped_at (a beat after a reap
 * makes the node reapable again once it goes quiet).
 */
int db_node_beat(struct db *db, const char *id, const char *incarnation, int64_t started_at,
    int64_t now, int64_t connections, char **cause);
/* A clean stop: stopped_at = now, only if the row's incarnation is still
 * this one (DB_NOTFOUND otherwise: the node has started again since). */
int db_node_stop(struct db *db, const char *id, const char *incarnation, int64_t now, char **cause);
/*
 * Calls each() for every node row ordered by id; each() returning
 * non-zero stops the walk (DB_OK still). Strings are valid during the
 * call only.
 */
int db_node_list(
    struct db *db, int (*each)(const struct db_node *n, void *arg), void *arg, char **cause);
/*
 * One node's row into *out, its strings heap copies that db_node_clear()
 * frees (the caller clears). DB_NOTFOUND, *out zeroed, if none.
 */
int db_node_get(struct db *db, const char *id, struct db_node *out, char **cause);
/* Frees db_node_get()'s strings; not for db_node_list()'s rows. */
void db_node_clear(struct db_node *n);
/*
 * Reaps a lost node, atomically in one transaction: only if its row's
 * seen_at < stale_before and stopped_at is NULL and (reaped_at is NULL
 * or reaped_at < seen_at), closes its open sessions (as
 * db_sessions_close_node(), with reason, left_at now) and sets
 * reaped_at = now. Returns DB_OK with *closed (may be NULL) = sessions
 * closed, or DB_NOTFOUND when the node is fresh, stopped, already reaped
 * or unknown (nothing changed). Several survivors may call it at once:
 * exactly one reaps.
 */
int db_node_reap(struct db *db, const char *id, int64_t stale_before, const char *reason,
    int64_t now, int64_t *closed, char **cause);
/*
 * What a node row says of the node at now (Unix ms), for people
 * (chatctl nodes, GET /management/health): "stopped" (a clean stop),
 * "lost" (reaped: silent too long, its sessions closed by a survivor),
 * "silent" (no beat for timeout_ms, CLUSTER_NODE_TIMEOUT_SECS, but not
 * reaped yet) or "alive". Reads nothing but n.
 */
const char *db_node_state(const struct db_node *n, int64_t now, int64_t timeout_ms);

#endif
