/*
 * Unit tests for the settings table and its parser (src/common/config.c):
 * the .env text parser, loading with a fake environment and files in a
 * mkdtemp directory, every seed default, value checks and the generated
 * --help and README table. Never reads the real environment, ./.env of the
 * checkout or the system's chatd.env: every load gets CHAT_ENV_FILE from
 * the fake environment, or runs in a temp directory.
 */
#include "autoconf.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "config.h"
#include "dbaddr.h"
#include "xmalloc.h"

/* Where every program puts the default database: a folder private to the user. */
static const char *
memory_db_path(void)
{
	static char buf[64];

	snprintf(buf, sizeof buf, "/dev/shm/chatd-%lu/memory.db", (unsigned long)geteuid());
	return buf;
}
#define CONFIG_MEMORY_DB_PATH memory_db_path()

/* ---- helpers ---- */

/* Pairs collected from config_parse_env_text. */
struct pairs {
	char *key[32];
	char *value[32];
	int n;
};

static int
pairs_set(const char *key, const char *value, void *arg)
{
	struct pairs *p = arg;

	ck_assert_int_lt(p->n, 32);
	p->key[p->n] = xstrdup(key);
	p->value[p->n] = xstrdup(value);
	p->n++;
	return 0;
}

static void
pairs_clear(struct pairs *p)
{
	for (int i = 0; i < p->n; i++) {
		free(p->key[i]);
		free(p->value[i]);
	}
	memset(p, 0, sizeof *p);
}

/* Parses text that must be valid; the pairs go to *p. */
static void
parse_ok(const char *text, struct pairs *p)
{
	char *cause = NULL;

	memset(p, 0, sizeof *p);
	ck_assert_msg(config_parse_env_text(text, strlen(text), pairs_set, p, &cause) == 0,
	    "refused: %s: %s", text, cause);
	ck_assert_ptr_null(cause);
}

/* Parses text that must be refused; returns the cause (caller frees). */
static char *
parse_bad(const char *text)
{
	struct pairs p = { 0 };
	char *cause = NULL;

	ck_assert_msg(config_parse_env_text(text, strlen(text), pairs_set, &p, &cause) == -1,
	    "accepted: %s", text);
	ck_assert_ptr_nonnull(cause);
	pairs_clear(&p);
	return cause;
}

static void
assert_pair(const struct pairs *p, int i, const char *key, const char *value)
{
	ck_assert_int_lt(i, p->n);
	ck_assert_str_eq(p->key[i], key);
	ck_assert_msg(strcmp(p->value[i], value) == 0, "%s: got \"%s\", want \"%s\"", key,
	    p->value[i], value);
}

static void
assert_contains(const char *haystack, const char *needle)
{
	ck_assert_msg(strstr(haystack, needle) != NULL, "\"%s\" lacks \"%s\"", haystack, needle);
}

/* A fake process environment for config_load. */
struct fakeenv {
	const char *key[16];
	const char *value[16];
	int n;
};

static const char *
fakeenv_get(const char *key, void *arg)
{
	struct fakeenv *env = arg;

	/* Last one wins, so a test can override what it set up earlier. */
	for (int i = env->n - 1; i >= 0; i--) {
		if (strcmp(env->key[i], key) == 0)
			return env->value[i];
	}
	return NULL;
}

static void
fakeenv_set(struct fakeenv *env, const char *key, const char *value)
{
	ck_assert_int_lt(env->n, 16);
	env->key[env->n] = key;
	env->value[env->n] = value;
	env->n++;
}

/* A private directory for env files; removed with everything in it. */
static char tmpdir[64];
static char *tmpfiles[16];
static int ntmpfiles;

static void
tmp_setup(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	ntmpfiles = 0;
}

static void
tmp_teardown(void)
{
	for (int i = 0; i < ntmpfiles; i++) {
		unlink(tmpfiles[i]);
		free(tmpfiles[i]);
	}
	ntmpfiles = 0;
	rmdir(tmpdir);
}

/* Writes text to a file in the temp dir; returns its path (owned here). */
static const char *
tmp_file(const char *name, const char *text)
{
	char *path;
	FILE *f;
	int i;

	path = xasprintf("%s/%s", tmpdir, name);
	for (i = 0; i < ntmpfiles; i++) {
		if (strcmp(tmpfiles[i], path) == 0)
			break;
	}
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	if (i < ntmpfiles) {
		/* Rewritten in place: keep the path callers already hold. */
		free(path);
		return tmpfiles[i];
	}
	ck_assert_int_lt(ntmpfiles, 16);
	tmpfiles[ntmpfiles++] = path;
	return path;
}

/* Loads with the given file text and fake environment; must succeed. */
static void
load_ok(struct config *cfg, const char *text, struct fakeenv *env)
{
	struct fakeenv empty = { { 0 }, { 0 }, 0 };
	char *cause = NULL;

	if (env == NULL)
		env = &empty;
	fakeenv_set(env, "CHAT_ENV_FILE", tmp_file("test.env", text));
	ck_assert_msg(config_load(cfg, fakeenv_get, env, &cause) == 0, "load failed: %s", cause);
	ck_assert_ptr_null(cause);
}

/* Loads and expects failure; returns the cause (caller frees). */
static char *
load_bad(const char *text, struct fakeenv *env)
{
	struct fakeenv empty = { { 0 }, { 0 }, 0 };
	struct config cfg;
	char *cause = NULL;

	if (env == NULL)
		env = &empty;
	fakeenv_set(env, "CHAT_ENV_FILE", tmp_file("test.env", text));
	ck_assert_int_eq(config_load(&cfg, fakeenv_get, env, &cause), -1);
	ck_assert_ptr_nonnull(cause);
	return cause;
}

/* Runs f(out) with stderr sent to a temp file; returns what was written. */
static char *
capture_stderr(void (*f)(void *), void *arg)
{
	char path[] = "/tmp/test_config.err.XXXXXX";
	char *buf;
	ssize_t n;
	int fd, saved;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	f(arg);
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	ck_assert_int_eq(close(saved), 0);
	buf = xmalloc(65536);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	n = read(fd, buf, 65535);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(unlink(path), 0);
	return buf;
}

/* Output of config_print_help or config_print_markdown. */
static char *
print_to_string(void (*print)(FILE *))
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(f);
	print(f);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

static void
print_help_all(FILE *f)
{
	config_print_help(f, ~0u);
}

static void
print_help_api(FILE *f)
{
	config_print_help(f, CONFIG_API);
}

static void
print_help_chatd(FILE *f)
{
	config_print_help(f, CONFIG_CHATD);
}

static void
print_help_sync(FILE *f)
{
	config_print_help(f, CONFIG_SYNC);
}

static void
print_help_ctl(FILE *f)
{
	config_print_help(f, CONFIG_CTL);
}

/* Every key the table must hold: the seed's, then chatd's own. */
static const char *const all_keys[] = {
	"DATABASE_URL",
	"BIND_ADDRESS",
	"ADMIN_API_KEY",
	"MAX_CONNECTIONS",
	"DATA_CALLBACK_URL",
	"ROOM_EVENT_CALLBACK_URL",
	"CHAT_HISTORY_CALLBACK_URL",
	"SESSION_HISTORY_CALLBACK_URL",
	"PERIODIC_SYNC_CALLBACK_URL",
	"CHAT_HISTORY_BATCH_SIZE",
	"SESSION_HISTORY_BATCH_SIZE",
	"CHAT_HISTORY_BATCH_INTERVAL_SECONDS",
	"SESSION_HISTORY_BATCH_INTERVAL_SECONDS",
	"CALLBACK_MAX_RETRIES",
	"CALLBACK_RETRY_DELAY_SECONDS",
	"CALLBACK_TIMEOUT_SECONDS",
	"SYNC_INTERVAL_SECONDS",
	"USER_MESSAGE_INTERVAL_SECS",
	"CHATD_LISTEN",
	"CHATD_SOCKET_GROUP",
	"TRUSTED_PROXIES",
	"TOKEN_SECRET",
	"CALLBACK_SIGNING_SECRET",
	"METRICS_TEXTFILE",
	"CALLBACK_DEAD_LETTER_ATTEMPTS",
	"CALLBACK_DEAD_LETTER_AGE_SECONDS",
	"MAX_MESSAGE_BYTES",
	"MAX_FRAME_BYTES",
	"MAX_CONNECTIONS_PER_ADDRESS",
	"WS_PING_INTERVAL_SECONDS",
	"WS_IDLE_TIMEOUT_SECONDS",
	"HANDSHAKE_TIMEOUT_SECONDS",
	"QUEUE_LOW_FRAMES",
	"QUEUE_HIGH_FRAMES",
	"CONTROL_SOCKET",
	"CONTROL_TIMEOUT_MS",
	"CONTROL_IDLE_TIMEOUT_SECONDS",
	"API_THREADS",
	"API_MAX_BODY_BYTES",
	"CLUSTER_NATS_URL",
	"NODE_ID",
	"CLUSTER_NAME",
	"CLUSTER_HEARTBEAT_SECS",
	"CLUSTER_NODE_TIMEOUT_SECS",
	"CLUSTER_GAP_WAIT_SECS",
	"LOG_LEVEL",
};
#define NSEED_KEYS 18
#define NKEYS (sizeof all_keys / sizeof all_keys[0])

/* Counts lines of text that start with prefix followed by key and then end. */
static int
count_rows(const char *text, const char *prefix, const char *key, const char *end)
{
	char *needle = xasprintf("%s%s%s", prefix, key, end);
	const char *line = text;
	int n = 0;

	while (line != NULL && *line != '\0') {
		if (strncmp(line, needle, strlen(needle)) == 0)
			n++;
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	free(needle);
	return n;
}

/* ---- .env text parser ---- */

START_TEST(test_parse_comments_blank_lines)
{
	struct pairs p;

	parse_ok("# a comment\n\n   \n\t\n  # indented comment\nA=1\n#B=2\n", &p);
	ck_assert_int_eq(p.n, 1);
	assert_pair(&p, 0, "A", "1");
	pairs_clear(&p);

	parse_ok("", &p);
	ck_assert_int_eq(p.n, 0);
	parse_ok("\n\n\n", &p);
	ck_assert_int_eq(p.n, 0);

	/* No newline after the last line. */
	parse_ok("A=1\nB=2", &p);
	ck_assert_int_eq(p.n, 2);
	assert_pair(&p, 1, "B", "2");
	pairs_clear(&p);
}
END_TEST

START_TEST(test_parse_export_and_spacing)
{
	struct pairs p;

	parse_ok("export A=1\nexport\tB=two\n  export   C = 3  \nD =4\nE= 5\nexported=6\n", &p);
	ck_assert_int_eq(p.n, 6);
	assert_pair(&p, 0, "A", "1");
	assert_pair(&p, 1, "B", "two");
	assert_pair(&p, 2, "C", "3");
	assert_pair(&p, 3, "D", "4");
	assert_pair(&p, 4, "E", "5");
	assert_pair(&p, 5, "exported", "6");
	pairs_clear(&p);

	parse_ok("A=\nB=   \nC=  # only a comment\n_K9=x\n", &p);
	ck_assert_int_eq(p.n, 4);
	assert_pair(&p, 0, "A", "");
	assert_pair(&p, 1, "B", "");
	assert_pair(&p, 2, "C", "");
	assert_pair(&p, 3, "_K9", "x");
	pairs_clear(&p);
}
END_TEST

START_TEST(test_parse_quotes)
{
	struct pairs p;

	parse_ok("A=\"hello world\"\n"
		 "B=\"  kept spaces  \"\n"
		 "C=\"\"\n"
		 "D='single # not a comment'\n"
		 "E='no \\n escapes in single'\n"
		 "F=\"it's\"\n"
		 "G='say \"hi\"'\n"
		 "H= \"after space\"\n",
	    &p);
	ck_assert_int_eq(p.n, 8);
	assert_pair(&p, 0, "A", "hello world");
	assert_pair(&p, 1, "B", "  kept spaces  ");
	assert_pair(&p, 2, "C", "");
	assert_pair(&p, 3, "D", "single # not a comment");
	assert_pair(&p, 4, "E", "no \\n escapes in single");
	assert_pair(&p, 5, "F", "it's");
	assert_pair(&p, 6, "G", "say \"hi\"");
	assert_pair(&p, 7, "H", "after space");
	pairs_clear(&p);
}
END_TEST

START_TEST(test_parse_escapes)
{
	struct pairs p;

	parse_ok("A=\"line1\\nline2\"\n"
		 "B=\"q\\\"uote\"\n"
		 "C=\"back\\\\slash\"\n"
		 "D=\"\\\\n is not a newline\"\n"
		 "E=unquoted\\nstays\n",
	    &p);
	ck_assert_int_eq(p.n, 5);
	assert_pair(&p, 0, "A", "line1\nline2");
	assert_pair(&p, 1, "B", "q\"uote");
	assert_pair(&p, 2, "C", "back\\slash");
	assert_pair(&p, 3, "D", "\\n is not a newline");
	assert_pair(&p, 4, "E", "unquoted\\nstays");
	pairs_clear(&p);
}
END_TEST

START_TEST(test_parse_inline_comments)
{
	struct pairs p;

	parse_ok("KEY=300  # comment\n"
		 "TAB=7\t# tab before the hash\n"
		 "SYNC_INTERVAL_SECONDS=300  # 定时同步间隔（秒），默认5分钟\n"
		 "URL=http://h/#x\n"
		 "URL2=http://h/#x   # and a comment\n"
		 "HASH=a#b#c\n"
		 "Q=\"v # not a comment\" # a comment\n"
		 "S='v'   # c\n"
		 "T=\"v\"# tight comment\n",
	    &p);
	ck_assert_int_eq(p.n, 9);
	assert_pair(&p, 0, "KEY", "300");
	assert_pair(&p, 1, "TAB", "7");
	assert_pair(&p, 2, "SYNC_INTERVAL_SECONDS", "300");
	assert_pair(&p, 3, "URL", "http://h/#x");
	assert_pair(&p, 4, "URL2", "http://h/#x");
	assert_pair(&p, 5, "HASH", "a#b#c");
	assert_pair(&p, 6, "Q", "v # not a comment");
	assert_pair(&p, 7, "S", "v");
	assert_pair(&p, 8, "T", "v");
	pairs_clear(&p);
}
END_TEST

START_TEST(test_parse_crlf)
{
	struct pairs p;

	parse_ok("# windows\r\nA=1\r\nB=\"two\"\r\nC=3 # c\r\n\r\nD='four'\r\nE=\r\n", &p);
	ck_assert_int_eq(p.n, 5);
	assert_pair(&p, 0, "A", "1");
	assert_pair(&p, 1, "B", "two");
	assert_pair(&p, 2, "C", "3");
	assert_pair(&p, 3, "D", "four");
	assert_pair(&p, 4, "E", "");
	pairs_clear(&p);
}
END_TEST

START_TEST(test_parse_chinese)
{
	struct pairs p;

	parse_ok("ROOM=测试房间\nNAMES=\"张三 李四\"\nDESC='新年快乐 # 福袋'\nX=红包 # 注释\n", &p);
	ck_assert_int_eq(p.n, 4);
	assert_pair(&p, 0, "ROOM", "测试房间");
	assert_pair(&p, 1, "NAMES", "张三 李四");
	assert_pair(&p, 2, "DESC", "新年快乐 # 福袋");
	assert_pair(&p, 3, "X", "红包");
	pairs_clear(&p);
}
END_TEST

START_TEST(test_parse_errors_name_line)
{
	static const struct {
		const char *text;
		const char *fragment;
	} bad[] = {
		{ "A=1\n\nnot a pair\n", "line 3" },
		{ "=value\n", "line 1" },
		{ "A=1\n1A=2\n", "line 2" },
		{ "A B=1\n", "line 1" },
		{ "A.B=1\n", "line 1" },
		{ "# c\nexport\n", "line 2" },
		{ "A=1\r\nB\r\n", "line 2" },
		{ "A=1\nB=\"unterminated\n", "line 2" },
		{ "A='unterminated\n", "unterminated" },
		{ "A=\"escaped end\\\"\n", "unterminated" },
		{ "A=\"x\" y\n", "text after closing quote" },
		{ "\n\nA='x'y\n", "line 3" },
		{ "A=\"x\" \"y\"\n", "text after closing quote" },
	};
	char *cause;
	size_t i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cause = parse_bad(bad[i].text);
		assert_contains(cause, bad[i].fragment);
		free(cause);
	}
}
END_TEST

START_TEST(test_parse_error_hides_value)
{
	char *cause;

	/* A syntax error names the line and key, never the (maybe secret) value. */
	cause = parse_bad("ADMIN_API_KEY=\"s3cret-value\n");
	assert_contains(cause, "line 1");
	ck_assert_ptr_null(strstr(cause, "s3cret"));
	free(cause);
	cause = parse_bad("ADMIN_API_KEY='s3cret-value' trailing\n");
	ck_assert_ptr_null(strstr(cause, "s3cret"));
	free(cause);
}
END_TEST

/* ---- config_load ---- */

START_TEST(test_load_defaults)
{
	struct config cfg;
	const char *path;

	load_ok(&cfg, "", NULL);
	ck_assert_ptr_null(cfg.database_url);
	ck_assert_str_eq(cfg.database_path, CONFIG_MEMORY_DB_PATH);
	ck_assert_int_eq(cfg.database_is_memory, 1);
	ck_assert_str_eq(cfg.bind_address, "127.0.0.1:3000");
	ck_assert_ptr_null(cfg.admin_api_key);
	ck_assert_int_eq(cfg.max_connections, 100000);
	ck_assert_str_eq(cfg.data_callback_url, "");
	ck_assert_str_eq(cfg.room_event_callback_url, "");
	ck_assert_str_eq(cfg.chat_history_callback_url, "");
	ck_assert_str_eq(cfg.session_history_callback_url, "");
	ck_assert_str_eq(cfg.periodic_sync_callback_url, "");
	ck_assert_int_eq(cfg.chat_history_batch_size, 1000);
	ck_assert_int_eq(cfg.session_history_batch_size, 500);
	ck_assert_int_eq(cfg.chat_history_batch_interval_seconds, 300);
	ck_assert_int_eq(cfg.session_history_batch_interval_seconds, 600);
	ck_assert_int_eq(cfg.callback_max_retries, 3);
	ck_assert_int_eq(cfg.callback_retry_delay_seconds, 5);
	ck_assert_int_eq(cfg.callback_timeout_seconds, 30);
	ck_assert_int_eq(cfg.callback_dead_letter_attempts, 10); /* refusals only */
	ck_assert_int_eq(cfg.callback_dead_letter_age_seconds, 0);
	ck_assert_int_eq(cfg.sync_interval_seconds, 300);
	ck_assert_int_eq(cfg.user_message_interval_ms, 3000);
	ck_assert_str_eq(cfg.chatd_listen, "127.0.0.1:3001");
	ck_assert_ptr_null(cfg.chatd_socket_group);
	ck_assert_str_eq(cfg.trusted_proxies, "127.0.0.0/8,::1");
	ck_assert_str_eq(cfg.control_socket, "/run/chatd/control.sock");
	ck_assert_int_eq(cfg.control_timeout_ms, 2000);
	ck_assert_int_eq(cfg.api_threads, 8);
	ck_assert_int_eq(cfg.api_max_body_bytes, 65536);
	ck_assert_str_eq(cfg.log_level, "info");
	/* A single node: no bus. */
	ck_assert_ptr_null(cfg.cluster_nats_url);
	ck_assert_ptr_nonnull(cfg.node_id);
	ck_assert_int_eq(config_check_token(cfg.node_id, CONFIG_NODE_ID_MAX), 0);
	ck_assert_str_eq(cfg.cluster_name, "chatd");
	ck_assert_int_eq(cfg.cluster_heartbeat_ms, 1000);
	ck_assert_int_eq(cfg.cluster_node_timeout_ms, 5000);
	ck_assert_int_eq(cfg.cluster_gap_wait_ms, 200);
	path = tmpfiles[0];
	ck_assert_str_eq(cfg.source_file, path);
	config_clear(&cfg);
	ck_assert_ptr_null(cfg.bind_address);
	ck_assert_ptr_null(cfg.database_path);
}
END_TEST

/* The seed README's .env block, verbatim. */
static const char seed_env[] =
    "# 数据库配置（可选，默认使用内存数据库）\n"
    "DATABASE_URL=sqlite::memory:\n"
    "\n"
    "# 服务器配置\n"
    "BIND_ADDRESS=0.0.0.0:3000\n"
    "ADMIN_API_KEY=your_secret_api_key\n"
    "\n"
    "# 可选配置\n"
    "MAX_CONNECTIONS=100000\n"
    "\n"
    "# 传统同步配置（保持向后兼容）\n"
    "DATA_CALLBACK_URL=http://example.com/callback\n"
    "\n"
    "# 拆分后的回调URL配置\n"
    "ROOM_EVENT_CALLBACK_URL=http://example.com/api/room-events\n"
    "CHAT_HISTORY_CALLBACK_URL=http://example.com/api/chat-history\n"
    "SESSION_HISTORY_CALLBACK_URL=http://example.com/api/session-history\n"
    "PERIODIC_SYNC_CALLBACK_URL=http://example.com/api/periodic-sync\n"
    "\n"
    "# 回调配置\n"
    "CHAT_HISTORY_BATCH_SIZE=1000\n"
    "SESSION_HISTORY_BATCH_SIZE=500\n"
    "CHAT_HISTORY_BATCH_INTERVAL_SECONDS=300\n"
    "SESSION_HISTORY_BATCH_INTERVAL_SECONDS=600\n"
    "\n"
    "# 回调重试配置\n"
    "CALLBACK_MAX_RETRIES=3\n"
    "CALLBACK_RETRY_DELAY_SECONDS=5\n"
    "CALLBACK_TIMEOUT_SECONDS=30\n"
    "\n"
    "# 数据同步配置\n"
    "SYNC_INTERVAL_SECONDS=300  # 定时同步间隔（秒），默认5分钟\n"
    "\n"
    "# 普通用户发言最小间隔（秒），默认3秒\n"
    "USER_MESSAGE_INTERVAL_SECS=3\n";

START_TEST(test_load_seed_env)
{
	struct config cfg;

	load_ok(&cfg, seed_env, NULL);
	ck_assert_str_eq(cfg.database_url, "sqlite::memory:");
	ck_assert_int_eq(cfg.database_is_memory, 1);
	ck_assert_str_eq(cfg.database_path, CONFIG_MEMORY_DB_PATH);
	ck_assert_str_eq(cfg.bind_address, "0.0.0.0:3000");
	ck_assert_str_eq(cfg.admin_api_key, "your_secret_api_key");
	ck_assert_str_eq(cfg.data_callback_url, "http://example.com/callback");
	ck_assert_str_eq(cfg.periodic_sync_callback_url, "http://example.com/api/periodic-sync");
	ck_assert_int_eq(cfg.sync_interval_seconds, 300);
	ck_assert_int_eq(cfg.user_message_interval_ms, 3000);
	config_clear(&cfg);
}
END_TEST

START_TEST(test_load_env_overrides_file)
{
	struct fakeenv env = { { 0 }, { 0 }, 0 };
	struct config cfg;

	fakeenv_set(&env, "MAX_CONNECTIONS", "7");
	fakeenv_set(&env, "ADMIN_API_KEY", "from-env");
	load_ok(&cfg,
	    "MAX_CONNECTIONS=5\nADMIN_API_KEY=from-file\nSYNC_INTERVAL_SECONDS=60\n"
	    "CALLBACK_MAX_RETRIES=1\nCALLBACK_MAX_RETRIES=2\n",
	    &env);
	ck_assert_int_eq(cfg.max_connections, 7);
	ck_assert_str_eq(cfg.admin_api_key, "from-env");
	ck_assert_int_eq(cfg.sync_interval_seconds, 60);
	/* The last assignment in the file wins, as in a shell. */
	ck_assert_int_eq(cfg.callback_max_retries, 2);
	config_clear(&cfg);
}
END_TEST

START_TEST(test_load_env_only)
{
	struct fakeenv env = { { 0 }, { 0 }, 0 };
	struct config cfg;

	/* Quotes in the environment are part of the value: nothing to strip. */
	fakeenv_set(&env, "BIND_ADDRESS", "[::1]:8080");
	fakeenv_set(&env, "LOG_LEVEL", "debug");
	fakeenv_set(&env, "ROOM_EVENT_CALLBACK_URL", "https://h:8443/events?x=1#frag");
	load_ok(&cfg, "", &env);
	ck_assert_str_eq(cfg.bind_address, "[::1]:8080");
	ck_assert_str_eq(cfg.log_level, "debug");
	ck_assert_str_eq(cfg.room_event_callback_url, "https://h:8443/events?x=1#frag");
	config_clear(&cfg);
}
END_TEST

START_TEST(test_load_missing_env_file)
{
	struct fakeenv env = { { 0 }, { 0 }, 0 };
	struct config cfg;
	char *cause = NULL, *path;

	path = xasprintf("%s/does-not-exist.env", tmpdir);
	fakeenv_set(&env, "CHAT_ENV_FILE", path);
	ck_assert_int_eq(config_load(&cfg, fakeenv_get, &env, &cause), -1);
	assert_contains(cause, "CHAT_ENV_FILE");
	assert_contains(cause, path);
	assert_contains(cause, strerror(ENOENT));
	free(cause);
	free(path);
}
END_TEST

START_TEST(test_load_dot_env_in_cwd)
{
	struct fakeenv env = { { 0 }, { 0 }, 0 };
	struct config cfg;
	char *cause = NULL, *old;

	/* Without CHAT_ENV_FILE the working directory's .env is read. */
	tmp_file(".env", "MAX_CONNECTIONS=42\n");
	old = getcwd(NULL, 0);
	ck_assert_ptr_nonnull(old);
	ck_assert_int_eq(chdir(tmpdir), 0);
	ck_assert_int_eq(config_load(&cfg, fakeenv_get, &env, &cause), 0);
	ck_assert_int_eq(chdir(old), 0);
	ck_assert_int_eq(cfg.max_connections, 42);
	ck_assert_str_eq(cfg.source_file, ".env");
	config_clear(&cfg);
	free(old);
}
END_TEST

START_TEST(test_load_dot_env_unreadable)
{
	struct fakeenv env = { { 0 }, { 0 }, 0 };
	struct config cfg;
	char *cause = NULL, *old, *link;

	/*
	 * A ./.env that exists but cannot be opened stops the load, and the
	 * message names that file, not CHAT_ENV_FILE, which nobody set. A
	 * symlink loop fails to open even for root.
	 */
	link = xasprintf("%s/.env", tmpdir);
	ck_assert_int_eq(symlink(".env", link), 0);
	old = getcwd(NULL, 0);
	ck_assert_ptr_nonnull(old);
	ck_assert_int_eq(chdir(tmpdir), 0);
	ck_assert_int_eq(config_load(&cfg, fakeenv_get, &env, &cause), -1);
	ck_assert_int_eq(chdir(old), 0);
	ck_assert_int_eq(unlink(link), 0);
	assert_contains(cause, ".env");
	assert_contains(cause, strerror(ELOOP));
	ck_assert_ptr_null(strstr(cause, "CHAT_ENV_FILE"));
	free(cause);
	free(link);
	free(old);
}
END_TEST

static const struct {
	const char *key;
	const char *value;
} bad_values[] = {
	{ "MAX_CONNECTIONS", "abc" },
	{ "MAX_CONNECTIONS", "12x" },
	{ "MAX_CONNECTIONS", "0" },
	{ "MAX_CONNECTIONS", "99999999999999999999" },
	{ "MAX_CONNECTIONS", "1e5" },
	{ "MAX_CONNECTIONS", "0x10" },
	{ "CHAT_HISTORY_BATCH_SIZE", "0" },
	{ "CHAT_HISTORY_BATCH_SIZE", "100001" },
	{ "SESSION_HISTORY_BATCH_SIZE", "-1" },
	{ "CHAT_HISTORY_BATCH_INTERVAL_SECONDS", "-5" },
	{ "SESSION_HISTORY_BATCH_INTERVAL_SECONDS", "0" },
	{ "SYNC_INTERVAL_SECONDS", "-5" },
	{ "SYNC_INTERVAL_SECONDS", "five" },
	{ "SYNC_INTERVAL_SECONDS", "2592001" },
	{ "USER_MESSAGE_INTERVAL_SECS", "-1" },
	{ "USER_MESSAGE_INTERVAL_SECS", "1.2345" },
	{ "CALLBACK_MAX_RETRIES", "101" },
	{ "CALLBACK_RETRY_DELAY_SECONDS", "-5" },
	{ "CALLBACK_TIMEOUT_SECONDS", "0" },
	{ "CALLBACK_DEAD_LETTER_ATTEMPTS", "-1" },
	{ "CALLBACK_DEAD_LETTER_AGE_SECONDS", "31536001" },
	{ "CONTROL_TIMEOUT_MS", "5" },
	{ "API_THREADS", "1000" },
	{ "API_MAX_BODY_BYTES", "100" },
	{ "DATA_CALLBACK_URL", "ftp://example.com/cb" },
	{ "DATA_CALLBACK_URL", "example.com/callback" },
	{ "ROOM_EVENT_CALLBACK_URL", "http://" },
	{ "CHAT_HISTORY_CALLBACK_URL", "https:///path" },
	{ "SESSION_HISTORY_CALLBACK_URL", "javascript:alert(1)" },
	{ "PERIODIC_SYNC_CALLBACK_URL", "http//example.com" },
	{ "BIND_ADDRESS", "3000" },
	{ "BIND_ADDRESS", "localhost" },
	{ "BIND_ADDRESS", ":3000" },
	{ "BIND_ADDRESS", "0.0.0.0:0" },
	{ "BIND_ADDRESS", "0.0.0.0:65536" },
	{ "BIND_ADDRESS", "0.0.0.0:http" },
	{ "BIND_ADDRESS", "[::1]" },
	{ "BIND_ADDRESS", "[]:80" },
	{ "BIND_ADDRESS", "::1:3000" },
	{ "CHATD_LISTEN", "127.0.0.1:" },
	{ "CHATD_LISTEN", "unix:" },
	{ "CHATD_LISTEN", "unix:relative/chatd.sock" },
	{ "CHATD_LISTEN",
	    "unix:/run/chatd/a-socket-path-far-too-long-for-sun-path-which-holds-only-"
	    "one-hundred-and-eight-bytes-including-its-terminating-nul.sock" },
	{ "CHATD_LISTEN", "/run/chatd/chatd.sock" },
	{ "TRUSTED_PROXIES", "127.0.0.1,localhost" },
	{ "TRUSTED_PROXIES", "10.0.0.0/33" },
	{ "TRUSTED_PROXIES", "127.0.0.1,,::1" },
	{ "LOG_LEVEL", "verbose" },
	{ "DATABASE_URL", "postgres://u@h/db?no_such_option=1" },
	{ "DATABASE_URL", "chat.db" },
	{ "DATABASE_URL", "sqlite:" },
	{ "DATABASE_URL", "sqlite://" },
	{ "DATABASE_URL", "sqlite:?mode=rwc" },
	{ "DATABASE_URL", "mysql:x" },
	{ "NODE_ID", "node 1" },
	{ "NODE_ID", "node*" },
	{ "NODE_ID", "a>" },
	{ "NODE_ID", "n12345678901234567890123456789012345678901234567890123456789012345" },
	{ "CLUSTER_NAME", "chat.*" },
	{ "CLUSTER_NAME", "c123456789012345678901234567890123" },
	{ "CLUSTER_HEARTBEAT_SECS", "0.05" },
	{ "CLUSTER_HEARTBEAT_SECS", "61" },
	{ "CLUSTER_NODE_TIMEOUT_SECS", "0.2" },
	{ "CLUSTER_GAP_WAIT_SECS", "0" },
	{ "CLUSTER_GAP_WAIT_SECS", "11" },
};

START_TEST(test_load_bad_values)
{
	char *cause, *text, *want;
	size_t i;

	/* From the file: the message names key and value, so the operator can fix it. */
	for (i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
		text = xasprintf("%s=%s\n", bad_values[i].key, bad_values[i].value);
		want = xasprintf("%s=%s", bad_values[i].key, bad_values[i].value);
		cause = load_bad(text, NULL);
		assert_contains(cause, want);
		free(cause);
		free(want);
		free(text);
	}
}
END_TEST

START_TEST(test_load_bad_values_from_env)
{
	struct fakeenv env;
	char *cause, *want;
	size_t i;

	for (i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
		memset(&env, 0, sizeof env);
		fakeenv_set(&env, bad_values[i].key, bad_values[i].value);
		want = xasprintf("%s=%s", bad_values[i].key, bad_values[i].value);
		/* A good file value does not rescue a bad environment value. */
		cause = load_bad("MAX_CONNECTIONS=10\n", &env);
		assert_contains(cause, want);
		free(cause);
		free(want);
	}

	/* Values only the environment can carry: spaces inside, empty numbers. */
	memset(&env, 0, sizeof env);
	fakeenv_set(&env, "DATA_CALLBACK_URL", "http://exa mple.com/");
	cause = load_bad("", &env);
	assert_contains(cause, "DATA_CALLBACK_URL=http://exa mple.com/");
	free(cause);
	memset(&env, 0, sizeof env);
	fakeenv_set(&env, "CALLBACK_TIMEOUT_SECONDS", "");
	cause = load_bad("", &env);
	assert_contains(cause, "CALLBACK_TIMEOUT_SECONDS=");
	free(cause);
	memset(&env, 0, sizeof env);
	fakeenv_set(&env, "CONTROL_SOCKET", "");
	cause = load_bad("", &env);
	assert_contains(cause, "CONTROL_SOCKET");
	free(cause);
}
END_TEST

START_TEST(test_cluster_settings)
{
	static const char *const good[] = {
		"nats://127.0.0.1:4222",
		"nats://127.0.0.1",
		"nats://u:p@nats.example:4222",
		"tls://nats.example:4443",
		"nats://[::1]:4222",
		"nats://a:4222, nats://b:4222,nats://c",
	};
	static const char *const bad[] = {
		"127.0.0.1:4222",
		"http://127.0.0.1:4222",
		"nats://",
		"nats://:4222",
		"nats://h:0",
		"nats://h:65536",
		"nats://h:42a",
		"nats://h:4222/path",
		"nats://a:4222,,nats://b",
		"nats://[::1",
		"nats://u:secret@h:99999",
	};
	struct config cfg;
	const char *text;
	char *cause;
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++)
		ck_assert_msg(config_check_nats_urls(good[i]) == 0, "refused %s", good[i]);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(config_check_nats_urls(bad[i]) != 0, "took %s", bad[i]);

	/* A refused URL is named by key, never echoed: it may carry a password. */
	cause = load_bad("CLUSTER_NATS_URL=nats://u:secret@h:99999\n", NULL);
	assert_contains(cause, "CLUSTER_NATS_URL");
	ck_assert_ptr_null(strstr(cause, "secret"));
	free(cause);

	load_ok(&cfg,
	    "CLUSTER_NATS_URL=nats://127.0.0.1:4222\nNODE_ID=web-1.a_b\nCLUSTER_NAME=prod\n"
	    "CLUSTER_HEARTBEAT_SECS=0.5\nCLUSTER_NODE_TIMEOUT_SECS=1\nCLUSTER_GAP_WAIT_SECS=0.05\n",
	    NULL);
	ck_assert_str_eq(cfg.cluster_nats_url, "nats://127.0.0.1:4222");
	ck_assert_str_eq(cfg.node_id, "web-1.a_b");
	ck_assert_str_eq(cfg.cluster_name, "prod");
	ck_assert_int_eq(cfg.cluster_heartbeat_ms, 500);
	ck_assert_int_eq(cfg.cluster_node_timeout_ms, 1000);
	ck_assert_int_eq(cfg.cluster_gap_wait_ms, 50);
	config_clear(&cfg);

	/* Empty: a single node, the host name, the default prefix. */
	load_ok(&cfg, "CLUSTER_NATS_URL=\nNODE_ID=\nCLUSTER_NAME=\n", NULL);
	ck_assert_ptr_null(cfg.cluster_nats_url);
	ck_assert_ptr_nonnull(cfg.node_id);
	ck_assert_str_eq(cfg.cluster_name, "chatd");
	config_clear(&cfg);

	/* A timeout that one late heartbeat would trip. */
	text = "CLUSTER_HEARTBEAT_SECS=2\nCLUSTER_NODE_TIMEOUT_SECS=3\n";
	cause = load_bad(text, NULL);
	assert_contains(cause, "CLUSTER_NODE_TIMEOUT_SECS=3.000: must be at least twice");
	free(cause);
}
END_TEST

START_TEST(test_default_node_id_fits)
{
	char *id = config_default_node_id();

	ck_assert_int_eq(config_check_token(id, CONFIG_NODE_ID_MAX), 0);
	free(id);
	ck_assert_int_eq(config_check_token("", 8), -1);
	ck_assert_int_eq(config_check_token("12345678", 8), 0);
	ck_assert_int_eq(config_check_token("123456789", 8), -1);
	ck_assert_int_eq(config_check_token("a b", 8), -1);
}
END_TEST

START_TEST(test_load_good_edge_values)
{
	struct config cfg;

	load_ok(&cfg,
	    "MAX_CONNECTIONS=1\nUSER_MESSAGE_INTERVAL_SECS=0\nCALLBACK_MAX_RETRIES=0\n"
	    "CALLBACK_RETRY_DELAY_SECONDS=0\nSYNC_INTERVAL_SECONDS=2592000\n"
	    "BIND_ADDRESS=localhost:65535\nCHATD_LISTEN=[::]:3001\nLOG_LEVEL=WARNING\n"
	    "DATA_CALLBACK_URL=https://example.com\n",
	    NULL);
	ck_assert_int_eq(cfg.max_connections, 1);
	ck_assert_int_eq(cfg.user_message_interval_ms, 0);
	ck_assert_int_eq(cfg.callback_max_retries, 0);
	ck_assert_int_eq(cfg.sync_interval_seconds, 2592000);
	ck_assert_str_eq(cfg.bind_address, "localhost:65535");
	ck_assert_str_eq(cfg.chatd_listen, "[::]:3001");
	ck_assert_str_eq(cfg.data_callback_url, "https://example.com");
	config_clear(&cfg);

	load_ok(&cfg,
	    "CHATD_LISTEN=unix:/run/chatd/chatd.sock\nCHATD_SOCKET_GROUP=www-data\n"
	    "TRUSTED_PROXIES= 10.0.0.0/8 , 2001:db8::/32,192.0.2.7\n",
	    NULL);
	ck_assert_str_eq(cfg.chatd_listen, "unix:/run/chatd/chatd.sock");
	ck_assert_str_eq(cfg.chatd_socket_group, "www-data");
	ck_assert_str_eq(cfg.trusted_proxies, "10.0.0.0/8 , 2001:db8::/32,192.0.2.7");
	config_clear(&cfg);
	/* An empty list is allowed: no TCP peer is trusted. */
	load_ok(&cfg, "TRUSTED_PROXIES=\n", NULL);
	ck_assert_str_eq(cfg.trusted_proxies, "");
	config_clear(&cfg);
}
END_TEST

/* USER_MESSAGE_INTERVAL_SECS takes fractions so tests can use short intervals. */
START_TEST(test_load_interval_fractions)
{
	static const struct {
		const char *v;
		long long ms;
	} good[] = { { "0.25", 250 }, { "1.5", 1500 }, { "2", 2000 }, { " 0.001 ", 1 },
		{ "86400", 86400000 } };
	static const char *const bad[] = { "0.0001", "-1", ".5", "1.", "1e3", "abc", "86401",
		"99999999999999999999" };
	struct fakeenv env;
	struct config cfg;
	char text[64], *cause;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		snprintf(text, sizeof text, "USER_MESSAGE_INTERVAL_SECS=%s\n", good[i].v);
		load_ok(&cfg, text, NULL);
		ck_assert_int_eq(cfg.user_message_interval_ms, good[i].ms);
		config_clear(&cfg);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		memset(&env, 0, sizeof env);
		fakeenv_set(&env, "USER_MESSAGE_INTERVAL_SECS", bad[i]);
		cause = load_bad("", &env);
		assert_contains(cause, "USER_MESSAGE_INTERVAL_SECS");
		assert_contains(cause, bad[i]);
		free(cause);
	}
}
END_TEST

START_TEST(test_check_url_and_address)
{
	ck_assert_int_eq(config_check_url(""), 0);
	ck_assert_int_eq(config_check_url("http://example.com/callback"), 0);
	ck_assert_int_eq(config_check_url("https://h:8443/p?q=1"), 0);
	ck_assert_int_eq(config_check_url("http://h/#x"), 0);
	ck_assert_int_eq(config_check_url("http://127.0.0.1:8000/cb"), 0);
	ck_assert_int_eq(config_check_url("http://"), -1);
	ck_assert_int_eq(config_check_url("http:///x"), -1);
	ck_assert_int_eq(config_check_url("http://:80/"), -1);
	ck_assert_int_eq(config_check_url("file:///etc/passwd"), -1);
	ck_assert_int_eq(config_check_url("http://a\tb/"), -1);
	ck_assert_int_eq(config_check_url("http://a/\x7f"), -1);

	ck_assert_int_eq(config_check_address("127.0.0.1:3000"), 0);
	ck_assert_int_eq(config_check_address("0.0.0.0:1"), 0);
	ck_assert_int_eq(config_check_address("chat.example-1.com:443"), 0);
	ck_assert_int_eq(config_check_address("[::1]:3000"), 0);
	ck_assert_int_eq(config_check_address("[::1]3000"), -1);
	ck_assert_int_eq(config_check_address("host:+80"), -1);
	ck_assert_int_eq(config_check_address("host:80 "), -1);
	ck_assert_int_eq(config_check_address("ho st:80"), -1);
	ck_assert_int_eq(config_check_address(""), -1);

	ck_assert_int_eq(config_check_listen("127.0.0.1:3001"), 0);
	ck_assert_int_eq(config_check_listen("unix:/run/chatd/chatd.sock"), 0);
	ck_assert_int_eq(config_check_listen("unix:chatd.sock"), -1);
	ck_assert_int_eq(config_check_listen("unix:"), -1);
	ck_assert_int_eq(config_check_listen("unix:/x:80"), 0);
	ck_assert_int_eq(config_check_listen("127.0.0.1"), -1);
}
END_TEST

START_TEST(test_database_url_forms)
{
	const struct {
		const char *url;
		const char *path;
		int memory;
	} good[] = {
		{ "sqlite:./x.db", "./x.db", 0 },
		{ "sqlite:./chat_server.db", "./chat_server.db", 0 },
		{ "sqlite:x.db", "x.db", 0 },
		{ "sqlite://x.db", "x.db", 0 },
		{ "sqlite:///abs/x.db", "/abs/x.db", 0 },
		{ "sqlite:/abs/x.db", "/abs/x.db", 0 },
		{ "sqlite:./x.db?mode=rwc", "./x.db", 0 },
		{ "sqlite:///abs/x.db?mode=rwc&cache=shared", "/abs/x.db", 0 },
		{ "sqlite::memory:", CONFIG_MEMORY_DB_PATH, 1 },
		{ "sqlite://:memory:", CONFIG_MEMORY_DB_PATH, 1 },
		{ "", CONFIG_MEMORY_DB_PATH, 1 },
		/* PostgreSQL: the URI whole, for libpq. */
		{ "postgres://u@h/db", "postgres://u@h/db", 0 },
		{ "postgresql://u:pw@h:5433/db?sslmode=require",
		    "postgresql://u:pw@h:5433/db?sslmode=require", 0 },
		{ "postgres:///db?host=/run/postgresql", "postgres:///db?host=/run/postgresql", 0 },
	};
	static const char *bad[] = {
		"postgres://u@h/db?no_such_option=1",
		"x.db",
		"sqlite:",
		"sqlite://",
		"sqlite:?mode=rwc",
		"SQLITE:x.db",
	};
	char *path, *cause;
	int memory;
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		cause = NULL;
		ck_assert_msg(config_parse_database_url(good[i].url, &path, &memory, &cause) == 0,
		    "%s refused: %s", good[i].url, cause);
		ck_assert_msg(strcmp(path, good[i].path) == 0, "%s: path %s, want %s", good[i].url,
		    path, good[i].path);
		ck_assert_int_eq(memory, good[i].memory);
		free(path);
	}
	ck_assert_int_eq(config_parse_database_url(NULL, &path, &memory, &cause), 0);
	ck_assert_int_eq(memory, 1);
	free(path);
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cause = NULL;
		ck_assert_msg(config_parse_database_url(bad[i], &path, &memory, &cause) == -1,
		    "%s accepted", bad[i]);
		ck_assert_ptr_null(path);
		assert_contains(cause, "DATABASE_URL=");
		assert_contains(cause, bad[i]);
		free(cause);
	}
}
END_TEST

/* A password never reaches a message, wherever the URI holds it. */
START_TEST(test_database_url_password_hidden)
{
	static const struct {
		const char *url, *shown;
	} cases[] = {
		{ "postgres://chat:s3cret@db.example:5432/chat",
		    "postgres://chat:***@db.example:5432/chat" },
		{ "postgresql://chat:s3cret@h/chat?sslmode=require&password=s3cret&x=1",
		    "postgresql://chat:***@h/chat?sslmode=require&password=***&x=1" },
		{ "postgres://chat@h/chat?password=s3cret", "postgres://chat@h/chat?password=***" },
		{ "postgres://h/chat", "postgres://h/chat" },
		{ "sqlite:/x/s3cret.db", "sqlite:/x/s3cret.db" },
	};
	char *path, *cause = NULL, *shown;
	int memory;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		shown = dbaddr_display(cases[i].url);
		ck_assert_str_eq(shown, cases[i].shown);
		free(shown);
	}
	/* libpq's complaint may quote the password: left out, the setting named. */
	ck_assert_int_eq(config_parse_database_url(
			     "postgres://chat:s3cret@h/chat?bogus=1", &path, &memory, &cause),
	    -1);
	assert_contains(cause, "DATABASE_URL=postgres://chat:***@h/chat");
	ck_assert_msg(strstr(cause, "s3cret") == NULL, "%s", cause);
	free(cause);
	cause = NULL;
	/* Without a password, libpq's own words say what is wrong. */
	ck_assert_int_eq(
	    config_parse_database_url("postgres://h/chat?bogus=1", &path, &memory, &cause), -1);
	assert_contains(cause, "bogus");
	free(cause);
	cause = NULL;
	ck_assert_int_eq(
	    config_parse_database_url("mysql://u:s3cret@h/chat", &path, &memory, &cause), -1);
	ck_assert_msg(strstr(cause, "s3cret") == NULL, "%s", cause);
	free(cause);
}
END_TEST

START_TEST(test_database_url_memory_with_options)
{
	char *path, *cause = NULL;
	int memory;

	/*
	 * sqlx takes options after "?" on the in-memory form too. Treating
	 * ":memory:" as a file name would give each program a private,
	 * empty database instead of the shared tmpfs file.
	 */
	ck_assert_int_eq(
	    config_parse_database_url("sqlite::memory:?cache=shared", &path, &memory, &cause), 0);
	ck_assert_str_eq(path, CONFIG_MEMORY_DB_PATH);
	ck_assert_int_eq(memory, 1);
	free(path);
	ck_assert_int_eq(
	    config_parse_database_url("sqlite://:memory:?mode=rwc", &path, &memory, &cause), 0);
	ck_assert_str_eq(path, CONFIG_MEMORY_DB_PATH);
	ck_assert_int_eq(memory, 1);
	free(path);
}
END_TEST

START_TEST(test_load_database_url)
{
	struct config cfg;

	load_ok(&cfg, "DATABASE_URL=sqlite:./chat_server.db\n", NULL);
	ck_assert_str_eq(cfg.database_url, "sqlite:./chat_server.db");
	ck_assert_str_eq(cfg.database_path, "./chat_server.db");
	ck_assert_int_eq(cfg.database_is_memory, 0);
	config_clear(&cfg);

	load_ok(&cfg, "DATABASE_URL=\"sqlite:///var/lib/chatd/chat.db?mode=rwc\"\n", NULL);
	ck_assert_str_eq(cfg.database_path, "/var/lib/chatd/chat.db");
	ck_assert_int_eq(cfg.database_is_memory, 0);
	config_clear(&cfg);
}
END_TEST

START_TEST(test_load_empty_admin_key_is_unset)
{
	struct fakeenv env = { { 0 }, { 0 }, 0 };
	struct config cfg;

	load_ok(&cfg, "ADMIN_API_KEY=\n", NULL);
	ck_assert_ptr_null(cfg.admin_api_key);
	config_clear(&cfg);

	load_ok(&cfg, "ADMIN_API_KEY=\"\"  # empty on purpose\n", NULL);
	ck_assert_ptr_null(cfg.admin_api_key);
	config_clear(&cfg);

	/* An empty environment value wins over the file, and still means unset. */
	fakeenv_set(&env, "ADMIN_API_KEY", "");
	load_ok(&cfg, "ADMIN_API_KEY=from-file\n", &env);
	ck_assert_ptr_null(cfg.admin_api_key);
	config_clear(&cfg);
}
END_TEST

/* What load_with_unknown_keys needs inside capture_stderr. */
struct load_args {
	struct fakeenv env;
	int rc;
	char *cause;
	struct config cfg;
};

static void
load_captured(void *arg)
{
	struct load_args *la = arg;

	la->rc = config_load(&la->cfg, fakeenv_get, &la->env, &la->cause);
}

START_TEST(test_load_unknown_key_warns)
{
	struct load_args la;
	char *err;

	memset(&la, 0, sizeof la);
	fakeenv_set(&la.env, "CHAT_ENV_FILE",
	    tmp_file("test.env", "MAX_CONNECTIONS=9\nNOT_A_SETTING=1\nCHAT_ENV_FILE=/x\n"));
	err = capture_stderr(load_captured, &la);
	ck_assert_int_eq(la.rc, 0);
	ck_assert_ptr_null(la.cause);
	ck_assert_int_eq(la.cfg.max_connections, 9);
	assert_contains(err, "NOT_A_SETTING");
	assert_contains(err, "warning");
	/* CHAT_ENV_FILE is ours even though it is not in the table. */
	ck_assert_ptr_null(strstr(err, "CHAT_ENV_FILE"));
	config_clear(&la.cfg);
	free(err);
}
END_TEST

START_TEST(test_load_never_prints_secret)
{
	struct load_args la;
	char *err, *help, *md;

	memset(&la, 0, sizeof la);
	fakeenv_set(&la.env, "CHAT_ENV_FILE",
	    tmp_file("test.env", "ADMIN_API_KEY=s3cret-value\nUNKNOWN_KEY=1\n"));
	err = capture_stderr(load_captured, &la);
	ck_assert_int_eq(la.rc, 0);
	ck_assert_str_eq(la.cfg.admin_api_key, "s3cret-value");
	ck_assert_ptr_null(strstr(err, "s3cret"));
	free(err);

	/* --help and the README table show defaults only, whatever is loaded. */
	help = print_to_string(print_help_all);
	md = print_to_string(config_print_markdown);
	ck_assert_ptr_null(strstr(help, "s3cret"));
	ck_assert_ptr_null(strstr(md, "s3cret"));
	ck_assert_ptr_null(strstr(help, "your_secret_api_key"));
	ck_assert_int_eq(count_rows(help, "  ", "ADMIN_API_KEY", " "), 1);
	assert_contains(help, "(unset)");
	free(help);
	free(md);
	config_clear(&la.cfg);
}
END_TEST

START_TEST(test_print_markdown_every_key_once)
{
	char *md, *row;
	const char *line;
	size_t i;
	int rows = 0;

	md = print_to_string(config_print_markdown);
	for (i = 0; i < NKEYS; i++) {
		ck_assert_msg(count_rows(md, "| `", all_keys[i], "`") == 1,
		    "%s: not exactly one row", all_keys[i]);
		/* Seed variables say so in the table. */
		row = xasprintf("%s` (seed) |", all_keys[i]);
		if (i < NSEED_KEYS)
			assert_contains(md, row);
		else
			ck_assert_ptr_null(strstr(md, row));
		free(row);
	}
	/* No row for a key this test does not know: the two lists agree. */
	for (line = md; line != NULL && *line != '\0'; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (strncmp(line, "| `", 3) == 0)
			rows++;
	}
	ck_assert_int_eq(rows, (int)NKEYS);
	assert_contains(md, "| `MAX_CONNECTIONS` (seed) | `100000` |");
	assert_contains(md, "| `USER_MESSAGE_INTERVAL_SECS` (seed) | `3` |");
	free(md);
}
END_TEST

START_TEST(test_print_help_every_key_once)
{
	char *help;
	size_t i;

	help = print_to_string(print_help_all);
	for (i = 0; i < NKEYS; i++) {
		ck_assert_msg(count_rows(help, "  ", all_keys[i], " ") == 1,
		    "%s: not exactly one line", all_keys[i]);
	}
	free(help);
}
END_TEST

/* Each program's --help lists what it reads, and nothing it never reads. */
START_TEST(test_print_help_per_program)
{
	static const struct {
		void (*print)(FILE *);
		const char *has[4], *lacks[4];
	} cases[] = {
		{ print_help_api,
		    { "ADMIN_API_KEY", "API_THREADS", "DATABASE_URL", "TOKEN_SECRET" },
		    { "QUEUE_LOW_FRAMES", "CHATD_LISTEN", "CALLBACK_TIMEOUT_SECONDS",
			"BIND_ADDRESS" } },
		{ print_help_chatd,
		    { "CHATD_LISTEN", "QUEUE_HIGH_FRAMES", "CONTROL_SOCKET", "LOG_LEVEL" },
		    { "ADMIN_API_KEY", "API_THREADS", "SYNC_INTERVAL_SECONDS",
			"CONTROL_TIMEOUT_MS" } },
		{ print_help_sync,
		    { "CALLBACK_TIMEOUT_SECONDS", "ROOM_EVENT_CALLBACK_URL", "DATABASE_URL",
			"CALLBACK_SIGNING_SECRET" },
		    { "CHATD_LISTEN", "ADMIN_API_KEY", "MAX_FRAME_BYTES", "BIND_ADDRESS" } },
		{ print_help_ctl, { "CONTROL_SOCKET", "CONTROL_TIMEOUT_MS", "DATABASE_URL", NULL },
		    { "ADMIN_API_KEY", "CHATD_LISTEN", "LOG_LEVEL", "API_THREADS" } },
	};

	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		char *help = print_to_string(cases[c].print);
		for (size_t i = 0; i < 4; i++) {
			if (cases[c].has[i] != NULL)
				ck_assert_msg(count_rows(help, "  ", cases[c].has[i], " ") == 1,
				    "case %zu: %s missing", c, cases[c].has[i]);
			ck_assert_msg(count_rows(help, "  ", cases[c].lacks[i], " ") == 0,
			    "case %zu: %s listed", c, cases[c].lacks[i]);
		}
		free(help);
	}
}
END_TEST

START_TEST(test_table_names_programs)
{
	char *cause = NULL;

	ck_assert_msg(config_check_table(&cause) == 0, "%s", cause ? cause : "");
}
END_TEST

START_TEST(test_suggest)
{
	ck_assert_str_eq(config_suggest("DATABSE_URL"), "DATABASE_URL");
	ck_assert_str_eq(config_suggest("database_url"), "DATABASE_URL");
	ck_assert_str_eq(config_suggest("DatabaseUrl"), "DATABASE_URL");
	ck_assert_str_eq(config_suggest("LOG-LEVEL"), "LOG_LEVEL");
	ck_assert_str_eq(config_suggest("CONTROL_SOCKETS"), "CONTROL_SOCKET");
	ck_assert_str_eq(config_suggest("MAX_CONECTIONS"), "MAX_CONNECTIONS");
	ck_assert_str_eq(config_suggest("ADMIN_APIKEY"), "ADMIN_API_KEY");
	ck_assert_str_eq(config_suggest("TOKEN_SECERT"), "TOKEN_SECRET"); /* two edits */
	ck_assert_ptr_null(config_suggest("NOT_A_SETTING"));
	ck_assert_ptr_null(config_suggest("TOKEN_SAUCE"));
	ck_assert_ptr_null(config_suggest(""));
}
END_TEST

START_TEST(test_load_unknown_key_suggests)
{
	struct load_args la;
	char *err;

	memset(&la, 0, sizeof la);
	fakeenv_set(
	    &la.env, "CHAT_ENV_FILE", tmp_file("test.env", "ADMN_API_KEY=x\nNOT_A_SETTING=1\n"));
	err = capture_stderr(load_captured, &la);
	ck_assert_int_eq(la.rc, 0);
	assert_contains(err, "unknown setting ADMN_API_KEY ignored (did you mean ADMIN_API_KEY?)");
	assert_contains(err, "unknown setting NOT_A_SETTING ignored\n");
	ck_assert_ptr_null(la.cfg.admin_api_key);
	config_clear(&la.cfg);
	free(err);
}
END_TEST

/* The chatd.env(5) list: every key once, lines roff accepts. */
START_TEST(test_print_man)
{
	char *man = print_to_string(config_print_man), *row;
	const char *line;

	for (size_t i = 0; i < NKEYS; i++) {
		row = xasprintf(".It Ev %s\n", all_keys[i]);
		ck_assert_msg(strstr(man, row) != NULL && strstr(strstr(man, row) + 1, row) == NULL,
		    "%s: not exactly one entry", all_keys[i]);
		free(row);
	}
	ck_assert_int_eq(strncmp(man, ".Bl -tag -width Ds\n", 19), 0);
	assert_contains(man, ".Ql sqlite::memory:\\&");
	assert_contains(man,
	    "Read by\n.Xr chatd 8 ,\n.Xr chat-api 8 ,\n.Xr chat-sync 8\nand\n.Xr chatctl 1 .\n");
	assert_contains(man, "Default:\n.Ql 127.0.0.1:3001\\& .\n");
	ck_assert_ptr_null(strchr(man, '`'));
	for (line = man; *line != '\0';) {
		const char *eol = strchr(line, '\n');
		ck_assert_ptr_nonnull(eol);
		ck_assert_msg(
		    eol - line <= 80, "line longer than 80 bytes: %.*s", (int)(eol - line), line);
		ck_assert_msg(eol > line && *line != ' ' && *line != '\'', "bad line start: %.*s",
		    (int)(eol - line), line);
		line = eol + 1;
	}
	ck_assert_int_eq(strcmp(man + strlen(man) - 4, ".El\n"), 0);
	free(man);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_parse_comments_blank_lines);
	tcase_add_test(tc, test_parse_export_and_spacing);
	tcase_add_test(tc, test_parse_quotes);
	tcase_add_test(tc, test_parse_escapes);
	tcase_add_test(tc, test_parse_inline_comments);
	tcase_add_test(tc, test_parse_crlf);
	tcase_add_test(tc, test_parse_chinese);
	tcase_add_test(tc, test_parse_errors_name_line);
	tcase_add_test(tc, test_parse_error_hides_value);
	suite_add_tcase(s, tc);

	tc = tcase_create("values");
	tcase_add_test(tc, test_check_url_and_address);
	tcase_add_test(tc, test_database_url_forms);
	tcase_add_test(tc, test_database_url_password_hidden);
	tcase_add_test(tc, test_database_url_memory_with_options);
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, test_load_defaults);
	tcase_add_test(tc, test_load_seed_env);
	tcase_add_test(tc, test_load_env_overrides_file);
	tcase_add_test(tc, test_load_env_only);
	tcase_add_test(tc, test_load_missing_env_file);
	tcase_add_test(tc, test_load_dot_env_in_cwd);
	tcase_add_test(tc, test_load_dot_env_unreadable);
	tcase_add_test(tc, test_load_bad_values);
	tcase_add_test(tc, test_load_bad_values_from_env);
	tcase_add_test(tc, test_load_good_edge_values);
	tcase_add_test(tc, test_load_interval_fractions);
	tcase_add_test(tc, test_load_database_url);
	tcase_add_test(tc, test_load_empty_admin_key_is_unset);
	tcase_add_test(tc, test_load_unknown_key_warns);
	tcase_add_test(tc, test_load_unknown_key_suggests);
	tcase_add_test(tc, test_load_never_prints_secret);
	/* Files in the fixture's folder. */
	tcase_add_test(tc, test_cluster_settings);
	suite_add_tcase(s, tc);

	tc = tcase_create("print");
	tcase_add_test(tc, test_print_markdown_every_key_once);
	tcase_add_test(tc, test_print_help_every_key_once);
	tcase_add_test(tc, test_print_help_per_program);
	tcase_add_test(tc, test_table_names_programs);
	tcase_add_test(tc, test_print_man);
	tcase_add_test(tc, test_suggest);
	tcase_add_test(tc, test_default_node_id_fits);
	suite_add_tcase(s, tc);
	return s;
}
