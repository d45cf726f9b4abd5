/* The worker thread and its hand-back through an eventfd (see worker.h).
 * The loop thread owns a work until it is queued and again once it is on
 * the `done` list; the worker thread owns the one it runs. Only the two
 * lists and the stop flag are shared, under one mutex. */
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

struct bh_worker {
  int efd;
  struct event *ev;
  pthread_t thread;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  bh_work *queue, *queue_tail; /* waiting, in order */
  bh_work *done;               /* finished, newest first */
  bool stop;
};

/* The thread: take a work, run it, put it on done and wake the loop;
 * until told to stop. */
static void *worker_main(void *arg) {
  bh_worker *k = arg;
  (void)pthread_mutex_lock(&k->lock);
  while (!k->stop) {
    bh_work *w = k->queue;
    if (w == NULL) {
      (void)pthread_cond_wait(&k->wake, &k->lock);
      continue;
    }
    k->queue = w->next;
    if (k->queue == NULL) k->queue_tail = NULL;
    (void)pthread_mutex_unlock(&k->lock);
    w->run(w);
    (void)pthread_mutex_lock(&k->lock);
    w->next = k->done;
    k->done = w;
    uint64_t one = 1;
    ssize_t n = write(k->efd, &one, sizeof one);
    (void)n; /* the counter cannot overflow with one write per work */
  }
  (void)pthread_mutex_unlock(&k->lock);
  return NULL;
}

/* Hand back the finished works (oldest first) and empty the list. */
static void deliver(bh_worker *k) {
  (void)pthread_mutex_lock(&k->lock);
  bh_work *list = k->done;
  k->done = NULL;
  (void)pthread_mutex_unlock(&k->lock);
  bh_work *ordered = NULL;
  while (list != NULL) { /* reverse: done is newest first */
    bh_work *w = list;
    list = w->next;
    w->next = ordered;
    ordered = w;
  }
  while (ordered != NULL) {
    bh_work *w = ordered;
    ordered = w->next;
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
  return k;
}

bool bh_worker_submit(bh_worker *k, bh_work *w) {
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
  w->next = NULL;
  (void)pthread_mutex_lock(&k->lock);
  if (k->queue_tail != NULL)
    k->queue_tail->next = w;
  else
    k->queue = w;
  k->queue_tail = w;
  (void)pthread_cond_signal(&k->wake);
  (void)pthread_mutex_unlock(&k->lock);
  return true;
}

void bh_worker_free(bh_worker *k) {
  if (k == NULL) return;
  (void)pthread_mutex_lock(&k->lock);
  k->stop = true;
  (void)pthread_cond_signal(&k->wake);
  (void)pthread_mutex_unlock(&k->lock);
  if (k->started) (void)pthread_join(k->thread, NULL);
  deliver(k); /* done before the stop: their callers get them */
  while (k->queue != NULL) {
    bh_work *w = k->queue;
    k->queue = w->next;
    w->finish(w, false);
  }
  event_free(k->ev);
  (void)close(k->efd);
  (void)pthread_cond_destroy(&k->wake);
  (void)pthread_mutex_destroy(&k->lock);
  free(k);
}
