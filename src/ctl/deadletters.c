/*
 * chatctl dead-letters: chat-sync's dead letters (docs/callbacks.md),
 * straight from the database as the REST routes see them; chatd is not
 * involved. Marking for replay only records the wish: chat-sync, the one
 * sender of each target, resends the letter on its next pass.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chatctl.h"
#include "clock.h"
#include "db.h"
#include "encode.h"
#include "jsonw.h"

static const char *const dead_targets[] = { "room_events", "chat_history", "session_history",
	"periodic_sync", "data" };

static int
dead_target_known(const char *name)
{
	for (size_t i = 0; i < sizeof dead_targets / sizeof dead_targets[0]; i++) {
		if (strcmp(dead_targets[i], name) == 0)
			return 1;
	}
	return 0;
}

/* A letter id from the command line; 0 if not a positive whole number. */
static int64_t
dead_parse_id(const char *s)
{
	char *end;
	long long v;

	if (*s < '1' || *s > '9')
		return 0;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno != 0 || *end != '\0' ? 0 : v;
}

struct dead_print {
	struct chatctl *c;
	struct jsonw *w; /* --json: the array being written */
	int64_t n;
};

static int
dead_print_each(const struct db_dead_letter *d, void *arg)
{
	struct dead_print *p = arg;
	char range[64], at[32];
	FILE *out = p->c->out;
	cJSON *err;

	p->n++;
	if (p->w != NULL) {
		encode_dead_letter(p->w, d);
		return 0;
	}
	if (p->n == 1)
		fprintf(out, "%-6s %-15s %-40s %-23s %6s %8s %6s %-20s %s\n", "ID", "TARGET",
		    "DELIVERY_ID", "ROWS", "COUNT", "ATTEMPTS", "STATUS", "DEAD_AT", "REPLAY");
	snprintf(
	    range, sizeof range, "%lld..%lld", (long long)d->after_id + 1, (long long)d->last_id);
	output_time_ms(at, sizeof at, d->created_at);
	fprintf(out, "%-6lld %-15s %-40s %-23s %6lld %8lld ", (long long)d->id, d->target,
	    d->delivery_id, range, (long long)d->count, (long long)d->attempts);
	if (d->last_status != 0)
		fprintf(out, "%6lld ", (long long)d->last_status);
	else
		fprintf(out, "%6s ", "-");
	fprintf(out, "%-20s %s\n", at, d->replay_requested_at != 0 ? "marked" : "-");
	/* The receiver's words, quoted if they hold control characters. */
	err = cJSON_CreateString(d->last_error != NULL ? d->last_error : "");
	if (err == NULL)
		return 1;
	fprintf(out, "       last error: ");
	output_value(out, err);
	fputc('\n', out);
	cJSON_Delete(err);
	return 0;
}

static int
dead_list(struct chatctl *c, struct db *db)
{
	struct dead_print p = { c, NULL, 0 };
	struct jsonw w;
	char *cause = NULL;
	int rc;

	if (c->json) {
		jsonw_init(&w);
		jsonw_object_begin(&w);
		jsonw_key(&w, "dead_letters");
		jsonw_array_begin(&w);
		p.w = &w;
	}
	rc = db_dead_letter_list(db, c->target, 0, 0, dead_print_each, &p, &cause);
	if (rc != DB_OK) {
		if (c->json)
			jsonw_clear(&w);
		fprintf(c->err, "chatctl: database: %s\n", cause);
		free(cause);
		return CHATCTL_EXIT_FAILED;
	}
	if (c->json) {
		jsonw_array_end(&w);
		jsonw_kv_int(&w, "count", p.n);
		jsonw_object_end(&w);
		fprintf(c->out, "%s\n", w.buf);
		jsonw_clear(&w);
	} else if (p.n == 0)
		fprintf(c->out, "no dead letters%s%s\n", c->target != NULL ? " for " : "",
		    c->target != NULL ? c->target : "");
	return CHATCTL_EXIT_OK;
}

/* A replay or discard the database refused: says why (cause is freed). */
static int
dead_failed(struct chatctl *c, int rc, int64_t id, char *cause)
{
	if (rc == DB_NOTFOUND)
		fprintf(c->err, "chatctl: dead_letter_not_found: no dead letter with id %lld\n",
		    (long long)id);
	else
		fprintf(c->err, "chatctl: database: %s\n", cause);
	free(cause);
	return CHATCTL_EXIT_FAILED;
}

static int
dead_replay(struct chatctl *c, struct db *db, int64_t id)
{
	int64_t marked = 0;
	char *cause = NULL;
	int rc;

	rc = db_dead_letter_replay(db, id, c->target, clock_wall_ms(), &marked, &cause);
	if (rc != DB_OK)
		return dead_failed(c, rc, id, cause);
	if (c->json) {
		if (id > 0)
			fprintf(c->out, "{\"status\":\"accepted\",\"id\":%lld}\n", (long long)id);
		else
			fprintf(c->out, "{\"status\":\"accepted\",\"marked\":%lld}\n",
			    (long long)marked);
	} else if (id > 0)
		fprintf(c->out, "dead letter %lld marked for replay; chat-sync resends it\n",
		    (long long)id);
	else
		fprintf(c->out, "%lld dead letter%s marked for replay; chat-sync resends them\n",
		    (long long)marked, marked == 1 ? "" : "s");
	return CHATCTL_EXIT_OK;
}

static int
dead_discard(struct chatctl *c, struct db *db, int64_t id)
{
	char *cause = NULL;
	int rc;

	rc = db_dead_letter_discard(db, id, &cause);
	if (rc != DB_OK)
		return dead_failed(c, rc, id, cause);
	if (c->json)
		fprintf(c->out, "{\"status\":\"discarded\",\"id\":%lld}\n", (long long)id);
	else
		fprintf(c->out, "dead letter %lld discarded\n", (long long)id);
	return CHATCTL_EXIT_OK;
}

int
commands_dead_letters(struct chatctl *c, char **argv, int argc)
{
	const char *action = argc > 0 ? argv[0] : "list";
	int64_t id = 0;
	struct db *db = NULL;
	int status, want_id;

	if (c->target != NULL && !dead_target_known(c->target)) {
		fprintf(c->err,
		    "chatctl: --target %s: expected room_events, chat_history, session_history, "
		    "periodic_sync or data\n",
		    c->target);
		return CHATCTL_EXIT_USAGE;
	}
	want_id = strcmp(action, "discard") == 0 || (strcmp(action, "replay") == 0 && !c->all);
	if (strcmp(action, "list") != 0 && strcmp(action, "replay") != 0 &&
	    strcmp(action, "discard") != 0) {
		fprintf(c->err,
		    "chatctl: dead-letters: unknown action \"%s\" (list, replay, discard)\n",
		    action);
		return CHATCTL_EXIT_USAGE;
	}
	if (want_id) {
		if (argc != 2 || (id = dead_parse_id(argv[1])) == 0) {
			fprintf(c->err, "chatctl: dead-letters %s: needs one dead letter ID%s\n",
			    action, strcmp(action, "replay") == 0 ? " (or --all)" : "");
			return CHATCTL_EXIT_USAGE;
		}
	} else if (argc > 1) {
		fprintf(c->err, "chatctl: dead-letters %s%s takes no ID\n", action,
		    c->all ? " --all" : "");
		return CHATCTL_EXIT_USAGE;
	}
	if (c->all && strcmp(action, "replay") != 0) {
		fprintf(c->err, "chatctl: --all goes with replay only\n");
		return CHATCTL_EXIT_USAGE;
	}
	/* An operator's typo must not leave an empty database behind. */
	if (commands_db_open_existing(c, &db, 0) != 0)
		return CHATCTL_EXIT_FAILED;
	if (strcmp(action, "list") == 0)
		status = dead_list(c, db);
	else if (strcmp(action, "replay") == 0)
		status = dead_replay(c, db, id);
	else
		status = dead_discard(c, db, id);
	db_close(db);
	return status;
}
