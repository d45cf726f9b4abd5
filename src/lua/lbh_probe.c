/* bh.probe, bh.probe_response and the "bh.handle" userdata (design §2).
 * Both probes yield the calling task while the C prober (probe.h) runs on
 * the loop; a verified handle holds the daemon through its pidfd, so
 * h:alive() and h:shutdown() cannot hit a recycled pid. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "expect.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_err.h"
#include "lbh_identity.h"
#include "lbh_open.h"
#include "lbh_task.h"
#include "probe.h"
#include "procfs.h"
#include "shutdown.h"
#include "text.h"
#include "wire.h"

#define HANDLE_MT "bh.handle"

/* The longest executable path err.peer / h.peer carries whole (a report
 * line or a log line must not grow by a peer's choosing; /proc gives up
 * to PATH_MAX). */
#define BH_PEER_EXE_MAX 512

typedef struct handle {
  bh_proc proc; /* BH_PROC_NONE when closed or never held */
  bool closed;
  bool busy;    /* a shutdown is waiting on proc */
  bh_peer peer; /* credentials of who answered (exe read on demand) */
  double elapsed;
  /* Pushed as tables on the first h.identity / h.timings (then kept in
   * the user values): a policy that never looks pays for no table. */
  bh_identity identity;
  bh_probe_timings timings;
} handle;

/* ---- probing ------------------------------------------------------------ */

typedef struct probe_op {
  lbh_task *task;
  bh_probe *probe;
  bh_probe_result *res; /* set during the completion callback */
  bool response_only;
} probe_op;

/* Push {verify =, connect =, exchange =} in seconds, without the phases
 * that did not run. */
static void push_timings(lua_State *L, const bh_probe_timings *t) {
  const struct {
    const char *name;
    double v;
  } f[] = {{"verify", t->verify},
           {"connect", t->connect},
           {"exchange", t->exchange}};
  lua_createtable(L, 0, 3);
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    if (f[i].v < 0) continue;
    lua_pushnumber(L, f[i].v);
    lua_setfield(L, -2, f[i].name);
  }
}

/* Push {pid =, uid =, gid =, exe =} of p (fields absent when unknown; exe
 * at most BH_PEER_EXE_MAX bytes, a longer one cut with the mark of the
 * cut, text.h). */
static void push_peer(lua_State *L, const bh_peer *p) {
  lua_createtable(L, 0, 4);
  if (!p->known) return;
  lua_pushinteger(L, p->pid);
  lua_setfield(L, -2, "pid");
  lua_pushinteger(L, (lua_Integer)p->uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)p->gid);
  lua_setfield(L, -2, "gid");
  if (p->exe == NULL) return;
  char mark[BH_TEXT_MARK_MAX];
  size_t mark_len, keep = bh_text_cut(p->exe, strlen(p->exe), BH_PEER_EXE_MAX,
                                      mark, &mark_len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, p->exe, keep);
  luaL_addlstring(&b, mark, mark_len);
  luaL_pushresult(&b);
  lua_setfield(L, -2, "exe");
}

/* Build the handle from a successful full probe: a closed handle first
 * (its metatable set, so the collector frees what it takes), then the
 * identity, timings and (last, once nothing can raise) the pidfd. */
static int push_handle(lua_State *L, bh_probe_result *res) {
  handle *h = lua_newuserdatauv(L, sizeof *h, 3);
  memset(h, 0, sizeof *h);
  h->proc = BH_PROC_NONE;
  h->peer = BH_PEER_NONE;
  h->closed = true;
  bh_identity_init(&h->identity);
  luaL_setmetatable(L, HANDLE_MT);
  bh_identity_move(&h->identity, &res->identity);
  h->timings = res->timings;
  h->elapsed = res->elapsed;
  bh_peer_move(&h->peer, &res->peer);
  h->proc = res->proc;
  res->proc = BH_PROC_NONE;
  h->closed = false;
  return 1;
}

/* Stack: nothing. Pushes the probe's Lua result. */
static int probe_push(lua_State *L, void *ud) {
  probe_op *op = ud;
  bh_probe_result *res = op->res;
  if (res->err.code != BH_OK) {
    lbh_fail(L, &res->err);
    push_timings(L, &res->timings);
    lua_setfield(L, -2, "timings");
    if (res->peer.known) {
      push_peer(L, &res->peer);
      lua_setfield(L, -2, "peer");
    }
    if (res->successor != 0) {
      lua_pushinteger(L, (lua_Integer)res->successor);
      lua_setfield(L, -2, "successor");
    }
    if (res->answered) {
      lbh_push_identity(L, &res->identity);
      lua_setfield(L, -2, "got");
    }
    return 2;
  }
  if (op->response_only) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return push_handle(L, res);
}

static void probe_done(bh_probe_result *res, void *ctx) {
  probe_op *op = ctx;
  op->res = res;
  if (op->response_only && res->err.code == BH_OK)
    lbh_task_complete_boolean(op->task, true); /* what probe_push pushes */
  else
    lbh_task_complete(op->task, probe_push, op);
  free(op);
}

static void probe_cancel(void *ud) {
  probe_op *op = ud;
  bh_probe_cancel(op->probe);
  free(op);
}

/* The options table at arg 3: {timeout = s, verify_pid = bool,
 * max_response = n, owner = uid}, each with its range, read by both
 * readers below (the one pass and the full check) into one array of
 * values. */
enum { OPT_TIMEOUT, OPT_VERIFY_PID, OPT_MAX_RESPONSE, OPT_OWNER, OPT_COUNT };
typedef enum opt_kind { OPT_NUMBER, OPT_INTEGER, OPT_BOOLEAN } opt_kind;
static const struct probe_opt {
  const char *key;
  opt_kind kind;
  double lo, hi;  /* numbers: the range */
  bool lo_open;   /* lo itself is out of it */
  bool full_only; /* not an option of bh.probe_response */
} probe_opts[OPT_COUNT] = {
    [OPT_TIMEOUT] = {"timeout", OPT_NUMBER, 0, BH_PROBE_MAX_TIMEOUT, true,
                     false},
    [OPT_VERIFY_PID] = {"verify_pid", OPT_BOOLEAN, 0, 0, false, true},
    [OPT_MAX_RESPONSE] = {"max_response", OPT_INTEGER, 64, BH_FRAME_MAX_BODY,
                          false, false},
    [OPT_OWNER] = {"owner", OPT_INTEGER, 0, 4294967294.0, false, false},
};

/* The options before the table is read, and the values the readers
 * start from (owner -1: none). */
static bh_probe_opts probe_opts_start(bool response_only, double *v) {
  bh_probe_opts o = bh_probe_opts_default();
  o.response_only = response_only;
  o.peer_cred = !response_only; /* bh.probe_response returns no peer */
  o.identity = !response_only;  /* nor the identity answered */
  v[OPT_TIMEOUT] = o.timeout;
  v[OPT_VERIFY_PID] = o.verify_pid;
  v[OPT_MAX_RESPONSE] = o.max_response;
  v[OPT_OWNER] = -1;
  return o;
}

/* The values read, into the options. */
static void probe_opts_set(bh_probe_opts *o, const double *v) {
  o->timeout = v[OPT_TIMEOUT];
  o->verify_pid = v[OPT_VERIFY_PID] != 0;
  o->max_response = (uint32_t)v[OPT_MAX_RESPONSE];
  o->has_owner = v[OPT_OWNER] >= 0;
  o->owner = o->has_owner ? (uid_t)v[OPT_OWNER] : 0;
}

/* The full check: raises on an unknown key or a bad value, naming it. */
static bh_probe_opts check_probe_opts(lua_State *L, const char *what,
                                      bool response_only) {
  static const char *const full_keys[] = {"timeout", "verify_pid",
                                          "max_response", "owner", NULL};
  static const char *const response_keys[] = {"timeout", "max_response",
                                              "owner", NULL};
  double v[OPT_COUNT];
  bh_probe_opts o = probe_opts_start(response_only, v);
  lua_settop(L, 3); /* the boxes checked next go above the arguments */
  lbh_opts_check(L, 3, what, response_only ? response_keys : full_keys);
  for (int i = 0; i < OPT_COUNT; i++) {
    const struct probe_opt *d = &probe_opts[i];
    if (d->full_only && response_only) continue;
    if (d->kind == OPT_BOOLEAN)
      v[i] = lbh_opt_boolean(L, 3, what, d->key, v[i] != 0);
    else if (d->kind == OPT_INTEGER)
      v[i] = (double)lbh_opt_integer(L, 3, what, d->key, (lua_Integer)v[i],
                                     (lua_Integer)d->lo, (lua_Integer)d->hi);
    else
      v[i] = lbh_opt_number(L, 3, what, d->key, v[i], d->lo, d->lo_open, d->hi);
  }
  probe_opts_set(&o, v);
  return o;
}

/* The value on top of the stack, if plainly valid for d, into *v. */
static bool fast_value(lua_State *L, const struct probe_opt *d, double *v) {
  if (d->kind == OPT_BOOLEAN) {
    if (!lua_isboolean(L, -1)) return false;
    *v = lua_toboolean(L, -1);
    return true;
  }
  if (lua_type(L, -1) != LUA_TNUMBER) return false;
  int isint = 1;
  double x = d->kind == OPT_INTEGER ? (double)lua_tointegerx(L, -1, &isint)
                                    : lua_tonumber(L, -1);
  if (!isint || x != x || (d->lo_open ? x <= d->lo : x < d->lo) || x > d->hi)
    return false;
  *v = x;
  return true;
}

/* The options at arg 3 read in one pass over the table, with the ranges
 * check_probe_opts applies; false (stack as it was) when they are not all
 * plainly valid: check_probe_opts then says why. */
static bool fast_probe_opts(lua_State *L, bool response_only,
                            bh_probe_opts *o) {
  double v[OPT_COUNT];
  *o = probe_opts_start(response_only, v);
  int t = lua_type(L, 3);
  if (t == LUA_TNIL || t == LUA_TNONE) return true;
  /* a metatable's __index may supply options the table lacks */
  if (t != LUA_TTABLE || lua_getmetatable(L, 3)) {
    lua_settop(L, 3);
    return false;
  }
  bool ok = true;
  lua_pushnil(L);
  while (ok && lua_next(L, 3) != 0) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    int i = 0;
    while (i < OPT_COUNT && strcmp(k, probe_opts[i].key) != 0)
      i++;
    ok = i < OPT_COUNT && !(probe_opts[i].full_only && response_only) &&
         fast_value(L, &probe_opts[i], &v[i]);
    lua_pop(L, ok ? 1 : 2);
  }
  if (ok) probe_opts_set(o, v);
  return ok;
}

/* Common body of bh.probe and bh.probe_response: check, start, yield.
 * Plainly valid options are read in one pass (fast_probe_opts); anything
 * else goes through check_probe_opts, which raises on what is wrong. */
static int start_probe(lua_State *L, const char *what, bool response_only) {
  bh_probe_opts opts;
  lua_settop(L, 3);
  if (!fast_probe_opts(L, response_only, &opts))
    opts = check_probe_opts(L, what, response_only);
  /* the identity first: bh.probe(id.ipc_endpoint, id) of an identity
   * without an endpoint is best told as that, not as a nil endpoint */
  bh_expected *expected = lbh_check_expected(L, 2, 2, "identity");
  bh_endpoint *ep = lbh_check_endpoint(L, 1, 1, "endpoint");
  lbh_task *t = lbh_task_check(L, what);
  opts.loop_hasher = true; /* off the loop thread, by the loop's prober */
  probe_op *op = calloc(1, sizeof *op);
  if (op == NULL) return luaL_error(L, "out of memory");
  op->task = t;
  op->response_only = response_only;
  op->probe = bh_probe_start_expected(lbh_task_base(t), ep, expected, &opts,
                                      probe_done, op);
  if (op->probe == NULL) {
    free(op);
    return luaL_error(L, "out of memory starting a probe");
  }
  lbh_task_set_pending(t, probe_cancel, op);
  return lbh_task_yield(L, 0, NULL);
}

/* bh.probe(endpoint, expected, {timeout = 0.5, verify_pid = true,
 * max_response = 65536}) →
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

static handle *check_handle(lua_State *L, const char *fn) {
  handle *h = luaL_testudata(L, 1, HANDLE_MT);
  if (h == NULL) lbh_arg_type_error(L, 1, fn, "handle");
  return h;
}

/* The held process, or raise: closed handles and handles from probes
 * without verify_pid hold none. */
static bh_proc *held_proc(lua_State *L, handle *h, const char *fn) {
  if (h->closed) luaL_error(L, "%s: the handle is closed", fn);
  if (h->proc.pid == 0)
    luaL_error(L,
               "%s: the handle holds no process (the probe ran with "
               "verify_pid = false)",
               fn);
  return &h->proc;
}

/* h:alive() → true while the daemon runs. */
static int h_alive(lua_State *L) {
  handle *h = check_handle(L, "handle:alive");
  lua_pushboolean(L, bh_proc_alive(held_proc(L, h, "handle:alive")));
  return 1;
}

/* The one release of the held process, for h:close(), __close and __gc:
 * false (and nothing done) while a shutdown waits on the pidfd; the
 * shutdown's task holds the handle, so the collector never finds it
 * busy. */
static bool handle_release(handle *h) {
  if (h->busy) return false;
  bh_proc_release(&h->proc);
  h->closed = true;
  return true;
}

/* h:close(): idempotent; raises while a shutdown is running. The peer
 * stays readable. */
static int h_close(lua_State *L) {
  if (!handle_release(check_handle(L, "handle:close")))
    return luaL_error(L, "handle:close: a shutdown of this handle is running");
  return 0;
}

/* __close: the same release, never raising (a running shutdown keeps the
 * pidfd; the collector releases it later). */
static int h_release(lua_State *L) {
  handle_release(lbh_arg_udata(L, 1, NULL, HANDLE_MT));
  return 0;
}

/* __gc: the release, and the identity not yet pushed. */
static int h_gc(lua_State *L) {
  handle *h = lbh_arg_udata(L, 1, NULL, HANDLE_MT);
  handle_release(h);
  bh_identity_clear(&h->identity);
  bh_peer_clear(&h->peer);
  return 0;
}

/* Push user value n of the handle at 1, made by push() on first use. */
static void push_lazy(lua_State *L, handle *h, int n,
                      void (*push)(lua_State *L, handle *h)) {
  if (lua_getiuservalue(L, 1, n) != LUA_TNIL) return;
  lua_pop(L, 1);
  push(L, h);
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, 1, n);
}

static void push_handle_identity(lua_State *L, handle *h) {
  lbh_push_identity(L, &h->identity);
  bh_identity_clear(&h->identity); /* the table is the copy kept now */
}

static void push_handle_timings(lua_State *L, handle *h) {
  push_timings(L, &h->timings);
}

/* h.peer: the credentials, and the executable of the held process, read
 * now through /proc (proven by the pidfd to be the one that answered and
 * still running); a handle that holds no process has none. */
static void push_handle_peer(lua_State *L, handle *h) {
  if (h->peer.known && h->peer.exe == NULL && !h->closed &&
      h->proc.pidfd >= 0 && (long)h->proc.pid == (long)h->peer.pid)
    (void)bh_proc_exe_link(h->proc.pid, &h->peer.exe, NULL);
  if (h->peer.exe != NULL && !bh_proc_alive(&h->proc)) {
    free(h->peer.exe); /* the pid may name another process now */
    h->peer.exe = NULL;
  }
  push_peer(L, &h->peer);
}

static int h_tostring(lua_State *L) {
  handle *h = lbh_arg_udata(L, 1, NULL, HANDLE_MT);
  lua_pushfstring(L, "bh.handle (%spid %d): %p", h->closed ? "closed, " : "",
                  (int)h->proc.pid, (void *)h);
  return 1;
}

/* ---- h:shutdown: a thin binding of shutdown.h ---------------------------- */

typedef struct shutdown_op {
  lbh_task *task;
  handle *h;
  bh_shutdown *s;
  const bh_shutdown_result *res; /* valid only during the callback */
} shutdown_op;

static int shutdown_push(lua_State *L, void *ud) {
  const bh_shutdown_result *res = ((shutdown_op *)ud)->res;
  if (res->err.code == BH_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return lbh_fail_stage(L, &res->err, "shutdown");
}

static void shutdown_done(const bh_shutdown_result *res, void *ctx) {
  shutdown_op *op = ctx;
  op->res = res;
  op->h->busy = false;
  lbh_task_complete(op->task, shutdown_push, op);
  free(op);
}

static void shutdown_cancel(void *ud) {
  shutdown_op *op = ud;
  bh_proc_shutdown_cancel(op->s);
  op->h->busy = false;
  free(op);
}

/* h:shutdown([timeout = 5[, {kill = false}]]) → true once the daemon has
 * exited, or nil, err (stage "shutdown"; code "timeout" when it is still
 * running, "system" when it cannot be signalled). SIGTERM through the
 * pidfd, then wait on the loop; with kill, SIGKILL when the timeout
 * expires and a grace of BH_SHUTDOWN_KILL_GRACE. Yields the task. */
static int h_shutdown(lua_State *L) {
  static const char *const keys[] = {"kill", NULL};
  const char *fn = "handle:shutdown";
  handle *h = check_handle(L, fn);
  double timeout = lbh_arg_optnumber(L, 2, fn, "timeout", 5.0, 0, false,
                                     BH_PROBE_MAX_TIMEOUT);
  lbh_opts_check(L, 3, fn, keys);
  bool kill = lbh_opt_boolean(L, 3, fn, "kill", false);
  bh_proc *p = held_proc(L, h, fn);
  if (h->busy)
    return luaL_error(L, "%s: a shutdown of this handle is running", fn);
  lbh_task *t = lbh_task_check(L, fn);
  shutdown_op *op = calloc(1, sizeof *op);
  if (op == NULL) return luaL_error(L, "out of memory");
  *op = (shutdown_op){.task = t, .h = h};
  op->s = bh_proc_shutdown_start(lbh_task_base(t), p, timeout, kill,
                                 shutdown_done, op);
  if (op->s == NULL) {
    free(op);
    return luaL_error(L, "out of memory");
  }
  h->busy = true;
  lbh_task_set_pending(t, shutdown_cancel, op);
  return lbh_task_yield(L, 0, NULL);
}

/* What h_index answers besides the methods (lbh_class_fields). */
static const char *const handle_fields[] = {"identity", "peer_pid", "peer",
                                            "elapsed",  "timings",  NULL};

/* h.identity, h.peer_pid, h.peer, h.elapsed, h.timings, and the
 * methods. */
static int h_index(lua_State *L) {
  handle *h = lbh_arg_udata(L, 1, NULL, HANDLE_MT);
  const char *key = lbh_arg_string(L, 2, NULL, NULL);
  if (strcmp(key, "identity") == 0) {
    push_lazy(L, h, 1, push_handle_identity);
  } else if (strcmp(key, "peer_pid") == 0) {
    if (h->peer.known)
      lua_pushinteger(L, h->peer.pid);
    else
      lua_pushnil(L);
  } else if (strcmp(key, "peer") == 0) {
    push_lazy(L, h, 3, push_handle_peer);
  } else if (strcmp(key, "elapsed") == 0) {
    lua_pushnumber(L, h->elapsed);
  } else if (strcmp(key, "timings") == 0) {
    push_lazy(L, h, 2, push_handle_timings);
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
    {"__index", h_index},       {"__gc", h_gc}, {"__close", h_release},
    {"__tostring", h_tostring}, {NULL, NULL},
};

void lbh_probe_open(lua_State *L) {
  lbh_class(L, HANDLE_MT, handle_meta, handle_methods, "methods");
  lbh_class_fields(L, HANDLE_MT, handle_fields);
  lua_pushcfunction(L, l_probe);
  lua_setfield(L, -2, "probe");
  lua_pushcfunction(L, l_probe_response);
  lua_setfield(L, -2, "probe_response");
}
