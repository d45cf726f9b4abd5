/* The one constructor of event loops: bh.run, the C tests and the
 * benchmarks all make their event_base here, so every timer of the
 * program is measured the same way. Knows nothing of Lua. */
#ifndef BH_LOOP_H
#define BH_LOOP_H

struct event_base;

/* A new libevent loop with EVENT_BASE_FLAG_PRECISE_TIMER: its timers run
 * on CLOCK_MONOTONIC, the clock of bh_mono_now (clock.h). Without the
 * flag libevent 2.1 uses CLOCK_MONOTONIC_COARSE, which lags the real
 * clock by up to a tick (4 ms with HZ=250), so a timer could fire that
 * much before its time as the rest of the program measures it. A pass
 * over active callbacks is bounded (5 ms or 64 callbacks), so callbacks
 * that keep activating each other cannot starve timers and I/O. NULL
 * when libevent cannot make one (out of memory or descriptors). The
 * first call also routes libevent's own messages into our log,
 * rate-limited (log.h: bh_log_limited). */
struct event_base *bh_loop_new(void);

#endif
