/* The scheduler of the Lua binding: one bh.run = one libevent event_base
 * (loop.h) and a set of tasks (Lua coroutines) resumed by it. This header
 * is the template every binding file that waits for something follows:
 * bh.sleep, bh.probe, task:wait, bh.exec, the prompt's read, h:shutdown,
 * responder:wait, bh.timeout and bh.select all wait this one way.
 *
 * A yielding primitive has four parts (OpenResty's ngx_http_lua_sleep.c,
 * written for Lua 5.4 with lua_yieldk as in HAProxy's hlua.c):
 *
 *   1. The API function checks its arguments, then
 *        lbh_task *t = lbh_task_check(L, "bh.thing");   // raises outside
 *        ... allocate an op, start the C operation on lbh_task_base(t)
 *            with op as its ctx ...
 *        lbh_task_set_pending(t, thing_cancel, op);
 *        return lbh_task_yield(L, ctx, thing_k);
 *   2. The event handler (a C callback from the loop, with op as ctx):
 *        lbh_task_complete(op->task, thing_push, op);  // clears pending
 *        free(op);
 *      thing_push(L, op) runs under a protected call on the loop's
 *      lua_State, pushes the values the task gets back and returns their
 *      count; if it raises (out of memory) the task gets nil, message.
 *   3. The cleanup: thing_cancel(op) is called instead of the handler when
 *      the task is cancelled (task:cancel, bh.timeout, SIGINT/SIGTERM, the
 *      end of the run). It stops the C operation so that the handler is
 *      never called, and frees op. It runs no Lua code.
 *   4. The continuation thing_k(L, status, ctx) runs in the task when it
 *      is resumed, with the pushed values on top of the stack. It
 *      re-checks what the task waited for (a deadline against
 *      bh_mono_now, a state) and either returns results or arms a new op
 *      and yields again. Called directly the first time when the API
 *      function shares its body (HAProxy style). With k = NULL the
 *      primitive returns exactly the pushed values.
 *
 * Never keep state in C locals across the yield: keep it in op, in the
 * userdata, in ctx or on the Lua stack. Never call Lua from a loop
 * callback except through lbh_task_complete or lbh_loop_pcall (one
 * protected-call wrapper with a traceback; errors are reported on stderr,
 * never raised into libevent). A primitive that does not yield but needs
 * the loop (a listener) uses lbh_run_check and tracks its object with
 * lbh_run_track so that it is closed when the run ends. */
#ifndef LBH_TASK_H
#define LBH_TASK_H

#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>

#include "list.h"

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
/* The run's worker thread (worker.h) for file jobs (manifest reads and
 * walks), made on first use, freed when the run ends; NULL when it cannot
 * be made (jobs then run inline). Its event counts as background while
 * no job is in flight: a job submitted says lbh_run_background(run, -1),
 * its finish +1. */
struct bh_worker *lbh_run_worker(lbh_run *run);
/* The lua_State the run was started from (valid during the run): the
 * state to push on and call Lua from inside loop callbacks. */
lua_State *lbh_run_state(lbh_run *run);

/* An object served by the loop that must be closed when the run ends
 * (responders, periodic timers). close(obj) is called once at teardown
 * (after the live tasks were cancelled, before the event_base is freed)
 * unless untracked first; it must not run Lua code (registry bookkeeping
 * such as luaL_unref is fine). The entry is caller-owned memory, e.g.
 * inside the userdata. */
typedef struct lbh_tracked {
  bh_list link; /* in run->tracked */
  void (*close)(void *obj);
  void *obj;
} lbh_tracked;
void lbh_run_track(lbh_run *run, lbh_tracked *entry, void (*close)(void *obj),
                   void *obj);
void lbh_run_untrack(lbh_run *run, lbh_tracked *entry); /* idempotent */
/* Count delta events (+1 when added, -1 when removed) that can never
 * wake a task (a watchdog timer, the host's metrics listener), so that a
 * run whose tasks wait on nothing else is still found deadlocked. */
void lbh_run_background(lbh_run *run, int delta);

/* Called around every resume of a task other than the run's main task:
 * fn(ud, true) before, fn(ud, false) after (the host's prompt hides its
 * half-typed line while background tasks may print). One per run; NULL
 * removes it. */
void lbh_run_set_resume_hook(lbh_run *run, void (*fn)(void *ud, bool before),
                             void *ud);

/* Call fn(L, ud) from a loop callback under lua_pcall with a traceback
 * handler, on the run's lua_State. fn may push and return values; they
 * are left on the stack (nresults of them, LUA_MULTRET allowed) only on
 * success. On error the message and traceback are logged as
 * lbh_log_error(context, message) and LUA_ERRRUN/LUA_ERRMEM is returned
 * with nothing pushed. */
int lbh_loop_pcall(lbh_run *run, lua_CFunction fn, void *ud, int nresults,
                   const char *context);

/* Log "<context>: <message>" at error priority (core log.h: on stderr as
 * "bhprobe-lua: ...", "<3>" under journald). Never raises nor allocates
 * on L, so that an error (out of memory too) can be told outside any
 * protected call; a traceback is kept whole, within the log's cuts of a
 * message (text.h: 4 KiB a line, 16 KiB in all). */
void lbh_log_error(const char *context, const char *msg);

/* A lua_pcall message handler: the error's text (lbh_error_text) plus the
 * traceback of where it happened. */
int lbh_traceback(lua_State *L);

/* ---- tasks -------------------------------------------------------------- */

/* Start fn (the function at fidx, with the nargs values after it) as a
 * new task on the next loop turn; pushes the task userdata. */
lbh_task *lbh_task_spawn(lua_State *L, lbh_run *run, int fidx, int nargs);
/* The task userdata at idx, or raise naming the argument. */
lbh_task *lbh_task_checkarg(lua_State *L, int idx, const char *fn);
/* True once the task is done, failed or cancelled. */
bool lbh_task_finished(const lbh_task *t);
/* Stop a live task for good: its pending operation is cancelled through
 * its cleanup, its to-be-closed variables are closed, waiters are woken
 * (task:wait then raises "the task was cancelled"). Returns false (and
 * does nothing) when the task is finished already or is the one running
 * now. */
bool lbh_task_cancel(lbh_task *t);

/* ---- the yield template ------------------------------------------------- */

/* The task running in L. Raises "<what> must be called from a task; wrap
 * your code in bh.run" when L is not a task's own coroutine (outside
 * bh.run, or from a nested coroutine), or when it cannot yield here. */
lbh_task *lbh_task_check(lua_State *L, const char *what);
/* The task running in L, or NULL (never raises). */
lbh_task *lbh_task_current(lua_State *L);
struct event_base *lbh_task_base(lbh_task *t);
lbh_run *lbh_task_run(lbh_task *t);

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
 * Call from loop callbacks (with push NULL also from a running task, as
 * wait queues do). */
void lbh_task_complete(lbh_task *t, lbh_push_fn push, void *ud);

/* ---- wait queues: waiting for an object to change ----------------------- */

/* A list of waiters woken together when some object (a task, a responder)
 * is done. Embed the queue in the object and lbh_waitq_init it. A waiter
 * is caller-owned memory (inside an op), zeroed or in no queue before it
 * is added; wake(w) is called once, after w was removed from its queue. */
typedef struct lbh_waitq {
  bh_list waiters; /* of lbh_waiter.link, in the order they were added */
} lbh_waitq;
typedef struct lbh_waiter {
  bh_list link;
  void (*wake)(struct lbh_waiter *w);
} lbh_waiter;
void lbh_waitq_init(lbh_waitq *q);
void lbh_waitq_add(lbh_waitq *q, lbh_waiter *w, void (*wake)(lbh_waiter *w));
void lbh_waitq_remove(lbh_waiter *w); /* idempotent */
/* Wake every waiter of q, in the order they were added. */
void lbh_waitq_wake_all(lbh_waitq *q);
/* The template for the common case: suspend the current task (already
 * checked with lbh_task_check) until q is woken, then run k(L, LUA_YIELD,
 * ctx) (k NULL: return nothing). */
int lbh_waitq_yield(lua_State *L, lbh_task *t, lbh_waitq *q, lua_KContext ctx,
                    lua_KFunction k);

#endif
