/* The host's interactive session (-i; lbh.h: lbh_session): bh.run with
 * the prompt as its main task and the session's rules attached to the
 * run as a hook, so that the scheduler knows nothing of prompts:
 * - the run ends with the prompt (lbh_run_end_with_main): tasks still
 *   live then are cancelled, responders closed;
 * - ^C's hook never interrupts the prompt's own Lua code
 *   (lbh_task_shield);
 * - SIGINT does not stop the run. ^C fails the task the prompt waits for
 *   in task:wait with "interrupted" and the traceback of where it waited,
 *   or, at the prompt, interrupts the prompt's read, which returns false
 *   (lbh_task_interrupt); a task that ^C's hook failed where it was
 *   looping has spent it. SIGTERM stops the run as it stops any. */
#include <signal.h>
#include <stdbool.h>

#include "lbh.h"
#include "lbh_run.h"
#include "lbh_task.h"

static void session_started(lbh_run *run, void *ud) {
  (void)ud;
  lbh_run_end_with_main(run);
  lbh_task_shield(lbh_run_main_task(run));
}

/* SIGINT: forget it, then interrupt what the prompt waits for (t NULL),
 * unless the hook already failed a task with it (t). */
static bool session_signal(lbh_run *run, int sig, lbh_task *t, void *ud) {
  (void)ud;
  if (sig != SIGINT) return false;
  lbh_run_clear_stop_signal(run);
  if (t != NULL) return true; /* spent on the task it interrupted */
  lbh_task *prompt = lbh_run_main_task(run);
  lbh_task *line = lbh_task_waits_for(prompt);
  if (line != NULL)
    (void)lbh_task_interrupt(line);
  else if (lbh_task_has_interrupt(prompt))
    (void)lbh_task_interrupt(prompt); /* its read returns false */
  return true;
}

int lbh_session(lua_State *L) {
  static const lbh_run_hook hook = {.started = session_started,
                                    .signal = session_signal};
  return lbh_run_main(L, &hook);
}
