/*
 * chat-api without a web server: the route table, URI parsing and the
 * dispatcher's error paths, driven with in-memory requests against a real
 * SQLite file in a temporary directory. chatd is absent (its control
 * socket path does not exist), which is what these paths must handle.
 */
#include "autoconf.h"

#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "api.h"
#include "config.h"
#include "db.h"
#include "dispatch.h"
#include "jsonutil.h"
#include "routes.h"
#include "token.h"
#include "uri.h"

/* ---- route table ---- */

START_TEST(test_routes_table_sane)
{
	ck_assert_uint_ge(routes_count, 14);
	for (size_t i = 0; i < routes_count; i++) {
		const struct api_route *r = &routes_table[i];
		ck_assert_ptr_nonnull(r->handler);
		ck_assert_msg(strncmp(r->pattern, "/management", 11) == 0, "%s", r->pattern);
		ck_assert_msg(strcmp(r->method, "GET") == 0 || strcmp(r->method, "POST") == 0 ||
			strcmp(r->method, "DELETE") == 0,
		    "bad method %s", r->method);
		for (size_t j = i + 1; j < routes_count; j++)
			ck_assert_msg(strcmp(r->method, routes_table[j].method) != 0 ||
				strcmp(r->pattern, routes_table[j].pattern) != 0,
			    "duplicate route %s %s", r->method, r->pattern);
	}
}
END_TEST

/* Every pattern, with its placeholders filled in, routes to itself. */
START_TEST(test_routes_each_matches_itself)
{
	for (size_t i = 0; i < routes_count; i++) {
		const struct api_route *r = &routes_table[i], *m;
		char path[256], allow[48];
		const char *params[API_MAX_PARAMS], *why;
		size_t np = 0, o = 0;
		struct uri u;
		int known;

		for (const char *p = r->pattern; *p != '\0';) {
			if (*p == '{') {
				o += (size_t)snprintf(path + o, sizeof path - o, "x%zu", np++);
				p = strchr(p, '}') + 1;
			} else
				path[o++] = *p++;
		}
		path[o] = '\0';
		ck_assert_int_eq(uri_parse(path, &u, &why), 0);
		m = routes_match(r->method, &u, params, &np, &known, allow, sizeof allow);
		ck_assert_ptr_eq(m, r);
		uri_clear(&u);
	}
}
END_TEST

START_TEST(test_routes_405_allow)
{
	struct uri u;
	const char *params[API_MAX_PARAMS], *why;
	char allow[48];
	size_t np;
	int known;

	ck_assert_int_eq(uri_parse("/management/rooms", &u, &why), 0);
	ck_assert_ptr_null(routes_match("PUT", &u, params, &np, &known, allow, sizeof allow));
	ck_assert_int_eq(known, 1);
	ck_assert_str_eq(allow, "POST, GET, HEAD");
	uri_clear(&u);
	ck_assert_int_eq(uri_parse("/management/nope", &u, &why), 0);
	ck_assert_ptr_null(routes_match("GET", &u, params, &np, &known, allow, sizeof allow));
	ck_assert_int_eq(known, 0);
	uri_clear(&u);
}
END_TEST

/* ---- URI parsing ---- */

START_TEST(test_uri_parse)
{
	struct uri u;
	const char *why;

	ck_assert_int_eq(
	    uri_parse("/management/rooms/a%2Fb/bans/%E5%BC%A0?page=2&limit=10&x=a+b&y", &u, &why),
	    0);
	ck_assert_uint_eq(u.nsegs, 5);
	ck_assert_str_eq(u.segs[2], "a/b");
	ck_assert_str_eq(u.segs[4], "张");
	ck_assert_str_eq(uri_query_get(&u, "page"), "2");
	ck_assert_str_eq(uri_query_get(&u, "x"), "a b");
	ck_assert_str_eq(uri_query_get(&u, "y"), "");
	ck_assert_ptr_null(uri_query_get(&u, "z"));
	uri_clear(&u);

	ck_assert_int_eq(uri_parse("/management/rooms/", &u, &why), 0);
	ck_assert_uint_eq(u.nsegs, 2);
	uri_clear(&u);
	ck_assert_int_eq(uri_parse("/management//rooms", &u, &why), 0);
	ck_assert_uint_eq(u.nsegs, 3);
	ck_assert_str_eq(u.segs[1], "");
	uri_clear(&u);
	ck_assert_int_eq(uri_parse("/", &u, &why), 0);
	ck_assert_uint_eq(u.nsegs, 0);
	uri_clear(&u);

	ck_assert_int_eq(uri_parse("/management/%zz", &u, &why), -1);
	uri_clear(&u);
	ck_assert_int_eq(uri_parse("/management/%4", &u, &why), -1);
	uri_clear(&u);
	ck_assert_int_eq(uri_parse("/management/%00", &u, &why), -1);
	uri_clear(&u);
	ck_assert_int_eq(uri_parse("/management/%ff", &u, &why), -1);
	uri_clear(&u);
	ck_assert_int_eq(uri_parse("management", &u, &why), -1);
	uri_clear(&u);
	ck_assert_int_eq(uri_parse("/a/b/c/d/e/f/g/h/i/j/k/l/m/n", &u, &why), -1);
	uri_clear(&u);
}
END_TEST

/* ---- dispatcher ---- */

static char tmpdir[64];
static struct config cfg;
static struct api_ctx ctx;

struct membody {
	const char *data;
	size_t len, off;
};

static long
mem_read(void *io, char *buf, size_t len)
{
	struct membody *b = io;
	size_t n = b->len - b->off;

	if (n > len)
		n = len;
	memcpy(buf, b->data + b->off, n);
	b->off += n;
	return (long)n;
}

/* Runs one request; returns the status and the parsed body (caller deletes). */
static int
call(const char *method, const char *uri, const char *key, const char *ctype, const char *body,
    long long clen, cJSON **out, struct api_response *keep)
{
	struct api_request req;
	struct api_response resp;
	struct membody b = { body ? body : "", body ? strlen(body) : 0, 0 };
	int status;

	memset(&req, 0, sizeof req);
	req.method = method;
	req.uri = uri;
	req.api_key = key;
	req.content_type = ctype;
	req.content_length = clen == -2 ? (long long)b.len : clen;
	req.read_body = mem_read;
	req.io = &b;
	api_dispatch(&ctx, &req, &resp);
	status = resp.status;
	ck_assert_ptr_nonnull(resp.body);
	*out = cJSON_Parse(resp.body);
	ck_assert_msg(*out != NULL, "response is not JSON: %s", resp.body);
	if (keep != NULL)
		*keep = resp;
	else
		api_response_clear(&resp);
	return status;
}

static const char *
err_code(const cJSON *root)
{
	const cJSON *e = cJSON_GetObjectItem(root, "error");
	const cJSON *c = cJSON_GetObjectItem(e, "code");

	ck_assert_msg(cJSON_IsString(c), "no error.code in response");
	ck_assert(cJSON_IsString(cJSON_GetObjectItem(e, "message")));
	return c->valuestring;
}

static void
setup(void)
{
	char *cause = NULL;

	snprintf(tmpdir, sizeof tmpdir, "/tmp/chatd-test-api-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	memset(&cfg, 0, sizeof cfg);
	cfg.admin_api_key = strdup("your_secret_api_key");
	cfg.api_max_body_bytes = 65536;
	cfg.control_timeout_ms = 200;
	cfg.control_socket = malloc(128);
	snprintf(cfg.control_socket, 128, "%s/control.sock", tmpdir);
	cfg.database_path = malloc(128);
	snprintf(cfg.database_path, 128, "%s/chat.db", tmpdir);
	ck_assert_int_eq(db_open(cfg.database_path, &ctx.db, &cause), DB_OK);
	ctx.cfg = &cfg;
}

static void
teardown(void)
{
	char cmd[128];

	db_close(ctx.db);
	free(cfg.admin_api_key);
	free(cfg.token_secret);
	free(cfg.control_socket);
	free(cfg.database_path);
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

#define KEY "your_secret_api_key"
#define JSON "application/json"

START_TEST(test_dispatch_auth)
{
	cJSON *r;

	ck_assert_int_eq(call("GET", "/management/rooms", NULL, NULL, NULL, 0, &r, NULL), 401);
	ck_assert_str_eq(err_code(r), "unauthorized");
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/rooms", "wrong", NULL, NULL, 0, &r, NULL), 401);
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/rooms", KEY "x", NULL, NULL, 0, &r, NULL), 401);
	cJSON_Delete(r);
	ck_assert_int_eq(
	    call("GET", "/management/rooms", "your_secret_api_ke", NULL, NULL, 0, &r, NULL), 401);
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/rooms", KEY, NULL, NULL, 0, &r, NULL), 200);
	cJSON_Delete(r);

	free(cfg.admin_api_key);
	cfg.admin_api_key = NULL;
	for (size_t i = 0; i < routes_count; i++) {
		if (routes_table[i].flags & ROUTE_PUBLIC)
			continue; /* below */
		ck_assert_int_eq(call(routes_table[i].method, routes_table[i].pattern, KEY, NULL,
				     NULL, 0, &r, NULL),
		    503);
		ck_assert_str_eq(err_code(r), "api_key_not_configured");
		cJSON_Delete(r);
	}
	/* liveness needs no key, with or without one configured, and says only ok */
	ck_assert_int_eq(
	    call("GET", "/management/health/live", NULL, NULL, NULL, 0, &r, NULL), 200);
	ck_assert_int_eq(cJSON_GetArraySize(r), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(r, "status")->valuestring, "ok");
	cJSON_Delete(r);
	cfg.admin_api_key = strdup(KEY);
	ck_assert_int_eq(
	    call("GET", "/management/health/live", "wrong", NULL, NULL, 0, &r, NULL), 200);
	cJSON_Delete(r);
	/* only GET/HEAD: another method is refused as anywhere, key first */
	ck_assert_int_eq(
	    call("POST", "/management/health/live", NULL, NULL, NULL, 0, &r, NULL), 401);
	cJSON_Delete(r);
	ck_assert_int_eq(
	    call("POST", "/management/health/live", KEY, NULL, NULL, 0, &r, NULL), 405);
	cJSON_Delete(r);
	/* and the public route reveals nothing else: its neighbours still need the key */
	ck_assert_int_eq(call("GET", "/management/health/x", NULL, NULL, NULL, 0, &r, NULL), 401);
	cJSON_Delete(r);
}
END_TEST

/* A request with only an Authorization header; returns the status, fills *resp. */
static int
call_bearer(const char *uri, const char *authorization, struct api_response *resp)
{
	struct api_request req;
	struct membody b = { "", 0, 0 };

	memset(&req, 0, sizeof req);
	req.method = "GET";
	req.uri = uri;
	req.authorization = authorization;
	req.content_length = 0;
	req.read_body = mem_read;
	req.io = &b;
	api_dispatch(&ctx, &req, resp);
	return resp->status;
}

START_TEST(test_dispatch_bearer)
{
	static const struct {
		const char *authorization;
		int status;
	} cases[] = {
		{ "Bearer " KEY, 200 },
		{ "bearer " KEY, 200 },
		{ "BEARER \t " KEY, 200 },
		{ "Bearer " KEY "x", 401 },
		{ "Bearer wrong", 401 },
		{ "Bearer ", 401 },
		{ "Bearer" KEY, 401 },
		{ "Basic " KEY, 401 },
		{ KEY, 401 },
		{ "", 401 },
	};
	struct api_response resp;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ck_assert_msg(call_bearer("/management/rooms", cases[i].authorization, &resp) ==
			cases[i].status,
		    "Authorization: %s", cases[i].authorization);
		api_response_clear(&resp);
	}
}
END_TEST

/* The value of the sample line that starts with series ("name{labels}"), 0 when absent. */
static double
sample_value(const char *body, const char *series)
{
	size_t n = strlen(series);
	const char *p = body;

	while ((p = strstr(p, series)) != NULL) {
		if ((p == body || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	return 0;
}

/* Scrapes with the bearer credential; returns the body (caller frees). */
static char *
scrape(void)
{
	struct api_response resp;
	char *head, *body;

	ck_assert_int_eq(call_bearer("/management/metrics", "Bearer " KEY, &resp), 200);
	head = api_response_head(&resp);
	ck_assert_ptr_nonnull(strstr(head, "Content-Type: text/plain; version=0.0.4"));
	free(head);
	body = resp.body;
	resp.body = NULL;
	api_response_clear(&resp);
	return body;
}

#define ROOMS_200 \
	"chatd_api_requests_total{method=\"GET\",route=\"/management/rooms\",status=\"200\"}"
#define NONE_401 "chatd_api_requests_total{method=\"\",route=\"none\",status=\"401\"}"
#define ROOMS_COUNT \
	"chatd_api_request_duration_seconds_count{method=\"GET\",route=\"/management/rooms\"}"

START_TEST(test_dispatch_metrics)
{
	struct api_response resp;
	char *before, *after, *head;
	cJSON *r;

	/* Counters are per process (the tests may share one): compare before and after. */
	before = scrape();
	ck_assert_int_eq(call("GET", "/management/rooms", KEY, NULL, NULL, 0, &r, NULL), 200);
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/rooms", "wrong", NULL, NULL, 0, &r, NULL), 401);
	cJSON_Delete(r);
	after = scrape();
	/* no chatd here: its part is left out and said so */
	ck_assert_ptr_nonnull(strstr(after, "\nchatd_up 0\n"));
	ck_assert_ptr_null(strstr(after, "chatd_connections"));
	ck_assert(sample_value(after, ROOMS_200) == sample_value(before, ROOMS_200) + 1);
	ck_assert(sample_value(after, NONE_401) == sample_value(before, NONE_401) + 1);
	ck_assert(sample_value(after, ROOMS_COUNT) == sample_value(before, ROOMS_COUNT) + 1);
	free(before);
	free(after);
	/* an error from the metrics route is JSON again */
	ck_assert_int_eq(call_bearer("/management/metrics", "Bearer no", &resp), 401);
	head = api_response_head(&resp);
	ck_assert_ptr_nonnull(strstr(head, "Content-Type: application/json"));
	free(head);
	api_response_clear(&resp);
}
END_TEST

START_TEST(test_dispatch_routing_errors)
{
	struct api_response resp;
	cJSON *r;
	char *head;

	ck_assert_int_eq(call("GET", "/managementfoo", KEY, NULL, NULL, 0, &r, NULL), 404);
	ck_assert_str_eq(err_code(r), "not_found");
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/nope", KEY, NULL, NULL, 0, &r, NULL), 404);
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/other", KEY, NULL, NULL, 0, &r, NULL), 404);
	cJSON_Delete(r);
	ck_assert_int_eq(call("PUT", "/management/rooms", KEY, NULL, NULL, 0, &r, &resp), 405);
	ck_assert_str_eq(err_code(r), "method_not_allowed");
	head = api_response_head(&resp);
	ck_assert_ptr_nonnull(strstr(head, "Allow: POST, GET, HEAD\r\n"));
	ck_assert_ptr_nonnull(strstr(head, "Status: 405 Method Not Allowed\r\n"));
	free(head);
	api_response_clear(&resp);
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/rooms/%zz", KEY, NULL, NULL, 0, &r, NULL), 400);
	cJSON_Delete(r);
	/* A method that is no HTTP token (invalid UTF-8 here) is not echoed:
	 * the answer stays UTF-8 JSON (found by tests/fuzz/fuzz_api). */
	ck_assert_int_eq(call("PO\xffS", "/management/rooms", KEY, NULL, NULL, 0, &r, &resp), 405);
	ck_assert(utf8_valid(resp.body, strlen(resp.body)));
	ck_assert_ptr_nonnull(strstr(resp.body, "this method is not allowed"));
	api_response_clear(&resp);
	cJSON_Delete(r);
	ck_assert_int_eq(call("PATCH", "/management/rooms", KEY, NULL, NULL, 0, &r, NULL), 405);
	ck_assert_ptr_nonnull(
	    strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring,
		"PATCH is not allowed"));
	cJSON_Delete(r);
}
END_TEST

/* An error quoting a client's id cut to 64 bytes stays valid UTF-8. */
START_TEST(test_dispatch_error_utf8)
{
	char uri[256];
	cJSON *r;

	/* 63 ASCII bytes, then a two-byte character the "%.64s" cut splits */
	snprintf(uri, sizeof uri, "/management/rooms/%063d%%C6%%8Fx", 0);
	ck_assert_int_eq(call("GET", uri, KEY, NULL, NULL, 0, &r, NULL), 404);
	ck_assert_str_eq(err_code(r), "room_not_found");
	ck_assert(utf8_valid(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring,
	    strlen(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring)));
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_dispatch_head)
{
	struct api_response get, head;
	cJSON *r;
	char *h1, *h2;

	ck_assert_int_eq(call("GET", "/management/rooms", KEY, NULL, NULL, 0, &r, &get), 200);
	cJSON_Delete(r);
	ck_assert_int_eq(call("HEAD", "/management/rooms", KEY, NULL, NULL, 0, &r, &head), 200);
	cJSON_Delete(r);
	/* the same head, Content-Length included; nothing after it */
	h1 = api_response_head(&get);
	h2 = api_response_head(&head);
	ck_assert_str_eq(h1, h2);
	ck_assert_str_eq(api_response_body(&head), "");
	ck_assert_str_eq(api_response_body(&get), get.body);
	free(h1);
	free(h2);
	api_response_clear(&get);
	api_response_clear(&head);

	/* checks run as for GET: a HEAD without the key is 401, on a POST-only path 405 */
	ck_assert_int_eq(call("HEAD", "/management/rooms", NULL, NULL, NULL, 0, &r, NULL), 401);
	cJSON_Delete(r);
	ck_assert_int_eq(
	    call("HEAD", "/management/rooms/x/events", KEY, NULL, NULL, 0, &r, &head), 405);
	h1 = api_response_head(&head);
	ck_assert_ptr_nonnull(strstr(h1, "Allow: POST\r\n"));
	free(h1);
	api_response_clear(&head);
	cJSON_Delete(r);
}
END_TEST

/* A write lock held by another process past the busy timeout is a 503 to retry, not a 500. */
START_TEST(test_dispatch_busy)
{
	struct api_response resp;
	sqlite3 *other;
	cJSON *r;
	char *head;

	ck_assert_int_eq(sqlite3_open(cfg.database_path, &other), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(
	    call("POST", "/management/rooms", KEY, JSON, "{\"room_name\":\"x\"}", -2, &r, &resp),
	    503);
	ck_assert_str_eq(err_code(r), "database_busy");
	cJSON_Delete(r);
	head = api_response_head(&resp);
	ck_assert_ptr_nonnull(strstr(head, "Retry-After: 1\r\n"));
	free(head);
	api_response_clear(&resp);
	ck_assert_int_eq(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_close(other), SQLITE_OK);

	/* the lock gone, the same request works, and no Retry-After lingers */
	ck_assert_int_eq(
	    call("POST", "/management/rooms", KEY, JSON, "{\"room_name\":\"x\"}", -2, &r, &resp),
	    201);
	cJSON_Delete(r);
	head = api_response_head(&resp);
	ck_assert_ptr_null(strstr(head, "Retry-After"));
	free(head);
	api_response_clear(&resp);
}
END_TEST

START_TEST(test_uri_parse_bool)
{
	static const char *const yes[] = { "", "true", "TRUE", "1", "yes", "Yes", "on", "ON" };
	static const char *const no[] = { "false", "False", "0", "no", "NO", "off" };
	static const char *const bad[] = { "maybe", "2", "tru", "yes please", " 1", "-1" };

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
		ck_assert_msg(uri_parse_bool(yes[i]) == 1, "%s", yes[i]);
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		ck_assert_msg(uri_parse_bool(no[i]) == 0, "%s", no[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(uri_parse_bool(bad[i]) == -1, "%s", bad[i]);
}
END_TEST

START_TEST(test_dispatch_body_errors)
{
	char *big;
	cJSON *r;

	/* declared too large: refused before reading */
	ck_assert_int_eq(
	    call("POST", "/management/rooms", KEY, JSON, "{}", 5 * 1024 * 1024, &r, NULL), 413);
	ck_assert_str_eq(err_code(r), "payload_too_large");
	cJSON_Delete(r);
	/* no length given (chunked): refused while reading */
	big = malloc(200000);
	memset(big, ' ', 199999);
	big[199999] = '\0';
	ck_assert_int_eq(call("POST", "/management/rooms", KEY, JSON, big, -1, &r, NULL), 413);
	cJSON_Delete(r);
	free(big);

	ck_assert_int_eq(call("POST", "/management/rooms", KEY, "text/plain",
			     "{\"room_name\":\"a\"}", -2, &r, NULL),
	    415);
	ck_assert_str_eq(err_code(r), "unsupported_media_type");
	cJSON_Delete(r);
	ck_assert_int_eq(
	    call("POST", "/management/rooms", KEY, NULL, "{\"room_name\":\"a\"}", -2, &r, NULL),
	    415);
	cJSON_Delete(r);
	ck_assert_int_eq(call("POST", "/management/rooms", KEY, "application/json; charset=UTF-8",
			     "{\"room_name\":\"a\"}", -2, &r, NULL),
	    201);
	cJSON_Delete(r);

	ck_assert_int_eq(
	    call("POST", "/management/rooms", KEY, JSON, "{\"room_name\":", -2, &r, NULL), 400);
	ck_assert_str_eq(err_code(r), "invalid_json");
	cJSON_Delete(r);
	ck_assert_int_eq(call("POST", "/management/rooms", KEY, JSON, "[1,2]", -2, &r, NULL), 400);
	cJSON_Delete(r);
	ck_assert_int_eq(call("POST", "/management/rooms", KEY, JSON, "{} {}", -2, &r, NULL), 400);
	cJSON_Delete(r);
	ck_assert_int_eq(call("POST", "/management/rooms", KEY, JSON,
			     "{\"room_name\":\"a\\u0000b\"}", -2, &r, NULL),
	    400);
	cJSON_Delete(r);
	ck_assert_int_eq(
	    call("POST", "/management/rooms", KEY, JSON, "{\"room_name\":\"\xff\"}", -2, &r, NULL),
	    400);
	cJSON_Delete(r);
	ck_assert_int_eq(call("POST", "/management/rooms", KEY, NULL, NULL, 0, &r, NULL), 400);
	cJSON_Delete(r);
	/* a body where none is taken */
	ck_assert_int_eq(call("GET", "/management/rooms", KEY, JSON, "{}", -2, &r, NULL), 400);
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_dispatch_room_fields)
{
	cJSON *r;
	static const char *const bad[] = {
		"{}",
		"{\"room_name\":\"\"}",
		"{\"room_name\":5}",
		"{\"room_name\":\"a\",\"admin_user_ids\":\"admin1\"}",
		"{\"room_name\":\"a\",\"admin_user_ids\":[1]}",
		"{\"room_name\":\"a\",\"admin_user_ids\":[\"\"]}",
		"{\"room_name\":\"a\",\"extra\":1}",
		"{\"room_name\":\"line\\nbreak\"}",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(
		    call("POST", "/management/rooms", KEY, JSON, bad[i], -2, &r, NULL) == 400,
		    "accepted %s", bad[i]);
		ck_assert_str_eq(err_code(r), "invalid_field");
		cJSON_Delete(r);
	}
}
END_TEST

START_TEST(test_dispatch_room_lifecycle)
{
	const char *body = "{\"room_name\":\"测试房间 🎉 '; DROP TABLE rooms; --\","
			   "\"admin_user_ids\":[\"admin1\",\"admin2\",\"admin1\"]}";
	char uri[256], id[64];
	cJSON *r;

	ck_assert_int_eq(call("POST", "/management/rooms", KEY, JSON, body, -2, &r, NULL), 201);
	ck_assert_str_eq(
	    cJSON_GetObjectItem(r, "room_name")->valuestring, "测试房间 🎉 '; DROP TABLE rooms; --");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "admin_user_ids")), 2);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "current_users")));
	snprintf(id, sizeof id, "%s", cJSON_GetObjectItem(r, "room_id")->valuestring);
	ck_assert_uint_eq(strlen(id), 36);
	ck_assert_int_eq(id[14], '4'); /* UUID version 4 */
	cJSON_Delete(r);

	snprintf(uri, sizeof uri, "/management/rooms/%s", id);
	ck_assert_int_eq(call("GET", uri, KEY, NULL, NULL, 0, &r, NULL), 200);
	ck_assert_str_eq(cJSON_GetObjectItem(r, "room_id")->valuestring, id);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "live")));
	cJSON_Delete(r);

	/* events need chatd, which is not running */
	snprintf(uri, sizeof uri, "/management/rooms/%s/events", id);
	ck_assert_int_eq(
	    call("POST", uri, KEY, JSON,
		"{\"event_type\":\"lucky_money\",\"payload\":{\"amount\":100}}", -2, &r, NULL),
	    503);
	ck_assert_str_eq(err_code(r), "chatd_unavailable");
	ck_assert_ptr_nonnull(
	    strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring,
		"not running"));
	cJSON_Delete(r);
	ck_assert_int_eq(
	    call("POST", uri, KEY, JSON, "{\"event_type\":\"bad type!\"}", -2, &r, NULL), 400);
	/* The same words as chatctl's: one rule, one wording. */
	ck_assert_str_eq(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring,
	    "field \"event_type\" must be 1 to 64 characters of A-Z a-z 0-9 _ . -");
	cJSON_Delete(r);

	/* bans are recorded even without chatd */
	snprintf(uri, sizeof uri, "/management/rooms/%s/bans", id);
	ck_assert_int_eq(
	    call("POST", uri, KEY, JSON,
		"{\"user_id\":\"u1\",\"duration_seconds\":600,\"reason\":\"spam\"}", -2, &r, NULL),
	    201);
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(r, "expires_at")));
	cJSON_Delete(r);
	ck_assert_int_eq(call("POST", uri, KEY, JSON,
			     "{\"user_id\":\"u2\",\"duration_seconds\":-1}", -2, &r, NULL),
	    400);
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", uri, KEY, NULL, NULL, 0, &r, NULL), 200);
	ck_assert_int_eq(cJSON_GetObjectItem(r, "count")->valueint, 1);
	cJSON_Delete(r);
	snprintf(uri, sizeof uri, "/management/rooms/%s/bans/u1", id);
	ck_assert_int_eq(call("DELETE", uri, KEY, NULL, NULL, 0, &r, NULL), 200);
	cJSON_Delete(r);
	ck_assert_int_eq(call("DELETE", uri, KEY, NULL, NULL, 0, &r, NULL), 404);
	ck_assert_str_eq(err_code(r), "ban_not_found");
	cJSON_Delete(r);

	snprintf(uri, sizeof uri, "/management/rooms/%s", id);
	ck_assert_int_eq(call("DELETE", uri, KEY, NULL, NULL, 0, &r, NULL), 200);
	cJSON_Delete(r);
	ck_assert_int_eq(call("DELETE", uri, KEY, NULL, NULL, 0, &r, NULL), 409);
	ck_assert_str_eq(err_code(r), "room_closed");
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/rooms", KEY, NULL, NULL, 0, &r, NULL), 200);
	ck_assert_int_eq(cJSON_GetObjectItem(r, "count")->valueint, 0);
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/sync/rooms", KEY, NULL, NULL, 0, &r, NULL), 200);
	ck_assert_int_eq(cJSON_GetObjectItem(r, "count")->valueint, 1);
	cJSON_Delete(r);

	ck_assert_int_eq(call("GET", "/management/rooms/00000000-0000-4000-8000-000000000000", KEY,
			     NULL, NULL, 0, &r, NULL),
	    404);
	ck_assert_str_eq(err_code(r), "room_not_found");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_dispatch_history_queries)
{
	char uri[256], id[64];
	cJSON *r;
	static const char *const bad[] = { "page=0", "page=-1", "page=abc", "limit=0", "limit=1x",
		"from=-5", "from=20&to=10", "page=99999999999999999999", "page=", "limit=" };

	ck_assert_int_eq(
	    call("POST", "/management/rooms", KEY, JSON, "{\"room_name\":\"h\"}", -2, &r, NULL),
	    201);
	snprintf(id, sizeof id, "%s", cJSON_GetObjectItem(r, "room_id")->valuestring);
	cJSON_Delete(r);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(uri, sizeof uri, "/management/sync/chat-history/%s?%s", id, bad[i]);
		ck_assert_msg(
		    call("GET", uri, KEY, NULL, NULL, 0, &r, NULL) == 400, "accepted %s", bad[i]);
		ck_assert_str_eq(err_code(r), "invalid_query");
		cJSON_Delete(r);
	}
	snprintf(uri, sizeof uri, "/management/sync/chat-history/%s?page=1&limit=5000", id);
	ck_assert_int_eq(call("GET", uri, KEY, NULL, NULL, 0, &r, NULL), 200);
	ck_assert_int_eq(cJSON_GetObjectItem(r, "limit")->valueint, 1000);
	ck_assert_int_eq(cJSON_GetObjectItem(r, "total")->valueint, 0);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "has_more")));
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/sync/session-history/nope?page=1", KEY, NULL,
			     NULL, 0, &r, NULL),
	    404);
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_dispatch_sync_and_health)
{
	cJSON *r;

	ck_assert_int_eq(call("POST", "/management/sync", KEY, NULL, NULL, 0, &r, NULL), 202);
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(r, "sync_request_id")));
	cJSON_Delete(r);
	ck_assert_int_eq(call("POST", "/management/sync", KEY, JSON, "{}", -2, &r, NULL), 202);
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/sync", KEY, NULL, NULL, 0, &r, NULL), 200);
	ck_assert(cJSON_IsArray(cJSON_GetObjectItem(r, "rooms")));
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(r, "timestamp")));
	cJSON_Delete(r);
	ck_assert_int_eq(call("GET", "/management/health", KEY, NULL, NULL, 0, &r, NULL), 200);
	ck_assert_str_eq(cJSON_GetObjectItem(r, "status")->valuestring, "degraded");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "chatd"), "reachable")));
	/* The cause is given. */
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r, "causes")), 1);
	ck_assert_ptr_nonnull(strstr(
	    cJSON_GetArrayItem(cJSON_GetObjectItem(r, "causes"), 0)->valuestring, "unreachable"));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "database"), "ok")));
	ck_assert_int_eq(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(r, "database"), "pending_sync_requests")
		->valueint,
	    2);
	cJSON_Delete(r);
}
END_TEST

/* Creates a room and returns its id in id. */
static void
make_room(char id[64])
{
	cJSON *r;

	ck_assert_int_eq(
	    call("POST", "/management/rooms", KEY, JSON, "{\"room_name\":\"t\"}", -2, &r, NULL),
	    201);
	snprintf(id, 64, "%s", cJSON_GetObjectItem(r, "room_id")->valuestring);
	cJSON_Delete(r);
}

START_TEST(test_dispatch_tokens)
{
	static const char *const bad[] = {
		"{}",
		"{\"user_id\":\"\"}",
		"{\"user_id\":5}",
		"{\"user_id\":null}",
		"{\"user_id\":\"a\\nb\"}",
		"{\"user_id\":\"u\",\"nickname\":7}",
		"{\"user_id\":\"u\",\"nickname\":\"tab\\there\"}",
		"{\"user_id\":\"u\",\"admin\":\"yes\"}",
		"{\"user_id\":\"u\",\"admin\":1}",
		"{\"user_id\":\"u\",\"ttl_seconds\":0}",
		"{\"user_id\":\"u\",\"ttl_seconds\":2592001}",
		"{\"user_id\":\"u\",\"ttl_seconds\":1.5}",
		"{\"user_id\":\"u\",\"ttl_seconds\":\"60\"}",
		"{\"user_id\":\"u\",\"room\":\"other\"}",
	};
	struct token_claims c;
	const char *why;
	char uri[256], id[64], expect[512], *body;
	long long now = (long long)time(NULL);
	cJSON *r;

	make_room(id);
	snprintf(uri, sizeof uri, "/management/rooms/%s/tokens", id);

	/* without TOKEN_SECRET chatd checks no tokens, so none are issued */
	ck_assert_int_eq(call("POST", uri, KEY, JSON, "{\"user_id\":\"u1\"}", -2, &r, NULL), 503);
	ck_assert_str_eq(err_code(r), "tokens_disabled");
	ck_assert_ptr_nonnull(
	    strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "message")->valuestring,
		"TOKEN_SECRET"));
	cJSON_Delete(r);

	cfg.token_secret = strdup("test-token-secret");
	ck_assert_int_eq(call("POST", uri, KEY, JSON,
			     "{\"user_id\":\"u 1/é&x\",\"nickname\":\"张三\",\"admin\":true,"
			     "\"ttl_seconds\":120}",
			     -2, &r, NULL),
	    201);
	ck_assert_str_eq(cJSON_GetObjectItem(r, "room_id")->valuestring, id);
	ck_assert_str_eq(cJSON_GetObjectItem(r, "user_id")->valuestring, "u 1/é&x");
	ck_assert_str_eq(cJSON_GetObjectItem(r, "nickname")->valuestring, "张三");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "admin")));
	ck_assert_int_ge((long long)cJSON_GetObjectItem(r, "expires_at")->valuedouble, now + 120);
	ck_assert_int_le((long long)cJSON_GetObjectItem(r, "expires_at")->valuedouble, now + 122);
	ck_assert_int_eq(token_verify(cfg.token_secret,
			     cJSON_GetObjectItem(r, "token")->valuestring, now, &c, &why),
	    0);
	ck_assert_str_eq(c.sub, "u 1/é&x");
	ck_assert_str_eq(c.room, id);
	ck_assert_str_eq(c.nick, "张三");
	ck_assert_int_eq(c.admin, 1);
	ck_assert_int_eq(c.exp, (long long)cJSON_GetObjectItem(r, "expires_at")->valuedouble);
	token_claims_clear(&c);
	ck_assert_int_eq(token_verify("another secret",
			     cJSON_GetObjectItem(r, "token")->valuestring, now, &c, &why),
	    -1);
	snprintf(expect, sizeof expect,
	    "/ws/rooms/"
	    "%s?user_id=u%%201%%2F%%C3%%A9%%26x&nickname=%%E5%%BC%%A0%%E4%%B8%%89&token=%s",
	    id, cJSON_GetObjectItem(r, "token")->valuestring);
	ck_assert_str_eq(cJSON_GetObjectItem(r, "ws_url")->valuestring, expect);
	cJSON_Delete(r);

	/* defaults: not admin, no nickname, one hour */
	ck_assert_int_eq(call("POST", uri, KEY, JSON, "{\"user_id\":\"u2\"}", -2, &r, NULL), 201);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "admin")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "nickname")));
	ck_assert_int_ge((long long)cJSON_GetObjectItem(r, "expires_at")->valuedouble, now + 3600);
	ck_assert_int_le((long long)cJSON_GetObjectItem(r, "expires_at")->valuedouble, now + 3602);
	ck_assert_ptr_null(strstr(cJSON_GetObjectItem(r, "ws_url")->valuestring, "nickname="));
	ck_assert_int_eq(token_verify(cfg.token_secret,
			     cJSON_GetObjectItem(r, "token")->valuestring, now, &c, &why),
	    0);
	ck_assert_int_eq(c.admin, 0);
	ck_assert_ptr_null(c.nick);
	token_claims_clear(&c);
	cJSON_Delete(r);

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(call("POST", uri, KEY, JSON, bad[i], -2, &r, NULL) == 400,
		    "accepted %s", bad[i]);
		ck_assert_str_eq(err_code(r), "invalid_field");
		cJSON_Delete(r);
	}
	/* user_id 128 bytes is the limit; 129 is not */
	body = malloc(200);
	snprintf(body, 200, "{\"user_id\":\"%0128d\"}", 0);
	ck_assert_int_eq(call("POST", uri, KEY, JSON, body, -2, &r, NULL), 201);
	cJSON_Delete(r);
	snprintf(body, 200, "{\"user_id\":\"%0129d\"}", 0);
	ck_assert_int_eq(call("POST", uri, KEY, JSON, body, -2, &r, NULL), 400);
	cJSON_Delete(r);
	snprintf(body, 200, "{\"user_id\":\"u\",\"nickname\":\"%0129d\"}", 0);
	ck_assert_int_eq(call("POST", uri, KEY, JSON, body, -2, &r, NULL), 400);
	cJSON_Delete(r);
	free(body);

	ck_assert_int_eq(
	    call("POST", "/management/rooms/00000000-0000-4000-8000-000000000000/tokens", KEY, JSON,
		"{\"user_id\":\"u1\"}", -2, &r, NULL),
	    404);
	ck_assert_str_eq(err_code(r), "room_not_found");
	cJSON_Delete(r);

	snprintf(uri, sizeof uri, "/management/rooms/%s", id);
	ck_assert_int_eq(call("DELETE", uri, KEY, NULL, NULL, 0, &r, NULL), 200);
	cJSON_Delete(r);
	snprintf(uri, sizeof uri, "/management/rooms/%s/tokens", id);
	ck_assert_int_eq(call("POST", uri, KEY, JSON, "{\"user_id\":\"u1\"}", -2, &r, NULL), 409);
	ck_assert_str_eq(err_code(r), "room_closed");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_key_equal)
{
	ck_assert(api_key_equal("abc", "abc"));
	ck_assert(!api_key_equal("abd", "abc"));
	ck_assert(!api_key_equal("ab", "abc"));
	ck_assert(!api_key_equal("abcd", "abc"));
	ck_assert(!api_key_equal("", "abc"));
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("routes");

	tcase_add_test(tc, test_routes_table_sane);
	tcase_add_test(tc, test_routes_each_matches_itself);
	tcase_add_test(tc, test_routes_405_allow);
	tcase_add_test(tc, test_uri_parse);
	tcase_add_test(tc, test_key_equal);
	suite_add_tcase(s, tc);

	tc = tcase_create("dispatch");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_dispatch_auth);
	tcase_add_test(tc, test_dispatch_bearer);
	tcase_add_test(tc, test_dispatch_metrics);
	tcase_add_test(tc, test_dispatch_routing_errors);
	tcase_add_test(tc, test_dispatch_head);
	tcase_add_test(tc, test_dispatch_busy);
	tcase_add_test(tc, test_dispatch_error_utf8);
	tcase_add_test(tc, test_uri_parse_bool);
	tcase_add_test(tc, test_dispatch_body_errors);
	tcase_add_test(tc, test_dispatch_room_fields);
	tcase_add_test(tc, test_dispatch_room_lifecycle);
	tcase_add_test(tc, test_dispatch_history_queries);
	tcase_add_test(tc, test_dispatch_sync_and_health);
	tcase_add_test(tc, test_dispatch_tokens);
	suite_add_tcase(s, tc);
	return s;
}
