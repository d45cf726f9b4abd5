/* The metatables of the binding's userdata types, registered one way:
 *
 *   static const luaL_Reg meta[] = {{"__gc", h_gc}, {NULL, NULL}};
 *   lbh_class(L, HANDLE_MT, meta, handle_methods, "methods");
 *
 * creates the metatable (once per state: luaL_newmetatable's name, which
 * lbh_arg_udata and error messages use) with the metamethods of meta
 * and, when methods is not NULL, a table of them at field ("__index", or
 * the field a custom __index function reads). The stack is left as it
 * was. */
#ifndef LBH_CLASS_H
#define LBH_CLASS_H

#include <lauxlib.h>

void lbh_class(lua_State *L, const char *name, const luaL_Reg *meta,
               const luaL_Reg *methods, const char *field);

/* A class whose __index is a function (fields built on demand, such as a
 * handle's identity and timings) publishes the names it answers, other
 * than its methods, as the list metatable.__fields: a function cannot be
 * listed, and the prompt's completion offers them ("h." -> identity,
 * timings, ...). fields is NULL-terminated; keep it next to the __index
 * function it describes. The class must be registered. */
void lbh_class_fields(lua_State *L, const char *name,
                      const char *const *fields);

#endif
