/* Process verification (DESIGN §1.5 step 2, §1.8) and held processes.
 * A verified process is held through a pidfd, so that a later liveness
 * check or signal reaches that very process even if its pid is recycled.
 * Reads /proc directly; Linux only. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "digest.h"
#include "procfs.h"

/* Check the pid is live, then hold it by pidfd (or by bare pid on kernels
 * without pidfd_open). The pidfd is close-on-exec by kernel design. */
bh_status bh_proc_hold(uint32_t pid, bh_proc *out, bh_err *err) {
  *out = BH_PROC_NONE;
  bh_status st = bh_proc_check_alive(pid, err);
  if (st != BH_OK) return st;
  int fd = bh_pidfd_open(pid);
  if (fd < 0) {
    if (errno == ESRCH || errno == EINVAL)
      return bh_err_set(err, BH_PID_NOT_FOUND, NULL,
                        "pid %u is not a running process (pidfd_open: %s)", pid,
                        strerror(errno));
    if (errno != ENOSYS && errno != EPERM) /* EPERM: seccomp, not gone */
      return bh_err_set(err, BH_SYSTEM, NULL, "pidfd_open(%u): %s", pid,
                        strerror(errno));
  }
  out->pid = pid;
  out->pidfd = fd;
  return BH_OK;
}

/* With a pidfd: readable means the process has exited (a zombie counts as
 * exited). Without: kill(pid, 0), which a zombie or a recycled pid passes. */
bool bh_proc_alive(const bh_proc *p) {
  if (p->pid == 0) return false;
  if (p->pidfd >= 0) {
    struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
    int r;
    do {
      r = poll(&pfd, 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) return r == 0;
  }
  return bh_pid_in_range(p->pid) &&
         (kill((pid_t)p->pid, 0) == 0 || errno == EPERM);
}

int bh_proc_signal(const bh_proc *p, int sig) {
  if (!bh_pid_in_range(p->pid)) return -ESRCH;
#ifdef SYS_pidfd_send_signal
  if (p->pidfd >= 0) {
    if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) == 0) return 0;
    if (errno != ENOSYS) return -errno;
  }
#endif
  if (kill((pid_t)p->pid, sig) == 0) return 0;
  return -errno;
}

void bh_proc_release(bh_proc *p) {
  if (p->pidfd >= 0) close(p->pidfd); /* EINTR/EIO: the fd is gone anyway */
  *p = BH_PROC_NONE;
}

/* ---- verification -------------------------------------------------------- */

/* Step "boot id": compared only when both sides are known. */
static bh_status check_boot_id(const bh_identity *expected, const char *cur,
                               bh_err *err) {
  char buf[128];
  if (cur == NULL) {
    if (bh_boot_id(buf, sizeof buf, NULL) != BH_OK) buf[0] = '\0';
    cur = buf;
  }
  const char *rec = expected->boot_id ? expected->boot_id : "";
  if (rec[0] != '\0' && cur[0] != '\0' && strcmp(rec, cur) != 0)
    return bh_err_set(err, BH_BOOT_ID_MISMATCH, NULL,
                      "recorded boot id %s, but this boot is %s", rec, cur);
  return BH_OK;
}

/* Steps "exe path" and "digest" for a held pid. The link is read by pid,
 * so afterwards the pidfd must show the held process still running: if it
 * exited in between, the pid may already name another process. */
static bh_status check_exe(const bh_identity *expected, const bh_proc *p,
                           bh_err *err) {
  char *link = NULL, *got = NULL, *want = NULL;
  uint8_t digest[BH_SHA256_LEN];
  bh_status st = bh_proc_exe_link(expected->pid, &link, err);
  if (st != BH_OK) goto end;
  if (p->pidfd >= 0 && !bh_proc_alive(p)) {
    st = bh_err_set(err, BH_PID_NOT_FOUND, NULL,
                    "pid %u exited during verification", expected->pid);
    goto end;
  }
  got = bh_canonical_path(link);
  want = bh_canonical_path(expected->exe_path ? expected->exe_path : "");
  if (got == NULL || want == NULL) {
    st = bh_err_set(err, BH_SYSTEM, NULL, "out of memory");
    goto end;
  }
  if (strcmp(got, want) != 0) {
    st = bh_err_set(err, BH_EXE_PATH_MISMATCH, NULL,
                    "recorded executable %s, but pid %u runs %s", want,
                    expected->pid, got);
    goto end;
  }
  st = bh_digest_file(got, digest, err);
  if (st != BH_OK) goto end;
  if (memcmp(digest, expected->exe_sha256, BH_SHA256_LEN) != 0) {
    char hw[BH_SHA256_HEX_LEN + 1], hg[BH_SHA256_HEX_LEN + 1];
    bh_hex_encode(expected->exe_sha256, BH_SHA256_LEN, hw);
    bh_hex_encode(digest, BH_SHA256_LEN, hg);
    st = bh_err_set(err, BH_EXE_SHA256_MISMATCH, NULL,
                    "recorded sha256 %s, executable has %s", hw, hg);
  }
end:
  free(link);
  free(got);
  free(want);
  return st;
}

bh_status bh_proc_verify(const bh_identity *expected,
                         const char *current_boot_id, bh_proc *held,
                         bh_err *err) {
  bh_proc p = BH_PROC_NONE;
  if (held != NULL) *held = BH_PROC_NONE;
  if (expected->pid == 0)
    return bh_err_set(err, BH_INVALID_PID, NULL, "recorded pid 0 is invalid");
  bh_status st = check_boot_id(expected, current_boot_id, err);
  if (st == BH_OK) st = bh_proc_hold(expected->pid, &p, err);
  if (st == BH_OK) st = check_exe(expected, &p, err);
  if (st != BH_OK || held == NULL)
    bh_proc_release(&p);
  else
    *held = p;
  return st;
}
