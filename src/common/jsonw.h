/*
 * A streaming JSON writer into one growing buffer. Responses and frames
 * are built with it rather than with cJSON trees: no node per value, no
 * printf of doubles for integers, one allocation that doubles as it grows.
 * (cJSON remains the parser for input.) Commas are placed automatically.
 * Callers must produce a well-formed sequence (key before each member
 * value); that is checked only by assertions in debug builds.
 */
#ifndef CHAT_JSONW_H
#define CHAT_JSONW_H

#include <stddef.h>
#include <stdint.h>

#define JSONW_MAX_DEPTH 32

struct jsonw {
	char *buf;
	size_t len, cap;
	unsigned depth;
	uint32_t has_items; /* bit d: level d already holds a value */
	int after_key; /* the next value completes a member */
};

/* An embedded writer: init, write, then jsonw_take() or jsonw_clear(). */
void jsonw_init(struct jsonw *w);
void jsonw_clear(struct jsonw *w);
/* Hands over the NUL-terminated text (caller frees); the writer is reset. */
char *jsonw_take(struct jsonw *w);

void jsonw_object_begin(struct jsonw *w);
void jsonw_object_end(struct jsonw *w);
void jsonw_array_begin(struct jsonw *w);
void jsonw_array_end(struct jsonw *w);
void jsonw_key(struct jsonw *w, const char *key);

void jsonw_string(struct jsonw *w, const char *s); /* NULL writes null */
void jsonw_string_len(struct jsonw *w, const char *s, size_t len);
void jsonw_int(struct jsonw *w, long long v);
void jsonw_bool(struct jsonw *w, int v);
void jsonw_null(struct jsonw *w);
/* Inserts text that is already one valid JSON value. */
void jsonw_raw(struct jsonw *w, const char *json, size_t len);

/* Members: key plus value in one call. */
void jsonw_kv_string(struct jsonw *w, const char *key, const char *s);
void jsonw_kv_int(struct jsonw *w, const char *key, long long v);
void jsonw_kv_bool(struct jsonw *w, const char *key, int v);
void jsonw_kv_null(struct jsonw *w, const char *key);

#endif
