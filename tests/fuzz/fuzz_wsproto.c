/*
 * Fuzz target for what a WebSocket client can send chatd: one text frame
 * through wsproto_parse. An accepted request must hold exactly the fields
 * of its type, within their limits, and re-encode into a server frame
 * that is valid UTF-8 and valid JSON; a refusal must name a documented
 * code and yield a valid Error frame and close reason. No sockets, no
 * global state.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "fuzz.h"
#include "jsonutil.h"
#include "outq.h"
#include "wsproto.h"

/* Small, so short inputs reach the content limit path. */
#define FUZZ_MAX_CONTENT 64

static const char *const fuzz_codes[] = { "invalid_json", "unknown_type", "invalid_field",
	"empty_content", "content_too_large", "invalid_utf8", NULL };

/* Every frame chatd sends must be one JSON object in valid UTF-8. */
static void
fuzz_check_frame(char *text)
{
	char *cause = NULL;
	cJSON *root;

	root = json_parse_object(text, strlen(text), &cause);
	FUZZ_CHECK(root != NULL);
	cJSON_Delete(root);
	free(text);
}

static void
fuzz_accepted(const struct wsproto_request *req)
{
	size_t i;
	cJSON *value;

	switch (req->type) {
	case WSPROTO_MESSAGE:
		FUZZ_CHECK(req->content != NULL && req->user_id == NULL);
		FUZZ_CHECK(strlen(req->content) >= 1 && strlen(req->content) <= FUZZ_MAX_CONTENT);
		FUZZ_CHECK(utf8_valid(req->content, strlen(req->content)));
		for (i = 0; req->content[i] != '\0'; i++) {
			unsigned char c = (unsigned char)req->content[i];
			FUZZ_CHECK(c >= 0x20 || c == '\n' || c == '\r' || c == '\t');
			FUZZ_CHECK(c != 0x7f);
		}
		fuzz_check_frame(
		    wsproto_encode_message(1, 1, "room", "u", "n", 0, req->content, 1000));
		break;
	case WSPROTO_CUSTOM_EVENT:
		FUZZ_CHECK(req->event_type != NULL && req->payload_json != NULL);
		FUZZ_CHECK(strlen(req->event_type) >= 1 &&
		    strlen(req->event_type) <= EVENT_TYPE_MAX_BYTES);
		FUZZ_CHECK(
		    strspn(req->event_type,
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
		    strlen(req->event_type));
		/* the re-encoded payload is one JSON value */
		value = cJSON_Parse(req->payload_json);
		FUZZ_CHECK(value != NULL);
		cJSON_Delete(value);
		fuzz_check_frame(wsproto_encode_custom_event(
		    1, 1, "room", "u", "n", 1, req->event_type, req->payload_json, 1000));
		break;
	case WSPROTO_BAN:
		FUZZ_CHECK(req->duration_seconds >= 0 && req->duration_seconds <= 31536000);
		/* FALLTHROUGH */
	case WSPROTO_UNBAN:
	case WSPROTO_KICK:
		FUZZ_CHECK(req->user_id != NULL && req->content == NULL);
		FUZZ_CHECK(strlen(req->user_id) >= 1 && strlen(req->user_id) <= USER_ID_MAX_BYTES);
		FUZZ_CHECK(req->reason == NULL || strlen(req->reason) <= REASON_MAX_BYTES);
		FUZZ_CHECK(req->type != WSPROTO_UNBAN || req->reason == NULL);
		fuzz_check_frame(
		    wsproto_encode_user_left("room", req->user_id, req->user_id, req->reason));
		break;
	default:
		FUZZ_CHECK(0);
	}
}

static void
fuzz_refused(const char *code, char *message)
{
	size_t i, n;

	for (i = 0; fuzz_codes[i] != NULL; i++) {
		if (code != NULL && strcmp(code, fuzz_codes[i]) == 0)
			break;
	}
	FUZZ_CHECK(fuzz_codes[i] != NULL);
	FUZZ_CHECK(message != NULL && utf8_valid(message, strlen(message)));
	fuzz_check_frame(wsproto_encode_error(code, message, -1, 0));

	/* A message may end up as a close reason: the cut must keep it UTF-8. */
	n = frame_close_reason_len(message);
	FUZZ_CHECK(n <= FRAME_CLOSE_REASON_MAX && n <= strlen(message));
	FUZZ_CHECK(utf8_valid(message, n));
	free(message);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wsproto_request req;
	const char *code;
	char *message;

	if (wsproto_parse((const char *)data, size, FUZZ_MAX_CONTENT, &req, &code, &message) == 0) {
		FUZZ_CHECK(code == NULL && message == NULL);
		fuzz_accepted(&req);
	} else {
		FUZZ_CHECK(req.content == NULL && req.event_type == NULL &&
		    req.payload_json == NULL && req.user_id == NULL && req.reason == NULL);
		fuzz_refused(code, message);
	}
	wsproto_request_clear(&req);
	return 0;
}
