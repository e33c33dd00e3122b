/*
 * Join/leave coalescing: leading edge, one push per window, bounded name
 * lists with full counts, and that pushed names stay valid exactly as
 * long as promised (run under valgrind to see them freed).
 */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "coalesce.h"

START_TEST(test_idle)
{
	struct coalesce c;
	struct coalesce_push push;

	coalesce_init(&c);
	ck_assert(c.last_push_ms == INT64_MIN);
	ck_assert_int_eq(coalesce_due_at(&c), -1);
	ck_assert_int_eq(coalesce_take(&c, 0, &push), 0);
	ck_assert_int_eq(coalesce_take(&c, 1000000, &push), 0);
	coalesce_clear(&c);
}
END_TEST

START_TEST(test_leading_edge)
{
	struct coalesce c;
	struct coalesce_push push;
	const int64_t t0 = 5000000;

	coalesce_init(&c);
	coalesce_note(&c, 1, "u1", "Nick 1");
	/* before any push: due at once */
	ck_assert_int_le(coalesce_due_at(&c), t0);
	ck_assert_int_eq(coalesce_take(&c, t0, &push), 1);
	ck_assert_uint_eq(push.joined_count, 1);
	ck_assert_uint_eq(push.n_joined_listed, 1);
	ck_assert_str_eq(push.joined[0].user_id, "u1");
	ck_assert_str_eq(push.joined[0].nickname, "Nick 1");
	ck_assert_uint_eq(push.left_count, 0);
	ck_assert_uint_eq(push.n_left_listed, 0);
	ck_assert(c.last_push_ms == t0);
	ck_assert_int_eq(coalesce_due_at(&c), -1);
	/* nothing pending: no second push */
	ck_assert_int_eq(coalesce_take(&c, t0 + 5000, &push), 0);

	/* after a quiet window the next change goes out at once again */
	coalesce_note(&c, 0, "u1", NULL);
	ck_assert_int_le(coalesce_due_at(&c), t0 + 7000);
	ck_assert_int_eq(coalesce_take(&c, t0 + 7000, &push), 1);
	ck_assert_uint_eq(push.left_count, 1);
	ck_assert_str_eq(push.left[0].user_id, "u1");
	ck_assert_str_eq(push.left[0].nickname, "u1"); /* NULL nickname: the user id */
	ck_assert_uint_eq(push.joined_count, 0);
	coalesce_clear(&c);
}
END_TEST

/*
 * The server's view: a timer ticking every millisecond through the first
 * second while 20 users join within 300 ms. Exactly two pushes: the first
 * join at once, the other 19 when the window ends.
 */
START_TEST(test_burst)
{
	struct coalesce c;
	struct coalesce_push push;
	const int64_t t0 = 1000000;
	int64_t now, at[2] = { 0, 0 };
	unsigned counts[2] = { 0, 0 };
	int pushes = 0, joined = 0;
	char id[16], nick[16];

	coalesce_init(&c);
	for (now = t0; now <= t0 + 1000; now++) {
		/* a join every 15 ms from t0: 20 joins by t0 + 285 */
		if (joined < 20 && now == t0 + 15 * joined) {
			snprintf(id, sizeof id, "u%d", joined);
			snprintf(nick, sizeof nick, "n%d", joined);
			coalesce_note(&c, 1, id, nick);
			joined++;
		}
		if (coalesce_due_at(&c) >= 0 && now >= coalesce_due_at(&c)) {
			ck_assert_int_eq(coalesce_take(&c, now, &push), 1);
			ck_assert_int_lt(pushes, 2);
			at[pushes] = now;
			counts[pushes] = push.joined_count;
			if (pushes == 1) {
				ck_assert_uint_eq(push.n_joined_listed, 19);
				ck_assert_str_eq(push.joined[0].user_id, "u1");
				ck_assert_str_eq(push.joined[18].user_id, "u19");
				ck_assert_str_eq(push.joined[18].nickname, "n19");
			}
			pushes++;
		} else
			ck_assert_int_eq(coalesce_take(&c, now, &push), 0);
	}
	ck_assert_int_eq(joined, 20);
	ck_assert_int_eq(pushes, 2);
	ck_assert_int_eq(at[0], t0);
	ck_assert_uint_eq(counts[0], 1);
	ck_assert_int_eq(at[1], t0 + 1000);
	ck_assert_uint_eq(counts[1], 19);
	/* the next change waits for the next window */
	coalesce_note(&c, 0, "u3", "n3");
	ck_assert_int_eq(coalesce_due_at(&c), t0 + 2000);
	ck_assert_int_eq(coalesce_take(&c, t0 + 1999, &push), 0);
	ck_assert_int_eq(coalesce_take(&c, t0 + 2000, &push), 1);
	ck_assert_uint_eq(push.left_count, 1);
	coalesce_clear(&c);
}
END_TEST

START_TEST(test_bounded_lists)
{
	struct coalesce c;
	struct coalesce_push push;
	char id[16];
	int i;

	coalesce_init(&c);
	/* take the leading push so the rest gathers */
	coalesce_note(&c, 1, "first", "first");
	ck_assert_int_eq(coalesce_take(&c, 0, &push), 1);
	for (i = 0; i < 10000; i++) {
		snprintf(id, sizeof id, "j%d", i);
		coalesce_note(&c, 1, id, id);
		if (i % 2 == 0) {
			snprintf(id, sizeof id, "l%d", i);
			coalesce_note(&c, 0, id, "bye");
		}
	}
	ck_assert_uint_eq(c.n_joined_listed, COALESCE_MAX_USERS);
	ck_assert_uint_eq(c.n_left_listed, COALESCE_MAX_USERS);
	ck_assert_int_eq(coalesce_take(&c, 999, &push), 0);
	ck_assert_int_eq(coalesce_take(&c, 1000, &push), 1);
	ck_assert_uint_eq(push.joined_count, 10000);
	ck_assert_uint_eq(push.left_count, 5000);
	ck_assert_uint_eq(push.n_joined_listed, COALESCE_MAX_USERS);
	ck_assert_uint_eq(push.n_left_listed, COALESCE_MAX_USERS);
	/* the first ones are named, in order */
	ck_assert_str_eq(push.joined[0].user_id, "j0");
	ck_assert_str_eq(push.joined[COALESCE_MAX_USERS - 1].user_id, "j19");
	ck_assert_str_eq(push.left[COALESCE_MAX_USERS - 1].user_id, "l38");
	coalesce_clear(&c);
	ck_assert_uint_eq(c.n_joined_listed, 0);
	ck_assert_int_eq(coalesce_due_at(&c), -1);
}
END_TEST

START_TEST(test_join_and_leave)
{
	struct coalesce c;
	struct coalesce_push push;

	coalesce_init(&c);
	coalesce_note(&c, 1, "a", "A");
	ck_assert_int_eq(coalesce_take(&c, 100, &push), 1);
	/* b comes and goes within one window: named in both lists */
	coalesce_note(&c, 1, "b", "B");
	coalesce_note(&c, 0, "b", "B");
	ck_assert_int_eq(coalesce_due_at(&c), 1100);
	ck_assert_int_eq(coalesce_take(&c, 1100, &push), 1);
	ck_assert_uint_eq(push.joined_count, 1);
	ck_assert_uint_eq(push.left_count, 1);
	ck_assert_str_eq(push.joined[0].user_id, "b");
	ck_assert_str_eq(push.left[0].user_id, "b");
	coalesce_clear(&c);
}
END_TEST

/* Pushed names live until the next call, then go; valgrind checks the frees. */
START_TEST(test_lifetime)
{
	struct coalesce c;
	struct coalesce_push push, push2;

	coalesce_init(&c);
	coalesce_note(&c, 1, "a", "A");
	coalesce_note(&c, 0, "z", "Z");
	ck_assert_int_eq(coalesce_take(&c, 0, &push), 1);
	ck_assert_uint_eq(push.joined_count, 1);
	ck_assert_uint_eq(push.left_count, 1);
	/* due_at is const: the names survive it */
	ck_assert_int_eq(coalesce_due_at(&c), -1);
	ck_assert_str_eq(push.joined[0].nickname, "A");
	ck_assert_str_eq(push.left[0].nickname, "Z");
	/* a take with nothing pending releases them */
	ck_assert_int_eq(coalesce_take(&c, 10, &push2), 0);
	ck_assert_uint_eq(c.n_joined_listed, 0);
	ck_assert_uint_eq(c.n_left_listed, 0);
	ck_assert_ptr_null(c.joined[0].user_id);

	/* a note releases the pushed names before recording */
	coalesce_note(&c, 1, "b", "B");
	ck_assert_int_eq(coalesce_take(&c, 1000, &push), 1);
	coalesce_note(&c, 1, "c", "C");
	ck_assert_uint_eq(c.n_joined_listed, 1);
	ck_assert_str_eq(c.joined[0].user_id, "c");
	ck_assert_uint_eq(c.joined_count, 1);
	/* clear with names pending */
	coalesce_clear(&c);
	ck_assert_ptr_null(c.joined[0].user_id);
	ck_assert(c.last_push_ms == INT64_MIN);

	/* clear right after a push */
	coalesce_note(&c, 1, "d", "D");
	ck_assert_int_eq(coalesce_take(&c, 0, &push), 1);
	coalesce_clear(&c);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("coalesce");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_idle);
	tcase_add_test(tc, test_leading_edge);
	tcase_add_test(tc, test_burst);
	tcase_add_test(tc, test_bounded_lists);
	tcase_add_test(tc, test_join_and_leave);
	tcase_add_test(tc, test_lifetime);
	suite_add_tcase(s, tc);
	return s;
}
