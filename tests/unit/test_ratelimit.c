/*
 * Per-room rate limit: the wait it reports, that a refusal does not extend
 * the wait, independence of users, table growth and expiry.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "ratelimit.h"

START_TEST(test_unlimited)
{
	struct ratelimit rl;
	int i;

	ratelimit_init(&rl, 0);
	for (i = 0; i < 100; i++)
		ck_assert_int_eq(ratelimit_check(&rl, "u1", 1000 + i), 0);
	/* nothing recorded: an unlimited room holds no memory */
	ck_assert_uint_eq(rl.users.count, 0);
	ck_assert_ptr_null(rl.users.buckets);
	ratelimit_expire(&rl, 5000);
	ratelimit_clear(&rl);

	ratelimit_init(&rl, -5); /* a negative interval means no limit too */
	ck_assert_int_eq(rl.interval_ms, 0);
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 0), 0);
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 0), 0);
	ratelimit_clear(&rl);
}
END_TEST

START_TEST(test_wait)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 3000);
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 10000), 0);
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 10000), 3000);
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 10001), 2999);
	/* a refused message does not extend the wait */
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 12999), 1);
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 13000), 0);
	/* the accepted post at 13000 starts a new interval */
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 14000), 2000);
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 20000), 0);
	ck_assert_uint_eq(rl.users.count, 1);

	/* the interval may change between calls (slow mode) */
	rl.interval_ms = 10000;
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 21000), 9000);
	rl.interval_ms = 0;
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 21000), 0);
	ratelimit_clear(&rl);
}
END_TEST

START_TEST(test_users_independent)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 1000);
	ck_assert_int_eq(ratelimit_check(&rl, "alice", 0), 0);
	ck_assert_int_eq(ratelimit_check(&rl, "bob", 0), 0);
	ck_assert_int_eq(ratelimit_check(&rl, "alic", 0), 0); /* prefix is another user */
	ck_assert_int_eq(ratelimit_check(&rl, "alice ", 0), 0);
	ck_assert_int_eq(ratelimit_check(&rl, "", 0), 0);
	ck_assert_int_eq(ratelimit_check(&rl, "张三", 0), 0);
	ck_assert_int_eq(ratelimit_check(&rl, "alice", 500), 500);
	ck_assert_int_eq(ratelimit_check(&rl, "bob", 999), 1);
	ck_assert_int_eq(ratelimit_check(&rl, "", 1), 999);
	ck_assert_int_eq(ratelimit_check(&rl, "张三", 2), 998);
	ck_assert_uint_eq(rl.users.count, 6);
	ratelimit_clear(&rl);
	ck_assert_ptr_null(rl.users.buckets);
	ck_assert_uint_eq(rl.users.count, 0);
	/* reusable after clear, the interval kept */
	ck_assert_int_eq(ratelimit_check(&rl, "alice", 500), 0);
	ck_assert_int_eq(ratelimit_check(&rl, "alice", 600), 900);
	ratelimit_clear(&rl);
}
END_TEST

START_TEST(test_growth)
{
	struct ratelimit rl;
	char id[32];
	int i;

	ratelimit_init(&rl, 60000);
	for (i = 0; i < 10000; i++) {
		snprintf(id, sizeof id, "user-%d", i);
		ck_assert_int_eq(ratelimit_check(&rl, id, i), 0);
		/* the table grows with the users: never more than one per bucket on average */
		ck_assert(rl.users.count <= rl.users.nbuckets);
		ck_assert((rl.users.nbuckets & (rl.users.nbuckets - 1)) == 0);
	}
	ck_assert_uint_eq(rl.users.count, 10000);
	/* every user is still found after the table grew */
	for (i = 0; i < 10000; i++) {
		snprintf(id, sizeof id, "user-%d", i);
		ck_assert_int_eq(ratelimit_check(&rl, id, 10000), 60000 - (10000 - i));
	}
	ck_assert_uint_eq(rl.users.count, 10000);
	ratelimit_clear(&rl);
}
END_TEST

START_TEST(test_expire)
{
	struct ratelimit rl;
	char id[32];
	int i;

	ratelimit_init(&rl, 1000);
	ratelimit_expire(&rl, 0); /* on an empty table */
	for (i = 0; i < 100; i++) {
		snprintf(id, sizeof id, "u%d", i);
		ck_assert_int_eq(ratelimit_check(&rl, id, i * 10), 0); /* posts at 0..990 */
	}
	/* at 1500, posts at or before 500 are an interval old */
	ratelimit_expire(&rl, 1500);
	ck_assert_uint_eq(rl.users.count, 49);
	for (i = 51; i < 100; i++) {
		snprintf(id, sizeof id, "u%d", i);
		ck_assert_int_eq(ratelimit_check(&rl, id, 1500), i * 10 + 1000 - 1500);
	}
	/* forgotten users may post at once */
	ck_assert_int_eq(ratelimit_check(&rl, "u0", 1500), 0);
	ck_assert_int_eq(ratelimit_check(&rl, "u50", 1500), 0);
	ck_assert_uint_eq(rl.users.count, 51);
	/* once everyone is stale the table itself goes */
	ratelimit_expire(&rl, 100000);
	ck_assert_uint_eq(rl.users.count, 0);
	ck_assert_ptr_null(rl.users.buckets);
	ck_assert_uint_eq(rl.users.nbuckets, 0);
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 100000), 0);
	ck_assert_int_eq(ratelimit_check(&rl, "u1", 100001), 999);
	ratelimit_clear(&rl);
}
END_TEST

/* A post on another node counts here: the user waits its interval from when we heard of it. */
START_TEST(test_note)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 1000);
	ratelimit_note(&rl, "u", 5000);
	ck_assert_int_eq(ratelimit_check(&rl, "u", 5400), 600);
	/* An older note never shortens the wait. */
	ratelimit_note(&rl, "u", 4000);
	ck_assert_int_eq(ratelimit_check(&rl, "u", 5400), 600);
	ck_assert_int_eq(ratelimit_check(&rl, "u", 6000), 0);
	/* A local post, then a note a little later: the later one counts. */
	ratelimit_note(&rl, "u", 6100);
	ck_assert_int_eq(ratelimit_check(&rl, "u", 7000), 100);
	ck_assert_int_eq(ratelimit_check(&rl, "other", 6100), 0);
	ratelimit_clear(&rl);

	/* No limit: nothing recorded. */
	ratelimit_init(&rl, 0);
	ratelimit_note(&rl, "u", 5000);
	ck_assert_uint_eq(rl.users.count, 0);
	ck_assert_int_eq(ratelimit_check(&rl, "u", 5000), 0);
	ratelimit_clear(&rl);
}
END_TEST

START_TEST(test_long_ids)
{
	struct ratelimit rl;
	char big[1025];

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ratelimit_init(&rl, 100);
	ck_assert_int_eq(ratelimit_check(&rl, big, 0), 0);
	big[1023] = 'y';
	ck_assert_int_eq(ratelimit_check(&rl, big, 0), 0);
	big[1023] = 'x';
	ck_assert_int_eq(ratelimit_check(&rl, big, 50), 50);
	ratelimit_clear(&rl);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("ratelimit");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_unlimited);
	tcase_add_test(tc, test_wait);
	tcase_add_test(tc, test_users_independent);
	tcase_add_test(tc, test_growth);
	tcase_add_test(tc, test_expire);
	tcase_add_test(tc, test_long_ids);
	tcase_add_test(tc, test_note);
	suite_add_tcase(s, tc);
	return s;
}
