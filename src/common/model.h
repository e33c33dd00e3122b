/*
 * The domain's rules that every program applies the same way: the limits
 * of ids, names and reasons (docs/api.md lists them) and what an event
 * type may look like. chat-api checks them on REST input, chatd on
 * WebSocket and control-socket input, chatctl before it writes; the
 * database only stores what passed.
 */
#ifndef CHAT_MODEL_H
#define CHAT_MODEL_H

#define ROOM_ID_LEN 36 /* UUID text form */
#define ROOM_NAME_MAX_BYTES 200
#define USER_ID_MAX_BYTES 128
#define NICKNAME_MAX_BYTES 128
#define ROOM_ADMINS_MAX 100
#define REASON_MAX_BYTES 500
#define EVENT_TYPE_MAX_BYTES 64
#define BAN_DURATION_MAX_SECONDS (365LL * 24 * 3600) /* longest timed ban */
#define ROOM_CLOSE_REASON_DEFAULT "closed by administrator"

/*
 * An event type is an identifier clients switch on: 1 to
 * EVENT_TYPE_MAX_BYTES of A-Z a-z 0-9 _ . - (no spaces, no punctuation
 * soup). 1 if s obeys.
 */
int model_event_type_ok(const char *s);
/* The rule in words, for error messages: "<what> must be " MODEL_EVENT_TYPE_RULE. */
#define MODEL_STR_(x) #x
#define MODEL_STR(x) MODEL_STR_(x)
#define MODEL_EVENT_TYPE_RULE \
	"1 to " MODEL_STR(EVENT_TYPE_MAX_BYTES) " characters of A-Z a-z 0-9 _ . -"

#endif
