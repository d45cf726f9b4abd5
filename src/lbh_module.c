/* luaopen_bh: builds the bh module table from the C openers (lbh_open.h)
 * and runs the Lua helpers embedded from lua/bh/ (lbh_embed.h). Each
 * helper chunk gets the module table as its first vararg (`local bh =
 * ...`), adds its functions to it and returns nothing. */
#include <lauxlib.h>

#include "lbh.h"
#include "lbh_embed.h"
#include "lbh_open.h"

/* Run every embedded helper on the module table at index mod; a helper
 * that fails to load or run raises an error naming it. */
static void run_helpers(lua_State *L, int mod) {
  for (const bh_lua_helper *h = bh_lua_helpers; h->name != NULL; h++) {
    const char *chunk = lua_pushfstring(L, "=%s", h->name);
    int status = luaL_loadbufferx(L, h->code, h->size, chunk, "t");
    lua_remove(L, -2);
    if (status != LUA_OK)
      luaL_error(L, "loading helper %s: %s", h->name, lua_tostring(L, -1));
    lua_pushvalue(L, mod);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
      luaL_error(L, "running helper %s: %s", h->name, lua_tostring(L, -1));
  }
}

int luaopen_bh(lua_State *L) {
  lua_newtable(L);
  int mod = lua_gettop(L);
  void (*const openers[])(lua_State *) = {
      lbh_err_open,     lbh_task_open,     lbh_identity_open, lbh_probe_open,
      lbh_respond_open, lbh_manifest_open, lbh_fs_open,       lbh_exec_open,
      lbh_report_open,  lbh_every_open,
  };
  for (size_t i = 0; i < sizeof openers / sizeof openers[0]; i++) {
    if (openers[i] == NULL) continue; /* a weak opener not linked in */
    openers[i](L);
    lua_settop(L, mod);
  }
  lua_pushliteral(L, "0.1.0");
  lua_setfield(L, mod, "_VERSION");
  run_helpers(L, mod);
  return 1;
}
