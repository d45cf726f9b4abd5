/* The hasher's worker thread and its hand-back through an eventfd (see
 * hasher.h). The loop thread owns every job until it is queued; the
 * worker owns the running ones; a done job goes back on the `done` list
 * and the loop frees it after its callback. Only the queues, the lists
 * and the flags are shared, under one mutex.
 *
 * Fairness: jobs wait in one queue per owner (the uid of the process
 * whose executable it is), and the worker serves the owners in turn, one
 * slice of at most SLICE_BYTES of the job at the head of each owner's
 * queue per turn. An owner's jobs run one after the other; one owner's
 * gigabyte only ever delays another owner's job by a slice. */
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

/* About 3 ms of hashing (both digests) on the development machine. */
#define SLICE_BYTES ((uint64_t)4 << 20)

typedef struct owner_q owner_q;

struct bh_hash_job {
  bh_hash_job *next;
  int fd;
  struct stat st;
  unsigned algs;
  char name[96];
  bh_hash_cb cb;
  void *ctx;
  bool cancelled;          /* loop side only: the caller is gone */
  bh_digest_state *digest; /* worker side: the hashing under way */
  bh_status status;
  bh_err err;
  bh_digests d;
};

/* The jobs of one owner, in order; an entry of the worker's ring while
 * it has any. */
struct owner_q {
  uid_t owner;
  bh_hash_job *head, *tail;
  owner_q *next; /* the ring of owners with jobs */
};

struct bh_hasher {
  int efd;
  struct event *ev;
  pthread_t thread;
  bool started;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  owner_q *turn;     /* the ring of owners with jobs: whose turn it is */
  bh_hash_job *done; /* finished, any order */
  atomic_bool stop;
};

static void job_free(bh_hash_job *j) {
  if (j->fd >= 0) (void)close(j->fd); /* read-only */
  bh_digest_abort(j->digest);
  free(j);
}

/* Queue j at the end of its owner's queue, adding the owner to the ring
 * (just before the one whose turn it is: last in this round). Caller
 * holds the lock. NULL when out of memory. */
static bool enqueue(bh_hasher *h, uid_t owner, bh_hash_job *j) {
  owner_q *q = NULL;
  if (h->turn != NULL) {
    q = h->turn;
    do {
      if (q->owner == owner) break;
      q = q->next;
    } while (q != h->turn);
    if (q->owner != owner) q = NULL;
  }
  if (q == NULL) {
    if ((q = calloc(1, sizeof *q)) == NULL) return false;
    q->owner = owner;
    if (h->turn == NULL) {
      q->next = q;
      h->turn = q;
    } else { /* after the last of the ring: the one before turn */
      owner_q *last = h->turn;
      while (last->next != h->turn)
        last = last->next;
      last->next = q;
      q->next = h->turn;
    }
  }
  if (q->tail != NULL)
    q->tail->next = j;
  else
    q->head = j;
  q->tail = j;
  return true;
}

/* The worker's turn passes from q (h->turn) to the next owner; when
 * finished, q's head job is taken off first, and q leaves the ring when
 * it has no job left. Caller holds the lock. */
static void next_turn(bh_hasher *h, owner_q *q, bool finished) {
  if (finished) {
    bh_hash_job *j = q->head;
    q->head = j->next;
    if (q->head == NULL) q->tail = NULL;
    j->next = NULL;
  }
  h->turn = q->next;
  if (q->head != NULL) return;
  if (q->next == q) {
    h->turn = NULL;
  } else {
    owner_q *prev = q->next;
    while (prev->next != q)
      prev = prev->next;
    prev->next = q->next;
  }
  free(q);
}

/* One slice of j, without the lock: from the cache at its start, else
 * hashing SLICE_BYTES more. True when j is finished (status set). */
static bool work_on(bh_hasher *h, bh_hash_job *j) {
  if (j->digest == NULL) {
    bh_err_clear(&j->err);
    if (bh_digest_cache_get(&j->st, j->algs, &j->d)) {
      j->status = BH_OK;
      return true;
    }
    if ((j->digest = bh_digest_begin(j->algs)) == NULL) {
      j->status = bh_err_set(&j->err, BH_EXE_HASH, NULL,
                             "cannot hash %s: out of memory", j->name);
      return true;
    }
  }
  bool end = false;
  int e = atomic_load(&h->stop)
              ? ECANCELED
              : bh_digest_step(j->digest, j->fd, SLICE_BYTES, &end);
  if (e != 0) {
    bh_digest_abort(j->digest);
    j->digest = NULL;
    j->status = bh_err_set(&j->err, BH_EXE_HASH, NULL, "cannot read %s: %s",
                           j->name, strerror(e));
    return true;
  }
  if (!end) return false;
  j->status = bh_digest_end(j->digest, &j->st, j->name, &j->d, &j->err);
  j->digest = NULL;
  return true;
}

/* The worker: in turn, one slice of the first job of each owner; a
 * finished job goes to done and wakes the loop; until told to stop. */
static void *worker(void *arg) {
  bh_hasher *h = arg;
  (void)pthread_mutex_lock(&h->lock);
  while (!atomic_load(&h->stop)) {
    owner_q *q = h->turn;
    if (q == NULL) {
      (void)pthread_cond_wait(&h->wake, &h->lock);
      continue;
    }
    bh_hash_job *j = q->head;
    (void)pthread_mutex_unlock(&h->lock);
    bool finished = work_on(h, j);
    if (finished) {
      (void)close(j->fd);
      j->fd = -1;
    }
    (void)pthread_mutex_lock(&h->lock);
    /* the ring may have grown meanwhile, never lost q: only we remove */
    next_turn(h, q, finished);
    if (!finished) continue;
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
  if (h->turn != NULL) { /* open the ring into a list, free it */
    owner_q *q = h->turn->next;
    h->turn->next = NULL;
    while (q != NULL) {
      owner_q *next = q->next;
      free_list(q->head);
      free(q);
      q = next;
    }
    h->turn = NULL;
  }
  free_list(h->done);
  event_free(h->ev);
  (void)close(h->efd);
  (void)pthread_cond_destroy(&h->wake);
  (void)pthread_mutex_destroy(&h->lock);
  free(h);
}

bh_hash_job *bh_hasher_submit(bh_hasher *h, uid_t owner, int fd,
                              const struct stat *st, const char *name,
                              unsigned algs, bh_hash_cb cb, void *ctx) {
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
  bool queued = enqueue(h, owner, j);
  if (queued) (void)pthread_cond_signal(&h->wake);
  (void)pthread_mutex_unlock(&h->lock);
  if (!queued) {
    job_free(j);
    return NULL;
  }
  return j;
}

void bh_hash_job_cancel(bh_hash_job *j) {
  if (j != NULL) j->cancelled = true;
}
