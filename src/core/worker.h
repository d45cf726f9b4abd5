/* Work off the loop thread: one worker thread per worker runs the works
 * submitted to it in order and hands each back through an eventfd watched
 * by the worker's event_base, so that what a work's caller sees happens on
 * the loop thread. For what may take longer than a loop turn should
 * (reading and decoding a manifest, walking a cache root): the loop goes
 * on serving probes, HTTP requests and the watchdog meanwhile. Knows
 * nothing of Lua. */
#ifndef BH_WORKER_H
#define BH_WORKER_H

#include <stdbool.h>

#include "status.h"

struct event_base;
typedef struct bh_worker bh_worker;

/* One piece of work, embedded in the caller's own job struct (container
 * of it). The caller fills run and finish; next belongs to the worker. */
typedef struct bh_work {
  struct bh_work *next;
  /* On the worker thread: do the work, writing only into the job. */
  void (*run)(struct bh_work *w);
  /* On the loop thread, exactly once per submitted work: after run
   * (ran true), or when the worker is freed before run got to it (ran
   * false). It owns the job from then on (frees it). */
  void (*finish)(struct bh_work *w, bool ran);
} bh_work;

/* A worker on base; its thread starts with the first work. NULL with err
 * when the eventfd or its event cannot be made. */
bh_worker *bh_worker_new(struct event_base *base, bh_err *err);

/* Queue w. False (and w untouched: the caller still owns it) when the
 * thread cannot be started; the caller may then run it inline. */
bool bh_worker_submit(bh_worker *k, bh_work *w);

/* Stop: the running work is let finish, the thread joined; every work
 * not handed back yet gets its finish (ran true for those done, false for
 * those that never ran). From the loop thread, outside any finish. */
void bh_worker_free(bh_worker *k);

#endif
