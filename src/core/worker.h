/* Work off the loop thread: one worker thread per worker runs the works
 * submitted to it and hands each back through an eventfd watched by the
 * worker's event_base, so that what a work's caller sees happens on the
 * loop thread. For what may take longer than a loop turn should (reading
 * and decoding a manifest, walking a cache root, hashing an executable):
 * the loop goes on serving probes, HTTP requests and the watchdog
 * meanwhile.
 *
 * Works wait in one queue per group, in order, and the thread serves the
 * groups in turn: one run of the first work of each group per turn. A
 * work may do its job in slices (run returns false until the last), so
 * that a long work of one group delays another group's by one slice, not
 * by the whole work: the hasher makes a group of each uid whose
 * executables it hashes. Works submitted without a group share group 0:
 * one queue, run in order. Knows nothing of Lua. */
#ifndef BH_WORKER_H
#define BH_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "status.h"

struct event_base;
typedef struct bh_worker bh_worker;

/* One piece of work, embedded in the caller's own job struct (container
 * of it). The caller fills run and finish; link belongs to the worker. */
typedef struct bh_work {
  bh_list link;
  /* On the worker thread: do the work, or its next slice, writing only
   * into the job. True when it is done; false to be run again at its
   * group's next turn. */
  bool (*run)(struct bh_work *w);
  /* On the loop thread, exactly once per submitted work: after run said
   * done (done true), or when the worker is freed before it was (done
   * false: never run, or stopped between slices). It owns the job from
   * then on (frees it). */
  void (*finish)(struct bh_work *w, bool done);
} bh_work;

/* A worker on base; its thread starts with the first work. NULL with err
 * when the eventfd or its event cannot be made. */
bh_worker *bh_worker_new(struct event_base *base, bh_err *err);

/* Queue w in group 0. False (and w untouched: the caller still owns it)
 * when the thread cannot be started or memory is short; the caller may
 * then run it inline. */
bool bh_worker_submit(bh_worker *k, bh_work *w);

/* Queue w last in group's queue; a group that has no work waiting joins
 * the turns last in this round. False as bh_worker_submit. */
bool bh_worker_submit_to(bh_worker *k, uint64_t group, bh_work *w);

/* Stop: the running work (or slice) is let finish, the thread joined;
 * every work not handed back yet gets its finish (done true for those
 * done, false for the others). From the loop thread, outside any
 * finish. */
void bh_worker_free(bh_worker *k);

#endif
