/*
 * The unit tests' scratch folders: a test makes one with mkdtemp() and
 * removes it, with the files in it, when done (a database, its -wal and
 * -shm, lock files; no subfolders).
 */
#ifndef TESTDIR_H
#define TESTDIR_H

/* Removes dir's files, then dir itself; quiet if it is already gone. */
void testdir_remove(const char *dir);

#endif
