/* Process verification against processes that are not what a record says
 * (design §1.5 step 2): a record that predates its pid's process
 * (pid_reused), a record of another binary (exe_sha256_mismatch,
 * exe_hash_mismatch), and the bind-mount attack: in a mount namespace of
 * its own, an impostor bind-mounts a different binary over the path the
 * record names and runs it from there; seen from here, /proc/PID/exe
 * names the recorded path, but the file behind the link is the impostor's
 * and that is what must be hashed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "digest.h"
#include "identity.h"
#include "proc.h"
#include "proc_helpers.h"
#include "procfs.h"
#include "testutil.h"

static void finish(pid_t child, int wfd) {
  close(wfd);
  int status = 0;
  CHECK_INT(waitpid(child, &status, 0), child);
}

static void verify_expect(const bh_identity *id, bh_status want) {
  bh_proc held = BH_PROC_NONE;
  bh_err err;
  bh_err_clear(&err);
  CHECK_CODE(bh_proc_verify(id, NULL, &held, &err), want, &err);
  if (want != BH_OK) CHECK_INT(held.pid, 0);
  bh_proc_release(&held);
}

/* A record cannot predate its process: one that says its daemon started
 * well before the process now holding the pid is pid_reused; within the
 * slack, or later (a record written after start), it verifies. */
static void test_pid_reused(void) {
  char exe[256];
  bh_test_path(exe, sizeof exe, "reused");
  copy_self(exe, 0);
  int wfd;
  bh_identity rec;
  pid_t child = spawn_recorded(exe, &wfd, &rec);
  bh_err err;
  uint64_t real = rec.started_at_unix_ms;
  CHECK(real > 0);
  verify_expect(&rec, BH_OK);
  rec.started_at_unix_ms = real - 60000; /* a minute before: another daemon */
  bh_err_clear(&err);
  bh_proc held;
  CHECK_CODE(bh_proc_verify(&rec, NULL, &held, &err), BH_PID_REUSED, &err);
  CHECK(strstr(err.message, "reused") != NULL);
  rec.started_at_unix_ms = real - BH_START_SLACK_MS - 1000;
  verify_expect(&rec, BH_PID_REUSED);
  rec.started_at_unix_ms = real - BH_START_SLACK_MS / 2;
  verify_expect(&rec, BH_OK);
  rec.started_at_unix_ms = real + 3600000; /* written an hour later */
  verify_expect(&rec, BH_OK);
  rec.started_at_unix_ms = 0; /* not recorded: nothing to compare */
  verify_expect(&rec, BH_OK);
  /* A start time at the top of the range is later than the process, not
   * (by wrapping around) long before it. */
  rec.started_at_unix_ms = UINT64_MAX;
  verify_expect(&rec, BH_OK);
  rec.started_at_unix_ms = UINT64_MAX - BH_START_SLACK_MS / 2;
  verify_expect(&rec, BH_OK);
  /* Checked before the executable: a reused pid running another binary
   * says pid_reused, not a digest mismatch. */
  rec.started_at_unix_ms = real - 60000;
  rec.digests.sha256[0] ^= 1;
  verify_expect(&rec, BH_PID_REUSED);
  finish(child, wfd);
  bh_identity_clear(&rec);
}

/* A record of another binary at the same path: each digest the record
 * has is checked against the file the process runs. */
static void test_digest_mismatch(void) {
  char exe[256], other[256];
  bh_test_path(exe, sizeof exe, "runs");
  bh_test_path(other, sizeof other, "other");
  copy_self(exe, 0);
  copy_self(other, 4096);
  int wfd;
  bh_identity rec;
  pid_t child = spawn_recorded(exe, &wfd, &rec);
  bh_err err;
  bh_digests theirs;
  CHECK_CODE(bh_digest_file(other, BH_ALGS_ALL, &theirs, &err), BH_OK, &err);
  bh_digests ours = rec.digests;
  rec.digests = theirs;
  verify_expect(&rec, BH_EXE_SHA256_MISMATCH);
  rec.digests.algs = BH_ALG_BLAKE3;
  verify_expect(&rec, BH_EXE_HASH_MISMATCH);
  rec.digests = ours;
  rec.digests.algs = BH_ALG_BLAKE3;
  verify_expect(&rec, BH_OK);
  finish(child, wfd);
  bh_identity_clear(&rec);
}

/* The bind-mount attack. The record is the legitimate binary's (its path
 * and digests); the impostor, in its own mount namespace, runs another
 * binary from that very path. */
static void test_bind_mount(void) {
  char legit[256], impostor[256];
  bh_test_path(legit, sizeof legit, "legit");
  bh_test_path(impostor, sizeof impostor, "impostor");
  copy_self(legit, 0);
  copy_self(impostor, 8192);
  bh_digests want, bad;
  bh_err err;
  CHECK_CODE(bh_digest_file_uncached(legit, BH_ALGS_ALL, &want, &err), BH_OK,
             &err);
  CHECK_CODE(bh_digest_file_uncached(impostor, BH_ALGS_ALL, &bad, &err), BH_OK,
             &err);
  CHECK(memcmp(want.sha256, bad.sha256, 32) != 0);
  int wfd;
  pid_t child = spawn_copy(legit, impostor, &wfd);
  if (!wait_exec(child, legit)) {
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 126) {
      /* root, yet no mount namespace: a sandbox that forbids it */
      bh_test_fail(__FILE__, __LINE__,
                   "no mount namespace here (unshare/mount refused)");
    } else {
      CHECK(!"the impostor never ran");
    }
    close(wfd);
    return;
  }
  /* From here the link names the recorded path... */
  char *link = NULL;
  CHECK_CODE(bh_proc_exe_link((uint32_t)child, &link, &err), BH_OK, &err);
  CHECK_STR(link, legit);
  free(link);
  /* ...and the process runs the impostor's bytes. */
  bh_identity rec;
  bh_identity_init(&rec);
  bh_digest_cache_clear();
  CHECK_CODE(bh_identity_of_pid((uint32_t)child, NULL, &rec, &err), BH_OK,
             &err);
  CHECK_STR(rec.exe_path, legit);
  CHECK(memcmp(&rec.digests, &bad, sizeof bad) == 0);
  /* The legitimate record of that pid does not verify, by either digest,
   * and not through a cache filled by the legitimate file either. */
  rec.digests = want;
  bh_digest_cache_clear();
  verify_expect(&rec, BH_EXE_SHA256_MISMATCH);
  bh_digests d;
  CHECK_CODE(bh_digest_file(legit, BH_ALGS_ALL, &d, &err), BH_OK, &err);
  verify_expect(&rec, BH_EXE_SHA256_MISMATCH);
  rec.digests.algs = BH_ALG_BLAKE3;
  verify_expect(&rec, BH_EXE_HASH_MISMATCH);
  /* The impostor's own digests verify: the check is about bytes. */
  rec.digests = bad;
  verify_expect(&rec, BH_OK);
  finish(child, wfd);
  bh_identity_clear(&rec);
  bh_digest_cache_clear();
}

int main(int argc, char **argv) {
  if (block_mode(argc, argv)) return 0;
  RUN(test_pid_reused);
  RUN(test_digest_mismatch);
  RUN_ROOT(test_bind_mount, "mount namespaces");
  return bh_test_summary();
}
