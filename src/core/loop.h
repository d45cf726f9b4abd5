/* The one constructor of event loops: bh.run, the C tests and the
 * benchmarks all make their event_base here, so every timer of the
 * program is measured the same way and every loop gets its I/O path
 * (design §4.3). Knows nothing of Lua. */
#ifndef BH_LOOP_H
#define BH_LOOP_H

#include <stdbool.h>

#include "status.h"

struct event;
struct event_base;
struct bh_uring;

/* How probes and responders of a loop do their socket I/O: io_uring
 * (one ring per loop, its descriptor one event of the loop), or epoll
 * through libevent's own events. */
typedef enum bh_io_path { BH_IO_EPOLL, BH_IO_URING } bh_io_path;

/* A new libevent loop. Its timers run on libevent's coarse clock
 * (CLOCK_MONOTONIC_COARSE, milliseconds), which lags bh_mono_now
 * (clock.h) by up to a clock tick: a timer may fire that much early, so
 * every deadline that must not end early checks bh_mono_now when its
 * timer fires and waits for the rest (bh_timer_due). Without
 * EVENT_BASE_FLAG_PRECISE_TIMER libevent does not re-arm a timerfd
 * before every wait: one system call less per loop turn. A pass over
 * active callbacks is bounded (5 ms or 64 callbacks), so callbacks that
 * keep activating each other cannot starve timers and I/O.
 *
 * The I/O path comes from BH_IO: "uring" or "epoll" force one, unset or
 * empty chooses io_uring where the kernel allows it and epoll where it
 * does not (ENOSYS, EPERM from a seccomp filter, kernel.io_uring_disabled,
 * a kernel without what the ring needs), which is said once per process
 * at debug level. NULL with err (when not NULL) when libevent cannot make
 * a loop, BH_IO is not one of those, or it forces io_uring and the kernel
 * refuses it. The first call also routes libevent's own messages into our
 * log, rate-limited (log.h: bh_log_limited). */
struct event_base *bh_loop_open(bh_err *err);
/* bh_loop_open, logging why at error level when it fails. */
struct event_base *bh_loop_new(void);

/* Free a loop made by bh_loop_open, with what the core keeps per loop
 * (what is attached to it, the prober with its hasher, then its ring:
 * operations still in flight are cancelled and waited for). Every probe,
 * responder and event of the loop must be gone. NULL is ignored; a base not
 * made here is just freed. */
void bh_loop_free(struct event_base *base);

/* The I/O path of a loop (BH_IO_EPOLL for a base not made here). */
bh_io_path bh_loop_io(struct event_base *base);
const char *bh_io_path_name(bh_io_path io); /* "uring", "epoll" */

/* The loop's ring, or NULL on the epoll path. */
struct bh_uring *bh_loop_ring(struct event_base *base);
/* What a module above the loop keeps per loop (the prober: probe.h),
 * without the loop knowing it: a kind is a static of that module, its
 * object made on first use by make(base, ring) and freed by free(obj)
 * when the loop is, before its ring (latest attached first). */
typedef struct bh_loop_kind {
  void *(*make)(struct event_base *base, struct bh_uring *ring);
  void (*free)(void *obj);
} bh_loop_kind;
/* The loop's object of kind, made on first use; NULL when out of memory
 * or for a base not made here. From the loop's own thread. */
void *bh_loop_attached(struct event_base *base, const bh_loop_kind *kind);

/* Is the deadline (on bh_mono_now's clock) reached? If not, ev (a timer)
 * is added again for what is left and false returned: the timer fired
 * early by the loop's coarse clock. */
bool bh_timer_due(struct event *ev, double deadline);

#endif
