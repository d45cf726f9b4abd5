/* The monotonic clock and libevent's timeval, shared by the prober, the
 * responder, exec and the scheduler: durations are seconds as doubles
 * everywhere (DESIGN §2). */
#ifndef BH_CLOCK_H
#define BH_CLOCK_H

#include <stdint.h>
#include <sys/time.h>

/* Monotonic seconds (CLOCK_MONOTONIC). */
double bh_mono_now(void);

/* Wall clock: milliseconds and seconds since the epoch (CLOCK_REALTIME),
 * for records and timestamps, never for measuring durations. */
uint64_t bh_unix_ms(void);
double bh_wall_now(void);

/* A non-negative duration in seconds as a struct timeval (negative → 0). */
struct timeval bh_timeval(double seconds);

#endif
