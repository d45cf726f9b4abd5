/* The Lua binding's public face for the host (main.c): the module opener
 * and what the host needs to know after bh.run returns. Everything Lua
 * lives in src/lua/lbh_*.c; the C core never includes lua.h. */
#ifndef LBH_H
#define LBH_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

/* require "bh": returns the module table (C functions + the Lua helpers
 * embedded from lua/bh/). */
int luaopen_bh(lua_State *L);

/* Push the module table luaopen_bh built (kept in the registry, so a
 * script that reassigns the global bh cannot break the host), or nil
 * before luaopen_bh. bh.options, created with it, holds what the host's
 * command line set (report, metrics, ...). */
void lbh_push_module(lua_State *L);

/* The host's interactive session (-i, lbh_session.c): lbh_session(fn,
 * ...) is bh.run(fn, ...) with fn, the prompt, as main task, except that
 * the run ends when fn returns (tasks still live are cancelled, responders
 * closed) and SIGINT does not stop it: ^C fails the task fn waits for in
 * task:wait with "interrupted" (and the traceback of where it was), or, at
 * the prompt, makes the prompt's read (src/host/prompt.h) return false.
 * SIGTERM stops it like bh.run. */
int lbh_session(lua_State *L);

/* Install the host's signal handling (process-wide: signal dispositions
 * belong to the process; L is the one host state whose threads a stop
 * signal hooks). SIGINT/SIGTERM stop the running loop cleanly (tasks
 * cancelled, responders closed and unlinked), also while a script is
 * blocked in a C call (no SA_RESTART: the call returns EINTR and the hook
 * stops the script), and a Lua loop that never yields is interrupted
 * through a count hook that raises "interrupted" naming where it was.
 * SIGHUP reopens L's report file (never stops). SIGPIPE is ignored.
 * Call once, before any script runs. Returns 0, or -1 with errno. */
int lbh_install_signal_handlers(lua_State *L);

/* The signal (SIGINT/SIGTERM, or SIGPIPE for a closed stdout) that stopped
 * the last bh.run, or 0. Process-wide, like the handlers. When a signal
 * stops a run, bh.run raises the main task's error if it was interrupted
 * inside Lua code ("file:line: interrupted" and traceback), else the
 * plain message "interrupted". The signal stays recorded (and stops every
 * later bh.run at once) until lbh_clear_stop_signal. */
int lbh_stop_signal(void);
/* Forget the recorded signal and remove the hooks it left on L and the
 * host state (e.g. -i: back to the prompt after ^C). */
void lbh_clear_stop_signal(lua_State *L);

/* The host's service options (design §3.2); NULL: not given. */
typedef struct lbh_service_opts {
  const char *report;  /* --report FILE */
  const char *metrics; /* --metrics FILE */
  const char *listen;  /* --listen HOST:PORT */
  const char *name;    /* --name NAME, or the default the host chose */
} lbh_service_opts;

/* The start-up checks of the host's service options (design §3): sets
 * bh.options.name/report/metrics/listen, opens the report file, writes
 * the first metrics file, binds the --listen socket (kept for every run
 * to serve; bh.options.listen_address is the address bound). NULL options
 * are skipped. On failure why (cap bytes) says which and why: the host
 * then exits 2. */
bool lbh_service_setup(lua_State *L, const lbh_service_opts *o, char *why,
                       size_t cap);
/* sd_notify(3) a state ("READY=1", "STOPPING=1"); nothing outside systemd. */
void lbh_service_notify(const char *state);

/* True when some task failed and nobody waited for it (the error was
 * already printed when its bh.run ended); the host then exits 1.
 *
 * Note for the host: an error re-raised by bh.run (or task:wait) whose
 * value is a string already carries the failing task's traceback
 * ("msg\nstack traceback:\n..."), taken inside the task's coroutine. */
bool lbh_unobserved_error(lua_State *L);

/* The error value at idx as text: the string itself, its __tostring, or
 * "(error object is a T value)". May push one value (the text). */
const char *lbh_error_text(lua_State *L, int idx);

#endif
