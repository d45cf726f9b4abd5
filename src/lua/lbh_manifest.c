/* bh.manifest (design §1.10, §2) over the C core in manifest.h: read,
 * write, find, clear_daemon, the central registry, host checks. A
 * manifest is a plain table holding every field of the CacheManifest
 * schema (lbh_pbtable.h), with current_daemon as an identity table.
 * Errors reading a record carry stage "manifest" whatever the code
 * (missing_endpoint in a manifest is a bad record, not a bad probe
 * response). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_err.h"
#include "lbh_identity.h"
#include "lbh_open.h"
#include "lbh_pbtable.h"
#include "manifest.h"
#include "manifest.pb-c.h"
#include "pbutil.h"

#define MANIFEST_DESC (&running_process__broker__v1__cache_manifest__descriptor)

static const char *const daemon_field[] = {"current_daemon", NULL};
static const lbh_pb_special special = {daemon_field};

/* Push the table form of m. */
static void push_manifest(lua_State *L, const bh_manifest *m) {
  lbh_push_pb(L, &m->pb->base, &special);
  if (bh_manifest_generation(m) != 0) {
    lbh_push_identity(L, &m->daemon);
    lua_setfield(L, -2, "current_daemon");
  }
}

/* A manifest kept in a userdata while Lua code that may raise runs. */
#define MBOX_MT "bh.manifest_box"

static int mbox_gc(lua_State *L) {
  bh_manifest_clear(luaL_checkudata(L, 1, MBOX_MT));
  return 0;
}

static bh_manifest *new_mbox(lua_State *L) {
  bh_manifest *m = lua_newuserdatauv(L, sizeof *m, 0);
  memset(m, 0, sizeof *m);
  luaL_setmetatable(L, MBOX_MT);
  return m;
}

/* bh.manifest.read(path [, {verify = true}]) -> table | nil, err. With
 * verify = false a manifest whose seal or schema version is wrong is read
 * anyway (for investigations). */
static int l_read(lua_State *L) {
  static const char *const keys[] = {"verify", NULL};
  const char *path = luaL_checkstring(L, 1);
  lbh_opts_check(L, 2, "bh.manifest.read", keys);
  bool verify = lbh_opt_boolean(L, 2, "bh.manifest.read", "verify", true);
  bh_manifest *m = new_mbox(L);
  bh_err err;
  if (bh_manifest_read(path, verify, m, &err) != BH_OK)
    return lbh_fail_stage(L, &err, "manifest");
  push_manifest(L, m);
  return 1;
}

/* The directory part of path ("." for a bare name), pushed. */
static const char *push_dir(lua_State *L, const char *path) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) return lua_pushliteral(L, ".");
  if (slash == path) return lua_pushliteral(L, "/");
  return lua_pushlstring(L, path, (size_t)(slash - path));
}

/* m->pb->host = this machine, as running-process's writer records it,
 * for a manifest at path. */
static void set_host(lua_State *L, bh_manifest *m, const char *path) {
  bh_host h;
  bh_host_current(push_dir(L, path), &h);
  lua_pop(L, 1);
  lua_createtable(L, 0, 5);
  lua_pushstring(L, h.hostname);
  lua_setfield(L, -2, "hostname");
  lua_pushstring(L, h.machine_id);
  lua_setfield(L, -2, "machine_id");
  lua_pushstring(L, h.boot_id);
  lua_setfield(L, -2, "boot_id");
  lua_pushinteger(L, (lua_Integer)h.fs_dev_id);
  lua_setfield(L, -2, "fs_dev_id");
  lua_pushstring(L, h.namespace_id);
  lua_setfield(L, -2, "namespace_id");
  (void)lbh_check_pb(L, -1,
                     &running_process__broker__v1__host_identity__descriptor,
                     "bh.manifest.write", "host", NULL);
  m->pb->host = (RunningProcess__Broker__V1__HostIdentity *)lbh_pb_take(L, -1);
  lua_pop(L, 2);
}

/* bh.manifest.write(path, t [, {generation = 1|2}]) -> true | nil, err.
 * Sealed, atomic, through directory descriptors (manifest.h). t holds
 * fields of the CacheManifest schema; an unknown or mistyped field is
 * misuse and raises naming it. current_daemon is an identity, written as
 * generation 2 when it has a BLAKE3 digest (unless generation says 1),
 * else 1. A t without host gets this machine's. */
static int l_write(lua_State *L) {
  static const char *const keys[] = {"generation", NULL};
  const char *path = luaL_checkstring(L, 1);
  lua_settop(L, 3);
  lbh_opts_check(L, 3, "bh.manifest.write", keys);
  int gen =
      (int)lbh_opt_integer(L, 3, "bh.manifest.write", "generation", 0, 1, 2);
  const bh_identity *daemon = NULL;
  (void)lbh_check_pb(L, 2, MANIFEST_DESC, "bh.manifest.write", "manifest",
                     &special); /* its box is at 4 */
  if (lua_getfield(L, 2, "current_daemon") != LUA_TNIL)
    daemon = lbh_check_identity(L, -1, 2, "current_daemon"); /* box on top */
  bh_manifest *m = new_mbox(L); /* zeroed: adopt takes it as it is */
  bh_err err;
  bh_manifest_pb *built = (bh_manifest_pb *)lbh_pb_take(L, 4);
  if (bh_manifest_adopt(m, built, &err) != BH_OK)
    return luaL_error(L, "%s", err.message);
  if (m->pb->host == NULL) set_host(L, m, path);
  bh_status st = bh_manifest_set_daemon(m, daemon, gen, &err);
  if (st == BH_INVALID_IDENTITY) return luaL_argerror(L, 2, err.message);
  if (st == BH_OK) st = bh_manifest_write(path, m, &err);
  if (st != BH_OK) return lbh_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* Push the paths of list as an array. */
static void push_list(lua_State *L, const bh_manifest_list *list) {
  lua_createtable(L, (int)list->count, 0);
  for (size_t i = 0; i < list->count; i++) {
    lua_pushstring(L, list->paths[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* bh.manifest.find(root [, {max_depth = N}]) -> {path, ...} | nil, err */
static int l_find(lua_State *L) {
  static const char *const keys[] = {"max_depth", NULL};
  const char *root = luaL_checkstring(L, 1);
  lbh_opts_check(L, 2, "bh.manifest.find", keys);
  int depth =
      (int)lbh_opt_integer(L, 2, "bh.manifest.find", "max_depth", -1, 0, 64);
  bh_manifest_list list;
  bh_err err;
  if (bh_manifest_find(root, depth, &list, &err) != BH_OK)
    return lbh_fail_stage(L, &err, "manifest");
  push_list(L, &list); /* may raise (memory): then list leaks, once */
  bh_manifest_list_free(&list);
  return 1;
}

/* bh.manifest.central_dir() -> the central registry's path | nil, err */
static int l_central_dir(lua_State *L) {
  char *dir = NULL;
  bh_err err;
  if (bh_manifest_central_dir(&dir, &err) != BH_OK)
    return lbh_fail_stage(L, &err, "manifest");
  lua_pushstring(L, dir);
  free(dir);
  return 1;
}

/* bh.manifest.scan_central() -> {path, ...}, dir | nil, err
 * (insecure_registry for a registry not private to its owner). */
static int l_scan_central(lua_State *L) {
  bh_manifest_list list;
  char *dir = NULL;
  bh_err err;
  if (bh_manifest_scan_central(&list, &dir, &err) != BH_OK)
    return lbh_fail_stage(L, &err, "manifest");
  push_list(L, &list);
  lua_pushstring(L, dir);
  bh_manifest_list_free(&list);
  free(dir);
  return 2;
}

/* bh.manifest.clear_daemon(path [, {only_if = identity}]) -> true |
 * false, why | nil, err. why is "none" (no daemon recorded), "other" (it
 * records another daemon than only_if) or "changed" (rewritten on disk
 * while we worked: left alone). A manifest that does not verify is never
 * rewritten (nil, err). */
static int l_clear_daemon(lua_State *L) {
  static const char *const keys[] = {"only_if", NULL};
  static const char *const why[] = {"cleared", "none", "other", "changed"};
  const char *path = luaL_checkstring(L, 1);
  const bh_identity *want = NULL; /* boxed on the stack while we run */
  lua_settop(L, 2);
  lbh_opts_check(L, 2, "bh.manifest.clear_daemon", keys);
  if (lbh_opt_push(L, 2, "only_if"))
    want = lbh_check_identity(L, -1, 2, "only_if");
  bh_clear_outcome outcome = BH_CLEAR_NONE;
  bh_err err;
  if (bh_manifest_clear_daemon(path, want, &outcome, &err) != BH_OK)
    return lbh_fail_stage(L, &err, "manifest");
  lua_pushboolean(L, outcome == BH_CLEAR_DONE);
  if (outcome == BH_CLEAR_DONE) return 1;
  lua_pushstring(L, why[outcome]);
  return 2;
}

/* bh.manifest.check_host(m) -> true | nil, err (foreign_host when m names
 * another machine than this one in host.machine_id). */
static int l_check_host(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *theirs = NULL, *name = NULL;
  if (lua_getfield(L, 1, "host") == LUA_TTABLE) {
    if (lua_getfield(L, -1, "machine_id") == LUA_TSTRING)
      theirs = lua_tostring(L, -1);
    if (lua_getfield(L, -2, "hostname") == LUA_TSTRING)
      name = lua_tostring(L, -1);
  }
  bh_err err;
  if (bh_host_check(theirs, name, &err) != BH_OK)
    return lbh_fail_stage(L, &err, "manifest");
  lua_pushboolean(L, 1);
  return 1;
}

/* bh.machine_id() -> this machine's id (/etc/machine-id) | nil, err */
static int l_machine_id(lua_State *L) {
  char buf[64];
  bh_err err;
  if (bh_machine_id(buf, sizeof buf, &err) != BH_OK) return lbh_fail(L, &err);
  lua_pushstring(L, buf);
  return 1;
}

void lbh_manifest_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"read", l_read},
                                 {"write", l_write},
                                 {"find", l_find},
                                 {"clear_daemon", l_clear_daemon},
                                 {"central_dir", l_central_dir},
                                 {"scan_central", l_scan_central},
                                 {"check_host", l_check_host},
                                 {NULL, NULL}};
  static const luaL_Reg meta[] = {{"__gc", mbox_gc}, {NULL, NULL}};
  lbh_class(L, MBOX_MT, meta, NULL, NULL);
  lbh_pbtable_open(L);
  luaL_newlib(L, fns);
  lua_pushliteral(L, BH_MANIFEST_NAME);
  lua_setfield(L, -2, "NAME");
  lua_pushliteral(L, BH_MANIFEST_MEDIA_TYPE);
  lua_setfield(L, -2, "MEDIA_TYPE");
  lua_setfield(L, -2, "manifest");
  lua_pushcfunction(L, l_machine_id);
  lua_setfield(L, -2, "machine_id");
}
