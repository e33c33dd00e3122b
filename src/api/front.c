/*
 * What both front ends share: the listening socket and the per-worker
 * database connection.
 */
#include "autoconf.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "front.h"
#include "log.h"
#include "xmalloc.h"

static int
front_listen_unix(const char *path, unsigned mode, int backlog, char **cause)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, saved;

	if (strlen(path) >= sizeof sun.sun_path) {
		*cause = xasprintf(
		    "socket path %s is longer than %zu bytes", path, sizeof sun.sun_path - 1);
		return -1;
	}
	/* Replace a socket left by a previous run, never a regular file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*cause = xasprintf("%s exists and is not a socket", path);
			return -1;
		}
		if (unlink(path) != 0) {
			*cause = xasprintf("unlink %s: %s", path, strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*cause = xasprintf("socket: %s", strerror(errno));
		return -1;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
		goto fail;
	if (chmod(path, mode) != 0)
		goto fail;
	if (listen(fd, backlog) != 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	*cause = xasprintf("listen on %s: %s", path, strerror(saved));
	return -1;
}

static int
front_listen_tcp(const char *spec, int backlog, char **cause)
{
	struct addrinfo hints, *res = NULL, *ai;
	char *host, *port;
	int fd = -1, rc, one = 1, saved = 0;

	host = xstrdup(spec);
	port = strrchr(host, ':');
	*port++ = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		*cause = xasprintf("resolve %s: %s", spec, gai_strerror(rc));
		free(host);
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	free(host);
	if (fd < 0)
		*cause = xasprintf("listen on %s: %s", spec, strerror(saved));
	return fd;
}

int
front_is_tcp(const char *spec)
{
	/* HOST:PORT with a numeric port is TCP; anything else is a path. */
	const char *colon = strrchr(spec, ':');

	return spec[0] != '/' && spec[0] != '.' && colon != NULL && colon[1] != '\0' &&
	    strspn(colon + 1, "0123456789") == strlen(colon + 1);
}

int
front_listen(const char *spec, unsigned mode, int backlog, char **cause)
{
	if (front_is_tcp(spec))
		return front_listen_tcp(spec, backlog, cause);
	return front_listen_unix(spec, mode, backlog, cause);
}

struct db *
front_open_db(const struct config *cfg)
{
	struct db *db;
	char *cause = NULL;

	if (db_open(cfg->database_path, &db, &cause) != DB_OK)
		fatal("DATABASE_URL: %s", cause);
	return db;
}
