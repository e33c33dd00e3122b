/*
 * The database's files on disk: new database, -wal, -shm and lock files
 * are owner-only (owner and group in a set-group-ID folder) whatever the
 * umask; files another user planted or can change are refused with a
 * reason; the default database's private folder is made 0700 and checked.
 * Real files in a private temporary directory; the cases that need a file
 * of another user run only as root (chown).
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "check_main.h"

#include "db.h"
#include "dbfile.h"
#include "xmalloc.h"

#define TEST_DIR_TEMPLATE "/tmp/chatd-test-dbfile.XXXXXX"
#define NOBODY 65534

static char test_dir[] = TEST_DIR_TEMPLATE;

static void
setup(void)
{
	memcpy(test_dir, TEST_DIR_TEMPLATE, sizeof test_dir);
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	ck_assert_int_eq(chmod(test_dir, 0755), 0);
}

static void
remove_tree(const char *dir)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	char *p;

	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			p = xasprintf("%s/%s", dir, de->d_name);
			if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
				remove_tree(p);
			else
				unlink(p);
			free(p);
		}
		closedir(d);
	}
	rmdir(dir);
}

static void
teardown(void)
{
	remove_tree(test_dir);
}

static unsigned
mode_of(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "stat %s", path);
	return (unsigned)(st.st_mode & 07777);
}

static void
touch(const char *path, mode_t mode)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(close(fd), 0);
}

static void
assert_contains(const char *s, const char *part)
{
	ck_assert_msg(
	    s != NULL && strstr(s, part) != NULL, "\"%s\" lacks \"%s\"", s ? s : "(null)", part);
}

/* Opens path, writes a room (so -wal and -shm exist) and keeps it open. */
static struct db *
open_and_write(const char *path)
{
	struct db *db = NULL;
	char *cause = NULL;

	if (db_open(path, &db, &cause) != DB_OK)
		ck_abort_msg("db_open: %s", cause);
	if (db_room_create(db, "r", "room", NULL, 0, 1, &cause) != DB_OK)
		ck_abort_msg("db_room_create: %s", cause);
	return db;
}

START_TEST(test_new_files_owner_only_under_umask_0)
{
	char *path = xasprintf("%s/chat.db", test_dir), *wal, *shm;
	struct db *db;

	umask(0);
	db = open_and_write(path);
	wal = xasprintf("%s-wal", path);
	shm = xasprintf("%s-shm", path);
	ck_assert_uint_eq(mode_of(path), 0600);
	ck_assert_uint_eq(mode_of(wal), 0600);
	ck_assert_uint_eq(mode_of(shm), 0600);
	db_close(db);
	free(wal);
	free(shm);
	free(path);
}
END_TEST

START_TEST(test_setgid_folder_shares_with_group)
{
	char *dir = xasprintf("%s/shared", test_dir), *path, *wal, *lock, *cause = NULL;
	struct db *db;
	int fd;

	umask(077); /* the group bits come from the folder, not the umask */
	ck_assert_int_eq(mkdir(dir, 0770), 0);
	ck_assert_int_eq(chmod(dir, 02770), 0);
	path = xasprintf("%s/chat.db", dir);
	db = open_and_write(path);
	wal = xasprintf("%s-wal", path);
	ck_assert_uint_eq(mode_of(path), 0660);
	ck_assert_uint_eq(mode_of(wal), 0660);
	lock = xasprintf("%s.sync-data.lock", path);
	fd = dbfile_open_lock(lock, &cause);
	ck_assert_msg(fd >= 0, "%s", cause);
	ck_assert_uint_eq(mode_of(lock), 0660);
	close(fd);
	db_close(db);
	free(lock);
	free(wal);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_lock_file_owner_only)
{
	char *lock = xasprintf("%s/chat.db.sync-data.lock", test_dir), *cause = NULL;
	int fd;

	umask(0);
	fd = dbfile_open_lock(lock, &cause);
	ck_assert_msg(fd >= 0, "%s", cause);
	ck_assert_uint_eq(mode_of(lock), 0600);
	close(fd);
	/* One an older version left readable by everybody is closed up. */
	ck_assert_int_eq(chmod(lock, 0644), 0);
	fd = dbfile_open_lock(lock, &cause);
	ck_assert_msg(fd >= 0, "%s", cause);
	ck_assert_uint_eq(mode_of(lock), 0600);
	close(fd);
	free(lock);
}
END_TEST

START_TEST(test_world_readable_db_closed_up)
{
	char *path = xasprintf("%s/chat.db", test_dir);
	struct db *db;

	touch(path, 0644); /* as the quick start used to leave it */
	db = open_and_write(path);
	ck_assert_uint_eq(mode_of(path), 0640);
	db_close(db);
	free(path);
}
END_TEST

START_TEST(test_world_writable_db_refused)
{
	char *path = xasprintf("%s/chat.db", test_dir), *wal, *cause = NULL;
	struct db *db = NULL;

	touch(path, 0666);
	ck_assert_int_eq(db_open(path, &db, &cause), DB_ERROR);
	ck_assert_ptr_null(db);
	assert_contains(cause, path);
	assert_contains(cause, "can be written by every user");
	free(cause);
	cause = NULL;

	/* A -wal others can write would be replayed into the database. */
	ck_assert_int_eq(chmod(path, 0600), 0);
	wal = xasprintf("%s-wal", path);
	touch(wal, 0666);
	ck_assert_int_eq(db_open(path, &db, &cause), DB_ERROR);
	assert_contains(cause, wal);
	free(cause);
	free(wal);
	free(path);
}
END_TEST

/* Another user's file in a folder everybody can write to (/tmp, /dev/shm). */
START_TEST(test_planted_in_shared_folder_refused)
{
	char *dir = xasprintf("%s/tmp", test_dir), *path, *cause = NULL;
	struct db *db = NULL;

	if (geteuid() != 0)
		return; /* needs chown */
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chmod(dir, 01777), 0);
	path = xasprintf("%s/chat.db", dir);
	touch(path, 0644);
	ck_assert_int_eq(chown(path, NOBODY, NOBODY), 0);
	ck_assert_int_eq(db_open(path, &db, &cause), DB_ERROR);
	assert_contains(cause, path);
	assert_contains(cause, "belongs to uid 65534");
	assert_contains(cause, "planted");
	free(cause);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_private_dir_created_0700)
{
	char *dir = xasprintf("%s/chatd-1", test_dir), *cause = NULL;

	umask(0);
	ck_assert_msg(dbfile_private_dir(dir, &cause) == 0, "%s", cause);
	ck_assert_uint_eq(mode_of(dir), 0700);
	/* Again: an existing folder of ours is fine. */
	ck_assert_msg(dbfile_private_dir(dir, &cause) == 0, "%s", cause);
	/* Readable by others: ours, so closed up. */
	ck_assert_int_eq(chmod(dir, 0755), 0);
	ck_assert_msg(dbfile_private_dir(dir, &cause) == 0, "%s", cause);
	ck_assert_uint_eq(mode_of(dir), 0700);
	free(dir);
}
END_TEST

START_TEST(test_private_dir_refusals)
{
	char *dir = xasprintf("%s/open", test_dir), *link, *cause = NULL;

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(dbfile_private_dir(dir, &cause), -1);
	assert_contains(cause, dir);
	assert_contains(cause, "can be written by other users");
	free(cause);
	cause = NULL;

	link = xasprintf("%s/link", test_dir);
	ck_assert_int_eq(symlink(dir, link), 0);
	ck_assert_int_eq(dbfile_private_dir(link, &cause), -1);
	assert_contains(cause, "symbolic link");
	free(cause);
	cause = NULL;

	if (geteuid() == 0) {
		ck_assert_int_eq(chmod(dir, 0700), 0);
		ck_assert_int_eq(chown(dir, NOBODY, NOBODY), 0);
		ck_assert_int_eq(dbfile_private_dir(dir, &cause), -1);
		assert_contains(cause, "belongs to uid 65534");
		assert_contains(cause, "another user created it first");
		free(cause);
	}
	free(link);
	free(dir);
}
END_TEST

/* The default database: a file in the private folder that is not ours alone. */
START_TEST(test_private_db_planted_refused)
{
	char *dir = xasprintf("%s/chatd-1", test_dir), *path, *cause = NULL;

	path = xasprintf("%s/%s", dir, DBFILE_MEMORY_NAME);
	ck_assert_msg(dbfile_prepare(path, 1, &cause) == 0, "%s", cause);
	ck_assert_uint_eq(mode_of(dir), 0700);
	ck_assert_uint_eq(mode_of(path), 0600);

	ck_assert_int_eq(chmod(path, 0620), 0);
	ck_assert_int_eq(dbfile_prepare(path, 1, &cause), -1);
	assert_contains(cause, path);
	assert_contains(cause, "written by its group");
	free(cause);
	cause = NULL;

	if (geteuid() == 0) {
		ck_assert_int_eq(chmod(path, 0600), 0);
		ck_assert_int_eq(chown(path, NOBODY, NOBODY), 0);
		ck_assert_int_eq(dbfile_prepare(path, 1, &cause), -1);
		assert_contains(cause, "belongs to uid 65534");
		assert_contains(cause, "the private folder");
		free(cause);
	}
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_memory_path_private_per_user)
{
	char *path = dbfile_memory_path(), *dir = dbfile_memory_dir();
	char *want = xasprintf("/dev/shm/chatd-%lu/memory.db", (unsigned long)geteuid());

	ck_assert_str_eq(path, want);
	ck_assert_int_eq(strncmp(path, dir, strlen(dir)), 0);
	free(want);
	free(dir);
	free(path);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("dbfile");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_new_files_owner_only_under_umask_0);
	tcase_add_test(tc, test_setgid_folder_shares_with_group);
	tcase_add_test(tc, test_lock_file_owner_only);
	tcase_add_test(tc, test_world_readable_db_closed_up);
	tcase_add_test(tc, test_world_writable_db_refused);
	tcase_add_test(tc, test_planted_in_shared_folder_refused);
	tcase_add_test(tc, test_private_dir_created_0700);
	tcase_add_test(tc, test_private_dir_refusals);
	tcase_add_test(tc, test_private_db_planted_refused);
	tcase_add_test(tc, test_memory_path_private_per_user);
	suite_add_tcase(s, tc);
	return s;
}
