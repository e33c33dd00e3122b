/*
 * chatd's WebSocket protocol: every error code a client frame can earn,
 * identity spoofing, hostile sizes and nesting, and every encoder read back
 * through cJSON with its exact field list.
 */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check_main.h"
#include "coalesce.h"
#include "db.h"
#include "jsonutil.h"
#include "wsproto.h"

#define MAX_CONTENT 4096

/* Parses text that must be accepted; *req is the caller's to clear. */
static void
parse_ok(const char *text, struct wsproto_request *req)
{
	const char *code;
	char *message;

	ck_assert_msg(wsproto_parse(text, strlen(text), MAX_CONTENT, req, &code, &message) == 0,
	    "refused %s: %s %s", text, code, message);
	ck_assert_ptr_null(code);
	ck_assert_ptr_null(message);
}

/* Parses len bytes that must be refused with want; checks the refusal leaves nothing. */
static void
parse_err_len(const char *text, size_t len, size_t max, const char *want)
{
	struct wsproto_request req;
	const char *code;
	char *message;

	ck_assert_msg(
	    wsproto_parse(text, len, max, &req, &code, &message) == -1, "accepted %.200s", text);
	ck_assert_msg(
	    strcmp(code, want) == 0, "%.200s: got %s (%s), want %s", text, code, message, want);
	ck_assert_ptr_nonnull(message);
	ck_assert(message[0] != '\0');
	ck_assert_ptr_null(req.content);
	ck_assert_ptr_null(req.event_type);
	ck_assert_ptr_null(req.payload_json);
	ck_assert_ptr_null(req.user_id);
	ck_assert_ptr_null(req.reason);
	free(message);
	wsproto_request_clear(&req); /* harmless on a refusal */
}

static void
parse_err(const char *text, const char *want)
{
	parse_err_len(text, strlen(text), MAX_CONTENT, want);
}

/* The payload object of an encoded frame, after checking type and the exact key set. */
static const cJSON *
frame_payload(cJSON *root, const char *type, const char *const *keys)
{
	const cJSON *payload, *item;
	size_t n = 0, i;

	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(cJSON_GetArraySize(root), 2);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(root, "type")->valuestring, type);
	payload = cJSON_GetObjectItemCaseSensitive(root, "payload");
	ck_assert(cJSON_IsObject(payload));
	cJSON_ArrayForEach(item, payload)
	{
		for (i = 0; keys[i] != NULL; i++) {
			if (strcmp(keys[i], item->string) == 0)
				break;
		}
		ck_assert_msg(keys[i] != NULL, "%s: unexpected field %s", type, item->string);
		n++;
	}
	for (i = 0; keys[i] != NULL; i++)
		;
	ck_assert_msg(n == i, "%s: %zu fields, want %zu", type, n, i);
	return payload;
}

static const char *
get_str(const cJSON *o, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);

	ck_assert_msg(cJSON_IsString(item), "%s is not a string", key);
	return item->valuestring;
}

static double
get_num(const cJSON *o, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);

	ck_assert_msg(cJSON_IsNumber(item), "%s is not a number", key);
	return item->valuedouble;
}

static int
get_bool(const cJSON *o, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(o, key);

	ck_assert_msg(cJSON_IsBool(item), "%s is not a boolean", key);
	return cJSON_IsTrue(item);
}

START_TEST(test_parse_message)
{
	struct wsproto_request req;

	parse_ok("{\"type\":\"Message\",\"payload\":{\"content\":\"hello\"}}", &req);
	ck_assert_int_eq(req.type, WSPROTO_MESSAGE);
	ck_assert_str_eq(req.content, "hello");
	wsproto_request_clear(&req);
	ck_assert_ptr_null(req.content);

	/* member order, space and unknown top-level members do not matter */
	parse_ok(" {\"payload\" : {\"content\":\"a\\nb\\tc\\r\"}, \"type\":\"Message\", \"v\":2}\n",
	    &req);
	ck_assert_str_eq(req.content, "a\nb\tc\r");
	wsproto_request_clear(&req);
	/* cJSON skips a leading byte order mark; harmless, so accepted */
	parse_ok("\xef\xbb\xbf{\"type\":\"Message\",\"payload\":{\"content\":\"bom\"}}", &req);
	ck_assert_str_eq(req.content, "bom");
	wsproto_request_clear(&req);
}
END_TEST

/* Identity is the connection's: whatever the client claims has no effect. */
START_TEST(test_spoofing)
{
	struct wsproto_request req;

	parse_ok("{\"type\":\"Message\",\"payload\":{\"content\":\"hi\",\"from\":\"admin\","
		 "\"nickname\":\"Admin\",\"is_admin\":true,\"id\":7,\"seq\":9,\"user_id\":\"x\","
		 "\"reason\":\"r\",\"event_type\":\"e\"},\"from\":\"admin\",\"is_admin\":true}",
	    &req);
	ck_assert_int_eq(req.type, WSPROTO_MESSAGE);
	ck_assert_str_eq(req.content, "hi");
	ck_assert_ptr_null(req.user_id);
	ck_assert_ptr_null(req.reason);
	ck_assert_ptr_null(req.event_type);
	ck_assert_ptr_null(req.payload_json);
	wsproto_request_clear(&req);
	/* spoofed fields of the wrong type are ignored too, not refused */
	parse_ok("{\"type\":\"Message\",\"payload\":{\"content\":\"hi\",\"from\":[1],"
		 "\"is_admin\":\"yes\",\"nickname\":{}}}",
	    &req);
	ck_assert_str_eq(req.content, "hi");
	wsproto_request_clear(&req);
}
END_TEST

START_TEST(test_parse_admin)
{
	struct wsproto_request req;

	parse_ok("{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"lucky_money\","
		 "\"payload\":{ \"amount\" : 100, \"to\" : [ \"u1\", \"张\" ] }}}",
	    &req);
	ck_assert_int_eq(req.type, WSPROTO_CUSTOM_EVENT);
	ck_assert_str_eq(req.event_type, "lucky_money");
	ck_assert_str_eq(req.payload_json, "{\"amount\":100,\"to\":[\"u1\",\"张\"]}");
	wsproto_request_clear(&req);

	/* absent payload: {}; any other JSON value passes through */
	parse_ok("{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"a.B-9_z\"}}", &req);
	ck_assert_str_eq(req.payload_json, "{}");
	wsproto_request_clear(&req);
	parse_ok(
	    "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"x\",\"payload\":null}}", &req);
	ck_assert_str_eq(req.payload_json, "null");
	wsproto_request_clear(&req);
	parse_ok("{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"x\",\"payload\":\"s\"}}",
	    &req);
	ck_assert_str_eq(req.payload_json, "\"s\"");
	wsproto_request_clear(&req);
	parse_ok(
	    "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"x\",\"payload\":[1, 2.5]}}",
	    &req);
	ck_assert_str_eq(req.payload_json, "[1,2.5]");
	wsproto_request_clear(&req);

	parse_ok("{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u2\",\"duration_seconds\":600,"
		 "\"reason\":\"spam\"}}",
	    &req);
	ck_assert_int_eq(req.type, WSPROTO_BAN);
	ck_assert_str_eq(req.user_id, "u2");
	ck_assert_int_eq(req.duration_seconds, 600);
	ck_assert_str_eq(req.reason, "spam");
	wsproto_request_clear(&req);
	/* permanent: no duration; no reason */
	parse_ok("{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u2\"}}", &req);
	ck_assert_int_eq(req.duration_seconds, 0);
	ck_assert_ptr_null(req.reason);
	wsproto_request_clear(&req);
	parse_ok("{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u2\",\"duration_seconds\":null,"
		 "\"reason\":null}}",
	    &req);
	ck_assert_int_eq(req.duration_seconds, 0);
	ck_assert_ptr_null(req.reason);
	wsproto_request_clear(&req);
	parse_ok(
	    "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u2\",\"duration_seconds\":31536000}}",
	    &req);
	ck_assert_int_eq(req.duration_seconds, 31536000);
	wsproto_request_clear(&req);

	parse_ok(
	    "{\"type\":\"Unban\",\"payload\":{\"user_id\":\"u2\",\"reason\":\"ignored\"}}", &req);
	ck_assert_int_eq(req.type, WSPROTO_UNBAN);
	ck_assert_str_eq(req.user_id, "u2");
	ck_assert_ptr_null(req.reason);
	wsproto_request_clear(&req);

	parse_ok("{\"type\":\"Kick\",\"payload\":{\"user_id\":\"张三\",\"reason\":\"off topic\"}}",
	    &req);
	ck_assert_int_eq(req.type, WSPROTO_KICK);
	ck_assert_str_eq(req.user_id, "张三");
	ck_assert_str_eq(req.reason, "off topic");
	wsproto_request_clear(&req);
}
END_TEST

START_TEST(test_errors)
{
	static const struct {
		const char *text, *code;
	} cases[] = {
		/* invalid_utf8: the frame itself */
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"\xff\"}}", "invalid_utf8" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"\xc0\xaf\"}}", "invalid_utf8" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"\xed\xa0\x80\"}}",
		    "invalid_utf8" },
		/* invalid_json */
		{ "", "invalid_json" },
		{ "   ", "invalid_json" },
		{ "hello", "invalid_json" },
		{ "{", "invalid_json" },
		{ "[]", "invalid_json" },
		{ "null", "invalid_json" },
		{ "\"Message\"", "invalid_json" },
		{ "{}", "invalid_json" },
		{ "{\"type\":\"Message\"}", "invalid_json" },
		{ "{\"payload\":{\"content\":\"x\"}}", "invalid_json" },
		{ "{\"type\":5,\"payload\":{}}", "invalid_json" },
		{ "{\"type\":null,\"payload\":{}}", "invalid_json" },
		{ "{\"type\":\"Message\",\"payload\":\"hi\"}", "invalid_json" },
		{ "{\"type\":\"Message\",\"payload\":[\"hi\"]}", "invalid_json" },
		{ "{\"type\":\"Message\",\"payload\":null}", "invalid_json" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"x\"}} x", "invalid_json" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"x\"}}{}", "invalid_json" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"a\\u0000b\"}}",
		    "invalid_json" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"\\ud800\"}}", "invalid_json" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"\\udc00x\"}}", "invalid_json" },
		{ "{'type':'Message','payload':{'content':'x'}}", "invalid_json" },
		/* unknown_type: exact and case-sensitive */
		{ "{\"type\":\"message\",\"payload\":{\"content\":\"x\"}}", "unknown_type" },
		{ "{\"type\":\"MESSAGE\",\"payload\":{}}", "unknown_type" },
		{ "{\"type\":\"Message \",\"payload\":{}}", "unknown_type" },
		{ "{\"type\":\"\",\"payload\":{}}", "unknown_type" },
		{ "{\"type\":\"UserJoined\",\"payload\":{}}", "unknown_type" },
		{ "{\"type\":\"Error\",\"payload\":{}}", "unknown_type" },
		{ "{\"type\":\"ban\",\"payload\":{\"user_id\":\"u\"}}", "unknown_type" },
		/* Message fields */
		{ "{\"type\":\"Message\",\"payload\":{}}", "invalid_field" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":5}}", "invalid_field" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":null}}", "invalid_field" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":[\"x\"]}}", "invalid_field" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":true}}", "invalid_field" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"a\\u0001b\"}}",
		    "invalid_field" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"a\\u001bb\"}}",
		    "invalid_field" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"a\\u007fb\"}}",
		    "invalid_field" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"a\\bb\"}}", "invalid_field" },
		{ "{\"type\":\"Message\",\"payload\":{\"content\":\"\"}}", "empty_content" },
		/* CustomEvent fields */
		{ "{\"type\":\"CustomEvent\",\"payload\":{}}", "invalid_field" },
		{ "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"\"}}", "invalid_field" },
		{ "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":1}}", "invalid_field" },
		{ "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"a b\"}}",
		    "invalid_field" },
		{ "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"a/b\"}}",
		    "invalid_field" },
		{ "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"红包\"}}",
		    "invalid_field" },
		{ "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"a\\nb\"}}",
		    "invalid_field" },
		/* re-encoding would make the payload longer than the frame */
		{ "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"x\",\"payload\":[5e-324,"
		  "5e-324,5e-324,5e-324,5e-324,5e-324,5e-324,5e-324,5e-324,5e-324,5e-324,5e-324]}}",
		    "invalid_field" },
		{ "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":"
		  "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}}",
		    "invalid_field" }, /* 65 bytes */
		/* Ban, Unban, Kick fields */
		{ "{\"type\":\"Ban\",\"payload\":{}}", "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"\"}}", "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":7}}", "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u\\n\"}}", "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u\",\"duration_seconds\":0}}",
		    "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u\",\"duration_seconds\":-5}}",
		    "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u\",\"duration_seconds\":31536001}"
		  "}",
		    "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u\",\"duration_seconds\":1.5}}",
		    "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u\",\"duration_seconds\":\"60\"}}",
		    "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u\",\"duration_seconds\":1e400}}",
		    "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u\",\"reason\":5}}",
		    "invalid_field" },
		{ "{\"type\":\"Ban\",\"payload\":{\"user_id\":\"u\",\"reason\":\"a\\u0007\"}}",
		    "invalid_field" },
		{ "{\"type\":\"Unban\",\"payload\":{}}", "invalid_field" },
		{ "{\"type\":\"Unban\",\"payload\":{\"user_id\":null}}", "invalid_field" },
		{ "{\"type\":\"Kick\",\"payload\":{\"reason\":\"x\"}}", "invalid_field" },
		{ "{\"type\":\"Kick\",\"payload\":{\"user_id\":\"u\",\"reason\":[]}}",
		    "invalid_field" },
	};
	static const char nul[] = "{\"type\":\"Message\",\"payload\":{\"content\":\"a\0b\"}}";
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		parse_err(cases[i].text, cases[i].code);
	/* a NUL byte inside the frame */
	parse_err_len(nul, sizeof nul - 1, MAX_CONTENT, "invalid_json");
}
END_TEST

/* Limits count bytes after unescaping, and sit exactly on the boundary. */
START_TEST(test_limits)
{
	struct wsproto_request req;
	const char *lit, *code;
	char *text, big[600];
	char *message;
	size_t n;

	/* content: max_content bytes pass, one more does not */
	text = malloc(MAX_CONTENT + 100);
	n = (size_t)snprintf(text, 64, "{\"type\":\"Message\",\"payload\":{\"content\":\"");
	memset(text + n, 'x', MAX_CONTENT);
	strcpy(text + n + MAX_CONTENT, "\"}}");
	parse_ok(text, &req);
	ck_assert_uint_eq(strlen(req.content), MAX_CONTENT);
	wsproto_request_clear(&req);
	ck_assert_int_eq(
	    wsproto_parse(text, strlen(text), MAX_CONTENT - 1, &req, &code, &message), -1);
	ck_assert_str_eq(code, "content_too_large");
	ck_assert_ptr_nonnull(strstr(message, "4095"));
	free(message);
	free(text);

	/* 张 is 3 bytes: 2 characters are 6 bytes */
	lit = "{\"type\":\"Message\",\"payload\":{\"content\":\"张张\"}}";
	parse_err_len(lit, strlen(lit), 5, "content_too_large");
	ck_assert_int_eq(wsproto_parse(lit, strlen(lit), 6, &req, &code, &message), 0);
	wsproto_request_clear(&req);
	/* an escape counts as the byte it stands for */
	lit = "{\"type\":\"Message\",\"payload\":{\"content\":\"\\u0041\\u0042\"}}";
	ck_assert_int_eq(wsproto_parse(lit, strlen(lit), 2, &req, &code, &message), 0);
	ck_assert_str_eq(req.content, "AB");
	wsproto_request_clear(&req);

	/* user_id: 128 bytes pass, 129 do not */
	n = (size_t)snprintf(big, sizeof big, "{\"type\":\"Kick\",\"payload\":{\"user_id\":\"");
	memset(big + n, 'u', USER_ID_MAX_BYTES);
	strcpy(big + n + USER_ID_MAX_BYTES, "\"}}");
	parse_ok(big, &req);
	ck_assert_uint_eq(strlen(req.user_id), USER_ID_MAX_BYTES);
	wsproto_request_clear(&req);
	memset(big + n, 'u', USER_ID_MAX_BYTES + 1);
	strcpy(big + n + USER_ID_MAX_BYTES + 1, "\"}}");
	parse_err(big, "invalid_field");

	/* reason: REASON_MAX_BYTES pass, one more does not */
	n = (size_t)snprintf(
	    big, sizeof big, "{\"type\":\"Kick\",\"payload\":{\"user_id\":\"u\",\"reason\":\"");
	memset(big + n, 'r', REASON_MAX_BYTES);
	strcpy(big + n + REASON_MAX_BYTES, "\"}}");
	parse_ok(big, &req);
	ck_assert_uint_eq(strlen(req.reason), REASON_MAX_BYTES);
	wsproto_request_clear(&req);
	memset(big + n, 'r', REASON_MAX_BYTES + 1);
	strcpy(big + n + REASON_MAX_BYTES + 1, "\"}}");
	parse_err(big, "invalid_field");

	/* event_type: 64 bytes pass */
	n = (size_t)snprintf(
	    big, sizeof big, "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"");
	memset(big + n, 'e', EVENT_TYPE_MAX_BYTES);
	strcpy(big + n + EVENT_TYPE_MAX_BYTES, "\"}}");
	parse_ok(big, &req);
	wsproto_request_clear(&req);
}
END_TEST

/* Hostile shapes: huge frames, deep nesting, many members. */
START_TEST(test_hostile)
{
	struct wsproto_request req;
	size_t n, i, depth, size = 1 << 20;
	char *text = malloc(size + 64);

	/* a megabyte of content against a 4 KiB limit */
	n = (size_t)sprintf(text, "{\"type\":\"Message\",\"payload\":{\"content\":\"");
	memset(text + n, 'x', size);
	strcpy(text + n + size, "\"}}");
	parse_err(text, "content_too_large");

	/* a custom event payload as deep as the limit allows (the message's own two
	 * levels plus 30) is passed on intact; one level more, or 500, is refused */
	static const size_t depths[] = { JSON_DEPTH_MAX - 2, JSON_DEPTH_MAX - 1, 500 };
	for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
		depth = depths[d];
		n = (size_t)sprintf(text,
		    "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"deep\",\"payload\":");
		for (i = 0; i < depth; i++)
			text[n++] = '[';
		for (i = 0; i < depth; i++)
			text[n++] = ']';
		strcpy(text + n, "}}");
		if (d == 0) {
			parse_ok(text, &req);
			ck_assert_uint_eq(strlen(req.payload_json), 2 * depth);
			wsproto_request_clear(&req);
		} else
			parse_err(text, "invalid_json");
	}

	/* deeper than cJSON's nesting limit: refused, not a stack overflow */
	depth = 200000;
	n = (size_t)sprintf(text, "{\"type\":\"Message\",\"payload\":{\"content\":");
	for (i = 0; i < depth; i++)
		text[n++] = '[';
	for (i = 0; i < depth; i++)
		text[n++] = ']';
	strcpy(text + n, "}}");
	parse_err(text, "invalid_json");

	/* many members: the last duplicate does not win; cJSON takes the first */
	n = (size_t)sprintf(text, "{\"type\":\"Message\",\"payload\":{\"content\":\"first\"");
	for (i = 0; i < 10000; i++)
		n += (size_t)sprintf(text + n, ",\"k%zu\":%zu", i, i);
	strcpy(text + n, ",\"content\":\"second\"},\"type\":\"Ban\"}");
	parse_ok(text, &req);
	ck_assert_int_eq(req.type, WSPROTO_MESSAGE);
	ck_assert_str_eq(req.content, "first");
	wsproto_request_clear(&req);
	free(text);
}
END_TEST

/* Chinese and emoji survive parse and encode byte for byte, raw or escaped. */
START_TEST(test_unicode)
{
	static const char want[] = "你好，世界 🎉👩‍👩‍👧 ü";
	struct wsproto_request req, req2;
	const cJSON *p;
	cJSON *root;
	char *out;

	parse_ok("{\"type\":\"Message\",\"payload\":{\"content\":\"你好，世界 "
		 "🎉👩‍👩‍👧 "
		 "ü\"}}",
	    &req);
	ck_assert(memcmp(req.content, want, sizeof want) == 0);
	/* the same text as JSON escapes, emoji as surrogate pairs */
	parse_ok("{\"type\":\"Message\",\"payload\":{\"content\":"
		 "\"\\u4f60\\u597d\\uff0c\\u4e16\\u754c \\ud83c\\udf89\\ud83d\\udc69\\u200d"
		 "\\ud83d\\udc69\\u200d\\ud83d\\udc67 \\u00fc\"}}",
	    &req2);
	ck_assert_str_eq(req2.content, want);

	out = wsproto_encode_message(1, 1, "r", "张三", "小张", 0, req.content, 1700000000123LL);
	/* written raw, not escaped */
	ck_assert_ptr_nonnull(strstr(out, want));
	ck_assert_ptr_nonnull(strstr(out, "\"from\":\"张三\""));
	root = cJSON_Parse(out);
	ck_assert_ptr_nonnull(root);
	p = cJSON_GetObjectItemCaseSensitive(root, "payload");
	ck_assert(memcmp(get_str(p, "content"), want, sizeof want) == 0);
	ck_assert_str_eq(get_str(p, "nickname"), "小张");
	cJSON_Delete(root);
	free(out);
	wsproto_request_clear(&req);
	wsproto_request_clear(&req2);

	parse_ok("{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"hb\",\"payload\":"
		 "{\"祝福\":\"🧧 \\ud83e\\udde7\"}}}",
	    &req);
	ck_assert_str_eq(req.payload_json, "{\"祝福\":\"🧧 🧧\"}");
	wsproto_request_clear(&req);
}
END_TEST

START_TEST(test_encode_message)
{
	static const char *const keys[] = { "from", "nickname", "content", "is_admin", "id", "seq",
		"room_id", "timestamp", "timestamp_ms", NULL };
	const cJSON *p;
	cJSON *root;
	char *out;

	out = wsproto_encode_message(
	    42, 7, "room-1", "u1", "Nick \"Q\"", 1, "line1\nline2 \\ \"quoted\"", 1700000000999LL);
	root = cJSON_Parse(out);
	p = frame_payload(root, "Message", keys);
	ck_assert_str_eq(get_str(p, "from"), "u1");
	ck_assert_str_eq(get_str(p, "nickname"), "Nick \"Q\"");
	ck_assert_str_eq(get_str(p, "content"), "line1\nline2 \\ \"quoted\"");
	ck_assert_int_eq(get_bool(p, "is_admin"), 1);
	ck_assert(get_num(p, "id") == 42);
	ck_assert(get_num(p, "seq") == 7);
	ck_assert_str_eq(get_str(p, "room_id"), "room-1");
	ck_assert(get_num(p, "timestamp") == 1700000000);
	ck_assert(get_num(p, "timestamp_ms") == 1700000000999.0);
	cJSON_Delete(root);
	/* integers are written exactly, not through a double */
	ck_assert_ptr_nonnull(strstr(out, "\"timestamp_ms\":1700000000999"));
	ck_assert_str_eq(out,
	    "{\"type\":\"Message\",\"payload\":{\"from\":\"u1\",\"nickname\":\"Nick \\\"Q\\\"\","
	    "\"content\":\"line1\\nline2 \\\\ \\\"quoted\\\"\",\"is_admin\":true,\"id\":42,"
	    "\"seq\":7,\"room_id\":\"room-1\",\"timestamp\":1700000000,"
	    "\"timestamp_ms\":1700000000999}}");
	free(out);

	out = wsproto_encode_message(1, 1, "r", "u", "u", 0, "x", 0);
	root = cJSON_Parse(out);
	p = frame_payload(root, "Message", keys);
	ck_assert_int_eq(get_bool(p, "is_admin"), 0);
	cJSON_Delete(root);
	free(out);
}
END_TEST

START_TEST(test_encode_custom_event)
{
	static const char *const keys[] = { "event_type", "payload", "id", "seq", "room_id", "from",
		"nickname", "is_admin", "timestamp", "timestamp_ms", NULL };
	const cJSON *p, *inner;
	cJSON *root;
	char *out;

	out = wsproto_encode_custom_event(5, 6, "r1", "admin", "The Admin", 1, "lucky_money",
	    "{\"amount\":100,\"to\":[\"u1\"]}", 1700000001500LL);
	root = cJSON_Parse(out);
	p = frame_payload(root, "CustomEvent", keys);
	ck_assert_str_eq(get_str(p, "event_type"), "lucky_money");
	inner = cJSON_GetObjectItemCaseSensitive(p, "payload");
	ck_assert(cJSON_IsObject(inner));
	ck_assert(get_num(inner, "amount") == 100);
	ck_assert_str_eq(
	    cJSON_GetArrayItem(cJSON_GetObjectItem(inner, "to"), 0)->valuestring, "u1");
	ck_assert(get_num(p, "id") == 5);
	ck_assert(get_num(p, "seq") == 6);
	ck_assert_str_eq(get_str(p, "room_id"), "r1");
	ck_assert_str_eq(get_str(p, "from"), "admin");
	ck_assert_str_eq(get_str(p, "nickname"), "The Admin");
	ck_assert_int_eq(get_bool(p, "is_admin"), 1);
	ck_assert(get_num(p, "timestamp") == 1700000001);
	ck_assert(get_num(p, "timestamp_ms") == 1700000001500.0);
	cJSON_Delete(root);
	/* the payload is inserted as is */
	ck_assert_ptr_nonnull(strstr(out, "\"payload\":{\"amount\":100,\"to\":[\"u1\"]},"));
	free(out);

	/* NULL payload: {} */
	out = wsproto_encode_custom_event(1, 1, "r", "a", "a", 1, "e", NULL, 0);
	root = cJSON_Parse(out);
	p = frame_payload(root, "CustomEvent", keys);
	ck_assert(cJSON_IsObject(cJSON_GetObjectItem(p, "payload")));
	cJSON_Delete(root);
	free(out);
}
END_TEST

START_TEST(test_encode_error)
{
	static const char *const keys2[] = { "code", "message", NULL };
	static const char *const keys3[] = { "code", "message", "retry_after_ms", NULL };
	static const char *const keys4[] = { "code", "message", "dropped", NULL };
	const cJSON *p;
	cJSON *root;
	char *out;

	out = wsproto_encode_error("invalid_json", "malformed \"JSON\"", -1, 0);
	root = cJSON_Parse(out);
	p = frame_payload(root, "Error", keys2);
	ck_assert_str_eq(get_str(p, "code"), "invalid_json");
	ck_assert_str_eq(get_str(p, "message"), "malformed \"JSON\"");
	cJSON_Delete(root);
	free(out);

	/* 0 ms is a valid wait and is written */
	out = wsproto_encode_error("rate_limited", "slow down", 0, 0);
	root = cJSON_Parse(out);
	p = frame_payload(root, "Error", keys3);
	ck_assert(get_num(p, "retry_after_ms") == 0);
	cJSON_Delete(root);
	free(out);
	out = wsproto_encode_error("rate_limited", "slow down", 2500, 0);
	ck_assert_ptr_nonnull(strstr(out, "\"retry_after_ms\":2500}"));
	free(out);

	out = wsproto_encode_error("messages_dropped", "you read too slowly", -1, 17);
	root = cJSON_Parse(out);
	p = frame_payload(root, "Error", keys4);
	ck_assert(get_num(p, "dropped") == 17);
	cJSON_Delete(root);
	free(out);
	/* a count beyond a signed 64-bit integer is clamped, never negative */
	out = wsproto_encode_error("messages_dropped", "x", -1, UINT64_MAX);
	ck_assert_ptr_nonnull(strstr(out, "\"dropped\":9223372036854775807}"));
	free(out);
}
END_TEST

START_TEST(test_encode_room_stats)
{
	static const char *const plain[] = { "current_users", "peak_users", "room_id", NULL };
	static const char *const full[] = { "current_users", "peak_users", "room_id", "joined",
		"left", "joined_count", "left_count", NULL };
	struct coalesce c;
	struct coalesce_push push;
	const cJSON *p, *list, *u;
	cJSON *root;
	char *out, id[16];
	int i;

	out = wsproto_encode_room_stats("r1", 3, 10, NULL);
	root = cJSON_Parse(out);
	p = frame_payload(root, "RoomStats", plain);
	ck_assert(get_num(p, "current_users") == 3);
	ck_assert(get_num(p, "peak_users") == 10);
	ck_assert_str_eq(get_str(p, "room_id"), "r1");
	cJSON_Delete(root);
	free(out);

	coalesce_init(&c);
	coalesce_note(&c, 1, "seed", "seed");
	ck_assert_int_eq(coalesce_take(&c, 0, &push), 1);
	for (i = 0; i < 30; i++) {
		snprintf(id, sizeof id, "u%d", i);
		coalesce_note(&c, 1, id, i == 0 ? "张三" : id);
	}
	coalesce_note(&c, 0, "gone", "Gone");
	ck_assert_int_eq(coalesce_take(&c, 1000, &push), 1);
	out = wsproto_encode_room_stats("r1", 31, 40, &push);
	coalesce_clear(&c);
	root = cJSON_Parse(out);
	p = frame_payload(root, "RoomStats", full);
	ck_assert(get_num(p, "current_users") == 31);
	ck_assert(get_num(p, "joined_count") == 30);
	ck_assert(get_num(p, "left_count") == 1);
	list = cJSON_GetObjectItemCaseSensitive(p, "joined");
	ck_assert(cJSON_IsArray(list));
	ck_assert_int_eq(cJSON_GetArraySize(list), COALESCE_MAX_USERS);
	u = cJSON_GetArrayItem(list, 0);
	ck_assert_int_eq(cJSON_GetArraySize(u), 2);
	ck_assert_str_eq(get_str(u, "user_id"), "u0");
	ck_assert_str_eq(get_str(u, "nickname"), "张三");
	list = cJSON_GetObjectItemCaseSensitive(p, "left");
	ck_assert_int_eq(cJSON_GetArraySize(list), 1);
	ck_assert_str_eq(get_str(cJSON_GetArrayItem(list, 0), "nickname"), "Gone");
	cJSON_Delete(root);
	free(out);

	/* an empty list is an empty array */
	memset(&push, 0, sizeof push);
	out = wsproto_encode_room_stats("r1", 0, 0, &push);
	ck_assert_ptr_nonnull(strstr(out, "\"joined\":[],\"left\":[],\"joined_count\":0"));
	free(out);
}
END_TEST

START_TEST(test_encode_user_frames)
{
	static const char *const joined[] = { "user_id", "nickname", "is_admin", "room_id",
		"current_users", "peak_users", "last_seq", NULL };
	static const char *const left[] = { "user_id", "nickname", "room_id", "reason", NULL };
	const cJSON *p;
	cJSON *root;
	char *out;

	out = wsproto_encode_user_joined("r1", "u1", "Nick", 1, 5, 9, 1234);
	root = cJSON_Parse(out);
	p = frame_payload(root, "UserJoined", joined);
	ck_assert_str_eq(get_str(p, "user_id"), "u1");
	ck_assert_str_eq(get_str(p, "nickname"), "Nick");
	ck_assert_int_eq(get_bool(p, "is_admin"), 1);
	ck_assert_str_eq(get_str(p, "room_id"), "r1");
	ck_assert(get_num(p, "current_users") == 5);
	ck_assert(get_num(p, "peak_users") == 9);
	ck_assert(get_num(p, "last_seq") == 1234);
	cJSON_Delete(root);
	free(out);

	out = wsproto_encode_user_left("r1", "u1", "Nick", "kicked: off topic");
	root = cJSON_Parse(out);
	p = frame_payload(root, "UserLeft", left);
	ck_assert_str_eq(get_str(p, "user_id"), "u1");
	ck_assert_str_eq(get_str(p, "nickname"), "Nick");
	ck_assert_str_eq(get_str(p, "room_id"), "r1");
	ck_assert_str_eq(get_str(p, "reason"), "kicked: off topic");
	cJSON_Delete(root);
	free(out);

	out = wsproto_encode_user_left("r1", "u1", "Nick", NULL);
	ck_assert_ptr_nonnull(strstr(out, "\"reason\":null"));
	free(out);
}
END_TEST

/* What a parsed request becomes on the wire parses back to the same request. */
START_TEST(test_round_trip)
{
	struct wsproto_request req, req2;
	const cJSON *p;
	cJSON *root;
	char *out, *again;

	parse_ok("{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"vote\",\"payload\":"
		 "{\"q\":\"多少?\",\"opts\":[1,2,{\"x\":null}],\"ok\":true}}}",
	    &req);
	out = wsproto_encode_custom_event(
	    9, 10, "r", "a", "A", 1, req.event_type, req.payload_json, 1000);
	root = cJSON_Parse(out);
	p = cJSON_GetObjectItemCaseSensitive(root, "payload");
	again = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(p, "payload"));
	ck_assert_str_eq(again, req.payload_json);
	free(again);
	cJSON_Delete(root);
	/* the server frame is itself a valid client frame; its extra fields are ignored */
	parse_ok(out, &req2);
	ck_assert_str_eq(req2.event_type, req.event_type);
	ck_assert_str_eq(req2.payload_json, req.payload_json);
	wsproto_request_clear(&req2);
	wsproto_request_clear(&req);
	free(out);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("wsproto");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_parse_message);
	tcase_add_test(tc, test_spoofing);
	tcase_add_test(tc, test_parse_admin);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_hostile);
	tcase_add_test(tc, test_unicode);
	tcase_add_test(tc, test_encode_message);
	tcase_add_test(tc, test_encode_custom_event);
	tcase_add_test(tc, test_encode_error);
	tcase_add_test(tc, test_encode_room_stats);
	tcase_add_test(tc, test_encode_user_frames);
	tcase_add_test(tc, test_round_trip);
	suite_add_tcase(s, tc);
	return s;
}
