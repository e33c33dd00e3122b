/*
 * The SCGI front end (chat-api --scgi). SCGI is a netstring of NUL
 * separated header pairs followed by the body; the reply is a CGI-style
 * head and body, then the connection closes. Same workers, same
 * dispatcher, same answers as FastCGI.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "dispatch.h"
#include "front.h"
#include "log.h"
#include "scgi.h"
#include "xmalloc.h"

/* A web server that stalls this long mid-request is dropped. */
#define SCGI_IO_TIMEOUT_S 30

struct scgi_conn {
	int fd;
	char *hdr; /* header block, NUL-separated pairs */
	size_t hdr_len;
	long long body_left;
};

static long
scgi_read(int fd, char *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return (long)n;
}

static int
scgi_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static long
scgi_read_body(void *io, char *buf, size_t len)
{
	struct scgi_conn *c = io;
	long n;

	if (c->body_left <= 0)
		return 0;
	if ((long long)len > c->body_left)
		len = (size_t)c->body_left;
	if ((n = scgi_read(c->fd, buf, len)) <= 0)
		return -1; /* the body is shorter than CONTENT_LENGTH said */
	c->body_left -= n;
	return n;
}

/* Reads through the socket; exact-length reads leave the body in it. */
static long
scgi_read_io(void *io, char *buf, size_t len)
{
	return scgi_read(((struct scgi_conn *)io)->fd, buf, len);
}

static void
scgi_serve(struct api_ctx *ctx, int fd)
{
	struct scgi_conn c;
	struct api_request req;
	struct api_response resp;
	struct timeval tv = { SCGI_IO_TIMEOUT_S, 0 };
	const char *why;
	char *head;

	memset(&c, 0, sizeof c);
	c.fd = fd;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
		log_warn("SCGI: setsockopt: %s", strerror(errno));
	if (scgi_read_headers(scgi_read_io, &c, &c.hdr, &c.hdr_len, &why) != 0) {
		log_warn("SCGI: dropping a bad request from the web server: %s", why);
		goto done;
	}
	memset(&req, 0, sizeof req);
	scgi_request_fill(c.hdr, c.hdr_len, &req);
	c.body_left = req.content_length;
	req.read_body = scgi_read_body;
	req.io = &c;

	api_dispatch(ctx, &req, &resp);
	head = api_response_head(&resp);
	if (scgi_write_all(fd, head, strlen(head)) != 0 ||
	    scgi_write_all(fd, api_response_body(&resp), strlen(api_response_body(&resp))) != 0)
		log_warn("%s %s: the web server went away before the response was sent", req.method,
		    req.uri);
	log_debug("%s %s -> %d", req.method, req.uri, resp.status);
	free(head);
	api_response_clear(&resp);
done:
	free(c.hdr);
}

static void *
scgi_worker(void *arg)
{
	const struct front_options *opts = arg;
	struct api_ctx ctx;

	ctx.cfg = opts->cfg;
	ctx.db = front_open_db(opts->cfg);
	for (;;) {
		int fd = accept4(opts->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
			    errno == ENFILE) {
				if (errno == EMFILE || errno == ENFILE)
					usleep(10000); /* out of descriptors: let others finish */
				continue;
			}
			fatal("SCGI accept failed: %s", strerror(errno));
		}
		scgi_serve(&ctx, fd);
		if (close(fd) != 0)
			log_debug("SCGI close: %s", strerror(errno));
	}
	return NULL;
}

int
front_scgi_start(const struct front_options *opts, char **cause)
{
	pthread_attr_t attr;
	pthread_t tid;
	int rc;

	if ((rc = pthread_attr_init(&attr)) != 0 ||
	    (rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) != 0) {
		*cause = xasprintf("pthread_attr: %s", strerror(rc));
		return -1;
	}
	for (int i = 0; i < opts->threads; i++) {
		rc = pthread_create(&tid, &attr, scgi_worker, (void *)opts);
		if (rc != 0) {
			pthread_attr_destroy(&attr);
			*cause = xasprintf("pthread_create: %s", strerror(rc));
			return -1;
		}
	}
	pthread_attr_destroy(&attr);
	return 0;
}
