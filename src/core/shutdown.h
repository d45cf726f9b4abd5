/* Stopping a held process (h:shutdown): SIGTERM through its pidfd, then
 * wait on the loop for it to exit (the pidfd becomes readable; without a
 * pidfd, a short poll), and, when asked, SIGKILL once the timeout expires
 * followed by a short grace. The state machine next to exec.c's. Knows
 * nothing of Lua. */
#ifndef BH_SHUTDOWN_H
#define BH_SHUTDOWN_H

#include <stdbool.h>

#include "proc.h"
#include "status.h"

struct event_base;
typedef struct bh_shutdown bh_shutdown;

/* Seconds to wait for the exit after SIGKILL. */
#define BH_SHUTDOWN_KILL_GRACE 1.0

typedef struct bh_shutdown_result {
  /* BH_OK: the process exited (or was gone already); BH_TIMEOUT: still
   * running when the wait ended; BH_SYSTEM: it could not be signalled
   * (the message says why: another user's process, ...). */
  bh_err err;
  bool killed;    /* SIGKILL was sent */
  double elapsed; /* seconds from start to the outcome */
} bh_shutdown_result;

typedef void (*bh_shutdown_cb)(const bh_shutdown_result *res, void *ctx);

/* Start stopping p (borrowed: keep it held until the callback or
 * cancel). The callback is called once, from the loop (never from inside
 * this call), unless cancelled first. timeout: seconds to wait after
 * SIGTERM (0: just signal and look); kill: then SIGKILL. NULL when out of
 * memory (nothing was started). */
bh_shutdown *bh_proc_shutdown_start(struct event_base *base, const bh_proc *p,
                                    double timeout, bool kill,
                                    bh_shutdown_cb cb, void *ctx);

/* Stop waiting: no callback, everything freed. Signals already sent are
 * not taken back. Not from inside the callback. */
void bh_proc_shutdown_cancel(bh_shutdown *s);

#endif
