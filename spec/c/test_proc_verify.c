/* Process verification against real processes (this test, its children,
 * a zombie, a copy of its binary), held processes, of_pid, and the digest
 * cache against real files. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "digest.h"
#include "identity.h"
#include "proc.h"
#include "proc_helpers.h"
#include "procfs.h"
#include "testutil.h"

/* Does this kernel (or emulator: valgrind 3.19 lacks it) have pidfd_open?
 * Without it, holds fall back to the bare pid and the pidfd-only
 * guarantees are checked in their fallback form. */
static bool have_pidfd;

static void probe_pidfd_support(void) {
#ifdef SYS_pidfd_open
  int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
  have_pidfd = fd >= 0;
  if (fd >= 0) close(fd);
#endif
  if (!have_pidfd) fprintf(stderr, "note: no pidfd_open, testing fallback\n");
}

/* No pid can reach this: the kernel's pid_max is at most 2^22. */
enum { IMPOSSIBLE_PID = 4194304 };

static void self_identity(bh_identity *id) {
  bh_err err;
  bh_identity_init(id);
  CHECK_CODE(bh_identity_current(NULL, NULL, id, &err), BH_OK, &err);
}

/* Verify id, expecting want; checks that a failure holds nothing. */
static void verify_expect(const bh_identity *id, const char *boot,
                          bh_status want) {
  bh_proc held = {123, 456};
  bh_err err;
  bh_err_clear(&err);
  CHECK_CODE(bh_proc_verify(id, boot, &held, &err), want, &err);
  if (want != BH_OK) {
    CHECK_INT(held.pid, 0);
    CHECK_INT(held.pidfd, -1);
    CHECK(err.message[0] != '\0');
  }
  bh_proc_release(&held);
}

static void test_verify_self(void) {
  bh_identity id;
  bh_err err;
  self_identity(&id);
  bh_proc held = BH_PROC_NONE;
  int fds = bh_test_count_fds();
  CHECK_CODE(bh_proc_verify(&id, NULL, &held, &err), BH_OK, &err);
  CHECK_INT(held.pid, getpid());
  CHECK(have_pidfd ? held.pidfd >= 0 : held.pidfd == -1);
  CHECK(bh_proc_alive(&held));
  CHECK_CODE(bh_proc_signal(&held, 0, &err), BH_OK, &err);
  bh_proc_release(&held);
  bh_proc_release(&held); /* idempotent */
  CHECK_INT(held.pidfd, -1);
  CHECK(!bh_proc_alive(&held));
  CHECK_CODE(bh_proc_signal(&held, 0, &err), BH_PID_NOT_FOUND, &err);
  CHECK_INT(err.sys_errno, ESRCH);
  /* held NULL: verify only, nothing kept open. */
  CHECK_CODE(bh_proc_verify(&id, NULL, NULL, &err), BH_OK, &err);
  CHECK_INT(bh_test_count_fds(), fds);
  bh_identity_clear(&id);
}

static void test_verify_failures(void) {
  bh_identity id;
  self_identity(&id);
  int fds = bh_test_count_fds();
  uint32_t pid = id.pid;

  id.pid = 0;
  verify_expect(&id, NULL, BH_INVALID_PID);
  id.pid = IMPOSSIBLE_PID;
  verify_expect(&id, NULL, BH_PID_NOT_FOUND);
  id.pid = 0x80000001u; /* would be a process group for kill() */
  verify_expect(&id, NULL, BH_PID_NOT_FOUND);
  id.pid = pid;

  /* Boot id: compared only when both sides are non-empty. */
  verify_expect(&id, "another-boot", BH_BOOT_ID_MISMATCH);
  verify_expect(&id, "", BH_OK);
  free(id.boot_id);
  id.boot_id = strdup("");
  verify_expect(&id, "another-boot", BH_OK);
  verify_expect(&id, NULL, BH_OK);
  free(id.boot_id);
  id.boot_id = strdup("not-this-boot");
  verify_expect(&id, NULL, BH_BOOT_ID_MISMATCH);
  /* Boot id is checked before the pid. */
  id.pid = IMPOSSIBLE_PID;
  verify_expect(&id, NULL, BH_BOOT_ID_MISMATCH);
  id.pid = pid;
  free(id.boot_id);
  id.boot_id = strdup("");

  /* Every digest the record has is checked: SHA-256 first, then BLAKE3,
   * and a record of one generation is checked on that one only. */
  id.digests.sha256[5] ^= 0x40;
  verify_expect(&id, NULL, BH_EXE_SHA256_MISMATCH);
  id.digests.blake3[5] ^= 0x40;
  verify_expect(&id, NULL, BH_EXE_SHA256_MISMATCH);
  id.digests.sha256[5] ^= 0x40;
  verify_expect(&id, NULL, BH_EXE_HASH_MISMATCH);
  id.digests.algs = BH_ALG_SHA256;
  verify_expect(&id, NULL, BH_OK);
  id.digests.algs = BH_ALG_BLAKE3;
  verify_expect(&id, NULL, BH_EXE_HASH_MISMATCH);
  id.digests.blake3[5] ^= 0x40;
  verify_expect(&id, NULL, BH_OK);
  id.digests.algs = 0; /* a record without a digest proves nothing */
  verify_expect(&id, NULL, BH_EXE_HASH);
  id.digests.algs = BH_ALGS_ALL;
  verify_expect(&id, NULL, BH_OK);
  CHECK_INT(bh_test_count_fds(), fds);
  bh_identity_clear(&id);
}

static void test_exe_path_mismatch(void) {
  bh_identity id;
  bh_err err;
  self_identity(&id);
  char copy[256];
  bh_test_path(copy, sizeof copy, "copy");
  copy_self(copy, 0);
  bh_digests d;
  CHECK_CODE(bh_digest_file(copy, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  CHECK(memcmp(&d, &id.digests, sizeof d) == 0);
  free(id.exe_path);
  id.exe_path = strdup(copy);
  verify_expect(&id, NULL, BH_EXE_PATH_MISMATCH);
  bh_proc held;
  bh_proc_verify(&id, NULL, &held, &err);
  CHECK(strstr(err.message, copy) != NULL);
  /* A symlink to the real binary canonicalizes to it: passes. */
  char link[256], *real = realpath("/proc/self/exe", NULL);
  bh_test_path(link, sizeof link, "link");
  CHECK_INT(symlink(real, link), 0);
  free(id.exe_path);
  id.exe_path = strdup(link);
  verify_expect(&id, NULL, BH_OK);
  /* A recorded path that does not exist stays raw and differs. */
  free(id.exe_path);
  id.exe_path = strdup("/nonexistent/bin");
  verify_expect(&id, NULL, BH_EXE_PATH_MISMATCH);
  free(real);
  bh_identity_clear(&id);
}

/* A child that has exited but is not reaped: kill(pid, 0) passes, the exe
 * link is gone. */
static void test_zombie(void) {
  bh_identity id;
  self_identity(&id);
  pid_t child = fork();
  if (child == 0) _exit(0);
  CHECK(child > 0);
  siginfo_t info;
  memset(&info, 0, sizeof info);
  CHECK_INT(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT), 0);
  id.pid = (uint32_t)child;
  /* A record without a start time meets the zombie at its exe link, as
   * in the reference (design §1.8). */
  id.started_at_unix_ms = 0;
  verify_expect(&id, NULL, BH_EXE_PATH);
  /* With one, the start-time step reads /proc/PID/stat and then asks the
   * pidfd whether that was still the held process: a zombie has exited,
   * so it is pid_not_found there (without a pidfd nothing tells, and the
   * exe link fails as before). */
  id.started_at_unix_ms = bh_unix_ms();
  verify_expect(&id, NULL, have_pidfd ? BH_PID_NOT_FOUND : BH_EXE_PATH);
  bh_identity got;
  bh_err err;
  bh_identity_init(&got);
  CHECK_CODE(bh_identity_of_pid((uint32_t)child, NULL, &got, &err), BH_EXE_PATH,
             &err);
  /* Held through a pidfd, a zombie is not alive. */
  bh_proc p;
  CHECK_CODE(bh_proc_hold((uint32_t)child, &p, &err), BH_OK, &err);
  CHECK(bh_proc_alive(&p) == !have_pidfd); /* bare pid: kill() passes */
  bh_proc_release(&p);
  CHECK_INT(waitpid(child, NULL, 0), child);
  /* Reaped: gone. */
  verify_expect(&id, NULL, BH_PID_NOT_FOUND);
  CHECK_CODE(bh_proc_hold((uint32_t)child, &p, &err), BH_PID_NOT_FOUND, &err);
  bh_identity_clear(&id);
}

static void test_of_pid_and_hold(void) {
  bh_identity self, got;
  bh_err err;
  self_identity(&self);
  bh_identity_init(&got);
  int wfd;
  pid_t child = spawn_blocked(&wfd);
  bh_endpoint ep = {NULL, NULL};
  bh_endpoint_set(&ep, "ns", "/tmp/c.sock", &err);
  CHECK_CODE(bh_identity_of_pid((uint32_t)child, &ep, &got, &err), BH_OK, &err);
  CHECK_INT(got.pid, child);
  /* What the child runs, read independently (under valgrind it is not
   * the same as our own /proc/self/exe). */
  char link[64], *want = NULL;
  bh_digests d;
  snprintf(link, sizeof link, "/proc/%d/exe", (int)child);
  want = realpath(link, NULL);
  CHECK_STR(got.exe_path, want);
  CHECK_CODE(bh_digest_file_uncached(want, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  CHECK_INT(got.digests.algs, BH_ALGS_ALL);
  CHECK(memcmp(&got.digests, &d, sizeof d) == 0);
  free(want);
  CHECK_STR(got.boot_id, self.boot_id);
  CHECK(bh_endpoint_equal(&got.endpoint, &ep));
  CHECK(!got.has_idle_timeout);
  CHECK(got.started_at_unix_ms >= self.started_at_unix_ms);
  CHECK(got.started_at_unix_ms <= bh_unix_ms() + 2000);
  CHECK_CODE(bh_identity_of_pid(0, &ep, &got, &err), BH_INVALID_PID, &err);
  CHECK_CODE(bh_identity_of_pid(IMPOSSIBLE_PID, &ep, &got, &err),
             BH_PID_NOT_FOUND, &err);
  CHECK_INT(got.pid, child); /* unchanged by the failures */

  /* Verify the child, then watch it exit through the pidfd. */
  bh_proc held;
  CHECK_CODE(bh_proc_verify(&got, NULL, &held, &err), BH_OK, &err);
  CHECK(bh_proc_alive(&held));
  close(wfd);
  if (have_pidfd) {
    struct pollfd pfd = {.fd = held.pidfd, .events = POLLIN};
    CHECK_INT(poll(&pfd, 1, 30000), 1); /* generous: loaded machines */
    CHECK(!bh_proc_alive(&held));
  }
  int status = 0;
  CHECK_INT(waitpid(child, &status, 0), child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
  CHECK(!bh_proc_alive(&held));
  bh_proc_release(&held);

  /* Signals go through the pidfd. */
  child = spawn_blocked(&wfd);
  CHECK_CODE(bh_proc_hold((uint32_t)child, &held, &err), BH_OK, &err);
  CHECK_CODE(bh_proc_signal(&held, SIGTERM, &err), BH_OK, &err);
  CHECK_INT(waitpid(child, &status, 0), child);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  CHECK_CODE(bh_proc_signal(&held, SIGTERM, &err), BH_PID_NOT_FOUND, &err);
  CHECK_INT(err.sys_errno, ESRCH);
  bh_proc_release(&held);
  close(wfd);
  bh_endpoint_clear(&ep);
  bh_identity_clear(&got);
  bh_identity_clear(&self);
}

/* A daemon whose executable is deleted after start: the link reads back
 * as "PATH (deleted)" (design §1.8). It still runs the recorded image
 * (its digests, read through /proc/PID/exe, are the recorded ones), so it
 * is not gone: exe_deleted (outdated: a restart is due), never
 * exe_path_mismatch (stale). of_pid hashes what the process really runs,
 * deleted or not (it failed with exe_hash when digests were read by
 * path). */
static void test_deleted_executable(void) {
  char copy[256];
  bh_test_path(copy, sizeof copy, "exe2");
  copy_self(copy, 0);
  int wfd;
  bh_identity got;
  pid_t child = spawn_recorded(copy, &wfd, &got);
  bh_err err;
  CHECK_STR(got.exe_path, copy);
  verify_expect(&got, NULL, BH_OK);
  CHECK_INT(unlink(copy), 0);
  verify_expect(&got, NULL, BH_EXE_DELETED);
  bh_proc held;
  bh_err_clear(&err);
  CHECK_CODE(bh_proc_verify(&got, NULL, &held, &err), BH_EXE_DELETED, &err);
  CHECK(strstr(err.message, "restart") != NULL);
  CHECK_INT(held.pid, 0); /* no handle on an outdated daemon */
  /* The deleted copy's image with another recorded digest: it is not the
   * recorded daemon's image at all (another program under its pid). */
  bh_identity other_digest;
  bh_identity_init(&other_digest);
  CHECK_CODE(bh_identity_copy(&other_digest, &got, &err), BH_OK, &err);
  other_digest.digests.sha256[0] ^= 1;
  verify_expect(&other_digest, NULL, BH_EXE_SHA256_MISMATCH);
  bh_identity_clear(&other_digest);
  bh_identity other;
  bh_identity_init(&other);
  CHECK_CODE(bh_identity_of_pid((uint32_t)child, NULL, &other, &err), BH_OK,
             &err);
  char want[300];
  snprintf(want, sizeof want, "%s (deleted)", copy);
  CHECK_STR(other.exe_path, want);
  CHECK(memcmp(&other.digests, &got.digests, sizeof got.digests) == 0);
  /* A path mismatch that is not a deleted copy says so too. */
  free(got.exe_path);
  got.exe_path = strdup("/nonexistent/elsewhere");
  bh_err_clear(&err);
  CHECK_CODE(bh_proc_verify(&got, NULL, &held, &err), BH_EXE_PATH_MISMATCH,
             &err);
  close(wfd);
  int status = 0;
  CHECK_INT(waitpid(child, &status, 0), child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  bh_identity_clear(&other);
  bh_identity_clear(&got);
}

/* The pid a pidfd names, read from its fdinfo (the peer check's fallback
 * where pidfds cannot be compared): the child's while it lives, -1 once
 * it is reaped, 0 for a descriptor that is no pidfd's. */
static void test_pidfd_pid(void) {
  int wfd;
  pid_t child = spawn_blocked(&wfd);
  int pidfd = bh_pidfd_open((uint32_t)child);
  if (pidfd < 0) {
    printf("SKIP: no pidfd_open (%s)\n", strerror(errno));
    close(wfd);
    waitpid(child, NULL, 0);
    return;
  }
  CHECK_INT(bh_pidfd_pid(pidfd), child);
  close(wfd);
  CHECK_INT(waitpid(child, NULL, 0), child);
  CHECK_INT(bh_pidfd_pid(pidfd), -1);
  close(pidfd);
  CHECK_INT(bh_pidfd_pid(pidfd), 0); /* closed: no fdinfo */
}

int main(int argc, char **argv) {
  if (block_mode(argc, argv)) return 0;
  signal(SIGPIPE, SIG_IGN);
  probe_pidfd_support();
  RUN(test_verify_self);
  RUN(test_verify_failures);
  RUN(test_exe_path_mismatch);
  RUN(test_zombie);
  RUN(test_of_pid_and_hold);
  RUN(test_deleted_executable);
  RUN(test_pidfd_pid);
  return bh_test_summary();
}
