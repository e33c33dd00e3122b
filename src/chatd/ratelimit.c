/*
 * Per-room message rate limit; see ratelimit.h. A chained hash table of
 * the users who posted within the last interval, keyed by user id. Knows
 * nothing of rooms, connections or clocks: the caller passes the time.
 * Must not touch anything but its own struct.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "xmalloc.h"

/* First table size; a room where one user posts needs no more. */
#define RATELIMIT_MIN_BUCKETS 8

/* One user's last accepted post. The id is copied into the same block. */
struct ratelimit_entry {
	struct ratelimit_entry *next;
	uint64_t hash; /* kept so growing needs no rehash of the string */
	int64_t last_ms;
	char user_id[];
};

/*
 * FNV-1a, 64 bits: short ids, no seed, good spread for a power-of-two
 * table. Not collision-resistant; user ids are chosen by clients, but an
 * entry lives only one interval after a post and each post needs a live
 * connection, so a crafted set of colliding ids can slow one room's chain,
 * never grow memory beyond that room's posting users.
 */
static uint64_t
ratelimit_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static size_t
ratelimit_bucket(const struct ratelimit *rl, uint64_t hash)
{
	/* nbuckets is a power of two; fold the high bits in, FNV's low bits mix least. */
	return (size_t)((hash ^ (hash >> 32)) & (rl->nbuckets - 1));
}

/* Doubles the table so the load factor stays at or below 3/4. */
static void
ratelimit_grow(struct ratelimit *rl)
{
	struct ratelimit_entry **old = rl->buckets, *e, *next;
	size_t oldn = rl->nbuckets, i, b;

	rl->nbuckets = oldn == 0 ? RATELIMIT_MIN_BUCKETS : oldn * 2;
	rl->buckets = xcalloc(rl->nbuckets, sizeof *rl->buckets);
	for (i = 0; i < oldn; i++) {
		for (e = old[i]; e != NULL; e = next) {
			next = e->next;
			b = ratelimit_bucket(rl, e->hash);
			e->next = rl->buckets[b];
			rl->buckets[b] = e;
		}
	}
	free(old);
}

void
ratelimit_init(struct ratelimit *rl, int64_t interval_ms)
{
	memset(rl, 0, sizeof *rl);
	rl->interval_ms = interval_ms > 0 ? interval_ms : 0;
}

/* Frees every entry and the table; interval_ms is kept, so rl may be reused. */
void
ratelimit_clear(struct ratelimit *rl)
{
	struct ratelimit_entry *e, *next;
	size_t i;

	for (i = 0; i < rl->nbuckets; i++) {
		for (e = rl->buckets[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(rl->buckets);
	rl->buckets = NULL;
	rl->nbuckets = 0;
	rl->count = 0;
}

/*
 * now_ms must come from a monotonic clock: a clock stepped backwards would
 * lengthen the wait by the step.
 */
int64_t
ratelimit_check(struct ratelimit *rl, const char *user_id, int64_t now_ms)
{
	struct ratelimit_entry *e;
	uint64_t hash;
	size_t b, len;
	int64_t wait;

	/* No limit: record nothing, so an unlimited room holds no memory. */
	if (rl->interval_ms <= 0)
		return 0;

	hash = ratelimit_hash(user_id);
	if (rl->nbuckets != 0) {
		b = ratelimit_bucket(rl, hash);
		for (e = rl->buckets[b]; e != NULL; e = e->next) {
			if (e->hash != hash || strcmp(e->user_id, user_id) != 0)
				continue;
			wait = e->last_ms + rl->interval_ms - now_ms;
			if (wait > 0)
				return wait; /* refused: last_ms unchanged */
			e->last_ms = now_ms;
			return 0;
		}
	}

	if (rl->nbuckets == 0 || (rl->count + 1) * 4 > rl->nbuckets * 3)
		ratelimit_grow(rl);
	len = strlen(user_id);
	e = xmalloc(sizeof *e + len + 1);
	memcpy(e->user_id, user_id, len + 1);
	e->hash = hash;
	e->last_ms = now_ms;
	b = ratelimit_bucket(rl, hash);
	e->next = rl->buckets[b];
	rl->buckets[b] = e;
	rl->count++;
	return 0;
}

/*
 * Walks the whole table (O(buckets)): call it from a periodic timer, not
 * per message. An entry at least one interval old would be allowed anyway,
 * so forgetting it changes no answer. The table is freed when it empties,
 * so a quiet room holds nothing.
 */
void
ratelimit_expire(struct ratelimit *rl, int64_t now_ms)
{
	struct ratelimit_entry **pe, *e;
	size_t i;

	for (i = 0; i < rl->nbuckets; i++) {
		pe = &rl->buckets[i];
		while ((e = *pe) != NULL) {
			if (now_ms - e->last_ms >= rl->interval_ms) {
				*pe = e->next;
				free(e);
				rl->count--;
			} else
				pe = &e->next;
		}
	}
	if (rl->count == 0)
		ratelimit_clear(rl);
}
