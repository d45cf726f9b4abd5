/* The nonce pool (src/core/random.h): bytes are never handed out twice,
 * not across refills, not between threads, not to a forked child (which
 * would otherwise send the parent's next nonces), and the pool refuses
 * requests it cannot serve from one refill. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "random.h"
#include "testutil.h"

enum { NONCE = 32, MANY = 1000 }; /* MANY * NONCE spans several refills */

static int cmp_nonce(const void *a, const void *b) {
  return memcmp(a, b, NONCE);
}

/* No two of n nonces are equal (sorted, then neighbours compared). */
static bool all_distinct(uint8_t (*v)[NONCE], size_t n) {
  qsort(v, n, NONCE, cmp_nonce);
  for (size_t i = 1; i < n; i++)
    if (memcmp(v[i - 1], v[i], NONCE) == 0) return false;
  return true;
}

static void test_distinct_across_refills(void) {
  static uint8_t v[MANY][NONCE];
  bool ok = true;
  for (int i = 0; i < MANY; i++)
    ok = ok && bh_random_bytes(v[i], NONCE, NULL) == BH_OK;
  CHECK(ok);
  CHECK(all_distinct(v, MANY));
  /* Not a constant fill either: some byte differs within a nonce. */
  size_t differ = 0;
  for (int i = 1; i < NONCE; i++)
    differ += v[0][i] != v[0][0];
  CHECK(differ > 0);
}

static void test_limits(void) {
  uint8_t big[257];
  bh_err err;
  CHECK_CODE(bh_random_bytes(big, sizeof big, &err), BH_SYSTEM, &err);
  CHECK_INT(err.sys_errno, EINVAL);
  CHECK(bh_random_bytes(big, 256, NULL) == BH_OK);
  CHECK(bh_random_bytes(big, 0, NULL) == BH_OK);
}

/* A forked child must not send the nonces its parent is about to send:
 * the child's first nonce is compared with the parent's next ones. */
static void test_fork_does_not_share(void) {
  uint8_t first[NONCE];
  CHECK(bh_random_bytes(first, NONCE, NULL) == BH_OK); /* the pool is warm */
  int fds[2];
  CHECK_INT(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    uint8_t mine[4][NONCE];
    bool ok = true;
    for (int i = 0; i < 4; i++)
      ok = ok && bh_random_bytes(mine[i], NONCE, NULL) == BH_OK;
    _exit(ok && write(fds[1], mine, sizeof mine) == (ssize_t)sizeof mine ? 0
                                                                         : 1);
  }
  CHECK(pid > 0);
  (void)close(fds[1]);
  uint8_t child[4][NONCE], parent[4][NONCE];
  CHECK_INT(read(fds[0], child, sizeof child), sizeof child);
  (void)close(fds[0]);
  int status = -1;
  CHECK_INT(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  bool ok = true;
  for (int i = 0; i < 4; i++)
    ok = ok && bh_random_bytes(parent[i], NONCE, NULL) == BH_OK;
  CHECK(ok);
  int same = 0;
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++)
      same += memcmp(child[i], parent[j], NONCE) == 0;
  CHECK_INT(same, 0);
}

static uint8_t per_thread[2][MANY / 2][NONCE];

static void *draw(void *arg) {
  uint8_t(*v)[NONCE] = arg;
  for (int i = 0; i < MANY / 2; i++)
    if (bh_random_bytes(v[i], NONCE, NULL) != BH_OK) return arg;
  return NULL;
}

static void test_threads_do_not_share(void) {
  pthread_t t[2];
  void *res[2] = {&res, &res};
  for (int i = 0; i < 2; i++)
    CHECK_INT(pthread_create(&t[i], NULL, draw, per_thread[i]), 0);
  for (int i = 0; i < 2; i++)
    CHECK_INT(pthread_join(t[i], &res[i]), 0);
  CHECK(res[0] == NULL && res[1] == NULL);
  CHECK(all_distinct(&per_thread[0][0], MANY));
}

int main(void) {
  RUN(test_distinct_across_refills);
  RUN(test_limits);
  RUN(test_fork_does_not_share);
  RUN(test_threads_do_not_share);
  return bh_test_summary();
}
