/*
 * The database's files on disk (see dbfile.h): the private folder of the
 * default database, the modes new files get, and the checks that keep a
 * file another user planted or can change from being adopted. Touches the
 * file system only; knows nothing about SQL or the programs.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbfile.h"
#include "log.h"
#include "xmalloc.h"

char *
dbfile_memory_dir(void)
{
	return xasprintf("%s/chatd-%lu", DBFILE_MEMORY_BASE, (unsigned long)geteuid());
}

char *
dbfile_memory_path(void)
{
	char *dir = dbfile_memory_dir(), *path;

	path = xasprintf("%s/%s", dir, DBFILE_MEMORY_NAME);
	free(dir);
	return path;
}

/* The folder part of path (heap): "." for a bare name, "/" for "/x". */
static char *
dbfile_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

int
dbfile_private_dir(const char *dir, char **cause)
{
	struct stat st;
	int created = 1;

	if (mkdir(dir, 0700) != 0) {
		if (errno != EEXIST) {
			*cause = xasprintf(
			    "cannot create the private folder %s: %s", dir, strerror(errno));
			return -1;
		}
		created = 0;
	}
	/* Checked after mkdir too: another user may have won the race. */
	if (lstat(dir, &st) != 0) {
		*cause = xasprintf("private folder %s: %s", dir, strerror(errno));
		return -1;
	}
	if (S_ISLNK(st.st_mode)) {
		*cause = xasprintf("private folder %s is a symbolic link, which another user may "
				   "have planted; refusing it (remove it, or set DATABASE_URL)",
		    dir);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		*cause = xasprintf("private folder %s is not a folder; refusing it (remove it, or "
				   "set DATABASE_URL)",
		    dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		*cause =
		    xasprintf("private folder %s belongs to uid %lu, not to this user (uid "
			      "%lu): another user created it first; refusing it (remove it, or "
			      "set DATABASE_URL to a file in a folder of your own)",
			dir, (unsigned long)st.st_uid, (unsigned long)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		*cause =
		    xasprintf("private folder %s can be written by other users (mode %04o), "
			      "who may have planted files in it; refusing it (remove it, or set "
			      "DATABASE_URL)",
			dir, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	/* Ours and closed to writers: take away what others may read, and
	 * whatever the umask left out of a new one. */
	if ((st.st_mode & 0777) != 0700 && chmod(dir, 0700) != 0) {
		*cause = xasprintf("chmod 0700 %s: %s", dir, strerror(errno));
		return -1;
	}
	if (created)
		log_debug("created the private folder %s", dir);
	return 0;
}

mode_t
dbfile_mode(const char *path)
{
	char *dir = dbfile_dir_of(path);
	struct stat st;
	mode_t mode = 0600;

	if (stat(dir, &st) == 0 && (st.st_mode & S_ISGID))
		mode = 0660;
	free(dir);
	return mode;
}

/*
 * One existing file of the database (the file itself, -wal or -shm) at
 * path, described by st, in a folder described by dir: 0 if it may be
 * used, -1 with *cause if others could have planted or changed it.
 */
static int
dbfile_check(
    const char *path, const struct stat *st, const struct stat *dir, int private_dir, char **cause)
{
	unsigned mode = (unsigned)(st->st_mode & 07777);
	uid_t me = geteuid();

	if (!S_ISREG(st->st_mode)) {
		*cause = xasprintf("%s is not a regular file; refusing it", path);
		return -1;
	}
	if (st->st_mode & S_IWOTH) {
		*cause = xasprintf("%s can be written by every user (mode %04o): another user may "
				   "have planted or changed it; refusing it (check it, then chmod "
				   "o-w, or remove it)",
		    path, mode);
		return -1;
	}
	if (st->st_uid != me && (private_dir || (dir->st_mode & S_IWOTH))) {
		*cause =
		    xasprintf("%s belongs to uid %lu, not to this user (uid %lu), in %s: "
			      "another user may have planted it; refusing it (remove it, or use "
			      "a folder other users cannot write to)",
			path, (unsigned long)st->st_uid, (unsigned long)me,
			private_dir ? "the private folder" : "a folder every user can write to");
		return -1;
	}
	if (private_dir && (st->st_mode & S_IWGRP)) {
		*cause = xasprintf("%s can be written by its group (mode %04o) inside the private "
				   "folder; refusing it (chmod g-w, or remove it)",
		    path, mode);
		return -1;
	}
	/* Made by an older version or by hand with a lax umask: every message
	 * and client address in it was readable by every local user. */
	if (st->st_uid == me && (st->st_mode & 0007)) {
		if (chmod(path, st->st_mode & 07770) != 0) {
			*cause = xasprintf("chmod o-rwx %s: %s", path, strerror(errno));
			return -1;
		}
		log_warn("%s was readable by every user (mode %04o); now %04o", path, mode,
		    mode & 07770);
	}
	return 0;
}

int
dbfile_prepare(const char *path, int private_dir, char **cause)
{
	static const char *const companions[] = { "-wal", "-shm" };
	struct stat st, dir;
	char *folder = dbfile_dir_of(path), *other;
	mode_t mode;
	int fd, rc = -1;

	if (private_dir && dbfile_private_dir(folder, cause) != 0)
		goto out;
	if (stat(folder, &dir) != 0) {
		*cause =
		    xasprintf("database %s: cannot open its folder: %s", path, strerror(errno));
		goto out;
	}
	mode = (dir.st_mode & S_ISGID) ? 0660 : 0600;
	/*
	 * Created here, not by SQLite (which would use 0644 less the umask):
	 * the -wal and -shm files SQLite makes later copy this file's mode.
	 */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd >= 0) {
		if (fchmod(fd, mode) != 0) {
			*cause =
			    xasprintf("chmod %04o %s: %s", (unsigned)mode, path, strerror(errno));
			close(fd);
			goto out;
		}
		if (close(fd) != 0) {
			*cause = xasprintf("database %s: close: %s", path, strerror(errno));
			goto out;
		}
	} else if (errno == EEXIST || (errno == ELOOP && !private_dir)) {
		/* An existing file, or a link an operator made to one. */
		if (stat(path, &st) != 0) {
			*cause = xasprintf("database %s: %s", path, strerror(errno));
			goto out;
		}
		if (dbfile_check(path, &st, &dir, private_dir, cause) != 0)
			goto out;
	} else if (errno == ELOOP) {
		*cause =
		    xasprintf("%s is a symbolic link inside the private folder; refusing it", path);
		goto out;
	} else {
		*cause = xasprintf("database %s: cannot create it: %s", path, strerror(errno));
		goto out;
	}
	/* A planted -wal would be replayed into the database at open. */
	for (size_t i = 0; i < sizeof companions / sizeof companions[0]; i++) {
		other = xasprintf("%s%s", path, companions[i]);
		if (lstat(other, &st) != 0) {
			if (errno != ENOENT) {
				*cause = xasprintf("%s: %s", other, strerror(errno));
				free(other);
				goto out;
			}
		} else if (dbfile_check(other, &st, &dir, private_dir, cause) != 0) {
			free(other);
			goto out;
		}
		free(other);
	}
	rc = 0;
out:
	free(folder);
	return rc;
}

int
dbfile_open_lock(const char *path, char **cause)
{
	mode_t mode = dbfile_mode(path);
	struct stat st;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		*cause = xasprintf("lock file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		*cause = xasprintf("lock file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	/* Ours: exactly the mode, whatever the umask; another user's (a shared
	 * group) is left as it is. */
	if (st.st_uid == geteuid() && (st.st_mode & 0777) != mode && fchmod(fd, mode) != 0) {
		*cause = xasprintf("chmod %04o %s: %s", (unsigned)mode, path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

long long
dbfile_wal_bytes(const char *path)
{
	char *wal = xasprintf("%s-wal", path);
	struct stat st;
	long long n;

	if (stat(wal, &st) == 0)
		n = (long long)st.st_size;
	else
		n = errno == ENOENT ? 0 : -1;
	free(wal);
	return n;
}
