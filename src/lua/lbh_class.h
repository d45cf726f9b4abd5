/* The metatables of the binding's userdata types, registered one way:
 *
 *   static const luaL_Reg meta[] = {{"__gc", h_gc}, {NULL, NULL}};
 *   lbh_class(L, HANDLE_MT, meta, handle_methods, "methods");
 *
 * creates the metatable (once per state: luaL_newmetatable's name, which
 * luaL_checkudata and error messages use) with the metamethods of meta
 * and, when methods is not NULL, a table of them at field ("__index", or
 * the field a custom __index function reads). The stack is left as it
 * was. */
#ifndef LBH_CLASS_H
#define LBH_CLASS_H

#include <lauxlib.h>

void lbh_class(lua_State *L, const char *name, const luaL_Reg *meta,
               const luaL_Reg *methods, const char *field);

#endif
