/*
 * chatd's event loop (see server.h): one libuv loop that libwebsockets
 * runs on as a foreign loop, with the "chatd" WebSocket vhost (client.c)
 * and the "chatd-control" raw vhost on the Unix control socket
 * (control.c); chatd's own handles on it (the flush hooks into conn.c,
 * the fan-out idle handle that room.c drives, housekeeping and shutdown
 * timers); start-up, graceful shutdown and exit. Service thread only; the
 * signal handler only sets a flag and calls lws_cancel_service(). Never
 * writes SQL (the writer does, room.c reads).
 */
#include "autoconf.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "clock.h"
#include "cluster.h"
#include "conn.h"
#include "control.h"
#include "db.h"
#include "handshake.h"
#include "linger.h"
#include "rxguard.h"
#include "log.h"
#include "metrics_text.h"
#include "probe.h"
#include "room.h"
#include "sdnotify.h"
#include "sequence.h"
#include "server.h"
#include "writer.h"
#include "xmalloc.h"

/* Most sockets rxguard.c watches (24 bytes each). */
#define SERVER_RXGUARD_FDS_MAX (256 * 1024)

/* Housekeeping period: rate limiter expiry. */
#define SERVER_TICK_MS 10000

static volatile sig_atomic_t server_signalled;
static struct lws_context *server_ctx; /* for server_signal() */

void
server_signal(void)
{
	server_signalled = 1;
	if (server_ctx != NULL)
		lws_cancel_service(server_ctx);
}

static void
server_lws_log(int level, const char *line)
{
	size_t len = strlen(line);

	/* lws ends its lines with a newline; ours adds one. */
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (level & LLL_ERR)
		log_error("lws: %.*s", (int)len, line);
	else if (level & LLL_WARN)
		log_warn("lws: %.*s", (int)len, line);
	else
		log_debug("lws: %.*s", (int)len, line);
}

/* The loop's two hooks for conn_flush() (see there for when and why). */
static void
server_flush_check(uv_check_t *h)
{
	conn_flush(h->data);
}

static void
server_flush_prepare(uv_prepare_t *h)
{
	conn_flush(h->data);
}

static void
server_tick(uv_timer_t *t)
{
	struct chatd *cd = t->data;
	struct room *r;
	int64_t now = clock_mono_ms();

	TAILQ_FOREACH(r, &cd->room_list, entry)
	ratelimit_expire(&r->rl, now);
}

/* The loop turns: tell systemd's watchdog that chatd is alive. */
static void
server_watchdog(uv_timer_t *t)
{
	(void)t;
	sdnotify_notify("WATCHDOG=1");
}

static void
server_shutdown_wake(uv_timer_t *t)
{
	(void)t; /* only wakes the loop so that it sees the deadline */
}

static void
server_shutdown_begin(struct chatd *cd)
{
	struct room *r;
	struct conn *c, *next;

	cd->shutting_down = 1;
	cd->shutdown_deadline = clock_mono_ms() + SERVER_SHUTDOWN_GRACE_MS;
	sdnotify_notify("STOPPING=1");
	log_info("shutting down: closing %lu connections", cd->nconns);
	TAILQ_FOREACH(r, &cd->room_list, entry)
	{
		TAILQ_FOREACH_SAFE(c, &r->members, entry, next)
		conn_close(c, CONN_CLOSE_SHUTDOWN, "server shutdown");
	}
	(void)uv_timer_start(
	    &cd->shutdown_timer, server_shutdown_wake, SERVER_SHUTDOWN_GRACE_MS + 10, 0);
}

/* Sockets can be numbered up to the open-files limit (capped: memory). */
static void
server_rxguard_init(void)
{
	struct rlimit rl;
	size_t n = SERVER_RXGUARD_FDS_MAX;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)n)
		n = (size_t)rl.rlim_cur;
	rxguard_init(n);
}

static const struct lws_protocols server_ws_protocols[] = {
	{
	    .name = HANDSHAKE_PROTOCOL,
	    .callback = client_callback,
	    .per_session_data_size = sizeof(struct conn),
	    /*
	     * lws gives every connection an rx buffer of this size: 512 keeps
	     * an idle connection under 3 KiB (4096 cost ~5.9 KiB). Messages
	     * arrive in pieces and client.c reassembles them. With a buffer
	     * this small lws delays a 1009 close by its 5-second close-ack
	     * timeout when the close waits for the whole message; here it
	     * stays prompt (single and fragmented, tested) because client.c
	     * refuses on the announced frame length, without reading the
	     * message.
	     */
	    .rx_buffer_size = 512,
	    /* A raw send is capped at this: fit a whole batch. */
	    .tx_packet_size = CONN_SEND_BATCH,
	},
	{ .name = NULL },
};

static const struct lws_protocols server_ctl_protocols[] = {
	{
	    .name = "chatd-control",
	    .callback = control_callback,
	    .per_session_data_size = sizeof(struct ctlconn),
	    .rx_buffer_size = 65536,
	    .tx_packet_size = 65536,
	},
	{ .name = NULL },
};

/*
 * Refuses to take over the socket of a running chatd; removes a stale one.
 * key names the setting in messages.
 */
static int
server_socket_check(const char *key, const char *path, char **cause)
{
	struct sockaddr_un sun;
	int fd;

	if (strlen(path) >= sizeof sun.sun_path) {
		*cause =
		    xasprintf("%s %s: longer than %zu bytes", key, path, sizeof sun.sun_path - 1);
		return -1;
	}
	if (access(path, F_OK) != 0)
		return 0;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0) {
		*cause = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0) {
		close(fd);
		*cause = xasprintf("%s %s: another chatd is listening there", key, path);
		return -1;
	}
	close(fd);
	if (unlink(path) != 0) {
		*cause = xasprintf("unlink %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * CHATD_LISTEN's Unix socket: the setting's group (CHATD_SOCKET_GROUP, a
 * name or a number) into *gid, or (gid_t)-1 to keep the group the socket
 * gets on creation.
 */
static int
server_socket_group(const char *group, gid_t *gid, char **cause)
{
	struct group *gr;
	char *end;
	unsigned long v;

	*gid = (gid_t)-1;
	if (group == NULL)
		return 0;
	errno = 0;
	if ((gr = getgrnam(group)) != NULL) {
		*gid = gr->gr_gid;
		return 0;
	}
	v = strtoul(group, &end, 10);
	if (group[0] >= '0' && group[0] <= '9' && *end == '\0' && errno == 0 &&
	    v < (unsigned long)(gid_t)-1) {
		*gid = (gid_t)v;
		return 0;
	}
	*cause = xasprintf("CHATD_SOCKET_GROUP=%s: no such group", group);
	return -1;
}

/*
 * Only the web server may connect: mode 0660 and its group. lws ignores
 * unix_socket_perms when running as root, so this is done here, right
 * after the socket appears.
 */
static int
server_socket_perms(const char *path, gid_t gid, char **cause)
{
	if (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0) {
		*cause = xasprintf("chown %s to group %lu (CHATD_SOCKET_GROUP): %s", path,
		    (unsigned long)gid, strerror(errno));
		return -1;
	}
	if (chmod(path, 0660) != 0) {
		*cause = xasprintf("chmod %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Puts prefix (the setting's name) before a cause that names only a path. */
static void
server_prefix_cause(char **cause, const char *prefix)
{
	char *with = xasprintf("%s%s", prefix, *cause);

	free(*cause);
	*cause = with;
}

/* HOST:PORT into host and *port; unix:PATH is handled before this. */
static int
server_split_listen(const char *spec, char *host, size_t hostlen, int *port, char **cause)
{
	const char *colon = strrchr(spec, ':');
	const char *h = spec;
	size_t hl;
	char *end;
	long p;

	if (colon == NULL)
		goto fail;
	hl = (size_t)(colon - spec);
	if (hl >= 2 && spec[0] == '[' && spec[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen)
		goto fail;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p < 1 || p > 65535)
		goto fail;
	*port = (int)p;
	return 0;

fail:
	*cause = xasprintf("CHATD_LISTEN %s: expected HOST:PORT", spec);
	return -1;
}

/*
 * Exit: closes chatd's own handles, starts lws's soft close of every
 * connection, and runs the loop until everything has closed. With a
 * foreign loop lws finishes destroying its context from the close
 * callbacks (and clears cd->ctx); a second call finishes what is left.
 */
static void
server_loop_finish(struct chatd *cd)
{
	uv_handle_t *mine[] = { (uv_handle_t *)&cd->flush_prepare, (uv_handle_t *)&cd->flush_check,
		(uv_handle_t *)&cd->fanout_idle, (uv_handle_t *)&cd->shutdown_timer,
		(uv_handle_t *)&cd->tick_timer, (uv_handle_t *)&cd->watchdog_timer };
	size_t i;

	cd->shutting_down = 1; /* no new lingering closes either */
	for (i = 0; cd->handles_ready && i < sizeof mine / sizeof mine[0]; i++)
		uv_close(mine[i], NULL);
	cluster_stop(cd);
	sequence_clear_all(cd);
	linger_close_all(cd);
	room_close_timers(cd);
	if (cd->ctx != NULL)
		lws_context_destroy(cd->ctx);
	(void)uv_run(&cd->loop, UV_RUN_DEFAULT);
	if (cd->ctx != NULL)
		lws_context_destroy(cd->ctx);
	/* CLOSED callbacks ran in there: nothing is marked any more. */
	TAILQ_INIT(&cd->flush);
	TAILQ_INIT(&cd->kill);
}

int
server_run(const struct config *cfg)
{
	struct lws_context_creation_info info;
	void *foreign[1], *plugin;
	lws_retry_bo_t retry;
	struct chatd *cd;
	char host[256], *cause = NULL, *why = NULL;
	const char *ws_path = NULL; /* CHATD_LISTEN's Unix socket, if it is one */
	int64_t watchdog_ms;
	int port = 0, status = 1;
	gid_t ws_gid = (gid_t)-1;

	cd = xcalloc(1, sizeof *cd);
	cd->cfg = cfg;
	cd->started_ms = clock_wall_ms();
	metrics_hist_init(
	    &cd->counters.frames_per_write, metrics_size_bounds, metrics_size_nbounds);
	strmap_init(&cd->rooms);
	peers_init(&cd->peers);
	strmap_init(&cd->addresses);
	TAILQ_INIT(&cd->room_list);
	TAILQ_INIT(&cd->busy);
	TAILQ_INIT(&cd->flush);
	TAILQ_INIT(&cd->kill);
	TAILQ_INIT(&cd->ctlconns);
	LIST_INIT(&cd->lingers);
	server_rxguard_init();

	/* Both listeners are tried first, so that a port in use or a socket
	 * folder we cannot write is said plainly, not in lws's words. */
	if (strncmp(cfg->chatd_listen, CONFIG_UNIX_PREFIX, strlen(CONFIG_UNIX_PREFIX)) == 0) {
		ws_path = cfg->chatd_listen + strlen(CONFIG_UNIX_PREFIX);
		cd->listen_unix = 1;
		if (server_socket_check("CHATD_LISTEN", ws_path, &cause) != 0 ||
		    probe_unix("CHATD_LISTEN", ws_path, &cause) != 0 ||
		    server_socket_group(cfg->chatd_socket_group, &ws_gid, &cause) != 0)
			goto fail;
	} else if (server_split_listen(cfg->chatd_listen, host, sizeof host, &port, &cause) != 0 ||
	    probe_tcp("CHATD_LISTEN", cfg->chatd_listen, host, port, &cause) != 0)
		goto fail;
	if (server_socket_check("CONTROL_SOCKET", cfg->control_socket, &cause) != 0 ||
	    probe_unix("CONTROL_SOCKET", cfg->control_socket, &cause) != 0)
		goto fail;
	if (netaddr_list_parse(cfg->trusted_proxies != NULL ? cfg->trusted_proxies : "",
		&cd->trusted, &why) != 0) {
		cause = xasprintf("TRUSTED_PROXIES=%s: %s", cfg->trusted_proxies, why);
		free(why);
		goto fail;
	}
	if (db_open(cfg->database_path, &cd->db, &cause) != DB_OK) {
		server_prefix_cause(&cause, "DATABASE_URL: ");
		goto fail;
	}
	/* No connection survives a restart: close what the last run left open. */
	if (cluster_claim(cd, &cause) != 0)
		goto fail;
	if (uv_loop_init(&cd->loop) != 0) {
		cause = xstrdup("uv_loop_init failed");
		goto fail;
	}
	cd->loop_ready = 1;
	if (uv_prepare_init(&cd->loop, &cd->flush_prepare) != 0 ||
	    uv_check_init(&cd->loop, &cd->flush_check) != 0 ||
	    uv_idle_init(&cd->loop, &cd->fanout_idle) != 0 ||
	    uv_timer_init(&cd->loop, &cd->shutdown_timer) != 0 ||
	    uv_timer_init(&cd->loop, &cd->tick_timer) != 0 ||
	    uv_timer_init(&cd->loop, &cd->watchdog_timer) != 0) {
		cause = xstrdup("libuv handle init failed");
		goto fail;
	}
	cd->handles_ready = 1;
	cd->flush_prepare.data = cd->flush_check.data = cd->fanout_idle.data = cd;
	cd->tick_timer.data = cd;
	if (room_load_all(cd, &cause) != 0)
		goto fail;

	lws_set_log_level(LLL_ERR | LLL_WARN, server_lws_log);
	memset(&info, 0, sizeof info);
	info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6 |
	    LWS_SERVER_OPTION_LIBUV;
	info.user = cd;
	/* Frames queued by timers (which libuv runs before polling and, once
	 * more, after) leave before the loop blocks; frames queued by socket
	 * events leave right after them. */
	(void)uv_prepare_start(&cd->flush_prepare, server_flush_prepare);
	(void)uv_check_start(&cd->flush_check, server_flush_check);
	foreign[0] = &cd->loop;
	info.foreign_loops = foreign;
	info.pcontext = &cd->ctx;
	info.timeout_secs = (unsigned)cfg->handshake_timeout_seconds;
	info.fd_limit_per_thread = 0;
	if ((cd->ctx = lws_create_context(&info)) == NULL) {
		cause = xstrdup("lws_create_context failed (with libuv: is the Debian package "
				"libwebsockets-evlib-uv installed?)");
		goto fail;
	}
	/* Without its libuv plugin lws quietly serves on a poll() loop of its
	 * own, which chatd never runs: every socket would hang. Refuse. */
	if ((plugin = dlopen(LWS_EVLIB_UV, RTLD_NOW | RTLD_NOLOAD)) == NULL) {
		cause = xasprintf("libwebsockets did not load its libuv plugin %s: install the "
				  "Debian package libwebsockets-evlib-uv",
		    LWS_EVLIB_UV);
		goto fail;
	}
	(void)dlclose(plugin); /* the reference RTLD_NOLOAD took; lws keeps its own */
	server_ctx = cd->ctx;

	memset(&retry, 0, sizeof retry);
	retry.secs_since_valid_ping = (uint16_t)cfg->ws_ping_interval_seconds;
	retry.secs_since_valid_hangup = (uint16_t)cfg->ws_idle_timeout_seconds;

	memset(&info, 0, sizeof info);
	info.vhost_name = "chatd";
	info.iface = host;
	info.port = port;
	info.protocols = server_ws_protocols;
	info.retry_and_idle_policy = &retry;
	info.timeout_secs_ah_idle = (int)cfg->handshake_timeout_seconds;
	info.keepalive_timeout = (int)cfg->handshake_timeout_seconds;
	info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
	if (ws_path != NULL) {
		info.iface = ws_path;
		info.port = 0;
		info.options = LWS_SERVER_OPTION_UNIX_SOCK;
	} else if (strchr(host, ':') != NULL)
		info.options = 0;
	if ((cd->ws_vhost = lws_create_vhost(cd->ctx, &info)) == NULL) {
		cause = xasprintf("cannot listen on %s", cfg->chatd_listen);
		goto fail;
	}
	if (ws_path != NULL && server_socket_perms(ws_path, ws_gid, &cause) != 0)
		goto fail;

	memset(&info, 0, sizeof info);
	info.vhost_name = "chatd-control";
	info.iface = cfg->control_socket;
	info.port = 0;
	info.protocols = server_ctl_protocols;
	info.options =
	    LWS_SERVER_OPTION_UNIX_SOCK | LWS_SERVER_OPTION_ADOPT_APPLY_LISTEN_ACCEPT_CONFIG;
	info.listen_accept_role = "raw-skt";
	info.listen_accept_protocol = "chatd-control";
	if ((cd->ctl_vhost = lws_create_vhost(cd->ctx, &info)) == NULL) {
		cause = xasprintf("cannot listen on control socket %s", cfg->control_socket);
		goto fail;
	}
	/* lws silently ignores unix_socket_perms when running as root: set the mode here. */
	if (chmod(cfg->control_socket, 0660) != 0) {
		cause = xasprintf("chmod %s: %s", cfg->control_socket, strerror(errno));
		goto fail;
	}

	/* Sessions carry the node that holds them (none: a single node). */
	if (writer_create(cfg->database_path, cfg->cluster_nats_url != NULL ? cfg->node_id : "",
		cd->ctx, &cd->writer, &cause) != 0)
		goto fail;
	if (cluster_start(cd, metrics_text, &cause) != 0)
		goto fail;
	(void)uv_timer_start(&cd->tick_timer, server_tick, SERVER_TICK_MS, SERVER_TICK_MS);

	log_info(
	    "listening on %s (WebSocket) and %s (control)", cfg->chatd_listen, cfg->control_socket);
	/* Both listeners are up: a Type=notify unit counts as started now. */
	sdnotify_notify("READY=1");
	if ((watchdog_ms = sdnotify_watchdog_interval_ms()) > 0)
		(void)uv_timer_start(&cd->watchdog_timer, server_watchdog, (uint64_t)watchdog_ms,
		    (uint64_t)watchdog_ms);
	while (!cd->shutting_down || (cd->nconns > 0 && clock_mono_ms() < cd->shutdown_deadline)) {
		(void)uv_run(&cd->loop, UV_RUN_ONCE);
		if (server_signalled && !cd->shutting_down)
			server_shutdown_begin(cd);
	}
	status = 0;
	goto out;

fail:
	log_error("%s", cause);
	free(cause);
out:
	/* Destroying the context closes what is left (sessions closed through
	 * the writer), so the writer goes after it. */
	if (cd->ctx != NULL)
		writer_detach(cd->writer);
	server_ctx = NULL;
	if (cd->loop_ready)
		server_loop_finish(cd);
	if (cd->ctl_vhost != NULL && unlink(cfg->control_socket) != 0 && errno != ENOENT)
		log_warn("unlink %s: %s", cfg->control_socket, strerror(errno));
	if (ws_path != NULL && cd->ws_vhost != NULL && unlink(ws_path) != 0 && errno != ENOENT)
		log_warn("unlink %s: %s", ws_path, strerror(errno));
	if (cd->writer != NULL) {
		log_info("committing %u pending writes", writer_backlog(cd->writer));
		writer_destroy(cd->writer);
	}
	if (cd->loop_ready && uv_loop_close(&cd->loop) != 0)
		log_warn("the event loop still had handles at exit");
	cluster_free(cd);
	room_free_all(cd);
	strmap_clear(&cd->addresses, free);
	netaddr_list_clear(&cd->trusted);
	db_close(cd->db);
	rxguard_free();
	free(cd->sendbuf);
	free(cd);
	if (status == 0)
		log_info("stopped");
	return status;
}
