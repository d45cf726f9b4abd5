/* bh.metrics.serve: the Lua side of the HTTP endpoint (core http.h). A
 * server is a full userdata ("bh.http_server") tracked by the run, so it
 * closes when the run ends; while open it holds a registry reference to
 * itself, so the collector cannot free what a request callback touches.
 * A server is handed the functions it calls when it is made (the ones
 * bh.metrics handed over, lbh_options.h), kept in its uservalue: /metrics
 * calls bh.metrics.render on the loop (it never yields), /sd
 * bh.metrics.render_sd and / bh.metrics.render_index alike; a /probe
 * request spawns a task running bh.metrics._probe_runner, which calls the
 * policy's probe function and answers through server:_reply.
 * The host's --listen socket (lbh_service.c) is served the same way by a
 * server each run of the host starts (lbh_http_start_host);
 * bh.metrics.serve{probe = fn} without listen then hands fn to that server
 * instead of binding another. No task waits on a server: it never keeps a
 * deadlocked run alive. */
#include <lauxlib.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "lbh.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_err.h"
#include "lbh_http.h"
#include "lbh_open.h"
#include "lbh_options.h"
#include "lbh_pcall.h"
#include "lbh_run.h"
#include "lbh_task.h"

#define SERVER_MT "bh.http_server"
#define FN "bh.metrics.serve"

typedef struct server {
  bh_http *http; /* NULL once closed */
  lbh_run *run;
  lua_State *L; /* the run's state */
  lbh_tracked track;
  int self_ref;
  bool host; /* the server of the host's --listen */
  char address[80];
} server;

static const char host_server_key = 'h'; /* registry: the host's server */

/* ---- calls into Lua from the loop ------------------------------------- */

typedef struct call {
  server *s;
  bool openmetrics;
  bool debug;      /* /probe?...&debug=true */
  bool no_handler; /* /probe on a server without a probe function */
  lbh_bound page;  /* the function that renders the page */
  uint64_t id;
  const char *path;
  char *out;
  size_t len;
} call;

/* Push the server's table (its uservalue): probe, tasks, and at
 * lbh_bound + 1 the functions it was handed when it was made. */
static void push_table(lua_State *L, server *s) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
  lua_getiuservalue(L, -1, 1);
  lua_remove(L, -2);
}

/* Push the function the server was handed as which. */
static void push_handed(lua_State *L, server *s, lbh_bound which) {
  push_table(L, s);
  lua_rawgeti(L, -1, (lua_Integer)which + 1);
  lua_remove(L, -2);
}

/* Under lbh_loop_pcall: c->out = the page c->page renders(openmetrics). */
static int render_p(lua_State *L) {
  call *c = lua_touserdata(L, 1);
  size_t len;
  push_handed(L, c->s, c->page);
  lua_pushboolean(L, c->openmetrics);
  lua_call(L, 1, 1);
  const char *text = lua_tolstring(L, -1, &len);
  if (text == NULL)
    return luaL_error(L, "the page is a %s, not a string",
                      luaL_typename(L, -1));
  c->out = malloc(len ? len : 1);
  if (c->out == NULL) return luaL_error(L, "out of memory");
  memcpy(c->out, text, len);
  c->len = len;
  return 0;
}

/* The body the page renders, malloc'd, or NULL (logged). */
static char *render(server *s, lbh_bound page, bool openmetrics, size_t *len,
                    const char *what) {
  call c = {.s = s, .openmetrics = openmetrics, .page = page};
  if (lbh_loop_pcall(s->L, render_p, &c, 0, what) != LUA_OK) return NULL;
  *len = c.len;
  return c.out;
}

static char *on_metrics(void *ctx, bool openmetrics, size_t *len) {
  return render(ctx, LBH_METRICS_RENDER, openmetrics, len, "serving /metrics");
}

static char *on_page(void *ctx, bh_http_page page, size_t *len) {
  if (page == BH_HTTP_PAGE_SD)
    return render(ctx, LBH_METRICS_RENDER_SD, false, len, "serving /sd");
  return render(ctx, LBH_METRICS_RENDER_INDEX, false, len, "serving /");
}

/* Push the server's table of running /probe tasks (by request id). */
static void push_tasks(lua_State *L, server *s) {
  push_table(L, s);
  lua_getfield(L, -1, "tasks");
  lua_remove(L, -2);
}

/* Under lbh_loop_pcall: tasks[id] = a task running the /probe task
 * function (bh.metrics._probe_runner) with (server, probe, id, path,
 * openmetrics, debug), or c->no_handler when there is no probe. */
static int spawn_p(lua_State *L) {
  call *c = lua_touserdata(L, 1);
  push_tasks(L, c->s);
  int tasks = lua_gettop(L);
  push_handed(L, c->s, LBH_METRICS_PROBE_RUNNER);
  int fn = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->s->self_ref);
  push_table(L, c->s);
  lua_getfield(L, -1, "probe");
  lua_remove(L, -2);
  if (lua_isnil(L, -1)) {
    c->no_handler = true;
    return 0;
  }
  lua_pushinteger(L, (lua_Integer)c->id);
  lua_pushstring(L, c->path);
  lua_pushboolean(L, c->openmetrics);
  lua_pushboolean(L, c->debug);
  lbh_task_spawn(L, c->s->run, fn, lua_gettop(L) - fn);
  lua_rawseti(L, tasks, (lua_Integer)c->id);
  return 0;
}

static bool on_probe(void *ctx, uint64_t id, const char *path, bool openmetrics,
                     bool debug) {
  static const char none[] = "no probe handler\n";
  call c = {.s = ctx,
            .openmetrics = openmetrics,
            .debug = debug,
            .id = id,
            .path = path};
  server *s = ctx;
  if (lbh_loop_pcall(s->L, spawn_p, &c, 0, "starting a /probe") != LUA_OK)
    return false;
  if (c.no_handler)
    bh_http_reply(s->http, id, 404, NULL, none, sizeof none - 1);
  return true;
}

/* Under lbh_loop_pcall: cancel the task of /probe c->id, if it runs. */
static int abandon_p(lua_State *L) {
  call *c = lua_touserdata(L, 1);
  push_tasks(L, c->s);
  lua_rawgeti(L, -1, (lua_Integer)c->id);
  lua_pushnil(L);
  lua_rawseti(L, -3, (lua_Integer)c->id);
  if (!lua_isnil(L, -1)) lbh_task_cancel(lbh_task_checkarg(L, -1, FN));
  return 0;
}

/* The client of /probe id went away: its probe stops now. */
static void on_abandon(void *ctx, uint64_t id) {
  call c = {.s = ctx, .id = id};
  server *s = ctx;
  (void)lbh_loop_pcall(s->L, abandon_p, &c, 0, "stopping an abandoned /probe");
}

/* ---- the server object ------------------------------------------------ */

/* Stop serving (pending /probe requests get 503) and drop the references.
 * Idempotent; also the run's teardown (no Lua code runs). */
static void server_close(void *obj) {
  server *s = obj;
  if (s->http == NULL) return;
  bh_http_free(s->http);
  s->http = NULL;
  lbh_run_untrack(s->run, &s->track);
  if (s->host) {
    lua_pushnil(s->L);
    lua_rawsetp(s->L, LUA_REGISTRYINDEX, &host_server_key);
  }
  luaL_unref(s->L, LUA_REGISTRYINDEX, s->self_ref);
  s->self_ref = LUA_NOREF;
}

/* Push a new server serving fd (taken over) in run, with the probe
 * function at probe_idx (0: none) and the functions bh.metrics handed
 * over. */
static server *server_new(lua_State *L, lbh_run *run, int fd,
                          const char *address, int probe_idx,
                          const bh_http_opts *opts) {
  server *s = lua_newuserdatauv(L, sizeof *s, 1);
  memset(s, 0, sizeof *s);
  s->self_ref = LUA_NOREF;
  luaL_setmetatable(L, SERVER_MT);
  lua_createtable(L, LBH_METRICS_PROBE_RUNNER + 1, 2);
  if (probe_idx != 0) {
    lua_pushvalue(L, probe_idx);
    lua_setfield(L, -2, "probe");
  }
  for (int i = LBH_METRICS_RENDER; i <= LBH_METRICS_PROBE_RUNNER; i++) {
    if (lbh_push_bound(L, (lbh_bound)i)) lua_rawseti(L, -2, i + 1);
  }
  lua_newtable(L);
  lua_setfield(L, -2, "tasks");
  lua_setiuservalue(L, -2, 1);
  bh_http_callbacks cb = {on_metrics, on_page, on_probe, on_abandon, s};
  bh_err err;
  s->http = bh_http_new(lbh_run_base(run), fd, &cb, opts, &err);
  if (s->http == NULL) luaL_error(L, "%s: %s", FN, err.message);
  s->run = run;
  s->L = lbh_run_state(run);
  (void)snprintf(s->address, sizeof s->address, "%s", address);
  lua_pushvalue(L, -1);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lbh_run_track(run, &s->track, server_close, s);
  return s;
}

/* Set the probe function of the server at -1 to the value at idx. */
static void set_probe(lua_State *L, int idx) {
  lua_getiuservalue(L, -1, 1);
  lua_pushvalue(L, idx);
  lua_setfield(L, -2, "probe");
  lua_pop(L, 1);
}

/* bh.metrics.serve{listen = "HOST:PORT", probe = fn, max_probes = 8,
 * max_conns = 64, request_timeout = 10} -> server. Serves /metrics,
 * /-/healthy, /sd, / and (with probe) /probe in the current run until
 * server:close() or the end of the run. Without listen, the host's
 * --listen server (started with the run) gets probe (the other options
 * are then the host's). A listen address that cannot be bound raises (a
 * caller's setup bug). */
static int l_serve(lua_State *L) {
  static const char *const keys[] = {
      "listen", "probe", "max_probes", "max_conns", "request_timeout", NULL};
  lbh_opts_check(L, 1, FN, keys);
  lbh_run *run = lbh_run_check(L, FN);
  const char *listen = lbh_opt_string(L, 1, FN, "listen", NULL);
  bh_http_opts o = bh_http_opts_default();
  o.max_probes = (unsigned)lbh_opt_integer(L, 1, FN, "max_probes",
                                           BH_HTTP_DEFAULT_MAX_PROBES, 1, 1024);
  o.max_conns = (unsigned)lbh_opt_integer(L, 1, FN, "max_conns",
                                          BH_HTTP_DEFAULT_MAX_CONNS, 2, 65536);
  o.request_timeout =
      lbh_opt_number(L, 1, FN, "request_timeout",
                     BH_HTTP_DEFAULT_REQUEST_TIMEOUT, 0, true, 3600);
  int probe_idx = 0;
  if (lbh_opt_push(L, 1, "probe")) {
    if (!lua_isfunction(L, -1))
      lbh_arg_error(L, FN, "option 'probe' must be a function, got %s",
                    luaL_typename(L, -1));
    probe_idx = lua_gettop(L);
  }
  if (listen == NULL) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &host_server_key) != LUA_TUSERDATA)
      lbh_arg_error(L, FN, "option 'listen' is required (no --listen)");
    if (probe_idx != 0) set_probe(L, probe_idx);
    return 1;
  }
  int fd;
  char bound[80];
  bh_err err;
  if (bh_http_listen(listen, &fd, bound, sizeof bound, &err) != BH_OK)
    return luaL_error(L, "%s: %s", FN, err.message);
  server_new(L, run, fd, bound, probe_idx, &o);
  return 1;
}

void lbh_http_start_host(lbh_run *run, int fd, const char *address) {
  lua_State *L = lbh_run_state(run);
  server *s = server_new(L, run, fd, address, 0, NULL);
  s->host = true;
  lua_rawsetp(L, LUA_REGISTRYINDEX, &host_server_key);
}

static server *check_server(lua_State *L) {
  return lbh_arg_udata(L, 1, NULL, SERVER_MT);
}

/* server:_reply(id, code, body[, content_type]): answer a /probe
 * (bh.metrics._probe_runner only); a 200 without content_type is metrics
 * as the request asked. Nothing happens once the server is closed. */
static int s_reply(lua_State *L) {
  server *s = check_server(L);
  static const char *const fn = "server:_reply";
  lua_Integer id = lbh_arg_integer(L, 2, fn, "id", 0, LUA_MAXINTEGER);
  int code = (int)lbh_arg_integer(L, 3, fn, "code", INT_MIN, INT_MAX);
  size_t len;
  const char *body = lbh_arg_string(L, 4, fn, &len);
  const char *ctype = lbh_arg_optstring(L, 5, fn, NULL, NULL);
  if (s->http != NULL)
    bh_http_reply(s->http, (uint64_t)id, code, ctype, body, len);
  if (s->self_ref != LUA_NOREF) { /* its task is done */
    push_tasks(L, s);
    lua_pushnil(L);
    lua_rawseti(L, -2, id);
  }
  return 0;
}

static int s_close(lua_State *L) {
  server_close(check_server(L));
  return 0;
}

/* server.address ("127.0.0.1:9464"), server.closed, or a method. */
/* What s_index answers besides the methods (lbh_class_fields). */
static const char *const server_fields[] = {"address", "closed", NULL};

static int s_index(lua_State *L) {
  server *s = check_server(L);
  const char *k = lbh_arg_string(L, 2, NULL, NULL);
  if (strcmp(k, "address") == 0) {
    lua_pushstring(L, s->address);
  } else if (strcmp(k, "closed") == 0) {
    lua_pushboolean(L, s->http == NULL);
  } else {
    luaL_getmetafield(L, 1, "__methods");
    lua_getfield(L, -1, k);
  }
  return 1;
}

static int s_tostring(lua_State *L) {
  server *s = check_server(L);
  lua_pushfstring(L, "bh.http_server (%s%s)", s->address,
                  s->http ? "" : ", closed");
  return 1;
}

void lbh_http_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"close", s_close}, {"_reply", s_reply}, {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__index", s_index},
                                  {"__gc", s_close},
                                  {"__close", s_close},
                                  {"__tostring", s_tostring},
                                  {NULL, NULL}};
  lbh_class(L, SERVER_MT, meta, methods, "__methods");
  lbh_class_fields(L, SERVER_MT, server_fields);
  lua_pushcfunction(L, l_serve);
  lua_setfield(L, -2, "_http_serve"); /* bh.metrics.serve takes it */
}
