/* Error tables of the binding (design §2): expected failures are returned
 * as nil, err where err = {code=, stage=, message=[, field=, fields=]}
 * with the metatable "bh.error" (__tostring gives the message):
 * field/fields for identity_mismatch (the first and every differing
 * field). Probe errors add peer, successor and timings (lbh_probe.c). */
#ifndef LBH_ERR_H
#define LBH_ERR_H

#include <lua.h>

#include "status.h"

/* Push the error table for err. */
void lbh_push_err(lua_State *L, const bh_err *err);
/* Push nil and the error table; returns 2 (for `return lbh_fail(L, &e)`). */
int lbh_fail(lua_State *L, const bh_err *err);
/* lbh_fail with err.stage set to stage (where the binding, not the code,
 * tells the stage: "manifest", "shutdown", "task"). */
int lbh_fail_stage(lua_State *L, const bh_err *err, const char *stage);

#endif
