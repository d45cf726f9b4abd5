/* The event loop constructor and what the core keeps per loop (see
 * loop.h). libevent has no place for our own data on an event_base, so
 * the loops made here are listed, under a lock (a test may make loops on
 * several threads); a probe or a responder looks its loop up once, when
 * it starts. */
#include "loop.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "uring.h"

/* Callbacks made active while the loop runs its active ones (a task
 * resuming another, a bare yield) join the same pass: bound a pass so
 * that timers and I/O are looked at again at least this often. */
#define MAX_PASS_SECONDS 0.005
#define MAX_PASS_CALLBACKS 64

/* Kinds of objects attached to one loop: the prober is the only one. */
enum { LOOP_KINDS_MAX = 4 };

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
  bh_io_path io;
  bh_uring *ring;
  /* What modules above attached (bh_loop_attached), in order. */
  struct {
    const bh_loop_kind *kind;
    void *obj;
  } attached[LOOP_KINDS_MAX];
  unsigned nattached;
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

/* The path BH_IO asks for: *forced false for automatic. */
static bh_status wanted_io(bh_io_path *io, bool *forced, bh_err *err) {
  const char *v = getenv("BH_IO");
  *io = BH_IO_URING;
  *forced = v != NULL && v[0] != '\0';
  if (!*forced || strcmp(v, "uring") == 0) return BH_OK;
  if (strcmp(v, "epoll") == 0) {
    *io = BH_IO_EPOLL;
    return BH_OK;
  }
  return bh_err_set(
      err, BH_SYSTEM, NULL,
      "BH_IO must be \"uring\", \"epoll\" or empty, got \"%.40s\"", v);
}

/* Once per process: why an automatic choice fell back to epoll. */
static void say_fallback(const bh_err *why) {
  static atomic_flag said = ATOMIC_FLAG_INIT;
  if (atomic_flag_test_and_set(&said)) return;
  bh_log(BH_LOG_DEBUG, "io_uring is not available (%s): using epoll",
         why->message);
}

static struct event_base *new_base(bh_err *err) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  (void)pthread_once(&once, route_libevent_log);
  struct event_config *cfg = event_config_new();
  struct event_base *base = NULL;
  struct timeval pass = bh_timeval(MAX_PASS_SECONDS);
  if (cfg != NULL && event_config_set_max_dispatch_interval(
                         cfg, &pass, MAX_PASS_CALLBACKS, 0) == 0)
    base = event_base_new_with_config(cfg);
  if (cfg != NULL) event_config_free(cfg);
  if (base == NULL)
    bh_err_set(err, BH_SYSTEM, NULL,
               "cannot make an event loop (out of memory or descriptors)");
  return base;
}

struct event_base *bh_loop_open(bh_err *err) {
  bh_io_path io;
  bool forced;
  if (wanted_io(&io, &forced, err) != BH_OK) return NULL;
  loop_entry *e = calloc(1, sizeof *e);
  if (e == NULL) {
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory making an event loop");
    return NULL;
  }
  e->base = new_base(err);
  if (e->base == NULL) {
    free(e);
    return NULL;
  }
  e->io = BH_IO_EPOLL;
  if (io == BH_IO_URING) {
    bh_err why;
    bh_err_clear(&why);
    e->ring = bh_uring_new(e->base, &why);
    if (e->ring != NULL) {
      e->io = BH_IO_URING;
    } else if (forced) {
      bh_err_set(err, why.code, NULL, "BH_IO=uring: %s", why.message);
      event_base_free(e->base);
      free(e);
      return NULL;
    } else {
      say_fallback(&why);
    }
  }
  (void)pthread_mutex_lock(&loops_lock);
  e->next = loops;
  loops = e;
  (void)pthread_mutex_unlock(&loops_lock);
  return e->base;
}

struct event_base *bh_loop_new(void) {
  bh_err err;
  bh_err_clear(&err);
  struct event_base *base = bh_loop_open(&err);
  if (base == NULL) bh_log(BH_LOG_ERR, "%s", err.message);
  return base;
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
    /* What is attached first (the prober: its hasher's callbacks and the
     * ring's last completions may still reach the loop's events). */
    while (e->nattached > 0) {
      e->nattached--;
      e->attached[e->nattached].kind->free(e->attached[e->nattached].obj);
    }
    bh_uring_free(e->ring);
    free(e);
  }
  event_base_free(base);
}

bh_io_path bh_loop_io(struct event_base *base) {
  loop_entry *e = entry_of(base);
  return e != NULL ? e->io : BH_IO_EPOLL;
}

const char *bh_io_path_name(bh_io_path io) {
  return io == BH_IO_URING ? "uring" : "epoll";
}

bh_uring *bh_loop_ring(struct event_base *base) {
  loop_entry *e = entry_of(base);
  return e != NULL ? e->ring : NULL;
}

void *bh_loop_attached(struct event_base *base, const bh_loop_kind *kind) {
  loop_entry *e = entry_of(base);
  if (e == NULL) return NULL;
  /* Only the loop's own thread attaches to it: no race here. */
  for (unsigned i = 0; i < e->nattached; i++)
    if (e->attached[i].kind == kind) return e->attached[i].obj;
  if (e->nattached == LOOP_KINDS_MAX) return NULL;
  void *obj = kind->make(base, e->ring);
  if (obj != NULL) {
    e->attached[e->nattached].kind = kind;
    e->attached[e->nattached].obj = obj;
    e->nattached++;
  }
  return obj;
}

bool bh_timer_due(struct event *ev, double deadline) {
  double left = deadline - bh_mono_now();
  if (left <= 0) return true;
  struct timeval tv = bh_timeval(left);
  if (evtimer_add(ev, &tv) != 0) return true; /* cannot wait: act now */
  return false;
}
