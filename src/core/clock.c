/* The monotonic clock and seconds → timeval (see clock.h). */
#include "clock.h"

#include <time.h>

double bh_mono_now(void) {
  struct timespec ts;
  /* CLOCK_MONOTONIC cannot fail on Linux; 0 keeps callers defined. */
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t bh_unix_ms(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

double bh_wall_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return 0;
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct timeval bh_timeval(double seconds) {
  struct timeval tv = {0, 0};
  if (!(seconds > 0)) return tv;
  if (seconds > BH_TIMEVAL_MAX_SECONDS) seconds = BH_TIMEVAL_MAX_SECONDS;
  tv.tv_sec = (time_t)seconds;
  tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
  if (tv.tv_usec >= 1000000) tv.tv_usec = 999999;
  return tv;
}
