/*
 * SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012): a keyed 64-bit hash for hash tables whose keys come from clients.
 * Without the key nobody can compute which keys collide, so crafted keys
 * cannot chain up in one bucket. Pure function: touches only its arguments.
 */
#ifndef CHATD_SIPHASH_H
#define CHATD_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_BYTES 16

/* The 64-bit SipHash-2-4 of len bytes at data under the 16-byte key. */
uint64_t siphash24(const uint8_t key[SIPHASH_KEY_BYTES], const void *data, size_t len);

#endif
