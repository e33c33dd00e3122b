/*
 * chatd's connection to the cluster's message bus (NATS), run on the
 * service thread's libuv loop: nats.c reads and writes its socket from
 * the loop (its libuv adapter), and what arrives waits in one synchronous
 * subscription to "<CLUSTER_NAME>.>", which bus.c drains from a check
 * handle after every round of socket events. So every bus message is
 * handled on the service thread, with no lock and no thread hand-off.
 *
 * Nothing here waits for the bus: publishing buffers (nats.c writes when
 * the loop finds the socket writable), and a bus that is down only means
 * publishes are dropped or buffered until nats.c reconnects on its own.
 * Only the first connection is made here, from a loop timer, because
 * nats.c's adapter must attach a connection on the loop's thread; every
 * later reconnect is nats.c's.
 */
#ifndef CHATD_BUS_H
#define CHATD_BUS_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct bus;

/* A message on one of the cluster's subjects; subject without the prefix and its dot. */
typedef void (*bus_msg_fn)(void *arg, const char *subject, const char *data, size_t len);
/* The bus came up (1) or went down (0). */
typedef void (*bus_state_fn)(void *arg, int up);

/* Counts since start, for health and metrics. */
struct bus_stats {
	int up;
	uint64_t in_msgs, in_bytes, out_msgs, out_bytes;
	uint64_t reconnects; /* times the connection came back */
	uint64_t dropped_in; /* messages nats.c dropped because chatd fell behind */
	uint64_t dropped_out; /* publishes refused (no connection yet, buffer full) */
	char url[128]; /* the server connected to, without credentials; "" when down */
};

/*
 * Starts connecting to urls (CLUSTER_NATS_URL) on loop, retrying every
 * second until the first connection is made. prefix is CLUSTER_NAME,
 * name the connection's name on the server (the node id). Returns 0, or
 * -1 with *cause when nats.c cannot even be set up.
 */
int bus_open(uv_loop_t *loop, const char *urls, const char *prefix, const char *name,
    bus_msg_fn on_msg, bus_state_fn on_state, void *arg, struct bus **out, char **cause);
/* Publishes data on "<prefix>.<subject>"; -1 when it could not be (counted). */
int bus_publish(struct bus *b, const char *subject, const void *data, size_t len);
/* 1 while connected. */
int bus_up(const struct bus *b);
void bus_stats(struct bus *b, struct bus_stats *out);
/*
 * Closes the connection and the handles: run the loop afterwards so that
 * they finish closing, then bus_free(). Service thread.
 */
void bus_close(struct bus *b);
void bus_free(struct bus *b);

#endif
