/* The cache of verified processes (src/core/proc.c): a second
 * verification of a live daemon takes its start time from the cache and
 * comes to the same verdicts; a process that exited is never answered
 * from it, not even when its pid now names another process; the cache
 * holds at most BH_PROC_CACHE_SIZE pidfds. The daemons are forked
 * children of this test. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "identity.h"
#include "proc.h"
#include "testutil.h"

/* A child that waits until killed. */
static pid_t start_child(void) {
  pid_t pid = fork();
  if (pid == 0) {
    for (;;)
      (void)pause();
  }
  CHECK(pid > 0);
  return pid;
}

static void stop_child(pid_t pid) {
  (void)kill(pid, SIGKILL);
  CHECK_INT(waitpid(pid, NULL, 0), pid);
}

static void record_of(pid_t pid, bh_identity *id) {
  bh_err err;
  bh_identity_init(id);
  CHECK_CODE(bh_identity_of_pid((uint32_t)pid, NULL, id, &err), BH_OK, &err);
}

static bh_status verify(const bh_identity *id) {
  bh_err err;
  bh_proc held;
  bh_status st = bh_proc_verify(id, NULL, &held, &err);
  if (st == BH_OK) {
    CHECK_INT(held.pid, id->pid);
    CHECK(bh_proc_alive(&held));
    bh_proc_release(&held);
  }
  return st;
}

/* Open descriptors without emptying the cache (bh_test_count_fds does). */
static int fds_now(void) {
  int n = 0;
  for (int fd = 0; fd < 4096; fd++)
    n += fcntl(fd, F_GETFD) != -1;
  return n;
}

static void test_second_verification_from_cache(void) {
  bh_proc_cache_clear();
  pid_t child = start_child();
  bh_identity id;
  record_of(child, &id);
  uint64_t hits = bh_proc_cache_hits();
  CHECK_CODE(verify(&id), BH_OK, NULL);
  CHECK_INT(bh_proc_cache_hits(), hits); /* the first reads /proc */
  int fds = fds_now();
  CHECK_CODE(verify(&id), BH_OK, NULL);
  CHECK_INT(bh_proc_cache_hits(), hits + 1);
  CHECK_INT(fds_now(), fds); /* the handle's pidfd was the caller's */
  /* The same verdicts from the cached start time: a record older than
   * the process is a reused pid, a later one (clock slack) is fine. */
  uint64_t started = id.started_at_unix_ms;
  id.started_at_unix_ms = started - 60000;
  CHECK_CODE(verify(&id), BH_PID_REUSED, NULL);
  id.started_at_unix_ms = started + 60000;
  CHECK_CODE(verify(&id), BH_OK, NULL);
  CHECK_INT(bh_proc_cache_hits(), hits + 3);
  /* The rest is checked every time: a digest the record does not have. */
  id.started_at_unix_ms = started;
  id.digests.sha256[0] ^= 1;
  CHECK_CODE(verify(&id), BH_EXE_SHA256_MISMATCH, NULL);
  stop_child(child);
  bh_identity_clear(&id);
}

static void test_exited_process_is_dropped(void) {
  bh_proc_cache_clear();
  pid_t child = start_child();
  bh_identity id;
  record_of(child, &id);
  CHECK_CODE(verify(&id), BH_OK, NULL);
  int fds = fds_now();
  stop_child(child);
  uint64_t hits = bh_proc_cache_hits();
  CHECK_CODE(verify(&id), BH_PID_NOT_FOUND, NULL);
  CHECK_INT(bh_proc_cache_hits(), hits);
  CHECK_INT(fds_now(), fds - 1); /* its pidfd was closed */
  bh_identity_clear(&id);
}

/* The record's pid, once its process exited, is given to a new process
 * (ns_last_pid, root only): the new one must be told apart by its start
 * time, as without a cache. */
static void test_reused_pid_is_not_the_cached_one(void) {
  bh_proc_cache_clear();
  pid_t first = start_child();
  bh_identity id;
  record_of(first, &id);
  CHECK_CODE(verify(&id), BH_OK, NULL);
  stop_child(first);
  (void)usleep(2100 * 1000); /* past the start-time slack */
  pid_t second = -1;
  for (int i = 0; i < 500 && second != first; i++) {
    if (second > 0) stop_child(second);
    FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "w");
    CHECK(f != NULL);
    if (f == NULL) break;
    (void)fprintf(f, "%d", (int)first - 1);
    (void)fclose(f);
    second = start_child();
  }
  CHECK_INT(second, first);
  CHECK_CODE(verify(&id), BH_PID_REUSED, NULL);
  stop_child(second);
  bh_identity_clear(&id);
}

static void test_bounded(void) {
  enum { N = BH_PROC_CACHE_SIZE + 8 };
  bh_proc_cache_clear();
  int fds = fds_now();
  pid_t kids[N];
  for (int i = 0; i < N; i++) {
    kids[i] = start_child();
    bh_identity id;
    record_of(kids[i], &id);
    CHECK_CODE(verify(&id), BH_OK, NULL);
    bh_identity_clear(&id);
  }
  CHECK_INT(fds_now(), fds + BH_PROC_CACHE_SIZE);
  for (int i = 0; i < N; i++)
    stop_child(kids[i]);
  bh_proc_cache_clear();
  CHECK_INT(fds_now(), fds);
}

int main(void) {
  RUN(test_second_verification_from_cache);
  RUN(test_exited_process_is_dropped);
  RUN_ROOT(test_reused_pid_is_not_the_cached_one, "writes ns_last_pid");
  RUN(test_bounded);
  return bh_test_summary();
}
