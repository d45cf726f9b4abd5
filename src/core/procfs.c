/* Reading /proc (design §1.5, §1.8): whether a pid is live, what it
 * runs, when it started, this machine's boot id, and pidfd_open. Plain
 * syscalls and small reads (read_proc here, fsutil.h's bh_file_read_small
 * for /proc/stat, bh_id_file_get for the boot id); no identities, no
 * digests. Linux only. */
#include "procfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsutil.h"
#include "idfile.h"

/* Bounds of the /proc files read whole: a pid's stat and the boot id are
 * a few hundred bytes; /proc/stat grows with CPUs and interrupts. */
enum { PROC_STAT_MAX = 8 * 1024 * 1024 };

/* Pids above INT_MAX would turn kill() into a process-group signal; no
 * such pid exists (pid_max <= 2^22), so they are "not found". */
bool bh_pid_in_range(uint32_t pid) {
  return pid != 0 && pid <= (uint32_t)INT_MAX;
}

bh_status bh_proc_check_alive(uint32_t pid, bh_err *err) {
  if (pid == 0)
    return bh_err_set(err, BH_INVALID_PID, NULL, "pid 0 is invalid");
  if (!bh_pid_in_range(pid) || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
    return bh_err_set(err, BH_PID_NOT_FOUND, NULL,
                      "pid %u is not a running process", pid);
  return BH_OK;
}

/* pidfd_open(2) through syscall(2): -1 with errno ENOSYS when the kernel or
 * the headers lack it. */
int bh_pidfd_open(uint32_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
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
  char *text = NULL;
  size_t len = 0;
  if (bh_file_read_small("/proc/stat", PROC_STAT_MAX, &text, &len, BH_SYSTEM,
                         err) != BH_OK)
    return BH_SYSTEM;
  unsigned long long bt = 0;
  const char *line = strstr(text, "\nbtime ");
  if (line == NULL || !parse_ull(line + 7, &bt)) bt = 0;
  free(text);
  if (bt == 0)
    return bh_err_set(err, BH_SYSTEM, NULL, "no btime line in /proc/stat");
  *out = cached = bt;
  return BH_OK;
}

/* A file of procfs that fits in cap - 1 bytes, in one read, into buf
 * (NUL-terminated): 0, or an errno value (EFBIG when it does not fit).
 * Three system calls where the general reader (fsutil.h) needs five: a
 * /proc/PID file is the kernel's, never a FIFO or a symlink planted by
 * someone, and gives all it has in the first read. */
static int read_proc(const char *path, char *buf, size_t cap, size_t *len) {
  int fd;
  do {
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno;
  ssize_t n;
  do {
    n = read(fd, buf, cap - 1);
  } while (n < 0 && errno == EINTR);
  int e = n < 0 ? errno : (size_t)n >= cap - 1 ? EFBIG : 0;
  (void)close(fd); /* read-only */
  if (e != 0) return e;
  buf[n] = '\0';
  *len = (size_t)n;
  return 0;
}

/* starttime (field 22, clock ticks since boot) of /proc/PID/stat. The
 * command name (field 2) may hold spaces and parentheses, so fields are
 * counted from the last ')'. */
static bh_status start_ticks(uint32_t pid, unsigned long long *ticks,
                             bh_err *err) {
  /* 52 fields of at most 20 digits and a name of at most 64 bytes: the
   * line is under 1.2 KiB. */
  char path[64], buf[4096];
  size_t len = 0;
  (void)snprintf(path, sizeof path, "/proc/%u/stat", pid);
  int e = read_proc(path, buf, sizeof buf, &len);
  if (e == ENOENT || e == ESRCH)
    return bh_err_set(err, BH_PID_NOT_FOUND, NULL,
                      "pid %u is not a running process", pid);
  if (e != 0)
    return bh_err_set(err, BH_SYSTEM, NULL, "reading %s: %s", path,
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

long bh_pidfd_pid(int pidfd) {
  char path[64], buf[1024];
  size_t len = 0;
  (void)snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
  if (read_proc(path, buf, sizeof buf, &len) != 0) return 0;
  const char *at = strstr(buf, "\nPid:");
  return at != NULL ? strtol(at + 5, NULL, 10) : 0;
}

bool bh_proc_real_uid(uint32_t pid, uid_t *uid) {
  char path[64], buf[4096];
  size_t len = 0;
  unsigned long long u;
  (void)snprintf(path, sizeof path, "/proc/%u/status", pid);
  if (read_proc(path, buf, sizeof buf, &len) != 0) return false;
  const char *at = strstr(buf, "\nUid:");
  if (at == NULL) return false;
  at += 5;
  while (*at == '\t' || *at == ' ')
    at++;
  char *end = NULL;
  u = strtoull(at, &end, 10);
  if (end == at) return false;
  *uid = (uid_t)u;
  return true;
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

/* The kernel's boot id, read once per process: a process does not outlive
 * its boot, and every full probe compares it. */
static bh_id_file boot_id_file = BH_ID_FILE("/proc/sys/kernel/random/boot_id");

bh_status bh_boot_id(char *buf, size_t cap, bh_err *err) {
  return bh_id_file_get(&boot_id_file, buf, cap, err);
}
