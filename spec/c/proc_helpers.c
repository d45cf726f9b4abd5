/* The definitions of proc_helpers.h (see there), compiled once into the
 * bhtestutil library that every C test links. */
#include "proc_helpers.h"

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
#include "proc.h"
#include "testutil.h"

void copy_self(const char *path, size_t extra) {
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

pid_t spawn_copy(const char *exe, const char *over, int *wfd) {
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

bool wait_exec(pid_t child, const char *exe) {
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

pid_t spawn_recorded(const char *exe, int *wfd, bh_identity *rec) {
  pid_t child = spawn_copy(exe, NULL, wfd);
  bh_identity_init(rec);
  CHECK(wait_exec(child, exe));
  bh_err err;
  CHECK_CODE(bh_identity_of_pid((uint32_t)child, NULL, rec, &err), BH_OK, &err);
  return child;
}

pid_t spawn_blocked(int *wfd) {
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

bool block_mode(int argc, char **argv) {
  if (argc != 2 || strcmp(argv[1], "block") != 0) return false;
  char c;
  while (read(0, &c, 1) < 0 && errno == EINTR) {
  }
  return true;
}
