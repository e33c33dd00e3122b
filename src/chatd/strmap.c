/*
 * String-keyed hash map used by chatd's registries. Pure data structure:
 * touches nothing but its own memory.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "xmalloc.h"

#define STRMAP_INITIAL 16

static uint32_t
strmap_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a: short keys, no adversarial tuning needed */

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

void
strmap_init(struct strmap *m)
{
	memset(m, 0, sizeof *m);
}

void
strmap_clear(struct strmap *m, void (*free_value)(void *))
{
	struct strmap_entry *e, *next;

	for (size_t i = 0; i < m->nbuckets; i++) {
		for (e = m->buckets[i]; e != NULL; e = next) {
			next = e->next;
			if (free_value != NULL)
				free_value(e->value);
			free(e->key);
			free(e);
		}
	}
	free(m->buckets);
	strmap_init(m);
}

static struct strmap_entry **
strmap_slot(const struct strmap *m, const char *key, uint32_t h)
{
	struct strmap_entry **ep;

	for (ep = &m->buckets[h & (m->nbuckets - 1)]; *ep != NULL; ep = &(*ep)->next) {
		if ((*ep)->hash == h && strcmp((*ep)->key, key) == 0)
			break;
	}
	return ep;
}

void *
strmap_get(const struct strmap *m, const char *key)
{
	struct strmap_entry **ep;

	if (m->nbuckets == 0)
		return NULL;
	ep = strmap_slot(m, key, strmap_hash(key));
	return *ep != NULL ? (*ep)->value : NULL;
}

static void
strmap_grow(struct strmap *m)
{
	struct strmap_entry **nb, *e, *next;
	size_t n = m->nbuckets == 0 ? STRMAP_INITIAL : m->nbuckets * 2;

	nb = xcalloc(n, sizeof *nb);
	for (size_t i = 0; i < m->nbuckets; i++) {
		for (e = m->buckets[i]; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = nb;
	m->nbuckets = n;
}

void *
strmap_set(struct strmap *m, const char *key, void *value)
{
	struct strmap_entry **ep, *e;
	uint32_t h = strmap_hash(key);
	void *old;

	if (m->count >= m->nbuckets)
		strmap_grow(m);
	ep = strmap_slot(m, key, h);
	if (*ep != NULL) {
		old = (*ep)->value;
		(*ep)->value = value;
		return old;
	}
	e = xmalloc(sizeof *e);
	e->next = NULL;
	e->hash = h;
	e->key = xstrdup(key);
	e->value = value;
	*ep = e;
	m->count++;
	return NULL;
}

void *
strmap_remove(struct strmap *m, const char *key)
{
	struct strmap_entry **ep, *e;
	void *value;

	if (m->nbuckets == 0)
		return NULL;
	ep = strmap_slot(m, key, strmap_hash(key));
	if ((e = *ep) == NULL)
		return NULL;
	*ep = e->next;
	value = e->value;
	free(e->key);
	free(e);
	m->count--;
	return value;
}

void
strmap_each(struct strmap *m, int (*fn)(const char *key, void *value, void *arg), void *arg)
{
	struct strmap_entry **ep, *e;

	for (size_t i = 0; i < m->nbuckets; i++) {
		ep = &m->buckets[i];
		while ((e = *ep) != NULL) {
			if (fn(e->key, e->value, arg) == 1) {
				*ep = e->next;
				free(e->key);
				free(e);
				m->count--;
			} else
				ep = &e->next;
		}
	}
}
