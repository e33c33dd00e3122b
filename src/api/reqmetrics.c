/*
 * Request counters (see reqmetrics.h). A slot per route of the table plus
 * one for requests no handler saw (bad key, unknown path, 405, 413, ...),
 * each with the statuses it answered; a lock held for a few additions
 * costs nothing next to a request.
 */
#include "autoconf.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "reqmetrics.h"

/* Distinct statuses kept per route; more are counted as status "other". */
#define REQMETRICS_STATUSES 16
/* routes_count, checked at start of use; the table is fixed at build time. */
#define REQMETRICS_ROUTES_MAX 64

struct reqmetrics_route {
	int status[REQMETRICS_STATUSES]; /* 0: free */
	unsigned long long n[REQMETRICS_STATUSES];
	unsigned long long other;
	struct metrics_hist seconds;
};

static pthread_mutex_t reqmetrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reqmetrics_route reqmetrics_routes[REQMETRICS_ROUTES_MAX + 1];
static int reqmetrics_ready;

/* Under the lock. */
static void
reqmetrics_init(void)
{
	if (reqmetrics_ready)
		return;
	if (routes_count > REQMETRICS_ROUTES_MAX)
		abort(); /* a build with more routes needs a larger table */
	for (size_t i = 0; i <= REQMETRICS_ROUTES_MAX; i++)
		metrics_hist_init(
		    &reqmetrics_routes[i].seconds, metrics_seconds_bounds, metrics_seconds_nbounds);
	reqmetrics_ready = 1;
}

void
reqmetrics_note(const struct api_route *route, int status, double seconds)
{
	size_t i = route != NULL ? (size_t)(route - routes_table) : routes_count;
	struct reqmetrics_route *r;
	size_t k;

	if (pthread_mutex_lock(&reqmetrics_lock) != 0)
		abort();
	reqmetrics_init();
	r = &reqmetrics_routes[i];
	for (k = 0; k < REQMETRICS_STATUSES; k++) {
		if (r->status[k] == 0)
			r->status[k] = status;
		if (r->status[k] == status) {
			r->n[k]++;
			break;
		}
	}
	if (k == REQMETRICS_STATUSES)
		r->other++;
	metrics_hist_observe(&r->seconds, seconds);
	pthread_mutex_unlock(&reqmetrics_lock);
}

void
reqmetrics_write(struct metrics_buf *b)
{
	char status[16];
	const char *method, *pattern;

	if (pthread_mutex_lock(&reqmetrics_lock) != 0)
		abort();
	reqmetrics_init();
	metrics_family(b, "chatd_api_requests_total", "counter",
	    "REST requests answered by chat-api, by method, route pattern and HTTP status "
	    "(route \"none\": answered before a route was chosen, such as 401 and 404).");
	for (size_t i = 0; i <= routes_count; i++) {
		const struct reqmetrics_route *r = &reqmetrics_routes[i];

		method = i < routes_count ? routes_table[i].method : "";
		pattern = i < routes_count ? routes_table[i].pattern : "none";
		for (size_t k = 0; k < REQMETRICS_STATUSES && r->status[k] != 0; k++) {
			snprintf(status, sizeof status, "%d", r->status[k]);
			metrics_sample(b, "chatd_api_requests_total",
			    (const char *[]){
				"method", method, "route", pattern, "status", status, NULL },
			    (double)r->n[k]);
		}
		if (r->other > 0)
			metrics_sample(b, "chatd_api_requests_total",
			    (const char *[]){
				"method", method, "route", pattern, "status", "other", NULL },
			    (double)r->other);
	}
	metrics_family(b, "chatd_api_request_duration_seconds", "histogram",
	    "Time chat-api took to answer a request, by method and route pattern.");
	for (size_t i = 0; i <= routes_count; i++) {
		const struct reqmetrics_route *r = &reqmetrics_routes[i];

		if (r->seconds.count == 0)
			continue;
		method = i < routes_count ? routes_table[i].method : "";
		pattern = i < routes_count ? routes_table[i].pattern : "none";
		metrics_hist_write(b, "chatd_api_request_duration_seconds",
		    (const char *[]){ "method", method, "route", pattern, NULL }, &r->seconds);
	}
	pthread_mutex_unlock(&reqmetrics_lock);
}
