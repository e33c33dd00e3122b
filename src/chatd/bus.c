/*
 * The cluster's bus (see bus.h): nats.c on chatd's libuv loop.
 */
#include "autoconf.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <nats/adapters/libuv.h>
#include <nats/nats.h>

#include "bus.h"
#include "log.h"
#include "xmalloc.h"

/* Messages handled per check before the loop looks at its sockets again. */
#define BUS_DRAIN_MAX 2048
/* First-connection rounds over the servers, and the timeout of nats.c's
 * connect once a server accepted (it blocks the loop: short). */
#define BUS_CONNECT_RETRY_MS 1000
#define BUS_CONNECT_TIMEOUT_MS 500
/*
 * What nats.c may hold for chatd before it drops (counted, and healed from
 * the database like any lost message): far above a second of traffic.
 */
#define BUS_PENDING_MSGS 1000000
#define BUS_PENDING_BYTES (512 * 1024 * 1024)
/* A server that stops answering pings is left within about three seconds. */
#define BUS_PING_INTERVAL_MS 1000
#define BUS_PINGS_OUT 3

struct bus {
	uv_loop_t *loop;
	char *urls, *prefix, *name;
	bus_msg_fn on_msg;
	bus_state_fn on_state;
	void *arg;

	natsOptions *opts;
	natsConnection *nc;
	natsSubscription *sub;
	natsStatistics *stats;

	uv_timer_t connect_timer; /* until the first connection */
	/* The first connection's probe: a TCP connect to each server in turn
	 * on the loop, so that nats.c's blocking connect only runs against a
	 * server that answered (a host that drops packets would stall the
	 * loop for the whole connect timeout, every retry). */
	char **hosts, **ports;
	size_t nurls, probe_i;
	uv_getaddrinfo_t gai;
	uv_connect_t creq;
	uv_tcp_t probe;
	int probing; /* a resolve or connect under way */
	int probe_open; /* probe is an initialised handle not yet closed */
	int probe_status;
	uv_check_t drain_check; /* after each round of socket events */
	uv_idle_t drain_idle; /* while a drain stopped at BUS_DRAIN_MAX */
	uv_async_t wake; /* nats.c's threads: the connection changed */
	int handles;

	int up; /* as last told to on_state */
	atomic_int changed; /* set by nats.c's threads, read by the loop */
	uint64_t dropped_out;
	int closing;
	char subject[256]; /* publish scratch */
};

static void
bus_changed_cb(natsConnection *nc, void *closure)
{
	struct bus *b = closure;

	(void)nc;
	/* A nats.c thread: only the flag and the wake-up. */
	atomic_store(&b->changed, 1);
	(void)uv_async_send(&b->wake);
}

static void
bus_error_cb(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	(void)nc;
	(void)sub;
	(void)closure;
	/* A nats.c thread: logging is thread-safe. A slow consumer lands here. */
	log_warn("bus: %s", natsStatus_GetText(err));
}

/* The connection's state as nats.c has it now, told to on_state when it changed. */
static void
bus_check_state(struct bus *b)
{
	int up = b->nc != NULL && natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED;

	if (up == b->up || b->closing)
		return;
	b->up = up;
	if (up)
		log_info("bus: connected");
	else
		log_warn("bus: connection lost; nats.c reconnects on its own");
	b->on_state(b->arg, up);
}

static void
bus_wake_cb(uv_async_t *h)
{
	struct bus *b = h->data;

	if (atomic_exchange(&b->changed, 0))
		bus_check_state(b);
}

/* Hands what waits in the subscription to on_msg; 1 if it stopped at the bound. */
static int
bus_drain(struct bus *b)
{
	size_t plen = strlen(b->prefix) + 1;
	natsMsg *m = NULL;
	unsigned n;

	if (b->sub == NULL)
		return 0;
	for (n = 0; n < BUS_DRAIN_MAX; n++) {
		const char *subject;

		if (natsSubscription_NextMsg(&m, b->sub, 0) != NATS_OK)
			return 0;
		subject = natsMsg_GetSubject(m);
		if (strlen(subject) > plen)
			b->on_msg(b->arg, subject + plen, natsMsg_GetData(m),
			    (size_t)natsMsg_GetDataLength(m));
		natsMsg_Destroy(m);
		if (b->closing)
			return 0;
	}
	return 1;
}

static void
bus_drain_idle(uv_idle_t *h)
{
	struct bus *b = h->data;

	if (!bus_drain(b))
		(void)uv_idle_stop(&b->drain_idle);
}

static void
bus_drain_check(uv_check_t *h)
{
	struct bus *b = h->data;

	if (bus_drain(b) && !uv_is_active((uv_handle_t *)&b->drain_idle))
		(void)uv_idle_start(&b->drain_idle, bus_drain_idle);
}

static int
bus_subscribe(struct bus *b)
{
	char *subject = xasprintf("%s.>", b->prefix);
	natsStatus s;

	s = natsConnection_SubscribeSync(&b->sub, b->nc, subject);
	free(subject);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(b->sub, BUS_PENDING_MSGS, BUS_PENDING_BYTES);
	if (s != NATS_OK) {
		log_error("bus: subscribing: %s", natsStatus_GetText(s));
		return -1;
	}
	return 0;
}

static void bus_connect_timer(uv_timer_t *t);
static void bus_probe_next(struct bus *b);

static void
bus_retry_later(struct bus *b)
{
	b->probe_i = 0;
	(void)uv_timer_start(&b->connect_timer, bus_connect_timer, BUS_CONNECT_RETRY_MS, 0);
}

/* A server accepted a TCP connection: nats.c's connect (and handshake) now. */
static void
bus_connect_now(struct bus *b)
{
	natsStatus s;

	s = natsConnection_Connect(&b->nc, b->opts);
	if (s != NATS_OK) {
		b->nc = NULL;
		log_debug("bus: not reachable yet: %s", natsStatus_GetText(s));
		bus_retry_later(b);
		return;
	}
	if (bus_subscribe(b) != 0) {
		/* Without its subscription the node would be deaf: start over. */
		natsConnection_Close(b->nc);
		natsConnection_Destroy(b->nc);
		b->nc = NULL;
		bus_retry_later(b);
		return;
	}
	bus_check_state(b);
}

static void
bus_probe_closed(uv_handle_t *h)
{
	struct bus *b = h->data;

	b->probe_open = 0;
	b->probing = 0;
	if (b->closing)
		return;
	if (b->probe_status == 0)
		bus_connect_now(b);
	else {
		b->probe_i++;
		bus_probe_next(b);
	}
}

static void
bus_probe_connected(uv_connect_t *req, int status)
{
	struct bus *b = req->data;

	b->probe_status = status;
	uv_close((uv_handle_t *)&b->probe, bus_probe_closed);
}

static void
bus_probe_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct bus *b = req->data;

	if (b->closing || status != 0 || res == NULL) {
		if (res != NULL)
			uv_freeaddrinfo(res);
		b->probing = 0;
		if (!b->closing) {
			b->probe_i++;
			bus_probe_next(b);
		}
		return;
	}
	/* Cannot fail on an initialised loop. */
	(void)uv_tcp_init(b->loop, &b->probe);
	b->probe.data = b->creq.data = b;
	b->probe_open = 1;
	if (uv_tcp_connect(&b->creq, &b->probe, res->ai_addr, bus_probe_connected) != 0) {
		b->probe_status = -1;
		uv_close((uv_handle_t *)&b->probe, bus_probe_closed);
	}
	uv_freeaddrinfo(res);
}

/* Probes server probe_i, or waits and starts over after the last. */
static void
bus_probe_next(struct bus *b)
{
	struct addrinfo hints;

	if (b->probe_i >= b->nurls) {
		bus_retry_later(b);
		return;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	b->gai.data = b;
	b->probing = 1;
	if (uv_getaddrinfo(b->loop, &b->gai, bus_probe_resolved, b->hosts[b->probe_i],
		b->ports[b->probe_i], &hints) != 0) {
		b->probing = 0;
		b->probe_i++;
		bus_probe_next(b);
	}
}

static void
bus_connect_timer(uv_timer_t *t)
{
	struct bus *b = t->data;

	if (!b->probing && b->nc == NULL)
		bus_probe_next(b);
}

/*
 * Host and port of each URL of CLUSTER_NATS_URL (checked at load:
 * nats:// or tls://, optional user[:password]@, host or [v6], optional
 * :port, 4222 by default).
 */
static void
bus_split_urls(struct bus *b)
{
	const char *p = b->urls;

	while (*p != '\0') {
		const char *end = strchr(p, ','), *host, *at, *colon = NULL;
		size_t len;

		if (end == NULL)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		len = (size_t)(end - p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		host = strstr(p, "://");
		host = host != NULL && host < p + len ? host + 3 : p;
		for (at = p + len; at > host && at[-1] != '@'; at--)
			;
		host = at > host ? at : host;
		b->hosts = xreallocarray(b->hosts, b->nurls + 1, sizeof *b->hosts);
		b->ports = xreallocarray(b->ports, b->nurls + 1, sizeof *b->ports);
		if (*host == '[') {
			const char *close = memchr(host, ']', (size_t)(p + len - host));

			b->hosts[b->nurls] = xstrndup(host + 1, (size_t)(close - host - 1));
			colon = close + 1 < p + len ? close + 1 : NULL;
		} else {
			colon = memchr(host, ':', (size_t)(p + len - host));
			b->hosts[b->nurls] =
			    xstrndup(host, (size_t)((colon != NULL ? colon : p + len) - host));
		}
		b->ports[b->nurls] = colon != NULL
		    ? xstrndup(colon + 1, (size_t)(p + len - colon - 1))
		    : xstrdup("4222");
		b->nurls++;
		p = *end == ',' ? end + 1 : end;
	}
}

static int
bus_options(struct bus *b, char **cause)
{
	natsStatus s;

	s = natsOptions_Create(&b->opts);
	if (s == NATS_OK)
		s = natsOptions_SetURL(b->opts, b->urls);
	if (s == NATS_OK)
		s = natsOptions_SetName(b->opts, b->name);
	if (s == NATS_OK)
		s = natsOptions_SetEventLoop(b->opts, b->loop, natsLibuv_Attach, natsLibuv_Read,
		    natsLibuv_Write, natsLibuv_Detach);
	/* A node hears the others; its own publishes it has already applied. */
	if (s == NATS_OK)
		s = natsOptions_SetNoEcho(b->opts, true);
	/* Written from the loop as it is published, not by nats.c's flusher
	 * thread a millisecond later: the cross-node hop was 0.4 ms (p50) and
	 * 1 ms (p99) slower with the flusher, and each message woke a thread. */
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(b->opts, true);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(b->opts, BUS_CONNECT_TIMEOUT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(b->opts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(b->opts, 500);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(b->opts, BUS_PING_INTERVAL_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(b->opts, BUS_PINGS_OUT);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(b->opts, bus_changed_cb, b);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(b->opts, bus_changed_cb, b);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(b->opts, bus_changed_cb, b);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(b->opts, bus_error_cb, b);
	if (s == NATS_OK)
		s = natsStatistics_Create(&b->stats);
	if (s != NATS_OK) {
		*cause = xasprintf("bus: %s", natsStatus_GetText(s));
		return -1;
	}
	return 0;
}

int
bus_open(uv_loop_t *loop, const char *urls, const char *prefix, const char *name, bus_msg_fn on_msg,
    bus_state_fn on_state, void *arg, struct bus **out, char **cause)
{
	struct bus *b = xcalloc(1, sizeof *b);
	natsStatus s;

	b->loop = loop;
	b->urls = xstrdup(urls);
	b->prefix = xstrdup(prefix);
	b->name = xstrdup(name);
	b->on_msg = on_msg;
	b->on_state = on_state;
	b->arg = arg;
	atomic_init(&b->changed, 0);
	if ((s = nats_Open(-1)) != NATS_OK) {
		*cause = xasprintf("bus: nats_Open: %s", natsStatus_GetText(s));
		bus_free(b);
		return -1;
	}
	natsLibuv_Init();
	/* The adapter attaches directly (not through its scheduler) on this thread. */
	natsLibuv_SetThreadLocalLoop(loop);
	if (bus_options(b, cause) != 0) {
		bus_free(b);
		return -1;
	}
	/* Cannot fail on an initialised loop. */
	(void)uv_timer_init(loop, &b->connect_timer);
	(void)uv_check_init(loop, &b->drain_check);
	(void)uv_idle_init(loop, &b->drain_idle);
	if (uv_async_init(loop, &b->wake, bus_wake_cb) != 0) {
		*cause = xstrdup("bus: uv_async_init failed");
		bus_free(b);
		return -1;
	}
	b->connect_timer.data = b->drain_check.data = b->drain_idle.data = b->wake.data = b;
	b->handles = 1;
	(void)uv_check_start(&b->drain_check, bus_drain_check);
	/* The first try at once, from the loop (the adapter needs its thread). */
	bus_split_urls(b);
	(void)uv_timer_start(&b->connect_timer, bus_connect_timer, 0, 0);
	*out = b;
	return 0;
}

int
bus_publish(struct bus *b, const char *subject, const void *data, size_t len)
{
	int n;

	if (b->nc == NULL || b->closing || len > INT32_MAX) {
		b->dropped_out++;
		return -1;
	}
	n = snprintf(b->subject, sizeof b->subject, "%s.%s", b->prefix, subject);
	if (n < 0 || (size_t)n >= sizeof b->subject) {
		b->dropped_out++;
		return -1;
	}
	/* While reconnecting nats.c buffers it (up to its reconnect buffer). */
	if (natsConnection_Publish(b->nc, b->subject, data, (int)len) != NATS_OK) {
		b->dropped_out++;
		return -1;
	}
	return 0;
}

int
bus_up(const struct bus *b)
{
	return b->up;
}

/* The URL without user and password. */
static void
bus_url(struct bus *b, char *out, size_t size)
{
	char url[256];
	const char *at, *scheme;

	out[0] = '\0';
	if (b->nc == NULL || natsConnection_GetConnectedUrl(b->nc, url, sizeof url) != NATS_OK ||
	    url[0] == '\0')
		return;
	scheme = strstr(url, "://");
	at = strrchr(url, '@');
	/* A URL too long for out is cut: it only names the server in health. */
	if (scheme != NULL && at != NULL && at > scheme) {
		size_t head = (size_t)(scheme + 3 - url);

		memmove(url + head, at + 1, strlen(at + 1) + 1);
	}
	if (strlen(url) >= size)
		url[size - 1] = '\0';
	memcpy(out, url, strlen(url) + 1);
}

void
bus_stats(struct bus *b, struct bus_stats *out)
{
	int64_t dropped = 0;

	memset(out, 0, sizeof *out);
	out->up = b->up;
	out->dropped_out = b->dropped_out;
	if (b->nc == NULL)
		return;
	if (natsConnection_GetStats(b->nc, b->stats) == NATS_OK)
		(void)natsStatistics_GetCounts(b->stats, &out->in_msgs, &out->in_bytes,
		    &out->out_msgs, &out->out_bytes, &out->reconnects);
	if (b->sub != NULL && natsSubscription_GetDropped(b->sub, &dropped) == NATS_OK &&
	    dropped > 0)
		out->dropped_in = (uint64_t)dropped;
	if (b->up)
		bus_url(b, out->url, sizeof out->url);
}

void
bus_close(struct bus *b)
{
	if (b == NULL || b->closing)
		return;
	b->closing = 1;
	if (b->sub != NULL) {
		natsSubscription_Destroy(b->sub);
		b->sub = NULL;
	}
	if (b->nc != NULL)
		/* On the loop's thread the adapter closes its handles directly. */
		natsConnection_Close(b->nc);
	if (b->probe_open && !uv_is_closing((uv_handle_t *)&b->probe))
		uv_close((uv_handle_t *)&b->probe, bus_probe_closed);
	if (b->handles) {
		uv_close((uv_handle_t *)&b->connect_timer, NULL);
		uv_close((uv_handle_t *)&b->drain_check, NULL);
		uv_close((uv_handle_t *)&b->drain_idle, NULL);
		uv_close((uv_handle_t *)&b->wake, NULL);
	}
}

void
bus_free(struct bus *b)
{
	if (b == NULL)
		return;
	if (b->nc != NULL)
		natsConnection_Destroy(b->nc);
	natsStatistics_Destroy(b->stats);
	natsOptions_Destroy(b->opts);
	for (size_t i = 0; i < b->nurls; i++) {
		free(b->hosts[i]);
		free(b->ports[i]);
	}
	free(b->hosts);
	free(b->ports);
	free(b->urls);
	free(b->prefix);
	free(b->name);
	free(b);
	/* Waits for nats.c's own threads (reconnect, timers) to end. */
	nats_CloseAndWait(2000);
}
