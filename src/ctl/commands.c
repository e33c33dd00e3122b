/*
 * chatctl's commands, one table (name, arguments, help, flags, handler) as
 * in chat-api's route table. Each command builds the control request of
 * docs/control-protocol.md, calls chatd once, and prints the result.
 *
 * ban, unban and close are recorded in the database first and only then
 * told to chatd, by src/common/admin.c as chat-api's are: the database is
 * the record chatd reloads at start, so an action taken while chatd is
 * down still holds, and one taken while it runs is not undone by a
 * restart. --no-db skips the database (chatd only; lost on restart).
 * Never writes SQL itself and never touches chatd's state any other way.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "chatctl.h"
#include "clock.h"
#include "ctl.h"
#include "db.h"
#include "jsonutil.h"
#include "model.h"
#include "xmalloc.h"

static int commands_status(struct chatctl *, char **, int);
static int commands_rooms(struct chatctl *, char **, int);
static int commands_stats(struct chatctl *, char **, int);
static int commands_ban(struct chatctl *, char **, int);
static int commands_unban(struct chatctl *, char **, int);
static int commands_kick(struct chatctl *, char **, int);
static int commands_close(struct chatctl *, char **, int);
static int commands_publish(struct chatctl *, char **, int);

const struct commands_entry commands_table[] = {
	{ "status", "", "chatd's health: version, uptime, connections, rooms, cluster",
	    "Asks chatd whether it is running (control request \"health\") and prints its\n"
	    "health fields. On a node of a cluster, a block follows: the cluster's name and\n"
	    "this node, the bus (connected or not, NATS server, reconnects, messages dropped),\n"
	    "the connections on every node, and a table of the nodes this one hears (SELF\n"
	    "marks this one; LAST_HEARD; SYNCED: its users are counted here).\n"
	    "Exit status 0 when it answers, 3 when it is not running or not answering.\n",
	    0, 0, 0, commands_status },
	{ "nodes", "", "the cluster's nodes as the database sees them (database)",
	    "Lists the nodes table of the database (DATABASE_URL): every chatd node that has\n"
	    "run on it, when it started, when it last wrote its heartbeat, its state and its\n"
	    "connections at that heartbeat. chatd is not needed.\n"
	    "\n"
	    "  alive    heard within CLUSTER_NODE_TIMEOUT_SECS (default 5)\n"
	    "  silent   not heard for longer, not yet reaped by another node\n"
	    "  lost     reaped: another node found it silent and closed its sessions\n"
	    "           (node_lost)\n"
	    "  stopped  stopped cleanly\n"
	    "A single chatd (no CLUSTER_NATS_URL) records no rows.\n",
	    0, 0, 0, commands_nodes },
	{ "rooms", "", "every live room with its stats",
	    "Lists the rooms that have connections, with current and peak users, connections,\n"
	    "queued and dropped messages (control request \"rooms\"). Rooms without\n"
	    "connections are not listed; the REST API lists every room.\n",
	    0, 0, 0, commands_rooms },
	{ "stats", "ROOM_ID", "one room's live stats",
	    "Prints one room's live stats (control request \"stats\").\n", 1, 1, 0,
	    commands_stats },
	{ "ban", "ROOM_ID USER_ID", "ban a user from a room (recorded in the database)",
	    "Bans USER_ID from ROOM_ID: records the ban in the database (DATABASE_URL), then\n"
	    "tells chatd, which closes the user's connections within a second and refuses\n"
	    "new ones until the ban ends. Replaces an active ban of that user.\n"
	    "If chatd is not running the ban is still recorded and chatd enforces it when\n"
	    "it starts (exit status 0, with a note on stderr).\n"
	    "\n"
	    "  -d, --duration TIME  ban length: seconds, or a number with s, m, h or d\n"
	    "                       (90, 15m, 2h, 7d; at most 365d). Default: permanent\n"
	    "  -r, --reason TEXT    why (shown to the user, at most 500 bytes)\n"
	    "      --no-db          tell chatd only; nothing is recorded and the ban is\n"
	    "                       gone when chatd restarts\n",
	    2, 2, COMMANDS_REASON | COMMANDS_DURATION | COMMANDS_DB, commands_ban },
	{ "unban", "ROOM_ID USER_ID", "lift a ban (recorded in the database)",
	    "Lifts USER_ID's ban in ROOM_ID in the database, then tells chatd.\n"
	    "Exit status 1 (ban_not_found) if the database holds no ban in force.\n"
	    "\n"
	    "      --no-db          tell chatd only (for a ban made with --no-db)\n",
	    2, 2, COMMANDS_DB, commands_unban },
	{ "kick", "ROOM_ID USER_ID", "close a user's connections (they may reconnect)",
	    "Closes every connection of USER_ID in ROOM_ID; the user may reconnect at once\n"
	    "(use ban to keep them out). Nothing is recorded but the sessions' end.\n"
	    "\n"
	    "  -r, --reason TEXT    why (shown to the user, at most 500 bytes)\n",
	    2, 2, COMMANDS_REASON, commands_kick },
	{ "close", "ROOM_ID", "close a room for good (recorded in the database)",
	    "Closes ROOM_ID: records it in the database (with a room_closed event for the\n"
	    "callbacks), then tells chatd, which closes every connection with the reason\n"
	    "and refuses new ones. A closed room cannot be reopened.\n"
	    "If chatd is not running the close is still recorded (exit status 0, with a\n"
	    "note on stderr). Exit status 1 (room_closed) if it was already closed.\n"
	    "\n"
	    "  -r, --reason TEXT    why (default \"" ROOM_CLOSE_REASON_DEFAULT "\")\n"
	    "      --no-db          tell chatd only; the room opens again when chatd restarts\n",
	    1, 1, COMMANDS_REASON | COMMANDS_DB, commands_close },
	{ "publish", "ROOM_ID EVENT_TYPE [JSON_PAYLOAD]", "push a CustomEvent to a room",
	    "Pushes a CustomEvent to every member of ROOM_ID at high priority; chatd stores it\n"
	    "in the room's history. EVENT_TYPE is 1 to 64 characters of A-Z a-z 0-9 _ . -;\n"
	    "JSON_PAYLOAD is any JSON value (default {}), e.g. '{\"amount\":100}'.\n"
	    "Put -- before a payload that starts with \"-\".\n",
	    2, 3, 0, commands_publish },
	{ "dead-letters", "[list | replay ID | replay --all | discard ID]",
	    "chat-sync's dead letters: list, replay, discard (database)",
	    "Batches chat-sync set aside after CALLBACK_DEAD_LETTER_ATTEMPTS failed attempts or\n"
	    "CALLBACK_DEAD_LETTER_AGE_SECONDS (docs/callbacks.md), read from the database\n"
	    "(DATABASE_URL); chatd is not needed.\n"
	    "\n"
	    "  list (default)   every dead letter: id, target, delivery id, rows, attempts,\n"
	    "                   last HTTP status, when it was set aside, last error\n"
	    "  replay ID        mark one for replay: chat-sync resends it under its original\n"
	    "                   delivery id on its next pass; on a 2xx it leaves the list\n"
	    "  replay --all     mark every dead letter (of --target) for replay\n"
	    "  discard ID       delete it for good; its rows stay in the database\n"
	    "\n"
	    "      --target T   list or replay --all only T's (room_events, chat_history,\n"
	    "                   session_history, periodic_sync, data)\n"
	    "      --all        with replay: every dead letter\n"
	    "Exit status 1 (dead_letter_not_found) if ID names no dead letter.\n",
	    0, 2, COMMANDS_DEAD, commands_dead_letters },
	{ "copy-db", "--from SQLITE_URL --to POSTGRES_URL [--verify-only]",
	    "copy SQLite into an empty PostgreSQL database, checked",
	    "Moves chatd from one machine's SQLite file to PostgreSQL (docs/copy-db.md):\n"
	    "copies every table of the SQLite database --from into the PostgreSQL database\n"
	    "--to, in one transaction, with the same ids, the same order of rooms and admins,\n"
	    "and id sequences that go on where SQLite's left off; then compares the two\n"
	    "(rows and highest id of every table; for every room its messages, sessions,\n"
	    "last seqs) and commits only if they match. The report lists each table; a\n"
	    "difference rolls the copy back (exit status 1). Progress goes to stderr.\n"
	    "\n"
	    "Stop chatd on every node, chat-api and chat-sync first. copy-db holds the\n"
	    "SQLite file's write lock while it runs (a writer still running waits, then\n"
	    "fails), and refuses while the nodes table shows a chatd node alive (heard\n"
	    "within CLUSTER_NODE_TIMEOUT_SECS). Then set DATABASE_URL to the PostgreSQL\n"
	    "database everywhere and start them again.\n"
	    "\n"
	    "      --from URL     the SQLite database: sqlite:PATH or sqlite://PATH; it must\n"
	    "                     exist (one at an older schema version is migrated first)\n"
	    "      --to URL       the PostgreSQL database: postgres://USER:PW@HOST:PORT/DB;\n"
	    "                     it must exist and be empty (its tables are made if missing);\n"
	    "                     a database holding any row is refused, nothing written\n"
	    "      --verify-only  copy nothing: compare --from with --to (either may be\n"
	    "                     SQLite or PostgreSQL) and report; exit status 1 if they\n"
	    "                     differ\n"
	    "Passwords are never printed (shown as ***).\n",
	    0, 0, COMMANDS_COPY, commands_copy_db },
};
const size_t commands_count = sizeof commands_table / sizeof commands_table[0];

const struct commands_entry *
commands_find(const char *name)
{
	for (size_t i = 0; i < commands_count; i++) {
		if (strcmp(commands_table[i].name, name) == 0)
			return &commands_table[i];
	}
	return NULL;
}

void
commands_print_help(FILE *out, const struct commands_entry *cmd)
{
	fprintf(out, "usage: chatctl [OPTIONS] %s%s%s\n\n%s", cmd->name, *cmd->args ? " " : "",
	    cmd->args, cmd->help);
	fprintf(
	    out, "\nCommon options: --socket PATH, --timeout MS, --json (see chatctl --help).\n");
}

long long
commands_parse_duration(const char *s, long long max)
{
	long long v, unit = 1;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		if (end[1] != '\0')
			return -1;
		switch (*end) {
		case 's':
			unit = 1;
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		default:
			return -1;
		}
	}
	if (v < 1 || v > max / unit)
		return -1;
	return v * unit;
}

/* Checks a positional argument; prints why and returns -1 if unusable. */
static int
commands_check_text(struct chatctl *c, const char *what, const char *s, size_t max)
{
	const char *why;

	if (text_check(s, 1, max, TEXT_NO_CONTROL, &why) != 0) {
		fprintf(c->err, "chatctl: %s %s (1 to %zu bytes of UTF-8, no control characters)\n",
		    what, why, max);
		return -1;
	}
	return 0;
}

/* Checks --reason if given. */
static int
commands_check_reason(struct chatctl *c)
{
	const char *why;

	if (c->reason != NULL &&
	    text_check(c->reason, 0, REASON_MAX_BYTES, TEXT_NO_CONTROL, &why) != 0) {
		fprintf(c->err,
		    "chatctl: --reason %s (at most %d bytes of UTF-8, no control "
		    "characters)\n",
		    why, REASON_MAX_BYTES);
		return -1;
	}
	return 0;
}

/*
 * Reports chatd's answer to one request (rc, res, code and cause as
 * ctl_call gives them; taken). CHATCTL_EXIT_OK with *result (caller
 * deletes; may be NULL to drop it), or prints why and returns
 * CHATCTL_EXIT_FAILED (chatd answered an error) or
 * CHATCTL_EXIT_UNREACHABLE. With quiet_unreachable the caller reports an
 * unreachable chatd itself (*cause_out set, caller frees).
 */
static int
commands_answer(struct chatctl *c, enum ctl_type type, int rc, cJSON *res, char *code, char *cause,
    cJSON **result, int quiet_unreachable, char **cause_out)
{
	int status;

	switch (rc) {
	case CTL_OK:
		if (result != NULL) {
			*result = res;
			res = NULL;
		}
		status = CHATCTL_EXIT_OK;
		break;
	case CTL_ERR_REMOTE:
		if (code != NULL && strcmp(code, "bad_type") == 0)
			fprintf(c->err,
			    "chatctl: this chatd cannot do \"%s\" (bad_type: %s); is it "
			    "older than chatctl?\n",
			    ctl_type_name(type), cause);
		else
			fprintf(c->err, "chatctl: chatd refused %s: %s: %s\n", ctl_type_name(type),
			    code != NULL ? code : "error", cause);
		status = CHATCTL_EXIT_FAILED;
		break;
	default:
		if (quiet_unreachable && cause_out != NULL) {
			*cause_out = cause;
			cause = NULL;
		} else
			fprintf(c->err, "chatctl: %s\n", cause);
		status = CHATCTL_EXIT_UNREACHABLE;
		break;
	}
	cJSON_Delete(res);
	free(code);
	free(cause);
	return status;
}

/* Calls chatd once and reports as commands_answer does; args is consumed. */
static int
commands_call(struct chatctl *c, enum ctl_type type, cJSON *args, cJSON **result)
{
	char *code = NULL, *cause = NULL;
	cJSON *res = NULL;
	int rc;

	rc = ctl_call(c->socket_path, c->timeout_ms, type, args, &res, &code, &cause);
	cJSON_Delete(args);
	return commands_answer(c, type, rc, res, code, cause, result, 0, NULL);
}

/*
 * Opens the database named by DATABASE_URL, or leaves *db NULL with
 * --no-db (admin.c then only tells chatd). -1 after saying why.
 */
static int
commands_db_open(struct chatctl *c, struct db **db)
{
	*db = NULL;
	if (c->no_db)
		return 0;
	return commands_db_open_existing(c, db, 1);
}

/* Reports a record that failed (rc, not DB_OK) with the words for
 * DB_NOTFOUND and DB_CONFLICT; clears out. */
static int
commands_not_recorded(struct chatctl *c, int rc, struct admin_outcome *out, const char *notfound,
    const char *conflict)
{
	if (rc == DB_NOTFOUND && notfound != NULL)
		fprintf(c->err, "chatctl: %s\n", notfound);
	else if (rc == DB_CONFLICT && conflict != NULL)
		fprintf(c->err, "chatctl: %s\n", conflict);
	else
		fprintf(c->err, "chatctl: database: %s\n",
		    out->db_cause != NULL ? out->db_cause : "unknown error");
	admin_outcome_clear(out);
	return CHATCTL_EXIT_FAILED;
}

/*
 * Reports what chatd made of a change admin.c has recorded (or, with
 * --no-db, only sent). An unreachable chatd is not a failure when the
 * change was recorded: it reads the database when it starts. Takes out's
 * answer into *result; returns the exit status.
 */
static int
commands_notify(
    struct chatctl *c, enum ctl_type type, struct admin_outcome *out, cJSON **result, int recorded)
{
	char *cause = NULL;
	int status;

	status = commands_answer(
	    c, type, out->told, out->result, out->code, out->cause, result, recorded, &cause);
	out->result = NULL;
	out->code = out->cause = NULL;
	admin_outcome_clear(out);
	if (status == CHATCTL_EXIT_UNREACHABLE && recorded) {
		fprintf(c->err,
		    "chatctl: recorded in the database, but chatd was not told (%s); it applies "
		    "the change when it starts\n",
		    cause);
		free(cause);
		*result = NULL;
		return CHATCTL_EXIT_OK;
	}
	return status;
}

/* --json output of ban, unban and close: chatd's result plus whether the
 * change was recorded and whether chatd acknowledged it (as the REST API's
 * "live"). Takes result. */
static void
commands_print_recorded(struct chatctl *c, cJSON *result, int recorded)
{
	int live = result != NULL;
	cJSON *obj = cJSON_IsObject(result) ? result : json_object();

	if (obj != result)
		cJSON_Delete(result);
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "recorded");
	cJSON_DeleteItemFromObjectCaseSensitive(obj, "live");
	json_add_bool(obj, "recorded", recorded);
	json_add_bool(obj, "live", live);
	output_json(c->out, obj);
	cJSON_Delete(obj);
}

/* The number of connections chatd closed, or -1 when it did not say. */
static long long
commands_disconnected(const cJSON *result)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(result, "disconnected");

	return cJSON_IsNumber(d) ? (long long)d->valuedouble : -1;
}

static void
commands_print_disconnected(struct chatctl *c, const cJSON *result)
{
	long long n = commands_disconnected(result);

	if (result == NULL)
		fprintf(c->out, "chatd not told (not running)\n");
	else if (n >= 0)
		fprintf(c->out, "%lld connection%s closed\n", n, n == 1 ? "" : "s");
	else
		fprintf(c->out, "chatd acknowledged\n");
}

static int
commands_status(struct chatctl *c, char **argv, int argc)
{
	cJSON *result = NULL;
	int status;

	(void)argv;
	(void)argc;
	status = commands_call(c, CTL_HEALTH, NULL, &result);
	if (status != CHATCTL_EXIT_OK)
		return status;
	if (c->json)
		output_json(c->out, result);
	else {
		/* A cluster node's "cluster" is a block of its own after the
		 * fields, not one line of JSON among them (anything else under
		 * that name is shown as any field is). */
		cJSON *cluster = NULL;

		if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(result, "cluster")))
			cluster = cJSON_DetachItemFromObjectCaseSensitive(result, "cluster");
		fprintf(c->out, "chatd is running (control socket %s)\n", c->socket_path);
		output_fields(c->out, result);
		if (cluster != NULL)
			output_cluster(c->out, cluster);
		cJSON_Delete(cluster);
	}
	cJSON_Delete(result);
	return CHATCTL_EXIT_OK;
}

static int
commands_rooms(struct chatctl *c, char **argv, int argc)
{
	cJSON *result = NULL;
	int status;

	(void)argv;
	(void)argc;
	status = commands_call(c, CTL_ROOMS, NULL, &result);
	if (status != CHATCTL_EXIT_OK)
		return status;
	if (c->json)
		output_json(c->out, result);
	else
		output_rooms_table(c->out, cJSON_GetObjectItemCaseSensitive(result, "rooms"));
	cJSON_Delete(result);
	return CHATCTL_EXIT_OK;
}

static int
commands_stats(struct chatctl *c, char **argv, int argc)
{
	cJSON *args, *result = NULL;
	int status;

	(void)argc;
	if (commands_check_text(c, "ROOM_ID", argv[0], USER_ID_MAX_BYTES) != 0)
		return CHATCTL_EXIT_USAGE;
	args = json_object();
	json_add_string(args, "room_id", argv[0]);
	status = commands_call(c, CTL_STATS, args, &result);
	if (status != CHATCTL_EXIT_OK)
		return status;
	if (c->json)
		output_json(c->out, result);
	else
		output_fields(c->out, result);
	cJSON_Delete(result);
	return CHATCTL_EXIT_OK;
}

static int
commands_ban(struct chatctl *c, char **argv, int argc)
{
	const char *room = argv[0], *user = argv[1];
	long long now = clock_wall_ms(), expires_at = 0;
	struct admin_chatd chatd = { c->socket_path, c->timeout_ms };
	struct admin_outcome out;
	cJSON *result = NULL;
	char until[64], notfound[USER_ID_MAX_BYTES + 64];
	struct db *db;
	int rc, status;

	(void)argc;
	if (commands_check_text(c, "ROOM_ID", room, USER_ID_MAX_BYTES) != 0 ||
	    commands_check_text(c, "USER_ID", user, USER_ID_MAX_BYTES) != 0 ||
	    commands_check_reason(c) != 0)
		return CHATCTL_EXIT_USAGE;
	if (c->duration_s > 0)
		expires_at = now + c->duration_s * 1000;

	if (commands_db_open(c, &db) != 0)
		return CHATCTL_EXIT_FAILED;
	rc = admin_ban(db, &chatd, room, user, c->reason, expires_at, now, &out);
	if (db != NULL)
		db_close(db);
	if (rc != DB_OK) {
		snprintf(notfound, sizeof notfound, "room_not_found: no room with id %s", room);
		return commands_not_recorded(c, rc, &out, notfound, NULL);
	}
	status = commands_notify(c, CTL_BAN, &out, &result, !c->no_db);
	if (status != CHATCTL_EXIT_OK)
		return status;
	if (c->json)
		commands_print_recorded(c, result, !c->no_db);
	else {
		if (expires_at != 0)
			output_time_ms(until, sizeof until, expires_at);
		fprintf(c->out, "banned %s from room %s %s%s%s\n", user, room,
		    expires_at != 0 ? "until " : "permanently", expires_at != 0 ? until : "",
		    c->no_db ? " (chatd only, not recorded)" : "");
		commands_print_disconnected(c, result);
		cJSON_Delete(result);
	}
	return CHATCTL_EXIT_OK;
}

static int
commands_unban(struct chatctl *c, char **argv, int argc)
{
	const char *room = argv[0], *user = argv[1];
	struct admin_chatd chatd = { c->socket_path, c->timeout_ms };
	struct admin_outcome out;
	cJSON *result = NULL;
	char notfound[2 * USER_ID_MAX_BYTES + 64];
	struct db *db;
	int rc, status;

	(void)argc;
	if (commands_check_text(c, "ROOM_ID", room, USER_ID_MAX_BYTES) != 0 ||
	    commands_check_text(c, "USER_ID", user, USER_ID_MAX_BYTES) != 0)
		return CHATCTL_EXIT_USAGE;
	if (commands_db_open(c, &db) != 0)
		return CHATCTL_EXIT_FAILED;
	rc = admin_unban(db, &chatd, room, user, clock_wall_ms(), &out);
	if (db != NULL)
		db_close(db);
	if (rc != DB_OK) {
		snprintf(notfound, sizeof notfound,
		    "ban_not_found: user %s is not banned in room %s", user, room);
		return commands_not_recorded(c, rc, &out, notfound, NULL);
	}
	status = commands_notify(c, CTL_UNBAN, &out, &result, !c->no_db);
	if (status != CHATCTL_EXIT_OK)
		return status;
	if (c->json)
		commands_print_recorded(c, result, !c->no_db);
	else {
		fprintf(c->out, "unbanned %s in room %s%s\n", user, room,
		    c->no_db ? " (chatd only, not recorded)" : "");
		cJSON_Delete(result);
	}
	return CHATCTL_EXIT_OK;
}

static int
commands_kick(struct chatctl *c, char **argv, int argc)
{
	const char *room = argv[0], *user = argv[1];
	cJSON *args, *result = NULL;
	int status;

	(void)argc;
	if (commands_check_text(c, "ROOM_ID", room, USER_ID_MAX_BYTES) != 0 ||
	    commands_check_text(c, "USER_ID", user, USER_ID_MAX_BYTES) != 0 ||
	    commands_check_reason(c) != 0)
		return CHATCTL_EXIT_USAGE;
	args = json_object();
	json_add_string(args, "room_id", room);
	json_add_string(args, "user_id", user);
	if (c->reason != NULL)
		json_add_string(args, "reason", c->reason);
	status = commands_call(c, CTL_KICK, args, &result);
	if (status != CHATCTL_EXIT_OK)
		return status;
	if (c->json)
		output_json(c->out, result);
	else {
		fprintf(c->out, "kicked %s from room %s\n", user, room);
		commands_print_disconnected(c, result);
	}
	cJSON_Delete(result);
	return CHATCTL_EXIT_OK;
}

static int
commands_close(struct chatctl *c, char **argv, int argc)
{
	const char *room = argv[0];
	const char *reason =
	    c->reason != NULL && *c->reason != '\0' ? c->reason : ROOM_CLOSE_REASON_DEFAULT;
	struct admin_chatd chatd = { c->socket_path, c->timeout_ms };
	struct admin_outcome out;
	cJSON *result = NULL;
	char notfound[USER_ID_MAX_BYTES + 64], conflict[USER_ID_MAX_BYTES + 96];
	struct db *db;
	int rc, status;

	(void)argc;
	if (commands_check_text(c, "ROOM_ID", room, USER_ID_MAX_BYTES) != 0 ||
	    commands_check_reason(c) != 0)
		return CHATCTL_EXIT_USAGE;
	if (commands_db_open(c, &db) != 0)
		return CHATCTL_EXIT_FAILED;
	rc = admin_close_room(db, &chatd, room, reason, clock_wall_ms(), &out);
	if (db != NULL)
		db_close(db);
	if (rc != DB_OK) {
		snprintf(notfound, sizeof notfound, "room_not_found: no room with id %s", room);
		snprintf(conflict, sizeof conflict,
		    "room_closed: room %s is already closed (--no-db tells chatd again)", room);
		return commands_not_recorded(c, rc, &out, notfound, conflict);
	}
	status = commands_notify(c, CTL_ROOM_CLOSED, &out, &result, !c->no_db);
	if (status != CHATCTL_EXIT_OK)
		return status;
	if (c->json)
		commands_print_recorded(c, result, !c->no_db);
	else {
		fprintf(c->out, "closed room %s (%s)%s\n", room, reason,
		    c->no_db ? " (chatd only, not recorded)" : "");
		commands_print_disconnected(c, result);
		cJSON_Delete(result);
	}
	return CHATCTL_EXIT_OK;
}

/*
 * Parses a payload argument with the checks chat-api applies to bodies
 * (UTF-8, no NUL or escaped NUL, nothing after the value) by wrapping it
 * in an object, as json_parse_object only takes objects. Any JSON value
 * is allowed; NULL (after saying why) if it is not exactly one.
 */
static cJSON *
commands_parse_payload(struct chatctl *c, const char *text)
{
	char *wrapped, *cause = NULL;
	cJSON *obj, *payload = NULL;

	/* The wrapper below adds a level; the limit is the REST body's. */
	if (!json_depth_ok(text, strlen(text), JSON_DEPTH_MAX - 1)) {
		fprintf(c->err,
		    "chatctl: JSON_PAYLOAD nests objects and arrays deeper than %d levels\n",
		    JSON_DEPTH_MAX - 1);
		return NULL;
	}
	wrapped = xasprintf("{\"payload\":%s\n}", text);

	obj = json_parse_object(wrapped, strlen(wrapped), &cause);
	free(wrapped);
	/* '1,"x":2' would wrap into a valid object of two members */
	if (obj != NULL && cJSON_GetArraySize(obj) == 1)
		payload = cJSON_DetachItemFromObjectCaseSensitive(obj, "payload");
	/* cause speaks of a "body" and offsets into the wrapper: not shown */
	if (payload == NULL)
		fprintf(c->err,
		    "chatctl: JSON_PAYLOAD is not one valid JSON value (UTF-8, no NUL "
		    "characters), e.g. '{\"amount\":100}'\n");
	cJSON_Delete(obj);
	free(cause);
	return payload;
}

static int
commands_publish(struct chatctl *c, char **argv, int argc)
{
	const char *room = argv[0], *type = argv[1];
	cJSON *args, *payload, *result = NULL;
	int status;

	if (commands_check_text(c, "ROOM_ID", room, USER_ID_MAX_BYTES) != 0)
		return CHATCTL_EXIT_USAGE;
	if (!model_event_type_ok(type)) {
		fprintf(c->err, "chatctl: EVENT_TYPE must be " MODEL_EVENT_TYPE_RULE "\n");
		return CHATCTL_EXIT_USAGE;
	}
	if (argc > 2) {
		if ((payload = commands_parse_payload(c, argv[2])) == NULL)
			return CHATCTL_EXIT_USAGE;
	} else
		payload = json_object();
	args = json_object();
	json_add_string(args, "room_id", room);
	json_add_string(args, "event_type", type);
	json_add(args, "payload", payload);
	status = commands_call(c, CTL_PUBLISH, args, &result);
	if (status != CHATCTL_EXIT_OK)
		return status;
	if (c->json)
		output_json(c->out, result);
	else {
		fprintf(c->out, "published %s to room %s\n", type, room);
		output_fields(c->out, result);
	}
	cJSON_Delete(result);
	return CHATCTL_EXIT_OK;
}
