/*
 * chatd's string-keyed hash map: set/get/replace/remove, growth across many
 * keys, removal during a walk, and that clear hands every value back.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "strmap.h"

START_TEST(test_basic)
{
	struct strmap m;
	int a = 1, b = 2, c = 3;

	strmap_init(&m);
	ck_assert_ptr_null(strmap_get(&m, "x"));
	ck_assert_ptr_null(strmap_remove(&m, "x"));
	ck_assert_ptr_null(strmap_set(&m, "x", &a));
	ck_assert_ptr_null(strmap_set(&m, "用户", &b));
	ck_assert_ptr_eq(strmap_get(&m, "x"), &a);
	ck_assert_ptr_eq(strmap_get(&m, "用户"), &b);
	/* replacing returns the old value and keeps one entry */
	ck_assert_ptr_eq(strmap_set(&m, "x", &c), &a);
	ck_assert_uint_eq(m.count, 2);
	ck_assert_ptr_eq(strmap_get(&m, "x"), &c);
	ck_assert_ptr_eq(strmap_remove(&m, "x"), &c);
	ck_assert_ptr_null(strmap_get(&m, "x"));
	ck_assert_uint_eq(m.count, 1);
	/* the empty key is a key like any other */
	ck_assert_ptr_null(strmap_set(&m, "", &a));
	ck_assert_ptr_eq(strmap_get(&m, ""), &a);
	strmap_clear(&m, NULL);
	ck_assert_uint_eq(m.count, 0);
	ck_assert_ptr_null(strmap_get(&m, "用户"));
}
END_TEST

START_TEST(test_many_keys)
{
	struct strmap m;
	char key[32];
	static int values[20000];

	strmap_init(&m);
	for (int i = 0; i < 20000; i++) {
		values[i] = i;
		snprintf(key, sizeof key, "user-%d", i);
		ck_assert_ptr_null(strmap_set(&m, key, &values[i]));
	}
	ck_assert_uint_eq(m.count, 20000);
	/* growth keeps the load bounded, so lookups stay cheap */
	ck_assert_uint_ge(m.nbuckets, 20000 / 2);
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "user-%d", i);
		ck_assert_ptr_eq(strmap_get(&m, key), &values[i]);
	}
	for (int i = 0; i < 20000; i += 2) {
		snprintf(key, sizeof key, "user-%d", i);
		ck_assert_ptr_eq(strmap_remove(&m, key), &values[i]);
	}
	ck_assert_uint_eq(m.count, 10000);
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof key, "user-%d", i);
		if (i % 2 == 0)
			ck_assert_ptr_null(strmap_get(&m, key));
		else
			ck_assert_ptr_eq(strmap_get(&m, key), &values[i]);
	}
	strmap_clear(&m, NULL);
}
END_TEST

static int
drop_even(const char *key, void *value, void *arg)
{
	int *seen = arg;

	(void)key;
	(*seen)++;
	if (*(int *)value % 2 == 0) {
		free(value);
		return 1;
	}
	return 0;
}

static void
count_free(void *value)
{
	free(value);
}

START_TEST(test_each_and_clear)
{
	struct strmap m;
	char key[32];
	int seen = 0;

	strmap_init(&m);
	for (int i = 0; i < 100; i++) {
		int *v = malloc(sizeof *v);
		*v = i;
		snprintf(key, sizeof key, "k%d", i);
		strmap_set(&m, key, v);
	}
	strmap_each(&m, drop_even, &seen);
	ck_assert_int_eq(seen, 100);
	ck_assert_uint_eq(m.count, 50);
	ck_assert_ptr_null(strmap_get(&m, "k2"));
	ck_assert_int_eq(*(int *)strmap_get(&m, "k3"), 3);
	/* clear hands the remaining values to the free function (valgrind checks) */
	strmap_clear(&m, count_free);
	ck_assert_uint_eq(m.count, 0);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("strmap");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_basic);
	tcase_add_test(tc, test_many_keys);
	tcase_add_test(tc, test_each_and_clear);
	suite_add_tcase(s, tc);
	return s;
}
