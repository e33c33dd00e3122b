/*
 * Delivery in sequence order (see sequence.h). Service thread only; the
 * database reads use the service thread's own connection.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conn.h"
#include "db.h"
#include "log.h"
#include "room.h"
#include "sequence.h"
#include "wsproto.h"
#include "xmalloc.h"

static void
sequence_held_free(struct sequence_held *h)
{
	free(h->user_id);
	free(h->json);
	free(h);
}

void
sequence_clear(struct room *r)
{
	struct sequence_held *h;

	while ((h = r->held) != NULL) {
		r->held = h->next;
		sequence_held_free(h);
	}
	r->nheld = 0;
	(void)uv_timer_stop(&r->gap_timer);
}

static void
sequence_deliver(
    struct room *r, int64_t seq, int kind, const char *user_id, const char *json, int remote)
{
	r->last_seq = seq;
	if (r->closed || r->cd->shutting_down || r->nconns == 0)
		return;
	/* One post per interval per user, whichever node took it. */
	if (remote && kind == DB_MESSAGE_CHAT && user_id != NULL)
		ratelimit_note(&r->rl, user_id, clock_mono_ms());
	room_broadcast(r, json, kind != DB_MESSAGE_CHAT);
}

static void
sequence_timer_cb(uv_timer_t *t)
{
	sequence_gap_timer(t->data);
}

/* Delivers the held messages that are next in line; re-arms or stops the timer. */
static void
sequence_release(struct room *r)
{
	struct sequence_held *h;

	while ((h = r->held) != NULL && h->seq <= r->last_seq + 1) {
		r->held = h->next;
		r->nheld--;
		if (h->seq == r->last_seq + 1)
			sequence_deliver(r, h->seq, h->kind, h->user_id, h->json, h->remote);
		sequence_held_free(h);
	}
	if (r->held == NULL)
		(void)uv_timer_stop(&r->gap_timer);
	else if (!uv_is_active((uv_handle_t *)&r->gap_timer))
		(void)uv_timer_start(
		    &r->gap_timer, sequence_timer_cb, (uint64_t)r->cd->cfg->cluster_gap_wait_ms, 0);
}

struct sequence_read {
	struct room *r;
	int64_t upto;
};

static int
sequence_read_one(const struct db_message *m, void *arg)
{
	struct sequence_read *sr = arg;
	struct room *r = sr->r;
	char *json;

	if (m->seq != r->last_seq + 1)
		return 0; /* not next in line: the caller counts what is missing */
	if (m->kind == DB_MESSAGE_CHAT)
		json = wsproto_encode_message(m->id, m->seq, r->id, m->user_id, m->nickname,
		    m->is_admin, m->content, m->created_at);
	else
		json = wsproto_encode_custom_event(m->id, m->seq, r->id, m->user_id, m->nickname,
		    m->is_admin, m->event_type, m->content, m->created_at);
	sequence_deliver(r, m->seq, m->kind, m->user_id, json, 0);
	free(json);
	return 0;
}

/*
 * Reads seqs last_seq + 1 .. upto from the database and delivers them. A
 * gap wider than a member's low queue would only push out what it
 * already holds: the oldest part is skipped, and every member is told how
 * many messages it missed, as when its own queue overflows.
 */
static int
sequence_fill(struct room *r, int64_t upto)
{
	struct sequence_read sr = { r, upto };
	int64_t from = r->last_seq + 1, keep = r->cd->cfg->queue_low_frames, skipped;
	char *cause = NULL;
	struct conn *c;

	if (upto < from)
		return 0;
	if (upto - from + 1 > keep) {
		skipped = upto - keep + 1 - from;
		TAILQ_FOREACH(c, &r->members, entry)
		conn_missed(c, (uint64_t)skipped);
		r->cd->counters.gap_skipped += (uint64_t)skipped;
		from += skipped;
		r->last_seq = from - 1;
	}
	r->cd->counters.gap_reads++;
	if (db_messages_range(r->cd->db, r->id, from, upto, sequence_read_one, &sr, &cause) !=
	    DB_OK) {
		log_error("room %s: reading messages %lld to %lld: %s", r->id, (long long)from,
		    (long long)upto, cause);
		free(cause);
		return -1;
	}
	r->cd->counters.gap_filled += (uint64_t)(r->last_seq - from + 1);
	if (r->last_seq < upto) {
		/* Not in the database: cannot happen while seqs are committed in order. */
		log_error("room %s: messages %lld to %lld are missing from the database", r->id,
		    (long long)r->last_seq + 1, (long long)upto);
		TAILQ_FOREACH(c, &r->members, entry)
		conn_missed(c, (uint64_t)(upto - r->last_seq));
		r->last_seq = upto;
	}
	return 0;
}

void
sequence_gap_timer(struct room *r)
{
	if (r->held == NULL)
		return;
	/* Nobody left to hold them for. */
	if (r->nconns == 0 || r->closed) {
		sequence_clear(r);
		return;
	}
	if (sequence_fill(r, r->held->seq - 1) != 0) {
		/* The database may answer next time (a lock past the busy timeout). */
		(void)uv_timer_start(
		    &r->gap_timer, sequence_timer_cb, (uint64_t)r->cd->cfg->cluster_gap_wait_ms, 0);
		return;
	}
	sequence_release(r);
}

void
sequence_offer(
    struct room *r, int64_t seq, int kind, const char *user_id, const char *json, int remote)
{
	struct sequence_held *h, **pp;

	if (seq <= r->last_seq)
		return; /* delivered already (the bus and the database both had it) */
	if (r->nconns == 0) {
		/* Nobody here to hold it for. */
		sequence_clear(r);
		r->last_seq = seq;
		return;
	}
	if (seq == r->last_seq + 1) {
		sequence_deliver(r, seq, kind, user_id, json, remote);
		sequence_release(r);
		return;
	}
	for (pp = &r->held; *pp != NULL && (*pp)->seq < seq; pp = &(*pp)->next)
		;
	if (*pp != NULL && (*pp)->seq == seq)
		return;
	h = xcalloc(1, sizeof *h);
	h->seq = seq;
	h->kind = kind;
	h->remote = remote;
	h->user_id = user_id != NULL ? xstrdup(user_id) : NULL;
	h->json = xstrdup(json);
	h->next = *pp;
	*pp = h;
	r->nheld++;
	/* Holding more than a queue's worth helps nobody: read the gap now. */
	if (r->nheld > (unsigned)r->cd->cfg->queue_low_frames)
		sequence_gap_timer(r);
	else
		sequence_release(r);
}

int
sequence_catch_up(struct room *r)
{
	char *cause = NULL;
	int64_t last = 0;

	if (db_room_last_seq(r->cd->db, r->id, &last, &cause) != DB_OK) {
		log_error("room %s: reading its last seq: %s", r->id, cause);
		free(cause);
		return -1;
	}
	if (last <= r->last_seq)
		return 0;
	if (r->nconns == 0) {
		r->last_seq = last;
		return 0;
	}
	if (sequence_fill(r, last) != 0)
		return -1;
	sequence_release(r);
	return 0;
}

void
sequence_clear_all(struct chatd *cd)
{
	struct room *r;

	TAILQ_FOREACH(r, &cd->room_list, entry)
	sequence_clear(r);
}

int
sequence_refresh(struct room *r)
{
	char *cause = NULL;
	int64_t last = 0;

	if (db_room_last_seq(r->cd->db, r->id, &last, &cause) != DB_OK) {
		log_error("room %s: reading its last seq: %s", r->id, cause);
		free(cause);
		return -1;
	}
	if (last > r->last_seq) {
		sequence_clear(r);
		r->last_seq = last;
	}
	return 0;
}
