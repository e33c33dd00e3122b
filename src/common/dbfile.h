/*
 * The database's files on disk: where the default "in-memory" database
 * lives, with which modes the database, its -wal/-shm and its lock files
 * are created, and which existing files are trusted. No SQL here; db_sqlite.c
 * calls dbfile_prepare() before SQLite opens anything.
 *
 * Modes: new files are 0600 (owner only), or 0660 when the database's
 * folder has the set-group-ID bit (the sign that a group shares it: files
 * made there take the folder's group), whatever the umask. SQLite gives
 * the -wal and -shm files the mode of the database file.
 *
 * Any thread (no state of its own).
 */
#ifndef CHAT_DBFILE_H
#define CHAT_DBFILE_H

#include <sys/types.h>

/* The tmpfs under which each user gets a private folder, chatd-<uid>. */
#define DBFILE_MEMORY_BASE "/dev/shm"
#define DBFILE_MEMORY_NAME "memory.db"

/* "/dev/shm/chatd-<euid>" (heap): the folder of the default database. */
char *dbfile_memory_dir(void);
/* "/dev/shm/chatd-<euid>/memory.db" (heap): DATABASE_URL unset or sqlite::memory:. */
char *dbfile_memory_path(void);

/*
 * Creates dir with mode 0700 if it is missing, then checks it (lstat, after
 * creation too): a folder, not a symbolic link, owned by this user, and
 * nobody else may write to it. 0, or -1 with *cause naming the folder and
 * what is wrong with it.
 */
int dbfile_private_dir(const char *dir, char **cause);

/*
 * Before the database at path is opened: creates it empty with the mode
 * above if it does not exist; otherwise refuses it (and an existing -wal or
 * -shm) when others could have planted or changed it: writable by every
 * user; owned by another user in a folder others can write to; inside the
 * private folder, owned by anyone else or writable by the group. A file of
 * ours that every user can read loses that (with a warning). With
 * private_dir, dbfile_private_dir() runs on its folder first. 0, or -1 with
 * *cause naming the file and the reason.
 */
int dbfile_prepare(const char *path, int private_dir, char **cause);

/* The mode new files next to path get: 0600, or 0660 in a set-group-ID folder. */
mode_t dbfile_mode(const char *path);

/*
 * Opens (creating with dbfile_mode(path)) a lock file for flock():
 * read-write, close-on-exec, never through a symbolic link. The fd, or -1
 * with *cause.
 */
int dbfile_open_lock(const char *path, char **cause);

/* The size in bytes of the database's -wal file: 0 when there is none, -1 if unknown. */
long long dbfile_wal_bytes(const char *path);

#endif
