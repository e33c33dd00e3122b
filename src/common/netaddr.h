/*
 * Client addresses behind proxies: lists of trusted addresses and CIDR
 * ranges (TRUSTED_PROXIES), and the X-Forwarded-For walk that finds the
 * client behind them. Pure functions on strings: no sockets, no I/O, so
 * the rules are unit-tested on their own. Any thread.
 */
#ifndef CHAT_NETADDR_H
#define CHAT_NETADDR_H

#include <stddef.h>

/* One address or range; IPv4 is kept as its IPv4-mapped IPv6 form. */
struct netaddr_range {
	unsigned char addr[16];
	unsigned prefix; /* bits of addr that must match, 0..128 */
};

/* A parsed list; owned by whoever parsed it (netaddr_list_clear). */
struct netaddr_list {
	struct netaddr_range *v;
	size_t n;
};

/* Longest address text netaddr_client() writes, with its NUL. */
#define NETADDR_TEXT_MAX 64

/*
 * Parses one IPv4 or IPv6 address (an IPv4-mapped IPv6 one counts as the
 * IPv4 address) into its 16-byte form. Returns 0, or -1 if s is not an
 * address.
 */
int netaddr_parse(const char *s, unsigned char out[16]);

/*
 * Parses a comma-separated list of addresses and CIDR ranges ("10.0.0.0/8,
 * ::1, 192.0.2.7"); blanks around entries are ignored, an empty list is
 * allowed. Returns 0 with *out filled (free with netaddr_list_clear), or -1
 * with a heap-allocated *cause naming the bad entry (*out left empty).
 */
int netaddr_list_parse(const char *spec, struct netaddr_list *out, char **cause);

/* Frees the list's entries; the list is then empty. */
void netaddr_list_clear(struct netaddr_list *list);

/* 1 if the address text is inside one of the list's ranges, else 0
 * (also for text that is not an address). */
int netaddr_list_match(const struct netaddr_list *list, const char *addr);

/*
 * The client address of a request that reached us from peer (already
 * known to be a trusted proxy) carrying X-Forwarded-For xff: walking from
 * the right, the first entry that is not itself a trusted proxy. Every
 * entry trusted: the left-most. An entry that is not an address stops the
 * walk: the address to its right (the last trusted one) is the answer, as
 * nginx's real_ip_recursive does. Writes the answer into out (len bytes,
 * at least NETADDR_TEXT_MAX to hold any address) and returns 0; -1 if it
 * does not fit (out then holds peer, truncated if need be).
 */
int netaddr_client(
    const struct netaddr_list *trusted, const char *peer, const char *xff, char *out, size_t len);

#endif
