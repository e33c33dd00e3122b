/*
 * What every fuzz target here exports, so replay.c can drive any of them
 * without libFuzzer. Includes nothing of the code under test.
 */
#ifndef CHAT_FUZZ_H
#define CHAT_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point: must not crash, leak or abort on any input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a crash, so the fuzzer keeps the input. */
#define FUZZ_CHECK(cond) \
	do { \
		if (!(cond)) \
			__builtin_trap(); \
	} while (0)

#endif
