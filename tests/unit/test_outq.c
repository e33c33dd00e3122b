/*
 * Server frames and the two-lane queue: wire headers at every length
 * boundary, the close-reason cut, lane order, drop-oldest, high-lane refusal,
 * batching into one buffer, reference counts and idle memory. Run under
 * valgrind or ASan to see every frame freed.
 */
#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "outq.h"

/* A text frame whose payload is one byte, tag, so order can be read back. */
static struct frame *
tagged(char tag)
{
	return frame_create_text(&tag, 1);
}

START_TEST(test_text_headers)
{
	static const struct {
		size_t len, hl;
		unsigned char h1;
	} cases[] = {
		{ 0, 2, 0 },
		{ 1, 2, 1 },
		{ 125, 2, 125 },
		{ 126, 4, 126 },
		{ 127, 4, 126 },
		{ 65535, 4, 126 },
		{ 65536, 10, 127 },
		{ 70000, 10, 127 },
	};
	char *payload = malloc(70000);
	struct frame *f;
	size_t i, len, got;
	int j;

	for (i = 0; i < 70000; i++)
		payload[i] = (char)('a' + i % 26);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		len = cases[i].len;
		f = frame_create_text(payload, len);
		ck_assert_uint_eq(f->refs, 1);
		ck_assert_uint_eq(f->len, cases[i].hl + len);
		ck_assert_uint_eq(f->data[0], 0x81); /* FIN, text */
		ck_assert_uint_eq(f->data[1], cases[i].h1); /* no mask bit */
		if (cases[i].hl == 4)
			got = (size_t)f->data[2] << 8 | f->data[3];
		else if (cases[i].hl == 10) {
			got = 0;
			for (j = 0; j < 8; j++)
				got = got << 8 | f->data[2 + j];
		} else
			got = f->data[1];
		ck_assert_uint_eq(got, len);
		ck_assert(memcmp(f->data + cases[i].hl, payload, len) == 0);
		frame_unref(f);
	}
	/* exact bytes for two boundaries */
	f = frame_create_text(payload, 126);
	ck_assert(memcmp(f->data, "\x81\x7e\x00\x7e", 4) == 0);
	frame_unref(f);
	f = frame_create_text(payload, 65536);
	ck_assert(memcmp(f->data, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10) == 0);
	frame_unref(f);
	f = frame_create_text(NULL, 0);
	ck_assert_uint_eq(f->len, 2);
	ck_assert(memcmp(f->data, "\x81\x00", 2) == 0);
	frame_unref(f);
	free(payload);
}
END_TEST

START_TEST(test_close_reason)
{
	char reason[200];

	ck_assert_uint_eq(frame_close_reason_len("too slow"), 8);
	ck_assert_uint_eq(frame_close_reason_len(""), 0);

	/* 123 bytes fit exactly; one more is cut */
	memset(reason, 'r', sizeof reason);
	reason[FRAME_CLOSE_REASON_MAX] = '\0';
	ck_assert_uint_eq(FRAME_CLOSE_REASON_MAX, 123);
	ck_assert_uint_eq(frame_close_reason_len(reason), 123);
	reason[123] = 'r';
	reason[150] = '\0';
	ck_assert_uint_eq(frame_close_reason_len(reason), 123);

	/* a 3-byte character across byte 123 is dropped whole */
	memset(reason, 'r', 122);
	memcpy(reason + 122, "张张", 6);
	reason[128] = '\0';
	ck_assert_uint_eq(frame_close_reason_len(reason), 122);
	/* ending exactly on a character boundary keeps it */
	memset(reason, 'r', 120);
	memcpy(reason + 120, "张张", 6);
	reason[126] = '\0';
	ck_assert_uint_eq(frame_close_reason_len(reason), 123);
}
END_TEST

START_TEST(test_order)
{
	static const unsigned char want[] = { 0x81, 1, 'X', 0x81, 1, 'Y', 0x81, 1, 'a', 0x81, 1,
		'b' };
	struct frame *l1 = tagged('a'), *l2 = tagged('b'), *h1 = tagged('X'), *h2 = tagged('Y');
	unsigned char buf[64];
	struct outq q;
	size_t n;

	outq_init(&q, 8, 8);
	ck_assert(outq_empty(&q));
	ck_assert_uint_eq(outq_fill(&q, buf, sizeof buf), 0);
	ck_assert_int_eq(outq_push(&q, l1, 0), 0);
	ck_assert_int_eq(outq_push(&q, h1, 1), 0);
	ck_assert_int_eq(outq_push(&q, l2, 0), 0);
	ck_assert_int_eq(outq_push(&q, h2, 1), 0);
	ck_assert(!outq_empty(&q));
	ck_assert_uint_eq(q.bytes, 12);
	n = outq_fill(&q, buf, sizeof buf);
	ck_assert_uint_eq(n, 12);
	/* high lane first, each lane in order */
	ck_assert(memcmp(buf, want, sizeof want) == 0);
	ck_assert(outq_empty(&q));
	ck_assert_uint_eq(q.bytes, 0);
	frame_unref(l1);
	frame_unref(l2);
	frame_unref(h1);
	frame_unref(h2);
	outq_clear(&q);
}
END_TEST

START_TEST(test_drop_oldest)
{
	static const unsigned char want[] = { 0x81, 1, '7', 0x81, 1, '8', 0x81, 1, '9' };
	struct frame *f[10];
	unsigned char buf[64];
	struct outq q;
	int i;

	outq_init(&q, 2, 3);
	for (i = 0; i < 10; i++) {
		f[i] = tagged((char)('0' + i));
		ck_assert_int_eq(outq_push(&q, f[i], 0), 0);
		frame_unref(f[i]); /* the queue holds the only reference now */
	}
	ck_assert_uint_eq(q.low.len, 3);
	ck_assert_uint_eq(q.bytes, 9);
	ck_assert_uint_eq(q.dropped, 7);
	ck_assert_uint_eq(outq_take_dropped(&q), 7);
	ck_assert_uint_eq(outq_take_dropped(&q), 0);
	/* the newest three remain, oldest first */
	ck_assert_uint_eq(outq_fill(&q, buf, sizeof buf), 9);
	ck_assert(memcmp(buf, want, sizeof want) == 0);
	outq_clear(&q);
}
END_TEST

START_TEST(test_high_refused)
{
	struct frame *h = tagged('H'), *l = tagged('l');
	unsigned char buf[64];
	struct outq q;

	outq_init(&q, 2, 2);
	ck_assert_int_eq(outq_push(&q, h, 1), 0);
	ck_assert_int_eq(outq_push(&q, h, 1), 0);
	ck_assert_uint_eq(h->refs, 3);
	ck_assert_int_eq(outq_push(&q, h, 1), -1);
	/* refused: no reference taken, nothing counted */
	ck_assert_uint_eq(h->refs, 3);
	ck_assert_uint_eq(q.high.len, 2);
	ck_assert_uint_eq(q.bytes, 6);
	ck_assert_uint_eq(q.dropped, 0);
	/* a full high lane does not block the low one */
	ck_assert_int_eq(outq_push(&q, l, 0), 0);
	ck_assert_uint_eq(outq_fill(&q, buf, sizeof buf), 9);
	ck_assert_uint_eq(h->refs, 1);
	ck_assert_uint_eq(l->refs, 1);
	frame_unref(h);
	frame_unref(l);
	outq_clear(&q);

	/* zero bounds: high always refused, low dropped at once */
	outq_init(&q, 0, 0);
	h = tagged('H');
	ck_assert_int_eq(outq_push(&q, h, 1), -1);
	ck_assert_int_eq(outq_push(&q, h, 0), 0);
	ck_assert_uint_eq(h->refs, 1);
	ck_assert(outq_empty(&q));
	ck_assert_uint_eq(outq_take_dropped(&q), 1);
	frame_unref(h);
	outq_clear(&q);
}
END_TEST

START_TEST(test_fill_cap)
{
	char payload[300];
	struct frame *small = tagged('s'), *big;
	unsigned char buf[400];
	struct outq q;
	size_t n;

	memset(payload, 'B', sizeof payload);
	big = frame_create_text(payload, sizeof payload); /* 304 bytes */
	outq_init(&q, 16, 16);

	/* whole frames only: 3 + 3 fit in 7, a third does not */
	outq_push(&q, small, 0);
	outq_push(&q, small, 0);
	outq_push(&q, small, 0);
	ck_assert_uint_eq(outq_fill(&q, buf, 7), 6);
	ck_assert_uint_eq(q.low.len, 1);
	ck_assert_uint_eq(q.bytes, 3);
	ck_assert_uint_eq(outq_fill(&q, buf, 7), 3);

	/* the first frame is always taken, even over the cap, and nothing follows it */
	outq_push(&q, big, 1);
	outq_push(&q, small, 0);
	n = outq_fill(&q, buf, 100);
	ck_assert_uint_eq(n, 304);
	ck_assert_uint_eq(buf[1], 126);
	ck_assert_uint_eq(q.low.len, 1);
	ck_assert_uint_eq(outq_fill(&q, buf, 100), 3);

	/* a high frame that does not fit is not overtaken by a small low one */
	outq_push(&q, small, 1);
	outq_push(&q, big, 1);
	outq_push(&q, small, 0);
	ck_assert_uint_eq(outq_fill(&q, buf, 100), 3);
	ck_assert_uint_eq(q.high.len, 1);
	ck_assert_uint_eq(q.low.len, 1);
	ck_assert_uint_eq(outq_fill(&q, buf, 400), 307);
	ck_assert_uint_eq(buf[304 + 2], 's');
	ck_assert(outq_empty(&q));
	ck_assert_uint_eq(q.bytes, 0);

	/* an exact fit */
	outq_push(&q, small, 0);
	outq_push(&q, small, 0);
	ck_assert_uint_eq(outq_fill(&q, buf, 6), 6);

	ck_assert_uint_eq(small->refs, 1);
	ck_assert_uint_eq(big->refs, 1);
	frame_unref(small);
	frame_unref(big);
	outq_clear(&q);
}
END_TEST

/* One frame shared by many queues: refs track the queues, the last unref frees. */
START_TEST(test_refs)
{
	struct outq q[50];
	unsigned char buf[16];
	struct frame *f = tagged('m');
	int i;

	for (i = 0; i < 50; i++) {
		outq_init(&q[i], 4, 4);
		ck_assert_int_eq(outq_push(&q[i], f, i % 2), 0);
	}
	ck_assert_uint_eq(f->refs, 51);
	frame_unref(f); /* the sender lets go; the queues keep it alive */
	ck_assert_uint_eq(f->refs, 50);
	for (i = 0; i < 25; i++)
		ck_assert_uint_eq(outq_fill(&q[i], buf, sizeof buf), 3);
	ck_assert_uint_eq(f->refs, 25);
	/* clearing a queue releases what it held */
	for (i = 25; i < 50; i++)
		outq_clear(&q[i]);
	for (i = 0; i < 25; i++)
		outq_clear(&q[i]);
	frame_unref(NULL);
}
END_TEST

/* An idle queue holds no allocation; a busy one grows, wraps and keeps order. */
START_TEST(test_rings)
{
	unsigned char buf[8];
	struct frame *f[256];
	struct outq q;
	int i, next = 0, out = 0;

	for (i = 0; i < 256; i++)
		f[i] = tagged((char)i);
	outq_init(&q, 1000, 1000);
	ck_assert_ptr_null(q.low.slots);
	outq_push(&q, f[0], 0);
	ck_assert_ptr_nonnull(q.low.slots);
	ck_assert_ptr_null(q.high.slots);
	ck_assert_uint_eq(outq_fill(&q, buf, sizeof buf), 3);
	ck_assert_ptr_null(q.low.slots);
	ck_assert_uint_eq(q.low.cap, 0);

	/* push three, take one, many times: the ring wraps while growing */
	for (i = 0; i < 100; i++) {
		outq_push(&q, f[next++ % 256], 0);
		outq_push(&q, f[next++ % 256], 0);
		outq_push(&q, f[next++ % 256], 0);
		ck_assert_uint_eq(outq_fill(&q, buf, 3), 3);
		ck_assert_uint_eq(buf[2], (unsigned char)(out++ % 256));
		ck_assert((q.low.cap & (q.low.cap - 1)) == 0);
		ck_assert_uint_ge(q.low.cap, q.low.len);
	}
	ck_assert_uint_eq(q.low.len, 200);
	ck_assert_uint_eq(q.bytes, 600);
	while (!outq_empty(&q)) {
		ck_assert_uint_eq(outq_fill(&q, buf, 3), 3);
		ck_assert_uint_eq(buf[2], (unsigned char)(out++ % 256));
	}
	ck_assert_int_eq(out, 300);
	ck_assert_ptr_null(q.low.slots);
	ck_assert_uint_eq(q.bytes, 0);
	/* the ring never grows past the bound rounded to a power of two */
	for (i = 0; i < 5000; i++)
		outq_push(&q, f[i % 256], 0);
	ck_assert_uint_eq(q.low.len, 1000);
	ck_assert_uint_eq(q.low.cap, 1024);
	ck_assert_uint_eq(outq_take_dropped(&q), 4000);
	outq_clear(&q);
	ck_assert_ptr_null(q.low.slots);
	ck_assert(outq_empty(&q));
	for (i = 0; i < 256; i++) {
		ck_assert_uint_eq(f[i]->refs, 1);
		frame_unref(f[i]);
	}
}
END_TEST

Suite *
unit_suite(void)
{
	Suite *s = suite_create("outq");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_text_headers);
	tcase_add_test(tc, test_close_reason);
	tcase_add_test(tc, test_order);
	tcase_add_test(tc, test_drop_oldest);
	tcase_add_test(tc, test_high_refused);
	tcase_add_test(tc, test_fill_cap);
	tcase_add_test(tc, test_refs);
	tcase_add_test(tc, test_rings);
	suite_add_tcase(s, tc);
	return s;
}
