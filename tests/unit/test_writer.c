/*
 * chatd's database writer (src/chatd/writer.c) under injected SQLite
 * failures (faultvfs.c): the n-th write failing once, every write from the
 * n-th on failing as on a full disk until it is cleared, the n-th fsync
 * failing, and the n-th allocation failing. After each run: the writer did
 * not crash, every message it acknowledged is in the database with its id
 * and seq, every message it reported failed is not (failed = -1: not
 * known), seqs have no gap, every
 * session has its open and its close (retried until they commit), and
 * health said so while writes failed.
 */
#include "autoconf.h"

#include <sys/wait.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <sqlite3.h>
#include <valgrind/valgrind.h>

#include "check_main.h"
#include "testdir.h"
#include "clock.h"
#include "db.h"
#include "faultvfs.h"
#include "checkpoint.h"
#include "writer.h"
#include "xmalloc.h"

#define TEST_DIR_TEMPLATE "/tmp/chatd-test-writer.XXXXXX"
#define MAX_MSGS 4096
#define STEPS 8 /* sessions of the small workload */
/* Sweeps: the failing call is 1 + step * i for i in [0, SWEEP). */
#define SWEEP 80
#define WRITE_STEP 3
#define ALLOC_STEP 23
/* Under valgrind (about 50 times slower) a sweep visits every 4th point. */
#define SWEEP_THIN(i) \
	do { \
		if (RUNNING_ON_VALGRIND && (i) % 4 != 0) \
			return; \
	} while (0)

static char test_dir[] = TEST_DIR_TEMPLATE;
static char *dbpath;
static struct writer *w;

/* Each message's outcome as writer_drain() gave it (origin: its index). */
static struct result {
	int done, failed;
	int64_t id, seq;
} res[MAX_MSGS];
static int nmsgs, ndone;
static FILE *acks; /* the allocation test's child writes acknowledgements here */

static void
setup(void)
{
	struct db *db = NULL;
	char *cause = NULL;

	faultvfs_disarm();
	memcpy(test_dir, TEST_DIR_TEMPLATE, sizeof test_dir);
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	dbpath = xasprintf("%s/chat.db", test_dir);
	if (db_open(dbpath, &db, &cause) != DB_OK)
		ck_abort_msg("db_open: %s", cause);
	if (db_room_create(db, "r", "room", NULL, 0, 1, &cause) != DB_OK)
		ck_abort_msg("db_room_create: %s", cause);
	db_close(db);
	memset(res, 0, sizeof res);
	nmsgs = ndone = 0;
	acks = NULL;
	if (writer_create(dbpath, "node-t", NULL, &w, &cause) != 0)
		ck_abort_msg("writer_create: %s", cause);
}

static void
teardown(void)
{
	faultvfs_disarm();
	writer_destroy(w);
	w = NULL;
	testdir_remove(test_dir);
	free(dbpath);
}

static void
done_cb(struct writer_op *op, void *arg)
{
	struct result *r = &res[op->origin];

	(void)arg;
	r->done = 1;
	r->failed = op->failed;
	r->id = op->id;
	r->seq = op->seq;
	ndone++;
	if (acks != NULL && !op->failed) {
		fprintf(
		    acks, "%d %lld %lld\n", (int)op->origin, (long long)op->id, (long long)op->seq);
		fflush(acks);
	}
}

/* Waits until every message submitted so far came back. */
static void
drain_all(void)
{
	const struct timespec ms = { 0, 1000000L };
	int64_t deadline = clock_mono_ms() + 60000;

	while (ndone < nmsgs) {
		if (writer_drain(w, done_cb, NULL) == 0)
			nanosleep(&ms, NULL);
		ck_assert_msg(clock_mono_ms() < deadline, "messages did not come back");
	}
}

static void
submit_msg(size_t size)
{
	struct writer_op *op = writer_op_create(WRITER_MESSAGE);
	size_t len;

	ck_assert_int_lt(nmsgs, MAX_MSGS);
	op->room_id = xstrdup("r");
	op->kind = DB_MESSAGE_CHAT;
	op->user_id = xstrdup("u");
	op->nickname = xstrdup("n");
	op->text = xmalloc(size + 16);
	len = (size_t)snprintf(op->text, 16, "m%d ", nmsgs);
	memset(op->text + len, 'x', size);
	op->text[len + size] = '\0';
	op->ts_ms = clock_wall_ms();
	op->origin = (uint64_t)nmsgs++;
	ck_assert_int_eq(writer_submit(w, op), 0);
}

static void
submit_session(enum writer_op_type type, uint64_t key)
{
	struct writer_op *op = writer_op_create(type);

	op->room_id = xstrdup("r");
	op->key = key;
	op->ts_ms = clock_wall_ms();
	if (type == WRITER_SESSION_OPEN) {
		op->user_id = xasprintf("user%llu", (unsigned long long)key);
		op->nickname = xstrdup("nick");
		op->address = xstrdup("127.0.0.1");
	} else
		op->reason = xstrdup("left");
	ck_assert_int_eq(writer_submit(w, op), 0);
}

/* STEPS sessions overlapping two at a time, a message after each change. */
static void
workload(void)
{
	uint64_t k;

	for (k = 1; k <= STEPS; k++) {
		submit_session(WRITER_SESSION_OPEN, k);
		if (k > 2)
			submit_session(WRITER_SESSION_CLOSE, k - 2);
		submit_msg(20);
		drain_all();
	}
	submit_session(WRITER_SESSION_CLOSE, STEPS - 1);
	submit_session(WRITER_SESSION_CLOSE, STEPS);
	submit_msg(20);
	drain_all();
}

static int64_t
query_int(sqlite3 *sq, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	ck_assert_int_eq(sqlite3_prepare_v2(sq, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/*
 * The database after the run: intact, seqs without gaps, every
 * acknowledged message there with its id and seq, every failed one absent,
 * and (sessions > 0) exactly that many sessions, each closed, each with
 * its user_joined and user_left events.
 */
static void
check_db(int sessions)
{
	sqlite3_stmt *st;
	sqlite3 *sq;
	char want[32];
	int i, found;

	ck_assert_int_eq(sqlite3_open_v2(dbpath, &sq, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(
	    sqlite3_prepare_v2(sq, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	/* Gapless: as many rows as the counter, and seqs 1..last_seq distinct. */
	ck_assert_int_eq(
	    query_int(sq, "SELECT count(DISTINCT seq) FROM messages WHERE room_id='r'"),
	    query_int(sq, "SELECT last_seq FROM rooms WHERE id='r'"));
	ck_assert_int_eq(query_int(sq, "SELECT count(*) FROM messages WHERE room_id='r'"),
	    query_int(sq, "SELECT last_seq FROM rooms WHERE id='r'"));
	ck_assert_int_le(
	    query_int(sq, "SELECT coalesce(max(seq), 0) FROM messages WHERE room_id='r'"),
	    query_int(sq, "SELECT last_seq FROM rooms WHERE id='r'"));
	ck_assert_int_eq(
	    query_int(sq, "SELECT count(DISTINCT seq) FROM sessions WHERE room_id='r'"),
	    query_int(sq, "SELECT last_session_seq FROM rooms WHERE id='r'"));
	ck_assert_int_eq(query_int(sq, "SELECT count(*) FROM sessions WHERE room_id='r'"),
	    query_int(sq, "SELECT last_session_seq FROM rooms WHERE id='r'"));

	ck_assert_int_eq(
	    sqlite3_prepare_v2(
		sq, "SELECT id, seq FROM messages WHERE content LIKE ?1 || '%'", -1, &st, NULL),
	    SQLITE_OK);
	for (i = 0; i < nmsgs; i++) {
		ck_assert_msg(res[i].done, "message %d never came back", i);
		snprintf(want, sizeof want, "m%d ", i);
		sqlite3_bind_text(st, 1, want, -1, SQLITE_TRANSIENT);
		found = sqlite3_step(st) == SQLITE_ROW;
		if (res[i].failed == -1)
			; /* outcome unknown */
		else if (!res[i].failed) {
			ck_assert_msg(found, "acknowledged message %d is missing", i);
			ck_assert_int_eq(sqlite3_column_int64(st, 0), res[i].id);
			ck_assert_int_eq(sqlite3_column_int64(st, 1), res[i].seq);
		} else
			ck_assert_msg(!found, "message %d reported failed is stored", i);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);

	if (sessions > 0) {
		ck_assert_int_eq(query_int(sq, "SELECT count(*) FROM sessions"), sessions);
		ck_assert_int_eq(
		    query_int(sq, "SELECT count(DISTINCT user_id) FROM sessions"), sessions);
		ck_assert_int_eq(
		    query_int(sq, "SELECT count(*) FROM sessions WHERE left_at IS NULL"), 0);
		ck_assert_int_eq(
		    query_int(sq, "SELECT count(*) FROM sessions WHERE node_id = 'node-t'"),
		    sessions);
		ck_assert_int_eq(
		    query_int(sq, "SELECT count(*) FROM sessions WHERE leave_reason = 'left'"),
		    sessions);
		ck_assert_int_eq(
		    query_int(sq, "SELECT count(*) FROM outbox WHERE kind = 'user_joined'"),
		    sessions);
		ck_assert_int_eq(
		    query_int(sq, "SELECT count(*) FROM outbox WHERE kind = 'user_left'"),
		    sessions);
		ck_assert_int_eq(query_int(sq,
				     "SELECT count(*) FROM sessions s JOIN outbox o"
				     " ON o.session_id = s.id AND o.kind = 'user_left'"
				     " WHERE o.created_at = s.left_at"),
		    sessions);
	}
	sqlite3_close(sq);
}

/* Waits until no session record waits for a retry. */
static void
wait_retries_done(void)
{
	const struct timespec ms = { 0, 2000000L };
	int64_t deadline = clock_mono_ms() + 30000;
	struct writer_health h;

	for (;;) {
		writer_health(w, &h);
		if (h.retry_sessions == 0)
			break;
		ck_assert_msg(
		    clock_mono_ms() < deadline, "%u session records still wait", h.retry_sessions);
		nanosleep(&ms, NULL);
	}
}

/* The run with nothing injected: the workload and what it costs in writes. */
START_TEST(test_clean_run)
{
	struct writer_health h;

	faultvfs_arm(FAULT_WRITE, 0, 0, SQLITE_OK);
	faultvfs_arm(FAULT_ALLOC, 0, 0, SQLITE_OK);
	workload();
	/* About 180 writes and 1,000 allocations here: the sweeps below cover them. */
	ck_assert_int_gt(faultvfs_calls(FAULT_WRITE), 0);
	ck_assert_int_lt(faultvfs_calls(FAULT_ALLOC), ALLOC_STEP * SWEEP);
	writer_health(w, &h);
	ck_assert_int_eq(h.failing_since, 0);
	ck_assert_str_eq(h.last_error, "");
	ck_assert_int_eq(h.retry_sessions, 0);
	for (int i = 0; i < nmsgs; i++)
		ck_assert(!res[i].failed);
	writer_destroy(w);
	w = NULL;
	check_db(STEPS);
}
END_TEST

/* The n-th write fails once (an I/O error): whatever it hit, nothing is lost. */
START_TEST(test_write_fails_once)
{
	SWEEP_THIN(_i);
	faultvfs_arm(FAULT_WRITE, 1 + WRITE_STEP * _i, 0, SQLITE_IOERR_WRITE);
	workload();
	faultvfs_disarm();
	submit_msg(20); /* a good commit: retries go next */
	drain_all();
	ck_assert(!res[nmsgs - 1].failed);
	wait_retries_done();
	writer_destroy(w);
	w = NULL;
	check_db(STEPS);
}
END_TEST

/*
 * Every write from the n-th on fails, as on a full disk: messages are
 * refused, health says why, sessions wait; once there is room again the
 * next commit clears health and the sessions are written.
 */
START_TEST(test_disk_full_from_nth_write)
{
	struct writer_health h;
	int64_t before = clock_wall_ms();

	SWEEP_THIN(_i);
	faultvfs_arm(FAULT_WRITE, 2 + WRITE_STEP * _i, 1, SQLITE_FULL);
	workload();
	writer_health(w, &h);
	if (faultvfs_failures(FAULT_WRITE) > 0) {
		ck_assert_int_ge(h.failing_since, before);
		ck_assert_msg(strstr(h.last_error, "full") != NULL, "last_error: %s", h.last_error);
		ck_assert(res[nmsgs - 1].failed); /* the disk is still full */
	}
	faultvfs_disarm();
	submit_msg(20);
	drain_all();
	ck_assert(!res[nmsgs - 1].failed);
	writer_health(w, &h);
	ck_assert_int_eq(h.failing_since, 0);
	ck_assert_str_eq(h.last_error, "");
	wait_retries_done();
	ck_assert_int_eq(writer_backlog(w), 0);
	writer_destroy(w);
	w = NULL;
	check_db(STEPS);
}
END_TEST

/*
 * With synchronous=NORMAL, fsync runs in checkpoints (past 1,000 WAL pages,
 * in the checkpointer thread and the writer's own tail copy; when the last
 * connection closes) and on the first commit into a WAL that starts over
 * (its header). A failed one loses nothing acknowledged.
 */
START_TEST(test_sync_fails)
{
	int i, round;

	if (RUNNING_ON_VALGRIND && _i >= 2)
		return;
	faultvfs_arm(FAULT_SYNC, 1 + _i / 2, _i % 2, SQLITE_IOERR_FSYNC);
	for (round = 0; round < 3; round++) {
		submit_session(WRITER_SESSION_OPEN, (uint64_t)round + 1);
		for (i = 0; i < 500; i++)
			submit_msg(3000);
		submit_session(WRITER_SESSION_CLOSE, (uint64_t)round + 1);
		submit_msg(20);
		drain_all();
	}
	faultvfs_disarm();
	submit_msg(20);
	drain_all();
	ck_assert(!res[nmsgs - 1].failed);
	wait_retries_done();
	writer_destroy(w);
	w = NULL;
	check_db(3);
}
END_TEST

/*
 * The bound: while writes fail, at most WRITER_RETRY_OPENS_MAX opens wait;
 * newer ones are dropped with their closes, and counted. The close of a
 * session whose open was written always waits.
 */
START_TEST(test_retry_bound)
{
	struct writer_health h;
	uint64_t k, early = 3, n = WRITER_RETRY_OPENS_MAX + 5;
	int64_t deadline;

	for (k = 1; k <= early; k++)
		submit_session(WRITER_SESSION_OPEN, k);
	submit_msg(20);
	drain_all();
	faultvfs_arm(FAULT_WRITE, 1, 1, SQLITE_FULL);
	for (k = 1; k <= early; k++)
		submit_session(WRITER_SESSION_CLOSE, k);
	for (k = early + 1; k <= early + n; k++) {
		submit_session(WRITER_SESSION_OPEN, k);
		submit_session(WRITER_SESSION_CLOSE, k);
	}
	submit_msg(20);
	drain_all();
	ck_assert(res[nmsgs - 1].failed);
	writer_health(w, &h);
	ck_assert_int_eq(h.dropped_sessions, 5);
	ck_assert_int_eq(h.retry_sessions, early + 2 * WRITER_RETRY_OPENS_MAX);
	ck_assert_int_ge(writer_backlog(w), h.retry_sessions);
	ck_assert_int_ne(h.failing_since, 0);

	faultvfs_disarm();
	submit_msg(20);
	deadline = clock_mono_ms() + 60000;
	drain_all();
	ck_assert(!res[nmsgs - 1].failed);
	wait_retries_done();
	ck_assert_int_lt(clock_mono_ms(), deadline);
	writer_destroy(w);
	w = NULL;
	check_db(early + WRITER_RETRY_OPENS_MAX);
}
END_TEST

/* Records left waiting at shutdown get one last try in writer_destroy(). */
/*
 * A reader that keeps one transaction open holds the WAL back from every
 * checkpoint. Past the bound the writer stores no more messages (they
 * come back WRITER_MSG_LATER), session records still commit, and once the
 * reader lets go messages are stored again. The bound is cut to 2,000
 * pages here to keep the test short.
 */
START_TEST(test_wal_bound)
{
	const struct timespec pause = { 0, 5000000L };
	int64_t deadline = clock_mono_ms() + 60000;
	sqlite3 *reader;
	int refused = -1, wal_pages = 0, blocked = 0;

	checkpointer_set_bound(writer_checkpointer(w), 2000);
	ck_assert_int_eq(sqlite3_open(dbpath, &reader), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(reader, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_ge(query_int(reader, "SELECT count(*) FROM messages"), 0); /* the snapshot */

	/* a commit a message, several pages each: refused once the WAL holds 2,000 */
	while (refused < 0 && nmsgs < 4000) {
		submit_msg(3000);
		drain_all();
		if (res[nmsgs - 1].failed)
			refused = nmsgs - 1;
		ck_assert_int_lt(clock_mono_ms(), deadline);
	}
	ck_assert_msg(refused > 0, "never refused");
	ck_assert_int_eq(res[refused].failed, WRITER_MSG_LATER);
	writer_wal_state(w, &wal_pages, &blocked);
	ck_assert_int_ge(wal_pages, 2000);
	ck_assert_int_eq(blocked, 1);
	ck_assert_int_eq(writer_wal_at_bound(w), 1);
	/* still at the bound: the next message waits too, a session goes in */
	submit_session(WRITER_SESSION_OPEN, 1);
	submit_msg(20);
	drain_all();
	ck_assert_int_eq(res[nmsgs - 1].failed, WRITER_MSG_LATER);
	submit_session(WRITER_SESSION_CLOSE, 1);

	/* The reader lets go: the next message's batch checkpoints and goes in. */
	ck_assert_int_eq(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_close(reader), SQLITE_OK);
	for (;;) {
		submit_msg(20);
		drain_all();
		if (!res[nmsgs - 1].failed)
			break;
		ck_assert_msg(
		    clock_mono_ms() < deadline, "messages still refused after the reader left");
		nanosleep(&pause, NULL);
	}
	ck_assert_int_eq(writer_wal_at_bound(w), 0);
	wait_retries_done();
	writer_destroy(w);
	w = NULL;
	check_db(1);
}
END_TEST

static void
submit_ban(enum writer_op_type type, const char *user)
{
	struct writer_op *op = writer_op_create(type);

	op->room_id = xstrdup("r");
	op->user_id = xstrdup(user);
	op->reason = type == WRITER_BAN ? xstrdup("spam") : NULL;
	op->ts_ms = clock_wall_ms();
	ck_assert_int_eq(writer_submit(w, op), 0);
}

/* Bans, unbans and peaks that fail with a passing error are written later, in order. */
START_TEST(test_bans_retried)
{
	struct writer_op *op;
	sqlite3 *sq;

	faultvfs_arm(FAULT_WRITE, 1, 1, SQLITE_FULL);
	submit_ban(WRITER_BAN, "troll");
	submit_ban(WRITER_BAN, "pest");
	submit_ban(WRITER_UNBAN, "pest");
	op = writer_op_create(WRITER_PEAK);
	op->room_id = xstrdup("r");
	op->peak = 7;
	ck_assert_int_eq(writer_submit(w, op), 0);
	submit_msg(20);
	drain_all();
	ck_assert_int_eq(res[nmsgs - 1].failed, WRITER_MSG_LATER);
	ck_assert_uint_ge(writer_backlog(w), 4);

	faultvfs_disarm();
	submit_msg(20);
	drain_all();
	ck_assert(!res[nmsgs - 1].failed);
	wait_retries_done();
	writer_destroy(w);
	w = NULL;
	ck_assert_int_eq(sqlite3_open_v2(dbpath, &sq, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(query_int(sq,
			     "SELECT count(*) FROM bans WHERE user_id = 'troll' AND "
			     "lifted_at IS NULL"),
	    1);
	/* the unban after its ban: pest's ban is lifted */
	ck_assert_int_eq(query_int(sq,
			     "SELECT count(*) FROM bans WHERE user_id = 'pest' AND "
			     "lifted_at IS NULL"),
	    0);
	ck_assert_int_eq(query_int(sq, "SELECT peak_users FROM rooms WHERE id = 'r'"), 7);
	sqlite3_close(sq);
	check_db(0);
}
END_TEST

START_TEST(test_destroy_tries_last)
{
	faultvfs_arm(FAULT_WRITE, 1, 1, SQLITE_FULL);
	workload();
	faultvfs_disarm();
	/* No commit in between: the back-off may still hold them. */
	writer_destroy(w);
	w = NULL;
	check_db(STEPS);
}
END_TEST

/*
 * The n-th allocation inside SQLite fails. chatd's database layer treats
 * SQLITE_NOMEM from a statement as fatal and aborts (db_oom: a process
 * without memory cannot tell its clients anything reliable); other paths
 * report an error. Either way the database a restart finds must hold
 * every message acknowledged before, with gapless seqs. Runs each case in
 * a child process, which may abort.
 */
START_TEST(test_alloc_fails)
{
	char *ackpath = xasprintf("%s/acks", test_dir), line[128];
	int status, i, idx, aborted;
	long long id, seq;
	pid_t pid;
	FILE *f;

	if (RUNNING_ON_VALGRIND) {
		/* A child that aborts by design would only report its leaks. */
		free(ackpath);
		return;
	}
	writer_destroy(w); /* the child makes its own */
	w = NULL;
	fflush(NULL);
	if ((pid = fork()) == 0) {
		char *cause = NULL;

		if ((acks = fopen(ackpath, "w")) == NULL)
			_exit(2);
		if (writer_create(dbpath, "node-t", NULL, &w, &cause) != 0)
			_exit(3);
		faultvfs_arm(FAULT_ALLOC, 1 + ALLOC_STEP * _i, 0, SQLITE_NOMEM);
		workload();
		faultvfs_disarm();
		submit_msg(20);
		drain_all();
		writer_destroy(w);
		fclose(acks);
		_exit(0);
	}
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
	ck_assert_msg(
	    aborted || (WIFEXITED(status) && WEXITSTATUS(status) == 0), "child: status %d", status);
	/* What the child acknowledged must be stored. */
	ck_assert_ptr_nonnull(f = fopen(ackpath, "r"));
	while (fgets(line, sizeof line, f) != NULL) {
		ck_assert_int_eq(sscanf(line, "%d %lld %lld", &idx, &id, &seq), 3);
		res[idx].done = 1;
		res[idx].id = id;
		res[idx].seq = seq;
		if (idx + 1 > nmsgs)
			nmsgs = idx + 1;
	}
	fclose(f);
	/* Not acknowledged (refused, or the child died first): either way. */
	for (i = 0; i < nmsgs; i++) {
		if (!res[i].done) {
			res[i].done = 1;
			res[i].failed = -1;
		}
	}
	check_db(aborted ? 0 : STEPS);
	free(ackpath);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s;
	TCase *tc;

	/* Before anything initialises SQLite. */
	faultvfs_install();
	s = suite_create("writer");
	tc = tcase_create("faults");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_clean_run);
	tcase_add_loop_test(tc, test_write_fails_once, 0, SWEEP);
	tcase_add_loop_test(tc, test_disk_full_from_nth_write, 0, SWEEP);
	tcase_add_loop_test(tc, test_sync_fails, 0, 8);
	tcase_add_test(tc, test_retry_bound);
	tcase_add_test(tc, test_wal_bound);
	tcase_add_test(tc, test_bans_retried);
	tcase_add_test(tc, test_destroy_tries_last);
	tcase_add_loop_test(tc, test_alloc_fails, 0, SWEEP);
	suite_add_tcase(s, tc);
	return s;
}
