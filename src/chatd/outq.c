/*
 * Server WebSocket frames and the per-connection two-lane queue; see
 * outq.h. Builds bytes and moves pointers only: no sockets, no
 * libwebsockets, no clock. Must not touch anything but the frames and
 * queues handed to it.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outq.h"
#include "xmalloc.h"

/* RFC 6455 5.2: FIN bit plus opcode. */
#define OUTQ_FIN_TEXT 0x81
/* Longest header of an unmasked server frame: 1 + 1 + 8 bytes. */
#define OUTQ_HEADER_MAX 10
/* First ring allocation; most connections never hold more than a few frames. */
#define OUTQ_RING_MIN 4
/*
 * Ring storage of up to this many slots survives a drained ring. 0: every
 * drained ring frees its storage, so an idle connection holds no
 * allocation at all; the price is one malloc/free pair per burst, a few
 * tens of nanoseconds against microseconds per send().
 */
#define OUTQ_RING_KEEP 0
/* Rings never grow past this many slots, so cap * 2 cannot overflow. */
#define OUTQ_LANE_LIMIT (UINT32_C(1) << 30)

/* Writes the header for a payload of len bytes; returns its size. */
static size_t
outq_header(unsigned char *h, unsigned char first, size_t len)
{
	int i;

	h[0] = first;
	if (len < 126) {
		h[1] = (unsigned char)len; /* server frames are never masked */
		return 2;
	}
	if (len <= 0xffff) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		return 4;
	}
	h[1] = 127;
	for (i = 0; i < 8; i++)
		h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	return 10;
}

struct frame *
frame_create_text(const char *payload, size_t len)
{
	unsigned char h[OUTQ_HEADER_MAX];
	struct frame *f;
	size_t hl;

	/* frame->len is 32 bits; nothing chatd sends comes near. */
	if (len > UINT32_MAX - OUTQ_HEADER_MAX)
		abort();
	hl = outq_header(h, OUTQ_FIN_TEXT, len);
	f = xmalloc(sizeof *f + hl + len);
	f->refs = 1;
	f->len = (uint32_t)(hl + len);
	memcpy(f->data, h, hl);
	if (len != 0)
		memcpy(f->data + hl, payload, len);
	return f;
}

size_t
frame_close_reason_len(const char *reason)
{
	size_t n = strlen(reason);

	if (n > FRAME_CLOSE_REASON_MAX) {
		/* Back up over continuation bytes to the character's first. */
		n = FRAME_CLOSE_REASON_MAX;
		while (n > 0 && ((unsigned char)reason[n] & 0xc0) == 0x80)
			n--;
	}
	return n;
}

struct frame *
frame_ref(struct frame *f)
{
	if (f->refs == UINT32_MAX)
		abort(); /* a leak of references, not a real count */
	f->refs++;
	return f;
}

/* NULL is allowed. Frees f when the last reference goes. */
void
frame_unref(struct frame *f)
{
	if (f == NULL)
		return;
	if (--f->refs == 0)
		free(f);
}

static void
outq_ring_release(struct outq_ring *r)
{
	free(r->slots);
	r->slots = NULL;
	r->cap = r->head = 0;
}

/* Makes room for one more frame: r->len < max is the caller's check. */
static void
outq_ring_grow(struct outq_ring *r)
{
	struct frame **slots;
	uint32_t cap, i;

	if (r->len < r->cap)
		return;
	cap = r->cap == 0 ? OUTQ_RING_MIN : r->cap * 2;
	slots = xreallocarray(NULL, cap, sizeof *slots);
	for (i = 0; i < r->len; i++)
		slots[i] = r->slots[(r->head + i) & (r->cap - 1)];
	free(r->slots);
	r->slots = slots;
	r->cap = cap;
	r->head = 0;
}

static void
outq_ring_push(struct outq_ring *r, struct frame *f)
{
	outq_ring_grow(r);
	r->slots[(r->head + r->len) & (r->cap - 1)] = f;
	r->len++;
}

/* Removes the oldest frame (the ring must not be empty); the caller owns its reference. */
static struct frame *
outq_ring_pop(struct outq_ring *r)
{
	struct frame *f = r->slots[r->head];

	r->head = (r->head + 1) & (r->cap - 1);
	if (--r->len == 0) {
		if (r->cap > OUTQ_RING_KEEP)
			outq_ring_release(r);
		else
			r->head = 0;
	}
	return f;
}

static void
outq_ring_clear(struct outq_ring *r)
{
	while (r->len != 0)
		frame_unref(outq_ring_pop(r));
	outq_ring_release(r);
}

void
outq_init(struct outq *q, uint32_t high_max, uint32_t low_max)
{
	memset(q, 0, sizeof *q);
	q->high_max = high_max < OUTQ_LANE_LIMIT ? high_max : OUTQ_LANE_LIMIT;
	q->low_max = low_max < OUTQ_LANE_LIMIT ? low_max : OUTQ_LANE_LIMIT;
}

/* The bounds are kept, so q may be reused; the drop count is reset. */
void
outq_clear(struct outq *q)
{
	outq_ring_clear(&q->high);
	outq_ring_clear(&q->low);
	q->dropped = 0;
	q->bytes = 0;
}

/*
 * With low_max 0 a low frame is counted as dropped at once. f stays the
 * caller's: the queue takes its own reference only when it keeps f.
 */
int
outq_push(struct outq *q, struct frame *f, int high)
{
	struct frame *old;

	if (high) {
		if (q->high.len >= q->high_max)
			return -1;
		outq_ring_push(&q->high, frame_ref(f));
	} else {
		if (q->low_max == 0) {
			q->dropped++;
			return 0;
		}
		if (q->low.len >= q->low_max) {
			old = outq_ring_pop(&q->low);
			q->bytes -= old->len;
			frame_unref(old);
			q->dropped++;
		}
		outq_ring_push(&q->low, frame_ref(f));
	}
	q->bytes += f->len;
	return 0;
}

int
outq_empty(const struct outq *q)
{
	return q->high.len == 0 && q->low.len == 0;
}

uint64_t
outq_take_dropped(struct outq *q)
{
	uint64_t n = q->dropped;

	q->dropped = 0;
	return n;
}

/*
 * Stops at the first frame that does not fit, even if a smaller low frame
 * would: skipping ahead would reorder a lane or let chat pass an admin
 * event.
 */
size_t
outq_fill(struct outq *q, unsigned char *buf, size_t cap)
{
	struct outq_ring *lanes[2] = { &q->high, &q->low }, *r;
	struct frame *f;
	size_t total = 0;
	int i;

	for (i = 0; i < 2; i++) {
		r = lanes[i];
		while (r->len != 0) {
			f = r->slots[r->head];
			/* total > cap only after an oversized first frame */
			if (total != 0 && (total >= cap || f->len > cap - total))
				return total;
			memcpy(buf + total, f->data, f->len);
			total += f->len;
			q->bytes -= f->len;
			frame_unref(outq_ring_pop(r));
		}
	}
	return total;
}
