/*
 * chat-sync's delivery cursors (db_cursor_* in src/common/db.c) under
 * injected SQLite failures (faultvfs.c): the n-th write or fsync fails once
 * (an I/O error) or from then on (a full disk). chat-sync's sequence is
 * replayed: record a batch, fail an attempt, deliver and record the next,
 * deliver the last. After every step, failed or not: the cursor is exactly
 * as before the step or exactly as after it (never half), it never moves
 * past rows whose delivery was not recorded, and the batch in flight reads
 * back with the same delivery id and the same rows once writes work again.
 */
#include "autoconf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <sqlite3.h>

#include "check_main.h"
#include "testdir.h"
#include "db.h"
#include "faultvfs.h"
#include "xmalloc.h"

#define TEST_DIR_TEMPLATE "/tmp/chatd-test-cursorfault.XXXXXX"
#define TARGET "chat_history"
#define ROWS 12
#define SWEEP 40

static char test_dir[] = TEST_DIR_TEMPLATE;
static char *dbpath;
static struct db *db, *reader;

static void
setup(void)
{
	char *cause = NULL;
	int64_t id, seq;
	char text[32];
	int i;

	faultvfs_disarm();
	memcpy(test_dir, TEST_DIR_TEMPLATE, sizeof test_dir);
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	dbpath = xasprintf("%s/chat.db", test_dir);
	if (db_open(dbpath, &db, &cause) != DB_OK || db_open(dbpath, &reader, &cause) != DB_OK)
		ck_abort_msg("db_open: %s", cause);
	if (db_room_create(db, "r", "room", NULL, 0, 1, &cause) != DB_OK)
		ck_abort_msg("db_room_create: %s", cause);
	for (i = 0; i < ROWS; i++) {
		snprintf(text, sizeof text, "m%d", i);
		if (db_message_append(db, "r", DB_MESSAGE_CHAT, "u", "n", 0, text, NULL, i, &id,
			&seq, &cause) != DB_OK)
			ck_abort_msg("append: %s", cause);
	}
}

static void
teardown(void)
{
	faultvfs_disarm();
	db_close(db);
	db_close(reader);
	testdir_remove(test_dir);
	free(dbpath);
}

/* The cursor as another connection (another chat-sync) reads it. */
struct state {
	int64_t last_id, batch_last_id, attempts;
	char delivery_id[64];
};

static struct state
read_state(void)
{
	struct db_cursor c;
	struct state s;
	char *cause = NULL;

	if (db_cursor_get(reader, TARGET, &c, &cause) != DB_OK)
		ck_abort_msg("db_cursor_get: %s", cause);
	memset(&s, 0, sizeof s);
	s.last_id = c.last_id;
	s.batch_last_id = c.batch_last_id;
	s.attempts = c.attempts;
	snprintf(s.delivery_id, sizeof s.delivery_id, "%s", c.delivery_id ? c.delivery_id : "");
	db_cursor_clear(&c);
	return s;
}

static int
state_eq(const struct state *a, const struct state *b)
{
	return a->last_id == b->last_id && a->batch_last_id == b->batch_last_id &&
	    a->attempts == b->attempts && strcmp(a->delivery_id, b->delivery_id) == 0;
}

static int
collect(const struct db_message *m, void *arg)
{
	int64_t *ids = arg;

	ids[++ids[0]] = m->id;
	return 0;
}

/* The ids of the rows (after, upto]: ids[0] is how many. */
static void
feed(int64_t after, int64_t upto, int64_t ids[ROWS + 1])
{
	char *cause = NULL;

	ids[0] = 0;
	if (db_feed_messages(reader, after, upto, ROWS, collect, ids, &cause) != DB_OK)
		ck_abort_msg("db_feed_messages: %s", cause);
}

/* chat-sync's steps, each one cursor write. */
enum step { BATCH1, FAIL1, DONE_NEXT, DONE2, BATCH3, DONE3, STEPS };

static int
run_step(enum step step, char **cause)
{
	switch (step) {
	case BATCH1:
		return db_cursor_batch(db, TARGET, 0, "d1", 4, cause);
	case FAIL1:
		return db_cursor_fail(db, TARGET, "HTTP 503", 1000, cause);
	case DONE_NEXT:
		return db_cursor_done_next(db, TARGET, 0, 4, 2000, "d2", 8, cause);
	case DONE2:
		return db_cursor_done(db, TARGET, 4, 8, 3000, cause);
	case BATCH3:
		return db_cursor_batch(db, TARGET, 8, "d3", ROWS, cause);
	case DONE3:
		return db_cursor_done(db, TARGET, 8, ROWS, 4000, cause);
	case STEPS:
		break;
	}
	return DB_ERROR;
}

/* Where each step leaves the cursor. */
static const struct state after_step[STEPS] = {
	[BATCH1] = { 0, 4, 0, "d1" },
	[FAIL1] = { 0, 4, 1, "d1" },
	[DONE_NEXT] = { 4, 8, 0, "d2" },
	[DONE2] = { 8, 0, 0, "" },
	[BATCH3] = { 8, ROWS, 0, "d3" },
	[DONE3] = { ROWS, 0, 0, "" },
};

static void
sweep(enum fault_kind kind, long n, int persist, int rc)
{
	struct state before, now;
	int64_t sent[ROWS + 1], again[ROWS + 1];
	char *cause = NULL;
	int step, r, failures = 0;

	faultvfs_arm(kind, n, persist, rc);
	for (step = 0; step < STEPS; step++) {
		before = read_state();
		r = run_step((enum step)step, &cause);
		now = read_state();
		if (r != DB_OK) {
			failures++;
			ck_assert_int_eq(r, DB_ERROR);
			ck_assert_ptr_nonnull(cause);
			free(cause);
			cause = NULL;
			/* All or nothing: as before the step. */
			ck_assert_msg(state_eq(&before, &now), "step %d half done: last_id %lld",
			    step, (long long)now.last_id);
			/* The disk has room again; chat-sync's next round does the step again. */
			faultvfs_disarm();
			if (before.delivery_id[0] != '\0') {
				/* The batch in flight resends the same rows under the same id. */
				feed(before.last_id, before.batch_last_id, sent);
				feed(now.last_id, now.batch_last_id, again);
				ck_assert_int_eq(sent[0], again[0]);
				ck_assert_mem_eq(
				    sent, again, sizeof(int64_t) * (size_t)(sent[0] + 1));
			}
			r = run_step((enum step)step, &cause);
			if (r != DB_OK)
				ck_abort_msg("step %d after recovery: %s", step, cause);
			now = read_state();
		}
		ck_assert_msg(state_eq(&now, &after_step[step]),
		    "step %d: cursor at %lld, batch %s to %lld, %lld attempts", step,
		    (long long)now.last_id, now.delivery_id, (long long)now.batch_last_id,
		    (long long)now.attempts);
	}
	faultvfs_disarm();
	/* A failure was injected while the sweep is within the sequence's calls. */
	if (faultvfs_failures(kind) > 0)
		ck_assert_int_gt(failures, 0);
}

START_TEST(test_write_fails_once)
{
	sweep(FAULT_WRITE, 1 + _i, 0, SQLITE_IOERR_WRITE);
}
END_TEST

START_TEST(test_disk_full)
{
	sweep(FAULT_WRITE, 1 + _i, 1, SQLITE_FULL);
}
END_TEST

START_TEST(test_sync_fails)
{
	sweep(FAULT_SYNC, 1 + _i / 2, _i % 2, SQLITE_IOERR_FSYNC);
}
END_TEST

/* The sweeps reach past the sequence's last write. */
START_TEST(test_sweep_covers)
{
	faultvfs_arm(FAULT_WRITE, 0, 0, SQLITE_OK);
	sweep(FAULT_WRITE, 0, 0, SQLITE_OK);
	ck_assert_int_gt(faultvfs_calls(FAULT_WRITE), 0);
	ck_assert_int_lt(faultvfs_calls(FAULT_WRITE), SWEEP);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s;
	TCase *tc;

	faultvfs_install(); /* before anything initialises SQLite */
	s = suite_create("cursorfault");
	tc = tcase_create("cursor");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sweep_covers);
	tcase_add_loop_test(tc, test_write_fails_once, 0, SWEEP);
	tcase_add_loop_test(tc, test_disk_full, 0, SWEEP);
	tcase_add_loop_test(tc, test_sync_fails, 0, 8);
	suite_add_tcase(s, tc);
	return s;
}
