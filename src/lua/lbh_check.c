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
 *   bh._check_arg("bh.metrics.reaction", 1, action,
 *                 { "string", one_of = { "clear_record", "remove_socket" } })
 *
 * A descriptor is a type name ("number", "integer", "boolean", "string",
 * "function", "table", "any", a userdata class such as "bh.identity" (a
 * prepared identity), or alternatives "table|function") or a
 * table {type, lo, hi, open = lower bound exclusive, default = value,
 * name = what to call it in positional messages, required = true (an
 * option that must be given), and for strings one_of = the list of the
 * strings allowed, or pattern = a Lua pattern the string must match with
 * max_len = its most bytes}. A helper never builds an argument message of
 * its own: these are the checker's words, as for the C functions. */
#include <lauxlib.h>
#include <stdbool.h>
#include <string.h>

#include "lbh_args.h"
#include "lbh_open.h"

/* Most values a one_of list may hold. */
enum { ONE_OF_MAX = 32 };

/* The descriptor at d as its type name (pushes nothing). */
static const char *desc_type(lua_State *L, int d) {
  if (lua_type(L, d) == LUA_TSTRING) return lua_tostring(L, d);
  if (lua_type(L, d) != LUA_TTABLE)
    luaL_error(L, "bad checker descriptor (a %s)", luaL_typename(L, d));
  lua_rawgeti(L, d, 1);
  const char *t = lua_tostring(L, -1);
  lua_pop(L, 1); /* the string stays in the descriptor table */
  if (t == NULL) luaL_error(L, "bad checker descriptor (no type)");
  return t;
}

static double desc_number(lua_State *L, int d, int i, double def) {
  if (lua_type(L, d) != LUA_TTABLE) return def;
  int type = lua_rawgeti(L, d, i);
  double v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (type == LUA_TNIL) return def;
  if (type != LUA_TNUMBER) luaL_error(L, "bad checker descriptor (bounds)");
  return v;
}

/* The strings of the descriptor's one_of list into values (NULL after
 * the last; they stay alive in the descriptor); false when it has none. */
static bool desc_one_of(lua_State *L, int d,
                        const char *values[ONE_OF_MAX + 1]) {
  if (lua_type(L, d) != LUA_TTABLE) return false;
  if (lua_getfield(L, d, "one_of") != LUA_TTABLE) {
    lua_pop(L, 1);
    return false;
  }
  size_t n = lua_rawlen(L, -1);
  if (n == 0 || n > ONE_OF_MAX)
    luaL_error(L, "bad checker descriptor (one_of: 1 to %d strings)",
               ONE_OF_MAX);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    values[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (values[i] == NULL)
      luaL_error(L, "bad checker descriptor (one_of: strings only)");
  }
  values[n] = NULL;
  lua_pop(L, 1);
  return true;
}

/* Does the string at idx have the shape the descriptor at d asks for
 * (pattern, max_len)? When not, pushes what it must be ("must match
 * \"^[a-z]+$\" in at most 64 bytes") and returns false. */
static bool string_shaped(lua_State *L, int idx, int d) {
  if (lua_type(L, d) != LUA_TTABLE) return true;
  idx = lua_absindex(L, idx);
  lua_Integer max = -1;
  if (lua_getfield(L, d, "max_len") == LUA_TNUMBER) max = lua_tointeger(L, -1);
  lua_pop(L, 1);
  bool ok = max < 0 || lua_rawlen(L, idx) <= (size_t)max;
  if (lua_getfield(L, d, "pattern") == LUA_TSTRING && ok) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "string");
    lua_getfield(L, -1, "match");
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -5); /* the pattern */
    lua_call(L, 2, 1);
    ok = !lua_isnil(L, -1);
    lua_pop(L, 3);
  }
  if (ok) {
    lua_pop(L, 1);
    return true;
  }
  const char *pattern = lua_tostring(L, -1);
  if (pattern != NULL && max >= 0)
    lua_pushfstring(L, "must match \"%s\" in at most %I bytes", pattern, max);
  else if (pattern != NULL)
    lua_pushfstring(L, "must match \"%s\"", pattern);
  else
    lua_pushfstring(L, "must be at most %I bytes", max);
  lua_remove(L, -2);
  return false;
}

/* The index of s in values, or -1; n gets their count. */
static int find_value(const char *s, const char *const values[], size_t *n) {
  int found = -1;
  for (*n = 0; values[*n] != NULL; (*n)++)
    if (found < 0 && strcmp(values[*n], s) == 0) found = (int)*n;
  return found;
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
    if (desc_flag(L, d, "required"))
      lbh_arg_error(L, fn, "option '%s' is required", key);
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
    const char *values[ONE_OF_MAX + 1];
    size_t n;
    int v = lua_gettop(L);
    if (lua_type(L, v) != LUA_TSTRING) return;
    if (desc_one_of(L, d, values) &&
        find_value(lua_tostring(L, v), values, &n) < 0) {
      const char *text = lbh_push_values_text(L, values, n);
      lbh_arg_error(L, fn, "option '%s' must be %s, got %s", key, text,
                    lbh_push_quoted(L, v));
    }
    if (!string_shaped(L, v, d)) {
      const char *shape = lua_tostring(L, -1);
      lbh_arg_error(L, fn, "option '%s' %s, got %s", key, shape,
                    lbh_push_quoted(L, v));
    }
  }
}

/* bh._check_opts(fn, opts, spec) → a new table holding each option of
 * spec checked (or its default). opts may be nil. Raises "fn: unknown
 * option 'x'" and the range errors of lbh_args, at the caller's line. */
static int l_check_opts(lua_State *L) {
  const char *fn = lbh_arg_string(L, 1, "bh._check_opts", NULL);
  lbh_arg_table(L, 3, "bh._check_opts");
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
  const char *fn = lbh_arg_string(L, 1, "bh._check_arg", NULL);
  int n = (int)lbh_arg_integer(L, 2, "bh._check_arg", "n", 1, 32);
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
  const char *values[ONE_OF_MAX + 1];
  size_t nv;
  if (lua_type(L, v) == LUA_TSTRING && desc_one_of(L, dd, values) &&
      find_value(lua_tostring(L, v), values, &nv) < 0) {
    const char *text = lbh_push_values_text(L, values, nv);
    lbh_arg_fail(L, v, fn, "%s expected, got %s", text, lbh_push_quoted(L, v));
  }
  if (lua_type(L, v) == LUA_TSTRING && !string_shaped(L, v, dd)) {
    const char *shape = lua_tostring(L, -1);
    lbh_arg_fail(L, v, fn, "%s %s, got %s", name, shape, lbh_push_quoted(L, v));
  }
  lua_pushvalue(L, v);
  return 1;
}

void lbh_check_open(lua_State *L) {
  lua_pushcfunction(L, l_check_opts);
  lua_setfield(L, -2, "_check_opts");
  lua_pushcfunction(L, l_check_arg);
  lua_setfield(L, -2, "_check_arg");
}
