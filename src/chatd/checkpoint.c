/* The WAL checkpointer thread (see checkpoint.h). */
#include "autoconf.h"

#include <sys/resource.h>
#include <sys/syscall.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "clock.h"
#include "db.h"
#include "dbaddr.h"
#include "log.h"
#include "xmalloc.h"

struct checkpointer {
	pthread_t thread;
	int threaded; /* the thread runs: only SQLite has a WAL to copy */
	struct db *db; /* the thread's */

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t cond; /* on CLOCK_MONOTONIC */
	int requested, running, stop;
	int copied; /* WAL pages the last run saw copied; 0: none since the WAL started over */
	int wal_pages; /* the WAL's size after the writer's last commit */
	int blocked; /* a reader holds pages back from every checkpoint */
	int warned; /* blocked past CHECKPOINT_WARN_PAGES was logged */
	int bound_pages; /* CHECKPOINT_BOUND_PAGES, smaller in tests */
	unsigned long runs;
};

/* A checkpoint copied done of wal pages, with (reader) or without pages held back. The lock is held. */
static void
checkpoint_note(struct checkpointer *cp, int held_back, int wal, int done)
{
	cp->blocked = held_back;
	if (held_back && !cp->warned && wal >= CHECKPOINT_WARN_PAGES) {
		cp->warned = 1;
		log_warn("checkpoint: a reader's open transaction keeps the WAL from starting over "
			 "(%d pages, %d copied); it grows with every commit until that reader ends "
			 "its transaction",
		    wal, done);
	} else if (!held_back && cp->warned) {
		cp->warned = 0;
		log_info("checkpoint: the reader let go; all %d WAL pages copied", wal);
	}
}

static void
checkpoint_lock(struct checkpointer *cp)
{
	if (pthread_mutex_lock(&cp->lock) != 0)
		abort();
}

/* Waits up to ms (or for a stop); the lock is held. */
static void
checkpoint_pause(struct checkpointer *cp, long ms)
{
	struct timespec until;

	clock_now(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (!cp->stop && pthread_cond_timedwait(&cp->cond, &cp->lock, &until) == 0)
		;
}

static void *
checkpoint_main(void *arg)
{
	struct checkpointer *cp = arg;
	char *cause = NULL;
	int wal = 0, done = 0, last_done = -1;

	/*
	 * Background work: a lower priority (nice, so it still gets its share
	 * on a saturated core and the WAL stays bounded) keeps the copying off
	 * the service thread's time when both share a core. Raising one's own
	 * niceness needs no privilege; failing is harmless.
	 */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), CHECKPOINT_NICE) != 0)
		log_debug("checkpoint: setpriority: %s", strerror(errno));
	checkpoint_lock(cp);
	for (;;) {
		while (!cp->requested && !cp->stop)
			pthread_cond_wait(&cp->cond, &cp->lock);
		if (cp->stop)
			break;
		cp->requested = 0;
		cp->running = 1;
		pthread_mutex_unlock(&cp->lock);

		if (db_checkpoint(cp->db, &wal, &done, &cause) != DB_OK) {
			log_warn("checkpoint: %s", cause);
			free(cause);
			cause = NULL;
		} else {
			log_debug("checkpoint: %d of %d WAL pages in the database", done, wal);
		}

		checkpoint_lock(cp);
		cp->running = 0;
		cp->runs++;
		/* Even a run that copied all it saw is rarely complete: the
		 * writer committed meanwhile, and the WAL starts over only
		 * once a write begins with everything copied. */
		cp->copied = done > 0 ? done : 0;
		/* Nothing more copied than last time: a reader holds the pages
		 * still to copy. The writer's next commits ask again; going at
		 * each would spin. */
		if (done < wal && done == last_done) {
			checkpoint_note(cp, 1, wal, done);
			checkpoint_pause(cp, CHECKPOINT_RETRY_MS);
		} else if (done == wal && wal > 0)
			checkpoint_note(cp, 0, wal, done);
		last_done = done;
	}
	pthread_mutex_unlock(&cp->lock);
	return NULL;
}

int
checkpointer_create(const char *db_path, struct checkpointer **out, char **cause)
{
	struct checkpointer *cp = xcalloc(1, sizeof *cp);
	pthread_condattr_t ca;
	int error;

	cp->bound_pages = CHECKPOINT_BOUND_PAGES;
	/*
	 * PostgreSQL checkpoints by itself and its backend has no WAL hook:
	 * no commit ever asks, and a thread would only hold a connection
	 * that a server restart breaks for nothing. The state stays zero.
	 */
	if (!dbaddr_is_pg(db_path) && db_open(db_path, &cp->db, cause) != DB_OK) {
		free(cp);
		return -1;
	}
	if ((error = pthread_mutex_init(&cp->lock, NULL)) != 0) {
		*cause = xasprintf("pthread_mutex_init: %s", strerror(error));
		goto fail_db;
	}
	if ((error = pthread_condattr_init(&ca)) != 0) {
		*cause = xasprintf("pthread_condattr_init: %s", strerror(error));
		goto fail_lock;
	}
	if ((error = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) != 0 ||
	    (error = pthread_cond_init(&cp->cond, &ca)) != 0) {
		*cause = xasprintf("pthread_cond_init: %s", strerror(error));
		pthread_condattr_destroy(&ca);
		goto fail_lock;
	}
	pthread_condattr_destroy(&ca);
	if (cp->db != NULL &&
	    (error = pthread_create(&cp->thread, NULL, checkpoint_main, cp)) != 0) {
		*cause = xasprintf("pthread_create: %s", strerror(error));
		pthread_cond_destroy(&cp->cond);
		goto fail_lock;
	}
	cp->threaded = cp->db != NULL;
	*out = cp;
	return 0;

fail_lock:
	pthread_mutex_destroy(&cp->lock);
fail_db:
	db_close(cp->db);
	free(cp);
	return -1;
}

enum checkpoint_action
checkpoint_decide(int running, int copied, int wal_pages)
{
	if (wal_pages >= CHECKPOINT_WRITER_PAGES)
		return CHECKPOINT_WRITER_FINISHES;
	if (running)
		return CHECKPOINT_WAIT;
	/* copied > wal_pages: the WAL started over since that run. */
	if (copied > 0 && copied <= wal_pages && wal_pages - copied <= CHECKPOINT_TAIL_PAGES)
		return CHECKPOINT_WRITER_FINISHES;
	return CHECKPOINT_ASK_THREAD;
}

int
checkpointer_after_commit(struct checkpointer *cp, int wal_pages)
{
	enum checkpoint_action a;

	checkpoint_lock(cp);
	/* Smaller than last time: the WAL started over, and what the
	 * thread copied before is no tail of the new one. */
	if (wal_pages < cp->wal_pages) {
		cp->copied = 0;
		if (cp->blocked || cp->warned)
			checkpoint_note(cp, 0, cp->wal_pages, cp->wal_pages);
	}
	cp->wal_pages = wal_pages;
	if (wal_pages < CHECKPOINT_PAGES) {
		pthread_mutex_unlock(&cp->lock);
		return 0;
	}
	a = checkpoint_decide(cp->running, cp->copied, wal_pages);
	if (a == CHECKPOINT_WRITER_FINISHES) {
		cp->copied = 0; /* copied from the tail on: the writer's */
	} else if (a == CHECKPOINT_ASK_THREAD && !cp->requested) {
		cp->requested = 1;
		pthread_cond_signal(&cp->cond);
	}
	pthread_mutex_unlock(&cp->lock);
	return a == CHECKPOINT_WRITER_FINISHES;
}

void
checkpointer_writer_result(struct checkpointer *cp, int wal_pages, int done_pages)
{
	checkpoint_lock(cp);
	checkpoint_note(cp, done_pages < wal_pages, wal_pages, done_pages);
	pthread_mutex_unlock(&cp->lock);
}

void
checkpointer_wal_state(struct checkpointer *cp, int *wal_pages, int *blocked)
{
	checkpoint_lock(cp);
	*wal_pages = cp->wal_pages;
	*blocked = cp->blocked;
	pthread_mutex_unlock(&cp->lock);
}

int
checkpointer_at_bound(struct checkpointer *cp)
{
	int pages, blocked;

	checkpointer_wal_state(cp, &pages, &blocked);
	return blocked && pages >= cp->bound_pages;
}

void
checkpointer_set_bound(struct checkpointer *cp, int pages)
{
	checkpoint_lock(cp);
	cp->bound_pages = pages;
	pthread_mutex_unlock(&cp->lock);
}

unsigned long
checkpointer_runs(struct checkpointer *cp)
{
	unsigned long n;

	checkpoint_lock(cp);
	n = cp->runs;
	pthread_mutex_unlock(&cp->lock);
	return n;
}

void
checkpointer_destroy(struct checkpointer *cp)
{
	int error;

	if (cp == NULL)
		return;
	checkpoint_lock(cp);
	cp->stop = 1;
	pthread_cond_signal(&cp->cond);
	pthread_mutex_unlock(&cp->lock);
	if (cp->threaded && (error = pthread_join(cp->thread, NULL)) != 0)
		log_error("checkpoint: pthread_join: %s", strerror(error));
	db_close(cp->db);
	pthread_cond_destroy(&cp->cond);
	pthread_mutex_destroy(&cp->lock);
	free(cp);
}
