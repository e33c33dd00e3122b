/*
 * chatd's WAL checkpointer: a thread with its own database connection
 * that copies the WAL into the database while the writer goes on
 * committing. SQLite would otherwise checkpoint inside the writer's
 * commit, and every message waiting for that commit would wait for the
 * copy and its fsyncs too (docs/benchmarks.md has the stalls measured).
 *
 * A passive checkpoint takes no lock the writer needs, but while commits
 * keep coming it never catches up entirely, and the WAL starts over only
 * once everything in it has been copied: left alone, the WAL grows
 * without bound under a steady load (docs/storage.md). So the thread
 * copies the bulk, and the writer finishes: after a commit,
 * checkpointer_after_commit() says when only a tail of at most
 * CHECKPOINT_TAIL_PAGES is left, and the writer checkpoints that on its
 * own connection between two batches (a few pages and two small fsyncs),
 * after which its next commit starts the WAL over.
 *
 * The state below the mutex is the only shared state; each connection
 * belongs to its thread.
 */
#ifndef CHATD_CHECKPOINT_H
#define CHATD_CHECKPOINT_H

struct checkpointer;

/* WAL size (pages) from which the writer's commits ask: SQLite's own default. */
#define CHECKPOINT_PAGES 1000
/* Most WAL pages the writer copies itself to finish a checkpoint. */
#define CHECKPOINT_TAIL_PAGES 256
/* The backstop: from this WAL size the writer checkpoints itself whatever
 * the thread is doing (a thread starved of CPU must not let the WAL grow
 * without bound). */
#define CHECKPOINT_WRITER_PAGES (4 * CHECKPOINT_PAGES)
/* After a checkpoint that copied nothing (a reader still uses old pages),
 * how long before the next attempt, in milliseconds. */
#define CHECKPOINT_RETRY_MS 250
/*
 * A reader that keeps its transaction open keeps every checkpoint short of
 * the pages it may still read, and the WAL cannot start over: it grows with
 * every commit until that reader ends. Nothing in chatd can end it; past
 * this size, with checkpoints held back, chatd says so (a warning, and
 * wal_blocked in health). The normal WAL never gets there (the writer's
 * backstop), and db.c's journal_size_limit cuts the file back to about this
 * size once the WAL starts over.
 */
#define CHECKPOINT_WARN_PAGES CHECKPOINT_WRITER_PAGES
/*
 * The bound on a WAL held back by a reader: 65,536 pages, 256 MiB at
 * SQLite's 4 KiB pages. Past it, while the reader holds on, the writer
 * stores no chat messages or events (their senders get Error overloaded,
 * health says why); session records, bans and peaks, a few hundred bytes
 * each, still go in, so who was there is never lost. Writes resume as soon
 * as a checkpoint gets through (docs/storage.md).
 */
#define CHECKPOINT_BOUND_PAGES 65536
/* The thread's niceness: below the service thread, still a share of a busy core. */
#define CHECKPOINT_NICE 10

/*
 * On a PostgreSQL address no thread starts and no connection opens: the
 * server checkpoints by itself (the state below stays zero).
 */
int checkpointer_create(const char *db_path, struct checkpointer **out, char **cause);
/*
 * The writer, after each commit, with the WAL's size then: 1 if the
 * caller should run db_checkpoint() on its own connection now (past
 * CHECKPOINT_PAGES, the thread is idle and copied all but the last
 * CHECKPOINT_TAIL_PAGES, or the WAL reached CHECKPOINT_WRITER_PAGES);
 * otherwise, past CHECKPOINT_PAGES, asks the thread for a run if it is
 * idle, and returns 0.
 */
int checkpointer_after_commit(struct checkpointer *cp, int wal_pages);

/*
 * What checkpointer_after_commit() decides past CHECKPOINT_PAGES, from
 * the thread's state: running (a run under way), copied (WAL pages the
 * last run saw copied, 0 if none since the WAL started over). The thread
 * is asked only when it is idle and more than a tail is left, so it never
 * runs back to back for a few pages (each run costs two fsyncs).
 */
enum checkpoint_action {
	CHECKPOINT_WAIT, /* a run is under way: see after it */
	CHECKPOINT_ASK_THREAD,
	CHECKPOINT_WRITER_FINISHES,
};
enum checkpoint_action checkpoint_decide(int running, int copied, int wal_pages);
/*
 * The writer, after a db_checkpoint() of its own with its results: the
 * writer commits nothing meanwhile, so pages left uncopied mean a reader
 * holds them (blocked).
 */
void checkpointer_writer_result(struct checkpointer *cp, int wal_pages, int done_pages);
/*
 * The WAL's size in pages after the last commit, and 1 in *blocked while a
 * reader keeps checkpoints from copying it (until one copies everything or
 * the WAL starts over). Any thread.
 */
void checkpointer_wal_state(struct checkpointer *cp, int *wal_pages, int *blocked);
/* 1 while a reader holds the WAL back at CHECKPOINT_BOUND_PAGES or more; any thread. */
int checkpointer_at_bound(struct checkpointer *cp);
/* Tests: a smaller bound than CHECKPOINT_BOUND_PAGES. */
void checkpointer_set_bound(struct checkpointer *cp, int pages);
/* Checkpoints the thread has run (complete or not) so far; any thread. */
unsigned long checkpointer_runs(struct checkpointer *cp);
/* Stops the thread (a checkpoint under way finishes first) and frees. NULL allowed. */
void checkpointer_destroy(struct checkpointer *cp);

#endif
