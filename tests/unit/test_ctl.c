/*
 * Unit tests for the control protocol module (src/common/ctl.c): the type
 * table, line framing, encoding and validation, and the client against a
 * small in-test server thread that plays a well-behaved, slow, silent or
 * broken chatd. The server here tests the client's framing only; chatd's
 * real server side has its own tests. Touches nothing outside a mkdtemp
 * directory under /tmp.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "check_main.h"
#include "ctl.h"
#include "xmalloc.h"

/* ---- helpers ---- */

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		continue;
}

/* Lines seen by a linebuf callback, copied. */
struct lines {
	char *line[16];
	size_t len[16];
	int n;
	int stop_after; /* return non-zero after this many lines; 0: never */
};

static int
lines_add(char *line, size_t len, void *arg)
{
	struct lines *ls = arg;

	ck_assert_int_lt(ls->n, 16);
	ck_assert_uint_eq(strlen(line), len);
	ls->line[ls->n] = xstrndup(line, len);
	ls->len[ls->n] = len;
	ls->n++;
	return ls->stop_after != 0 && ls->n >= ls->stop_after;
}

static void
lines_free(struct lines *ls)
{
	for (int i = 0; i < ls->n; i++)
		free(ls->line[i]);
	memset(ls, 0, sizeof *ls);
}

/* ---- type table ---- */

/* The wire names and numbers are the protocol: changing one breaks peers. */
static const struct {
	enum ctl_type type;
	int number;
	const char *name;
} pinned[] = {
	{ CTL_HEALTH, 1, "health" },
	{ CTL_STATS, 2, "stats" },
	{ CTL_ROOM_OPENED, 3, "room_opened" },
	{ CTL_ROOM_CLOSED, 4, "room_closed" },
	{ CTL_BAN, 5, "ban" },
	{ CTL_UNBAN, 6, "unban" },
	{ CTL_KICK, 7, "kick" },
	{ CTL_PUBLISH, 8, "publish" },
	{ CTL_ROOM_RELOAD, 9, "room_reload" },
	{ CTL_ROOMS, 10, "rooms" },
	{ CTL_METRICS, 11, "metrics" },
};

START_TEST(test_type_table_round_trip)
{
	int t, u;

	for (t = CTL_UNKNOWN + 1; t < CTL_TYPE_MAX; t++) {
		const char *name = ctl_type_name((enum ctl_type)t);

		ck_assert_ptr_nonnull(name);
		ck_assert_str_ne(name, "unknown");
		ck_assert_int_eq(ctl_type_from_name(name), t);
		for (u = CTL_UNKNOWN; u < t; u++)
			ck_assert_str_ne(name, ctl_type_name((enum ctl_type)u));
	}
}
END_TEST

START_TEST(test_type_table_pinned)
{
	size_t i;

	ck_assert_int_eq(CTL_UNKNOWN, 0);
	ck_assert_int_eq(sizeof pinned / sizeof pinned[0], CTL_TYPE_MAX - 1);
	for (i = 0; i < sizeof pinned / sizeof pinned[0]; i++) {
		ck_assert_int_eq(pinned[i].type, pinned[i].number);
		ck_assert_str_eq(ctl_type_name(pinned[i].type), pinned[i].name);
	}
}
END_TEST

START_TEST(test_type_table_unknown)
{
	ck_assert_str_eq(ctl_type_name(CTL_UNKNOWN), "unknown");
	ck_assert_str_eq(ctl_type_name(CTL_TYPE_MAX), "unknown");
	ck_assert_str_eq(ctl_type_name((enum ctl_type)999), "unknown");
	ck_assert_str_eq(ctl_type_name((enum ctl_type)(CTL_UNKNOWN - 1)), "unknown");
	ck_assert_int_eq(ctl_type_from_name("unknown"), CTL_UNKNOWN);
	ck_assert_int_eq(ctl_type_from_name(""), CTL_UNKNOWN);
	ck_assert_int_eq(ctl_type_from_name("HEALTH"), CTL_UNKNOWN);
	ck_assert_int_eq(ctl_type_from_name("health "), CTL_UNKNOWN);
	ck_assert_int_eq(ctl_type_from_name("stat"), CTL_UNKNOWN);
	ck_assert_int_eq(ctl_type_from_name("statsx"), CTL_UNKNOWN);
}
END_TEST

/* ---- line buffer ---- */

START_TEST(test_linebuf_split_chunks)
{
	const char *msg = "{\"v\":1,\"id\":7}\n";
	struct ctl_linebuf lb;
	struct lines ls = { 0 };
	size_t i;

	ctl_linebuf_init(&lb, 64);
	for (i = 0; msg[i] != '\0'; i++)
		ck_assert_int_eq(ctl_linebuf_feed(&lb, msg + i, 1, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 1);
	ck_assert_str_eq(ls.line[0], "{\"v\":1,\"id\":7}");

	/* The tail of one chunk joins the head of the next. */
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "ab\ncd", 5, lines_add, &ls), 0);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "ef", 2, lines_add, &ls), 0);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "gh\ni", 4, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 3);
	ck_assert_str_eq(ls.line[1], "ab");
	ck_assert_str_eq(ls.line[2], "cdefgh");
	ck_assert_uint_eq(lb.len, 1);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "", 0, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 3);
	lines_free(&ls);
	ctl_linebuf_clear(&lb);
	ck_assert_ptr_null(lb.buf);
}
END_TEST

START_TEST(test_linebuf_many_lines_one_chunk)
{
	const char data[] = "a\nbb\n\nccc\ndddd\n";
	struct ctl_linebuf lb;
	struct lines ls = { 0 };

	ctl_linebuf_init(&lb, 64);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, data, sizeof data - 1, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 5);
	ck_assert_str_eq(ls.line[0], "a");
	ck_assert_str_eq(ls.line[1], "bb");
	ck_assert_str_eq(ls.line[2], "");
	ck_assert_uint_eq(ls.len[2], 0);
	ck_assert_str_eq(ls.line[3], "ccc");
	ck_assert_str_eq(ls.line[4], "dddd");
	ck_assert_uint_eq(lb.len, 0);
	lines_free(&ls);
	ctl_linebuf_clear(&lb);
}
END_TEST

START_TEST(test_linebuf_crlf)
{
	const char data[] = "one\r\ntwo\r\r\na\rb\n\r\n";
	struct ctl_linebuf lb;
	struct lines ls = { 0 };

	/* One "\r" before the newline goes (nc/telnet send CRLF); others stay. */
	ctl_linebuf_init(&lb, 64);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, data, sizeof data - 1, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 4);
	ck_assert_str_eq(ls.line[0], "one");
	ck_assert_str_eq(ls.line[1], "two\r");
	ck_assert_str_eq(ls.line[2], "a\rb");
	ck_assert_str_eq(ls.line[3], "");
	lines_free(&ls);

	/* The "\r" and "\n" of one CRLF may arrive in different chunks. */
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "x\r", 2, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 0);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "\n", 1, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 1);
	ck_assert_str_eq(ls.line[0], "x");
	lines_free(&ls);
	ctl_linebuf_clear(&lb);
}
END_TEST

START_TEST(test_linebuf_limit)
{
	struct ctl_linebuf lb;
	struct lines ls = { 0 };

	/* max counts the newline: 7 characters plus "\n" fit in 8. */
	ctl_linebuf_init(&lb, 8);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "1234567\n", 8, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 1);
	ck_assert_str_eq(ls.line[0], "1234567");
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "1234567", 7, lines_add, &ls), 0);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "\n", 1, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 2);
	lines_free(&ls);

	ck_assert_int_eq(ctl_linebuf_feed(&lb, "12345678\n", 9, lines_add, &ls), -1);
	ck_assert_int_eq(ls.n, 0);
	ctl_linebuf_clear(&lb);

	/* Refused as soon as it cannot fit, before its newline arrives. */
	ctl_linebuf_init(&lb, 8);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "1234", 4, lines_add, &ls), 0);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "5678", 4, lines_add, &ls), -1);
	ck_assert_ptr_null(lb.buf);
	ctl_linebuf_clear(&lb);

	/* CRLF counts both bytes against the limit. */
	ctl_linebuf_init(&lb, 8);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "123456\r\n", 8, lines_add, &ls), 0);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "1234567\r\n", 9, lines_add, &ls), -1);
	lines_free(&ls);
	ctl_linebuf_clear(&lb);

	/* A good line before an oversize one in the same chunk is delivered. */
	ctl_linebuf_init(&lb, 8);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "ok\n123456789\n", 13, lines_add, &ls), -1);
	ck_assert_int_eq(ls.n, 1);
	ck_assert_str_eq(ls.line[0], "ok");
	lines_free(&ls);
	ctl_linebuf_clear(&lb);
}
END_TEST

START_TEST(test_linebuf_memory_bounded)
{
	const size_t max = 64 * 1024;
	struct ctl_linebuf lb;
	struct lines ls = { 0 };
	char *chunk;
	size_t total = 0;
	int rc = 0;

	/* A peer streaming megabytes with no newline never grows us past max. */
	chunk = xmalloc(4096);
	memset(chunk, 'x', 4096);
	ctl_linebuf_init(&lb, max);
	while (total < 8 * 1024 * 1024) {
		rc = ctl_linebuf_feed(&lb, chunk, 4096, lines_add, &ls);
		if (rc != 0)
			break;
		ck_assert_uint_le(lb.cap, max);
		ck_assert_uint_lt(lb.len, max);
		total += 4096;
	}
	ck_assert_int_eq(rc, -1);
	ck_assert_uint_lt(total, max);
	ck_assert_int_eq(ls.n, 0);
	ck_assert_ptr_null(lb.buf);
	ctl_linebuf_clear(&lb);

	/* A large line is delivered, then its buffer is given back. */
	ctl_linebuf_init(&lb, max);
	chunk = xrealloc(chunk, max);
	memset(chunk, 'y', max - 1);
	chunk[max - 1] = '\n';
	ck_assert_int_eq(ctl_linebuf_feed(&lb, chunk, max, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 1);
	ck_assert_uint_eq(ls.len[0], max - 1);
	ck_assert_uint_le(lb.cap, 16384);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, "small\n", 6, lines_add, &ls), 0);
	ck_assert_int_eq(ls.n, 2);
	ck_assert_uint_le(lb.cap, 16384);
	lines_free(&ls);
	ctl_linebuf_clear(&lb);
	free(chunk);
}
END_TEST

START_TEST(test_linebuf_callback_stops)
{
	const char data[] = "a\nb\nc\n";
	struct ctl_linebuf lb;
	struct lines ls = { 0 };

	ls.stop_after = 2;
	ctl_linebuf_init(&lb, 64);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, data, sizeof data - 1, lines_add, &ls), -1);
	ck_assert_int_eq(ls.n, 2);
	lines_free(&ls);
	ctl_linebuf_clear(&lb);
}
END_TEST

START_TEST(test_linebuf_nul_byte)
{
	const char data[] = "{\"v\":1}\0junk\n";
	struct ctl_linebuf lb;
	struct lines ls = { 0 };

	/* A NUL would cut the line short for every C-string consumer. */
	ctl_linebuf_init(&lb, 64);
	ck_assert_int_eq(ctl_linebuf_feed(&lb, data, sizeof data - 1, lines_add, &ls), -1);
	ck_assert_int_eq(ls.n, 0);
	ctl_linebuf_clear(&lb);
}
END_TEST

/* ---- encode / decode ---- */

/* A line is one compact JSON text and exactly one trailing newline. */
static void
assert_one_line(const char *line)
{
	size_t len = strlen(line);

	ck_assert_uint_gt(len, 1);
	ck_assert_int_eq(line[len - 1], '\n');
	ck_assert_ptr_eq(strchr(line, '\n'), line + len - 1);
	ck_assert_ptr_null(strchr(line, '\t'));
	ck_assert_ptr_null(strstr(line, ": "));
}

/* Decodes a line as it comes out of the line buffer (no newline). */
static int
decode_line(const char *encoded, cJSON **root, enum ctl_type *type, unsigned long *id,
    const cJSON **args, const char **code, const char **message)
{
	char *copy = xstrdup(encoded);
	int rc;

	copy[strcspn(copy, "\n")] = '\0';
	rc = ctl_request_decode(copy, root, type, id, args, code, message);
	free(copy);
	return rc;
}

START_TEST(test_request_round_trip)
{
	cJSON *args, *root;
	const cJSON *got;
	enum ctl_type type;
	unsigned long id;
	const char *code = NULL, *message = NULL;
	char *line;
	int t;

	args = cJSON_CreateObject();
	cJSON_AddStringToObject(args, "room_id", "房间-1");
	cJSON_AddNumberToObject(args, "n", 3);
	for (t = CTL_UNKNOWN + 1; t < CTL_TYPE_MAX; t++) {
		line = ctl_request_encode((enum ctl_type)t, 100 + (unsigned long)t, args);
		assert_one_line(line);
		ck_assert_int_eq(decode_line(line, &root, &type, &id, &got, &code, &message), 0);
		ck_assert_int_eq(type, t);
		ck_assert_uint_eq(id, 100 + (unsigned long)t);
		ck_assert_ptr_nonnull(got);
		ck_assert(cJSON_Compare(got, args, 1));
		cJSON_Delete(root);
		free(line);
	}
	cJSON_Delete(args);

	/* No args: the key is left out and decodes as NULL. */
	line = ctl_request_encode(CTL_HEALTH, 0, NULL);
	assert_one_line(line);
	ck_assert_ptr_null(strstr(line, "args"));
	ck_assert_int_eq(decode_line(line, &root, &type, &id, &got, &code, &message), 0);
	ck_assert_int_eq(type, CTL_HEALTH);
	ck_assert_uint_eq(id, 0);
	ck_assert_ptr_null(got);
	cJSON_Delete(root);
	free(line);

	/* The largest id a double carries exactly survives the trip. */
	line = ctl_request_encode(CTL_STATS, (unsigned long)CTL_ID_MAX, NULL);
	ck_assert_int_eq(decode_line(line, &root, &type, &id, &got, &code, &message), 0);
	ck_assert_uint_eq(id, (unsigned long)CTL_ID_MAX);
	cJSON_Delete(root);
	free(line);
}
END_TEST

START_TEST(test_reply_encode)
{
	cJSON *result, *root;
	char *line;

	result = cJSON_CreateObject();
	cJSON_AddNumberToObject(result, "connections", 12);
	line = ctl_reply_encode_ok(42, result);
	assert_one_line(line);
	root = cJSON_Parse(line);
	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(cJSON_GetObjectItem(root, "v")->valueint, CTL_VERSION);
	ck_assert_int_eq(cJSON_GetObjectItem(root, "id")->valueint, 42);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(root, "ok")));
	ck_assert(cJSON_Compare(cJSON_GetObjectItem(root, "result"), result, 1));
	cJSON_Delete(root);
	cJSON_Delete(result);
	free(line);

	line = ctl_reply_encode_ok(43, NULL);
	root = cJSON_Parse(line);
	ck_assert(cJSON_IsObject(cJSON_GetObjectItem(root, "result")));
	cJSON_Delete(root);
	free(line);

	line = ctl_reply_encode_error(44, "not_found", "no room \"x\"\nhere");
	assert_one_line(line);
	root = cJSON_Parse(line);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(root, "ok")));
	ck_assert_int_eq(cJSON_GetObjectItem(root, "id")->valueint, 44);
	ck_assert_str_eq(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(root, "error"), "code")->valuestring,
	    "not_found");
	ck_assert_str_eq(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(root, "error"), "message")->valuestring,
	    "no room \"x\"\nhere");
	ck_assert_ptr_null(cJSON_GetObjectItem(root, "result"));
	cJSON_Delete(root);
	free(line);
}
END_TEST

static const struct {
	const char *line;
	const char *code;
	unsigned long id; /* echoed id, 0 when the request had none */
} bad_requests[] = {
	{ "", "bad_json", 0 },
	{ "   ", "bad_json", 0 },
	{ "not json", "bad_json", 0 },
	{ "{\"v\":1,\"id\":1,\"type\":\"health\"", "bad_json", 0 },
	{ "{\"v\":1,\"id\":1,\"type\":\"health\"} trailing", "bad_json", 0 },
	{ "{\"v\":1,\"id\":1,\"type\":\"health\"}{}", "bad_json", 0 },
	{ "[]", "bad_request", 0 },
	{ "[{\"v\":1,\"id\":1,\"type\":\"health\"}]", "bad_request", 0 },
	{ "42", "bad_request", 0 },
	{ "\"health\"", "bad_request", 0 },
	{ "null", "bad_request", 0 },
	{ "{\"id\":5,\"type\":\"health\"}", "bad_version", 5 },
	{ "{\"v\":2,\"id\":6,\"type\":\"health\"}", "bad_version", 6 },
	{ "{\"v\":0,\"id\":6,\"type\":\"health\"}", "bad_version", 6 },
	{ "{\"v\":\"1\",\"id\":7,\"type\":\"health\"}", "bad_version", 7 },
	{ "{\"v\":1.5,\"id\":7,\"type\":\"health\"}", "bad_version", 7 },
	{ "{\"v\":true,\"id\":7,\"type\":\"health\"}", "bad_version", 7 },
	{ "{\"v\":1,\"type\":\"health\"}", "bad_request", 0 },
	{ "{\"v\":1,\"id\":-1,\"type\":\"health\"}", "bad_request", 0 },
	{ "{\"v\":1,\"id\":1.5,\"type\":\"health\"}", "bad_request", 0 },
	{ "{\"v\":1,\"id\":\"1\",\"type\":\"health\"}", "bad_request", 0 },
	{ "{\"v\":1,\"id\":null,\"type\":\"health\"}", "bad_request", 0 },
	{ "{\"v\":1,\"id\":1e300,\"type\":\"health\"}", "bad_request", 0 },
	{ "{\"v\":1,\"id\":9007199254740992,\"type\":\"health\"}", "bad_request", 0 },
	{ "{\"v\":1,\"id\":8}", "bad_request", 8 },
	{ "{\"v\":1,\"id\":8,\"type\":5}", "bad_request", 8 },
	{ "{\"v\":1,\"id\":8,\"type\":null}", "bad_request", 8 },
	{ "{\"v\":1,\"id\":9,\"type\":\"nope\"}", "bad_type", 9 },
	{ "{\"v\":1,\"id\":9,\"type\":\"unknown\"}", "bad_type", 9 },
	{ "{\"v\":1,\"id\":9,\"type\":\"HEALTH\"}", "bad_type", 9 },
	{ "{\"v\":1,\"id\":9,\"type\":\"\"}", "bad_type", 9 },
	{ "{\"v\":1,\"id\":10,\"type\":\"stats\",\"args\":[]}", "bad_request", 10 },
	{ "{\"v\":1,\"id\":10,\"type\":\"stats\",\"args\":\"room\"}", "bad_request", 10 },
	{ "{\"v\":1,\"id\":10,\"type\":\"stats\",\"args\":null}", "bad_request", 10 },
	{ "{\"v\":1,\"id\":10,\"type\":\"stats\",\"args\":1}", "bad_request", 10 },
};

/* A publish whose payload nests depth levels below the line's two. */
static char *
deep_publish(int payload_depth)
{
	char *s = malloc(128 + 2 * (size_t)payload_depth), *p = s;

	ck_assert_ptr_nonnull(s);
	p += sprintf(p,
	    "{\"v\":1,\"id\":3,\"type\":\"publish\",\"args\":{\"room_id\":\"r\","
	    "\"event_type\":\"e\",\"payload\":");
	for (int i = 0; i < payload_depth; i++)
		*p++ = '[';
	for (int i = 0; i < payload_depth; i++)
		*p++ = ']';
	strcpy(p, "}}");
	return s;
}

START_TEST(test_request_depth)
{
	cJSON *root;
	const cJSON *args;
	enum ctl_type type;
	unsigned long id;
	const char *code = NULL, *message = NULL;
	char *line;

	/* Anything a REST body could carry (JSON_DEPTH_MAX - 1 under its object) passes. */
	line = deep_publish(CTL_DEPTH_MAX - 2);
	ck_assert_int_eq(ctl_request_decode(line, &root, &type, &id, &args, &code, &message), 0);
	ck_assert_int_eq(type, CTL_PUBLISH);
	cJSON_Delete(root);
	free(line);

	line = deep_publish(CTL_DEPTH_MAX - 1);
	ck_assert_int_eq(ctl_request_decode(line, &root, &type, &id, &args, &code, &message), -1);
	ck_assert_str_eq(code, "bad_json");
	ck_assert_msg(strstr(message, "deeper than 34 levels") != NULL, "%s", message);
	ck_assert_ptr_null(root);
	free(line);

	line = deep_publish(2000);
	ck_assert_int_eq(ctl_request_decode(line, &root, &type, &id, &args, &code, &message), -1);
	ck_assert_str_eq(code, "bad_json");
	free(line);
}
END_TEST

START_TEST(test_request_decode_errors)
{
	cJSON *root;
	const cJSON *args;
	enum ctl_type type;
	unsigned long id;
	const char *code, *message;
	size_t i;

	for (i = 0; i < sizeof bad_requests / sizeof bad_requests[0]; i++) {
		root = (cJSON *)1;
		args = (const cJSON *)1;
		code = message = NULL;
		ck_assert_msg(ctl_request_decode(bad_requests[i].line, &root, &type, &id, &args,
				  &code, &message) == -1,
		    "accepted: %s", bad_requests[i].line);
		ck_assert_msg(strcmp(code, bad_requests[i].code) == 0, "%s: code %s, want %s",
		    bad_requests[i].line, code, bad_requests[i].code);
		ck_assert_msg(id == bad_requests[i].id, "%s: id %lu", bad_requests[i].line, id);
		ck_assert_ptr_nonnull(message);
		ck_assert_uint_gt(strlen(message), 0);
		ck_assert_ptr_null(root);
		ck_assert_ptr_null(args);
		ck_assert_int_eq(type, CTL_UNKNOWN);
	}
}
END_TEST

START_TEST(test_request_decode_accepts)
{
	static const char *good[] = {
		"{\"v\":1,\"id\":0,\"type\":\"health\"}",
		"  {\"type\":\"rooms\",\"id\":3,\"v\":1.0}  ",
		"{\"v\":1,\"id\":1,\"type\":\"stats\",\"args\":{}}",
		"{\"v\":1,\"id\":2,\"type\":\"ban\",\"args\":{\"user_id\":\"u\"},\"extra\":true}",
	};
	cJSON *root;
	const cJSON *args;
	enum ctl_type type;
	unsigned long id;
	const char *code, *message;
	size_t i;

	/* Unknown top-level fields are ignored, so later versions can add some. */
	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		ck_assert_msg(
		    ctl_request_decode(good[i], &root, &type, &id, &args, &code, &message) == 0,
		    "refused: %s", good[i]);
		ck_assert_ptr_nonnull(root);
		cJSON_Delete(root);
	}
}
END_TEST

START_TEST(test_reply_decode)
{
	static const struct {
		const char *line;
		int rc;
	} cases[] = {
		{ "{\"v\":1,\"id\":5,\"ok\":true,\"result\":{\"rooms\":2}}", CTL_OK },
		{ "{\"v\":1,\"id\":5,\"ok\":true}", CTL_OK },
		{ "{\"v\":1,\"id\":5,\"ok\":false,\"error\":{\"code\":\"c\",\"message\":\"m\"}}",
		    CTL_ERR_REMOTE },
		{ "{\"v\":1,\"id\":0,\"ok\":false,\"error\":{\"code\":\"c\",\"message\":\"m\"}}",
		    CTL_ERR_REMOTE },
		{ "{\"v\":1,\"id\":0,\"ok\":true}", CTL_ERR_UNAVAILABLE },
		{ "{\"v\":1,\"id\":6,\"ok\":true}", CTL_ERR_UNAVAILABLE },
		{ "{\"v\":1,\"ok\":true}", CTL_ERR_UNAVAILABLE },
		{ "{\"v\":2,\"id\":5,\"ok\":true}", CTL_ERR_UNAVAILABLE },
		{ "{\"id\":5,\"ok\":true}", CTL_ERR_UNAVAILABLE },
		{ "{\"v\":1,\"id\":5,\"ok\":1}", CTL_ERR_UNAVAILABLE },
		{ "{\"v\":1,\"id\":5}", CTL_ERR_UNAVAILABLE },
		{ "{\"v\":1,\"id\":5,\"ok\":true,\"result\":[]}", CTL_ERR_UNAVAILABLE },
		{ "{\"v\":1,\"id\":5,\"ok\":false}", CTL_ERR_UNAVAILABLE },
		{ "{\"v\":1,\"id\":5,\"ok\":false,\"error\":{\"code\":1,\"message\":\"m\"}}",
		    CTL_ERR_UNAVAILABLE },
		{ "{\"v\":1,\"id\":5,\"ok\":false,\"error\":{\"code\":\"c\"}}",
		    CTL_ERR_UNAVAILABLE },
		{ "{\"v\":1,\"id\":5,\"ok\":true} junk", CTL_ERR_UNAVAILABLE },
		{ "[]", CTL_ERR_UNAVAILABLE },
		{ "", CTL_ERR_UNAVAILABLE },
	};
	cJSON *result;
	char *code, *cause;
	size_t i;
	int rc;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		result = (cJSON *)1;
		code = cause = (char *)1;
		rc = ctl_reply_decode(cases[i].line, 5, &result, &code, &cause);
		ck_assert_msg(
		    rc == cases[i].rc, "%s: rc %d, want %d", cases[i].line, rc, cases[i].rc);
		if (rc == CTL_OK) {
			ck_assert(cJSON_IsObject(result));
			ck_assert_ptr_null(code);
			ck_assert_ptr_null(cause);
		} else {
			ck_assert_ptr_null(result);
			ck_assert_ptr_nonnull(cause);
			if (rc == CTL_ERR_REMOTE) {
				ck_assert_str_eq(code, "c");
				ck_assert_str_eq(cause, "m");
			} else
				ck_assert_ptr_null(code);
		}
		cJSON_Delete(result);
		free(code);
		free(cause);
	}
}
END_TEST

/* ---- client against an in-test server ---- */

enum srv_mode {
	SRV_OK, /* answers with a result echoing the request */
	SRV_REMOTE, /* answers ok:false */
	SRV_REMOTE_NO_ID, /* answers ok:false with id 0 */
	SRV_SILENT, /* reads the request, never answers */
	SRV_NOREAD, /* accepts, never reads */
	SRV_SPLIT, /* answers in small pieces with pauses */
	SRV_WRONG_ID, /* answers a request it was not asked */
	SRV_GARBAGE, /* answers a line that is not JSON */
	SRV_BAD_REPLY, /* answers JSON that is not a valid reply */
	SRV_HUGE, /* answers an endless line */
	SRV_CLOSE, /* hangs up without answering */
	SRV_EXTRA, /* answers, then sends more lines */
};

#define SRV_MAX_CONNS 8
/* What SRV_HUGE tries to send: far beyond CTL_LINE_MAX and socket buffers. */
#define SRV_HUGE_TOTAL (64 * 1024 * 1024)

struct srv {
	char dir[64];
	char path[sizeof((struct sockaddr_un *)0)->sun_path];
	int lfd;
	enum srv_mode mode;
	int conns;
	pthread_t thread;
	/* written by the server thread, read after join */
	unsigned long ids[SRV_MAX_CONNS];
	char types[SRV_MAX_CONNS][32];
	int served;
	size_t huge_sent;
	int error; /* errno of an unexpected server failure */
};

static int
srv_take_line(char *line, size_t len, void *arg)
{
	char **out = arg;

	*out = xstrndup(line, len);
	return 1;
}

/* Reads one request line; NULL on EOF or error. */
static char *
srv_read_line(int fd)
{
	struct ctl_linebuf lb;
	char buf[4096], *line = NULL;
	ssize_t n;

	ctl_linebuf_init(&lb, CTL_LINE_MAX);
	while (line == NULL) {
		n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (ctl_linebuf_feed(&lb, buf, (size_t)n, srv_take_line, &line) != 0 &&
		    line == NULL)
			break;
	}
	ctl_linebuf_clear(&lb);
	return line;
}

static int
srv_send(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Waits until the client hangs up, without reading what it sent. */
static void
srv_wait_hangup(int fd)
{
	struct pollfd pfd = { fd, POLLRDHUP, 0 };

	while (poll(&pfd, 1, 5000) < 0 && errno == EINTR)
		continue;
}

/* Reads and drops everything until the client hangs up. */
static void
srv_drain(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof buf, 0)) != 0) {
		if (n < 0 && errno != EINTR)
			break;
	}
}

static void
srv_serve(struct srv *s, int fd)
{
	cJSON *root = NULL, *result;
	const cJSON *args;
	enum ctl_type type;
	unsigned long id = 0;
	const char *code, *message;
	char *line = NULL, *reply = NULL, *chunk;
	size_t len, off, step;
	int i;

	if (s->mode == SRV_NOREAD) {
		srv_wait_hangup(fd);
		return;
	}
	line = srv_read_line(fd);
	if (line == NULL) {
		s->error = EPROTO;
		return;
	}
	if (ctl_request_decode(line, &root, &type, &id, &args, &code, &message) != 0) {
		reply = ctl_reply_encode_error(id, code, message);
		srv_send(fd, reply, strlen(reply));
		goto out;
	}
	s->ids[s->served] = id;
	snprintf(s->types[s->served], sizeof s->types[0], "%s", ctl_type_name(type));

	switch (s->mode) {
	case SRV_OK:
	case SRV_EXTRA:
		result = cJSON_CreateObject();
		cJSON_AddStringToObject(result, "type", ctl_type_name(type));
		cJSON_AddNumberToObject(result, "id", (double)id);
		if (args != NULL)
			cJSON_AddItemToObject(result, "args", cJSON_Duplicate(args, 1));
		reply = ctl_reply_encode_ok(id, result);
		cJSON_Delete(result);
		srv_send(fd, reply, strlen(reply));
		if (s->mode == SRV_EXTRA)
			srv_send(fd, "{\"v\":1}\nmore garbage\n", 21);
		break;
	case SRV_REMOTE:
	case SRV_REMOTE_NO_ID:
		reply = ctl_reply_encode_error(
		    s->mode == SRV_REMOTE ? id : 0, "not_found", "room \"r9\" does not exist");
		srv_send(fd, reply, strlen(reply));
		break;
	case SRV_SILENT:
		srv_drain(fd);
		break;
	case SRV_SPLIT:
		reply = ctl_reply_encode_ok(id, NULL);
		len = strlen(reply);
		step = len / 4 + 1;
		for (off = 0; off < len; off += step) {
			if (srv_send(fd, reply + off, off + step > len ? len - off : step) != 0)
				break;
			sleep_ms(40);
		}
		break;
	case SRV_WRONG_ID:
		reply = ctl_reply_encode_ok(id + 1, NULL);
		srv_send(fd, reply, strlen(reply));
		break;
	case SRV_GARBAGE:
		srv_send(fd, "hello, this is not chatd\n", 25);
		break;
	case SRV_BAD_REPLY:
		reply = xasprintf("{\"v\":1,\"id\":%lu,\"ok\":\"yes\"}\n", id);
		srv_send(fd, reply, strlen(reply));
		break;
	case SRV_HUGE:
		chunk = xmalloc(65536);
		memset(chunk, 'x', 65536);
		for (i = 0; i < SRV_HUGE_TOTAL / 65536; i++) {
			if (srv_send(fd, chunk, 65536) != 0)
				break;
			s->huge_sent += 65536;
		}
		free(chunk);
		break;
	case SRV_CLOSE:
	case SRV_NOREAD:
		break;
	}
out:
	cJSON_Delete(root);
	free(reply);
	free(line);
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	int fd;

	while (s->served < s->conns) {
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			s->error = errno;
			break;
		}
		srv_serve(s, fd);
		s->served++;
		close(fd);
	}
	return NULL;
}

/* Binds a listening socket in a fresh temp dir and serves conns calls. */
static void
srv_start(struct srv *s, enum srv_mode mode, int conns)
{
	struct sockaddr_un sa;

	memset(s, 0, sizeof *s);
	snprintf(s->dir, sizeof s->dir, "/tmp/test_ctl.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(s->dir));
	snprintf(s->path, sizeof s->path, "%s/control.sock", s->dir);
	s->mode = mode;
	s->conns = conns;
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s->lfd, 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", s->path);
	ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(s->lfd, 16), 0);
	ck_assert_int_eq(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

static void
srv_stop(struct srv *s)
{
	ck_assert_int_eq(pthread_join(s->thread, NULL), 0);
	ck_assert_int_eq(close(s->lfd), 0);
	ck_assert_int_eq(unlink(s->path), 0);
	ck_assert_int_eq(rmdir(s->dir), 0);
	ck_assert_int_eq(s->error, 0);
	ck_assert_int_eq(s->served, s->conns);
}

/* One call with the usual out-parameters; frees what the call returned. */
struct call {
	int rc;
	cJSON *result;
	char *code;
	char *cause;
	long long elapsed_ms;
};

static void
call(struct call *c, const char *path, int timeout_ms, enum ctl_type type, const cJSON *args)
{
	long long start = clock_mono_ms();

	c->result = (cJSON *)1;
	c->code = (char *)1;
	c->cause = (char *)1;
	c->rc = ctl_call(path, timeout_ms, type, args, &c->result, &c->code, &c->cause);
	c->elapsed_ms = clock_mono_ms() - start;
	if (c->rc == CTL_OK) {
		ck_assert_ptr_nonnull(c->result);
		ck_assert_ptr_null(c->code);
		ck_assert_ptr_null(c->cause);
	} else {
		ck_assert_ptr_null(c->result);
		ck_assert_ptr_nonnull(c->cause);
		if (c->rc == CTL_ERR_REMOTE)
			ck_assert_ptr_nonnull(c->code);
		else
			ck_assert_ptr_null(c->code);
	}
}

static void
call_clear(struct call *c)
{
	cJSON_Delete(c->result);
	free(c->code);
	free(c->cause);
	memset(c, 0, sizeof *c);
}

static void
assert_unavailable(struct call *c, const char *fragment)
{
	ck_assert_int_eq(c->rc, CTL_ERR_UNAVAILABLE);
	ck_assert_msg(
	    strstr(c->cause, fragment) != NULL, "cause \"%s\" lacks \"%s\"", c->cause, fragment);
}

START_TEST(test_call_missing_socket)
{
	char dir[] = "/tmp/test_ctl.XXXXXX", *path;
	struct call c;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = xasprintf("%s/control.sock", dir);
	/* Refused at once: it does not sit out its (long) timeout first. */
	call(&c, path, 10000, CTL_HEALTH, NULL);
	assert_unavailable(&c, "chatd is not running");
	assert_unavailable(&c, path);
	assert_unavailable(&c, strerror(ENOENT));
	ck_assert_int_lt(c.elapsed_ms, 10000);
	call_clear(&c);
	free(path);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_call_refused)
{
	char dir[] = "/tmp/test_ctl.XXXXXX";
	struct sockaddr_un sa;
	struct call c;
	int fd;

	/* A socket file left behind by a chatd that died: nobody listens. */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/control.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(close(fd), 0);

	call(&c, sa.sun_path, 1000, CTL_HEALTH, NULL);
	assert_unavailable(&c, "chatd is not running");
	assert_unavailable(&c, sa.sun_path);
	assert_unavailable(&c, strerror(ECONNREFUSED));
	call_clear(&c);
	ck_assert_int_eq(unlink(sa.sun_path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_call_path_too_long)
{
	struct sockaddr_un sa;
	struct call c;
	char *path;

	path = xmalloc(sizeof sa.sun_path + 10);
	memset(path, 'a', sizeof sa.sun_path + 9);
	path[0] = '/';
	path[sizeof sa.sun_path + 9] = '\0';
	call(&c, path, 1000, CTL_HEALTH, NULL);
	assert_unavailable(&c, "too long");
	call_clear(&c);
	free(path);
}
END_TEST

START_TEST(test_call_request_too_large)
{
	cJSON *args;
	struct call c;
	char *big;

	/* Refused locally, the way chatd would, without connecting at all. */
	big = xmalloc(CTL_LINE_MAX + 1);
	memset(big, 'p', CTL_LINE_MAX);
	big[CTL_LINE_MAX] = '\0';
	args = cJSON_CreateObject();
	cJSON_AddStringToObject(args, "payload", big);
	call(&c, "/nonexistent/control.sock", 1000, CTL_PUBLISH, args);
	ck_assert_int_eq(c.rc, CTL_ERR_REMOTE);
	ck_assert_str_eq(c.code, "too_large");
	ck_assert_ptr_nonnull(strstr(c.cause, "limit"));
	call_clear(&c);
	cJSON_Delete(args);
	free(big);
}
END_TEST

START_TEST(test_call_ok)
{
	struct srv s;
	struct call c;
	cJSON *args;
	const cJSON *item;

	srv_start(&s, SRV_OK, 2);
	args = cJSON_CreateObject();
	cJSON_AddStringToObject(args, "room_id", "r1");
	call(&c, s.path, 2000, CTL_STATS, args);
	ck_assert_int_eq(c.rc, CTL_OK);
	item = cJSON_GetObjectItem(c.result, "type");
	ck_assert_str_eq(item->valuestring, "stats");
	ck_assert(cJSON_Compare(cJSON_GetObjectItem(c.result, "args"), args, 1));
	call_clear(&c);

	call(&c, s.path, 2000, CTL_HEALTH, NULL);
	ck_assert_int_eq(c.rc, CTL_OK);
	ck_assert_ptr_null(cJSON_GetObjectItem(c.result, "args"));
	call_clear(&c);
	cJSON_Delete(args);
	srv_stop(&s);

	/* Every call gets a fresh, non-zero id. */
	ck_assert_uint_ne(s.ids[0], 0);
	ck_assert_uint_ne(s.ids[1], 0);
	ck_assert_uint_ne(s.ids[0], s.ids[1]);
	ck_assert_str_eq(s.types[0], "stats");
	ck_assert_str_eq(s.types[1], "health");
}
END_TEST

START_TEST(test_call_optional_outputs)
{
	struct srv s;
	char *cause = NULL;

	srv_start(&s, SRV_OK, 1);
	ck_assert_int_eq(ctl_call(s.path, 2000, CTL_HEALTH, NULL, NULL, NULL, &cause), CTL_OK);
	ck_assert_ptr_null(cause);
	srv_stop(&s);

	srv_start(&s, SRV_REMOTE, 1);
	ck_assert_int_eq(
	    ctl_call(s.path, 2000, CTL_HEALTH, NULL, NULL, NULL, &cause), CTL_ERR_REMOTE);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	srv_stop(&s);
}
END_TEST

START_TEST(test_call_remote_error)
{
	struct srv s;
	struct call c;

	srv_start(&s, SRV_REMOTE, 1);
	call(&c, s.path, 2000, CTL_KICK, NULL);
	ck_assert_int_eq(c.rc, CTL_ERR_REMOTE);
	ck_assert_str_eq(c.code, "not_found");
	ck_assert_str_eq(c.cause, "room \"r9\" does not exist");
	call_clear(&c);
	srv_stop(&s);

	/* Id 0: chatd could not tell which request it refused; still its word. */
	srv_start(&s, SRV_REMOTE_NO_ID, 1);
	call(&c, s.path, 2000, CTL_KICK, NULL);
	ck_assert_int_eq(c.rc, CTL_ERR_REMOTE);
	ck_assert_str_eq(c.code, "not_found");
	call_clear(&c);
	srv_stop(&s);
}
END_TEST

/*
 * A 300 ms timeout held: the call gave up long before it would have
 * without one (the stand-in never answers). Ten times the timeout, so a
 * loaded machine or valgrind does not fail it; speed is for benchmarks.
 */
#define TIMEOUT_HELD_MS (300 * 10)

START_TEST(test_call_timeout)
{
	struct srv s;
	struct call c;

	srv_start(&s, SRV_SILENT, 1);
	call(&c, s.path, 300, CTL_HEALTH, NULL);
	assert_unavailable(&c, "did not answer within 300 ms");
	ck_assert_int_ge(c.elapsed_ms, 250);
	ck_assert_int_lt(c.elapsed_ms, TIMEOUT_HELD_MS);
	call_clear(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_call_timeout_while_sending)
{
	struct srv s;
	struct call c;
	cJSON *args;
	char *big;

	/* Larger than the socket buffers, to a server that never reads: the
	 * deadline must hold while the send is stuck too. */
	big = xmalloc(CTL_LINE_MAX - 1024);
	memset(big, 'q', CTL_LINE_MAX - 1025);
	big[CTL_LINE_MAX - 1025] = '\0';
	args = cJSON_CreateObject();
	cJSON_AddStringToObject(args, "payload", big);
	srv_start(&s, SRV_NOREAD, 1);
	call(&c, s.path, 300, CTL_PUBLISH, args);
	assert_unavailable(&c, "did not answer within 300 ms");
	ck_assert_int_lt(c.elapsed_ms, TIMEOUT_HELD_MS);
	call_clear(&c);
	srv_stop(&s);
	cJSON_Delete(args);
	free(big);
}
END_TEST

/*
 * chat-api's back-off: after one timeout, calls to the same socket fail at
 * once for the back-off period (other sockets are not affected); then one
 * call tries again, and an answer ends the back-off.
 */
START_TEST(test_call_backoff_after_timeout)
{
	struct srv hung, other;
	struct call c;
	int i;

	ctl_backoff_set(600);
	srv_start(&hung, SRV_SILENT, 3);
	call(&c, hung.path, 200, CTL_ROOMS, NULL);
	assert_unavailable(&c, "did not answer within 200 ms");
	ck_assert_int_ge(c.elapsed_ms, 150);
	call_clear(&c);

	/* chatd wakes up, but nobody asks it until the back-off ends. Set
	 * before any connection that could see it: the server thread waits
	 * in accept(). */
	hung.mode = SRV_OK;
	/* Without the back-off each of these would wait 200 ms. */
	for (i = 0; i < 10; i++) {
		call(&c, hung.path, 200, CTL_ROOMS, NULL);
		assert_unavailable(&c, "not asked again for");
		ck_assert_int_lt(c.elapsed_ms, 50);
		call_clear(&c);
	}
	/* Another socket is not affected. */
	srv_start(&other, SRV_OK, 1);
	call(&c, other.path, 2000, CTL_HEALTH, NULL);
	ck_assert_int_eq(c.rc, CTL_OK);
	call_clear(&c);
	srv_stop(&other);

	sleep_ms(650);
	call(&c, hung.path, 2000, CTL_HEALTH, NULL);
	ck_assert_int_eq(c.rc, CTL_OK);
	call_clear(&c);
	call(&c, hung.path, 2000, CTL_HEALTH, NULL);
	ck_assert_int_eq(c.rc, CTL_OK);
	call_clear(&c);
	srv_stop(&hung);
	ctl_backoff_set(0);
}
END_TEST

/* Off (chatctl, chat-sync): every call waits its own timeout. */
START_TEST(test_call_no_backoff_by_default)
{
	struct srv s;
	struct call c;

	srv_start(&s, SRV_SILENT, 2);
	call(&c, s.path, 150, CTL_HEALTH, NULL);
	assert_unavailable(&c, "did not answer within 150 ms");
	call_clear(&c);
	call(&c, s.path, 150, CTL_HEALTH, NULL);
	assert_unavailable(&c, "did not answer within 150 ms");
	ck_assert_int_ge(c.elapsed_ms, 100);
	call_clear(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_call_split_reply)
{
	struct srv s;
	struct call c;

	srv_start(&s, SRV_SPLIT, 1);
	call(&c, s.path, 2000, CTL_ROOMS, NULL);
	ck_assert_int_eq(c.rc, CTL_OK);
	ck_assert(cJSON_IsObject(c.result));
	ck_assert_int_ge(c.elapsed_ms, 100);
	call_clear(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_call_extra_lines_ignored)
{
	struct srv s;
	struct call c;

	srv_start(&s, SRV_EXTRA, 1);
	call(&c, s.path, 2000, CTL_HEALTH, NULL);
	ck_assert_int_eq(c.rc, CTL_OK);
	call_clear(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_call_wrong_id)
{
	struct srv s;
	struct call c;

	srv_start(&s, SRV_WRONG_ID, 1);
	call(&c, s.path, 2000, CTL_HEALTH, NULL);
	assert_unavailable(&c, "bad reply");
	call_clear(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_call_garbage)
{
	struct srv s;
	struct call c;

	srv_start(&s, SRV_GARBAGE, 1);
	call(&c, s.path, 2000, CTL_HEALTH, NULL);
	assert_unavailable(&c, "bad reply");
	call_clear(&c);
	srv_stop(&s);

	srv_start(&s, SRV_BAD_REPLY, 1);
	call(&c, s.path, 2000, CTL_HEALTH, NULL);
	assert_unavailable(&c, "bad reply");
	call_clear(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_call_closed_without_reply)
{
	struct srv s;
	struct call c;

	srv_start(&s, SRV_CLOSE, 1);
	call(&c, s.path, 2000, CTL_HEALTH, NULL);
	assert_unavailable(&c, "without replying");
	call_clear(&c);
	srv_stop(&s);
}
END_TEST

START_TEST(test_call_huge_reply)
{
	struct srv s;
	struct call c;

	srv_start(&s, SRV_HUGE, 1);
	call(&c, s.path, 3000, CTL_HEALTH, NULL);
	assert_unavailable(&c, "bad reply (over 262144 bytes");
	call_clear(&c);
	srv_stop(&s);
	/* The client stopped reading at the limit: the rest never left. */
	ck_assert_uint_lt(s.huge_sent, SRV_HUGE_TOTAL / 4);
}
END_TEST

struct caller {
	const char *path;
	int rc;
};

static void *
caller_main(void *arg)
{
	struct caller *cl = arg;
	cJSON *result = NULL;
	char *code = NULL, *cause = NULL;

	cl->rc = ctl_call(cl->path, 3000, CTL_HEALTH, NULL, &result, &code, &cause);
	cJSON_Delete(result);
	free(code);
	free(cause);
	return NULL;
}

START_TEST(test_call_threads_unique_ids)
{
	struct caller cl[4];
	pthread_t th[4];
	struct srv s;
	int i, j;

	srv_start(&s, SRV_OK, 4);
	for (i = 0; i < 4; i++) {
		cl[i].path = s.path;
		cl[i].rc = 99;
		ck_assert_int_eq(pthread_create(&th[i], NULL, caller_main, &cl[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_int_eq(cl[i].rc, CTL_OK);
	}
	srv_stop(&s);
	for (i = 0; i < 4; i++) {
		for (j = 0; j < i; j++)
			ck_assert_uint_ne(s.ids[i], s.ids[j]);
	}
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc;

	tc = tcase_create("types");
	tcase_add_test(tc, test_type_table_round_trip);
	tcase_add_test(tc, test_type_table_pinned);
	tcase_add_test(tc, test_type_table_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("linebuf");
	tcase_add_test(tc, test_linebuf_split_chunks);
	tcase_add_test(tc, test_linebuf_many_lines_one_chunk);
	tcase_add_test(tc, test_linebuf_crlf);
	tcase_add_test(tc, test_linebuf_limit);
	tcase_add_test(tc, test_linebuf_memory_bounded);
	tcase_add_test(tc, test_linebuf_callback_stops);
	tcase_add_test(tc, test_linebuf_nul_byte);
	suite_add_tcase(s, tc);

	tc = tcase_create("codec");
	tcase_add_test(tc, test_request_round_trip);
	tcase_add_test(tc, test_reply_encode);
	tcase_add_test(tc, test_request_decode_errors);
	tcase_add_test(tc, test_request_depth);
	tcase_add_test(tc, test_request_decode_accepts);
	tcase_add_test(tc, test_reply_decode);
	suite_add_tcase(s, tc);

	tc = tcase_create("client");
	/* Valgrind slows the huge-reply and thread cases several-fold. */
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_call_missing_socket);
	tcase_add_test(tc, test_call_refused);
	tcase_add_test(tc, test_call_path_too_long);
	tcase_add_test(tc, test_call_request_too_large);
	tcase_add_test(tc, test_call_ok);
	tcase_add_test(tc, test_call_optional_outputs);
	tcase_add_test(tc, test_call_remote_error);
	tcase_add_test(tc, test_call_timeout);
	tcase_add_test(tc, test_call_timeout_while_sending);
	tcase_add_test(tc, test_call_backoff_after_timeout);
	tcase_add_test(tc, test_call_no_backoff_by_default);
	tcase_add_test(tc, test_call_split_reply);
	tcase_add_test(tc, test_call_extra_lines_ignored);
	tcase_add_test(tc, test_call_wrong_id);
	tcase_add_test(tc, test_call_garbage);
	tcase_add_test(tc, test_call_closed_without_reply);
	tcase_add_test(tc, test_call_huge_reply);
	tcase_add_test(tc, test_call_threads_unique_ids);
	suite_add_tcase(s, tc);
	return s;
}
