/* Arguments and option tables of the bh functions (see lbh_args.h). */
#include "lbh_args.h"

#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Chunks of the embedded helpers are named "=bh.<name>" (lbh_module.c). */
static bool is_helper(const lua_Debug *ar) {
  return strncmp(ar->source, "=bh.", 4) == 0;
}

void lbh_where(lua_State *L) {
  lua_Debug ar;
  for (int level = 1; lua_getstack(L, level, &ar); level++) {
    if (lua_getinfo(L, "Sl", &ar) == 0 || ar.currentline <= 0) continue;
    if (is_helper(&ar)) continue;
    lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
    return;
  }
  lua_pushliteral(L, "");
}

int lbh_arg_error(lua_State *L, const char *fn, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lbh_where(L);
  lua_pushfstring(L, "%s: ", fn);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 3);
  return lua_error(L);
}

static const char names_key = 'n'; /* registry: C function -> full name */

static void names_table(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &names_key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &names_key);
}

void lbh_args_name(lua_State *L, lua_CFunction fn, const char *name) {
  names_table(L);
  lua_pushcfunction(L, fn);
  lua_pushstring(L, name);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

/* Name the C functions of the table at t as prefix.key (depth levels). */
static void name_fields(lua_State *L, int names, int t, const char *prefix,
                        int depth) {
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *full =
          lua_pushfstring(L, "%s.%s", prefix, lua_tostring(L, -2));
      if (lua_iscfunction(L, -2)) {
        lua_pushvalue(L, -2);
        lua_pushvalue(L, -2);
        lua_rawset(L, names);
      } else if (lua_istable(L, -2) && depth > 1) {
        name_fields(L, names, lua_absindex(L, -2), full, depth - 1);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
}

void lbh_args_name_functions(lua_State *L, int mod) {
  mod = lua_absindex(L, mod);
  names_table(L);
  name_fields(L, lua_gettop(L), mod, "bh", 2);
  lua_pop(L, 1);
}

/* The name of the running C function (see lbh_arg_fail). */
static const char *running_name(lua_State *L) {
  lua_Debug ar;
  if (!lua_getstack(L, 0, &ar)) return "?";
  lua_getinfo(L, "nf", &ar);
  names_table(L);
  lua_rotate(L, -2, 1);
  lua_rawget(L, -2);
  const char *name = lua_tostring(L, -1);
  if (name == NULL) name = ar.name ? ar.name : "?";
  lua_pushstring(L, name);
  lua_replace(L, -3);
  lua_pop(L, 1);
  return lua_tostring(L, -1); /* kept on the stack until the error */
}

int lbh_arg_fail(lua_State *L, int arg, const char *fn, const char *fmt, ...) {
  va_list ap;
  if (fn == NULL) fn = running_name(L);
  va_start(ap, fmt);
  lbh_where(L);
  if (strchr(fn, ':') != NULL) arg--;
  if (arg == 0)
    lua_pushfstring(L, "calling '%s' on bad self (", fn);
  else
    lua_pushfstring(L, "bad argument #%d to '%s' (", arg, fn);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushliteral(L, ")");
  lua_concat(L, 4);
  return lua_error(L);
}

int lbh_arg_type_error(lua_State *L, int arg, const char *fn,
                       const char *expected) {
  return lbh_arg_fail(L, arg, fn, "%s expected, got %s", expected,
                      luaL_typename(L, arg));
}

void lbh_arg_checktype(lua_State *L, int arg, const char *fn, int type) {
  if (lua_type(L, arg) != type)
    lbh_arg_type_error(L, arg, fn, lua_typename(L, type));
}

/* True when v (a number, not NaN) is in the range. */
static bool in_range(double v, double lo, bool lo_open, double hi) {
  return !isnan(v) && (lo_open ? v > lo : v >= lo) && v <= hi;
}

/* "[lo, hi]" or "(lo, hi]" into buf; then what the value at idx is. */
static void describe(lua_State *L, int idx, double lo, bool lo_open, double hi,
                     char range[80], char got[40]) {
  (void)snprintf(range, 80, "%c%.14g, %.14g]", lo_open ? '(' : '[', lo, hi);
  if (lua_type(L, idx) == LUA_TNUMBER && isnan(lua_tonumber(L, idx)))
    (void)snprintf(got, 40, "nan");
  else if (lua_type(L, idx) == LUA_TNUMBER)
    (void)snprintf(got, 40, "%.14g", lua_tonumber(L, idx));
  else
    (void)snprintf(got, 40, "%s", luaL_typename(L, idx));
}

double lbh_arg_number(lua_State *L, int arg, const char *fn, const char *name,
                      double lo, bool lo_open, double hi) {
  if (lua_type(L, arg) != LUA_TNUMBER ||
      !in_range(lua_tonumber(L, arg), lo, lo_open, hi)) {
    char range[80], got[40];
    describe(L, arg, lo, lo_open, hi, range, got);
    lbh_arg_fail(L, arg, fn, "%s must be a number in %s, got %s", name, range,
                 got);
  }
  return lua_tonumber(L, arg);
}

double lbh_arg_optnumber(lua_State *L, int arg, const char *fn,
                         const char *name, double def, double lo, bool lo_open,
                         double hi) {
  if (lua_isnoneornil(L, arg)) return def;
  return lbh_arg_number(L, arg, fn, name, lo, lo_open, hi);
}

lua_Integer lbh_arg_integer(lua_State *L, int arg, const char *fn,
                            const char *name, lua_Integer lo, lua_Integer hi) {
  int isint = 0;
  lua_Integer v = lua_tointegerx(L, arg, &isint);
  if (!isint || lua_type(L, arg) != LUA_TNUMBER || v < lo || v > hi) {
    const char *got = lua_type(L, arg) == LUA_TNUMBER ? lua_tostring(L, arg)
                                                      : luaL_typename(L, arg);
    lbh_arg_fail(L, arg, fn, "%s must be an integer in [%I, %I], got %s", name,
                 lo, hi, got);
  }
  return v;
}

static bool is_key(const char *k, const char *const keys[]) {
  for (size_t i = 0; keys[i] != NULL; i++)
    if (strcmp(keys[i], k) == 0) return true;
  return false;
}

/* Is the string key on top a key of the table at spec (absolute)? */
static bool is_spec_key(lua_State *L, int spec) {
  lua_pushvalue(L, -1);
  bool known = lua_rawget(L, spec) != LUA_TNIL;
  lua_pop(L, 1);
  return known;
}

/* Every key of the table at idx must be a string of keys (spec 0) or a
 * key of the table at spec, or (list) an integer in 1..#t. */
static void check_keys(lua_State *L, int idx, const char *fn,
                       const char *const keys[], int spec, bool list) {
  idx = lua_absindex(L, idx);
  if (spec != 0) spec = lua_absindex(L, spec);
  if (lua_isnoneornil(L, idx)) return;
  if (!lua_istable(L, idx))
    lbh_arg_error(L, fn, "options must be a table, got %s",
                  luaL_typename(L, idx));
  lua_Integer n = list ? (lua_Integer)lua_rawlen(L, idx) : 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (list && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 &&
        lua_tointeger(L, -1) <= n)
      continue;
    if (lua_type(L, -1) != LUA_TSTRING)
      lbh_arg_error(L, fn, "options must have string keys, got a %s key",
                    luaL_typename(L, -1));
    if (spec != 0 ? !is_spec_key(L, spec) : !is_key(lua_tostring(L, -1), keys))
      lbh_arg_error(L, fn, "unknown option '%s'", lua_tostring(L, -1));
  }
}

void lbh_opts_check(lua_State *L, int idx, const char *fn,
                    const char *const keys[]) {
  check_keys(L, idx, fn, keys, 0, false);
}

void lbh_opts_check_spec(lua_State *L, int idx, const char *fn, int spec) {
  check_keys(L, idx, fn, NULL, spec, false);
}

void lbh_opts_check_with_list(lua_State *L, int idx, const char *fn,
                              const char *const keys[]) {
  check_keys(L, idx, fn, keys, 0, true);
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
  double v = lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || !in_range(v, lo, lo_open, hi)) {
    char range[80], got[40];
    describe(L, -1, lo, lo_open, hi, range, got);
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

/* ---- more positional arguments -------------------------------------------
 */

lua_Integer lbh_arg_optinteger(lua_State *L, int arg, const char *fn,
                               const char *name, lua_Integer def,
                               lua_Integer lo, lua_Integer hi) {
  if (lua_isnoneornil(L, arg)) return def;
  return lbh_arg_integer(L, arg, fn, name, lo, hi);
}

const char *lbh_arg_string(lua_State *L, int arg, const char *fn, size_t *len) {
  const char *s = lua_tolstring(L, arg, len);
  if (s == NULL) lbh_arg_type_error(L, arg, fn, "string");
  return s;
}

const char *lbh_arg_optstring(lua_State *L, int arg, const char *fn,
                              const char *def, size_t *len) {
  if (lua_isnoneornil(L, arg)) {
    if (len != NULL) *len = def != NULL ? strlen(def) : 0;
    return def;
  }
  return lbh_arg_string(L, arg, fn, len);
}

void lbh_arg_table(lua_State *L, int arg, const char *fn) {
  lbh_arg_checktype(L, arg, fn, LUA_TTABLE);
}

void lbh_arg_any(lua_State *L, int arg, const char *fn) {
  if (lua_type(L, arg) == LUA_TNONE) lbh_arg_fail(L, arg, fn, "value expected");
}

const char *lbh_push_values_text(lua_State *L, const char *const values[],
                                 size_t n) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    if (i > 0) luaL_addstring(&b, i + 1 < n ? ", " : " or ");
    luaL_addchar(&b, '"');
    luaL_addstring(&b, values[i]);
    luaL_addchar(&b, '"');
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

const char *lbh_push_quoted(lua_State *L, int idx) {
  enum { SHOWN = 80 };
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (s == NULL) return lua_pushfstring(L, "%s", luaL_typename(L, idx));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '"');
  luaL_addlstring(&b, s, len > SHOWN ? SHOWN : len);
  luaL_addstring(&b, len > SHOWN ? "...\"" : "\"");
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

int lbh_arg_option(lua_State *L, int arg, const char *fn, const char *def,
                   const char *const values[]) {
  const char *s = def;
  if (!lua_isnoneornil(L, arg) || def == NULL)
    s = lbh_arg_string(L, arg, fn, NULL);
  size_t n = 0;
  for (; values[n] != NULL; n++)
    if (strcmp(values[n], s) == 0) return (int)n;
  const char *text = lbh_push_values_text(L, values, n);
  return lbh_arg_fail(L, arg, fn, "%s expected, got %s", text,
                      lua_isnoneornil(L, arg) ? lua_pushfstring(L, "\"%s\"", s)
                                              : lbh_push_quoted(L, arg));
}

void *lbh_arg_udata(lua_State *L, int arg, const char *fn, const char *tname) {
  void *p = luaL_testudata(L, arg, tname);
  if (p == NULL) lbh_arg_type_error(L, arg, fn, tname);
  return p;
}
