/*
 * The room registry and what happens inside a room: membership, head
 * counts and peak, bans and admins as chatd holds them, the rate limiter,
 * coalesced RoomStats pushes (with a libuv timer for the trailing one)
 * and the fan-out of frames to members (high lane at once, low lane in
 * bounded slices). Service thread only. Writes go to the database through
 * the writer; reads (loading a room) use the service thread's connection.
 */
#ifndef CHATD_ROOM_H
#define CHATD_ROOM_H

#include <stdint.h>

#include "chatd.h"

/* Loads every open room with its bans and peak (start-up). */
int room_load_all(struct chatd *cd, char **cause);
/* A room already in memory, or NULL. */
struct room *room_find(struct chatd *cd, const char *id);
/*
 * The room in memory, else loaded from the database. NULL with *status 404
 * when no such room exists, 500 on a database error (logged).
 */
struct room *room_lookup(struct chatd *cd, const char *id, int *status);
/*
 * (Re)reads a room's name, admins, closed state and bans from the
 * database, creating it in memory if needed. DB_NOTFOUND-style: returns 0,
 * 1 if the database has no such room, -1 with *cause on error. A room found
 * closed has its connections closed (4404).
 */
int room_reload(struct chatd *cd, const char *id, struct room **out, char **cause);
/* Closes the rooms' timers (exit, before the loop's last run). */
void room_close_timers(struct chatd *cd);
/* Frees every room (exit; connections and timers must be closed). */
void room_free_all(struct chatd *cd);

int room_is_admin(const struct room *r, const char *user_id);
/* The user's ban in force at now_ms, or NULL; an expired one is forgotten. */
struct room_ban *room_ban_find(struct room *r, const char *user_id, int64_t now_ms);
void room_ban_set(struct room *r, const char *user_id, const char *reason, int64_t expires_at);
/* 1 if a ban was forgotten. */
int room_ban_remove(struct room *r, const char *user_id);

/* Adds an established connection: counts, session row, welcome, RoomStats. */
void room_join(struct room *r, struct conn *c);
/* Removes a connection (CLOSED): counts, session row, RoomStats. */
void room_leave(struct room *r, struct conn *c);

/*
 * Sends one JSON text to every member: framed once, shared by reference.
 * High: into every queue now. Low: sliced (see server_fanout_schedule).
 * Returns the number of recipients.
 */
unsigned room_broadcast(struct room *r, const char *json, int high);
/* Serves up to budget members from r's low-priority fan-out; returns how many. */
unsigned room_fanout_run(struct room *r, unsigned budget);

/* Closes the user's connections in r; returns how many. */
unsigned room_disconnect_user(
    struct room *r, const char *user_id, int code, const char *reason, const char *leave_reason);
/* Marks r closed and closes every connection with 4404; returns how many. */
unsigned room_close(struct room *r, const char *reason);

/* Frames queued in r's members' lanes (stats). */
void room_queued(const struct room *r, uint64_t *low, uint64_t *high);

#endif
