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

void lbh_class_fields(lua_State *L, const char *name,
                      const char *const *fields) {
  luaL_getmetatable(L, name);
  lua_newtable(L);
  for (int i = 0; fields[i] != NULL; i++) {
    lua_pushstring(L, fields[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "__fields");
  lua_pop(L, 1);
}
