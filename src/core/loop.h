/* The one constructor of event loops: bh.run, the C tests and the
 * benchmarks all make their event_base here, so every timer of the
 * program is measured the same way, and what the core keeps per loop is
 * freed with it. Knows nothing of Lua. */
#ifndef BH_LOOP_H
#define BH_LOOP_H

#include <stdbool.h>

struct event;
struct event_base;
struct bh_prober;

/* A new libevent loop. Its timers run on libevent's coarse clock
 * (CLOCK_MONOTONIC_COARSE, milliseconds), which lags bh_mono_now
 * (clock.h) by up to a clock tick: a timer may fire that much early, so
 * every deadline that must not end early checks bh_mono_now when its
 * timer fires and waits for the rest (bh_timer_due). Without
 * EVENT_BASE_FLAG_PRECISE_TIMER libevent does not re-arm a timerfd
 * before every wait: one system call less per loop turn. A pass over
 * active callbacks is bounded (5 ms or 64 callbacks), so callbacks that
 * keep activating each other cannot starve timers and I/O. NULL when
 * libevent cannot make one (out of memory or descriptors). The first call
 * also routes libevent's own messages into our log, rate-limited (log.h:
 * bh_log_limited). */
struct event_base *bh_loop_new(void);

/* Free a loop made by bh_loop_new, with what the core keeps per loop
 * (its prober and hasher). Every probe, responder and event of the loop
 * must be gone. NULL is ignored; a base not made here is just freed. */
void bh_loop_free(struct event_base *base);

/* The loop's prober state (probe.h), made on first use; NULL when out of
 * memory or for a base not made here. */
struct bh_prober *bh_loop_prober(struct event_base *base);

/* Is the deadline (on bh_mono_now's clock) reached? If not, ev (a timer)
 * is added again for what is left and false returned: the timer fired
 * early by the loop's coarse clock. */
bool bh_timer_due(struct event *ev, double deadline);

#endif
