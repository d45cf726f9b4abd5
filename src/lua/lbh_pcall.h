/* The one protected call for Lua run from the loop, and what goes with
 * it: the message handler that adds a traceback, the text of an error
 * value (lbh.h: lbh_error_text) and the error log line. A loop callback
 * never calls Lua any other way (lbh_task_complete uses it too), so an
 * error in a callback is logged, never raised into libevent. */
#ifndef LBH_PCALL_H
#define LBH_PCALL_H

#include <lua.h>

/* Call fn(L, ud) from a loop callback under lua_pcall with lbh_traceback
 * as message handler, on L (the run's state: lbh_run_state). fn may push
 * and return values; they are left on the stack (nresults of them,
 * LUA_MULTRET allowed) only on success. On error the message and
 * traceback are logged as lbh_log_error(context, message) and
 * LUA_ERRRUN/LUA_ERRMEM is returned with nothing pushed. */
int lbh_loop_pcall(lua_State *L, lua_CFunction fn, void *ud, int nresults,
                   const char *context);

/* A lua_pcall message handler: the error's text (lbh_error_text) plus the
 * traceback of where it happened. */
int lbh_traceback(lua_State *L);

/* Log "<context>: <message>" at error priority (core log.h: on stderr as
 * "bhprobe-lua: ...", "<3>" under journald). Never raises nor allocates
 * on L, so that an error (out of memory too) can be told outside any
 * protected call; a traceback is kept whole, within the log's cuts of a
 * message (text.h: 4 KiB a line, 16 KiB in all). */
void lbh_log_error(const char *context, const char *msg);

#endif
