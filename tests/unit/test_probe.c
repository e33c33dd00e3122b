/*
 * Unit tests for probe.c: a port in use, a free port, a socket folder that
 * is missing or not writable, each reported in one line naming the
 * setting, the address and the system's reason. The unwritable folder is
 * real only when not running as root (root may write anywhere); its
 * message is checked from the errno in any case.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "check_main.h"

#include "probe.h"
#include "xmalloc.h"

/* A listening socket on 127.0.0.1 and an ephemeral port; returns the fd. */
static int
listening(int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

START_TEST(test_tcp_in_use)
{
	char *cause = NULL, spec[32];
	int port, fd = listening(&port);

	snprintf(spec, sizeof spec, "127.0.0.1:%d", port);
	ck_assert_int_eq(probe_tcp("CHATD_LISTEN", spec, "127.0.0.1", port, &cause), -1);
	ck_assert_ptr_nonnull(cause);
	ck_assert_int_eq(count(cause, "CHATD_LISTEN"), 1);
	ck_assert_int_eq(count(cause, spec), 1);
	ck_assert_int_eq(count(cause, strerror(EADDRINUSE)), 1);
	ck_assert_ptr_null(strchr(cause, '\n'));
	free(cause);
	close(fd);
	/* Free again: the probe leaves nothing bound behind. */
	cause = NULL;
	ck_assert_int_eq(probe_tcp("CHATD_LISTEN", spec, "127.0.0.1", port, &cause), 0);
	ck_assert_int_eq(probe_tcp("CHATD_LISTEN", spec, "127.0.0.1", port, &cause), 0);
	ck_assert_ptr_null(cause);
}
END_TEST

START_TEST(test_unix_ok_and_missing_folder)
{
	char dir[] = "/tmp/chatd-probe-XXXXXX", *path, *cause = NULL;
	struct stat st;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = xasprintf("%s/control.sock", dir);
	ck_assert_int_eq(probe_unix("CONTROL_SOCKET", path, &cause), 0);
	ck_assert_int_ne(lstat(path, &st), 0); /* removed again */
	free(path);

	path = xasprintf("%s/missing/control.sock", dir);
	ck_assert_int_eq(probe_unix("CONTROL_SOCKET", path, &cause), -1);
	ck_assert_int_eq(count(cause, "CONTROL_SOCKET"), 1);
	ck_assert_int_eq(count(cause, path), 1);
	ck_assert_int_eq(count(cause, strerror(ENOENT)), 1);
	ck_assert_ptr_nonnull(strstr(cause, "cannot create the socket in "));
	free(cause);
	free(path);

	/* A folder we may not write to: real EACCES unless root. */
	if (geteuid() != 0) {
		char *ro = xasprintf("%s/ro", dir);
		ck_assert_int_eq(mkdir(ro, 0555), 0);
		path = xasprintf("%s/control.sock", ro);
		cause = NULL;
		ck_assert_int_eq(probe_unix("CONTROL_SOCKET", path, &cause), -1);
		ck_assert_ptr_nonnull(strstr(cause, strerror(EACCES)));
		free(cause);
		free(path);
		ck_assert_int_eq(rmdir(ro), 0);
		free(ro);
	}
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_unix_cause)
{
	char *msg = probe_unix_cause("CONTROL_SOCKET", "/run/chatd/control.sock", EACCES);

	ck_assert_str_eq(msg,
	    "CONTROL_SOCKET /run/chatd/control.sock: cannot create the socket in "
	    "/run/chatd: Permission denied (the folder must be writable by this "
	    "user)");
	free(msg);
	msg = probe_unix_cause("CONTROL_SOCKET", "/control.sock", ENOENT);
	ck_assert_str_eq(msg,
	    "CONTROL_SOCKET /control.sock: cannot create the socket in /: No such "
	    "file or directory");
	free(msg);
	msg = probe_unix_cause("CONTROL_SOCKET", "control.sock", ENOTDIR);
	ck_assert_str_eq(msg,
	    "CONTROL_SOCKET control.sock: cannot create the socket in .: Not a "
	    "directory");
	free(msg);
}
END_TEST

START_TEST(test_unix_too_long)
{
	char path[200], *cause = NULL;

	memset(path, 'a', sizeof path - 1);
	path[0] = '/';
	path[sizeof path - 1] = '\0';
	ck_assert_int_eq(probe_unix("CONTROL_SOCKET", path, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "longer than"));
	free(cause);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("probe");
	TCase *tc = tcase_create("probe");

	tcase_add_test(tc, test_tcp_in_use);
	tcase_add_test(tc, test_unix_ok_and_missing_folder);
	tcase_add_test(tc, test_unix_cause);
	tcase_add_test(tc, test_unix_too_long);
	suite_add_tcase(s, tc);
	return s;
}
