/*
 * HTTP delivery with libcurl (curl.h lives here only). One easy handle per
 * target, driven by its own multi handle so that a POST can be started,
 * left on the wire while the caller builds the next batch, and finished
 * later (deliver_start/deliver_finish); the multi handle keeps the
 * connection for keep-alive. Redirects are never followed (a 3xx is a
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

/*
 * Upload chunk: one send() per chunk, so a whole batch (~262 KB for 1,000
 * chat messages) goes to the kernel in one call instead of five of curl's
 * default 64 KiB. curl allocates it once per handle, on the first upload.
 */
#define DELIVER_UPLOAD_BUFFER (512L * 1024)
/* Longest wait in deliver_finish() between looks at the stop flag. */
#define DELIVER_POLL_MS 100
/* deliver_start() pushes the request until the socket takes no more, at most this many rounds. */
#define DELIVER_PUSH_ROUNDS 64

/* One target's endpoint; owned by its caller, one thread. */
struct deliver {
	CURLM *multi;
	CURL *easy;
	struct curl_slist *hdrs; /* of the request in flight, NULL when none */
	int in_flight; /* easy is in multi */
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
	if ((d->multi = curl_multi_init()) == NULL) {
		*cause = xasprintf("curl_multi_init failed");
		goto fail;
	}
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
	DELIVER_SET(d, CURLOPT_UPLOAD_BUFFERSIZE, DELIVER_UPLOAD_BUFFER);
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
	deliver_cancel(d);
	if (d->easy != NULL)
		curl_easy_cleanup(d->easy);
	if (d->multi != NULL)
		(void)curl_multi_cleanup(d->multi);
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

/* Takes the handle out of the multi handle and drops the request's headers. */
void
deliver_cancel(struct deliver *d)
{
	if (d->easy == NULL)
		return;
	if (d->in_flight) {
		/* Fails only for a handle not in multi; a later add would then report it. */
		(void)curl_multi_remove_handle(d->multi, d->easy);
		d->in_flight = 0;
	}
	/* The handle keeps pointers to them; clear before they go. */
	(void)curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(d->hdrs);
	d->hdrs = NULL;
}

/* Runs curl once; 0, or -1 with *cause. *running: the transfer is not over. */
static int
deliver_perform(struct deliver *d, int *running, char **cause)
{
	CURLMcode mc;

	if ((mc = curl_multi_perform(d->multi, running)) != CURLM_OK) {
		*cause = xasprintf("curl_multi_perform: %s", curl_multi_strerror(mc));
		return -1;
	}
	return 0;
}

int
deliver_start(struct deliver *d, const char *body, size_t len, const char *delivery_id,
    long long timestamp, const char *signature, char **cause)
{
	curl_off_t sent = 0, before;
	CURLMcode mc;
	int bad = 0, running = 1, i;

	if (d->in_flight) {
		*cause = xasprintf("a request is already in flight");
		return -1;
	}
	d->errbuf[0] = '\0';
	d->snippet_len = 0;
	d->received = 0;
	d->hdrs = deliver_header(d->hdrs, xstrdup("Content-Type: application/json"), &bad);
	/* No "Expect: 100-continue" round trip for large batches. */
	d->hdrs = deliver_header(d->hdrs, xstrdup("Expect:"), &bad);
	d->hdrs = deliver_header(d->hdrs, xasprintf("webhook-id: %s", delivery_id), &bad);
	d->hdrs = deliver_header(d->hdrs, xasprintf("webhook-timestamp: %lld", timestamp), &bad);
	if (signature != NULL)
		d->hdrs =
		    deliver_header(d->hdrs, xasprintf("webhook-signature: %s", signature), &bad);
	if (bad) {
		*cause = xasprintf("out of memory building headers");
		goto fail;
	}
	DELIVER_SET(d, CURLOPT_HTTPHEADER, d->hdrs);
	DELIVER_SET(d, CURLOPT_POSTFIELDS, body);
	DELIVER_SET(d, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	if ((mc = curl_multi_add_handle(d->multi, d->easy)) != CURLM_OK) {
		*cause = xasprintf("curl_multi_add_handle: %s", curl_multi_strerror(mc));
		goto fail;
	}
	d->in_flight = 1;
	/*
	 * Hand the request to the kernel now, as far as the socket takes it,
	 * so the receiver reads it while the caller works. curl sends one
	 * upload chunk per call: go on while the byte count moves. An error
	 * of the transfer itself is left for deliver_finish() to report.
	 */
	for (i = 0; i < DELIVER_PUSH_ROUNDS && running; i++) {
		before = sent;
		if (deliver_perform(d, &running, cause) != 0)
			goto fail;
		if (curl_easy_getinfo(d->easy, CURLINFO_SIZE_UPLOAD_T, &sent) != CURLE_OK)
			break;
		if (sent >= (curl_off_t)len || (i > 0 && sent == before))
			break;
	}
	return 0;

fail:
	deliver_cancel(d);
	return -1;
}

/* The result of the finished transfer; CURLE_OK with *found 0 when curl has none. */
static CURLcode
deliver_result(struct deliver *d, int *found)
{
	struct CURLMsg *m;
	int left;

	*found = 0;
	while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (m->msg == CURLMSG_DONE && m->easy_handle == d->easy) {
			*found = 1;
			return m->data.result;
		}
	}
	return CURLE_OK;
}

int
deliver_finish(struct deliver *d, long *status, char **cause)
{
	CURLMcode mc;
	CURLcode rc;
	int running = 1, found;

	*status = 0;
	if (!d->in_flight) {
		*cause = xasprintf("no request in flight");
		return -1;
	}
	for (;;) {
		if (deliver_perform(d, &running, cause) != 0)
			goto fail;
		if (!running)
			break;
		/* CURLOPT_TIMEOUT ends the transfer; the progress callback, a stop. */
		if ((mc = curl_multi_poll(d->multi, NULL, 0, DELIVER_POLL_MS, NULL)) != CURLM_OK) {
			*cause = xasprintf("curl_multi_poll: %s", curl_multi_strerror(mc));
			goto fail;
		}
	}
	rc = deliver_result(d, &found);
	if (!found) {
		*cause = xasprintf("curl reported no result for the transfer");
		goto fail;
	}
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
	deliver_cancel(d);
	return 0;

fail:
	deliver_cancel(d);
	return -1;
}
