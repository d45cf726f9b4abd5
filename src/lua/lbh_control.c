/* Waiting for time: bh.sleep, bh.now (and bh._in_task for the Lua
 * helpers). Each waits on
 * the template of lbh_task.h; the continuations re-check their deadline
 * against bh_mono_now, so no wait ever ends early by the clock bh.now
 * reads, whatever the loop's timers do. */
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>

#include "clock.h"
#include "lbh_args.h"
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

/* ---- registration -------------------------------------------------------- */

static const luaL_Reg control_funcs[] = {
    {"sleep", l_sleep},
    {"now", l_now},
    {"_in_task", l_in_task},
    {NULL, NULL},
};

void lbh_control_open(lua_State *L) {
  luaL_setfuncs(L, control_funcs, 0);
}
