/*
 * The room registry and what happens inside a room: membership, head
 * counts and peak, bans and admins as chatd holds them, the rate limiter,
 * coalesced RoomStats pushes (with a libuv timer for the trailing one)
 * and the fan-out of frames to members (high lane at once, low lane in
 * bounded slices run from the loop's idle handle). Service thread only.
 * Writes go to the database through the writer; reads (loading a room)
 * use the service thread's connection. Frames and closes go down to
 * conn.c.
 */
#ifndef CHATD_ROOM_H
#define CHATD_ROOM_H

#include <stdint.h>

#include "chatd.h"

/*
 * Members served per slice of a low-priority fan-out before the loop
 * turns: a loop turn costs what is ready (epoll), so short turns are
 * cheap, and a CustomEvent or a chat message waits for the turn under
 * way (docs/benchmarks.md compares slice sizes). A room of this many
 * members or fewer, with nothing waiting, gets a low frame at once.
 */
#define ROOM_FANOUT_SLICE 16
/* Most waiting frames one fan-out pass hands each member at once. */
#define ROOM_FANOUT_PASS_MAX 64

/* Loads every open room with its bans and peak (start-up). */
int room_load_all(struct chatd *cd, char **cause);
/* A room already in memory, or NULL. */
struct room *room_find(struct chatd *cd, const char *id);
/*
 * The room in memory, else loaded from the database. NULL with *status 404
 * when no such room exists, 503 on a database failure that may go away (the
 * PostgreSQL server restarting), 500 on another database error (logged).
 */
struct room *room_lookup(struct chatd *cd, const char *id, int *status);
/*
 * (Re)reads a room's name, admins, closed state and bans from the
 * database, creating it in memory if needed. DB_NOTFOUND-style: returns 0,
 * 1 if the database has no such room, -1 with *cause on error. A room found
 * closed has its connections closed (CONN_CLOSE_ROOM_CLOSED), a member
 * found banned theirs (CONN_CLOSE_BANNED).
 */
int room_reload(struct chatd *cd, const char *id, struct room **out, char **cause);
/* Closes the rooms' timers (exit, before the loop's last run). */
void room_close_timers(struct chatd *cd);
/* Frees every room (exit; connections and timers must be closed). */
void room_free_all(struct chatd *cd);

int room_is_admin(const struct room *r, const char *user_id);
/* The user's ban in force at now_ms, or NULL; an expired one is forgotten. */
struct room_ban *room_ban_find(struct room *r, const char *user_id, int64_t now_ms);
/* 1 if a ban was forgotten. */
int room_ban_remove(struct room *r, const char *user_id);
/*
 * Bans the user from r until expires_at (Unix ms; 0: for good) and closes
 * their connections (CONN_CLOSE_BANNED, "banned[: reason]"); kicking only
 * closes them (CONN_CLOSE_KICKED, "kicked[: reason]"). reason may be NULL.
 * Live state only: the database record is the caller's. Return how many
 * connections closed.
 */
unsigned room_ban(struct room *r, const char *user_id, const char *reason, int64_t expires_at);
unsigned room_kick(struct room *r, const char *user_id, const char *reason);

/*
 * Adds an established connection: counts, session row, welcome, RoomStats.
 * 1 if it is the user's first connection to r on this node.
 */
int room_join(struct room *r, struct conn *c);
/*
 * Removes a connection (CLOSED): counts, session row, RoomStats. 1 if it
 * was the user's last connection to r on this node.
 */
int room_leave(struct room *r, struct conn *c);
/*
 * Another node gained (present=1) or lost (0) its last connection of
 * user_id in r: the cluster-wide head count and RoomStats follow.
 */
void room_remote_user(struct room *r, const char *user_id, const char *nickname, int present);

/*
 * Sends one JSON text to every member: framed once, shared by reference.
 * High: into every queue now. Low: into every queue now in a small room
 * with no backlog, else sliced (ROOM_FANOUT_SLICE members per loop turn).
 * Returns the number of recipients.
 */
unsigned room_broadcast(struct room *r, const char *json, int high);

/* Marks r closed and closes every connection (CONN_CLOSE_ROOM_CLOSED); returns how many. */
unsigned room_close(struct room *r, const char *reason);

/* Frames queued in r's members' lanes (stats). */
void room_queued(const struct room *r, uint64_t *low, uint64_t *high);

#endif
