/* The line reader of the host's -i prompt (lua/host/prompt.lua is the
 * prompt itself). Linked into the host only, never into bh.so: it owns fd
 * 0 and GNU readline's process-wide state. */
#ifndef BH_HOST_PROMPT_H
#define BH_HOST_PROMPT_H

#include <lua.h>

/* lbh_readline(prompt[, complete]) → the next line of stdin without its
 * newline, nil at end of input, or false when ^C abandoned it. Only for
 * the main task of lbh_session: it yields while waiting, so the loop
 * keeps serving responders, tasks and timers. On a terminal it edits the
 * line with GNU readline (callback interface) when the host was built
 * with it: complete(word) → a list of completions for the word before
 * the cursor (dots and colons included: "bh.pro"); output of background
 * tasks while the line is being edited appears above it, and the line is
 * drawn again below. Else it writes the prompt to stdout and reads fd 0
 * plainly. */
int lbh_readline(lua_State *L);

/* lbh_history_add(chunk): one history entry for a whole chunk (several
 * lines stay one entry), kept in ~/.bhprobe_history (mode 0600, the last
 * 1000 entries) when editing with readline; else nothing. */
int lbh_history_add(lua_State *L);

#endif
