/*
 * The Prometheus text exposition writer (see metrics.h).
 */
#include "autoconf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "xmalloc.h"

/* 1 ms to 10 s: a commit, a REST request, a callback delivery. */
const double metrics_seconds_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10 };
const size_t metrics_seconds_nbounds = sizeof metrics_seconds_bounds / sizeof(double);
/* Operations per batch: the writer takes at most a few hundred. */
const double metrics_size_bounds[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512 };
const size_t metrics_size_nbounds = sizeof metrics_size_bounds / sizeof(double);

void
metrics_init(struct metrics_buf *b)
{
	b->cap = 4096;
	b->buf = xmalloc(b->cap);
	b->buf[0] = '\0';
	b->len = 0;
}

char *
metrics_take(struct metrics_buf *b)
{
	char *s = b->buf;

	b->buf = NULL;
	b->len = b->cap = 0;
	return s;
}

void
metrics_clear(struct metrics_buf *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = b->cap = 0;
}

static void
metrics_put(struct metrics_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 4096;
		b->buf = xrealloc(b->buf, b->cap);
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void
metrics_puts(struct metrics_buf *b, const char *s)
{
	metrics_put(b, s, strlen(s));
}

void
metrics_raw(struct metrics_buf *b, const char *text)
{
	metrics_puts(b, text);
}

/* Backslash and newline escaped always; the double quote too in label values. */
static void
metrics_escaped(struct metrics_buf *b, const char *s, int quote)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			metrics_puts(b, "\\\\");
		else if (*s == '\n')
			metrics_puts(b, "\\n");
		else if (*s == '"' && quote)
			metrics_puts(b, "\\\"");
		else
			metrics_put(b, s, 1);
	}
}

/* Integers as integers (counters read better), others round-trip exact. */
static void
metrics_number(struct metrics_buf *b, double v)
{
	char num[64];

	if (isnan(v))
		snprintf(num, sizeof num, "NaN");
	else if (isinf(v))
		snprintf(num, sizeof num, "%s", v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		snprintf(num, sizeof num, "%.0f", v);
	else
		snprintf(num, sizeof num, "%.17g", v);
	metrics_puts(b, num);
}

void
metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help)
{
	metrics_puts(b, "# HELP ");
	metrics_puts(b, name);
	metrics_puts(b, " ");
	metrics_escaped(b, help, 0);
	metrics_puts(b, "\n# TYPE ");
	metrics_puts(b, name);
	metrics_puts(b, " ");
	metrics_puts(b, type);
	metrics_puts(b, "\n");
}

/* name{labels[,extra_name="extra_value"]} value */
static void
metrics_line(struct metrics_buf *b, const char *name, const char *const *labels,
    const char *extra_name, const char *extra_value, double v)
{
	int first = 1;

	metrics_puts(b, name);
	if ((labels != NULL && labels[0] != NULL) || extra_name != NULL) {
		metrics_puts(b, "{");
		for (size_t i = 0; labels != NULL && labels[i] != NULL && labels[i + 1] != NULL;
		     i += 2) {
			if (!first)
				metrics_puts(b, ",");
			first = 0;
			metrics_puts(b, labels[i]);
			metrics_puts(b, "=\"");
			metrics_escaped(b, labels[i + 1], 1);
			metrics_puts(b, "\"");
		}
		if (extra_name != NULL) {
			if (!first)
				metrics_puts(b, ",");
			metrics_puts(b, extra_name);
			metrics_puts(b, "=\"");
			metrics_escaped(b, extra_value, 1);
			metrics_puts(b, "\"");
		}
		metrics_puts(b, "}");
	}
	metrics_puts(b, " ");
	metrics_number(b, v);
	metrics_puts(b, "\n");
}

void
metrics_sample(struct metrics_buf *b, const char *name, const char *const *labels, double v)
{
	metrics_line(b, name, labels, NULL, "", v);
}

void
metrics_counter(struct metrics_buf *b, const char *name, const char *help, double v)
{
	metrics_family(b, name, "counter", help);
	metrics_sample(b, name, NULL, v);
}

void
metrics_gauge(struct metrics_buf *b, const char *name, const char *help, double v)
{
	metrics_family(b, name, "gauge", help);
	metrics_sample(b, name, NULL, v);
}

void
metrics_hist_init(struct metrics_hist *h, const double *bounds, size_t nbounds)
{
	memset(h, 0, sizeof *h);
	h->bounds = bounds;
	h->nbounds = nbounds < METRICS_BUCKETS_MAX ? nbounds : METRICS_BUCKETS_MAX;
}

void
metrics_hist_observe(struct metrics_hist *h, double v)
{
	size_t i = 0;

	while (i < h->nbounds && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

void
metrics_hist_write(struct metrics_buf *b, const char *name, const char *const *labels,
    const struct metrics_hist *h)
{
	char *sub = xasprintf("%s_bucket", name);
	char le[32];
	uint64_t cum = 0;

	for (size_t i = 0; i < h->nbounds; i++) {
		cum += h->counts[i];
		snprintf(le, sizeof le, "%g", h->bounds[i]);
		metrics_line(b, sub, labels, "le", le, (double)cum);
	}
	metrics_line(b, sub, labels, "le", "+Inf", (double)h->count);
	free(sub);
	sub = xasprintf("%s_sum", name);
	metrics_line(b, sub, labels, NULL, "", h->sum);
	free(sub);
	sub = xasprintf("%s_count", name);
	metrics_line(b, sub, labels, NULL, "", (double)h->count);
	free(sub);
}

/* ---------------------------------------------------------------- merging */

/* One family of a merged exposition. */
struct merge_family {
	char *name;
	char *help, *type; /* the kept header lines, newline included; NULL: none seen */
	int grouped; /* a histogram or summary: its samples carry suffixes */
	struct metrics_buf samples; /* every text's, in text order */
};

struct merge {
	struct merge_family *v;
	size_t n;
};

static size_t
merge_name_len(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len &&
	    (s[i] == '_' || s[i] == ':' || (s[i] >= 'a' && s[i] <= 'z') ||
		(s[i] >= 'A' && s[i] <= 'Z') || (i > 0 && s[i] >= '0' && s[i] <= '9')))
		i++;
	return i;
}

/* 1 if a sample named name belongs to f. */
static int
merge_owns(const struct merge_family *f, const char *name, size_t len)
{
	static const char *const suffixes[] = { "_bucket", "_sum", "_count" };
	size_t flen = strlen(f->name);

	if (len == flen && memcmp(name, f->name, len) == 0)
		return 1;
	if (!f->grouped || len <= flen || memcmp(name, f->name, flen) != 0)
		return 0;
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		if (len - flen == strlen(suffixes[i]) &&
		    memcmp(name + flen, suffixes[i], len - flen) == 0)
			return 1;
	}
	return 0;
}

/* The family named name exactly, created (at the end) when none is. */
static struct merge_family *
merge_family_named(struct merge *m, const char *name, size_t len)
{
	struct merge_family *f;

	for (size_t i = 0; i < m->n; i++) {
		if (strlen(m->v[i].name) == len && memcmp(m->v[i].name, name, len) == 0)
			return &m->v[i];
	}
	m->v = xreallocarray(m->v, m->n + 1, sizeof *m->v);
	f = &m->v[m->n++];
	memset(f, 0, sizeof *f);
	f->name = xstrndup(name, len);
	return f;
}

/* "# HELP name ..." or "# TYPE name type": the family it heads (index), or -1. */
static long
merge_header(struct merge *m, const char *line, size_t len)
{
	const char *name = line + 7, *type;
	size_t nlen, tlen;
	struct merge_family *f;
	int is_type;

	if (len < 8 || (memcmp(line, "# HELP ", 7) != 0 && memcmp(line, "# TYPE ", 7) != 0))
		return -1;
	is_type = line[2] == 'T';
	nlen = merge_name_len(name, len - 7);
	if (nlen == 0 || (nlen < len - 7 && name[nlen] != ' '))
		return -1;
	f = merge_family_named(m, name, nlen);
	if (!is_type && f->help == NULL)
		f->help = xasprintf("%.*s\n", (int)len, line);
	if (is_type && f->type == NULL) {
		f->type = xasprintf("%.*s\n", (int)len, line);
		type = name + nlen + 1;
		tlen = nlen + 8 < len ? len - nlen - 8 : 0;
		f->grouped = (tlen == 9 && memcmp(type, "histogram", 9) == 0) ||
		    (tlen == 7 && memcmp(type, "summary", 7) == 0);
	}
	return (long)(f - m->v);
}

/* One sample line with node="node" added; cur is the family the text's last header began. */
static long
merge_sample(struct merge *m, long cur, const char *line, size_t len, const char *node)
{
	size_t nlen = merge_name_len(line, len), at = nlen;
	struct merge_family *f = NULL;
	struct metrics_buf *b;

	if (nlen == 0)
		return cur; /* not a sample: dropped */
	if (cur >= 0 && merge_owns(&m->v[cur], line, nlen))
		f = &m->v[cur];
	for (size_t i = 0; f == NULL && i < m->n; i++) {
		if (merge_owns(&m->v[i], line, nlen))
			f = &m->v[i];
	}
	if (f == NULL)
		f = merge_family_named(m, line, nlen);
	b = &f->samples;
	metrics_put(b, line, nlen);
	metrics_puts(b, "{node=\"");
	metrics_escaped(b, node, 1);
	metrics_puts(b, "\"");
	while (at < len && (line[at] == ' ' || line[at] == '\t'))
		at++;
	if (at < len && line[at] == '{') {
		at++;
		while (at < len && (line[at] == ' ' || line[at] == '\t'))
			at++;
		if (at < len && line[at] != '}')
			metrics_puts(b, ",");
	} else {
		metrics_puts(b, "} ");
	}
	metrics_put(b, line + at, len - at);
	metrics_puts(b, "\n");
	return (long)(f - m->v);
}

char *
metrics_merge(const char *const *texts, const char *const *nodes, size_t n)
{
	struct merge m = { NULL, 0 };
	struct metrics_buf out;

	for (size_t t = 0; t < n; t++) {
		const char *p = texts[t], *nl;
		long cur = -1, h;

		for (; p != NULL && *p != '\0'; p = nl != NULL ? nl + 1 : p + strlen(p)) {
			size_t len, s = 0;

			nl = strchr(p, '\n');
			len = nl != NULL ? (size_t)(nl - p) : strlen(p);
			while (s < len && (p[s] == ' ' || p[s] == '\t'))
				s++;
			if (s == len)
				continue; /* blank */
			if (p[s] == '#') {
				if ((h = merge_header(&m, p + s, len - s)) >= 0)
					cur = h;
				continue; /* any other comment is dropped */
			}
			cur = merge_sample(&m, cur, p + s, len - s, nodes[t]);
		}
	}
	metrics_init(&out);
	for (size_t i = 0; i < m.n; i++) {
		struct merge_family *f = &m.v[i];

		if (f->help != NULL)
			metrics_puts(&out, f->help);
		if (f->type != NULL)
			metrics_puts(&out, f->type);
		if (f->samples.len > 0)
			metrics_put(&out, f->samples.buf, f->samples.len);
		free(f->name);
		free(f->help);
		free(f->type);
		metrics_clear(&f->samples);
	}
	free(m.v);
	return metrics_take(&out);
}
