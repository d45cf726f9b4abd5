/* Process verification (design §1.5 step 2, §1.8) and held processes.
 * A verified process is held through a pidfd, so that a later liveness
 * check or signal reaches that very process even if its pid is recycled.
 * The identity a daemon with a given pid (or this process) would answer
 * is built here too, from the same reads. Reads /proc directly; Linux
 * only. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "digest.h"
#include "procfs.h"

/* Hold pid by pidfd (or by bare pid, checked live, on kernels without
 * pidfd_open). The pidfd is close-on-exec by kernel design. A zombie is
 * held too: the next bh_proc_alive says it has exited. */
bh_status bh_proc_hold(uint32_t pid, bh_proc *out, bh_err *err) {
  *out = BH_PROC_NONE;
  if (!bh_pid_in_range(pid)) return bh_proc_check_alive(pid, err);
  int fd = bh_pidfd_open(pid);
  if (fd < 0 && (errno == ENOSYS || errno == EPERM)) {
    /* No pidfd here (old kernel; EPERM: a seccomp filter, not gone). */
    bh_status st = bh_proc_check_alive(pid, err);
    if (st != BH_OK) return st;
  } else if (fd < 0) {
    if (errno == ESRCH || errno == EINVAL)
      return bh_err_set(err, BH_PID_NOT_FOUND, NULL,
                        "pid %u is not a running process (pidfd_open: %s)", pid,
                        strerror(errno));
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

/* Send sig: 0 or the errno (ESRCH: gone). */
static int send_signal(const bh_proc *p, int sig) {
  if (!bh_pid_in_range(p->pid)) return ESRCH;
#ifdef SYS_pidfd_send_signal
  if (p->pidfd >= 0) {
    if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) == 0) return 0;
    if (errno != ENOSYS) return errno;
  }
#endif
  if (kill((pid_t)p->pid, sig) == 0) return 0;
  return errno;
}

bh_status bh_proc_signal(const bh_proc *p, int sig, bh_err *err) {
  int e = send_signal(p, sig);
  if (e == 0) return BH_OK;
  if (e == ESRCH)
    return bh_err_sys(err, BH_PID_NOT_FOUND, e, "pid %u is not running",
                      p->pid);
  return bh_err_sys(err, BH_SYSTEM, e, "cannot signal pid %u: %s", p->pid,
                    strerror(e));
}

void bh_proc_release(bh_proc *p) {
  if (p->pidfd >= 0) close(p->pidfd); /* EINTR/EIO: the fd is gone anyway */
  *p = BH_PROC_NONE;
}

/* ---- the cache of verified processes ------------------------------------
 * Start times of the processes verified lately. A process's
 * start time never changes while it lives, and a pidfd tells whether it
 * still does, so verifying a daemon verified before needs neither
 * pidfd_open nor /proc/PID/stat (6.5 us of kernel time here: the kernel
 * computes the whole stat line to give one field). Each entry keeps a
 * pidfd (close-on-exec); at most BH_PROC_CACHE_SIZE, the least recently
 * used goes first, and an entry whose process exited goes when looked at.
 * Thread-safe (cache_lock). */

typedef struct cache_entry {
  bh_proc proc; /* pid 0: a free slot */
  uint64_t start_ms;
  uint64_t last_use;
} cache_entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_entry cache_entries[BH_PROC_CACHE_SIZE];
static uint64_t cache_clock, cache_hits;
static bool cache_ready;

/* Lazily, under cache_lock: every slot free. */
static void init_locked(void) {
  if (cache_ready) return;
  for (int i = 0; i < BH_PROC_CACHE_SIZE; i++)
    cache_entries[i].proc = BH_PROC_NONE;
  cache_ready = true;
}

static int dup_pidfd(int fd) {
  return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

/* When pid is cached and its process still runs: *out holds it (a new
 * pidfd, the caller's) and *start_ms is its start time. */
static bool cache_take(uint32_t pid, bh_proc *out, uint64_t *start_ms) {
  bool found = false;
  if (pid == 0 || pthread_mutex_lock(&cache_lock) != 0) return false;
  init_locked();
  for (int i = 0; i < BH_PROC_CACHE_SIZE && !found; i++) {
    cache_entry *e = &cache_entries[i];
    if (e->proc.pid != pid) continue;
    int fd = bh_proc_alive(&e->proc) ? dup_pidfd(e->proc.pidfd) : -1;
    if (fd < 0) { /* exited (or no descriptor left): forget it */
      bh_proc_release(&e->proc);
      break;
    }
    *out = (bh_proc){pid, fd};
    *start_ms = e->start_ms;
    e->last_use = ++cache_clock;
    cache_hits++;
    found = true;
  }
  (void)pthread_mutex_unlock(&cache_lock);
  return found;
}

/* Remember p (held by pidfd: the cache keeps a duplicate) with the start
 * time read for it while it was held. Nothing when p has no pidfd. */
static void cache_put(const bh_proc *p, uint64_t start_ms) {
  if (p->pid == 0 || p->pidfd < 0 || pthread_mutex_lock(&cache_lock) != 0)
    return;
  init_locked();
  cache_entry *slot = &cache_entries[0];
  for (int i = 0; i < BH_PROC_CACHE_SIZE; i++) {
    cache_entry *e = &cache_entries[i];
    if (e->proc.pid == p->pid) { /* a newer process with the pid */
      slot = e;
      break;
    }
    if (slot->proc.pid != 0 &&
        (e->proc.pid == 0 || e->last_use < slot->last_use))
      slot = e;
  }
  int fd = dup_pidfd(p->pidfd);
  if (fd >= 0) {
    bh_proc_release(&slot->proc);
    *slot = (cache_entry){
        .proc = {p->pid, fd}, .start_ms = start_ms, .last_use = ++cache_clock};
  }
  (void)pthread_mutex_unlock(&cache_lock);
}

uint64_t bh_proc_cache_hits(void) {
  if (pthread_mutex_lock(&cache_lock) != 0) return 0;
  uint64_t n = cache_hits;
  (void)pthread_mutex_unlock(&cache_lock);
  return n;
}

void bh_proc_cache_clear(void) {
  if (pthread_mutex_lock(&cache_lock) != 0) return;
  init_locked();
  for (int i = 0; i < BH_PROC_CACHE_SIZE; i++)
    bh_proc_release(&cache_entries[i].proc);
  (void)pthread_mutex_unlock(&cache_lock);
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

/* Something read about the held pid by number (its /proc entries) is only
 * about the held process if that process is still running afterwards: if
 * it exited in between, the pid may already name another process. */
static bh_status still_held(const bh_proc *p, bh_err *err) {
  if (p->pidfd < 0 || bh_proc_alive(p)) return BH_OK;
  return bh_err_set(err, BH_PID_NOT_FOUND, NULL,
                    "pid %u exited during verification", p->pid);
}

/* The exe link is confirmed by the still_held at the end of the
 * verification (bh_proc_exe_digests): a process
 * alive then was alive throughout. A mismatch asks at once, so that a pid
 * recycled meanwhile is called what it is (pid_not_found), not an
 * impostor. */
static bh_status failed_check(const bh_proc *p, bh_status st, bh_err *err) {
  bh_err gone = {0};
  if (still_held(p, &gone) == BH_OK) return st;
  if (err != NULL) *err = gone;
  return gone.code;
}

/* Step "pid reused": a record cannot predate its process, which started
 * at real. */
static bh_status compare_start(const bh_identity *expected, const bh_proc *p,
                               uint64_t real, bh_err *err) {
  /* Compared by difference: the sum could wrap around for a start time
   * near UINT64_MAX, which a record may hold. */
  if (real <= expected->started_at_unix_ms ||
      real - expected->started_at_unix_ms <= BH_START_SLACK_MS)
    return BH_OK;
  return bh_err_set(err, BH_PID_REUSED, NULL,
                    "pid %u was reused: the record says its daemon started at "
                    "%llu ms, but the process with that pid started at %llu "
                    "ms (%.1f s later)",
                    p->pid, (unsigned long long)expected->started_at_unix_ms,
                    (unsigned long long)real,
                    (double)(real - expected->started_at_unix_ms) / 1e3);
}

/* Hold the recorded pid and check its start time: from the cache when
 * the process was verified before and still runs, else read while it is
 * held (then cached). */
static bh_status hold_and_check_start(const bh_identity *expected, bh_proc *p,
                                      bh_err *err) {
  uint64_t real = 0;
  if (cache_take(expected->pid, p, &real))
    return expected->started_at_unix_ms == 0
               ? BH_OK
               : compare_start(expected, p, real, err);
  bh_status st = bh_proc_hold(expected->pid, p, err);
  if (st != BH_OK || expected->started_at_unix_ms == 0) return st;
  st = bh_proc_start_unix_ms(p->pid, &real, err);
  if (st == BH_OK) st = still_held(p, err); /* a zombie: pid_not_found */
  if (st != BH_OK) return st;
  cache_put(p, real);
  return compare_start(expected, p, real, err);
}

/* Is link "WANT (deleted)": the process runs the recorded file, since
 * deleted or replaced on disk? */
static bool deleted_copy_of(const char *link, const char *want) {
  static const char suffix[] = " (deleted)";
  size_t n = strlen(link), s = sizeof suffix - 1;
  return n > s && strcmp(link + n - s, suffix) == 0 &&
         strncmp(link, want, n - s) == 0 && want[n - s] == '\0';
}

/* Step "exe path": the executable link of the held pid, canonicalized,
 * against the recorded path, canonicalized. The link is the kernel's
 * path of the file, so when it is the recorded path itself both
 * canonicalize alike and realpath (a readlink per component) is spared.
 * A link reading "RECORDED (deleted)" passes with *deleted set: the
 * process still runs the file it was recorded with, since replaced or
 * deleted on disk (an upgrade); whether its image is still the recorded
 * one is for the digest step to say. */
static bh_status check_exe_path(const bh_identity *expected, const bh_proc *p,
                                bool *deleted, bh_err *err) {
  char *link = NULL, *got = NULL, *want = NULL;
  bh_status st = bh_proc_exe_link(p->pid, &link, err);
  if (st != BH_OK) return st; /* a zombie too (design §1.8) */
  if (expected->exe_path != NULL && strcmp(link, expected->exe_path) == 0)
    goto end;
  got = bh_canonical_path(link);
  want = bh_canonical_path(expected->exe_path ? expected->exe_path : "");
  if (got == NULL || want == NULL) {
    st = bh_err_set(err, BH_SYSTEM, NULL, "out of memory");
    goto end;
  }
  if (deleted_copy_of(link, want)) {
    *deleted = true;
  } else if (strcmp(got, want) != 0) {
    st = bh_err_set(err, BH_EXE_PATH_MISMATCH, NULL,
                    "recorded executable %s, but pid %u runs %s", want, p->pid,
                    got);
    st = failed_check(p, st, err);
  }
end:
  free(link);
  free(got);
  free(want);
  return st;
}

bh_status bh_proc_verify_begin(const bh_identity *expected,
                               const char *current_boot_id, bh_proc *held,
                               bool *exe_deleted, bh_err *err) {
  bh_proc p = BH_PROC_NONE;
  *held = BH_PROC_NONE;
  *exe_deleted = false;
  if (expected->pid == 0)
    return bh_err_set(err, BH_INVALID_PID, NULL, "recorded pid 0 is invalid");
  if (expected->digests.algs == 0)
    return bh_err_set(err, BH_EXE_HASH, NULL,
                      "the record of pid %u has no executable digest",
                      expected->pid);
  bh_status st = check_boot_id(expected, current_boot_id, err);
  if (st == BH_OK) st = hold_and_check_start(expected, &p, err);
  if (st == BH_OK) st = check_exe_path(expected, &p, exe_deleted, err);
  if (st != BH_OK)
    bh_proc_release(&p);
  else
    *held = p;
  return st;
}

bh_status bh_proc_exe_digests(const bh_proc *p, unsigned algs, bh_digests *d,
                              int *fd, struct stat *st, bh_err *err) {
  char path[64];
  *fd = -1;
  (void)snprintf(path, sizeof path, "/proc/%u/exe", p->pid);
  /* By a stat first, opening nothing; anything odd (not a regular file,
   * unreadable) is for the open below to report. */
  bool cached = stat(path, st) == 0 && S_ISREG(st->st_mode) &&
                bh_digest_cache_get(st, algs, d);
  bh_status s = BH_OK;
  if (!cached) {
    s = bh_digest_open_exe(p->pid, fd, st, err);
    if (s != BH_OK) return s;
    /* The file it runs is cached after all (hashed meanwhile). */
    if (bh_digest_cache_get(st, algs, d)) {
      (void)close(*fd); /* read-only */
      *fd = -1;
    }
  }
  /* What was stat'ed or opened is the held process's only if it still
   * runs now. */
  s = still_held(p, err);
  if (s != BH_OK && *fd >= 0) {
    (void)close(*fd);
    *fd = -1;
  }
  return s;
}

bh_status bh_proc_check_digests(const bh_identity *expected,
                                const bh_digests *got, bh_err *err) {
  static const unsigned algs[] = {BH_ALG_SHA256, BH_ALG_BLAKE3};
  for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
    const uint8_t *want = bh_digest_of(&expected->digests, algs[i]);
    const uint8_t *have = bh_digest_of(got, algs[i]);
    if (want == NULL || have == NULL || memcmp(want, have, BH_DIGEST_LEN) == 0)
      continue;
    char hw[BH_DIGEST_HEX_LEN + 1], hg[BH_DIGEST_HEX_LEN + 1];
    bh_hex_encode(want, BH_DIGEST_LEN, hw);
    bh_hex_encode(have, BH_DIGEST_LEN, hg);
    bool sha = algs[i] == BH_ALG_SHA256;
    return bh_err_set(err, sha ? BH_EXE_SHA256_MISMATCH : BH_EXE_HASH_MISMATCH,
                      NULL, "recorded %s %.8s…, executable has %.8s…",
                      sha ? "sha256" : "blake3", hw, hg);
  }
  return BH_OK;
}

bh_status bh_proc_deleted_error(const bh_identity *expected, bh_err *err) {
  return bh_err_set(err, BH_EXE_DELETED, NULL,
                    "pid %u runs %s as recorded, but that file was replaced or "
                    "deleted on disk after it started: a restart is due",
                    expected->pid,
                    expected->exe_path != NULL ? expected->exe_path : "");
}

bh_status bh_proc_verify(const bh_identity *expected,
                         const char *current_boot_id, bh_proc *held,
                         bh_err *err) {
  bh_proc p;
  struct stat sb;
  bh_digests d;
  bool deleted;
  unsigned algs = expected->digests.algs;
  if (held != NULL) *held = BH_PROC_NONE;
  bh_status st =
      bh_proc_verify_begin(expected, current_boot_id, &p, &deleted, err);
  if (st != BH_OK) return st;
  int fd;
  st = bh_proc_exe_digests(&p, algs, &d, &fd, &sb, err);
  if (st == BH_OK && fd >= 0) {
    st = bh_digest_fd(fd, &sb, "the executable", algs, NULL, &d, err);
    (void)close(fd); /* read-only */
  }
  if (st == BH_OK) st = bh_proc_check_digests(expected, &d, err);
  if (st == BH_OK && deleted) st = bh_proc_deleted_error(expected, err);
  if (st != BH_OK || held == NULL)
    bh_proc_release(&p);
  else
    *held = p;
  return st;
}

/* ---- the identity of a live process ------------------------------------- */

/* Fill the parts common to current() and of_pid(): endpoint, idle timeout,
 * boot id. id->exe_path must already be set. */
static bh_status fill_common(bh_identity *id, const bh_endpoint *ep,
                             const uint32_t *idle_timeout_secs, bh_err *err) {
  char boot[128];
  if (bh_boot_id(boot, sizeof boot, NULL) != BH_OK) boot[0] = '\0';
  id->boot_id = strdup(boot);
  if (id->boot_id == NULL)
    return bh_err_set(err, BH_SYSTEM, NULL, "out of memory copying boot id");
  if (ep != NULL) { /* else absent: bh_identity_has_endpoint says so */
    bh_status st = bh_endpoint_copy(&id->endpoint, ep, err);
    if (st != BH_OK) return st;
  }
  id->has_idle_timeout = idle_timeout_secs != NULL;
  id->idle_timeout_secs = idle_timeout_secs ? *idle_timeout_secs : 0;
  return BH_OK;
}

/* The current process. A missing boot id is not an error (it is then
 * empty, and peers skip the comparison); a failing /proc is. */
bh_status bh_identity_current(const bh_endpoint *ep,
                              const uint32_t *idle_timeout_secs,
                              bh_identity *out, bh_err *err) {
  bh_identity id;
  bh_identity_init(&id);
  bh_status st;
  id.pid = (uint32_t)getpid();
  id.exe_path = realpath("/proc/self/exe", NULL);
  if (id.exe_path == NULL) {
    /* Deleted or unreachable binary: keep the raw link text (the digests
     * still come from the file we run, through /proc/self/exe). */
    st = bh_proc_exe_link(id.pid, &id.exe_path, err);
    if (st != BH_OK) goto end;
  }
  st = bh_digest_exe(id.pid, BH_ALGS_ALL, &id.digests, err);
  if (st != BH_OK) goto end;
  st = bh_proc_start_unix_ms(id.pid, &id.started_at_unix_ms, err);
  if (st != BH_OK) goto end;
  st = fill_common(&id, ep, idle_timeout_secs, err);
  if (st == BH_OK) bh_identity_move(out, &id);
end:
  bh_identity_clear(&id);
  return st;
}

/* Another live process: what a daemon with that pid would answer, built
 * from /proc (the same reads bh_proc_verify does). */
bh_status bh_identity_of_pid(uint32_t pid, const bh_endpoint *ep,
                             bh_identity *out, bh_err *err) {
  bh_identity id;
  bh_identity_init(&id);
  char *raw = NULL;
  bh_status st;
  if (pid == 0) {
    st = bh_err_set(err, BH_INVALID_PID, NULL, "pid 0 is not a process");
    goto end;
  }
  st = bh_proc_check_alive(pid, err);
  if (st != BH_OK) goto end;
  st = bh_proc_exe_link(pid, &raw, err);
  if (st != BH_OK) goto end;
  id.exe_path = bh_canonical_path(raw);
  if (id.exe_path == NULL) {
    st = bh_err_set(err, BH_SYSTEM, NULL, "out of memory");
    goto end;
  }
  st = bh_digest_exe(pid, BH_ALGS_ALL, &id.digests, err);
  if (st != BH_OK) goto end;
  st = bh_proc_start_unix_ms(pid, &id.started_at_unix_ms, err);
  if (st != BH_OK) goto end;
  id.pid = pid;
  st = fill_common(&id, ep, NULL, err);
  if (st == BH_OK) bh_identity_move(out, &id);
end:
  free(raw);
  bh_identity_clear(&id);
  return st;
}
