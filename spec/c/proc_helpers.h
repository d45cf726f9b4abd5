/* Helpers shared by the tests that verify real processes (test_proc.c,
 * test_proc_attacks.c, test_probe_hash.c, test_probe_peer.c): a copy of
 * the test's own binary, run as "COPY block" so that the child's
 * /proc/PID/exe is the copy; waiting until that exec has happened; and a
 * plain forked child blocked on a pipe. spec/CMakeLists.txt links each
 * test with testutil.c only, so these are static functions in a header
 * rather than another library. */
#ifndef BH_PROC_HELPERS_H
#define BH_PROC_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "identity.h"
#include "testutil.h"

#define PH_UNUSED __attribute__((unused))

/* Copy this test's binary to path, with `extra` bytes appended (an ELF
 * file runs the same with trailing bytes; its digests differ). */
static PH_UNUSED void copy_self(const char *path, size_t extra) {
  int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
  CHECK(in >= 0 && out >= 0);
  char buf[65536];
  ssize_t n;
  while ((n = read(in, buf, sizeof buf)) > 0)
    CHECK_INT(write(out, buf, (size_t)n), n);
  memset(buf, 0x42, sizeof buf);
  for (size_t done = 0; done < extra; done += sizeof buf)
    CHECK(write(out, buf,
                extra - done < sizeof buf ? extra - done : sizeof buf) > 0);
  close(in);
  close(out);
}

/* Run exe (a copy of this binary) as "exe block": it blocks reading stdin
 * until *wfd closes, then exits 0 (see block_mode). With over != NULL the
 * child first moves to a mount namespace of its own and bind-mounts `over`
 * on exe there; when that is refused it exits 126. */
static PH_UNUSED pid_t spawn_copy(const char *exe, const char *over, int *wfd) {
  int fds[2];
  CHECK_INT(pipe2(fds, O_CLOEXEC), 0);
  pid_t child = fork();
  if (child == 0) {
    if (dup2(fds[0], 0) < 0) _exit(127);
    if (over != NULL &&
        (unshare(CLONE_NEWNS) != 0 ||
         mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
         mount(over, exe, NULL, MS_BIND, NULL) != 0)) {
      fprintf(stderr, "impostor: %s\n", strerror(errno));
      _exit(126);
    }
    execl(exe, exe, "block", (char *)NULL);
    _exit(127);
  }
  close(fds[0]);
  *wfd = fds[1];
  return child;
}

/* Wait until the child's exe link names exe (exec is not instantaneous
 * after fork). False when the child exited first, or after 30 s; an
 * exited child is left unreaped, so the caller's waitpid still gets its
 * status. */
static PH_UNUSED bool wait_exec(pid_t child, const char *exe) {
  char link[64], target[512];
  snprintf(link, sizeof link, "/proc/%d/exe", (int)child);
  for (int i = 0; i < 3000; i++) {
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n > 0) {
      target[n] = '\0';
      if (strcmp(target, exe) == 0) return true;
    }
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)child, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == child)
      return false;
    usleep(10000);
  }
  return false;
}

/* spawn_copy(exe) and its identity as bh_identity_of_pid reads it into
 * *rec (cleared by the caller; left empty when the exec never shows). */
static PH_UNUSED pid_t spawn_recorded(const char *exe, int *wfd,
                                      bh_identity *rec) {
  pid_t child = spawn_copy(exe, NULL, wfd);
  bh_identity_init(rec);
  CHECK(wait_exec(child, exe));
  bh_err err;
  CHECK_CODE(bh_identity_of_pid((uint32_t)child, NULL, rec, &err), BH_OK, &err);
  return child;
}

/* A forked child blocked reading a pipe; it exits 7 when *wfd closes. */
static PH_UNUSED pid_t spawn_blocked(int *wfd) {
  int fds[2];
  CHECK_INT(pipe2(fds, O_CLOEXEC), 0);
  pid_t child = fork();
  if (child == 0) {
    close(fds[1]);
    char c;
    while (read(fds[0], &c, 1) < 0 && errno == EINTR) {
    }
    _exit(7);
  }
  close(fds[0]);
  *wfd = fds[1];
  return child;
}

/* The child side of spawn_copy, first thing in main:
 *   if (block_mode(argc, argv)) return 0;
 * With argv "block" it reads stdin until end of file (or an error other
 * than EINTR: retrying one would spin forever) and returns true. */
static PH_UNUSED bool block_mode(int argc, char **argv) {
  if (argc != 2 || strcmp(argv[1], "block") != 0) return false;
  char c;
  while (read(0, &c, 1) < 0 && errno == EINTR) {
  }
  return true;
}

#endif
