/*
 * chatd's string-keyed hash map: set/get/replace/remove, growth across many
 * keys, removal during a walk, and that clear hands every value back; its
 * keyed hash (SipHash-2-4 against the paper's test vectors) and that keys
 * crafted to collide under an unkeyed hash spread across the buckets.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"
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

/* Test vectors from the SipHash paper (appendix A and the reference vectors):
 * key 00 01 .. 0f, message 00 01 .. (len-1). */
START_TEST(test_siphash_vectors)
{
	static const struct {
		size_t len;
		uint64_t want;
	} v[] = {
		{ 0, 0x726fdb47dd0e0e31ULL }, { 1, 0x74f839c593dc67fdULL },
		{ 8, 0x93f5f5799a932462ULL },
		{ 15, 0xa129ca6149be45e5ULL }, /* the paper's worked example */
	};
	uint8_t key[SIPHASH_KEY_BYTES], msg[64];

	for (size_t i = 0; i < sizeof key; i++)
		key[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof msg; i++)
		msg[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
		ck_assert_msg(siphash24(key, msg, v[i].len) == v[i].want, "len %zu: got %016llx",
		    v[i].len, (unsigned long long)siphash24(key, msg, v[i].len));
}
END_TEST

/* The map's old bucket function, unkeyed: anyone can search for collisions. */
static uint32_t
fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

/*
 * 2,000 user ids whose FNV-1a hashes agree in their low 12 bits: in any
 * table of up to 4,096 buckets they all chained in one bucket, each lookup
 * a walk of 2,000 string compares. Under the keyed hash they spread.
 */
START_TEST(test_fnv_collisions_spread)
{
	enum { N = 2000, MASK = 4095 };
	static char keys[N][24];
	static int values[N];
	struct strmap m;
	size_t found = 0, longest = 0;

	for (unsigned long i = 0; found < N; i++) {
		snprintf(keys[found], sizeof keys[found], "u%lu", i);
		if ((fnv1a(keys[found]) & MASK) == 0)
			found++;
	}
	strmap_init(&m);
	for (size_t i = 0; i < N; i++) {
		values[i] = (int)i;
		ck_assert_ptr_null(strmap_set(&m, keys[i], &values[i]));
	}
	ck_assert_uint_le(m.nbuckets, MASK + 1); /* the old hash put all in bucket 0 */
	for (size_t b = 0; b < m.nbuckets; b++) {
		size_t len = 0;

		for (struct strmap_entry *e = m.buckets[b]; e != NULL; e = e->next)
			len++;
		if (len > longest)
			longest = len;
	}
	/* 2,000 keys in 2,048 buckets at random: the longest chain is about 6. */
	ck_assert_msg(longest <= 16, "longest chain %zu of %zu keys", longest, (size_t)N);
	for (size_t i = 0; i < N; i++)
		ck_assert_ptr_eq(strmap_get(&m, keys[i]), &values[i]);
	strmap_clear(&m, NULL);
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
	tcase_add_test(tc, test_siphash_vectors);
	tcase_add_test(tc, test_fnv_collisions_spread);
	suite_add_tcase(s, tc);
	return s;
}
