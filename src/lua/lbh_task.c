/* Tasks (see lbh_task.h for the template other files follow): bh.spawn,
 * the "bh.task" userdata (wait, cancel, status, __close), yielding and
 * completing a pending operation, interrupting a task, wait queues, and
 * which run and task are current; the run's hooks are told of resumes
 * and of tasks a stop signal failed. A task is a full userdata
 * (metatable "bh.task") whose uservalues are 1: its coroutine, 2: the
 * error to re-raise, 3: the error text with traceback for reports. While
 * a task is live (or failed and nobody has looked yet) the run holds a
 * registry reference to it, so the collector cannot free what the loop
 * will resume. Every resume goes through the task's own event (made
 * active by lbh_task_complete or a bare yield), so coroutines are only
 * ever resumed from the loop, never from inside another task. */
#include <event2/event.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbh.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_open.h"
#include "lbh_pcall.h"
#include "lbh_sched.h"
#include "lbh_signal.h"
#include "lbh_task.h"

static const char *const state_names[] = {"ready", "running", "suspended",
                                          "done",  "failed",  "cancelled"};

static const char run_key = 'r'; /* registry[&run_key] = active run */

/* ---- small helpers --------------------------------------------------- */

void lbh_sched_push_task(lua_State *L, const lbh_task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
}

/* ---- the current run ------------------------------------------------- */

void lbh_sched_set_current(lua_State *L, lbh_run *run) {
  if (run == NULL)
    lua_pushnil(L);
  else
    lua_pushlightuserdata(L, run);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &run_key);
}

lbh_run *lbh_run_current(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &run_key);
  lbh_run *run = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return run;
}

lbh_run *lbh_run_check(lua_State *L, const char *what) {
  lbh_run *run = lbh_run_current(L);
  if (run == NULL) luaL_error(L, "%s must be called inside bh.run", what);
  return run;
}

/* ---- hooks ----------------------------------------------------------- */

typedef struct hook_call {
  int sig;      /* signal */
  bool before;  /* resumed */
  bool taken;   /* signal: a hook took it */
  lbh_task *t;  /* either */
  lbh_run *run; /* both */
} hook_call;

typedef void (*hook_visit)(lbh_run_hook *h, hook_call *c);

/* Call visit on every hook of the list at head, in order. The list is
 * moved aside first and each hook put back before its call, so that a
 * hook may remove (and free) itself or any other one, or add one (not
 * told this time). */
static void hooks_walk(bh_list *head, hook_visit visit, hook_call *c) {
  if (head == NULL || bh_list_empty(head)) return;
  bh_list todo;
  bh_list_move(head, &todo);
  bh_list *n;
  while ((n = bh_list_first(&todo)) != NULL) {
    bh_list_remove(n);
    bh_list_insert_tail(head, n);
    visit(bh_list_entry(n, lbh_run_hook, link), c);
  }
}

static void visit_started(lbh_run_hook *h, hook_call *c) {
  if (h->started != NULL) h->started(c->run, h->ud);
}

static void visit_signal(lbh_run_hook *h, hook_call *c) {
  if (h->signal != NULL && h->signal(c->run, c->sig, c->t, h->ud))
    c->taken = true;
}

static void visit_resumed(lbh_run_hook *h, hook_call *c) {
  if (h->resumed != NULL) h->resumed(c->run, c->t, c->before, h->ud);
}

void lbh_sched_hooks_started(lbh_run *run) {
  hook_call c = {.run = run};
  hooks_walk(&run->hooks, visit_started, &c);
  hooks_walk(run->state_hooks, visit_started, &c);
}

bool lbh_sched_hooks_signal(lbh_run *run, int sig, lbh_task *t) {
  hook_call c = {.sig = sig, .t = t, .run = run};
  hooks_walk(&run->hooks, visit_signal, &c);
  hooks_walk(run->state_hooks, visit_signal, &c);
  return c.taken;
}

static void hooks_resumed(lbh_run *run, lbh_task *t, bool before) {
  hook_call c = {.before = before, .t = t, .run = run};
  hooks_walk(&run->hooks, visit_resumed, &c);
}

/* ---- resuming -------------------------------------------------------- */

static void task_finish(lbh_task *t, task_state state);

/* Resume the task on the next loop turn with the nargs values already on
 * top of its coroutine's stack. */
static void task_schedule(lbh_task *t, int nargs) {
  t->nargs = nargs;
  event_active(t->ev, EV_TIMEOUT, 1);
}

/* Protected part of a failure: keep the error and its traceback (taken
 * from the failed coroutine, whose stack is still intact) in the task's
 * uservalues. Stack: [lightuserdata task]. */
static int task_fail_p(lua_State *L) {
  lbh_task *t = lua_touserdata(L, 1);
  lua_State *co = t->co;
  lbh_sched_push_task(L, t);
  int ud = lua_gettop(L);
  const char *msg = lua_tostring(co, -1);
  if (msg != NULL) {
    luaL_traceback(L, co, msg, 0);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, ud, 2);
  } else {
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    lua_setiuservalue(L, ud, 2);
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(co, -1));
    luaL_traceback(L, co, lua_tostring(L, -1), 0);
  }
  lua_setiuservalue(L, ud, 3);
  return 0;
}

/* A signal stops the run and the hook failed t where it was looping: keep
 * its error (with traceback) for bh.run to raise, the first one only,
 * even when someone waits for t (the host's chunk tasks). */
static void keep_interrupt(lbh_run *run, lbh_task *t) {
  lua_State *L = run->L;
  if (run->interrupt_ref != LUA_NOREF || !lua_checkstack(L, 2)) return;
  lbh_sched_push_task(L, t);
  lua_getiuservalue(L, -1, 3);
  run->interrupt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
}

/* Resume the task in the loop and deal with what it did: yielded to wait
 * for something, yielded bare (coroutine.yield: run again next turn),
 * finished or failed. The run's hooks are told around the resume. */
static void task_resume(lbh_task *t) {
  lbh_run *run = t->run;
  int nres = 0, nargs = t->nargs;
  t->nargs = 0;
  t->state = TASK_RUNNING;
  run->current = t;
  bool hooked = !bh_list_empty(&run->hooks);
  if (hooked) hooks_resumed(run, t, true);
  lbh_signal_set_running(t->shielded ? NULL : t->co);
  int status = lua_resume(t->co, run->L, nargs, &nres);
  lbh_signal_set_running(NULL);
  if (hooked) hooks_resumed(run, t, false);
  run->current = NULL;
  if (status == LUA_YIELD) {
    t->state = TASK_SUSPENDED;
    if (!t->pending) {
      lua_pop(t->co, nres);
      task_schedule(t, 0);
    }
  } else if (status == LUA_OK) {
    t->nres = nres;
    task_finish(t, TASK_DONE);
  } else {
    lbh_loop_pcall(run->L, task_fail_p, t, 0, "recording a task's error");
    int sig = lbh_stop_signal();
    t->interrupted = sig != 0;
    /* A hook may take the signal (a session spends ^C on the task it
     * interrupted); else it stops the run, which raises this error. */
    if (t->interrupted && !lbh_sched_hooks_signal(run, sig, t))
      keep_interrupt(run, t);
    lua_resetthread(t->co); /* runs the task's pending __close handlers */
    task_finish(t, TASK_FAILED);
  }
}

/* Forget the operation the task was waiting on; with abort, first stop it
 * through its cancel function (so its completion never comes). */
static void task_disarm(lbh_task *t, bool abort) {
  if (abort && t->pending && t->cancel) t->cancel(t->op);
  if (t->loop_wait) t->run->loop_waits--;
  t->loop_wait = false;
  t->pending = false;
  t->cancel = NULL;
  t->intr = NULL;
  t->op = NULL;
  t->waits_for = NULL;
}

static void task_wake_cb(evutil_socket_t fd, short what, void *arg) {
  lbh_task *t = arg;
  task_disarm(t, false);
  task_resume(t);
}

/* The task is over: release its event, wake whoever waits for it and
 * drop the run's reference, except for a failure nobody has seen yet. */
static void task_finish(lbh_task *t, task_state state) {
  lbh_run *run = t->run;
  t->state = state;
  bh_list_remove(&t->link);
  run->nlive--;
  if (t->ev) event_free(t->ev);
  t->ev = NULL;
  if (!bh_list_empty(&t->waiters.waiters)) t->observed = true;
  lbh_waitq_wake_all(&t->waiters);
  if (state == TASK_FAILED && !t->observed && t != run->main) {
    bh_list_insert_head(&run->failed, &t->link);
    return;
  }
  luaL_unref(run->L, LUA_REGISTRYINDEX, t->self_ref);
  t->self_ref = LUA_NOREF;
  t->run = NULL;
}

/* Stop a live task for good: disarm what it waits on, close its
 * coroutine (running its pending __close handlers), forget it. */
void lbh_sched_task_cancel(lbh_task *t) {
  task_disarm(t, true);
  lua_resetthread(t->co);
  t->observed = true;
  task_finish(t, TASK_CANCELLED);
}

bool lbh_task_finished(const lbh_task *t) {
  return t->state == TASK_DONE || t->state == TASK_FAILED ||
         t->state == TASK_CANCELLED;
}

bool lbh_task_cancel(lbh_task *t) {
  if (t->run == NULL || lbh_task_finished(t) || t->run->current == t)
    return false;
  lbh_sched_task_cancel(t);
  return true;
}

/* Protected part of task_fail_interrupted: the error is "interrupted"
 * with the traceback of where the task waits. Stack: [lightuserdata
 * task]. */
static int task_interrupt_p(lua_State *L) {
  lbh_task *t = lua_touserdata(L, 1);
  lbh_sched_push_task(L, t);
  luaL_traceback(L, t->co, "interrupted", 0);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, -3, 2);
  lua_setiuservalue(L, -2, 3);
  return 0;
}

/* Disarm what the task waits on and fail it with "interrupted", which
 * wakes whoever waits for it. */
static void task_fail_interrupted(lbh_task *t) {
  task_disarm(t, true);
  lbh_loop_pcall(t->run->L, task_interrupt_p, t, 0, "interrupting a task");
  t->interrupted = true;
  lua_resetthread(t->co);
  task_finish(t, TASK_FAILED);
}

bool lbh_task_interrupt(lbh_task *t) {
  if (t->run == NULL || lbh_task_finished(t) || t->run->current == t)
    return false;
  if (lbh_task_has_interrupt(t)) {
    lbh_cancel_fn intr = t->intr;
    t->intr = NULL;
    intr(t->op); /* completes the op: the task gets what it pushes */
  } else {
    task_fail_interrupted(t);
  }
  return true;
}

bool lbh_task_has_interrupt(const lbh_task *t) {
  return t->pending && t->intr != NULL;
}

lbh_task *lbh_task_waits_for(const lbh_task *t) {
  return t->waits_for;
}

void lbh_task_shield(lbh_task *t) {
  t->shielded = true;
}

/* ---- the current task ------------------------------------------------ */

lbh_task *lbh_task_current(lua_State *L) {
  lbh_run *run = lbh_run_current(L);
  if (run == NULL || run->current == NULL || run->current->co != L) return NULL;
  return run->current;
}

lbh_task *lbh_task_check(lua_State *L, const char *what) {
  lbh_run *run = lbh_run_current(L);
  if (run == NULL || run->current == NULL)
    luaL_error(L, "%s must be called from a task; wrap your code in bh.run",
               what);
  if (run->current->co != L)
    luaL_error(L,
               "%s must be called from a task, not from a coroutine "
               "created inside it",
               what);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s cannot yield here (inside a metamethod or C call)", what);
  return run->current;
}

struct event_base *lbh_task_base(lbh_task *t) {
  return t->run->base;
}

lbh_run *lbh_task_run(lbh_task *t) {
  return t->run;
}

void lbh_task_set_pending(lbh_task *t, lbh_cancel_fn cancel, void *op) {
  t->pending = true;
  t->cancel = cancel;
  t->intr = NULL;
  t->op = op;
  if (!t->loop_wait) t->run->loop_waits++;
  t->loop_wait = true;
}

void lbh_task_set_waits_on_tasks(lbh_task *t) {
  if (t->loop_wait) t->run->loop_waits--;
  t->loop_wait = false;
}

void lbh_task_set_interrupt(lbh_task *t, lbh_cancel_fn intr) {
  t->intr = intr;
}

int lbh_task_yield(lua_State *L, lua_KContext ctx, lua_KFunction k) {
  return lua_yieldk(L, 0, ctx, k);
}

typedef struct push_call {
  lbh_push_fn push;
  void *ud;
} push_call;

static int push_trampoline(lua_State *L) {
  push_call *pc = lua_touserdata(L, 1);
  lua_remove(L, 1);
  return pc->push(L, pc->ud);
}

void lbh_task_complete(lbh_task *t, lbh_push_fn push, void *ud) {
  lua_State *L = t->run->L;
  task_disarm(t, false);
  int n = 0;
  if (push != NULL) {
    int top = lua_gettop(L);
    push_call pc = {push, ud};
    if (lbh_loop_pcall(L, push_trampoline, &pc, LUA_MULTRET,
                       "building a result") != LUA_OK) {
      lua_pushnil(L);
      lua_pushliteral(L, "out of memory building the result");
    }
    n = lua_gettop(L) - top;
    if (!lua_checkstack(t->co, n)) {
      lua_settop(L, top);
      n = 0;
    }
    lua_xmove(L, t->co, n);
  }
  task_schedule(t, n);
}

void lbh_task_complete_boolean(lbh_task *t, bool v) {
  task_disarm(t, false);
  int n = 0;
  if (lua_checkstack(t->co, 1)) {
    lua_pushboolean(t->co, v);
    n = 1;
  }
  task_schedule(t, n);
}

/* ---- wait queues ----------------------------------------------------- */

void lbh_waitq_init(lbh_waitq *q, bool by_loop) {
  bh_list_init(&q->waiters);
  q->by_loop = by_loop;
}

void lbh_waitq_add(lbh_waitq *q, lbh_waiter *w, void (*wake)(lbh_waiter *w)) {
  w->wake = wake;
  bh_list_insert_tail(&q->waiters, &w->link);
}

void lbh_waitq_remove(lbh_waiter *w) {
  bh_list_remove(&w->link);
}

/* The waiters are moved to a local queue first: a wake callback may free
 * other waiters of the same op (bh.select waits on several queues) and
 * they leave the local queue as they go. */
void lbh_waitq_wake_all(lbh_waitq *q) {
  bh_list local;
  bh_list_move(&q->waiters, &local);
  bh_list *n;
  while ((n = bh_list_first(&local)) != NULL) {
    lbh_waiter *w = bh_list_entry(n, lbh_waiter, link);
    bh_list_remove(n);
    w->wake(w);
  }
}

/* The op of lbh_waitq_yield: one task, one waiter. */
typedef struct wait_op {
  lbh_task *task;
  lbh_waiter w;
} wait_op;

static void wait_op_wake(lbh_waiter *w) {
  wait_op *op = bh_container_of(w, wait_op, w);
  lbh_task_complete(op->task, NULL, NULL);
  free(op);
}

static void wait_op_cancel(void *ud) {
  wait_op *op = ud;
  lbh_waitq_remove(&op->w);
  free(op);
}

/* Arm t's wait on q (lbh_waitq_yield without the yield); raises when out
 * of memory. */
static void waitq_arm(lua_State *L, lbh_task *t, lbh_waitq *q) {
  wait_op *op = calloc(1, sizeof *op);
  if (op == NULL) luaL_error(L, "out of memory waiting");
  op->task = t;
  lbh_waitq_add(q, &op->w, wait_op_wake);
  lbh_task_set_pending(t, wait_op_cancel, op);
  if (!q->by_loop) lbh_task_set_waits_on_tasks(t);
}

int lbh_waitq_yield(lua_State *L, lbh_task *t, lbh_waitq *q, lua_KContext ctx,
                    lua_KFunction k) {
  waitq_arm(L, t, q);
  return lbh_task_yield(L, ctx, k);
}

/* ---- creating tasks -------------------------------------------------- */

lbh_task *lbh_task_spawn(lua_State *L, lbh_run *run, int fidx, int nargs) {
  luaL_checkstack(L, nargs + 4, "too many arguments");
  lbh_task *t = lua_newuserdatauv(L, sizeof *t, 3);
  memset(t, 0, sizeof *t);
  t->self_ref = LUA_NOREF;
  t->state = TASK_CANCELLED; /* harmless until fully built */
  bh_list_init(&t->link);
  lbh_waitq_init(&t->waiters, false);
  luaL_setmetatable(L, TASK_MT);
  lua_State *co = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  if (!lua_checkstack(co, nargs + 1)) luaL_error(L, "too many arguments");
  for (int i = 0; i <= nargs; i++)
    lua_pushvalue(L, fidx + i);
  lua_xmove(L, co, nargs + 1);
  lua_pushvalue(L, -1);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->ev = event_new(run->base, -1, 0, task_wake_cb, t);
  if (t->ev == NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    luaL_error(L, "out of memory creating a task");
  }
  t->self_ref = ref;
  t->co = co;
  t->run = run;
  t->state = TASK_READY;
  bh_list_insert_head(&run->live, &t->link);
  run->nlive++;
  task_schedule(t, nargs);
  return t;
}

/* bh.spawn(fn, ...) → task. Starts fn(...) as a concurrent task on the
 * next loop turn. */
static int l_spawn(lua_State *L) {
  lbh_arg_checktype(L, 1, "bh.spawn", LUA_TFUNCTION);
  lbh_run *run = lbh_run_check(L, "bh.spawn");
  lbh_task_spawn(L, run, 1, lua_gettop(L) - 1);
  return 1;
}

/* ---- task methods ---------------------------------------------------- */

lbh_task *lbh_task_checkarg(lua_State *L, int idx, const char *fn) {
  lbh_task *t = luaL_testudata(L, idx, TASK_MT);
  if (t == NULL) lbh_arg_type_error(L, idx, fn, "task");
  return t;
}

/* Push a finished task's results (kept on its dead coroutine's stack). */
int lbh_sched_push_results(lua_State *L, lbh_task *t) {
  int n = t->nres;
  luaL_checkstack(L, n, "too many results");
  if (!lua_checkstack(t->co, 1)) return luaL_error(L, "stack overflow");
  int first = lua_gettop(t->co) - n + 1;
  for (int i = 0; i < n; i++) {
    lua_pushvalue(t->co, first + i);
    lua_xmove(t->co, L, 1);
  }
  return n;
}

int lbh_sched_task_outcome(lua_State *L, int idx) {
  lbh_task *t = lua_touserdata(L, idx);
  switch (t->state) {
    case TASK_DONE:
      return lbh_sched_push_results(L, t);
    case TASK_FAILED:
      t->observed = true;
      if (lua_getiuservalue(L, idx, 2) == LUA_TNIL)
        return luaL_error(L, "task failed (its error could not be recorded)");
      return lua_error(L);
    default:
      return luaL_error(L, "the task was cancelled");
  }
}

/* task:wait() → the task's results, or raises its error. Written as its
 * own continuation: the first call and every resume check the state. */
static int task_wait_k(lua_State *L, int status, lua_KContext ctx) {
  lbh_task *t = lua_touserdata(L, 1);
  if (lbh_task_finished(t)) return lbh_sched_task_outcome(L, 1);
  lbh_task *self = lbh_task_check(L, "task:wait");
  if (self == t) return luaL_error(L, "a task cannot wait for itself");
  waitq_arm(L, self, &t->waiters);
  self->waits_for = t; /* lbh_task_waits_for, until the wait ends */
  return lbh_task_yield(L, ctx, task_wait_k);
}

static int task_wait(lua_State *L) {
  lbh_task_checkarg(L, 1, "task:wait");
  lua_settop(L, 1);
  return task_wait_k(L, LUA_OK, 0);
}

/* task:status() → "ready" | "running" | "suspended" | "done" | "failed" |
 * "cancelled". */
static int task_status(lua_State *L) {
  lbh_task *t = lbh_task_checkarg(L, 1, "task:status");
  lua_pushstring(L, state_names[t->state]);
  return 1;
}

/* task:cancel() → true when the task was live and is now cancelled;
 * false when it had finished already. Its pending operation is stopped
 * through its cleanup and its to-be-closed variables are closed; whoever
 * waits for it is woken (task:wait raises "the task was cancelled"). A
 * task cannot cancel itself (return instead), nor the main task. */
static int task_cancel(lua_State *L) {
  lbh_task *t = lbh_task_checkarg(L, 1, "task:cancel");
  if (t->run != NULL && t->run->current == t)
    return luaL_error(L,
                      "task:cancel: a task cannot cancel itself; return "
                      "from it instead");
  if (t->run != NULL && t == t->run->main)
    return luaL_error(L, "task:cancel: the main task cannot be cancelled");
  lua_pushboolean(L, lbh_task_cancel(t));
  return 1;
}

/* __close: leaving the scope of `local t <close> = bh.spawn(...)` cancels
 * the task if it is still live (never raises). */
static int task_close(lua_State *L) {
  lbh_task *t = lbh_arg_udata(L, 1, NULL, TASK_MT);
  if (t->run != NULL && t != t->run->main) lbh_task_cancel(t);
  return 0;
}

static int task_tostring(lua_State *L) {
  lbh_task *t = lbh_arg_udata(L, 1, NULL, TASK_MT);
  lua_pushfstring(L, "bh.task (%s): %p", state_names[t->state], (void *)t);
  return 1;
}

/* A task is only collected once finished (the run holds live ones), so
 * its event is normally gone; free it if an error left one behind. */
static int task_gc(lua_State *L) {
  lbh_task *t = lbh_arg_udata(L, 1, NULL, TASK_MT);
  if (t->ev && t->run && !t->run->torn_down) event_free(t->ev);
  t->ev = NULL;
  return 0;
}

/* ---- registration ---------------------------------------------------- */

static const luaL_Reg task_methods[] = {
    {"wait", task_wait},
    {"cancel", task_cancel},
    {"status", task_status},
    {NULL, NULL},
};

static const luaL_Reg task_meta[] = {
    {"__tostring", task_tostring},
    {"__gc", task_gc},
    {"__close", task_close},
    {NULL, NULL},
};

static const luaL_Reg task_funcs[] = {
    {"spawn", l_spawn},
    {NULL, NULL},
};

void lbh_task_open(lua_State *L) {
  lbh_class(L, TASK_MT, task_meta, task_methods, "__index");
  luaL_setfuncs(L, task_funcs, 0);
}
