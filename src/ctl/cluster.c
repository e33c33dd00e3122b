/*
 * chatctl's views of a cluster of chatd nodes: the "cluster" block of
 * chatctl status (from chatd's health result, docs/control-protocol.md)
 * and chatctl nodes (the database's nodes table, which holds every node's
 * heartbeat, so it answers with chatd down). Reads only; what chatd sends
 * is untrusted text, as in output.c.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "chatctl.h"
#include "clock.h"
#include "db.h"
#include "jsonw.h"

/* The block's labels line up with each other, not with chatd's fields. */
#define CLUSTER_LABEL "%-12s  "

/* A member of obj as one cell. */
static void
cluster_cell(char *buf, size_t len, const cJSON *obj, const char *key)
{
	output_cell_value(buf, len, cJSON_GetObjectItemCaseSensitive(obj, key));
}

static void
cluster_bus_line(FILE *out, const cJSON *bus)
{
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(bus, "url");
	char reconnects[32], din[32], dout[32];

	cluster_cell(reconnects, sizeof reconnects, bus, "reconnects");
	cluster_cell(din, sizeof din, bus, "dropped_in");
	cluster_cell(dout, sizeof dout, bus, "dropped_out");
	fprintf(out, CLUSTER_LABEL, "bus");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(bus, "connected")))
		fprintf(out, "connected to %s",
		    output_plain(cJSON_IsString(url) ? url->valuestring : NULL));
	else
		fprintf(out, "DISCONNECTED: this node serves its own members only");
	fprintf(out, "; reconnects %s, dropped %s in, %s out\n", reconnects, din, dout);
}

/* The nodes chatd hears, self first as chatd lists them. */
static void
cluster_nodes_table(FILE *out, const cJSON *nodes)
{
	static const char *const heads[] = { "NODE", "SELF", "CONNECTIONS", "LAST_HEARD",
		"SYNCED" };
	enum { NCOLS = sizeof heads / sizeof heads[0] };
	char cell[NCOLS][160];
	int width[NCOLS], pass;
	const cJSON *n;
	size_t i;

	for (i = 0; i < NCOLS; i++)
		width[i] = (int)strlen(heads[i]);
	/* Pass 0 measures, pass 1 prints. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			fprintf(out, "%-*s  %-*s  %*s  %-*s  %s\n", width[0], heads[0], width[1],
			    heads[1], width[2], heads[2], width[3], heads[3], heads[4]);
		}
		cJSON_ArrayForEach(n, nodes)
		{
			const cJSON *self = cJSON_GetObjectItemCaseSensitive(n, "self");
			const cJSON *heard = cJSON_GetObjectItemCaseSensitive(n, "last_heard_ms");
			const cJSON *synced = cJSON_GetObjectItemCaseSensitive(n, "synced");

			cluster_cell(cell[0], sizeof cell[0], n, "node_id");
			snprintf(cell[1], sizeof cell[1], "%s", cJSON_IsTrue(self) ? "*" : "");
			cluster_cell(cell[2], sizeof cell[2], n, "connections");
			if (cJSON_IsTrue(self) || !cJSON_IsNumber(heard))
				snprintf(cell[3], sizeof cell[3], "-");
			else
				output_age_ms(
				    cell[3], sizeof cell[3], (long long)heard->valuedouble);
			snprintf(cell[4], sizeof cell[4], "%s",
			    cJSON_IsTrue(synced)	? "yes"
				: cJSON_IsFalse(synced) ? "NO"
							: "-");
			if (pass == 0) {
				for (i = 0; i < NCOLS; i++) {
					if ((int)strlen(cell[i]) > width[i])
						width[i] = (int)strlen(cell[i]);
				}
				continue;
			}
			fprintf(out, "%-*s  %-*s  %*s  %-*s  %s\n", width[0], cell[0], width[1],
			    cell[1], width[2], cell[2], width[3], cell[3], cell[4]);
		}
	}
}

void
output_cluster(FILE *out, const cJSON *cluster)
{
	const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(cluster, "nodes");
	char name[160], self[160], conns[32], lost[32], reads[32], filled[32], skipped[32];
	int count = cJSON_IsArray(nodes) ? cJSON_GetArraySize(nodes) : 0;

	cluster_cell(name, sizeof name, cluster, "name");
	cluster_cell(self, sizeof self, cluster, "node_id");
	cluster_cell(conns, sizeof conns, cluster, "connections");
	cluster_cell(lost, sizeof lost, cluster, "nodes_lost");
	cluster_cell(reads, sizeof reads, cluster, "gap_reads");
	cluster_cell(filled, sizeof filled, cluster, "gap_filled");
	cluster_cell(skipped, sizeof skipped, cluster, "gap_skipped");

	fprintf(out, "\n" CLUSTER_LABEL "%s, this node %s\n", "cluster", name, self);
	cluster_bus_line(out, cJSON_GetObjectItemCaseSensitive(cluster, "bus"));
	fprintf(out, CLUSTER_LABEL "%s on %d node%s (cluster-wide)\n", "connections", conns, count,
	    count == 1 ? "" : "s");
	fprintf(out, CLUSTER_LABEL "%s\n", "nodes lost", lost);
	fprintf(out, CLUSTER_LABEL "%s read from the database, %s filled, %s skipped\n", "gaps",
	    reads, filled, skipped);
	if (count > 0) {
		fputc('\n', out);
		cluster_nodes_table(out, nodes);
	}
}

/* ------------------------------------------------------------ chatctl nodes */

struct nodes_print {
	struct chatctl *c;
	struct jsonw *w; /* --json: the array being written */
	int64_t now, timeout_ms;
	size_t n;
};

/* A Unix-ms time as key (seconds) and key_ms, or two nulls for 0, as the
 * REST API writes times. */
static void
nodes_time_pair(struct jsonw *w, const char *key, int64_t ms)
{
	char key_ms[64];

	snprintf(key_ms, sizeof key_ms, "%s_ms", key);
	if (ms == 0) {
		jsonw_kv_null(w, key);
		jsonw_kv_null(w, key_ms);
		return;
	}
	jsonw_kv_int(w, key, ms / 1000);
	jsonw_kv_int(w, key_ms, ms);
}

static int
nodes_print_each(const struct db_node *n, void *arg)
{
	struct nodes_print *p = arg;
	const char *state = db_node_state(n, p->now, p->timeout_ms);
	char started[32], seen[32], conns[32];
	struct jsonw *w = p->w;
	FILE *out = p->c->out;

	p->n++;
	if (w != NULL) {
		/* The members of GET /management/health's database.nodes. */
		jsonw_object_begin(w);
		jsonw_kv_string(w, "node_id", n->id);
		jsonw_kv_string(w, "incarnation", n->incarnation);
		jsonw_kv_string(w, "state", state);
		jsonw_kv_int(w, "connections", n->connections);
		nodes_time_pair(w, "started_at", n->started_at);
		nodes_time_pair(w, "seen_at", n->seen_at);
		jsonw_kv_int(
		    w, "seen_age_s", p->now > n->seen_at ? (p->now - n->seen_at) / 1000 : 0);
		nodes_time_pair(w, "stopped_at", n->stopped_at);
		nodes_time_pair(w, "reaped_at", n->reaped_at);
		jsonw_object_end(w);
		return 0;
	}
	if (p->n == 1)
		fprintf(out, "%-24s  %-20s  %-12s  %-13s  %s\n", "NODE", "STARTED", "LAST_SEEN",
		    "STATE", "CONNECTIONS");
	output_time_ms(started, sizeof started, n->started_at);
	output_age_ms(seen, sizeof seen, p->now - n->seen_at);
	/* A stopped or reaped node's last count is gone with its sessions. */
	if (strcmp(state, "stopped") == 0 || strcmp(state, "lost") == 0)
		snprintf(conns, sizeof conns, "-");
	else
		snprintf(conns, sizeof conns, "%lld", (long long)n->connections);
	fprintf(out, "%-24s  %-20s  %-12s  %-13s  %11s\n", output_plain(n->id), started, seen,
	    strcmp(state, "lost") == 0 ? "lost (reaped)" : state, conns);
	return 0;
}

int
commands_nodes(struct chatctl *c, char **argv, int argc)
{
	struct nodes_print p = { c, NULL, clock_wall_ms(), c->cfg.cluster_node_timeout_ms, 0 };
	struct db *db = NULL;
	struct jsonw w;
	char *cause = NULL;
	int rc;

	(void)argv;
	(void)argc;
	if (commands_db_open_existing(c, &db, 0) != 0)
		return CHATCTL_EXIT_FAILED;
	if (c->json) {
		jsonw_init(&w);
		jsonw_array_begin(&w);
		p.w = &w;
	}
	rc = db_node_list(db, nodes_print_each, &p, &cause);
	db_close(db);
	if (rc != DB_OK) {
		if (c->json)
			jsonw_clear(&w);
		fprintf(c->err, "chatctl: database: %s\n", cause);
		free(cause);
		return CHATCTL_EXIT_FAILED;
	}
	if (c->json) {
		jsonw_array_end(&w);
		fprintf(c->out, "%s\n", w.buf);
		jsonw_clear(&w);
	} else if (p.n == 0)
		fprintf(c->out, "no nodes in the database (a single chatd records none)\n");
	return CHATCTL_EXIT_OK;
}
