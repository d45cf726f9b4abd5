/* The event loop constructor (see loop.h). */
#include "loop.h"

#include <event2/event.h>
#include <pthread.h>
#include <stddef.h>

#include "clock.h"
#include "log.h"

/* Callbacks made active while the loop runs its active ones (a task
 * resuming another, a bare yield) join the same pass: bound a pass so
 * that timers and I/O are looked at again at least this often. */
#define MAX_PASS_SECONDS 0.005
#define MAX_PASS_CALLBACKS 64

/* libevent's own messages ("Error from accept() call: Too many open
 * files", once per wake-up of a listener that cannot accept) go through
 * our log, rate-limited: 124 MB of them on stderr was a way to fill a
 * disk. Only the loop thread calls libevent, so one limit will do. */
static bh_log_limit libevent_limit;

static void libevent_log(int severity, const char *msg) {
  int prio = severity >= EVENT_LOG_ERR    ? BH_LOG_ERR
             : severity == EVENT_LOG_WARN ? BH_LOG_WARNING
             : severity == EVENT_LOG_MSG  ? BH_LOG_INFO
                                          : BH_LOG_DEBUG;
  (void)bh_log_limited(&libevent_limit, prio, "libevent: %s", msg);
}

static void route_libevent_log(void) {
  event_set_log_callback(libevent_log);
}

struct event_base *bh_loop_new(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  (void)pthread_once(&once, route_libevent_log);
  struct event_config *cfg = event_config_new();
  if (cfg == NULL) return NULL;
  struct event_base *base = NULL;
  struct timeval pass = bh_timeval(MAX_PASS_SECONDS);
  if (event_config_set_max_dispatch_interval(cfg, &pass, MAX_PASS_CALLBACKS,
                                             0) == 0)
    base = event_base_new_with_config(cfg);
  event_config_free(cfg);
  return base;
}

bool bh_timer_due(struct event *ev, double deadline) {
  double left = deadline - bh_mono_now();
  if (left <= 0) return true;
  struct timeval tv = bh_timeval(left);
  if (evtimer_add(ev, &tv) != 0) return true; /* cannot wait: act now */
  return false;
}
