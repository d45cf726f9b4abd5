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
 * callback except through lbh_task_complete or lbh_loop_pcall
 * (lbh_pcall.h: one protected-call wrapper with a traceback; errors are
 * reported on stderr, never raised into libevent). A primitive that does
 * not yield but needs the loop (a listener) uses lbh_run_check and tracks
 * its object with lbh_run_track (lbh_run.h) so that it is closed when the
 * run ends. */
#ifndef LBH_TASK_H
#define LBH_TASK_H

#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>

#include "lbh_run.h"
#include "list.h"

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
/* Interrupt a task that is not running (the host's -i session: ^C). When
 * the operation it waits on armed an interrupt (lbh_task_set_interrupt),
 * that ends the operation as intr says (the prompt's read returns false)
 * and the task goes on; otherwise what it waits on is cancelled and the
 * task fails with "interrupted" and the traceback of where it waited.
 * Returns false (and does nothing) when the task is finished already or
 * is the one running now. */
bool lbh_task_interrupt(lbh_task *t);
/* Does the operation t waits on have an interrupt (see above)? */
bool lbh_task_has_interrupt(const lbh_task *t);
/* The task t waits for in task:wait, or NULL. */
lbh_task *lbh_task_waits_for(const lbh_task *t);
/* Stop signals never interrupt t's own Lua code through their hook (the
 * run still stops at the next turn of the loop): the prompt of a
 * session, whose ^C is meant for what it waits for. */
void lbh_task_shield(lbh_task *t);

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
/* Arm the cleanup for the operation the task is about to wait on, one
 * that the loop ends (a timer, a socket, a child, a file job): while the
 * task waits on it, the run is not deadlocked. */
void lbh_task_set_pending(lbh_task *t, lbh_cancel_fn cancel, void *op);
/* After lbh_task_set_pending: the operation ends only when other tasks
 * finish (bh.all, bh.select without a time limit), not by an event of
 * the loop; a run whose tasks all wait so is deadlocked. */
void lbh_task_set_waits_on_tasks(lbh_task *t);
/* After lbh_task_set_pending: what interrupting the task (see
 * lbh_task_interrupt) does to the operation just armed. intr(op) is
 * called from the loop instead of the handler; it must stop the C
 * operation, finish it with lbh_task_complete (the values it pushes are
 * what the primitive returns: the prompt's read returns false) and free
 * op. Without it an interrupt cancels the operation and fails the task. */
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
/* The same with one boolean as the value the primitive returns: nothing
 * to protect (pushing a boolean cannot raise), so no protected call. */
void lbh_task_complete_boolean(lbh_task *t, bool v);

/* ---- wait queues: waiting for an object to change ----------------------- */

/* A list of waiters woken together when some object (a task, a responder)
 * is done. Embed the queue in the object and lbh_waitq_init it, saying
 * who wakes it: by_loop when an event of the loop does (a responder's, on
 * a request or its close), not when only another task does by finishing
 * (a task's): a run whose tasks all wait on queues no event wakes is
 * deadlocked. A waiter is caller-owned memory (inside an op), zeroed or
 * in no queue before it is added; wake(w) is called once, after w was
 * removed from its queue. */
typedef struct lbh_waitq {
  bh_list waiters; /* of lbh_waiter.link, in the order they were added */
  bool by_loop;
} lbh_waitq;
typedef struct lbh_waiter {
  bh_list link;
  void (*wake)(struct lbh_waiter *w);
} lbh_waiter;
void lbh_waitq_init(lbh_waitq *q, bool by_loop);
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
