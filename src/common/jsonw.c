/*
 * Streaming JSON writer; see jsonw.h. String escaping follows RFC 8259:
 * quote, backslash and C0 controls are escaped; everything else (UTF-8
 * included) is copied as is, since inputs are validated UTF-8.
 */
#include "autoconf.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "xmalloc.h"

void
jsonw_init(struct jsonw *w)
{
	memset(w, 0, sizeof *w);
}

void
jsonw_clear(struct jsonw *w)
{
	free(w->buf);
	jsonw_init(w);
}

char *
jsonw_take(struct jsonw *w)
{
	char *s;

	if (w->buf == NULL)
		return xstrdup("");
	s = w->buf;
	jsonw_init(w);
	return s;
}

static void
jsonw_reserve(struct jsonw *w, size_t more)
{
	size_t need = w->len + more + 1;

	if (need <= w->cap)
		return;
	if (w->cap == 0)
		w->cap = 256;
	while (w->cap < need)
		w->cap *= 2;
	w->buf = xrealloc(w->buf, w->cap);
}

static void
jsonw_put(struct jsonw *w, const char *s, size_t len)
{
	jsonw_reserve(w, len);
	memcpy(w->buf + w->len, s, len);
	w->len += len;
	w->buf[w->len] = '\0';
}

/* Writes the separator a new value needs at the current level. */
static void
jsonw_value_start(struct jsonw *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (w->depth > 0) {
		if (w->has_items & (1u << w->depth))
			jsonw_put(w, ",", 1);
		w->has_items |= 1u << w->depth;
	}
}

static void
jsonw_open(struct jsonw *w, char c)
{
	jsonw_value_start(w);
	assert(w->depth + 1 < JSONW_MAX_DEPTH);
	w->depth++;
	w->has_items &= ~(1u << w->depth);
	jsonw_put(w, &c, 1);
}

static void
jsonw_close(struct jsonw *w, char c)
{
	assert(w->depth > 0 && !w->after_key);
	w->depth--;
	jsonw_put(w, &c, 1);
}

void
jsonw_object_begin(struct jsonw *w)
{
	jsonw_open(w, '{');
}

void
jsonw_object_end(struct jsonw *w)
{
	jsonw_close(w, '}');
}

void
jsonw_array_begin(struct jsonw *w)
{
	jsonw_open(w, '[');
}

void
jsonw_array_end(struct jsonw *w)
{
	jsonw_close(w, ']');
}

static void
jsonw_quoted(struct jsonw *w, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	/* worst case every byte becomes \u00XX */
	jsonw_reserve(w, len * 6 + 2);
	w->buf[w->len++] = '"';
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char *o;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		memcpy(w->buf + w->len, s + run, i - run);
		w->len += i - run;
		run = i + 1;
		o = w->buf + w->len;
		o[0] = '\\';
		switch (c) {
		case '"':
			o[1] = '"';
			w->len += 2;
			break;
		case '\\':
			o[1] = '\\';
			w->len += 2;
			break;
		case '\n':
			o[1] = 'n';
			w->len += 2;
			break;
		case '\r':
			o[1] = 'r';
			w->len += 2;
			break;
		case '\t':
			o[1] = 't';
			w->len += 2;
			break;
		default:
			o[1] = 'u';
			o[2] = '0';
			o[3] = '0';
			o[4] = hex[c >> 4];
			o[5] = hex[c & 0xf];
			w->len += 6;
		}
	}
	memcpy(w->buf + w->len, s + run, len - run);
	w->len += len - run;
	w->buf[w->len++] = '"';
	w->buf[w->len] = '\0';
}

void
jsonw_key(struct jsonw *w, const char *key)
{
	assert(!w->after_key);
	jsonw_value_start(w);
	jsonw_quoted(w, key, strlen(key));
	jsonw_put(w, ":", 1);
	w->after_key = 1;
}

void
jsonw_string_len(struct jsonw *w, const char *s, size_t len)
{
	jsonw_value_start(w);
	jsonw_quoted(w, s, len);
}

void
jsonw_string(struct jsonw *w, const char *s)
{
	if (s == NULL)
		jsonw_null(w);
	else
		jsonw_string_len(w, s, strlen(s));
}

void
jsonw_int(struct jsonw *w, long long v)
{
	char tmp[24], *p = tmp + sizeof tmp;
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	jsonw_value_start(w);
	jsonw_put(w, p, (size_t)(tmp + sizeof tmp - p));
}

void
jsonw_bool(struct jsonw *w, int v)
{
	jsonw_value_start(w);
	if (v)
		jsonw_put(w, "true", 4);
	else
		jsonw_put(w, "false", 5);
}

void
jsonw_null(struct jsonw *w)
{
	jsonw_value_start(w);
	jsonw_put(w, "null", 4);
}

void
jsonw_raw(struct jsonw *w, const char *json, size_t len)
{
	jsonw_value_start(w);
	jsonw_put(w, json, len);
}

void
jsonw_kv_string(struct jsonw *w, const char *key, const char *s)
{
	jsonw_key(w, key);
	jsonw_string(w, s);
}

void
jsonw_kv_int(struct jsonw *w, const char *key, long long v)
{
	jsonw_key(w, key);
	jsonw_int(w, v);
}

void
jsonw_kv_bool(struct jsonw *w, const char *key, int v)
{
	jsonw_key(w, key);
	jsonw_bool(w, v);
}

void
jsonw_kv_null(struct jsonw *w, const char *key)
{
	jsonw_key(w, key);
	jsonw_null(w);
}
