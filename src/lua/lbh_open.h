/* The openers that fill the bh module table, one per binding file. Each
 * receives the module table at the top of the stack and adds its functions
 * (and sub-tables) to it, leaving the stack balanced. luaopen_bh
 * (lbh_module.c) calls them in this order, then runs the embedded Lua
 * helpers.
 *
 * Openers of binding files that may not exist yet are declared weak:
 * adding src/lbh_manifest.c that defines lbh_manifest_open is enough for
 * it to be called, without editing lbh_module.c. */
#ifndef LBH_OPEN_H
#define LBH_OPEN_H

#include <lua.h>

void lbh_run_open(lua_State *L);      /* run */
void lbh_task_open(lua_State *L);     /* spawn, the task userdata */
void lbh_control_open(lua_State *L);  /* sleep, now, timeout, select, all */
void lbh_check_open(lua_State *L);    /* _check_opts, _check_arg */
void lbh_err_open(lua_State *L);      /* the error metatable */
void lbh_identity_open(lua_State *L); /* identity.*, boot_id, sha256_file */
void lbh_probe_open(lua_State *L);    /* probe, probe_response, handle */
void lbh_respond_open(lua_State *L);  /* respond, responder */

/* Later binding files (issue 4's remaining API). */
void lbh_manifest_open(lua_State *L) __attribute__((weak));
void lbh_fs_open(lua_State *L) __attribute__((weak));
void lbh_exec_open(lua_State *L) __attribute__((weak));
void lbh_report_open(lua_State *L) __attribute__((weak));
void lbh_every_open(lua_State *L) __attribute__((weak));
void lbh_log_open(lua_State *L) __attribute__((weak));  /* log.* */
void lbh_http_open(lua_State *L) __attribute__((weak)); /* metrics.serve */

#endif
