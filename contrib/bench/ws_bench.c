/*
 * ws_bench: a WebSocket load generator for chatd (and, for comparison,
 * nginx with Nchan). One thread, one epoll loop, raw non-blocking sockets,
 * its own minimal client handshake and frame parser; no framework and no
 * libwebsockets. Client frames are masked as RFC 6455 requires. The
 * server's Sec-WebSocket-Accept is not verified (the status line 101 is):
 * this is a load tool against servers we start ourselves.
 *
 * What it measures:
 *
 *  idle mode (-m idle): opens -n connections per room (-k ROOM,ROOM...),
 *  -c handshakes in flight at most, from source addresses spread over
 *  127.0.0.B..127.0.0.B+A-1 (-b B:A, bound before connect with
 *  IP_BIND_ADDRESS_NO_PORT so ports are picked per destination). A
 *  connection counts as established when the 101 arrives, or with -w when
 *  its first text frame (chatd's UserJoined) arrives. Prints
 *  "established N" once all are, then holds them until SIGTERM/SIGINT or
 *  -H seconds. The driver reads the server's VmRSS meanwhile.
 *
 *  fanout mode (-m fanout): the same subscribers plus one publisher
 *  connection per room (-P path: a room admin for chatd, so no rate
 *  limit; Nchan's websocket publisher location). After a settle pause it
 *  publishes for -d seconds at a fixed offered load of -l deliveries per
 *  second (messages per second = load / subscribers per room, spread
 *  round-robin over the rooms, scheduled on a 1 ms clock). Each message
 *  carries its CLOCK_MONOTONIC send time ("@@<ns>") in its content; a
 *  subscriber takes the latency at receipt. Then it waits up to -D seconds
 *  for the rest and prints one RESULT line: published, expected
 *  (= messages x subscribers), received, loss, p50/p99/max latency, the
 *  server's CPU time over the run from /proc/PID/stat (-p PID, all its
 *  threads) and CPU microseconds per delivery, and this process's own CPU.
 *  With -e EPS the first publisher also sends CustomEvents at EPS per
 *  second (chatd's high lane); their latency is reported apart (evt_*).
 *
 * Subscriber paths (-S) and publisher paths (-P) are templates: %r is the
 * room id, %u the connection's number. -f chatd wraps a published text in
 * chatd's {"type":"Message",...} frame; -f raw sends it as is (Nchan).
 *
 * Several servers (a chatd cluster): the target is a comma-separated list
 * HOST:PORT,HOST:PORT...; member i of every room connects to target
 * i mod N (each room split evenly), the publishers to the first. The
 * RESULT line then adds the chat latencies per target (*_by_target), so a
 * subscriber on another node than the publisher shows the cross-node hop.
 * -p takes a comma-separated pid list (the nodes and the bus): the CPU
 * figures are their sum, and each pid's part is added (*_by_pid). -x HOOK
 * runs "HOOK start" just before the measured window and "HOOK end" just
 * after it (the driver reads the nodes' bus counters there); with -X also
 * "HOOK sent" when publishing stops, before the drain (the driver reads
 * how many messages the database holds by then).
 *
 * Usage: see usage() or contrib/bench/README.md.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define HIST_STEP_NS 10000ULL /* 10 us buckets */
#define HIST_BUCKETS 1000000 /* up to 10 s */
#define MAX_ROOMS 64
#define MAX_EVENTS 1024
#define MAX_TARGETS 16
#define MAX_PIDS 16

enum cstate { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED };

struct conn {
	int fd;
	enum cstate state;
	int pub; /* a publisher connection */
	int room;
	int num;
	int target; /* index into opt.targets */
	int joined; /* established (101, or first frame with -w) */
	int want_out; /* EPOLLOUT registered */
	char *in;
	size_t inlen, incap;
	char *out;
	size_t outlen, outoff, outcap;
};

struct hist {
	uint32_t *b;
	uint64_t n;
	uint64_t max_ns;
};

static struct {
	const char *mode;
	struct {
		const char *host;
		int port;
	} targets[MAX_TARGETS];
	int ntargets;
	char *rooms[MAX_ROOMS];
	int nrooms;
	int per_room;
	const char *sub_fmt;
	const char *pub_fmt;
	int welcome;
	int addr_first, addr_count;
	int inflight_max;
	double duration;
	double drain;
	double load;
	double eps;
	double hold;
	double settle;
	int raw;
	int pad;
	pid_t server_pids[MAX_PIDS];
	int npids;
	const char *hook;
	int hook_sent; /* -X: the hook also hears "sent" when publishing stops */
} opt;

static struct conn *conns;
static int nconns;
static int epfd;
static int inflight; /* handshakes not done */
static int next_connect;
static int established, failed, closed_by_server;
static uint64_t received, received_bytes, dropped_err, other_frames, pub_errors;
static struct hist hmsg, hevt;
/* The same latencies taken at the kernel's receive timestamp of the read
 * (SO_TIMESTAMPNS: when the last segment of what one recv() returned
 * arrived at the socket) instead of when this process got to read it:
 * what the server delivered, without the generator's own queueing. */
static struct hist hmsg_arr, hevt_arr;
/* With several targets, the chat latencies again per subscriber's target. */
static struct hist hmsg_t[MAX_TARGETS], hmsg_arr_t[MAX_TARGETS];
static uint64_t received_t[MAX_TARGETS];
static uint64_t rx_arrival_ns; /* of the recv() being parsed; 0 if unknown */
/* Per CustomEvent (by its seq): its first and last delivery, which split
 * an event's latency into the wait before the server's fan-out starts and
 * the fan-out itself. */
#define EVT_TRACK 8192
static uint64_t evt_first[EVT_TRACK], evt_last[EVT_TRACK];
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static volatile sig_atomic_t stop;

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "ws_bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void *
xrealloc(void *p, size_t n)
{
	void *q;

	if ((q = realloc(p, n)) == NULL)
		die("out of memory (%zu bytes)", n);
	return q;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The message stamps and receipt times: CLOCK_REALTIME, the clock of the
 * kernel's receive timestamps. */
static uint64_t
wall_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t
xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: ws_bench -m idle|fanout -k ROOM[,ROOM...] -n PER_ROOM -S SUBPATH\n"
	    "         [-P PUBPATH] [-w] [-b FIRST:COUNT] [-c INFLIGHT] [-l DELIVERIES_PER_S]\n"
	    "         [-d SECS] [-D DRAIN_SECS] [-e EVENTS_PER_S] [-H HOLD_SECS] [-s PAD]\n"
	    "         [-f chatd|raw] [-p SERVER_PID[,PID...]] [-x HOOK [-X]] "
	    "HOST:PORT[,HOST:PORT...]\n");
	exit(2);
}

/* ---------------------------------------------------------------- histograms */

static void
hist_init(struct hist *h)
{
	if ((h->b = calloc(HIST_BUCKETS + 1, sizeof *h->b)) == NULL)
		die("out of memory (histogram)");
}

static void
hist_add(struct hist *h, uint64_t ns)
{
	uint64_t i = ns / HIST_STEP_NS;

	if (i > HIST_BUCKETS)
		i = HIST_BUCKETS;
	h->b[i]++;
	h->n++;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

static void
hist_reset(struct hist *h)
{
	memset(h->b, 0, (HIST_BUCKETS + 1) * sizeof *h->b);
	h->n = 0;
	h->max_ns = 0;
}

/* The q-quantile in milliseconds (upper edge of its bucket). */
static double
hist_q(const struct hist *h, double q)
{
	uint64_t want, acc = 0;
	size_t i;

	if (h->n == 0)
		return 0;
	want = (uint64_t)(q * (double)h->n);
	if (want == 0)
		want = 1;
	for (i = 0; i <= HIST_BUCKETS; i++) {
		acc += h->b[i];
		if (acc >= want)
			return (double)((i + 1) * HIST_STEP_NS) / 1e6;
	}
	return (double)h->max_ns / 1e6;
}

/* ---------------------------------------------------------------- /proc */

/* utime + stime of PID (all threads), in microseconds; -1 if unreadable. */
static int64_t
proc_cpu_us(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	ssize_t n;
	int fd, i;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY)) == -1)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces. */
	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	p += 2;
	for (i = 3; i < 14; i++) {
		if ((p = strchr(p, ' ')) == NULL)
			return -1;
		p++;
	}
	if (sscanf(p, "%llu %llu", &ut, &st) != 2)
		return -1;
	return (int64_t)((ut + st) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* The summed CPU of every -p PID into by[] and the total; -1 if any is unreadable. */
static int64_t
servers_cpu_us(int64_t *by)
{
	int64_t sum = 0;
	int i;

	if (opt.npids == 0)
		return -1;
	for (i = 0; i < opt.npids; i++) {
		if ((by[i] = proc_cpu_us(opt.server_pids[i])) < 0)
			return -1;
		sum += by[i];
	}
	return sum;
}

static int64_t
self_cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		die("getrusage: %s", strerror(errno));
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
	    ru.ru_stime.tv_usec;
}

/* ---------------------------------------------------------------- output */

static void
conn_events(struct conn *c)
{
	struct epoll_event ev;
	int want = c->state == C_CONNECTING || c->outlen > c->outoff;

	if (want == c->want_out)
		return;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
	ev.data.u32 = (uint32_t)(c - conns);
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		die("epoll_ctl(MOD): %s", strerror(errno));
	c->want_out = want;
}

static void
conn_queue(struct conn *c, const void *data, size_t len)
{
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	if (c->outlen + len > c->outcap) {
		c->outcap = (c->outlen + len) * 2;
		c->out = xrealloc(c->out, c->outcap);
	}
	memcpy(c->out + c->outlen, data, len);
	c->outlen += len;
}

static void conn_close(struct conn *, int);

static void
conn_flush(struct conn *c)
{
	ssize_t n;

	while (c->outoff < c->outlen) {
		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			conn_close(c, 1);
			return;
		}
		c->outoff += (size_t)n;
	}
	if (c->outoff == c->outlen) {
		c->outoff = c->outlen = 0;
		if (c->outcap > 65536) {
			free(c->out);
			c->out = NULL;
			c->outcap = 0;
		}
	}
	conn_events(c);
}

/* A masked client frame. */
static void
conn_send_frame(struct conn *c, int opcode, const char *data, size_t len)
{
	unsigned char hdr[14];
	char stackbuf[4096], *buf;
	size_t h = 0, i;
	uint32_t key = (uint32_t)xorshift();
	unsigned char *m = (unsigned char *)&key;

	hdr[h++] = (unsigned char)(0x80 | opcode);
	if (len < 126)
		hdr[h++] = (unsigned char)(0x80 | len);
	else if (len < 65536) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (unsigned char)(len >> 8);
		hdr[h++] = (unsigned char)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			hdr[h++] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	}
	memcpy(hdr + h, m, 4);
	h += 4;
	buf = len + h <= sizeof stackbuf ? stackbuf : xrealloc(NULL, len + h);
	memcpy(buf, hdr, h);
	for (i = 0; i < len; i++)
		buf[h + i] = (char)(data[i] ^ m[i & 3]);
	conn_queue(c, buf, h + len);
	if (buf != stackbuf)
		free(buf);
	conn_flush(c);
}

/* ---------------------------------------------------------------- connections */

static void
conn_close(struct conn *c, int error)
{
	if (c->state == C_CLOSED)
		return;
	if (!c->joined) {
		inflight--;
		failed++;
	} else if (error)
		closed_by_server++;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->state = C_CLOSED;
	free(c->in);
	free(c->out);
	c->in = c->out = NULL;
	c->inlen = c->incap = c->outlen = c->outoff = c->outcap = 0;
}

/* Expands %r (room id) and %u (connection number) in a path template. */
static size_t
expand(char *dst, size_t size, const char *fmt, const char *room, int num)
{
	size_t n = 0;
	int r;

	for (; *fmt != '\0' && n + 1 < size; fmt++) {
		if (fmt[0] == '%' && fmt[1] == 'r') {
			r = snprintf(dst + n, size - n, "%s", room);
			fmt++;
		} else if (fmt[0] == '%' && fmt[1] == 'u') {
			r = snprintf(dst + n, size - n, "%d", num);
			fmt++;
		} else {
			dst[n] = *fmt;
			r = 1;
		}
		if (r < 0 || (size_t)r >= size - n)
			die("path too long: %s", fmt);
		n += (size_t)r;
	}
	dst[n] = '\0';
	return n;
}

static void
conn_start(struct conn *c)
{
	struct sockaddr_in sa, src;
	struct epoll_event ev;
	int one = 1, fd;
	int idx = (int)(c - conns);

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		die("socket: %s (connection %d)", strerror(errno), idx);
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
		die("setsockopt(TCP_NODELAY): %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0)
		die("setsockopt(SO_TIMESTAMPNS): %s", strerror(errno));
	if (opt.addr_count > 0) {
		if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0)
			die("setsockopt(IP_BIND_ADDRESS_NO_PORT): %s", strerror(errno));
		memset(&src, 0, sizeof src);
		src.sin_family = AF_INET;
		src.sin_addr.s_addr =
		    htonl(0x7f000000U | (uint32_t)(opt.addr_first + idx % opt.addr_count));
		if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0)
			die("bind: %s", strerror(errno));
	}
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)opt.targets[c->target].port);
	if (inet_pton(AF_INET, opt.targets[c->target].host, &sa.sin_addr) != 1)
		die("bad address %s", opt.targets[c->target].host);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
		die("connect: %s", strerror(errno));
	c->fd = fd;
	c->state = C_CONNECTING;
	c->want_out = 1;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.u32 = (uint32_t)idx;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		die("epoll_ctl(ADD): %s", strerror(errno));
	inflight++;
}

static void
conn_connected(struct conn *c)
{
	char path[1024], req[1400];
	int err = 0, n;
	socklen_t len = sizeof err;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
		fprintf(stderr, "ws_bench: connect: %s\n", strerror(err ? err : errno));
		conn_close(c, 1);
		return;
	}
	expand(path, sizeof path, c->pub ? opt.pub_fmt : opt.sub_fmt, opt.rooms[c->room], c->num);
	n = snprintf(req, sizeof req,
	    "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n",
	    path, opt.targets[c->target].host, opt.targets[c->target].port);
	if (n < 0 || (size_t)n >= sizeof req)
		die("request too long");
	c->state = C_HANDSHAKE;
	conn_queue(c, req, (size_t)n);
	conn_flush(c);
}

static void
conn_joined(struct conn *c)
{
	if (c->joined)
		return;
	c->joined = 1;
	inflight--;
	if (!c->pub)
		established++;
}

/* One text frame from the server. */
static void
on_text(struct conn *c, const char *p, size_t len)
{
	const char *m;
	uint64_t ts, now, seq;
	int evt;
	size_t i;

	if (!c->joined) {
		conn_joined(c);
		return;
	}
	if (c->pub) {
		if (len > 16 && memmem(p, len, "\"type\":\"Error\"", 14) != NULL)
			pub_errors++;
		return;
	}
	if ((m = memmem(p, len, "@@", 2)) == NULL) {
		if (memmem(p, len, "messages_dropped", 16) != NULL)
			dropped_err++;
		else
			other_frames++;
		return;
	}
	ts = 0;
	for (i = (size_t)(m - p) + 2; i < len && p[i] >= '0' && p[i] <= '9'; i++)
		ts = ts * 10 + (uint64_t)(p[i] - '0');
	seq = 0;
	for (i++; i < len && p[i] >= '0' && p[i] <= '9'; i++)
		seq = seq * 10 + (uint64_t)(p[i] - '0');
	now = wall_ns();
	evt = memmem(p, len, "CustomEvent", 11) != NULL;
	hist_add(evt ? &hevt : &hmsg, now > ts ? now - ts : 0);
	if (rx_arrival_ns != 0)
		hist_add(evt ? &hevt_arr : &hmsg_arr, rx_arrival_ns > ts ? rx_arrival_ns - ts : 0);
	if (opt.ntargets > 1 && !evt) {
		hist_add(&hmsg_t[c->target], now > ts ? now - ts : 0);
		if (rx_arrival_ns != 0)
			hist_add(
			    &hmsg_arr_t[c->target], rx_arrival_ns > ts ? rx_arrival_ns - ts : 0);
		received_t[c->target]++;
	}
	if (rx_arrival_ns != 0)
		now = rx_arrival_ns; /* the server's part, for the per-event split */
	if (evt && seq < EVT_TRACK && now > ts) {
		if (evt_first[seq] == 0 || now - ts < evt_first[seq])
			evt_first[seq] = now - ts;
		if (now - ts > evt_last[seq])
			evt_last[seq] = now - ts;
	}
	if (!evt) {
		received++;
		received_bytes += len;
	}
}

/* Parses complete frames in c->in; returns -1 if the connection closed. */
static int
conn_frames(struct conn *c)
{
	unsigned char *b = (unsigned char *)c->in;
	size_t off = 0, h, len, i;
	int op, masked;

	while (c->inlen - off >= 2) {
		op = b[off] & 0x0f;
		masked = b[off + 1] & 0x80;
		len = b[off + 1] & 0x7f;
		h = 2;
		if (len == 126) {
			if (c->inlen - off < 4)
				break;
			len = ((size_t)b[off + 2] << 8) | b[off + 3];
			h = 4;
		} else if (len == 127) {
			if (c->inlen - off < 10)
				break;
			len = 0;
			for (i = 0; i < 8; i++)
				len = (len << 8) | b[off + 2 + i];
			h = 10;
		}
		if (masked)
			h += 4;
		if (c->inlen - off < h + len)
			break;
		if (masked)
			for (i = 0; i < len; i++)
				b[off + h + i] ^= b[off + h - 4 + (i & 3)];
		switch (op) {
		case 0x1:
		case 0x0:
			on_text(c, (char *)b + off + h, len);
			break;
		case 0x8:
			conn_close(c, 1);
			return -1;
		case 0x9:
			conn_send_frame(c, 0xa, (char *)b + off + h, len);
			if (c->state == C_CLOSED)
				return -1;
			break;
		default:
			break;
		}
		off += h + len;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= off;
	}
	return 0;
}

/* One recv() into c->in, noting the kernel's arrival time in rx_arrival_ns. */
static ssize_t
conn_recv(struct conn *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(struct timespec))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { c->in + c->inlen, c->incap - c->inlen };
	struct msghdr mh = { 0 };
	struct cmsghdr *cm;
	struct timespec ts;
	ssize_t n;

	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof ctl.buf;
	rx_arrival_ns = 0;
	n = recvmsg(c->fd, &mh, 0);
	for (cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm != NULL; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
			memcpy(&ts, CMSG_DATA(cm), sizeof ts);
			rx_arrival_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
		}
	return n;
}

static void
conn_read(struct conn *c)
{
	char *eoh;
	ssize_t n;
	size_t hl;

	for (;;) {
		if (c->incap - c->inlen < 16384) {
			c->incap = c->incap ? c->incap * 2 : 32768;
			c->in = xrealloc(c->in, c->incap);
		}
		n = conn_recv(c);
		if (n == 0) {
			conn_close(c, 1);
			return;
		}
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_close(c, 1);
			break;
		}
		c->inlen += (size_t)n;
		if (c->state == C_HANDSHAKE) {
			if ((eoh = memmem(c->in, c->inlen, "\r\n\r\n", 4)) == NULL)
				continue;
			if (c->inlen < 12 || memcmp(c->in + 9, "101", 3) != 0) {
				fprintf(stderr, "ws_bench: handshake refused: %.*s\n",
				    (int)(strcspn(c->in, "\r\n") < 80 ? strcspn(c->in, "\r\n")
								      : 80),
				    c->in);
				conn_close(c, 1);
				return;
			}
			hl = (size_t)(eoh - c->in) + 4;
			memmove(c->in, c->in + hl, c->inlen - hl);
			c->inlen -= hl;
			c->state = C_OPEN;
			if (!opt.welcome || c->pub)
				conn_joined(c);
		}
		if (conn_frames(c) != 0)
			return;
		if ((size_t)n < 16384)
			break;
	}
	/* Idle connections keep no buffer. */
	if (c->inlen == 0 && c->in != NULL) {
		free(c->in);
		c->in = NULL;
		c->incap = 0;
	}
}

/* ---------------------------------------------------------------- loop */

/* One pass of the event loop, waiting up to ms. */
static void
loop_once(int ms)
{
	struct epoll_event ev[MAX_EVENTS];
	struct conn *c;
	int n, i;

	n = epoll_wait(epfd, ev, MAX_EVENTS, ms);
	if (n == -1) {
		if (errno == EINTR)
			return;
		die("epoll_wait: %s", strerror(errno));
	}
	for (i = 0; i < n; i++) {
		c = &conns[ev[i].data.u32];
		if (c->state == C_CLOSED)
			continue;
		if (c->state == C_CONNECTING) {
			if (ev[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
				conn_connected(c);
			continue;
		}
		if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_read(c);
		if (c->state != C_CLOSED && (ev[i].events & EPOLLOUT))
			conn_flush(c);
	}
}

static void
connect_all(double timeout)
{
	uint64_t deadline = now_ns() + (uint64_t)(timeout * 1e9);

	while (!stop) {
		while (next_connect < nconns && inflight < opt.inflight_max)
			conn_start(&conns[next_connect++]);
		if (next_connect == nconns && inflight == 0)
			break;
		if (now_ns() > deadline)
			die("timed out connecting: %d established, %d in flight, %d failed",
			    established, inflight, failed);
		loop_once(10);
	}
}

static void
run_for(double secs)
{
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9);

	while (!stop && now_ns() < end)
		loop_once(5);
}

static void
publish(struct conn *c, int event, int seq)
{
	char text[8192], frame[8400];
	size_t n;
	int r;

	r = snprintf(text, sizeof text, "@@%llu %d ", (unsigned long long)wall_ns(), seq);
	if (r < 0 || (size_t)r >= sizeof text)
		die("snprintf");
	n = (size_t)r;
	while ((int)n < opt.pad && n + 1 < sizeof text)
		text[n++] = 'x';
	text[n] = '\0';
	if (opt.raw)
		r = snprintf(frame, sizeof frame, "%s", text);
	else if (event)
		r = snprintf(frame, sizeof frame,
		    "{\"type\":\"CustomEvent\",\"payload\":{\"event_type\":\"bench\","
		    "\"payload\":{\"t\":\"%s\"}}}",
		    text);
	else
		r = snprintf(frame, sizeof frame,
		    "{\"type\":\"Message\",\"payload\":{\"content\":\"%s\"}}", text);
	if (r < 0 || (size_t)r >= sizeof frame)
		die("message too long");
	conn_send_frame(c, 0x1, frame, (size_t)r);
}

/* Runs the -x hook with one word (start, sent with -X, end); the loop waits meanwhile. */
static void
run_hook(const char *what)
{
	char cmd[4096];
	int r;

	if (opt.hook == NULL)
		return;
	r = snprintf(cmd, sizeof cmd, "%s %s", opt.hook, what);
	if (r < 0 || (size_t)r >= sizeof cmd)
		die("hook command too long");
	fflush(stdout);
	if ((r = system(cmd)) != 0)
		die("hook \"%s\" failed (status %d)", cmd, r);
}

/* " KEY=v1,v2,..." of one quantile of the per-target histograms. */
static void
print_by_target(const char *key, struct hist *h, double q)
{
	int t;

	printf(" %s=", key);
	for (t = 0; t < opt.ntargets; t++)
		printf("%s%.2f", t ? "," : "", hist_q(&h[t], q));
}

static void
run_fanout(void)
{
	struct conn **pubs;
	uint64_t t0, t, end, drain_end, published = 0, events = 0, expected, due, evdue;
	int64_t scpu0, scpu1, gcpu0, gcpu1, by0[MAX_PIDS], by1[MAX_PIDS];
	double msg_rate, elapsed;
	int i, tg, live_pubs = 0;

	if ((pubs = calloc((size_t)opt.nrooms, sizeof *pubs)) == NULL)
		die("out of memory");
	for (i = 0; i < nconns; i++)
		if (conns[i].pub) {
			pubs[conns[i].room] = &conns[i];
			live_pubs++;
		}
	if (live_pubs != opt.nrooms)
		die("need one publisher per room");
	/* Join notices and the like settle first; they are not counted. */
	run_for(opt.settle);
	hist_reset(&hmsg);
	hist_reset(&hevt);
	hist_reset(&hmsg_arr);
	hist_reset(&hevt_arr);
	memset(evt_first, 0, sizeof evt_first);
	memset(evt_last, 0, sizeof evt_last);
	received = received_bytes = dropped_err = other_frames = pub_errors = 0;
	for (tg = 0; tg < opt.ntargets && opt.ntargets > 1; tg++) {
		hist_reset(&hmsg_t[tg]);
		hist_reset(&hmsg_arr_t[tg]);
		received_t[tg] = 0;
	}
	run_hook("start");

	msg_rate = opt.load / opt.per_room;
	scpu0 = servers_cpu_us(by0);
	gcpu0 = self_cpu_us();
	t0 = now_ns();
	end = t0 + (uint64_t)(opt.duration * 1e9);
	while (!stop && (t = now_ns()) < end) {
		due = (uint64_t)((double)(t - t0) / 1e9 * msg_rate);
		while (published < due) {
			struct conn *p = pubs[published % (uint64_t)opt.nrooms];
			if (p->state == C_OPEN)
				publish(p, 0, (int)published);
			published++;
		}
		evdue = (uint64_t)((double)(t - t0) / 1e9 * opt.eps);
		while (events < evdue) {
			if (pubs[0]->state == C_OPEN)
				publish(pubs[0], 1, (int)events);
			events++;
		}
		loop_once(1);
	}
	expected = published * (uint64_t)opt.per_room;
	if (opt.hook_sent)
		run_hook("sent");
	drain_end = now_ns() + (uint64_t)(opt.drain * 1e9);
	while (!stop && received < expected && now_ns() < drain_end)
		loop_once(5);
	scpu1 = servers_cpu_us(by1);
	gcpu1 = self_cpu_us();
	elapsed = (double)(now_ns() - t0) / 1e9;
	run_hook("end");

	printf("RESULT subscribers=%d rooms=%d offered_per_s=%.0f secs=%.2f published=%llu "
	       "expected=%llu received=%llu lost=%llu loss_pct=%.3f p50_ms=%.2f p99_ms=%.2f "
	       "max_ms=%.2f delivered_per_s=%.0f avg_frame_bytes=%.0f",
	    established, opt.nrooms, opt.load, elapsed, (unsigned long long)published,
	    (unsigned long long)expected, (unsigned long long)received,
	    (unsigned long long)(expected > received ? expected - received : 0),
	    expected
		? 100.0 * (double)(expected > received ? expected - received : 0) / (double)expected
		: 0.0,
	    hist_q(&hmsg, 0.50), hist_q(&hmsg, 0.99), (double)hmsg.max_ns / 1e6,
	    (double)received / elapsed, received ? (double)received_bytes / (double)received : 0.0);
	if (hmsg_arr.n > 0)
		printf(" arr_p50_ms=%.2f arr_p99_ms=%.2f", hist_q(&hmsg_arr, 0.50),
		    hist_q(&hmsg_arr, 0.99));
	if (scpu0 >= 0 && scpu1 >= 0)
		printf(" server_cpu_ms=%.0f server_cpu_pct=%.1f server_us_per_delivery=%.2f",
		    (double)(scpu1 - scpu0) / 1e3, (double)(scpu1 - scpu0) / 1e4 / elapsed,
		    received ? (double)(scpu1 - scpu0) / (double)received : 0.0);
	if (scpu0 >= 0 && scpu1 >= 0 && opt.npids > 1) {
		printf(" server_cpu_ms_by_pid=");
		for (i = 0; i < opt.npids; i++)
			printf("%s%d:%.0f", i ? "," : "", (int)opt.server_pids[i],
			    (double)(by1[i] - by0[i]) / 1e3);
		printf(" server_cpu_pct_by_pid=");
		for (i = 0; i < opt.npids; i++)
			printf("%s%d:%.1f", i ? "," : "", (int)opt.server_pids[i],
			    (double)(by1[i] - by0[i]) / 1e4 / elapsed);
	}
	if (opt.ntargets > 1) {
		printf(" targets=%d received_by_target=", opt.ntargets);
		for (tg = 0; tg < opt.ntargets; tg++)
			printf("%s%llu", tg ? "," : "", (unsigned long long)received_t[tg]);
		print_by_target("p50_ms_by_target", hmsg_t, 0.50);
		print_by_target("p99_ms_by_target", hmsg_t, 0.99);
		print_by_target("arr_p50_ms_by_target", hmsg_arr_t, 0.50);
		print_by_target("arr_p99_ms_by_target", hmsg_arr_t, 0.99);
	}
	printf(" gen_cpu_pct=%.1f dropped_notices=%llu pub_errors=%llu closed=%d",
	    (double)(gcpu1 - gcpu0) / 1e4 / elapsed, (unsigned long long)dropped_err,
	    (unsigned long long)pub_errors, closed_by_server);
	if (opt.eps > 0)
		printf(" events=%llu evt_received=%llu evt_p50_ms=%.2f evt_p99_ms=%.2f "
		       "evt_max_ms=%.2f",
		    (unsigned long long)events, (unsigned long long)hevt.n, hist_q(&hevt, 0.50),
		    hist_q(&hevt, 0.99), (double)hevt.max_ns / 1e6);
	if (opt.eps > 0) {
		struct hist hf = { 0 }, hl = { 0 };
		uint64_t k;

		hist_init(&hf);
		hist_init(&hl);
		for (k = 0; k < events && k < EVT_TRACK; k++)
			if (evt_first[k] != 0) {
				hist_add(&hf, evt_first[k]);
				hist_add(&hl, evt_last[k]);
			}
		if (hevt_arr.n > 0)
			printf(" evt_arr_p50_ms=%.2f evt_arr_p99_ms=%.2f", hist_q(&hevt_arr, 0.50),
			    hist_q(&hevt_arr, 0.99));
		printf(" evt_first_p50_ms=%.2f evt_first_p99_ms=%.2f evt_last_p50_ms=%.2f "
		       "evt_last_p99_ms=%.2f",
		    hist_q(&hf, 0.50), hist_q(&hf, 0.99), hist_q(&hl, 0.50), hist_q(&hl, 0.99));
		free(hf.b);
		free(hl.b);
	}
	printf("\n");
	fflush(stdout);
	free(pubs);
}

static void
run_idle(void)
{
	uint64_t end = now_ns() + (uint64_t)(opt.hold * 1e9);

	printf("established %d failed %d\n", established, failed);
	fflush(stdout);
	while (!stop && now_ns() < end)
		loop_once(100);
	printf("held: %d still open, %d closed by the server\n", established - closed_by_server,
	    closed_by_server);
}

/* ---------------------------------------------------------------- main */

static double
num_arg(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || v < 0)
		die("bad %s: %s", what, s);
	return v;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	struct rlimit rl;
	char *p, *q, *rooms = NULL, *pids = NULL;
	int ch, i, r, k, need;

	opt.mode = "fanout";
	opt.inflight_max = 256;
	opt.duration = 5;
	opt.drain = 5;
	opt.hold = 600;
	opt.settle = 2;
	opt.pad = 40;
	while ((ch = getopt(argc, argv, "b:c:D:d:e:f:H:k:l:m:n:P:p:S:s:wXx:")) != -1) {
		switch (ch) {
		case 'b':
			if (sscanf(optarg, "%d:%d", &opt.addr_first, &opt.addr_count) != 2 ||
			    opt.addr_first < 1 || opt.addr_count < 1 ||
			    opt.addr_first + opt.addr_count > 255)
				die("bad -b %s (FIRST:COUNT within 127.0.0.1-254)", optarg);
			break;
		case 'c':
			opt.inflight_max = (int)num_arg(optarg, "-c");
			break;
		case 'D':
			opt.drain = num_arg(optarg, "-D");
			break;
		case 'd':
			opt.duration = num_arg(optarg, "-d");
			break;
		case 'e':
			opt.eps = num_arg(optarg, "-e");
			break;
		case 'f':
			if (strcmp(optarg, "raw") == 0)
				opt.raw = 1;
			else if (strcmp(optarg, "chatd") != 0)
				usage();
			break;
		case 'H':
			opt.hold = num_arg(optarg, "-H");
			break;
		case 'k':
			rooms = optarg;
			break;
		case 'l':
			opt.load = num_arg(optarg, "-l");
			break;
		case 'm':
			opt.mode = optarg;
			break;
		case 'n':
			opt.per_room = (int)num_arg(optarg, "-n");
			break;
		case 'P':
			opt.pub_fmt = optarg;
			break;
		case 'p':
			pids = optarg;
			break;
		case 'S':
			opt.sub_fmt = optarg;
			break;
		case 's':
			opt.pad = (int)num_arg(optarg, "-s");
			break;
		case 'w':
			opt.welcome = 1;
			break;
		case 'x':
			opt.hook = optarg;
			break;
		case 'X':
			opt.hook_sent = 1;
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 1 || rooms == NULL || opt.sub_fmt == NULL || opt.per_room < 1)
		usage();
	if (strcmp(opt.mode, "idle") != 0 && strcmp(opt.mode, "fanout") != 0)
		usage();
	if (strcmp(opt.mode, "fanout") == 0 && (opt.pub_fmt == NULL || opt.load <= 0))
		die("fanout needs -P and -l");
	/* HOST:PORT[,HOST:PORT...]: subscribers round robin, publishers on the first. */
	for (q = strtok(argv[optind], ","); q != NULL; q = strtok(NULL, ",")) {
		if (opt.ntargets == MAX_TARGETS)
			die("at most %d targets", MAX_TARGETS);
		if ((p = strrchr(q, ':')) == NULL)
			usage();
		*p = '\0';
		opt.targets[opt.ntargets].host = q;
		opt.targets[opt.ntargets].port = (int)num_arg(p + 1, "port");
		opt.ntargets++;
	}
	if (opt.ntargets == 0)
		usage();
	for (p = pids != NULL ? strtok(pids, ",") : NULL; p != NULL; p = strtok(NULL, ",")) {
		if (opt.npids == MAX_PIDS)
			die("at most %d pids", MAX_PIDS);
		opt.server_pids[opt.npids++] = (pid_t)num_arg(p, "-p");
	}
	for (p = strtok(rooms, ","); p != NULL; p = strtok(NULL, ",")) {
		if (opt.nrooms == MAX_ROOMS)
			die("at most %d rooms", MAX_ROOMS);
		opt.rooms[opt.nrooms++] = p;
	}

	/* Every connection is a descriptor. */
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("getrlimit: %s", strerror(errno));
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("setrlimit: %s", strerror(errno));
	need = opt.nrooms * (opt.per_room + (opt.pub_fmt && strcmp(opt.mode, "fanout") == 0));
	if ((rlim_t)need + 16 > rl.rlim_cur)
		die("%d connections need more descriptors than the limit %llu: split over "
		    "processes",
		    need, (unsigned long long)rl.rlim_cur);

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_signal;
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		die("sigaction: %s", strerror(errno));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		die("sigaction: %s", strerror(errno));

	hist_init(&hmsg);
	hist_init(&hevt);
	hist_init(&hmsg_arr);
	hist_init(&hevt_arr);
	for (i = 0; i < opt.ntargets && opt.ntargets > 1; i++) {
		hist_init(&hmsg_t[i]);
		hist_init(&hmsg_arr_t[i]);
	}
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	if ((conns = calloc((size_t)need, sizeof *conns)) == NULL)
		die("out of memory (%d connections)", need);
	/* Publishers first, so they are in the room before anyone counts. */
	k = 0;
	if (need > opt.nrooms * opt.per_room)
		for (r = 0; r < opt.nrooms; r++) {
			conns[k].pub = 1;
			conns[k].room = r;
			conns[k].num = k;
			k++;
		}
	/* Member i of every room on target i mod targets: each room split evenly. */
	for (i = 0; i < opt.per_room; i++)
		for (r = 0; r < opt.nrooms; r++) {
			conns[k].room = r;
			conns[k].num = k;
			conns[k].target = i % opt.ntargets;
			k++;
		}
	for (i = 0; i < need; i++)
		conns[i].fd = -1;
	nconns = need;

	connect_all(120);
	if (stop)
		return 1;
	if (failed > 0)
		die("%d of %d connections failed; refusing to report", failed, nconns);
	if (strcmp(opt.mode, "idle") == 0)
		run_idle();
	else
		run_fanout();
	return 0;
}
