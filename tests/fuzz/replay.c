/*
 * Runs a fuzz target over saved inputs without libFuzzer, so `make check`
 * replays the committed corpus and every crash once found stays a
 * regression test. Arguments are files or directories (not recursive);
 * with none, the corpus named at build time (FUZZ_CORPUS_DIR,
 * tests/fuzz/corpus/NAME) is used, and tests/fuzz/crashers/NAME too when
 * it exists: a crasher `make fuzz` kept fails `make check` until fixed.
 * Links one target's LLVMFuzzerTestOneInput; touches nothing but reads.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "xmalloc.h"

/* Largest input replayed; libFuzzer's default -max_len is far below. */
#define REPLAY_MAX (4 * 1024 * 1024)

/* Feeds one file to the target; -1 if it cannot be read. */
static int
replay_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	buf = xmalloc(REPLAY_MAX);
	for (;;) {
		n = read(fd, buf + len, REPLAY_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == REPLAY_MAX)
			break;
	}
	if (n < 0) {
		saved = errno;
		(void)close(fd);
		free(buf);
		fprintf(stderr, "replay: %s: %s\n", path, strerror(saved));
		return -1;
	}
	(void)close(fd);
	/* Copy to an exact-size buffer so ASan sees any read past the end. */
	buf = xrealloc(buf, len);
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	free(buf);
	return 0;
}

static int
replay_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file in dir, in name order; returns the count or -1. */
static int
replay_dir(const char *dir)
{
	struct dirent *de;
	struct stat sb;
	char **paths = NULL;
	size_t n = 0, i;
	DIR *d;
	int count = 0;

	d = opendir(dir);
	if (d == NULL) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		paths = xreallocarray(paths, n + 1, sizeof *paths);
		paths[n++] = xasprintf("%s/%s", dir, de->d_name);
	}
	(void)closedir(d);
	/* A fixed order makes a failure name the same input every run. */
	qsort(paths, n, sizeof *paths, replay_compare);
	for (i = 0; i < n; i++) {
		if (count >= 0 && stat(paths[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
			if (replay_file(paths[i]) != 0)
				count = -1;
			else
				count++;
		}
		free(paths[i]);
	}
	free(paths);
	return count;
}

#ifdef FUZZ_CORPUS_DIR
/* tests/fuzz/crashers/NAME beside tests/fuzz/corpus/NAME, or NULL if absent. */
static char *
replay_crashers_dir(const char *corpus)
{
	const char *name = strrchr(corpus, '/');
	struct stat sb;
	char *dir;

	if (name == NULL || name - corpus < 7 || strncmp(name - 7, "/corpus", 7) != 0)
		return NULL;
	dir = xasprintf("%.*s/crashers%s", (int)(name - 7 - corpus), corpus, name);
	if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
		free(dir);
		return NULL;
	}
	return dir;
}
#endif

int
main(int argc, char **argv)
{
	struct stat sb;
	int i, n, total = 0;

	if (argc < 2) {
#ifdef FUZZ_CORPUS_DIR
		static char *defaults[] = { NULL, (char *)FUZZ_CORPUS_DIR, NULL, NULL };

		defaults[0] = argv[0];
		defaults[2] = replay_crashers_dir(FUZZ_CORPUS_DIR);
		argv = defaults;
		argc = defaults[2] != NULL ? 3 : 2;
#else
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
#endif
	}
	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &sb) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		if (S_ISDIR(sb.st_mode))
			n = replay_dir(argv[i]);
		else
			n = replay_file(argv[i]) == 0 ? 1 : -1;
		if (n < 0)
			return 1;
		printf("%s: %d input%s\n", argv[i], n, n == 1 ? "" : "s");
		total += n;
	}
	printf("replayed %d input%s\n", total, total == 1 ? "" : "s");
	return 0;
}
