/*
 * Join/leave coalescing for one room: within any window of COALESCE_WINDOW_MS
 * the room pushes at most one RoomStats notification. The first change
 * after a quiet window is pushed at once (leading edge); later changes in
 * the window are gathered and pushed when it ends (trailing edge), carrying
 * who joined and left (bounded lists) and the totals. Service thread only.
 * A user who joins and leaves within one window is named in both lists and
 * counted in both totals; the head count in RoomStats is the truth.
 */
#ifndef CHATD_COALESCE_H
#define CHATD_COALESCE_H

#include <stdint.h>

#define COALESCE_WINDOW_MS 1000
/* Users named in one push; the counts cover everyone. */
#define COALESCE_MAX_USERS 20

struct coalesce_user {
	char *user_id;
	char *nickname;
};

struct coalesce {
	int64_t last_push_ms; /* when the last push went out; INT64_MIN before any */
	struct coalesce_user joined[COALESCE_MAX_USERS];
	struct coalesce_user left[COALESCE_MAX_USERS];
	unsigned n_joined_listed, n_left_listed;
	unsigned joined_count, left_count; /* all changes since the last push */
};

/* What one push carries; strings borrowed from the coalescer until the next call. */
struct coalesce_push {
	const struct coalesce_user *joined;
	unsigned n_joined_listed, joined_count;
	const struct coalesce_user *left;
	unsigned n_left_listed, left_count;
};

void coalesce_init(struct coalesce *c);
void coalesce_clear(struct coalesce *c);
/*
 * Records one join (joined=1) or leave (joined=0). Copies the strings;
 * nickname NULL means user_id.
 */
void coalesce_note(struct coalesce *c, int joined, const char *user_id, const char *nickname);
/*
 * When the pending changes may be pushed (ms), or -1 when nothing is
 * pending. After a quiet window this lies in the past (0 before the first
 * push ever): push now. Arm a timer for it after every note.
 */
int64_t coalesce_due_at(const struct coalesce *c);
/*
 * If changes are pending and now_ms >= coalesce_due_at(), fills *push,
 * marks the push sent at now_ms and returns 1; else returns 0. The lists in
 * *push stay valid until the next coalesce_note/take/clear.
 */
int coalesce_take(struct coalesce *c, int64_t now_ms, struct coalesce_push *push);

#endif
