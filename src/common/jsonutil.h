/*
 * JSON and text validation shared by chat-api (request bodies) and chatd
 * (client frames): strict UTF-8, field type and length checks with one
 * error message style, and compact printing. cJSON does not validate
 * UTF-8 and truncates strings at an escaped \u0000, so raw input goes
 * through json_parse_object() rather than cJSON_Parse() directly.
 */
#ifndef CHAT_JSONUTIL_H
#define CHAT_JSONUTIL_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* 1 if s[0..len) is well-formed UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int utf8_valid(const char *s, size_t len);
/*
 * Makes the NUL-terminated s valid UTF-8 in place: each byte that does not
 * belong to a well-formed sequence becomes '?'. For text we compose from
 * pieces a client sent ("%.64s" may cut a character in half), so whatever
 * we answer is valid JSON text.
 */
void utf8_scrub(char *s);

#define TEXT_NO_CONTROL 0x1 /* reject C0 controls and DEL (tab, CR, LF too) */
/*
 * Checks a NUL-terminated string: length in bytes within [min, max], valid
 * UTF-8, and the flags. Returns 0, or -1 with *why set to a static reason.
 */
int text_check(const char *s, size_t min, size_t max, int flags, const char **why);

/*
 * Deepest nesting of objects and arrays a peer may send, counting the
 * outermost value: a REST body, a WebSocket message. cJSON recurses once
 * per level (its own cap is 1,000) and so do many receivers of what we
 * store and pass on; a few dozen levels is more than any real payload
 * needs. docs/api.md and docs/websocket.md state it.
 */
#define JSON_DEPTH_MAX 32

/*
 * 1 if text[0..len) nests objects and arrays at most max deep (strings
 * skipped, so brackets inside them do not count). A linear scan that stops
 * at the first level too deep: cheap to run before parsing, so nothing
 * deep is ever built.
 */
int json_depth_ok(const char *text, size_t len, int max);

/*
 * Parses text that must be one JSON object. Returns the object (caller
 * deletes) or NULL with *cause: invalid UTF-8, an escaped NUL, a syntax
 * error (with its byte offset), nesting deeper than JSON_DEPTH_MAX, or a
 * non-object.
 */
cJSON *json_parse_object(const char *text, size_t len, char **cause);

/* -1 with *cause naming the first key of obj not in allowed (NULL-terminated). */
int json_check_keys(const cJSON *obj, const char *const *allowed, char **cause);

/*
 * Reads a string field. Absent or null: *out = NULL and 0 if !required,
 * else -1. Wrong type, bad length or encoding: -1 with *cause naming the
 * field. *out is borrowed from obj.
 */
int json_get_string(const cJSON *obj, const char *key, int required, size_t min, size_t max,
    int flags, const char **out, char **cause);

/* Reads an integer field in [min, max]; *present says whether it was given. */
int json_get_int(const cJSON *obj, const char *key, int required, long long min, long long max,
    long long *out, int *present, char **cause);

/*
 * The one out-of-memory check for cJSON results: returns p, or reports and
 * aborts when p is NULL. Given valid arguments, cJSON's create, add,
 * duplicate and print calls return NULL only when an allocation failed,
 * which (as with xmalloc) no caller can do anything sensible about.
 */
void *json_ok(void *p);

/* Compact text of item (caller frees with free()); aborts on OOM. */
char *json_print(const cJSON *item);

/* cJSON_Add*ToObject wrappers that abort on OOM instead of returning NULL. */
cJSON *json_object(void);
cJSON *json_array(void);
void json_add(cJSON *obj, const char *key, cJSON *item);
void json_add_string(cJSON *obj, const char *key, const char *s); /* NULL -> null */
void json_add_int(cJSON *obj, const char *key, long long v);
void json_add_bool(cJSON *obj, const char *key, int v);
void json_append(cJSON *arr, cJSON *item);
cJSON *json_string(const char *s);

#endif
