/*
 * Per-room message rate limit: one accepted message per interval per user,
 * across all of that user's connections (the room owns one ratelimit).
 * Service thread only. Memory is bounded by ratelimit_expire(), which
 * forgets users whose interval has passed.
 */
#ifndef CHATD_RATELIMIT_H
#define CHATD_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "strmap.h"

struct ratelimit {
	struct strmap users; /* user id -> struct ratelimit_entry: the last accepted post */
	int64_t interval_ms; /* 0: no limit; may be changed at any time (slow mode) */
};

void ratelimit_init(struct ratelimit *rl, int64_t interval_ms);
/* Frees every entry; interval_ms is kept. */
void ratelimit_clear(struct ratelimit *rl);
/*
 * 0 if user_id may post at now_ms (the post is recorded), else the number
 * of milliseconds until it may (nothing is recorded: a refused message does
 * not extend the wait). now_ms from a monotonic clock. With no limit,
 * nothing is recorded at all. user_id is copied. O(1) on average.
 */
int64_t ratelimit_check(struct ratelimit *rl, const char *user_id, int64_t now_ms);
/*
 * Records a post user_id made elsewhere (on another node of the cluster)
 * as if accepted here at now_ms, so that the user's next post here waits
 * its interval too. Never shortens a wait.
 */
void ratelimit_note(struct ratelimit *rl, const char *user_id, int64_t now_ms);
/*
 * Forgets users whose last post is at least interval_ms old (no answer
 * changes) and frees the table once it is empty. O(table): call it from a
 * periodic timer, not per message.
 */
void ratelimit_expire(struct ratelimit *rl, int64_t now_ms);

#endif
