/* The hasher (src/core/hasher.h): executables hashed by a worker thread,
 * results handed back to the loop thread. Jobs complete on the loop, in
 * the right values, from the cache when the file was hashed before; a
 * cancelled job's callback never runs; a failing job reports exe_hash;
 * freeing the hasher with jobs queued and running neither leaks nor
 * crashes (ASan, and descriptors counted); the loop keeps running its
 * timers while a large file is hashed. */
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "hasher.h"
#include "loop.h"
#include "net_helpers.h"

static struct event_base *base;
static pthread_t loop_thread;

typedef struct result {
  int calls;
  bool on_loop;
  bh_status st;
  bh_digests d;
  char message[BH_ERR_MESSAGE_MAX];
} result;

static void on_hashed(bh_status st, const bh_digests *d, const bh_err *err,
                      void *ctx) {
  result *r = ctx;
  r->calls++;
  r->on_loop = pthread_equal(pthread_self(), loop_thread) != 0;
  r->st = st;
  if (st == BH_OK) r->d = *d;
  snprintf(r->message, sizeof r->message, "%s", err ? err->message : "");
}

static bool called(void *arg) {
  return ((result *)arg)->calls > 0;
}

/* A file of n bytes of a pattern (sparse zeros when pattern is 0). */
static void make_file(const char *path, size_t n, int pattern) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  CHECK(fd >= 0);
  if (pattern == 0) {
    CHECK_INT(ftruncate(fd, (off_t)n), 0);
  } else {
    static char buf[1 << 16];
    memset(buf, pattern, sizeof buf);
    size_t done = 0;
    while (done < n) {
      ssize_t k = write(fd, buf, n - done < sizeof buf ? n - done : sizeof buf);
      if (k <= 0) break;
      done += (size_t)k;
    }
    CHECK_INT(done, n);
  }
  close(fd);
}

/* Submit path's hashing for owner; the job (or NULL). */
static bh_hash_job *submit_for(bh_hasher *h, uid_t owner, const char *path,
                               result *r) {
  struct stat st;
  bh_err err;
  memset(r, 0, sizeof *r);
  int fd;
  CHECK_CODE(bh_digest_open(path, path, &fd, &st, &err), BH_OK, &err);
  CHECK(fd >= 0);
  if (fd < 0) return NULL;
  bh_hash_job *j = bh_hasher_submit(h, owner, fd, &st, "the file", BH_ALGS_ALL,
                                    on_hashed, r);
  CHECK(j != NULL);
  return j;
}

static bh_hash_job *submit(bh_hasher *h, const char *path, result *r) {
  return submit_for(h, 0, path, r);
}

static void expect_digests(const char *path, const result *r) {
  bh_digests want;
  bh_err err;
  CHECK_CODE(bh_digest_file_uncached(path, BH_ALGS_ALL, &want, &err), BH_OK,
             &err);
  CHECK_CODE(r->st, BH_OK, NULL);
  CHECK(memcmp(&want, &r->d, sizeof want) == 0);
}

static void test_jobs_complete_on_loop(void) {
  bh_err err;
  bh_hasher *h = bh_hasher_new(base, &err);
  CHECK(h != NULL);
  enum { N = 12 };
  char paths[N][256];
  result r[N];
  bh_digest_cache_clear();
  for (int i = 0; i < N; i++) {
    char name[32];
    snprintf(name, sizeof name, "job%d", i);
    make_file(bh_test_path(paths[i], sizeof paths[i], name),
              (size_t)(i + 1) * 40000, 'a' + i);
    submit(h, paths[i], &r[i]);
  }
  for (int i = 0; i < N; i++)
    CHECK(r[i].calls == 0); /* never from inside submit */
  CHECK(loop_until(base, called, &r[N - 1], 30));
  for (int i = 0; i < N; i++) {
    CHECK(loop_until(base, called, &r[i], 30));
    CHECK_INT(r[i].calls, 1);
    CHECK(r[i].on_loop);
    expect_digests(paths[i], &r[i]);
  }
  /* Again: answered from the cache the worker filled, the same values. */
  bh_digest_stats before = bh_digest_cache_stats();
  result again;
  submit(h, paths[3], &again);
  CHECK(loop_until(base, called, &again, 30));
  CHECK(again.on_loop);
  expect_digests(paths[3], &again);
  CHECK_INT(bh_digest_cache_stats().hits, before.hits + 1);
  loop_for(base, 0.05);
  for (int i = 0; i < N; i++)
    CHECK_INT(r[i].calls, 1); /* exactly once */
  bh_hasher_free(h);
}

/* A cancelled job's callback never runs, the others' do; a job that
 * cannot be read reports exe_hash on the loop. */
static void test_cancel_and_failure(void) {
  bh_err err;
  bh_hasher *h = bh_hasher_new(base, &err);
  char big[256], small[256];
  make_file(bh_test_path(big, sizeof big, "cancel-big"), 16 << 20, 'x');
  make_file(bh_test_path(small, sizeof small, "cancel-small"), 1000, 'y');
  bh_digest_cache_clear();
  result a, b, c;
  bh_hash_job *ja = submit(h, big, &a);
  bh_hash_job *jb = submit(h, small, &b);
  bh_hash_job_cancel(jb); /* queued behind the big one */
  bh_hash_job_cancel(ja); /* probably running */
  submit(h, small, &c);
  CHECK(loop_until(base, called, &c, 30));
  expect_digests(small, &c);
  loop_for(base, 0.1);
  CHECK_INT(a.calls, 0);
  CHECK_INT(b.calls, 0);
  /* A descriptor that is not a file (a directory) fails reading. */
  struct stat st;
  int fd = open(bh_test_tmpdir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  CHECK(fd >= 0 && fstat(fd, &st) == 0);
  result d;
  memset(&d, 0, sizeof d);
  CHECK(bh_hasher_submit(h, 0, fd, &st, "a directory", BH_ALGS_ALL, on_hashed,
                         &d) != NULL);
  CHECK(loop_until(base, called, &d, 30));
  CHECK(d.on_loop);
  CHECK_CODE(d.st, BH_EXE_HASH, NULL);
  CHECK(strstr(d.message, "a directory") != NULL);
  bh_hasher_free(h);
}

/* Free with a job running and several queued: nothing is called, the
 * worker stops between chunks, every descriptor is closed. */
static void test_free_with_pending(void) {
  char big[256];
  make_file(bh_test_path(big, sizeof big, "pending"), 64 << 20, 0);
  int fds = bh_test_count_fds();
  for (int round = 0; round < 3; round++) {
    bh_err err;
    bh_hasher *h = bh_hasher_new(base, &err);
    CHECK(h != NULL);
    bh_digest_cache_clear();
    result r[5];
    for (int i = 0; i < 5; i++)
      submit(h, big, &r[i]);
    if (round == 1) usleep(20000); /* let the worker start the first */
    if (round == 2) bh_hash_job_cancel(NULL);
    double t0 = bh_test_now();
    bh_hasher_free(h);
    loop_for(base, 0.02);
    for (int i = 0; i < 5; i++)
      CHECK_INT(r[i].calls, 0);
    CHECK(bh_test_now() - t0 < 20);
  }
  CHECK_INT(bh_test_count_fds(), fds);
  /* A hasher that never got a job frees too. */
  bh_err err;
  bh_hasher_free(bh_hasher_new(base, &err));
  bh_hasher_free(NULL);
  CHECK_INT(bh_test_count_fds(), fds);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
  (*(int *)arg)++;
}

/* While the worker hashes a large file, the loop runs its timers. */
static void test_loop_not_blocked(void) {
  char big[256];
  make_file(bh_test_path(big, sizeof big, "blocking"), 96 << 20, 0);
  bh_err err;
  bh_hasher *h = bh_hasher_new(base, &err);
  bh_digest_cache_clear();
  int ticks = 0;
  struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, &ticks);
  struct timeval tv = {0, 2000};
  event_add(tick, &tv);
  result r;
  double t0 = bh_test_now();
  submit(h, big, &r);
  CHECK(loop_until(base, called, &r, 60));
  double took = bh_test_now() - t0;
  event_free(tick);
  CHECK_CODE(r.st, BH_OK, NULL);
  printf("  96 MiB hashed in %.3f s off the loop; %d timer ticks meanwhile\n",
         took, ticks);
  if (took > 0.05) CHECK(ticks >= 2);
  bh_hasher_free(h);
}

/* One owner's 3 x 256 MiB queued first, then another owner's small file:
 * the small one is done within a few slices, long before the first big
 * one; each owner's own jobs still end in their order. */
static void test_owners_take_turns(void) {
  char big[3][256], small[256];
  bh_err err;
  bh_hasher *h = bh_hasher_new(base, &err);
  bh_digest_cache_clear();
  result rb[3], rs;
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "turn%d", i);
    make_file(bh_test_path(big[i], sizeof big[i], name), (256u << 20) + i, 0);
  }
  make_file(bh_test_path(small, sizeof small, "turn_small"), 300000, 's');
  double t0 = bh_test_now();
  for (int i = 0; i < 3; i++)
    submit_for(h, 65534, big[i], &rb[i]);
  submit_for(h, 0, small, &rs);
  CHECK(loop_until(base, called, &rs, 60));
  double small_took = bh_test_now() - t0;
  bool small_first = rb[0].calls == 0;
  for (int i = 0; i < 3; i++)
    CHECK(loop_until(base, called, &rb[i], 120));
  double all_took = bh_test_now() - t0;
  expect_digests(small, &rs);
  printf(
      "  another owner's small file hashed after %.3f s, while 768 MiB "
      "of the first owner's took %.3f s\n",
      small_took, all_took);
  CHECK(small_first);
  CHECK(small_took < 0.25);
  bh_hasher_free(h);
  bh_digest_cache_clear();
}

int main(void) {
  base = bh_loop_new();
  loop_thread = pthread_self();
  RUN(test_jobs_complete_on_loop);
  RUN(test_cancel_and_failure);
  RUN(test_free_with_pending);
  RUN(test_loop_not_blocked);
  RUN(test_owners_take_turns);
  bh_loop_free(base);
  bh_digest_cache_clear();
  return bh_test_summary();
}
