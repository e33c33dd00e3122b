/*
 * Join/leave coalescing for one room; see coalesce.h. Pure bookkeeping:
 * it never sends, never reads a clock (the caller passes the time) and
 * knows nothing of connections. Must not touch anything but its own
 * struct.
 *
 * The string lists have two states. While changes are pending,
 * joined_count + left_count > 0 and the lists hold the first names. After
 * coalesce_take() the counts are zero but the lists still hold the names
 * just pushed, because the caller is encoding them; the next
 * note/take/clear frees them. A user who joins and leaves within one
 * window is named in both lists and counted in both totals: the push
 * reports changes, and the head count in RoomStats is the truth.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coalesce.h"
#include "xmalloc.h"

static void
coalesce_free_list(struct coalesce_user *list, unsigned *n)
{
	unsigned i;

	for (i = 0; i < *n; i++) {
		free(list[i].user_id);
		free(list[i].nickname);
		list[i].user_id = list[i].nickname = NULL;
	}
	*n = 0;
}

/* Frees the names handed out by the last coalesce_take(), if any. */
static void
coalesce_release_pushed(struct coalesce *c)
{
	if (c->joined_count != 0 || c->left_count != 0)
		return; /* the lists are pending, not pushed */
	coalesce_free_list(c->joined, &c->n_joined_listed);
	coalesce_free_list(c->left, &c->n_left_listed);
}

void
coalesce_init(struct coalesce *c)
{
	memset(c, 0, sizeof *c);
	c->last_push_ms = INT64_MIN;
}

/* Frees every name and forgets pending changes and the last push time. */
void
coalesce_clear(struct coalesce *c)
{
	coalesce_free_list(c->joined, &c->n_joined_listed);
	coalesce_free_list(c->left, &c->n_left_listed);
	coalesce_init(c);
}

/* nickname may be NULL: it then defaults to user_id, as on the handshake. */
void
coalesce_note(struct coalesce *c, int joined, const char *user_id, const char *nickname)
{
	struct coalesce_user *list;
	unsigned *n;

	coalesce_release_pushed(c);
	if (joined) {
		list = c->joined;
		n = &c->n_joined_listed;
		c->joined_count++;
	} else {
		list = c->left;
		n = &c->n_left_listed;
		c->left_count++;
	}
	/* Only the first few are named: a burst of 10,000 joins costs 20 copies. */
	if (*n < COALESCE_MAX_USERS) {
		list[*n].user_id = xstrdup(user_id);
		list[*n].nickname = xstrdup(nickname != NULL ? nickname : user_id);
		(*n)++;
	}
}

/*
 * The note itself carries no time, so this is the earliest time a push may
 * go out, not the time of the change: after a quiet window it lies in the
 * past (0 before the first push ever), meaning "now".
 */
int64_t
coalesce_due_at(const struct coalesce *c)
{
	if (c->joined_count == 0 && c->left_count == 0)
		return -1;
	if (c->last_push_ms == INT64_MIN)
		return 0;
	return c->last_push_ms + COALESCE_WINDOW_MS;
}

int
coalesce_take(struct coalesce *c, int64_t now_ms, struct coalesce_push *push)
{
	int64_t due;

	coalesce_release_pushed(c);
	if (c->joined_count == 0 && c->left_count == 0)
		return 0;
	due = coalesce_due_at(c);
	if (now_ms < due)
		return 0;

	push->joined = c->joined;
	push->n_joined_listed = c->n_joined_listed;
	push->joined_count = c->joined_count;
	push->left = c->left;
	push->n_left_listed = c->n_left_listed;
	push->left_count = c->left_count;

	/* Zero counts mark the lists as pushed; they are freed on the next call. */
	c->joined_count = c->left_count = 0;
	c->last_push_ms = now_ms;
	return 1;
}
