/* Process verification (DESIGN §1.5 step 2) and holding a process through
 * a pidfd so later liveness checks and signals cannot hit a recycled pid. */
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

/* Verify expected against the live system, in this order: pid 0 →
 * invalid_pid; both boot ids non-empty and different → boot_id_mismatch;
 * kill(pid, 0) fails other than EPERM → pid_not_found; hold it (pidfd);
 * readlink /proc/PID/exe fails → exe_path; realpath of both (fallback raw)
 * differ → exe_path_mismatch; digest (cached) unreadable → exe_hash;
 * differs → exe_sha256_mismatch. current_boot_id NULL = read it. On
 * success and held != NULL, *held owns the pidfd (release it); on failure
 * *held is BH_PROC_NONE. */
bh_status bh_proc_verify(const bh_identity *expected,
                         const char *current_boot_id, bh_proc *held,
                         bh_err *err);

/* Hold pid without verifying (pidfd_open, fallback to bare pid).
 * BH_PID_NOT_FOUND if it does not exist. */
bh_status bh_proc_hold(uint32_t pid, bh_proc *out, bh_err *err);
/* Is the held process still running (not exited; a zombie counts as
 * exited when held by pidfd)? */
bool bh_proc_alive(const bh_proc *p);
/* Send sig through the pidfd (pidfd_send_signal), else kill(). Returns 0 or
 * a negative errno. */
int bh_proc_signal(const bh_proc *p, int sig);
/* Close the pidfd; *p becomes BH_PROC_NONE. Idempotent. */
void bh_proc_release(bh_proc *p);

/* ---- /proc helpers (also used by bh_identity_of_pid / _current) ---- */

/* kill(pid, 0) succeeds or fails with EPERM, else BH_PID_NOT_FOUND. A
 * zombie passes. */
bh_status bh_proc_check_alive(uint32_t pid, bh_err *err);
/* The target of /proc/PID/exe (malloc'd into *out; any length). BH_EXE_PATH
 * when unreadable (a zombie, a kernel thread, no permission). A deleted
 * executable reads back as "PATH (deleted)". */
bh_status bh_proc_exe_link(uint32_t pid, char **out, bh_err *err);
/* realpath(path), or a copy of path when it cannot be resolved; NULL only
 * when out of memory. */
char *bh_canonical_path(const char *path);
/* Start time of pid in ms since the epoch (/proc/PID/stat starttime plus
 * btime of /proc/stat). BH_PID_NOT_FOUND when the process is gone,
 * BH_SYSTEM when /proc cannot be parsed. */
bh_status bh_proc_start_unix_ms(uint32_t pid, uint64_t *out, bh_err *err);

#endif
