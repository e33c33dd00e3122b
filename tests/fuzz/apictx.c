/*
 * The chat-api fixture (see apictx.h).
 */
#include "autoconf.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apictx.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "dispatch.h"
#include "fuzz.h"
#include "jsonutil.h"
#include "log.h"
#include "xmalloc.h"

/* Inputs between two fresh databases. */
#define FUZZ_DB_INPUTS 256

static char fuzz_dir[256];
static struct config fuzz_cfg;
static struct api_ctx fuzz_ctx;
static int fuzz_ready;
static unsigned fuzz_inputs;
static int fuzz_verbose = -1;

/* Removes the temporary directory and what SQLite left in it. */
static void
fuzz_api_cleanup(void)
{
	struct dirent *de;
	DIR *d;

	db_close(fuzz_ctx.db);
	fuzz_ctx.db = NULL;
	if (fuzz_dir[0] == '\0' || (d = opendir(fuzz_dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[512];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", fuzz_dir, de->d_name);
		(void)unlink(path);
	}
	(void)closedir(d);
	(void)rmdir(fuzz_dir);
}

static void
fuzz_must(int rc, char *cause)
{
	if (rc != DB_OK) {
		fprintf(stderr, "fuzz fixture: %s\n", cause ? cause : "database error");
		abort();
	}
}

/* A fresh database with one open room, two messages, a session and a ban. */
static void
fuzz_api_open_db(void)
{
	const char *admins[] = { "admin1" };
	char *cause = NULL, path[512];
	int64_t now = clock_wall_ms(), id, seq;

	db_close(fuzz_ctx.db);
	fuzz_ctx.db = NULL;
	snprintf(path, sizeof path, "%s/chat.db-wal", fuzz_dir);
	(void)unlink(path);
	snprintf(path, sizeof path, "%s/chat.db-shm", fuzz_dir);
	(void)unlink(path);
	(void)unlink(fuzz_cfg.database_path);
	fuzz_must(db_open(fuzz_cfg.database_path, &fuzz_ctx.db, &cause), cause);
	fuzz_must(db_room_create(fuzz_ctx.db, FUZZ_ROOM, "seeded", admins, 1, now, &cause), cause);
	fuzz_must(db_message_append(fuzz_ctx.db, FUZZ_ROOM, DB_MESSAGE_CHAT, "u1", "nick", 0, "hi",
		      NULL, now, &id, &seq, &cause),
	    cause);
	fuzz_must(db_message_append(fuzz_ctx.db, FUZZ_ROOM, DB_MESSAGE_CUSTOM, "admin1", NULL, 1,
		      "{\"a\":1}", "poll", now, &id, &seq, &cause),
	    cause);
	fuzz_must(db_session_open(
		      fuzz_ctx.db, "", FUZZ_ROOM, "u1", "nick", 0, "127.0.0.1", now, &id, &cause),
	    cause);
	fuzz_must(db_ban_add(fuzz_ctx.db, FUZZ_ROOM, "u2", "spam", 0, now, &cause), cause);
}

struct api_ctx *
fuzz_api_ctx(void)
{
	const char *base;

	if (!fuzz_ready) {
		/* tmpfs when there is one: the handlers commit, and fsync is slow. */
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
		snprintf(fuzz_dir, sizeof fuzz_dir, "%s/chatd-fuzz-XXXXXX", base ? base : "/tmp");
		if (mkdtemp(fuzz_dir) == NULL) {
			perror("fuzz fixture: mkdtemp");
			abort();
		}
		/* Requests that fail on purpose must not flood the fuzzer's output. */
		log_set_level(LOG_LEVEL_ERROR);
		memset(&fuzz_cfg, 0, sizeof fuzz_cfg);
		fuzz_cfg.admin_api_key = xstrdup(FUZZ_API_KEY);
		fuzz_cfg.token_secret = xstrdup("fuzz-token-secret");
		fuzz_cfg.api_max_body_bytes = 4096;
		fuzz_cfg.control_timeout_ms = 10;
		fuzz_cfg.max_message_bytes = 4096;
		fuzz_cfg.control_socket = xasprintf("%s/no-chatd.sock", fuzz_dir);
		fuzz_cfg.database_path = xasprintf("%s/chat.db", fuzz_dir);
		fuzz_ctx.cfg = &fuzz_cfg;
		atexit(fuzz_api_cleanup);
		fuzz_api_open_db();
		fuzz_ready = 1;
	}
	return &fuzz_ctx;
}

void
fuzz_api_next_input(void)
{
	(void)fuzz_api_ctx();
	if (++fuzz_inputs % FUZZ_DB_INPUTS == 0)
		fuzz_api_open_db();
}

long
fuzz_body_read(void *io, char *buf, size_t len)
{
	struct fuzz_body *b = io;
	size_t n = b->len - b->off;

	if (n > len)
		n = len;
	if (b->chunk > 0 && n > b->chunk)
		n = b->chunk;
	memcpy(buf, b->data + b->off, n);
	b->off += n;
	return (long)n;
}

/* GET uri with the key; returns the status and the parsed body (caller deletes). */
static int
fuzz_api_get(const char *uri, cJSON **out)
{
	struct fuzz_body body = { "", 0, 0, 0 };
	struct api_request req;
	struct api_response resp;
	int status;

	memset(&req, 0, sizeof req);
	req.method = "GET";
	req.uri = uri;
	req.api_key = FUZZ_API_KEY;
	req.content_length = -1;
	req.read_body = fuzz_body_read;
	req.io = &body;
	api_dispatch(fuzz_api_ctx(), &req, &resp);
	status = resp.status;
	*out = cJSON_Parse(resp.body);
	FUZZ_CHECK(*out != NULL);
	api_response_clear(&resp);
	return status;
}

static int
fuzz_json_equal(const cJSON *a, const cJSON *b)
{
	return a != NULL && b != NULL && cJSON_Compare(a, b, 1);
}

/*
 * What a 201 created must read back the same: a room (name and admins)
 * through GET /management/rooms/{id}, a ban (user and reason) through
 * GET /management/rooms/{id}/bans.
 */
static void
fuzz_api_read_back(const cJSON *created)
{
	const cJSON *room_id = cJSON_GetObjectItemCaseSensitive(created, "room_id");
	const cJSON *user_id = cJSON_GetObjectItemCaseSensitive(created, "user_id");
	const cJSON *ban;
	cJSON *got;
	char *uri;
	int found = 0;

	if (!cJSON_IsString(room_id) || strchr(room_id->valuestring, '%') != NULL ||
	    strchr(room_id->valuestring, '?') != NULL)
		return;
	if (cJSON_GetObjectItemCaseSensitive(created, "room_name") != NULL) {
		uri = xasprintf("/management/rooms/%s", room_id->valuestring);
		FUZZ_CHECK(fuzz_api_get(uri, &got) == 200);
		FUZZ_CHECK(fuzz_json_equal(cJSON_GetObjectItemCaseSensitive(created, "room_name"),
		    cJSON_GetObjectItemCaseSensitive(got, "room_name")));
		FUZZ_CHECK(
		    fuzz_json_equal(cJSON_GetObjectItemCaseSensitive(created, "admin_user_ids"),
			cJSON_GetObjectItemCaseSensitive(got, "admin_user_ids")));
		cJSON_Delete(got);
		free(uri);
	} else if (cJSON_IsString(user_id) &&
	    cJSON_GetObjectItemCaseSensitive(created, "expires_at") != NULL) {
		uri = xasprintf("/management/rooms/%s/bans", room_id->valuestring);
		FUZZ_CHECK(fuzz_api_get(uri, &got) == 200);
		cJSON_ArrayForEach(ban, cJSON_GetObjectItemCaseSensitive(got, "bans"))
		{
			if (fuzz_json_equal(
				user_id, cJSON_GetObjectItemCaseSensitive(ban, "user_id")) &&
			    fuzz_json_equal(cJSON_GetObjectItemCaseSensitive(created, "reason"),
				cJSON_GetObjectItemCaseSensitive(ban, "reason")))
				found = 1;
		}
		/* A ban short enough may have run out already. */
		FUZZ_CHECK(found ||
		    !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(created, "expires_at")));
		cJSON_Delete(got);
		free(uri);
	}
}

void
fuzz_api_call(const struct api_request *req)
{
	static const int known[] = { 200, 201, 202, 400, 401, 404, 405, 409, 413, 415, 503 };
	struct api_response resp;
	const cJSON *err;
	cJSON *root;
	char *head;
	size_t i;
	int ok = 0;

	api_dispatch(fuzz_api_ctx(), req, &resp);
	/* FUZZ_VERBOSE=1 shows what each input got, to check new seeds. */
	if (fuzz_verbose < 0)
		fuzz_verbose = getenv("FUZZ_VERBOSE") != NULL;
	if (fuzz_verbose)
		fprintf(stderr, "%s %s -> %d %.300s\n", req->method, req->uri, resp.status,
		    resp.body ? resp.body : "(no body)");
	for (i = 0; i < sizeof known / sizeof known[0]; i++)
		ok |= resp.status == known[i];
	if (!ok)
		fprintf(stderr, "fuzz: %s %s -> %d %s\n", req->method, req->uri, resp.status,
		    resp.body ? resp.body : "(no body)");
	FUZZ_CHECK(ok);
	FUZZ_CHECK(resp.body != NULL);
	/* JSON is UTF-8 (RFC 8259), whatever bytes the request carried. */
	if (!utf8_valid(resp.body, strlen(resp.body)))
		fprintf(stderr, "fuzz: not UTF-8: %s\n", resp.body);
	FUZZ_CHECK(utf8_valid(resp.body, strlen(resp.body)));
	/* The one answer that is not JSON: the metrics exposition, always a 200. */
	if (resp.content_type != NULL) {
		FUZZ_CHECK(resp.status == 200 && strncmp(resp.body, "# HELP ", 7) == 0);
		api_response_clear(&resp);
		return;
	}
	root = cJSON_Parse(resp.body);
	FUZZ_CHECK(cJSON_IsObject(root));
	if (resp.status >= 400) {
		err = cJSON_GetObjectItemCaseSensitive(root, "error");
		FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "code")));
		FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(err, "message")));
	}
	FUZZ_CHECK((resp.status == 405) == (resp.allow[0] != '\0'));
	if (resp.status == 201)
		fuzz_api_read_back(root);
	cJSON_Delete(root);
	head = api_response_head(&resp);
	FUZZ_CHECK(strstr(head, "\r\n\r\n") == head + strlen(head) - 4);
	free(head);
	api_response_clear(&resp);
}
