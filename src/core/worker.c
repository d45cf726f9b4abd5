/* The worker thread, its turns between groups, and its hand-back through
 * an eventfd (see worker.h). The loop thread owns a work until it is
 * queued and again once it is on the `done` list; the worker thread owns
 * the one it runs. Only the groups, the done list and the stop flag are
 * shared, under one mutex. */
#include "worker.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* The works of one group, in order; in the worker's turns while it has
 * any. */
typedef struct group {
  uint64_t id;
  bh_list works; /* bh_work.link; the first is the one run */
  bh_list link;  /* in bh_worker.groups */
} group;

struct bh_worker {
  int efd;
  struct event *ev;
  pthread_t thread;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  bh_list groups; /* groups with works, in turn order: the first's is next */
  bh_list done;   /* works done, in order */
  bool stop;
};

static bh_work *first_work(group *g) {
  return bh_list_entry(bh_list_first(&g->works), bh_work, link);
}

/* The turn passes from g (the first group) to the next one; when done,
 * g's first work goes to the done list and the loop is woken first, and g
 * leaves the turns when it has no work left. Caller holds the lock. */
static void next_turn(bh_worker *k, group *g, bool done) {
  bh_list_remove(&g->link);
  if (done) {
    bh_work *w = first_work(g);
    bh_list_remove(&w->link);
    bh_list_insert_tail(&k->done, &w->link);
    uint64_t one = 1;
    ssize_t n = write(k->efd, &one, sizeof one);
    (void)n; /* the counter cannot overflow with one write per work */
  }
  if (bh_list_empty(&g->works))
    free(g);
  else
    bh_list_insert_tail(&k->groups, &g->link);
}

/* The thread: in turn, one run of the first work of each group; until
 * told to stop. The running group stays first in the turns meanwhile,
 * so that submit finds it; only this thread removes a group. */
static void *worker_main(void *arg) {
  bh_worker *k = arg;
  (void)pthread_mutex_lock(&k->lock);
  while (!k->stop) {
    bh_list *first = bh_list_first(&k->groups);
    if (first == NULL) {
      (void)pthread_cond_wait(&k->wake, &k->lock);
      continue;
    }
    group *g = bh_list_entry(first, group, link);
    bh_work *w = first_work(g);
    (void)pthread_mutex_unlock(&k->lock);
    bool done = w->run(w);
    (void)pthread_mutex_lock(&k->lock);
    next_turn(k, g, done);
  }
  (void)pthread_mutex_unlock(&k->lock);
  return NULL;
}

/* Hand back the works done (oldest first) and empty the list. */
static void deliver(bh_worker *k) {
  bh_list list;
  (void)pthread_mutex_lock(&k->lock);
  bh_list_move(&k->done, &list);
  (void)pthread_mutex_unlock(&k->lock);
  bh_list *n;
  while ((n = bh_list_first(&list)) != NULL) {
    bh_list_remove(n);
    bh_work *w = bh_list_entry(n, bh_work, link);
    w->finish(w, true);
  }
}

/* The eventfd turned readable: works are done. */
static void on_done(evutil_socket_t fd, short what, void *arg) {
  uint64_t v;
  (void)what;
  while (read(fd, &v, sizeof v) == (ssize_t)sizeof v) {
  }
  deliver(arg);
}

bh_worker *bh_worker_new(struct event_base *base, bh_err *err) {
  bh_worker *k = calloc(1, sizeof *k);
  if (k == NULL) {
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory for a worker");
    return NULL;
  }
  k->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (k->efd < 0) {
    bh_err_set(err, BH_SYSTEM, NULL, "eventfd for a worker: %s",
               strerror(errno));
    free(k);
    return NULL;
  }
  k->ev = event_new(base, k->efd, EV_READ | EV_PERSIST, on_done, k);
  if (k->ev == NULL || event_add(k->ev, NULL) != 0) {
    bh_err_set(err, BH_SYSTEM, NULL, "cannot watch a worker's eventfd");
    if (k->ev != NULL) event_free(k->ev);
    (void)close(k->efd);
    free(k);
    return NULL;
  }
  (void)pthread_mutex_init(&k->lock, NULL);
  (void)pthread_cond_init(&k->wake, NULL);
  bh_list_init(&k->groups);
  bh_list_init(&k->done);
  return k;
}

/* The group id among the turns, or NULL. Caller holds the lock. */
static group *find_group(bh_worker *k, uint64_t id) {
  for (bh_list *n = k->groups.next; n != &k->groups; n = n->next) {
    group *g = bh_list_entry(n, group, link);
    if (g->id == id) return g;
  }
  return NULL;
}

bool bh_worker_submit_to(bh_worker *k, uint64_t id, bh_work *w) {
  if (!k->started) {
    /* The thread never takes signals: the host's handlers run on the
     * loop thread. */
    sigset_t all, old;
    (void)sigfillset(&all);
    (void)pthread_sigmask(SIG_SETMASK, &all, &old);
    k->started = pthread_create(&k->thread, NULL, worker_main, k) == 0;
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!k->started) return false;
  }
  (void)pthread_mutex_lock(&k->lock);
  group *g = find_group(k, id);
  if (g == NULL && (g = malloc(sizeof *g)) != NULL) {
    g->id = id;
    bh_list_init(&g->works);
    bh_list_insert_tail(&k->groups, &g->link); /* last in this round */
  }
  if (g != NULL) {
    bh_list_insert_tail(&g->works, &w->link);
    (void)pthread_cond_signal(&k->wake);
  }
  (void)pthread_mutex_unlock(&k->lock);
  return g != NULL;
}

bool bh_worker_submit(bh_worker *k, bh_work *w) {
  return bh_worker_submit_to(k, 0, w);
}

void bh_worker_free(bh_worker *k) {
  if (k == NULL) return;
  (void)pthread_mutex_lock(&k->lock);
  k->stop = true;
  (void)pthread_cond_signal(&k->wake);
  (void)pthread_mutex_unlock(&k->lock);
  if (k->started) (void)pthread_join(k->thread, NULL);
  deliver(k); /* done before the stop: their callers get them */
  bh_list *gn;
  while ((gn = bh_list_first(&k->groups)) != NULL) {
    group *g = bh_list_entry(gn, group, link);
    bh_list *n;
    while ((n = bh_list_first(&g->works)) != NULL) {
      bh_list_remove(n);
      bh_work *w = bh_list_entry(n, bh_work, link);
      w->finish(w, false);
    }
    bh_list_remove(gn);
    free(g);
  }
  event_free(k->ev);
  (void)close(k->efd);
  (void)pthread_cond_destroy(&k->wake);
  (void)pthread_mutex_destroy(&k->lock);
  free(k);
}
