/*
 * Control protocol: the type name table, line framing, request and reply
 * encoding, request validation, and the blocking client used by chat-api,
 * chat-sync and chatctl. Everything a peer sends is checked here before
 * anyone acts on it. Must not include any program's headers; holds no
 * global state but the request id counter and the client's back-off.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "log.h"
#include "jsonutil.h"
#include "xmalloc.h"

_Static_assert(CTL_DEPTH_MAX == JSON_DEPTH_MAX + 2, "envelope and args add two levels");
#define CTL_STR_(x) #x
#define CTL_STR(x) CTL_STR_(x)

/* A line buffer grown past this is released once empty, so an idle peer
 * that once sent a large request does not pin CTL_LINE_MAX bytes. */
#define CTL_LINEBUF_KEEP 16384
/* First allocation of a line buffer; most requests fit. */
#define CTL_LINEBUF_MIN 1024
/* Reads in ctl_call; a reply larger than this arrives in several reads. */
#define CTL_READ_CHUNK 16384
/* Retry step while chatd's listen backlog is full (connect: EAGAIN). */
#define CTL_BACKLOG_RETRY_MS 10

/* Indexed by enum ctl_type; a number, once given out, is never reused. */
static const char *const ctl_type_names[] = {
	[CTL_UNKNOWN] = "unknown",
	[CTL_HEALTH] = "health",
	[CTL_STATS] = "stats",
	[CTL_ROOM_OPENED] = "room_opened",
	[CTL_ROOM_CLOSED] = "room_closed",
	[CTL_BAN] = "ban",
	[CTL_UNBAN] = "unban",
	[CTL_KICK] = "kick",
	[CTL_PUBLISH] = "publish",
	[CTL_ROOM_RELOAD] = "room_reload",
	[CTL_ROOMS] = "rooms",
	[CTL_METRICS] = "metrics",
};
_Static_assert(sizeof ctl_type_names / sizeof ctl_type_names[0] == CTL_TYPE_MAX,
    "ctl_type_names must name every enum ctl_type value");

/* Feeds ctl_new_id(); ids start at 1 so that 0 can mean "no id". */
static atomic_ullong ctl_next_id;

const char *
ctl_type_name(enum ctl_type type)
{
	if ((unsigned)type >= CTL_TYPE_MAX || ctl_type_names[type] == NULL)
		return ctl_type_names[CTL_UNKNOWN];
	return ctl_type_names[type];
}

enum ctl_type
ctl_type_from_name(const char *name)
{
	unsigned t;

	/* Start past CTL_UNKNOWN: "unknown" is a log label, not a request. */
	for (t = CTL_UNKNOWN + 1; t < CTL_TYPE_MAX; t++) {
		if (ctl_type_names[t] != NULL && strcmp(ctl_type_names[t], name) == 0)
			return (enum ctl_type)t;
	}
	return CTL_UNKNOWN;
}

void
ctl_linebuf_init(struct ctl_linebuf *lb, size_t max)
{
	lb->buf = NULL;
	lb->len = 0;
	lb->cap = 0;
	lb->max = max;
}

void
ctl_linebuf_clear(struct ctl_linebuf *lb)
{
	free(lb->buf);
	lb->buf = NULL;
	lb->len = 0;
	lb->cap = 0;
}

/* Makes room for need bytes; need never exceeds lb->max. */
static void
ctl_linebuf_reserve(struct ctl_linebuf *lb, size_t need)
{
	size_t cap;

	if (need <= lb->cap)
		return;
	cap = lb->cap != 0 ? lb->cap : CTL_LINEBUF_MIN;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > lb->max)
		cap = lb->max;
	lb->buf = xrealloc(lb->buf, cap);
	lb->cap = cap;
}

int
ctl_linebuf_feed(struct ctl_linebuf *lb, const char *data, size_t len,
    int (*line)(char *line, size_t len, void *arg), void *arg)
{
	const char *nl;
	size_t n, linelen;

	while (len > 0) {
		nl = memchr(data, '\n', len);
		n = nl != NULL ? (size_t)(nl - data) + 1 : len;
		/*
		 * A complete line may use all max bytes (its newline becomes
		 * the NUL); a partial one that already fills max can only end
		 * over the limit, so it is refused before it is stored.
		 */
		if (n > lb->max - lb->len || (nl == NULL && n == lb->max - lb->len))
			goto fail;
		ctl_linebuf_reserve(lb, lb->len + n);
		memcpy(lb->buf + lb->len, data, n);
		lb->len += n;
		data += n;
		len -= n;
		if (nl == NULL)
			break;

		linelen = lb->len - 1;
		if (linelen > 0 && lb->buf[linelen - 1] == '\r')
			linelen--;
		lb->buf[linelen] = '\0';
		lb->len = 0;
		if (memchr(lb->buf, '\0', linelen) != NULL)
			goto fail;
		if (line(lb->buf, linelen, arg) != 0)
			goto fail;
	}
	if (lb->len == 0 && lb->cap > CTL_LINEBUF_KEEP)
		ctl_linebuf_clear(lb);
	return 0;

fail:
	/* The peer is to be dropped; give the memory back now. */
	ctl_linebuf_clear(lb);
	return -1;
}

/* Prints compact JSON with the newline that ends a line; consumes root. */
static char *
ctl_print_line(cJSON *root)
{
	char *text, *out;

	text = json_ok(cJSON_PrintUnformatted(root));
	cJSON_Delete(root);
	out = xasprintf("%s\n", text);
	cJSON_free(text);
	return out;
}

/* Adds a copy of item (may be NULL: nothing is added). */
static void
ctl_add_copy(cJSON *obj, const char *name, const cJSON *item)
{
	cJSON *copy;

	if (item == NULL)
		return;
	copy = json_ok(cJSON_Duplicate(item, 1));
	json_add(obj, name, copy);
}

/* Starts a message with the fields every line carries. */
static cJSON *
ctl_message_create(unsigned long id)
{
	cJSON *root;
	char digits[32];

	root = json_ok(cJSON_CreateObject());
	json_ok(cJSON_AddNumberToObject(root, "v", CTL_VERSION));
	/*
	 * Written as raw digits: cJSON prints large doubles with 15
	 * significant digits, which would change ids above 10^15.
	 */
	snprintf(digits, sizeof digits, "%lu", id);
	json_ok(cJSON_AddRawToObject(root, "id", digits));
	return root;
}

char *
ctl_request_encode(enum ctl_type type, unsigned long id, const cJSON *args)
{
	cJSON *root;

	root = ctl_message_create(id);
	json_ok(cJSON_AddStringToObject(root, "type", ctl_type_name(type)));
	ctl_add_copy(root, "args", args);
	return ctl_print_line(root);
}

char *
ctl_reply_encode_ok(unsigned long id, const cJSON *result)
{
	cJSON *root;

	root = ctl_message_create(id);
	json_ok(cJSON_AddTrueToObject(root, "ok"));
	if (result != NULL)
		ctl_add_copy(root, "result", result);
	else
		json_ok(cJSON_AddObjectToObject(root, "result"));
	return ctl_print_line(root);
}

char *
ctl_reply_encode_error(unsigned long id, const char *code, const char *message)
{
	cJSON *root, *error;

	root = ctl_message_create(id);
	json_ok(cJSON_AddFalseToObject(root, "ok"));
	error = json_ok(cJSON_AddObjectToObject(root, "error"));
	json_ok(cJSON_AddStringToObject(error, "code", code));
	json_ok(cJSON_AddStringToObject(error, "message", message));
	return ctl_print_line(root);
}

/* Reads a request id: a whole number from 0 to CTL_ID_MAX; -1 otherwise. */
static int
ctl_get_id(const cJSON *item, unsigned long long *id)
{
	double d;

	if (!cJSON_IsNumber(item))
		return -1;
	d = item->valuedouble;
	/* In range first, so the cast that tests for a fraction is defined. */
	if (!(d >= 0 && d <= (double)CTL_ID_MAX) || d != (double)(unsigned long long)d)
		return -1;
	*id = (unsigned long long)d;
	return 0;
}

/* True when item is the number CTL_VERSION exactly. */
static int
ctl_version_ok(const cJSON *item)
{
	return cJSON_IsNumber(item) && item->valuedouble == CTL_VERSION;
}

int
ctl_request_decode(const char *line, cJSON **root, enum ctl_type *type, unsigned long *id,
    const cJSON **args, const char **code, const char **message)
{
	const cJSON *item;
	unsigned long long n;
	int have_id;

	*root = NULL;
	*type = CTL_UNKNOWN;
	*id = 0;
	*args = NULL;

	if (!json_depth_ok(line, strlen(line), CTL_DEPTH_MAX)) {
		*code = "bad_json";
		*message = "request nests objects and arrays deeper than " CTL_STR(
		    CTL_DEPTH_MAX) " levels";
		goto fail;
	}
	/* Whole line, one value: "{...} junk" must not pass as a request. */
	*root = cJSON_ParseWithOpts(line, NULL, 1);
	if (*root == NULL) {
		*code = "bad_json";
		*message = "request is not valid JSON";
		goto fail;
	}
	if (!cJSON_IsObject(*root)) {
		*code = "bad_request";
		*message = "request must be a JSON object";
		goto fail;
	}
	/* Pick up the id first so even a refusal can name the request. */
	have_id =
	    ctl_get_id(cJSON_GetObjectItemCaseSensitive(*root, "id"), &n) == 0 && n <= ULONG_MAX;
	if (have_id)
		*id = (unsigned long)n;
	if (!ctl_version_ok(cJSON_GetObjectItemCaseSensitive(*root, "v"))) {
		*code = "bad_version";
		*message = "\"v\" must be 1, the control protocol version this chatd speaks";
		goto fail;
	}
	if (!have_id) {
		*code = "bad_request";
		*message = "\"id\" must be a whole number from 0 to 2^53-1";
		goto fail;
	}
	item = cJSON_GetObjectItemCaseSensitive(*root, "type");
	if (!cJSON_IsString(item)) {
		*code = "bad_request";
		*message = "\"type\" must be a string";
		goto fail;
	}
	*type = ctl_type_from_name(item->valuestring);
	if (*type == CTL_UNKNOWN) {
		*code = "bad_type";
		*message = "unknown request type";
		goto fail;
	}
	item = cJSON_GetObjectItemCaseSensitive(*root, "args");
	if (item != NULL && !cJSON_IsObject(item)) {
		*code = "bad_request";
		*message = "\"args\" must be an object";
		goto fail;
	}
	*args = item;
	return 0;

fail:
	cJSON_Delete(*root);
	*root = NULL;
	*type = CTL_UNKNOWN;
	*args = NULL;
	return -1;
}

/* Time left until deadline, for poll(); 0 once it has passed. */
static int
ctl_remaining_ms(long long deadline)
{
	long long left = deadline - clock_mono_ms();

	if (left <= 0)
		return 0;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

/*
 * Waits for events on fd until the deadline. Returns 1 when ready, 0 on
 * timeout, -1 with errno on error. EINTR only shortens the wait.
 */
static int
ctl_wait(int fd, short events, long long deadline)
{
	struct pollfd pfd;
	int n;

	for (;;) {
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, ctl_remaining_ms(deadline));
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* The cause for an expired deadline, in one place so every step agrees. */
static char *
ctl_timeout_cause(int timeout_ms)
{
	return xasprintf("chatd did not answer within %d ms", timeout_ms);
}

/*
 * Connects without blocking past the deadline. Returns 0, or -1 with
 * *cause; a missing socket file or one nobody listens on reads "chatd is
 * not running", as that is what the operator needs to hear.
 */
static int
ctl_connect(int fd, const struct sockaddr_un *sa, const char *path, long long deadline,
    int timeout_ms, char **cause)
{
	struct timespec ts;
	socklen_t len;
	int error, rc, left;

	for (;;) {
		if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			/*
			 * Linux reports a full listen backlog on a Unix socket
			 * as EAGAIN without queueing the attempt, so poll() has
			 * nothing to wait for: retry in short steps instead.
			 */
			left = ctl_remaining_ms(deadline);
			if (left == 0) {
				*cause = ctl_timeout_cause(timeout_ms);
				return -1;
			}
			if (left > CTL_BACKLOG_RETRY_MS)
				left = CTL_BACKLOG_RETRY_MS;
			ts.tv_sec = 0;
			ts.tv_nsec = left * 1000000L;
			if (nanosleep(&ts, NULL) != 0 && errno != EINTR) {
				*cause = xasprintf("nanosleep: %s", strerror(errno));
				return -1;
			}
			continue;
		}
		if (errno != EINPROGRESS)
			break;
		/* Not Linux's behaviour for AF_UNIX, but POSIX allows it. */
		rc = ctl_wait(fd, POLLOUT, deadline);
		if (rc == 0) {
			*cause = ctl_timeout_cause(timeout_ms);
			return -1;
		}
		if (rc < 0) {
			*cause = xasprintf("poll: %s", strerror(errno));
			return -1;
		}
		len = sizeof error;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) {
			*cause = xasprintf("getsockopt: %s", strerror(errno));
			return -1;
		}
		if (error == 0)
			return 0;
		errno = error;
		break;
	}
	if (errno == ENOENT || errno == ECONNREFUSED) {
		*cause = xasprintf(
		    "chatd is not running (control socket %s: %s)", path, strerror(errno));
	} else {
		*cause = xasprintf(
		    "cannot connect to chatd's control socket %s: %s", path, strerror(errno));
	}
	return -1;
}

/* Sends all of buf before the deadline; -1 with *cause otherwise. */
static int
ctl_send_all(int fd, const char *buf, size_t len, long long deadline, int timeout_ms, char **cause)
{
	ssize_t n;
	int rc;

	while (len > 0) {
		/* MSG_NOSIGNAL: a chatd that died mid-call must not kill us. */
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			*cause =
			    xasprintf("sending to chatd's control socket: %s", strerror(errno));
			return -1;
		}
		rc = ctl_wait(fd, POLLOUT, deadline);
		if (rc == 0) {
			*cause = ctl_timeout_cause(timeout_ms);
			return -1;
		}
		if (rc < 0) {
			*cause = xasprintf("poll: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Keeps the first line of the reply; one reply per request. */
static int
ctl_take_line(char *line, size_t len, void *arg)
{
	char **out = arg;

	*out = xstrndup(line, len);
	return 1; /* stop: anything after the reply is not ours to read */
}

/* Reads one reply line before the deadline; -1 with *cause otherwise. */
static int
ctl_recv_line(int fd, long long deadline, int timeout_ms, char **out, char **cause)
{
	struct ctl_linebuf lb;
	char chunk[CTL_READ_CHUNK];
	ssize_t n;
	int rc;

	*out = NULL;
	ctl_linebuf_init(&lb, CTL_LINE_MAX);
	for (;;) {
		n = recv(fd, chunk, sizeof chunk, 0);
		if (n > 0) {
			if (ctl_linebuf_feed(&lb, chunk, (size_t)n, ctl_take_line, out) == 0)
				continue;
			if (*out != NULL)
				break;
			*cause = xasprintf(
			    "chatd sent a bad reply (over %d bytes or with a NUL)", CTL_LINE_MAX);
			goto fail;
		}
		if (n == 0) {
			*cause = xstrdup("chatd closed the control connection without replying");
			goto fail;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			*cause =
			    xasprintf("reading from chatd's control socket: %s", strerror(errno));
			goto fail;
		}
		rc = ctl_wait(fd, POLLIN, deadline);
		if (rc == 0) {
			*cause = ctl_timeout_cause(timeout_ms);
			goto fail;
		}
		if (rc < 0) {
			*cause = xasprintf("poll: %s", strerror(errno));
			goto fail;
		}
	}
	ctl_linebuf_clear(&lb);
	return 0;

fail:
	ctl_linebuf_clear(&lb);
	return -1;
}

int
ctl_reply_decode(const char *line, unsigned long want_id, cJSON **result, char **code, char **cause)
{
	cJSON *root, *item;
	const cJSON *ecode, *emsg;
	unsigned long long id;
	int rc = CTL_ERR_UNAVAILABLE;

	if (result != NULL)
		*result = NULL;
	if (code != NULL)
		*code = NULL;
	*cause = NULL;
	root = json_depth_ok(line, strlen(line), CTL_DEPTH_MAX) ? cJSON_ParseWithOpts(line, NULL, 1)
								: NULL;
	if (root == NULL || !cJSON_IsObject(root)) {
		*cause = xstrdup("chatd sent a bad reply (not a JSON object)");
		goto out;
	}
	if (!ctl_version_ok(cJSON_GetObjectItemCaseSensitive(root, "v"))) {
		*cause = xasprintf(
		    "chatd sent a bad reply (not control protocol version %d)", CTL_VERSION);
		goto out;
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "ok");
	if (!cJSON_IsBool(item)) {
		*cause = xstrdup("chatd sent a bad reply (\"ok\" is not true or false)");
		goto out;
	}
	/* Id 0 on an error: chatd could not tell which request it refused. */
	if (ctl_get_id(cJSON_GetObjectItemCaseSensitive(root, "id"), &id) != 0 ||
	    (id != want_id && !(id == 0 && cJSON_IsFalse(item)))) {
		*cause =
		    xasprintf("chatd sent a bad reply (not the answer to request %lu)", want_id);
		goto out;
	}

	if (cJSON_IsTrue(item)) {
		item = cJSON_GetObjectItemCaseSensitive(root, "result");
		if (item != NULL && !cJSON_IsObject(item)) {
			*cause = xstrdup("chatd sent a bad reply (\"result\" is not an object)");
			goto out;
		}
		if (result != NULL) {
			if (item != NULL)
				*result = cJSON_DetachItemViaPointer(root, item);
			else
				*result = json_ok(cJSON_CreateObject());
		}
		rc = CTL_OK;
		goto out;
	}

	item = cJSON_GetObjectItemCaseSensitive(root, "error");
	ecode = cJSON_GetObjectItemCaseSensitive(item, "code");
	emsg = cJSON_GetObjectItemCaseSensitive(item, "message");
	if (!cJSON_IsString(ecode) || !cJSON_IsString(emsg)) {
		*cause = xstrdup("chatd sent a bad reply (\"error\" lacks code or message)");
		goto out;
	}
	if (code != NULL)
		*code = xstrdup(ecode->valuestring);
	*cause = xstrdup(emsg->valuestring);
	rc = CTL_ERR_REMOTE;

out:
	cJSON_Delete(root);
	return rc;
}

/*
 * The back-off after a timeout (see ctl.h). Shared by every thread that
 * calls ctl_call (chat-api's workers); this mutex is its one owner.
 */
static pthread_mutex_t ctl_backoff_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int ms; /* 0: off */
	long long until; /* monotonic ms; skip the socket below until then */
	int timeout_ms; /* of the call that timed out, for the message */
	char path[sizeof((struct sockaddr_un *)0)->sun_path];
} ctl_backoff;

void
ctl_backoff_set(int ms)
{
	if (pthread_mutex_lock(&ctl_backoff_lock) != 0)
		abort();
	ctl_backoff.ms = ms > 0 ? ms : 0;
	ctl_backoff.until = 0;
	pthread_mutex_unlock(&ctl_backoff_lock);
}

/*
 * Before a call: 1 if path is in its back-off (*cause says so), else 0.
 * The first caller after the back-off runs out goes ahead alone: it
 * pushes the back-off on by its own timeout, so that while it probes a
 * still-hung chatd every other thread keeps answering at once.
 */
static int
ctl_backoff_skip(const char *path, int timeout_ms, char **cause)
{
	long long now;
	int skip = 0;

	if (pthread_mutex_lock(&ctl_backoff_lock) != 0)
		abort();
	if (ctl_backoff.ms > 0 && ctl_backoff.until != 0 && strcmp(path, ctl_backoff.path) == 0) {
		now = clock_mono_ms();
		if (now < ctl_backoff.until) {
			skip = 1;
			*cause = xasprintf("chatd did not answer within %d ms; not asked again for "
					   "%lld ms",
			    ctl_backoff.timeout_ms, ctl_backoff.until - now);
		} else
			ctl_backoff.until = now + (timeout_ms > 0 ? timeout_ms : 0) + 1;
	}
	pthread_mutex_unlock(&ctl_backoff_lock);
	return skip;
}

/* After a call to path: a timeout starts the back-off, anything else ends it. */
static void
ctl_backoff_note(const char *path, int timeout_ms, int timed_out)
{
	if (pthread_mutex_lock(&ctl_backoff_lock) != 0)
		abort();
	if (ctl_backoff.ms > 0) {
		if (timed_out) {
			/* Once per back-off, not per request answered without chatd. */
			if (ctl_backoff.until == 0 || strcmp(path, ctl_backoff.path) != 0)
				log_warn("chatd did not answer on %s within %d ms: answering "
					 "without it for %d ms",
				    path, timeout_ms, ctl_backoff.ms);
			ctl_backoff.until = clock_mono_ms() + ctl_backoff.ms;
			ctl_backoff.timeout_ms = timeout_ms;
			/* The caller checked the length against sun_path. */
			snprintf(ctl_backoff.path, sizeof ctl_backoff.path, "%s", path);
		} else if (strcmp(path, ctl_backoff.path) == 0)
			ctl_backoff.until = 0;
	}
	pthread_mutex_unlock(&ctl_backoff_lock);
}

/* Next request id: 1 to CTL_ID_MAX, so it survives a trip through a double. */
static unsigned long
ctl_new_id(void)
{
	unsigned long long n, limit = CTL_ID_MAX < ULONG_MAX ? CTL_ID_MAX : ULONG_MAX;

	n = atomic_fetch_add_explicit(&ctl_next_id, 1, memory_order_relaxed);
	return (unsigned long)(n % limit + 1);
}

int
ctl_call(const char *socket_path, int timeout_ms, enum ctl_type type, const cJSON *args,
    cJSON **result, char **code, char **cause)
{
	struct sockaddr_un sa;
	unsigned long id;
	long long deadline;
	char *request = NULL, *reply = NULL;
	size_t len;
	int fd = -1, rc = CTL_ERR_UNAVAILABLE;

	if (result != NULL)
		*result = NULL;
	if (code != NULL)
		*code = NULL;
	*cause = NULL;
	deadline = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);

	id = ctl_new_id();
	request = ctl_request_encode(type, id, args);
	len = strlen(request);
	if (len > CTL_LINE_MAX) {
		/* chatd would drop us for it; say so the way it would. */
		if (code != NULL)
			*code = xstrdup("too_large");
		*cause = xasprintf(
		    "control request of %zu bytes is over the %d-byte limit", len, CTL_LINE_MAX);
		rc = CTL_ERR_REMOTE;
		goto out;
	}

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(socket_path) >= sizeof sa.sun_path) {
		*cause = xasprintf("control socket path is too long (%zu bytes, at most %zu): %s",
		    strlen(socket_path), sizeof sa.sun_path - 1, socket_path);
		goto out;
	}
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	if (ctl_backoff_skip(socket_path, timeout_ms, cause))
		goto out;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*cause = xasprintf("socket: %s", strerror(errno));
		goto out;
	}
	if (ctl_connect(fd, &sa, socket_path, deadline, timeout_ms, cause) != 0 ||
	    ctl_send_all(fd, request, len, deadline, timeout_ms, cause) != 0 ||
	    ctl_recv_line(fd, deadline, timeout_ms, &reply, cause) != 0) {
		/* Every step fails with the deadline passed only by timing out. */
		ctl_backoff_note(socket_path, timeout_ms, ctl_remaining_ms(deadline) == 0);
		goto out;
	}
	rc = ctl_reply_decode(reply, id, result, code, cause);
	ctl_backoff_note(socket_path, timeout_ms, 0);

out:
	/* A failed close changes nothing: the outcome is already decided. */
	if (fd >= 0)
		(void)close(fd);
	free(request);
	free(reply);
	return rc;
}
