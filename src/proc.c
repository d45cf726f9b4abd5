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

/* Pids above INT_MAX would turn kill() into a process-group signal; no
 * such pid exists (pid_max <= 2^22), so they are "not found". */
static bool pid_in_range(uint32_t pid) {
  return pid != 0 && pid <= (uint32_t)INT_MAX;
}

bh_status bh_proc_check_alive(uint32_t pid, bh_err *err) {
  if (pid == 0)
    return bh_err_set(err, BH_INVALID_PID, NULL, "pid 0 is invalid");
  if (!pid_in_range(pid) || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
    return bh_err_set(err, BH_PID_NOT_FOUND, NULL,
                      "pid %u is not a running process", pid);
  return BH_OK;
}

/* pidfd_open(2) through syscall(2): -1 with errno ENOSYS when the kernel or
 * the headers lack it. */
static int pidfd_open_raw(uint32_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

/* Check the pid is live, then hold it by pidfd (or by bare pid on kernels
 * without pidfd_open). The pidfd is close-on-exec by kernel design. */
bh_status bh_proc_hold(uint32_t pid, bh_proc *out, bh_err *err) {
  *out = BH_PROC_NONE;
  bh_status st = bh_proc_check_alive(pid, err);
  if (st != BH_OK) return st;
  int fd = pidfd_open_raw(pid);
  if (fd < 0) {
    if (errno == ESRCH || errno == EINVAL)
      return bh_err_set(err, BH_PID_NOT_FOUND, NULL,
                        "pid %u is not a running process (pidfd_open: %s)", pid,
                        strerror(errno));
    if (errno != ENOSYS)
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
  return pid_in_range(p->pid) &&
         (kill((pid_t)p->pid, 0) == 0 || errno == EPERM);
}

int bh_proc_signal(const bh_proc *p, int sig) {
  if (!pid_in_range(p->pid)) return -ESRCH;
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

/* ---- /proc helpers ------------------------------------------------------- */

/* readlink of any length: the buffer doubles until the target fits. */
bh_status bh_proc_exe_link(uint32_t pid, char **out, bh_err *err) {
  char path[64];
  (void)snprintf(path, sizeof path, "/proc/%u/exe", pid);
  *out = NULL;
  size_t cap = 256;
  char *buf = NULL;
  for (;;) {
    char *nb = realloc(buf, cap);
    if (nb == NULL) {
      free(buf);
      return bh_err_set(err, BH_SYSTEM, NULL, "out of memory reading %s", path);
    }
    buf = nb;
    ssize_t n = readlink(path, buf, cap);
    if (n < 0) {
      int e = errno;
      free(buf);
      return bh_err_set(err, BH_EXE_PATH, NULL,
                        "cannot read the executable link %s: %s", path,
                        strerror(e));
    }
    if ((size_t)n < cap) {
      buf[n] = '\0';
      *out = buf;
      return BH_OK;
    }
    cap *= 2;
  }
}

char *bh_canonical_path(const char *path) {
  char *r = realpath(path, NULL);
  return r != NULL ? r : strdup(path);
}

/* Read a small /proc file into buf (NUL-terminated); returns 0 or errno. */
static int read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  size_t len = 0;
  int e = 0;
  while (len + 1 < cap) {
    ssize_t n = read(fd, buf + len, cap - 1 - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) e = errno;
    if (n <= 0) break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  if (close(fd) != 0 && e == 0) e = errno;
  return e;
}

/* The decimal number at the start of s (leading blanks allowed) into *out;
 * false when there is none or it overflows. strtoull, not sscanf, because
 * only strtoull reports overflow. */
static bool parse_ull(const char *s, unsigned long long *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (end == s || errno != 0) return false;
  *out = v;
  return true;
}

/* btime (boot time, seconds since the epoch) from /proc/stat. Read once:
 * the kernel recomputes it from the wall clock, so it can move by a second
 * between reads, and start times must be stable within a process. */
static bh_status boot_time(uint64_t *out, bh_err *err) {
  static uint64_t cached; /* not thread-safe; one loop thread */
  if (cached != 0) {
    *out = cached;
    return BH_OK;
  }
  FILE *f = fopen("/proc/stat", "re");
  if (f == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL, "cannot open /proc/stat: %s",
                      strerror(errno));
  char *line = NULL;
  size_t cap = 0;
  unsigned long long bt = 0;
  while (getline(&line, &cap, f) >= 0)
    if (strncmp(line, "btime ", 6) == 0 && parse_ull(line + 6, &bt)) break;
  free(line);
  (void)fclose(f); /* read-only: nothing to lose */
  if (bt == 0)
    return bh_err_set(err, BH_SYSTEM, NULL, "no btime line in /proc/stat");
  *out = cached = bt;
  return BH_OK;
}

/* starttime (field 22, clock ticks since boot) of /proc/PID/stat. The
 * command name (field 2) may hold spaces and parentheses, so fields are
 * counted from the last ')'. */
static bh_status start_ticks(uint32_t pid, unsigned long long *ticks,
                             bh_err *err) {
  char path[64], buf[4096];
  (void)snprintf(path, sizeof path, "/proc/%u/stat", pid);
  int e = read_small(path, buf, sizeof buf);
  if (e == ENOENT || e == ESRCH)
    return bh_err_set(err, BH_PID_NOT_FOUND, NULL,
                      "pid %u is not a running process", pid);
  if (e != 0)
    return bh_err_set(err, BH_SYSTEM, NULL, "cannot read %s: %s", path,
                      strerror(e));
  char *p = strrchr(buf, ')');
  /* After ')': field 3 (state) ... field 22 is the 20th token. */
  for (int field = 2; p != NULL && field < 22; field++) {
    p = strchr(p + 1, ' ');
  }
  if (p == NULL || !parse_ull(p + 1, ticks))
    return bh_err_set(err, BH_SYSTEM, NULL, "cannot parse starttime in %s",
                      path);
  return BH_OK;
}

bh_status bh_proc_start_unix_ms(uint32_t pid, uint64_t *out, bh_err *err) {
  unsigned long long ticks = 0;
  uint64_t btime = 0;
  bh_status st = start_ticks(pid, &ticks, err);
  if (st == BH_OK) st = boot_time(&btime, err);
  if (st != BH_OK) return st;
  long hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) hz = 100;
  *out = btime * 1000u + (uint64_t)ticks * 1000u / (uint64_t)hz;
  return BH_OK;
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
