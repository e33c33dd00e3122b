/*
 * chatd's event loop: one libwebsockets context on the service thread with
 * a WebSocket vhost (CHATD_LISTEN) and a raw Unix-socket vhost for the
 * control socket. Handles handshakes, reads client frames, writes queued
 * frames in batches, and shuts down on SIGTERM/SIGINT. Everything here runs
 * on the service thread, except server_signal().
 */
#ifndef CHATD_SERVER_H
#define CHATD_SERVER_H

#include <stdint.h>

#include "chatd.h"

/*
 * Members served per slice of a low-priority fan-out before yielding. A
 * loop turn costs what is ready (epoll), so short turns are cheap, and a
 * CustomEvent or a chat message waits for the turn under way: 16 against
 * 256 cut the CustomEvent p99 under a 400k/s flood from 34 to 22 ms and the
 * p99 of 10 rooms of 100 at 100k/s from 46 to 38 ms at the same CPU per
 * delivery (docs/benchmarks.md).
 */
#define SERVER_FANOUT_SLICE 16
/* Bytes of an oversize message read and dropped before its 1009 close. */
#define SERVER_DISCARD_MAX (1024 * 1024)
/* Most waiting frames one fan-out pass hands each member at once. */
#define SERVER_FANOUT_PASS_MAX 64
/* Bytes of queued frames written per WRITEABLE (one lws_write). */
#define SERVER_SEND_BATCH (64 * 1024)
/* Seconds a closing connection gets to take its close frame. */
#define SERVER_CLOSE_GRACE_S 3
/* Milliseconds SIGTERM waits for clients to take their close frames. */
#define SERVER_SHUTDOWN_GRACE_MS 3000

/* Runs chatd until a signal stops it; returns the exit status. */
int server_run(const struct config *cfg);
/* From a signal handler: asks the loop to shut down. */
void server_signal(void);

/* Wall clock (timestamps, ban expiry) and monotonic clock, in ms. */
int64_t server_now_ms(void);
int64_t server_mono_ms(void);

/*
 * Queues f (a new reference is taken) on c's high or low lane and asks for
 * WRITEABLE. A full high lane closes c with 4408. Ignored once c closes.
 */
void server_conn_push(struct conn *c, struct frame *f, int high);
/* Queues an Error frame for c (high lane). retry_after_ms < 0: none. */
void server_conn_error(
    struct conn *c, const char *code, const char *message, int64_t retry_after_ms);
/*
 * Closes c with a WebSocket close code and reason after a UserLeft frame
 * (when user_left), dropping whatever else is queued; leave_reason goes to
 * the session row. Returns 1 if c was open, 0 if it was already closing.
 */
int server_conn_close(
    struct conn *c, int code, const char *reason, const char *leave_reason, int user_left);
/* Writes every queue that went non-empty since the last flush (loop hooks). */
void server_flush(struct chatd *cd);

/* Makes sure the sliced fan-out runs on the next loop iteration. */
void server_fanout_schedule(struct chatd *cd);
/* Finds a control connection by serial, or NULL. */
struct ctlconn *server_ctlconn_find(struct chatd *cd, uint64_t serial);
/* Queues one reply line (newline added) on a control connection. */
void server_ctl_send(struct ctlconn *cc, const char *line);

#endif
