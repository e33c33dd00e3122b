/*
 * Rooms (see room.h). Service thread only. Database reads go through the
 * service thread's own connection (cd->db) and happen only for room loads
 * (start, an unknown room id at handshake, room_opened, room_reload);
 * every write is handed to the writer. Never touches sockets: frames go
 * through conn_push(), closes through conn_close().
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conn.h"
#include "db.h"
#include "log.h"
#include "room.h"
#include "writer.h"
#include "wsproto.h"
#include "xmalloc.h"

static void room_stats_timer(uv_timer_t *t);
static unsigned room_expel(struct room *r, const char *user_id, enum conn_close_code code,
    const char *word, const char *reason);
static void room_expel_banned(struct room *r);
static void room_ban_set(
    struct room *r, const char *user_id, const char *reason, int64_t expires_at);

static void
room_free_ban(void *v)
{
	struct room_ban *b = v;

	if (b == NULL)
		return;
	free(b->reason);
	free(b);
}

static void
room_free_user(void *v)
{
	free(v);
}

static void
room_free_admins(struct room *r)
{
	for (size_t i = 0; i < r->n_admins; i++)
		free(r->admins[i]);
	free(r->admins);
	r->admins = NULL;
	r->n_admins = 0;
}

static void
room_count_peer_user(const char *user_id, const char *nickname, void *arg)
{
	room_remote_user(arg, user_id, nickname, 1);
}

static struct room *
room_create(struct chatd *cd, const char *id)
{
	struct room *r = xcalloc(1, sizeof *r);

	r->cd = cd;
	r->id = xstrdup(id);
	strmap_init(&r->bans);
	strmap_init(&r->users);
	TAILQ_INIT(&r->members);
	STAILQ_INIT(&r->fanout);
	/* Cannot fail for an initialised loop; closed by room_close_timers(). */
	(void)uv_timer_init(&cd->loop, &r->stats_timer);
	(void)uv_timer_init(&cd->loop, &r->gap_timer);
	r->stats_timer.data = r->gap_timer.data = r;
	ratelimit_init(&r->rl, cd->cfg->user_message_interval_ms);
	coalesce_init(&r->co);
	strmap_set(&cd->rooms, r->id, r);
	TAILQ_INSERT_TAIL(&cd->room_list, r, entry);
	/* Other nodes may hold users in it already. */
	peers_room_each(&cd->peers, r->id, room_count_peer_user, r);
	return r;
}

struct room *
room_find(struct chatd *cd, const char *id)
{
	return strmap_get(&cd->rooms, id);
}

static void
room_apply(struct room *r, const struct db_room *dr)
{
	free(r->name);
	r->name = xstrdup(dr->name != NULL ? dr->name : "");
	room_free_admins(r);
	if (dr->n_admins > 0) {
		r->admins = xreallocarray(NULL, dr->n_admins, sizeof *r->admins);
		for (size_t i = 0; i < dr->n_admins; i++)
			r->admins[i] = xstrdup(dr->admins[i]);
		r->n_admins = dr->n_admins;
	}
	/* Peaks only grow: the database may lag behind our own count. */
	if (dr->peak_users > r->peak_users)
		r->peak_users = dr->peak_users;
	/* With members here, last_seq is what they were given (sequence.c
	 * delivers the rest); without, the record's is the room's. */
	if (r->nconns == 0 && dr->last_seq > r->last_seq)
		r->last_seq = dr->last_seq;
}

static int
room_load_ban(const struct db_ban *ban, void *arg)
{
	room_ban_set(arg, ban->user_id, ban->reason, ban->expires_at);
	return 0;
}

static int
room_load_bans(struct room *r, char **cause)
{
	strmap_clear(&r->bans, room_free_ban);
	if (db_ban_list(r->cd->db, r->id, clock_wall_ms(), room_load_ban, r, cause) == DB_ERROR)
		return -1;
	return 0;
}

struct room_load_arg {
	struct chatd *cd;
	char *cause;
	unsigned n;
};

static int
room_load_one(const struct db_room *dr, void *arg)
{
	struct room_load_arg *la = arg;
	struct room *r;

	if ((r = room_find(la->cd, dr->id)) == NULL)
		r = room_create(la->cd, dr->id);
	room_apply(r, dr);
	r->closed = dr->closed_at != 0;
	if (room_load_bans(r, &la->cause) != 0)
		return 1;
	la->n++;
	return 0;
}

int
room_load_all(struct chatd *cd, char **cause)
{
	struct room_load_arg la = { cd, NULL, 0 };

	if (db_room_list(cd->db, 0, room_load_one, &la, cause) != DB_OK)
		return -1;
	if (la.cause != NULL) {
		*cause = la.cause;
		return -1;
	}
	log_info("loaded %u open rooms", la.n);
	return 0;
}

int
room_reload(struct chatd *cd, const char *id, struct room **out, char **cause)
{
	struct db_room dr;
	struct room *r;
	int rc;

	memset(&dr, 0, sizeof dr);
	rc = db_room_get(cd->db, id, &dr, cause);
	if (rc == DB_NOTFOUND)
		return 1;
	if (rc != DB_OK)
		return -1;
	if ((r = room_find(cd, id)) == NULL)
		r = room_create(cd, id);
	room_apply(r, &dr);
	if (room_load_bans(r, cause) != 0) {
		db_room_clear(&dr);
		return -1;
	}
	/* A ban recorded while this node did not hear of it (another node, a
	 * bus outage) closes the banned user's connections now. */
	room_expel_banned(r);
	if (dr.closed_at != 0 && !r->closed)
		room_close(r, dr.close_reason != NULL ? dr.close_reason : "closed");
	r->closed = dr.closed_at != 0;
	db_room_clear(&dr);
	if (out != NULL)
		*out = r;
	return 0;
}

struct room *
room_lookup(struct chatd *cd, const char *id, int *status)
{
	struct room *r;
	char *cause = NULL;
	int rc;

	if ((r = room_find(cd, id)) != NULL)
		return r;
	rc = room_reload(cd, id, &r, &cause);
	if (rc == 0)
		return r;
	if (rc < 0) {
		log_error("loading room %.64s: %s", id, cause);
		free(cause);
		*status = db_failure_transient(cd->db) ? 503 : 500;
	} else
		*status = 404;
	return NULL;
}

static void
room_fanout_drop(struct room *r)
{
	struct room_fanout *fo;

	while ((fo = STAILQ_FIRST(&r->fanout)) != NULL) {
		STAILQ_REMOVE_HEAD(&r->fanout, entry);
		frame_unref(fo->f);
		free(fo);
	}
	r->fanout_len = 0;
	r->fan_cursor = NULL;
	r->fan_pass = 0;
}

void
room_close_timers(struct chatd *cd)
{
	struct room *r;

	TAILQ_FOREACH(r, &cd->room_list, entry)
	{
		uv_close((uv_handle_t *)&r->stats_timer, NULL);
		uv_close((uv_handle_t *)&r->gap_timer, NULL);
	}
}

void
room_free_all(struct chatd *cd)
{
	struct room *r;

	while ((r = TAILQ_FIRST(&cd->room_list)) != NULL) {
		TAILQ_REMOVE(&cd->room_list, r, entry);
		if (r->busy)
			TAILQ_REMOVE(&cd->busy, r, busy_entry);
		room_fanout_drop(r);
		strmap_clear(&r->bans, room_free_ban);
		strmap_clear(&r->users, room_free_user);
		ratelimit_clear(&r->rl);
		coalesce_clear(&r->co);
		room_free_admins(r);
		free(r->name);
		free(r->id);
		free(r);
	}
	strmap_clear(&cd->rooms, NULL);
}

int
room_is_admin(const struct room *r, const char *user_id)
{
	for (size_t i = 0; i < r->n_admins; i++) {
		if (strcmp(r->admins[i], user_id) == 0)
			return 1;
	}
	return 0;
}

struct room_ban *
room_ban_find(struct room *r, const char *user_id, int64_t now_ms)
{
	struct room_ban *b = strmap_get(&r->bans, user_id);

	if (b != NULL && b->expires_at != 0 && b->expires_at <= now_ms) {
		room_free_ban(strmap_remove(&r->bans, user_id));
		return NULL;
	}
	return b;
}

static void
room_ban_set(struct room *r, const char *user_id, const char *reason, int64_t expires_at)
{
	struct room_ban *b = xcalloc(1, sizeof *b);

	b->reason = reason != NULL ? xstrdup(reason) : NULL;
	b->expires_at = expires_at;
	room_free_ban(strmap_set(&r->bans, user_id, b));
}

int
room_ban_remove(struct room *r, const char *user_id)
{
	struct room_ban *b = strmap_remove(&r->bans, user_id);

	room_free_ban(b);
	return b != NULL;
}

static void
room_submit(struct room *r, struct writer_op *op)
{
	/* Only message ops can be refused; these never are. */
	if (writer_submit(r->cd->writer, op) != 0)
		log_error("writer refused a %s operation", writer_op_name(op->type));
}

/* Pushes the coalesced RoomStats now if due, else arms the timer. */
static void
room_stats_maybe(struct room *r)
{
	struct coalesce_push push;
	int64_t due, now;
	char *json;

	if (r->cd->shutting_down)
		return;
	if ((due = coalesce_due_at(&r->co)) < 0)
		return;
	now = clock_mono_ms();
	if (now < due) {
		(void)uv_timer_start(&r->stats_timer, room_stats_timer, (uint64_t)(due - now), 0);
		return;
	}
	if (coalesce_take(&r->co, now, &push)) {
		json = wsproto_encode_room_stats(r->id, r->current_users, r->peak_users, &push);
		room_broadcast(r, json, 1);
		free(json);
	}
}

static void
room_stats_timer(uv_timer_t *t)
{
	struct room *r = t->data;

	room_stats_maybe(r);
}

/* The user counts in r now (on some node): head count, peak, RoomStats. */
static struct room_user *
room_user_arrive(struct room *r, const char *user_id, const char *nickname)
{
	struct room_user *u = xcalloc(1, sizeof *u);
	struct writer_op *op;

	strmap_set(&r->users, user_id, u);
	r->current_users++;
	coalesce_note(&r->co, 1, user_id, nickname);
	if (r->current_users > r->peak_users) {
		r->peak_users = r->current_users;
		op = writer_op_create(WRITER_PEAK);
		op->room_id = xstrdup(r->id);
		op->peak = r->peak_users;
		room_submit(r, op);
	}
	return u;
}

/* u no longer counts if no connection of theirs is left on any node. */
static void
room_user_settle(struct room *r, struct room_user *u, const char *user_id, const char *nickname)
{
	if (u->nconns > 0 || u->nodes > 0)
		return;
	room_free_user(strmap_remove(&r->users, user_id));
	r->current_users--;
	coalesce_note(&r->co, 0, user_id, nickname);
}

void
room_remote_user(struct room *r, const char *user_id, const char *nickname, int present)
{
	struct room_user *u = strmap_get(&r->users, user_id);

	if (present) {
		if (u == NULL)
			u = room_user_arrive(r, user_id, nickname);
		u->nodes++;
	} else {
		if (u == NULL || u->nodes == 0)
			return;
		u->nodes--;
		room_user_settle(r, u, user_id, nickname);
	}
	room_stats_maybe(r);
}

int
room_join(struct room *r, struct conn *c)
{
	struct room_user *u;
	struct writer_op *op;
	struct frame *f;
	char *json;
	int first;

	TAILQ_INSERT_TAIL(&r->members, c, entry);
	r->nconns++;
	c->room = r;
	if ((u = strmap_get(&r->users, c->user_id)) == NULL)
		u = room_user_arrive(r, c->user_id, c->nickname);
	first = u->nconns++ == 0;

	op = writer_op_create(WRITER_SESSION_OPEN);
	op->room_id = xstrdup(r->id);
	op->user_id = xstrdup(c->user_id);
	op->nickname = xstrdup(c->nickname);
	op->is_admin = c->is_admin;
	op->address = xstrdup(c->address);
	op->ts_ms = clock_wall_ms();
	op->key = c->serial;
	room_submit(r, op);

	json = wsproto_encode_user_joined(r->id, c->user_id, c->nickname, c->is_admin,
	    r->current_users, r->peak_users, r->last_seq);
	f = frame_create_text(json, strlen(json));
	free(json);
	conn_push(c, f, 1);
	frame_unref(f);

	room_stats_maybe(r);
	return first;
}

int
room_leave(struct room *r, struct conn *c)
{
	struct room_user *u;
	struct writer_op *op;
	int last = 0;

	if (r->fan_cursor == c)
		r->fan_cursor = TAILQ_NEXT(c, entry);
	TAILQ_REMOVE(&r->members, c, entry);
	r->nconns--;
	c->room = NULL;
	if ((u = strmap_get(&r->users, c->user_id)) != NULL && --u->nconns == 0) {
		last = 1;
		room_user_settle(r, u, c->user_id, c->nickname);
	}

	op = writer_op_create(WRITER_SESSION_CLOSE);
	op->room_id = xstrdup(r->id);
	op->key = c->serial;
	op->reason = xstrdup(c->leave_reason != NULL ? c->leave_reason : "left");
	op->ts_ms = clock_wall_ms();
	room_submit(r, op);

	room_stats_maybe(r);
	return last;
}

/*
 * A message waiting in the room's fan-out is queued for every member, so
 * the backlog is bounded like one member's low lane: past it the oldest
 * message not yet being fanned out is dropped, and every member is told
 * (through its queue's drop count) that it missed one. Without this bound
 * an offered load above what the loop can fan out grows memory without
 * limit instead of shedding chat.
 */
static void
room_fanout_shed(struct room *r)
{
	struct room_fanout *victim = STAILQ_FIRST(&r->fanout);
	struct conn *c;
	unsigned i;

	/* The frames of the pass under way are half delivered: keep them. */
	for (i = 0; i < r->fan_pass && victim != NULL; i++)
		victim = STAILQ_NEXT(victim, entry);
	if (victim == NULL)
		return;
	STAILQ_REMOVE(&r->fanout, victim, room_fanout, entry);
	frame_unref(victim->f);
	free(victim);
	r->fanout_len--;
	r->fanout_shed++;
	TAILQ_FOREACH(c, &r->members, entry)
	conn_missed(c, 1);
}

/*
 * Column-wise: every member visited gets all the frames of the pass at
 * once, so when the loop falls behind, frames pile up in the members'
 * queues and leave in one write per member (conn.c batches a queue
 * into one lws_write) instead of one write per frame. That is what lets
 * a loaded daemon catch up rather than fall further behind. The budget
 * counts members visited.
 */
static unsigned
room_fanout_run(struct room *r, unsigned budget)
{
	struct room_fanout *fo, *pass[ROOM_FANOUT_PASS_MAX];
	struct conn *c;
	unsigned used = 0, i, n;

	while (used < budget && !STAILQ_EMPTY(&r->fanout)) {
		if (r->fan_pass == 0) {
			r->fan_pass = r->fanout_len;
			if (r->fan_pass > ROOM_FANOUT_PASS_MAX)
				r->fan_pass = ROOM_FANOUT_PASS_MAX;
			r->fan_cursor = TAILQ_FIRST(&r->members);
		}
		n = 0;
		STAILQ_FOREACH(fo, &r->fanout, entry)
		{
			if (n == r->fan_pass)
				break;
			pass[n++] = fo;
		}
		while (used < budget && (c = r->fan_cursor) != NULL) {
			r->fan_cursor = TAILQ_NEXT(c, entry);
			for (i = 0; i < n; i++)
				conn_push(c, pass[i]->f, 0);
			used++;
		}
		if (r->fan_cursor != NULL)
			break;
		for (i = 0; i < n; i++) {
			fo = STAILQ_FIRST(&r->fanout);
			STAILQ_REMOVE_HEAD(&r->fanout, entry);
			frame_unref(fo->f);
			free(fo);
			r->fanout_len--;
		}
		r->fan_pass = 0;
	}
	return used;
}

/* The fan-out's idle handle: one slice of every busy room. */
static void
room_fanout_idle(uv_idle_t *h)
{
	struct chatd *cd = h->data;
	struct room *r, *next;

	TAILQ_FOREACH_SAFE(r, &cd->busy, busy_entry, next)
	{
		room_fanout_run(r, ROOM_FANOUT_SLICE);
		if (STAILQ_EMPTY(&r->fanout)) {
			TAILQ_REMOVE(&cd->busy, r, busy_entry);
			r->busy = 0;
		}
	}
	if (TAILQ_EMPTY(&cd->busy))
		(void)uv_idle_stop(&cd->fanout_idle);
}

/* Makes sure the sliced fan-out runs on the next loop iteration. */
static void
room_fanout_schedule(struct chatd *cd)
{
	/* An active idle handle runs once per loop iteration, before the
	 * loop polls (without blocking): one slice per room per iteration,
	 * socket events in between. */
	if (!uv_is_active((uv_handle_t *)&cd->fanout_idle))
		(void)uv_idle_start(&cd->fanout_idle, room_fanout_idle);
}

unsigned
room_broadcast(struct room *r, const char *json, int high)
{
	struct room_fanout *fo;
	struct conn *c, *next;
	struct frame *f;

	f = frame_create_text(json, strlen(json));
	if (high || (STAILQ_EMPTY(&r->fanout) && r->nconns <= ROOM_FANOUT_SLICE)) {
		/* Small or urgent: every queue now (closing members skip it). */
		TAILQ_FOREACH_SAFE(c, &r->members, entry, next)
		conn_push(c, f, high);
	} else {
		if (r->fanout_len >= (unsigned)r->cd->cfg->queue_low_frames)
			room_fanout_shed(r);
		fo = xmalloc(sizeof *fo);
		fo->f = frame_ref(f);
		STAILQ_INSERT_TAIL(&r->fanout, fo, entry);
		r->fanout_len++;
		if (!r->busy) {
			r->busy = 1;
			TAILQ_INSERT_TAIL(&r->cd->busy, r, busy_entry);
		}
		room_fanout_schedule(r->cd);
	}
	frame_unref(f);
	return r->nconns;
}

/*
 * Closes the user's connections in r with code, the reason "word" or
 * "word: reason"; returns how many.
 */
static unsigned
room_expel(struct room *r, const char *user_id, enum conn_close_code code, const char *word,
    const char *reason)
{
	struct conn *c, *next;
	unsigned n = 0;
	char *why;

	why = reason != NULL ? xasprintf("%s: %s", word, reason) : xstrdup(word);
	TAILQ_FOREACH_SAFE(c, &r->members, entry, next)
	{
		if (strcmp(c->user_id, user_id) == 0 && conn_close(c, code, why))
			n++;
	}
	free(why);
	return n;
}

/* Closes the connections of members whose ban is in force. */
static void
room_expel_banned(struct room *r)
{
	int64_t now = clock_wall_ms();
	struct room_ban *b;
	struct conn *c, *next;

	TAILQ_FOREACH_SAFE(c, &r->members, entry, next)
	{
		if (c->close_code == 0 && (b = room_ban_find(r, c->user_id, now)) != NULL)
			room_expel(r, c->user_id, CONN_CLOSE_BANNED, "banned", b->reason);
	}
}

unsigned
room_ban(struct room *r, const char *user_id, const char *reason, int64_t expires_at)
{
	room_ban_set(r, user_id, reason, expires_at);
	return room_expel(r, user_id, CONN_CLOSE_BANNED, "banned", reason);
}

unsigned
room_kick(struct room *r, const char *user_id, const char *reason)
{
	return room_expel(r, user_id, CONN_CLOSE_KICKED, "kicked", reason);
}

unsigned
room_close(struct room *r, const char *reason)
{
	struct conn *c, *next;
	unsigned n = 0;
	char *why;

	r->closed = 1;
	room_fanout_drop(r);
	why = xasprintf("room closed: %s", reason != NULL ? reason : "closed");
	TAILQ_FOREACH_SAFE(c, &r->members, entry, next)
	{
		if (conn_close(c, CONN_CLOSE_ROOM_CLOSED, why))
			n++;
	}
	free(why);
	return n;
}

void
room_queued(const struct room *r, uint64_t *low, uint64_t *high)
{
	const struct conn *c;

	*low = *high = 0;
	TAILQ_FOREACH(c, &r->members, entry)
	{
		*low += c->q.low.len;
		*high += c->q.high.len;
	}
}
