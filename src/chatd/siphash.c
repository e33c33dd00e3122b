/*
 * SipHash-2-4, written from the algorithm's description in the paper
 * (see siphash.h): little-endian words, two compression rounds per 8-byte
 * block, four finalisation rounds.
 */
#include "autoconf.h"

#include "siphash.h"

#define SIP_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

/* Bytes p[0..n-1] as a little-endian number (n <= 8), whatever the host's order. */
static uint64_t
sip_load(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v |= (uint64_t)p[n] << (8 * n);
	return v;
}

static void
sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = SIP_ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = SIP_ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = SIP_ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = SIP_ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = SIP_ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = SIP_ROTL(v[2], 32);
}

/* One message word: two compression rounds. */
static void
sip_absorb(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	sip_round(v);
	sip_round(v);
	v[0] ^= m;
}

uint64_t
siphash24(const uint8_t key[SIPHASH_KEY_BYTES], const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t k0 = sip_load(key, 8), k1 = sip_load(key + 8, 8);
	uint64_t v[4];
	size_t left;

	/* "somepseudorandomlygeneratedbytes" */
	v[0] = k0 ^ 0x736f6d6570736575ULL;
	v[1] = k1 ^ 0x646f72616e646f6dULL;
	v[2] = k0 ^ 0x6c7967656e657261ULL;
	v[3] = k1 ^ 0x7465646279746573ULL;
	for (left = len; left >= 8; left -= 8, p += 8)
		sip_absorb(v, sip_load(p, 8));
	/* The last word: the remaining bytes, the length's low byte on top. */
	sip_absorb(v, sip_load(p, left) | ((uint64_t)(len & 0xff) << 56));
	v[2] ^= 0xff;
	sip_round(v);
	sip_round(v);
	sip_round(v);
	sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}
