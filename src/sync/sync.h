/*
 * chat-sync's delivery loop: for every enabled target, take its lock,
 * read its cursor, build the batch that is due, POST it, and move the
 * cursor only after a 2xx. Used by main.c; owns the database connection
 * and the HTTP handles it is given for the whole run. One thread.
 */
#ifndef CHAT_SYNC_SYNC_H
#define CHAT_SYNC_SYNC_H

#include <signal.h>

#include "config.h"
#include "db.h"

/* How often the daemon looks for new rows and sync requests. */
#define SYNC_POLL_MS 200
/* How often the daemon rewrites METRICS_TEXTFILE. */
#define SYNC_METRICS_MS 15000
/* Retry delays double from CALLBACK_RETRY_DELAY_SECONDS up to this. */
#define SYNC_BACKOFF_MAX_MS (300 * 1000)

#define SYNC_ONCE 0
#define SYNC_DAEMON 1

/*
 * Runs until everything due is delivered (SYNC_ONCE) or until *stop is
 * set (SYNC_DAEMON). Returns 0, 1 if a target is still failing (or busy
 * with an error), -1 with *cause if it could not start.
 */
int sync_run(
    const struct config *cfg, struct db *db, int mode, volatile sig_atomic_t *stop, char **cause);

/*
 * Benchmark aid (chat-sync --encode-only TARGET): builds every batch a
 * feed target has pending after its stored cursor, with the same builder
 * and batch size as a delivery, but sends nothing, records nothing and
 * takes no lock. Prints rows, batches, bytes and rows/s on stdout. 0, or
 * -1 with *cause (unknown or non-feed target, database error).
 */
int sync_encode_only(const struct config *cfg, struct db *db, const char *target,
    volatile sig_atomic_t *stop, char **cause);

#endif
