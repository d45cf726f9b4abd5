/* bh.fs: file-system reactions over the core's directory-descriptor
 * helpers (fsutil.h). remove_stale_socket removes a socket file only when
 * it is a socket and nothing accepts on it; write_atomic is the atomic
 * replace for any bytes (the metrics file uses it). Neither follows a
 * symbolic link anywhere on the path. */
#include <lauxlib.h>

#include "fsutil.h"
#include "lbh_args.h"
#include "lbh_err.h"
#include "lbh_open.h"
#include "stale.h"

static void set_bool(lua_State *L, const char *name, bool v) {
  lua_pushboolean(L, v);
  lua_setfield(L, -2, name);
}

/* bh.fs.remove_stale_socket(path [, {owner = uid, within = dir}]) ->
 * {existed, is_socket, live, removed[, forbidden, reason]} | nil, err.
 * What it did is in the table: removed only when it existed, was a
 * socket, nothing accepted on it, and it was still that socket. With
 * owner, only what that uid could remove itself (search on the
 * directories, write on the socket's directory, the sticky bit's rule),
 * unless it lies under within (an absolute directory: the record's own);
 * otherwise forbidden = true and reason says why, nothing touched. */
static int l_remove_stale_socket(lua_State *L) {
  static const char *const keys[] = {"owner", "within", NULL};
  const char *fn = "bh.fs.remove_stale_socket";
  const char *path = lbh_arg_string(L, 1, fn, NULL);
  lbh_opts_check(L, 2, fn, keys);
  lua_Integer owner = lbh_opt_integer(L, 2, fn, "owner", -1, 0, 4294967294);
  const char *within = NULL;
  if (lbh_opt_push(L, 2, "within")) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: option 'within' must be a string, got %s", fn,
                 luaL_typename(L, -1));
    within = lua_tostring(L, -1); /* kept on the stack */
  }
  bh_stale_opts o = {.has_owner = owner >= 0,
                     .owner = owner >= 0 ? (uid_t)owner : 0,
                     .within = within};
  bh_stale_result res = {0};
  bh_err err;
  if (bh_fs_remove_stale_socket_as(path, &o, &res, &err) != BH_OK)
    return lbh_fail(L, &err);
  lua_createtable(L, 0, 6);
  set_bool(L, "existed", res.existed);
  set_bool(L, "is_socket", res.is_socket);
  set_bool(L, "live", res.live);
  set_bool(L, "removed", res.removed);
  if (res.forbidden) {
    set_bool(L, "forbidden", true);
    lua_pushstring(L, res.reason);
    lua_setfield(L, -2, "reason");
  }
  return 1;
}

/* bh.fs.write_atomic(path, data [, {mode = 0644}]) -> true | nil, err
 * (code "system"): a temp file in the same directory, fsync, rename,
 * fsync the directory. The file gets exactly mode (no set-id bits), not
 * the mode of what was there; a symbolic link at path is refused. */
static int l_write_atomic(lua_State *L) {
  static const char *const keys[] = {"mode", NULL};
  const char *fn = "bh.fs.write_atomic";
  const char *path = lbh_arg_string(L, 1, fn, NULL);
  size_t len;
  const char *data = lbh_arg_string(L, 2, fn, &len);
  lbh_opts_check(L, 3, fn, keys);
  lua_Integer mode = lbh_opt_integer(L, 3, fn, "mode", 0644, 0, 0777);
  bh_err err;
  if (bh_fs_write_atomic(path, data, len, false, (mode_t)mode, BH_SYSTEM,
                         &err) != BH_OK)
    return lbh_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

void lbh_fs_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"remove_stale_socket", l_remove_stale_socket},
                                 {"write_atomic", l_write_atomic},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_setfield(L, -2, "fs");
}
