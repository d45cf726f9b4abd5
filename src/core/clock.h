/* The monotonic clock and libevent's timeval, shared by the prober, the
 * responder, exec and the scheduler: durations are seconds as doubles
 * everywhere (design §2). */
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

/* The longest duration bh_timeval gives: about 31.7 years, beyond any
 * timer this program arms, and small enough that libevent adding it to
 * the clock cannot overflow. */
#define BH_TIMEVAL_MAX_SECONDS 1e9

/* A non-negative duration in seconds as a struct timeval: negative and
 * NaN → 0; longer than BH_TIMEVAL_MAX_SECONDS (+inf included) → that
 * much, since converting a double beyond time_t's range is undefined and
 * in practice turned 1e19 into a negative, already expired, timeout. */
struct timeval bh_timeval(double seconds);

#endif
