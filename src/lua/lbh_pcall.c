/* The protected call of loop callbacks, the traceback handler, the text
 * of an error value and the error log line (lbh_pcall.h, lbh.h). */
#include "lbh_pcall.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbh.h"
#include "lbh_signal.h"
#include "log.h"

const char *lbh_error_text(lua_State *L, int idx) {
  const char *msg = lua_tostring(L, idx);
  if (msg != NULL) return msg;
  if (luaL_callmeta(L, idx, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    return lua_tostring(L, -1);
  return lua_pushfstring(L, "(error object is a %s value)",
                         luaL_typename(L, idx));
}

void lbh_log_error(const char *context, const char *msg) {
  size_t n = strlen(context) + strlen(msg) + 3;
  char *line = malloc(n);
  if (line == NULL) { /* bh_log's buffer then: cut, but said */
    bh_log(BH_LOG_ERR, "%s: %s", context, msg);
    return;
  }
  (void)snprintf(line, n, "%s: %s", context, msg);
  bh_log_line(BH_LOG_ERR, line);
  free(line);
}

int lbh_traceback(lua_State *L) {
  luaL_traceback(L, L, lbh_error_text(L, 1), 1);
  return 1;
}

int lbh_loop_pcall(lua_State *L, lua_CFunction fn, void *ud, int nresults,
                   const char *context) {
  if (!lua_checkstack(L, 4)) {
    lbh_log_error(context, "Lua stack exhausted");
    return LUA_ERRMEM;
  }
  /* A signal already stops the loop after this turn: do not let the
   * interrupt hook it left on L fail this bookkeeping or callback. */
  if (lbh_stop_signal() != 0) lbh_signal_unhook(L);
  int base = lua_gettop(L) + 1;
  lua_pushcfunction(L, lbh_traceback);
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, ud);
  int status = lua_pcall(L, 1, nresults, base);
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    lbh_log_error(context, msg ? msg : "(error without message)");
    lua_settop(L, base - 1);
    return status;
  }
  lua_remove(L, base);
  return LUA_OK;
}
