/* The event loop constructor (see loop.h). */
#include "loop.h"

#include <event2/event.h>
#include <stddef.h>

struct event_base *bh_loop_new(void) {
  struct event_config *cfg = event_config_new();
  if (cfg == NULL) return NULL;
  struct event_base *base = NULL;
  if (event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0)
    base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  return base;
}
