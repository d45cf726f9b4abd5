/* The hasher's worker thread and its hand-back through an eventfd (see
 * hasher.h). The loop thread owns every job until it is queued; the
 * worker owns the running one; a done job goes back on the `done` list and
 * the loop frees it after its callback. Only the two lists and the flags
 * are shared, under one mutex. */
#include "hasher.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "digest.h"

struct bh_hash_job {
  bh_hash_job *next;
  int fd;
  struct stat st;
  unsigned algs;
  char name[96];
  bh_hash_cb cb;
  void *ctx;
  bool cancelled; /* loop side only: the caller is gone */
  bh_status status;
  bh_err err;
  bh_digests d;
};

struct bh_hasher {
  int efd;
  struct event *ev;
  pthread_t thread;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  bh_hash_job *queue, *queue_tail; /* waiting, in order */
  bh_hash_job *done;               /* finished, any order */
  atomic_bool stop;
};

static void job_free(bh_hash_job *j) {
  if (j->fd >= 0) (void)close(j->fd); /* read-only */
  free(j);
}

/* The worker: take a job, answer it from the cache or hash it, put it on
 * done and wake the loop; until told to stop. */
static void *worker(void *arg) {
  bh_hasher *h = arg;
  (void)pthread_mutex_lock(&h->lock);
  while (!atomic_load(&h->stop)) {
    bh_hash_job *j = h->queue;
    if (j == NULL) {
      (void)pthread_cond_wait(&h->wake, &h->lock);
      continue;
    }
    h->queue = j->next;
    if (h->queue == NULL) h->queue_tail = NULL;
    (void)pthread_mutex_unlock(&h->lock);
    bh_err_clear(&j->err);
    if (bh_digest_cache_get(&j->st, j->algs, &j->d))
      j->status = BH_OK;
    else
      j->status = bh_digest_fd(j->fd, &j->st, j->name, j->algs, &h->stop, &j->d,
                               &j->err);
    (void)close(j->fd);
    j->fd = -1;
    (void)pthread_mutex_lock(&h->lock);
    j->next = h->done;
    h->done = j;
    uint64_t one = 1;
    ssize_t n = write(h->efd, &one, sizeof one);
    (void)n; /* the counter cannot overflow with one write per job */
  }
  (void)pthread_mutex_unlock(&h->lock);
  return NULL;
}

/* The eventfd turned readable: run the callbacks of the finished jobs. */
static void on_done(evutil_socket_t fd, short what, void *arg) {
  bh_hasher *h = arg;
  uint64_t v;
  (void)what;
  while (read(fd, &v, sizeof v) == (ssize_t)sizeof v) {
  }
  (void)pthread_mutex_lock(&h->lock);
  bh_hash_job *list = h->done;
  h->done = NULL;
  (void)pthread_mutex_unlock(&h->lock);
  while (list != NULL) {
    bh_hash_job *j = list;
    list = j->next;
    if (!j->cancelled) j->cb(j->status, &j->d, &j->err, j->ctx);
    job_free(j);
  }
}

bh_hasher *bh_hasher_new(struct event_base *base, bh_err *err) {
  bh_hasher *h = calloc(1, sizeof *h);
  if (h == NULL) {
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory for a hasher");
    return NULL;
  }
  h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (h->efd < 0) {
    bh_err_set(err, BH_SYSTEM, NULL, "eventfd for the hasher: %s",
               strerror(errno));
    free(h);
    return NULL;
  }
  h->ev = event_new(base, h->efd, EV_READ | EV_PERSIST, on_done, h);
  if (h->ev == NULL || event_add(h->ev, NULL) != 0) {
    bh_err_set(err, BH_SYSTEM, NULL, "cannot watch the hasher's eventfd");
    if (h->ev != NULL) event_free(h->ev);
    (void)close(h->efd);
    free(h);
    return NULL;
  }
  (void)pthread_mutex_init(&h->lock, NULL);
  (void)pthread_cond_init(&h->wake, NULL);
  atomic_init(&h->stop, false);
  return h;
}

static void free_list(bh_hash_job *j) {
  while (j != NULL) {
    bh_hash_job *next = j->next;
    job_free(j);
    j = next;
  }
}

void bh_hasher_free(bh_hasher *h) {
  if (h == NULL) return;
  (void)pthread_mutex_lock(&h->lock);
  atomic_store(&h->stop, true);
  (void)pthread_cond_signal(&h->wake);
  (void)pthread_mutex_unlock(&h->lock);
  if (h->started) (void)pthread_join(h->thread, NULL);
  free_list(h->queue);
  free_list(h->done);
  event_free(h->ev);
  (void)close(h->efd);
  (void)pthread_cond_destroy(&h->wake);
  (void)pthread_mutex_destroy(&h->lock);
  free(h);
}

bh_hash_job *bh_hasher_submit(bh_hasher *h, int fd, const struct stat *st,
                              const char *name, unsigned algs, bh_hash_cb cb,
                              void *ctx) {
  bh_hash_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    (void)close(fd);
    return NULL;
  }
  j->fd = fd;
  j->st = *st;
  j->algs = algs;
  (void)snprintf(j->name, sizeof j->name, "%s", name);
  j->cb = cb;
  j->ctx = ctx;
  if (!h->started) {
    /* The worker never touches signals: block them all in it, so the
     * host's handlers keep running on the loop thread. */
    sigset_t all, old;
    (void)sigfillset(&all);
    (void)pthread_sigmask(SIG_SETMASK, &all, &old);
    h->started = pthread_create(&h->thread, NULL, worker, h) == 0;
    (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!h->started) {
      job_free(j);
      return NULL;
    }
  }
  (void)pthread_mutex_lock(&h->lock);
  if (h->queue_tail != NULL)
    h->queue_tail->next = j;
  else
    h->queue = j;
  h->queue_tail = j;
  (void)pthread_cond_signal(&h->wake);
  (void)pthread_mutex_unlock(&h->lock);
  return j;
}

void bh_hash_job_cancel(bh_hash_job *j) {
  if (j != NULL) j->cancelled = true;
}
