/*
 * Outgoing WebSocket frames and the per-connection two-lane queue.
 *
 * A frame is built once per message (unmasked server framing: header plus
 * payload, ready for the wire) and shared by reference among every
 * recipient's queue. Each connection has a high lane (admin operations,
 * system events, CustomEvent, errors) and a low lane (chat), both bounded:
 * a full low lane drops its oldest frame and counts the drop; a full high
 * lane refuses (the caller disconnects that client). outq_fill() moves
 * whole frames, high lane first, into one buffer so several frames leave
 * in one system call. Service thread only.
 */
#ifndef CHATD_OUTQ_H
#define CHATD_OUTQ_H

#include <stddef.h>
#include <stdint.h>

struct frame {
	uint32_t refs;
	uint32_t len; /* bytes in data: WebSocket header + payload */
	unsigned char data[];
};

/*
 * A text frame (opcode 1, FIN) with payload (copied); refs = 1, owned by
 * the caller, who unrefs it after pushing it to every recipient.
 */
struct frame *frame_create_text(const char *payload, size_t len);
/*
 * Bytes of close reason a close frame carries: a control frame's payload
 * is at most 125 bytes (RFC 6455 5.5), 2 of them the status code.
 */
#define FRAME_CLOSE_REASON_MAX 123
/*
 * How much of the UTF-8 reason fits a close frame: all of it, or at most
 * FRAME_CLOSE_REASON_MAX bytes cut at a character boundary, so the peer
 * never sees half a character. (lws builds the close frame itself.)
 */
size_t frame_close_reason_len(const char *reason);
struct frame *frame_ref(struct frame *f);
/* Drops one reference and frees f at zero; NULL is allowed. */
void frame_unref(struct frame *f);

/* A ring of frame pointers; storage allocated on first push, freed when the
 * ring drains, so idle connections cost only this struct. */
struct outq_ring {
	struct frame **slots;
	uint32_t cap, head, len;
};

struct outq {
	struct outq_ring high, low;
	uint32_t high_max, low_max; /* bounds (frames) */
	uint64_t dropped; /* low frames dropped since outq_take_dropped() */
	size_t bytes; /* bytes queued in both lanes */
};

void outq_init(struct outq *q, uint32_t high_max, uint32_t low_max);
/* Releases every queued frame and the ring storage. */
void outq_clear(struct outq *q);
/*
 * Queues f (taking a new reference; the caller keeps its own) on the high
 * or low lane. Returns 0, or -1 if the high lane is full (nothing queued).
 * On a full low lane the oldest low frame is dropped and counted.
 */
int outq_push(struct outq *q, struct frame *f, int high);
int outq_empty(const struct outq *q);
/* Low frames dropped since the last call; resets the count. */
uint64_t outq_take_dropped(struct outq *q);
/*
 * Moves whole frames, high lane first, into buf while the total stays
 * within cap. The first frame is always taken, even if larger than cap, so
 * buf must hold max(cap, the largest frame the program creates). Stops at
 * the first frame that does not fit (never reorders). Returns the bytes
 * written (0 if both lanes are empty); the moved frames are unreferenced.
 */
size_t outq_fill(struct outq *q, unsigned char *buf, size_t cap);

#endif
