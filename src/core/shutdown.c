/* The shutdown state machine (shutdown.h): start (an event made active at
 * once, so the callback never runs inside bh_proc_shutdown_start) →
 * SIGTERM → wait for the exit or the deadline → [SIGKILL → wait for the
 * exit or the grace] → callback. The deadline is compared with
 * bh_mono_now each time the wait wakes. */
#include "shutdown.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define POLL_STEP 0.01 /* liveness poll period without a pidfd */

struct bh_shutdown {
  bh_proc proc; /* borrowed copy: the caller keeps it held */
  double t0, timeout, deadline;
  bool kill, killed;
  bh_shutdown_cb cb;
  void *ctx;
  struct event *start_ev, *exit_ev, *timer_ev;
};

static void shutdown_free(bh_shutdown *s) {
  if (s->start_ev) event_free(s->start_ev);
  if (s->exit_ev) event_free(s->exit_ev);
  if (s->timer_ev) event_free(s->timer_ev);
  free(s);
}

/* Call back with the outcome (err code, message) and free. */
static void shutdown_done(bh_shutdown *s, bh_status code, const char *msg) {
  bh_shutdown_result res = {.killed = s->killed,
                            .elapsed = bh_mono_now() - s->t0};
  bh_err_clear(&res.err);
  if (code != BH_OK) bh_err_set(&res.err, code, NULL, "%s", msg);
  s->cb(&res, s->ctx);
  shutdown_free(s);
}

/* Wait again: until the deadline, or the next poll without a pidfd. */
static void shutdown_arm(bh_shutdown *s) {
  double left = s->deadline - bh_mono_now();
  if (left < 0) left = 0;
  if (s->proc.pidfd < 0 && left > POLL_STEP) left = POLL_STEP;
  struct timeval tv = bh_timeval(left);
  if (evtimer_add(s->timer_ev, &tv) != 0)
    shutdown_done(s, BH_SYSTEM, "cannot arm the shutdown timer");
}

/* Exited, expired, or neither yet: decide. */
static void shutdown_check(bh_shutdown *s) {
  char msg[BH_ERR_MESSAGE_MAX];
  if (!bh_proc_alive(&s->proc)) {
    shutdown_done(s, BH_OK, "");
    return;
  }
  if (bh_mono_now() < s->deadline) {
    shutdown_arm(s);
    return;
  }
  if (s->kill && !s->killed) {
    bh_status st = bh_proc_signal(&s->proc, SIGKILL, NULL);
    s->killed = true;
    if (st == BH_PID_NOT_FOUND) {
      shutdown_done(s, BH_OK, "");
      return;
    }
    s->deadline = bh_mono_now() + BH_SHUTDOWN_KILL_GRACE;
    shutdown_arm(s);
    return;
  }
  (void)snprintf(msg, sizeof msg, "pid %u still running %.3g s after %s",
                 (unsigned)s->proc.pid, s->timeout,
                 s->killed ? "SIGTERM and SIGKILL" : "SIGTERM");
  shutdown_done(s, BH_TIMEOUT, msg);
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
  shutdown_check(arg);
}

/* First step, from the loop: SIGTERM, then wait. */
static void on_start(evutil_socket_t fd, short what, void *arg) {
  bh_shutdown *s = arg;
  if (!bh_proc_alive(&s->proc)) {
    shutdown_done(s, BH_OK, "");
    return;
  }
  bh_err err;
  bh_status st = bh_proc_signal(&s->proc, SIGTERM, &err);
  if (st == BH_PID_NOT_FOUND) {
    shutdown_done(s, BH_OK, "");
    return;
  }
  if (st != BH_OK) {
    shutdown_done(s, st, err.message); /* "cannot signal pid N: ..." */
    return;
  }
  s->deadline = bh_mono_now() + s->timeout;
  if (s->exit_ev != NULL && event_add(s->exit_ev, NULL) != 0) {
    shutdown_done(s, BH_SYSTEM, "cannot watch the pidfd");
    return;
  }
  shutdown_arm(s);
}

bh_shutdown *bh_proc_shutdown_start(struct event_base *base, const bh_proc *p,
                                    double timeout, bool kill,
                                    bh_shutdown_cb cb, void *ctx) {
  bh_shutdown *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  *s = (bh_shutdown){.proc = *p,
                     .t0 = bh_mono_now(),
                     .timeout = timeout,
                     .kill = kill,
                     .cb = cb,
                     .ctx = ctx};
  s->start_ev = event_new(base, -1, 0, on_start, s);
  s->timer_ev = evtimer_new(base, on_wake, s);
  if (p->pidfd >= 0)
    s->exit_ev = event_new(base, p->pidfd, EV_READ, on_wake, s);
  if (s->start_ev == NULL || s->timer_ev == NULL ||
      (p->pidfd >= 0 && s->exit_ev == NULL)) {
    shutdown_free(s);
    return NULL;
  }
  event_active(s->start_ev, EV_TIMEOUT, 1);
  return s;
}

void bh_proc_shutdown_cancel(bh_shutdown *s) {
  if (s != NULL) shutdown_free(s);
}
