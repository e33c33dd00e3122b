/*
 * Unit tests for page.c: the seq-range arithmetic behind every history
 * page, including the query-string extremes that must not overflow.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>

#include <check.h>

#include "check_main.h"
#include "page.h"

static void
check_window(int64_t lo, int64_t hi, int64_t page, int64_t limit, int64_t total, int64_t start,
    int64_t end, int has_more, int64_t total_pages)
{
	struct page_window w;

	page_window_compute(lo, hi, page, limit, &w);
	ck_assert_int_eq(w.total, total);
	ck_assert_int_eq(w.start, start);
	ck_assert_int_eq(w.end, end);
	ck_assert_int_eq(w.has_more, has_more);
	ck_assert_int_eq(w.total_pages, total_pages);
}

START_TEST(test_page_empty_window)
{
	/* No rows at all: seq 1..0. */
	check_window(1, 0, 1, 10, 0, 1, 0, 0, 0);
	check_window(1, 0, 7, 10, 0, 1, 0, 0, 0);
	/* A window that starts after it ends (from > to). */
	check_window(50, 20, 1, 10, 0, 21, 20, 0, 0);
}
END_TEST

START_TEST(test_page_first_middle_last)
{
	/* 25 rows at seq 1..25, 10 per page. */
	check_window(1, 25, 1, 10, 25, 1, 10, 1, 3);
	check_window(1, 25, 2, 10, 25, 11, 20, 1, 3);
	check_window(1, 25, 3, 10, 25, 21, 25, 0, 3);
}
END_TEST

START_TEST(test_page_offset_window)
{
	/* A time window that maps to seq 101..130. */
	check_window(101, 130, 1, 7, 30, 101, 107, 1, 5);
	check_window(101, 130, 5, 7, 30, 129, 130, 0, 5);
	check_window(101, 130, 6, 7, 30, 131, 130, 0, 5);
}
END_TEST

START_TEST(test_page_exact_multiple)
{
	check_window(1, 30, 3, 10, 30, 21, 30, 0, 3);
	check_window(1, 30, 4, 10, 30, 31, 30, 0, 3);
	check_window(1, 1, 1, 1, 1, 1, 1, 0, 1);
	check_window(1, 2, 1, 1, 2, 1, 1, 1, 2);
	check_window(1, 2, 2, 1, 2, 2, 2, 0, 2);
}
END_TEST

START_TEST(test_page_beyond_end)
{
	check_window(1, 25, 4, 10, 25, 26, 25, 0, 3);
	check_window(1, 25, 1000000, 10, 25, 26, 25, 0, 3);
}
END_TEST

START_TEST(test_page_limit_larger_than_total)
{
	check_window(1, 25, 1, 1000, 25, 1, 25, 0, 1);
	check_window(1, 25, 2, 1000, 25, 26, 25, 0, 1);
}
END_TEST

START_TEST(test_page_huge_values)
{
	/* Built with -fsanitize=undefined these would trap on any overflow. */
	check_window(1, 25, INT64_MAX, 10, 25, 26, 25, 0, 3);
	check_window(1, 25, 1, INT64_MAX, 25, 1, 25, 0, 1);
	check_window(5, 10, 1, INT64_MAX, 6, 5, 10, 0, 1);
	check_window(1, 25, INT64_MAX, INT64_MAX, 25, 26, 25, 0, 1);
	check_window(1, 25, 2, INT64_MAX - 1, 25, 26, 25, 0, 1);
	/* The largest window there can be. */
	check_window(1, INT64_MAX, 1, 10, INT64_MAX, 1, 10, 1, (INT64_MAX - 1) / 10 + 1);
	check_window(1, INT64_MAX, (INT64_MAX - 1) / 10 + 1, 10, INT64_MAX, INT64_MAX - 6,
	    INT64_MAX, 0, (INT64_MAX - 1) / 10 + 1);
	check_window(1, INT64_MAX, 2, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX - 1, 0, 1);
	check_window(1, INT64_MAX, 1, INT64_MAX, INT64_MAX, 1, INT64_MAX, 0, 1);
	check_window(
	    2, INT64_MAX, 2, INT64_MAX / 2, INT64_MAX - 1, INT64_MAX / 2 + 2, INT64_MAX, 0, 2);
}
END_TEST

START_TEST(test_page_walk_covers_window_once)
{
	struct page_window w;
	int64_t page, next;

	/* Every row of the window appears on exactly one page, in order. */
	for (int64_t limit = 1; limit <= 13; limit++) {
		next = 17;
		for (page = 1;; page++) {
			page_window_compute(17, 117, page, limit, &w);
			if (w.end < w.start)
				break;
			ck_assert_int_eq(w.start, next);
			ck_assert_int_le(w.end - w.start + 1, limit);
			next = w.end + 1;
			ck_assert_int_eq(w.has_more, next <= 117);
		}
		ck_assert_int_eq(next, 118);
		ck_assert_int_eq(page - 1, w.total_pages);
	}
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("page");
	TCase *tc = tcase_create("window");

	tcase_add_test(tc, test_page_empty_window);
	tcase_add_test(tc, test_page_first_middle_last);
	tcase_add_test(tc, test_page_offset_window);
	tcase_add_test(tc, test_page_exact_multiple);
	tcase_add_test(tc, test_page_beyond_end);
	tcase_add_test(tc, test_page_limit_larger_than_total);
	tcase_add_test(tc, test_page_huge_values);
	tcase_add_test(tc, test_page_walk_covers_window_once);
	suite_add_tcase(s, tc);
	return s;
}
