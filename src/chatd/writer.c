/*
 * The database writer thread (see writer.h). Its database connection and
 * session map belong to the thread; the service thread touches only the
 * queues, under the mutex. The only libwebsockets call made from here is
 * lws_cancel_service(), the one that is thread-safe.
 */
#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libwebsockets.h>

#include "checkpoint.h"
#include "clock.h"
#include "db.h"
#include "log.h"
#include "strmap.h"
#include "writer.h"
#include "xmalloc.h"

STAILQ_HEAD(writer_op_list, writer_op);

/* What became of an operation in its batch (writer_op.outcome). */
enum writer_outcome {
	WRITER_APPLIED = 0, /* written; final once its transaction commits */
	WRITER_REFUSED, /* not found, conflict, a bad value: would fail again; dropped */
	WRITER_FAILED, /* an error that may go away: session records, bans and peaks are retried */
	WRITER_WAITING, /* a close whose session's open is not written yet */
};

/* The session map's value: the sessions row of a connection's open. */
struct writer_session {
	int64_t id; /* 0: the open failed and waits for a retry */
};

struct writer {
	pthread_t thread;
	int started;
	struct lws_context *ctx;
	char *node_id; /* the sessions' node ("": a chatd on its own) */
	struct db *db; /* writer thread only */
	struct strmap sessions; /* writer thread only: key -> struct writer_session */
	struct checkpointer *cp; /* checkpoints the WAL the writer's commits grow */
	int64_t rate_pruned_ms; /* writer thread only: wall ms of the last db_rate_prune */

	/* writer thread only: session records, bans and peaks to write again, in order */
	struct writer_op_list retry;
	unsigned retry_len, retry_opens, retry_others;
	int64_t retry_at; /* clock_mono_ms() from which they are due */
	int64_t retry_delay_ms; /* back-off; 0 after a good commit */
	int final_try; /* stopping: the retries had their last try */
	/* writer thread only: the batch under way */
	int batch_failed; /* a write failed with an error that may go away */
	char batch_error[256];
	int at_bound; /* the WAL is at its bound: messages wait (checkpoint.h) */
	unsigned long long batch_dropped;

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;
	struct writer_op_list in; /* submitted, not yet taken */
	struct writer_op_list done; /* message ops back to the service thread */
	unsigned in_len, in_messages, inflight;
	int stop;
	struct writer_health health; /* retry_sessions: retry_len after each batch */
	struct metrics_hist commit_seconds; /* applying a batch: its statements, commit and fsync */
	struct metrics_hist batch_ops; /* operations per batch */
};

struct writer_op *
writer_op_create(enum writer_op_type type)
{
	struct writer_op *op = xcalloc(1, sizeof *op);

	op->type = type;
	return op;
}

const char *
writer_op_name(enum writer_op_type type)
{
	switch (type) {
	case WRITER_MESSAGE:
		return "message";
	case WRITER_SESSION_OPEN:
		return "session_open";
	case WRITER_SESSION_CLOSE:
		return "session_close";
	case WRITER_PEAK:
		return "peak";
	case WRITER_BAN:
		return "ban";
	case WRITER_UNBAN:
		return "unban";
	case WRITER_NODE_BEAT:
		return "node_beat";
	case WRITER_NODE_REAP:
		return "node_reap";
	case WRITER_NODE_STOP:
		return "node_stop";
	}
	return "unknown";
}

void
writer_op_free(struct writer_op *op)
{
	if (op == NULL)
		return;
	free(op->room_id);
	free(op->user_id);
	free(op->nickname);
	free(op->text);
	free(op->event_type);
	free(op->reason);
	free(op->address);
	free(op->incarnation);
	free(op);
}

static void
writer_session_key(uint64_t key, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64, key);
}

static struct writer_session *
writer_session_get(struct writer *w, uint64_t key)
{
	char kbuf[32];

	writer_session_key(key, kbuf, sizeof kbuf);
	return strmap_get(&w->sessions, kbuf);
}

/* Records key's session row (0: its open waits for a retry). */
static void
writer_session_put(struct writer *w, uint64_t key, int64_t id)
{
	struct writer_session *s;
	char kbuf[32];

	if ((s = writer_session_get(w, key)) == NULL) {
		s = xmalloc(sizeof *s);
		writer_session_key(key, kbuf, sizeof kbuf);
		strmap_set(&w->sessions, kbuf, s);
	}
	s->id = id;
}

static void
writer_session_forget(struct writer *w, uint64_t key)
{
	char kbuf[32];

	writer_session_key(key, kbuf, sizeof kbuf);
	free(strmap_remove(&w->sessions, kbuf));
}

/*
 * Notes a failed write of the batch. One that may go away (full disk, I/O
 * error, lock) is logged once per failing spell by writer_batch_end();
 * anything else fails the same way every time and is logged here.
 */
static int
writer_failure(struct writer *w, const struct writer_op *op, const char *cause)
{
	if (db_failure_transient(w->db)) {
		if (!w->batch_failed)
			snprintf(w->batch_error, sizeof w->batch_error, "%s",
			    cause != NULL ? cause : "?");
		w->batch_failed = 1;
		log_debug("writer: %s in room %s: %s", writer_op_name(op->type),
		    op->room_id ? op->room_id : "-", cause ? cause : "?");
		return WRITER_FAILED;
	}
	log_error("writer: %s in room %s: %s", writer_op_name(op->type),
	    op->room_id ? op->room_id : "-", cause ? cause : "?");
	return WRITER_REFUSED;
}

/* Writes a session's open or close; sets op->outcome. Writer thread. */
static void
writer_apply_session(struct writer *w, struct writer_op *op)
{
	struct writer_session *s;
	char *cause = NULL;
	int64_t id;
	int rc;

	if (op->type == WRITER_SESSION_OPEN) {
		rc = db_session_open(w->db, w->node_id, op->room_id, op->user_id, op->nickname,
		    op->is_admin, op->address, op->ts_ms, &id, &cause);
		if (rc == DB_OK) {
			op->id = id;
			writer_session_put(w, op->key, id);
		} else if (rc == DB_ERROR &&
		    (op->outcome = writer_failure(w, op, cause)) == WRITER_FAILED)
			writer_session_put(w, op->key, 0); /* its close waits for it */
		else {
			if (rc != DB_ERROR)
				log_warn("writer: session_open in room %s: %s", op->room_id,
				    rc == DB_NOTFOUND ? "no such room" : "conflict");
			op->outcome = WRITER_REFUSED;
			writer_session_forget(w, op->key); /* its close is dropped too */
		}
		free(cause);
		return;
	}
	if ((s = writer_session_get(w, op->key)) == NULL) {
		op->outcome = WRITER_REFUSED; /* its open was refused or dropped (logged then) */
		return;
	}
	if (s->id == 0) {
		op->outcome = WRITER_WAITING;
		return;
	}
	rc = db_session_close(w->db, s->id, op->reason, op->ts_ms, &cause);
	if (rc == DB_OK) {
		op->id = s->id;
		writer_session_forget(w, op->key);
	} else if (rc != DB_ERROR ||
	    (op->outcome = writer_failure(w, op, cause)) != WRITER_FAILED) {
		if (rc != DB_ERROR)
			log_warn("writer: session_close of session %" PRId64 ": not open", s->id);
		op->outcome = WRITER_REFUSED;
		writer_session_forget(w, op->key);
	}
	free(cause);
}

/* Nodes other than this one that fell silent before stale_before. */
struct writer_stale {
	const char *self;
	int64_t stale_before;
	char **ids;
	size_t n;
};

static int
writer_stale_node(const struct db_node *n, void *arg)
{
	struct writer_stale *ws = arg;

	if (strcmp(n->id, ws->self) == 0 || n->stopped_at != 0 || n->seen_at >= ws->stale_before ||
	    (n->reaped_at != 0 && n->reaped_at >= n->seen_at))
		return 0;
	ws->ids = xreallocarray(ws->ids, ws->n + 1, sizeof *ws->ids);
	ws->ids[ws->n++] = xstrdup(n->id);
	return 0;
}

/*
 * Closes the sessions of every node the database has not heard from since
 * stale_before (node_lost). Each reap re-checks inside its transaction, so
 * of several nodes doing this at once exactly one closes a lost node's
 * sessions. Writer thread.
 */
static int
writer_reap(struct writer *w, struct writer_op *op, char **cause)
{
	struct writer_stale ws = { w->node_id, op->stale_before, NULL, 0 };
	int64_t closed;
	size_t i;
	int rc;

	rc = db_node_list(w->db, writer_stale_node, &ws, cause);
	for (i = 0; rc == DB_OK && i < ws.n; i++) {
		closed = 0;
		rc = db_node_reap(
		    w->db, ws.ids[i], op->stale_before, "node_lost", op->ts_ms, &closed, cause);
		if (rc == DB_OK)
			log_info("writer: node %s fell silent: closed its %" PRId64
				 " sessions (node_lost)",
			    ws.ids[i], closed);
		if (rc == DB_NOTFOUND)
			rc = DB_OK; /* it beat again, or another node got there first */
	}
	for (i = 0; i < ws.n; i++)
		free(ws.ids[i]);
	free(ws.ids);
	/* Rate-limit marks no interval can reach any more. */
	if (rc == DB_OK && op->ts_ms - w->rate_pruned_ms >= WRITER_RATE_PRUNE_EVERY_MS) {
		rc = db_rate_prune(w->db, op->ts_ms - WRITER_RATE_MARK_KEEP_MS, cause);
		if (rc == DB_OK)
			w->rate_pruned_ms = op->ts_ms;
	}
	return rc;
}

/* writer_reopen's walk over the session map. */
struct writer_reopen {
	struct writer *w;
	int64_t now;
	unsigned n;
	int rc;
	char *cause;
};

static int
writer_reopen_one(const char *key, void *value, void *arg)
{
	struct writer_reopen *wr = arg;
	struct writer_session *s = value;
	int64_t id = 0;

	(void)key;
	if (s->id == 0 || wr->rc != DB_OK)
		return 0; /* an open still waiting for its retry opens anew anyway */
	wr->rc = db_session_reopen(wr->w->db, s->id, wr->now, &id, &wr->cause);
	if (wr->rc == DB_NOTFOUND)
		wr->rc = DB_OK;
	else if (wr->rc == DB_OK && id != s->id) {
		s->id = id; /* the connection's close now ends the new row */
		wr->n++;
	}
	return 0;
}

/*
 * Another node reaped this one (its database heartbeats stopped for the
 * node timeout: a stall, a paused machine) and closed its sessions
 * (node_lost) while their connections lived on: each gets a new open
 * session from now, so the record shows the gap and the presence again.
 * Writer thread.
 */
static int
writer_reopen(struct writer *w, int64_t now, char **cause)
{
	struct writer_reopen wr = { w, now, 0, DB_OK, NULL };

	strmap_each(&w->sessions, writer_reopen_one, &wr);
	if (wr.rc != DB_OK) {
		*cause = wr.cause;
		return wr.rc;
	}
	log_warn("writer: another node took this one for lost (its database heartbeats stopped "
		 "for the node timeout) and closed its sessions; %u reopened",
	    wr.n);
	return DB_OK;
}

/* Runs one operation inside the batch's transaction; sets op->outcome. Writer thread. */
static void
writer_apply(struct writer *w, struct writer_op *op)
{
	char *cause = NULL;
	int rc = DB_OK;

	op->outcome = WRITER_APPLIED;
	switch (op->type) {
	case WRITER_MESSAGE:
		if (w->at_bound) {
			op->outcome = WRITER_REFUSED; /* nothing written; nothing to undo */
			op->failed = WRITER_MSG_LATER;
			return;
		}
		/* Nodes' writers take turns: this check is exact across the cluster. */
		if (op->rate_interval_ms > 0) {
			int64_t wait = 0;

			rc = db_rate_check(w->db, op->room_id, op->user_id, op->ts_ms,
			    op->rate_interval_ms, &wait, &cause);
			if (rc == DB_OK && wait > 0) {
				op->outcome = WRITER_REFUSED; /* nothing written */
				op->failed = WRITER_MSG_RATE_LIMITED;
				op->retry_after_ms = wait;
				return;
			}
			if (rc == DB_OK)
				rc = db_rate_mark(
				    w->db, op->room_id, op->user_id, op->ts_ms, &cause);
			if (rc != DB_OK)
				break;
		}
		rc = db_message_append(w->db, op->room_id, op->kind, op->user_id, op->nickname,
		    op->is_admin, op->text, op->event_type, op->ts_ms, &op->id, &op->seq, &cause);
		break;
	case WRITER_SESSION_OPEN:
	case WRITER_SESSION_CLOSE:
		writer_apply_session(w, op);
		return;
	case WRITER_PEAK:
		rc = db_room_peak_update(w->db, op->room_id, op->peak, &cause);
		break;
	case WRITER_BAN:
		rc = db_ban_add(
		    w->db, op->room_id, op->user_id, op->reason, op->expires_at, op->ts_ms, &cause);
		break;
	case WRITER_UNBAN:
		rc = db_ban_lift(w->db, op->room_id, op->user_id, op->ts_ms, &cause);
		if (rc == DB_NOTFOUND)
			rc = DB_OK; /* nothing in force: the wanted state */
		break;
	case WRITER_NODE_BEAT: {
		int reaped = 0;

		rc = db_node_was_reaped(w->db, w->node_id, op->incarnation, &reaped, &cause);
		if (rc == DB_OK && reaped)
			rc = writer_reopen(w, op->ts_ms, &cause);
		if (rc == DB_OK)
			rc = db_node_beat(w->db, w->node_id, op->incarnation, op->started_at,
			    op->ts_ms, op->connections, &cause);
		break;
	}
	case WRITER_NODE_REAP:
		rc = writer_reap(w, op, &cause);
		break;
	case WRITER_NODE_STOP:
		rc = db_node_stop(w->db, w->node_id, op->incarnation, op->ts_ms, &cause);
		if (rc == DB_NOTFOUND)
			rc = DB_OK; /* a later run of this node took the row */
		break;
	}
	if (rc == DB_ERROR)
		op->outcome = writer_failure(w, op, cause);
	else if (rc != DB_OK) {
		op->outcome = WRITER_REFUSED;
		log_warn("writer: %s in room %s: %s", writer_op_name(op->type),
		    op->room_id ? op->room_id : "-", rc == DB_NOTFOUND ? "not found" : "conflict");
	}
	if (op->type == WRITER_MESSAGE && rc != DB_OK)
		op->failed = op->outcome == WRITER_FAILED ? WRITER_MSG_LATER : WRITER_MSG_REFUSED;
	free(cause);
}

/*
 * The transaction holding the operations from first up to (not including)
 * end is gone: what they wrote is not in the database. Messages come back
 * failed, session records go back to waiting, in a state that keeps each
 * close behind its open. Writer thread.
 */
static void
writer_undo(struct writer *w, struct writer_op *first, struct writer_op *end)
{
	struct writer_op *op;

	for (op = first; op != end; op = STAILQ_NEXT(op, entry)) {
		if (op->outcome != WRITER_APPLIED)
			continue;
		op->outcome = WRITER_FAILED;
		switch (op->type) {
		case WRITER_MESSAGE:
			op->failed = WRITER_MSG_LATER;
			break;
		case WRITER_SESSION_OPEN:
			writer_session_put(w, op->key, 0);
			break;
		case WRITER_SESSION_CLOSE:
			/* Its open, if it was in the same transaction, waits again
			 * (put above, id 0): then the close waits behind it. */
			if (writer_session_get(w, op->key) == NULL)
				writer_session_put(w, op->key, op->id);
			break;
		default:
			break; /* a peak, ban or unban: tried again (writer_retry_keep) */
		}
	}
}

/*
 * After each commit (its write lock released), writer thread: past the
 * threshold the checkpointer copies, and the writer finishes the last
 * few pages itself (checkpoint.h says why).
 */
static void
writer_wal_grown(void *arg, int wal_pages)
{
	struct writer *w = arg;
	char *cause = NULL;
	int wal = 0, done = 0;

	if (!checkpointer_after_commit(w->cp, wal_pages))
		return;
	if (db_checkpoint(w->db, &wal, &done, &cause) != DB_OK) {
		log_warn("writer: %s", cause);
		free(cause);
		return;
	}
	checkpointer_writer_result(w->cp, wal, done);
}

/*
 * 1: the batch's transaction began. 0: it did not, for a reason that may
 * not hold for each operation alone (they then commit one by one). -1: a
 * failure that may go away (the PostgreSQL server restarting, a lock held
 * too long): each operation would only fail the same way, one reconnect
 * attempt each, so the batch fails as a whole and writer_batch_end()
 * logs the spell once.
 */
static int
writer_begin(struct writer *w)
{
	char *cause = NULL;

	if (db_tx_begin(w->db, &cause) == DB_OK)
		return 1;
	if (db_failure_transient(w->db)) {
		if (!w->batch_failed)
			snprintf(w->batch_error, sizeof w->batch_error, "%s",
			    cause != NULL ? cause : "?");
		w->batch_failed = 1;
		log_debug("writer: begin: %s", cause != NULL ? cause : "?");
		free(cause);
		return -1;
	}
	log_error("writer: begin: %s (each operation commits alone)", cause);
	free(cause);
	return 0;
}

/*
 * The batch's operations from first on were not tried: each ends as a
 * failed write would (messages refused for later, session records kept
 * for a retry, each close behind its open). Writer thread.
 */
static void
writer_fail_rest(struct writer *w, struct writer_op *first)
{
	struct writer_op *op;

	for (op = first; op != NULL; op = STAILQ_NEXT(op, entry)) {
		op->outcome = WRITER_FAILED;
		switch (op->type) {
		case WRITER_MESSAGE:
			op->failed = WRITER_MSG_LATER;
			break;
		case WRITER_SESSION_OPEN:
			writer_session_put(w, op->key, 0); /* its close waits for it */
			break;
		case WRITER_SESSION_CLOSE:
			if (writer_session_get(w, op->key) == NULL)
				op->outcome = WRITER_REFUSED; /* its open was refused or dropped */
			break;
		default:
			break; /* a peak, ban or unban: tried again; beats come anew */
		}
	}
}

/* Applies the batch in one transaction (or, when that cannot begin, one per operation). */
static void
writer_apply_batch(struct writer *w, struct writer_op_list *batch)
{
	struct writer_op *op, *seg = STAILQ_FIRST(batch);
	char *cause = NULL;
	int in_tx, wal = 0, done = 0, at_bound = checkpointer_at_bound(w->cp);

	if (at_bound) {
		/* No message commits ask the thread any more: see here whether the
		 * reader has let go and a checkpoint now gets through. */
		if (db_checkpoint(w->db, &wal, &done, &cause) == DB_OK)
			checkpointer_writer_result(w->cp, wal, done);
		else {
			log_warn("writer: %s", cause);
			free(cause);
			cause = NULL;
		}
		at_bound = checkpointer_at_bound(w->cp);
	}
	if (at_bound != w->at_bound) {
		if (at_bound)
			log_error("writer: the WAL is at its bound (%d pages) and a reader still "
				  "holds it back from every checkpoint: chat messages are refused "
				  "until it lets go (session records still go in)",
			    CHECKPOINT_BOUND_PAGES);
		else
			log_info("writer: the WAL is below its bound again: messages are stored");
		w->at_bound = at_bound;
	}
	if ((in_tx = writer_begin(w)) < 0) {
		writer_fail_rest(w, seg);
		return;
	}

	STAILQ_FOREACH(op, batch, entry)
	{
		writer_apply(w, op);
		if (in_tx && !db_tx_open(w->db)) {
			/* The engine rolled the whole transaction back after op's
			 * failure (SQLite after some errors; PostgreSQL's session
			 * lost). */
			writer_undo(w, seg, STAILQ_NEXT(op, entry));
			seg = STAILQ_NEXT(op, entry);
			if (seg != NULL && (in_tx = writer_begin(w)) < 0) {
				writer_fail_rest(w, seg);
				return;
			}
			in_tx = seg != NULL && in_tx;
		}
	}
	if (in_tx && db_tx_commit(w->db, &cause) != DB_OK) {
		if (!w->batch_failed)
			snprintf(w->batch_error, sizeof w->batch_error, "%s", cause);
		/* Whatever made a commit fail (disk, lock), a later one may succeed. */
		w->batch_failed = 1;
		log_debug("writer: commit: %s", cause);
		free(cause);
		writer_undo(w, seg, NULL);
	}
}

/*
 * Keeps a record that did not commit for the next batches, or drops it
 * (see WRITER_RETRY_OPENS_MAX and WRITER_RETRY_OTHERS_MAX).
 */
static void
writer_retry_keep(struct writer *w, struct writer_op *op)
{
	/* The next heartbeat does it again: no point keeping this one. */
	if (op->type == WRITER_NODE_BEAT || op->type == WRITER_NODE_REAP ||
	    op->type == WRITER_NODE_STOP) {
		writer_op_free(op);
		return;
	}
	if (op->type != WRITER_SESSION_OPEN && op->type != WRITER_SESSION_CLOSE) {
		if (w->retry_others >= WRITER_RETRY_OTHERS_MAX) {
			log_error("writer: %s in room %s dropped: %d other records already wait "
				  "for the database",
			    writer_op_name(op->type), op->room_id ? op->room_id : "-",
			    WRITER_RETRY_OTHERS_MAX);
			w->batch_dropped++;
			writer_op_free(op);
			return;
		}
		w->retry_others++;
		STAILQ_INSERT_TAIL(&w->retry, op, entry);
		w->retry_len++;
		return;
	}
	if (op->type == WRITER_SESSION_CLOSE && writer_session_get(w, op->key) == NULL) {
		writer_op_free(op); /* its open was dropped */
		return;
	}
	if (op->type == WRITER_SESSION_OPEN) {
		if (w->retry_opens >= WRITER_RETRY_OPENS_MAX) {
			writer_session_forget(w, op->key); /* and with it its close */
			w->batch_dropped++;
			writer_op_free(op);
			return;
		}
		w->retry_opens++;
	}
	STAILQ_INSERT_TAIL(&w->retry, op, entry);
	w->retry_len++;
}

/*
 * Sorts the applied batch: messages back to the service thread (onto
 * back), records that did not commit into the retry queue, the
 * rest freed. Then the health state and the back-off. Writer thread.
 */
static void
writer_batch_end(struct writer *w, struct writer_op_list *batch, struct writer_op_list *back)
{
	struct writer_health *h = &w->health;
	struct writer_op *op;
	unsigned applied = 0;
	int64_t since = 0, now = clock_mono_ms();
	int began = 0;

	while ((op = STAILQ_FIRST(batch)) != NULL) {
		STAILQ_REMOVE_HEAD(batch, entry);
		applied += op->outcome == WRITER_APPLIED;
		if (op->type == WRITER_MESSAGE)
			STAILQ_INSERT_TAIL(back, op, entry);
		else if (op->outcome == WRITER_FAILED || op->outcome == WRITER_WAITING)
			writer_retry_keep(w, op);
		else
			writer_op_free(op);
	}
	if (w->batch_failed) {
		w->retry_delay_ms =
		    w->retry_delay_ms == 0 ? WRITER_RETRY_FIRST_MS : w->retry_delay_ms * 2;
		if (w->retry_delay_ms > WRITER_RETRY_LAST_MS)
			w->retry_delay_ms = WRITER_RETRY_LAST_MS;
		w->retry_at = now + w->retry_delay_ms;
	} else if (applied > 0) {
		w->retry_delay_ms = 0;
		w->retry_at = now; /* writes work: what waits goes next */
	}

	if (pthread_mutex_lock(&w->lock) != 0)
		abort();
	if (w->batch_failed) {
		began = h->failing_since == 0;
		if (began)
			h->failing_since = clock_wall_ms();
		snprintf(h->last_error, sizeof h->last_error, "%s", w->batch_error);
	} else if (applied > 0 && h->failing_since != 0) {
		since = h->failing_since;
		h->failing_since = 0;
		h->last_error[0] = '\0';
	}
	h->retry_sessions = w->retry_len;
	h->dropped_sessions += w->batch_dropped;
	pthread_mutex_unlock(&w->lock);

	if (began)
		log_error("writer: database writes are failing: %s; messages are refused, "
			  "session records and bans are kept and retried",
		    w->batch_error);
	else if (since != 0)
		log_info("writer: database writes work again after %lld s; %u records "
			 "still to write",
		    (long long)((clock_wall_ms() - since) / 1000), w->retry_len);
	if (w->batch_dropped > 0)
		log_warn("writer: %llu sessions not recorded: %d session opens already wait "
			 "for the database",
		    w->batch_dropped, WRITER_RETRY_OPENS_MAX);
	w->batch_failed = 0;
	w->batch_dropped = 0;
}

/* Whether the waiting session records go into the next batch. Under the lock. */
static int
writer_retry_due(const struct writer *w)
{
	return w->retry_len > 0 && (w->stop ? !w->final_try : clock_mono_ms() >= w->retry_at);
}

/* Waits for work under the lock: submitted operations, or retries that are due. */
static int
writer_wait(struct writer *w)
{
	struct timespec ts;
	int64_t left;

	for (;;) {
		if (!STAILQ_EMPTY(&w->in) || writer_retry_due(w))
			return 1;
		if (w->stop)
			return 0;
		if (w->retry_len == 0) {
			pthread_cond_wait(&w->cond, &w->lock);
			continue;
		}
		left = w->retry_at - clock_mono_ms();
		if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
			abort();
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&w->cond, &w->lock, &ts);
	}
}

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct writer_op_list batch, back;
	struct writer_op *op;
	struct timespec t0, t1;
	unsigned n, messages;

	for (;;) {
		if (pthread_mutex_lock(&w->lock) != 0)
			abort();
		if (!writer_wait(w)) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		STAILQ_INIT(&batch);
		n = messages = 0;
		/* Waiting session records first, each close still behind its open. */
		if (writer_retry_due(w)) {
			w->final_try = w->stop;
			n = w->retry_len;
			STAILQ_CONCAT(&batch, &w->retry);
			w->retry_len = w->retry_opens = w->retry_others = 0;
		}
		while (n < WRITER_BATCH_MAX && (op = STAILQ_FIRST(&w->in)) != NULL) {
			STAILQ_REMOVE_HEAD(&w->in, entry);
			STAILQ_INSERT_TAIL(&batch, op, entry);
			w->in_len--;
			if (op->type == WRITER_MESSAGE)
				messages++;
			n++;
		}
		w->in_messages -= messages;
		w->inflight = n;
		pthread_mutex_unlock(&w->lock);

		/* One transaction, one fsync for the whole batch. */
		clock_now(CLOCK_MONOTONIC, &t0);
		writer_apply_batch(w, &batch);
		clock_now(CLOCK_MONOTONIC, &t1);
		STAILQ_INIT(&back);
		writer_batch_end(w, &batch, &back);

		if (pthread_mutex_lock(&w->lock) != 0)
			abort();
		STAILQ_CONCAT(&w->done, &back);
		w->inflight = 0;
		if (n > 0) {
			metrics_hist_observe(&w->commit_seconds,
			    (double)(t1.tv_sec - t0.tv_sec) +
				(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
			metrics_hist_observe(&w->batch_ops, n);
		}
		/* Under the lock, so writer_detach() cannot return while a
		 * wake-up to a context about to be destroyed is in flight.
		 * lws_cancel_service() only writes to the loop's pipe. */
		if (messages > 0 && w->ctx != NULL)
			lws_cancel_service(w->ctx);
		pthread_mutex_unlock(&w->lock);
	}
	if (w->retry_len > 0)
		log_error("writer: %u records (sessions, bans, peaks) could not be written; the "
			  "next start "
			  "closes the sessions left open",
		    w->retry_len);
	return NULL;
}

int
writer_create(const char *db_path, const char *node_id, struct lws_context *ctx,
    struct writer **out, char **cause)
{
	struct writer *w = xcalloc(1, sizeof *w);
	pthread_condattr_t attr;
	int error;

	w->ctx = ctx;
	w->node_id = xstrdup(node_id != NULL ? node_id : "");
	strmap_init(&w->sessions);
	STAILQ_INIT(&w->in);
	STAILQ_INIT(&w->done);
	STAILQ_INIT(&w->retry);
	if (db_open(db_path, &w->db, cause) != DB_OK)
		goto fail;
	if (checkpointer_create(db_path, &w->cp, cause) != 0)
		goto fail_db;
	db_wal_hook(w->db, writer_wal_grown, w);
	metrics_hist_init(&w->commit_seconds, metrics_seconds_bounds, metrics_seconds_nbounds);
	metrics_hist_init(&w->batch_ops, metrics_size_bounds, metrics_size_nbounds);
	if ((error = pthread_mutex_init(&w->lock, NULL)) != 0) {
		*cause = xasprintf("pthread_mutex_init: %s", strerror(error));
		goto fail_db;
	}
	/* The retry back-off is timed on the monotonic clock. */
	if ((error = pthread_condattr_init(&attr)) != 0) {
		*cause = xasprintf("pthread_condattr_init: %s", strerror(error));
		pthread_mutex_destroy(&w->lock);
		goto fail_db;
	}
	if ((error = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)) != 0 ||
	    (error = pthread_cond_init(&w->cond, &attr)) != 0) {
		*cause = xasprintf("pthread_cond_init: %s", strerror(error));
		pthread_condattr_destroy(&attr);
		pthread_mutex_destroy(&w->lock);
		goto fail_db;
	}
	pthread_condattr_destroy(&attr);
	if ((error = pthread_create(&w->thread, NULL, writer_main, w)) != 0) {
		*cause = xasprintf("pthread_create: %s", strerror(error));
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		goto fail_db;
	}
	w->started = 1;
	*out = w;
	return 0;

fail_db:
	db_close(w->db);
	checkpointer_destroy(w->cp);
fail:
	free(w->node_id);
	free(w);
	return -1;
}

int
writer_submit(struct writer *w, struct writer_op *op)
{
	int urgent;

	if (pthread_mutex_lock(&w->lock) != 0)
		abort();
	if (op->type == WRITER_MESSAGE && w->in_messages >= WRITER_QUEUE_MAX) {
		pthread_mutex_unlock(&w->lock);
		writer_op_free(op);
		return -1;
	}
	STAILQ_INSERT_TAIL(&w->in, op, entry);
	w->in_len++;
	if (op->type == WRITER_MESSAGE)
		w->in_messages++;
	urgent = w->in_len == 1 && w->inflight == 0 && op->type == WRITER_MESSAGE &&
	    op->kind != DB_MESSAGE_CHAT;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	/*
	 * A CustomEvent woke an idle writer: let it commit now. On a busy
	 * core (chatd pinned to one, as in docs/benchmarks.md) the woken
	 * writer otherwise waits out the service thread's time slice, 1-5 ms
	 * before the event's broadcast can start. Not for chat: one commit
	 * per message then cut group commit short (p99 of 10 rooms of 100 at
	 * 100k/s 67-78 ms against 42-52). On an idle core the call returns
	 * at once.
	 */
	if (urgent)
		sched_yield();
	return 0;
}

unsigned
writer_drain(struct writer *w, void (*done)(struct writer_op *op, void *arg), void *arg)
{
	struct writer_op_list list;
	struct writer_op *op;
	unsigned n = 0;

	STAILQ_INIT(&list);
	if (pthread_mutex_lock(&w->lock) != 0)
		abort();
	STAILQ_CONCAT(&list, &w->done);
	pthread_mutex_unlock(&w->lock);
	while ((op = STAILQ_FIRST(&list)) != NULL) {
		STAILQ_REMOVE_HEAD(&list, entry);
		if (done != NULL)
			done(op, arg);
		writer_op_free(op);
		n++;
	}
	return n;
}

unsigned
writer_backlog(struct writer *w)
{
	unsigned n;

	if (pthread_mutex_lock(&w->lock) != 0)
		abort();
	n = w->in_len + w->inflight + w->health.retry_sessions;
	pthread_mutex_unlock(&w->lock);
	return n;
}

void
writer_health(struct writer *w, struct writer_health *out)
{
	if (pthread_mutex_lock(&w->lock) != 0)
		abort();
	*out = w->health;
	pthread_mutex_unlock(&w->lock);
}

void
writer_metrics(
    struct writer *w, struct metrics_hist *commit_seconds, struct metrics_hist *batch_ops)
{
	if (pthread_mutex_lock(&w->lock) != 0)
		abort();
	*commit_seconds = w->commit_seconds;
	*batch_ops = w->batch_ops;
	pthread_mutex_unlock(&w->lock);
}

void
writer_wal_state(struct writer *w, int *wal_pages, int *blocked)
{
	checkpointer_wal_state(w->cp, wal_pages, blocked);
}

int
writer_wal_at_bound(struct writer *w)
{
	return checkpointer_at_bound(w->cp);
}

struct checkpointer *
writer_checkpointer(struct writer *w)
{
	return w->cp;
}

static void
writer_free_session(void *v)
{
	free(v);
}

void
writer_detach(struct writer *w)
{
	if (w == NULL)
		return;
	if (pthread_mutex_lock(&w->lock) != 0)
		abort();
	w->ctx = NULL;
	pthread_mutex_unlock(&w->lock);
}

void
writer_destroy(struct writer *w)
{
	struct writer_op *op;
	int error;

	if (w == NULL)
		return;
	if (w->started) {
		if (pthread_mutex_lock(&w->lock) != 0)
			abort();
		w->stop = 1;
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->lock);
		if ((error = pthread_join(w->thread, NULL)) != 0)
			log_error("writer: pthread_join: %s", strerror(error));
	}
	writer_drain(w, NULL, NULL);
	while ((op = STAILQ_FIRST(&w->retry)) != NULL) {
		STAILQ_REMOVE_HEAD(&w->retry, entry);
		writer_op_free(op);
	}
	strmap_clear(&w->sessions, writer_free_session);
	db_close(w->db);
	checkpointer_destroy(w->cp);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w->node_id);
	free(w);
}
