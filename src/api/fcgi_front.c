/*
 * The FastCGI front end (the only file that includes fcgiapp.h). Worker
 * threads share one listening socket; libfcgi's per-request API
 * (FCGX_Accept_r) keeps each request's state in the worker's own
 * FCGX_Request, so the workers need no locks.
 */
#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#include "config.h"
#include "db.h"
#include "dispatch.h"
#include "front.h"
#include "log.h"
#include "xmalloc.h"

static long
fcgi_read_body(void *io, char *buf, size_t len)
{
	FCGX_Request *req = io;
	int n = FCGX_GetStr(buf, len > (size_t)INT32_MAX ? INT32_MAX : (int)len, req->in);

	if (n == 0 && FCGX_GetError(req->in) != 0)
		return -1;
	return n;
}

/*
 * Reads what is left of the request body (an error answer may not have
 * read it), so the web server has sent everything before we close; then
 * closing at once cannot cut its request short. Bounded: a peer that keeps
 * sending is left to libfcgi's close.
 */
static void
fcgi_drain(FCGX_Request *freq)
{
	char buf[16384];
	long long left = 64LL * 1024 * 1024;
	int n;

	while (left > 0 && (n = FCGX_GetStr(buf, sizeof buf, freq->in)) > 0)
		left -= n;
	if (left <= 0)
		freq->detached = 0;
}

/* Raw REQUEST_URI, or one rebuilt from the CGI pieces if a server omits it. */
static char *
fcgi_request_uri(FCGX_ParamArray envp)
{
	const char *uri = FCGX_GetParam("REQUEST_URI", envp);
	const char *script, *info, *query;

	if (uri != NULL)
		return xstrdup(uri);
	script = FCGX_GetParam("SCRIPT_NAME", envp);
	info = FCGX_GetParam("PATH_INFO", envp);
	query = FCGX_GetParam("QUERY_STRING", envp);
	return xasprintf("%s%s%s%s", script ? script : "", info ? info : "",
	    query && *query ? "?" : "", query && *query ? query : "");
}

static void
fcgi_serve(struct api_ctx *ctx, FCGX_Request *freq)
{
	struct api_request req;
	struct api_response resp;
	const char *cl;
	char *uri, *head;

	memset(&req, 0, sizeof req);
	uri = fcgi_request_uri(freq->envp);
	req.method = FCGX_GetParam("REQUEST_METHOD", freq->envp);
	if (req.method == NULL)
		req.method = "GET";
	req.uri = uri;
	req.content_type = FCGX_GetParam("CONTENT_TYPE", freq->envp);
	req.api_key = FCGX_GetParam("HTTP_X_API_KEY", freq->envp);
	req.authorization = FCGX_GetParam("HTTP_AUTHORIZATION", freq->envp);
	cl = FCGX_GetParam("CONTENT_LENGTH", freq->envp);
	req.content_length = cl != NULL && *cl != '\0' ? strtoll(cl, NULL, 10) : -1;
	req.read_body = fcgi_read_body;
	req.io = freq;

	api_dispatch(ctx, &req, &resp);
	fcgi_drain(freq);
	head = api_response_head(&resp);
	if (FCGX_PutS(head, freq->out) < 0 || FCGX_PutS(api_response_body(&resp), freq->out) < 0)
		log_warn("%s %s: the web server went away before the response was sent", req.method,
		    uri);
	log_debug("%s %s -> %d", req.method, uri, resp.status);
	free(head);
	free(uri);
	api_response_clear(&resp);
}

static void *
fcgi_worker(void *arg)
{
	const struct front_options *opts = arg;
	struct api_ctx ctx;
	FCGX_Request freq;

	ctx.cfg = opts->cfg;
	ctx.db = front_open_db(opts->cfg);
	if (FCGX_InitRequest(&freq, opts->listen_fd, 0) != 0)
		fatal("FCGX_InitRequest failed");
	for (;;) {
		if (FCGX_Accept_r(&freq) < 0) {
			/* A listening socket that fails to accept will not recover. */
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fatal("FastCGI accept failed: %s", strerror(errno));
		}
		/*
		 * libfcgi's close waits (up to 2 s) for the web server to close its
		 * end first, which holds a worker for a round trip of the web
		 * server's event loop. On a Unix socket, once the request is read
		 * to its end (fcgi_drain), nothing can be lost by closing at once.
		 */
		freq.detached = opts->listen_is_unix;
		fcgi_serve(&ctx, &freq);
		FCGX_Finish_r(&freq);
	}
	return NULL;
}

int
front_fcgi_start(const struct front_options *opts, char **cause)
{
	pthread_attr_t attr;
	pthread_t tid;
	int rc;

	if (FCGX_Init() != 0) {
		*cause = xstrdup("FCGX_Init failed");
		return -1;
	}
	if (opts->listen_fd == 0 && FCGX_IsCGI()) {
		*cause = xstrdup("standard input is not a FastCGI socket: run chat-api under a web "
				 "server or spawn-fcgi, or give it --socket PATH|HOST:PORT");
		return -1;
	}
	if ((rc = pthread_attr_init(&attr)) != 0 ||
	    (rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) != 0) {
		*cause = xasprintf("pthread_attr: %s", strerror(rc));
		return -1;
	}
	for (int i = 0; i < opts->threads; i++) {
		rc = pthread_create(&tid, &attr, fcgi_worker, (void *)opts);
		if (rc != 0) {
			pthread_attr_destroy(&attr);
			*cause = xasprintf("pthread_create: %s", strerror(rc));
			return -1;
		}
	}
	pthread_attr_destroy(&attr);
	return 0;
}
