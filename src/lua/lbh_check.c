/* The argument checker of lbh_args.h for the Lua helpers (lua/bh/),
 * so that bh.retry, bh.map, bh.every and bh.threshold check their
 * options with the same code and the same messages as the C functions,
 * located at their caller's line:
 *
 *   local o = bh._check_opts("bh.retry", opts, {
 *     attempts = { "integer", 1, 1000000, default = 3 },
 *     backoff = { "number", 0, 3600, default = 0.1 },
 *     timeout = { "number", 0, 86400, open = true },   -- (0, 86400]
 *     retry_on = { "table|function" },
 *   })                                 -- a new table of checked values
 *   bh._check_arg("bh.retry", 1, fn, "function")
 *   bh._check_arg("bh.every", 1, period, { "number", 0, 1e9, open = true,
 *                 name = "period" })   -- returns the value
 *
 * A descriptor is a type name ("number", "integer", "boolean", "string",
 * "function", "table", "any", a userdata class such as "bh.identity" (a
 * prepared identity), or alternatives "table|function") or a
 * table {type, lo, hi, open = lower bound exclusive, default = value,
 * name = what to call it in positional messages}. */
#include <lauxlib.h>
#include <string.h>

#include "lbh_args.h"
#include "lbh_open.h"

/* The descriptor at d as its type name (pushes nothing). */
static const char *desc_type(lua_State *L, int d) {
  if (lua_type(L, d) == LUA_TSTRING) return lua_tostring(L, d);
  luaL_checktype(L, d, LUA_TTABLE);
  lua_rawgeti(L, d, 1);
  const char *t = lua_tostring(L, -1);
  lua_pop(L, 1); /* the string stays in the descriptor table */
  if (t == NULL) luaL_error(L, "bad checker descriptor (no type)");
  return t;
}

static double desc_number(lua_State *L, int d, int i, double def) {
  if (lua_type(L, d) != LUA_TTABLE) return def;
  lua_rawgeti(L, d, i);
  double v = luaL_optnumber(L, -1, def);
  lua_pop(L, 1);
  return v;
}

static bool desc_flag(lua_State *L, int d, const char *key) {
  if (lua_type(L, d) != LUA_TTABLE) return false;
  lua_getfield(L, d, key);
  bool v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Is name one of the '|'-separated types? */
static bool type_listed(const char *types, const char *name) {
  size_t n = strlen(name);
  for (const char *p = types; *p != '\0';) {
    size_t len = strcspn(p, "|");
    if (len == n && strncmp(p, name, n) == 0) return true;
    p += len + (p[len] == '|');
  }
  return false;
}

/* Does the value at idx have one of the '|'-separated types? A userdata
 * also has its class name (the metatable's __name: "bh.identity"). */
static bool has_type(lua_State *L, int idx, const char *types) {
  if (strcmp(types, "any") == 0) return true;
  if (type_listed(types, luaL_typename(L, idx))) return true;
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
    return false;
  bool listed = lua_getfield(L, -1, "__name") == LUA_TSTRING &&
                type_listed(types, lua_tostring(L, -1));
  lua_pop(L, 2);
  return listed;
}

/* "table or function" for "table|function" (pushed). */
static const char *types_text(lua_State *L, const char *types) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char *p = types; *p != '\0'; p++) {
    if (*p == '|')
      luaL_addstring(&b, " or ");
    else
      luaL_addchar(&b, *p);
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* ---- options --------------------------------------------------------------
 */

/* Check opts[key] (opts at 2) against the descriptor at d; push the value
 * to keep (the default when absent; nil: leave the key out). */
static void check_option(lua_State *L, const char *fn, const char *key, int d) {
  const char *t = desc_type(L, d);
  double lo = desc_number(L, d, 2, 0), hi = desc_number(L, d, 3, 0);
  if (!lbh_opt_push(L, 2, key)) {
    if (lua_type(L, d) == LUA_TTABLE)
      lua_getfield(L, d, "default");
    else
      lua_pushnil(L);
    return;
  }
  lua_pop(L, 1);
  if (strcmp(t, "number") == 0) {
    lua_pushnumber(
        L, lbh_opt_number(L, 2, fn, key, 0, lo, desc_flag(L, d, "open"), hi));
  } else if (strcmp(t, "integer") == 0) {
    lua_pushinteger(
        L, lbh_opt_integer(L, 2, fn, key, 0, (lua_Integer)lo, (lua_Integer)hi));
  } else if (strcmp(t, "boolean") == 0) {
    lua_pushboolean(L, lbh_opt_boolean(L, 2, fn, key, false));
  } else {
    lbh_opt_push(L, 2, key);
    if (!has_type(L, -1, t))
      lbh_arg_error(L, fn, "option '%s' must be a %s, got %s", key,
                    types_text(L, t), luaL_typename(L, -1));
  }
}

/* bh._check_opts(fn, opts, spec) → a new table holding each option of
 * spec checked (or its default). opts may be nil. Raises "fn: unknown
 * option 'x'" and the range errors of lbh_args, at the caller's line. */
static int l_check_opts(lua_State *L) {
  const char *fn = luaL_checkstring(L, 1);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lbh_opts_check_spec(L, 2, fn, 3);
  lua_newtable(L); /* 4: the result */
  lua_pushnil(L);
  while (lua_next(L, 3) != 0) {
    const char *key = lua_tostring(L, -2);
    check_option(L, fn, key, lua_gettop(L));
    lua_setfield(L, 4, key);
    lua_pop(L, 1);
  }
  return 1;
}

/* ---- positional arguments -------------------------------------------------
 */

/* bh._check_arg(fn, n, value, desc) → value (or desc.default when value
 * is nil). Raises "bad argument #n to 'fn' (...)" at the caller's line. */
static int l_check_arg(lua_State *L) {
  const char *fn = luaL_checkstring(L, 1);
  int n = (int)luaL_checkinteger(L, 2);
  luaL_argcheck(L, n >= 1 && n <= 32, 2, "argument number out of range");
  lua_settop(L, 4);
  int d = 4;
  if (lua_isnil(L, 3) && lua_type(L, d) == LUA_TTABLE) {
    lua_getfield(L, d, "default");
    if (!lua_isnil(L, -1)) return 1;
    lua_pop(L, 1);
  }
  /* Lay the value at index n, so that lbh_args reads and names it:
   * [nil x (n-1), value, fn, n, value, desc]. */
  luaL_checkstack(L, n + 2, "too many arguments");
  for (int i = 1; i < n; i++)
    lua_pushnil(L);
  lua_pushvalue(L, 3);
  lua_rotate(L, 1, n);
  int v = n, dd = n + d;
  const char *t = desc_type(L, dd);
  const char *name = "value";
  if (lua_type(L, dd) == LUA_TTABLE &&
      lua_getfield(L, dd, "name") == LUA_TSTRING)
    name = lua_tostring(L, -1); /* left on the stack */
  double lo = desc_number(L, dd, 2, 0), hi = desc_number(L, dd, 3, 0);
  if (strcmp(t, "number") == 0)
    lbh_arg_number(L, v, fn, name, lo, desc_flag(L, dd, "open"), hi);
  else if (strcmp(t, "integer") == 0)
    lbh_arg_integer(L, v, fn, name, (lua_Integer)lo, (lua_Integer)hi);
  else if (!has_type(L, v, t))
    lbh_arg_type_error(L, v, fn, types_text(L, t));
  lua_pushvalue(L, v);
  return 1;
}

void lbh_check_open(lua_State *L) {
  lua_pushcfunction(L, l_check_opts);
  lua_setfield(L, -2, "_check_opts");
  lua_pushcfunction(L, l_check_arg);
  lua_setfield(L, -2, "_check_arg");
}
