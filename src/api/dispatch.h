/*
 * The single dispatcher (Redis's processCommand): every generic check runs
 * here, in this order, before any handler: /management prefix, API key
 * configured (503) and correct (401, constant time; only ROUTE_PUBLIC
 * routes, the liveness answer, skip it), route and method
 * (404/405), body size (413), content type (415), JSON object (400). The
 * handler then only validates its own fields.
 */
#ifndef CHAT_DISPATCH_H
#define CHAT_DISPATCH_H

#include <stdarg.h>

#include "api.h"
#include "jsonw.h"
#include "uri.h"

#define API_MAX_PARAMS 4

/* Everything a handler sees. Owned by api_dispatch(); lives for one request. */
struct api_call {
	struct api_ctx *ctx;
	const struct api_request *req;
	const struct uri *uri;
	const char *params[API_MAX_PARAMS]; /* decoded {placeholders}, in order */
	size_t nparams;
	cJSON *body; /* the parsed JSON object, or NULL when the request had no body */
	struct api_response *resp;
};

/* Handles one request completely; resp is filled (status and JSON body). */
void api_dispatch(struct api_ctx *ctx, const struct api_request *req, struct api_response *resp);

/* Sets the response to status with the writer's text (taken; w is reset). */
void api_reply(struct api_call *call, int status, struct jsonw *w);
/* Sets the one error shape {"error":{"code","message"}}. */
void api_error(struct api_call *call, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Answers 500 and logs cause (freed) without exposing it to the client. */
void api_internal_error(struct api_call *call, const char *what, char *cause);

/*
 * An optional query parameter that must be a whole number in [min, max]:
 * 1 with *out set, 0 when absent (*out untouched), -1 after answering 400
 * invalid_query.
 */
int api_query_int(
    struct api_call *call, const char *key, long long min, long long max, long long *out);

/* 1 if a and b are equal, in time independent of where they differ. */
int api_key_equal(const char *a, const char *b);
int api_key_present(const struct api_request *req, const char *key);

#endif
