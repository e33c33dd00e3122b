/*
 * Lingering closes (see linger.h). The duplicate descriptor keeps the
 * socket open after lws closes its own; lws has already shut down the
 * sending side, so the client has the close frame and the end of the
 * stream. Polling starts on the next loop turn, once lws has stopped its
 * own poll handle for the socket (libuv wants one active poll handle per
 * socket). Service thread only.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linger.h"
#include "log.h"
#include "xmalloc.h"

struct linger_sock {
	uv_poll_t poll;
	uv_timer_t timer;
	int fd;
	int polling; /* poll initialised */
	int handles; /* libuv handles not yet closed */
	struct chatd *cd;
	LIST_ENTRY(linger_sock) entry;
};

static void
linger_freed(uv_handle_t *h)
{
	struct linger_sock *l = h->data;

	if (--l->handles > 0)
		return;
	if (close(l->fd) != 0)
		log_warn("linger: close: %s", strerror(errno));
	free(l);
}

static void
linger_end(struct linger_sock *l)
{
	LIST_REMOVE(l, entry);
	uv_close((uv_handle_t *)&l->timer, linger_freed);
	if (l->polling)
		uv_close((uv_handle_t *)&l->poll, linger_freed);
}

static void
linger_readable(uv_poll_t *p, int status, int events)
{
	struct linger_sock *l = p->data;
	char buf[16384];
	ssize_t n;

	(void)events;
	if (status < 0) {
		linger_end(l);
		return;
	}
	while ((n = read(l->fd, buf, sizeof buf)) > 0)
		;
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		linger_end(l);
}

static void
linger_timeout(uv_timer_t *t)
{
	linger_end(t->data);
}

/* The next loop turn after linger_start(): lws's poll handle is gone. */
static void
linger_begin(uv_timer_t *t)
{
	struct linger_sock *l = t->data;

	if (uv_poll_init(&l->cd->loop, &l->poll, l->fd) != 0) {
		linger_end(l);
		return;
	}
	l->poll.data = l;
	l->polling = 1;
	l->handles++;
	if (uv_poll_start(&l->poll, UV_READABLE, linger_readable) != 0) {
		linger_end(l);
		return;
	}
	(void)uv_timer_start(&l->timer, linger_timeout, LINGER_MS, 0);
}

void
linger_start(struct chatd *cd, int fd)
{
	struct linger_sock *l;
	int dup_fd;

	if (cd->shutting_down || fd < 0)
		return;
	if ((dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		log_warn("linger: dup: %s", strerror(errno));
		return;
	}
	if (fcntl(dup_fd, F_SETFL, fcntl(dup_fd, F_GETFL) | O_NONBLOCK) != 0) {
		log_warn("linger: fcntl: %s", strerror(errno));
		close(dup_fd);
		return;
	}
	l = xcalloc(1, sizeof *l);
	l->fd = dup_fd;
	l->cd = cd;
	if (uv_timer_init(&cd->loop, &l->timer) != 0) {
		close(dup_fd);
		free(l);
		return;
	}
	l->timer.data = l;
	l->handles = 1;
	LIST_INSERT_HEAD(&cd->lingers, l, entry);
	(void)uv_timer_start(&l->timer, linger_begin, 0, 0);
}

void
linger_close_all(struct chatd *cd)
{
	while (!LIST_EMPTY(&cd->lingers))
		linger_end(LIST_FIRST(&cd->lingers));
}
