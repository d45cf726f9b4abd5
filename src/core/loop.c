/* The event loop constructor and what the core keeps per loop (see
 * loop.h). libevent has no place for our own data on an event_base, so
 * the loops made here are listed, under a lock (a test may make loops on
 * several threads); a probe looks its loop up once, when it starts. */
#include "loop.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

#include "clock.h"
#include "log.h"
#include "probe.h"

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

typedef struct loop_entry {
  struct loop_entry *next;
  struct event_base *base;
  bh_prober *prober;
} loop_entry;

static pthread_mutex_t loops_lock = PTHREAD_MUTEX_INITIALIZER;
static loop_entry *loops;

/* The entry of base, or NULL. */
static loop_entry *entry_of(struct event_base *base) {
  (void)pthread_mutex_lock(&loops_lock);
  loop_entry *e = loops;
  while (e != NULL && e->base != base)
    e = e->next;
  (void)pthread_mutex_unlock(&loops_lock);
  return e;
}

static struct event_base *new_base(void) {
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

struct event_base *bh_loop_new(void) {
  loop_entry *e = calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  e->base = new_base();
  if (e->base == NULL) {
    free(e);
    return NULL;
  }
  (void)pthread_mutex_lock(&loops_lock);
  e->next = loops;
  loops = e;
  (void)pthread_mutex_unlock(&loops_lock);
  return e->base;
}

void bh_loop_free(struct event_base *base) {
  if (base == NULL) return;
  (void)pthread_mutex_lock(&loops_lock);
  loop_entry **pe = &loops;
  while (*pe != NULL && (*pe)->base != base)
    pe = &(*pe)->next;
  loop_entry *e = *pe;
  if (e != NULL) *pe = e->next;
  (void)pthread_mutex_unlock(&loops_lock);
  if (e != NULL) {
    bh_prober_free(e->prober); /* its hasher's event is the loop's */
    free(e);
  }
  event_base_free(base);
}

bh_prober *bh_loop_prober(struct event_base *base) {
  loop_entry *e = entry_of(base);
  if (e == NULL) return NULL;
  /* Only the loop's own thread starts probes on it: no race here. */
  if (e->prober == NULL) e->prober = bh_prober_new(base);
  return e->prober;
}

bool bh_timer_due(struct event *ev, double deadline) {
  double left = deadline - bh_mono_now();
  if (left <= 0) return true;
  struct timeval tv = bh_timeval(left);
  if (evtimer_add(ev, &tv) != 0) return true; /* cannot wait: act now */
  return false;
}
