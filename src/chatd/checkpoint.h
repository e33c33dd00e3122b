/*
 * chatd's WAL checkpointer: a thread with its own database connection
 * that runs passive checkpoints when the writer says the WAL has grown.
 * SQLite would otherwise checkpoint inside the writer's commit, and the
 * checkpoint's fsyncs would then delay every message waiting for that
 * commit to be broadcast. A passive checkpoint takes no lock the writer
 * needs, so commits go on while it runs.
 *
 * The only shared state is the request flag and the stop flag, guarded
 * by the checkpointer's mutex; the connection belongs to the thread.
 */
#ifndef CHATD_CHECKPOINT_H
#define CHATD_CHECKPOINT_H

struct checkpointer;

/* WAL size (pages) at which the writer asks for a checkpoint: SQLite's own default. */
#define CHECKPOINT_PAGES 1000
/* After a checkpoint that could not copy everything (a reader still uses
 * old pages), how long before the next attempt, in milliseconds. */
#define CHECKPOINT_RETRY_MS 250

/* The thread's niceness: below the service thread, still a share of a busy core. */
#define CHECKPOINT_NICE 10

int checkpointer_create(const char *db_path, struct checkpointer **out, char **cause);
/* Any thread: asks for a checkpoint soon; requests while one runs merge. */
void checkpointer_request(struct checkpointer *cp);
/* Checkpoints done (complete or not) so far; any thread. */
unsigned long checkpointer_runs(struct checkpointer *cp);
/* Stops the thread (a checkpoint under way finishes first) and frees. NULL allowed. */
void checkpointer_destroy(struct checkpointer *cp);

#endif
