/*
 * The dispatcher: see dispatch.h for the order of checks. Handlers never
 * repeat these checks, and every failure leaves through api_error() so the
 * error shape is the same everywhere.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "config.h"
#include "db.h"
#include "dispatch.h"
#include "jsonutil.h"
#include "log.h"
#include "reqmetrics.h"
#include "routes.h"
#include "xmalloc.h"

/* A body this much over the limit is not drained before answering 413. */
#define DISPATCH_DRAIN_MAX (64LL * 1024 * 1024)

static const char *
dispatch_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

char *
api_response_head(const struct api_response *resp)
{
	return xasprintf("Status: %d %s\r\n"
			 "Content-Type: %s\r\n"
			 "Content-Length: %zu\r\n"
			 "Cache-Control: no-store\r\n"
			 "%s%s%s"
			 "%s%.0d%s"
			 "\r\n",
	    resp->status, dispatch_reason(resp->status),
	    resp->content_type != NULL ? resp->content_type : "application/json; charset=utf-8",
	    strlen(resp->body), resp->allow[0] ? "Allow: " : "", resp->allow,
	    resp->allow[0] ? "\r\n" : "", resp->retry_after > 0 ? "Retry-After: " : "",
	    resp->retry_after, resp->retry_after > 0 ? "\r\n" : "");
}

const char *
api_response_body(const struct api_response *resp)
{
	return resp->head_only ? "" : resp->body;
}

void
api_response_clear(struct api_response *resp)
{
	free(resp->body);
	memset(resp, 0, sizeof *resp);
}

void
api_reply(struct api_call *call, int status, struct jsonw *w)
{
	free(call->resp->body);
	call->resp->status = status;
	call->resp->content_type = NULL;
	call->resp->body = jsonw_take(w);
}

void
api_error(struct api_call *call, int status, const char *code, const char *fmt, ...)
{
	struct jsonw w;
	char *msg;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	/* Messages quote what the client sent, cut to a length ("%.64s"): keep
	 * the answer valid UTF-8 even when the cut splits a character. */
	utf8_scrub(msg);
	jsonw_init(&w);
	jsonw_object_begin(&w);
	jsonw_key(&w, "error");
	jsonw_object_begin(&w);
	jsonw_kv_string(&w, "code", code);
	jsonw_kv_string(&w, "message", msg);
	jsonw_object_end(&w);
	jsonw_object_end(&w);
	free(msg);
	api_reply(call, status, &w);
}

void
api_internal_error(struct api_call *call, const char *what, char *cause)
{
	log_error("%s %s: %s: %s", call->req->method, call->req->uri, what,
	    cause ? cause : "unknown error");
	free(cause);
	api_error(call, 500, "internal_error", "internal error; see the chat-api log");
}

int
api_key_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	/* Walk the expected key's full length whatever the input, so timing
	 * reveals neither the position of a mismatch nor the key's content. */
	for (size_t i = 0; i < lb; i++)
		diff |= (unsigned char)(b[i] ^ (i < la ? a[i] : 0));
	return diff == 0;
}

/*
 * 1 if the request carries the key: X-Api-Key, or "Authorization: Bearer
 * <key>" (what a stock Prometheus scrape sends). The scheme is
 * case-insensitive (RFC 9110 section 11.1); the key is compared in
 * constant time either way.
 */
int
api_key_present(const struct api_request *req, const char *key)
{
	const char *a = req->authorization;

	if (req->api_key != NULL && api_key_equal(req->api_key, key))
		return 1;
	if (a == NULL || strncasecmp(a, "Bearer", 6) != 0 || (a[6] != ' ' && a[6] != '\t'))
		return 0;
	a += 6;
	while (*a == ' ' || *a == '\t')
		a++;
	return api_key_equal(a, key);
}

/*
 * 1 if s is an HTTP method token (RFC 9110 section 5.6.2). Only such a
 * method is echoed in an error: the web server may pass on any bytes,
 * and the answer must stay UTF-8 JSON.
 */
static int
dispatch_is_token(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && strchr("!#$%&'*+-.^_`|~", *s) == NULL)
			return 0;
	}
	return 1;
}

/* application/json with optional parameters ("; charset=utf-8"). */
static int
dispatch_is_json(const char *type)
{
	size_t n = strlen("application/json");

	if (type == NULL)
		return 0;
	while (*type == ' ')
		type++;
	return strncasecmp(type, "application/json", n) == 0 &&
	    (type[n] == '\0' || type[n] == ';' || type[n] == ' ');
}

static void
dispatch_drain(const struct api_request *req)
{
	char buf[16384];
	long long left = DISPATCH_DRAIN_MAX;
	long n;

	/* The web server is still sending the body; read it so the 413
	 * reaches the client instead of a reset connection. */
	while (left > 0 && (n = req->read_body(req->io, buf, sizeof buf)) > 0)
		left -= n;
}

/* Reads the body, at most limit bytes. Returns length, or -1 if larger, -2 on read error. */
static long long
dispatch_read_body(const struct api_request *req, long long limit, char **out)
{
	size_t cap = req->content_length > 0 ? (size_t)req->content_length + 1 : 4096;
	size_t len = 0;
	char *buf;
	long n;

	*out = NULL;
	if (req->content_length > limit)
		return -1;
	if (req->content_length == 0)
		return 0;
	buf = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = req->read_body(req->io, buf + len, cap - len - 1);
		if (n < 0) {
			free(buf);
			return -2;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if ((long long)len > limit) {
			free(buf);
			return -1;
		}
	}
	buf[len] = '\0';
	*out = buf;
	return (long long)len;
}

/* Runs the generic checks; returns the route to call, or NULL when answered. */
static const struct api_route *
dispatch_check(struct api_call *call, struct uri *u, char **body_text, long long *body_len)
{
	const struct api_request *req = call->req;
	const struct config *cfg = call->ctx->cfg;
	const struct api_route *route;
	char allow[sizeof call->resp->allow];
	const char *why;
	int path_known;

	if (uri_parse(req->uri, u, &why) != 0) {
		api_error(call, 400, "invalid_query", "bad request URI: %s", why);
		return NULL;
	}
	/* lighttpd and nginx prefix matches also pass /managementfoo. */
	if (u->nsegs == 0 || strcmp(u->segs[0], "management") != 0) {
		api_error(call, 404, "not_found", "no such route");
		return NULL;
	}
	/* HEAD is GET without the body (RFC 9110 9.3.2): same checks, same head. */
	call->resp->head_only = strcmp(req->method, "HEAD") == 0;
	route = routes_match(call->resp->head_only ? "GET" : req->method, u, call->params,
	    &call->nparams, &path_known, allow, sizeof allow);
	/* The key comes before 404/405, so without it no route is revealed. */
	if (route == NULL || !(route->flags & ROUTE_PUBLIC)) {
		if (cfg->admin_api_key == NULL) {
			api_error(call, 503, "api_key_not_configured",
			    "ADMIN_API_KEY is not set on the server; management access is "
			    "disabled");
			return NULL;
		}
		if (!api_key_present(req, cfg->admin_api_key)) {
			api_error(call, 401, "unauthorized",
			    "missing or wrong X-Api-Key header (or Authorization: Bearer)");
			return NULL;
		}
	}
	if (route == NULL) {
		if (path_known) {
			snprintf(call->resp->allow, sizeof call->resp->allow, "%s", allow);
			api_error(call, 405, "method_not_allowed", "%s is not allowed here; use %s",
			    dispatch_is_token(req->method) ? req->method : "this method", allow);
		} else
			api_error(call, 404, "not_found", "no such route");
		return NULL;
	}

	*body_len = dispatch_read_body(req, cfg->api_max_body_bytes, body_text);
	if (*body_len == -1) {
		dispatch_drain(req);
		api_error(call, 413, "payload_too_large", "request body is larger than %lld bytes",
		    cfg->api_max_body_bytes);
		return NULL;
	}
	if (*body_len == -2) {
		api_error(call, 400, "invalid_json", "could not read the request body");
		return NULL;
	}
	if (*body_len > 0 && !dispatch_is_json(req->content_type)) {
		api_error(call, 415, "unsupported_media_type",
		    "request bodies must be sent as Content-Type: application/json");
		return NULL;
	}
	if (*body_len > 0 && !(route->flags & ROUTE_BODY)) {
		api_error(call, 400, "invalid_json", "this route takes no request body");
		return NULL;
	}
	if (*body_len == 0 && (route->flags & ROUTE_BODY) &&
	    !(route->flags & ROUTE_BODY_OPTIONAL)) {
		api_error(call, 400, "invalid_json", "a JSON object body is required");
		return NULL;
	}
	return route;
}

void
api_dispatch(struct api_ctx *ctx, const struct api_request *req, struct api_response *resp)
{
	struct api_call call;
	const struct api_route *route;
	struct uri u;
	char *body_text = NULL, *cause = NULL;
	long long body_len = 0;
	struct timespec t0, t1;

	clock_now(CLOCK_MONOTONIC, &t0);
	memset(&call, 0, sizeof call);
	memset(resp, 0, sizeof *resp);
	memset(&u, 0, sizeof u);
	call.ctx = ctx;
	call.req = req;
	call.uri = &u;
	call.resp = resp;

	route = dispatch_check(&call, &u, &body_text, &body_len);
	if (route == NULL)
		goto done;
	if (body_len > 0) {
		call.body = json_parse_object(body_text, (size_t)body_len, &cause);
		if (call.body == NULL) {
			api_error(&call, 400, "invalid_json", "%s", cause);
			free(cause);
			goto done;
		}
	}
	db_failure_reset(ctx->db);
	route->handler(&call);
	if (resp->body == NULL) /* a handler bug; never send an empty answer */
		api_internal_error(&call, route->pattern, xstrdup("handler set no response"));
	/* Another process held the database locked past the busy timeout:
	 * nothing is broken, the client may try again shortly. */
	if (resp->status == 500 && db_failure_was_busy(ctx->db)) {
		api_error(&call, 503, "database_busy",
		    "the database is locked by another process; retry shortly");
		resp->retry_after = 1;
	} else if (resp->status == 500 && db_failure_transient(ctx->db)) {
		/* The server is restarting or out of reach (or a disk is full):
		 * the next request reconnects by itself. */
		api_error(&call, 503, "database_unavailable",
		    "the database cannot be reached or cannot write now; retry shortly");
		resp->retry_after = 1;
	}
done:
	if (resp->body == NULL)
		api_error(&call, 500, "internal_error", "internal error");
	cJSON_Delete(call.body);
	free(body_text);
	uri_clear(&u);
	clock_now(CLOCK_MONOTONIC, &t1);
	reqmetrics_note(route, resp->status,
	    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

int
api_query_int(struct api_call *call, const char *key, long long min, long long max, long long *out)
{
	const char *v = uri_query_get(call->uri, key);
	char *end;
	long long n;

	if (v == NULL)
		return 0;
	errno = 0;
	n = strtoll(v, &end, 10);
	/* Digits only: no sign, no space, nothing after the number. */
	if (errno != 0 || end == v || *end != '\0' || v[0] < '0' || v[0] > '9' || n < min ||
	    n > max) {
		api_error(call, 400, "invalid_query", "%s must be a whole number from %lld to %lld",
		    key, min, max);
		return -1;
	}
	*out = n;
	return 1;
}
