/*
 * The registry of the other nodes (see peers.h).
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "peers.h"
#include "xmalloc.h"

static struct peer_room *
peer_room_new(void)
{
	struct peer_room *pr = xcalloc(1, sizeof *pr);

	strmap_init(&pr->users);
	return pr;
}

static void
peer_room_free(void *v)
{
	struct peer_room *pr = v;

	if (pr == NULL)
		return;
	strmap_clear(&pr->users, free);
	free(pr);
}

static void
peer_free(void *v)
{
	struct peer *p = v;

	peer_snap_drop(p);
	strmap_clear(&p->rooms, peer_room_free);
	free(p->id);
	free(p->inc);
	free(p);
}

void
peers_init(struct peers *ps)
{
	strmap_init(&ps->map);
}

void
peers_clear(struct peers *ps)
{
	strmap_clear(&ps->map, peer_free);
}

struct peer *
peers_find(struct peers *ps, const char *id)
{
	return strmap_get(&ps->map, id);
}

struct peer *
peers_add(struct peers *ps, const char *id, const char *inc)
{
	struct peer *p = xcalloc(1, sizeof *p);

	p->id = xstrdup(id);
	p->inc = xstrdup(inc);
	strmap_init(&p->rooms);
	strmap_set(&ps->map, id, p);
	return p;
}

void
peers_remove(struct peers *ps, struct peer *p)
{
	strmap_remove(&ps->map, p->id);
	peer_free(p);
}

void
peers_each(struct peers *ps, void (*fn)(struct peer *p, void *arg), void *arg)
{
	for (size_t b = 0; b < ps->map.nbuckets; b++)
		for (struct strmap_entry *e = ps->map.buckets[b]; e != NULL; e = e->next)
			fn(e->value, arg);
}

void
peers_room_each(struct peers *ps, const char *room_id,
    void (*fn)(const char *user_id, const char *nickname, void *arg), void *arg)
{
	for (size_t b = 0; b < ps->map.nbuckets; b++) {
		for (struct strmap_entry *e = ps->map.buckets[b]; e != NULL; e = e->next) {
			struct peer_room *pr =
			    strmap_get(&((struct peer *)e->value)->rooms, room_id);

			for (size_t ub = 0; pr != NULL && ub < pr->users.nbuckets; ub++)
				for (struct strmap_entry *u = pr->users.buckets[ub]; u != NULL;
				     u = u->next)
					fn(u->key, u->value, arg);
		}
	}
}

int
peer_hold(struct peer *p, const char *room_id, const char *user_id, const char *nickname)
{
	struct peer_room *pr = strmap_get(&p->rooms, room_id);

	if (pr != NULL && strmap_get(&pr->users, user_id) != NULL)
		return 0;
	if (pr == NULL) {
		pr = peer_room_new();
		strmap_set(&p->rooms, room_id, pr);
	}
	strmap_set(&pr->users, user_id, xstrdup(nickname != NULL ? nickname : user_id));
	return 1;
}

char *
peer_release(struct peer *p, const char *room_id, const char *user_id)
{
	struct peer_room *pr = strmap_get(&p->rooms, room_id);
	char *nick;

	if (pr == NULL || (nick = strmap_remove(&pr->users, user_id)) == NULL)
		return NULL;
	if (pr->users.count == 0)
		peer_room_free(strmap_remove(&p->rooms, room_id));
	return nick;
}

void
peer_snap_begin(struct peer *p, uint64_t pseq)
{
	peer_snap_drop(p);
	p->snap = xcalloc(1, sizeof *p->snap);
	strmap_init(p->snap);
	p->snap_pseq = pseq;
	p->snap_part = 0;
}

void
peer_snap_add(struct peer *p, const char *room_id, const char *user_id, const char *nickname)
{
	struct peer_room *pr = strmap_get(p->snap, room_id);

	if (pr == NULL) {
		pr = peer_room_new();
		strmap_set(p->snap, room_id, pr);
	}
	free(strmap_set(&pr->users, user_id, xstrdup(nickname)));
}

void
peer_snap_drop(struct peer *p)
{
	if (p->snap == NULL)
		return;
	strmap_clear(p->snap, peer_room_free);
	free(p->snap);
	p->snap = NULL;
}

/* The walk's state: what to skip, and the room being walked. */
struct peer_walk {
	struct peer_pairs *out;
	const struct strmap *keep;
	const char *room_id;
	const struct peer_room *keep_room;
};

static int
peer_collect_user(const char *user_id, void *value, void *arg)
{
	struct peer_walk *w = arg;
	struct peer_pairs *pp = w->out;

	if (w->keep_room != NULL && strmap_get(&w->keep_room->users, user_id) != NULL)
		return 0;
	pp->v = xreallocarray(pp->v, pp->n + 1, sizeof *pp->v);
	pp->v[pp->n].room_id = xstrdup(w->room_id);
	pp->v[pp->n].user_id = xstrdup(user_id);
	pp->v[pp->n].nickname = xstrdup(value);
	pp->n++;
	return 0;
}

static int
peer_collect_room(const char *room_id, void *value, void *arg)
{
	struct peer_walk *w = arg;
	struct peer_room *pr = value;

	w->room_id = room_id;
	w->keep_room = w->keep != NULL ? strmap_get(w->keep, room_id) : NULL;
	strmap_each(&pr->users, peer_collect_user, w);
	return 0;
}

void
peer_pairs(const struct strmap *rooms, const struct strmap *keep, struct peer_pairs *out)
{
	struct peer_walk w = { out, keep, NULL, NULL };

	memset(out, 0, sizeof *out);
	/* Copied out: the caller changes the holdings while going through them. */
	strmap_each((struct strmap *)rooms, peer_collect_room, &w);
}

void
peer_pairs_free(struct peer_pairs *pp)
{
	for (size_t i = 0; i < pp->n; i++) {
		free(pp->v[i].room_id);
		free(pp->v[i].user_id);
		free(pp->v[i].nickname);
	}
	free(pp->v);
}
