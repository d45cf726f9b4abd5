/* systemd notification through the real binary: the test plays systemd,
 * with a NOTIFY_SOCKET of its own (a datagram socket it reads) and
 * WATCHDOG_USEC, and checks what bhprobe-lua says: READY=1 after the
 * start-up checks (never when they fail), WATCHDOG=1 from the loop at
 * half the interval, STOPPING=1 on the way out after SIGTERM (exit 143). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char bin[512];

/* A bound datagram socket at tmpdir/name; its path in path. */
static int notify_socket(const char *name, char *path, size_t cap) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  bh_test_path(path, cap, name);
  (void)snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    perror("notify socket");
    exit(1);
  }
  return fd;
}

/* Starts bin with args (NULL-terminated, after argv[0]) and the notify
 * environment; stdout and stderr go to /dev/null. */
static pid_t start(const char *sock, const char *const *args) {
  const char *argv[16] = {bin};
  size_t n = 1;
  for (; args[n - 1] != NULL && n < 15; n++)
    argv[n] = args[n - 1];
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid == 0) {
    FILE *null = freopen("/dev/null", "w", stdout);
    (void)null;
    (void)setenv("NOTIFY_SOCKET", sock, 1);
    (void)setenv("WATCHDOG_USEC", "200000", 1); /* pings every 0.1 s */
    (void)unsetenv("WATCHDOG_PID");
    (void)signal(SIGTERM, SIG_DFL);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  return pid;
}

/* The next datagram within timeout_ms, NUL-terminated in buf; false on
 * timeout. */
static bool next_message(int fd, char *buf, size_t cap, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  if (r <= 0) return false;
  ssize_t n = recv(fd, buf, cap - 1, 0);
  if (n < 0) return false;
  buf[n] = '\0';
  return true;
}

/* Waits up to timeout_ms for a message containing want; counts the
 * messages equal to count_this on the way (if not NULL). */
static bool wait_for(int fd, const char *want, const char *count_this,
                     int *count, int timeout_ms) {
  char buf[256];
  double end = bh_test_now() + timeout_ms / 1000.0;
  while (bh_test_now() < end) {
    int left = (int)((end - bh_test_now()) * 1000) + 1;
    if (!next_message(fd, buf, sizeof buf, left)) return false;
    if (count_this != NULL && strstr(buf, count_this) != NULL) ++*count;
    if (strstr(buf, want) != NULL) return true;
  }
  return false;
}

static int wait_exit(pid_t pid) {
  int status = 0;
  for (int i = 0; i < 400; i++) { /* 20 s at most */
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    usleep(50000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -2;
}

static void test_ready_watchdog_stopping(void) {
  char path[256];
  int fd = notify_socket("n1.sock", path, sizeof path);
  const char *args[] = {"-e", "bh.sleep(60)", NULL};
  pid_t pid = start(path, args);
  int pings = 0;
  CHECK(wait_for(fd, "READY=1", NULL, NULL, 10000));
  /* The pings come from the loop while the script sleeps in it. */
  CHECK(wait_for(fd, "WATCHDOG=1", NULL, NULL, 10000));
  CHECK(wait_for(fd, "WATCHDOG=1", NULL, NULL, 10000));
  kill(pid, SIGTERM);
  CHECK(wait_for(fd, "STOPPING=1", "WATCHDOG=1", &pings, 10000));
  CHECK_INT(wait_exit(pid), 143);
  close(fd);
}

static void test_no_ready_when_checks_fail(void) {
  char path[256], buf[256];
  int fd = notify_socket("n2.sock", path, sizeof path);
  const char *args[] = {"--report", "/nonexistent/dir/r.jsonl", "-e", "", NULL};
  pid_t pid = start(path, args);
  CHECK_INT(wait_exit(pid), 2);
  bool ready = false;
  while (next_message(fd, buf, sizeof buf, 200))
    if (strstr(buf, "READY=1") != NULL) ready = true;
  CHECK(!ready);
  close(fd);
}

/* A loop that stalls (a script in a blocking C call) stops pinging. The
 * script creates a flag file right before it blocks: no ping can be sent
 * between the two (the loop does not turn), so once the flag exists and
 * the queue is drained, nothing more may come until the call returns. */
static void test_stalled_loop_stops_pinging(void) {
  char path[256], buf[256], flag[256], code[600];
  int fd = notify_socket("n3.sock", path, sizeof path);
  bh_test_path(flag, sizeof flag, "stalled");
  (void)snprintf(code, sizeof code,
                 "bh.sleep(0.3) io.open('%s', 'w'):close() "
                 "os.execute('sleep 2')",
                 flag);
  const char *args[] = {"-e", code, NULL};
  pid_t pid = start(path, args);
  CHECK(wait_for(fd, "READY=1", NULL, NULL, 10000));
  CHECK(wait_for(fd, "WATCHDOG=1", NULL, NULL, 10000));
  for (int i = 0; i < 200 && access(flag, F_OK) != 0; i++)
    usleep(50000);
  CHECK(access(flag, F_OK) == 0);
  while (next_message(fd, buf, sizeof buf, 0)) {
  }
  int late = 0;
  while (next_message(fd, buf, sizeof buf, 1000))
    if (strstr(buf, "WATCHDOG=1") != NULL) late++;
  CHECK_INT(late, 0);
  CHECK_INT(wait_exit(pid), 0);
  close(fd);
}

int main(void) {
  const char *bd = getenv("BH_BUILD_DIR");
  if (bd == NULL) {
    printf("  SKIP: BH_BUILD_DIR not set (run through ctest)\n");
    return 0;
  }
  (void)snprintf(bin, sizeof bin, "%s/bhprobe-lua", bd);
  RUN(test_ready_watchdog_stopping);
  RUN(test_no_ready_when_checks_fail);
  RUN(test_stalled_loop_stops_pinging);
  return bh_test_summary();
}
