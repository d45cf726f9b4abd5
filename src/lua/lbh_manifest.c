/* bh.manifest: read, write, find, clear_daemon (issue 6) over the C core
 * in manifest.h. A manifest is a plain table; the fields this product does
 * not know travel in `unknown_fields` / `current_daemon_unknown_fields`
 * (raw protobuf bytes, present only when non-empty) so that writing back a
 * table that was read keeps them. Errors reading a record carry stage
 * "manifest" whatever the code (missing_endpoint in a manifest is a bad
 * record, not a bad probe response). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "lbh_err.h"
#include "lbh_identity.h"
#include "lbh_open.h"
#include "lbh_ops.h"
#include "manifest.h"

/* nil, err with stage "manifest". */
static int fail_manifest(lua_State *L, const bh_err *err) {
  lbh_fail(L, err);
  lua_pushliteral(L, "manifest");
  lua_setfield(L, -2, "stage");
  return 2;
}

static void set_blob(lua_State *L, const char *name, const uint8_t *b,
                     size_t n) {
  if (n == 0) return;
  lua_pushlstring(L, (const char *)b, n);
  lua_setfield(L, -2, name);
}

/* Push the table form of m. */
static void push_manifest(lua_State *L, const bh_manifest *m) {
  lua_createtable(L, 0, 9);
  lua_pushstring(L, m->service_name);
  lua_setfield(L, -2, "service_name");
  lua_pushstring(L, m->service_version);
  lua_setfield(L, -2, "service_version");
  lua_pushstring(L, m->broker_envelope_version);
  lua_setfield(L, -2, "broker_envelope_version");
  lua_pushinteger(L, (lua_Integer)m->created_at_unix_ms);
  lua_setfield(L, -2, "created_at_unix_ms");
  lua_pushinteger(L, (lua_Integer)m->last_active_unix_ms);
  lua_setfield(L, -2, "last_active_unix_ms");
  lua_pushstring(L, m->broker_instance);
  lua_setfield(L, -2, "broker_instance");
  if (m->has_daemon) {
    lbh_push_identity(L, &m->daemon);
    lua_setfield(L, -2, "current_daemon");
  }
  set_blob(L, "unknown_fields", m->unknown, m->unknown_len);
  set_blob(L, "current_daemon_unknown_fields", m->daemon_unknown,
           m->daemon_unknown_len);
}

/* bh.manifest.read(path) -> table | nil, err */
static int l_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  bh_manifest m;
  bh_err err;
  if (bh_manifest_read(path, &m, &err) != BH_OK) return fail_manifest(L, &err);
  push_manifest(L, &m); /* may raise (memory): then m leaks, once */
  bh_manifest_clear(&m);
  return 1;
}

/* t[name] as a string field (absent = ""); wrong types raise. */
static bh_status get_string(lua_State *L, int t, const char *name, char **field,
                            bh_err *err) {
  const char *s = "";
  if (lua_getfield(L, t, name) != LUA_TNIL) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      return bh_err_set(err, BH_INVALID_IDENTITY, name,
                        "manifest field %s: expected a string", name);
    }
    s = lua_tostring(L, -1);
  }
  bh_status st = bh_manifest_set_string(field, s, err);
  lua_pop(L, 1);
  return st;
}

static bh_status get_u64(lua_State *L, int t, const char *name, uint64_t *out,
                         bh_err *err) {
  int isnum = 1;
  lua_Integer v = 0;
  if (lua_getfield(L, t, name) != LUA_TNIL) v = lua_tointegerx(L, -1, &isnum);
  lua_pop(L, 1);
  if (!isnum || v < 0)
    return bh_err_set(err, BH_INVALID_IDENTITY, name,
                      "manifest field %s: expected a non-negative integer",
                      name);
  *out = (uint64_t)v;
  return BH_OK;
}

static bh_status get_blob(lua_State *L, int t, const char *name,
                          uint8_t **field, size_t *len, bh_err *err) {
  size_t n = 0;
  const char *s = NULL;
  if (lua_getfield(L, t, name) == LUA_TSTRING) s = lua_tolstring(L, -1, &n);
  bh_status st = bh_manifest_set_blob(field, len, (const uint8_t *)s, n, err);
  lua_pop(L, 1);
  return st;
}

/* Table at t -> *m (initialised here), all but current_daemon. A field of
 * the wrong type gives BH_INVALID_IDENTITY naming it (the caller raises). */
static bh_status manifest_from_table(lua_State *L, int t, bh_manifest *m,
                                     bh_err *err) {
  if (bh_manifest_init(m, err) != BH_OK) return BH_SYSTEM;
  bh_status st = BH_OK;
  if ((st = get_string(L, t, "service_name", &m->service_name, err)) ||
      (st = get_string(L, t, "service_version", &m->service_version, err)) ||
      (st = get_string(L, t, "broker_envelope_version",
                       &m->broker_envelope_version, err)) ||
      (st = get_string(L, t, "broker_instance", &m->broker_instance, err)) ||
      (st = get_u64(L, t, "created_at_unix_ms", &m->created_at_unix_ms, err)) ||
      (st = get_u64(L, t, "last_active_unix_ms", &m->last_active_unix_ms,
                    err)) ||
      (st = get_blob(L, t, "unknown_fields", &m->unknown, &m->unknown_len,
                     err)) ||
      (st = get_blob(L, t, "current_daemon_unknown_fields", &m->daemon_unknown,
                     &m->daemon_unknown_len, err)))
    return st;
  return BH_OK;
}

/* bh.manifest.write(path, t) -> true | nil, err (atomic; see manifest.h).
 * A malformed t (wrong field types, a bad current_daemon) is misuse and
 * raises naming the field; I/O failures return nil, err. */
static int l_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  const bh_identity *daemon = NULL;
  if (lua_getfield(L, 2, "current_daemon") != LUA_TNIL)
    daemon = lbh_check_identity(L, -1, 2, "current_daemon"); /* box on top */
  bh_manifest m;
  bh_err err;
  bh_status st = manifest_from_table(L, 2, &m, &err);
  if (st == BH_OK && daemon != NULL) {
    st = bh_identity_copy(&m.daemon, daemon, &err);
    m.has_daemon = st == BH_OK;
  }
  if (st == BH_INVALID_IDENTITY) {
    bh_manifest_clear(&m);
    return luaL_argerror(L, 2, err.message);
  }
  if (st == BH_OK) st = bh_manifest_write(path, &m, &err);
  bh_manifest_clear(&m);
  if (st != BH_OK) return lbh_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* bh.manifest.find(root, {max_depth = N}) -> {path, ...} | nil, err */
static int l_find(lua_State *L) {
  const char *root = luaL_checkstring(L, 1);
  int depth = -1;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "max_depth") != LUA_TNIL) {
      lua_Integer d = luaL_checkinteger(L, -1);
      luaL_argcheck(L, d >= 0, 2, "max_depth must be >= 0");
      depth = d > 64 ? 64 : (int)d;
    }
    lua_pop(L, 1);
  }
  bh_manifest_list list;
  bh_err err;
  if (bh_manifest_find(root, depth, &list, &err) != BH_OK)
    return fail_manifest(L, &err);
  lua_createtable(L, (int)list.count, 0);
  for (size_t i = 0; i < list.count; i++) {
    lua_pushstring(L, list.paths[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  bh_manifest_list_free(&list);
  return 1;
}

/* bh.manifest.clear_daemon(path [, {only_if = identity}]) -> cleared |
 * nil, err. cleared is false when there was no daemon, or (only_if) the
 * manifest now names another one. */
static int l_clear_daemon(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const bh_identity *want = NULL; /* boxed on the stack while we run */
  bool cleared = false;
  bh_err err;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "only_if") != LUA_TNIL)
      want = lbh_check_identity(L, -1, 2, "only_if");
  }
  if (bh_manifest_clear_daemon(path, want, &cleared, &err) != BH_OK)
    return fail_manifest(L, &err);
  lua_pushboolean(L, cleared);
  return 1;
}

void lbh_manifest_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"read", l_read},
                                 {"write", l_write},
                                 {"find", l_find},
                                 {"clear_daemon", l_clear_daemon},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_pushliteral(L, BH_MANIFEST_NAME);
  lua_setfield(L, -2, "NAME");
  lua_setfield(L, -2, "manifest");
}
