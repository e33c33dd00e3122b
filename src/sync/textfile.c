/*
 * Atomic file replacement (see textfile.h). The temporary name does not
 * end in .prom, so the textfile collector never reads it.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "textfile.h"
#include "xmalloc.h"

int
textfile_write(const char *path, const char *text, char **cause)
{
	char *tmp = xasprintf("%s.%ld.tmp", path, (long)getpid());
	size_t len = strlen(text), off = 0;
	ssize_t n;
	int fd, err;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		*cause = xasprintf("%s: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	while (off < len) {
		n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		off += (size_t)n;
	}
	err = off < len ? errno : 0;
	if (close(fd) != 0 && err == 0)
		err = errno;
	if (err == 0 && rename(tmp, path) != 0)
		err = errno;
	if (err != 0) {
		*cause = xasprintf("%s: %s", off < len ? tmp : path, strerror(err));
		(void)unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}
