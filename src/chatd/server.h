/*
 * chatd's event loop: one libwebsockets context on the service thread,
 * on a libuv loop, with a WebSocket vhost (CHATD_LISTEN) and a raw
 * Unix-socket vhost for the control socket. Starts chatd, runs the loop
 * and shuts down gracefully on SIGTERM/SIGINT; what happens on the
 * connections is client.c's, conn.c's and control.c's. Everything here
 * runs on the service thread, except server_signal().
 */
#ifndef CHATD_SERVER_H
#define CHATD_SERVER_H

#include "config.h"

/* Milliseconds SIGTERM waits for clients to take their close frames. */
#define SERVER_SHUTDOWN_GRACE_MS 3000

/* Runs chatd until a signal stops it; returns the exit status. */
int server_run(const struct config *cfg);
/* From a signal handler: asks the loop to shut down. */
void server_signal(void);

#endif
