/* Times as one integer of nanoseconds: what the agent's database, the
 * monitor's exit records and their deadlines all use. */
#pragma once

#include <stdint.h>
#include <time.h>

/* CLOCK_REALTIME: for records people read. */
static inline int64_t lm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CLOCK_MONOTONIC: for deadlines, which a clock step must not move. */
static inline int64_t lm_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
