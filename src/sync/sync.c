/*
 * The delivery loop. Each enabled target moves through: take its lock
 * file, read its cursor, decide whether a batch is due, record the batch
 * (delivery id, last source id) in the cursor, POST it, and only after a
 * 2xx move the cursor past it. A failure keeps the batch; it is retried
 * under the same delivery id, and a batch recorded by a process that died
 * is resent as it was by the next one. Nothing here talks SQL or curl
 * directly: db.c and deliver.c do.
 *
 * Two processes never deliver the same batch, on one machine or several:
 * each target has a lock in the database's keeping (db_lock_try: a lock
 * file next to a SQLite database, an advisory lock in PostgreSQL; either
 * goes with its holder, so kill -9 leaves no stale lock), and the cursor
 * is read again after the lock is taken.
 *
 * Pipelining (feed targets, one thread): while a full batch N is on the
 * wire, the next full batch is built read-only from the rows after N's
 * last id. It is never sent before N's 2xx. After the 2xx, one write
 * transaction moves the cursor past N and records N+1 (its delivery id
 * and last id), compare-and-set on N's start; if another process moved
 * the cursor meanwhile, nothing is written and N+1 is dropped. A failed
 * attempt drops it too (rebuilt after the retry succeeds). So at most two
 * batches are in memory, and the cursor reads exactly as without it.
 *
 * Dead letters: after a failed attempt, a batch whose failures reach
 * CALLBACK_DEAD_LETTER_ATTEMPTS (the cursor's count, kept across runs) or
 * whose first failure is CALLBACK_DEAD_LETTER_AGE_SECONDS old is set
 * aside (db_dead_letter_add moves the cursor past it) and delivery goes
 * on. A letter an operator marked for replay is resent, under its own
 * delivery id and body, before the target's next batch, by whoever holds
 * the target's lock: still one sender and one request at a time.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "deliver.h"
#include "jsonw.h"
#include "log.h"
#include "metrics.h"
#include "sdnotify.h"
#include "sign.h"
#include "sync.h"
#include "targets.h"
#include "textfile.h"
#include "xmalloc.h"

enum sync_state {
	SYNC_ST_CHECK, /* look for due work at next_at */
	SYNC_ST_IDLE, /* nothing due (--once: done) */
	SYNC_ST_WAIT, /* a batch waits for its retry at next_at */
	SYNC_ST_BUSY, /* another chat-sync holds the lock */
	SYNC_ST_FAILED, /* --once: retries used up; the batch stays pending */
};

/* One enabled target; owned by sync_run(). */
struct sync_target {
	const struct targets_def *def;
	const char *url;
	struct deliver *d;
	char *lock_name; /* "sync-<target>" */
	int locked;
	enum sync_state state;
	int64_t next_at; /* monotonic ms */
	/* the batch in flight, kept in memory for retries in this run */
	char *body;
	size_t len;
	char *delivery_id;
	int64_t from_id; /* cursor before the batch */
	int64_t to_id; /* cursor after it */
	int64_t count;
	long attempts; /* failed attempts of this batch in this run */
	int64_t dead_id; /* the batch in flight replays this dead letter; 0: none */
	int replay_failed; /* --once: a replay was given up (exit status 1) */
	/* the next batch, built while the one above was on the wire; not yet recorded */
	char *ahead_body;
	size_t ahead_len;
	int64_t ahead_to_id;
	int64_t ahead_count;
	/* metrics: attempts since start (batches and replays), dead letters set aside */
	unsigned long long n_ok, n_failed, n_dead;
	struct metrics_hist seconds; /* one attempt, request to answer */
};

struct sync {
	const struct config *cfg;
	struct db *db;
	int mode;
	volatile sig_atomic_t *stop;
	unsigned char *key; /* signing key, NULL: unsigned */
	size_t key_len;
	struct sync_target *t;
	size_t n;
	int64_t settle_at; /* monotonic ms of the next sync request clean-up */
	int64_t watchdog_ms; /* WATCHDOG=1 this often (--daemon under systemd), else 0 */
	int64_t ping_at; /* monotonic ms of the next WATCHDOG=1 */
	int64_t metrics_at; /* monotonic ms of the next METRICS_TEXTFILE write (daemon) */
	int64_t started_ms; /* wall */
};

/* Pings systemd's watchdog when due: before every step, since one step
 * (a delivery) can block up to CALLBACK_TIMEOUT_SECONDS. */
static void
sync_watchdog(struct sync *s)
{
	int64_t now;

	if (s->watchdog_ms <= 0 || (now = clock_mono_ms()) < s->ping_at)
		return;
	sdnotify_notify("WATCHDOG=1");
	s->ping_at = now + s->watchdog_ms;
}

/*
 * 0 locked, 1 held by another process, -1 with *cause. Asked before every
 * new batch even while held: a PostgreSQL lock goes with its session, and
 * a session lost and opened again (db_pg.c) holds none of the old one's,
 * so another chat-sync may have taken the target meanwhile. (SQLite's
 * flock cannot be lost: db_lock_try() then answers at once.)
 */
static int
sync_lock(struct sync *s, struct sync_target *t, char **cause)
{
	int rc;

	if ((rc = db_lock_try(s->db, t->lock_name, cause)) == DB_CONFLICT) {
		if (t->locked)
			log_warn("%s: the lock was lost with the database session and another "
				 "chat-sync holds it now",
			    t->def->name);
		t->locked = 0;
		return 1;
	}
	if (rc != DB_OK)
		return -1;
	t->locked = 1;
	return 0;
}

static void
sync_unlock(struct sync *s, struct sync_target *t)
{
	if (!t->locked)
		return;
	db_lock_release(s->db, t->lock_name);
	t->locked = 0;
}

static void
sync_ahead_clear(struct sync_target *t)
{
	free(t->ahead_body);
	t->ahead_body = NULL;
	t->ahead_len = 0;
	t->ahead_to_id = 0;
	t->ahead_count = 0;
}

static void
sync_batch_clear(struct sync_target *t)
{
	free(t->body);
	free(t->delivery_id);
	t->body = NULL;
	t->delivery_id = NULL;
	t->len = 0;
	t->count = 0;
	t->attempts = 0;
	t->dead_id = 0;
}

/* A fresh delivery id: target, last source id, 64 random bits. */
static char *
sync_new_id(const struct sync_target *t, int64_t last_id, char **cause)
{
	char *hex, *id;

	if ((hex = sign_random_hex(8)) == NULL) {
		*cause = xasprintf("getrandom: %s", strerror(errno));
		return NULL;
	}
	id = xasprintf("%s_%lld_%s", t->def->name, (long long)last_id, hex);
	free(hex);
	return id;
}

/*
 * Builds a feed target's batch when one is due: the one recorded in the
 * cursor (a retry, possibly of a process that died), else a full batch,
 * else whatever is pending once its oldest row has waited the interval.
 * 1 ready, 0 nothing due, -1 with *cause.
 */
static int
sync_prepare_feed(struct sync *s, struct sync_target *t, const struct db_cursor *c, char **cause)
{
	struct db_backlog b;
	struct jsonw w;
	int64_t limit = targets_batch_size(t->def, s->cfg), upto = INT64_MAX, count, last;
	int64_t interval_ms = targets_interval_s(t->def, s->cfg) * 1000;
	int resume = c->delivery_id != NULL && c->batch_last_id > c->last_id;
	char *id = NULL;
	int rc;

	if (resume)
		upto = c->batch_last_id;
	else {
		if (db_backlog(s->db, t->def->feed, c->last_id, limit, &b, cause) != DB_OK)
			return -1;
		if (b.count == 0)
			return 0;
		if (b.count < limit && clock_wall_ms() - b.oldest_at < interval_ms)
			return 0;
	}
	jsonw_init(&w);
	if (targets_build_feed(t->def, s->db, c->last_id, upto, resume ? INT64_MAX : limit, &w,
		&count, &last, cause) != 0) {
		jsonw_clear(&w);
		return -1;
	}
	if (count == 0) {
		jsonw_clear(&w);
		return 0;
	}
	if (resume)
		id = xstrdup(c->delivery_id);
	else {
		if ((id = sync_new_id(t, last, cause)) == NULL) {
			jsonw_clear(&w);
			return -1;
		}
		/* Recorded before the first attempt: a retry by anyone reuses it. */
		rc = db_cursor_batch(s->db, t->def->name, c->last_id, id, last, cause);
		if (rc != DB_OK) {
			free(id);
			jsonw_clear(&w);
			return rc == DB_CONFLICT ? 0 : -1;
		}
	}
	t->len = w.len;
	t->body = jsonw_take(&w);
	t->delivery_id = id;
	t->from_id = c->last_id;
	t->to_id = last;
	t->count = count;
	if (resume)
		log_info("%s: resending batch %s (%lld rows)", t->def->name, id, (long long)count);
	return 1;
}

/*
 * Builds a snapshot when one is due: a sync request arrived (room
 * creation, POST /management/sync), the interval passed, or the target
 * was never delivered. A snapshot is state, not a log, so a batch left by
 * a dead process is replaced by a fresh one under a new id.
 */
static int
sync_prepare_snapshot(
    struct sync *s, struct sync_target *t, const struct db_cursor *c, char **cause)
{
	struct db_backlog b;
	struct jsonw w;
	int64_t interval_ms = targets_interval_s(t->def, s->cfg) * 1000, now = clock_wall_ms(),
		upto;
	char *id;
	int rc;

	if (db_backlog(s->db, DB_FEED_SYNC_REQUESTS, c->last_id, 0, &b, cause) != DB_OK)
		return -1;
	if (b.count == 0 && c->last_success_at != 0 && now - c->last_success_at < interval_ms)
		return 0;
	upto = b.count > 0 ? b.last_id : c->last_id;
	jsonw_init(&w);
	if (targets_build_snapshot(
		t->def, s->db, s->cfg, b.count > 0 ? "request" : "interval", now, &w, cause) != 0) {
		jsonw_clear(&w);
		return -1;
	}
	if ((id = sync_new_id(t, upto, cause)) == NULL) {
		jsonw_clear(&w);
		return -1;
	}
	if ((rc = db_cursor_batch(s->db, t->def->name, c->last_id, id, upto, cause)) != DB_OK) {
		free(id);
		jsonw_clear(&w);
		return rc == DB_CONFLICT ? 0 : -1;
	}
	t->len = w.len;
	t->body = jsonw_take(&w);
	t->delivery_id = id;
	t->from_id = c->last_id;
	t->to_id = upto;
	t->count = b.count;
	return 1;
}

/*
 * Takes up the oldest dead letter of the target marked for replay: a
 * snapshot's stored body, or a feed's rows rebuilt from its id range (the
 * same rows, so the same bytes), under its original delivery id.
 * 1 ready, 0 none marked, -1 with *cause.
 */
static int
sync_prepare_replay(struct sync *s, struct sync_target *t, char **cause)
{
	struct db_dead_letter d;
	struct jsonw w;
	int64_t count, last;
	int rc;

	rc = db_dead_letter_next_replay(s->db, t->def->name, &d, cause);
	if (rc == DB_NOTFOUND)
		return 0;
	if (rc != DB_OK)
		return -1;
	if (t->def->kind == TARGETS_FEED) {
		jsonw_init(&w);
		if (targets_build_feed(t->def, s->db, d.after_id, d.last_id, INT64_MAX, &w, &count,
			&last, cause) != 0) {
			jsonw_clear(&w);
			db_dead_letter_clear(&d);
			return -1;
		}
		t->len = w.len;
		t->body = jsonw_take(&w);
	} else if (d.body != NULL) {
		t->len = d.body_len;
		t->body = d.body;
		d.body = NULL;
		count = d.count;
	} else {
		*cause = xasprintf("dead letter %lld has no body", (long long)d.id);
		db_dead_letter_clear(&d);
		return -1;
	}
	t->delivery_id = d.delivery_id;
	d.delivery_id = NULL;
	t->from_id = d.after_id;
	t->to_id = d.last_id;
	t->count = count;
	t->attempts = 0;
	t->dead_id = d.id;
	log_info("%s: replaying dead letter %lld, batch %s (%lld %s)", t->def->name,
	    (long long)d.id, t->delivery_id, (long long)count,
	    t->def->kind == TARGETS_FEED ? "rows" : "requests");
	db_dead_letter_clear(&d);
	return 1;
}

static int
sync_prepare(struct sync *s, struct sync_target *t, char **cause)
{
	struct db_cursor c;
	int rc;

	if ((rc = sync_prepare_replay(s, t, cause)) != 0)
		return rc;
	/* Read after taking the lock: the previous holder may have moved it. */
	if (db_cursor_get(s->db, t->def->name, &c, cause) != DB_OK)
		return -1;
	if (t->def->kind == TARGETS_FEED)
		rc = sync_prepare_feed(s, t, &c, cause);
	else
		rc = sync_prepare_snapshot(s, t, &c, cause);
	db_cursor_clear(&c);
	return rc;
}

/*
 * Marks sync requests handled once every enabled snapshot target has
 * covered them (all of them when none is enabled), so the health route's
 * pending count means "not yet delivered".
 */
static void
sync_settle_requests(struct sync *s)
{
	struct db_cursor c;
	struct db_health h;
	int64_t upto = INT64_MAX;
	char *cause = NULL;
	size_t i;

	/* Cheap check first: the clean-up below is a write transaction. */
	if (db_health(s->db, &h, &cause) != DB_OK)
		goto fail;
	if (h.pending_sync_requests == 0)
		return;
	for (i = 0; i < s->n; i++) {
		if (s->t[i].def->kind != TARGETS_SNAPSHOT)
			continue;
		if (db_cursor_get(s->db, s->t[i].def->name, &c, &cause) != DB_OK)
			goto fail;
		if (c.last_id < upto)
			upto = c.last_id;
		db_cursor_clear(&c);
	}
	if (upto > 0 && db_sync_requests_handled(s->db, upto, clock_wall_ms(), &cause) != DB_OK)
		goto fail;
	return;

fail:
	log_warn("sync requests: %s", cause);
	free(cause);
}

static int64_t
sync_retry_delay_ms(const struct sync *s, long attempts)
{
	int64_t d = (int64_t)s->cfg->callback_retry_delay_seconds * 1000;
	long i;

	for (i = 1; i < attempts && d < SYNC_BACKOFF_MAX_MS; i++)
		d *= 2;
	return d < SYNC_BACKOFF_MAX_MS ? d : SYNC_BACKOFF_MAX_MS;
}

/*
 * While a full feed batch is on the wire: builds the next one (read only,
 * rows after its last id). Kept only when full: a partial batch waits for
 * its interval on the usual path (sync_prepare_feed). A failure here only
 * costs the head start.
 */
static void
sync_build_ahead(struct sync *s, struct sync_target *t)
{
	struct jsonw w;
	int64_t limit = targets_batch_size(t->def, s->cfg), count, last;
	char *cause = NULL;

	/* A replay's rows are old: what follows them is not the target's next batch. */
	if (t->def->kind != TARGETS_FEED || t->count < limit || t->ahead_body != NULL ||
	    t->dead_id != 0)
		return;
	jsonw_init(&w);
	if (targets_build_feed(
		t->def, s->db, t->to_id, INT64_MAX, limit, &w, &count, &last, &cause) != 0) {
		log_warn("%s: building the next batch ahead: %s", t->def->name, cause);
		free(cause);
		jsonw_clear(&w);
		return;
	}
	if (count < limit) {
		jsonw_clear(&w);
		return;
	}
	t->ahead_len = w.len;
	t->ahead_body = jsonw_take(&w);
	t->ahead_to_id = last;
	t->ahead_count = count;
}

/*
 * After a 2xx: moves the cursor past the batch. With a batch built ahead,
 * the same write transaction records it (a new delivery id, before its
 * first attempt) and it becomes the batch in flight; otherwise the target
 * looks for due work again.
 */
static void
sync_delivered(struct sync *s, struct sync_target *t, long status)
{
	char *cause = NULL, *next_id = NULL;
	int rc;

	if (t->ahead_body != NULL && (next_id = sync_new_id(t, t->ahead_to_id, &cause)) == NULL) {
		log_warn("%s: %s", t->def->name, cause);
		free(cause);
		cause = NULL;
		sync_ahead_clear(t);
	}
	if (next_id != NULL)
		rc = db_cursor_done_next(s->db, t->def->name, t->from_id, t->to_id, clock_wall_ms(),
		    next_id, t->ahead_to_id, &cause);
	else
		rc = db_cursor_done(
		    s->db, t->def->name, t->from_id, t->to_id, clock_wall_ms(), &cause);
	if (rc == DB_CONFLICT)
		log_warn("%s: cursor moved by another process during batch %s%s", t->def->name,
		    t->delivery_id, next_id != NULL ? "; dropping the next batch built ahead" : "");
	else if (rc != DB_OK) {
		/* Delivered but not recorded: the batch will be sent again. */
		log_error("%s: %s", t->def->name, cause);
		free(cause);
	}
	log_info("%s: delivered %s (%lld %s, HTTP %ld)", t->def->name, t->delivery_id,
	    (long long)t->count, t->def->kind == TARGETS_FEED ? "rows" : "requests", status);
	if (t->def->kind == TARGETS_SNAPSHOT)
		sync_settle_requests(s);
	if (rc == DB_OK && next_id != NULL) {
		/* The cursor now reads (to_id, next_id, ahead_to_id): send that next. */
		free(t->body);
		free(t->delivery_id);
		t->body = t->ahead_body;
		t->len = t->ahead_len;
		t->delivery_id = next_id;
		t->from_id = t->to_id;
		t->to_id = t->ahead_to_id;
		t->count = t->ahead_count;
		t->attempts = 0;
		t->ahead_body = NULL;
		sync_ahead_clear(t);
		log_debug("%s: batch %s built ahead, recorded", t->def->name, t->delivery_id);
	} else {
		free(next_id);
		sync_ahead_clear(t);
		sync_batch_clear(t);
	}
	t->state = SYNC_ST_CHECK; /* more may be due at once */
	t->next_at = clock_mono_ms();
}

/* A replayed dead letter got its 2xx: it leaves the list. */
static void
sync_replayed(struct sync *s, struct sync_target *t, long status)
{
	char *cause = NULL;
	int rc;

	rc = db_dead_letter_discard(s->db, t->dead_id, &cause);
	if (rc == DB_ERROR) {
		/* Delivered but still listed: a later replay would send it again. */
		log_error("%s: %s", t->def->name, cause);
		free(cause);
	}
	log_info("%s: delivered dead letter %lld, batch %s (HTTP %ld)", t->def->name,
	    (long long)t->dead_id, t->delivery_id, status);
	sync_batch_clear(t);
	t->state = SYNC_ST_CHECK;
	t->next_at = clock_mono_ms();
}

/*
 * A replay attempt failed: counted on the letter. Retried as any batch is
 * within this run; once the retries are used up the letter goes back to
 * the list, unmarked, and the target's own batches go on.
 */
static void
sync_replay_failed(struct sync *s, struct sync_target *t, long status, const char *error)
{
	char *cause = NULL;
	int give_up, rc;

	t->attempts++;
	give_up = t->attempts > s->cfg->callback_max_retries;
	rc = db_dead_letter_replay_fail(
	    s->db, t->dead_id, status, error, clock_wall_ms(), give_up, &cause);
	log_warn("%s: dead letter %lld, batch %s: replay attempt %ld failed: %s", t->def->name,
	    (long long)t->dead_id, t->delivery_id, t->attempts, error);
	if (rc == DB_ERROR) {
		log_error("%s: %s", t->def->name, cause);
		free(cause);
	}
	if (give_up || rc == DB_NOTFOUND) {
		/* DB_NOTFOUND: discarded meanwhile; nothing left to resend. */
		if (rc != DB_NOTFOUND) {
			log_error(
			    "%s: giving up the replay of dead letter %lld after %ld attempts; "
			    "it stays listed",
			    t->def->name, (long long)t->dead_id, t->attempts);
			t->replay_failed = 1;
		}
		sync_batch_clear(t);
		t->state = SYNC_ST_CHECK;
		t->next_at = clock_mono_ms();
		return;
	}
	t->state = SYNC_ST_WAIT;
	t->next_at = clock_mono_ms() + sync_retry_delay_ms(s, t->attempts);
}

/*
 * After a failed attempt was counted: sets the batch aside when it has
 * failed too often or for too long (the counts the cursor keeps across
 * runs). 1 set aside (the target goes on with its next batch), 0 not due.
 */
static int
sync_dead_letter(struct sync *s, struct sync_target *t, long status, const char *error)
{
	struct db_dead_letter d;
	struct db_cursor c;
	int64_t now = clock_wall_ms(), max = s->cfg->callback_dead_letter_attempts,
		age_ms = s->cfg->callback_dead_letter_age_seconds * 1000;
	char *cause = NULL;
	int rc, due;
	/*
	 * The attempt count sets a batch aside only when the receiver answered
	 * and refused it (a 4xx other than 408, 425 and 429, which mean "later"):
	 * a receiver that is down, slow or failing (no answer, 5xx) keeps its
	 * batches in order until it is back. The age limit counts every failure.
	 */
	int refused =
	    status >= 400 && status < 500 && status != 408 && status != 425 && status != 429;

	if (max <= 0 && age_ms <= 0)
		return 0;
	if (db_cursor_get(s->db, t->def->name, &c, &cause) != DB_OK) {
		log_error("%s: %s", t->def->name, cause);
		free(cause);
		return 0;
	}
	due = c.delivery_id != NULL && strcmp(c.delivery_id, t->delivery_id) == 0 &&
	    c.last_id == t->from_id &&
	    ((max > 0 && refused && c.attempts >= max) ||
		(age_ms > 0 && c.failing_since != 0 && now - c.failing_since >= age_ms));
	if (!due) {
		db_cursor_clear(&c);
		return 0;
	}
	memset(&d, 0, sizeof d);
	d.target = (char *)t->def->name;
	d.delivery_id = t->delivery_id;
	d.after_id = t->from_id;
	d.last_id = t->to_id;
	d.count = t->count;
	/* A snapshot's state is gone: keep the exact bytes. A feed's rows stay. */
	d.body = t->def->kind == TARGETS_SNAPSHOT ? t->body : NULL;
	d.attempts = c.attempts;
	d.last_status = status;
	d.last_error = (char *)error;
	d.first_attempt_at = c.failing_since != 0 ? c.failing_since : now;
	d.last_attempt_at = now;
	rc = db_dead_letter_add(s->db, &d, now, &cause);
	db_cursor_clear(&c);
	if (rc == DB_CONFLICT) {
		log_warn("%s: cursor moved by another process during batch %s", t->def->name,
		    t->delivery_id);
	} else if (rc != DB_OK) {
		log_error("%s: %s", t->def->name, cause);
		free(cause);
		return 0;
	} else
		log_error("%s: batch %s (%lld %s after %lld) set aside as a dead letter after %lld "
			  "failed attempts; delivery goes on",
		    t->def->name, t->delivery_id, (long long)t->count,
		    t->def->kind == TARGETS_FEED ? "rows" : "requests", (long long)t->from_id,
		    (long long)d.attempts);
	if (t->def->kind == TARGETS_SNAPSHOT)
		sync_settle_requests(s);
	sync_batch_clear(t);
	t->state = SYNC_ST_CHECK;
	t->next_at = clock_mono_ms();
	return 1;
}

/* One attempt at the batch in flight. */
static void
sync_send(struct sync *s, struct sync_target *t)
{
	char *sig = NULL, *cause = NULL, *dbcause = NULL;
	long long ts = clock_wall_ms() / 1000;
	int64_t delay;
	long status = 0;
	struct timespec t0, t1;
	int rc;

	if (s->key != NULL) {
		sig = sign_header(s->key, s->key_len, t->delivery_id, ts, t->body, t->len);
		if (sig == NULL)
			fatal("%s: HMAC-SHA256 failed in libcrypto", t->def->name);
	}
	clock_now(CLOCK_MONOTONIC, &t0);
	rc = deliver_start(t->d, t->body, t->len, t->delivery_id, ts, sig, &cause);
	free(sig);
	if (rc == 0) {
		/* Batch N is with the receiver: build N+1 meanwhile, send it only after N's 2xx. */
		sync_build_ahead(s, t);
		rc = deliver_finish(t->d, &status, &cause);
	}
	clock_now(CLOCK_MONOTONIC, &t1);
	metrics_hist_observe(
	    &t->seconds, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (rc == 0)
		t->n_ok++;
	else
		t->n_failed++;
	if (rc == 0) {
		if (t->dead_id != 0)
			sync_replayed(s, t, status);
		else
			sync_delivered(s, t, status);
		return;
	}
	/* Built after a batch that is not delivered: rebuilt once it is. */
	sync_ahead_clear(t);
	if (t->dead_id != 0) {
		sync_replay_failed(s, t, status, cause);
		free(cause);
		return;
	}
	t->attempts++;
	log_warn("%s: batch %s attempt %ld failed: %s", t->def->name, t->delivery_id, t->attempts,
	    cause);
	if (db_cursor_fail(s->db, t->def->name, cause, clock_wall_ms(), &dbcause) != DB_OK) {
		log_error("%s: %s", t->def->name, dbcause);
		free(dbcause);
	}
	rc = sync_dead_letter(s, t, status, cause);
	free(cause);
	if (rc) {
		t->n_dead++;
		return;
	}
	if (t->attempts > s->cfg->callback_max_retries && s->mode == SYNC_ONCE) {
		log_error("%s: giving up on batch %s after %ld attempts; it stays pending",
		    t->def->name, t->delivery_id, t->attempts);
		sync_batch_clear(t);
		sync_unlock(s, t);
		t->state = SYNC_ST_FAILED;
		return;
	}
	delay = sync_retry_delay_ms(s, t->attempts);
	/* The daemon never gives up, but never spins either. */
	if (t->attempts > s->cfg->callback_max_retries && delay < 1000)
		delay = 1000;
	t->state = SYNC_ST_WAIT;
	t->next_at = clock_mono_ms() + delay;
}

static void
sync_step(struct sync *s, struct sync_target *t)
{
	char *cause = NULL;
	int rc;

	/*
	 * Before every request, a retry and a batch built ahead included: a
	 * lock lost with a database session (sync_lock()) may be another
	 * process's by now, and the batch is then its to send.
	 */
	if ((rc = sync_lock(s, t, &cause)) != 0) {
		if (rc < 0) {
			log_error("%s: %s", t->def->name, cause);
			free(cause);
		}
		if (t->body != NULL) {
			log_warn("%s: batch %s left to the chat-sync that holds the target now",
			    t->def->name, t->delivery_id);
			sync_ahead_clear(t);
			sync_batch_clear(t);
		}
		t->state = rc > 0 ? SYNC_ST_BUSY : SYNC_ST_FAILED;
		t->next_at = clock_mono_ms() + SYNC_POLL_MS;
		return;
	}
	if (t->body == NULL) {
		if ((rc = sync_prepare(s, t, &cause)) <= 0) {
			if (rc < 0) {
				log_error("%s: %s", t->def->name, cause);
				free(cause);
			}
			sync_unlock(s, t);
			t->state = rc < 0 ? SYNC_ST_FAILED : SYNC_ST_IDLE;
			t->next_at = clock_mono_ms() + (rc < 0 ? 1000 : SYNC_POLL_MS);
			return;
		}
	}
	sync_send(s, t);
}

static void
sync_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	/* A signal cuts the sleep short: the loop then looks at *stop. */
	(void)nanosleep(&ts, NULL);
}

static void
sync_free(struct sync *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		sync_ahead_clear(&s->t[i]);
		sync_batch_clear(&s->t[i]);
		deliver_destroy(s->t[i].d);
		sync_unlock(s, &s->t[i]);
		free(s->t[i].lock_name);
	}
	free(s->t);
	free(s->key);
}

static int
sync_setup(struct sync *s, char **cause)
{
	struct sync_target *t;
	const char *url;
	size_t i;

	if (s->cfg->callback_signing_secret != NULL &&
	    sign_key_load(s->cfg->callback_signing_secret, &s->key, &s->key_len, cause) != 0)
		return -1;
	s->t = xcalloc(targets_count, sizeof *s->t);
	for (i = 0; i < targets_count; i++) {
		url = targets_url(&targets_table[i], s->cfg);
		if (url == NULL || *url == '\0')
			continue;
		t = &s->t[s->n++];
		t->def = &targets_table[i];
		t->url = url;
		t->state = SYNC_ST_CHECK;
		metrics_hist_init(&t->seconds, metrics_seconds_bounds, metrics_seconds_nbounds);
		t->lock_name = xasprintf("sync-%s", t->def->name);
		if (deliver_create(
			url, (long)s->cfg->callback_timeout_seconds, s->stop, &t->d, cause) != 0)
			return -1;
		log_info("%s: delivering to %s", t->def->name, url);
	}
	if (s->n == 0)
		log_info("no callback URL is set: nothing to deliver");
	return 0;
}

/* The target's backlog as the database shows it; -1 when it cannot be read (logged). */
static int
sync_metrics_backlog(
    struct sync *s, const struct sync_target *t, struct db_backlog *b, int64_t *dead)
{
	struct db_cursor c;
	char *cause = NULL;
	int64_t replay;
	int rc = 0;

	memset(b, 0, sizeof *b);
	*dead = 0;
	if (db_cursor_get(s->db, t->def->name, &c, &cause) != DB_OK)
		rc = -1;
	else {
		if (db_backlog(s->db, t->def->feed, c.last_id, 0, b, &cause) != DB_OK ||
		    db_dead_letter_counts(s->db, t->def->name, dead, &replay, &cause) != DB_OK)
			rc = -1;
		db_cursor_clear(&c);
	}
	if (rc != 0) {
		log_warn("%s: metrics: %s", t->def->name, cause);
		free(cause);
	}
	return rc;
}

/* One gauge family over every target; NaN where the database could not be read. */
static void
sync_metrics_gauge(struct metrics_buf *b, const struct sync *s, const char *name, const char *help,
    const double *v)
{
	metrics_family(b, name, "gauge", help);
	for (size_t i = 0; i < s->n; i++)
		metrics_sample(
		    b, name, (const char *[]){ "target", s->t[i].def->name, NULL }, v[i]);
}

/*
 * Writes METRICS_TEXTFILE, if set: the attempts this process made (a
 * --once run's, or the daemon's since start) and each target's backlog,
 * oldest pending age and dead letters as the database shows them now.
 */
static void
sync_metrics_write(struct sync *s)
{
	const char *path = s->cfg->metrics_textfile;
	struct metrics_buf b;
	struct db_backlog bl;
	double *pending, *age, *dead;
	int64_t ndead, now = clock_wall_ms();
	char *text, *cause = NULL;

	if (path == NULL || *path == '\0')
		return;
	metrics_init(&b);
	metrics_gauge(&b, "chatd_sync_last_run_timestamp_seconds",
	    "When chat-sync wrote these metrics, in Unix seconds (a stale file: chat-sync is not "
	    "running).",
	    (double)(clock_wall_ms() / 1000));
	metrics_gauge(&b, "chatd_sync_start_time_seconds",
	    "When this chat-sync process started, in Unix seconds.",
	    (double)(s->started_ms / 1000));
	metrics_family(&b, "chatd_sync_attempts_total", "counter",
	    "Callback deliveries attempted by this chat-sync process, by target and result.");
	for (size_t i = 0; i < s->n; i++) {
		metrics_sample(&b, "chatd_sync_attempts_total",
		    (const char *[]){ "target", s->t[i].def->name, "result", "success", NULL },
		    (double)s->t[i].n_ok);
		metrics_sample(&b, "chatd_sync_attempts_total",
		    (const char *[]){ "target", s->t[i].def->name, "result", "failure", NULL },
		    (double)s->t[i].n_failed);
	}
	metrics_family(&b, "chatd_sync_dead_letters_created_total", "counter",
	    "Batches this chat-sync process set aside as dead letters, by target.");
	for (size_t i = 0; i < s->n; i++)
		metrics_sample(&b, "chatd_sync_dead_letters_created_total",
		    (const char *[]){ "target", s->t[i].def->name, NULL }, (double)s->t[i].n_dead);
	metrics_family(&b, "chatd_sync_attempt_duration_seconds", "histogram",
	    "Time one callback delivery attempt took, by target.");
	for (size_t i = 0; i < s->n; i++)
		metrics_hist_write(&b, "chatd_sync_attempt_duration_seconds",
		    (const char *[]){ "target", s->t[i].def->name, NULL }, &s->t[i].seconds);
	pending = xcalloc(s->n + 1, sizeof *pending);
	age = xcalloc(s->n + 1, sizeof *age);
	dead = xcalloc(s->n + 1, sizeof *dead);
	for (size_t i = 0; i < s->n; i++) {
		if (sync_metrics_backlog(s, &s->t[i], &bl, &ndead) != 0) {
			pending[i] = age[i] = dead[i] = NAN;
			continue;
		}
		pending[i] = (double)bl.count;
		age[i] =
		    bl.count > 0 && now > bl.oldest_at ? (double)(now - bl.oldest_at) / 1000.0 : 0;
		dead[i] = (double)ndead;
	}
	sync_metrics_gauge(&b, s, "chatd_sync_backlog",
	    "Rows waiting for delivery to this callback target.", pending);
	sync_metrics_gauge(&b, s, "chatd_sync_oldest_pending_age_seconds",
	    "Age of the oldest row waiting for this callback target (0: none waits).", age);
	sync_metrics_gauge(&b, s, "chatd_sync_dead_letters",
	    "Batches set aside as dead letters for this target, replayed or not.", dead);
	free(pending);
	free(age);
	free(dead);
	text = metrics_take(&b);
	if (textfile_write(path, text, &cause) != 0) {
		log_warn("METRICS_TEXTFILE: %s", cause);
		free(cause);
	}
	free(text);
}

int
sync_run(
    const struct config *cfg, struct db *db, int mode, volatile sig_atomic_t *stop, char **cause)
{
	struct sync s;
	struct sync_target *t;
	int64_t now, wake;
	size_t i;
	int pending, failed = 0;

	memset(&s, 0, sizeof s);
	s.cfg = cfg;
	s.db = db;
	s.mode = mode;
	s.stop = stop;
	s.started_ms = clock_wall_ms();
	if (sync_setup(&s, cause) != 0) {
		sync_free(&s);
		return -1;
	}
	if (mode == SYNC_DAEMON) {
		/* A Type=notify unit is started once the targets are set up. One
		 * delivery blocks at most CALLBACK_TIMEOUT_SECONDS between two
		 * pings, so WatchdogSec must be longer than that. */
		sdnotify_notify("READY=1");
		s.watchdog_ms = sdnotify_watchdog_interval_ms();
	}
	while (!*stop) {
		sync_watchdog(&s);
		now = clock_mono_ms();
		for (i = 0; i < s.n && !*stop; i++) {
			t = &s.t[i];
			if (mode == SYNC_ONCE &&
			    (t->state == SYNC_ST_IDLE || t->state == SYNC_ST_BUSY ||
				t->state == SYNC_ST_FAILED))
				continue;
			if (t->next_at <= now) {
				sync_watchdog(&s);
				sync_step(&s, t);
			}
		}
		now = clock_mono_ms();
		if (now >= s.settle_at) {
			sync_settle_requests(&s);
			s.settle_at = now + 1000;
		}
		if (mode == SYNC_DAEMON && now >= s.metrics_at) {
			sync_metrics_write(&s);
			s.metrics_at = now + SYNC_METRICS_MS;
		}
		pending = 0;
		wake = now + SYNC_POLL_MS;
		for (i = 0; i < s.n; i++) {
			t = &s.t[i];
			if (t->state == SYNC_ST_CHECK || t->state == SYNC_ST_WAIT) {
				pending = 1;
				if (mode == SYNC_ONCE || t->next_at < wake)
					wake = t->next_at;
			}
		}
		if (mode == SYNC_ONCE && !pending)
			break;
		if (mode == SYNC_ONCE) {
			/* Sleep until the earliest retry. */
			for (i = 0, wake = INT64_MAX; i < s.n; i++) {
				t = &s.t[i];
				if ((t->state == SYNC_ST_CHECK || t->state == SYNC_ST_WAIT) &&
				    t->next_at < wake)
					wake = t->next_at;
			}
		}
		if (s.watchdog_ms > 0 && s.ping_at < wake)
			wake = s.ping_at; /* never sleep through a ping */
		sync_sleep_ms(wake - now);
	}
	if (*stop && mode == SYNC_DAEMON)
		sdnotify_notify("STOPPING=1");
	sync_metrics_write(&s);
	for (i = 0; i < s.n; i++) {
		if (s.t[i].state == SYNC_ST_FAILED || s.t[i].state == SYNC_ST_WAIT ||
		    s.t[i].replay_failed)
			failed = 1;
	}
	sync_free(&s);
	return failed;
}

int
sync_encode_only(const struct config *cfg, struct db *db, const char *target,
    volatile sig_atomic_t *stop, char **cause)
{
	const struct targets_def *def = NULL;
	struct db_cursor c;
	struct jsonw w;
	int64_t after, limit, count, last, rows = 0, batches = 0, bytes = 0, t0, ms;
	size_t i;

	for (i = 0; i < targets_count; i++) {
		if (strcmp(targets_table[i].name, target) == 0)
			def = &targets_table[i];
	}
	if (def == NULL || def->kind != TARGETS_FEED) {
		*cause =
		    xasprintf("--encode-only %s: not a feed target (room_events, chat_history, "
			      "session_history)",
			target);
		return -1;
	}
	if (db_cursor_get(db, def->name, &c, cause) != DB_OK)
		return -1;
	after = c.last_id;
	db_cursor_clear(&c);
	limit = targets_batch_size(def, cfg);
	t0 = clock_mono_ms();
	while (!*stop) {
		/* As sync_prepare_feed() builds a batch, minus the cursor and the POST. */
		jsonw_init(&w);
		if (targets_build_feed(
			def, db, after, INT64_MAX, limit, &w, &count, &last, cause) != 0) {
			jsonw_clear(&w);
			return -1;
		}
		if (count > 0)
			bytes += (int64_t)w.len;
		jsonw_clear(&w);
		if (count == 0)
			break;
		rows += count;
		batches++;
		after = last;
	}
	ms = clock_mono_ms() - t0;
	printf("encode-only %s: %lld rows in %lld batches of at most %lld, %lld bytes, %.3f s, "
	       "%.0f rows/s\n",
	    def->name, (long long)rows, (long long)batches, (long long)limit, (long long)bytes,
	    (double)ms / 1000.0, ms > 0 ? (double)rows * 1000.0 / (double)ms : 0.0);
	return 0;
}
