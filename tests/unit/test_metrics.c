/*
 * Unit tests for metrics.c: the exposition lines exactly as Prometheus
 * reads them (HELP and TYPE, labels, escaping, numbers, histograms).
 */
#include "autoconf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_main.h"

#include "metrics.h"

static char *
render(void (*fn)(struct metrics_buf *b))
{
	struct metrics_buf b;

	metrics_init(&b);
	fn(&b);
	return metrics_take(&b);
}

static void
render_counter(struct metrics_buf *b)
{
	metrics_counter(b, "x_total", "Things done.", 42);
}

START_TEST(test_metrics_counter)
{
	char *s = render(render_counter);

	ck_assert_str_eq(s, "# HELP x_total Things done.\n# TYPE x_total counter\nx_total 42\n");
	free(s);
}
END_TEST

static void
render_escapes(struct metrics_buf *b)
{
	metrics_family(b, "y", "gauge", "back\\slash and\nnewline \"quoted\"");
	metrics_sample(b, "y", (const char *[]){ "a", "q\"uo\\te\nnl", "b", "/x/{id}", NULL }, 1.5);
	metrics_sample(b, "y", NULL, -3);
}

START_TEST(test_metrics_escapes)
{
	char *s = render(render_escapes);

	/* HELP escapes backslash and newline only; label values the quote too. */
	ck_assert_str_eq(s,
	    "# HELP y back\\\\slash and\\nnewline \"quoted\"\n"
	    "# TYPE y gauge\n"
	    "y{a=\"q\\\"uo\\\\te\\nnl\",b=\"/x/{id}\"} 1.5\n"
	    "y -3\n");
	free(s);
}
END_TEST

static void
render_numbers(struct metrics_buf *b)
{
	metrics_sample(b, "n", NULL, 0.1);
	metrics_sample(b, "n", NULL, NAN);
	metrics_sample(b, "n", NULL, INFINITY);
	metrics_sample(b, "n", NULL, -INFINITY);
	metrics_sample(b, "n", NULL, 18446744073709551615.0);
	metrics_sample(b, "n", NULL, 9007199254740991.0);
}

START_TEST(test_metrics_numbers)
{
	char *s = render(render_numbers);

	ck_assert_str_eq(s,
	    "n 0.10000000000000001\nn NaN\nn +Inf\nn -Inf\n"
	    "n 1.8446744073709552e+19\nn 9007199254740991\n");
	free(s);
}
END_TEST

static const double bounds[] = { 0.5, 1, 2.5 };

static void
render_hist(struct metrics_buf *b)
{
	struct metrics_hist h;

	metrics_hist_init(&h, bounds, 3);
	metrics_hist_observe(&h, 0.25);
	metrics_hist_observe(&h, 1); /* on a bound: counted in it (le) */
	metrics_hist_observe(&h, 3);
	metrics_family(b, "d_seconds", "histogram", "Durations.");
	metrics_hist_write(b, "d_seconds", (const char *[]){ "route", "/r", NULL }, &h);
	metrics_hist_init(&h, bounds, 3);
	metrics_hist_write(b, "d_seconds", NULL, &h);
}

START_TEST(test_metrics_histogram)
{
	char *s = render(render_hist);

	ck_assert_str_eq(s,
	    "# HELP d_seconds Durations.\n"
	    "# TYPE d_seconds histogram\n"
	    "d_seconds_bucket{route=\"/r\",le=\"0.5\"} 1\n"
	    "d_seconds_bucket{route=\"/r\",le=\"1\"} 2\n"
	    "d_seconds_bucket{route=\"/r\",le=\"2.5\"} 2\n"
	    "d_seconds_bucket{route=\"/r\",le=\"+Inf\"} 3\n"
	    "d_seconds_sum{route=\"/r\"} 4.25\n"
	    "d_seconds_count{route=\"/r\"} 3\n"
	    "d_seconds_bucket{le=\"0.5\"} 0\n"
	    "d_seconds_bucket{le=\"1\"} 0\n"
	    "d_seconds_bucket{le=\"2.5\"} 0\n"
	    "d_seconds_bucket{le=\"+Inf\"} 0\n"
	    "d_seconds_sum 0\n"
	    "d_seconds_count 0\n");
	free(s);
}
END_TEST

START_TEST(test_metrics_grows)
{
	struct metrics_buf b;
	char *s;

	metrics_init(&b);
	for (int i = 0; i < 10000; i++)
		metrics_sample(&b, "g", (const char *[]){ "i", "some label value", NULL }, i);
	metrics_raw(&b, "# end\n");
	s = metrics_take(&b);
	ck_assert_ptr_nonnull(strstr(s, "g{i=\"some label value\"} 9999\n# end\n"));
	ck_assert_uint_eq(b.len, 0); /* taken: the buffer is left empty */
	ck_assert_ptr_null(b.buf);
	free(s);
	metrics_init(&b);
	metrics_clear(&b);
	ck_assert_ptr_null(b.buf);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, test_metrics_counter);
	tcase_add_test(tc, test_metrics_escapes);
	tcase_add_test(tc, test_metrics_numbers);
	tcase_add_test(tc, test_metrics_histogram);
	tcase_add_test(tc, test_metrics_grows);
	suite_add_tcase(s, tc);
	return s;
}
