/* Lua code embedded at build time (scripts/embed_lua.cmake), so the host
 * and bh.so never depend on LUA_PATH to find it: the helper modules of
 * lua/bh/ (bh_lua_helpers, in bh.so and the host) and the host's own
 * lua/host/ (host_lua, in the host only). */
#ifndef LBH_EMBED_H
#define LBH_EMBED_H

#include <lua.h>
#include <stddef.h>

typedef struct bh_lua_helper {
  const char *name; /* module name, e.g. "bh.retry" */
  const char *code;
  size_t size;
} bh_lua_helper;

extern const bh_lua_helper bh_lua_helpers[]; /* ends with a NULL name */
extern const bh_lua_helper host_lua[];       /* likewise */

/* require "bh.NAME" for bh.so's per-helper openers (luaopen_bh_NAME,
 * generated): loads bh if needed and pushes package.loaded[name]. */
int lbh_open_helper(lua_State *L, const char *name);

/* The entry of list named name, or NULL. */
static inline const bh_lua_helper *lbh_embed_find(const bh_lua_helper *list,
                                                  const char *name) {
  for (; list->name != NULL; list++) {
    const char *a = list->name, *b = name;
    while (*a != '\0' && *a == *b)
      a++, b++;
    if (*a == *b) return list;
  }
  return NULL;
}

#endif
