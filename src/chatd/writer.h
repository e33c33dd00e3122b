/*
 * chatd's database writer: a thread with its own database connection that
 * commits what the service thread hands it (chat messages, CustomEvents,
 * session opens and closes, peak updates, bans from admins) in batches,
 * one transaction per batch (group commit). Operations are committed in
 * the order they were submitted, so seqs come out in submission order.
 * Message operations come back with their id and seq (or failed) through
 * writer_drain(), after a lws_cancel_service() wake-up.
 *
 * Session records (opens and closes) that fail with an error that may go
 * away (a full disk, an I/O error, a lock held past the busy timeout) are
 * kept and written again with the next batches, in order: a close is never
 * written before its session's open. Messages are not retried: their
 * senders are told (failed), and may send again.
 *
 * The two queues and the health state are the only state shared between
 * threads; each is guarded by the writer's mutex. An operation belongs to whoever holds it:
 * the submitter until writer_submit(), then the writer, then the service
 * thread again inside writer_drain()'s callback.
 */
#ifndef CHATD_WRITER_H
#define CHATD_WRITER_H

#include <sys/queue.h>

#include <stdint.h>

#include "metrics.h"

struct lws_context;
struct writer;

/* What an operation does; writer_op_name() names it in logs. */
enum writer_op_type {
	WRITER_MESSAGE = 1, /* db_message_append; comes back */
	WRITER_SESSION_OPEN, /* db_session_open under key */
	WRITER_SESSION_CLOSE, /* db_session_close of key's session */
	WRITER_PEAK, /* db_room_peak_update */
	WRITER_BAN, /* db_ban_add */
	WRITER_UNBAN, /* db_ban_lift */
	WRITER_NODE_BEAT, /* db_node_beat: this node is alive (cluster) */
	WRITER_NODE_REAP, /* db_node_reap of every other node silent since stale_before */
	WRITER_NODE_STOP, /* db_node_stop: a clean stop */
};

/* Most operations committed in one transaction. */
#define WRITER_BATCH_MAX 1024
/* Message operations waiting before writer_submit refuses more. */
#define WRITER_QUEUE_MAX 100000
/*
 * Session opens kept for retry while writes fail. Past it, the newest
 * failed open is dropped with its close (that session is never recorded;
 * counted in writer_health.dropped_sessions). A close is always kept: there
 * is one per session the database holds open or per open kept here, so
 * closes are bounded by the connections chatd had when writes began to fail
 * plus this. About 400 bytes each.
 */
#define WRITER_RETRY_OPENS_MAX 10000
/*
 * Bans, unbans and peak updates kept for retry the same way, in order with
 * the session records. Past it the newest failed one is dropped (logged,
 * counted with the dropped sessions): a ban still holds in chatd's memory
 * until a restart, a peak is carried by the next higher one.
 */
#define WRITER_RETRY_OTHERS_MAX 10000
/* Retry back-off while writes keep failing: doubles from the first to the last. */
#define WRITER_RETRY_FIRST_MS 100
#define WRITER_RETRY_LAST_MS 5000

struct writer_op {
	STAILQ_ENTRY(writer_op) entry;
	enum writer_op_type type;
	/* heap strings, freed by writer_op_free */
	char *room_id;
	char *user_id;
	char *nickname;
	char *text; /* message content or CustomEvent payload JSON */
	char *event_type;
	char *reason; /* session leave reason, ban reason */
	char *address;
	int kind; /* DB_MESSAGE_CHAT or DB_MESSAGE_CUSTOM */
	int is_admin;
	int64_t ts_ms;
	int64_t expires_at; /* BAN */
	int64_t peak; /* PEAK */
	uint64_t key; /* SESSION_*: the connection's serial */
	char *incarnation; /* NODE_BEAT, NODE_STOP: this run of the node */
	int64_t started_at; /* NODE_BEAT */
	int64_t connections; /* NODE_BEAT */
	int64_t stale_before; /* NODE_REAP: wall ms */
	/* MESSAGE in a cluster: the sender's rate limit, checked in the database (0: none) */
	int64_t rate_interval_ms;
	int64_t retry_after_ms; /* filled: WRITER_MSG_RATE_LIMITED */

	/* who asked, for the reply after commit (service thread's business) */
	uint64_t origin; /* connection or control connection serial */
	int from_ctl;
	unsigned long ctl_id;

	/* filled by the writer for WRITER_MESSAGE: WRITER_MSG_* */
	int failed;
	int64_t id, seq; /* SESSION_*: the session's row, writer thread only */
	int outcome; /* writer thread only: what became of it in its batch */
};

/* Whether the writer's database writes work (health); a copy. */
struct writer_health {
	/* wall ms of the first write that failed since the last good commit; 0: writes work */
	int64_t failing_since;
	char last_error[256]; /* that failure's cause, "" while writes work */
	unsigned retry_sessions; /* session records waiting to be written again */
	unsigned long long dropped_sessions; /* opens dropped since start: too many waited */
};

/* A zeroed operation of type (caller fills it). */
struct writer_op *writer_op_create(enum writer_op_type type);
/* The type's name ("message", "session_open", ...); any thread. */
const char *writer_op_name(enum writer_op_type type);
void writer_op_free(struct writer_op *op);

/*
 * Opens the writer's database connection and starts its thread. ctx is
 * woken with lws_cancel_service() when results are ready. The sessions it
 * opens belong to node node_id (copied; NULL or "": a chatd on its own).
 * Service thread.
 */
int writer_create(const char *db_path, const char *node_id, struct lws_context *ctx,
    struct writer **out, char **cause);
/*
 * Hands op to the writer (it takes ownership). Returns 0, or -1 when too
 * many message operations wait (op is freed; tell the client to retry);
 * other types are always taken. Service thread.
 */
int writer_submit(struct writer *w, struct writer_op *op);
/*
 * Calls done() for every finished message operation, in commit order;
 * op is freed after done() returns. Idempotent: an empty queue is fine.
 * Returns how many. Service thread.
 */
unsigned writer_drain(struct writer *w, void (*done)(struct writer_op *op, void *arg), void *arg);
/* Operations submitted and not yet committed, retries included (stats). */
unsigned writer_backlog(struct writer *w);
/* Why a message op was not stored (op->failed; 0: it was). */
#define WRITER_MSG_REFUSED 1 /* the database refused it; it would again (logged) */
#define WRITER_MSG_LATER \
	2 /* not now: writes fail for a while (full disk, I/O, lock), or the WAL is at its bound */
#define WRITER_MSG_RATE_LIMITED 3 /* the sender posted through another node within the interval */
/*
 * Rate-limit marks older than this are deleted (every
 * WRITER_RATE_PRUNE_EVERY_MS, with a node reap): no interval is longer.
 */
#define WRITER_RATE_MARK_KEEP_MS ((24LL * 3600 + 60) * 1000)
#define WRITER_RATE_PRUNE_EVERY_MS (10LL * 60 * 1000)

/* Fills *out. Any thread. */
void writer_health(struct writer *w, struct writer_health *out);
/* Copies of the batch histograms: time to apply and commit, operations per batch. Any thread. */
void writer_metrics(
    struct writer *w, struct metrics_hist *commit_seconds, struct metrics_hist *batch_ops);
/* 1 while the WAL, held back by a reader, is at its bound (CHECKPOINT_BOUND_PAGES). Any thread. */
int writer_wal_at_bound(struct writer *w);
/* Tests: the writer's checkpointer (checkpointer_set_bound). */
struct checkpointer *writer_checkpointer(struct writer *w);
/* The WAL after the last commit, and whether a reader holds checkpoints back (health). Any thread. */
void writer_wal_state(struct writer *w, int *wal_pages, int *blocked);
/*
 * Forgets the lws context: after it returns the writer thread never wakes
 * the service loop again. Call before lws_context_destroy(). Service thread.
 */
void writer_detach(struct writer *w);

/*
 * Commits everything submitted so far (session records waiting for a
 * retry get one last try), stops the thread, closes its database and frees
 * what is left. Service thread, after the last submit.
 */
void writer_destroy(struct writer *w);

#endif
