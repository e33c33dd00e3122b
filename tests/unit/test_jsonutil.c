/*
 * JSON and text validation: UTF-8 edge cases, escaped NULs, trailing data,
 * field type and range checks.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "jsonutil.h"
#include "jsonw.h"

START_TEST(test_utf8)
{
	static const char *const good[] = { "", "ascii", "张三", "🎉", "\xc2\x80", "\xef\xbf\xbf",
		"\xf4\x8f\xbf\xbf" };
	static const char *const bad[] = { "\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\xe5\xbc", "\x80", "a\xc2", "\xf8\x88\x80\x80\x80" };

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(utf8_valid(good[i], strlen(good[i])), "rejected good #%zu", i);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!utf8_valid(bad[i], strlen(bad[i])), "accepted bad #%zu", i);
}
END_TEST

START_TEST(test_text_check)
{
	const char *why;

	ck_assert_int_eq(text_check("abc", 1, 3, TEXT_NO_CONTROL, &why), 0);
	ck_assert_int_eq(text_check("", 1, 3, 0, &why), -1);
	ck_assert_int_eq(text_check("abcd", 1, 3, 0, &why), -1);
	ck_assert_int_eq(text_check("a\tb", 1, 3, TEXT_NO_CONTROL, &why), -1);
	ck_assert_int_eq(text_check("a\tb", 1, 3, 0, &why), 0);
	ck_assert_int_eq(text_check("a\x7f", 1, 3, TEXT_NO_CONTROL, &why), -1);
	/* limits count bytes, not characters: 张 is 3 bytes */
	ck_assert_int_eq(text_check("张", 1, 3, 0, &why), 0);
	ck_assert_int_eq(text_check("张", 1, 2, 0, &why), -1);
}
END_TEST

START_TEST(test_parse_object)
{
	char *cause = NULL;
	cJSON *o;

	o = json_parse_object("{\"a\":1}  \n", 10, &cause);
	ck_assert_ptr_nonnull(o);
	cJSON_Delete(o);

	o = json_parse_object("{\"a\":\"\\\\u0000\"}", 15, &cause); /* escaped backslash: fine */
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(cJSON_GetObjectItem(o, "a")->valuestring, "\\u0000");
	cJSON_Delete(o);

	static const char *const bad[] = { "", "   ", "{", "[]", "1", "\"s\"", "{} x", "{}{}",
		"{\"a\":\"\\u0000\"}", "{\"a\":\"\\\\\\u0000\"}", "{\"a\":\"\xff\"}" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		o = json_parse_object(bad[i], strlen(bad[i]), &cause);
		ck_assert_msg(o == NULL, "accepted %s", bad[i]);
		ck_assert_ptr_nonnull(cause);
		free(cause);
		cause = NULL;
	}
	/* an embedded NUL byte */
	o = json_parse_object("{\"a\":\"x\0y\"}", 11, &cause);
	ck_assert_ptr_null(o);
	free(cause);
}
END_TEST

/* "{"a": [[...[1]...]]}" nesting depth levels in all. */
static char *
nested(int depth)
{
	size_t len = 6 + 2 * (size_t)depth + 1;
	char *s = malloc(len + 1), *p = s;

	ck_assert_ptr_nonnull(s);
	p += sprintf(p, "{\"a\":");
	for (int i = 1; i < depth; i++)
		*p++ = '[';
	*p++ = '1';
	for (int i = 1; i < depth; i++)
		*p++ = ']';
	*p++ = '}';
	*p = '\0';
	return s;
}

START_TEST(test_utf8_scrub)
{
	char cut[] = "room \xe6\xb5\x8b\xe8\xaf"; /* "测" and half of "试" */
	char stray[] = "a\x80"
		       "b\xff\xc0\xaf"
		       "c\xed\xa0\x80"
		       "d";
	char fine[] = "plain 测试 ascii";

	utf8_scrub(cut);
	ck_assert_str_eq(cut, "room \xe6\xb5\x8b??");
	utf8_scrub(stray);
	ck_assert_str_eq(stray, "a?b???c???d"); /* overlong and surrogate forms too */
	ck_assert(utf8_valid(stray, strlen(stray)));
	utf8_scrub(fine);
	ck_assert_str_eq(fine, "plain 测试 ascii");
}
END_TEST

START_TEST(test_depth)
{
	char *cause = NULL, *text;
	cJSON *o;

	text = nested(JSON_DEPTH_MAX);
	ck_assert_int_eq(json_depth_ok(text, strlen(text), JSON_DEPTH_MAX), 1);
	o = json_parse_object(text, strlen(text), &cause);
	ck_assert_ptr_nonnull(o);
	cJSON_Delete(o);
	free(text);

	/* one level more, and far more (cJSON's own limit is 1,000) */
	for (int depth = JSON_DEPTH_MAX + 1; depth < 5000; depth *= 3) {
		text = nested(depth);
		ck_assert_int_eq(json_depth_ok(text, strlen(text), JSON_DEPTH_MAX), 0);
		o = json_parse_object(text, strlen(text), &cause);
		ck_assert_ptr_null(o);
		ck_assert_msg(strstr(cause, "nested deeper than 32 levels") != NULL, "%s", cause);
		free(cause);
		cause = NULL;
		free(text);
	}

	/* brackets inside strings, escaped quotes and backslashes do not count */
	ck_assert_int_eq(json_depth_ok("{\"a\":\"[[[[{{{{\"}", 15, 1), 1);
	ck_assert_int_eq(json_depth_ok("{\"a\":\"\\\"[[[\"}", 14, 1), 1);
	ck_assert_int_eq(json_depth_ok("{\"a\":\"\\\\\",\"b\":[[1]]}", 21, 2), 0);
	ck_assert_int_eq(json_depth_ok("[[]][[]]", 8, 2), 1);
	ck_assert_int_eq(json_depth_ok("[[]][[[]]]", 10, 2), 0);
}
END_TEST

START_TEST(test_fields)
{
	static const char *const allowed[] = { "s", "n", NULL };
	char *cause = NULL;
	const char *s;
	long long n = 0;
	int present;
	cJSON *o = cJSON_Parse("{\"s\":\"hi\",\"n\":42,\"f\":1.5,\"t\":true,\"z\":null}");

	ck_assert_int_eq(json_check_keys(o, allowed, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "\"f\""));
	free(cause);
	cause = NULL;

	ck_assert_int_eq(json_get_string(o, "s", 1, 1, 10, 0, &s, &cause), 0);
	ck_assert_str_eq(s, "hi");
	ck_assert_int_eq(json_get_string(o, "s", 1, 3, 10, 0, &s, &cause), -1);
	free(cause);
	ck_assert_int_eq(json_get_string(o, "n", 1, 1, 10, 0, &s, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "must be a string"));
	free(cause);
	ck_assert_int_eq(json_get_string(o, "missing", 0, 1, 10, 0, &s, &cause), 0);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(json_get_string(o, "z", 0, 1, 10, 0, &s, &cause), 0);
	ck_assert_int_eq(json_get_string(o, "missing", 1, 1, 10, 0, &s, &cause), -1);
	free(cause);

	ck_assert_int_eq(json_get_int(o, "n", 1, 0, 100, &n, &present, &cause), 0);
	ck_assert_int_eq(n, 42);
	ck_assert_int_eq(present, 1);
	ck_assert_int_eq(json_get_int(o, "n", 1, 0, 41, &n, &present, &cause), -1);
	free(cause);
	ck_assert_int_eq(json_get_int(o, "f", 1, 0, 100, &n, &present, &cause), -1);
	free(cause);
	ck_assert_int_eq(json_get_int(o, "t", 1, 0, 100, &n, &present, &cause), -1);
	free(cause);
	ck_assert_int_eq(json_get_int(o, "missing", 0, 0, 100, &n, &present, &cause), 0);
	ck_assert_int_eq(present, 0);
	cJSON_Delete(o);
}
END_TEST

START_TEST(test_writer)
{
	struct jsonw w;
	char *text;
	cJSON *back;

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "s", "q\"b\\n\nt\t\x01张🎉");
	jsonw_kv_int(&w, "min", -9223372036854775807LL - 1);
	jsonw_kv_int(&w, "max", 9223372036854775807LL);
	jsonw_kv_int(&w, "zero", 0);
	jsonw_kv_bool(&w, "t", 1);
	jsonw_kv_null(&w, "n");
	jsonw_kv_string(&w, "null_string", NULL);
	jsonw_key(&w, "a");
	jsonw_array_begin(&w);
	jsonw_array_end(&w);
	jsonw_key(&w, "b");
	jsonw_array_begin(&w);
	jsonw_int(&w, 1);
	jsonw_object_begin(&w);
	jsonw_object_end(&w);
	jsonw_raw(&w, "{\"x\":[1,2]}", 11);
	jsonw_string(&w, "");
	jsonw_array_end(&w);
	jsonw_object_end(&w);
	text = jsonw_take(&w);
	ck_assert_str_eq(text,
	    "{\"s\":\"q\\\"b\\\\n\\nt\\t\\u0001张🎉\",\"min\":-9223372036854775808,"
	    "\"max\":9223372036854775807,\"zero\":0,\"t\":true,\"n\":null,\"null_string\":null,"
	    "\"a\":[],\"b\":[1,{},{\"x\":[1,2]},\"\"]}");
	back = cJSON_Parse(text);
	ck_assert_ptr_nonnull(back);
	ck_assert_str_eq(cJSON_GetObjectItem(back, "s")->valuestring, "q\"b\\n\nt\t\x01张🎉");
	cJSON_Delete(back);
	free(text);
	/* an unused writer hands over an empty string */
	jsonw_init(&w);
	text = jsonw_take(&w);
	ck_assert_str_eq(text, "");
	free(text);
}
END_TEST

START_TEST(test_json_ok_passes_results)
{
	cJSON *obj = json_ok(cJSON_CreateObject());
	char *text;

	json_ok(cJSON_AddStringToObject(obj, "k", "v"));
	text = json_print(obj);
	ck_assert_str_eq(text, "{\"k\":\"v\"}");
	free(text);
	cJSON_Delete(obj);
}
END_TEST

/* A NULL from cJSON means an allocation failed: the program stops. */
START_TEST(test_json_ok_aborts_on_null)
{
	(void)json_ok(NULL);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("jsonutil");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_utf8);
	tcase_add_test(tc, test_text_check);
	tcase_add_test(tc, test_parse_object);
	tcase_add_test(tc, test_depth);
	tcase_add_test(tc, test_utf8_scrub);
	tcase_add_test(tc, test_fields);
	tcase_add_test(tc, test_writer);
	tcase_add_test(tc, test_json_ok_passes_results);
	suite_add_tcase(s, tc);
	/* Without fork (valgrind runs, CK_FORK=no) an abort would end the whole run. */
	if (getenv("CK_FORK") == NULL || strcmp(getenv("CK_FORK"), "no") != 0)
		tcase_add_test_raise_signal(tc, test_json_ok_aborts_on_null, SIGABRT);
	return s;
}
