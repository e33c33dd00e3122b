/*
 * The settings table and its one parser. Every key, its type, default,
 * range and help text live in config_table[]; loading, validation, --help
 * and the README table are all driven from it so they cannot drift.
 * Must not include any program's headers.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "dbaddr.h"
#include "dbfile.h"
#include "log.h"
#include "netaddr.h"
#include "xmalloc.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

/* Largest .env file we read; far above any sane configuration. */
#define CONFIG_FILE_MAX (1024 * 1024)

enum config_type {
	CONFIG_STRING,
	CONFIG_INT,
	CONFIG_MILLIS, /* seconds with up to 3 decimals, stored as milliseconds */
	CONFIG_URL, /* http(s) URL or empty (feature off) */
	CONFIG_ADDRESS, /* HOST:PORT */
	CONFIG_DBURL,
	CONFIG_LOGLEVEL,
	CONFIG_PATH,
	CONFIG_LISTEN, /* HOST:PORT or unix:PATH */
	CONFIG_NETLIST, /* addresses and CIDR ranges, netaddr.h */
	CONFIG_NATSURLS, /* nats:// URLs, comma-separated */
	CONFIG_TOKEN, /* a subject token: [A-Za-z0-9._-], at most max characters */
};

struct config_option {
	const char *key;
	enum config_type type;
	const char *def; /* NULL: unset by default */
	long long min, max; /* CONFIG_INT; CONFIG_MILLIS in milliseconds */
	size_t offset;
	int flags;
#define CONFIG_SECRET 0x1 /* value never printed */
#define CONFIG_SEED 0x2 /* from the original product README */
	const char *help;
	unsigned programs; /* CONFIG_API | CONFIG_CHATD | ... (config.h): who reads it */
};

#define OFF(f) offsetof(struct config, f)
#define DAY (24LL * 3600)

static const struct config_option config_table[] = {
	{ "DATABASE_URL", CONFIG_DBURL, NULL, 0, 0, OFF(database_url), CONFIG_SEED,
	    "The database. SQLite: `sqlite:PATH`, `sqlite://PATH` or `sqlite::memory:`; unset or "
	    "`sqlite::memory:` means a tmpfs file `" DBFILE_MEMORY_BASE
	    "/chatd-UID/" DBFILE_MEMORY_NAME
	    "` in a folder private to the user (mode 0700), shared by all of that user's programs "
	    "and lost at reboot. PostgreSQL (nodes on several machines): "
	    "`postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=...` (or `postgresql://`), "
	    "libpq's URI syntax; the database must exist, the tables are made on first start. "
	    "The password is never printed.",
	    CONFIG_API | CONFIG_CHATD | CONFIG_SYNC | CONFIG_CTL },
	{ "BIND_ADDRESS", CONFIG_ADDRESS, "127.0.0.1:3000", 0, 0, OFF(bind_address), CONFIG_SEED,
	    "Public address the web server listens on in the bundled configs and the quick "
	    "start.",
	    CONFIG_WEB },
	{ "ADMIN_API_KEY", CONFIG_STRING, NULL, 0, 0, OFF(admin_api_key),
	    CONFIG_SEED | CONFIG_SECRET,
	    "Key required in `X-Api-Key` by every management route. Unset: every route answers "
	    "503.",
	    CONFIG_API },
	{ "MAX_CONNECTIONS", CONFIG_INT, "100000", 1, 10000000, OFF(max_connections), CONFIG_SEED,
	    "Most WebSocket connections chatd holds at once; more are refused with 503.",
	    CONFIG_CHATD | CONFIG_WEB },
	{ "DATA_CALLBACK_URL", CONFIG_URL, "", 0, 0, OFF(data_callback_url), CONFIG_SEED,
	    "Legacy callback: receives the `GET /management/sync` body on room creation and each "
	    "periodic sync. Empty: off.",
	    CONFIG_SYNC },
	{ "ROOM_EVENT_CALLBACK_URL", CONFIG_URL, "", 0, 0, OFF(room_event_callback_url),
	    CONFIG_SEED, "Receives room created/closed and user joined/left events. Empty: off.",
	    CONFIG_SYNC },
	{ "CHAT_HISTORY_CALLBACK_URL", CONFIG_URL, "", 0, 0, OFF(chat_history_callback_url),
	    CONFIG_SEED, "Receives chat history in batches. Empty: off.", CONFIG_SYNC },
	{ "SESSION_HISTORY_CALLBACK_URL", CONFIG_URL, "", 0, 0, OFF(session_history_callback_url),
	    CONFIG_SEED, "Receives completed sessions in batches. Empty: off.", CONFIG_SYNC },
	{ "PERIODIC_SYNC_CALLBACK_URL", CONFIG_URL, "", 0, 0, OFF(periodic_sync_callback_url),
	    CONFIG_SEED,
	    "Receives every room's info, stats and a consistency block every "
	    "`SYNC_INTERVAL_SECONDS`. Empty: off.",
	    CONFIG_SYNC },
	{ "CHAT_HISTORY_BATCH_SIZE", CONFIG_INT, "1000", 1, 100000, OFF(chat_history_batch_size),
	    CONFIG_SEED, "Most messages in one chat-history callback.", CONFIG_SYNC },
	{ "SESSION_HISTORY_BATCH_SIZE", CONFIG_INT, "500", 1, 100000,
	    OFF(session_history_batch_size), CONFIG_SEED,
	    "Most sessions in one session-history callback.", CONFIG_SYNC },
	{ "CHAT_HISTORY_BATCH_INTERVAL_SECONDS", CONFIG_INT, "300", 1, 30 * DAY,
	    OFF(chat_history_batch_interval_seconds), CONFIG_SEED,
	    "Seconds between chat-history batches (sooner when a full batch waits).", CONFIG_SYNC },
	{ "SESSION_HISTORY_BATCH_INTERVAL_SECONDS", CONFIG_INT, "600", 1, 30 * DAY,
	    OFF(session_history_batch_interval_seconds), CONFIG_SEED,
	    "Seconds between session-history batches (sooner when a full batch waits).",
	    CONFIG_SYNC },
	{ "CALLBACK_MAX_RETRIES", CONFIG_INT, "3", 0, 100, OFF(callback_max_retries), CONFIG_SEED,
	    "Retries of a failed callback within one run; what still fails stays pending.",
	    CONFIG_SYNC },
	{ "CALLBACK_RETRY_DELAY_SECONDS", CONFIG_INT, "5", 0, 3600,
	    OFF(callback_retry_delay_seconds), CONFIG_SEED,
	    "Delay before the first retry (doubles each retry, capped).", CONFIG_SYNC },
	{ "CALLBACK_TIMEOUT_SECONDS", CONFIG_INT, "30", 1, 3600, OFF(callback_timeout_seconds),
	    CONFIG_SEED, "Timeout of one callback attempt.", CONFIG_SYNC },
	{ "CALLBACK_DEAD_LETTER_ATTEMPTS", CONFIG_INT, "10", 0, 1000000,
	    OFF(callback_dead_letter_attempts), 0,
	    "Failed attempts of one batch, counted across chat-sync runs, after which a refusal "
	    "(a 4xx but 408, 425, 429) sets it aside as a dead letter and delivery goes on "
	    "(docs/callbacks.md). No answer or a 5xx never does. 0: never.",
	    CONFIG_SYNC },
	{ "CALLBACK_DEAD_LETTER_AGE_SECONDS", CONFIG_INT, "0", 0, 365 * DAY,
	    OFF(callback_dead_letter_age_seconds), 0,
	    "Seconds since a batch's first failed attempt after which its next failure sets it "
	    "aside as a dead letter. 0: never.",
	    CONFIG_SYNC },
	{ "SYNC_INTERVAL_SECONDS", CONFIG_INT, "300", 1, 30 * DAY, OFF(sync_interval_seconds),
	    CONFIG_SEED, "Seconds between periodic syncs.", CONFIG_SYNC },
	{ "CALLBACK_SIGNING_SECRET", CONFIG_STRING, NULL, 0, 0, OFF(callback_signing_secret),
	    CONFIG_SECRET,
	    "Signs every callback (Standard Webhooks `webhook-signature`, HMAC-SHA256). Used as "
	    "raw "
	    "bytes, or base64-decoded after a `whsec_` prefix. Unset: callbacks are not signed.",
	    CONFIG_SYNC },
	{ "METRICS_TEXTFILE", CONFIG_STRING, NULL, 0, 0, OFF(metrics_textfile), 0,
	    "chat-sync writes its metrics (Prometheus text format) to this file after each "
	    "--once run and every 15 seconds in --daemon, replacing it atomically, for "
	    "node_exporter's textfile collector (a path ending in .prom in its directory). "
	    "Unset: no file.",
	    CONFIG_SYNC },
	{ "USER_MESSAGE_INTERVAL_SECS", CONFIG_MILLIS, "3", 0, DAY * 1000,
	    OFF(user_message_interval_ms), CONFIG_SEED,
	    "Minimum seconds between two messages of a non-admin user in one room (fractions such "
	    "as `0.5` allowed). 0: no limit.",
	    CONFIG_CHATD },
	{ "CHATD_LISTEN", CONFIG_LISTEN, "127.0.0.1:3001", 0, 0, OFF(chatd_listen), 0,
	    "Where chatd's WebSocket listener binds, behind the web server's proxy: `HOST:PORT`, "
	    "or `unix:PATH` for a Unix socket (absolute path; mode 0660, see "
	    "`CHATD_SOCKET_GROUP`), which local users outside that group cannot reach.",
	    CONFIG_CHATD | CONFIG_WEB },
	{ "CHATD_SOCKET_GROUP", CONFIG_STRING, NULL, 0, 0, OFF(chatd_socket_group), 0,
	    "With `CHATD_LISTEN=unix:PATH`: the group (name or number) the socket is given, the "
	    "web server's (e.g. `www-data`); only it and chatd's user may connect. Unset: the "
	    "group the socket gets on creation (the folder's if it is set-group-ID, else "
	    "chatd's).",
	    CONFIG_CHATD },
	{ "TRUSTED_PROXIES", CONFIG_NETLIST, "127.0.0.0/8,::1", 0, 0, OFF(trusted_proxies), 0,
	    "Comma-separated addresses and CIDR ranges (IPv4 and IPv6) of the proxies whose "
	    "`X-Forwarded-For` chatd believes; from any other peer the header is ignored. The "
	    "client is the right-most entry that is not itself a trusted proxy. A peer on the "
	    "Unix socket is always trusted. Empty: trust no TCP peer.",
	    CONFIG_CHATD },
	{ "TOKEN_SECRET", CONFIG_STRING, NULL, 0, 0, OFF(token_secret), CONFIG_SECRET,
	    "Secret for signed join tokens (HS256). Unset: `user_id` from the query string is "
	    "trusted, as in the original server.",
	    CONFIG_API | CONFIG_CHATD },
	{ "MAX_MESSAGE_BYTES", CONFIG_INT, "4096", 1, 1024 * 1024, OFF(max_message_bytes), 0,
	    "Largest chat message content in bytes; larger gets an `Error`.", CONFIG_CHATD },
	{ "MAX_FRAME_BYTES", CONFIG_INT, "65536", 1024, 16 * 1024 * 1024, OFF(max_frame_bytes), 0,
	    "Hard cap on one incoming WebSocket message; beyond it the connection closes with "
	    "1009.",
	    CONFIG_CHATD },
	{ "MAX_CONNECTIONS_PER_ADDRESS", CONFIG_INT, "1000", 0, 10000000,
	    OFF(max_connections_per_address), 0,
	    "Most WebSocket connections from one client address (X-Forwarded-For behind the "
	    "proxy). 0: no limit.",
	    CONFIG_CHATD },
	{ "WS_PING_INTERVAL_SECONDS", CONFIG_INT, "30", 1, 3600, OFF(ws_ping_interval_seconds), 0,
	    "Idle seconds before chatd pings a client; keep it below the proxy's idle timeout.",
	    CONFIG_CHATD },
	{ "WS_IDLE_TIMEOUT_SECONDS", CONFIG_INT, "75", 2, 86400, OFF(ws_idle_timeout_seconds), 0,
	    "A client silent this long (no data, no pong) is disconnected.", CONFIG_CHATD },
	{ "HANDSHAKE_TIMEOUT_SECONDS", CONFIG_INT, "10", 1, 300, OFF(handshake_timeout_seconds), 0,
	    "Time a client has to complete the WebSocket handshake.", CONFIG_CHATD },
	{ "QUEUE_LOW_FRAMES", CONFIG_INT, "256", 1, 1000000, OFF(queue_low_frames), 0,
	    "Per connection: queued chat frames; beyond it the oldest are dropped and the client "
	    "is told.",
	    CONFIG_CHATD },
	{ "QUEUE_HIGH_FRAMES", CONFIG_INT, "64", 1, 1000000, OFF(queue_high_frames), 0,
	    "Per connection: queued high-priority frames; beyond it the client is disconnected.",
	    CONFIG_CHATD },
	{ "CONTROL_SOCKET", CONFIG_PATH, "/run/chatd/control.sock", 0, 0, OFF(control_socket), 0,
	    "Unix socket of chatd's control protocol (chat-api, chat-sync and chatctl connect to "
	    "it).",
	    CONFIG_API | CONFIG_CHATD | CONFIG_SYNC | CONFIG_CTL },
	{ "CONTROL_TIMEOUT_MS", CONFIG_INT, "2000", 10, 60000, OFF(control_timeout_ms), 0,
	    "How long a control-socket client waits for chatd's reply.",
	    CONFIG_API | CONFIG_SYNC | CONFIG_CTL },
	{ "CONTROL_IDLE_TIMEOUT_SECONDS", CONFIG_INT, "300", 1, 86400,
	    OFF(control_idle_timeout_seconds), 0,
	    "chatd closes a control-socket connection that sends nothing this long, or leaves a "
	    "request line unfinished this long.",
	    CONFIG_CHATD },
	{ "API_THREADS", CONFIG_INT, "8", 1, 256, OFF(api_threads), 0,
	    "chat-api worker threads, each serving one request at a time.", CONFIG_API },
	{ "API_MAX_BODY_BYTES", CONFIG_INT, "65536", 1024, 16 * 1024 * 1024,
	    OFF(api_max_body_bytes), 0, "Largest management request body; larger gets 413.",
	    CONFIG_API },
	{ "CLUSTER_NATS_URL", CONFIG_NATSURLS, NULL, 0, 0, OFF(cluster_nats_url), 0,
	    "The NATS server(s) joining several chatd nodes into one chat service: "
	    "comma-separated `nats://HOST:PORT` URLs (`nats://user:password@HOST:PORT` with "
	    "credentials; `tls://` for TLS). Unset: chatd is a single node, with no bus "
	    "(docs/cluster.md).",
	    CONFIG_CHATD | CONFIG_WEB },
	{ "NODE_ID", CONFIG_TOKEN, NULL, 1, CONFIG_NODE_ID_MAX, OFF(node_id), 0,
	    "This node's name in the cluster: unique per node and the same across its restarts "
	    "(its sessions are found by it), at most 64 letters, digits, `.`, `_` or `-`. "
	    "Unset: the host name; set it when one host runs several nodes.",
	    CONFIG_CHATD },
	{ "CLUSTER_NAME", CONFIG_TOKEN, "chatd", 1, 32, OFF(cluster_name), 0,
	    "Prefix of the cluster's NATS subjects, so that several clusters can share one "
	    "NATS: at most 32 letters, digits, `.`, `_` or `-`.",
	    CONFIG_CHATD },
	{ "CLUSTER_HEARTBEAT_SECS", CONFIG_MILLIS, "1", 100, 60 * 1000, OFF(cluster_heartbeat_ms),
	    0, "How often a node tells the others (on the bus) and the database that it is alive.",
	    CONFIG_CHATD },
	{ "CLUSTER_NODE_TIMEOUT_SECS", CONFIG_MILLIS, "5", 500, 3600 * 1000,
	    OFF(cluster_node_timeout_ms), 0,
	    "A node silent this long counts as gone: its users leave the counts, and once the "
	    "database has not heard from it either, its sessions are closed (`node_lost`). At "
	    "least twice `CLUSTER_HEARTBEAT_SECS`. chat-api and chatctl use it to tell a silent "
	    "node from a live one.",
	    CONFIG_CHATD | CONFIG_API | CONFIG_CTL },
	{ "CLUSTER_GAP_WAIT_SECS", CONFIG_MILLIS, "0.2", 1, 10 * 1000, OFF(cluster_gap_wait_ms), 0,
	    "How long a node holds a room's message that arrived ahead of a missing one before "
	    "it reads the missing ones from the database.",
	    CONFIG_CHATD },
	{ "LOG_LEVEL", CONFIG_LOGLEVEL, "info", 0, 0, OFF(log_level), 0,
	    "`debug`, `info`, `warning` or `error`.", CONFIG_API | CONFIG_CHATD | CONFIG_SYNC },
};

#define CONFIG_COUNT (sizeof config_table / sizeof config_table[0])

static const struct config_option *
config_find(const char *key)
{
	for (size_t i = 0; i < CONFIG_COUNT; i++) {
		if (strcmp(config_table[i].key, key) == 0)
			return &config_table[i];
	}
	return NULL;
}

/* Uppercase without '_' and '-': "database-url" and "DATABASEURL" name DATABASE_URL. */
static int
config_normalize(const char *key, char *out, size_t size)
{
	size_t n = 0;

	for (; *key != '\0'; key++) {
		if (*key == '_' || *key == '-')
			continue;
		if (n + 1 >= size)
			return -1;
		out[n++] = (char)toupper((unsigned char)*key);
	}
	out[n] = '\0';
	return 0;
}

/* Edit distance between a (compared uppercased) and b; keys are short. */
static size_t
config_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[129], prev, i, j;

	if (la > 128 || lb > 128)
		return (size_t)-1;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t cost =
			    toupper((unsigned char)a[i - 1]) == (unsigned char)b[j - 1] ? 0 : 1;
			size_t best = prev + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			prev = row[j];
			row[j] = best;
		}
	}
	return row[lb];
}

const char *
config_suggest(const char *key)
{
	const char *best = NULL;
	size_t best_d = CONFIG_SUGGEST_DISTANCE + 1;
	char nk[129], nt[129];

	if (config_normalize(key, nk, sizeof nk) != 0)
		return NULL;
	for (size_t i = 0; i < CONFIG_COUNT; i++) {
		size_t d;

		if (config_normalize(config_table[i].key, nt, sizeof nt) == 0 &&
		    strcmp(nk, nt) == 0)
			return config_table[i].key;
		if ((d = config_distance(key, config_table[i].key)) < best_d) {
			best_d = d;
			best = config_table[i].key;
		}
	}
	return best;
}

int
config_check_url(const char *url)
{
	const char *host;
	size_t i;

	if (*url == '\0')
		return 0;
	if (strncasecmp(url, "http://", 7) == 0)
		host = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		host = url + 8;
	else
		return -1;
	if (*host == '\0' || *host == '/' || *host == ':' || *host == '?' || *host == '#')
		return -1;
	for (i = 0; url[i] != '\0'; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= ' ' || c == 0x7f)
			return -1;
	}
	return 0;
}

static int
config_parse_port(const char *s)
{
	char *end;
	long v;

	if (*s == '\0' || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return -1;
	return (int)v;
}

int
config_check_address(const char *addr)
{
	const char *colon;
	size_t i;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');
		if (close == NULL || close == addr + 1 || close[1] != ':')
			return -1;
		return config_parse_port(close + 2) < 0 ? -1 : 0;
	}
	colon = strrchr(addr, ':');
	if (colon == NULL || colon == addr)
		return -1;
	for (i = 0; addr + i < colon; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (!isalnum(c) && c != '.' && c != '-' && c != '_')
			return -1;
	}
	return config_parse_port(colon + 1) < 0 ? -1 : 0;
}

int
config_check_listen(const char *spec)
{
	struct sockaddr_un sun;
	const char *path;

	if (strncmp(spec, CONFIG_UNIX_PREFIX, strlen(CONFIG_UNIX_PREFIX)) != 0)
		return config_check_address(spec);
	path = spec + strlen(CONFIG_UNIX_PREFIX);
	return path[0] == '/' && strlen(path) < sizeof sun.sun_path ? 0 : -1;
}

int
config_parse_database_url(const char *url, char **path, int *is_memory, char **cause)
{
	const char *p;
	char *why = NULL, *shown;
	size_t len;

	*path = NULL;
	*is_memory = 0;
	if (url == NULL || *url == '\0')
		goto memory;
	if (dbaddr_is_pg(url)) {
		/* libpq reads it whole: the address is the URI. */
		if (dbaddr_check_pg(url, &why) != 0) {
			*cause = xasprintf("DATABASE_URL=%s", why);
			free(why);
			return -1;
		}
		*path = xstrdup(url);
		return 0;
	}
	if (strncmp(url, "sqlite://", 9) == 0)
		p = url + 9;
	else if (strncmp(url, "sqlite:", 7) == 0)
		p = url + 7;
	else {
		shown = dbaddr_display(url);
		*cause = xasprintf("DATABASE_URL=%s: must start with sqlite: (sqlite:PATH, "
				   "sqlite://PATH or sqlite::memory:) or be a PostgreSQL URI "
				   "(postgres://... or postgresql://...)",
		    shown);
		free(shown);
		return -1;
	}
	/* sqlx accepts "?mode=rwc" and similar options; the file is what matters. */
	len = strcspn(p, "?");
	if (len == 8 && strncmp(p, ":memory:", 8) == 0)
		goto memory;
	if (len == 0) {
		*cause = xasprintf("DATABASE_URL=%s: no file path", url);
		return -1;
	}
	*path = xstrndup(p, len);
	return 0;
memory:
	*path = dbfile_memory_path();
	*is_memory = 1;
	return 0;
}

static int
config_parse_int(const char *s, long long *out)
{
	char *end;
	long long v;

	while (isspace((unsigned char)*s))
		s++;
	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s)
		return -1;
	while (isspace((unsigned char)*end))
		end++;
	if (*end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* "3", "0.5", "1.25" seconds -> milliseconds. No sign, no exponent. */
static int
config_parse_millis(const char *s, long long *out)
{
	long long whole = 0, frac = 0;
	int digits = 0, fdigits = 0;

	while (isspace((unsigned char)*s))
		s++;
	for (; isdigit((unsigned char)*s); s++, digits++) {
		if (whole > (LLONG_MAX / 1000 - 9) / 10)
			return -1;
		whole = whole * 10 + (*s - '0');
	}
	if (*s == '.') {
		for (s++; isdigit((unsigned char)*s); s++, fdigits++) {
			if (fdigits == 3)
				return -1;
			frac = frac * 10 + (*s - '0');
		}
		if (fdigits == 0)
			return -1;
	}
	while (isspace((unsigned char)*s))
		s++;
	if (digits == 0 || *s != '\0')
		return -1;
	while (fdigits++ < 3)
		frac *= 10;
	*out = whole * 1000 + frac;
	return 0;
}

int
config_check_token(const char *s, size_t max)
{
	size_t n = 0;

	for (; *s != '\0'; s++, n++) {
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return -1;
	}
	return n == 0 || n > max ? -1 : 0;
}

/* One URL: nats:// or tls://, optional user[:password]@, a host, optional :port. */
static int
config_check_nats_url(const char *u, size_t len)
{
	const char *end = u + len, *at, *host, *colon;
	long port = 0;

	if (len > 7 && strncmp(u, "nats://", 7) == 0)
		u += 7;
	else if (len > 6 && strncmp(u, "tls://", 6) == 0)
		u += 6;
	else
		return -1;
	for (at = end; at > u && at[-1] != '@'; at--)
		;
	host = at > u ? at : u;
	if (host == end || memchr(host, '/', (size_t)(end - host)) != NULL)
		return -1;
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));
		if (close == NULL || close == host + 1)
			return -1;
		colon = close + 1 < end ? close + 1 : NULL;
		if (colon != NULL && *colon != ':')
			return -1;
	} else {
		colon = memchr(host, ':', (size_t)(end - host));
		if (colon == host)
			return -1;
	}
	if (colon == NULL)
		return 0;
	if (colon + 1 == end)
		return -1;
	for (const char *p = colon + 1; p < end; p++) {
		if (!isdigit((unsigned char)*p) || port > 65535)
			return -1;
		port = port * 10 + (*p - '0');
	}
	return port >= 1 && port <= 65535 ? 0 : -1;
}

int
config_check_nats_urls(const char *list)
{
	const char *p = list;

	if (*p == '\0')
		return 0; /* empty: no cluster */
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

		while (len > 0 && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (config_check_nats_url(p, len) != 0)
			return -1;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

char *
config_default_node_id(void)
{
	char host[256];
	size_t i;

	if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
		return xstrdup("chatd");
	host[sizeof host - 1] = '\0';
	host[CONFIG_NODE_ID_MAX] = '\0';
	for (i = 0; host[i] != '\0'; i++) {
		if (!isalnum((unsigned char)host[i]) && host[i] != '.' && host[i] != '_' &&
		    host[i] != '-')
			host[i] = '-';
	}
	return xstrdup(host);
}

/* Checks and stores one value; the message names key and value. */
static int
config_set(struct config *cfg, const struct config_option *opt, const char *value, char **cause)
{
	char *base = (char *)cfg;
	const char *shown = (opt->flags & CONFIG_SECRET) ? "(hidden)" : value;
	long long v;

	switch (opt->type) {
	case CONFIG_INT:
		if (config_parse_int(value, &v) != 0) {
			*cause = xasprintf("%s=%s: not a whole number", opt->key, shown);
			return -1;
		}
		if (v < opt->min || v > opt->max) {
			*cause = xasprintf("%s=%s: must be between %lld and %lld", opt->key, shown,
			    opt->min, opt->max);
			return -1;
		}
		*(long long *)(base + opt->offset) = v;
		return 0;
	case CONFIG_MILLIS:
		if (config_parse_millis(value, &v) != 0) {
			*cause = xasprintf(
			    "%s=%s: not a number of seconds (up to 3 decimals)", opt->key, shown);
			return -1;
		}
		if (v < opt->min || v > opt->max) {
			*cause = xasprintf("%s=%s: must be between %lld and %lld seconds", opt->key,
			    shown, opt->min / 1000, opt->max / 1000);
			return -1;
		}
		*(long long *)(base + opt->offset) = v;
		return 0;
	case CONFIG_URL:
		if (config_check_url(value) != 0) {
			*cause =
			    xasprintf("%s=%s: not an http:// or https:// URL", opt->key, shown);
			return -1;
		}
		break;
	case CONFIG_ADDRESS:
		if (config_check_address(value) != 0) {
			*cause = xasprintf("%s=%s: expected HOST:PORT with a port from 1 to 65535",
			    opt->key, shown);
			return -1;
		}
		break;
	case CONFIG_LISTEN:
		if (config_check_listen(value) != 0) {
			*cause =
			    xasprintf("%s=%s: expected HOST:PORT with a port from 1 to 65535, or "
				      "unix:PATH with an absolute PATH",
				opt->key, shown);
			return -1;
		}
		break;
	case CONFIG_NETLIST: {
		struct netaddr_list list;
		char *why = NULL;
		if (netaddr_list_parse(value, &list, &why) != 0) {
			*cause = xasprintf("%s=%s: %s", opt->key, shown, why);
			free(why);
			return -1;
		}
		netaddr_list_clear(&list);
		break;
	}
	case CONFIG_DBURL: {
		char *path;
		int mem;
		if (config_parse_database_url(value, &path, &mem, cause) != 0)
			return -1;
		free(cfg->database_path);
		cfg->database_path = path;
		cfg->database_is_memory = mem;
		cfg->database_is_pg = dbaddr_is_pg(path);
		break;
	}
	case CONFIG_LOGLEVEL:
		if (log_level_parse(value) < 0) {
			*cause = xasprintf(
			    "%s=%s: expected debug, info, warning or error", opt->key, shown);
			return -1;
		}
		break;
	case CONFIG_PATH:
		if (*value == '\0') {
			*cause = xasprintf("%s is empty: a path is required", opt->key);
			return -1;
		}
		break;
	case CONFIG_NATSURLS:
		if (config_check_nats_urls(value) != 0) {
			/* The URLs may carry a password: not echoed. */
			*cause = xasprintf(
			    "%s: expected comma-separated nats://HOST:PORT URLs", opt->key);
			return -1;
		}
		break;
	case CONFIG_TOKEN:
		if (config_check_token(value, (size_t)opt->max) != 0) {
			*cause = xasprintf("%s=%s: expected 1 to %lld letters, digits, '.', '_' or "
					   "'-'",
			    opt->key, shown, opt->max);
			return -1;
		}
		break;
	case CONFIG_STRING:
		break;
	}
	free(*(char **)(base + opt->offset));
	*(char **)(base + opt->offset) = xstrdup(value);
	return 0;
}

/* Collects file pairs so the environment can override them afterwards. */
struct config_pairs {
	char **keys;
	char **values;
	size_t n;
};

static int
config_pairs_add(const char *key, const char *value, void *arg)
{
	struct config_pairs *pairs = arg;

	pairs->keys = xreallocarray(pairs->keys, pairs->n + 1, sizeof *pairs->keys);
	pairs->values = xreallocarray(pairs->values, pairs->n + 1, sizeof *pairs->values);
	pairs->keys[pairs->n] = xstrdup(key);
	pairs->values[pairs->n] = xstrdup(value);
	pairs->n++;
	return 0;
}

static void
config_pairs_clear(struct config_pairs *pairs)
{
	for (size_t i = 0; i < pairs->n; i++) {
		free(pairs->keys[i]);
		free(pairs->values[i]);
	}
	free(pairs->keys);
	free(pairs->values);
}

static const char *
config_pairs_get(const struct config_pairs *pairs, const char *key)
{
	/* The last assignment in the file wins, as in a shell. */
	for (size_t i = pairs->n; i > 0; i--) {
		if (strcmp(pairs->keys[i - 1], key) == 0)
			return pairs->values[i - 1];
	}
	return NULL;
}

static int
config_is_key_char(int c, int first)
{
	return c == '_' || isalpha(c) || (!first && isdigit(c));
}

int
config_parse_env_text(const char *text, size_t len, int (*set)(const char *, const char *, void *),
    void *arg, char **cause)
{
	const char *p = text, *end = text + len;
	unsigned lineno = 0;
	char *value = NULL;

	/* Editors on some systems start files with a UTF-8 byte order mark. */
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol ? eol : end;
		const char *s = p, *e = line_end, *kstart, *kend;
		char key[128];
		size_t vlen = 0;

		lineno++;
		p = eol ? eol + 1 : end;
		if (e > s && e[-1] == '\r')
			e--;
		while (s < e && isspace((unsigned char)*s))
			s++;
		if (s == e || *s == '#')
			continue;
		if ((size_t)(e - s) > 7 && strncmp(s, "export", 6) == 0 &&
		    isspace((unsigned char)s[6])) {
			s += 7;
			while (s < e && isspace((unsigned char)*s))
				s++;
		}
		kstart = s;
		while (s < e && config_is_key_char((unsigned char)*s, s == kstart))
			s++;
		kend = s;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		if (kend == kstart || s == e || *s != '=') {
			*cause = xasprintf("line %u: expected KEY=VALUE", lineno);
			goto fail;
		}
		if ((size_t)(kend - kstart) >= sizeof key) {
			*cause = xasprintf("line %u: key too long", lineno);
			goto fail;
		}
		memcpy(key, kstart, (size_t)(kend - kstart));
		key[kend - kstart] = '\0';
		s++;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;

		value = xmalloc((size_t)(e - s) + 1);
		if (s < e && (*s == '"' || *s == '\'')) {
			char q = *s++;
			while (s < e && *s != q) {
				/* Double quotes allow \" \\ \n escapes, as in dotenv. */
				if (q == '"' && *s == '\\' && s + 1 < e) {
					s++;
					value[vlen++] = *s == 'n' ? '\n' : *s;
					s++;
					continue;
				}
				value[vlen++] = *s++;
			}
			if (s == e) {
				*cause =
				    xasprintf("line %u: unterminated quote in %s", lineno, key);
				goto fail;
			}
			s++;
			while (s < e && isspace((unsigned char)*s))
				s++;
			if (s < e && *s != '#') {
				*cause = xasprintf(
				    "line %u: text after closing quote in %s", lineno, key);
				goto fail;
			}
		} else {
			/* A '#' starts a comment only at the start or after whitespace,
			 * so "http://host/#frag" keeps its fragment. */
			const char *v = s;
			while (v < e && !(*v == '#' && (v == s || isspace((unsigned char)v[-1]))))
				v++;
			while (v > s && isspace((unsigned char)v[-1]))
				v--;
			vlen = (size_t)(v - s);
			memcpy(value, s, vlen);
		}
		value[vlen] = '\0';
		if (set(key, value, arg) != 0) {
			*cause = xasprintf("line %u: cannot set %s", lineno, key);
			goto fail;
		}
		free(value);
		value = NULL;
	}
	return 0;
fail:
	free(value);
	return -1;
}

/* Reads the first existing env file; -1 with *cause on a read or parse error. */
static int
config_read_file(
    const char *path, int must_exist, struct config_pairs *pairs, int *found, char **cause)
{
	char *buf = NULL, *perr = NULL;
	size_t len = 0;
	ssize_t n;
	int fd;

	*found = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT && !must_exist)
			return 0;
		*cause = xasprintf(
		    "%s%s: %s", must_exist ? "CHAT_ENV_FILE=" : "", path, strerror(errno));
		return -1;
	}
	buf = xmalloc(CONFIG_FILE_MAX + 1);
	while ((n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX)
			break;
	}
	if (n < 0) {
		int saved = errno;
		close(fd);
		free(buf);
		*cause = xasprintf("%s: %s", path, strerror(saved));
		return -1;
	}
	close(fd);
	if (len > CONFIG_FILE_MAX) {
		free(buf);
		*cause = xasprintf("%s: larger than %d bytes", path, CONFIG_FILE_MAX);
		return -1;
	}
	if (config_parse_env_text(buf, len, config_pairs_add, pairs, &perr) != 0) {
		*cause = xasprintf("%s: %s", path, perr);
		free(perr);
		free(buf);
		return -1;
	}
	free(buf);
	*found = 1;
	return 0;
}

static const char *
config_default_getenv(const char *key, void *arg)
{
	(void)arg;
	return getenv(key);
}

int
config_load(struct config *cfg, config_getenv_fn getenv_fn, void *arg, char **cause)
{
	struct config_pairs pairs = { NULL, NULL, 0 };
	const char *env_file;
	int found = 0;
	size_t i;

	memset(cfg, 0, sizeof *cfg);
	if (getenv_fn == NULL)
		getenv_fn = config_default_getenv;

	env_file = getenv_fn("CHAT_ENV_FILE", arg);
	if (env_file != NULL && *env_file != '\0') {
		if (config_read_file(env_file, 1, &pairs, &found, cause) != 0)
			goto fail;
		cfg->source_file = xstrdup(env_file);
	} else {
		if (config_read_file(".env", 0, &pairs, &found, cause) != 0)
			goto fail;
		if (found)
			cfg->source_file = xstrdup(".env");
		else {
			if (config_read_file(
				SYSCONFDIR "/chatd/chatd.env", 0, &pairs, &found, cause) != 0)
				goto fail;
			if (found)
				cfg->source_file = xstrdup(SYSCONFDIR "/chatd/chatd.env");
		}
	}
	for (i = 0; i < pairs.n; i++) {
		if (config_find(pairs.keys[i]) == NULL &&
		    strcmp(pairs.keys[i], "CHAT_ENV_FILE") != 0) {
			const char *near = config_suggest(pairs.keys[i]);
			if (near != NULL)
				log_warn("%s: unknown setting %s ignored (did you mean %s?)",
				    cfg->source_file, pairs.keys[i], near);
			else
				log_warn("%s: unknown setting %s ignored", cfg->source_file,
				    pairs.keys[i]);
		}
	}

	for (i = 0; i < CONFIG_COUNT; i++) {
		const struct config_option *opt = &config_table[i];
		const char *v = getenv_fn(opt->key, arg);

		if (v == NULL)
			v = config_pairs_get(&pairs, opt->key);
		if (v == NULL)
			v = opt->def;
		/* An empty name is as good as none: the default, or unset. */
		if (v != NULL && *v == '\0' && opt->type == CONFIG_TOKEN)
			v = opt->def;
		/* An empty secret is as good as none: never open access. */
		if (v == NULL ||
		    ((opt->type == CONFIG_STRING || opt->type == CONFIG_NATSURLS) && *v == '\0'))
			continue;
		if (config_set(cfg, opt, v, cause) != 0)
			goto fail;
	}
	if (cfg->database_path == NULL) {
		cfg->database_path = dbfile_memory_path();
		cfg->database_is_memory = 1;
	}
	if (cfg->node_id == NULL)
		cfg->node_id = config_default_node_id();
	/* One missed heartbeat must not make a node count as gone. */
	if (cfg->cluster_node_timeout_ms < 2 * cfg->cluster_heartbeat_ms) {
		*cause = xasprintf("CLUSTER_NODE_TIMEOUT_SECS=%lld.%03lld: must be at least twice "
				   "CLUSTER_HEARTBEAT_SECS (%lld.%03lld)",
		    cfg->cluster_node_timeout_ms / 1000, cfg->cluster_node_timeout_ms % 1000,
		    cfg->cluster_heartbeat_ms / 1000, cfg->cluster_heartbeat_ms % 1000);
		goto fail;
	}
	config_pairs_clear(&pairs);
	return 0;
fail:
	config_pairs_clear(&pairs);
	config_clear(cfg);
	return -1;
}

void
config_load_or_exit(struct config *cfg)
{
	char *cause = NULL;

	if (config_load(cfg, NULL, NULL, &cause) != 0)
		fatal("configuration: %s", cause);
	log_set_level((enum log_level)log_level_parse(cfg->log_level));
}

void
config_clear(struct config *cfg)
{
	char *base = (char *)cfg;

	for (size_t i = 0; i < CONFIG_COUNT; i++) {
		const struct config_option *opt = &config_table[i];
		if (opt->type != CONFIG_INT && opt->type != CONFIG_MILLIS) {
			free(*(char **)(base + opt->offset));
			*(char **)(base + opt->offset) = NULL;
		}
	}
	free(cfg->database_path);
	free(cfg->source_file);
	memset(cfg, 0, sizeof *cfg);
}

static const char *
config_default_text(const struct config_option *opt)
{
	if (opt->def == NULL)
		return "(unset)";
	if (*opt->def == '\0')
		return "(empty)";
	return opt->def;
}

void
config_print_help(FILE *out, unsigned program)
{
	fprintf(out,
	    "Settings read (environment, then $CHAT_ENV_FILE, ./.env or %s/chatd/chatd.env):\n",
	    SYSCONFDIR);
	for (size_t i = 0; i < CONFIG_COUNT; i++) {
		const struct config_option *opt = &config_table[i];
		if (opt->programs & program)
			fprintf(out, "  %-40s default %s\n", opt->key, config_default_text(opt));
	}
}

int
config_check_table(char **cause)
{
	for (size_t i = 0; i < CONFIG_COUNT; i++) {
		if (config_table[i].programs == 0) {
			*cause = xasprintf(
			    "%s: no program reads it (programs is 0)", config_table[i].key);
			return -1;
		}
	}
	return 0;
}

void
config_print_markdown(FILE *out)
{
	fputs("| variable | default | range | meaning |\n|---|---|---|---|\n", out);
	for (size_t i = 0; i < CONFIG_COUNT; i++) {
		const struct config_option *opt = &config_table[i];
		char range[64] = "";

		if (opt->type == CONFIG_INT)
			snprintf(range, sizeof range, "%lld–%lld", opt->min, opt->max);
		else if (opt->type == CONFIG_MILLIS)
			snprintf(
			    range, sizeof range, "%lld–%lld s", opt->min / 1000, opt->max / 1000);
		fprintf(out, "| `%s`%s | %s%s%s | %s | %s |\n", opt->key,
		    (opt->flags & CONFIG_SEED) ? " (seed)" : "", opt->def && *opt->def ? "`" : "",
		    config_default_text(opt), opt->def && *opt->def ? "`" : "", range, opt->help);
	}
}

/* roff text lines: no leading blank or control character, backslashes
 * escaped, broken at blanks to stay within 80 bytes. */
static void
config_man_text(FILE *out, const char *s, size_t len)
{
	while (len > 0) {
		size_t n = len, i;

		while (len > 0 && *s == ' ')
			s++, len--;
		while (len > 0 && s[len - 1] == ' ')
			len--;
		if (len == 0)
			return;
		n = len;
		if (n > 76) {
			for (n = 76; n > 0 && s[n] != ' '; n--)
				;
			if (n == 0)
				n = len;
		}
		if (*s == '.' || *s == '\'')
			fputs("\\&", out);
		for (i = 0; i < n; i++) {
			if (s[i] == '\\')
				fputs("\\e", out);
			else
				fputc(s[i], out);
		}
		fputc('\n', out);
		s += n;
		len -= n;
	}
}

/* Plain text, a new line after each sentence (". "), as man pages want. */
static void
config_man_sentences(FILE *out, const char *s, size_t len)
{
	const char *end = s + len;

	while (s < end) {
		const char *p = s;
		while (p + 1 < end && !(p[0] == '.' && p[1] == ' '))
			p++;
		p = p + 1 < end ? p + 1 : end;
		config_man_text(out, s, (size_t)(p - s));
		s = p;
	}
}

/* Help text with `code` spans as .Ql lines (a following , . ; : or ) rides along). */
static void
config_man_help(FILE *out, const char *help)
{
	const char *s = help;

	while (*s != '\0') {
		const char *tick = strchr(s, '`'), *close;

		if (tick == NULL || (close = strchr(tick + 1, '`')) == NULL) {
			config_man_sentences(out, s, strlen(s));
			return;
		}
		config_man_sentences(out, s, (size_t)(tick - s));
		fprintf(out, ".Ql %.*s\\&", (int)(close - tick - 1), tick + 1);
		s = close + 1;
		if (strchr(",.;:)", *s) != NULL && *s != '\0' && (s[1] == ' ' || s[1] == '\0')) {
			fprintf(out, " %c", *s);
			s++;
		}
		fputc('\n', out);
	}
}

void
config_print_man(FILE *out)
{
	/* Macros take the punctuation after a blank; plain text right after. */
	static const struct {
		unsigned bit;
		const char *text;
		int macro;
	} readers[] = {
		{ CONFIG_CHATD, ".Xr chatd 8", 1 },
		{ CONFIG_API, ".Xr chat-api 8", 1 },
		{ CONFIG_SYNC, ".Xr chat-sync 8", 1 },
		{ CONFIG_CTL, ".Xr chatctl 1", 1 },
		{ CONFIG_WEB, "the quick start's web server configuration", 0 },
	};
	const size_t nreaders = sizeof readers / sizeof readers[0];

	fputs(".Bl -tag -width Ds\n", out);
	for (size_t i = 0; i < CONFIG_COUNT; i++) {
		const struct config_option *opt = &config_table[i];
		size_t left = 0, k;

		fprintf(out, ".It Ev %s\n", opt->key);
		config_man_help(out, opt->help);
		if (opt->def == NULL)
			fputs("Default: unset.\n", out);
		else if (*opt->def == '\0')
			fputs("Default: empty.\n", out);
		else
			fprintf(out, "Default:\n.Ql %s\\& .\n", opt->def);
		if (opt->type == CONFIG_INT)
			fprintf(out, "Range: %lld to %lld.\n", opt->min, opt->max);
		else if (opt->type == CONFIG_MILLIS)
			fprintf(out, "Range: %lld to %lld seconds.\n", opt->min / 1000,
			    opt->max / 1000);
		for (k = 0; k < nreaders; k++)
			left += (opt->programs & readers[k].bit) != 0;
		if (left == 0)
			continue;
		fputs("Read by\n", out);
		for (k = 0; k < nreaders; k++) {
			const char *punct;

			if (!(opt->programs & readers[k].bit))
				continue;
			left--;
			punct = left == 0 ? "." : left > 1 ? "," : "";
			fprintf(out, "%s%s%s\n", readers[k].text,
			    readers[k].macro && *punct ? " " : "", punct);
			if (left == 1)
				fputs("and\n", out);
		}
	}
	fputs(".El\n", out);
}
