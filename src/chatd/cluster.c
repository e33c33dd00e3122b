/*
 * The cluster (see cluster.h). Every bus message is one JSON object on a
 * subject under CLUSTER_NAME; "msg" adds the frame's text after a newline,
 * so receivers deliver it without encoding it again, and "mrep" a node's
 * metrics text the same way.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "chatd.h"
#include "clock.h"
#include "cluster.h"
#include "db.h"
#include "jsonutil.h"
#include "log.h"
#include "metrics.h"
#include "model.h"
#include "room.h"
#include "sequence.h"
#include "writer.h"
#include "xmalloc.h"

/* Users named in one snapshot part: a part stays far below NATS's 1 MB payload limit. */
#define CLUSTER_SNAP_PART_USERS 256
/*
 * Rooms with members here checked against the database per heartbeat, in
 * turn: a message whose publish was lost, with none after it to show the
 * gap, reaches the members within (rooms / this) heartbeats.
 */
#define CLUSTER_SWEEP_ROOMS 64
/* How often a node that missed presence may ask a peer for its snapshot. */
#define CLUSTER_WANT_EVERY_MS 1000
/* A message larger than this on the bus is refused (it cannot be chatd's). */
#define CLUSTER_MSG_MAX (4 * 1024 * 1024)
/*
 * How long a cluster-wide metrics request waits for the other nodes. A
 * live node answers within one turn of its loop plus a bus round trip
 * (milliseconds); one that takes longer is stopped or stuck, and the
 * scrape goes on without it (listed in "missing") rather than wait for
 * it: well inside chat-api's CONTROL_TIMEOUT_MS (2 s by default) and
 * Prometheus's scrape timeout (10 s by default).
 */
#define CLUSTER_SCRAPE_WAIT_MS 500

/* One node's answer to a cluster-wide metrics request. */
struct scrape_answer {
	char *node;
	char *text;
};

/* A cluster-wide metrics request waiting for the other nodes. */
struct scrape {
	TAILQ_ENTRY(scrape) entry;
	char *token; /* this incarnation's and a serial: unique across restarts */
	uint64_t origin; /* the control connection's serial */
	unsigned long ctl_id;
	cluster_metrics_fn done;
	int64_t deadline_ms; /* monotonic */
	char **expect; /* the peers known at the request; NULL once answered */
	size_t nexpect, waiting;
	struct scrape_answer *answers; /* this node's first */
	size_t nanswers;
};
TAILQ_HEAD(scrape_list, scrape);

struct cluster {
	struct chatd *cd;
	/* This node's metrics text (heap), as its owner makes it: for "mrep". */
	char *(*own_metrics)(struct chatd *cd);
	struct bus *bus;
	char *inc;
	uint64_t pseq; /* this node's presence changes published */
	uv_timer_t hb_timer;
	uv_timer_t scrape_timer; /* the earliest deadline of scrapes */
	int timer_ready;
	int stopped; /* cluster_stop ran: no more waiting */
	struct scrape_list scrapes;
	uint64_t scrape_serial;
	struct room *sweep; /* the next room the sweep checks; rooms are never freed */
	uint64_t peers_lost, snapshots_sent, msgs_published, msgs_received;
};

/* ---------------------------------------------------------------- peers */

/*
 * Records that peer p holds (or no longer holds) user_id in room_id, and
 * the room counts it. The room is loaded first: a room coming into memory
 * counts what peers hold already (room.c reads the registry).
 */
static void
peer_set(struct cluster *cl, struct peer *p, const char *room_id, const char *user_id,
    const char *nickname, int present)
{
	struct room *r;
	char *nick;
	int status = 0;

	if (present) {
		if ((r = room_find(cl->cd, room_id)) == NULL)
			r = room_lookup(cl->cd, room_id, &status);
		if (peer_hold(p, room_id, user_id, nickname) && r != NULL)
			room_remote_user(r, user_id, nickname, 1);
		return;
	}
	if ((nick = peer_release(p, room_id, user_id)) == NULL)
		return;
	if ((r = room_find(cl->cd, room_id)) != NULL)
		room_remote_user(r, user_id, nick, 0);
	free(nick);
}

/* p holds exactly what rooms says (NULL: nothing): the difference is applied, user by user. */
static void
peer_replace(struct cluster *cl, struct peer *p, struct strmap *rooms)
{
	struct peer_pairs gone = { NULL, 0 }, came = { NULL, 0 };
	size_t i;

	peer_pairs(&p->rooms, rooms, &gone);
	for (i = 0; i < gone.n; i++)
		peer_set(cl, p, gone.v[i].room_id, gone.v[i].user_id, gone.v[i].nickname, 0);
	peer_pairs_free(&gone);
	if (rooms == NULL)
		return;
	peer_pairs(rooms, NULL, &came);
	for (i = 0; i < came.n; i++)
		peer_set(cl, p, came.v[i].room_id, came.v[i].user_id, came.v[i].nickname, 1);
	peer_pairs_free(&came);
}

/* A peer gone (silent, said bye, or restarted): its users leave the counts. */
static void
peer_drop(struct cluster *cl, struct peer *p, const char *why)
{
	log_info("cluster: node %s %s: %zu rooms held users there", p->id, why, p->rooms.count);
	peer_replace(cl, p, NULL);
	peers_remove(&cl->cd->peers, p);
}

/* ---------------------------------------------------------------- publishing */

/* Publishes o (taken), with tail after a newline; -1 when the bus refused it. */
static int
cluster_publish(struct cluster *cl, const char *subject, cJSON *o, const char *tail)
{
	char *text = json_print(o), *all = text;
	size_t len = strlen(text);
	int rc;

	if (tail != NULL) {
		all = xasprintf("%s\n%s", text, tail);
		len = strlen(all);
	}
	rc = bus_publish(cl->bus, subject, all, len);
	if (all != text)
		free(all);
	free(text);
	cJSON_Delete(o);
	return rc;
}

/* An object stamped with this node's id and incarnation. */
static cJSON *
cluster_header(struct cluster *cl)
{
	cJSON *o = json_object();

	json_add_string(o, "n", cl->cd->cfg->node_id);
	json_add_string(o, "i", cl->inc);
	return o;
}

/* Snapshot parts: rooms with their users, at most CLUSTER_SNAP_PART_USERS users a part. */
struct snap_build {
	struct cluster *cl;
	cJSON *rooms; /* the part being filled */
	unsigned users;
	long long part;
};

static void
cluster_snap_flush(struct snap_build *sb, int last)
{
	cJSON *o = cluster_header(sb->cl);

	json_add_int(o, "p", (long long)sb->cl->pseq);
	json_add_int(o, "part", sb->part++);
	json_add_bool(o, "last", last);
	json_add(o, "rooms", sb->rooms);
	cluster_publish(sb->cl, "snap", o, NULL);
	sb->rooms = json_array();
	sb->users = 0;
}

static void
cluster_snapshot(struct cluster *cl)
{
	struct snap_build sb = { cl, json_array(), 0, 0 };
	const struct strmap_entry *e;
	struct room *r;

	TAILQ_FOREACH(r, &cl->cd->room_list, entry)
	{
		cJSON *pair, *users = NULL;

		if (r->nconns == 0)
			continue;
		for (size_t b = 0; b < r->users.nbuckets; b++) {
			for (e = r->users.buckets[b]; e != NULL; e = e->next) {
				const struct room_user *u = e->value;
				const struct conn *c;
				const char *nick = e->key;

				if (u->nconns == 0)
					continue;
				/* The nickname of one of the user's connections here. */
				TAILQ_FOREACH(c, &r->members, entry)
				{
					if (strcmp(c->user_id, e->key) == 0) {
						nick = c->nickname;
						break;
					}
				}
				if (users == NULL) {
					pair = json_array();
					json_append(pair, json_string(r->id));
					users = json_array();
					json_append(pair, users);
					json_append(sb.rooms, pair);
				}
				pair = json_array();
				json_append(pair, json_string(e->key));
				json_append(pair, json_string(nick));
				json_append(users, pair);
				if (++sb.users >= CLUSTER_SNAP_PART_USERS) {
					cluster_snap_flush(&sb, 0);
					users = NULL;
				}
			}
		}
	}
	cluster_snap_flush(&sb, 1);
	cJSON_Delete(sb.rooms);
	cl->snapshots_sent++;
}

static void
cluster_want(struct cluster *cl, const char *of)
{
	cJSON *o = cluster_header(cl);

	json_add_string(o, "of", of);
	cluster_publish(cl, "want", o, NULL);
}

static void
cluster_heartbeat_publish(struct cluster *cl)
{
	cJSON *o = cluster_header(cl);
	struct room *r;
	long long users = 0;

	TAILQ_FOREACH(r, &cl->cd->room_list, entry)
	{
		const struct strmap_entry *e;

		for (size_t b = 0; r->nconns > 0 && b < r->users.nbuckets; b++)
			for (e = r->users.buckets[b]; e != NULL; e = e->next)
				users += ((const struct room_user *)e->value)->nconns > 0;
	}
	json_add_int(o, "p", (long long)cl->pseq);
	json_add_int(o, "c", (long long)cl->cd->nconns);
	json_add_int(o, "u", users);
	json_add_int(o, "t", cl->cd->started_ms);
	cluster_publish(cl, "hb", o, NULL);
}

/*
 * For rooms with members here, what was recorded while this node did not
 * hear the others (a bus outage, a node just met): the room's state (a
 * close, bans, admins: room_reload applies them to the members) and the
 * messages past its last seq.
 */
static void
cluster_catch_up_all(struct cluster *cl)
{
	struct room *r;
	char *cause = NULL;

	TAILQ_FOREACH(r, &cl->cd->room_list, entry)
	{
		if (r->nconns == 0)
			continue;
		if (room_reload(cl->cd, r->id, NULL, &cause) < 0) {
			log_error("cluster: reloading room %s: %s", r->id, cause);
			free(cause);
			cause = NULL;
		}
		if (!r->closed)
			(void)sequence_catch_up(r);
	}
}

/* ---------------------------------------------------------------- receiving */

/* The peer a message comes from, created or renewed as its incarnation says; NULL: ours. */
static struct peer *
cluster_peer(struct cluster *cl, const cJSON *o)
{
	const char *id = NULL, *inc = NULL;
	struct peer *p;
	char *cause = NULL;

	if (json_get_string(o, "n", 1, 1, CONFIG_NODE_ID_MAX, 0, &id, &cause) != 0 ||
	    json_get_string(o, "i", 1, 1, 64, 0, &inc, &cause) != 0) {
		log_warn("cluster: a message without its node: %s", cause);
		free(cause);
		return NULL;
	}
	if (strcmp(id, cl->cd->cfg->node_id) == 0) {
		if (strcmp(inc, cl->inc) != 0)
			log_error(
			    "cluster: another node calls itself %s: NODE_ID must be unique", id);
		return NULL;
	}
	p = peers_find(&cl->cd->peers, id);
	if (p != NULL && strcmp(p->inc, inc) != 0) {
		peer_drop(cl, p, "restarted");
		p = NULL;
	}
	if (p == NULL) {
		p = peers_add(&cl->cd->peers, id, inc);
		log_info("cluster: node %s joined", id);
		/* Back from a partition, it may have committed what we never heard. */
		cluster_catch_up_all(cl);
	}
	p->seen_ms = clock_mono_ms();
	return p;
}

/* p missed something or is new: ask it for everything (not more than once a second). */
static void
cluster_resync(struct cluster *cl, struct peer *p)
{
	int64_t now = clock_mono_ms();

	p->synced = 0;
	if (p->want_ms != 0 && now - p->want_ms < CLUSTER_WANT_EVERY_MS)
		return;
	p->want_ms = now;
	cluster_want(cl, p->id);
}

static void
cluster_on_msg(struct cluster *cl, const cJSON *o, const char *frame)
{
	const char *room_id = NULL, *user_id = NULL;
	long long seq = 0, kind = 0;
	char *cause = NULL;
	struct room *r;
	int present;

	if (frame == NULL ||
	    json_get_string(o, "r", 1, 1, 64, TEXT_NO_CONTROL, &room_id, &cause) != 0 ||
	    json_get_string(o, "u", 0, 0, USER_ID_MAX_BYTES, 0, &user_id, &cause) != 0 ||
	    json_get_int(o, "s", 1, 1, INT64_MAX / 2, &seq, &present, &cause) != 0 ||
	    json_get_int(o, "k", 1, DB_MESSAGE_CHAT, DB_MESSAGE_CUSTOM, &kind, &present, &cause) !=
		0) {
		log_warn("cluster: a malformed msg: %s", cause != NULL ? cause : "no frame");
		free(cause);
		return;
	}
	cl->msgs_received++;
	/* A room not in memory has no members here; it is read fresh when it gets one. */
	if ((r = room_find(cl->cd, room_id)) != NULL)
		sequence_offer(r, seq, (int)kind, user_id, frame, 1);
}

static void
cluster_on_presence(struct cluster *cl, struct peer *p, const cJSON *o)
{
	const char *room_id = NULL, *user_id = NULL, *nick = NULL;
	long long pseq = 0, on = 0;
	char *cause = NULL;
	int present;

	if (json_get_string(o, "r", 1, 1, 64, TEXT_NO_CONTROL, &room_id, &cause) != 0 ||
	    json_get_string(o, "u", 1, 1, USER_ID_MAX_BYTES, 0, &user_id, &cause) != 0 ||
	    json_get_string(o, "nk", 0, 0, NICKNAME_MAX_BYTES, 0, &nick, &cause) != 0 ||
	    json_get_int(o, "p", 1, 1, INT64_MAX, &pseq, &present, &cause) != 0 ||
	    json_get_int(o, "on", 1, 0, 1, &on, &present, &cause) != 0) {
		log_warn("cluster: a malformed pres from %s: %s", p->id, cause);
		free(cause);
		return;
	}
	if ((uint64_t)pseq <= p->pseq && p->synced)
		return; /* in the snapshot already */
	if ((uint64_t)pseq != p->pseq + 1)
		cluster_resync(cl, p); /* missed some: apply this one, then the snapshot heals */
	p->pseq = (uint64_t)pseq;
	peer_set(cl, p, room_id, user_id, nick, (int)on);
}

/* Adds one part's rooms to p->snap; -1 if malformed. */
static int
cluster_snap_part(struct peer *p, const cJSON *rooms)
{
	const cJSON *pair, *user;

	cJSON_ArrayForEach(pair, rooms)
	{
		const cJSON *rid = cJSON_GetArrayItem(pair, 0),
			    *users = cJSON_GetArrayItem(pair, 1);

		if (!cJSON_IsString(rid) || !cJSON_IsArray(users))
			return -1;
		cJSON_ArrayForEach(user, users)
		{
			const cJSON *uid = cJSON_GetArrayItem(user, 0),
				    *nk = cJSON_GetArrayItem(user, 1);

			if (!cJSON_IsString(uid) || !cJSON_IsString(nk))
				return -1;
			peer_snap_add(p, rid->valuestring, uid->valuestring, nk->valuestring);
		}
	}
	return 0;
}

static void
cluster_on_snapshot(struct cluster *cl, struct peer *p, const cJSON *o)
{
	const cJSON *rooms = cJSON_GetObjectItemCaseSensitive(o, "rooms");
	const cJSON *last = cJSON_GetObjectItemCaseSensitive(o, "last");
	long long pseq = 0, part = 0;
	char *cause = NULL;
	int present;

	if (json_get_int(o, "p", 1, 0, INT64_MAX, &pseq, &present, &cause) != 0 ||
	    json_get_int(o, "part", 1, 0, INT64_MAX, &part, &present, &cause) != 0 ||
	    !cJSON_IsArray(rooms) || !cJSON_IsBool(last)) {
		log_warn("cluster: a malformed snap from %s: %s", p->id,
		    cause != NULL ? cause : "rooms or last");
		free(cause);
		return;
	}
	if (part == 0)
		peer_snap_begin(p, (uint64_t)pseq);
	else if (p->snap == NULL || part != p->snap_part + 1 || (uint64_t)pseq != p->snap_pseq)
		return; /* a part of one we did not see begin: the next one will do */
	p->snap_part = part;
	if (cluster_snap_part(p, rooms) != 0) {
		log_warn("cluster: a malformed snap from %s", p->id);
		peer_snap_drop(p);
		return;
	}
	if (!cJSON_IsTrue(last))
		return;
	peer_replace(cl, p, p->snap);
	peer_snap_drop(p);
	p->pseq = p->snap_pseq;
	p->synced = 1;
}

static void
cluster_on_heartbeat(struct cluster *cl, struct peer *p, const cJSON *o)
{
	long long pseq = 0, conns = 0, users = 0, started = 0;
	char *cause = NULL;
	int present;

	if (json_get_int(o, "p", 1, 0, INT64_MAX, &pseq, &present, &cause) != 0 ||
	    json_get_int(o, "c", 1, 0, INT64_MAX, &conns, &present, &cause) != 0 ||
	    json_get_int(o, "u", 1, 0, INT64_MAX, &users, &present, &cause) != 0 ||
	    json_get_int(o, "t", 1, 0, INT64_MAX, &started, &present, &cause) != 0) {
		log_warn("cluster: a malformed hb from %s: %s", p->id, cause);
		free(cause);
		return;
	}
	p->conns = conns;
	p->users = users;
	p->started_at = started;
	/* New to us, or changes went missing: its snapshot sets us right. */
	if (!p->synced || (uint64_t)pseq != p->pseq)
		cluster_resync(cl, p);
}

static void
cluster_on_admin(struct cluster *cl, const cJSON *o)
{
	const char *what = NULL, *room_id = NULL, *user_id = NULL, *reason = NULL;
	long long expires = 0;
	char *cause = NULL;
	struct room *r;
	int present;

	if (json_get_string(o, "a", 1, 1, 16, 0, &what, &cause) != 0 ||
	    json_get_string(o, "r", 1, 1, 64, TEXT_NO_CONTROL, &room_id, &cause) != 0 ||
	    json_get_string(o, "u", 0, 0, USER_ID_MAX_BYTES, 0, &user_id, &cause) != 0 ||
	    json_get_string(o, "why", 0, 0, REASON_MAX_BYTES, 0, &reason, &cause) != 0 ||
	    json_get_int(o, "exp", 0, 0, INT64_MAX / 2, &expires, &present, &cause) != 0) {
		log_warn("cluster: a malformed admin: %s", cause);
		free(cause);
		return;
	}
	/* A room not in memory is read from the database, record and all, when needed. */
	if ((r = room_find(cl->cd, room_id)) == NULL)
		return;
	if (strcmp(what, "reload") == 0) {
		if (room_reload(cl->cd, room_id, NULL, &cause) < 0) {
			log_error("cluster: reloading room %s: %s", room_id, cause);
			free(cause);
		}
		return;
	}
	if (strcmp(what, "close") == 0) {
		if (!r->closed)
			log_info("room %s closed (relayed): %u connections closed", r->id,
			    room_close(r, reason));
		return;
	}
	if (user_id == NULL)
		return;
	if (strcmp(what, "ban") == 0)
		log_info("room %s: %s banned (relayed), %u connections closed", r->id, user_id,
		    room_ban(r, user_id, reason, expires));
	else if (strcmp(what, "unban") == 0)
		room_ban_remove(r, user_id);
	else if (strcmp(what, "kick") == 0)
		log_info("room %s: %s kicked (relayed), %u connections closed", r->id, user_id,
		    room_kick(r, user_id, reason));
}

/* ---------------------------------------------------------------- every node's metrics */

static void
scrape_answer_add(struct scrape *s, const char *node, char *text)
{
	s->answers = xreallocarray(s->answers, s->nanswers + 1, sizeof *s->answers);
	s->answers[s->nanswers].node = xstrdup(node);
	s->answers[s->nanswers].text = text;
	s->nanswers++;
}

static void
scrape_free(struct scrape *s)
{
	for (size_t i = 0; i < s->nanswers; i++) {
		free(s->answers[i].node);
		free(s->answers[i].text);
	}
	for (size_t i = 0; i < s->nexpect; i++)
		free(s->expect[i]);
	free(s->answers);
	free(s->expect);
	free(s->token);
	free(s);
}

/* The control reply: {"text": merged, "nodes": [answered, this one first], "missing": [...]}. */
static cJSON *
scrape_result(const struct scrape *s)
{
	const char **texts = xreallocarray(NULL, s->nanswers, sizeof *texts);
	const char **nodes = xreallocarray(NULL, s->nanswers, sizeof *nodes);
	cJSON *o = json_object(), *answered = json_array(), *missing = json_array();
	char *text;

	for (size_t i = 0; i < s->nanswers; i++) {
		texts[i] = s->answers[i].text;
		nodes[i] = s->answers[i].node;
		json_append(answered, json_string(nodes[i]));
	}
	for (size_t i = 0; i < s->nexpect; i++) {
		if (s->expect[i] != NULL)
			json_append(missing, json_string(s->expect[i]));
	}
	text = metrics_merge(texts, nodes, s->nanswers);
	json_add_string(o, "text", text);
	json_add(o, "nodes", answered);
	json_add(o, "missing", missing);
	free(text);
	free(texts);
	free(nodes);
	return o;
}

static void cluster_scrape_tick(uv_timer_t *t);

/* The timer at the earliest deadline of the waiting scrapes (none: stopped). */
static void
cluster_scrape_arm(struct cluster *cl)
{
	int64_t first = INT64_MAX, now = clock_mono_ms();
	struct scrape *s;

	if (!cl->timer_ready)
		return;
	TAILQ_FOREACH(s, &cl->scrapes, entry)
	{
		if (s->deadline_ms < first)
			first = s->deadline_ms;
	}
	if (first == INT64_MAX)
		(void)uv_timer_stop(&cl->scrape_timer);
	else
		(void)uv_timer_start(&cl->scrape_timer, cluster_scrape_tick,
		    first > now ? (uint64_t)(first - now) : 0, 0);
}

/* Answers s's control request with what came in, and forgets s. */
static void
cluster_scrape_finish(struct cluster *cl, struct scrape *s)
{
	TAILQ_REMOVE(&cl->scrapes, s, entry);
	if (s->waiting > 0)
		log_info(
		    "cluster: %zu of the nodes asked for their metrics did not answer within %d ms",
		    s->waiting, CLUSTER_SCRAPE_WAIT_MS);
	/* done may run more control requests, which may add scrapes: s is out of the list. */
	s->done(cl->cd, s->origin, s->ctl_id, scrape_result(s));
	scrape_free(s);
}

static void
cluster_scrape_tick(uv_timer_t *t)
{
	struct cluster *cl = t->data;
	struct scrape *s;
	int64_t now = clock_mono_ms();

	for (;;) {
		TAILQ_FOREACH(s, &cl->scrapes, entry)
		{
			if (s->deadline_ms <= now)
				break;
		}
		if (s == NULL)
			break;
		cluster_scrape_finish(cl, s);
	}
	cluster_scrape_arm(cl);
}

int
cluster_metrics(
    struct chatd *cd, uint64_t origin, unsigned long ctl_id, cluster_metrics_fn done, cJSON **now)
{
	struct cluster *cl = cd->cluster;
	struct scrape *s;
	cJSON *o;
	int asked = 0;

	*now = NULL;
	if (cl == NULL)
		return -1;
	s = xcalloc(1, sizeof *s);
	s->token = xasprintf("%s.%" PRIu64, cl->inc, ++cl->scrape_serial);
	s->origin = origin;
	s->ctl_id = ctl_id;
	s->done = done;
	scrape_answer_add(s, cd->cfg->node_id, cl->own_metrics(cd));
	for (size_t b = 0; b < cd->peers.map.nbuckets; b++) {
		for (const struct strmap_entry *e = cd->peers.map.buckets[b]; e != NULL;
		     e = e->next) {
			s->expect = xreallocarray(s->expect, s->nexpect + 1, sizeof *s->expect);
			s->expect[s->nexpect++] = xstrdup(e->key);
		}
	}
	s->waiting = s->nexpect;
	if (s->waiting > 0 && !cl->stopped && bus_up(cl->bus)) {
		o = cluster_header(cl);
		json_add_string(o, "id", s->token);
		asked = cluster_publish(cl, "mreq", o, NULL) == 0;
	}
	if (!asked) {
		/* Nobody to ask, or no way to ask them: this node's alone, the others missing. */
		*now = scrape_result(s);
		scrape_free(s);
		return 1;
	}
	s->deadline_ms = clock_mono_ms() + CLUSTER_SCRAPE_WAIT_MS;
	TAILQ_INSERT_TAIL(&cl->scrapes, s, entry);
	cluster_scrape_arm(cl);
	return 0;
}

/* Another node asks for every node's metrics: this node's, to it alone. */
static void
cluster_on_metrics_request(struct cluster *cl, const struct peer *p, const cJSON *o)
{
	const char *token = NULL;
	char *cause = NULL, *text;
	cJSON *reply;

	if (json_get_string(o, "id", 1, 1, 128, 0, &token, &cause) != 0) {
		log_warn("cluster: a malformed mreq from %s: %s", p->id, cause);
		free(cause);
		return;
	}
	reply = cluster_header(cl);
	json_add_string(reply, "to", p->id);
	json_add_string(reply, "id", token);
	text = cl->own_metrics(cl->cd);
	(void)cluster_publish(cl, "mrep", reply, text);
	free(text);
}

/* A node's metrics for a request: kept if this node still waits for them. */
static void
cluster_on_metrics_reply(struct cluster *cl, const struct peer *p, const cJSON *o, const char *text)
{
	const char *to = NULL, *token = NULL;
	char *cause = NULL;
	struct scrape *s;
	size_t i;

	if (json_get_string(o, "to", 1, 1, CONFIG_NODE_ID_MAX, 0, &to, &cause) != 0 ||
	    json_get_string(o, "id", 1, 1, 128, 0, &token, &cause) != 0 || text == NULL) {
		log_warn("cluster: a malformed mrep from %s: %s", p->id,
		    cause != NULL ? cause : "no text");
		free(cause);
		return;
	}
	if (strcmp(to, cl->cd->cfg->node_id) != 0)
		return; /* another node's request */
	TAILQ_FOREACH(s, &cl->scrapes, entry)
	{
		if (strcmp(s->token, token) == 0)
			break;
	}
	if (s == NULL)
		return; /* answered already, past its deadline */
	for (i = 0; i < s->nanswers; i++) {
		if (strcmp(s->answers[i].node, p->id) == 0)
			return;
	}
	/* A node that joined since the request is welcome too; only the known ones are awaited. */
	scrape_answer_add(s, p->id, xstrdup(text));
	for (i = 0; i < s->nexpect; i++) {
		if (s->expect[i] != NULL && strcmp(s->expect[i], p->id) == 0) {
			free(s->expect[i]);
			s->expect[i] = NULL;
			s->waiting--;
		}
	}
	if (s->waiting == 0) {
		cluster_scrape_finish(cl, s);
		cluster_scrape_arm(cl);
	}
}

static void
cluster_bus_msg(void *arg, const char *subject, const char *data, size_t len)
{
	struct cluster *cl = arg;
	const char *nl = memchr(data, '\n', len), *frame = NULL;
	char *cause = NULL, *tail = NULL;
	struct peer *p;
	cJSON *o;

	if (len > CLUSTER_MSG_MAX)
		return;
	if ((o = json_parse_object(data, nl != NULL ? (size_t)(nl - data) : len, &cause)) == NULL) {
		log_warn("cluster: unreadable %s message: %s", subject, cause);
		free(cause);
		return;
	}
	if (nl != NULL) {
		tail = xmalloc(len - (size_t)(nl - data));
		memcpy(tail, nl + 1, len - (size_t)(nl - data) - 1);
		tail[len - (size_t)(nl - data) - 1] = '\0';
		frame = tail;
	}
	if ((p = cluster_peer(cl, o)) == NULL)
		goto out;
	if (strcmp(subject, "msg") == 0)
		cluster_on_msg(cl, o, frame);
	else if (strcmp(subject, "pres") == 0)
		cluster_on_presence(cl, p, o);
	else if (strcmp(subject, "snap") == 0)
		cluster_on_snapshot(cl, p, o);
	else if (strcmp(subject, "hb") == 0)
		cluster_on_heartbeat(cl, p, o);
	else if (strcmp(subject, "admin") == 0)
		cluster_on_admin(cl, o);
	else if (strcmp(subject, "want") == 0) {
		const cJSON *of = cJSON_GetObjectItemCaseSensitive(o, "of");

		if (cJSON_IsString(of) &&
		    (strcmp(of->valuestring, "*") == 0 ||
			strcmp(of->valuestring, cl->cd->cfg->node_id) == 0))
			cluster_snapshot(cl);
	} else if (strcmp(subject, "mreq") == 0)
		cluster_on_metrics_request(cl, p, o);
	else if (strcmp(subject, "mrep") == 0)
		cluster_on_metrics_reply(cl, p, o, frame);
	else if (strcmp(subject, "bye") == 0)
		peer_drop(cl, p, "stopped");
out:
	free(tail);
	cJSON_Delete(o);
}

/* ---------------------------------------------------------------- the bus and the clock */

static void
cluster_bus_state(void *arg, int up)
{
	struct cluster *cl = arg;

	if (!up)
		return;
	/* What we missed while away: others' messages, and who is where. */
	cluster_catch_up_all(cl);
	cluster_snapshot(cl);
	cluster_want(cl, "*");
	cluster_heartbeat_publish(cl);
}

/* A node-row operation for the writer (the database's view of who is alive). */
static void
cluster_db_submit(struct cluster *cl, enum writer_op_type type)
{
	struct writer_op *op = writer_op_create(type);

	op->ts_ms = clock_wall_ms();
	op->incarnation = xstrdup(cl->inc);
	op->started_at = cl->cd->started_ms;
	op->connections = (int64_t)cl->cd->nconns;
	op->stale_before = op->ts_ms - cl->cd->cfg->cluster_node_timeout_ms;
	(void)writer_submit(cl->cd->writer, op);
}

/* A slice of the rooms with members here, caught up from the database. */
static void
cluster_sweep(struct cluster *cl)
{
	struct room *r = cl->sweep;
	unsigned n;

	for (n = 0; n < CLUSTER_SWEEP_ROOMS; n++) {
		if (r == NULL && (r = TAILQ_FIRST(&cl->cd->room_list)) == NULL)
			break;
		if (r->nconns > 0 && r->held == NULL)
			(void)sequence_catch_up(r);
		r = TAILQ_NEXT(r, entry);
		if (r == NULL)
			break; /* the next tick starts over */
	}
	cl->sweep = r;
}

static void
cluster_tick(uv_timer_t *t)
{
	struct cluster *cl = t->data;
	int64_t now = clock_mono_ms(), timeout = cl->cd->cfg->cluster_node_timeout_ms;
	struct peer **lost = NULL;
	size_t nlost = 0, i;

	/* Without the bus a node serves its own members, as a single node would. */
	if (bus_up(cl->bus))
		cluster_sweep(cl);
	cluster_db_submit(cl, WRITER_NODE_BEAT);
	cluster_db_submit(cl, WRITER_NODE_REAP);
	if (bus_up(cl->bus))
		cluster_heartbeat_publish(cl);
	for (size_t b = 0; b < cl->cd->peers.map.nbuckets; b++) {
		for (const struct strmap_entry *e = cl->cd->peers.map.buckets[b]; e != NULL;
		     e = e->next) {
			struct peer *p = e->value;

			if (now - p->seen_ms > timeout) {
				lost = xreallocarray(lost, nlost + 1, sizeof *lost);
				lost[nlost++] = p;
			}
		}
	}
	for (i = 0; i < nlost; i++) {
		cl->peers_lost++;
		peer_drop(cl, lost[i], "fell silent");
	}
	free(lost);
}

/* ---------------------------------------------------------------- the node's life */

int
cluster_claim(struct chatd *cd, char **cause)
{
	const struct config *cfg = cd->cfg;
	int64_t closed = 0, first_seen = -1, deadline;
	struct db_node n;
	int rc;

	if (cfg->cluster_nats_url == NULL) {
		/* No connection survives a restart: close what a crash left open. */
		if (db_sessions_close_all(
			cd->db, "server_restart", clock_wall_ms(), &closed, cause) != DB_OK)
			return -1;
		if (closed > 0)
			log_info("closed %" PRId64 " sessions left open (server_restart)", closed);
		return 0;
	}
	/* An earlier incarnation that was killed falls silent within the timeout;
	 * one that keeps beating is another node with this NODE_ID. */
	deadline = clock_mono_ms() + cfg->cluster_node_timeout_ms + 2 * cfg->cluster_heartbeat_ms;
	for (;;) {
		memset(&n, 0, sizeof n);
		rc = db_node_get(cd->db, cfg->node_id, &n, cause);
		if (rc == DB_NOTFOUND)
			break;
		if (rc != DB_OK)
			return -1;
		if (n.stopped_at != 0 ||
		    n.seen_at < clock_wall_ms() - cfg->cluster_node_timeout_ms) {
			db_node_clear(&n);
			break;
		}
		if (first_seen >= 0 && n.seen_at != first_seen) {
			*cause =
			    xasprintf("NODE_ID=%s is in use by a running node (started at %" PRId64
				      "): every node needs its own",
				cfg->node_id, n.started_at);
			db_node_clear(&n);
			return -1;
		}
		if (first_seen < 0) {
			log_info("cluster: node %s's last run beat %" PRId64
				 " ms ago; waiting for it to go silent",
			    cfg->node_id, clock_wall_ms() - n.seen_at);
			first_seen = n.seen_at;
		}
		db_node_clear(&n);
		if (clock_mono_ms() > deadline) {
			*cause = xasprintf(
			    "NODE_ID=%s: the database keeps hearing from it: is it running?",
			    cfg->node_id);
			return -1;
		}
		{
			struct timespec ts = { 0, 200 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	if (db_sessions_close_node(
		cd->db, cfg->node_id, "node_lost", clock_wall_ms(), &closed, cause) != DB_OK)
		return -1;
	if (closed > 0)
		log_info("closed %" PRId64 " sessions this node left open (node_lost)", closed);
	return 0;
}

int
cluster_start(struct chatd *cd, char *(*own_metrics)(struct chatd *cd), char **cause)
{
	const struct config *cfg = cd->cfg;
	struct cluster *cl;

	if (cfg->cluster_nats_url == NULL)
		return 0;
	cl = xcalloc(1, sizeof *cl);
	cl->cd = cd;
	cl->own_metrics = own_metrics;
	cl->inc = xasprintf("%" PRId64 "-%ld", clock_wall_ms(), (long)getpid());
	TAILQ_INIT(&cl->scrapes);
	cd->cluster = cl;
	if (bus_open(&cd->loop, cfg->cluster_nats_url, cfg->cluster_name, cfg->node_id,
		cluster_bus_msg, cluster_bus_state, cl, &cl->bus, cause) != 0)
		return -1;
	(void)uv_timer_init(&cd->loop, &cl->hb_timer);
	cl->hb_timer.data = cl;
	(void)uv_timer_init(&cd->loop, &cl->scrape_timer);
	cl->scrape_timer.data = cl;
	cl->timer_ready = 1;
	(void)uv_timer_start(&cl->hb_timer, cluster_tick, 0, (uint64_t)cfg->cluster_heartbeat_ms);
	log_info("cluster %s: node %s, bus %s", cfg->cluster_name, cfg->node_id, "connecting");
	return 0;
}

void
cluster_stop(struct chatd *cd)
{
	struct cluster *cl = cd->cluster;
	struct scrape *s;

	if (cl == NULL)
		return;
	/* Metrics requests waiting for other nodes get what came in so far. */
	cl->stopped = 1;
	while ((s = TAILQ_FIRST(&cl->scrapes)) != NULL)
		cluster_scrape_finish(cl, s);
	if (cl->bus != NULL) {
		if (bus_up(cl->bus))
			cluster_publish(cl, "bye", cluster_header(cl), NULL);
		bus_close(cl->bus);
	}
	if (cl->timer_ready) {
		uv_close((uv_handle_t *)&cl->hb_timer, NULL);
		uv_close((uv_handle_t *)&cl->scrape_timer, NULL);
	}
	cl->timer_ready = 0;
	/* A clean stop: nobody needs to wait for this node to fall silent. */
	if (cd->writer != NULL)
		cluster_db_submit(cl, WRITER_NODE_STOP);
}

void
cluster_free(struct chatd *cd)
{
	struct cluster *cl = cd->cluster;
	struct scrape *s;

	if (cl == NULL)
		return;
	while ((s = TAILQ_FIRST(&cl->scrapes)) != NULL) {
		TAILQ_REMOVE(&cl->scrapes, s, entry);
		scrape_free(s);
	}
	peers_clear(&cd->peers);
	bus_free(cl->bus);
	free(cl->inc);
	free(cl);
	cd->cluster = NULL;
}

/* ---------------------------------------------------------------- hooks */

void
cluster_presence(
    struct chatd *cd, struct room *r, const char *user_id, const char *nickname, int present)
{
	struct cluster *cl = cd->cluster;
	cJSON *o;

	if (cl == NULL)
		return;
	/* Numbered even when the bus is down: the others see the gap and ask. */
	cl->pseq++;
	o = cluster_header(cl);
	json_add_int(o, "p", (long long)cl->pseq);
	json_add_string(o, "r", r->id);
	json_add_string(o, "u", user_id);
	json_add_string(o, "nk", nickname);
	json_add_int(o, "on", present);
	cluster_publish(cl, "pres", o, NULL);
}

void
cluster_message(
    struct chatd *cd, struct room *r, int64_t seq, int kind, const char *user_id, const char *json)
{
	struct cluster *cl = cd->cluster;
	cJSON *o;

	if (cl == NULL)
		return;
	o = cluster_header(cl);
	json_add_string(o, "r", r->id);
	json_add_int(o, "s", seq);
	json_add_int(o, "k", kind);
	json_add_string(o, "u", user_id);
	cluster_publish(cl, "msg", o, json);
	cl->msgs_published++;
}

void
cluster_admin(struct chatd *cd, enum cluster_admin what, const char *room_id, const char *user_id,
    const char *reason, int64_t expires_at)
{
	static const char *const names[] = {
		[CLUSTER_BAN] = "ban",
		[CLUSTER_UNBAN] = "unban",
		[CLUSTER_KICK] = "kick",
		[CLUSTER_CLOSE] = "close",
		[CLUSTER_RELOAD] = "reload",
	};
	struct cluster *cl = cd->cluster;
	cJSON *o;

	if (cl == NULL)
		return;
	o = cluster_header(cl);
	json_add_string(o, "a", names[what]);
	json_add_string(o, "r", room_id);
	if (user_id != NULL)
		json_add_string(o, "u", user_id);
	if (reason != NULL)
		json_add_string(o, "why", reason);
	if (expires_at != 0)
		json_add_int(o, "exp", expires_at);
	cluster_publish(cl, "admin", o, NULL);
}

void
cluster_stats(struct chatd *cd, struct cluster_stats *out)
{
	struct cluster *cl = cd->cluster;
	struct bus_stats bs;

	memset(out, 0, sizeof *out);
	out->gap_reads = cd->counters.gap_reads;
	out->gap_filled = cd->counters.gap_filled;
	out->gap_skipped = cd->counters.gap_skipped;
	if (cl == NULL)
		return;
	out->enabled = 1;
	bus_stats(cl->bus, &bs);
	out->bus_up = bs.up;
	out->bus_in_msgs = bs.in_msgs;
	out->bus_in_bytes = bs.in_bytes;
	out->bus_out_msgs = bs.out_msgs;
	out->bus_out_bytes = bs.out_bytes;
	out->bus_reconnects = bs.reconnects;
	out->bus_dropped_in = bs.dropped_in;
	out->bus_dropped_out = bs.dropped_out;
	for (size_t b = 0; b < cl->cd->peers.map.nbuckets; b++) {
		for (struct strmap_entry *e = cl->cd->peers.map.buckets[b]; e != NULL;
		     e = e->next) {
			out->peers++;
			out->peers_unsynced += !((struct peer *)e->value)->synced;
		}
	}
	out->peers_lost = cl->peers_lost;
	out->msgs_published = cl->msgs_published;
	out->msgs_received = cl->msgs_received;
	out->snapshots_sent = cl->snapshots_sent;
}

unsigned long
cluster_connections(struct chatd *cd)
{
	struct cluster *cl = cd->cluster;
	unsigned long n = cd->nconns;

	if (cl == NULL)
		return n;
	for (size_t b = 0; b < cl->cd->peers.map.nbuckets; b++)
		for (struct strmap_entry *e = cl->cd->peers.map.buckets[b]; e != NULL; e = e->next)
			n += (unsigned long)((struct peer *)e->value)->conns;
	return n;
}

void
cluster_health(struct chatd *cd, cJSON *o)
{
	struct cluster *cl = cd->cluster;
	cJSON *c, *bus, *nodes, *n;
	struct bus_stats bs;
	int64_t now = clock_mono_ms();

	if (cl == NULL)
		return;
	c = json_object();
	json_add_string(c, "name", cd->cfg->cluster_name);
	json_add_string(c, "node_id", cd->cfg->node_id);
	bus_stats(cl->bus, &bs);
	bus = json_object();
	json_add_bool(bus, "connected", bs.up);
	json_add_string(bus, "url", bs.url[0] != '\0' ? bs.url : NULL);
	json_add_int(bus, "in_msgs", (long long)bs.in_msgs);
	json_add_int(bus, "in_bytes", (long long)bs.in_bytes);
	json_add_int(bus, "out_msgs", (long long)bs.out_msgs);
	json_add_int(bus, "out_bytes", (long long)bs.out_bytes);
	json_add_int(bus, "reconnects", (long long)bs.reconnects);
	json_add_int(bus, "dropped_in", (long long)bs.dropped_in);
	json_add_int(bus, "dropped_out", (long long)bs.dropped_out);
	json_add(c, "bus", bus);
	nodes = json_array();
	n = json_object();
	json_add_string(n, "node_id", cd->cfg->node_id);
	json_add_bool(n, "self", 1);
	json_add_int(n, "connections", (long long)cd->nconns);
	json_add_int(n, "last_heard_ms", 0);
	json_add_bool(n, "synced", 1);
	json_append(nodes, n);
	for (size_t b = 0; b < cl->cd->peers.map.nbuckets; b++) {
		for (struct strmap_entry *e = cl->cd->peers.map.buckets[b]; e != NULL;
		     e = e->next) {
			struct peer *p = e->value;

			n = json_object();
			json_add_string(n, "node_id", p->id);
			json_add_bool(n, "self", 0);
			json_add_int(n, "connections", p->conns);
			json_add_int(n, "last_heard_ms", now - p->seen_ms);
			json_add_bool(n, "synced", p->synced);
			json_append(nodes, n);
		}
	}
	json_add(c, "nodes", nodes);
	json_add_int(c, "connections", (long long)cluster_connections(cd));
	json_add_int(c, "nodes_lost", (long long)cl->peers_lost);
	json_add_int(c, "gap_reads", (long long)cd->counters.gap_reads);
	json_add_int(c, "gap_filled", (long long)cd->counters.gap_filled);
	json_add_int(c, "gap_skipped", (long long)cd->counters.gap_skipped);
	json_add(o, "cluster", c);
}
