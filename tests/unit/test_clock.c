/*
 * Unit tests for clock.c: the wall clock agrees with time(2) and the
 * monotonic clock never goes back.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <check.h>

#include "check_main.h"

#include "clock.h"

START_TEST(test_clock_wall_matches_time)
{
	struct timespec a, b;
	int64_t wall;

	/* Not time(): Linux serves it from a coarse clock that may lag a few ms. */
	ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &a), 0);
	wall = clock_wall_ms();
	ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &b), 0);
	ck_assert_int_ge(wall, (int64_t)a.tv_sec * 1000 + a.tv_nsec / 1000000);
	ck_assert_int_le(wall, (int64_t)b.tv_sec * 1000 + b.tv_nsec / 1000000);
	/* and it is Unix time in ms, not some other epoch or unit */
	ck_assert_int_gt(wall, 1600000000000LL);
}
END_TEST

START_TEST(test_clock_mono_never_goes_back)
{
	int64_t prev = clock_mono_ms(), now;
	struct timespec ts, pause = { 0, 2 * 1000000L };

	for (int i = 0; i < 1000; i++) {
		now = clock_mono_ms();
		ck_assert_int_ge(now, prev);
		prev = now;
	}
	/* A 2 ms sleep shows as at least 1 ms (ms truncation of both ends). */
	ck_assert_int_eq(nanosleep(&pause, NULL), 0);
	ck_assert_int_ge(clock_mono_ms() - prev, 1);
	/* clock_now hands out the same clock in its raw form. */
	clock_now(CLOCK_MONOTONIC, &ts);
	ck_assert_int_ge((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, prev);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("clock");
	TCase *tc = tcase_create("clock");

	tcase_add_test(tc, test_clock_wall_matches_time);
	tcase_add_test(tc, test_clock_mono_never_goes_back);
	suite_add_tcase(s, tc);
	return s;
}
