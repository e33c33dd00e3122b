/*
 * Unit tests for log.c: one line per record, the threshold, and the
 * journal's "<N>" priorities only when stderr really is the stream that
 * JOURNAL_STREAM names.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "check_main.h"

#include "log.h"

/* Runs fn with stderr on a pipe, JOURNAL_STREAM set as asked; returns what was written. */
static char *
capture(void (*fn)(void), int journal, int wrong_inode)
{
	static char out[4096];
	struct stat st;
	char js[64];
	int p[2], saved;
	ssize_t n;

	ck_assert_int_eq(pipe(p), 0);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
	ck_assert_int_eq(fstat(p[1], &st), 0);
	if (journal) {
		snprintf(js, sizeof js, "%ju:%ju", (uintmax_t)st.st_dev,
		    (uintmax_t)st.st_ino + (wrong_inode ? 1 : 0));
		ck_assert_int_eq(setenv("JOURNAL_STREAM", js, 1), 0);
	} else
		ck_assert_int_eq(unsetenv("JOURNAL_STREAM"), 0);
	log_init("prog", LOG_LEVEL_INFO);
	fn();
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(p[1]);
	n = read(p[0], out, sizeof out - 1);
	ck_assert_int_ge(n, 0);
	out[n] = '\0';
	close(p[0]);
	return out;
}

static void
write_some(void)
{
	log_debug("not shown %d", 1);
	log_info("hello %s", "world");
	log_warn("careful");
	log_error("broken: %d", 42);
}

START_TEST(test_plain)
{
	char *out = capture(write_some, 0, 0);
	char want[256];

	snprintf(want, sizeof want,
	    "prog[%ld]: info: hello world\nprog[%ld]: warning: careful\nprog[%ld]: error: broken: "
	    "42\n",
	    (long)getpid(), (long)getpid(), (long)getpid());
	ck_assert_str_eq(out, want);
	ck_assert_int_eq(log_stderr_is_journal(), 0);
}
END_TEST

START_TEST(test_journal)
{
	char *out = capture(write_some, 1, 0);

	ck_assert_str_eq(out, "<6>hello world\n<4>careful\n<3>broken: 42\n");
}
END_TEST

/* A JOURNAL_STREAM inherited from a parent whose stderr was the journal,
 * while ours goes elsewhere: plain lines. */
START_TEST(test_journal_other_stream)
{
	char *out = capture(write_some, 1, 1);

	ck_assert_ptr_nonnull(strstr(out, "prog["));
	ck_assert_ptr_null(strstr(out, "<6>"));
	ck_assert_int_eq(setenv("JOURNAL_STREAM", "garbage", 1), 0);
	ck_assert_int_eq(log_stderr_is_journal(), 0);
	ck_assert_int_eq(setenv("JOURNAL_STREAM", "1:2x", 1), 0);
	ck_assert_int_eq(log_stderr_is_journal(), 0);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");

	tcase_add_test(tc, test_plain);
	tcase_add_test(tc, test_journal);
	tcase_add_test(tc, test_journal_other_stream);
	suite_add_tcase(s, tc);
	return s;
}
