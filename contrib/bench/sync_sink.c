/*
 * A minimal HTTP/1.1 receiver for contrib/bench/sync_bench.sh: it must
 * never be the bottleneck of chat-sync's export. One thread per connection
 * (chat-sync keeps one keep-alive connection per target), blocking reads:
 * headers, then Content-Length bytes of body; counts the messages of a
 * chat_history batch by the occurrences of "\"seq\":" and checks them
 * against the batch's "count"; answers 200 with an empty body. Anything it
 * does not understand is answered 400 and counted as an error.
 *
 * On SIGUSR1 it prints its running totals as one line; on SIGTERM or
 * SIGINT it prints them and exits:
 *   requests=N messages=N bytes=N errors=N
 *
 *   cc -O2 -Wall -Wextra -std=c11 -D_GNU_SOURCE -pthread -o sync_sink sync_sink.c
 *   ./sync_sink -p PORTFILE 127.0.0.1:0    (writes the bound port to PORTFILE)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define SINK_HEAD_MAX 16384
#define SINK_BODY_MAX (256L * 1024 * 1024)

static uint64_t n_requests, n_messages, n_bytes, n_errors;
static volatile sig_atomic_t stop, report;

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		report = 1;
	else
		stop = 1;
}

static void
print_totals(void)
{
	printf("requests=%llu messages=%llu bytes=%llu errors=%llu\n",
	    (unsigned long long)__atomic_load_n(&n_requests, __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&n_messages, __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&n_bytes, __ATOMIC_RELAXED),
	    (unsigned long long)__atomic_load_n(&n_errors, __ATOMIC_RELAXED));
	fflush(stdout);
}

static void
add(uint64_t *counter, uint64_t v)
{
	__atomic_add_fetch(counter, v, __ATOMIC_RELAXED);
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Messages in a chat_history body; -1 when the head's count disagrees. */
static long
count_messages(const char *body, size_t len)
{
	static const char key[] = "\"seq\":";
	const char *p = body, *end = body + len, *c;
	long n = 0, declared;

	while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1)) != NULL) {
		n++;
		p += sizeof key - 1;
	}
	c = memmem(body, len < 200 ? len : 200, "\"count\":", 8);
	if (c == NULL)
		return n; /* not a batch of ours: count what is there */
	declared = strtol(c + 8, NULL, 10);
	return declared == n ? n : -1;
}

static void *
serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	size_t cap = 1 << 20, have = 0, head_len, need;
	char *buf = malloc(cap), *eoh, *cl;
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	static const char bad[] =
	    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	long body_len, msgs;
	ssize_t r;

	if (buf == NULL)
		goto out;
	for (;;) {
		/* the head */
		while ((eoh = have >= 4 ? memmem(buf, have, "\r\n\r\n", 4) : NULL) == NULL) {
			if (have >= SINK_HEAD_MAX)
				goto bad;
			if ((r = read(fd, buf + have, cap - have)) <= 0) {
				if (r < 0 && errno == EINTR)
					continue;
				goto out; /* closed between requests: fine */
			}
			have += (size_t)r;
		}
		head_len = (size_t)(eoh - buf) + 4;
		*eoh = '\0';
		cl = strcasestr(buf, "\r\ncontent-length:");
		if (cl == NULL || strncmp(buf, "POST ", 5) != 0)
			goto bad;
		body_len = strtol(cl + 17, NULL, 10);
		if (body_len < 0 || body_len > SINK_BODY_MAX)
			goto bad;
		need = head_len + (size_t)body_len;
		if (need > cap) {
			char *nb = realloc(buf, need);

			if (nb == NULL)
				goto bad;
			buf = nb;
			cap = need;
		}
		/* the body */
		while (have < need) {
			if ((r = read(fd, buf + have, cap - have)) <= 0) {
				if (r < 0 && errno == EINTR)
					continue;
				add(&n_errors, 1); /* cut off mid-request */
				goto out;
			}
			have += (size_t)r;
		}
		msgs = count_messages(buf + head_len, (size_t)body_len);
		if (msgs < 0)
			goto bad;
		add(&n_requests, 1);
		add(&n_messages, (uint64_t)msgs);
		add(&n_bytes, (uint64_t)body_len);
		if (write_all(fd, ok, sizeof ok - 1) != 0) {
			add(&n_errors, 1);
			goto out;
		}
		/* keep what follows (a pipelined request, not expected) */
		memmove(buf, buf + need, have - need);
		have -= need;
	}
bad:
	add(&n_errors, 1);
	(void)write_all(fd, bad, sizeof bad - 1);
out:
	free(buf);
	close(fd);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	socklen_t salen = sizeof sa;
	struct sigaction sig;
	const char *portfile = NULL;
	char host[64], *colon;
	pthread_attr_t attr;
	pthread_t th;
	FILE *f;
	int ls, fd, one = 1, opt;

	while ((opt = getopt(argc, argv, "p:")) != -1) {
		if (opt != 'p') {
			fprintf(stderr, "usage: sync_sink [-p PORTFILE] HOST:PORT\n");
			return 2;
		}
		portfile = optarg;
	}
	if (optind + 1 != argc || (colon = strrchr(argv[optind], ':')) == NULL ||
	    (size_t)(colon - argv[optind]) >= sizeof host) {
		fprintf(stderr, "usage: sync_sink [-p PORTFILE] HOST:PORT\n");
		return 2;
	}
	memcpy(host, argv[optind], (size_t)(colon - argv[optind]));
	host[colon - argv[optind]] = '\0';
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "sync_sink: bad address %s\n", host);
		return 2;
	}

	/* No SA_RESTART: accept() returns EINTR on the signal. */
	memset(&sig, 0, sizeof sig);
	sig.sa_handler = on_signal;
	sigemptyset(&sig.sa_mask);
	sigaction(SIGTERM, &sig, NULL);
	sigaction(SIGINT, &sig, NULL);
	sigaction(SIGUSR1, &sig, NULL);
	signal(SIGPIPE, SIG_IGN);

	if ((ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 64) != 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &salen) != 0) {
		perror("sync_sink: listen");
		return 1;
	}
	if (portfile != NULL) {
		if ((f = fopen(portfile, "w")) == NULL ||
		    fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0) {
			perror("sync_sink: port file");
			return 1;
		}
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	while (!stop) {
		if (report) {
			report = 0;
			print_totals();
		}
		if ((fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("sync_sink: accept");
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (pthread_create(&th, &attr, serve, (void *)(intptr_t)fd) != 0) {
			add(&n_errors, 1);
			close(fd);
		}
	}
	print_totals();
	return 0;
}
