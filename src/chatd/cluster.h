/*
 * chatd as one node of a cluster (docs/cluster.md): what this node tells
 * the others on the bus (bus.h) and what it does with what they tell it.
 *
 *   msg    a message this node committed, once, with its frame: every
 *          node with members in the room delivers it in seq order
 *          (sequence.h);
 *   pres   a user's first connection to a room on this node, or its
 *          last one gone (numbered, so a receiver sees what it missed);
 *   snap   everyone this node holds in every room, in parts: sent when
 *          the bus comes (back) up and when a node asks for it (want);
 *   hb     the heartbeat: alive, how many connections, the last pres
 *          number; a node silent CLUSTER_NODE_TIMEOUT_SECS is gone;
 *   admin  a ban, unban, kick, room close or room reload, applied to the
 *          live state of every node (the origin wrote the record);
 *   mreq   a control client asks this node for every node's metrics;
 *   mrep   a node's answer to one mreq, to the node that asked ("to"),
 *          with its metrics text after a newline;
 *   bye    a clean stop.
 *
 * The database is the record and the judge of life: each node writes a
 * heartbeat row through its writer, and a node whose row went stale too
 * has its sessions closed (node_lost) by whichever node gets there first.
 * With no CLUSTER_NATS_URL none of this exists (cd->cluster is NULL) and
 * every function here does nothing. Service thread only.
 */
#ifndef CHATD_CLUSTER_H
#define CHATD_CLUSTER_H

#include <stdint.h>

#include <cjson/cJSON.h>

struct chatd;
struct room;

enum cluster_admin {
	CLUSTER_BAN,
	CLUSTER_UNBAN,
	CLUSTER_KICK,
	CLUSTER_CLOSE,
	CLUSTER_RELOAD,
};

/*
 * Start-up, before the listeners open: waits for an earlier incarnation
 * of this NODE_ID to fall silent in the database (refusing to start
 * beside a live one), then closes the sessions it left (node_lost). With
 * no cluster, closes every open session (server_restart), as a single
 * node always did. -1 with *cause.
 */
int cluster_claim(struct chatd *cd, char **cause);
/*
 * Joins the bus (the writer exists, the rooms are loaded). own_metrics
 * makes this node's metrics text (heap) when the cluster asks for it.
 * -1 with *cause.
 */
int cluster_start(struct chatd *cd, char *(*own_metrics)(struct chatd *cd), char **cause);
/* Says goodbye and closes the bus and its handles (before the loop's last run). */
void cluster_stop(struct chatd *cd);
/* Frees what is left (after the loop's last run). */
void cluster_free(struct chatd *cd);

/* This node got its first connection of user_id in r (present=1), or lost its last. */
void cluster_presence(
    struct chatd *cd, struct room *r, const char *user_id, const char *nickname, int present);
/* A message this node committed in r: json is the frame every member gets. */
void cluster_message(
    struct chatd *cd, struct room *r, int64_t seq, int kind, const char *user_id, const char *json);
/* An admin action this node applied: every other node applies it too. */
void cluster_admin(struct chatd *cd, enum cluster_admin what, const char *room_id,
    const char *user_id, const char *reason, int64_t expires_at);
/*
 * Every node's metrics (control request "metrics" with "cluster": true)
 * for control connection origin's request ctl_id: this node's text and
 * every other node's, merged with node labels (metrics_merge), as
 * {"text", "nodes": [those that answered, this one first], "missing":
 * [peers known now that did not]}. Returns 0 when the other nodes were
 * asked: done gets that object (taken) later, from the loop, once all of
 * them answered or after a bound (CLUSTER_SCRAPE_WAIT_MS in cluster.c);
 * 1 with the object in *now when there is nobody to ask or no bus to
 * ask on; -1 on a single node (nothing to merge: the caller answers
 * with its plain text).
 */
typedef void (*cluster_metrics_fn)(
    struct chatd *cd, uint64_t origin, unsigned long ctl_id, cJSON *result);
int cluster_metrics(
    struct chatd *cd, uint64_t origin, unsigned long ctl_id, cluster_metrics_fn done, cJSON **now);
/* The cluster's counts since start, for metrics. */
struct cluster_stats {
	int enabled; /* 0: a single node; the rest is zero */
	int bus_up;
	uint64_t bus_in_msgs, bus_in_bytes, bus_out_msgs, bus_out_bytes;
	uint64_t bus_reconnects, bus_dropped_in, bus_dropped_out;
	unsigned peers; /* other nodes heard within the timeout */
	unsigned peers_unsynced; /* of those, waiting for their snapshot */
	uint64_t peers_lost; /* nodes that fell silent */
	uint64_t msgs_published, msgs_received; /* chat messages and events on the bus */
	uint64_t snapshots_sent;
	uint64_t gap_reads, gap_filled, gap_skipped; /* from the database (sequence.c) */
};
void cluster_stats(struct chatd *cd, struct cluster_stats *out);
/* Adds "cluster" (this node, the others, the bus) to a health object. */
void cluster_health(struct chatd *cd, cJSON *o);
/* Connections on every node, as last heard (this node's own count included). */
unsigned long cluster_connections(struct chatd *cd);

#endif
