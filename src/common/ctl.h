/*
 * Control protocol between chatd (server) and its clients (chat-api,
 * chat-sync, chatctl): a Unix stream socket, one JSON request and one JSON
 * reply per line, versioned, with a bounded line length.
 *
 *   request: {"v":1,"id":N,"type":"stats","args":{...}}\n
 *   reply:   {"v":1,"id":N,"ok":true,"result":{...}}\n
 *            {"v":1,"id":N,"ok":false,"error":{"code":"...","message":"..."}}\n
 *
 * Type numbers are never reused; names are what travels on the wire and
 * what logs print. This module holds the framing, the type table and the
 * client; chatd's server side uses the framing and the table.
 */
#ifndef CHAT_CTL_H
#define CHAT_CTL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "jsonutil.h"

#define CTL_VERSION 1
/* Longest request or reply line, newline included. A peer sending more is
 * dropped. */
#define CTL_LINE_MAX (256 * 1024)
/*
 * Deepest nesting of a request or reply line: the envelope and args add two
 * levels around a payload that passed JSON_DEPTH_MAX where it came in
 * (REST body, chatctl argument), so whatever those accepted fits.
 */
#define CTL_DEPTH_MAX 34
/* Largest request id: ids travel as JSON numbers, which peers (and cJSON)
 * hold as doubles, exact only up to 2^53. */
#define CTL_ID_MAX 9007199254740991ULL

enum ctl_type {
	CTL_UNKNOWN = 0,
	CTL_HEALTH = 1, /* {} -> {"version","uptime_s","connections","rooms"} */
	CTL_STATS = 2, /* {"room_id"?} -> live stats of one room or all */
	CTL_ROOM_OPENED = 3, /* {"room_id"} -> chatd loads the room */
	CTL_ROOM_CLOSED = 4, /* {"room_id","reason"} -> close every connection */
	CTL_BAN = 5, /* {"room_id","user_id","reason"?,"expires_at"? (Unix ms, 0: never)} */
	CTL_UNBAN = 6, /* {"room_id","user_id"} */
	CTL_KICK = 7, /* {"room_id","user_id","reason"?} */
	CTL_PUBLISH = 8, /* {"room_id","event_type","payload"} -> CustomEvent */
	CTL_ROOM_RELOAD = 9, /* {"room_id"} -> re-read admins and bans */
	CTL_ROOMS = 10, /* {} -> every live room with stats */
	CTL_METRICS = 11, /* {"cluster"?} -> {"text": Prometheus text exposition, ...} */
	CTL_TYPE_MAX
};

/* "health", "stats", ...; "unknown" for anything else. */
const char *ctl_type_name(enum ctl_type type);
/* CTL_UNKNOWN when the name is not in the table. */
enum ctl_type ctl_type_from_name(const char *name);

/*
 * Accumulates bytes that arrive in arbitrary chunks and yields whole lines.
 * Embedded in its owner (ctl_linebuf_init / ctl_linebuf_clear). Never holds
 * more than max bytes, whatever the peer sends; a large buffer is released
 * once its line is consumed. One owner thread.
 */
struct ctl_linebuf {
	char *buf;
	size_t len, cap;
	size_t max; /* line limit, newline included */
};
void ctl_linebuf_init(struct ctl_linebuf *lb, size_t max);
void ctl_linebuf_clear(struct ctl_linebuf *lb);
/*
 * Appends data and calls line() for every complete line (without the
 * newline and without one "\r" before it, so CRLF from a terminal works;
 * NUL-terminated, valid only during the call). Returns 0, or -1 if a line
 * exceeds the limit (counted on the wire, "\r\n" included), a line holds a
 * NUL byte (never valid JSON, and lines are used as C strings), or line()
 * returned non-zero (stop; the peer should be dropped). Bytes after the
 * failing line are not looked at.
 */
int ctl_linebuf_feed(struct ctl_linebuf *lb, const char *data, size_t len,
    int (*line)(char *line, size_t len, void *arg), void *arg);

/*
 * Encodes a request line (compact JSON with trailing newline; heap, caller
 * frees). args is an object or NULL (then "args" is left out); it is
 * copied, not taken.
 */
char *ctl_request_encode(enum ctl_type type, unsigned long id, const cJSON *args);
/*
 * Encodes a reply line: result (ok; copied, NULL sends {}) or code+message
 * (error). Heap, caller frees.
 */
char *ctl_reply_encode_ok(unsigned long id, const cJSON *result);
char *ctl_reply_encode_error(unsigned long id, const char *code, const char *message);

/*
 * Validates and splits a request line. On success *type, *id and *args
 * (borrowed from *root, which the caller deletes; NULL when the request
 * has no "args") are set and 0 is returned; -1 with a static code
 * ("bad_json", "bad_version", "bad_type", "bad_request") and static
 * *message otherwise, *root NULL. On failure *id still holds the request's
 * id if it had a valid one (else 0), so the error reply can echo it.
 */
int ctl_request_decode(const char *line, cJSON **root, enum ctl_type *type, unsigned long *id,
    const cJSON **args, const char **code, const char **message);

/* Result of a client call. */
#define CTL_OK 0
#define CTL_ERR_UNAVAILABLE (-1) /* chatd not running, not answering, or a bad reply */
#define CTL_ERR_REMOTE (-2) /* chatd answered with an error */

/*
 * Validates a reply line (without its newline) to request id and splits
 * it: CTL_OK with *result (the reply's result object, {} when absent;
 * caller deletes), CTL_ERR_REMOTE with *code and *cause (heap; an error
 * reply with id 0 is accepted, as chatd may not know which request it
 * refuses), or CTL_ERR_UNAVAILABLE with *cause for anything malformed or
 * answering another id. result and code may be NULL. ctl_call uses it;
 * exported for tests and fuzzing.
 */
int ctl_reply_decode(const char *line, unsigned long id, cJSON **result, char **code, char **cause);

/*
 * Sends one request to the control socket and waits up to timeout_ms for
 * the reply. CTL_OK: *result is the reply's result object (caller
 * deletes). CTL_ERR_UNAVAILABLE: *cause says why ("chatd is not running
 * (control socket /run/chatd/control.sock: No such file or directory)",
 * "chatd did not answer within 2000 ms", a malformed reply).
 * CTL_ERR_REMOTE: *code (heap) and *cause carry chatd's error; a request
 * longer than CTL_LINE_MAX is not sent and comes back this way with code
 * "too_large", as chatd would refuse it. *cause (heap) is set on every
 * error; the caller frees *code and *cause. result and code may be NULL
 * when the caller does not want them. Never blocks longer than timeout_ms
 * (one deadline for connect, send and receive). Safe from any thread (one
 * connection per call; never raises SIGPIPE).
 */
int ctl_call(const char *socket_path, int timeout_ms, enum ctl_type type, const cJSON *args,
    cJSON **result, char **code, char **cause);

/* chat-api's back-off: how long a hung chatd is left alone after a timeout. */
#define CTL_BACKOFF_MS 5000
/*
 * Turns on (ms > 0) or off the back-off for this process's ctl_call: after
 * a call to a socket times out, calls to that socket fail at once with
 * CTL_ERR_UNAVAILABLE ("not asked again for N ms") for ms milliseconds,
 * instead of each waiting out its own timeout; then one call probes while
 * the others keep failing at once, and any answer (or a refused connect)
 * ends the back-off. Off by default (chatctl waits, as one asked it to).
 * Any thread.
 */
void ctl_backoff_set(int ms);

#endif
