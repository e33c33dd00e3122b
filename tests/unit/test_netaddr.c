/*
 * Trusted-proxy lists (addresses and CIDR ranges, IPv4 and IPv6, the
 * errors a bad TRUSTED_PROXIES entry gives) and the right-to-left
 * X-Forwarded-For walk that finds the client behind trusted proxies.
 */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "netaddr.h"

static struct netaddr_list
list_of(const char *spec)
{
	struct netaddr_list l;
	char *cause = NULL;

	if (netaddr_list_parse(spec, &l, &cause) != 0)
		ck_abort_msg("%s: %s", spec, cause);
	return l;
}

START_TEST(test_parse_addresses)
{
	unsigned char a[16], b[16];

	ck_assert_int_eq(netaddr_parse("127.0.0.1", a), 0);
	ck_assert_int_eq(netaddr_parse("::ffff:127.0.0.1", b), 0);
	ck_assert_mem_eq(a, b, 16);
	ck_assert_int_eq(netaddr_parse("::1", a), 0);
	ck_assert_int_eq(netaddr_parse("2001:db8::7", a), 0);
	ck_assert_int_eq(netaddr_parse("", a), -1);
	ck_assert_int_eq(netaddr_parse("localhost", a), -1);
	ck_assert_int_eq(netaddr_parse("1.2.3", a), -1);
	ck_assert_int_eq(netaddr_parse("1.2.3.4 ", a), -1);
	ck_assert_int_eq(netaddr_parse("unix", a), -1);
}
END_TEST

START_TEST(test_list_match_v4)
{
	struct netaddr_list l = list_of(" 127.0.0.0/8 , 10.1.2.3,192.168.0.0/23,0.0.0.0/32");

	ck_assert_uint_eq(l.n, 4);
	ck_assert_int_eq(netaddr_list_match(&l, "127.0.0.1"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "127.255.255.254"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "::ffff:127.0.0.9"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "128.0.0.1"), 0);
	ck_assert_int_eq(netaddr_list_match(&l, "10.1.2.3"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "10.1.2.4"), 0);
	ck_assert_int_eq(netaddr_list_match(&l, "192.168.1.200"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "192.168.2.1"), 0);
	ck_assert_int_eq(netaddr_list_match(&l, "0.0.0.0"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "0.0.0.1"), 0);
	/* IPv4 ranges never catch IPv6 addresses and the other way round */
	ck_assert_int_eq(netaddr_list_match(&l, "::1"), 0);
	ck_assert_int_eq(netaddr_list_match(&l, "::7f00:1"), 0);
	ck_assert_int_eq(netaddr_list_match(&l, "not-an-address"), 0);
	ck_assert_int_eq(netaddr_list_match(&l, ""), 0);
	netaddr_list_clear(&l);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_ptr_null(l.v);
}
END_TEST

START_TEST(test_list_match_v6)
{
	struct netaddr_list l = list_of("::1,2001:db8::/33,fe80::/10");

	ck_assert_int_eq(netaddr_list_match(&l, "::1"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "0:0:0:0:0:0:0:1"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "::2"), 0);
	ck_assert_int_eq(netaddr_list_match(&l, "2001:db8:7fff::1"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "2001:db8:8000::1"), 0);
	ck_assert_int_eq(netaddr_list_match(&l, "febf:1::"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "fec0::"), 0);
	ck_assert_int_eq(netaddr_list_match(&l, "127.0.0.1"), 0);
	netaddr_list_clear(&l);

	/* /0 trusts everything of its family; an IPv4 /0 is not all of IPv6 */
	l = list_of("0.0.0.0/0");
	ck_assert_int_eq(netaddr_list_match(&l, "203.0.113.5"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "2001:db8::1"), 0);
	netaddr_list_clear(&l);
	l = list_of("::/0");
	ck_assert_int_eq(netaddr_list_match(&l, "2001:db8::1"), 1);
	ck_assert_int_eq(netaddr_list_match(&l, "203.0.113.5"), 1);
	netaddr_list_clear(&l);
}
END_TEST

START_TEST(test_list_empty_and_errors)
{
	static const char *bad[] = { "127.0.0.1,", ",::1", "1.2.3.4,,5.6.7.8", "localhost",
		"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x", "1.2.3.4/ 8",
		"10.0.0.0/8/8", "1.2.3.4 5.6.7.8", "*",
		"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee/1" };
	struct netaddr_list l;
	char *cause;

	l = list_of("");
	ck_assert_uint_eq(l.n, 0);
	ck_assert_int_eq(netaddr_list_match(&l, "127.0.0.1"), 0);
	netaddr_list_clear(&l);
	l = list_of("  ");
	ck_assert_uint_eq(l.n, 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cause = NULL;
		l.n = 99;
		ck_assert_msg(netaddr_list_parse(bad[i], &l, &cause) == -1, "%s accepted", bad[i]);
		ck_assert_ptr_nonnull(cause);
		ck_assert_uint_eq(l.n, 0);
		ck_assert_ptr_null(l.v);
		free(cause);
	}
	/* the message names the bad entry */
	ck_assert_int_eq(netaddr_list_parse("::1, 10.0.0.0/40", &l, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "10.0.0.0/40"));
	free(cause);
}
END_TEST

static const char *
client(const char *trusted, const char *peer, const char *xff)
{
	static char out[NETADDR_TEXT_MAX];
	struct netaddr_list l = list_of(trusted);

	ck_assert_int_eq(netaddr_client(&l, peer, xff, out, sizeof out), 0);
	netaddr_list_clear(&l);
	return out;
}

START_TEST(test_client_walk)
{
	const char *lo = "127.0.0.0/8,::1";

	/* one proxy: the entry it appended */
	ck_assert_str_eq(client(lo, "127.0.0.1", "203.0.113.9"), "203.0.113.9");
	/* what the client wrote itself, to the left, is not believed */
	ck_assert_str_eq(client(lo, "127.0.0.1", "10.9.9.9, 203.0.113.9"), "203.0.113.9");
	ck_assert_str_eq(client(lo, "127.0.0.1", "1.1.1.1,2.2.2.2,203.0.113.9"), "203.0.113.9");
	/* a chain of trusted proxies is walked through */
	ck_assert_str_eq(client("127.0.0.0/8,10.0.0.0/8", "127.0.0.1",
			     "198.51.100.1, 203.0.113.9, 10.0.0.5, 10.2.3.4"),
	    "203.0.113.9");
	/* every entry trusted: the left-most */
	ck_assert_str_eq(client(lo, "127.0.0.1", "127.0.0.3, 127.0.0.2"), "127.0.0.3");
	/* no usable entry: the peer */
	ck_assert_str_eq(client(lo, "127.0.0.1", ""), "127.0.0.1");
	ck_assert_str_eq(client(lo, "127.0.0.1", " , "), "127.0.0.1");
	ck_assert_str_eq(client(lo, "127.0.0.1", "garbage"), "127.0.0.1");
	/* garbage stops the walk: the last trusted address to its right */
	ck_assert_str_eq(client(lo, "127.0.0.1", "203.0.113.9, junk, 127.0.0.7"), "127.0.0.7");
	ck_assert_str_eq(
	    client(lo, "127.0.0.1", "203.0.113.9, junk, 198.51.100.4"), "198.51.100.4");
	/* blanks, empty entries, and IPv6; IPv4-mapped entries come out as IPv4 */
	ck_assert_str_eq(client(lo, "::1", "\t2001:DB8::1 ,, ::1 "), "2001:db8::1");
	ck_assert_str_eq(client(lo, "::1", "::ffff:198.51.100.4"), "198.51.100.4");
	/* a port or brackets are not an address: the walk stops there */
	ck_assert_str_eq(client(lo, "127.0.0.1", "203.0.113.9:5555"), "127.0.0.1");
	ck_assert_str_eq(client(lo, "127.0.0.1", "[2001:db8::1]"), "127.0.0.1");
	/* an over-long entry is not an address either */
	ck_assert_str_eq(
	    client(lo, "127.0.0.1",
		"1.2.3.4, "
		"1111111111111111111111111111111111111111111111111111111111111111111111"),
	    "127.0.0.1");
}
END_TEST

START_TEST(test_client_small_buffer)
{
	struct netaddr_list l = list_of("127.0.0.1");
	char out[4];

	ck_assert_int_eq(netaddr_client(&l, "127.0.0.1", "203.0.113.9", out, sizeof out), -1);
	ck_assert_uint_lt(strlen(out), sizeof out);
	netaddr_list_clear(&l);
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("netaddr");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_parse_addresses);
	tcase_add_test(tc, test_list_match_v4);
	tcase_add_test(tc, test_list_match_v6);
	tcase_add_test(tc, test_list_empty_and_errors);
	tcase_add_test(tc, test_client_walk);
	tcase_add_test(tc, test_client_small_buffer);
	suite_add_tcase(s, tc);
	return s;
}
