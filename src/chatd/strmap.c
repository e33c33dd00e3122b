/*
 * String-keyed hash map used by chatd's registries. A data structure: it
 * touches nothing but its own memory, apart from reading the process's
 * hash key from the kernel once.
 *
 * Keys are chosen by clients (user ids, ban keys, addresses), so the hash
 * is SipHash under a key drawn at random once per process: an unkeyed
 * hash (FNV-1a before) lets anyone compute ids that all land in one bucket
 * and turn every lookup into a walk of a long chain.
 */
#include "autoconf.h"

#include <sys/random.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "siphash.h"
#include "strmap.h"
#include "xmalloc.h"

#define STRMAP_INITIAL 16

/* Written once under strmap_key_once, then only read (any thread). */
static uint8_t strmap_key[SIPHASH_KEY_BYTES];
static pthread_once_t strmap_key_once = PTHREAD_ONCE_INIT;

/* Fills buf from /dev/urandom; 0, or -1 with errno. */
static int
strmap_urandom(uint8_t *buf, size_t len)
{
	ssize_t n;
	size_t got = 0;
	int fd, saved;

	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while (got < len) {
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			saved = n == 0 ? EIO : errno;
			close(fd);
			errno = saved;
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	return 0;
}

static void
strmap_key_init(void)
{
	size_t got = 0;
	ssize_t n;

	while (got < sizeof strmap_key) {
		n = getrandom(strmap_key + got, sizeof strmap_key - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got == sizeof strmap_key)
		return;
	/* A kernel without getrandom(2) (ENOSYS) or a seccomp filter refusing it. */
	if (strmap_urandom(strmap_key, sizeof strmap_key) != 0)
		fatal("hash key: neither getrandom nor /dev/urandom: %s", strerror(errno));
}

static uint32_t
strmap_hash(const char *s)
{
	if (pthread_once(&strmap_key_once, strmap_key_init) != 0)
		abort();
	/* The low bits pick the bucket; 32 of them are plenty. */
	return (uint32_t)siphash24(strmap_key, s, strlen(s));
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
