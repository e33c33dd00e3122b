/*
 * chatctl copy-db (docs/copy-db.md): opens the two databases named on
 * the command line (never DATABASE_URL's), refuses while a chatd node is
 * alive on the source, has db_copy.h copy and compare, prints progress on
 * stderr and the report on stdout (text, or one JSON object with --json).
 * Addresses are printed through dbaddr_display() only: a PostgreSQL URI
 * may hold a password.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatctl.h"
#include "clock.h"
#include "config.h"
#include "db.h"
#include "db_copy.h"
#include "dbaddr.h"
#include "jsonw.h"

/* How often a long table's copy says how far it is. */
#define COPY_PROGRESS_EVERY_MS 2000

/* One side as given: its address (heap) and how it is shown. */
struct copy_end {
	const char *flag; /* "--from", "--to" */
	char *address; /* what db_open() takes; may hold a password */
	char *shown; /* dbaddr_display(address) */
	struct db *db;
};

static void
copy_end_clear(struct copy_end *e)
{
	db_close(e->db);
	free(e->address);
	free(e->shown);
}

/* Parses url as DATABASE_URL is parsed; CHATCTL_EXIT_OK or a status after saying why. */
static int
copy_end_parse(struct chatctl *c, struct copy_end *e, const char *flag, const char *url)
{
	char *cause = NULL;
	int memory;

	e->flag = flag;
	if (config_parse_database_url(url, &e->address, &memory, &cause) != 0) {
		fprintf(c->err, "chatctl: %s: %s\n", flag, cause);
		free(cause);
		return CHATCTL_EXIT_USAGE;
	}
	if (memory) {
		fprintf(c->err,
		    "chatctl: %s: name a database (sqlite:PATH or postgres://...), not "
		    "the in-memory default\n",
		    flag);
		return CHATCTL_EXIT_USAGE;
	}
	e->shown = dbaddr_display(e->address);
	return CHATCTL_EXIT_OK;
}

/* Opens e: an existing database, or (create) db_open()'s, which makes the tables. */
static int
copy_end_open(struct chatctl *c, struct copy_end *e, int create)
{
	char *cause = NULL;
	int rc;

	rc = create ? db_open(e->address, &e->db, &cause)
		    : db_open_existing(e->address, &e->db, &cause);
	if (rc == DB_OK)
		return 0;
	if (rc == DB_NOTFOUND)
		fprintf(c->err, "chatctl: %s: no database at %s\n", e->flag, e->shown);
	else
		fprintf(c->err, "chatctl: %s: %s\n", e->flag, cause);
	free(cause);
	return -1;
}

/* ---- no chatd node alive on the source ---- */

struct copy_alive {
	struct chatctl *c;
	int64_t now;
	int count;
};

static int
copy_alive_each(const struct db_node *n, void *arg)
{
	struct copy_alive *a = arg;
	char age[32];

	if (strcmp(db_node_state(n, a->now, a->c->cfg.cluster_node_timeout_ms), "alive") != 0)
		return 0;
	output_age_ms(age, sizeof age, a->now - n->seen_at);
	fprintf(a->c->err, "chatctl: copy-db: chatd node %s is alive (heard %s)\n",
	    output_plain(n->id), age);
	a->count++;
	return 0;
}

/* 0 when no node of the source's nodes table is alive; -1 after saying so. */
static int
copy_check_nodes(struct chatctl *c, struct db *source)
{
	struct copy_alive a = { c, clock_wall_ms(), 0 };
	char *cause = NULL;

	if (db_node_list(source, copy_alive_each, &a, &cause) != DB_OK) {
		fprintf(c->err, "chatctl: --from: %s\n", cause);
		free(cause);
		return -1;
	}
	if (a.count == 0)
		return 0;
	fprintf(c->err,
	    "chatctl: copy-db: stop chatd on every node (and chat-api, chat-sync) before "
	    "copying; a node's row counts as alive for CLUSTER_NODE_TIMEOUT_SECS after its "
	    "last heartbeat\n");
	return -1;
}

/* ---- progress (stderr) ---- */

struct copy_progress {
	struct chatctl *c;
	int64_t next_ms;
};

static void
copy_progress_note(void *arg, const char *table, int64_t copied, int64_t total, int done)
{
	struct copy_progress *p = arg;
	int64_t now = clock_mono_ms();

	if (!done && now < p->next_ms)
		return;
	p->next_ms = now + COPY_PROGRESS_EVERY_MS;
	fprintf(p->c->err, "copy-db: %-14s %lld of %lld rows%s\n", table, (long long)copied,
	    (long long)total, done ? ", done" : "");
	fflush(p->c->err);
}

/* ---- the report (stdout) ---- */

static void
copy_print_json(struct chatctl *c, const struct copy_end *from, const struct copy_end *to,
    const struct db_copy_report *rep)
{
	struct jsonw w;
	size_t i;

	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "mode", c->verify_only ? "verify" : "copy");
	jsonw_kv_string(&w, "from", from->shown);
	jsonw_kv_string(&w, "to", to->shown);
	jsonw_kv_bool(&w, "ok", rep->mismatches_total == 0);
	jsonw_kv_bool(&w, "committed", rep->committed);
	jsonw_key(&w, "tables");
	jsonw_array_begin(&w);
	for (i = 0; i < rep->n_tables; i++) {
		const struct db_copy_count *t = &rep->tables[i];

		jsonw_object_begin(&w);
		jsonw_kv_string(&w, "table", t->table);
		jsonw_kv_int(&w, "from_rows", t->source_rows);
		jsonw_kv_int(&w, "to_rows", t->target_rows);
		if (t->has_id) {
			jsonw_kv_int(&w, "from_max_id", t->source_max_id);
			jsonw_kv_int(&w, "to_max_id", t->target_max_id);
		}
		jsonw_object_end(&w);
	}
	jsonw_array_end(&w);
	jsonw_kv_int(&w, "rooms_compared", rep->rooms_checked);
	jsonw_kv_int(&w, "mismatch_count", rep->mismatches_total);
	jsonw_key(&w, "mismatches");
	jsonw_array_begin(&w);
	for (i = 0; i < rep->n_mismatches; i++) {
		const struct db_copy_mismatch *m = &rep->mismatches[i];

		jsonw_object_begin(&w);
		jsonw_kv_string(&w, "table", m->table);
		if (m->room_id != NULL)
			jsonw_kv_string(&w, "room_id", m->room_id);
		jsonw_kv_string(&w, "what", m->what);
		jsonw_kv_int(&w, "from", m->source);
		jsonw_kv_int(&w, "to", m->target);
		jsonw_object_end(&w);
	}
	jsonw_array_end(&w);
	jsonw_object_end(&w);
	fprintf(c->out, "%s\n", w.buf);
	jsonw_clear(&w);
}

static void
copy_print_text(struct chatctl *c, const struct copy_end *from, const struct copy_end *to,
    const struct db_copy_report *rep)
{
	FILE *out = c->out;
	char a[32], b[32];
	size_t i;

	fprintf(out, "%s\n  from %s (%s)\n  to   %s (%s)\n\n",
	    c->verify_only ? "compared" : "copied and compared", from->shown,
	    db_backend_name(from->db), to->shown, db_backend_name(to->db));
	fprintf(out, "%-14s  %12s  %12s  %12s  %12s\n", "TABLE", "FROM_ROWS", "TO_ROWS",
	    "FROM_MAX_ID", "TO_MAX_ID");
	for (i = 0; i < rep->n_tables; i++) {
		const struct db_copy_count *t = &rep->tables[i];

		snprintf(a, sizeof a, "-");
		snprintf(b, sizeof b, "-");
		if (t->has_id) {
			snprintf(a, sizeof a, "%lld", (long long)t->source_max_id);
			snprintf(b, sizeof b, "%lld", (long long)t->target_max_id);
		}
		fprintf(out, "%-14s  %12lld  %12lld  %12s  %12s\n", t->table,
		    (long long)t->source_rows, (long long)t->target_rows, a, b);
	}
	fprintf(out,
	    "\nrooms compared: %lld (messages, last message seq, sessions, last session "
	    "seq, last_seq, last_session_seq)\n",
	    (long long)rep->rooms_checked);
	for (i = 0; i < rep->n_mismatches; i++) {
		const struct db_copy_mismatch *m = &rep->mismatches[i];

		if (m->room_id != NULL)
			fprintf(out, "MISMATCH room %s: %s: from %lld, to %lld\n",
			    output_plain(m->room_id), m->what, (long long)m->source,
			    (long long)m->target);
		else
			fprintf(out, "MISMATCH table %s: %s: from %lld, to %lld\n", m->table,
			    m->what, (long long)m->source, (long long)m->target);
	}
	if ((int64_t)rep->n_mismatches < rep->mismatches_total)
		fprintf(out, "... and %lld more\n",
		    (long long)(rep->mismatches_total - (int64_t)rep->n_mismatches));
	if (rep->mismatches_total == 0)
		fprintf(out, "%s\n",
		    c->verify_only ? "OK: the databases match"
				   : "OK: the copy matches the source and is committed");
	else
		fprintf(out, "%s: %lld difference%s%s\n", c->verify_only ? "DIFFERENT" : "FAILED",
		    (long long)rep->mismatches_total, rep->mismatches_total == 1 ? "" : "s",
		    c->verify_only ? "" : "; the copy was rolled back, nothing is committed");
}

int
commands_copy_db(struct chatctl *c, char **argv, int argc)
{
	struct copy_end from = { 0 }, to = { 0 };
	struct copy_progress progress = { c, clock_mono_ms() + COPY_PROGRESS_EVERY_MS };
	struct db_copy_report rep;
	char *cause = NULL;
	int status, rc;

	(void)argv;
	(void)argc;
	memset(&rep, 0, sizeof rep);
	if ((status = copy_end_parse(c, &from, "--from", c->from)) != CHATCTL_EXIT_OK ||
	    (status = copy_end_parse(c, &to, "--to", c->to)) != CHATCTL_EXIT_OK)
		goto out;
	if (!c->verify_only && (dbaddr_is_pg(from.address) || !dbaddr_is_pg(to.address))) {
		fprintf(c->err,
		    "chatctl: copy-db copies a SQLite database (--from sqlite:PATH) into a "
		    "PostgreSQL one (--to postgres://...); --verify-only compares any two\n");
		status = CHATCTL_EXIT_USAGE;
		goto out;
	}
	status = CHATCTL_EXIT_FAILED;
	if (copy_end_open(c, &from, 0) != 0 || copy_end_open(c, &to, !c->verify_only) != 0)
		goto out;
	if (c->verify_only)
		rc = db_copy_verify(from.db, to.db, &rep, &cause);
	else {
		if (copy_check_nodes(c, from.db) != 0)
			goto out;
		rc = db_copy_run(from.db, to.db, copy_progress_note, &progress, &rep, &cause);
	}
	if (rc != DB_OK) {
		fprintf(c->err, "chatctl: copy-db: %s\n", cause);
		if (db_failure_was_busy(from.db) || db_failure_was_busy(to.db))
			fprintf(c->err,
			    "chatctl: copy-db: another process is writing: stop chatd, "
			    "chat-api and chat-sync first\n");
		else if (rc == DB_ERROR && !c->verify_only)
			fprintf(c->err, "chatctl: copy-db: nothing was committed\n");
		free(cause);
		goto out;
	}
	if (c->json)
		copy_print_json(c, &from, &to, &rep);
	else
		copy_print_text(c, &from, &to, &rep);
	status = rep.mismatches_total == 0 ? CHATCTL_EXIT_OK : CHATCTL_EXIT_FAILED;
out:
	db_copy_report_clear(&rep);
	copy_end_clear(&to);
	copy_end_clear(&from);
	return status;
}
