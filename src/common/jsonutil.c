/*
 * Validation and construction helpers around cJSON. Everything that comes
 * from a peer is checked here before any handler sees it; see jsonutil.h.
 */
#include "autoconf.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonutil.h"
#include "xmalloc.h"

int
utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str, *end = s + len;

	while (s < end) {
		unsigned c = *s;
		size_t n;
		unsigned cp;

		if (c < 0x80) {
			s++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else
			return 0;
		if ((size_t)(end - s) <= n)
			return 0;
		for (size_t i = 1; i <= n; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		/* overlong forms, UTF-16 surrogates, beyond Unicode */
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += n + 1;
	}
	return 1;
}

void
utf8_scrub(char *s)
{
	size_t len = strlen(s), i = 0, n;

	while (i < len) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 1;
		if (n > 1 && i + n <= len && utf8_valid(s + i, n))
			i += n;
		else
			s[i++] = '?'; /* a stray byte; what follows is looked at afresh */
	}
}

int
text_check(const char *s, size_t min, size_t max, int flags, const char **why)
{
	size_t len = strlen(s);

	if (len < min) {
		*why = min == 1 ? "must not be empty" : "is too short";
		return -1;
	}
	if (len > max) {
		*why = "is too long";
		return -1;
	}
	if (!utf8_valid(s, len)) {
		*why = "is not valid UTF-8";
		return -1;
	}
	if (flags & TEXT_NO_CONTROL) {
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)s[i];
			if (c < 0x20 || c == 0x7f) {
				*why = "contains control characters";
				return -1;
			}
		}
	}
	return 0;
}

/* 1 if the JSON text has a \u0000 escape (an odd run of backslashes before "u0000"). */
static int
json_has_escaped_nul(const char *text, size_t len)
{
	for (size_t i = 0; i + 6 <= len; i++) {
		size_t run = 0;

		if (text[i] != '\\')
			continue;
		while (i + run < len && text[i + run] == '\\')
			run++;
		if (run % 2 == 1 && i + run + 5 <= len && text[i + run] == 'u' &&
		    strncmp(text + i + run + 1, "0000", 4) == 0)
			return 1;
		i += run - 1;
	}
	return 0;
}

/* 1 if text[0..len) is only JSON whitespace. Bounded: text need not end in NUL. */
static int
json_all_space(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
			return 0;
	}
	return 1;
}

int
json_depth_ok(const char *text, size_t len, int max)
{
	int depth = 0, in_string = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = text[i];

		if (in_string) {
			if (ch == '\\')
				i++; /* the escaped character, whatever it is */
			else if (ch == '"')
				in_string = 0;
			continue;
		}
		if (ch == '"')
			in_string = 1;
		else if (ch == '{' || ch == '[') {
			if (++depth > max)
				return 0;
		} else if ((ch == '}' || ch == ']') && depth > 0)
			depth--;
	}
	return 1;
}

cJSON *
json_parse_object(const char *text, size_t len, char **cause)
{
	const char *end = NULL;
	cJSON *root;

	if (!utf8_valid(text, len)) {
		*cause = xstrdup("not valid UTF-8");
		return NULL;
	}
	if (memchr(text, '\0', len) != NULL || json_has_escaped_nul(text, len)) {
		*cause = xstrdup("NUL characters are not allowed");
		return NULL;
	}
	if (!json_depth_ok(text, len, JSON_DEPTH_MAX)) {
		*cause = xasprintf("JSON nested deeper than %d levels", JSON_DEPTH_MAX);
		return NULL;
	}
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (root == NULL) {
		const char *at = cJSON_GetErrorPtr();
		long off = at != NULL && at >= text && at <= text + len ? (long)(at - text) : -1;
		if (json_all_space(text, len))
			*cause = xstrdup("empty JSON text");
		else
			*cause = xasprintf("malformed JSON near byte %ld", off);
		return NULL;
	}
	/* cJSON stops at the end of the first value; anything but space after it is an error. */
	if (end != NULL) {
		size_t rest = len - (size_t)(end - text);
		if (!json_all_space(end, rest)) {
			cJSON_Delete(root);
			*cause = xasprintf(
			    "unexpected data after the JSON value at byte %ld", (long)(end - text));
			return NULL;
		}
	}
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		*cause = xstrdup("the JSON value must be an object");
		return NULL;
	}
	return root;
}

int
json_check_keys(const cJSON *obj, const char *const *allowed, char **cause)
{
	const cJSON *item;

	cJSON_ArrayForEach(item, obj)
	{
		const char *const *a;
		for (a = allowed; *a != NULL; a++) {
			if (strcmp(*a, item->string) == 0)
				break;
		}
		if (*a == NULL) {
			*cause = xasprintf("unknown field \"%.64s\"", item->string);
			utf8_scrub(*cause); /* the cut may split a character */
			return -1;
		}
	}
	return 0;
}

int
json_get_string(const cJSON *obj, const char *key, int required, size_t min, size_t max, int flags,
    const char **out, char **cause)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	const char *why;

	*out = NULL;
	if (item == NULL || cJSON_IsNull(item)) {
		if (!required)
			return 0;
		*cause = xasprintf("field \"%s\" is required", key);
		return -1;
	}
	if (!cJSON_IsString(item)) {
		*cause = xasprintf("field \"%s\" must be a string", key);
		return -1;
	}
	if (text_check(item->valuestring, min, max, flags, &why) != 0) {
		*cause = xasprintf("field \"%s\" %s (%zu to %zu bytes of UTF-8%s)", key, why, min,
		    max, (flags & TEXT_NO_CONTROL) ? ", no control characters" : "");
		return -1;
	}
	*out = item->valuestring;
	return 0;
}

int
json_get_int(const cJSON *obj, const char *key, int required, long long min, long long max,
    long long *out, int *present, char **cause)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	double d;

	*present = 0;
	if (item == NULL || cJSON_IsNull(item)) {
		if (!required)
			return 0;
		*cause = xasprintf("field \"%s\" is required", key);
		return -1;
	}
	if (!cJSON_IsNumber(item)) {
		*cause = xasprintf("field \"%s\" must be a number", key);
		return -1;
	}
	d = item->valuedouble;
	if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max) {
		*cause = xasprintf(
		    "field \"%s\" must be a whole number from %lld to %lld", key, min, max);
		return -1;
	}
	*out = (long long)d;
	*present = 1;
	return 0;
}

static __attribute__((noreturn)) void
json_oom(void)
{
	static const char msg[] = "fatal: out of memory in cJSON\n";

	if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
		/* nothing more we can do */
	}
	abort();
}

void *
json_ok(void *p)
{
	if (p == NULL)
		json_oom();
	return p;
}

char *
json_print(const cJSON *item)
{
	return json_ok(cJSON_PrintUnformatted(item));
}

cJSON *
json_object(void)
{
	return json_ok(cJSON_CreateObject());
}

cJSON *
json_array(void)
{
	return json_ok(cJSON_CreateArray());
}

cJSON *
json_string(const char *s)
{
	return json_ok(s != NULL ? cJSON_CreateString(s) : cJSON_CreateNull());
}

void
json_add(cJSON *obj, const char *key, cJSON *item)
{
	if (!cJSON_AddItemToObject(obj, key, item))
		json_oom();
}

void
json_add_string(cJSON *obj, const char *key, const char *s)
{
	json_add(obj, key, json_string(s));
}

void
json_add_int(cJSON *obj, const char *key, long long v)
{
	json_add(obj, key, json_ok(cJSON_CreateNumber((double)v)));
}

void
json_add_bool(cJSON *obj, const char *key, int v)
{
	json_add(obj, key, json_ok(cJSON_CreateBool(v)));
}

void
json_append(cJSON *arr, cJSON *item)
{
	if (!cJSON_AddItemToArray(arr, item))
		json_oom();
}
