/* The openers that fill the bh module table, one per binding file. Each
 * receives the module table at the top of the stack and adds its functions
 * (and sub-tables) to it, leaving the stack balanced. luaopen_bh
 * (lbh_module.c) calls them all, in this order, then runs the embedded Lua
 * helpers. */
#ifndef LBH_OPEN_H
#define LBH_OPEN_H

#include <lua.h>

void lbh_options_open(lua_State *L);  /* options, _bind_metrics */
void lbh_err_open(lua_State *L);      /* the error metatable */
void lbh_check_open(lua_State *L);    /* _check_opts, _check_arg */
void lbh_run_open(lua_State *L);      /* run */
void lbh_task_open(lua_State *L);     /* spawn, the task userdata */
void lbh_control_open(lua_State *L);  /* sleep, now, timeout, select, all */
void lbh_identity_open(lua_State *L); /* identity.*, boot_id, sha256_file */
void lbh_probe_open(lua_State *L);    /* probe, probe_response, handle */
void lbh_respond_open(lua_State *L);  /* respond, responder */
void lbh_manifest_open(lua_State *L); /* manifest.*, machine_id */
void lbh_fs_open(lua_State *L);       /* fs.* */
void lbh_exec_open(lua_State *L);     /* exec */
void lbh_report_open(lua_State *L);   /* report, timestamp, wallclock, null */
void lbh_log_open(lua_State *L);      /* log.* */
void lbh_http_open(lua_State *L);     /* metrics.serve */

#endif
