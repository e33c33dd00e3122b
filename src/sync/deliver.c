/*
 * HTTP delivery with libcurl (curl.h lives here only). One easy handle per
 * target, reused for keep-alive; redirects are never followed (a 3xx is a
 * failure, so a callback cannot be bounced to another host); the response
 * is read with a size cap. Knows nothing about payloads or the database.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "deliver.h"
#include "xmalloc.h"

struct deliver {
	CURL *easy;
	volatile sig_atomic_t *stop;
	char errbuf[CURL_ERROR_SIZE];
	char snippet[DELIVER_SNIPPET_MAX + 1];
	size_t snippet_len;
	size_t received;
};

int
deliver_global_init(char **cause)
{
	CURLcode rc;

	if ((rc = curl_global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
		*cause = xasprintf("curl_global_init: %s", curl_easy_strerror(rc));
		return -1;
	}
	return 0;
}

void
deliver_global_cleanup(void)
{
	curl_global_cleanup();
}

static size_t
deliver_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct deliver *d = arg;
	size_t n = size * nmemb, keep;

	d->received += n;
	if (d->received > DELIVER_RESPONSE_MAX)
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	keep = DELIVER_SNIPPET_MAX - d->snippet_len;
	if (keep > n)
		keep = n;
	memcpy(d->snippet + d->snippet_len, data, keep);
	d->snippet_len += keep;
	return n;
}

static int
deliver_progress(
    void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct deliver *d = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return d->stop != NULL && *d->stop ? 1 : 0;
}

/* Sets one option; on failure names it in *cause. */
#define DELIVER_SET(d, opt, val) \
	do { \
		CURLcode set_rc_ = curl_easy_setopt((d)->easy, opt, val); \
		if (set_rc_ != CURLE_OK) { \
			*cause = xasprintf( \
			    "curl_easy_setopt(%s): %s", #opt, curl_easy_strerror(set_rc_)); \
			goto fail; \
		} \
	} while (0)

int
deliver_create(const char *url, long timeout_s, volatile sig_atomic_t *stop, struct deliver **out,
    char **cause)
{
	struct deliver *d;

	*out = NULL;
	d = xcalloc(1, sizeof *d);
	d->stop = stop;
	if ((d->easy = curl_easy_init()) == NULL) {
		*cause = xasprintf("curl_easy_init failed");
		goto fail;
	}
	DELIVER_SET(d, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	DELIVER_SET(d, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	DELIVER_SET(d, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	DELIVER_SET(d, CURLOPT_NOSIGNAL, 1L);
	DELIVER_SET(d, CURLOPT_FOLLOWLOCATION, 0L);
	DELIVER_SET(d, CURLOPT_TIMEOUT, timeout_s);
	DELIVER_SET(d, CURLOPT_CONNECTTIMEOUT, timeout_s);
	DELIVER_SET(d, CURLOPT_TCP_KEEPALIVE, 1L);
	DELIVER_SET(d, CURLOPT_USERAGENT, "chat-sync/" PACKAGE_VERSION);
	DELIVER_SET(d, CURLOPT_ERRORBUFFER, d->errbuf);
	DELIVER_SET(d, CURLOPT_WRITEFUNCTION, deliver_write);
	DELIVER_SET(d, CURLOPT_WRITEDATA, d);
	DELIVER_SET(d, CURLOPT_XFERINFOFUNCTION, deliver_progress);
	DELIVER_SET(d, CURLOPT_XFERINFODATA, d);
	DELIVER_SET(d, CURLOPT_NOPROGRESS, 0L);
	DELIVER_SET(d, CURLOPT_POST, 1L);
	*out = d;
	return 0;

fail:
	deliver_destroy(d);
	return -1;
}

void
deliver_destroy(struct deliver *d)
{
	if (d == NULL)
		return;
	if (d->easy != NULL)
		curl_easy_cleanup(d->easy);
	free(d);
}

/* The kept start of the response, printable, for an error message. */
static void
deliver_snippet_clean(struct deliver *d)
{
	size_t i;

	d->snippet[d->snippet_len] = '\0';
	for (i = 0; i < d->snippet_len; i++) {
		if (!isprint((unsigned char)d->snippet[i]))
			d->snippet[i] = ' ';
	}
}

static struct curl_slist *
deliver_header(struct curl_slist *list, char *line, int *bad)
{
	struct curl_slist *next;

	next = curl_slist_append(list, line);
	free(line);
	if (next == NULL)
		*bad = 1;
	return next != NULL ? next : list;
}

int
deliver_post(struct deliver *d, const char *body, size_t len, const char *delivery_id,
    long long timestamp, const char *signature, long *status, char **cause)
{
	struct curl_slist *hdrs = NULL;
	CURLcode rc;
	int bad = 0;

	*status = 0;
	d->errbuf[0] = '\0';
	d->snippet_len = 0;
	d->received = 0;
	hdrs = deliver_header(hdrs, xstrdup("Content-Type: application/json"), &bad);
	/* No "Expect: 100-continue" round trip for large batches. */
	hdrs = deliver_header(hdrs, xstrdup("Expect:"), &bad);
	hdrs = deliver_header(hdrs, xasprintf("webhook-id: %s", delivery_id), &bad);
	hdrs = deliver_header(hdrs, xasprintf("webhook-timestamp: %lld", timestamp), &bad);
	if (signature != NULL)
		hdrs = deliver_header(hdrs, xasprintf("webhook-signature: %s", signature), &bad);
	if (bad) {
		*cause = xasprintf("out of memory building headers");
		goto fail;
	}
	DELIVER_SET(d, CURLOPT_HTTPHEADER, hdrs);
	DELIVER_SET(d, CURLOPT_POSTFIELDS, body);
	DELIVER_SET(d, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);

	rc = curl_easy_perform(d->easy);
	if (curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, status) != CURLE_OK)
		*status = 0;
	if (rc != CURLE_OK) {
		if (rc == CURLE_WRITE_ERROR && d->received > DELIVER_RESPONSE_MAX)
			*cause = xasprintf("response larger than %d bytes", DELIVER_RESPONSE_MAX);
		else if (rc == CURLE_ABORTED_BY_CALLBACK)
			*cause = xasprintf("stopped");
		else
			*cause = xasprintf(
			    "%s", d->errbuf[0] != '\0' ? d->errbuf : curl_easy_strerror(rc));
		goto fail;
	}
	if (*status < 200 || *status > 299) {
		deliver_snippet_clean(d);
		*cause =
		    xasprintf("HTTP %ld%s%s", *status, d->snippet_len > 0 ? ": " : "", d->snippet);
		goto fail;
	}
	/* The handle keeps pointers to them; clear before they go. */
	(void)curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return 0;

fail:
	(void)curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	return -1;
}
