/* clock.h: the payload's clock, CLOCK_MONOTONIC in seconds. */
#ifndef PYHOT_CLOCK_H
#define PYHOT_CLOCK_H

#include <time.h>

/* CLOCK_MONOTONIC, in seconds. Any thread; no GIL. */
static inline double pyhot_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif /* PYHOT_CLOCK_H */
