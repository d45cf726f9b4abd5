/* The scheduler's private parts, shared by lbh_task.c (tasks, yielding,
 * wait queues, hooks told of resumes and interrupts), lbh_run.c (bh.run:
 * the loop and its teardown) and lbh_control.c (sleeping and waiting for
 * tasks). Other binding files use lbh_run.h and lbh_task.h only. */
#ifndef LBH_SCHED_H
#define LBH_SCHED_H

#include <event2/event.h>
#include <stdbool.h>

#include "lbh_task.h"
#include "list.h"

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
  bool loop_wait;   /* ... on an operation the loop ends (run->loop_waits) */
  bool shielded;    /* lbh_task_shield */
  lbh_cancel_fn cancel;
  lbh_cancel_fn intr; /* lbh_task_set_interrupt */
  void *op;
  lbh_task *waits_for; /* task:wait's task while waiting */
  lbh_waitq waiters;   /* woken when the task finishes */
  bh_list link;        /* in run->live or run->failed */
};

struct lbh_run {
  lua_State *L;
  struct event_base *base;
  struct event *sig_ev;
  bh_list live; /* of lbh_task.link */
  size_t nlive;
  size_t loop_waits; /* live tasks waiting on an operation the loop ends */
  bh_list failed;    /* failed with nobody waiting (yet) */
  lbh_task *current;
  lbh_task *main;
  bh_list tracked;          /* of lbh_tracked.link */
  bh_list hooks;            /* of lbh_run_hook.link: this run's */
  bh_list *state_hooks;     /* the state's (lbh_run_hook_state), or NULL */
  lbh_run_hook own_hook;    /* lbh_run_main's hook, copied */
  struct bh_worker *worker; /* made by the first file job (lbh_run_worker) */
  int stop_signal;
  int interrupt_ref; /* error (with traceback) of the task the hook stopped */
  bool deadlock, loop_error, torn_down;
  bool ends_with_main; /* lbh_run_end_with_main */
};

/* The task of a run->live or run->failed node. */
#define lbh_sched_task_of(node) bh_list_entry(node, lbh_task, link)
/* Make run the active run of its state (NULL: none). */
void lbh_sched_set_current(lua_State *L, lbh_run *run);
/* Push the task's userdata (through its registry reference). */
void lbh_sched_push_task(lua_State *L, const lbh_task *t);
/* Stop a live task for good, running or not (see lbh_task_cancel). */
void lbh_sched_task_cancel(lbh_task *t);
/* Push a finished task's results. */
int lbh_sched_push_results(lua_State *L, lbh_task *t);
/* What waiting for the finished task at idx gives: its results, or its
 * error raised (it counts as observed), or "the task was cancelled". */
int lbh_sched_task_outcome(lua_State *L, int idx);
/* Tell the run's hooks (and its state's) that it has started. */
void lbh_sched_hooks_started(lbh_run *run);
/* Tell the run's hooks (and its state's) of signal sig (see lbh_run.h);
 * true when one of them took it. */
bool lbh_sched_hooks_signal(lbh_run *run, int sig, lbh_task *t);

#endif
