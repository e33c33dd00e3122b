/*
 * The floor under any WebSocket fan-out on this machine: what one send()
 * of a small frame costs the sending process over loopback TCP, with the
 * reader on the other core. No WebSocket server is involved; the sender
 * does nothing but send(), so its CPU per call is what the kernel (and,
 * in a VM, the hypervisor) charges for one delivery. ws_bench.sh prints it
 * next to chatd's and Nchan's CPU per delivery.
 *
 * Usage: send_floor [-n CONNS] [-r FRAMES_PER_S] [-s BYTES] [-k FRAMES_PER_SEND] [-d SECONDS]
 * The process forks: the parent sends (run it on one core with taskset),
 * the child reads every connection with epoll and discards (it pins itself
 * to the core given by -c, default 1). Prints one line of key=value.
 * A benchmark aid: asserts nothing. Bounded by -d; stops by itself.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void
die(const char *what)
{
	fprintf(stderr, "send_floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime");
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		die("getrusage");
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* The child: connect n sockets, read and discard until the parent closes them. */
static void
reader(int port, int n, int core)
{
	struct sockaddr_in a;
	struct epoll_event ev, evs[256];
	static char buf[65536];
	cpu_set_t set;
	int ep, fd, i, m, open_fds = n;

	CPU_ZERO(&set);
	CPU_SET(core, &set);
	(void)sched_setaffinity(0, sizeof set, &set); /* best effort */
	if ((ep = epoll_create1(0)) < 0)
		die("epoll_create1");
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < n; i++) {
		if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
			die("socket");
		if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
			die("connect");
		ev.events = EPOLLIN;
		ev.data.fd = fd;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
			die("epoll_ctl");
	}
	while (open_fds > 0) {
		if ((m = epoll_wait(ep, evs, 256, 30000)) < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait");
		}
		if (m == 0)
			break; /* the parent is gone */
		for (i = 0; i < m; i++) {
			ssize_t r = read(evs[i].data.fd, buf, sizeof buf);
			if (r <= 0 && !(r < 0 && errno == EAGAIN)) {
				close(evs[i].data.fd);
				open_fds--;
			}
		}
	}
	_exit(0);
}

int
main(int argc, char **argv)
{
	int n = 1000, rate = 100000, size = 220, k = 1, core = 1, opt, lfd, i, one = 1;
	double secs = 5, t0, c0, t, next;
	long long frames = 0, sends = 0, eagain = 0;
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	int *fds;
	char *frame;
	pid_t child;

	while ((opt = getopt(argc, argv, "n:r:s:k:d:c:")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'r': rate = atoi(optarg); break;
		case 's': size = atoi(optarg); break;
		case 'k': k = atoi(optarg); break;
		case 'd': secs = atof(optarg); break;
		case 'c': core = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: send_floor [-n conns] [-r frames/s] [-s bytes] "
					"[-k frames/send] [-d seconds] [-c reader-core]\n");
			return 2;
		}
	}
	if (n < 1 || rate < 1 || size < 1 || k < 1 || secs <= 0 || secs > 60) {
		fprintf(stderr, "send_floor: bad arguments\n");
		return 2;
	}
	if ((fds = calloc((size_t)n, sizeof *fds)) == NULL || (frame = malloc((size_t)size * (size_t)k)) == NULL)
		die("malloc");
	memset(frame, 'x', (size_t)size * (size_t)k);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		die("socket");
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
		die("listen");
	if ((child = fork()) < 0)
		die("fork");
	if (child == 0) {
		close(lfd);
		reader(ntohs(a.sin_port), n, core);
	}
	for (i = 0; i < n; i++) {
		if ((fds[i] = accept(lfd, NULL, NULL)) < 0)
			die("accept");
		/* As a WebSocket server sets it: every frame leaves at once. */
		if (setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
			die("setsockopt");
	}
	/* Paced: every millisecond, the frames due so far, k per send(), round robin. */
	t0 = now_s();
	c0 = cpu_s();
	next = t0;
	i = 0;
	while ((t = now_s()) - t0 < secs) {
		long long due = (long long)((t - t0) * rate);
		while (frames + k <= due) {
			ssize_t w = send(fds[i], frame, (size_t)size * (size_t)k, MSG_DONTWAIT);
			if (w < 0 && errno != EAGAIN)
				die("send");
			if (w < 0)
				eagain++;
			frames += k;
			sends++;
			i = (i + 1) % n;
		}
		next += 0.001;
		if (next > now_s()) {
			struct timespec ts = { 0, (long)((next - now_s()) * 1e9) };
			if (ts.tv_nsec > 0)
				(void)nanosleep(&ts, NULL);
		}
	}
	t = now_s() - t0;
	c0 = cpu_s() - c0;
	for (i = 0; i < n; i++)
		close(fds[i]);
	(void)waitpid(child, NULL, 0);
	printf("conns=%d frame_bytes=%d frames_per_send=%d offered_frames_per_s=%d "
	       "sends_per_s=%.0f cpu_pct=%.1f us_per_send=%.2f us_per_frame=%.2f eagain=%lld\n",
	    n, size, k, rate, (double)sends / t, 100.0 * c0 / t, c0 * 1e6 / (double)sends,
	    c0 * 1e6 / (double)frames, eagain);
	free(fds);
	free(frame);
	return 0;
}
