/* The worker thread (worker.h) and the descriptor reserve (fdreserve.h):
 * works run in order off the loop thread and come back on it; freeing a
 * worker hands back every work exactly once; groups take turns a slice
 * at a time; with the descriptor table full, the reserve still lets a
 * walk and a read open what they need, and without it the walk says what
 * it could not open. */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdreserve.h"
#include "loop.h"
#include "manifest_helpers.h"
#include "testutil.h"
#include "worker.h"

typedef struct job {
  bh_work work;
  int n;
  pthread_t ran_on;
  int *order; /* where finish records n */
  int *done;
  bool ran;
} job;

static bool job_run(bh_work *w) {
  job *j = (job *)w;
  j->ran_on = pthread_self();
  usleep(2000);
  return true;
}

static void job_finish(bh_work *w, bool ran) {
  job *j = (job *)w;
  j->ran = ran;
  j->order[(*j->done)++] = j->n;
}

static void test_order_and_threads(void) {
  struct event_base *base = bh_loop_new();
  bh_err err;
  bh_worker *k = bh_worker_new(base, &err);
  CHECK(k != NULL);
  enum { N = 20 };
  job jobs[N];
  int order[N], done = 0;
  for (int i = 0; i < N; i++) {
    jobs[i] = (job){.work = {.run = job_run, .finish = job_finish},
                    .n = i,
                    .order = order,
                    .done = &done};
    CHECK(bh_worker_submit(k, &jobs[i].work));
  }
  double t0 = bh_test_now();
  while (done < N && bh_test_now() - t0 < 10)
    event_base_loop(base, EVLOOP_ONCE);
  CHECK_INT(done, N);
  for (int i = 0; i < N; i++) {
    CHECK_INT(order[i], i); /* in the order submitted */
    CHECK(jobs[i].ran);
    CHECK(!pthread_equal(jobs[i].ran_on, pthread_self())); /* off the loop */
  }
  bh_worker_free(k);
  bh_loop_free(base);
}

/* Freed with works queued: each gets its finish once, on this thread,
 * ran false for those never run. */
static void test_free_with_queued(void) {
  struct event_base *base = bh_loop_new();
  bh_worker *k = bh_worker_new(base, NULL);
  enum { N = 50 };
  job jobs[N];
  int order[N], done = 0;
  for (int i = 0; i < N; i++) {
    jobs[i] = (job){.work = {.run = job_run, .finish = job_finish},
                    .n = i,
                    .order = order,
                    .done = &done};
    CHECK(bh_worker_submit(k, &jobs[i].work));
  }
  bh_worker_free(k); /* without running the loop: 50 x 2 ms not done */
  CHECK_INT(done, N);
  int never = 0;
  for (int i = 0; i < N; i++)
    never += !jobs[i].ran;
  printf("  freed with %d works queued: %d had not run\n", N, never);
  CHECK(never > 0);
  bh_loop_free(base);
}

/* A work done in slices: each run sleeps 2 ms, until slices are left. */
typedef struct sliced {
  job j;
  int slices;
  atomic_int runs; /* read by the test while the worker runs it */
} sliced;

static bool sliced_run(bh_work *w) {
  sliced *s = (sliced *)w;
  int runs = atomic_fetch_add(&s->runs, 1) + 1;
  usleep(2000);
  return runs >= s->slices;
}

/* Groups take turns a run at a time: a short work of group 2, queued
 * behind a 100-slice work of group 1, is done after a slice or two of
 * group 1's, not after all of them; group 1's work runs every slice and
 * comes back once. Freed in the middle of a sliced work, the work gets
 * its finish with done false. */
static void test_groups_take_turns(void) {
  struct event_base *base = bh_loop_new();
  bh_worker *k = bh_worker_new(base, NULL);
  CHECK(k != NULL);
  int order[2], done = 0;
  sliced big = {.j = {.work = {.run = sliced_run, .finish = job_finish},
                      .n = 1,
                      .order = order,
                      .done = &done},
                .slices = 100};
  sliced small = {.j = {.work = {.run = sliced_run, .finish = job_finish},
                        .n = 2,
                        .order = order,
                        .done = &done},
                  .slices = 1};
  CHECK(bh_worker_submit_to(k, 1, &big.j.work));
  CHECK(bh_worker_submit_to(k, 2, &small.j.work));
  double t0 = bh_test_now();
  while (done < 2 && bh_test_now() - t0 < 10)
    event_base_loop(base, EVLOOP_ONCE);
  CHECK_INT(done, 2);
  CHECK_INT(order[0], 2); /* the short one first */
  CHECK_INT(order[1], 1);
  CHECK_INT(atomic_load(&big.runs), 100);
  CHECK_INT(atomic_load(&small.runs), 1);
  CHECK(big.j.ran && small.j.ran);

  sliced again = {.j = {.work = {.run = sliced_run, .finish = job_finish},
                        .n = 3,
                        .order = order,
                        .done = &done},
                  .slices = 1000};
  done = 0;
  CHECK(bh_worker_submit_to(k, 1, &again.j.work));
  t0 = bh_test_now();
  while (atomic_load(&again.runs) < 3 && bh_test_now() - t0 < 10)
    usleep(1000); /* a few slices */
  bh_worker_free(k);
  CHECK_INT(done, 1);
  CHECK(!again.j.ran); /* stopped between slices: not done */
  CHECK(atomic_load(&again.runs) >= 3 && atomic_load(&again.runs) < 1000);
  event_base_free(base);
}

/* Fill the descriptor table (dup until EMFILE); returns how many were
 * taken into fds (cap of them at most). */
static int fill_table(int *fds, int cap) {
  int n = 0;
  while (n < cap) {
    int fd = dup(0);
    if (fd < 0) break;
    fds[n++] = fd;
  }
  return n;
}

/* In a child with a 64-descriptor table: with the reserve, a full table
 * still lets a walk of 4 levels and a manifest read through; without it,
 * the walk fails and says so. Exit status: 0 all as expected. */
static int exhausted_child(const char *root, const char *manifest) {
  struct rlimit rl = {64, 64};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 10;
  if (bh_fd_reserve_setup(BH_FD_RESERVE_DEFAULT, NULL) != BH_OK) return 11;
  if (bh_fd_reserve_held() != BH_FD_RESERVE_DEFAULT) return 12;
  static int fds[4096];
  int n = fill_table(fds, 4096);
  if (n == 0 || dup(0) >= 0) return 13; /* really full */
  bh_manifest_list l;
  bh_err err;
  bh_manifest m;
  if (bh_manifest_find(root, -1, &l, &err) != BH_OK) return 14;
  int ok = l.count == 1 && l.nproblems == 0;
  bh_manifest_list_free(&l);
  if (!ok) return 15;
  if (bh_manifest_read(manifest, true, &m, &err) != BH_OK) return 16;
  bh_manifest_clear(&m);
  /* the reserve was given back and taken again: still there */
  if (bh_fd_reserve_held() == 0) return 17;
  /* now without a reserve: the root itself cannot be opened */
  bh_fd_reserve_close();
  (void)fill_table(fds + n, 4096 - n);
  if (bh_manifest_find(root, -1, &l, &err) == BH_OK) return 18;
  if (strstr(err.message, "Too many open files") == NULL) return 19;
  if (bh_manifest_read(manifest, true, &m, &err) != BH_SYSTEM) return 20;
  return 0;
}

static void test_reserve_under_exhaustion(void) {
  char root[256], dir[512], manifest[600];
  bh_test_path(root, sizeof root, "tree");
  (void)snprintf(dir, sizeof dir, "%s/a/b/c/d", root);
  char cmd[700];
  (void)snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
  CHECK_INT(system(cmd), 0);
  (void)snprintf(manifest, sizeof manifest, "%s/%s", dir, BH_MANIFEST_NAME);
  bh_manifest m;
  bh_err err;
  mh_manifest(&m, "deep", 2);
  CHECK_CODE(bh_manifest_write(manifest, &m, &err), BH_OK, &err);
  bh_manifest_clear(&m);
  pid_t pid = fork();
  if (pid == 0) _exit(exhausted_child(root, manifest));
  int status = 0;
  CHECK_INT(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status));
  CHECK_INT(WEXITSTATUS(status), 0);
}

/* The soft limit is raised to the hard one at setup. */
static void test_raises_soft_limit(void) {
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit rl = {32, 2048};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) _exit(10);
    (void)bh_fd_reserve_setup(4, NULL);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur != 2048) _exit(11);
    _exit(bh_fd_reserve_held() == 4 ? 0 : 12);
  }
  int status = 0;
  CHECK_INT(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A directory below the root that cannot be opened is named, and the
 * walk goes on (as another user: root opens everything). */
static void test_walk_names_what_it_cannot_read(void) {
  char root[256], cmd[2048];
  bh_test_path(root, sizeof root, "walk");
  (void)snprintf(
      cmd, sizeof cmd,
      "mkdir -p '%.200s/open/x' '%.200s/closed/y' && chmod 0755 '%.200s' && "
      "touch '%.200s/open/x/%.200s' '%.200s/closed/y/%.200s' && chmod 0755 "
      "'%.200s' "
      "'%.200s/open' '%.200s/open/x' && chmod 0700 '%.200s/closed'",
      root, root, bh_test_tmpdir(), root, BH_MANIFEST_NAME, root,
      BH_MANIFEST_NAME, root, root, root, root);
  CHECK_INT(system(cmd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    bool as_root = geteuid() == 0;
    if (as_root && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(10);
    if (!as_root) {
      char c[600];
      (void)snprintf(c, sizeof c, "chmod 0000 '%s/closed'", root);
      if (system(c) != 0) _exit(11);
    }
    bh_manifest_list l;
    bh_err err;
    if (bh_manifest_find(root, -1, &l, &err) != BH_OK) _exit(12);
    bool named = l.nproblems == 1 &&
                 strstr(l.problems[0], "/closed: Permission denied") != NULL;
    int code = l.count == 1 && named ? 0 : 13;
    bh_manifest_list_free(&l);
    _exit(code);
  }
  int status = 0;
  CHECK_INT(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status));
  CHECK_INT(WEXITSTATUS(status), 0);
  (void)snprintf(cmd, sizeof cmd, "chmod 0755 '%s/closed'", root);
  CHECK_INT(system(cmd), 0);
}

int main(void) {
  RUN(test_order_and_threads);
  RUN(test_free_with_queued);
  RUN(test_groups_take_turns);
  RUN(test_reserve_under_exhaustion);
  RUN(test_raises_soft_limit);
  RUN(test_walk_names_what_it_cannot_read);
  return bh_test_summary();
}
