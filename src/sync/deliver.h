/*
 * One HTTP endpoint of chat-sync: a libcurl handle kept for the life of
 * the target, so deliveries reuse the connection (keep-alive). A POST can
 * be started and finished apart, so the caller can work while it is on
 * the wire; at most one is in flight per endpoint. The only module that
 * includes curl.h. One thread.
 */
#ifndef CHAT_SYNC_DELIVER_H
#define CHAT_SYNC_DELIVER_H

#include <signal.h>
#include <stddef.h>

/* Response bytes kept for error messages; the rest is read and dropped. */
#define DELIVER_SNIPPET_MAX 200
/* A response body larger than this aborts the transfer (a failure). */
#define DELIVER_RESPONSE_MAX (1024 * 1024)

struct deliver;

/* curl_global_init; once, before any deliver_create. -1 with *cause. */
int deliver_global_init(char **cause);
void deliver_global_cleanup(void);

/*
 * A handle for POSTs to url with a per-attempt timeout. stop (may be NULL)
 * is polled during transfers: non-zero aborts the attempt (signals do not
 * interrupt libcurl under CURLOPT_NOSIGNAL). -1 with *cause.
 */
int deliver_create(const char *url, long timeout_s, volatile sig_atomic_t *stop,
    struct deliver **out, char **cause);
void deliver_destroy(struct deliver *d);

/*
 * Starts a POST of body (JSON) with the Standard Webhooks headers;
 * signature may be NULL (not signed). The request is handed to the kernel
 * as far as the socket takes it before this returns; the rest goes out in
 * deliver_finish(). body is not copied: it must stay unchanged until
 * deliver_finish() or deliver_cancel() returns. delivery_id and signature
 * are copied. 0 started; -1 with *cause (nothing in flight then).
 */
int deliver_start(struct deliver *d, const char *body, size_t len, const char *delivery_id,
    long long timestamp, const char *signature, char **cause);
/*
 * Waits for the POST started by deliver_start() to end (bounded by the
 * timeout given to deliver_create()). 0 on a 2xx; -1 otherwise with *cause
 * saying why (the status and the start of the response, or curl's error).
 * *status gets the HTTP status, 0 when none arrived. Either way nothing is
 * in flight afterwards.
 */
int deliver_finish(struct deliver *d, long *status, char **cause);
/* Abandons the POST in flight, if any (its connection is closed or kept by curl). */
void deliver_cancel(struct deliver *d);

#endif
