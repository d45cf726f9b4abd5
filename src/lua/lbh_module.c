/* luaopen_bh: builds the bh module table from the C openers (lbh_open.h)
 * and the helper modules embedded from lua/bh/ (lbh_embed.h).
 *
 * Each helper is a real module ("bh.retry" returns its table M): luaopen_bh
 * requires it (into package.loaded) and puts it in bh. A
 * helper whose table has a field named after it (M.retry, M.verdict) lends
 * bh all its public fields (bh.retry, bh.verdict, bh.probe_record, ...);
 * any other (bh.metrics) becomes the bh field of its name. A helper says
 * `local bh = require "bh"`, which finds the table being built here
 * because package.loaded.bh is set before the helpers load. Each helper
 * also has its own opener in bh.so (luaopen_bh_retry, generated with the
 * embedded code), so `require "bh.retry"` works before `require "bh"`. */
#include <lauxlib.h>
#include <string.h>

#include "lbh.h"
#include "lbh_args.h"
#include "lbh_embed.h"
#include "lbh_open.h"
#include "lbh_options.h"
#include "wire.h"

/* Loader of an embedded helper (luaL_requiref's openf). Stack: [name].
 * Returns what the chunk returns. */
static int load_helper(lua_State *L) {
  const bh_lua_helper *h =
      lbh_embed_find(bh_lua_helpers, lbh_arg_string(L, 1, NULL, NULL));
  if (h == NULL)
    return luaL_error(L, "no helper module %s", lua_tostring(L, 1));
  const char *chunk = lua_pushfstring(L, "=%s", h->name);
  if (luaL_loadbufferx(L, h->code, h->size, chunk, "t") != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, h->name);
  lua_call(L, 1, 1);
  return 1;
}

/* Copy the public fields (names not starting with '_') of the table on
 * top into the module table at mod. */
static void lend_fields(lua_State *L, int mod) {
  lua_pushnil(L);
  while (lua_next(L, -2) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_tostring(L, -2)[0] != '_') {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, mod);
    } else {
      lua_pop(L, 1);
    }
  }
}

/* Require every helper (into package.loaded) and put it in the module
 * table at mod. */
static void open_helpers(lua_State *L, int mod) {
  for (const bh_lua_helper *h = bh_lua_helpers; h->name != NULL; h++) {
    const char *shortname = strchr(h->name, '.') + 1;
    luaL_requiref(L, h->name, load_helper, 0);
    if (!lua_istable(L, -1))
      luaL_error(L, "helper %s did not return a table", h->name);
    if (lua_getfield(L, -1, shortname) != LUA_TNIL) {
      lua_pop(L, 1);
      lend_fields(L, mod);
    } else {
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_setfield(L, mod, shortname);
    }
    lua_pop(L, 1);
  }
}

int lbh_open_helper(lua_State *L, const char *name) {
  luaL_requiref(L, "bh", luaopen_bh, 0);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, name);
  return 1;
}

int luaopen_bh(lua_State *L) {
  lua_newtable(L);
  int mod = lua_gettop(L);
  void (*const openers[])(lua_State *) = {
      lbh_options_open, lbh_err_open,      lbh_check_open,    lbh_run_open,
      lbh_task_open,    lbh_control_open,  lbh_identity_open, lbh_probe_open,
      lbh_respond_open, lbh_manifest_open, lbh_fs_open,       lbh_exec_open,
      lbh_report_open,  lbh_log_open,      lbh_http_open,
  };
  for (size_t i = 0; i < sizeof openers / sizeof openers[0]; i++) {
    openers[i](L);
    lua_settop(L, mod);
  }
  lua_pushliteral(L, BH_VERSION);
  lua_setfield(L, mod, "_VERSION");
  lua_pushliteral(L, BH_RUNNING_PROCESS_VERSIONS);
  lua_setfield(L, mod, "_RUNNING_PROCESS");
  lbh_set_module(L, mod);
  /* The helpers' require "bh" must find this table, not load bh again. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, mod);
  lua_setfield(L, -2, "bh");
  lua_pop(L, 1);
  open_helpers(L, mod);
  lbh_args_name_functions(L, mod);
  return 1;
}
