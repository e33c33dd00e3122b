/*
 * A string-keyed hash map (separate chaining, grows by doubling) for
 * chatd's registries: rooms by id, a room's users and bans, connection
 * counts by client address. Keys are copied; values are the caller's.
 * Not thread-safe: each map has one owner thread (the service thread).
 */
#ifndef CHATD_STRMAP_H
#define CHATD_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_entry {
	struct strmap_entry *next;
	uint32_t hash;
	char *key;
	void *value;
};

struct strmap {
	struct strmap_entry **buckets; /* allocated on first insert */
	size_t nbuckets;
	size_t count;
};

void strmap_init(struct strmap *m);
/* Frees the entries and their keys; free_value (may be NULL) gets each value. */
void strmap_clear(struct strmap *m, void (*free_value)(void *));
/* The value stored under key, or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/* Stores value under key (copied); returns the value it replaced, or NULL. */
void *strmap_set(struct strmap *m, const char *key, void *value);
/* Removes key; returns its value, or NULL if absent. */
void *strmap_remove(struct strmap *m, const char *key);
/*
 * Calls fn for every entry; fn must not insert. Returning 1 from fn removes
 * that entry (its value is the caller's to free inside fn).
 */
void strmap_each(struct strmap *m, int (*fn)(const char *key, void *value, void *arg), void *arg);

#endif
