/*
 * Listening-address probes (probe.h). No state; any thread.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"
#include "xmalloc.h"

int
probe_tcp(const char *setting, const char *spec, const char *host, int port, char **cause)
{
	struct addrinfo hints, *res = NULL, *ai;
	char service[16];
	int fd, rc, err = 0, one = 1;

	memset(&hints, 0, sizeof hints);
	/* IPv4 unless the host is an IPv6 address, as chatd's listener does. */
	hints.ai_family = strchr(host, ':') != NULL ? AF_INET6 : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(service, sizeof service, "%d", port);
	if ((rc = getaddrinfo(host, service, &hints, &res)) != 0) {
		*cause = xasprintf("%s %s: cannot resolve %s: %s", setting, spec, host,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -1;
	}
	/* The listener binds the first address; so does the probe. */
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol)) <
		    0) {
			err = errno;
			continue;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
		    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
			err = errno;
		else
			err = 0;
		close(fd);
		break;
	}
	freeaddrinfo(res);
	if (err != 0) {
		*cause = xasprintf("%s %s: cannot listen: %s", setting, spec, strerror(err));
		return -1;
	}
	return 0;
}

char *
probe_unix_cause(const char *setting, const char *path, int err)
{
	const char *slash = strrchr(path, '/');
	char *folder, *msg;

	if (slash == NULL)
		folder = xstrdup(".");
	else if (slash == path)
		folder = xstrdup("/");
	else
		folder = xstrndup(path, (size_t)(slash - path));
	msg = xasprintf("%s %s: cannot create the socket in %s: %s%s", setting, path, folder,
	    strerror(err),
	    err == EACCES || err == EPERM || err == EROFS ? " (the folder must be writable by "
							    "this user)"
							  : "");
	free(folder);
	return msg;
}

int
probe_unix(const char *setting, const char *path, char **cause)
{
	struct sockaddr_un sun;
	size_t len = strlen(path);
	int fd, err = 0;

	if (len >= sizeof sun.sun_path) {
		*cause = xasprintf(
		    "%s %s: longer than %zu bytes", setting, path, sizeof sun.sun_path - 1);
		return -1;
	}
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, len + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		*cause = xasprintf("%s %s: socket: %s", setting, path, strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0)
		err = errno;
	close(fd);
	if (err != 0) {
		*cause = probe_unix_cause(setting, path, err);
		return -1;
	}
	if (unlink(path) != 0) {
		*cause = xasprintf("%s %s: unlink: %s", setting, path, strerror(errno));
		return -1;
	}
	return 0;
}
