/*
 * The two clocks every program reads, in milliseconds. Wall time stamps
 * records (messages, sessions, bans, tokens); monotonic time measures
 * intervals and deadlines, which must not jump when the wall clock is set.
 * Both abort if the kernel refuses (it cannot for these clocks on Linux;
 * a broken clock would corrupt every record, so there is nothing sane to
 * go on with).
 */
#ifndef CHAT_CLOCK_H
#define CHAT_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Unix time in ms (CLOCK_REALTIME). */
int64_t clock_wall_ms(void);
/* Milliseconds since an arbitrary point (CLOCK_MONOTONIC). */
int64_t clock_mono_ms(void);
/* The raw timespec of either clock, for absolute deadlines
 * (pthread_cond_timedwait); aborts like the two above. */
void clock_now(clockid_t id, struct timespec *ts);

#endif
