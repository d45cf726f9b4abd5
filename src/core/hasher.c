/* The hasher: jobs of a worker, one group per owner (see hasher.h). The
 * loop thread owns a job until it is queued and again when its worker
 * hands it back; the worker thread runs it a slice at a time meanwhile. */
#include "hasher.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "digest.h"
#include "worker.h"

/* About 3 ms of hashing (both digests) on the development machine. */
#define SLICE_BYTES ((uint64_t)4 << 20)

struct bh_hasher {
  bh_worker *worker;
  bool freeing; /* being freed: callbacks no longer run */
};

struct bh_hash_job {
  bh_work work;
  bh_hasher *h;
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

static void job_free(bh_hash_job *j) {
  if (j->fd >= 0) (void)close(j->fd); /* read-only */
  bh_digest_abort(j->digest);
  free(j);
}

/* One slice of j, on the worker thread: from the cache at its start,
 * else hashing SLICE_BYTES more. True when j is done (status set; its
 * descriptor closed). */
static bool work_on(bh_hash_job *j) {
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
  j->status =
      bh_digest_step(j->digest, j->fd, SLICE_BYTES, j->name, &end, &j->err);
  if (j->status != BH_OK) {
    bh_digest_abort(j->digest);
    j->digest = NULL;
    return true;
  }
  if (!end) return false;
  j->status = bh_digest_end(j->digest, &j->st, j->name, &j->d, &j->err);
  j->digest = NULL;
  return true;
}

static bool job_run(bh_work *w) {
  bh_hash_job *j = bh_container_of(w, bh_hash_job, work);
  if (!work_on(j)) return false;
  (void)close(j->fd); /* read-only */
  j->fd = -1;
  return true;
}

/* On the loop: the callback, unless the caller or the hasher is gone. */
static void job_finish(bh_work *w, bool done) {
  bh_hash_job *j = bh_container_of(w, bh_hash_job, work);
  if (done && !j->cancelled && !j->h->freeing)
    j->cb(j->status, &j->d, &j->err, j->ctx);
  job_free(j);
}

bh_hasher *bh_hasher_new(struct event_base *base, bh_err *err) {
  bh_hasher *h = calloc(1, sizeof *h);
  if (h == NULL) {
    bh_err_set(err, BH_SYSTEM, NULL, "out of memory for a hasher");
    return NULL;
  }
  if ((h->worker = bh_worker_new(base, err)) == NULL) {
    free(h);
    return NULL;
  }
  return h;
}

void bh_hasher_free(bh_hasher *h) {
  if (h == NULL) return;
  h->freeing = true;
  bh_worker_free(h->worker);
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
  j->work.run = job_run;
  j->work.finish = job_finish;
  j->h = h;
  j->fd = fd;
  j->st = *st;
  j->algs = algs;
  (void)snprintf(j->name, sizeof j->name, "%s", name);
  j->cb = cb;
  j->ctx = ctx;
  if (!bh_worker_submit_to(h->worker, (uint64_t)owner, &j->work)) {
    job_free(j);
    return NULL;
  }
  return j;
}

void bh_hash_job_cancel(bh_hash_job *j) {
  if (j != NULL) j->cancelled = true;
}
