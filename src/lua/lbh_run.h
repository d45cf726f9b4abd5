/* A run (bh.run): one libevent event_base (loop.h), the tasks it resumes
 * (lbh_task.h), the objects it closes when it ends, and the hooks through
 * which the host attaches to it without the scheduler knowing the host:
 * its service (lbh_service.c: the --listen endpoint, the watchdog), the
 * report's rotation (lbh_report.c), the -i session (lbh_session.c) and
 * the prompt (src/host/prompt.c).
 *
 * A run ends when its main task and every spawned task are over (or, for
 * a run that ends with its main task, when that one is). When tasks are
 * waiting and none of them waits on something the loop can end (a timer,
 * a socket, a child, a file job, a wait queue the loop wakes), nothing
 * can ever resume them: the run fails with "deadlock" instead of hanging.
 * An event source that no task waits on (the watchdog timer, an HTTP
 * server, an idle worker) never counts, so a new one cannot hide a
 * deadlock: being in the background needs no bookkeeping. */
#ifndef LBH_RUN_H
#define LBH_RUN_H

#include <lua.h>
#include <stdbool.h>

#include "list.h"

struct event_base;
struct bh_worker;
typedef struct lbh_run lbh_run;
typedef struct lbh_task lbh_task;

/* The run in progress, or NULL when no bh.run is active in L's state. */
lbh_run *lbh_run_current(lua_State *L);
/* The run in progress; raises "<what> must be called inside bh.run" when
 * there is none. For non-yielding functions that need the loop. */
lbh_run *lbh_run_check(lua_State *L, const char *what);
struct event_base *lbh_run_base(lbh_run *run);
/* The lua_State the run was started from (valid during the run): the
 * state to push on and call Lua from inside loop callbacks. */
lua_State *lbh_run_state(lbh_run *run);
/* The run's main task (the function given to bh.run). */
lbh_task *lbh_run_main_task(lbh_run *run);
/* The run's worker thread (worker.h) for file jobs (manifest reads and
 * walks), made on first use, freed when the run ends; NULL when it cannot
 * be made (jobs then run inline). */
struct bh_worker *lbh_run_worker(lbh_run *run);

/* An object served by the loop that must be closed when the run ends
 * (responders, HTTP servers, the watchdog timer). close(obj) is called
 * once at teardown (after the live tasks were cancelled, before the
 * event_base is freed) unless untracked first; it must not run Lua code
 * (registry bookkeeping such as luaL_unref is fine). The entry is
 * caller-owned memory, e.g. inside the userdata. */
typedef struct lbh_tracked {
  bh_list link; /* in the run's list */
  void (*close)(void *obj);
  void *obj;
} lbh_tracked;
void lbh_run_track(lbh_run *run, lbh_tracked *entry, void (*close)(void *obj),
                   void *obj);
void lbh_run_untrack(lbh_run *run, lbh_tracked *entry); /* idempotent */

/* ---- hooks -------------------------------------------------------------- */

/* What a hook is told; any member may be NULL.
 *   started(run, ud): the run is current and its main task made, not yet
 *     resumed: start what every run serves.
 *   signal(run, sig, t, ud): a signal came. SIGHUP: it was counted (the
 *     report reopens); the result is not used. SIGINT/SIGTERM: with t
 *     NULL, the stop signal is pending between two loop turns; with t,
 *     the stop signal's interrupt hook has just failed task t. Return true
 *     when the hook took the signal (it forgot it, lbh_run_clear_stop_
 *     signal, and dealt with it): the run goes on; false lets it stop the
 *     run. Every hook is told, whatever another one answered.
 *   resumed(run, t, before, ud): around every resume of a task: before =
 *     true just before, false just after. Per-run hooks only.
 * A hook is caller-owned memory, valid while it is attached; it may be
 * removed (and freed) from inside any hook's call. */
typedef struct lbh_run_hook {
  void (*started)(lbh_run *run, void *ud);
  bool (*signal)(lbh_run *run, int sig, lbh_task *t, void *ud);
  void (*resumed)(lbh_run *run, lbh_task *t, bool before, void *ud);
  void *ud;
  bh_list link; /* private */
} lbh_run_hook;
/* Attach h to every run of L's state started from now on, for as long as
 * L lives (its resumed is never called). */
void lbh_run_hook_state(lua_State *L, lbh_run_hook *h);
/* Attach h to one run, until it is removed or the run ends. */
void lbh_run_hook_add(lbh_run *run, lbh_run_hook *h);
void lbh_run_hook_remove(lbh_run_hook *h); /* idempotent */

/* ---- variations --------------------------------------------------------- */

/* bh.run(fn, ...) with fn at 1 and its arguments after it, and hook
 * (copied; NULL: none) attached to the new run before anything else:
 * runs fn as the main task of a new run until the run ends, then closes
 * everything and returns fn's results or raises its error (with the
 * traceback of the task). */
int lbh_run_main(lua_State *L, const lbh_run_hook *hook);
/* The run ends as soon as its main task is done (the tasks still live
 * are cancelled, as at any end). */
void lbh_run_end_with_main(lbh_run *run);
/* Forget the stop signal and remove the interrupt hook it left on the
 * run's state and on every task of the run. */
void lbh_run_clear_stop_signal(lbh_run *run);

#endif
