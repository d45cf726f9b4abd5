/* bh.probe, bh.probe_response and the "bh.handle" userdata (DESIGN §2).
 * Both probes yield the calling task while the C prober (probe.h) runs on
 * the loop; a verified handle holds the daemon through its pidfd, so
 * h:alive() and h:shutdown() cannot hit a recycled pid. */
#include <errno.h>
#include <event2/event.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lbh_args.h"
#include "lbh_err.h"
#include "lbh_identity.h"
#include "lbh_open.h"
#include "lbh_task.h"
#include "probe.h"

#define HANDLE_MT "bh.handle"
#define KILL_GRACE 1.0 /* seconds to wait after SIGKILL */
#define POLL_STEP 0.01 /* liveness poll period without a pidfd */

typedef struct handle {
  bh_proc proc; /* BH_PROC_NONE when closed or never held */
  bool closed;
  bool busy; /* a shutdown is waiting on proc */
  bool has_peer;
  pid_t peer_pid;
  double elapsed;
} handle;

/* ---- probing ------------------------------------------------------------ */

typedef struct probe_op {
  lbh_task *task;
  bh_probe *probe;
  bh_probe_result *res; /* set during the completion callback */
  bool response_only;
} probe_op;

/* Build the handle from a successful full probe: a closed handle first,
 * then the identity, then (last, once nothing can raise) the pidfd. */
static int push_handle(lua_State *L, bh_probe_result *res) {
  handle *h = lua_newuserdatauv(L, sizeof *h, 1);
  memset(h, 0, sizeof *h);
  h->proc = BH_PROC_NONE;
  h->closed = true;
  luaL_setmetatable(L, HANDLE_MT);
  lbh_push_identity(L, &res->identity);
  lua_setiuservalue(L, -2, 1);
  h->elapsed = res->elapsed;
  h->has_peer = res->has_peer_cred;
  h->peer_pid = res->peer_pid;
  h->proc = res->proc;
  res->proc = BH_PROC_NONE;
  h->closed = false;
  return 1;
}

/* Stack: nothing. Pushes the probe's Lua result. */
static int probe_push(lua_State *L, void *ud) {
  probe_op *op = ud;
  bh_probe_result *res = op->res;
  if (res->err.code != BH_OK) return lbh_fail(L, &res->err);
  if (op->response_only) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return push_handle(L, res);
}

static void probe_done(bh_probe_result *res, void *ctx) {
  probe_op *op = ctx;
  op->res = res;
  lbh_task_complete(op->task, probe_push, op);
  free(op);
}

static void probe_cancel(void *ud) {
  probe_op *op = ud;
  bh_probe_cancel(op->probe);
  free(op);
}

/* Options table at arg 3: {timeout = s, verify_pid = bool}. */
static bh_probe_opts check_probe_opts(lua_State *L, const char *what,
                                      bool response_only) {
  static const char *const full_keys[] = {"timeout", "verify_pid", NULL};
  static const char *const response_keys[] = {"timeout", NULL};
  bh_probe_opts o = bh_probe_opts_default();
  o.response_only = response_only;
  lua_settop(L, 3); /* the boxes checked next go above the arguments */
  lbh_opts_check(L, 3, what, response_only ? response_keys : full_keys);
  o.timeout = lbh_opt_number(L, 3, what, "timeout", o.timeout, 0, true,
                             BH_PROBE_MAX_TIMEOUT);
  if (!response_only)
    o.verify_pid = lbh_opt_boolean(L, 3, what, "verify_pid", o.verify_pid);
  return o;
}

/* Common body of bh.probe and bh.probe_response: check, start, yield. */
static int start_probe(lua_State *L, const char *what, bool response_only) {
  bh_probe_opts opts = check_probe_opts(L, what, response_only);
  bh_endpoint *ep = lbh_check_endpoint(L, 1, 1, "endpoint");
  bh_identity *expected = lbh_check_identity(L, 2, 2, "identity");
  lbh_task *t = lbh_task_check(L, what);
  if (!response_only && opts.verify_pid)
    opts.hasher = lbh_run_hasher(lbh_run_current(L));
  probe_op *op = calloc(1, sizeof *op);
  if (op == NULL) return luaL_error(L, "out of memory");
  op->task = t;
  op->response_only = response_only;
  op->probe =
      bh_probe_start(lbh_task_base(t), ep, expected, &opts, probe_done, op);
  if (op->probe == NULL) {
    free(op);
    return luaL_error(L, "out of memory starting a probe");
  }
  lbh_task_set_pending(t, probe_cancel, op);
  return lbh_task_yield(L, 0, NULL);
}

/* bh.probe(endpoint, expected, {timeout = 0.5, verify_pid = true}) →
 * handle, or nil, err. Yields the task. */
static int l_probe(lua_State *L) {
  return start_probe(L, "bh.probe", false);
}

/* bh.probe_response(endpoint, expected, {timeout = 0.5}) → true, or nil,
 * err: the active exchange only (no endpoint check, no verify_pid). */
static int l_probe_response(lua_State *L) {
  return start_probe(L, "bh.probe_response", true);
}

/* ---- the handle --------------------------------------------------------- */

static handle *check_handle(lua_State *L) {
  return luaL_checkudata(L, 1, HANDLE_MT);
}

/* The held process, or raise: closed handles and handles from probes
 * without verify_pid hold none. */
static bh_proc *held_proc(lua_State *L, handle *h) {
  if (h->closed) luaL_error(L, "the handle is closed");
  if (h->proc.pid == 0)
    luaL_error(L,
               "the handle holds no process (probe ran with "
               "verify_pid = false)");
  return &h->proc;
}

/* h:alive() → true while the daemon runs. */
static int h_alive(lua_State *L) {
  handle *h = check_handle(L);
  lua_pushboolean(L, bh_proc_alive(held_proc(L, h)));
  return 1;
}

/* The one idempotent close: release the pidfd. h:close(), __gc, __close. */
static int h_close(lua_State *L) {
  handle *h = check_handle(L);
  if (h->busy) return luaL_error(L, "the handle is busy (shutdown running)");
  bh_proc_release(&h->proc);
  h->closed = true;
  return 0;
}

static int h_gc(lua_State *L) {
  handle *h = check_handle(L);
  bh_proc_release(&h->proc); /* never busy here: a waiting task holds h */
  h->closed = true;
  return 0;
}

/* __close: like close, but never raises (a running shutdown keeps the
 * pidfd; the collector releases it later). */
static int h_closemeta(lua_State *L) {
  handle *h = check_handle(L);
  if (!h->busy) {
    bh_proc_release(&h->proc);
    h->closed = true;
  }
  return 0;
}

static int h_tostring(lua_State *L) {
  handle *h = check_handle(L);
  lua_pushfstring(L, "bh.handle (%spid %d): %p", h->closed ? "closed, " : "",
                  (int)h->proc.pid, (void *)h);
  return 1;
}

/* ---- h:shutdown --------------------------------------------------------- */

typedef struct shutdown_op {
  lbh_task *task;
  handle *h;
  struct event *ev;
  double deadline;
  bool kill, killed, exited;
  double timeout;
} shutdown_op;

static int shutdown_push(lua_State *L, void *ud) {
  shutdown_op *op = ud;
  if (op->exited) {
    lua_pushboolean(L, 1);
    return 1;
  }
  bh_err err;
  bh_err_set(&err, BH_TIMEOUT, NULL, "pid %u still running %.3g s after %s",
             (unsigned)op->h->proc.pid, op->timeout,
             op->killed ? "SIGTERM and SIGKILL" : "SIGTERM");
  return lbh_fail(L, &err);
}

static void shutdown_free(shutdown_op *op) {
  op->h->busy = false;
  if (op->ev) event_free(op->ev);
  free(op);
}

static void shutdown_cancel(void *ud) {
  shutdown_free(ud);
}

/* (Re)arm the wait: readable pidfd (exit) or the deadline; without a
 * pidfd, a short poll. */
static int shutdown_arm(shutdown_op *op) {
  double left = op->deadline - bh_mono_now();
  if (left < 0) left = 0;
  if (op->h->proc.pidfd < 0 && left > POLL_STEP) left = POLL_STEP;
  struct timeval tv = bh_timeval(left);
  return event_add(op->ev, &tv);
}

static void shutdown_cb(evutil_socket_t fd, short what, void *arg) {
  shutdown_op *op = arg;
  op->exited = !bh_proc_alive(&op->h->proc);
  bool expired = bh_mono_now() >= op->deadline;
  if (!op->exited && expired && op->kill && !op->killed) {
    bh_proc_signal(&op->h->proc, SIGKILL);
    op->killed = true;
    op->deadline = bh_mono_now() + KILL_GRACE;
    expired = false;
  }
  if (!op->exited && !expired && shutdown_arm(op) == 0) return;
  lbh_task_complete(op->task, shutdown_push, op);
  shutdown_free(op);
}

/* Options of shutdown: timeout at 2 (default 5 s), {kill = bool} at 3. */
static void check_shutdown_args(lua_State *L, double *timeout, bool *kill) {
  *timeout = luaL_optnumber(L, 2, 5.0);
  luaL_argcheck(L, *timeout >= 0 && *timeout < 1e6, 2,
                "timeout must be a number >= 0");
  *kill = false;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "kill");
    *kill = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
}

/* h:shutdown(timeout = 5[, {kill = true}]) → true once the daemon has
 * exited, or nil, err (code "timeout"). SIGTERM through the pidfd, then
 * wait on the loop; with kill, SIGKILL when the timeout expires and a
 * short grace. Yields the task. */
static int h_shutdown(lua_State *L) {
  handle *h = check_handle(L);
  double timeout;
  bool kill;
  check_shutdown_args(L, &timeout, &kill);
  bh_proc *p = held_proc(L, h);
  if (h->busy) return luaL_error(L, "a shutdown of this handle is running");
  lbh_task *t = lbh_task_check(L, "handle:shutdown");
  if (!bh_proc_alive(p)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  int rc = bh_proc_signal(p, SIGTERM);
  if (rc == -ESRCH) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (rc < 0) {
    bh_err err;
    bh_err_set(&err, BH_SYSTEM, NULL, "cannot signal pid %u: %s",
               (unsigned)p->pid, strerror(-rc));
    return lbh_fail(L, &err);
  }
  shutdown_op *op = calloc(1, sizeof *op);
  if (op == NULL) return luaL_error(L, "out of memory");
  *op = (shutdown_op){.task = t, .h = h, .kill = kill, .timeout = timeout};
  op->deadline = bh_mono_now() + timeout;
  op->ev = p->pidfd >= 0
               ? event_new(lbh_task_base(t), p->pidfd, EV_READ, shutdown_cb, op)
               : event_new(lbh_task_base(t), -1, 0, shutdown_cb, op);
  h->busy = true;
  if (op->ev == NULL || shutdown_arm(op) != 0) {
    shutdown_free(op);
    return luaL_error(L, "cannot wait for pid %u", (unsigned)p->pid);
  }
  lbh_task_set_pending(t, shutdown_cancel, op);
  return lbh_task_yield(L, 0, NULL);
}

/* h.identity, h.peer_pid, h.elapsed, and the methods. */
static int h_index(lua_State *L) {
  handle *h = check_handle(L);
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "identity") == 0) {
    lua_getiuservalue(L, 1, 1);
  } else if (strcmp(key, "peer_pid") == 0) {
    if (h->has_peer)
      lua_pushinteger(L, h->peer_pid);
    else
      lua_pushnil(L);
  } else if (strcmp(key, "elapsed") == 0) {
    lua_pushnumber(L, h->elapsed);
  } else {
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, key);
  }
  return 1;
}

static const luaL_Reg handle_methods[] = {
    {"alive", h_alive},
    {"shutdown", h_shutdown},
    {"close", h_close},
    {NULL, NULL},
};

static const luaL_Reg handle_meta[] = {
    {"__index", h_index},       {"__gc", h_gc}, {"__close", h_closemeta},
    {"__tostring", h_tostring}, {NULL, NULL},
};

void lbh_probe_open(lua_State *L) {
  if (luaL_newmetatable(L, HANDLE_MT)) {
    luaL_setfuncs(L, handle_meta, 0);
    luaL_newlib(L, handle_methods);
    lua_setfield(L, -2, "methods");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_probe);
  lua_setfield(L, -2, "probe");
  lua_pushcfunction(L, l_probe_response);
  lua_setfield(L, -2, "probe_response");
}
