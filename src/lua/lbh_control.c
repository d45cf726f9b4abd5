/* Waiting for time and for other tasks: bh.sleep, bh.now, bh.timeout,
 * bh.select, bh.all (and bh._in_task for the Lua helpers). Each waits on
 * the template of lbh_task.h; the continuations re-check their deadline
 * against bh_mono_now, so no wait ever ends early by the clock bh.now
 * reads, whatever the loop's timers do. */
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>

#include "clock.h"
#include "lbh_args.h"
#include "lbh_err.h"
#include "lbh_open.h"
#include "lbh_sched.h"
#include "lbh_task.h"

/* The longest wait, seconds (about 31 years: beyond any policy, within
 * timeval and libevent's timers). */
#define MAX_WAIT 1e9

/* ---- a timer op, and a timer op that also waits for tasks ---------------- */

/* One pending wait: a timer (when limited) and the waiters of bh.select /
 * bh.timeout, one per task waited for. The first to fire completes the
 * task and frees the op; the continuation looks at what happened. */
typedef struct wait_slot {
  lbh_waiter w;
  struct wait_op *op;
} wait_slot;

typedef struct wait_op {
  lbh_task *task;
  struct event *timer; /* NULL: no time limit */
  int n;
  wait_slot slots[];
} wait_op;

static void wait_op_free(wait_op *op) {
  for (int i = 0; i < op->n; i++)
    lbh_waitq_remove(&op->slots[i].w);
  if (op->timer != NULL) event_free(op->timer);
  free(op);
}

static void wait_op_done(wait_op *op) {
  lbh_task_complete(op->task, NULL, NULL);
  wait_op_free(op);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
  wait_op_done(arg);
}

static void on_wake(lbh_waiter *w) {
  wait_op_done(((wait_slot *)w)->op);
}

static void wait_op_cancel(void *ud) {
  wait_op_free(ud);
}

/* Arm the wait of the current task t: for `left` seconds (< 0: no limit)
 * and until any of the n tasks at stack indices first.. finishes.
 * Raises when out of memory. */
static void wait_arm(lua_State *L, lbh_task *t, double left, int first, int n) {
  wait_op *op = calloc(1, sizeof *op + (size_t)n * sizeof op->slots[0]);
  if (op == NULL) luaL_error(L, "out of memory waiting");
  op->task = t;
  if (left >= 0) {
    struct timeval tv = bh_timeval(left);
    op->timer = evtimer_new(lbh_task_base(t), on_timer, op);
    if (op->timer == NULL || evtimer_add(op->timer, &tv) != 0) {
      wait_op_free(op);
      luaL_error(L, "cannot arm a timer");
    }
  }
  for (int i = 0; i < n; i++) {
    lbh_task *task = lua_touserdata(L, first + i);
    op->slots[i].op = op;
    op->n = i + 1;
    lbh_waitq_add(&task->waiters, &op->slots[i].w, on_wake);
  }
  lbh_task_set_pending(t, wait_op_cancel, op);
  /* Without a timer only the tasks waited for can end the wait. */
  if (op->timer == NULL) lbh_task_set_waits_on_tasks(t);
}

/* ---- bh.sleep, bh.now -----------------------------------------------------
 */

/* Stack: [seconds, deadline]. Sleeps again when woken before the
 * deadline. */
static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  double left = lua_tonumber(L, 2) - bh_mono_now();
  if (left <= 0) return 0;
  wait_arm(L, lbh_task_check(L, "bh.sleep"), left, 0, 0);
  return lbh_task_yield(L, 0, sleep_k);
}

/* bh.sleep(seconds): yields the task; the loop resumes it once that long
 * has passed by bh.now (0 lets the other ready tasks run first). */
static int l_sleep(lua_State *L) {
  double s = lbh_arg_number(L, 1, "bh.sleep", "seconds", 0, false, MAX_WAIT);
  lbh_task *t = lbh_task_check(L, "bh.sleep");
  lua_settop(L, 1);
  lua_pushnumber(L, bh_mono_now() + s);
  if (s == 0) return lbh_task_yield(L, 0, NULL); /* a bare turn */
  wait_arm(L, t, s, 0, 0);
  return lbh_task_yield(L, 0, sleep_k);
}

/* bh.now() → monotonic seconds (float). */
static int l_now(lua_State *L) {
  lua_pushnumber(L, bh_mono_now());
  return 1;
}

/* bh._in_task() → true when called from a task's own coroutine (used by
 * the Lua helpers to fail early with a clear message). */
static int l_in_task(lua_State *L) {
  lua_pushboolean(L, lbh_task_current(L) != NULL);
  return 1;
}

/* ---- bh.timeout ---------------------------------------------------------- */

/* Stack: [deadline, task (to-be-closed)]. */
static int timeout_k(lua_State *L, int status, lua_KContext ctx) {
  lbh_task *child = lua_touserdata(L, 2);
  if (lbh_task_finished(child)) return lbh_sched_task_outcome(L, 2);
  double limit = lua_tonumber(L, 1);
  double left = limit - bh_mono_now();
  if (left <= 0) {
    lbh_task_cancel(child);
    bh_err e;
    bh_err_set(&e, BH_TIMEOUT, NULL, "bh.timeout: not finished within %.3f s",
               (double)ctx / 1e6);
    return lbh_fail_stage(L, &e, "task");
  }
  wait_arm(L, lbh_task_check(L, "bh.timeout"), left, 2, 1);
  return lbh_task_yield(L, ctx, timeout_k);
}

/* bh.timeout(seconds, fn, ...) → fn(...)'s results, when it finishes
 * within seconds; else nil, err (code "timeout", stage "task") after fn's
 * task was cancelled. fn's error is raised. fn runs as its own task, so
 * it may yield; leaving bh.timeout in any way (the caller cancelled too)
 * cancels it. */
static int l_timeout(lua_State *L) {
  const char *fn = "bh.timeout";
  double s = lbh_arg_number(L, 1, fn, "seconds", 0, false, MAX_WAIT);
  lbh_arg_checktype(L, 2, fn, LUA_TFUNCTION);
  lbh_task *self = lbh_task_check(L, fn);
  lbh_task_spawn(L, lbh_task_run(self), 2, lua_gettop(L) - 2);
  lua_replace(L, 2);
  lua_settop(L, 2);
  lua_pushnumber(L, bh_mono_now() + s);
  lua_replace(L, 1);
  lua_toclose(L, 2);
  return timeout_k(L, LUA_OK, (lua_KContext)(s * 1e6));
}

/* ---- bh.select, bh.all --------------------------------------------------- */

/* Every argument must be a task; at least one. Returns their count. */
static int check_tasks(lua_State *L, const char *fn) {
  int n = lua_gettop(L);
  if (n == 0) lbh_arg_type_error(L, 1, fn, "task");
  for (int i = 1; i <= n; i++)
    lbh_task_checkarg(L, i, fn);
  return n;
}

/* Stack: the tasks. */
static int select_k(lua_State *L, int status, lua_KContext ctx) {
  int n = (int)ctx;
  lua_settop(L, n);
  for (int i = 1; i <= n; i++) {
    lbh_task *t = lua_touserdata(L, i);
    if (lbh_task_finished(t)) {
      t->observed = true;
      lua_pushvalue(L, i);
      lua_pushinteger(L, i);
      return 2;
    }
  }
  lbh_task *self = lbh_task_check(L, "bh.select");
  for (int i = 1; i <= n; i++)
    if (lua_touserdata(L, i) == self)
      return lbh_arg_fail(L, i, "bh.select", "a task cannot wait for itself");
  wait_arm(L, self, -1, 1, n);
  return lbh_task_yield(L, ctx, select_k);
}

/* bh.select(t1, t2, ...) → the first of the tasks to finish (done, failed
 * or cancelled) and its position; tasks finished in the same loop turn
 * go by argument order. The others keep running: cancel them if they are
 * no longer wanted. */
static int l_select(lua_State *L) {
  return select_k(L, LUA_OK, check_tasks(L, "bh.select"));
}

/* Stack: the n tasks. Once all are finished: results, errs as bh.map. */
static int all_results(lua_State *L, int n) {
  for (int i = 1; i <= n; i++) /* the caller saw every failure */
    ((lbh_task *)lua_touserdata(L, i))->observed = true;
  for (int i = 1; i <= n; i++) { /* the first failure in order raises */
    lbh_task *t = lua_touserdata(L, i);
    if (t->state != TASK_DONE) lbh_sched_task_outcome(L, i);
  }
  lua_createtable(L, n, 1);
  lua_createtable(L, 0, 0);
  for (int i = 1; i <= n; i++) {
    lbh_task *t = lua_touserdata(L, i);
    int top = lua_gettop(L);
    int got = lbh_sched_push_results(L, t);
    if (got >= 1)
      lua_pushvalue(L, top + 1);
    else
      lua_pushnil(L);
    lua_rawseti(L, top - 1, i);
    if (got >= 2 && lua_isnil(L, top + 1)) {
      lua_pushvalue(L, top + 2);
      lua_rawseti(L, top, i);
    }
    lua_settop(L, top);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -3, "n");
  return 2;
}

static int all_k(lua_State *L, int status, lua_KContext ctx) {
  int n = (int)ctx;
  lua_settop(L, n);
  for (int i = 1; i <= n; i++) {
    lbh_task *t = lua_touserdata(L, i);
    if (lbh_task_finished(t)) continue;
    lbh_task *self = lbh_task_check(L, "bh.all");
    if (t == self)
      return lbh_arg_fail(L, i, "bh.all", "a task cannot wait for itself");
    return lbh_waitq_yield(L, self, &t->waiters, ctx, all_k);
  }
  return all_results(L, n);
}

/* bh.all(t1, t2, ...) → results, errs once every task has finished:
 * results[i] is task i's first value, errs[i] its second when the first
 * is nil (the nil, err convention), results.n the number of tasks, as
 * bh.map gives them. The first task (in argument order) that failed has
 * its error raised; a cancelled one raises "the task was cancelled". */
static int l_all(lua_State *L) {
  return all_k(L, LUA_OK, check_tasks(L, "bh.all"));
}

/* ---- registration -------------------------------------------------------- */

static const luaL_Reg control_funcs[] = {
    {"sleep", l_sleep},   {"now", l_now}, {"timeout", l_timeout},
    {"select", l_select}, {"all", l_all}, {"_in_task", l_in_task},
    {NULL, NULL},
};

void lbh_control_open(lua_State *L) {
  luaL_setfuncs(L, control_funcs, 0);
}
