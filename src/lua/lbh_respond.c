/* bh.respond and the "bh.responder" userdata (DESIGN §2): the daemon side
 * of the probe, served by the run's loop in the background (respond.h).
 * While open, the responder holds a registry reference to its userdata,
 * so the collector cannot free what the listener's callbacks touch; the
 * run tracks it and frees the C responder at its end. on_request runs
 * from the loop through the one protected-call wrapper: an error in it is
 * reported and that request dropped. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "lbh_err.h"
#include "lbh_identity.h"
#include "lbh_open.h"
#include "lbh_task.h"
#include "respond.h"

#define RESPONDER_MT "bh.responder"

typedef struct responder {
  bh_responder *r; /* NULL once freed */
  lbh_run *run;    /* while tracked by the run */
  lbh_tracked track;
  lbh_waitq waiters; /* tasks in r:wait() */
  int self_ref;      /* registry ref while open */
  bool closed;
  uint64_t served, rejected; /* kept when r is freed */
  bh_identity reply_id;      /* identity returned by on_request */
} responder;

typedef struct hook_call {
  responder *ud;
  const bh_request *req;
  bh_reply *reply;
} hook_call;

/* ---- callbacks from the loop ------------------------------------------ */

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

/* Read what on_request returned (top of the stack) into the reply. */
static void take_reply(lua_State *L, hook_call *hc) {
  if (lua_isnil(L, -1)) return;
  if (lua_type(L, -1) == LUA_TSTRING &&
      strcmp(lua_tostring(L, -1), "drop") == 0) {
    hc->reply->kind = BH_REPLY_DROP;
    return;
  }
  if (lua_type(L, -1) != LUA_TTABLE)
    luaL_error(L,
               "on_request must return nil, an identity or \"drop\" (got %s)",
               luaL_typename(L, -1));
  bh_identity *id = lbh_check_identity(L, -1, 1, "returned identity");
  bh_err err;
  bh_identity_clear(&hc->ud->reply_id);
  if (bh_identity_copy(&hc->ud->reply_id, id, &err) != BH_OK)
    luaL_error(L, "%s", err.message);
  hc->reply->kind = BH_REPLY_IDENTITY;
  hc->reply->identity = &hc->ud->reply_id;
}

/* Protected: on_request(req) with req = {request_id, nonce (hex),
 * traceparent, tracestate}. Stack: [lightuserdata hook_call]. */
static int hook_p(lua_State *L) {
  hook_call *hc = lua_touserdata(L, 1);
  const bh_request *req = hc->req;
  char hex[2 * BH_NONCE_LEN + 1];
  lua_rawgeti(L, LUA_REGISTRYINDEX, hc->ud->self_ref);
  lua_getiuservalue(L, -1, 1);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)req->request_id);
  lua_setfield(L, -2, "request_id");
  bh_hex_encode(req->nonce, BH_NONCE_LEN, hex);
  lua_pushstring(L, hex);
  lua_setfield(L, -2, "nonce");
  lua_pushstring(L, req->traceparent ? req->traceparent : "");
  lua_setfield(L, -2, "traceparent");
  lua_pushstring(L, req->tracestate ? req->tracestate : "");
  lua_setfield(L, -2, "tracestate");
  lua_call(L, 1, 1);
  take_reply(L, hc);
  return 0;
}

static void on_request(bh_responder *r, const bh_request *req, bh_reply *reply,
                       void *ctx) {
  hook_call hc = {ctx, req, reply};
  if (hc.ud->run == NULL || hc.ud->self_ref == LUA_NOREF) return;
  if (lbh_loop_pcall(hc.ud->run, hook_p, &hc, 0, "on_request") != LUA_OK) {
    reply->kind = BH_REPLY_DROP;
    reply->identity = NULL;
  }
}

/* ---- bh.respond ---------------------------------------------------------- */

/* Options at arg 3: {count, on_request, mode, timeout, max_conns}. The
 * on_request function is left at the top of the stack (or nil). */
static bh_respond_opts check_respond_opts(lua_State *L) {
  bh_respond_opts o = bh_respond_opts_default();
  lua_settop(L, 3);
  if (lua_isnil(L, 3)) {
    lua_pushnil(L);
    return o;
  }
  luaL_checktype(L, 3, LUA_TTABLE);
  if (lua_getfield(L, 3, "count") != LUA_TNIL) {
    lua_Integer n = luaL_checkinteger(L, -1);
    luaL_argcheck(L, n >= 1, 3, "count must be an integer >= 1");
    o.count = (uint64_t)n;
  }
  if (lua_getfield(L, 3, "mode") != LUA_TNIL) {
    lua_Integer m = luaL_checkinteger(L, -1);
    luaL_argcheck(L, m > 0 && m <= 07777, 3, "mode must be in [1, 0o7777]");
    o.mode = (unsigned)m;
  }
  if (lua_getfield(L, 3, "timeout") != LUA_TNIL) {
    lua_Number t = luaL_checknumber(L, -1);
    luaL_argcheck(L, t > 0 && t < 1e6, 3, "timeout must be a number > 0");
    o.conn_timeout = t;
  }
  if (lua_getfield(L, 3, "max_conns") != LUA_TNIL) {
    lua_Integer n = luaL_checkinteger(L, -1);
    luaL_argcheck(L, n >= 1 && n <= 1000000, 3, "max_conns must be >= 1");
    o.max_conns = (unsigned)n;
  }
  int t = lua_getfield(L, 3, "on_request");
  luaL_argcheck(L, t == LUA_TNIL || t == LUA_TFUNCTION, 3,
                "on_request must be a function");
  return o;
}

/* bh.respond(endpoint, identity, {count, on_request, mode, timeout,
 * max_conns}) → responder, or nil, err (in_use, invalid_endpoint, system).
 * Needs a run (the loop serves it); does not yield. */
static int l_respond(lua_State *L) {
  bh_respond_opts o = check_respond_opts(L);
  int fn = lua_gettop(L);
  bh_endpoint *ep = lbh_check_endpoint(L, 1, 1, "endpoint");
  bh_identity *id = lbh_check_identity(L, 2, 2, "identity");
  lbh_run *run = lbh_run_check(L, "bh.respond");
  responder *ud = lua_newuserdatauv(L, sizeof *ud, 1);
  memset(ud, 0, sizeof *ud);
  ud->self_ref = LUA_NOREF;
  ud->closed = true;
  bh_identity_init(&ud->reply_id);
  luaL_setmetatable(L, RESPONDER_MT);
  lua_pushvalue(L, fn);
  lua_setiuservalue(L, -2, 1);
  o.hook = lua_isnil(L, fn) ? NULL : on_request;
  o.hook_ctx = ud;
  o.on_closed = on_closed;
  o.closed_ctx = ud;
  bh_err err;
  ud->r = bh_respond_start(lbh_run_base(run), ep, id, &o, &err);
  if (ud->r == NULL) return lbh_fail(L, &err);
  ud->closed = false;
  ud->run = run;
  lbh_run_track(run, &ud->track, track_close, ud);
  lua_pushvalue(L, -1);
  ud->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* ---- the responder --------------------------------------------------------
 */

static responder *check_responder(lua_State *L) {
  return luaL_checkudata(L, 1, RESPONDER_MT);
}

/* The one idempotent close: stop serving and unlink the socket (the C
 * responder stays allocated until the run ends or the collector runs). */
static int r_close(lua_State *L) {
  responder *ud = check_responder(L);
  if (ud->r != NULL && !ud->closed) bh_respond_close(ud->r);
  return 0;
}

static int r_gc(lua_State *L) {
  responder *ud = check_responder(L);
  if (ud->r != NULL) {
    if (ud->run != NULL) lbh_run_untrack(ud->run, &ud->track);
    track_close(ud);
  }
  bh_identity_clear(&ud->reply_id);
  return 0;
}

static int r_wait_k(lua_State *L, int status, lua_KContext ctx) {
  responder *ud = check_responder(L);
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
  check_responder(L);
  return r_wait_k(L, LUA_OK, 0);
}

/* r.served, r.rejected, r.closed, r.endpoint, and the methods. */
static int r_index(lua_State *L) {
  responder *ud = check_responder(L);
  const char *key = luaL_checkstring(L, 2);
  if (strcmp(key, "served") == 0) {
    lua_pushinteger(
        L, (lua_Integer)(ud->r ? bh_respond_served(ud->r) : ud->served));
  } else if (strcmp(key, "rejected") == 0) {
    lua_pushinteger(
        L, (lua_Integer)(ud->r ? bh_respond_rejected(ud->r) : ud->rejected));
  } else if (strcmp(key, "closed") == 0) {
    lua_pushboolean(L, ud->closed || ud->r == NULL);
  } else if (strcmp(key, "endpoint") == 0 && ud->r != NULL) {
    lbh_push_endpoint(L, bh_respond_endpoint(ud->r));
  } else {
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_getfield(L, -1, key);
  }
  return 1;
}

static int r_tostring(lua_State *L) {
  responder *ud = check_responder(L);
  const char *path = ud->r ? bh_respond_endpoint(ud->r)->path : "";
  lua_pushfstring(L, "bh.responder (%s %s): %p", ud->closed ? "closed" : "open",
                  path, (void *)ud);
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
  if (luaL_newmetatable(L, RESPONDER_MT)) {
    luaL_setfuncs(L, responder_meta, 0);
    luaL_newlib(L, responder_methods);
    lua_setfield(L, -2, "methods");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_respond);
  lua_setfield(L, -2, "respond");
}
