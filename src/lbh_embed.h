/* The Lua helpers of lua/bh/ (every .lua file), embedded at build time
 * (scripts/embed_lua.cmake) so the host and bh.so never depend on
 * LUA_PATH to find them. */
#ifndef LBH_EMBED_H
#define LBH_EMBED_H

#include <stddef.h>

typedef struct bh_lua_helper {
  const char *name; /* module name, e.g. "bh.retry" */
  const char *code;
  size_t size;
} bh_lua_helper;

extern const bh_lua_helper bh_lua_helpers[]; /* ends with a NULL name */

#endif
