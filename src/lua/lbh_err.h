/* Error tables of the binding (DESIGN §2): expected failures are returned
 * as nil, err where err = {code=, stage=, message=[, field=]} with the
 * metatable "bh.error" (__tostring gives the message). */
#ifndef LBH_ERR_H
#define LBH_ERR_H

#include <lua.h>

#include "status.h"

/* Push the error table for err. */
void lbh_push_err(lua_State *L, const bh_err *err);
/* Push nil and the error table; returns 2 (for `return lbh_fail(L, &e)`). */
int lbh_fail(lua_State *L, const bh_err *err);

#endif
