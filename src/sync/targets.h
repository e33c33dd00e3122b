/*
 * The callback targets of chat-sync and the JSON each one receives
 * (docs/callbacks.md). Builders stream rows from db.c into a jsonw
 * buffer, one batch at a time, so memory is bounded by the batch size,
 * never by the backlog. No HTTP here.
 */
#ifndef CHAT_SYNC_TARGETS_H
#define CHAT_SYNC_TARGETS_H

#include <stdint.h>

#include "config.h"
#include "db.h"
#include "jsonw.h"

/* Most room events in one request (they are small and should be prompt). */
#define TARGETS_EVENT_BATCH_MAX 100

enum targets_kind {
	TARGETS_FEED, /* rows after a cursor, in batches */
	TARGETS_SNAPSHOT, /* the current state, on interval or request */
};

struct targets_def {
	const char *name; /* cursors.target and the health route's key */
	enum targets_kind kind;
	enum db_feed feed; /* TARGETS_FEED: its rows; TARGETS_SNAPSHOT: sync requests */
};

/* The five targets, in delivery priority order. */
extern const struct targets_def targets_table[];
extern const size_t targets_count;

/* The target's URL, batch size and interval (seconds) from cfg. URL NULL or "" means off. */
const char *targets_url(const struct targets_def *def, const struct config *cfg);
int64_t targets_batch_size(const struct targets_def *def, const struct config *cfg);
int64_t targets_interval_s(const struct targets_def *def, const struct config *cfg);

/*
 * Writes a feed target's batch: at most limit rows with after < id <= upto.
 * *count and *last_id get the number of rows and the last row's id. -1
 * with *cause on a database error.
 */
int targets_build_feed(const struct targets_def *def, struct db *db, int64_t after, int64_t upto,
    int64_t limit, struct jsonw *w, int64_t *count, int64_t *last_id, char **cause);

/*
 * Writes a snapshot target's body; trigger says why ("interval" or
 * "request"). Live stats come from chatd when it answers within the
 * control timeout. -1 with *cause on a database error.
 */
int targets_build_snapshot(const struct targets_def *def, struct db *db, const struct config *cfg,
    const char *trigger, int64_t now_ms, struct jsonw *w, char **cause);

#endif
