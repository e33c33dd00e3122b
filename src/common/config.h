/*
 * Settings shared by every program, declared once in a table (config.c)
 * that also yields --help text and the README's configuration table.
 *
 * Lookup order: process environment, then a .env-style file from
 * $CHAT_ENV_FILE, else ./.env, else $(sysconfdir)/chatd/chatd.env.
 * The environment wins over the file. Values are checked at load: a
 * malformed one stops the program with a message naming key and value.
 */
#ifndef CHAT_CONFIG_H
#define CHAT_CONFIG_H

#include <stddef.h>
#include <stdio.h>

struct config {
	/* seed variables */
	char *database_url;
	char *bind_address;
	char *admin_api_key; /* secret: never logged; NULL when unset */
	long long max_connections;
	char *data_callback_url;
	char *room_event_callback_url;
	char *chat_history_callback_url;
	char *session_history_callback_url;
	char *periodic_sync_callback_url;
	long long chat_history_batch_size;
	long long session_history_batch_size;
	long long chat_history_batch_interval_seconds;
	long long session_history_batch_interval_seconds;
	long long callback_max_retries;
	long long callback_retry_delay_seconds;
	long long callback_timeout_seconds;
	long long sync_interval_seconds;
	char *callback_signing_secret; /* secret: never logged; NULL when unset */
	char *metrics_textfile; /* chat-sync's metrics file; NULL or "": none */
	long long callback_dead_letter_attempts; /* 0: never */
	long long callback_dead_letter_age_seconds; /* 0: never */
	long long user_message_interval_ms; /* USER_MESSAGE_INTERVAL_SECS, fractions allowed */
	/* chatd's own */
	char *chatd_listen; /* HOST:PORT or unix:PATH */
	char *chatd_socket_group; /* NULL when unset */
	char *trusted_proxies; /* checked list, see netaddr.h */
	char *token_secret; /* secret: never logged; NULL when unset */
	long long max_message_bytes;
	long long max_frame_bytes;
	long long max_connections_per_address;
	long long ws_ping_interval_seconds;
	long long ws_idle_timeout_seconds;
	long long handshake_timeout_seconds;
	long long queue_low_frames;
	long long queue_high_frames;
	char *control_socket;
	long long control_timeout_ms;
	long long control_idle_timeout_seconds;
	long long api_threads;
	long long api_max_body_bytes;
	char *log_level;
	/* the cluster (docs/cluster.md) */
	char *cluster_nats_url; /* NULL: a single node, no bus */
	char *node_id; /* NODE_ID, else the host name made fit (config_default_node_id) */
	char *cluster_name;
	long long cluster_heartbeat_ms;
	long long cluster_node_timeout_ms;
	long long cluster_gap_wait_ms;

	/* derived at load */
	/*
	 * The database address from DATABASE_URL: a SQLite file path, or a
	 * PostgreSQL URI that may hold a password (print dbaddr_display()).
	 */
	char *database_path;
	int database_is_memory; /* DATABASE_URL was unset or sqlite::memory: */
	int database_is_pg; /* a postgres:// or postgresql:// URI */
	char *source_file; /* the .env file read, or NULL */
};

/* The seed's "in-memory" database is dbfile_memory_path(): a tmpfs file in
 * a folder private to the user (dbfile.h). */

/*
 * Loads settings into *cfg (zeroed first). Returns 0, or -1 with a
 * heap-allocated message in *cause naming the bad key and value. Unknown
 * keys in the file are reported through the warn callback, not errors.
 * getenv_fn lets tests supply an environment; NULL means getenv(3).
 */
typedef const char *(*config_getenv_fn)(const char *key, void *arg);
int config_load(struct config *cfg, config_getenv_fn getenv_fn, void *arg, char **cause);

/*
 * config_load() for a program's main(): on a bad setting it stops the
 * program (exit 1) with the message naming key and value; then it applies
 * LOG_LEVEL. Start-up only.
 */
void config_load_or_exit(struct config *cfg);

/* Frees every string in *cfg. */
void config_clear(struct config *cfg);

/*
 * Parses one .env-style text into (key, value) pairs, calling set() for
 * each. Handles comments, blank lines, optional "export ", single and
 * double quotes, and a trailing " # comment" after an unquoted value.
 * Returns 0, or -1 with *cause for a syntax error (with the line number).
 */
int config_parse_env_text(const char *text, size_t len,
    int (*set)(const char *key, const char *value, void *arg), void *arg, char **cause);

/*
 * Parses DATABASE_URL into a database address (a SQLite file path, or the
 * PostgreSQL URI as given); -1 with *cause if malformed.
 */
int config_parse_database_url(const char *url, char **path, int *is_memory, char **cause);

/* Validates a callback URL (empty means off); 0 ok, -1 bad. */
int config_check_url(const char *url);
/* Validates "HOST:PORT" (IPv4, name or [IPv6]); 0 ok, -1 bad. */
int config_check_address(const char *addr);
/* CHATD_LISTEN's Unix-socket form: "unix:" and an absolute path. */
#define CONFIG_UNIX_PREFIX "unix:"
/* Validates CHATD_LISTEN: HOST:PORT, or unix:PATH with an absolute PATH
 * short enough for a socket address; 0 ok, -1 bad. */
int config_check_listen(const char *spec);

/* NODE_ID and CLUSTER_NAME: letters, digits, '.', '_' and '-' (a NATS subject token). */
#define CONFIG_NODE_ID_MAX 64
int config_check_token(const char *s, size_t max);
/* CLUSTER_NATS_URL: comma-separated nats:// (or tls://) URLs; 0 ok, -1 bad. */
int config_check_nats_urls(const char *list);
/* NODE_ID's default: the host name, cut and with other characters made '-'. Heap. */
char *config_default_node_id(void);

/* Who reads a setting: the settings table's programs field. */
#define CONFIG_API 0x1 /* chat-api */
#define CONFIG_CHATD 0x2 /* chatd */
#define CONFIG_SYNC 0x4 /* chat-sync */
#define CONFIG_CTL 0x8 /* chatctl */
#define CONFIG_WEB 0x10 /* contrib/quickstart.sh and render-config.sh */

/* Writes the settings program (CONFIG_API, ...) reads, for its --help. */
void config_print_help(FILE *out, unsigned program);
/* Writes the README's configuration table (Markdown): every setting. */
void config_print_markdown(FILE *out);
/* Writes the settings as an mdoc(7) tag list, for the chatd.env(5) page. */
void config_print_man(FILE *out);
/* 0 when every entry of the table names the programs reading it; else -1 and *cause. */
int config_check_table(char **cause);

/*
 * The known setting closest to an unknown key (for "did you mean"): one
 * that differs only in case, '_' or '-', else one within
 * CONFIG_SUGGEST_DISTANCE edits; NULL if none is that close.
 */
#define CONFIG_SUGGEST_DISTANCE 2
const char *config_suggest(const char *key);

#endif
