/* bh.log: journald-friendly log lines for policies (core log.h):
 * bh.log.error/warn/notice/info/debug(...) write their arguments,
 * converted as print converts them and joined by spaces, as one line on
 * stderr; bh.log.level([name]) reads or sets the threshold ("error",
 * "warn", "notice", "info", "debug"; default "info"). */
#include <lauxlib.h>

#include "lbh_args.h"
#include "lbh_open.h"
#include "log.h"

static const char *const level_names[] = {"error", "warn",  "notice",
                                          "info",  "debug", NULL};
static const int level_prios[] = {BH_LOG_ERR, BH_LOG_WARNING, BH_LOG_NOTICE,
                                  BH_LOG_INFO, BH_LOG_DEBUG};

/* Stack: the arguments; upvalue 1: the priority. Returns nothing. */
static int l_log(lua_State *L) {
  int prio = (int)lua_tointeger(L, lua_upvalueindex(1));
  int n = lua_gettop(L);
  if (prio > bh_log_threshold()) return 0;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; i++) {
    if (i > 1) luaL_addchar(&b, ' ');
    luaL_tolstring(L, i, NULL);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  bh_log_line(prio, lua_tostring(L, -1));
  return 0;
}

/* bh.log.level([name]) -> the threshold's name (before any change). */
static int l_level(lua_State *L) {
  int cur = bh_log_threshold(), i;
  for (i = 0; level_prios[i] != cur && level_names[i + 1] != NULL; i++) {
  }
  lua_pushstring(L, level_names[i]);
  if (!lua_isnoneornil(L, 1))
    bh_log_set_threshold(
        level_prios[lbh_arg_option(L, 1, NULL, NULL, level_names)]);
  return 1;
}

void lbh_log_open(lua_State *L) {
  lua_createtable(L, 0, 6);
  for (int i = 0; level_names[i] != NULL; i++) {
    lua_pushinteger(L, level_prios[i]);
    lua_pushcclosure(L, l_log, 1);
    lua_setfield(L, -2, level_names[i]);
  }
  lua_pushcfunction(L, l_level);
  lua_setfield(L, -2, "level");
  lua_setfield(L, -2, "log");
}
