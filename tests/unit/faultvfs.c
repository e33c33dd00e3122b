/*
 * The fault-injecting VFS shim and allocator hooks (faultvfs.h). A shim
 * file is the real VFS's file placed right after a small header, so the
 * shim allocates nothing of its own.
 */
#include "autoconf.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "faultvfs.h"

struct fault_file {
	sqlite3_file base;
	sqlite3_file *real; /* follows this header in the same block */
};

static struct {
	atomic_long calls, failures, at;
	atomic_int persist, rc;
} faults[FAULT_KINDS];

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static sqlite3_mem_methods real_mem;
static int installed;

/* Whether this call of kind is one to fail. */
static int
fault_hit(enum fault_kind kind)
{
	long n = atomic_fetch_add(&faults[kind].calls, 1) + 1, at = atomic_load(&faults[kind].at);

	if (at <= 0 || n < at || (n > at && !atomic_load(&faults[kind].persist)))
		return 0;
	atomic_fetch_add(&faults[kind].failures, 1);
	return 1;
}

#define REAL(f) (((struct fault_file *)(f))->real)

static int
fault_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int
fault_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int
fault_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
	if (fault_hit(FAULT_WRITE))
		return atomic_load(&faults[FAULT_WRITE].rc);
	return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int
fault_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int
fault_sync(sqlite3_file *f, int flags)
{
	if (fault_hit(FAULT_SYNC))
		return atomic_load(&faults[FAULT_SYNC].rc);
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int
fault_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int
fault_lock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int
fault_unlock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int
fault_check_lock(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int
fault_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int
fault_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int
fault_device_chars(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int
fault_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, out);
}

static int
fault_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void
fault_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int
fault_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int
fault_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}

static int
fault_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods fault_io = {
	3,
	fault_close,
	fault_read,
	fault_write,
	fault_truncate,
	fault_sync,
	fault_file_size,
	fault_lock,
	fault_unlock,
	fault_check_lock,
	fault_file_control,
	fault_sector_size,
	fault_device_chars,
	fault_shm_map,
	fault_shm_lock,
	fault_shm_barrier,
	fault_shm_unmap,
	fault_fetch,
	fault_unfetch,
};

static int
fault_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
	struct fault_file *f = (struct fault_file *)file;
	int rc;

	(void)vfs;
	f->real = (sqlite3_file *)(f + 1);
	rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out);
	/* SQLite calls xClose whenever pMethods is set, even after a failure. */
	file->pMethods = f->real->pMethods != NULL ? &fault_io : NULL;
	return rc;
}

static void *
fault_malloc(int n)
{
	return fault_hit(FAULT_ALLOC) ? NULL : real_mem.xMalloc(n);
}

static void *
fault_realloc(void *p, int n)
{
	return fault_hit(FAULT_ALLOC) ? NULL : real_mem.xRealloc(p, n);
}

void
faultvfs_install(void)
{
	sqlite3_mem_methods mem;

	if (installed)
		return;
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) != SQLITE_OK)
		abort();
	mem = real_mem;
	mem.xMalloc = fault_malloc;
	mem.xRealloc = fault_realloc;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mem) != SQLITE_OK) {
		fprintf(stderr, "faultvfs: SQLite was initialised before faultvfs_install()\n");
		abort();
	}
	if (sqlite3_initialize() != SQLITE_OK || (real_vfs = sqlite3_vfs_find(NULL)) == NULL)
		abort();
	/* The real VFS's other methods ignore their vfs argument (unix). */
	fault_vfs = *real_vfs;
	fault_vfs.zName = "faultvfs";
	fault_vfs.szOsFile = (int)sizeof(struct fault_file) + real_vfs->szOsFile;
	fault_vfs.pNext = NULL;
	fault_vfs.xOpen = fault_open;
	if (sqlite3_vfs_register(&fault_vfs, 1) != SQLITE_OK)
		abort();
	installed = 1;
}

void
faultvfs_arm(enum fault_kind kind, long n, int persist, int rc)
{
	atomic_store(&faults[kind].at, 0);
	atomic_store(&faults[kind].calls, 0);
	atomic_store(&faults[kind].failures, 0);
	atomic_store(&faults[kind].persist, persist);
	atomic_store(&faults[kind].rc, rc);
	atomic_store(&faults[kind].at, n);
}

void
faultvfs_disarm(void)
{
	int k;

	for (k = 0; k < FAULT_KINDS; k++)
		atomic_store(&faults[k].at, 0);
}

long
faultvfs_calls(enum fault_kind kind)
{
	return atomic_load(&faults[kind].calls);
}

long
faultvfs_failures(enum fault_kind kind)
{
	return atomic_load(&faults[kind].failures);
}
