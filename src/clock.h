/* The monotonic clock and libevent's timeval, shared by the prober, the
 * responder, exec and the scheduler: durations are seconds as doubles
 * everywhere (DESIGN §2). */
#ifndef BH_CLOCK_H
#define BH_CLOCK_H

#include <sys/time.h>

/* Monotonic seconds (CLOCK_MONOTONIC). */
double bh_mono_now(void);

/* A non-negative duration in seconds as a struct timeval (negative → 0). */
struct timeval bh_timeval(double seconds);

#endif
