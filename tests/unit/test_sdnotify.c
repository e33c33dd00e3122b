/*
 * Unit tests for sdnotify.c against a real datagram socket standing in
 * for systemd: the states arrive as sent, on a path or in the abstract
 * namespace, nothing is sent outside systemd, and the watchdog interval is
 * read as sd_watchdog_enabled(3) reads it.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "check_main.h"

#include "sdnotify.h"

/* Binds a datagram socket at name (a path, or "@name"); returns its fd. */
static int
listener(const char *name)
{
	struct sockaddr_un sun;
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, name, len);
	if (name[0] == '@')
		sun.sun_path[0] = '\0';
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)),
	    0);
	return fd;
}

static void
expect(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);

	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	ck_assert_str_eq(buf, want);
}

START_TEST(test_path_socket)
{
	char dir[] = "/tmp/chatd-test-notify-XXXXXX", path[128];
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/notify", dir);
	fd = listener(path);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	ck_assert_int_eq(sdnotify_send("READY=1"), 0);
	expect(fd, "READY=1");
	ck_assert_int_eq(sdnotify_send("STATUS=serving 3 rooms\nWATCHDOG=1"), 0);
	expect(fd, "STATUS=serving 3 rooms\nWATCHDOG=1");
	close(fd);
	unlink(path);
	rmdir(dir);

	/* the socket gone: an error the caller can log, not a crash */
	ck_assert_int_eq(sdnotify_send("STOPPING=1"), -1);
	ck_assert_int_ne(errno, 0);
}
END_TEST

START_TEST(test_abstract_socket)
{
	char name[64];
	int fd;

	snprintf(name, sizeof name, "@chatd-test-notify-%ld", (long)getpid());
	fd = listener(name);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
	ck_assert_int_eq(sdnotify_send("STOPPING=1"), 0);
	expect(fd, "STOPPING=1");
	close(fd);
}
END_TEST

START_TEST(test_not_under_systemd)
{
	ck_assert_int_eq(unsetenv("NOTIFY_SOCKET"), 0);
	ck_assert_int_eq(sdnotify_send("READY=1"), 0);
	ck_assert_int_eq(setenv("NOTIFY_SOCKET", "relative/path", 1), 0);
	ck_assert_int_eq(sdnotify_send("READY=1"), -1);
	ck_assert_int_eq(errno, EINVAL);
}
END_TEST

START_TEST(test_watchdog_interval)
{
	char pid[32];

	ck_assert_int_eq(unsetenv("WATCHDOG_USEC"), 0);
	ck_assert_int_eq(unsetenv("WATCHDOG_PID"), 0);
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(), 0);
	ck_assert_int_eq(setenv("WATCHDOG_USEC", "30000000", 1), 0);
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(), 15000);
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	ck_assert_int_eq(setenv("WATCHDOG_PID", pid, 1), 0);
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(), 15000);
	/* meant for another process (a parent that exec'd us keeps its env) */
	snprintf(pid, sizeof pid, "%ld", (long)getpid() + 1);
	ck_assert_int_eq(setenv("WATCHDOG_PID", pid, 1), 0);
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(), 0);
	ck_assert_int_eq(unsetenv("WATCHDOG_PID"), 0);
	ck_assert_int_eq(setenv("WATCHDOG_USEC", "soon", 1), 0);
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(), 0);
	ck_assert_int_eq(setenv("WATCHDOG_USEC", "1", 1), 0);
	ck_assert_int_eq(sdnotify_watchdog_interval_ms(), 1);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("sdnotify");
	TCase *tc = tcase_create("sdnotify");

	tcase_add_test(tc, test_path_socket);
	tcase_add_test(tc, test_abstract_socket);
	tcase_add_test(tc, test_not_under_systemd);
	tcase_add_test(tc, test_watchdog_interval);
	suite_add_tcase(s, tc);
	return s;
}
