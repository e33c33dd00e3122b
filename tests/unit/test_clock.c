/*
 * Unit tests for clock.c: the wall clock agrees with the real-time clock
 * and time(2), and the monotonic clock never goes back.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <check.h>

#include "check_main.h"

#include "clock.h"

static int64_t
realtime_ms(void)
{
	struct timespec ts;

	ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(test_clock_wall_matches_time)
{
	/* Bracketed by the precise real-time clock: time(2) reads glibc's
	 * coarse clock, which lags it by up to a tick and so may still say
	 * the previous second when clock_wall_ms() already reads the next. */
	int64_t before = realtime_ms();
	int64_t wall = clock_wall_ms();
	int64_t after = realtime_ms();
	int64_t secs = (int64_t)time(NULL);

	ck_assert_int_ge(wall, before);
	ck_assert_int_le(wall, after);
	/* and time(2) names the same second, give or take that tick */
	ck_assert_int_le(secs * 1000 - 1000, wall);
	ck_assert_int_lt(wall, (secs + 2) * 1000);
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
