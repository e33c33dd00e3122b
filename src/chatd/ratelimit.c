/*
 * Per-room message rate limit; see ratelimit.h. The users who posted
 * within the last interval, in a strmap keyed by user id. Knows nothing of
 * rooms, connections or clocks: the caller passes the time.
 *
 * User ids are chosen by clients and the hash is not collision-resistant,
 * but an entry lives only one interval after a post and each post needs a
 * live connection, so a crafted set of colliding ids can slow one room's
 * chain, never grow memory beyond that room's posting users.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>

#include "ratelimit.h"
#include "xmalloc.h"

/* One user's last accepted post. */
struct ratelimit_entry {
	int64_t last_ms;
};

void
ratelimit_init(struct ratelimit *rl, int64_t interval_ms)
{
	strmap_init(&rl->users);
	rl->interval_ms = interval_ms > 0 ? interval_ms : 0;
}

void
ratelimit_clear(struct ratelimit *rl)
{
	strmap_clear(&rl->users, free);
}

/*
 * now_ms must come from a monotonic clock: a clock stepped backwards would
 * lengthen the wait by the step.
 */
int64_t
ratelimit_check(struct ratelimit *rl, const char *user_id, int64_t now_ms)
{
	struct ratelimit_entry *e;
	int64_t wait;

	/* No limit: record nothing, so an unlimited room holds no memory. */
	if (rl->interval_ms <= 0)
		return 0;
	if ((e = strmap_get(&rl->users, user_id)) != NULL) {
		wait = e->last_ms + rl->interval_ms - now_ms;
		if (wait > 0)
			return wait; /* refused: last_ms unchanged */
		e->last_ms = now_ms;
		return 0;
	}
	e = xmalloc(sizeof *e);
	e->last_ms = now_ms;
	(void)strmap_set(&rl->users, user_id, e);
	return 0;
}

void
ratelimit_note(struct ratelimit *rl, const char *user_id, int64_t now_ms)
{
	struct ratelimit_entry *e;

	if (rl->interval_ms <= 0)
		return;
	if ((e = strmap_get(&rl->users, user_id)) != NULL) {
		if (now_ms > e->last_ms)
			e->last_ms = now_ms;
		return;
	}
	e = xmalloc(sizeof *e);
	e->last_ms = now_ms;
	(void)strmap_set(&rl->users, user_id, e);
}

struct ratelimit_expiry {
	int64_t now_ms, interval_ms;
};

static int
ratelimit_stale(const char *user_id, void *value, void *arg)
{
	const struct ratelimit_expiry *x = arg;
	struct ratelimit_entry *e = value;

	(void)user_id;
	if (x->now_ms - e->last_ms < x->interval_ms)
		return 0;
	free(e);
	return 1; /* strmap_each drops it */
}

/*
 * An entry at least one interval old would be allowed anyway, so forgetting
 * it changes no answer. The table is freed when it empties, so a quiet room
 * holds nothing.
 */
void
ratelimit_expire(struct ratelimit *rl, int64_t now_ms)
{
	struct ratelimit_expiry x = { now_ms, rl->interval_ms };

	strmap_each(&rl->users, ratelimit_stale, &x);
	if (rl->users.count == 0)
		ratelimit_clear(rl);
}
