/* The scheduler's private parts, shared by lbh_run.c (bh.run: the loop,
 * its teardown, signals, sessions) and lbh_task.c (tasks, yielding, wait
 * queues; lbh_control.c: sleeping and waiting for tasks). Other binding
 * files use lbh_task.h only. */
#ifndef LBH_SCHED_H
#define LBH_SCHED_H

#include <event2/event.h>
#include <stdbool.h>

#include "lbh_task.h"

#define RUN_MT "bh.run"
#define TASK_MT "bh.task"

typedef enum task_state {
  TASK_READY,
  TASK_RUNNING,
  TASK_SUSPENDED,
  TASK_DONE,
  TASK_FAILED,
  TASK_CANCELLED,
} task_state;

struct lbh_task {
  lbh_run *run;     /* NULL once finished and released */
  lua_State *co;    /* kept alive by uservalue 1 */
  struct event *ev; /* wakes the task; freed when it finishes */
  task_state state;
  int nargs;    /* values on co's stack for the next resume */
  int nres;     /* results left on co's stack (TASK_DONE) */
  int self_ref; /* registry ref while live or failed-unobserved */
  bool observed;
  bool interrupted; /* failed while a stop signal was pending */
  bool pending;     /* a primitive armed cancel/op before yielding */
  lbh_cancel_fn cancel;
  lbh_cancel_fn intr; /* sessions: SIGINT completes op this way */
  void *op;
  lbh_waitq waiters; /* woken when the task finishes */
  bh_list link;      /* in run->live or run->failed */
};

struct lbh_run {
  lua_State *L;
  struct event_base *base;
  struct event *sig_ev;
  bh_list live; /* of lbh_task.link */
  size_t nlive;
  bh_list failed; /* failed with nobody waiting (yet) */
  lbh_task *current;
  lbh_task *main;
  lbh_task *foreground;     /* sessions: the task main waits for, if any */
  bh_list tracked;          /* of lbh_tracked.link */
  struct bh_hasher *hasher; /* made by the first probe that needs one */
  struct bh_worker *worker; /* made by the first file job (lbh_run_worker) */
  int stop_signal;
  int nbackground;   /* events that wake no task (lbh_run_background) */
  int interrupt_ref; /* error (with traceback) of the task the hook stopped */
  bool deadlock, loop_error, torn_down;
  bool session; /* lbh_session: the host's -i prompt */
  void (*resume_hook)(void *ud, bool before);
  void *resume_ud;
};

/* The task of a run->live or run->failed node. */
#define lbh_sched_task_of(node) bh_list_entry(node, lbh_task, link)
/* Push the task's userdata (through its registry reference). */
void lbh_sched_push_task(lua_State *L, const lbh_task *t);
/* Stop a live task for good, running or not (see lbh_task_cancel). */
void lbh_sched_task_cancel(lbh_task *t);
/* Sessions: fail a waiting task with "interrupted" (see lbh_task.c). */
void lbh_sched_task_interrupt(lbh_task *t);
/* Push a finished task's results. */
int lbh_sched_push_results(lua_State *L, lbh_task *t);
/* What waiting for the finished task at idx gives: its results, or its
 * error raised (it counts as observed), or "the task was cancelled". */
int lbh_sched_task_outcome(lua_State *L, int idx);
/* Sessions: forget a SIGINT and the interrupt hooks it left. */
void lbh_sched_session_forget_signal(lbh_run *run);

#endif
