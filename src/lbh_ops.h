/* Shared pieces of the operations bindings (manifests, exec, reports):
 * Lua values <-> JSON through jansson, and identities <-> Lua tables
 * through the identity layer's JSON form (DESIGN §1.7: an identity table
 * has exactly the JSON fields, so the JSON reader's strict checks and
 * codes apply to tables too). */
#ifndef LBH_OPS_H
#define LBH_OPS_H

#include <jansson.h>
#include <lua.h>
#include <stddef.h>

#include "identity.h"
#include "status.h"

/* The value at idx as JSON (new reference) or NULL with why filled (which
 * key path held what). Tables with keys 1..n are arrays, others objects
 * with string keys (sorted); bh.null is null; strings that are not UTF-8
 * get U+FFFD for each bad byte. */
json_t *lbh_json_from_lua(lua_State *L, int idx, char *why, size_t cap);
/* Push j as a Lua value (null → nil; an object member that is null is
 * left out). */
void lbh_json_push(lua_State *L, const json_t *j);

/* Identity table at idx → *out through bh_identity_from_json; codes
 * invalid_identity (err->field names the field) and invalid_json. */
bh_status lbh_identity_from_table(lua_State *L, int idx, bh_identity *out,
                                  bh_err *err);
/* Push an identity as its table. */
void lbh_identity_push_table(lua_State *L, const bh_identity *id);

/* bh.options.<name> as a string, or NULL (the host sets bh.options). The
 * string stays valid while bh.options keeps it. */
const char *lbh_option_string(lua_State *L, const char *name);

#endif
