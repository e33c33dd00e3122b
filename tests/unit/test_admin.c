/*
 * Unit tests for admin.c: ban, unban and close are written to the
 * database first and then sent to chatd (here a one-shot stand-in on a
 * Unix socket); a failed write sends nothing; an unreachable chatd does
 * not undo the write; without a database only chatd is told.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <check.h>

#include "check_main.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "jsonutil.h"

#define DIR_TEMPLATE "/tmp/test_admin.XXXXXX"

static char dir[sizeof DIR_TEMPLATE];
static char dbpath[64], sockpath[64];
static struct db *db;
/* No chatd listens here: the control client fails at connect. */
static const struct admin_chatd nobody = { "/nonexistent/chatd.sock", 200 };

static void
setup(void)
{
	char *cause = NULL;

	memcpy(dir, DIR_TEMPLATE, sizeof dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dbpath, sizeof dbpath, "%s/chat.db", dir);
	snprintf(sockpath, sizeof sockpath, "%s/control.sock", dir);
	ck_assert_int_eq(db_open(dbpath, &db, &cause), DB_OK);
	ck_assert_int_eq(db_room_create(db, "r1", "Lobby", NULL, 0, 1000, &cause), DB_OK);
}

static void
teardown(void)
{
	static const char *const files[] = { "chat.db", "chat.db-wal", "chat.db-shm",
		"control.sock" };
	char path[96];

	db_close(db);
	db = NULL;
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		(void)unlink(path);
	}
	(void)rmdir(dir);
}

/* A chatd stand-in: answers one request with {"disconnected":1} and keeps
 * the request's type and args (compact JSON). */
struct fake {
	int fd;
	pthread_t thread;
	int ok; /* the request was read, decoded and answered */
	enum ctl_type type;
	char *args;
};

static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	char buf[4096], *reply;
	cJSON *root = NULL, *result;
	const cJSON *args;
	const char *code, *message;
	unsigned long id;
	size_t len = 0;
	ssize_t n;
	int c = accept(f->fd, NULL, NULL);

	if (c < 0)
		return NULL;
	while (len == 0 || buf[len - 1] != '\n') {
		n = read(c, buf + len, sizeof buf - 1 - len);
		if (n <= 0) {
			close(c);
			return NULL;
		}
		len += (size_t)n;
	}
	buf[len - 1] = '\0';
	if (ctl_request_decode(buf, &root, &f->type, &id, &args, &code, &message) == 0) {
		f->args = args != NULL ? json_print(args) : NULL;
		result = json_object();
		json_add_int(result, "disconnected", 1);
		reply = ctl_reply_encode_ok(id, result);
		f->ok = write(c, reply, strlen(reply)) == (ssize_t)strlen(reply);
		free(reply);
		cJSON_Delete(result);
		cJSON_Delete(root);
	}
	close(c);
	return NULL;
}

static void
fake_start(struct fake *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof *f);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockpath);
	f->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(f->fd, 0);
	ck_assert_int_eq(bind(f->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(f->fd, 1), 0);
	ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

/* Waits for the stand-in and checks what it was sent. */
static void
fake_check(struct fake *f, enum ctl_type type, const char *args)
{
	ck_assert_int_eq(pthread_join(f->thread, NULL), 0);
	close(f->fd);
	(void)unlink(sockpath);
	ck_assert(f->ok);
	ck_assert_int_eq(f->type, type);
	ck_assert_str_eq(f->args, args);
	free(f->args);
}

static int
ban_count_each(const struct db_ban *ban, void *arg)
{
	(void)ban;
	(*(int *)arg)++;
	return 0;
}

static int
bans_in_force(int64_t now)
{
	char *cause = NULL;
	int n = 0;

	ck_assert_int_eq(db_ban_list(db, "r1", now, ban_count_each, &n, &cause), DB_OK);
	return n;
}

static void
assert_told(struct admin_outcome *out)
{
	const cJSON *d;

	ck_assert_int_eq(out->told, CTL_OK);
	d = cJSON_GetObjectItemCaseSensitive(out->result, "disconnected");
	ck_assert(cJSON_IsNumber(d) && d->valuedouble == 1);
	admin_outcome_clear(out);
}

START_TEST(test_recorded_then_told)
{
	struct admin_chatd chatd = { sockpath, 2000 };
	struct admin_outcome out;
	struct db_room room;
	struct fake f;
	char *cause = NULL;

	fake_start(&f);
	ck_assert_int_eq(admin_ban(db, &chatd, "r1", "u1", "spam", 9000, 2000, &out), DB_OK);
	fake_check(&f, CTL_BAN,
	    "{\"room_id\":\"r1\",\"user_id\":\"u1\",\"reason\":\"spam\",\"expires_at\":9000}");
	assert_told(&out);
	ck_assert_int_eq(bans_in_force(3000), 1);

	fake_start(&f);
	ck_assert_int_eq(admin_unban(db, &chatd, "r1", "u1", 3000, &out), DB_OK);
	fake_check(&f, CTL_UNBAN, "{\"room_id\":\"r1\",\"user_id\":\"u1\"}");
	assert_told(&out);
	ck_assert_int_eq(bans_in_force(4000), 0);

	fake_start(&f);
	ck_assert_int_eq(admin_close_room(db, &chatd, "r1", "bye", 5000, &out), DB_OK);
	fake_check(&f, CTL_ROOM_CLOSED, "{\"room_id\":\"r1\",\"reason\":\"bye\"}");
	assert_told(&out);
	ck_assert_int_eq(db_room_get(db, "r1", &room, &cause), DB_OK);
	ck_assert_int_eq(room.closed_at, 5000);
	ck_assert_str_eq(room.close_reason, "bye");
	db_room_clear(&room);
}
END_TEST

/* A write that fails tells chatd nothing (it would act on what is not
 * recorded); the database's answer is the result. */
START_TEST(test_failed_record_tells_nothing)
{
	struct admin_outcome out;

	ck_assert_int_eq(admin_ban(db, &nobody, "nope", "u1", NULL, 0, 2000, &out), DB_NOTFOUND);
	ck_assert_int_eq(out.told, ADMIN_NOT_TOLD);
	ck_assert_ptr_null(out.result);
	admin_outcome_clear(&out);
	ck_assert_int_eq(admin_unban(db, &nobody, "r1", "u1", 2000, &out), DB_NOTFOUND);
	ck_assert_int_eq(out.told, ADMIN_NOT_TOLD);
	admin_outcome_clear(&out);
	ck_assert_int_eq(admin_close_room(db, &nobody, "r1", "x", 2000, &out), DB_OK);
	admin_outcome_clear(&out);
	ck_assert_int_eq(admin_close_room(db, &nobody, "r1", "x", 2100, &out), DB_CONFLICT);
	ck_assert_int_eq(out.told, ADMIN_NOT_TOLD);
	admin_outcome_clear(&out);
}
END_TEST

/* chatd down: the record stands, and the outcome says chatd was not told. */
START_TEST(test_unreachable_chatd_keeps_record)
{
	struct admin_outcome out;

	ck_assert_int_eq(admin_ban(db, &nobody, "r1", "u1", NULL, 0, 2000, &out), DB_OK);
	ck_assert_int_eq(out.told, CTL_ERR_UNAVAILABLE);
	ck_assert_ptr_nonnull(out.cause);
	ck_assert_ptr_null(out.result);
	admin_outcome_clear(&out);
	ck_assert_int_eq(bans_in_force(3000), 1);
	ck_assert_ptr_null(admin_live_rooms(&nobody));
}
END_TEST

/* No database (chatctl --no-db): chatd alone is told; a reason left out is not sent. */
START_TEST(test_no_database_tells_chatd_only)
{
	struct admin_chatd chatd = { sockpath, 2000 };
	struct admin_outcome out;
	struct fake f;

	fake_start(&f);
	ck_assert_int_eq(admin_ban(NULL, &chatd, "r1", "u2", NULL, 0, 2000, &out), DB_OK);
	fake_check(&f, CTL_BAN, "{\"room_id\":\"r1\",\"user_id\":\"u2\",\"expires_at\":0}");
	assert_told(&out);
	ck_assert_int_eq(bans_in_force(3000), 0);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *tc = tcase_create("admin");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_recorded_then_told);
	tcase_add_test(tc, test_failed_record_tells_nothing);
	tcase_add_test(tc, test_unreachable_chatd_keeps_record);
	tcase_add_test(tc, test_no_database_tells_chatd_only);
	suite_add_tcase(s, tc);
	return s;
}
