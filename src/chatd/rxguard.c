/*
 * Unmasked-frame detection under lws (see rxguard.h). The state machine
 * only counts: frame header bytes, then payload bytes to skip, so a
 * message costs a few comparisons per frame whatever its size.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <stdint.h>
#include <stdlib.h>

#include "rxguard.h"
#include "xmalloc.h"

enum rxguard_mode {
	RXGUARD_OFF,
	RXGUARD_HTTP, /* in the request head, until CRLF CRLF */
	RXGUARD_HEAD, /* in a frame header */
	RXGUARD_PAYLOAD, /* skipping payload */
	RXGUARD_BAD, /* marked; nothing more is looked at */
};

struct rxguard {
	uint8_t mode;
	uint8_t crlf; /* RXGUARD_HTTP: bytes of CRLF CRLF matched */
	uint8_t hlen; /* header bytes seen */
	uint8_t hneed; /* header bytes in all (known from the second) */
	uint8_t queued; /* on the take list */
	uint64_t left; /* length being read, then payload bytes to skip */
	void *owner;
};

static struct rxguard *rxguard_fds;
static int *rxguard_marked;
static size_t rxguard_nfds, rxguard_nmarked;

void
rxguard_init(size_t max_fd)
{
	rxguard_fds = xcalloc(max_fd, sizeof *rxguard_fds);
	rxguard_marked = xcalloc(max_fd, sizeof *rxguard_marked);
	rxguard_nfds = max_fd;
	rxguard_nmarked = 0;
}

void
rxguard_free(void)
{
	free(rxguard_fds);
	free(rxguard_marked);
	rxguard_fds = NULL;
	rxguard_marked = NULL;
	rxguard_nfds = 0;
	rxguard_nmarked = 0;
}

static struct rxguard *
rxguard_get(int fd)
{
	return fd >= 0 && (size_t)fd < rxguard_nfds ? &rxguard_fds[fd] : NULL;
}

void
rxguard_watch(int fd)
{
	struct rxguard *g = rxguard_get(fd);

	/* queued stays: the list entry is still there, and harmless. */
	if (g != NULL)
		*g = (struct rxguard){ .mode = RXGUARD_HTTP, .queued = g->queued };
}

void
rxguard_bind(int fd, void *owner)
{
	struct rxguard *g = rxguard_get(fd);

	if (g != NULL && g->mode != RXGUARD_OFF) {
		g->owner = owner;
		/* Marked before it joined (frames sent with the request). */
		if (g->mode == RXGUARD_BAD && !g->queued) {
			g->queued = 1;
			rxguard_marked[rxguard_nmarked++] = fd;
		}
	}
}

void
rxguard_forget(int fd)
{
	struct rxguard *g = rxguard_get(fd);

	if (g != NULL) {
		g->mode = RXGUARD_OFF;
		g->owner = NULL; /* rxguard_take() skips it if still queued */
	}
}

const char *
rxguard_violation(int fd)
{
	struct rxguard *g = rxguard_get(fd);

	return g != NULL && g->mode == RXGUARD_BAD ? "unmasked frame from the client" : NULL;
}

void *
rxguard_take(void)
{
	struct rxguard *g;
	void *owner;

	while (rxguard_nmarked > 0) {
		g = &rxguard_fds[rxguard_marked[--rxguard_nmarked]];
		g->queued = 0;
		owner = g->owner;
		if (owner != NULL && g->mode == RXGUARD_BAD)
			return owner;
	}
	return NULL;
}

static void
rxguard_mark(struct rxguard *g, int fd)
{
	g->mode = RXGUARD_BAD;
	if (g->owner != NULL && !g->queued) {
		g->queued = 1;
		rxguard_marked[rxguard_nmarked++] = fd;
	}
}

static void
rxguard_scan(struct rxguard *g, int fd, const unsigned char *p, size_t n)
{
	static const char blank[] = "\r\n\r\n";
	size_t i = 0, skip;
	unsigned char c;

	while (i < n) {
		switch (g->mode) {
		case RXGUARD_HTTP:
			c = p[i++];
			if (c == (unsigned char)blank[g->crlf])
				g->crlf++;
			else
				g->crlf = c == '\r';
			if (g->crlf == 4) {
				g->mode = RXGUARD_HEAD;
				g->hlen = 0;
			}
			break;
		case RXGUARD_HEAD:
			c = p[i++];
			if (g->hlen == 1) {
				if (!(c & 0x80)) {
					rxguard_mark(g, fd);
					return;
				}
				c &= 0x7f;
				/* 2 bytes, the 16- or 64-bit length if any, the key */
				g->hneed = (uint8_t)(2 + (c == 126 ? 2 : c == 127 ? 8 : 0) + 4);
				g->left = c < 126 ? c : 0;
			} else if (g->hlen > 1 && g->hlen < g->hneed - 4)
				g->left = g->left << 8 | c;
			if (++g->hlen > 1 && g->hlen == g->hneed) {
				g->hlen = 0;
				if (g->left > 0)
					g->mode = RXGUARD_PAYLOAD;
			}
			break;
		case RXGUARD_PAYLOAD:
			skip = n - i < g->left ? n - i : (size_t)g->left;
			i += skip;
			g->left -= skip;
			if (g->left == 0)
				g->mode = RXGUARD_HEAD;
			break;
		default:
			return;
		}
	}
}

/*
 * The C library's recv(), seen by lws: the real call, then a look at what
 * it read. recvfrom() with no address is recv() (POSIX), and not itself
 * replaced, so this cannot recurse.
 */
ssize_t
recv(int fd, void *buf, size_t len, int flags)
{
	ssize_t n = recvfrom(fd, buf, len, flags, NULL, NULL);
	struct rxguard *g;

	if (n > 0 && !(flags & MSG_PEEK) && (g = rxguard_get(fd)) != NULL &&
	    g->mode != RXGUARD_OFF && g->mode != RXGUARD_BAD)
		rxguard_scan(g, fd, buf, (size_t)n);
	return n;
}
