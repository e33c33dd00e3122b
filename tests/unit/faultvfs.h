/*
 * Test-only SQLite fault injection: a VFS shim, registered as the default
 * VFS, that passes every call to the real one except that it can fail the
 * n-th xWrite or xSync, and allocator hooks that can fail the n-th
 * allocation. Counters are shared by all threads (chatd's writer and
 * checkpointer run their own).
 */
#ifndef TESTS_FAULTVFS_H
#define TESTS_FAULTVFS_H

enum fault_kind {
	FAULT_WRITE, /* xWrite of any file: database, WAL, journal */
	FAULT_SYNC, /* xSync */
	FAULT_ALLOC, /* sqlite3_malloc / sqlite3_realloc: returns NULL */
	FAULT_KINDS
};

/*
 * Installs the allocator hooks and the shim. Must run before SQLite is
 * initialised (first thing in unit_suite()); a second call does nothing.
 */
void faultvfs_install(void);
/*
 * Counts kind's calls from 0 again, and fails the n-th one (n >= 1) with
 * rc (SQLITE_FULL, SQLITE_IOERR_WRITE, ...; ignored for allocations); with
 * persist, every call from the n-th on, as a full disk does. n = 0: none.
 */
void faultvfs_arm(enum fault_kind kind, long n, int persist, int rc);
/* Stops every injected failure (counting goes on). */
void faultvfs_disarm(void);
/* Calls of kind since it was last armed, and how many of them failed. */
long faultvfs_calls(enum fault_kind kind);
long faultvfs_failures(enum fault_kind kind);

#endif
