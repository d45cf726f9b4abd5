/* Option tables of the C-written bh functions (see lbh_args.h). */
#include "lbh_args.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int lbh_arg_error(lua_State *L, const char *fn, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  luaL_where(L, 1);
  lua_pushfstring(L, "%s: ", fn);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 3);
  return lua_error(L);
}

static bool is_key(const char *k, const char *const keys[]) {
  for (size_t i = 0; keys[i] != NULL; i++)
    if (strcmp(keys[i], k) == 0) return true;
  return false;
}

void lbh_opts_check(lua_State *L, int idx, const char *fn,
                    const char *const keys[]) {
  idx = lua_absindex(L, idx);
  if (lua_isnoneornil(L, idx)) return;
  if (!lua_istable(L, idx))
    lbh_arg_error(L, fn, "options must be a table, got %s",
                  luaL_typename(L, idx));
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      lbh_arg_error(L, fn, "options must have string keys, got a %s key",
                    luaL_typename(L, -1));
    if (!is_key(lua_tostring(L, -1), keys))
      lbh_arg_error(L, fn, "unknown option '%s'", lua_tostring(L, -1));
  }
}

bool lbh_opt_push(lua_State *L, int idx, const char *key) {
  if (!lua_istable(L, idx)) return false;
  if (lua_getfield(L, idx, key) != LUA_TNIL) return true;
  lua_pop(L, 1);
  return false;
}

double lbh_opt_number(lua_State *L, int idx, const char *fn, const char *key,
                      double def, double lo, bool lo_open, double hi) {
  idx = lua_absindex(L, idx);
  if (!lbh_opt_push(L, idx, key)) return def;
  int isnum = 0;
  double v = lua_tonumberx(L, -1, &isnum);
  bool ok = isnum && lua_type(L, -1) == LUA_TNUMBER && !isnan(v) &&
            (lo_open ? v > lo : v >= lo) && v <= hi;
  if (!ok) {
    char range[80], got[40];
    (void)snprintf(range, sizeof range, "%c%.14g, %.14g]", lo_open ? '(' : '[',
                   lo, hi);
    if (lua_type(L, -1) == LUA_TNUMBER)
      (void)snprintf(got, sizeof got, "%.14g", v);
    else
      (void)snprintf(got, sizeof got, "%s", luaL_typename(L, -1));
    lbh_arg_error(L, fn, "option '%s' must be a number in %s, got %s", key,
                  range, got);
  }
  lua_pop(L, 1);
  return v;
}

lua_Integer lbh_opt_integer(lua_State *L, int idx, const char *fn,
                            const char *key, lua_Integer def, lua_Integer lo,
                            lua_Integer hi) {
  idx = lua_absindex(L, idx);
  if (!lbh_opt_push(L, idx, key)) return def;
  int isint = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isint);
  if (!isint || lua_type(L, -1) != LUA_TNUMBER || v < lo || v > hi) {
    const char *got = lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1)
                                                     : luaL_typename(L, -1);
    lbh_arg_error(L, fn, "option '%s' must be an integer in [%I, %I], got %s",
                  key, lo, hi, got);
  }
  lua_pop(L, 1);
  return v;
}

bool lbh_opt_boolean(lua_State *L, int idx, const char *fn, const char *key,
                     bool def) {
  idx = lua_absindex(L, idx);
  if (!lbh_opt_push(L, idx, key)) return def;
  if (!lua_isboolean(L, -1))
    lbh_arg_error(L, fn, "option '%s' must be a boolean, got %s", key,
                  luaL_typename(L, -1));
  bool v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

const char *lbh_opt_string(lua_State *L, int idx, const char *fn,
                           const char *key, const char *def) {
  idx = lua_absindex(L, idx);
  if (!lbh_opt_push(L, idx, key)) return def;
  if (lua_type(L, -1) != LUA_TSTRING)
    lbh_arg_error(L, fn, "option '%s' must be a string, got %s", key,
                  luaL_typename(L, -1));
  const char *s = lua_tostring(L, -1);
  lua_pop(L, 1); /* still referenced by the options table */
  return s;
}
