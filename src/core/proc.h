/* Process verification (design §1.5 step 2), holding a process through
 * a pidfd so later liveness checks and signals cannot hit a recycled pid,
 * and the identity of a live process (this one, or another by pid). */
#ifndef BH_PROC_H
#define BH_PROC_H

#include <stdbool.h>
#include <stdint.h>

#include "identity.h"
#include "status.h"

/* A held process. pidfd is -1 when the kernel lacks pidfd_open (then
 * alive/signal fall back to the bare pid). pid 0 means "nothing held". */
typedef struct bh_proc {
  uint32_t pid;
  int pidfd;
} bh_proc;

#define BH_PROC_NONE ((bh_proc){0, -1})

/* A recorded start time may be this much earlier than the process's start
 * as /proc computes it (boot time has whole-second resolution and the
 * recorder's clock is not ours) before the pid counts as reused. */
#define BH_START_SLACK_MS 2000u

/* Verify expected against the live system (design §1.5 step 2), in this
 * order: pid 0 → invalid_pid; no digest recorded → exe_hash; both boot
 * ids non-empty and different → boot_id_mismatch; kill(pid, 0) fails
 * other than EPERM → pid_not_found; hold it (pidfd); the record predates
 * the process by more than BH_START_SLACK_MS → pid_reused; readlink
 * /proc/PID/exe fails → exe_path; realpath of both (fallback raw) differ
 * → exe_path_mismatch, unless the link is the recorded path plus
 * " (deleted)" (the file it runs was replaced or deleted on disk since it
 * started); the file the process runs, read through /proc/PID/exe,
 * unreadable → exe_hash; a recorded digest differs → exe_sha256_mismatch /
 * exe_hash_mismatch (every digest the record has is checked); all of it
 * right, but the file deleted on disk → exe_deleted (design §1.11:
 * outdated, the running image is the recorded one). current_boot_id NULL
 * = read it. Hashing a new executable runs inline here; the prober uses
 * the three steps below to hash off the loop. On success and held !=
 * NULL, *held owns the pidfd (release it); on failure *held is
 * BH_PROC_NONE (exe_deleted too: the prober, which goes on to the
 * exchange, uses the steps). */
bh_status bh_proc_verify(const bh_identity *expected,
                         const char *current_boot_id, bh_proc *held,
                         bh_err *err);

/* bh_proc_verify in steps. begin: everything up to the digest; on success
 * *held owns the pidfd and *exe_deleted says whether the file it runs was
 * deleted on disk (then, once the digests match, the verdict is
 * bh_proc_deleted_error's). exe_digests: the digests of what the held process
 * runs, with the process still held afterwards: from the digest cache
 * (found by a stat of /proc/PID/exe, opening nothing) with *fd = -1, or
 * else *fd = /proc/PID/exe opened for hashing (bh_digest_open_exe) and *st
 * its stat; an error code (and *fd = -1) when it cannot be opened or the
 * process exited. check_digests: the digests got against the record. */
bh_status bh_proc_verify_begin(const bh_identity *expected,
                               const char *current_boot_id, bh_proc *held,
                               bool *exe_deleted, bh_err *err);
/* Fill err with exe_deleted for expected (the process runs the recorded
 * image, whose file is gone from disk); returns BH_EXE_DELETED. */
bh_status bh_proc_deleted_error(const bh_identity *expected, bh_err *err);
struct stat;
bh_status bh_proc_exe_digests(const bh_proc *p, unsigned algs, bh_digests *d,
                              int *fd, struct stat *st, bh_err *err);
bh_status bh_proc_check_digests(const bh_identity *expected,
                                const bh_digests *got, bh_err *err);

/* Hold pid without verifying (pidfd_open, fallback to bare pid).
 * BH_PID_NOT_FOUND if it does not exist. */
bh_status bh_proc_hold(uint32_t pid, bh_proc *out, bh_err *err);
/* Is the held process still running (not exited; a zombie counts as
 * exited when held by pidfd)? */
bool bh_proc_alive(const bh_proc *p);
/* Send sig through the pidfd (pidfd_send_signal), else kill().
 * BH_PID_NOT_FOUND when the process is gone (errno ESRCH), BH_SYSTEM with
 * the errno otherwise. */
bh_status bh_proc_signal(const bh_proc *p, int sig, bh_err *err);
/* Close the pidfd; *p becomes BH_PROC_NONE. Idempotent. */
void bh_proc_release(bh_proc *p);

/* Verification keeps the start times of the processes it verified lately,
 * each held by a pidfd (at most BH_PROC_CACHE_SIZE, the least recently
 * used goes first): verifying again a daemon that still runs needs
 * neither pidfd_open nor /proc/PID/stat. */
enum { BH_PROC_CACHE_SIZE = 32 };
/* How many verifications found their process in the cache. */
uint64_t bh_proc_cache_hits(void);
/* Forget every cached process, closing their pidfds. */
void bh_proc_cache_clear(void);

/* The current process: pid, canonical /proc/self/exe, both digests of the
 * executable it runs (through the digest cache), boot id, process start
 * time, the given endpoint (NULL = absent) and optional idle timeout (NULL
 * = absent). */
bh_status bh_identity_current(const bh_endpoint *ep,
                              const uint32_t *idle_timeout_secs,
                              bh_identity *out, bh_err *err);
/* A live process by pid, with the given endpoint (NULL = absent; codes of
 * stage verify_pid: invalid_pid, pid_not_found, exe_path, exe_hash). Both
 * digests are of the file the process really runs (read through /proc/PID/exe);
 * started_at comes from /proc. */
bh_status bh_identity_of_pid(uint32_t pid, const bh_endpoint *ep,
                             bh_identity *out, bh_err *err);

#endif
