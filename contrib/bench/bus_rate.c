/*
 * bus_rate: what one nats-server carries, measured the way chatd uses it.
 * One publisher connection sends -n messages of -s bytes on one subject as
 * fast as nats.c takes them; -k subscriber connections (the other nodes)
 * each count every message. Prints one RESULT line: messages, the wall
 * time until every subscriber had every message, messages/s through the
 * server, deliveries/s out of it, and with -p PID the server's CPU per
 * message. Refuses to report when a subscriber missed a message (a slow
 * consumer drops) or the -t timeout passed.
 *
 * Build: cc -O2 -std=c11 -D_GNU_SOURCE -o bus_rate bus_rate.c -lnats
 * Usage: bus_rate -u nats://127.0.0.1:4222 [-n 1000000] [-s 300] [-k 1] [-p PID] [-t 60]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#define MAX_SUBS 16

static atomic_llong got[MAX_SUBS];

static void
die(const char *what, natsStatus s)
{
	fprintf(stderr, "bus_rate: %s: %s\n", what, natsStatus_GetText(s));
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("bus_rate: clock_gettime");
		exit(1);
	}
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of PID in milliseconds; -1 if unreadable. */
static double
proc_cpu_ms(long pid)
{
	char path[64], buf[2048], *p;
	unsigned long long ut, st;
	ssize_t n;
	int fd, i;

	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	if ((fd = open(path, O_RDONLY)) == -1)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
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
	return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static void
on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc;
	(void)sub;
	atomic_fetch_add(&got[(intptr_t)closure], 1);
	natsMsg_Destroy(msg);
}

int
main(int argc, char **argv)
{
	const char *url = "nats://127.0.0.1:4222";
	long long n = 1000000, all;
	long pid = 0;
	int size = 300, k = 1, ch, i;
	double timeout = 60, t0, t1, c0 = -1, c1 = -1;
	natsConnection *pub, *subc[MAX_SUBS];
	natsSubscription *sub[MAX_SUBS];
	natsOptions *opts;
	natsStatus s;
	char *data;

	while ((ch = getopt(argc, argv, "k:n:p:s:t:u:")) != -1) {
		switch (ch) {
		case 'k':
			k = atoi(optarg);
			break;
		case 'n':
			n = atoll(optarg);
			break;
		case 'p':
			pid = atol(optarg);
			break;
		case 's':
			size = atoi(optarg);
			break;
		case 't':
			timeout = atof(optarg);
			break;
		case 'u':
			url = optarg;
			break;
		default:
			fprintf(stderr,
			    "usage: bus_rate -u URL [-n MSGS] [-s BYTES] [-k SUBSCRIBERS] "
			    "[-p SERVER_PID] [-t SECS]\n");
			return 2;
		}
	}
	if (k < 1 || k > MAX_SUBS || n < 1 || size < 1 || size > 1024 * 1024) {
		fprintf(stderr, "bus_rate: bad arguments\n");
		return 2;
	}
	if ((data = malloc((size_t)size)) == NULL) {
		fprintf(stderr, "bus_rate: out of memory\n");
		return 1;
	}
	memset(data, 'x', (size_t)size);
	if ((s = natsOptions_Create(&opts)) != NATS_OK)
		die("options", s);
	if ((s = natsOptions_SetURL(opts, url)) != NATS_OK)
		die("url", s);
	/* chatd's own pending limit: far above what this run queues. */
	for (i = 0; i < k; i++) {
		if ((s = natsConnection_Connect(&subc[i], opts)) != NATS_OK)
			die("connect (subscriber)", s);
		if ((s = natsConnection_Subscribe(
			 &sub[i], subc[i], "busrate.msg", on_msg, (void *)(intptr_t)i)) != NATS_OK)
			die("subscribe", s);
		if ((s = natsSubscription_SetPendingLimits(sub[i], 10000000, 1024 * 1024 * 1024)) !=
		    NATS_OK)
			die("pending limits", s);
		if ((s = natsConnection_Flush(subc[i])) != NATS_OK)
			die("flush (subscriber)", s);
	}
	if ((s = natsConnection_Connect(&pub, opts)) != NATS_OK)
		die("connect (publisher)", s);

	if (pid > 0)
		c0 = proc_cpu_ms(pid);
	t0 = now_s();
	for (long long m = 0; m < n; m++)
		if ((s = natsConnection_Publish(pub, "busrate.msg", data, size)) != NATS_OK)
			die("publish", s);
	if ((s = natsConnection_FlushTimeout(pub, (int64_t)(timeout * 1000))) != NATS_OK)
		die("flush (publisher)", s);
	for (;;) {
		all = 0;
		for (i = 0; i < k; i++)
			all += atomic_load(&got[i]);
		if (all >= n * k || now_s() - t0 > timeout)
			break;
		nats_Sleep(1);
	}
	t1 = now_s();
	if (pid > 0)
		c1 = proc_cpu_ms(pid);
	for (i = 0; i < k; i++) {
		int64_t dropped = 0;

		(void)natsSubscription_GetDropped(sub[i], &dropped);
		if (atomic_load(&got[i]) != n || dropped != 0) {
			fprintf(stderr, "bus_rate: subscriber %d got %lld of %lld (%lld dropped)\n",
			    i, (long long)atomic_load(&got[i]), n, (long long)dropped);
			return 1;
		}
	}
	printf("RESULT msgs=%lld bytes=%d subscribers=%d secs=%.3f msgs_per_s=%.0f "
	       "deliveries_per_s=%.0f",
	    n, size, k, t1 - t0, (double)n / (t1 - t0), (double)n * k / (t1 - t0));
	if (c0 >= 0 && c1 >= 0)
		printf(" server_cpu_ms=%.0f server_cpu_pct=%.1f server_us_per_msg=%.2f", c1 - c0,
		    (c1 - c0) / 10.0 / (t1 - t0), (c1 - c0) * 1000.0 / (double)n);
	printf("\n");
	for (i = 0; i < k; i++) {
		natsSubscription_Destroy(sub[i]);
		natsConnection_Destroy(subc[i]);
	}
	natsConnection_Destroy(pub);
	natsOptions_Destroy(opts);
	free(data);
	nats_Close();
	return 0;
}
