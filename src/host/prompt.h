/* The line reader of the host's -i prompt (lua/host/prompt.lua is the
 * prompt itself). Linked into the host only, never into bh.so: it owns fd
 * 0 and GNU readline's process-wide state. */
#ifndef BH_HOST_PROMPT_H
#define BH_HOST_PROMPT_H

#include <lua.h>

/* lbh_readline(prompt) → the next line of stdin without its newline, nil
 * at end of input, or false when ^C abandoned it. Only for the main task
 * of lbh_session: it yields while waiting, so the loop keeps serving
 * responders, tasks and timers. On a terminal it edits the line with GNU
 * readline (callback interface) when the host was built with it; else it
 * writes the prompt to stdout and reads fd 0 plainly. */
int lbh_readline(lua_State *L);

#endif
