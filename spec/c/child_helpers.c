/* The definitions of child_helpers.h (see there), compiled once into the
 * bhtestutil library that every C test links. */
#include "child_helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

long ch_status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  size_t len = strlen(field);
  long kb = -1;
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, len) == 0 && line[len] == ':' &&
        sscanf(line + len + 1, " %ld kB", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

long ch_hwm_kb(void) {
  return ch_status_kb("VmHWM");
}

long ch_rss_kb(void) {
  return ch_status_kb("VmRSS");
}

bool ch_reset_hwm(void) {
  int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, "5", 1) == 1;
  close(fd);
  return ok;
}

bool ch_sanitized(void) {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#else
  return false;
#endif
#else
  return false;
#endif
}

bool ch_read_within(int fd, void *buf, size_t len, double max_s) {
  size_t got = 0;
  double end = bh_test_now() + max_s;
  while (got < len) {
    double left = end - bh_test_now();
    if (left <= 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)(left * 1000) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = read(fd, (char *)buf + got, len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += (size_t)n;
  }
  return true;
}

pid_t ch_spawn(void (*fn)(void *arg, int wfd), void *arg, int *rfd) {
  int pfd[2];
  /* What the parent freed but kept would be resident in the child too and
   * count in the figures the child measures. */
  (void)malloc_trim(0);
  if (pipe2(pfd, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(pfd[0]);
    close(pfd[1]);
    return -1;
  }
  if (pid == 0) {
    close(pfd[0]);
    fn(arg, pfd[1]);
    _exit(0);
  }
  close(pfd[1]);
  *rfd = pfd[0];
  return pid;
}

bool ch_collect(pid_t pid, int rfd, void *rep, size_t len, double max_s) {
  bool ok = ch_read_within(rfd, rep, len, max_s);
  close(rfd);
  if (!ok) {
    fprintf(stderr, "  child %d: no report within %.1f s: killed\n", (int)pid,
            max_s);
    kill(pid, SIGKILL);
  }
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  return ok && WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

bool ch_run(void (*fn)(void *arg, int wfd), void *arg, void *rep,
            size_t rep_len, double max_s) {
  int rfd;
  pid_t pid = ch_spawn(fn, arg, &rfd);
  return pid > 0 && ch_collect(pid, rfd, rep, rep_len, max_s);
}

void ch_report(int wfd, const void *rep, size_t len) {
  if (write(wfd, rep, len) != (ssize_t)len) _exit(9);
}

bool ch_deny_syscall(long nr, int errnum) {
#if defined(__x86_64__)
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
      BPF_STMT(BPF_RET | BPF_K,
               SECCOMP_RET_ERRNO | ((unsigned)errnum & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
#else
  (void)nr;
  (void)errnum;
  return false;
#endif
}
