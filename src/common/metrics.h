/*
 * The Prometheus text exposition format (version 0.0.4), written into a
 * growing buffer: one family header (HELP, TYPE) followed by its samples.
 * No registry: each program renders what it counts, in the order it
 * likes, and the caller keeps every family's samples together as the
 * format requires. Label values are escaped here; names are the caller's
 * constants and must follow the naming rules ([a-zA-Z_:][a-zA-Z0-9_:]*).
 * Not thread-safe: one writer per buffer.
 */
#ifndef CHAT_METRICS_H
#define CHAT_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* The Content-Type of an exposition served over HTTP. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_buf {
	char *buf; /* NUL-terminated */
	size_t len, cap;
};

void metrics_init(struct metrics_buf *b);
/* The text (heap, caller frees); the buffer is left empty. */
char *metrics_take(struct metrics_buf *b);
void metrics_clear(struct metrics_buf *b);
/* Appends text as it is (an exposition rendered elsewhere). */
void metrics_raw(struct metrics_buf *b, const char *text);

/* "# HELP name help" (help escaped) and "# TYPE name type" ("counter", "gauge", "histogram"). */
void metrics_family(struct metrics_buf *b, const char *name, const char *type, const char *help);
/*
 * One sample: name{k1="v1",...} value. labels is NULL or a NULL-terminated
 * array of name, value pairs ({"route", "/x", "status", "200", NULL}).
 */
void metrics_sample(struct metrics_buf *b, const char *name, const char *const *labels, double v);
/* Header and the one unlabelled sample, for the many single-value families. */
void metrics_counter(struct metrics_buf *b, const char *name, const char *help, double v);
void metrics_gauge(struct metrics_buf *b, const char *name, const char *help, double v);

/* A histogram with fixed upper bounds (ascending, +Inf implied). */
#define METRICS_BUCKETS_MAX 16
struct metrics_hist {
	const double *bounds;
	size_t nbounds; /* at most METRICS_BUCKETS_MAX */
	uint64_t counts[METRICS_BUCKETS_MAX + 1]; /* per bucket, not cumulative; last: +Inf */
	uint64_t count;
	double sum;
};
void metrics_hist_init(struct metrics_hist *h, const double *bounds, size_t nbounds);
void metrics_hist_observe(struct metrics_hist *h, double v);
/*
 * Writes name_bucket{...,le="..."} (cumulative), name_sum and name_count
 * with the given labels (NULL-terminated pairs, or NULL). The family
 * header (type "histogram") is the caller's, once for all label sets.
 */
void metrics_hist_write(struct metrics_buf *b, const char *name, const char *const *labels,
    const struct metrics_hist *h);

/*
 * Merges n expositions into one valid exposition (heap, caller frees):
 * every sample of texts[i] gets the label node="<nodes[i]>", first in its
 * braces; each family keeps one HELP and one TYPE line (the first text's
 * that has them), and all of its samples, from every text in text order,
 * follow them together as the format requires, families in the order
 * they first appear. A sample belongs to the family of the HELP or TYPE
 * line before it when its name is the family's (or, for a histogram or a
 * summary, the family's plus _bucket, _sum or _count), else to the family
 * of its own name. Blank lines, other comments, a last line without its
 * newline, families missing from some texts and NULL texts (empty) are
 * fine; a text must not carry a node label of its own.
 */
char *metrics_merge(const char *const *texts, const char *const *nodes, size_t n);

/* Bucket bounds shared by the programs: latencies in seconds, batch sizes. */
extern const double metrics_seconds_bounds[];
extern const size_t metrics_seconds_nbounds;
extern const double metrics_size_bounds[];
extern const size_t metrics_size_nbounds;

#endif
