/* The Lua binding's public face for the host (main.c): the module opener
 * and what the host needs to know after bh.run returns. Everything Lua
 * lives in src/lbh_*.c; the C core never includes lua.h. */
#ifndef LBH_H
#define LBH_H

#include <lua.h>
#include <stdbool.h>

/* require "bh": returns the module table (C functions + the Lua helpers
 * embedded from lua/bh/). */
int luaopen_bh(lua_State *L);

/* Install SIGINT/SIGTERM handling for the host: a signal stops the running
 * loop cleanly (tasks cancelled, responders closed and unlinked), and a
 * Lua loop that never yields is interrupted through a count hook that
 * raises "interrupted" naming where it was. Call once after creating L. */
void lbh_install_signal_handlers(lua_State *L);

/* The signal (SIGINT/SIGTERM) that stopped the last bh.run, or 0. */
int lbh_stop_signal(lua_State *L);

/* True when some task failed and nobody waited for it (the error was
 * already printed); the host then exits 1. */
bool lbh_unobserved_error(lua_State *L);

#endif
