/*
 * Unit tests for metrics_merge(): several nodes' expositions into one
 * valid exposition, each sample labelled with its node, each family's
 * header once and its samples together.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "check_main.h"

#include "metrics.h"

static char *
merge2(const char *a, const char *b)
{
	const char *texts[] = { a, b }, *nodes[] = { "n1", "n2" };

	return metrics_merge(texts, nodes, 2);
}

START_TEST(test_merge_labels)
{
	char *s = merge2("# HELP c_total Things.\n# TYPE c_total counter\nc_total 1\n"
			 "# HELP g A gauge.\n# TYPE g gauge\ng{kind=\"x\"} 2\ng{ } 3\n",
	    "# HELP c_total Things.\n# TYPE c_total counter\nc_total 4\n"
	    "# HELP g A gauge.\n# TYPE g gauge\ng {kind=\"y\",z=\"1\"} 5 1700000000000\n");

	ck_assert_str_eq(s,
	    "# HELP c_total Things.\n# TYPE c_total counter\n"
	    "c_total{node=\"n1\"} 1\n"
	    "c_total{node=\"n2\"} 4\n"
	    "# HELP g A gauge.\n# TYPE g gauge\n"
	    "g{node=\"n1\",kind=\"x\"} 2\n"
	    "g{node=\"n1\"} 3\n"
	    "g{node=\"n2\",kind=\"y\",z=\"1\"} 5 1700000000000\n");
	free(s);
}
END_TEST

START_TEST(test_merge_escapes_node)
{
	const char *texts[] = { "u 1\n" }, *nodes[] = { "a\\b\"c\nd" };
	char *s = metrics_merge(texts, nodes, 1);

	ck_assert_str_eq(s, "u{node=\"a\\\\b\\\"c\\nd\"} 1\n");
	free(s);
}
END_TEST

/* Histogram samples follow their TYPE line, whatever their suffix. */
START_TEST(test_merge_histogram)
{
	static const char h[] = "# HELP d_seconds Durations.\n"
				"# TYPE d_seconds histogram\n"
				"d_seconds_bucket{le=\"1\"} %d\n"
				"d_seconds_bucket{le=\"+Inf\"} %d\n"
				"d_seconds_sum %d\n"
				"d_seconds_count %d\n"
				"# HELP after A gauge after it.\n"
				"# TYPE after gauge\n"
				"after %d\n";
	char a[512], b[512], *s;

	snprintf(a, sizeof a, h, 1, 2, 3, 2, 7);
	snprintf(b, sizeof b, h, 4, 5, 6, 5, 8);
	s = merge2(a, b);
	ck_assert_str_eq(s,
	    "# HELP d_seconds Durations.\n"
	    "# TYPE d_seconds histogram\n"
	    "d_seconds_bucket{node=\"n1\",le=\"1\"} 1\n"
	    "d_seconds_bucket{node=\"n1\",le=\"+Inf\"} 2\n"
	    "d_seconds_sum{node=\"n1\"} 3\n"
	    "d_seconds_count{node=\"n1\"} 2\n"
	    "d_seconds_bucket{node=\"n2\",le=\"1\"} 4\n"
	    "d_seconds_bucket{node=\"n2\",le=\"+Inf\"} 5\n"
	    "d_seconds_sum{node=\"n2\"} 6\n"
	    "d_seconds_count{node=\"n2\"} 5\n"
	    "# HELP after A gauge after it.\n"
	    "# TYPE after gauge\n"
	    "after{node=\"n1\"} 7\n"
	    "after{node=\"n2\"} 8\n");
	free(s);
}
END_TEST

/*
 * A family only the second text has comes after the first text's
 * families; one only the first has keeps its place; blank lines, other
 * comments and a last line without its newline are fine.
 */
START_TEST(test_merge_missing_family)
{
	char *s = merge2("# HELP a A.\n# TYPE a gauge\na 1\n\n"
			 "# HELP only1 Only one.\n# TYPE only1 gauge\nonly1 1\n"
			 "# HELP z Z.\n# TYPE z gauge\nz 1\n",
	    "\n# a comment\n# HELP a A again.\n# TYPE a gauge\na 2\n"
	    "# HELP only2 Only two.\n# TYPE only2 counter\n   \nonly2 5\n"
	    "# HELP z Z.\n# TYPE z gauge\nz 2");

	ck_assert_str_eq(s,
	    "# HELP a A.\n# TYPE a gauge\na{node=\"n1\"} 1\na{node=\"n2\"} 2\n"
	    "# HELP only1 Only one.\n# TYPE only1 gauge\nonly1{node=\"n1\"} 1\n"
	    "# HELP z Z.\n# TYPE z gauge\nz{node=\"n1\"} 1\nz{node=\"n2\"} 2\n"
	    "# HELP only2 Only two.\n# TYPE only2 counter\nonly2{node=\"n2\"} 5\n");
	free(s);
}
END_TEST

/*
 * Families in another order in the second text, one without any header,
 * and one whose header has no samples: every family's samples still
 * follow its one header.
 */
START_TEST(test_merge_order)
{
	char *s = merge2("# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nbare 1\n# TYPE none counter\n",
	    "# TYPE y gauge\ny 2\n# TYPE none counter\n# TYPE x gauge\nx 2\nbare 2\n");

	ck_assert_str_eq(s,
	    "# TYPE x gauge\nx{node=\"n1\"} 1\nx{node=\"n2\"} 2\n"
	    "# TYPE y gauge\ny{node=\"n1\"} 1\ny{node=\"n2\"} 2\n"
	    "bare{node=\"n1\"} 1\nbare{node=\"n2\"} 2\n"
	    "# TYPE none counter\n");
	free(s);
}
END_TEST

/* A header that comes late in one text still heads the family's samples. */
START_TEST(test_merge_late_header)
{
	char *s = merge2("h 1\n", "# HELP h Late.\n# TYPE h gauge\nh 2\n");

	ck_assert_str_eq(s, "# HELP h Late.\n# TYPE h gauge\nh{node=\"n1\"} 1\nh{node=\"n2\"} 2\n");
	free(s);
}
END_TEST

START_TEST(test_merge_empty)
{
	const char *texts[] = { "", "\n\n", NULL }, *nodes[] = { "a", "b", "c" };
	char *s = metrics_merge(texts, nodes, 3);

	ck_assert_str_eq(s, "");
	free(s);
	s = metrics_merge(NULL, NULL, 0);
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

/* The same exposition from many nodes, as a large cluster's scrape. */
START_TEST(test_merge_many)
{
	enum { N = 40 };
	const char *texts[N], *nodes[N];
	char names[N][16], *s;
	const char *p;
	int count = 0;

	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "node-%d", i);
		nodes[i] = names[i];
		texts[i] = "# HELP q Q.\n# TYPE q gauge\nq{p=\"high\"} 1\nq{p=\"low\"} 2\n";
	}
	s = metrics_merge(texts, nodes, N);
	ck_assert_ptr_eq(strstr(s, "# HELP"), s);
	ck_assert_ptr_null(strstr(s + 1, "# HELP"));
	for (p = s; (p = strstr(p, "q{node=")) != NULL; p++)
		count++;
	ck_assert_int_eq(count, 2 * N);
	ck_assert_ptr_nonnull(strstr(s, "q{node=\"node-39\",p=\"low\"} 2\n"));
	free(s);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("metrics_merge");
	TCase *tc = tcase_create("metrics_merge");

	tcase_add_test(tc, test_merge_labels);
	tcase_add_test(tc, test_merge_escapes_node);
	tcase_add_test(tc, test_merge_histogram);
	tcase_add_test(tc, test_merge_missing_family);
	tcase_add_test(tc, test_merge_order);
	tcase_add_test(tc, test_merge_late_header);
	tcase_add_test(tc, test_merge_empty);
	tcase_add_test(tc, test_merge_many);
	suite_add_tcase(s, tc);
	return s;
}
