/* Metatable registration (see lbh_class.h). */
#include "lbh_class.h"

void lbh_class(lua_State *L, const char *name, const luaL_Reg *meta,
               const luaL_Reg *methods, const char *field) {
  if (luaL_newmetatable(L, name)) {
    luaL_setfuncs(L, meta, 0);
    if (methods != NULL) {
      lua_newtable(L);
      luaL_setfuncs(L, methods, 0);
      lua_setfield(L, -2, field);
    }
  }
  lua_pop(L, 1);
}
