/* bh.run (lbh_run.h, lbh.h): one run = one libevent event_base, the
 * tasks it resumes, the objects it must close when it ends, the hooks
 * attached to it. A run is a full userdata (metatable "bh.run", the
 * active run of its state while it runs, and a to-be-closed slot of
 * bh.run so that an error escaping bh.run still tears it down). This
 * file is the run itself: making it, turning its loop until it is over,
 * tearing it down and saying how it ended. Tasks are lbh_task.c's. */
#include <event2/event.h>
#include <signal.h>
#include <string.h>

#include "lbh.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_open.h"
#include "lbh_pcall.h"
#include "lbh_run.h"
#include "lbh_sched.h"
#include "lbh_signal.h"
#include "lbh_task.h"
#include "loop.h"
#include "worker.h"

#define UNOBSERVED_KEY "bh.unobserved_error"

static const char state_hooks_key = 'k'; /* registry: the state's hooks */

/* ---- what the run offers ----------------------------------------------- */

struct event_base *lbh_run_base(lbh_run *run) {
  return run->base;
}

lua_State *lbh_run_state(lbh_run *run) {
  return run->L;
}

lbh_task *lbh_run_main_task(lbh_run *run) {
  return run->main;
}

void lbh_run_track(lbh_run *run, lbh_tracked *e, void (*close)(void *obj),
                   void *obj) {
  e->close = close;
  e->obj = obj;
  bh_list_insert_head(&run->tracked, &e->link);
}

void lbh_run_untrack(lbh_run *run, lbh_tracked *e) {
  (void)run;
  if (e->close == NULL) return; /* not tracked */
  bh_list_remove(&e->link);
  e->close = NULL;
}

struct bh_worker *lbh_run_worker(lbh_run *run) {
  if (run->worker == NULL) run->worker = bh_worker_new(run->base, NULL);
  return run->worker; /* NULL: jobs then run inline */
}

void lbh_run_end_with_main(lbh_run *run) {
  run->ends_with_main = true;
}

void lbh_run_clear_stop_signal(lbh_run *run) {
  lbh_clear_stop_signal(run->L);
  for (bh_list *n = run->live.next; n != &run->live; n = n->next)
    lbh_signal_unhook(lbh_sched_task_of(n)->co);
}

/* ---- hooks --------------------------------------------------------------- */

/* The list of the state's hooks (in a userdata in the registry, so that
 * its head never moves), made on first use when make; else NULL. */
static bh_list *state_hooks(lua_State *L, bool make) {
  bh_list *head = NULL;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &state_hooks_key) == LUA_TUSERDATA)
    head = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (head == NULL && make) {
    head = lua_newuserdatauv(L, sizeof *head, 0);
    bh_list_init(head);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &state_hooks_key);
  }
  return head;
}

void lbh_run_hook_state(lua_State *L, lbh_run_hook *h) {
  bh_list_insert_tail(state_hooks(L, true), &h->link);
}

void lbh_run_hook_add(lbh_run *run, lbh_run_hook *h) {
  bh_list_insert_tail(&run->hooks, &h->link);
}

void lbh_run_hook_remove(lbh_run_hook *h) {
  bh_list_remove(&h->link);
}

/* ---- the loop ------------------------------------------------------------ */

/* The signal that stops the run now, or 0 (when a hook took it). */
static int run_stop_pending(lbh_run *run) {
  int sig = lbh_stop_signal();
  if (sig != 0 && lbh_sched_hooks_signal(run, sig, NULL)) return 0;
  return sig;
}

/* The signal handlers' eventfd woke the loop: a stop signal ends this
 * turn; a SIGHUP is told to the hooks (the report reopens) at once. */
static void sig_cb(evutil_socket_t fd, short what, void *arg) {
  lbh_run *run = arg;
  (void)fd;
  (void)what;
  if (lbh_signal_drain()) (void)lbh_sched_hooks_signal(run, SIGHUP, NULL);
  event_base_loopbreak(run->base);
}

/* Can a live task still be resumed? Yes while one is ready (its event is
 * active, or any other event is: the loop turns once more) or one waits
 * on an operation the loop ends. Tasks that only wait for each other
 * cannot; event sources no task waits on do not count. */
static bool run_can_progress(lbh_run *run) {
  return run->loop_waits > 0 ||
         event_base_get_num_events(run->base, EVENT_BASE_COUNT_ACTIVE) > 0;
}

/* Turn the loop until every task is over, the main task failed (or is
 * done, for a run that ends with it), a signal came, or nothing can
 * resume the remaining tasks. */
static void run_dispatch(lbh_run *run) {
  while (run->nlive > 0) {
    if (run->main->state == TASK_FAILED) break;
    if (run->ends_with_main && run->main->state == TASK_DONE) break;
    int sig = run_stop_pending(run);
    if (sig != 0) {
      run->stop_signal = sig;
      break;
    }
    if (!run_can_progress(run)) {
      run->deadlock = true;
      break;
    }
    if (event_base_loop(run->base, EVLOOP_ONCE) < 0) {
      run->loop_error = true;
      break;
    }
  }
  if (run->stop_signal == 0) run->stop_signal = run_stop_pending(run);
}

/* ---- the end ------------------------------------------------------------- */

/* Print the failures nobody waited for. After a signal the other tasks
 * did not fail on their own (the one the interrupt hook stopped, where it
 * was looping, was kept for run_outcome to raise instead). */
static void run_report_failures(lbh_run *run) {
  lua_State *L = run->L;
  bh_list *n;
  while ((n = bh_list_first(&run->failed)) != NULL) {
    lbh_task *t = lbh_sched_task_of(n);
    bh_list_remove(n);
    if (!t->observed && lua_checkstack(L, 2)) {
      lbh_sched_push_task(L, t);
      lua_getiuservalue(L, -1, 3);
      if (run->stop_signal == 0) {
        const char *msg = lua_tostring(L, -1);
        lbh_log_error("a task failed and nobody waited for it",
                      msg ? msg : "(no message)");
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, UNOBSERVED_KEY);
      }
      lua_pop(L, 2);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
    t->self_ref = LUA_NOREF;
    t->run = NULL;
  }
}

/* End the run: cancel live tasks, close tracked objects (responders),
 * report unobserved failures, free the loop. Idempotent; also the run's
 * __close and __gc. */
static void run_teardown(lbh_run *run) {
  if (run->torn_down) return;
  bh_list *n;
  while ((n = bh_list_first(&run->live)) != NULL)
    lbh_sched_task_cancel(lbh_sched_task_of(n));
  while ((n = bh_list_first(&run->tracked)) != NULL) {
    lbh_tracked *e = bh_list_entry(n, lbh_tracked, link);
    void (*close)(void *) = e->close;
    lbh_run_untrack(run, e);
    close(e->obj);
  }
  run_report_failures(run);
  run->torn_down = true;
  while ((n = bh_list_first(&run->hooks)) != NULL)
    bh_list_remove(n);
  bh_worker_free(run->worker); /* after the tasks that waited on it */
  run->worker = NULL;
  if (run->sig_ev) event_free(run->sig_ev);
  run->sig_ev = NULL;
  bh_loop_free(run->base); /* with its prober, hasher and ring */
  run->base = NULL;
  lua_State *L = run->L;
  if (lbh_run_current(L) == run) lbh_sched_set_current(L, NULL);
  lbh_signal_unhook(L);
}

static int run_gc(lua_State *L) {
  run_teardown(lbh_arg_udata(L, 1, NULL, RUN_MT));
  return 0;
}

/* Push a new run (to-be-closed in the caller's frame), make it the
 * active one and attach hook (NULL: none) and the state's hooks. */
static lbh_run *run_new(lua_State *L, const lbh_run_hook *hook) {
  lbh_run *run = lua_newuserdatauv(L, sizeof *run, 0);
  memset(run, 0, sizeof *run);
  run->torn_down = true; /* harmless until fully built */
  bh_list_init(&run->live);
  bh_list_init(&run->failed);
  bh_list_init(&run->tracked);
  bh_list_init(&run->hooks);
  luaL_setmetatable(L, RUN_MT);
  lua_toclose(L, -1);
  run->L = L;
  run->interrupt_ref = LUA_NOREF;
  bh_err err;
  bh_err_clear(&err);
  run->base = bh_loop_open(&err);
  if (run->base == NULL) luaL_error(L, "bh.run: %s", err.message);
  run->torn_down = false;
  int fd = lbh_signal_fd();
  if (fd >= 0) {
    run->sig_ev = event_new(run->base, fd, EV_READ | EV_PERSIST, sig_cb, run);
    if (run->sig_ev == NULL || event_add(run->sig_ev, NULL) != 0)
      luaL_error(L, "bh.run: cannot watch for signals");
  }
  lbh_sched_set_current(L, run);
  if (hook != NULL) {
    run->own_hook = *hook;
    lbh_run_hook_add(run, &run->own_hook);
  }
  run->state_hooks = state_hooks(L, false);
  return run;
}

/* After teardown: raise or return what the main task (at index mi) gave. */
static int run_outcome(lua_State *L, lbh_run *run, lbh_task *main, int mi) {
  /* The main task interrupted only after the task it waited for (the
   * host's chunk, looping): that one's error says where. */
  bool main_first = !(main->interrupted && run->interrupt_ref != LUA_NOREF);
  if (main->state == TASK_FAILED && main_first) {
    luaL_unref(L, LUA_REGISTRYINDEX, run->interrupt_ref);
    run->interrupt_ref = LUA_NOREF;
    lua_getiuservalue(L, mi, 2);
    return lua_error(L);
  }
  if (run->interrupt_ref != LUA_NOREF) { /* a spawned task was looping */
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->interrupt_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, run->interrupt_ref);
    run->interrupt_ref = LUA_NOREF;
    return lua_error(L);
  }
  if (run->stop_signal != 0) return luaL_error(L, "interrupted");
  if (run->loop_error) return luaL_error(L, "bh.run: the event loop failed");
  if (run->deadlock || main->state != TASK_DONE)
    return luaL_error(L,
                      "bh.run: deadlock: tasks are waiting and nothing "
                      "can wake them");
  return lbh_sched_push_results(L, main);
}

int lbh_run_main(lua_State *L, const lbh_run_hook *hook) {
  lbh_arg_checktype(L, 1, "bh.run", LUA_TFUNCTION);
  if (lbh_run_current(L) != NULL)
    return luaL_error(L,
                      "bh.run cannot be called inside bh.run; use bh.spawn "
                      "to start another task");
  int nargs = lua_gettop(L) - 1;
  lbh_run *run = run_new(L, hook);
  lbh_task *main = lbh_task_spawn(L, run, 1, nargs);
  int mi = lua_gettop(L);
  run->main = main;
  lbh_sched_hooks_started(run);
  lua_settop(L, mi);
  run_dispatch(run);
  run_teardown(run);
  return run_outcome(L, run, main, mi);
}

/* bh.run(fn, ...) → fn's results. Runs fn as the main task on a fresh
 * loop until it and every spawned task are over; re-raises its error
 * (with the traceback of the task) after closing everything. */
static int l_run(lua_State *L) {
  return lbh_run_main(L, NULL);
}

/* ---- registration -------------------------------------------------------- */

void lbh_run_open(lua_State *L) {
  static const luaL_Reg meta[] = {
      {"__gc", run_gc}, {"__close", run_gc}, {NULL, NULL}};
  lbh_class(L, RUN_MT, meta, NULL, NULL);
  lua_pushcfunction(L, l_run);
  lua_setfield(L, -2, "run");
}

bool lbh_unobserved_error(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, UNOBSERVED_KEY);
  bool b = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return b;
}
