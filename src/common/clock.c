#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

void
clock_now(clockid_t id, struct timespec *ts)
{
	if (clock_gettime(id, ts) != 0) {
		(void)fprintf(stderr, "clock_gettime(%d): %s\n", (int)id, strerror(errno));
		abort();
	}
}

int64_t
clock_wall_ms(void)
{
	struct timespec ts;

	clock_now(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
clock_mono_ms(void)
{
	struct timespec ts;

	clock_now(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
