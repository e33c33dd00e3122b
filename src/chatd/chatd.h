/*
 * chatd's shared state: the daemon (struct chatd), rooms, WebSocket
 * connections and control connections. Everything declared here belongs to
 * the service thread (the one running the event loop); the database writer
 * thread never sees these structs, it gets copies in struct writer_op
 * (writer.h). So there are no locks here. Only chatd includes this file.
 */
#ifndef CHATD_CHATD_H
#define CHATD_CHATD_H

#include <sys/queue.h>

#include <stdint.h>

#include <uv.h>

#include <libwebsockets.h>

#include "coalesce.h"
#include "config.h"
#include "netaddr.h"
#include "ctl.h"
#include "metrics.h"
#include "outq.h"
#include "peers.h"
#include "ratelimit.h"
#include "strmap.h"

struct db;
struct writer;
struct room;
struct sequence_held;
struct cluster;

/* glibc's sys/queue.h lacks the _SAFE walks (BSD has them). */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar) \
	for ((var) = TAILQ_FIRST((head)); (var) && ((tvar) = TAILQ_NEXT((var), field), 1); \
	     (var) = (tvar))
#endif

/*
 * One WebSocket connection: the lws per-session data of the "chatd"
 * protocol, so lws allocates (zeroed) and frees it; we own the heap
 * members. Service thread only. A connection counts (totals, per-address,
 * room membership) from ESTABLISHED until CLOSED; room != NULL says it
 * joined.
 */
struct conn {
	struct lws *wsi;
	struct chatd *cd;
	struct room *room; /* NULL until joined, and for refused handshakes */
	char *user_id;
	char *nickname;
	char *address; /* client address (X-Forwarded-For behind the proxy) */
	int is_admin;
	uint64_t serial; /* unique per process; the writer's session key */
	int counted; /* in cd->nconns and cd->addresses */
	struct outq q;

	/* Set when the server decided to close it: the close frame goes out
	 * after what is queued (UserLeft). */
	int close_code;
	char *close_reason;
	const char *leave_reason; /* session leave reason; static string */

	/* Reassembly of one client message across frames and rx chunks. */
	unsigned char *rx;
	size_t rx_len, rx_cap;
	int rx_inmsg; /* inside a message */
	int rx_binary;
	size_t rx_discard; /* > 0: dropping the rest of an oversize message */
	int64_t valid_ms; /* monotonic: joined, or the last pong (keepalive) */

	TAILQ_ENTRY(conn) entry; /* room->members */
	TAILQ_ENTRY(conn) flush_entry; /* cd->flush */
	int flush_pending;
	TAILQ_ENTRY(conn) kill_entry; /* cd->kill */
	int kill_pending;
	/* lws is closing it: chatd's close frame was handed over (lws then
	 * reads and drops what the client still sends until its answer), or
	 * the client's close is being answered, or lws is dropping it. */
	int lws_closing;
	int linger; /* CLOSED: read and drop what the client still sends (linger.h) */
};
TAILQ_HEAD(conn_list, conn);

struct linger_sock;

/* A user's ban as chatd holds it (the database row is the record). */
struct room_ban {
	char *reason; /* may be NULL */
	int64_t expires_at; /* Unix ms; 0: permanent */
};

/*
 * A user present in a room: with connections here, or on other nodes of
 * the cluster (as they told on the bus), or both. A user counts once in
 * the room's head count however many connections and nodes hold them.
 */
struct room_user {
	unsigned nconns; /* connections on this node */
	unsigned nodes; /* other nodes with connections of this user */
};

/* A low-priority frame waiting for its sliced fan-out. */
struct room_fanout {
	STAILQ_ENTRY(room_fanout) entry;
	struct frame *f; /* one reference */
};
STAILQ_HEAD(room_fanout_list, room_fanout);

/*
 * A room as the service thread knows it: loaded from the database at start
 * or on demand, never freed before exit (a closed room stays, marked, so
 * refusals need no query). Owned by struct chatd's registry.
 */
struct room {
	struct chatd *cd;
	char *id;
	char *name;
	int closed;
	char **admins;
	size_t n_admins;
	struct strmap bans; /* user_id -> struct room_ban */
	struct strmap users; /* user_id -> struct room_user */
	struct conn_list members;
	unsigned nconns;
	int64_t current_users, peak_users;
	int64_t last_seq; /* highest seq broadcast (or loaded) */
	uint64_t dropped_low;
	struct ratelimit rl;
	struct coalesce co;
	uv_timer_t stats_timer; /* trailing RoomStats push */
	/* Messages that arrived ahead of a missing one (sequence.c). */
	struct sequence_held *held;
	unsigned nheld;
	uv_timer_t gap_timer;

	/* Sliced low-priority fan-out. A pass takes the fan_pass frames at
	 * the head and walks the members from fan_cursor on, giving each
	 * member all of them at once; frames that arrive meanwhile wait for
	 * the next pass (keeps per-member order). */
	struct room_fanout_list fanout;
	unsigned fanout_len; /* bounded by QUEUE_LOW_FRAMES (room_fanout_shed) */
	uint64_t fanout_shed; /* messages dropped from the backlog, for stats */
	struct conn *fan_cursor;
	unsigned fan_pass; /* frames in the pass under way, 0: none */
	int busy; /* on cd->busy */

	TAILQ_ENTRY(room) entry; /* cd->room_list */
	TAILQ_ENTRY(room) busy_entry; /* cd->busy */
};
TAILQ_HEAD(room_list, room);

/*
 * One control-socket connection (raw Unix socket); lws per-session data of
 * the "chatd-control" protocol. Replies are queued in out (LWS_PRE
 * headroom in front) and written in RAW_WRITEABLE. While a reply waits
 * (a publish for its commit, cluster metrics for the other nodes), later
 * lines wait in pending so replies keep request order.
 */
struct ctl_pending {
	STAILQ_ENTRY(ctl_pending) entry;
	char *line;
};
STAILQ_HEAD(ctl_pending_list, ctl_pending);

struct ctlconn {
	struct lws *wsi;
	struct chatd *cd;
	uint64_t serial;
	int live;
	struct ctl_linebuf lb;
	unsigned char *out;
	size_t out_len, out_cap; /* out_len counts from LWS_PRE */
	int waiting; /* a reply waits: a publish in the writer, or cluster metrics */
	struct ctl_pending_list pending;
	unsigned npending;
	int drop; /* close after flushing */
	int64_t line_ms; /* monotonic: when the unfinished line began */
	TAILQ_ENTRY(ctlconn) entry;
};
TAILQ_HEAD(ctlconn_list, ctlconn);

/* Handshake refusals told apart by status and error code (metrics). */
#define CHATD_REFUSAL_KINDS 24
struct chatd_refusal {
	const char *code; /* static string; NULL: free slot */
	int status;
	uint64_t n;
};

/*
 * What chatd counts for its metrics (control request "metrics"), since
 * start. Plain integers: the service thread alone touches them; the
 * writer keeps its own (writer_metrics).
 */
struct chatd_counters {
	uint64_t connections; /* WebSocket connections established */
	uint64_t messages_chat, messages_custom; /* client messages handed to the writer */
	uint64_t overloaded; /* client messages refused: the writer's queue was full */
	uint64_t rate_limited; /* chat messages refused by the per-user rate limit */
	uint64_t slow_closes; /* connections closed for a full high-priority queue */
	struct chatd_refusal refusals[CHATD_REFUSAL_KINDS];
	uint64_t refusals_other; /* kinds past the table */
	struct metrics_hist frames_per_write;
	/* Messages missing from the bus, read from the database (sequence.c). */
	uint64_t gap_reads; /* reads */
	uint64_t gap_filled; /* messages read */
	uint64_t gap_skipped; /* messages past a member's queue: counted as missed */
};

/*
 * The daemon. One instance, created by server_run() on the service thread,
 * which alone touches it (the signal handler only sets server_signalled
 * and wakes the loop).
 */
struct chatd {
	/*
	 * The one event loop (libuv, epoll): lws runs its sockets and timers
	 * on it as a foreign loop, and chatd adds its own handles, all closed
	 * before the loop at exit.
	 */
	uv_loop_t loop;
	int loop_ready, handles_ready;
	uv_prepare_t flush_prepare; /* conn_flush before the loop blocks */
	uv_check_t flush_check; /* and after each round of socket events */
	uv_idle_t fanout_idle; /* active while a room has low fan-out pending (room.c) */
	uv_timer_t shutdown_timer; /* wakes the loop at the shutdown deadline */
	uv_timer_t watchdog_timer; /* WATCHDOG=1 to systemd (WatchdogSec=) */
	const struct config *cfg;
	struct lws_context *ctx;
	struct lws_vhost *ws_vhost, *ctl_vhost;
	struct writer *writer;
	struct db *db; /* the service thread's own connection: room loads, gap reads */
	struct cluster *cluster; /* NULL: a single node (no CLUSTER_NATS_URL) */
	struct peers peers; /* the other nodes and whom they hold (cluster.c keeps it) */

	struct strmap rooms; /* id -> struct room */
	struct room_list room_list;
	struct room_list busy; /* rooms with low fan-out pending */
	struct conn_list flush; /* queues that went non-empty since the last flush */
	struct conn_list kill; /* to close with their close_code (conn_close_soon) */
	int lws_rearm; /* an lws timeout was set outside a socket event (conn_flush) */

	struct strmap addresses; /* address -> connections from it (handshake.c) */
	/* Peers whose X-Forwarded-For is believed (TRUSTED_PROXIES); every
	 * peer is the web server when the listener is a Unix socket. */
	struct netaddr_list trusted;
	int listen_unix;
	unsigned long nconns; /* established WebSocket connections */
	struct ctlconn_list ctlconns;
	LIST_HEAD(linger_list, linger_sock) lingers; /* linger.c's */
	uint64_t next_serial;
	int64_t started_ms;
	uint64_t dropped_low; /* low frames dropped since start */
	/* Frames written to clients and the writes that carried them: their
	 * ratio shows how well queued frames are batched (control health). */
	uint64_t frames_sent, frame_writes;
	struct chatd_counters counters;

	unsigned char *sendbuf; /* shared by every WRITEABLE; LWS_PRE first */
	size_t sendbuf_cap;

	uv_timer_t tick_timer; /* housekeeping: rate limiter expiry */

	int shutting_down;
	int64_t shutdown_deadline;
};

#endif
