/*
 * Unit tests for encode.c: the exact bytes of the room, message and
 * session objects in both forms, as docs/api.md and docs/callbacks.md
 * show them (member order included: receivers may compare text).
 */
#include "autoconf.h"

#include <stdlib.h>

#include <check.h>

#include "check_main.h"
#include <cjson/cJSON.h>

#include "encode.h"

static struct jsonw w;

static void
setup(void)
{
	jsonw_init(&w);
}

static void
teardown(void)
{
	jsonw_clear(&w);
}

/* The writer's text so far equals want (the writer is reset). */
static void
assert_text(const char *want)
{
	char *got = jsonw_take(&w);

	ck_assert_str_eq(got, want);
	free(got);
}

static struct db_room
room_fixture(void)
{
	static char *admins[] = { "a1", "a2" };
	struct db_room r = { 0 };

	r.id = "r1";
	r.name = "Lobby";
	r.created_at = 1700000000123;
	r.peak_users = 5;
	r.admins = admins;
	r.n_admins = 2;
	return r;
}

START_TEST(test_room_without_live)
{
	struct db_room r = room_fixture();

	encode_room(&w, &r, NULL, 0);
	jsonw_object_end(&w);
	assert_text(
	    "{\"room_id\":\"r1\",\"room_name\":\"Lobby\",\"admin_user_ids\":[\"a1\",\"a2\"],"
	    "\"created_at\":1700000000,\"closed\":false,\"closed_at\":null,"
	    "\"close_reason\":null}");
}
END_TEST

START_TEST(test_room_live_figures)
{
	struct db_room r = room_fixture();
	cJSON *live = cJSON_Parse("{\"rooms\":[{\"room_id\":\"other\",\"current_users\":9},"
				  "{\"room_id\":\"r1\",\"current_users\":3,\"peak_users\":7}]}");
	cJSON *none = cJSON_Parse("{\"rooms\":[]}");

	ck_assert_ptr_nonnull(encode_live_find(live, "r1"));
	ck_assert_ptr_null(encode_live_find(live, "r2"));
	ck_assert_ptr_null(encode_live_find(NULL, "r1"));
	/* chatd lists the room: its figures, its peak when ahead of the stored one */
	encode_room(&w, &r, live, 1);
	jsonw_kv_bool(&w, "live", 1);
	jsonw_object_end(&w);
	assert_text(
	    "{\"room_id\":\"r1\",\"room_name\":\"Lobby\",\"admin_user_ids\":[\"a1\",\"a2\"],"
	    "\"created_at\":1700000000,\"closed\":false,\"closed_at\":null,"
	    "\"close_reason\":null,\"current_users\":3,\"peak_users\":7,\"live\":true}");
	/* chatd answered without it: nobody is in it */
	encode_room(&w, &r, none, 1);
	jsonw_object_end(&w);
	assert_text(
	    "{\"room_id\":\"r1\",\"room_name\":\"Lobby\",\"admin_user_ids\":[\"a1\",\"a2\"],"
	    "\"created_at\":1700000000,\"closed\":false,\"closed_at\":null,"
	    "\"close_reason\":null,\"current_users\":0,\"peak_users\":5}");
	/* chatd did not answer, or the room is closed: unknown */
	r.closed_at = 1700000100999;
	r.close_reason = "done";
	encode_room(&w, &r, none, 1);
	jsonw_object_end(&w);
	assert_text(
	    "{\"room_id\":\"r1\",\"room_name\":\"Lobby\",\"admin_user_ids\":[\"a1\",\"a2\"],"
	    "\"created_at\":1700000000,\"closed\":true,\"closed_at\":1700000100,"
	    "\"close_reason\":\"done\",\"current_users\":null,\"peak_users\":5}");
	cJSON_Delete(live);
	cJSON_Delete(none);
}
END_TEST

START_TEST(test_message_forms)
{
	struct db_message chat = { 11, "r1", 4, DB_MESSAGE_CHAT, "u1", "Ann", 0, "hi \"x\"", NULL,
		1700000000456 };
	struct db_message ev = { 12, "r1", 5, DB_MESSAGE_CUSTOM, "a1", "Boss", 1,
		"{\"amount\":100}", "lucky_money", 1700000001000 };

	encode_message(&w, &chat, ENCODE_HISTORY);
	assert_text(
	    "{\"id\":11,\"seq\":4,\"type\":\"Message\",\"from\":\"u1\",\"nickname\":\"Ann\","
	    "\"is_admin\":false,\"content\":\"hi \\\"x\\\"\",\"timestamp\":1700000000,"
	    "\"timestamp_ms\":1700000000456}");
	encode_message(&w, &ev, ENCODE_HISTORY);
	assert_text("{\"id\":12,\"seq\":5,\"type\":\"CustomEvent\",\"from\":\"a1\","
		    "\"nickname\":\"Boss\",\"is_admin\":true,\"event_type\":\"lucky_money\","
		    "\"payload\":{\"amount\":100},\"timestamp\":1700000001,"
		    "\"timestamp_ms\":1700000001000}");
	encode_message(&w, &chat, ENCODE_CALLBACK);
	assert_text("{\"id\":11,\"room_id\":\"r1\",\"seq\":4,\"type\":\"Message\","
		    "\"is_custom_event\":false,\"from\":\"u1\",\"nickname\":\"Ann\","
		    "\"is_admin\":false,\"content\":\"hi \\\"x\\\"\",\"timestamp\":1700000000,"
		    "\"timestamp_ms\":1700000000456}");
	encode_message(&w, &ev, ENCODE_CALLBACK);
	assert_text("{\"id\":12,\"room_id\":\"r1\",\"seq\":5,\"type\":\"CustomEvent\","
		    "\"is_custom_event\":true,\"from\":\"a1\",\"nickname\":\"Boss\","
		    "\"is_admin\":true,\"event_type\":\"lucky_money\",\"payload\":{\"amount\":100},"
		    "\"timestamp\":1700000001,\"timestamp_ms\":1700000001000}");
}
END_TEST

START_TEST(test_session_forms)
{
	struct db_session open = { 7, "r1", 2, "u1", "Ann", 0, NULL, 1700000000500, 0, NULL };
	struct db_session done = { 8, "r1", 3, "u2", "Bob", 1, NULL, 1700000000500, 1700000062400,
		"left" };

	encode_session(&w, &open, 0, ENCODE_HISTORY);
	assert_text("{\"session_id\":7,\"seq\":2,\"user_id\":\"u1\",\"nickname\":\"Ann\","
		    "\"is_admin\":false,\"joined_at\":1700000000,\"joined_at_ms\":1700000000500,"
		    "\"left_at\":null,\"left_at_ms\":null,\"duration_seconds\":null,"
		    "\"reason\":null}");
	encode_session(&w, &done, 99, ENCODE_HISTORY);
	assert_text("{\"session_id\":8,\"seq\":3,\"user_id\":\"u2\",\"nickname\":\"Bob\","
		    "\"is_admin\":true,\"joined_at\":1700000000,\"joined_at_ms\":1700000000500,"
		    "\"left_at\":1700000062,\"left_at_ms\":1700000062400,\"duration_seconds\":61,"
		    "\"reason\":\"left\"}");
	encode_session(&w, &done, 99, ENCODE_CALLBACK);
	assert_text("{\"id\":99,\"session_id\":8,\"room_id\":\"r1\",\"seq\":3,\"user_id\":\"u2\","
		    "\"nickname\":\"Bob\",\"is_admin\":true,\"joined_at\":1700000000,"
		    "\"joined_at_ms\":1700000000500,\"left_at\":1700000062,"
		    "\"left_at_ms\":1700000062400,\"duration_seconds\":61,\"duration_ms\":61900,"
		    "\"reason\":\"left\"}");
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("encode");
	TCase *tc = tcase_create("encode");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_room_without_live);
	tcase_add_test(tc, test_room_live_figures);
	tcase_add_test(tc, test_message_forms);
	tcase_add_test(tc, test_session_forms);
	suite_add_tcase(s, tc);
	return s;
}
