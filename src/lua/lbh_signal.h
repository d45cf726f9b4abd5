/* Signals for the binding (the public part is in lbh.h), process-wide:
 * the stop handler only sets a flag, sets a count hook on the running Lua
 * thread (as lua.c's laction does) and writes to an eventfd that wakes the
 * loop; the scheduler reads the flag and stops the run. SIGHUP counts and
 * wakes the loop, which tells its hooks (the report reopens). */
#ifndef LBH_SIGNAL_H
#define LBH_SIGNAL_H

#include <lua.h>
#include <stdbool.h>

/* The eventfd the handler writes to, or -1 when no handler is installed. */
int lbh_signal_fd(void);
/* Read and discard what the eventfd holds (from its loop callback); true
 * when a SIGHUP came since the last drain. */
bool lbh_signal_drain(void);
/* SIGHUPs received so far (a report sink reopens when it changed). */
unsigned lbh_hup_count(void);
/* Stop the run as a signal would, without one (sig is recorded as the
 * stop signal: SIGPIPE when stdout was closed under bh.report). */
void lbh_request_stop(int sig);
/* Tell the handler which thread is running Lua code now (NULL: none but
 * the main one), so its hook interrupts a task that never yields. */
void lbh_signal_set_running(lua_State *co);
/* Remove the interrupt hook from L if the handler set it. */
void lbh_signal_unhook(lua_State *L);

#endif
