/* bh.run (lbh_task.h, lbh.h): one run = one libevent event_base, the
 * tasks it resumes, the objects it must close when it ends. A run is a
 * full userdata (metatable "bh.run", registered in the registry while
 * active, and a to-be-closed slot of bh.run so that an error escaping
 * bh.run still tears it down). Also the one protected-call wrapper for
 * loop callbacks, SIGINT/SIGTERM stopping a run, and the host's -i
 * sessions. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hasher.h"
#include "lbh.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_open.h"
#include "lbh_sched.h"
#include "lbh_service.h"
#include "lbh_signal.h"
#include "lbh_task.h"
#include "log.h"
#include "loop.h"
#include "worker.h"

#define UNOBSERVED_KEY "bh.unobserved_error"

static const char run_key = 'r'; /* registry[&run_key] = active run */

/* ---- the run --------------------------------------------------------- */

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

struct event_base *lbh_run_base(lbh_run *run) {
  return run->base;
}

lua_State *lbh_run_state(lbh_run *run) {
  return run->L;
}

void lbh_run_set_resume_hook(lbh_run *run, void (*fn)(void *ud, bool before),
                             void *ud) {
  run->resume_hook = fn;
  run->resume_ud = ud;
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

struct bh_hasher *lbh_run_hasher(lbh_run *run) {
  if (run->hasher == NULL) run->hasher = bh_hasher_new(run->base, NULL);
  return run->hasher; /* NULL: probes then hash inline */
}

struct bh_worker *lbh_run_worker(lbh_run *run) {
  if (run->worker == NULL) {
    run->worker = bh_worker_new(run->base, NULL);
    /* Its eventfd wakes a task only while a job is in flight (the jobs
     * say so with lbh_run_background): idle, it must not hide a
     * deadlock. */
    if (run->worker != NULL) lbh_run_background(run, 1);
  }
  return run->worker; /* NULL: jobs then run inline */
}

const char *lbh_error_text(lua_State *L, int idx) {
  const char *msg = lua_tostring(L, idx);
  if (msg != NULL) return msg;
  if (luaL_callmeta(L, idx, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    return lua_tostring(L, -1);
  return lua_pushfstring(L, "(error object is a %s value)",
                         luaL_typename(L, idx));
}

void lbh_log_error(const char *context, const char *msg) {
  size_t n = strlen(context) + strlen(msg) + 3;
  char *line = malloc(n);
  if (line == NULL) { /* bh_log's buffer then: cut, but said */
    bh_log(BH_LOG_ERR, "%s: %s", context, msg);
    return;
  }
  (void)snprintf(line, n, "%s: %s", context, msg);
  bh_log_line(BH_LOG_ERR, line);
  free(line);
}

int lbh_traceback(lua_State *L) {
  luaL_traceback(L, L, lbh_error_text(L, 1), 1);
  return 1;
}

int lbh_loop_pcall(lbh_run *run, lua_CFunction fn, void *ud, int nresults,
                   const char *context) {
  lua_State *L = run->L;
  if (!lua_checkstack(L, 4)) {
    lbh_log_error(context, "Lua stack exhausted");
    return LUA_ERRMEM;
  }
  /* A signal already stops the loop after this turn: do not let the
   * interrupt hook it left on L fail this bookkeeping or callback. */
  if (lbh_stop_signal() != 0) lbh_signal_unhook(L);
  int base = lua_gettop(L) + 1;
  lua_pushcfunction(L, lbh_traceback);
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, ud);
  int status = lua_pcall(L, 1, nresults, base);
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    lbh_log_error(context, msg ? msg : "(error without message)");
    lua_settop(L, base - 1);
    return status;
  }
  lua_remove(L, base);
  return LUA_OK;
}

/* ---- bh.run ---------------------------------------------------------- */

/* Sessions: forget a SIGINT and the interrupt hooks it left. */
void lbh_sched_session_forget_signal(lbh_run *run) {
  lbh_clear_stop_signal(run->L);
  for (bh_list *n = run->live.next; n != &run->live; n = n->next)
    lbh_signal_unhook(lbh_sched_task_of(n)->co);
}

/* Sessions: SIGINT does not stop the run. Forget it (and the hooks it
 * left), then interrupt the foreground: the task the prompt waits for
 * fails with "interrupted", or the prompt's own read is interrupted
 * through the intr function its primitive armed. A task that was looping
 * has already failed through the hook. */
static void session_interrupt(lbh_run *run) {
  lbh_sched_session_forget_signal(run);
  lbh_task *m = run->main;
  if (run->foreground != NULL) {
    lbh_sched_task_interrupt(run->foreground);
  } else if (m->pending && m->intr != NULL) {
    lbh_cancel_fn intr = m->intr;
    m->intr = NULL;
    intr(m->op); /* completes the op: the task gets what it pushes */
  }
}

/* The signal that stops the run now, or 0 (a session's SIGINT is handled
 * here and does not stop it). */
static int run_stop_pending(lbh_run *run) {
  int sig = lbh_stop_signal();
  if (sig == SIGINT && run->session) {
    session_interrupt(run);
    return 0;
  }
  return sig;
}

static void sig_cb(evutil_socket_t fd, short what, void *arg) {
  lbh_run *run = arg;
  lbh_signal_drain();
  event_base_loopbreak(run->base);
}

/* Push a new run (to-be-closed in the caller's frame) and make it the
 * active one. */
static lbh_run *run_new(lua_State *L) {
  lbh_run *run = lua_newuserdatauv(L, sizeof *run, 0);
  memset(run, 0, sizeof *run);
  run->torn_down = true; /* harmless until fully built */
  bh_list_init(&run->live);
  bh_list_init(&run->failed);
  bh_list_init(&run->tracked);
  luaL_setmetatable(L, RUN_MT);
  lua_toclose(L, -1);
  run->L = L;
  run->interrupt_ref = LUA_NOREF;
  run->base = bh_loop_new();
  if (run->base == NULL) luaL_error(L, "bh.run: cannot create event base");
  run->torn_down = false;
  int fd = lbh_signal_fd();
  if (fd >= 0) {
    run->sig_ev = event_new(run->base, fd, EV_READ | EV_PERSIST, sig_cb, run);
    if (run->sig_ev == NULL || event_add(run->sig_ev, NULL) != 0)
      luaL_error(L, "bh.run: cannot watch for signals");
  }
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &run_key);
  lbh_service_attach(L, run); /* the host's endpoint, watchdog */
  return run;
}

/* Events other than our signal watcher and the background ones: with
 * tasks live and none of these, nothing can ever resume them. */
static int run_events(lbh_run *run) {
  int n = event_base_get_num_events(
      run->base, EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE);
  return n - (run->sig_ev ? 1 : 0) - run->nbackground;
}

void lbh_run_background(lbh_run *run, int delta) {
  run->nbackground += delta;
}

/* Turn the loop until every task is over, the main task failed, a signal
 * came, or nothing is left that could wake the remaining tasks. */
static void run_dispatch(lbh_run *run) {
  while (run->nlive > 0) {
    if (run->main->state == TASK_FAILED) break;
    if (run->session && run->main->state == TASK_DONE) break;
    int sig = run_stop_pending(run);
    if (sig != 0) {
      run->stop_signal = sig;
      break;
    }
    if (run_events(run) <= 0) {
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

/* End the run: cancel live tasks, close tracked objects (responders), report
 * unobserved failures, free the loop. Idempotent; also the run's __close
 * and __gc. */
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
  bh_hasher_free(run->hasher); /* after the probes that used it */
  run->hasher = NULL;
  bh_worker_free(run->worker); /* after the tasks that waited on it */
  run->worker = NULL;
  if (run->sig_ev) event_free(run->sig_ev);
  run->sig_ev = NULL;
  event_base_free(run->base);
  run->base = NULL;
  lua_State *L = run->L;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &run_key);
  bool active = lua_touserdata(L, -1) == run;
  lua_pop(L, 1);
  if (active) {
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &run_key);
  }
  lbh_signal_unhook(L);
}

static int run_gc(lua_State *L) {
  run_teardown(luaL_checkudata(L, 1, RUN_MT));
  return 0;
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

/* bh.run and lbh_session: fn at 1, its arguments after it. */
static int run_main(lua_State *L, bool session) {
  lbh_arg_checktype(L, 1, "bh.run", LUA_TFUNCTION);
  if (lbh_run_current(L) != NULL)
    return luaL_error(L,
                      "bh.run cannot be called inside bh.run; use bh.spawn "
                      "to start another task");
  int nargs = lua_gettop(L) - 1;
  lbh_run *run = run_new(L);
  run->session = session;
  lbh_task *main = lbh_task_spawn(L, run, 1, nargs);
  int mi = lua_gettop(L);
  run->main = main;
  run_dispatch(run);
  run_teardown(run);
  return run_outcome(L, run, main, mi);
}

/* bh.run(fn, ...) → fn's results. Runs fn as the main task on a fresh
 * loop until it and every spawned task are over; re-raises its error
 * (with the traceback of the task) after closing everything. */
static int l_run(lua_State *L) {
  return run_main(L, false);
}

int lbh_session(lua_State *L) {
  return run_main(L, true);
}

/* ---- registration ---------------------------------------------------- */

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
