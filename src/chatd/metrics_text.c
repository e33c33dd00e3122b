/*
 * Renders chatd's counters (struct chatd_counters, the writer's
 * histograms, the cluster's), and a few gauges read on the spot. Names follow the
 * Prometheus conventions: chatd_ prefix, base units, _total counters.
 * Service thread.
 */
#include "autoconf.h"

#include <stdio.h>

#include "clock.h"
#include "cluster.h"
#include "dbfile.h"
#include "metrics_text.h"
#include "room.h"
#include "writer.h"

static void
metrics_text_rooms(struct chatd *cd, struct metrics_buf *b)
{
	uint64_t low = 0, high = 0, l, h, shed = 0;
	unsigned live = 0, loaded = 0;
	struct room *r;

	TAILQ_FOREACH(r, &cd->room_list, entry)
	{
		loaded++;
		if (r->nconns > 0)
			live++;
		room_queued(r, &l, &h);
		low += l;
		high += h;
		shed += r->fanout_shed;
	}
	metrics_gauge(b, "chatd_rooms", "Rooms with at least one connection.", live);
	metrics_gauge(b, "chatd_rooms_loaded", "Rooms held in memory (live or not).", loaded);
	metrics_family(b, "chatd_queued_frames", "gauge",
	    "Frames waiting in the connections' output queues, by priority lane.");
	metrics_sample(
	    b, "chatd_queued_frames", (const char *[]){ "priority", "high", NULL }, (double)high);
	metrics_sample(
	    b, "chatd_queued_frames", (const char *[]){ "priority", "low", NULL }, (double)low);
	metrics_counter(b, "chatd_fanout_shed_total",
	    "Chat messages dropped from a room's fan-out backlog before reaching any queue.",
	    (double)shed);
}

static void
metrics_text_refusals(struct chatd *cd, struct metrics_buf *b)
{
	const struct chatd_counters *k = &cd->counters;
	char status[16];

	metrics_family(b, "chatd_handshakes_refused_total", "counter",
	    "WebSocket handshakes refused, by HTTP status and error code.");
	for (size_t i = 0; i < CHATD_REFUSAL_KINDS && k->refusals[i].code != NULL; i++) {
		snprintf(status, sizeof status, "%d", k->refusals[i].status);
		metrics_sample(b, "chatd_handshakes_refused_total",
		    (const char *[]){ "status", status, "code", k->refusals[i].code, NULL },
		    (double)k->refusals[i].n);
	}
	if (k->refusals_other > 0)
		metrics_sample(b, "chatd_handshakes_refused_total",
		    (const char *[]){ "status", "other", "code", "other", NULL },
		    (double)k->refusals_other);
}

static void
metrics_text_writer(struct chatd *cd, struct metrics_buf *b)
{
	struct metrics_hist commit, batch;
	struct writer_health wh;
	int wal_pages, wal_blocked;

	writer_metrics(cd->writer, &commit, &batch);
	metrics_family(b, "chatd_writer_commit_duration_seconds", "histogram",
	    "Time the database writer took to apply and commit one batch (fsync included).");
	metrics_hist_write(b, "chatd_writer_commit_duration_seconds", NULL, &commit);
	metrics_family(b, "chatd_writer_batch_operations", "histogram",
	    "Operations written per database writer batch (one transaction each).");
	metrics_hist_write(b, "chatd_writer_batch_operations", NULL, &batch);
	metrics_gauge(b, "chatd_writer_backlog", "Operations waiting for the database writer.",
	    writer_backlog(cd->writer));
	writer_health(cd->writer, &wh);
	metrics_gauge(b, "chatd_database_writable",
	    "1 while database writes succeed, 0 while they fail (full disk, I/O error).",
	    wh.failing_since == 0);
	metrics_gauge(b, "chatd_writer_retry_records",
	    "Session, ban and peak records waiting to be written again.", wh.retry_sessions);
	metrics_counter(b, "chatd_writer_dropped_records_total",
	    "Records dropped because too many waited for a retry.", (double)wh.dropped_sessions);
	writer_wal_state(cd->writer, &wal_pages, &wal_blocked);
	metrics_gauge(b, "chatd_wal_bytes", "Size of the database's write-ahead log file.",
	    (double)dbfile_wal_bytes(cd->cfg->database_path));
	metrics_gauge(b, "chatd_wal_checkpoint_blocked",
	    "1 while another reader holds checkpoints of the write-ahead log back.", wal_blocked);
	metrics_gauge(b, "chatd_wal_at_bound",
	    "1 while the write-ahead log is at its bound and chat messages are refused.",
	    writer_wal_at_bound(cd->writer));
}

/* A counter with an "in" and an "out" sample (bus traffic). */
static void
metrics_text_inout(
    struct metrics_buf *b, const char *name, const char *help, uint64_t in, uint64_t out)
{
	metrics_family(b, name, "counter", help);
	metrics_sample(b, name, (const char *[]){ "direction", "in", NULL }, (double)in);
	metrics_sample(b, name, (const char *[]){ "direction", "out", NULL }, (double)out);
}

/*
 * The bus and the other nodes exist only in a cluster: a single node
 * leaves those families out rather than export zeros nobody can act on.
 * The gap counters come from the room sequencing every node runs, so they
 * are there on a single node too (where they stay at zero unless a
 * committed seq goes missing), and one alert rule fits every deployment.
 * No node label: each scrape reads one node, told apart by the scrape's
 * own labels.
 */
static void
metrics_text_cluster(struct chatd *cd, struct metrics_buf *b)
{
	struct cluster_stats cs;

	cluster_stats(cd, &cs);
	if (cs.enabled) {
		metrics_gauge(b, "chatd_cluster_bus_up",
		    "1 while this node is connected to the cluster's NATS server.", cs.bus_up != 0);
		metrics_text_inout(b, "chatd_cluster_bus_messages_total",
		    "NATS messages received and sent by this node (heartbeats included).",
		    cs.bus_in_msgs, cs.bus_out_msgs);
		metrics_text_inout(b, "chatd_cluster_bus_bytes_total",
		    "Payload bytes of those NATS messages.", cs.bus_in_bytes, cs.bus_out_bytes);
		metrics_counter(b, "chatd_cluster_bus_reconnects_total",
		    "Times the connection to NATS came back after a loss.",
		    (double)cs.bus_reconnects);
		metrics_text_inout(b, "chatd_cluster_bus_dropped_total",
		    "NATS messages dropped: in, because this node fell behind; out, publishes "
		    "refused (no connection, buffer full).",
		    cs.bus_dropped_in, cs.bus_dropped_out);
		metrics_gauge(b, "chatd_cluster_nodes",
		    "Other nodes heard on the bus within the node timeout.", cs.peers);
		metrics_gauge(b, "chatd_cluster_nodes_unsynced",
		    "Of those, nodes whose presence snapshot this node still waits for.",
		    cs.peers_unsynced);
		metrics_counter(b, "chatd_cluster_nodes_lost_total",
		    "Nodes that fell silent past the node timeout.", (double)cs.peers_lost);
		metrics_counter(b, "chatd_cluster_messages_published_total",
		    "Chat messages and custom events this node committed and published.",
		    (double)cs.msgs_published);
		metrics_counter(b, "chatd_cluster_messages_received_total",
		    "Chat messages and custom events received from the other nodes.",
		    (double)cs.msgs_received);
		metrics_counter(b, "chatd_cluster_snapshots_sent_total",
		    "Presence snapshots this node sent (bus up again, or asked for).",
		    (double)cs.snapshots_sent);
	}
	metrics_counter(b, "chatd_cluster_gap_reads_total",
	    "Database reads of messages missing from a room's sequence.", (double)cs.gap_reads);
	metrics_family(b, "chatd_cluster_gap_messages_total", "counter",
	    "Messages missing from a room's sequence: read from the database, or skipped "
	    "(the gap was wider than a client's queue; members were told).");
	metrics_sample(b, "chatd_cluster_gap_messages_total",
	    (const char *[]){ "how", "read", NULL }, (double)cs.gap_filled);
	metrics_sample(b, "chatd_cluster_gap_messages_total",
	    (const char *[]){ "how", "skipped", NULL }, (double)cs.gap_skipped);
}

char *
metrics_text(struct chatd *cd)
{
	const struct chatd_counters *k = &cd->counters;
	struct metrics_buf b;

	metrics_init(&b);
	metrics_gauge(&b, "chatd_start_time_seconds", "When chatd started, in Unix seconds.",
	    (double)(cd->started_ms / 1000));
	metrics_gauge(
	    &b, "chatd_shutting_down", "1 while chatd is shutting down.", cd->shutting_down != 0);
	metrics_gauge(
	    &b, "chatd_connections", "Established WebSocket connections.", (double)cd->nconns);
	metrics_counter(&b, "chatd_connections_total",
	    "WebSocket connections established since start.", (double)k->connections);
	metrics_text_rooms(cd, &b);
	metrics_family(&b, "chatd_messages_received_total", "counter",
	    "Client messages accepted for storage, by kind (chat message, custom event).");
	metrics_sample(&b, "chatd_messages_received_total",
	    (const char *[]){ "kind", "chat", NULL }, (double)k->messages_chat);
	metrics_sample(&b, "chatd_messages_received_total",
	    (const char *[]){ "kind", "custom", NULL }, (double)k->messages_custom);
	metrics_counter(&b, "chatd_messages_overloaded_total",
	    "Client messages refused because the database writer's queue was full.",
	    (double)k->overloaded);
	metrics_counter(&b, "chatd_rate_limited_total",
	    "Chat messages refused by the per-user rate limit.", (double)k->rate_limited);
	metrics_counter(&b, "chatd_deliveries_total",
	    "Frames written to WebSocket clients (every message to every recipient).",
	    (double)cd->frames_sent);
	metrics_counter(&b, "chatd_socket_writes_total", "Socket writes that carried those frames.",
	    (double)cd->frame_writes);
	metrics_family(&b, "chatd_frames_per_write", "histogram",
	    "Frames batched into one socket write to a client.");
	metrics_hist_write(&b, "chatd_frames_per_write", NULL, &k->frames_per_write);
	metrics_counter(&b, "chatd_dropped_frames_total",
	    "Low-priority frames dropped from full client queues.", (double)cd->dropped_low);
	metrics_counter(&b, "chatd_slow_consumer_closes_total",
	    "Connections closed because their high-priority queue was full.",
	    (double)k->slow_closes);
	metrics_text_refusals(cd, &b);
	metrics_text_writer(cd, &b);
	metrics_text_cluster(cd, &b);
	return metrics_take(&b);
}
