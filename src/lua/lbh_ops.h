/* Shared pieces of the operations bindings (manifests, exec, reports):
 * Lua values <-> JSON through jansson, and the host's bh.options. Identity
 * tables go through lbh_identity.h like everywhere else. */
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

/* bh.options.<name> as a string, or NULL (the host sets bh.options). The
 * string stays valid while bh.options keeps it. */
const char *lbh_option_string(lua_State *L, const char *name);

#endif
