/*
 * chatctl's output: chatd's results as aligned text for people or compact
 * JSON for scripts. Only formats what it is given; never talks to chatd or
 * the database. Anything chatd sends is treated as untrusted text: control
 * characters never reach the terminal raw.
 */
#include "autoconf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chatctl.h"
#include "jsonutil.h"

void
output_json(FILE *out, const cJSON *v)
{
	char *text = json_print(v);

	fprintf(out, "%s\n", text);
	free(text);
}

/* 1 if s holds a byte that a terminal might act on. */
static int
output_has_control(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			return 1;
	}
	return 0;
}

void
output_value(FILE *out, const cJSON *v)
{
	if (cJSON_IsString(v)) {
		if (output_has_control(v->valuestring))
			output_json(out, v);
		else
			fprintf(out, "%s\n", v->valuestring);
	} else if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		/* counters and ids are whole numbers: never print them as 1e+06 */
		if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0)
			fprintf(out, "%lld\n", (long long)d);
		else
			fprintf(out, "%g\n", d);
	} else if (cJSON_IsTrue(v))
		fprintf(out, "yes\n");
	else if (cJSON_IsFalse(v))
		fprintf(out, "no\n");
	else if (cJSON_IsNull(v))
		fprintf(out, "-\n");
	else
		output_json(out, v);
}

void
output_fields(FILE *out, const cJSON *obj)
{
	const cJSON *item;
	size_t width = 0;

	cJSON_ArrayForEach(item, obj)
	{
		size_t n = strlen(item->string);
		if (n > width)
			width = n;
	}
	if (width > 40)
		width = 40;
	cJSON_ArrayForEach(item, obj)
	{
		if (output_has_control(item->string))
			fprintf(out, "%-*s  ", (int)width, "?");
		else
			fprintf(out, "%-*s  ", (int)width, item->string);
		output_value(out, item);
	}
}

const char *
output_plain(const char *s)
{
	return s == NULL ? "-" : output_has_control(s) ? "?" : s;
}

void
output_cell_value(char *buf, size_t len, const cJSON *v)
{
	if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
		snprintf(buf, len, "%.0f", v->valuedouble);
	else if (cJSON_IsString(v) && !output_has_control(v->valuestring))
		snprintf(buf, len, "%s", v->valuestring);
	else if (v == NULL || cJSON_IsNull(v))
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "?");
}

/* One table cell as text (at most len - 1 bytes). */
static void
output_cell(char *buf, size_t len, const cJSON *room, const char *key)
{
	output_cell_value(buf, len, cJSON_GetObjectItemCaseSensitive(room, key));
}

void
output_rooms_table(FILE *out, const cJSON *rooms)
{
	static const char *const keys[] = { "room_id", "current_users", "peak_users", "connections",
		"queued_low", "queued_high", "dropped_low" };
	static const char *const heads[] = { "ROOM_ID", "USERS", "PEAK", "CONNS", "QUEUED_LOW",
		"QUEUED_HIGH", "DROPPED_LOW" };
	enum { NCOLS = sizeof keys / sizeof keys[0] };
	int width[NCOLS];
	const cJSON *room;
	char cell[160];
	size_t i;

	if (cJSON_GetArraySize(rooms) == 0) {
		fprintf(out, "no live rooms\n");
		return;
	}
	for (i = 0; i < NCOLS; i++)
		width[i] = (int)strlen(heads[i]);
	cJSON_ArrayForEach(room, rooms)
	{
		for (i = 0; i < NCOLS; i++) {
			output_cell(cell, sizeof cell, room, keys[i]);
			if ((int)strlen(cell) > width[i])
				width[i] = (int)strlen(cell);
		}
	}
	for (i = 0; i < NCOLS; i++)
		fprintf(out, i == 0 ? "%-*s" : "  %*s", width[i], heads[i]);
	fputc('\n', out);
	cJSON_ArrayForEach(room, rooms)
	{
		for (i = 0; i < NCOLS; i++) {
			output_cell(cell, sizeof cell, room, keys[i]);
			fprintf(out, i == 0 ? "%-*s" : "  %*s", width[i], cell);
		}
		fputc('\n', out);
	}
}

void
output_time_ms(char *buf, size_t len, long long ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%lld ms", ms);
}

void
output_age_ms(char *buf, size_t len, long long ms)
{
	if (ms < 0)
		ms = 0;
	if (ms < 1000)
		snprintf(buf, len, "%lld ms ago", ms);
	else if (ms < 60 * 1000)
		snprintf(buf, len, "%lld.%lld s ago", ms / 1000, ms % 1000 / 100);
	else if (ms < 3600 * 1000)
		snprintf(buf, len, "%lldm%02llds ago", ms / 60000, ms / 1000 % 60);
	else if (ms < 86400LL * 1000)
		snprintf(buf, len, "%lldh%02lldm ago", ms / 3600000, ms / 60000 % 60);
	else
		snprintf(buf, len, "%lldd%02lldh ago", ms / 86400000, ms / 3600000 % 24);
}
