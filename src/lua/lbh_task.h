/* The scheduler of the Lua binding: one bh.run = one libevent event_base
 * and a set of tasks (Lua coroutines) resumed by it. This header is the
 * template every binding file that waits for something follows.
 *
 * A yielding primitive has four parts (OpenResty's ngx_http_lua_sleep.c,
 * written for Lua 5.4):
 *
 *   1. The API function checks its arguments, then
 *        lbh_task *t = lbh_task_check(L, "bh.thing");   // raises outside
 *        struct event_base *base = lbh_task_base(t);
 *        ... allocate an op, start the C operation with op as its ctx ...
 *        lbh_task_set_pending(t, thing_cancel, op);
 *        return lbh_task_yield(L, 0, NULL);
 *      With a NULL continuation the primitive returns, when resumed,
 *      exactly the values given to lbh_task_complete. Pass a continuation
 *      k (lua_KFunction) when the primitive must do more after the resume
 *      (HAProxy style: k is also called directly the first time).
 *   2. The event handler (a C callback from the loop, with op as ctx):
 *        lbh_task_complete(op->task, thing_push, op);  // clears pending
 *        free(op);
 *      thing_push(L, op) runs under a protected call on the loop's
 *      lua_State, pushes the values to return and returns their count;
 *      it may raise (out of memory); then the task gets nil, message.
 *   3. The cleanup: thing_cancel(op) is called instead of the handler when
 *      the task is cancelled (SIGINT/SIGTERM, or the run is torn down
 *      after its main task failed). It must stop the C operation so that
 *      the handler is never called, and free op. It must not touch Lua.
 *   4. The resume: done by the scheduler on the next loop turn; nothing to
 *      write.
 *
 * Never keep state in C locals across the yield: keep it in op, in the
 * userdata or on the Lua stack. Never call Lua from a loop callback except
 * through lbh_task_complete or lbh_loop_pcall (one protected-call wrapper
 * with a traceback; errors are reported on stderr, never raised into
 * libevent). A primitive that does not yield but needs the loop (a
 * listener) uses lbh_run_check and tracks its object with
 * lbh_run_track so that it is closed when the run ends. */
#ifndef LBH_TASK_H
#define LBH_TASK_H

#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>

struct event_base;
typedef struct lbh_run lbh_run;
typedef struct lbh_task lbh_task;

/* ---- the run ------------------------------------------------------------ */

/* The run in progress, or NULL when no bh.run is active in L's state. */
lbh_run *lbh_run_current(lua_State *L);
/* The run in progress; raises "<what> must be called inside bh.run" when
 * there is none. For non-yielding functions that need the loop. */
lbh_run *lbh_run_check(lua_State *L, const char *what);
struct event_base *lbh_run_base(lbh_run *run);
/* The run's hasher (hasher.h), made on first use, freed when the run
 * ends; NULL when it cannot be made (probes then hash inline). */
struct bh_hasher *lbh_run_hasher(lbh_run *run);
/* The lua_State the run was started from (valid during the run): the
 * state to push on and call Lua from inside loop callbacks. */
lua_State *lbh_run_state(lbh_run *run);

/* An object served by the loop that must be closed when the run ends
 * (responders, periodic timers). close(obj) is called once at teardown
 * (before the event_base is freed) unless untracked first; it must not
 * run Lua code (registry bookkeeping such as luaL_unref is fine). The entry is
 * caller-owned memory, e.g. inside the userdata. */
typedef struct lbh_tracked {
  struct lbh_tracked *prev, *next;
  void (*close)(void *obj);
  void *obj;
} lbh_tracked;
void lbh_run_track(lbh_run *run, lbh_tracked *entry, void (*close)(void *obj),
                   void *obj);
void lbh_run_untrack(lbh_run *run, lbh_tracked *entry); /* idempotent */

/* Call fn(L, ud) from a loop callback under lua_pcall with a traceback
 * handler, on the run's lua_State. fn may push and return values; they
 * are left on the stack (nresults of them, LUA_MULTRET allowed) only on
 * success. On error the message and traceback are printed to stderr as
 * "bhprobe-lua: <context>: <message>" and LUA_ERRRUN/LUA_ERRMEM is
 * returned with nothing pushed. */
int lbh_loop_pcall(lbh_run *run, lua_CFunction fn, void *ud, int nresults,
                   const char *context);

/* ---- the current task and yielding -------------------------------------- */

/* The task running in L. Raises "<what> must be called from a task; wrap
 * your code in bh.run" when L is not a task's own coroutine (outside
 * bh.run, from a callback like on_request, or from a nested coroutine). */
lbh_task *lbh_task_check(lua_State *L, const char *what);
/* The task running in L, or NULL (never raises). */
lbh_task *lbh_task_current(lua_State *L);
struct event_base *lbh_task_base(lbh_task *t);

typedef void (*lbh_cancel_fn)(void *op);
/* Arm the cleanup for the operation the task is about to wait on. */
void lbh_task_set_pending(lbh_task *t, lbh_cancel_fn cancel, void *op);
/* Sessions only (lbh_session): what SIGINT does to the main task while it
 * waits on the operation just armed with lbh_task_set_pending. intr(op)
 * is called from the loop instead of the handler; it must stop the C
 * operation, finish it with lbh_task_complete (the values it pushes are
 * what the primitive returns: the prompt's read returns false) and free
 * op. Without it SIGINT leaves the operation alone. */
void lbh_task_set_interrupt(lbh_task *t, lbh_cancel_fn intr);
/* Yield the task to the loop (lua_yieldk with no values). */
int lbh_task_yield(lua_State *L, lua_KContext ctx, lua_KFunction k);

typedef int (*lbh_push_fn)(lua_State *L, void *ud);
/* Finish the task's pending operation: clear the cleanup, compute the
 * values the primitive returns with push (protected, see above; push may
 * be NULL for no values) and schedule the resume for the next loop turn.
 * Call from loop callbacks only. */
void lbh_task_complete(lbh_task *t, lbh_push_fn push, void *ud);

/* ---- wait queues: tasks waiting for an object to change ----------------- */

/* A list of tasks suspended until some object (a task, a responder) is
 * done. Embed it in the object; initialise with {NULL}. */
typedef struct lbh_waitq {
  lbh_task *head;
} lbh_waitq;
/* Suspend the current task (already checked with lbh_task_check) on q;
 * when woken, k(L, LUA_YIELD, ctx) runs (k may be NULL: return nothing). */
int lbh_waitq_yield(lua_State *L, lbh_task *t, lbh_waitq *q, lua_KContext ctx,
                    lua_KFunction k);
/* Resume every task waiting on q (with no values) on the next loop turn. */
void lbh_waitq_wake_all(lbh_waitq *q);

#endif
