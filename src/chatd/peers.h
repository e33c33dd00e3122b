/*
 * The other nodes of the cluster as this node knows them: who they are,
 * what they last said, and which users each holds in which room. A
 * registry and nothing else: cluster.c keeps it up to date from the bus
 * and makes the rooms count what changes; room.c reads it when a room
 * comes into memory. Empty on a single node. Service thread only.
 */
#ifndef CHATD_PEERS_H
#define CHATD_PEERS_H

#include <stddef.h>
#include <stdint.h>

#include "strmap.h"

/* The users one peer holds in one room: user id -> nickname (heap string). */
struct peer_room {
	struct strmap users;
};

/* Another node, as heard on the bus. */
struct peer {
	char *id;
	char *inc; /* its incarnation: a restart is a new peer */
	uint64_t pseq; /* its last presence change applied */
	int synced; /* a snapshot of this incarnation applied, no change missed since */
	int64_t seen_ms; /* monotonic: when it last said anything */
	int64_t want_ms; /* monotonic: when we last asked it for a snapshot */
	long long conns, users;
	int64_t started_at;
	struct strmap rooms; /* room id -> struct peer_room */
	struct strmap *snap; /* a snapshot being received: room id -> struct peer_room */
	uint64_t snap_pseq;
	long long snap_part;
};

struct peers {
	struct strmap map; /* id -> struct peer */
};

void peers_init(struct peers *ps);
/* Frees every peer. */
void peers_clear(struct peers *ps);
struct peer *peers_find(struct peers *ps, const char *id);
/* A new peer with no holdings (id must not be known). */
struct peer *peers_add(struct peers *ps, const char *id, const char *inc);
/* Forgets p and frees it (its holdings with it). */
void peers_remove(struct peers *ps, struct peer *p);
/* Calls fn for each peer; fn must not add or remove peers. */
void peers_each(struct peers *ps, void (*fn)(struct peer *p, void *arg), void *arg);
/* Calls fn for every user a peer holds in room_id, once per peer holding them. */
void peers_room_each(struct peers *ps, const char *room_id,
    void (*fn)(const char *user_id, const char *nickname, void *arg), void *arg);

/* 1 if p did not hold user_id in room_id and now does (nickname copied), else 0. */
int peer_hold(struct peer *p, const char *room_id, const char *user_id, const char *nickname);
/* The nickname p held user_id under in room_id (the caller frees it), or NULL if it did not. */
char *peer_release(struct peer *p, const char *room_id, const char *user_id);

/* A snapshot being received: started afresh, filled part by part, dropped. */
void peer_snap_begin(struct peer *p, uint64_t pseq);
void peer_snap_add(struct peer *p, const char *room_id, const char *user_id, const char *nickname);
void peer_snap_drop(struct peer *p);

/* (room, user, nickname) triples, copied out of a peer's holdings. */
struct peer_pair {
	char *room_id, *user_id, *nickname;
};
struct peer_pairs {
	struct peer_pair *v;
	size_t n;
};
/* Every pair of rooms that keep (NULL: nothing) does not also hold. */
void peer_pairs(const struct strmap *rooms, const struct strmap *keep, struct peer_pairs *out);
void peer_pairs_free(struct peer_pairs *pp);

#endif
