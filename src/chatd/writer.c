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

#include <libwebsockets.h>

#include "checkpoint.h"
#include "db.h"
#include "log.h"
#include "strmap.h"
#include "writer.h"
#include "xmalloc.h"

STAILQ_HEAD(writer_op_list, writer_op);

struct writer {
	pthread_t thread;
	int started;
	struct lws_context *ctx;
	struct db *db; /* writer thread only */
	struct strmap sessions; /* writer thread only: key -> int64_t session id */
	struct checkpointer *cp; /* checkpoints the WAL the writer's commits grow */

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond;
	struct writer_op_list in; /* submitted, not yet taken */
	struct writer_op_list done; /* message ops back to the service thread */
	unsigned in_len, in_messages, inflight;
	int stop;
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
	free(op);
}

static void
writer_session_key(uint64_t key, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu64, key);
}

/* Runs one operation inside the batch's transaction. Writer thread. */
static void
writer_apply(struct writer *w, struct writer_op *op)
{
	char *cause = NULL, kbuf[32];
	int64_t id, *idp;
	int rc = DB_OK;

	switch (op->type) {
	case WRITER_MESSAGE:
		rc = db_message_append(w->db, op->room_id, op->kind, op->user_id, op->nickname,
		    op->is_admin, op->text, op->event_type, op->ts_ms, &op->id, &op->seq, &cause);
		if (rc != DB_OK)
			op->failed = 1;
		break;
	case WRITER_SESSION_OPEN:
		rc = db_session_open(w->db, op->room_id, op->user_id, op->nickname, op->is_admin,
		    op->address, op->ts_ms, &id, &cause);
		if (rc == DB_OK) {
			idp = xmalloc(sizeof *idp);
			*idp = id;
			writer_session_key(op->key, kbuf, sizeof kbuf);
			free(strmap_set(&w->sessions, kbuf, idp));
		}
		break;
	case WRITER_SESSION_CLOSE:
		writer_session_key(op->key, kbuf, sizeof kbuf);
		idp = strmap_remove(&w->sessions, kbuf);
		if (idp == NULL)
			break; /* its open failed (logged then) */
		rc = db_session_close(w->db, *idp, op->reason, op->ts_ms, &cause);
		free(idp);
		break;
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
	}
	if (rc == DB_ERROR)
		log_error("writer: %s in room %s: %s", writer_op_name(op->type),
		    op->room_id ? op->room_id : "-", cause ? cause : "?");
	else if (rc != DB_OK)
		log_warn("writer: %s in room %s: %s", writer_op_name(op->type),
		    op->room_id ? op->room_id : "-", rc == DB_NOTFOUND ? "not found" : "conflict");
	free(cause);
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

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct writer_op_list batch, back;
	struct writer_op *op;
	char *cause = NULL;
	unsigned n, messages;
	int in_tx;

	for (;;) {
		if (pthread_mutex_lock(&w->lock) != 0)
			abort();
		while (STAILQ_EMPTY(&w->in) && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		if (STAILQ_EMPTY(&w->in) && w->stop) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		STAILQ_INIT(&batch);
		n = messages = 0;
		while (n < WRITER_BATCH_MAX && (op = STAILQ_FIRST(&w->in)) != NULL) {
			STAILQ_REMOVE_HEAD(&w->in, entry);
			STAILQ_INSERT_TAIL(&batch, op, entry);
			if (op->type == WRITER_MESSAGE)
				messages++;
			n++;
		}
		w->in_len -= n;
		w->in_messages -= messages;
		w->inflight = n;
		pthread_mutex_unlock(&w->lock);

		/* One transaction, one fsync for the whole batch. */
		in_tx = db_tx_begin(w->db, &cause) == DB_OK;
		if (!in_tx) {
			log_error("writer: begin: %s (each operation commits alone)", cause);
			free(cause);
			cause = NULL;
		}
		STAILQ_FOREACH(op, &batch, entry)
		writer_apply(w, op);
		if (in_tx && db_tx_commit(w->db, &cause) != DB_OK) {
			log_error("writer: commit of %u operations failed: %s", n, cause);
			free(cause);
			cause = NULL;
			STAILQ_FOREACH(op, &batch, entry)
			{
				if (op->type == WRITER_MESSAGE)
					op->failed = 1;
			}
		}

		STAILQ_INIT(&back);
		while ((op = STAILQ_FIRST(&batch)) != NULL) {
			STAILQ_REMOVE_HEAD(&batch, entry);
			if (op->type == WRITER_MESSAGE)
				STAILQ_INSERT_TAIL(&back, op, entry);
			else
				writer_op_free(op);
		}
		if (pthread_mutex_lock(&w->lock) != 0)
			abort();
		STAILQ_CONCAT(&w->done, &back);
		w->inflight = 0;
		/* Under the lock, so writer_detach() cannot return while a
		 * wake-up to a context about to be destroyed is in flight.
		 * lws_cancel_service() only writes to the loop's pipe. */
		if (messages > 0 && w->ctx != NULL)
			lws_cancel_service(w->ctx);
		pthread_mutex_unlock(&w->lock);
	}
	return NULL;
}

int
writer_create(const char *db_path, struct lws_context *ctx, struct writer **out, char **cause)
{
	struct writer *w = xcalloc(1, sizeof *w);
	int error;

	w->ctx = ctx;
	strmap_init(&w->sessions);
	STAILQ_INIT(&w->in);
	STAILQ_INIT(&w->done);
	if (db_open(db_path, &w->db, cause) != DB_OK)
		goto fail;
	if (checkpointer_create(db_path, &w->cp, cause) != 0)
		goto fail_db;
	db_wal_hook(w->db, writer_wal_grown, w);
	if ((error = pthread_mutex_init(&w->lock, NULL)) != 0) {
		*cause = xasprintf("pthread_mutex_init: %s", strerror(error));
		goto fail_db;
	}
	if ((error = pthread_cond_init(&w->cond, NULL)) != 0) {
		*cause = xasprintf("pthread_cond_init: %s", strerror(error));
		pthread_mutex_destroy(&w->lock);
		goto fail_db;
	}
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
	n = w->in_len + w->inflight;
	pthread_mutex_unlock(&w->lock);
	return n;
}

void
writer_wal_state(struct writer *w, int *wal_pages, int *blocked)
{
	checkpointer_wal_state(w->cp, wal_pages, blocked);
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
	strmap_clear(&w->sessions, writer_free_session);
	db_close(w->db);
	checkpointer_destroy(w->cp);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}
