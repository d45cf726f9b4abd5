/* The module table, bh.options and the functions the Lua helpers hand
 * over to C (lbh_options.h), each kept in the registry under a key of
 * its own. */
#include "lbh_options.h"

#include <lauxlib.h>

#include "lbh.h"
#include "lbh_args.h"
#include "lbh_open.h"

static const char module_key = 'm'; /* registry[&module_key] = bh */
static const char bound_key = 'b';  /* registry[&bound_key][which + 1] */

/* The keys of bh._bind_metrics's table, in lbh_bound's order. */
static const char *const metrics_keys[] = {
    "render", "render_sd", "render_index", "probe_runner", "flush", NULL};
_Static_assert(sizeof metrics_keys / sizeof metrics_keys[0] ==
                   LBH_BOUND_COUNT + 1,
               "one key per lbh_bound");

void lbh_set_module(lua_State *L, int idx) {
  lua_pushvalue(L, idx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &module_key);
}

void lbh_push_module(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &module_key);
}

/* Push bh.options; false (nothing pushed) when there is none. */
static bool push_options(lua_State *L) {
  lbh_push_module(L);
  if (!lua_istable(L, -1) || lua_getfield(L, -1, "options") != LUA_TTABLE) {
    lua_pop(L, lua_istable(L, -1) ? 2 : 1);
    return false;
  }
  lua_remove(L, -2);
  return true;
}

const char *lbh_option_string(lua_State *L, const char *name) {
  const char *s = NULL;
  int top = lua_gettop(L);
  if (push_options(L) && lua_getfield(L, -1, name) == LUA_TSTRING)
    s = lua_tostring(L, -1); /* kept alive by bh.options */
  lua_settop(L, top);
  return s;
}

void lbh_option_set(lua_State *L, const char *name, const char *value) {
  if (value == NULL || !push_options(L)) return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

bool lbh_push_bound(lua_State *L, lbh_bound which) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &bound_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return false;
  }
  bool found = lua_rawgeti(L, -1, (lua_Integer)which + 1) == LUA_TFUNCTION;
  lua_remove(L, -2);
  if (!found) lua_pop(L, 1);
  return found;
}

/* bh._bind_metrics{render = fn, render_sd = fn, render_index = fn,
 * probe_runner = fn, flush = fn}: bh.metrics hands over the functions C
 * calls (lbh_bound), once, when it loads. Each must be a function. */
static int l_bind_metrics(lua_State *L) {
  static const char *const fn = "bh._bind_metrics";
  lbh_arg_checktype(L, 1, fn, LUA_TTABLE);
  lbh_opts_check(L, 1, fn, metrics_keys);
  lua_createtable(L, LBH_BOUND_COUNT, 0);
  for (int i = 0; metrics_keys[i] != NULL; i++) {
    if (lua_getfield(L, 1, metrics_keys[i]) != LUA_TFUNCTION)
      lbh_arg_error(L, fn, "option '%s' must be a function, got %s",
                    metrics_keys[i], luaL_typename(L, -1));
    lua_rawseti(L, -2, i + 1);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &bound_key);
  return 0;
}

void lbh_options_open(lua_State *L) {
  lua_newtable(L); /* bh.options: what the host's command line set */
  lua_setfield(L, -2, "options");
  lua_pushcfunction(L, l_bind_metrics);
  lua_setfield(L, -2, "_bind_metrics");
}
