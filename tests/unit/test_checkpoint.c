/*
 * Unit tests for chatd's WAL checkpoints taken out of the writer's commits:
 * db_wal_hook() (no automatic checkpoint, the hook sees the WAL grow),
 * db_checkpoint() (a passive checkpoint from another connection), and the
 * checkpointer thread (src/chatd/checkpoint.c) that chatd's writer asks
 * when the WAL passes CHECKPOINT_PAGES. Real SQLite files in a private
 * temporary directory.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <sqlite3.h>

#include "check_main.h"
#include "testdir.h"
#include "checkpoint.h"
#include "db.h"
#include "xmalloc.h"

#define TEST_DIR_TEMPLATE "/tmp/chatd-test-ckpt.XXXXXX"
static char test_dir[] = TEST_DIR_TEMPLATE;
static char *dbpath;
static struct db *db;

/* What the hook saw; the hook runs on the committing (this) thread. */
static int hook_calls, hook_last, hook_max;
static int hook_round_max; /* the largest WAL since the test last reset it */
static int hook_restarts; /* times the WAL started over */
static struct checkpointer *hook_cp; /* when set, the hook asks it as chatd's writer does */

static void
hook(void *arg, int wal_pages)
{
	ck_assert_ptr_eq(arg, &hook_calls);
	hook_calls++;
	if (wal_pages < hook_last)
		hook_restarts++;
	hook_last = wal_pages;
	if (wal_pages > hook_max)
		hook_max = wal_pages;
	if (wal_pages > hook_round_max)
		hook_round_max = wal_pages;
	/* As chatd's writer does (writer_wal_grown). */
	if (hook_cp != NULL && checkpointer_after_commit(hook_cp, wal_pages)) {
		char *cause = NULL;
		int wal = 0, done = 0;

		if (db_checkpoint(db, &wal, &done, &cause) != DB_OK)
			ck_abort_msg("db_checkpoint: %s", cause);
		checkpointer_writer_result(hook_cp, wal, done);
	}
}

static void
setup(void)
{
	char *cause = NULL;

	memcpy(test_dir, TEST_DIR_TEMPLATE, sizeof test_dir);
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	dbpath = xasprintf("%s/chat.db", test_dir);
	if (db_open(dbpath, &db, &cause) != DB_OK)
		ck_abort_msg("db_open: %s", cause);
	if (db_room_create(db, "r", "room", NULL, 0, 1, &cause) != DB_OK)
		ck_abort_msg("db_room_create: %s", cause);
	hook_calls = hook_last = hook_max = hook_restarts = 0;
	hook_cp = NULL;
}

static void
teardown(void)
{
	db_close(db);
	db = NULL;
	testdir_remove(test_dir);
	free(dbpath);
}

/* n messages of about 3 KiB, 20 per transaction, as the writer batches them. */
static void
append(int n)
{
	char text[3000], *cause = NULL;
	int64_t id, seq;
	int i;

	memset(text, 'x', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	for (i = 0; i < n; i++) {
		if (i % 20 == 0 && db_tx_begin(db, &cause) != DB_OK)
			ck_abort_msg("begin: %s", cause);
		if (db_message_append(db, "r", DB_MESSAGE_CHAT, "u", "n", 0, text, NULL, i, &id,
			&seq, &cause) != DB_OK)
			ck_abort_msg("append: %s", cause);
		if ((i % 20 == 19 || i == n - 1) && db_tx_commit(db, &cause) != DB_OK)
			ck_abort_msg("commit: %s", cause);
	}
}

START_TEST(test_hook_replaces_autocheckpoint)
{
	struct db *other = NULL;
	char *cause = NULL;
	int wal = -1, done = -1;

	db_wal_hook(db, hook, &hook_calls);
	append(2000); /* ~6 MB: SQLite's own checkpoint would run at 1,000 pages */
	ck_assert_int_eq(hook_calls, 100);
	/* Nothing checkpointed inside the commits: the WAL only grew. */
	ck_assert_int_eq(hook_last, hook_max);
	ck_assert_int_gt(hook_last, 2 * CHECKPOINT_PAGES);

	/* A passive checkpoint from another connection copies all of it. */
	if (db_open(dbpath, &other, &cause) != DB_OK)
		ck_abort_msg("db_open: %s", cause);
	ck_assert_int_eq(db_checkpoint(other, &wal, &done, &cause), DB_OK);
	ck_assert_int_eq(wal, hook_last);
	ck_assert_int_eq(done, wal);
	db_close(other);

	/* The next commit starts the WAL over. */
	append(1);
	ck_assert_int_lt(hook_last, 10);
}
END_TEST

START_TEST(test_checkpoint_null_outputs)
{
	char *cause = NULL;

	append(3);
	ck_assert_int_eq(db_checkpoint(db, NULL, NULL, &cause), DB_OK);
}
END_TEST

START_TEST(test_checkpointer_keeps_wal_bounded)
{
	struct checkpointer *cp = NULL;
	char *cause = NULL;
	int round;

	if (checkpointer_create(dbpath, &cp, &cause) != 0)
		ck_abort_msg("checkpointer_create: %s", cause);
	hook_cp = cp;
	db_wal_hook(db, hook, &hook_calls);
	ck_assert_uint_eq(checkpointer_runs(cp), 0);

	/* Write past the threshold, then keep committing a little, as a
	 * live room does: within seconds the thread's checkpoints have copied
	 * everything and the WAL starts over instead of growing on. */
	for (round = 0; round < 3; round++) {
		struct timespec pause = { 0, 10 * 1000 * 1000 };
		unsigned long before = checkpointer_runs(cp);
		int restarts = hook_restarts, waited;

		hook_round_max = 0;
		append(800); /* ~1,100 pages */
		/* Past the threshold on the way. On a slow machine (sanitizers)
		 * the thread's copy and the writer's tail may already have
		 * started the WAL over before the 800th commit, and the WAL
		 * may have grown again since, so what counts is that it
		 * started over, not how long it is now. */
		ck_assert_int_ge(hook_round_max, CHECKPOINT_PAGES);
		for (waited = 0; waited < 500 && hook_restarts == restarts; waited++) {
			nanosleep(&pause, NULL);
			append(1);
		}
		ck_assert_int_gt(hook_restarts, restarts);
		ck_assert_uint_gt(checkpointer_runs(cp), before);
	}
	ck_assert_int_lt(hook_max, 2 * CHECKPOINT_PAGES);
	hook_cp = NULL;
	checkpointer_destroy(cp);
}
END_TEST

/*
 * Commits that never stop, as in a busy room (a small batch each
 * millisecond): the WAL must start over again and again. Whether the
 * thread catches up alone (a fast disk, a free core) or the writer
 * finishes the tail (a busy core: chatd's benchmark grew the WAL by
 * 15 MB/s without it) depends on the machine; checkpoint_decide's test
 * covers the choice.
 */
START_TEST(test_checkpointer_continuous_commits)
{
	struct timespec ms = { 0, 1000 * 1000 }, t0, t;
	struct checkpointer *cp = NULL;
	char *cause = NULL;

	if (checkpointer_create(dbpath, &cp, &cause) != 0)
		ck_abort_msg("checkpointer_create: %s", cause);
	hook_cp = cp;
	db_wal_hook(db, hook, &hook_calls);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		append(2);
		nanosleep(&ms, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (hook_restarts < 3 && t.tv_sec - t0.tv_sec < 20);
	ck_assert_int_ge(hook_restarts, 3);
	ck_assert_int_lt(hook_max, CHECKPOINT_WRITER_PAGES + 100);
	hook_cp = NULL;
	checkpointer_destroy(cp);
}
END_TEST

static long long
wal_file_bytes(void)
{
	char *wal = xasprintf("%s-wal", dbpath);
	struct stat st;
	long long n;

	n = stat(wal, &st) == 0 ? (long long)st.st_size : 0;
	free(wal);
	return n;
}

/*
 * A reader that keeps a transaction open (another user could, when the
 * file was readable by all) holds every checkpoint back: the WAL cannot
 * start over and grows. chatd reports it (wal_blocked in health, from
 * checkpointer_wal_state); once the reader ends, the WAL is copied, starts
 * over, and the file is cut back to the journal size limit instead of
 * staying at its peak.
 */
START_TEST(test_reader_blocks_then_wal_shrinks)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	struct checkpointer *cp = NULL;
	sqlite3 *reader;
	char *cause = NULL;
	int wal = 0, blocked = 0, waited;
	long long peak;

	if (checkpointer_create(dbpath, &cp, &cause) != 0)
		ck_abort_msg("checkpointer_create: %s", cause);
	hook_cp = cp;
	db_wal_hook(db, hook, &hook_calls);
	ck_assert_int_eq(sqlite3_open_v2(dbpath, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(
	    sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM messages;", NULL, NULL, NULL),
	    SQLITE_OK);

	/* Well past the backstop: ~6,000 pages, 24 MB. */
	append(4500);
	for (waited = 0; waited < 300; waited++) {
		checkpointer_wal_state(cp, &wal, &blocked);
		if (blocked)
			break;
		nanosleep(&pause, NULL);
		append(1);
	}
	ck_assert_int_eq(blocked, 1);
	ck_assert_int_ge(wal, CHECKPOINT_WARN_PAGES);
	peak = wal_file_bytes();
	ck_assert_int_gt(peak, 16 * 1024 * 1024);

	/* The reader ends: the next commits copy everything and start over. */
	ck_assert_int_eq(sqlite3_exec(reader, "COMMIT;", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_close(reader), SQLITE_OK);
	for (waited = 0; waited < 500 && hook_last >= CHECKPOINT_PAGES / 10; waited++) {
		nanosleep(&pause, NULL);
		append(1);
	}
	ck_assert_int_lt(hook_last, CHECKPOINT_PAGES / 10);
	checkpointer_wal_state(cp, &wal, &blocked);
	ck_assert_int_eq(blocked, 0);
	/* Cut back to the journal size limit (16 MiB), not left at its peak. */
	ck_assert_int_le(wal_file_bytes(), 16 * 1024 * 1024);
	hook_cp = NULL;
	checkpointer_destroy(cp);
}
END_TEST

START_TEST(test_decide)
{
	const int P = CHECKPOINT_PAGES, T = CHECKPOINT_TAIL_PAGES;

	/* Nothing copied yet: the thread's job; a run under way: wait for it. */
	ck_assert_int_eq(checkpoint_decide(0, 0, P), CHECKPOINT_ASK_THREAD);
	ck_assert_int_eq(checkpoint_decide(1, 0, P), CHECKPOINT_WAIT);
	ck_assert_int_eq(checkpoint_decide(1, P, P + 10), CHECKPOINT_WAIT);
	/* An idle thread left a short tail: the writer finishes it. */
	ck_assert_int_eq(checkpoint_decide(0, P, P + 10), CHECKPOINT_WRITER_FINISHES);
	ck_assert_int_eq(checkpoint_decide(0, P, P + T), CHECKPOINT_WRITER_FINISHES);
	ck_assert_int_eq(checkpoint_decide(0, P, P), CHECKPOINT_WRITER_FINISHES);
	/* A long tail: another run of the thread first. */
	ck_assert_int_eq(checkpoint_decide(0, P, P + T + 1), CHECKPOINT_ASK_THREAD);
	/* Copied more than the WAL holds: it started over since; not a tail. */
	ck_assert_int_eq(checkpoint_decide(0, P + 500, P + 10), CHECKPOINT_ASK_THREAD);
	/* The backstop, whatever the thread does. */
	ck_assert_int_eq(
	    checkpoint_decide(1, 0, CHECKPOINT_WRITER_PAGES), CHECKPOINT_WRITER_FINISHES);
	ck_assert_int_eq(
	    checkpoint_decide(0, 0, CHECKPOINT_WRITER_PAGES - 1), CHECKPOINT_ASK_THREAD);
	ck_assert_int_eq(checkpoint_decide(1, 0, CHECKPOINT_WRITER_PAGES - 1), CHECKPOINT_WAIT);
}
END_TEST

START_TEST(test_checkpointer_bad_path)
{
	struct checkpointer *cp = NULL;
	char *cause = NULL;

	ck_assert_int_eq(checkpointer_create("/nonexistent-dir/x/chat.db", &cp, &cause), -1);
	ck_assert_ptr_null(cp);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	checkpointer_destroy(NULL);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("checkpoint");
	TCase *tc = tcase_create("checkpoint");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_hook_replaces_autocheckpoint);
	tcase_add_test(tc, test_checkpoint_null_outputs);
	tcase_add_test(tc, test_checkpointer_keeps_wal_bounded);
	tcase_add_test(tc, test_checkpointer_continuous_commits);
	tcase_add_test(tc, test_reader_blocks_then_wal_shrinks);
	tcase_add_test(tc, test_decide);
	tcase_add_test(tc, test_checkpointer_bad_path);
	suite_add_tcase(s, tc);
	return s;
}
