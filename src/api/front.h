/*
 * chat-api's front ends: FastCGI (libfcgi) and SCGI. Both run a pool of
 * worker threads that accept on one listening socket; each worker owns a
 * database connection and calls api_dispatch() for every request.
 */
#ifndef CHAT_FRONT_H
#define CHAT_FRONT_H

#include "api.h"

struct front_options {
	const struct config *cfg;
	int listen_fd; /* listening socket, or 0 when spawned with it on stdin */
	int threads;
	int listen_is_unix; /* listen_fd is an AF_UNIX socket */
};

/*
 * Opens a listening socket on "PATH" (Unix) or "HOST:PORT" (TCP),
 * replacing a stale Unix socket file and applying mode to it. Returns the
 * fd, or -1 with *cause.
 */
int front_listen(const char *spec, unsigned mode, int backlog, char **cause);

/* 1 if spec names a TCP address (HOST:PORT) rather than a Unix socket path. */
int front_is_tcp(const char *spec);

/* Start the worker threads and return; they run until the process exits. */
int front_fcgi_start(const struct front_options *opts, char **cause);
int front_scgi_start(const struct front_options *opts, char **cause);

/* Opens a worker's database connection; exits the process if it cannot,
 * since a worker without a database can answer nothing. */
struct db *front_open_db(const struct config *cfg);

#endif
