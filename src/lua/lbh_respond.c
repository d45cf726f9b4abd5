/* bh.respond and the "bh.responder" userdata (design §2): the daemon side
 * of the probe, served by the run's loop in the background (respond.h).
 * While open, the responder holds a registry reference to its userdata,
 * so the collector cannot free what the listener's callbacks touch; the
 * run tracks it and frees the C responder at its end.
 *
 * on_request runs as a task per request (it may bh.sleep, probe, anything)
 * while the C responder holds the connection (BH_REPLY_DEFER) under its
 * per-connection deadline. The task's to-be-closed request record answers
 * "drop" if the task ends without answering (error, cancel); when the
 * connection ends first (deadline, client gone, responder closed) the
 * task is cancelled through on_abandon and nothing is sent late.
 *
 * A reply is described by nil (the responder's default), a mode name
 * ("drop", "silent", "trickle", a hostile answer of hostile.h), an
 * identity (a table with a pid) or a table {mode, delay, identity, bytes,
 * interval}. */
#include <inttypes.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbh.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_err.h"
#include "lbh_identity.h"
#include "lbh_open.h"
#include "lbh_pcall.h"
#include "lbh_task.h"
#include "respond.h"
#include "wire.h"

#define RESPONDER_MT "bh.responder"
#define REQUEST_MT "bh.pending_request"
#define SILENT_DELAY 1e9 /* "silent": the connection deadline comes first */
#define MAX_SECONDS 86400.0

/* A reply the responder owns (its default, from the options). */
typedef struct owned_reply {
  bh_reply reply; /* identity and raw point into the fields below */
  bh_identity identity;
  uint8_t *raw;
} owned_reply;

typedef struct responder {
  bh_responder *r; /* NULL once freed */
  lbh_run *run;    /* while tracked by the run */
  lbh_tracked track;
  lbh_waitq waiters; /* tasks in r:wait() */
  int self_ref;      /* registry ref while open */
  bool closed;
  uint64_t served, rejected; /* kept when r is freed */
  owned_reply def;           /* the default reply */
} responder;

/* One request handed to an on_request task (a to-be-closed userdata in
 * the task, so the task ending any way answers). */
typedef struct pending_request {
  responder *ud;
  bh_deferred *deferred; /* NULL once answered or abandoned */
  lbh_task *task;
} pending_request;

/* ---- reply descriptions ------------------------------------------------- */

/* The mode name m into *out (kind, hostile; silent and trickle set
 * delay / trickle). */
static void check_mode(lua_State *L, const char *m, const char *fn,
                       bh_reply *out) {
  bh_hostile h = bh_hostile_from_name(m);
  if (h != BH_HOSTILE_NONE) {
    out->kind = BH_REPLY_HOSTILE;
    out->hostile = h;
  } else if (strcmp(m, "normal") == 0) {
    out->kind = BH_REPLY_NORMAL;
  } else if (strcmp(m, "drop") == 0) {
    out->kind = BH_REPLY_DROP;
  } else if (strcmp(m, "silent") == 0) {
    out->kind = BH_REPLY_DROP;
    out->delay = SILENT_DELAY;
  } else if (strcmp(m, "trickle") == 0) {
    out->kind = BH_REPLY_NORMAL;
    out->trickle = 0.05;
  } else if (strcmp(m, "raw") == 0) {
    out->kind = BH_REPLY_RAW;
  } else {
    lbh_arg_error(L, fn, "unknown reply mode '%s'", m);
  }
}

/* A reply table {mode, delay, identity, bytes, interval} at idx. */
static void check_reply_table(lua_State *L, int idx, const char *fn,
                              bh_reply *out) {
  static const char *const keys[] = {"mode",  "delay",    "identity",
                                     "bytes", "interval", NULL};
  lbh_opts_check(L, idx, fn, keys);
  check_mode(L, lbh_opt_string(L, idx, fn, "mode", "normal"), fn, out);
  out->delay =
      lbh_opt_number(L, idx, fn, "delay", out->delay, 0, false, MAX_SECONDS);
  if (out->trickle > 0)
    out->trickle =
        lbh_opt_number(L, idx, fn, "interval", out->trickle, 0, true, 60);
  if (lbh_opt_push(L, idx, "identity")) {
    out->identity = lbh_check_identity(L, -1, 1, "identity");
    lua_replace(L, -2); /* keep the box, drop the table */
    if (out->kind == BH_REPLY_NORMAL) out->kind = BH_REPLY_IDENTITY;
  }
  if (out->kind == BH_REPLY_RAW) {
    if (!lbh_opt_push(L, idx, "bytes") || lua_type(L, -1) != LUA_TSTRING)
      lbh_arg_error(L, fn, "mode 'raw' needs bytes = <string>");
    size_t n;
    out->raw = (const uint8_t *)lua_tolstring(L, -1, &n);
    out->raw_len = n;
  }
}

/* Is the reply at idx an identity to answer as: a prepared one, or a
 * table with a pid? */
static bool is_identity_reply(lua_State *L, int idx) {
  if (lbh_is_prepared_identity(L, idx)) return true;
  if (lua_type(L, idx) != LUA_TTABLE) return false;
  bool has_pid = lua_getfield(L, idx, "pid") != LUA_TNIL;
  lua_pop(L, 1);
  return has_pid;
}

/* Read the reply description at idx into *out (starting from the
 * responder's default delay). Pointers in *out borrow values left on the
 * stack above idx. Raises "<fn>: ..." when it is none of the forms. */
static void check_reply(lua_State *L, int idx, const char *fn, bh_reply *out,
                        double delay) {
  idx = lua_absindex(L, idx);
  *out = (bh_reply){.kind = BH_REPLY_NORMAL, .delay = delay};
  int t = lua_type(L, idx);
  if (t == LUA_TNIL) return;
  if (t == LUA_TSTRING) {
    check_mode(L, lua_tostring(L, idx), fn, out);
  } else if (is_identity_reply(L, idx)) {
    out->identity = lbh_check_identity(L, idx, 1, "identity");
    out->kind = BH_REPLY_IDENTITY;
  } else if (t == LUA_TTABLE) {
    check_reply_table(L, idx, fn, out);
  } else {
    lbh_arg_error(L, fn,
                  "a reply must be nil, a mode name, an identity or a reply "
                  "table, got %s",
                  luaL_typename(L, idx));
  }
}

/* Keep a checked reply beyond the stack (the responder's default). */
static void own_reply(lua_State *L, owned_reply *o, const bh_reply *r) {
  o->reply = *r;
  o->reply.identity = NULL;
  o->reply.raw = NULL;
  bh_err err;
  if (r->identity != NULL) {
    if (bh_identity_copy(&o->identity, r->identity, &err) != BH_OK)
      luaL_error(L, "%s", err.message);
    o->reply.identity = &o->identity;
  }
  if (r->raw != NULL) {
    o->raw = malloc(r->raw_len ? r->raw_len : 1);
    if (o->raw == NULL) luaL_error(L, "out of memory");
    memcpy(o->raw, r->raw, r->raw_len);
    o->reply.raw = o->raw;
  }
}

static void owned_reply_clear(owned_reply *o) {
  bh_identity_clear(&o->identity);
  free(o->raw);
  o->raw = NULL;
  o->reply.identity = NULL;
  o->reply.raw = NULL;
}

/* ---- callbacks from the loop -------------------------------------------- */

/* The C responder stopped serving: wake r:wait(), drop the self ref. */
static void on_closed(bh_responder *r, void *ctx) {
  responder *ud = ctx;
  ud->closed = true;
  ud->served = bh_respond_served(r);
  ud->rejected = bh_respond_rejected(r);
  lbh_waitq_wake_all(&ud->waiters);
  if (ud->run != NULL && ud->self_ref != LUA_NOREF)
    luaL_unref(lbh_run_state(ud->run), LUA_REGISTRYINDEX, ud->self_ref);
  ud->self_ref = LUA_NOREF;
}

/* The run ends: close and free the C responder (before the loop goes). */
static void track_close(void *obj) {
  responder *ud = obj;
  bh_responder *r = ud->r;
  if (r == NULL) return;
  bh_respond_close(r);
  ud->served = bh_respond_served(r);
  ud->rejected = bh_respond_rejected(r);
  ud->r = NULL;
  bh_respond_free(r);
  ud->run = NULL;
}

/* No on_request: every request gets the default reply at once. */
static void default_hook(bh_responder *r, const bh_request *req,
                         bh_reply *reply, void *ctx) {
  responder *ud = ctx;
  *reply = ud->def.reply;
}

/* Answer (once) the request of pr; reply NULL: drop it. */
static void pr_answer(pending_request *pr, const bh_reply *reply) {
  bh_deferred *d = pr->deferred;
  if (d == NULL) return;
  pr->deferred = NULL;
  bh_reply drop = {.kind = BH_REPLY_DROP};
  bh_respond_answer(d, reply ? reply : &drop);
}

/* __close of the request record: the task ended without answering. */
static int pr_close(lua_State *L) {
  pr_answer(lbh_arg_udata(L, 1, NULL, REQUEST_MT), NULL);
  return 0;
}

/* The connection ended before the answer: stop its task (unless it is
 * the one running now, which just finds nobody to answer). */
static void on_abandon(bh_responder *r, void *defer_ctx, void *ctx) {
  pending_request *pr = defer_ctx;
  pr->deferred = NULL;
  lbh_task_cancel(pr->task);
}

/* ---- the on_request task ------------------------------------------------ */

/* Protected: read what on_request returned (at 1) and answer with it.
 * Stack: [result, lightuserdata pending_request]. */
static int answer_p(lua_State *L) {
  pending_request *pr = lua_touserdata(L, 2);
  bh_reply reply;
  check_reply(L, 1, "on_request's reply", &reply, pr->ud->def.reply.delay);
  if (lua_isnil(L, 1)) reply = pr->ud->def.reply;
  pr_answer(pr, &reply);
  return 0;
}

static void report_hook_error(lua_State *L) {
  lbh_log_error("on_request", lbh_error_text(L, -1));
}

/* Stack: [on_request, req, record (to-be-closed), traceback, result]. */
static int hook_task_k(lua_State *L, int status, lua_KContext ctx) {
  pending_request *pr = lua_touserdata(L, 3);
  if (status != LUA_OK && status != LUA_YIELD) {
    report_hook_error(L);
    return 0; /* the record's __close drops the request */
  }
  lua_pushcfunction(L, answer_p);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, pr);
  if (lua_pcall(L, 2, 0, 4) != LUA_OK) report_hook_error(L);
  return 0;
}

/* The body of an on_request task. Stack: [on_request, req, record]. */
static int hook_task(lua_State *L) {
  lua_toclose(L, 3);
  lua_pushcfunction(L, lbh_traceback);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  return hook_task_k(L, lua_pcallk(L, 1, 1, 4, 0, hook_task_k), 0);
}

typedef struct hook_call {
  responder *ud;
  const bh_request *req;
  bh_reply *reply;
} hook_call;

/* Push req as {request_id (decimal string: a u64), nonce (hex),
 * traceparent, tracestate}. */
static void push_request(lua_State *L, const bh_request *req) {
  char hex[2 * BH_NONCE_LEN + 1], id[24];
  lua_createtable(L, 0, 4);
  (void)snprintf(id, sizeof id, "%" PRIu64, req->request_id);
  lua_pushstring(L, id);
  lua_setfield(L, -2, "request_id");
  bh_hex_encode(req->nonce, BH_NONCE_LEN, hex);
  lua_pushstring(L, hex);
  lua_setfield(L, -2, "nonce");
  lua_pushstring(L, req->traceparent ? req->traceparent : "");
  lua_setfield(L, -2, "traceparent");
  lua_pushstring(L, req->tracestate ? req->tracestate : "");
  lua_setfield(L, -2, "tracestate");
}

/* Protected: start the task for one request and defer the answer to it.
 * Stack: [lightuserdata hook_call]. */
static int spawn_hook_p(lua_State *L) {
  hook_call *hc = lua_touserdata(L, 1);
  int base = lua_gettop(L) + 1;
  lua_pushcfunction(L, hook_task);
  lua_rawgeti(L, LUA_REGISTRYINDEX, hc->ud->self_ref);
  lua_getiuservalue(L, -1, 1);
  lua_replace(L, -2);
  push_request(L, hc->req);
  pending_request *pr = lua_newuserdatauv(L, sizeof *pr, 0);
  *pr = (pending_request){hc->ud, NULL, NULL};
  luaL_setmetatable(L, REQUEST_MT);
  pr->task = lbh_task_spawn(L, hc->ud->run, base, 3);
  pr->deferred = hc->reply->deferred;
  hc->reply->kind = BH_REPLY_DEFER;
  hc->reply->defer_ctx = pr;
  return 0;
}

static void on_request(bh_responder *r, const bh_request *req, bh_reply *reply,
                       void *ctx) {
  hook_call hc = {ctx, req, reply};
  if (hc.ud->run == NULL || hc.ud->self_ref == LUA_NOREF ||
      lbh_loop_pcall(lbh_run_state(hc.ud->run), spawn_hook_p, &hc, 0,
                     "on_request") != LUA_OK)
    *reply = (bh_reply){.kind = BH_REPLY_DROP};
}

/* ---- bh.respond ---------------------------------------------------------- */

/* Options at arg 3: {count, on_request, mode, timeout, max_conns, delay,
 * reply, max_request}; the default reply goes to ud->def. */
static bh_respond_opts check_respond_opts(lua_State *L, responder *ud) {
  static const char *const keys[] = {"count",   "on_request",  "mode",
                                     "timeout", "max_conns",   "delay",
                                     "reply",   "max_request", NULL};
  const char *fn = "bh.respond";
  bh_respond_opts o = bh_respond_opts_default();
  lbh_opts_check(L, 3, fn, keys);
  o.count =
      (uint64_t)lbh_opt_integer(L, 3, fn, "count", 0, 1, (lua_Integer)1 << 53);
  o.mode = (unsigned)lbh_opt_integer(L, 3, fn, "mode", 0600, 1, 07777);
  o.conn_timeout =
      lbh_opt_number(L, 3, fn, "timeout", o.conn_timeout, 0, true, MAX_SECONDS);
  o.max_conns =
      (unsigned)lbh_opt_integer(L, 3, fn, "max_conns", o.max_conns, 1, 1000000);
  o.max_request = (uint32_t)lbh_opt_integer(L, 3, fn, "max_request",
                                            BH_RESPOND_DEFAULT_MAX_REQUEST, 64,
                                            BH_FRAME_MAX_BODY);
  double delay = lbh_opt_number(L, 3, fn, "delay", 0, 0, false, MAX_SECONDS);
  int top = lua_gettop(L);
  bh_reply def;
  if (lbh_opt_push(L, 3, "reply"))
    check_reply(L, -1, "bh.respond: reply", &def, delay);
  else
    def = (bh_reply){.kind = BH_REPLY_NORMAL, .delay = delay};
  own_reply(L, &ud->def, &def);
  lua_settop(L, top);
  return o;
}

/* bh.respond(endpoint, identity, {count, on_request, mode, timeout,
 * max_conns, delay, reply}) → responder, or nil, err (in_use,
 * invalid_endpoint, system). Needs a run (the loop serves it); does not
 * yield. */
static int l_respond(lua_State *L) {
  lua_settop(L, 3);
  bh_endpoint *ep = lbh_check_endpoint(L, 1, 1, "endpoint");
  const bh_identity *id = lbh_check_identity(L, 2, 2, "identity");
  lbh_run *run = lbh_run_check(L, "bh.respond");
  responder *ud = lua_newuserdatauv(L, sizeof *ud, 2);
  memset(ud, 0, sizeof *ud);
  ud->self_ref = LUA_NOREF;
  ud->closed = true;
  lbh_waitq_init(&ud->waiters, true); /* woken by requests, by the loop */
  bh_identity_init(&ud->def.identity);
  luaL_setmetatable(L, RESPONDER_MT);
  int self = lua_gettop(L);
  bh_respond_opts o = check_respond_opts(L, ud);
  if (lbh_opt_push(L, 3, "on_request")) {
    if (!lua_isfunction(L, -1))
      lbh_arg_error(L, "bh.respond",
                    "option 'on_request' must be a function, "
                    "got %s",
                    luaL_typename(L, -1));
    lua_setiuservalue(L, self, 1);
    o.hook = on_request;
  } else if (ud->def.reply.kind != BH_REPLY_NORMAL || ud->def.reply.delay > 0 ||
             ud->def.reply.trickle > 0) {
    o.hook = default_hook;
  }
  lbh_push_endpoint(L, ep);
  lua_setiuservalue(L, self, 2);
  o.hook_ctx = ud;
  o.on_abandon = on_abandon;
  o.on_closed = on_closed;
  o.closed_ctx = ud;
  bh_err err;
  ud->r = bh_respond_start(lbh_run_base(run), ep, id, &o, &err);
  if (ud->r == NULL) return lbh_fail(L, &err);
  ud->closed = false;
  ud->run = run;
  lbh_run_track(run, &ud->track, track_close, ud);
  lua_pushvalue(L, self);
  ud->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, self);
  return 1;
}

/* ---- the responder ------------------------------------------------------- */

static responder *check_responder(lua_State *L, const char *fn) {
  responder *ud = luaL_testudata(L, 1, RESPONDER_MT);
  if (ud == NULL) lbh_arg_type_error(L, 1, fn, "responder");
  return ud;
}

/* The one idempotent close (r:close(), __close): stop serving and unlink
 * the socket; the C responder stays allocated until the run ends or the
 * collector runs. */
static int r_close(lua_State *L) {
  responder *ud = check_responder(L, "responder:close");
  if (ud->r != NULL && !ud->closed) bh_respond_close(ud->r);
  return 0;
}

static int r_gc(lua_State *L) {
  responder *ud = lbh_arg_udata(L, 1, NULL, RESPONDER_MT);
  if (ud->r != NULL) {
    if (ud->run != NULL) lbh_run_untrack(ud->run, &ud->track);
    track_close(ud);
  }
  owned_reply_clear(&ud->def);
  return 0;
}

static int r_wait_k(lua_State *L, int status, lua_KContext ctx) {
  responder *ud = lua_touserdata(L, 1);
  if (ud->closed || ud->r == NULL) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lbh_task *t = lbh_task_check(L, "responder:wait");
  return lbh_waitq_yield(L, t, &ud->waiters, ctx, r_wait_k);
}

/* r:wait() → true once the responder is closed (count reached, r:close(),
 * or the run ending). Yields the task. */
static int r_wait(lua_State *L) {
  check_responder(L, "responder:wait");
  lua_settop(L, 1);
  return r_wait_k(L, LUA_OK, 0);
}

/* What r_index answers besides the methods (lbh_class_fields). */
static const char *const responder_fields[] = {"served", "rejected", "closed",
                                               "endpoint", NULL};

/* r.served, r.rejected, r.closed, r.endpoint, and the methods. */
static int r_index(lua_State *L) {
  responder *ud = lbh_arg_udata(L, 1, NULL, RESPONDER_MT);
  const char *key = lbh_arg_string(L, 2, NULL, NULL);
  if (strcmp(key, "served") == 0) {
    lua_pushinteger(
        L, (lua_Integer)(ud->r ? bh_respond_served(ud->r) : ud->served));
  } else if (strcmp(key, "rejected") == 0) {
    lua_pushinteger(
        L, (lua_Integer)(ud->r ? bh_respond_rejected(ud->r) : ud->rejected));
  } else if (strcmp(key, "closed") == 0) {
    lua_pushboolean(L, ud->closed || ud->r == NULL);
  } else if (strcmp(key, "endpoint") == 0) {
    lua_getiuservalue(L, 1, 2);
  } else {
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, key);
  }
  return 1;
}

static int r_tostring(lua_State *L) {
  responder *ud = lbh_arg_udata(L, 1, NULL, RESPONDER_MT);
  const char *path = "?";
  if (lua_getiuservalue(L, 1, 2) == LUA_TTABLE &&
      lua_getfield(L, -1, "path") == LUA_TSTRING)
    path = lua_tostring(L, -1);
  lua_pushfstring(L, "bh.responder (%s %s): %p",
                  ud->closed || ud->r == NULL ? "closed" : "open", path,
                  (void *)ud);
  return 1;
}

static const luaL_Reg responder_methods[] = {
    {"close", r_close},
    {"wait", r_wait},
    {NULL, NULL},
};

static const luaL_Reg responder_meta[] = {
    {"__index", r_index},       {"__gc", r_gc}, {"__close", r_close},
    {"__tostring", r_tostring}, {NULL, NULL},
};

void lbh_respond_open(lua_State *L) {
  static const luaL_Reg request_meta[] = {{"__close", pr_close}, {NULL, NULL}};
  lbh_class(L, RESPONDER_MT, responder_meta, responder_methods, "methods");
  lbh_class_fields(L, RESPONDER_MT, responder_fields);
  lbh_class(L, REQUEST_MT, request_meta, NULL, NULL);
  lbh_args_name(L, answer_p, "on_request's reply");
  lua_pushcfunction(L, l_respond);
  lua_setfield(L, -2, "respond");
}
