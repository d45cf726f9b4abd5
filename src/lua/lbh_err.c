/* Error tables (lbh_err.h): the one shape every expected failure of the
 * bh module takes. */
#include "lbh_err.h"

#include <lauxlib.h>
#include <stdio.h>

#include "lbh_args.h"
#include "lbh_class.h"
#include "lbh_open.h"

#define ERR_MT "bh.error"

void lbh_push_err(lua_State *L, const bh_err *err) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, bh_status_name(err->code));
  lua_setfield(L, -2, "code");
  lua_pushstring(L, bh_status_stage(err->code));
  lua_setfield(L, -2, "stage");
  lua_pushstring(L, err->message[0] ? err->message : bh_status_name(err->code));
  lua_setfield(L, -2, "message");
  if (err->field != NULL) {
    lua_pushstring(L, err->field);
    lua_setfield(L, -2, "field");
  }
  if (err->nfields > 0) {
    lua_createtable(L, (int)err->nfields, 0);
    for (unsigned i = 0; i < err->nfields; i++) {
      lua_pushstring(L, err->fields[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "fields");
  }
  luaL_setmetatable(L, ERR_MT);
}

int lbh_fail(lua_State *L, const bh_err *err) {
  lua_pushnil(L);
  lbh_push_err(L, err);
  return 2;
}

int lbh_fail_stage(lua_State *L, const bh_err *err, const char *stage) {
  lbh_fail(L, err);
  lua_pushstring(L, stage);
  lua_setfield(L, -2, "stage");
  return 2;
}

/* __tostring(err) → err.message (raw, so a table without one still
 * prints something useful). */
static int err_tostring(lua_State *L) {
  lbh_arg_table(L, 1, NULL);
  if (lua_getfield(L, 1, "message") != LUA_TSTRING) {
    const char *code = NULL;
    if (lua_getfield(L, 1, "code") == LUA_TSTRING) code = lua_tostring(L, -1);
    lua_pushfstring(L, "error %s", code != NULL ? code : "(no code)");
  }
  return 1;
}

void lbh_err_open(lua_State *L) {
  static const luaL_Reg meta[] = {{"__tostring", err_tostring}, {NULL, NULL}};
  lbh_class(L, ERR_MT, meta, NULL, NULL);
}
