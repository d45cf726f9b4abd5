/* The event loop constructor (see loop.h). */
#include "loop.h"

#include <event2/event.h>
#include <stddef.h>

#include "clock.h"

/* Callbacks made active while the loop runs its active ones (a task
 * resuming another, a bare yield) join the same pass: bound a pass so
 * that timers and I/O are looked at again at least this often. */
#define MAX_PASS_SECONDS 0.005
#define MAX_PASS_CALLBACKS 64

struct event_base *bh_loop_new(void) {
  struct event_config *cfg = event_config_new();
  if (cfg == NULL) return NULL;
  struct event_base *base = NULL;
  struct timeval pass = bh_timeval(MAX_PASS_SECONDS);
  if (event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0 &&
      event_config_set_max_dispatch_interval(cfg, &pass, MAX_PASS_CALLBACKS,
                                             0) == 0)
    base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  return base;
}
