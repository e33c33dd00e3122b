/*
 * chatctl: the operator command line over chatd's control socket
 * (docs/chatctl.md). main.c parses the command line and loads settings,
 * commands.c holds the command table and runs one command, output.c
 * prints results as tables or JSON. Single-threaded, one control call per
 * command (two steps for the commands that also write the database).
 * Includes only src/common headers; no other program's.
 */
#ifndef CHAT_CHATCTL_H
#define CHAT_CHATCTL_H

#include <stdio.h>

#include <cjson/cJSON.h>

#include "config.h"

/* Exit statuses; docs/chatctl.md and --help list them. */
#define CHATCTL_EXIT_OK 0
#define CHATCTL_EXIT_FAILED 1 /* chatd or the database refused or failed */
#define CHATCTL_EXIT_USAGE 2 /* bad command line or settings */
#define CHATCTL_EXIT_UNREACHABLE 3 /* chatd is not running or not answering */

/* One invocation's settings. Owned by main(); one thread. */
struct chatctl {
	struct config cfg; /* loaded settings (CONTROL_SOCKET, DATABASE_URL, ...) */
	const char *socket_path; /* --socket, else cfg.control_socket */
	int timeout_ms; /* --timeout, else cfg.control_timeout_ms */
	int json; /* --json: print results as JSON */
	int no_db; /* --no-db: tell chatd only, record nothing */
	const char *reason; /* --reason or NULL */
	long long duration_s; /* --duration, 0 when not given */
	int all; /* --all (dead-letters replay) */
	const char *target; /* --target (dead-letters) or NULL */
	const char *from, *to; /* --from, --to (copy-db): database addresses */
	int verify_only; /* --verify-only (copy-db) */
	FILE *out; /* results (stdout) */
	FILE *err; /* messages (stderr) */
};

/* A command: its name, positional arguments and what it accepts. */
struct commands_entry {
	const char *name;
	const char *args; /* positional arguments for usage lines */
	const char *summary; /* one line for chatctl --help */
	const char *help; /* the rest of chatctl COMMAND --help */
	int min_args, max_args;
	int flags;
#define COMMANDS_REASON 0x1 /* takes --reason */
#define COMMANDS_DURATION 0x2 /* takes --duration */
#define COMMANDS_DB 0x4 /* records in the database first; takes --no-db */
#define COMMANDS_DEAD 0x8 /* takes --all and --target (dead-letters) */
#define COMMANDS_COPY 0x10 /* takes --from, --to and --verify-only (copy-db) */
	/* Runs with argv[0..argc) the positional arguments; returns an exit status. */
	int (*run)(struct chatctl *c, char **argv, int argc);
};

/* commands.c */
extern const struct commands_entry commands_table[];
extern const size_t commands_count;
/* The command called name, or NULL. */
const struct commands_entry *commands_find(const char *name);
/* Writes the command's usage and help text. */
void commands_print_help(FILE *out, const struct commands_entry *cmd);
/* Parses "90", "90s", "15m", "2h", "7d" into seconds in [1, max]; -1 if not. */
long long commands_parse_duration(const char *s, long long max);

/*
 * Opens the existing database named by DATABASE_URL; -1 after saying why.
 * no_db_hint: the command takes --no-db, so the message suggests it.
 */
struct db;
int commands_db_open_existing(struct chatctl *c, struct db **db, int no_db_hint);

/* deadletters.c: chatctl dead-letters [list | replay ID | replay --all | discard ID] */
int commands_dead_letters(struct chatctl *c, char **argv, int argc);

/* output.c */
/* Prints v as one line of compact JSON. */
void output_json(FILE *out, const cJSON *v);
/* Prints an object's members as aligned "key  value" lines. */
void output_fields(FILE *out, const cJSON *obj);
/* Prints the live rooms of a rooms/stats result as a table. */
void output_rooms_table(FILE *out, const cJSON *rooms);
/* Writes a scalar as text (strings with control characters JSON-quoted,
 * so nothing chatd sends can drive the terminal). */
void output_value(FILE *out, const cJSON *v);
/* Formats Unix milliseconds as "2025-11-28T22:00:00Z" into buf. */
void output_time_ms(char *buf, size_t len, long long ms);
/* Formats an age in milliseconds as "180 ms ago", "4.2 s ago", "3m05s ago",
 * "2h10m ago" or "3d04h ago" into buf. */
void output_age_ms(char *buf, size_t len, long long ms);
/* s, or "?" if it holds control characters, or "-" if NULL. */
const char *output_plain(const char *s);
/* A scalar as one table cell (at most len - 1 bytes): "-" for null or
 * missing, "?" for text with control characters or anything else. */
void output_cell_value(char *buf, size_t len, const cJSON *v);
/* Prints the "cluster" object of a health result as a block: the
 * cluster and this node, the bus, the totals and a table of the nodes. */
void output_cluster(FILE *out, const cJSON *cluster);

/* cluster.c: chatctl nodes (the database's nodes table) */
int commands_nodes(struct chatctl *c, char **argv, int argc);

/* copy.c: chatctl copy-db --from SQLITE --to POSTGRES [--verify-only] */
int commands_copy_db(struct chatctl *c, char **argv, int argc);

#endif
